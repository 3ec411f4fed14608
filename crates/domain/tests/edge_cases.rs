//! Edge cases: zero denominators, annual plans, churn and reactivation in
//! one period, new accounts churning at once, currencies, validation.
#![allow(clippy::unwrap_used)]

mod common;

use common::{change, churn, eur};
use retain_domain::health::{
    self, Band, Bands, BillingStatus, HealthSnapshot, MissingData, ScoringModel,
};
use retain_domain::kpi::adoption::{self, MilestoneFact, SessionFact};
use retain_domain::kpi::experience::{CsatThresholds, Scale, ces, csat, fcr, renewal_rate};
use retain_domain::kpi::revenue::{
    self, ChurnReason, MovementKind, RevenueError, movements, revenue_kpis,
};
use retain_domain::routing::{
    self, AccountContext, Assignment, Planned, RoutingPolicy, Rule, Sent, Snooze, Trigger,
};
use retain_domain::signal::{
    self, BillingInterval, RawBody, RawSignal, Rules, SurveyKind, monthly_mrr,
};
use retain_domain::{
    Absence, Currency, Exact, Measure, Money, MoneyError, MoneyMeasure, Period, Ratio, Timestamp,
};

fn may() -> Period {
    Period::month(2024, 5)
}

#[test]
fn every_zero_denominator_is_absent() {
    let k = revenue_kpis(&[], may(), eur()).unwrap();
    let absent = Measure::Absent(Absence::ZeroDenominator);
    for m in [
        k.arpa.to_measure(),
        k.gross_mrr_churn,
        k.net_mrr_churn,
        k.expansion_rate,
        k.nrr,
        k.grr,
        k.logo_churn,
    ] {
        assert_eq!(m, absent);
    }
    assert!(k.bridge.balances());
    assert_eq!(retain_domain::kpi::experience::nps(&[]), absent);
    assert_eq!(csat(&[], CsatThresholds::default()), absent);
    assert_eq!(fcr(&[]), absent);
    assert_eq!(renewal_rate(3, 0), absent);
    let exact_absent = Exact::Absent(Absence::ZeroDenominator);
    assert_eq!(revenue::crc(Money::new(100, eur()), 0).minor, exact_absent);
    assert_eq!(revenue::cac(Money::new(100, eur()), 0).minor, exact_absent);
    assert_eq!(
        revenue::ltv(
            MoneyMeasure::ratio(eur(), 100, 1),
            Ratio::ONE,
            Exact::ratio(0, 10)
        )
        .minor,
        exact_absent,
        "no churn: unbounded lifetime"
    );
    assert!(ces(&[]).iter().all(|c| c.mean == absent));
    let none: Vec<SessionFact> = vec![];
    assert_eq!(adoption::active(&none, may().end).stickiness, absent);
    assert_eq!(adoption::time_in_app(&none, may()), absent);
    assert_eq!(adoption::trial_to_paid(&[], may(), 30).overall, absent);
}

#[test]
fn annual_amounts_become_mrr_by_twelve() {
    assert_eq!(monthly_mrr(120_000, BillingInterval::Annual), 10_000);
    assert_eq!(
        monthly_mrr(100_000, BillingInterval::Annual),
        8_333,
        "8,333.33 rounds down"
    );
    assert_eq!(
        monthly_mrr(100_006, BillingInterval::Annual),
        8_334,
        "8,333.83 rounds up"
    );
    assert_eq!(monthly_mrr(99_990, BillingInterval::Monthly), 99_990);
}

