//! Conversions between the wire types (`v1`) and the domain types.
//!
//! Proto → domain is where wire-level problems become field violations: a
//! missing `Money`, a currency that is not ISO-4217, a timestamp with
//! out-of-range nanoseconds, an enum number the contract does not define.
//! `UNSPECIFIED` maps to `None`, which [`retain_domain::signal::validate`]
//! reports with the accepted values where a value is required. Paths are
//! relative to the signal (`subscription.amount.currency`), like the
//! domain's own.

use retain_domain::health::BillingStatus;
use retain_domain::kpi::experience::Scale;
use retain_domain::kpi::revenue::ChurnReason;
use retain_domain::signal::{
    BillingInterval, CostKind, Lifecycle, Mode, RawBody, RawSignal, RenewalOutcome, SignalKind,
    SurveyKind, TicketStatus, TrialEvent,
};
use retain_domain::validation::{Text, check_text};
use retain_domain::{Currency, Money, Period, Timestamp, Violations};

use crate::v1;

/// Earliest instant a timestamp field may hold: 1970-01-01T00:00:00Z.
pub const MIN_SECONDS: i64 = 0;
/// First instant a timestamp field may no longer hold:
/// 2200-01-01T00:00:00Z.
pub const END_SECONDS: i64 = 7_258_118_400;

/// A wire timestamp as a domain timestamp (microseconds, nanoseconds
/// truncated); `None` when the nanoseconds are outside 0–999,999,999 or the
/// instant outside [`MIN_SECONDS`]..[`END_SECONDS`] (1970 to 2199: the
/// window every timestamp field of the API accepts).
pub fn timestamp(t: &prost_types::Timestamp) -> Option<Timestamp> {
    ((0..1_000_000_000).contains(&t.nanos) && (MIN_SECONDS..END_SECONDS).contains(&t.seconds))
        .then(|| Timestamp::from_micros(micros(t)))
}

/// Longest user id accepted, in bytes.
pub const MAX_USER_ID_BYTES: usize = 128;

/// Text only the wire carries (the domain has no use for it, but it is
/// stored): bounded, and held to the rule of every stored text — or, for a
/// signal read back from storage, to the rules that held when it was
/// accepted (no U+0000, the length).
fn wire_text(v: &mut Violations, field: &str, value: &str, text: Text, stored: bool) {
    let max = match text {
        Text::Line(max) | Text::Prose(max) => max,
    };
    if !stored || !retain_domain::signal::storable(value) || value.len() > max {
        check_text(v, field, value, text, false);
    }
}

/// A wire timestamp as microseconds since the epoch (storage precision).
pub fn micros(t: &prost_types::Timestamp) -> i64 {
    t.seconds
        .saturating_mul(1_000_000)
        .saturating_add(i64::from(t.nanos / 1_000))
}

/// Microseconds since the epoch as a wire timestamp.
pub fn from_micros(us: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: us.div_euclid(1_000_000),
        nanos: i32::try_from(us.rem_euclid(1_000_000) * 1_000).unwrap_or(0),
    }
}

/// A domain lifecycle stage on the wire.
pub fn lifecycle_to_proto(l: Option<Lifecycle>) -> v1::LifecycleStage {
    match l {
        None => v1::LifecycleStage::Unspecified,
        Some(Lifecycle::Trial) => v1::LifecycleStage::Trial,
        Some(Lifecycle::Onboarding) => v1::LifecycleStage::Onboarding,
        Some(Lifecycle::Active) => v1::LifecycleStage::Active,
        Some(Lifecycle::Renewal) => v1::LifecycleStage::Renewal,
        Some(Lifecycle::Churned) => v1::LifecycleStage::Churned,
    }
}

/// A wire lifecycle stage; `None` for unspecified or unknown values.
pub fn lifecycle_from_proto(value: i32) -> Option<Lifecycle> {
    match v1::LifecycleStage::try_from(value).ok()? {
        v1::LifecycleStage::Unspecified => None,
        v1::LifecycleStage::Trial => Some(Lifecycle::Trial),
        v1::LifecycleStage::Onboarding => Some(Lifecycle::Onboarding),
        v1::LifecycleStage::Active => Some(Lifecycle::Active),
        v1::LifecycleStage::Renewal => Some(Lifecycle::Renewal),
        v1::LifecycleStage::Churned => Some(Lifecycle::Churned),
    }
}

/// Domain money on the wire.
pub fn money_to_proto(m: Money) -> v1::Money {
    v1::Money {
        amount_minor: m.minor,
        currency: m.currency.to_string(),
    }
}

