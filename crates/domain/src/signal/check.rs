//! Validating a signal: the rules besides the signal ([`Rules`]), the
//! limits a client can rely on, and the one way from a [`RawSignal`] to a
//! [`Signal`] ([`validate`]; [`validate_stored`] for one read back from
//! storage).

use super::*;
use crate::ids::{AccountId, MAX_ACCOUNT_ID_LEN};
use crate::validation::{Violations, quote};

/// What validation needs to know besides the signal.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// Now.
    pub now: Timestamp,
    /// How far in the future `occurred_at` may be (clock skew).
    pub max_future_seconds: i64,
    /// How far in the past a live signal may be; `None` = no bound
    /// (backfill).
    pub max_past_seconds: Option<i64>,
    /// The tenant's currency.
    pub base_currency: Currency,
    /// The tenant's onboarding checklist.
    pub checklist: &'a [String],
}

/// Longest accepted event id, in bytes.
pub const MAX_EVENT_ID_LEN: usize = 128;
/// Most entries a list field (contact emails, ticket topics) may hold.
pub const MAX_LIST_LEN: usize = 100;
/// Largest count one product-action signal may carry.
pub const MAX_ACTION_COUNT: i64 = 1_000_000;

/// A scale's name in the API (`ONE_TO_FIVE`).
fn scale_name(scale: Scale) -> &'static str {
    match scale {
        Scale::ZeroToTen => "ZERO_TO_TEN",
        Scale::OneToFive => "ONE_TO_FIVE",
        Scale::OneToSeven => "ONE_TO_SEVEN",
        Scale::OneToTen => "ONE_TO_TEN",
    }
}

/// A survey kind's name in the API (`NPS`).
fn survey_kind_name(kind: SurveyKind) -> &'static str {
    match kind {
        SurveyKind::Nps => "NPS",
        SurveyKind::Csat => "CSAT",
        SurveyKind::Ces => "CES",
    }
}

/// Longest accepted session, in seconds.
pub const MAX_SESSION_SECONDS: i64 = DAY;

/// Largest money amount accepted, in minor units (10^14: a trillion in a
/// two-decimal currency), so sums over a portfolio cannot overflow.
pub const MAX_AMOUNT_MINOR: i64 = 100_000_000_000_000;

/// Whether `value` can be stored as text on every supported database:
/// PostgreSQL refuses U+0000 in text, so no backend may accept it.
pub fn storable(value: &str) -> bool {
    !value.contains('\0')
}

/// One line of text, by the rule every stored string follows
/// ([`crate::validation::check_text`]) — or, re-reading a signal stored
/// earlier, only the rules that held when it was accepted (no U+0000, the
/// length), so tightening the intake rules never drops stored history.
fn check_text(
    v: &mut Violations,
    field: &str,
    value: &str,
    (max, required): (usize, bool),
    stored: bool,
) {
    use crate::validation::Text;
    if !stored {
        crate::validation::check_text(v, field, value, Text::Line(max), required);
    } else if !storable(value) || value.len() > max || (required && value.trim().is_empty()) {
        crate::validation::check_text(v, field, value, Text::Prose(max), required);
    }
}

/// Free text (a survey comment) by the rule of every stored text — or,
/// re-reading a stored signal, the rules that held when it was accepted.
fn check_prose(v: &mut Violations, field: &str, value: &str, max: usize, stored: bool) {
    use crate::validation::Text;
    if !stored || !storable(value) || value.len() > max {
        crate::validation::check_text(v, field, value, Text::Prose(max), false);
    }
}

/// Longest survey comment accepted, in bytes.
pub const MAX_COMMENT_LEN: usize = crate::validation::MAX_PROSE_LEN;

fn check_money(v: &mut Violations, field: &str, m: &Money, rules: &Rules<'_>, min: i64) {
    if m.currency != rules.base_currency {
        v.push(
            format!("{field}.currency"),
            format!(
                "{} is not the tenant's currency {}",
                m.currency, rules.base_currency
            ),
        );
    }
    if m.minor < min {
        v.push(
            format!("{field}.amount_minor"),
            format!("{} must be at least {min}", m.minor),
        );
    } else if m.minor > MAX_AMOUNT_MINOR {
        v.push(
            format!("{field}.amount_minor"),
            format!("{} is over the limit of {MAX_AMOUNT_MINOR}", m.minor),
        );
    }
}