#[test]
fn churn_and_reactivation_in_one_period_are_both_movements() {
    let changes = vec![
        change("a", Timestamp::from_ymd(2024, 4, 1), 10_000),
        churn("a", Timestamp::from_ymd(2024, 5, 5), ChurnReason::Price),
        change("a", Timestamp::from_ymd(2024, 5, 20), 12_000),
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
            MovementKind::Churn,
            MovementKind::Reactivation
        ]
    );
    let k = revenue_kpis(&changes, may(), eur()).unwrap();
    assert_eq!(k.bridge.churned.minor, 10_000);
    assert_eq!(k.bridge.reactivation.minor, 12_000);
    assert_eq!(
        k.logo_churn,
        Measure::Value(100.0),
        "it did churn in the period"
    );
    assert_eq!(k.nrr, Measure::Value(120.0));
    assert_eq!(k.grr, Measure::Value(100.0));
    assert!(k.bridge.balances());
}

#[test]
fn a_new_account_churning_in_its_first_period_counts_in_the_numerator_only() {
    let mut changes: Vec<_> = (0..10)
        .map(|i| change(&format!("old{i}"), Timestamp::from_ymd(2024, 4, 1), 5_000))
        .collect();
    changes.push(change("new", Timestamp::from_ymd(2024, 5, 2), 5_000));
    changes.push(churn(
        "new",
        Timestamp::from_ymd(2024, 5, 25),
        ChurnReason::Freemium,
    ));
    let k = revenue_kpis(&changes, may(), eur()).unwrap();
    assert_eq!(
        k.start_cohort, 10,
        "acquired in the period: never in the denominator"
    );
    assert_eq!(k.churned_accounts, 1);
    assert_eq!(k.logo_churn, Measure::Value(10.0));
    assert_eq!(k.new_accounts, 1);
    assert_eq!(k.nrr, Measure::Value(100.0), "the cohort is unaffected");
}

#[test]
fn currencies_never_mix_and_negative_mrr_is_refused() {
    let mut usd = change("a", Timestamp::from_ymd(2024, 5, 2), 100);
    usd.mrr = Money::new(100, Currency::parse("USD").unwrap());
    assert!(matches!(
        revenue_kpis(&[usd], may(), eur()),
        Err(RevenueError::Money(MoneyError::CurrencyMismatch(_, _)))
    ));
    let neg = change("a", Timestamp::from_ymd(2024, 5, 2), -1);
    assert!(matches!(
        revenue_kpis(&[neg], may(), eur()),
        Err(RevenueError::NegativeMrr { .. })
    ));
}

#[test]
fn costs_spanning_periods_are_prorated_exactly() {
    let q2 = Period::new(
        Timestamp::from_ymd(2024, 4, 1),
        Timestamp::from_ymd(2024, 7, 1),
    )
    .unwrap();
    let costs = [
        (Money::new(91_000, eur()), q2),   // 91 days, 31 in May
        (Money::new(5_000, eur()), may()), // all in May
        (Money::new(7_000, eur()), Period::month(2024, 6)), // none
    ];
    let spend = revenue::prorated_spend(&costs, may(), eur()).unwrap();
    assert_eq!(spend.minor, Exact::ratio(31_000 + 5_000, 1));
    assert_eq!(
        revenue::crc(spend, 12).minor,
        Exact::ratio(3_000, 1),
        "36,000 over 12 accounts"
    );
    let usd = Currency::parse("USD").unwrap();
    assert!(revenue::prorated_spend(&[(Money::new(1, usd), may())], may(), eur()).is_err());
}

#[test]
fn csat_and_ces_respect_their_scales() {
    let answers = [
        (Scale::OneToFive, 4),
        (Scale::OneToTen, 5),
        (Scale::OneToTen, 6),
        (Scale::OneToSeven, 7),
    ];
    assert_eq!(
        csat(&answers, CsatThresholds::default()),
        Measure::Value(200.0 / 3.0),
        "1-7 answers are not CSAT"
    );
    let c = ces(&[
        (Scale::OneToFive, 1),
        (Scale::OneToFive, 4),
        (Scale::OneToSeven, 3),
    ]);
    assert_eq!(c[0].mean, Measure::Value(2.5));
    assert_eq!(c[0].low_effort_pct, Measure::Value(50.0));
    assert_eq!(c[1].mean, Measure::Value(3.0));
    assert_eq!(c[1].low_effort_pct, Measure::Value(100.0));
}

