//! Issue 9: one named test per defect the domain review found (D1–D9).
//! Each failed before its fix.
#![allow(clippy::unwrap_used)]

mod common;

use common::{change, churn, eur};
use retain_domain::health::{
    self, Band, BillingStatus, Dimension, HealthSnapshot, Metric, Normaliser, ScoringModel,
};
use retain_domain::kpi::revenue::{
    self, ChurnReason, MovementKind, Purchase, movements, purchase_rates, revenue_kpis,
};
use retain_domain::kpi::scorecard::{InsightInputs, insights};
use retain_domain::routing::{self, Rule, Sent};
use retain_domain::signal::{self, BillingInterval, RawBody, RawSignal, Rules};
use retain_domain::{
    Currency, Exact, Measure, Money, MoneyError, MoneyMeasure, Period, Ratio, Timestamp,
};

fn may() -> Period {
    Period::month(2024, 5)
}

fn keys(i: &InsightInputs) -> Vec<&'static str> {
    insights(i).iter().map(|i| i.key).collect()
}

/// D1: 1,000 accounts at 49.00, 7 churned in May, CS spend 3,500,000.00:
/// LTV 7,000.00, CRC 3,500.00, LTV:CRC exactly 2:1 — must warn.
#[test]
fn d1_ltv_to_crc_exactly_2_to_1_warns() {
    let mut changes: Vec<_> = (0..1000)
        .map(|i| change(&format!("a{i}"), Timestamp::from_ymd(2024, 4, 1), 4_900))
        .collect();
    changes.extend((0..7).map(|i| {
        churn(
            &format!("a{i}"),
            Timestamp::from_ymd(2024, 5, 10),
            ChurnReason::Price,
        )
    }));
    let k = revenue_kpis(&changes, may(), eur()).unwrap();
    let ltv = revenue::ltv(k.arpa, Ratio::ONE, k.logo_churn_rate());
    assert_eq!(ltv.minor, Exact::Value(Ratio::integer(700_000)), "7,000.00");
    let crc = revenue::crc(Money::new(350_000_000, eur()), k.start_cohort);
    let ltv_to_crc = revenue::ratio(ltv, crc).unwrap();
    assert_eq!(ltv_to_crc, Exact::Value(Ratio::integer(2)));
    let found = keys(&InsightInputs {
        ltv_to_cac: Exact::ratio(5, 1),
        ltv_to_crc,
        nrr: Measure::Value(100.0),
        net_mrr_churn: Measure::Value(0.0),
    });
    assert_eq!(found, ["ltv_to_crc_at_or_below_2"]);
}

/// D1: 100 accounts at 75.00, 7 churned, 7 new at 75.00, acquisition spend
/// 2,500.00: LTV:CAC exactly 3:1 — must not warn.
#[test]
fn d1_ltv_to_cac_exactly_3_to_1_does_not_warn() {
    let mut changes: Vec<_> = (0..100)
        .map(|i| change(&format!("a{i}"), Timestamp::from_ymd(2024, 4, 1), 7_500))
        .collect();
    changes.extend((0..7).map(|i| {
        churn(
            &format!("a{i}"),
            Timestamp::from_ymd(2024, 5, 10),
            ChurnReason::Price,
        )
    }));
    changes
        .extend((0..7).map(|i| change(&format!("n{i}"), Timestamp::from_ymd(2024, 5, 12), 7_500)));
    let k = revenue_kpis(&changes, may(), eur()).unwrap();
    assert_eq!(k.new_accounts, 7);
    let ltv = revenue::ltv(k.arpa, Ratio::ONE, k.logo_churn_rate());
    let cac = revenue::cac(Money::new(250_000, eur()), k.new_accounts);
    let ltv_to_cac = revenue::ratio(ltv, cac).unwrap();
    assert_eq!(ltv_to_cac, Exact::Value(Ratio::integer(3)));
    let found = keys(&InsightInputs {
        ltv_to_cac,
        ltv_to_crc: Exact::ratio(5, 1),
        nrr: Measure::Value(100.0),
        net_mrr_churn: Measure::Value(0.0),
    });
    assert!(found.is_empty(), "{found:?}");
}

