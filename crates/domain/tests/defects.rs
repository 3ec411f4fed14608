//! Issue 9: one named test per defect the domain review found (D1–D9).
//! Each failed before its fix.
#![allow(clippy::unwrap_used)]

mod common;

use common::{change, churn, eur};
use retain_domain::health::{self, Band, BillingStatus, Dimension, HealthSnapshot, Metric, Normaliser, ScoringModel};
use retain_domain::kpi::revenue::{self, ChurnReason, MovementKind, Purchase, movements, purchase_rates, revenue_kpis};
use retain_domain::kpi::scorecard::{InsightInputs, insights};
use retain_domain::routing::{self, Rule, Sent};
use retain_domain::signal::{self, BillingInterval, Rules, Signal, SignalBody};
use retain_domain::{Measure, Money, Period, Timestamp};

fn may() -> Period {
    Period::month(2024, 5)
}

fn keys(i: &InsightInputs) -> Vec<&'static str> {
    insights(i).iter().map(|i| i.key).collect()
}

/// The domain timestamp of 2024-05-15T12:00:00 plus `ms` milliseconds.
fn noon_plus_ms(ms: i64) -> Timestamp {
    Timestamp::from_ymd_hms(2024, 5, 15, 12, 0, 0).plus_micros(ms * 1_000)
}

/// D3: an upgrade at 12:00:00.1 (`evt-9`) then a cancellation at
/// 12:00:00.9 (`evt-10`) is one expansion and one churn, end MRR 0.
#[test]
fn d3_sub_second_order_is_kept() {
    let mut up = change("a", noon_plus_ms(100), 15_000);
    up.seq = "evt-9".into();
    let mut cancel = churn("a", noon_plus_ms(900), ChurnReason::Price);
    cancel.seq = "evt-10".into();
    let changes = vec![change("a", Timestamp::from_ymd(2024, 4, 1), 10_000), up, cancel];
    let kinds: Vec<_> = movements(&changes, eur()).unwrap().into_iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [MovementKind::New, MovementKind::Expansion, MovementKind::Churn]);
    let k = revenue_kpis(&changes, may(), eur()).unwrap();
    assert_eq!(k.mrr.minor, 0);
    assert_eq!(k.churned_accounts, 1);
    assert_eq!(k.bridge.reactivation.minor, 0);
    assert_eq!(k.nrr, Measure::Value(0.0));
}

/// D4: a Red trigger arriving late (T − 1 h) after one at T is inside the
/// 7-day cooldown too.
#[test]
fn d4_cooldown_suppresses_a_late_trigger_before_the_sent_one() {
    let t = Timestamp::from_ymd(2024, 5, 15);
    let week = 7 * 86_400;
    let history = [Sent { rule: Rule::BandRed, at: t }];
    assert_eq!(routing::cooldown(&history, Rule::BandRed, t.plus(-3_600), week), Some(t.plus(week)));
    assert_eq!(routing::cooldown(&history, Rule::BandRed, t.plus(-week), week), None, "a full cooldown apart");
}

fn with_actions() -> ScoringModel {
    let mut m = ScoringModel::default();
    m.version = 2;
    m.dimensions[0].weight = 30.0;
    m.dimensions[3].weight = 20.0;
    m.dimensions.push(Dimension {
        key: "key_actions".into(),
        weight: 20.0,
        metric: Metric::Actions30d,
        normaliser: Normaliser::ActionImpact {
            impacts: vec![("export_report".into(), 10.0)],
            cap: 100.0,
        },
    });
    m
}

/// D7: an annual amount whose monthly value rounds to 0 is refused, never
/// booked as a churn.
#[test]
fn d7_tiny_annual_amounts_are_rejected_not_churned() {
    let r = Rules {
        now: Timestamp::from_ymd(2024, 6, 1),
        max_future_seconds: 300,
        max_past_seconds: None,
        base_currency: eur(),
        checklist: &[],
    };
    let sub = |minor: i64, reason| Signal {
        event_id: "e1".into(),
        account_id: "acme".into(),
        occurred_at: Some(Timestamp::from_ymd(2024, 5, 31)),
        body: Some(SignalBody::Subscription {
            amount: Money::new(minor, eur()),
            interval: Some(BillingInterval::Annual),
            churn_reason: reason,
            add_on: false,
        }),
    };
    for tiny in 1..=5 {
        let err = signal::validate(&sub(tiny, None), &r).unwrap_err();
        assert_eq!(err.first_field(), Some("subscription.amount.amount_minor"), "{tiny}: {err}");
        assert!(err.to_string().contains("rounds to 0"), "{err}");
    }
    assert!(signal::validate(&sub(6, None), &r).is_ok(), "6 / 12 rounds to 1");
    assert!(signal::validate(&sub(0, Some(ChurnReason::Price)), &r).is_ok(), "a real churn");
}