fn money(v: &mut Violations, field: &str, m: Option<&v1::Money>) -> Option<Money> {
    let Some(m) = m else {
        v.push(field, "is required");
        return None;
    };
    match Currency::parse(&m.currency) {
        Ok(c) => Some(Money::new(m.amount_minor, c)),
        Err(e) => {
            v.push(format!("{field}.currency"), e.to_string());
            None
        }
    }
}

/// A timestamp field of any request, checked the one way every RPC checks
/// them: `None` when unset (the caller decides whether it was required),
/// or when malformed — nanoseconds outside 0–999,999,999 or an instant
/// outside 1970–2199 — which is recorded as a violation of `field`.
pub fn timestamp_field(
    v: &mut Violations,
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Option<Timestamp> {
    time(v, field, t)
}

/// A `Period` field of any request, checked the one way every RPC checks
/// them: both bounds are required and well-formed, and the end is after
/// the start. Every violation is recorded under `field`
/// (`period.start`); `None` when there is any.
pub fn period_field(v: &mut Violations, field: &str, p: &v1::Period) -> Option<Period> {
    let before = v.0.len();
    let mut bound = |name: &str, t: Option<&prost_types::Timestamp>| {
        let path = format!("{field}.{name}");
        if t.is_none() {
            v.push(path.as_str(), "is required: a period has both bounds");
        }
        time(v, &path, t)
    };
    let start = bound("start", p.start.as_ref());
    let end = bound("end", p.end.as_ref());
    if v.0.len() > before {
        return None;
    }
    match Period::new(start?, end?) {
        Ok(period) => Some(period),
        Err(_) => {
            v.push(
                format!("{field}.end"),
                format!("must be after {field}.start"),
            );
            None
        }
    }
}

fn time(v: &mut Violations, field: &str, t: Option<&prost_types::Timestamp>) -> Option<Timestamp> {
    let t = t?;
    let out = timestamp(t);
    if out.is_none() {
        if (0..1_000_000_000).contains(&t.nanos) {
            v.push(
                field,
                format!(
                    "{} s since the epoch is outside 1970-01-01T00:00:00Z to 2199-12-31T23:59:59Z",
                    t.seconds
                ),
            );
        } else {
            v.push(field, format!("nanos {} is outside 0–999,999,999", t.nanos));
        }
    }
    out
}

/// A wire enum number as a domain value: `None` for `UNSPECIFIED` (0); a
/// number the contract does not define is a violation of `field` naming
/// the accepted values, never silently "unspecified".
fn known<W, D>(
    v: &mut Violations,
    field: &str,
    value: i32,
    accepted: &str,
    map: impl FnOnce(W) -> Option<D>,
) -> Option<D>
where
    W: TryFrom<i32>,
{
    match W::try_from(value) {
        Ok(w) => map(w),
        Err(_) => {
            v.push(
                field,
                format!("{value} is not a defined value; use {accepted}"),
            );
            None
        }
    }
}

/// The wire mode of a batch (`UNSPECIFIED` is LIVE); `None` for a number
/// the contract does not define.
pub fn mode(value: i32) -> Option<Mode> {
    match v1::IngestMode::try_from(value).ok()? {
        v1::IngestMode::Unspecified | v1::IngestMode::Live => Some(Mode::Live),
        v1::IngestMode::Backfill => Some(Mode::Backfill),
    }
}

impl From<Mode> for v1::IngestMode {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Live => Self::Live,
            Mode::Backfill => Self::Backfill,
        }
    }
}

/// The domain kind of a wire body.
pub fn kind_of(body: &v1::signal::Body) -> SignalKind {
    use v1::signal::Body;
    match body {
        Body::Account(_) => SignalKind::Account,
        Body::Session(_) => SignalKind::Session,
        Body::Action(_) => SignalKind::Action,
        Body::Ticket(_) => SignalKind::Ticket,
        Body::Survey(_) => SignalKind::Survey,
        Body::Subscription(_) => SignalKind::Subscription,
        Body::Billing(_) => SignalKind::Billing,
        Body::Renewal(_) => SignalKind::Renewal,
        Body::Trial(_) => SignalKind::Trial,
        Body::Milestone(_) => SignalKind::Milestone,
        Body::Purchase(_) => SignalKind::Purchase,
        Body::Cost(_) => SignalKind::Cost,
    }
}

