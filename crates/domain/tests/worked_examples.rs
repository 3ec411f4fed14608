//! The worked examples of docs/KPIS.md ("Worked examples"), the B2B health
//! example among them, each a named test.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::{change, churn, eur};
use retain_domain::health::{self, Band, BillingStatus, HealthSnapshot, ScoringModel};
use retain_domain::kpi::adoption::{TrialFact, trial_to_paid};
use retain_domain::kpi::experience::{CsatThresholds, Scale, csat, nps};
use retain_domain::kpi::revenue::{self, ChurnReason, Purchase, clv, purchase_rates, revenue_kpis};
use retain_domain::kpi::scorecard::{InsightInputs, insights};
use retain_domain::routing::{
    self, AccountContext, ActionSpec, Planned, Priority, RoutingPolicy, Rule, RuleSpec, Trigger,
};
use retain_domain::{Exact, Measure, Money, MoneyMeasure, Period, Ratio, Timestamp};

fn may() -> Period {
    Period::month(2024, 5)
}

#[test]
fn churn_1000_customers_64_churned_in_may_is_6_4_percent() {
    let mut changes: Vec<_> = (0..1000)
        .map(|i| change(&format!("a{i}"), Timestamp::from_ymd(2024, 4, 1), 10_000))
        .collect();
    changes.extend((0..64).map(|i| {
        churn(
            &format!("a{i}"),
            Timestamp::from_ymd(2024, 5, 10),
            ChurnReason::Competitor,
        )
    }));
    let k = revenue_kpis(&changes, may(), eur()).unwrap();
    assert_eq!(k.start_cohort, 1000);
    assert_eq!(k.churned_accounts, 64);
    assert_eq!(k.logo_churn, Measure::Value(6.4));
    assert_eq!(k.churn_by_reason.get(&ChurnReason::Competitor), Some(&64));
}

#[test]
fn mrr_1000_paying_customers_at_arpa_750_is_750_000() {
    // 750.00 per account, in cents.
    let changes: Vec<_> = (0..1000)
        .map(|i| change(&format!("a{i}"), Timestamp::from_ymd(2024, 4, 1), 75_000))
        .collect();
    let k = revenue_kpis(&changes, may(), eur()).unwrap();
    assert_eq!(k.mrr, Money::new(75_000_000, eur()), "750,000.00");
    assert_eq!(k.paying_accounts, 1000);
    assert_eq!(k.arpa.minor, Exact::Value(Ratio::integer(75_000)));
    assert_eq!(
        k.arpa.minor * Exact::ratio(i128::from(k.paying_accounts), 1),
        Exact::ratio(i128::from(k.mrr.minor), 1),
        "MRR = paying × ARPA"
    );
}

#[test]
fn clv_50_per_purchase_3_a_month_24_months_is_3600() {
    assert_eq!(
        clv(
            MoneyMeasure::ratio(eur(), 50, 1),
            Exact::ratio(3, 1),
            Exact::ratio(24, 1)
        )
        .minor,
        Exact::Value(Ratio::integer(3600))
    );
    // The same from raw purchases: 10 customers, 3 purchases of 50 each in a 30-day month.
    let month = Period::new(
        Timestamp::from_ymd(2024, 4, 1),
        Timestamp::from_ymd(2024, 5, 1),
    )
    .unwrap();
    let purchases: Vec<_> = (0..30)
        .map(|i| Purchase {
            account: format!("c{}", i % 10),
            at: Timestamp::from_ymd(2024, 4, 1 + i / 10),
            amount: Money::new(50, eur()),
        })
        .collect();
    let (avg, per_month) = purchase_rates(&purchases, month, eur()).unwrap();
    assert_eq!(
        clv(avg, per_month, Exact::ratio(24, 1)).to_measure(),
        Measure::Value(3600.0)
    );
}