/// D2: May has 31 days; 10 customers × 3 purchases × 50 over 24 months is 3,600.
#[test]
fn d2_clv_counts_calendar_months() {
    let purchases: Vec<_> = (0..30)
        .map(|i| Purchase {
            account: format!("c{}", i % 10),
            at: Timestamp::from_ymd(2024, 5, 1 + i / 10),
            amount: Money::new(50, eur()),
        })
        .collect();
    let (avg, per_month) = purchase_rates(&purchases, may(), eur()).unwrap();
    assert_eq!(per_month, Exact::ratio(3, 1));
    let clv = revenue::clv(avg, per_month, Exact::ratio(24, 1));
    assert_eq!(clv.minor, Exact::Value(Ratio::integer(3600)));
    assert_eq!(clv.to_measure(), Measure::Value(3600.0));
}

/// D9: money never mixes currencies: purchases, and the LTV ratios whose
/// costs now carry their currency.
#[test]
fn d9_money_inputs_carry_their_currency() {
    let usd = Currency::parse("USD").unwrap();
    let purchases = [
        Purchase {
            account: "c1".into(),
            at: Timestamp::from_ymd(2024, 5, 2),
            amount: Money::new(50, eur()),
        },
        Purchase {
            account: "c2".into(),
            at: Timestamp::from_ymd(2024, 5, 3),
            amount: Money::new(50, usd),
        },
    ];
    assert_eq!(
        purchase_rates(&purchases, may(), eur()),
        Err(MoneyError::CurrencyMismatch(eur(), usd))
    );
    assert!(purchase_rates(&purchases[..1], may(), eur()).is_ok());
    let ltv = MoneyMeasure::ratio(eur(), 700_000, 1);
    let crc = revenue::crc(Money::new(350_000, usd), 1);
    assert_eq!(crc.currency, usd);
    assert_eq!(
        revenue::ratio(ltv, crc),
        Err(MoneyError::CurrencyMismatch(eur(), usd))
    );
    let cac = revenue::cac(Money::new(350_000, eur()), 1);
    assert_eq!(revenue::ratio(ltv, cac), Ok(Exact::ratio(2, 1)));
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
    let changes = vec![
        change("a", Timestamp::from_ymd(2024, 4, 1), 10_000),
        up,
        cancel,
    ];
    let kinds: Vec<_> = movements(&changes, eur())
        .unwrap()
        .into_iter()
        .map(|m| m.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            MovementKind::New,
            MovementKind::Expansion,
            MovementKind::Churn
        ]
    );
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
    let history = [Sent {
        rule: Rule::BandRed,
        at: t,
    }];
    assert_eq!(
        routing::cooldown(&history, Rule::BandRed, t.plus(-3_600), week),
        Some(t.plus(week))
    );
    assert_eq!(
        routing::cooldown(&history, Rule::BandRed, t.plus(-week), week),
        None,
        "a full cooldown apart"
    );
}

