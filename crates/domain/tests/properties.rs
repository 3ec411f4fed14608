//! Property tests: the invariants that must hold for any input.
#![allow(clippy::unwrap_used)]

mod common;

use common::{change, eur};
use proptest::prelude::*;
use retain_domain::health::{
    Bands, BillingStatus, Dimension, HealthSnapshot, Metric, MissingData, Normaliser, ScoringModel,
    combine, score,
};
use retain_domain::kpi::experience::nps;
use retain_domain::kpi::revenue::{
    self, MrrChange, Purchase, RevenueKpis, clv, movements, purchase_rates, revenue_kpis,
};
use retain_domain::kpi::scorecard::{InsightInputs, insights};
use retain_domain::routing::{Rule, Sent, cooldown, notification_id};
use retain_domain::signal::{self, BillingInterval, RawBody, RawSignal, Rules, monthly_mrr};
use retain_domain::{Exact, Measure, Money, Period, Ratio, Timestamp};

const BASE: i64 = 1_704_067_200; // 2024-01-01

fn changes() -> impl Strategy<Value = Vec<MrrChange>> {
    prop::collection::vec(
        (0..6u8, 0..120i64, prop_oneof![Just(0i64), 1..50_000i64]),
        0..60,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (acct, day, mrr))| {
                let mut c = change(
                    &format!("acct{acct}"),
                    Timestamp::from_seconds(BASE + day * 86_400),
                    mrr,
                );
                c.seq = format!("e{i}");
                c
            })
            .collect()
    })
}

/// Changes of three accounts crowded into the same few seconds of a few
/// days, microseconds apart, with event ids whose string order says
/// nothing about time (`e9` after `e10`).
fn crowded_changes() -> impl Strategy<Value = Vec<MrrChange>> {
    prop::collection::vec(
        (
            0..3u8,
            0..3i64,
            0..2_000_000i64,
            prop_oneof![Just(0i64), 1..50_000i64],
            0..1000u32,
        ),
        0..40,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(acct, day, us, mrr, id)| {
                let at = Timestamp::from_seconds(BASE + day * 86_400).plus_micros(us);
                let mut c = change(&format!("acct{acct}"), at, mrr);
                c.seq = format!("e{id}");
                c
            })
            .collect()
    })
}

fn period() -> impl Strategy<Value = Period> {
    (0..100i64, 1..60i64).prop_map(|(s, len)| {
        Period::new(
            Timestamp::from_seconds(BASE + s * 86_400),
            Timestamp::from_seconds(BASE + (s + len) * 86_400),
        )
        .unwrap()
    })
}

/// A metric value: usually a number, sometimes missing or not finite.
fn metric(max: f64) -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        6 => (0.0..max).prop_map(Some),
        2 => Just(None),
        1 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)].prop_map(Some),
    ]
}

fn snapshot() -> impl Strategy<Value = HealthSnapshot> {
    let billing = prop::option::of(prop_oneof![
        Just(BillingStatus::Current),
        Just(BillingStatus::Overdue),
        Just(BillingStatus::PaymentFailed),
        Just(BillingStatus::Collections),
    ]);
    let actions = prop::option::of(prop::collection::vec(
        (
            prop_oneof![Just("export_report"), Just("invite_user"), Just("other")],
            metric(20.0),
        ),
        0..4,
    ));
    (
        metric(31.0),
        metric(10.0),
        metric(6.0),
        billing,
        actions,
        metric(100.0),
    )
        .prop_map(
            |(active, nps, tickets, billing, actions, onboarding)| HealthSnapshot {
                active_days_30d: active,
                nps_mean: nps,
                tickets_opened_30d: tickets,
                billing_status: billing,
                actions_30d: actions.map(|a| {
                    a.into_iter()
                        .map(|(k, n)| (k.to_owned(), n.unwrap_or(0.0)))
                        .collect()
                }),
                onboarding,
            },
        )
}