#[test]
fn adoption_counts_distinct_users_and_days() {
    let now = Timestamp::from_ymd(2024, 5, 31);
    let s = |acct: &str, user: &str, day: u32, secs: i64| SessionFact {
        account: acct.into(),
        user: user.into(),
        at: Timestamp::from_ymd_hms(2024, 5, day, 10, 0, 0),
        seconds: secs,
    };
    let sessions = vec![
        s("a", "u1", 30, 600),
        s("a", "u1", 30, 600),
        s("a", "u2", 28, 300),
        s("b", "u1", 10, 900),
    ];
    let act = adoption::active(&sessions, now);
    assert_eq!(
        (act.dau, act.wau, act.mau),
        (1, 2, 3),
        "u1 of a and u1 of b are different users"
    );
    assert_eq!(act.stickiness, Measure::Value(1.0 / 3.0));
    assert_eq!(
        adoption::time_in_app(&sessions, may()),
        Measure::Value(2400.0 / 3.0)
    );
    assert_eq!(
        adoption::sessions_per_day(&sessions, may()),
        Measure::Value(4.0 / 31.0)
    );
}

#[test]
fn onboarding_scores_and_flags_stuck_accounts() {
    let checklist: Vec<String> = ["connect_data", "invite_team", "first_report"]
        .map(String::from)
        .to_vec();
    let fact = |key: &str, day: u32, achieved: bool| MilestoneFact {
        account: "a".into(),
        key: key.into(),
        at: Timestamp::from_ymd(2024, 5, day),
        achieved,
    };
    let start = Timestamp::from_ymd(2024, 5, 1);
    let facts = [fact("connect_data", 2, true), fact("invite_team", 3, false)];
    let refs: Vec<&MilestoneFact> = facts.iter().collect();
    let o = adoption::onboarding(
        &checklist,
        &refs,
        start,
        Timestamp::from_ymd(2024, 5, 4),
        14,
    );
    assert_eq!(o.score, Measure::Value(100.0 / 3.0));
    assert_eq!(o.missing, ["invite_team", "first_report"]);
    assert!(o.stuck, "a failed milestone");
    let facts = [fact("connect_data", 2, true)];
    let refs: Vec<&MilestoneFact> = facts.iter().collect();
    assert!(
        !adoption::onboarding(
            &checklist,
            &refs,
            start,
            Timestamp::from_ymd(2024, 5, 10),
            14
        )
        .stuck
    );
    assert!(
        adoption::onboarding(
            &checklist,
            &refs,
            start,
            Timestamp::from_ymd(2024, 5, 20),
            14
        )
        .stuck,
        "no progress for 18 days"
    );
}

#[test]
fn missing_data_policies() {
    let snap = HealthSnapshot {
        active_days_30d: Some(20.0),
        tickets_opened_30d: Some(0.0),
        billing_status: Some(BillingStatus::Current),
        ..Default::default()
    };
    let mut model = ScoringModel::default();
    let s = health::score(&model, &snap, None).unwrap();
    assert_eq!(s.score, 100.0, "NPS weight redistributed");
    assert_eq!(s.missing().collect::<Vec<_>>(), [1]);
    model.missing = MissingData::Neutral;
    assert_eq!(health::score(&model, &snap, None).unwrap().score, 95.0);
    model.missing = MissingData::Zero;
    assert_eq!(health::score(&model, &snap, None).unwrap().score, 90.0);
    model.missing = MissingData::Redistribute;
    assert!(
        health::score(&model, &HealthSnapshot::default(), None).is_none(),
        "nothing to score"
    );
}

#[test]
fn over_use_passes_100_into_thriving() {
    let snap = HealthSnapshot {
        active_days_30d: Some(30.0),
        nps_mean: Some(10.0),
        tickets_opened_30d: Some(0.0),
        billing_status: Some(BillingStatus::Current),
        ..Default::default()
    };
    let s = health::score(&ScoringModel::default(), &snap, None).unwrap();
    assert_eq!(s.score, 120.0, "usage 150 × 0.4 + 10 + 20 + 30");
    assert_eq!(s.band, Band::Thriving);
}