/// Validates one signal: the valid [`Signal`], or every violation, with
/// field paths relative to the signal (`survey.score`).
pub fn validate(s: &RawSignal, rules: &Rules<'_>) -> Result<Signal, Violations> {
    validate_with(s, rules, false)
}

/// Parses a signal that was stored after passing [`validate`]: the same
/// rules but the text rules added since (a control character in a name
/// accepted before them still reads back), so a stricter intake never
/// changes what history counts.
pub fn validate_stored(s: &RawSignal, rules: &Rules<'_>) -> Result<Signal, Violations> {
    validate_with(s, rules, true)
}

fn validate_with(s: &RawSignal, rules: &Rules<'_>, stored: bool) -> Result<Signal, Violations> {
    let mut v = Violations::new();
    check_text(
        &mut v,
        "event_id",
        &s.event_id,
        (MAX_EVENT_ID_LEN, true),
        stored,
    );
    let is_cost = matches!(s.body, Some(RawBody::Cost { .. }));
    if !(is_cost && s.account_id == PORTFOLIO)
        && let Err(e) = AccountId::parse(s.account_id.clone())
    {
        v.push("account_id", e.to_string());
    }
    match s.occurred_at {
        None => v.push("occurred_at", "is required"),
        Some(t) => {
            if t > rules.now.plus(rules.max_future_seconds) {
                v.push(
                    "occurred_at",
                    format!(
                        "{t} is more than {} s in the future",
                        rules.max_future_seconds
                    ),
                );
            }
            if let Some(max_past) = rules.max_past_seconds
                && t < rules.now.plus(max_past.saturating_neg())
            {
                v.push("occurred_at", format!("{t} is more than {} days in the past for a live signal; send it as a backfill", max_past / DAY));
            }
        }
    }
    let Some(body) = &s.body else {
        v.push("body", "is required: one of account, session, action, ticket, survey, subscription, billing, renewal, trial, milestone, purchase, cost");
        return Err(v);
    };
    let f = |name: &str| format!("{}.{name}", body.field());
    match body {
        RawBody::Account {
            name,
            segment,
            plan,
            seats,
            csm_owner_email,
            contact_emails,
            acquisition_cost,
            ..
        } => {
            for (field, value) in [("name", name), ("segment", segment), ("plan", plan)] {
                if let Some(value) = value {
                    check_text(&mut v, &f(field), value, (MAX_LABEL_LEN, false), stored);
                }
            }
            if seats.is_some_and(|n| n < 0) {
                v.push(f("seats"), "must not be negative");
            }
            if let Some(e) = csm_owner_email
                .as_deref()
                .filter(|e| !e.is_empty() && !crate::validation::is_email(e))
            {
                v.push(
                    f("csm_owner_email"),
                    format!("{} is not an email address", quote(e)),
                );
            }
            if contact_emails.len() > MAX_LIST_LEN {
                v.push(
                    f("contact_emails"),
                    format!(
                        "holds {} entries, the limit is {MAX_LIST_LEN}",
                        contact_emails.len()
                    ),
                );
            }
            for (i, e) in contact_emails.iter().enumerate().take(MAX_LIST_LEN) {
                if !crate::validation::is_email(e) {
                    v.push(
                        format!("account.contact_emails[{i}]"),
                        format!("{} is not an email address", quote(e)),
                    );
                }
            }
            if let Some(m) = acquisition_cost {
                check_money(&mut v, &f("acquisition_cost"), m, rules, 0);
            }
        }
        RawBody::Session {
            user_id,
            duration_seconds,
        } => {
            check_text(
                &mut v,
                &f("user_id"),
                user_id,
                (MAX_ACCOUNT_ID_LEN, true),
                stored,
            );
            if !(0..=MAX_SESSION_SECONDS).contains(duration_seconds) {
                v.push(
                    f("duration_seconds"),
                    format!("{duration_seconds} is outside 0–{MAX_SESSION_SECONDS}"),
                );
            }
        }
        RawBody::Action {
            user_id,
            action_key,
            count,
        } => {
            check_text(
                &mut v,
                &f("user_id"),
                user_id,
                (MAX_ACCOUNT_ID_LEN, true),
                stored,
            );
            check_text(&mut v, &f("action_key"), action_key, (64, true), stored);
            if !(1..=MAX_ACTION_COUNT).contains(count) {
                v.push(
                    f("count"),
                    format!("{count} is outside 1–{MAX_ACTION_COUNT}"),
                );
            }
        }
        RawBody::Ticket {
            ticket_id,
            status,
            topics,
            contacts_until_resolution,
        } => {
            check_text(&mut v, &f("ticket_id"), ticket_id, (128, true), stored);
            if status.is_none() {
                v.push(f("status"), "is required: opened, resolved or reopened");
            }
            if topics.len() > MAX_LIST_LEN {
                v.push(
                    f("topics"),
                    format!(
                        "holds {} entries, the limit is {MAX_LIST_LEN}",
                        topics.len()
                    ),
                );
            }
            for (i, t) in topics.iter().enumerate().take(MAX_LIST_LEN) {
                check_text(
                    &mut v,
                    &format!("ticket.topics[{i}]"),
                    t,
                    (64, true),
                    stored,
                );
            }
            if *contacts_until_resolution < 0 {
                v.push(f("contacts_until_resolution"), "must not be negative");
            } else if *status == Some(TicketStatus::Resolved) && *contacts_until_resolution == 0 {
                v.push(
                    f("contacts_until_resolution"),
                    "a resolved ticket needs at least 1 contact",
                );
            }
        }
        RawBody::Survey {
            kind,
            scale,
            score,
            user_id,
            comment,
        } => {
            check_text(
                &mut v,
                &f("user_id"),
                user_id,
                (MAX_ACCOUNT_ID_LEN, false),
                stored,
            );
            check_prose(&mut v, &f("comment"), comment, MAX_COMMENT_LEN, stored);
            match kind {
                None => v.push(f("kind"), "is required: nps, csat or ces"),
                Some(kind) => {
                    let scale = scale.unwrap_or(default_scale(*kind));
                    let allowed: &[Scale] = match kind {
                        SurveyKind::Nps => &[Scale::ZeroToTen],
                        SurveyKind::Csat => &[Scale::OneToFive, Scale::OneToTen],
                        SurveyKind::Ces => &[Scale::OneToFive, Scale::OneToSeven],
                    };
                    if !allowed.contains(&scale) {
                        v.push(
                            f("scale"),
                            format!(
                                "{} is not a scale for {}",
                                scale_name(scale),
                                survey_kind_name(*kind)
                            ),
                        );
                    } else {
                        let (lo, hi) = scale.bounds();
                        if *score < i64::from(lo) || *score > i64::from(hi) {
                            v.push(f("score"), format!("{score} is outside {lo}–{hi}"));
                        }
                    }
                }
            }
        }
        RawBody::Subscription {
            amount,
            interval,
            churn_reason,
            add_on,
            opening,
        } => {
            check_money(&mut v, &f("amount"), amount, rules, 0);
            if *opening && *add_on {
                v.push(
                    f("opening_balance"),
                    "an opening balance states the account's whole MRR; it cannot also be an add-on",
                );
            }
            if interval.is_none() {
                v.push(f("interval"), "is required: monthly or annual");
            }
            // docs/INGESTION.md: a positive annual amount whose monthly value rounds
            // to 0 would read as MRR 0, a churn nobody made.
            if *interval == Some(BillingInterval::Annual)
                && amount.minor > 0
                && monthly_mrr(amount.minor, BillingInterval::Annual) == 0
            {
                v.push(
                    f("amount.amount_minor"),
                    format!(
                        "annual amount {} is {}/12 a month, which rounds to 0 minor units and would count as a churn; the smallest annual amount is {MIN_ANNUAL_AMOUNT_MINOR} (send 0 with a churn reason to cancel)",
                        amount.minor, amount.minor
                    ),
                );
            }
            if amount.minor == 0 && churn_reason.is_none() {
                v.push(f("churn_reason"), "is required when the amount is 0 (competitor, freemium, business_closed, price, other)");
            }
        }
        RawBody::Billing(status) => {
            if status.is_none() {
                v.push(
                    f("status"),
                    "is required: current, overdue, payment_failed or collections",
                );
            }
        }
        RawBody::Renewal {
            outcome,
            contract_end,
        } => {
            if outcome.is_none() {
                v.push(f("outcome"), "is required: due, renewed or not_renewed");
            }
            if contract_end.is_none() {
                v.push(
                    f("contract_end"),
                    "is required: the end of the contract this renewal is about",
                );
            }
        }
        RawBody::Trial(event) => {
            if event.is_none() {
                v.push(f("event"), "is required: started, converted or expired");
            }
        }
        RawBody::Milestone { key, .. } => {
            if !rules.checklist.iter().any(|k| k == key) {
                v.push(
                    f("milestone_key"),
                    format!(
                        "{} is not in the onboarding checklist ({})",
                        quote(key),
                        rules.checklist.join(", ")
                    ),
                );
            }
        }
        RawBody::Purchase(amount) => check_money(&mut v, "purchase.amount", amount, rules, 1),
        RawBody::Cost {
            kind,
            amount,
            period,
        } => {
            if kind.is_none() {
                v.push(f("kind"), "is required: customer_success or acquisition");
            }
            check_money(&mut v, &f("amount"), amount, rules, 0);
            if period.is_none() {
                v.push(f("period"), "is required, with start before end");
            }
        }
    }
    if !v.is_empty() {
        return Err(v);
    }
    // Every check passed, so every field a valid signal needs is there.
    match (s.occurred_at, parse_body(body)) {
        (Some(occurred_at), Some(body)) => Ok(Signal {
            event_id: s.event_id.clone(),
            account_id: s.account_id.clone(),
            occurred_at,
            body,
        }),
        _ => {
            v.push("body", "is incomplete");
            Err(v)
        }
    }
}

