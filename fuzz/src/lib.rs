//! What the fuzz targets share: the fixed rules a tenant's signals are
//! validated against (base currency EUR, the default onboarding checklist,
//! a fixed "now"), and the invariants every valid signal must keep.

use retain_domain::signal::{self, Mode, Rules, SignalKind};
use retain_domain::{Currency, Timestamp};
use retain_proto::{convert, v1};

/// The fixed "now" of every run: 2025-06-01T00:00:00Z.
pub fn now() -> Timestamp {
    Timestamp::from_ymd(2025, 6, 1)
}

/// The runtime's default onboarding checklist
/// (`retain_runtime::config::TenantSettings::default`), written out so the
/// targets need not build the runtime.
pub const CHECKLIST: [&str; 5] = [
    "account_created",
    "data_source_connected",
    "teammate_invited",
    "first_report_created",
    "integration_enabled",
];

/// The ingestion service's default rules for `mode` over `checklist`:
/// 300 s of clock skew, LIVE signals at most 30 days old, EUR.
pub fn rules(mode: Mode, checklist: &[String]) -> Rules<'_> {
    Rules {
        now: now(),
        max_future_seconds: 300,
        max_past_seconds: (mode == Mode::Live).then_some(30 * retain_domain::time::DAY),
        base_currency: Currency::parse("EUR").expect("EUR is a currency"),
        checklist,
    }
}

/// The checklist as the service holds it.
pub fn checklist() -> Vec<String> {
    CHECKLIST.map(String::from).to_vec()
}

/// Converts and validates `wire` as the ingestion service does; for a
/// valid signal, asserts what storage and the KPIs rely on.
pub fn check(wire: &v1::Signal, rules: &Rules<'_>) -> Option<signal::Signal> {
    let raw = convert::signal_from_proto(wire).ok()?;
    let valid = signal::validate(&raw, rules).ok()?;
    invariants(wire, &valid);
    Some(valid)
}

/// First timestamp past the documented window (2200-01-01T00:00:00Z).
pub fn window_end() -> Timestamp {
    Timestamp::from_ymd(2200, 1, 1)
}

/// The largest accepted amount, in minor units (10^14).
pub const MAX_AMOUNT_MINOR: i64 = 100_000_000_000_000;

/// What must hold of every signal validation lets through.
///
/// # Panics
/// When one does not hold: that is what the fuzzer looks for.
pub fn invariants(wire: &v1::Signal, valid: &signal::Signal) {
    // The stored kind code reads back as the same kind, and it is the
    // kind of the wire body.
    let kind = valid.body.kind();
    assert_eq!(SignalKind::from_code(kind.code()), Some(kind));
    let body = wire.body.as_ref().expect("a valid signal has a body");
    assert_eq!(convert::kind_of(body), kind);
    // Ids are what was sent; time is the wire time at storage precision.
    assert_eq!(valid.event_id, wire.event_id);
    assert_eq!(valid.account_id, wire.account_id);
    let at = wire
        .occurred_at
        .as_ref()
        .expect("a valid signal has a time");
    assert_eq!(valid.occurred_at.micros(), convert::micros(at));
    // Nothing storage cannot store: no NUL in any text, every time inside
    // the window with its nanoseconds in range, every amount bounded.
    for text in texts(wire) {
        assert!(!text.contains('\0'), "a valid signal holds NUL: {text:?}");
        // One rule for stored text: only a comment's line breaks and tabs.
        let comment = matches!(&wire.body, Some(v1::signal::Body::Survey(x)) if x.comment == text);
        assert!(
            !text.chars().any(|c| c.is_control() && !(comment && matches!(c, '\n' | '\r' | '\t'))),
            "a valid signal holds a control character: {text:?}"
        );
    }
    for t in times(wire) {
        assert!((0..1_000_000_000).contains(&t.nanos), "nanos {t:?}");
        let us = convert::micros(t);
        assert!(
            us >= 0 && us < window_end().micros(),
            "outside the window: {t:?}"
        );
    }
    for m in amounts(wire) {
        assert!(m.amount_minor <= MAX_AMOUNT_MINOR, "amount {m:?}");
        assert!(!m.currency.contains('\0'), "currency {m:?}");
    }
    // Validation is a function: the same input gives the same signal, and
    // the signal survives the wire round trip the store makes (payload).
    let again =
        <v1::Signal as prost::Message>::decode(prost::Message::encode_to_vec(wire).as_slice())
            .expect("an encoded signal decodes");
    assert_eq!(&again, wire);
}

/// Every text field of a wire signal.
pub fn texts(s: &v1::Signal) -> Vec<&str> {
    use v1::signal::Body;
    let mut out = vec![s.event_id.as_str(), s.account_id.as_str()];
    match &s.body {
        Some(Body::Account(a)) => {
            out.extend(
                [&a.name, &a.segment, &a.plan, &a.csm_owner_email]
                    .into_iter()
                    .flatten()
                    .map(String::as_str),
            );
            out.extend(a.contact_emails.iter().map(String::as_str));
        }
        Some(Body::Session(x)) => out.push(&x.user_id),
        Some(Body::Action(x)) => out.extend([x.user_id.as_str(), x.action_key.as_str()]),
        Some(Body::Ticket(x)) => {
            out.push(&x.ticket_id);
            out.extend(x.topics.iter().map(String::as_str));
        }
        Some(Body::Survey(x)) => out.extend([x.user_id.as_str(), x.comment.as_str()]),
        Some(Body::Milestone(x)) => out.extend([x.milestone_key.as_str(), x.user_id.as_str()]),
        _ => {}
    }
    out
}

/// Every timestamp of a wire signal.
pub fn times(s: &v1::Signal) -> Vec<&prost_types::Timestamp> {
    use v1::signal::Body;
    let mut out: Vec<&prost_types::Timestamp> = s.occurred_at.iter().collect();
    match &s.body {
        Some(Body::Account(a)) => out.extend(a.renewal_date.iter()),
        Some(Body::Renewal(r)) => out.extend(r.contract_end.iter()),
        Some(Body::Cost(c)) => {
            if let Some(p) = &c.period {
                out.extend(p.start.iter().chain(p.end.iter()));
            }
        }
        _ => {}
    }
    out
}

/// Every amount of a wire signal.
pub fn amounts(s: &v1::Signal) -> Vec<&v1::Money> {
    use v1::signal::Body;
    match &s.body {
        Some(Body::Account(a)) => a.acquisition_cost.iter().collect(),
        Some(Body::Subscription(x)) => x.amount.iter().collect(),
        Some(Body::Purchase(x)) => x.amount.iter().collect(),
        Some(Body::Cost(x)) => x.amount.iter().collect(),
        _ => Vec::new(),
    }
}