#[test]
fn delta_top_mover_and_hysteresis() {
    let model = ScoringModel::default();
    let good = HealthSnapshot {
        active_days_30d: Some(16.0),
        nps_mean: Some(7.0),
        tickets_opened_30d: Some(0.0),
        billing_status: Some(BillingStatus::Current),
        ..Default::default()
    };
    let first = health::score(&model, &good, None).unwrap();
    assert_eq!((first.score, first.band), (89.0, Band::Green));
    let worse = HealthSnapshot {
        tickets_opened_30d: Some(3.0),
        ..good.clone()
    };
    let second = health::score(&model, &worse, Some(&first.as_previous(&model))).unwrap();
    assert_eq!(second.delta, Some(-20.0));
    assert_eq!(
        second.top_mover.map(|i| model.dimensions[i].key.as_str()),
        Some("support_tickets")
    );
    assert_eq!(
        second.band,
        Band::Green,
        "69 is only 1 below the Green/Yellow boundary: inside the margin"
    );
    let worst = HealthSnapshot {
        tickets_opened_30d: Some(3.0),
        active_days_30d: Some(15.0),
        ..good
    };
    let third = health::score(&model, &worst, Some(&second.as_previous(&model))).unwrap();
    assert_eq!(
        (third.score, third.band),
        (67.0, Band::Yellow),
        "more than 2 below 70"
    );
    let bands = Bands::default();
    assert_eq!(
        bands.next(Some(Band::Yellow), 71.0, 2.0),
        Band::Yellow,
        "within the margin"
    );
    assert_eq!(bands.next(Some(Band::Yellow), 72.5, 2.0), Band::Green);
    assert_eq!(
        bands.next(Some(Band::Yellow), 101.0, 2.0),
        Band::Green,
        "passed 70 by far, 100 only by 1"
    );
    assert_eq!(
        bands.next(Some(Band::Green), 39.0, 2.0),
        Band::Yellow,
        "passed 40 by only 1"
    );
    assert_eq!(bands.next(Some(Band::Green), 37.0, 2.0), Band::Red);
}

#[test]
fn model_validation_names_the_offending_field() {
    let mut m = ScoringModel::default();
    m.dimensions[2].weight = 15.0;
    let err = m.validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "dimensions[3].weight: weights sum to 95, must be 100"
    );
    let mut m = ScoringModel::default();
    m.dimensions.truncate(3);
    m.dimensions[2].weight = 50.0;
    assert_eq!(m.validate().unwrap_err().first_field(), Some("dimensions"));
    let mut m = ScoringModel::default();
    m.dimensions[1].key = "product_usage".into();
    assert_eq!(
        m.validate().unwrap_err().first_field(),
        Some("dimensions[1].key")
    );
    let mut m = ScoringModel::default();
    m.bands.yellow_max = 30.0;
    assert_eq!(m.validate().unwrap_err().first_field(), Some("bands"));
    assert!(ScoringModel::default().validate().is_ok());
}

fn rules(checklist: &[String]) -> Rules<'_> {
    Rules {
        now: Timestamp::from_ymd(2024, 6, 1),
        max_future_seconds: 300,
        max_past_seconds: Some(30 * 86_400),
        base_currency: eur(),
        checklist,
    }
}

fn signal(body: RawBody) -> RawSignal {
    RawSignal {
        event_id: "e1".into(),
        account_id: "acme".into(),
        occurred_at: Some(Timestamp::from_ymd(2024, 5, 31)),
        body: Some(body),
    }
}