/// A six-dimension model (every metric) with odd weights and a policy.
fn model() -> impl Strategy<Value = ScoringModel> {
    prop_oneof![
        Just(MissingData::Redistribute),
        Just(MissingData::Neutral),
        Just(MissingData::Zero)
    ]
    .prop_map(|missing| {
        let mut m = ScoringModel {
            missing,
            ..Default::default()
        };
        for (d, w) in m.dimensions.iter_mut().zip([23.3, 7.7, 19.1, 21.0]) {
            d.weight = w;
        }
        m.dimensions.push(Dimension {
            key: "key_actions".into(),
            weight: 16.6,
            metric: Metric::Actions30d,
            normaliser: Normaliser::ActionImpact {
                impacts: vec![("export_report".into(), 10.0), ("invite_user".into(), 7.5)],
                cap: 120.0,
            },
        });
        m.dimensions.push(Dimension {
            key: "onboarding".into(),
            weight: 12.3,
            metric: Metric::Onboarding,
            normaliser: Normaliser::LinearToTarget {
                target: 100.0,
                cap: 100.0,
            },
        });
        m
    })
}

/// `n` accounts paying `price` from before May, `churned` of them churning
/// in May and `new` new accounts at `price` joining in May.
fn may_portfolio(n: u32, churned: u32, new: u32, price: i64) -> RevenueKpis {
    let before = Timestamp::from_ymd(2024, 4, 1);
    let mut cs: Vec<MrrChange> = (0..n)
        .map(|i| change(&format!("a{i}"), before, price))
        .collect();
    cs.extend((0..churned).map(|i| change(&format!("a{i}"), Timestamp::from_ymd(2024, 5, 9), 0)));
    cs.extend((0..new).map(|i| change(&format!("n{i}"), Timestamp::from_ymd(2024, 5, 20), price)));
    revenue_kpis(&cs, Period::month(2024, 5), eur()).unwrap()
}

fn warned(ltv_to_cac: Exact, ltv_to_crc: Exact) -> Vec<&'static str> {
    insights(&InsightInputs {
        ltv_to_cac,
        ltv_to_crc,
        nrr: Measure::Value(100.0),
        net_mrr_churn: Measure::Value(0.0),
    })
    .into_iter()
    .map(|i| i.key)
    .collect()
}