/// The valid body of a raw body that passed [`validate`]'s checks; `None`
/// where a field a valid body needs is missing (which the checks report).
fn parse_body(body: &RawBody) -> Option<SignalBody> {
    Some(match body.clone() {
        RawBody::Account {
            name,
            segment,
            plan,
            lifecycle,
            renewal_date,
            seats,
            csm_owner_email,
            contact_emails,
            acquisition_cost,
        } => SignalBody::Account(AccountUpsert {
            name,
            segment,
            plan,
            lifecycle,
            renewal_date,
            seats,
            csm_owner_email,
            contact_emails,
            acquisition_cost,
        }),
        RawBody::Session {
            user_id,
            duration_seconds,
        } => SignalBody::Session {
            user_id,
            duration_seconds,
        },
        RawBody::Action {
            user_id,
            action_key,
            count,
        } => SignalBody::Action {
            user_id,
            action_key,
            count,
        },
        RawBody::Ticket {
            ticket_id,
            status,
            topics,
            contacts_until_resolution,
        } => SignalBody::Ticket {
            ticket_id,
            status: status?,
            topics,
            contacts_until_resolution,
        },
        RawBody::Survey {
            kind,
            scale,
            score,
            user_id,
            comment,
        } => {
            let kind = kind?;
            SignalBody::Survey {
                kind,
                scale: scale.unwrap_or(default_scale(kind)),
                score,
                user_id,
                comment,
            }
        }
        RawBody::Subscription {
            amount,
            interval,
            churn_reason,
            add_on,
            opening,
        } => SignalBody::Subscription {
            amount,
            interval: interval?,
            churn_reason,
            add_on,
            opening,
        },
        RawBody::Billing(status) => SignalBody::Billing(status?),
        RawBody::Renewal {
            outcome,
            contract_end,
        } => SignalBody::Renewal {
            outcome: outcome?,
            contract_end: contract_end?,
        },
        RawBody::Trial(event) => SignalBody::Trial(event?),
        RawBody::Milestone { key, achieved } => SignalBody::Milestone { key, achieved },
        RawBody::Purchase(amount) => SignalBody::Purchase(amount),
        RawBody::Cost {
            kind,
            amount,
            period,
        } => SignalBody::Cost {
            kind: kind?,
            amount,
            period: period?,
        },
    })
}
