//! Conversions between the wire types (`v1`) and the domain types.
//!
//! Proto → domain is where wire-level problems become field violations: a
//! missing `Money`, a currency that is not ISO-4217, a timestamp with
//! out-of-range nanoseconds. Enum values the server does not know map to
//! `None` ("unspecified"), which [`retain_domain::signal::validate`] then
//! reports with the accepted values. Paths are relative to the signal
//! (`subscription.amount.currency`), like the domain's own.

use retain_domain::health::BillingStatus;
use retain_domain::kpi::experience::Scale;
use retain_domain::kpi::revenue::ChurnReason;
use retain_domain::signal::{
    BillingInterval, CostKind, Lifecycle, RenewalOutcome, Signal, SignalBody, SurveyKind,
    TicketStatus, TrialEvent,
};
use retain_domain::{Currency, Money, Period, Timestamp, Violations};

use crate::v1;

/// A wire timestamp as a domain timestamp (microseconds, nanoseconds
/// truncated); `None` when the nanoseconds are outside 0–999,999,999.
pub fn timestamp(t: &prost_types::Timestamp) -> Option<Timestamp> {
    (0..1_000_000_000)
        .contains(&t.nanos)
        .then(|| Timestamp::from_micros(micros(t)))
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

fn time(v: &mut Violations, field: &str, t: Option<&prost_types::Timestamp>) -> Option<Timestamp> {
    let t = t?;
    let out = timestamp(t);
    if out.is_none() {
        v.push(field, format!("nanos {} is outside 0–999,999,999", t.nanos));
    }
    out
}

fn churn_reason(value: i32) -> Option<ChurnReason> {
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
pub fn signal_from_proto(s: &v1::Signal) -> Result<Signal, Violations> {
    use v1::signal::Body;
    let mut v = Violations::new();
    let occurred_at = time(&mut v, "occurred_at", s.occurred_at.as_ref());
    // `None` from the closure: an amount did not convert (its violation is
    // recorded), so there is no body to hand to the domain.
    let body = s.body.as_ref().map(|b| -> Option<SignalBody> {
        Some(match b {
            Body::Account(a) => {
                let acquisition_cost = a
                    .acquisition_cost
                    .as_ref()
                    .and_then(|m| money(&mut v, "account.acquisition_cost", Some(m)));
                SignalBody::Account {
                    name: a.name.clone(),
                    segment: a.segment.clone(),
                    plan: a.plan.clone(),
                    lifecycle: lifecycle_from_proto(a.lifecycle),
                    renewal_date: time(&mut v, "account.renewal_date", a.renewal_date.as_ref()),
                    seats: a.seats.map(i64::from),
                    csm_owner_email: a.csm_owner_email.clone(),
                    contact_emails: a.contact_emails.clone(),
                    acquisition_cost,
                }
            }
            Body::Session(x) => SignalBody::Session {
                user_id: x.user_id.clone(),
                duration_seconds: x.duration_seconds,
            },
            Body::Action(x) => SignalBody::Action {
                user_id: x.user_id.clone(),
                action_key: x.action_key.clone(),
                count: x.count,
            },
            Body::Ticket(x) => SignalBody::Ticket {
                ticket_id: x.ticket_id.clone(),
                status: match v1::TicketStatus::try_from(x.status) {
                    Ok(v1::TicketStatus::Opened) => Some(TicketStatus::Opened),
                    Ok(v1::TicketStatus::Resolved) => Some(TicketStatus::Resolved),
                    Ok(v1::TicketStatus::Reopened) => Some(TicketStatus::Reopened),
                    _ => None,
                },
                topics: x.topics.clone(),
                contacts_until_resolution: i64::from(x.contacts_until_resolution),
            },
            Body::Survey(x) => SignalBody::Survey {
                kind: match v1::SurveyKind::try_from(x.kind) {
                    Ok(v1::SurveyKind::Nps) => Some(SurveyKind::Nps),
                    Ok(v1::SurveyKind::Csat) => Some(SurveyKind::Csat),
                    Ok(v1::SurveyKind::Ces) => Some(SurveyKind::Ces),
                    _ => None,
                },
                scale: match v1::SurveyScale::try_from(x.scale) {
                    Ok(v1::SurveyScale::ZeroToTen) => Some(Scale::ZeroToTen),
                    Ok(v1::SurveyScale::OneToFive) => Some(Scale::OneToFive),
                    Ok(v1::SurveyScale::OneToSeven) => Some(Scale::OneToSeven),
                    Ok(v1::SurveyScale::OneToTen) => Some(Scale::OneToTen),
                    _ => None,
                },
                score: i64::from(x.score),
                user_id: x.user_id.clone(),
            },
            Body::Subscription(x) => {
                let amount = money(&mut v, "subscription.amount", x.amount.as_ref());
                SignalBody::Subscription {
                    amount: amount?,
                    interval: match v1::BillingInterval::try_from(x.interval) {
                        Ok(v1::BillingInterval::Monthly) => Some(BillingInterval::Monthly),
                        Ok(v1::BillingInterval::Annual) => Some(BillingInterval::Annual),
                        _ => None,
                    },
                    churn_reason: churn_reason(x.churn_reason),
                    add_on: x.add_on,
                }
            }
            Body::Billing(x) => SignalBody::Billing(match v1::BillingStatus::try_from(x.status) {
                Ok(v1::BillingStatus::Current) => Some(BillingStatus::Current),
                Ok(v1::BillingStatus::Overdue) => Some(BillingStatus::Overdue),
                Ok(v1::BillingStatus::PaymentFailed) => Some(BillingStatus::PaymentFailed),
                Ok(v1::BillingStatus::Collections) => Some(BillingStatus::Collections),
                _ => None,
            }),
            Body::Renewal(x) => {
                SignalBody::Renewal(match v1::RenewalOutcome::try_from(x.outcome) {
                    Ok(v1::RenewalOutcome::Due) => Some(RenewalOutcome::Due),
                    Ok(v1::RenewalOutcome::Renewed) => Some(RenewalOutcome::Renewed),
                    Ok(v1::RenewalOutcome::NotRenewed) => Some(RenewalOutcome::NotRenewed),
                    _ => None,
                })
            }
            Body::Trial(x) => SignalBody::Trial(match v1::TrialEvent::try_from(x.event) {
                Ok(v1::TrialEvent::Started) => Some(TrialEvent::Started),
                Ok(v1::TrialEvent::Converted) => Some(TrialEvent::Converted),
                Ok(v1::TrialEvent::Expired) => Some(TrialEvent::Expired),
                _ => None,
            }),
            Body::Milestone(x) => SignalBody::Milestone {
                key: x.milestone_key.clone(),
                achieved: x.achieved,
            },
            Body::Purchase(x) => {
                let amount = money(&mut v, "purchase.amount", x.amount.as_ref());
                SignalBody::Purchase(amount?)
            }
            Body::Cost(x) => {
                let amount = money(&mut v, "cost.amount", x.amount.as_ref());
                let period = x.period.as_ref().and_then(|p| {
                    let start = time(&mut v, "cost.period.start", p.start.as_ref());
                    let end = time(&mut v, "cost.period.end", p.end.as_ref());
                    Period::new(start?, end?).ok()
                });
                SignalBody::Cost {
                    kind: match v1::CostKind::try_from(x.kind) {
                        Ok(v1::CostKind::CustomerSuccess) => Some(CostKind::CustomerSuccess),
                        Ok(v1::CostKind::Acquisition) => Some(CostKind::Acquisition),
                        _ => None,
                    },
                    amount: amount?,
                    period,
                }
            }
        })
    });
    let body = match body {
        Some(None) => return Err(v),
        other => other.flatten(),
    };
    let signal = Signal {
        event_id: s.event_id.clone(),
        account_id: s.account_id.clone(),
        occurred_at,
        body,
    };
    v.into_result(signal)
}

impl From<retain_domain::Violation> for v1::FieldViolation {
    fn from(v: retain_domain::Violation) -> Self {
        Self {
            field: v.field,
            description: v.description,
        }
    }
}