#[test]
fn signal_validation_reports_every_violation_with_its_path() {
    let checklist = vec!["connect_data".to_owned()];
    let r = rules(&checklist);
    let survey = |kind, scale, score| {
        signal(RawBody::Survey {
            kind,
            scale,
            score,
            user_id: "u".into(),
            comment: String::new(),
        })
    };
    let err = signal::validate(&survey(Some(SurveyKind::Nps), None, 11), &r).unwrap_err();
    assert_eq!(err.to_string(), "survey.score: 11 is outside 0–10");
    assert!(signal::validate(&survey(Some(SurveyKind::Nps), None, 10), &r).is_ok());
    assert_eq!(
        signal::validate(
            &survey(Some(SurveyKind::Csat), Some(Scale::OneToSeven), 3),
            &r
        )
        .unwrap_err()
        .first_field(),
        Some("survey.scale")
    );
    assert_eq!(
        signal::validate(
            &survey(Some(SurveyKind::Ces), Some(Scale::OneToFive), 0),
            &r
        )
        .unwrap_err()
        .first_field(),
        Some("survey.score")
    );
    assert_eq!(
        signal::validate(&survey(None, None, 3), &r)
            .unwrap_err()
            .first_field(),
        Some("survey.kind")
    );

    let sub = |minor, reason| {
        signal(RawBody::Subscription {
            amount: Money::new(minor, eur()),
            interval: Some(BillingInterval::Monthly),
            churn_reason: reason,
            add_on: false,
            opening: false,
        })
    };
    assert_eq!(
        signal::validate(&sub(-5, None), &r)
            .unwrap_err()
            .first_field(),
        Some("subscription.amount.amount_minor")
    );
    assert_eq!(
        signal::validate(&sub(0, None), &r)
            .unwrap_err()
            .first_field(),
        Some("subscription.churn_reason")
    );
    assert!(signal::validate(&sub(0, Some(ChurnReason::Price)), &r).is_ok());
    let usd = signal(RawBody::Purchase(Money::new(
        100,
        Currency::parse("USD").unwrap(),
    )));
    assert_eq!(
        signal::validate(&usd, &r).unwrap_err().to_string(),
        "purchase.amount.currency: USD is not the tenant's currency EUR"
    );

    let milestone = signal(RawBody::Milestone {
        key: "launch_rocket".into(),
        achieved: true,
    });
    assert_eq!(
        signal::validate(&milestone, &r).unwrap_err().first_field(),
        Some("milestone.milestone_key")
    );

    let mut future = sub(100, None);
    future.occurred_at = Some(Timestamp::from_ymd(2024, 6, 2));
    assert_eq!(
        signal::validate(&future, &r).unwrap_err().first_field(),
        Some("occurred_at")
    );
    let mut old = sub(100, None);
    old.occurred_at = Some(Timestamp::from_ymd(2024, 1, 1));
    assert!(
        signal::validate(&old, &r).is_err(),
        "too old for a live signal"
    );
    assert!(
        signal::validate(
            &old,
            &Rules {
                max_past_seconds: None,
                ..r
            }
        )
        .is_ok(),
        "fine as a backfill"
    );

    let mut many = signal(RawBody::Session {
        user_id: String::new(),
        duration_seconds: -1,
    });
    many.event_id = String::new();
    many.account_id = "bad id".into();
    let fields: Vec<String> = signal::validate(&many, &r)
        .unwrap_err()
        .0
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(
        fields,
        [
            "event_id",
            "account_id",
            "session.user_id",
            "session.duration_seconds"
        ]
    );
}

fn ctx() -> AccountContext {
    AccountContext {
        tenant: "acme".into(),
        account: "a1".into(),
        name: "Initech".into(),
        segment: None,
        csm_owner: None,
        contacts: vec!["x@initech.com".into()],
    }
}