/// A wire churn reason; `None` for `UNSPECIFIED` and unknown numbers.
pub fn churn_reason(value: i32) -> Option<ChurnReason> {
    match v1::ChurnReason::try_from(value).ok()? {
        v1::ChurnReason::Unspecified => None,
        v1::ChurnReason::Competitor => Some(ChurnReason::Competitor),
        v1::ChurnReason::Freemium => Some(ChurnReason::Freemium),
        v1::ChurnReason::BusinessClosed => Some(ChurnReason::BusinessClosed),
        v1::ChurnReason::Price => Some(ChurnReason::Price),
        v1::ChurnReason::Other => Some(ChurnReason::Other),
    }
}

/// Converts a wire signal to the domain. Wire-level problems (a missing or
/// malformed amount or timestamp) come back as violations; the domain's
/// [`retain_domain::signal::validate`] checks the converted signal.
pub fn signal_from_proto(s: &v1::Signal) -> Result<RawSignal, Violations> {
    let (signal, v) = raw_signal(s);
    v.into_result(signal)
}

/// A stored signal (the wire form ingestion accepted) as the domain reads
/// it. It was valid when accepted, so it is checked again without the
/// rules that depend on when it arrived (how far in the past or future it
/// lies) and without text rules added since it was accepted. A renewal stored before `contract_end` was required counts as a
/// contract ending when it occurred — the rule it was accepted under.
pub fn stored_signal(
    wire: &v1::Signal,
    base_currency: Currency,
    checklist: &[String],
) -> Result<retain_domain::signal::Signal, Violations> {
    let rules = retain_domain::signal::Rules {
        now: Timestamp::from_micros(i64::MAX / 4),
        max_future_seconds: 0,
        max_past_seconds: None,
        base_currency,
        checklist,
    };
    let (mut raw, v) = raw_signal_with(wire, true);
    if !v.is_empty() {
        return Err(v);
    }
    if let Some(RawBody::Renewal { contract_end, .. }) = &mut raw.body
        && contract_end.is_none()
    {
        *contract_end = raw.occurred_at;
    }
    retain_domain::signal::validate_stored(&raw, &rules)
}

/// Converts a wire signal as far as it converts: the raw signal (a body
/// whose amount did not convert is left out) and the wire-level
/// violations. Lets a caller report the domain's violations of the rest
/// in the same answer.
pub fn raw_signal(s: &v1::Signal) -> (RawSignal, Violations) {
    raw_signal_with(s, false)
}