#[test]
fn csat_40_positive_of_50_is_80_percent() {
    let mut answers = vec![(Scale::OneToFive, 5u8); 40];
    answers.extend(vec![(Scale::OneToFive, 2u8); 10]);
    assert_eq!(
        csat(&answers, CsatThresholds::default()),
        Measure::Value(80.0)
    );
}

#[test]
fn trial_to_paid_15_percent_overall_25_percent_for_agencies() {
    let at = Timestamp::from_ymd(2024, 5, 3);
    let trial = |i: usize, segment: &str, converts: bool| TrialFact {
        account: format!("t{i}"),
        segment: segment.into(),
        started_at: at,
        converted_at: converts.then(|| at.plus(10 * 86_400)),
    };
    let mut trials: Vec<_> = (0..20).map(|i| trial(i, "Agencies", i < 5)).collect();
    trials.extend((20..100).map(|i| trial(i, "SMB", i < 30)));
    let r = trial_to_paid(&trials, may(), 30);
    assert_eq!(r.overall, Measure::Value(15.0));
    assert_eq!(r.by_segment["Agencies"], Measure::Value(25.0));
    assert_eq!(r.by_segment["SMB"], Measure::Value(12.5));
}

#[test]
fn ltv_to_crc_of_2_to_1_raises_a_warning() {
    let ltv = MoneyMeasure::ratio(eur(), 2_000, 1); // minor units
    let crc = revenue::crc(Money::new(100_000, eur()), 100); // 1,000 per customer
    let ratio = revenue::ratio(ltv, crc).unwrap();
    assert_eq!(ratio, Exact::Value(Ratio::integer(2)));
    let found = insights(&InsightInputs {
        ltv_to_cac: Exact::ratio(5, 1),
        ltv_to_crc: ratio,
        nrr: Measure::Value(101.0),
        net_mrr_churn: Measure::Value(1.0),
    });
    assert_eq!(
        found.iter().map(|i| i.key).collect::<Vec<_>>(),
        ["ltv_to_crc_at_or_below_2"]
    );
}

#[test]
fn expansion_greater_than_churned_mrr_is_negative_net_churn() {
    let before = Timestamp::from_ymd(2024, 4, 1);
    let during = Timestamp::from_ymd(2024, 5, 15);
    let changes = vec![
        change("a", before, 10_000),
        change("b", before, 10_000),
        change("a", during, 25_000),            // +15,000 expansion
        churn("b", during, ChurnReason::Price), // −10,000 churned
    ];
    let k = revenue_kpis(&changes, may(), eur()).unwrap();
    assert_eq!(k.net_mrr_churn, Measure::Value(-25.0));
    assert!(k.nrr.value().unwrap() > 100.0);
    let found = insights(&InsightInputs {
        ltv_to_cac: Exact::ratio(4, 1),
        ltv_to_crc: Exact::ratio(4, 1),
        nrr: k.nrr,
        net_mrr_churn: k.net_mrr_churn,
    });
    assert!(found.iter().any(|i| i.key == "negative_churn"));
}

#[test]
fn nps_50_promoters_30_passives_20_detractors_is_30() {
    let mut scores = vec![10u8; 50];
    scores.extend(vec![7u8; 30]);
    scores.extend(vec![3u8; 20]);
    assert_eq!(nps(&scores), Measure::Value(30.0));
}

fn b2b_snapshot() -> HealthSnapshot {
    HealthSnapshot {
        active_days_30d: Some(16.0), // 16 of a 20-day target: usage 80
        nps_mean: Some(7.0),
        tickets_opened_30d: Some(3.0),
        billing_status: Some(BillingStatus::Current),
        ..Default::default()
    }
}