proptest! {
    /// LTV:CRC exactly 2:1 warns, one minor unit less CS spend does not,
    /// one more does — for any portfolio where 2:1 is reachable in cents.
    #[test]
    fn ltv_to_crc_threshold_is_exact_at_2(n in 2..300u32, c in 1..300u32, q in 1..2_000i64) {
        let c = 1 + c % (n - 1);
        let price = 2 * i64::from(c) * q; // LTV = price·n/c; CRC = spend/n
        let k = may_portfolio(n, c, 0, price);
        let ltv = revenue::ltv(k.arpa, Ratio::ONE, k.logo_churn_rate());
        let spend = q * i64::from(n) * i64::from(n); // LTV:CRC = 2 exactly
        let at = |s: i64| revenue::ratio(ltv, revenue::crc(Money::new(s, eur()), k.start_cohort)).unwrap();
        prop_assert_eq!(at(spend), Exact::Value(Ratio::integer(2)));
        let none = Exact::ratio(10, 1);
        prop_assert_eq!(warned(none, at(spend)), ["ltv_to_crc_at_or_below_2"]);
        prop_assert!(warned(none, at(spend - 1)).is_empty());
        prop_assert_eq!(warned(none, at(spend + 1)), ["ltv_to_crc_at_or_below_2"]);
    }

    /// LTV:CAC exactly 3:1 does not warn, one minor unit more acquisition
    /// spend does.
    #[test]
    fn ltv_to_cac_threshold_is_exact_at_3(n in 2..300u32, c in 1..300u32, m in 1..50u32, q in 1..2_000i64) {
        let c = 1 + c % (n - 1);
        let price = 3 * i64::from(c) * q; // LTV = price·n/c; CAC = spend/m
        let k = may_portfolio(n, c, m, price);
        prop_assert_eq!(k.new_accounts, u64::from(m));
        let ltv = revenue::ltv(k.arpa, Ratio::ONE, k.logo_churn_rate());
        let spend = q * i64::from(n) * i64::from(m); // LTV:CAC = 3 exactly
        let at = |s: i64| revenue::ratio(ltv, revenue::cac(Money::new(s, eur()), k.new_accounts)).unwrap();
        prop_assert_eq!(at(spend), Exact::Value(Ratio::integer(3)));
        let none = Exact::ratio(10, 1);
        prop_assert!(warned(at(spend), none).is_empty());
        prop_assert!(warned(at(spend - 1), none).is_empty());
        prop_assert_eq!(warned(at(spend + 1), none), ["ltv_to_cac_below_3"]);
    }

    /// The exact order agrees with cross-multiplication wherever that fits.
    #[test]
    fn ratio_order_is_exact(a in -1_000_000_000_000i128..1_000_000_000_000, b in 1..1_000_000_000_000i128, c in -1_000_000_000_000i128..1_000_000_000_000, d in 1..1_000_000_000_000i128) {
        let (x, y) = (Ratio::new(a, b).unwrap(), Ratio::new(c, d).unwrap());
        prop_assert_eq!(x.cmp(&y), (a * d).cmp(&(c * b)));
    }

    /// CLV over a calendar month is the same for every month, whatever its
    /// length: 3 purchases of `price` by each of `customers`.
    #[test]
    fn clv_of_a_calendar_month_does_not_depend_on_its_days(month in 1..=12u32, customers in 1..20u32, price in 1..100_000i64) {
        let p = Period::month(2023, month);
        let purchases: Vec<Purchase> = (0..customers * 3)
            .map(|i| Purchase { account: format!("c{}", i % customers), at: p.start.plus(i64::from(i) * 3600), amount: Money::new(price, eur()) })
            .collect();
        let (avg, per_month) = purchase_rates(&purchases, p, eur()).unwrap();
        prop_assert_eq!(per_month, Exact::ratio(3, 1));
        prop_assert_eq!(clv(avg, per_month, Exact::ratio(24, 1)).minor, Exact::ratio(i128::from(price) * 72, 1));
    }

    /// Reordering a model's dimensions changes nothing: the same score and
    /// band, per-dimension results by key, delta 0 and no top mover.
    #[test]
    fn any_model_reordering_scores_the_same_and_names_no_mover(
        model in model(), snap in snapshot(), seed in any::<u64>(),
    ) {
        prop_assert!(model.validate().is_ok(), "{:?}", model.validate());
        let mut reordered = model.clone();
        let mut x = seed | 1;
        for i in (1..reordered.dimensions.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            reordered.dimensions.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let a = score(&model, &snap, None);
        let b = score(&reordered, &snap, a.as_ref().map(|a| a.as_previous(&model)).as_ref());
        prop_assert_eq!(a.is_some(), b.is_some());
        if let (Some(a), Some(b)) = (a, b) {
            prop_assert_eq!(a.score, b.score);
            prop_assert_eq!(a.band, b.band);
            prop_assert_eq!(b.delta, Some(0.0));
            prop_assert_eq!(b.top_mover, None);
            let by_key = |m: &ScoringModel, s: &retain_domain::health::HealthScore| {
                let mut v: Vec<_> = s.dimensions().iter().map(|d| (m.dimensions[d.index].key.clone(), d.sub_score.to_bits(), d.contribution.to_bits(), d.missing)).collect();
                v.sort();
                v
            };
            prop_assert_eq!(by_key(&model, &a), by_key(&reordered, &b));
        }
    }

    /// Whatever the inputs (NaN and infinities included), a score is finite
    /// and its band is the band of the score.
    #[test]
    fn any_snapshot_scores_finite_and_banded(model in model(), snap in snapshot()) {
        if let Some(s) = score(&model, &snap, None) {
            prop_assert!(s.score.is_finite(), "{s:?}");
            prop_assert_eq!(s.band, model.bands.of(s.score));
            prop_assert!(s.dimensions().iter().all(|d| d.sub_score.is_finite() && d.contribution.is_finite()));
        }
    }

    /// Measured activity can only raise the score: one more action of a
    /// positive impact never lowers it, starting from none.
    #[test]
    fn one_more_positive_action_never_lowers_the_score(model in model(), snap in snapshot(), n in 1..5u32) {
        let mut more = snap.clone();
        let mut list = snap.actions_30d.clone().unwrap_or_default();
        list.push(("export_report".into(), f64::from(n)));
        more.actions_30d = Some(list);
        let before = score(&model, &HealthSnapshot { actions_30d: Some(snap.actions_30d.clone().unwrap_or_default()), ..snap.clone() }, None);
        let after = score(&model, &more, None);
        if let (Some(b), Some(a)) = (before, after) {
            prop_assert!(a.score >= b.score, "{} -> {}", b.score, a.score);
        }
    }
}

proptest! {
    #[test]
    fn mrr_bridge_identity_holds_for_any_changes(cs in changes(), p in period()) {
        let k = revenue_kpis(&cs, p, eur()).unwrap();
        prop_assert!(k.bridge.balances(), "{:?}", k.bridge);
    }

    #[test]
    fn nrr_is_at_least_grr_and_grr_at_most_100(cs in changes(), p in period()) {
        let k = revenue_kpis(&cs, p, eur()).unwrap();
        if let (Some(nrr), Some(grr)) = (k.nrr.value(), k.grr.value()) {
            prop_assert!(nrr >= grr - 1e-9, "nrr {nrr} < grr {grr}");
            prop_assert!(grr <= 100.0 + 1e-9, "grr {grr}");
            prop_assert!(grr >= 0.0);
        } else {
            prop_assert_eq!(k.start_cohort, 0, "absent only without a start cohort");
        }
    }

    #[test]
    fn input_order_does_not_change_any_kpi(cs in changes(), p in period(), seed in any::<u64>()) {
        let mut shuffled = cs.clone();
        // Deterministic shuffle from the seed.
        let mut x = seed | 1;
        for i in (1..shuffled.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            shuffled.swap(i, (x % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(revenue_kpis(&cs, p, eur()).unwrap(), revenue_kpis(&shuffled, p, eur()).unwrap());
    }

    /// The order is the full timestamp (µs), the event id only breaks
    /// ties: renaming event ids so their string order agrees with time
    /// changes nothing, and the result does not depend on input order.
    #[test]
    fn any_timestamp_order_gives_the_kpis_of_the_time_order(
        cs in crowded_changes(), start_day in 0..3i64, len in 1..3i64, seed in any::<u64>(),
    ) {
        let p = Period::new(
            Timestamp::from_seconds(BASE + start_day * 86_400),
            Timestamp::from_seconds(BASE + (start_day + len) * 86_400),
        ).unwrap();
        let mut ranked = cs.clone();
        ranked.sort_by(|a, b| (a.at, &a.seq).cmp(&(b.at, &b.seq)));
        for (i, c) in ranked.iter_mut().enumerate() {
            c.seq = format!("{i:06}");
        }
        let mut x = seed | 1;
        for i in (1..ranked.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            ranked.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let kinds = |cs: &[MrrChange]| -> Vec<_> {
            movements(cs, eur()).unwrap().into_iter().map(|m| (m.account, m.at, m.kind, m.before, m.after)).collect()
        };
        prop_assert_eq!(kinds(&cs), kinds(&ranked));
        prop_assert_eq!(revenue_kpis(&cs, p, eur()).unwrap(), revenue_kpis(&ranked, p, eur()).unwrap());
    }

    #[test]
    fn nps_stays_within_minus_100_and_100(scores in prop::collection::vec(0..=10u8, 1..500)) {
        let v = nps(&scores).value().unwrap();
        prop_assert!((-100.0..=100.0).contains(&v));
    }

    #[test]
    fn chs_never_decreases_when_a_sub_score_rises(
        subs in prop::collection::vec(prop::option::of(0.0..150.0f64), 4),
        which in 0..4usize,
        rise in 0.0..100.0f64,
    ) {
        let model = ScoringModel::default();
        let mut higher = subs.clone();
        higher[which] = Some(subs[which].unwrap_or(0.0) + rise);
        // Adding data where there was none is not a "rise"; compare only
        // present sub-scores.
        prop_assume!(subs[which].is_some());
        let before = combine(&model, &subs).map(|r| r.0);
        let after = combine(&model, &higher).map(|r| r.0);
        prop_assert!(after >= before, "{before:?} -> {after:?}");
    }

    #[test]
    fn hysteresis_keeps_the_band_while_the_score_stays_inside_the_margin(
        prev in 0..4usize,
        offset in -1.0..1.0f64,
        margin in 0.0..5.0f64,
    ) {
        let bands = Bands::default();
        let all = [retain_domain::health::Band::Red, retain_domain::health::Band::Yellow, retain_domain::health::Band::Green, retain_domain::health::Band::Thriving];
        let edges = [f64::NEG_INFINITY, 40.0, 70.0, 100.0, f64::INFINITY];
        let prev_band = all[prev];
        // A score near either edge of prev's band, within the margin.
        for edge in [edges[prev], edges[prev + 1]] {
            if edge.is_finite() {
                let score = edge + offset * margin;
                prop_assert_eq!(bands.next(Some(prev_band), score, margin), prev_band, "score {} edge {}", score, edge);
            }
        }
    }

    /// Two triggers of one rule inside each other's cooldown: whichever
    /// arrives second is suppressed, in either time order.
    #[test]
    fn cooldown_does_not_depend_on_arrival_order(
        a in 0..1_000_000_000_000i64, gap in -2_000_000_000_000i64..2_000_000_000_000, cooldown_s in 0..1_000_000i64,
    ) {
        let (ta, tb) = (Timestamp::from_micros(a), Timestamp::from_micros(a + gap));
        let sent = |at| [Sent { rule: Rule::BandRed, at }];
        let ab = cooldown(&sent(ta), Rule::BandRed, tb, cooldown_s).is_some();
        let ba = cooldown(&sent(tb), Rule::BandRed, ta, cooldown_s).is_some();
        prop_assert_eq!(ab, ba);
        prop_assert_eq!(ab, cooldown_s > 0 && gap.abs() < cooldown_s * 1_000_000);
    }

    /// No accepted positive subscription amount becomes MRR 0 (a churn).
    #[test]
    fn an_accepted_positive_amount_never_becomes_mrr_0(minor in 1..1_000i64, annual in any::<bool>()) {
        let interval = if annual { BillingInterval::Annual } else { BillingInterval::Monthly };
        let s = RawSignal {
            event_id: "e".into(),
            account_id: "a".into(),
            occurred_at: Some(Timestamp::from_seconds(BASE)),
            body: Some(RawBody::Subscription { amount: Money::new(minor, eur()), interval: Some(interval), churn_reason: None, add_on: false, opening: false }),
        };
        let rules = Rules { now: Timestamp::from_seconds(BASE), max_future_seconds: 0, max_past_seconds: None, base_currency: eur(), checklist: &[] };
        let accepted = signal::validate(&s, &rules).is_ok();
        prop_assert_eq!(accepted, monthly_mrr(minor, interval) > 0);
    }

    #[test]
    fn notification_ids_are_stable_under_replay_and_differ_across_triggers(
        tenant in "[a-z]{1,8}", account in "[a-z0-9]{1,8}", e1 in "[a-z0-9]{1,12}", e2 in "[a-z0-9]{1,12}",
    ) {
        let a = notification_id(&tenant, &account, Rule::NpsDetractor, &e1);
        prop_assert_eq!(&a, &notification_id(&tenant, &account, Rule::NpsDetractor, &e1));
        prop_assert_ne!(&a, &notification_id(&tenant, &account, Rule::NpsPassive, &e1));
        if e1 != e2 {
            prop_assert_ne!(&a, &notification_id(&tenant, &account, Rule::NpsDetractor, &e2));
        }
        // Length-prefixing keeps ("ab","c") and ("a","bc") apart.
        prop_assert_ne!(notification_id("ab", "c", Rule::Churn, "x"), notification_id("a", "bc", Rule::Churn, "x"));
    }
}