fn raw_signal_with(s: &v1::Signal, stored: bool) -> (RawSignal, Violations) {
    use v1::signal::Body;
    let mut v = Violations::new();
    let occurred_at = time(&mut v, "occurred_at", s.occurred_at.as_ref());
    // A field only the wire carries is still stored (in the payload, the
    // user registry): it gets the same bounds as the domain's fields.
    if let Some(Body::Milestone(x)) = &s.body {
        let line = Text::Line(MAX_USER_ID_BYTES);
        wire_text(&mut v, "milestone.user_id", &x.user_id, line, stored);
    }
    // `None` from the closure: an amount did not convert (its violation is
    // recorded), so there is no body to hand to the domain.
    let body = s.body.as_ref().map(|b| -> Option<RawBody> {
        Some(match b {
            Body::Account(a) => {
                let acquisition_cost = a
                    .acquisition_cost
                    .as_ref()
                    .and_then(|m| money(&mut v, "account.acquisition_cost", Some(m)));
                RawBody::Account {
                    name: a.name.clone(),
                    segment: a.segment.clone(),
                    plan: a.plan.clone(),
                    lifecycle: known(
                        &mut v,
                        "account.lifecycle",
                        a.lifecycle,
                        "TRIAL, ONBOARDING, ACTIVE, RENEWAL or CHURNED",
                        |w: v1::LifecycleStage| lifecycle_from_proto(w as i32),
                    ),
                    renewal_date: time(&mut v, "account.renewal_date", a.renewal_date.as_ref()),
                    seats: a.seats.map(i64::from),
                    csm_owner_email: a.csm_owner_email.clone(),
                    contact_emails: a.contact_emails.clone(),
                    acquisition_cost,
                }
            }
            Body::Session(x) => RawBody::Session {
                user_id: x.user_id.clone(),
                duration_seconds: x.duration_seconds,
            },
            Body::Action(x) => RawBody::Action {
                user_id: x.user_id.clone(),
                action_key: x.action_key.clone(),
                count: x.count,
            },
            Body::Ticket(x) => RawBody::Ticket {
                ticket_id: x.ticket_id.clone(),
                status: known(
                    &mut v,
                    "ticket.status",
                    x.status,
                    "OPENED, RESOLVED or REOPENED",
                    |w| match w {
                        v1::TicketStatus::Opened => Some(TicketStatus::Opened),
                        v1::TicketStatus::Resolved => Some(TicketStatus::Resolved),
                        v1::TicketStatus::Reopened => Some(TicketStatus::Reopened),
                        v1::TicketStatus::Unspecified => None,
                    },
                ),
                topics: x.topics.clone(),
                contacts_until_resolution: i64::from(x.contacts_until_resolution),
            },
            Body::Survey(x) => RawBody::Survey {
                kind: known(
                    &mut v,
                    "survey.kind",
                    x.kind,
                    "NPS, CSAT or CES",
                    |w| match w {
                        v1::SurveyKind::Nps => Some(SurveyKind::Nps),
                        v1::SurveyKind::Csat => Some(SurveyKind::Csat),
                        v1::SurveyKind::Ces => Some(SurveyKind::Ces),
                        v1::SurveyKind::Unspecified => None,
                    },
                ),
                scale: known(
                    &mut v,
                    "survey.scale",
                    x.scale,
                    "ZERO_TO_TEN, ONE_TO_FIVE, ONE_TO_SEVEN, ONE_TO_TEN, or UNSPECIFIED for the kind's default",
                    |w| match w {
                        v1::SurveyScale::ZeroToTen => Some(Scale::ZeroToTen),
                        v1::SurveyScale::OneToFive => Some(Scale::OneToFive),
                        v1::SurveyScale::OneToSeven => Some(Scale::OneToSeven),
                        v1::SurveyScale::OneToTen => Some(Scale::OneToTen),
                        v1::SurveyScale::Unspecified => None,
                    },
                ),
                score: i64::from(x.score),
                user_id: x.user_id.clone(),
                comment: x.comment.clone(),
            },
            Body::Subscription(x) => {
                let amount = money(&mut v, "subscription.amount", x.amount.as_ref());
                RawBody::Subscription {
                    amount: amount?,
                    interval: known(
                        &mut v,
                        "subscription.interval",
                        x.interval,
                        "MONTHLY or ANNUAL",
                        |w| match w {
                            v1::BillingInterval::Monthly => Some(BillingInterval::Monthly),
                            v1::BillingInterval::Annual => Some(BillingInterval::Annual),
                            v1::BillingInterval::Unspecified => None,
                        },
                    ),
                    churn_reason: known(
                        &mut v,
                        "subscription.churn_reason",
                        x.churn_reason,
                        "COMPETITOR, FREEMIUM, BUSINESS_CLOSED, PRICE or OTHER",
                        |w: v1::ChurnReason| churn_reason(w as i32),
                    ),
                    add_on: x.add_on,
                    opening: x.opening_balance,
                }
            }
            Body::Billing(x) => RawBody::Billing(known(
                &mut v,
                "billing.status",
                x.status,
                "CURRENT, OVERDUE, PAYMENT_FAILED or COLLECTIONS",
                |w| match w {
                    v1::BillingStatus::Current => Some(BillingStatus::Current),
                    v1::BillingStatus::Overdue => Some(BillingStatus::Overdue),
                    v1::BillingStatus::PaymentFailed => Some(BillingStatus::PaymentFailed),
                    v1::BillingStatus::Collections => Some(BillingStatus::Collections),
                    v1::BillingStatus::Unspecified => None,
                },
            )),
            Body::Renewal(x) => {
                let outcome = known(
                    &mut v,
                    "renewal.outcome",
                    x.outcome,
                    "DUE, RENEWED or NOT_RENEWED",
                    |w| match w {
                        v1::RenewalOutcome::Due => Some(RenewalOutcome::Due),
                        v1::RenewalOutcome::Renewed => Some(RenewalOutcome::Renewed),
                        v1::RenewalOutcome::NotRenewed => Some(RenewalOutcome::NotRenewed),
                        v1::RenewalOutcome::Unspecified => None,
                    },
                );
                // A malformed end is reported here (the domain's "is
                // required" then repeats it and is dropped); a missing one
                // by the domain, which requires it.
                let contract_end = time(&mut v, "renewal.contract_end", x.contract_end.as_ref());
                RawBody::Renewal {
                    outcome,
                    contract_end,
                }
            }
            Body::Trial(x) => RawBody::Trial(known(
                &mut v,
                "trial.event",
                x.event,
                "STARTED, CONVERTED or EXPIRED",
                |w| match w {
                    v1::TrialEvent::Started => Some(TrialEvent::Started),
                    v1::TrialEvent::Converted => Some(TrialEvent::Converted),
                    v1::TrialEvent::Expired => Some(TrialEvent::Expired),
                    v1::TrialEvent::Unspecified => None,
                },
            )),
            Body::Milestone(x) => RawBody::Milestone {
                key: x.milestone_key.clone(),
                achieved: x.achieved,
            },
            Body::Purchase(x) => {
                let amount = money(&mut v, "purchase.amount", x.amount.as_ref());
                RawBody::Purchase(amount?)
            }
            Body::Cost(x) => {
                let amount = money(&mut v, "cost.amount", x.amount.as_ref());
                let period = x
                    .period
                    .as_ref()
                    .and_then(|p| period_field(&mut v, "cost.period", p));
                RawBody::Cost {
                    kind: known(
                        &mut v,
                        "cost.kind",
                        x.kind,
                        "CUSTOMER_SUCCESS or ACQUISITION",
                        |w| match w {
                            v1::CostKind::CustomerSuccess => Some(CostKind::CustomerSuccess),
                            v1::CostKind::Acquisition => Some(CostKind::Acquisition),
                            v1::CostKind::Unspecified => None,
                        },
                    ),
                    amount: amount?,
                    period,
                }
            }
        })
    });
    let signal = RawSignal {
        event_id: s.event_id.clone(),
        account_id: s.account_id.clone(),
        occurred_at,
        body: body.flatten(),
    };
    (signal, v)
}