#[test]
fn b2b_three_tickets_active_use_scores_69_yellow() {
    let model = ScoringModel::default();
    let s = health::score(&model, &b2b_snapshot(), None).unwrap();
    assert_eq!(s.score, 69.0);
    assert_eq!(s.band, Band::Yellow);
    let subs: Vec<f64> = s.dimensions().iter().map(|d| d.sub_score).collect();
    assert_eq!(subs, [80.0, 70.0, 0.0, 100.0]);
    assert_eq!(
        health::explain(&model, &s),
        "support_tickets: red; nps: yellow; product_usage: green; billing_status: green"
    );
    assert_eq!(
        health::weakest(&model, &s).map(|i| model.dimensions[i].key.as_str()),
        Some("support_tickets")
    );
}

#[test]
fn b2b_yellow_routes_an_email_by_default_and_a_task_naming_integration_for_enterprise() {
    let model = ScoringModel::default();
    let s = health::score(&model, &b2b_snapshot(), None).unwrap();
    let trigger = Trigger::BandChanged {
        from: Some(Band::Green),
        to: s.band,
        score: s.score,
        at: Timestamp::from_ymd(2024, 5, 20),
        drivers: health::explain(&model, &s),
        weakest: health::weakest(&model, &s).map(|i| model.dimensions[i].key.clone()),
        missing_milestones: vec![],
        ticket_topics: vec!["integration".into(); 3],
        backfill: false,
    };
    let ctx = AccountContext {
        tenant: "acme".into(),
        account: "b2b-1".into(),
        name: "Initech".into(),
        segment: Some("Enterprise".into()),
        csm_owner: Some("dana@acme.io".into()),
        contacts: vec!["ops@initech.com".into()],
    };
    let mut policy = RoutingPolicy::default();
    let d = routing::route(&policy, &trigger, &ctx).unwrap();
    let Planned::Email {
        template,
        variables,
        ..
    } = &d.action
    else {
        panic!("{d:?}")
    };
    assert_eq!(template, "health_yellow_nudge");
    assert_eq!(variables["weakest_dimension"], "support_tickets");

    policy.segments.insert(
        "Enterprise".into(),
        BTreeMap::from([(
            Rule::BandYellow,
            RuleSpec {
                action: ActionSpec::Task {
                    title: "Account review".into(),
                    queue: "enterprise".into(),
                    priority: Priority::High,
                    sla_seconds: 86_400,
                },
                cooldown_seconds: 0,
            },
        )]),
    );
    let d = routing::route(&policy, &trigger, &ctx).unwrap();
    let Planned::Task {
        message,
        assignee,
        queue,
        ..
    } = &d.action
    else {
        panic!("{d:?}")
    };
    assert!(
        message.contains("All recent tickets are about integration"),
        "{message}"
    );
    assert_eq!(assignee.as_deref(), Some("dana@acme.io"));
    assert_eq!(queue, "enterprise");
}

#[test]
fn a_due_on_2_may_and_a_renewed_on_10_may_are_one_renewal_renewed() {
    use retain_domain::kpi::rollup::portfolio::{Basis, account_contribution};
    use retain_domain::signal::{RenewalOutcome, Signal, SignalBody};
    let renewal = |id: &str, day: u32, outcome| Signal {
        event_id: id.into(),
        account_id: "acme".into(),
        occurred_at: Timestamp::from_ymd(2024, 5, day),
        body: SignalBody::Renewal {
            outcome,
            contract_end: Timestamp::from_ymd(2024, 5, 20),
        },
    };
    let signals = [
        renewal("r-due", 2, RenewalOutcome::Due),
        renewal("r-ok", 10, RenewalOutcome::Renewed),
    ];
    let basis = Basis {
        period: may(),
        as_of: may().end,
        currency: eur(),
        checklist: &[],
        usage_days_per_week: 3.0,
        trial_window_days: 14,
        stuck_after_days: 14,
        payment_failed_churn_days: None,
    };
    let c = account_contribution(&signals, &basis).unwrap();
    assert_eq!((c.experience.renewals_due, c.experience.renewed), (1, 1));
    assert_eq!(c.experience.renewal_rate(), Measure::Value(100.0));
}