#[test]
fn routing_follows_the_default_policy() {
    let p = RoutingPolicy::default();
    let at = Timestamp::from_ymd(2024, 5, 1);
    let nps = |score| Trigger::NpsAnswer {
        event_id: format!("n{score}"),
        score,
        user: "u".into(),
        at,
        comment: "slow".into(),
        backfill: false,
    };
    let d = routing::route(&p, &nps(3), &ctx()).unwrap();
    let Planned::Task {
        priority,
        due,
        assignee,
        ..
    } = d.action
    else {
        panic!()
    };
    assert_eq!(priority, routing::Priority::High);
    assert_eq!(due, at.plus(24 * 3600), "call within 24 h");
    assert_eq!(assignee, None, "no owner: auto-assigned in the queue");
    assert!(
        matches!(routing::route(&p, &nps(8), &ctx()).unwrap().action, Planned::Email { ref template, .. } if template == "nps_passive_tutorial")
    );
    assert!(
        matches!(routing::route(&p, &nps(9), &ctx()).unwrap().action, Planned::Email { ref template, .. } if template == "nps_promoter_referral")
    );
    let band = |to, backfill| Trigger::BandChanged {
        from: Some(Band::Yellow),
        to,
        score: 30.0,
        at,
        drivers: String::new(),
        weakest: None,
        missing_milestones: vec![],
        ticket_topics: vec![],
        backfill,
    };
    assert!(matches!(
        routing::route(&p, &band(Band::Red, false), &ctx())
            .unwrap()
            .action,
        Planned::Task {
            priority: routing::Priority::Urgent,
            ..
        }
    ));
    assert!(matches!(
        routing::route(&p, &band(Band::Green, false), &ctx())
            .unwrap()
            .action,
        Planned::Record
    ));
    assert!(
        matches!(routing::route(&p, &band(Band::Thriving, false), &ctx()).unwrap().action, Planned::Task { ref queue, .. } if queue == "expansion")
    );
    assert!(
        matches!(
            routing::route(&p, &band(Band::Red, true), &ctx())
                .unwrap()
                .action,
            Planned::Record
        ),
        "backfill never notifies"
    );
    let same = Trigger::BandChanged {
        from: Some(Band::Red),
        to: Band::Red,
        score: 30.0,
        at,
        drivers: String::new(),
        weakest: None,
        missing_milestones: vec![],
        ticket_topics: vec![],
        backfill: false,
    };
    assert!(routing::route(&p, &same, &ctx()).is_none());
    let contraction = Trigger::Contraction {
        event_id: "s1".into(),
        add_on: true,
        lost: retain_domain::Money::new(500, retain_domain::Currency::parse("EUR").unwrap()),
        at,
        backfill: false,
    };
    assert!(matches!(
        routing::route(&p, &contraction, &ctx()).unwrap().action,
        Planned::Task {
            priority: routing::Priority::Urgent,
            ..
        }
    ));
    let churn = Trigger::Churn {
        event_id: "s2".into(),
        reason: ChurnReason::Competitor,
        at,
        backfill: false,
    };
    let Planned::Email {
        template,
        variables,
        ..
    } = routing::route(&p, &churn, &ctx()).unwrap().action
    else {
        panic!()
    };
    assert_eq!(template, "churn_exit_survey");
    assert_eq!(variables["churn_reason"], "competitor");
}