impl From<retain_domain::Violation> for v1::FieldViolation {
    fn from(v: retain_domain::Violation) -> Self {
        Self {
            field: v.field,
            description: v.description,
        }
    }
}

impl From<retain_domain::Account> for v1::Account {
    fn from(a: retain_domain::Account) -> Self {
        Self {
            account_id: a.account_id,
            name: a.name.unwrap_or_default(),
            segment: a.segment.unwrap_or_default(),
            plan: a.plan.unwrap_or_default(),
            csm_owner_email: a.csm_owner_email.unwrap_or_default(),
            contact_emails: a.contact_emails,
            seats: a.seats.map_or(0, |s| i32::try_from(s).unwrap_or(i32::MAX)),
            lifecycle: lifecycle_to_proto(a.lifecycle) as i32,
            renewal_date: a.renewal_date.map(|t| from_micros(t.micros())),
            acquisition_cost: a.acquisition_cost.map(money_to_proto),
            created_at: Some(from_micros(a.created_at.micros())),
            updated_at: Some(from_micros(a.updated_at.micros())),
        }
    }
}

/// An account's snapshot on the wire, with the account's identity and the
/// tenant's currency (the snapshot's MRR is in its minor units).
pub fn snapshot_to_proto(
    snap: &retain_domain::snapshot::AccountSnapshot,
    account: &retain_domain::Account,
    currency: Currency,
) -> v1::AccountMetricsSnapshot {
    v1::AccountMetricsSnapshot {
        account_id: account.account_id.clone(),
        segment: account.segment.clone().unwrap_or_default(),
        plan: account.plan.clone().unwrap_or_default(),
        as_of: Some(from_micros(snap.as_of.micros())),
        mrr: Some(money_to_proto(Money::new(snap.mrr_minor, currency))),
        // Usage is unset, not 0, for an account that never had a session.
        active_days_30d: snap
            .has_sessions
            .then(|| i32::try_from(snap.active_days_30d).unwrap_or(i32::MAX)),
        sessions_30d: snap
            .has_sessions
            .then(|| i64::try_from(snap.sessions_30d).unwrap_or(i64::MAX)),
        nps_mean: snap.nps_mean,
        tickets_opened_30d: Some(i32::try_from(snap.tickets_opened_30d).unwrap_or(i32::MAX)),
        ticket_topics_30d: snap
            .ticket_topics_30d
            .iter()
            .map(|(k, n)| (k.clone(), i32::try_from(*n).unwrap_or(i32::MAX)))
            .collect(),
        billing_status: snap.billing_status.map(|b| b.key().to_owned()),
        actions_30d: snap.actions_30d.clone().into_iter().collect(),
        milestones_achieved: snap.milestones_achieved.clone(),
        milestones_missing: snap.milestones_missing.clone(),
        onboarding_stuck: snap.onboarding_stuck,
        csm_owner_email: account.csm_owner_email.clone().unwrap_or_default(),
        account_name: account.name.clone().unwrap_or_default(),
        contact_emails: account.contact_emails.clone(),
    }
}