fn with_actions() -> ScoringModel {
    let mut m = ScoringModel {
        version: 2,
        ..Default::default()
    };
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

/// D5: no actions in 30 days is data (sub-score 0), so one export can only
/// raise the score.
#[test]
fn d5_using_the_product_never_lowers_the_score() {
    let model = with_actions();
    assert!(model.validate().is_ok());
    let idle = HealthSnapshot {
        active_days_30d: Some(20.0),
        nps_mean: Some(10.0),
        tickets_opened_30d: Some(0.0),
        billing_status: Some(BillingStatus::Current),
        actions_30d: Some(vec![]),
        ..Default::default()
    };
    let busy = HealthSnapshot {
        actions_30d: Some(vec![("export_report".into(), 1.0)]),
        ..idle.clone()
    };
    let a = health::score(&model, &idle, None).unwrap();
    let b = health::score(&model, &busy, None).unwrap();
    assert_eq!((a.score, b.score), (80.0, 82.0));
    assert_eq!(a.missing().count(), 0, "no actions is not missing data");
    let unmeasured = HealthSnapshot {
        actions_30d: None,
        ..idle
    };
    let c = health::score(&model, &unmeasured, None).unwrap();
    assert_eq!(
        (c.score, c.missing().collect::<Vec<_>>()),
        (100.0, vec![4]),
        "not measured: weight redistributed"
    );
}

/// D6: a NaN input is missing data, never a Thriving score.
#[test]
fn d6_non_finite_inputs_are_missing_not_thriving() {
    let model = ScoringModel::default();
    let snap = HealthSnapshot {
        active_days_30d: Some(f64::NAN),
        nps_mean: Some(f64::INFINITY),
        tickets_opened_30d: Some(3.0),
        billing_status: Some(BillingStatus::Collections),
        ..Default::default()
    };
    let s = health::score(&model, &snap, None).unwrap();
    assert!(s.score.is_finite());
    assert_eq!((s.score, s.band), (0.0, Band::Red));
    assert_eq!(s.missing().collect::<Vec<_>>(), [0, 1]);
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
    let sub = |minor: i64, reason| RawSignal {
        event_id: "e1".into(),
        account_id: "acme".into(),
        occurred_at: Some(Timestamp::from_ymd(2024, 5, 31)),
        body: Some(RawBody::Subscription {
            amount: Money::new(minor, eur()),
            interval: Some(BillingInterval::Annual),
            churn_reason: reason,
            add_on: false,
            opening: false,
        }),
    };
    for tiny in 1..=5 {
        let err = signal::validate(&sub(tiny, None), &r).unwrap_err();
        assert_eq!(
            err.first_field(),
            Some("subscription.amount.amount_minor"),
            "{tiny}: {err}"
        );
        assert!(err.to_string().contains("rounds to 0"), "{err}");
    }
    assert!(
        signal::validate(&sub(6, None), &r).is_ok(),
        "6 / 12 rounds to 1"
    );
    assert!(
        signal::validate(&sub(0, Some(ChurnReason::Price)), &r).is_ok(),
        "a real churn"
    );
}

/// D8: re-scoring the same inputs with a reordered model is no change: the
/// delta is 0 and no dimension is named; across model versions the score
/// says the model changed instead of naming a mover.
#[test]
fn d8_reordered_model_names_no_mover() {
    let model = ScoringModel::default();
    let snap = HealthSnapshot {
        active_days_30d: Some(16.0),
        nps_mean: Some(7.0),
        tickets_opened_30d: Some(1.0),
        billing_status: Some(BillingStatus::Overdue),
        ..Default::default()
    };
    let first = health::score(&model, &snap, None).unwrap();
    let mut reordered = model.clone();
    reordered.dimensions.reverse();
    let again = health::score(&reordered, &snap, Some(&first.as_previous(&model))).unwrap();
    assert_eq!(again.delta, Some(0.0));
    assert_eq!(again.top_mover, None);
    assert!(!again.model_changed);
    // A new version (reordered, one weight moved): the score says the model
    // changed instead of naming a mover.
    let mut v2 = reordered.clone();
    v2.version = 2;
    v2.dimensions[0].weight = 35.0; // billing 30 → 35
    v2.dimensions[3].weight = 35.0; // usage 40 → 35
    assert!(v2.validate().is_ok());
    let across = health::score(&v2, &snap, Some(&first.as_previous(&model))).unwrap();
    assert_ne!(across.delta, Some(0.0));
    assert_eq!(
        (across.top_mover, across.model_changed, across.model_version),
        (None, true, 2)
    );
    // Within one version, movers are matched by key whatever the order.
    let worse = HealthSnapshot {
        tickets_opened_30d: Some(3.0),
        ..snap
    };
    let moved = health::score(&reordered, &worse, Some(&again.as_previous(&reordered))).unwrap();
    assert_eq!(
        moved
            .top_mover
            .map(|i| reordered.dimensions[i].key.as_str()),
        Some("support_tickets")
    );
}