#[test]
fn replayed_triggers_keep_their_id_and_cooldowns_snoozes_assignment_are_pure() {
    let p = RoutingPolicy::default();
    let at = Timestamp::from_ymd(2024, 5, 1);
    let t = Trigger::NpsAnswer {
        event_id: "n1".into(),
        score: 8,
        user: "u".into(),
        at,
        comment: String::new(),
        backfill: false,
    };
    let a = routing::route(&p, &t, &ctx()).unwrap();
    assert_eq!(
        a.notification_id,
        routing::route(&p, &t.clone(), &ctx())
            .unwrap()
            .notification_id
    );
    let history = [Sent {
        rule: Rule::NpsPassive,
        at,
    }];
    let later = at.plus(86_400);
    assert_eq!(
        routing::cooldown(&history, Rule::NpsPassive, later, a.cooldown_seconds),
        Some(at.plus(a.cooldown_seconds))
    );
    assert_eq!(
        routing::cooldown(&history, Rule::NpsPromoter, later, 3600),
        None
    );
    assert_eq!(
        routing::cooldown(
            &history,
            Rule::NpsPassive,
            at.plus(a.cooldown_seconds),
            a.cooldown_seconds
        ),
        None
    );
    let snoozes = [Snooze {
        rule: Rule::BandYellow,
        until: later,
    }];
    assert!(routing::snoozed(&snoozes, Rule::BandYellow, at));
    assert!(!routing::snoozed(&snoozes, Rule::BandYellow, later));
    assert!(!routing::snoozed(&snoozes, Rule::BandRed, at));
    let csms: Vec<String> = ["ann", "bob", "cy"].map(String::from).to_vec();
    assert_eq!(
        routing::assign(Assignment::RoundRobin, &csms, &[], 4),
        Some("bob")
    );
    assert_eq!(
        routing::assign(Assignment::FewestOpen, &csms, &[3, 1, 1], 0),
        Some("bob")
    );
    assert_eq!(routing::assign(Assignment::FewestOpen, &[], &[], 0), None);
}

#[test]
fn validation_returns_the_valid_signal_with_nothing_left_optional() {
    use retain_domain::signal::{SignalBody, SignalKind};
    let checklist = vec!["connect_data".to_owned()];
    let r = rules(&checklist);
    let raw = signal(RawBody::Survey {
        kind: Some(SurveyKind::Csat),
        scale: None,
        score: 4,
        user_id: "u".into(),
        comment: String::new(),
    });
    let valid = signal::validate(&raw, &r).expect("valid");
    assert_eq!(valid.occurred_at, Timestamp::from_ymd(2024, 5, 31));
    // The scale a valid answer uses is decided once, here.
    assert_eq!(
        valid.body,
        SignalBody::Survey {
            kind: SurveyKind::Csat,
            scale: Scale::OneToFive,
            score: 4,
            user_id: "u".into(),
            comment: String::new(),
        }
    );
    assert_eq!(valid.body.kind(), SignalKind::Survey);
    // Stored codes round-trip and stay where they were.
    for k in SignalKind::ALL {
        assert_eq!(SignalKind::from_code(k.code()), Some(k));
    }
    assert_eq!(SignalKind::Account.code(), 10);
    assert_eq!(SignalKind::Cost.code(), 21);
    assert_eq!(SignalKind::from_code(22), None);
}

/// LTV needs a monthly churn rate: one whole calendar month, measured to
/// its end — the month so far only once it has ended.
#[test]
fn only_a_whole_calendar_month_gives_a_monthly_churn_rate() {
    use retain_domain::kpi::revenue::gives_monthly_churn;
    use retain_domain::{Period, Timestamp};
    let may = Period::month(2026, 5);
    let mid_may = Timestamp::from_ymd_hms(2026, 5, 20, 12, 0, 0);
    assert!(gives_monthly_churn(may, may.end));
    assert!(gives_monthly_churn(
        may,
        Timestamp::from_ymd_hms(2026, 7, 1, 0, 0, 0)
    ));
    assert!(!gives_monthly_churn(may, mid_may), "the month so far");
    assert!(!gives_monthly_churn(
        Period::new(may.start, mid_may).unwrap(),
        mid_may
    ));
    let week = Period::new(may.start, may.start.plus(7 * 86_400)).unwrap();
    assert!(!gives_monthly_churn(week, may.end));
    let q2 = Period::new(
        Timestamp::from_ymd_hms(2026, 4, 1, 0, 0, 0),
        Timestamp::from_ymd_hms(2026, 7, 1, 0, 0, 0),
    )
    .unwrap();
    assert!(!gives_monthly_churn(q2, q2.end));
    let forty_one = Period::new(
        Timestamp::from_ymd_hms(2026, 10, 11, 0, 0, 0),
        Timestamp::from_ymd_hms(2026, 11, 21, 0, 0, 0),
    )
    .unwrap();
    assert!(!gives_monthly_churn(forty_one, forty_one.end));
}
