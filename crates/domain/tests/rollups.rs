//! Rollups give exactly the KPIs of the list-based functions, whatever
//! the split into account-days and the order and grouping of merges; and
//! the edge rules the rollups add (opening balances, payment_failed as
//! churn, costs spread over periods).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};

use common::{change, eur};
use proptest::prelude::*;
use retain_domain::health::BillingStatus;
use retain_domain::kpi::adoption::{self, SessionFact};
use retain_domain::kpi::experience::{self, CsatThresholds, Scale};
use retain_domain::kpi::revenue::{
    MovementKind, MrrChange, MrrState, OpeningBalance, movements, opening_state, revenue_kpis,
    revenue_kpis_with_openings,
};
use retain_domain::kpi::rollup::Rollup;
use retain_domain::kpi::rollup::adoption::AdoptionRollup;
use retain_domain::kpi::rollup::billing::{
    BillingChange, ImpliedChurn, is_payment_failed_churned, payment_failed_churns,
    with_payment_failed_churn,
};
use retain_domain::kpi::rollup::cost::{CostFact, CostRollup};
use retain_domain::kpi::rollup::experience::{ExperienceRollup, LatestAnswers};
use retain_domain::kpi::rollup::revenue::{AccountRevenue, RevenueRollup, revenue_rollup};
use retain_domain::signal::CostKind;
use retain_domain::{Exact, Money, MoneyMeasure, Period, Ratio, Timestamp};

const BASE: i64 = 1_704_067_200; // 2024-01-01
const DAY: i64 = 86_400;

/// xorshift step.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Merges `items` by repeatedly merging two randomly chosen ones: any order
/// and any grouping.
fn fold_random<R: Rollup + Clone>(mut items: Vec<R>, seed: u64) -> R {
    let mut x = seed | 1;
    if items.is_empty() {
        return R::default();
    }
    while items.len() > 1 {
        let i = (next(&mut x) % items.len() as u64) as usize;
        let a = items.swap_remove(i);
        let j = (next(&mut x) % items.len() as u64) as usize;
        // Either side may be the receiver.
        items[j] = if next(&mut x).is_multiple_of(2) {
            a.merged(&items[j])
        } else {
            items[j].clone().merged(&a)
        };
        if next(&mut x).is_multiple_of(5) {
            items.push(R::default()); // the identity changes nothing
        }
    }
    items.pop().unwrap()
}

fn changes() -> impl Strategy<Value = Vec<MrrChange>> {
    prop::collection::vec(
        (
            0..6u8,
            0..120i64,
            0..DAY,
            prop_oneof![Just(0i64), 1..50_000i64],
            0..5u8,
        ),
        0..60,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (acct, day, sec, mrr, reason))| {
                let mut c = change(
                    &format!("acct{acct}"),
                    Timestamp::from_seconds(BASE + day * DAY + sec),
                    mrr,
                );
                c.seq = format!("e{i}");
                c.churn_reason = (mrr == 0 && reason > 0).then(|| {
                    retain_domain::kpi::revenue::ChurnReason::ALL[usize::from(reason - 1)]
                });
                c
            })
            .collect()
    })
}

fn openings() -> impl Strategy<Value = Vec<OpeningBalance>> {
    prop::collection::vec((0..8u8, 0..120i64, 0..50_000i64), 0..6).prop_map(|v| {
        v.into_iter()
            .map(|(acct, day, mrr)| OpeningBalance {
                account: format!("acct{acct}"),
                at: Timestamp::from_seconds(BASE + day * DAY),
                mrr: Money::new(mrr, eur()),
            })
            .collect()
    })
}

fn period() -> impl Strategy<Value = Period> {
    (0..110i64, 1..60i64).prop_map(|(s, len)| {
        Period::new(
            Timestamp::from_seconds(BASE + s * DAY),
            Timestamp::from_seconds(BASE + (s + len) * DAY),
        )
        .unwrap()
    })
}

/// Per account: its opening state and its rows by UTC day number.
type Rows = BTreeMap<String, (MrrState, Vec<(i64, AccountRevenue)>)>;

/// What the metrics service does: one row per account-day, built in day
/// order from the state the previous row left (or the opening state).
fn day_rows(changes: &[MrrChange], openings: &[OpeningBalance]) -> Rows {
    let mut by: BTreeMap<String, BTreeMap<i64, Vec<MrrChange>>> = BTreeMap::new();
    for c in changes {
        by.entry(c.account.clone())
            .or_default()
            .entry(c.at.day_number())
            .or_default()
            .push(c.clone());
    }
    for o in openings {
        by.entry(o.account.clone()).or_default();
    }
    let index = retain_domain::kpi::rollup::revenue::opening_balances(openings, eur()).unwrap();
    by.into_iter()
        .map(|(account, days)| {
            let first = days.values().flatten().map(|c| c.at).min();
            let initial = opening_state(index.get(account.as_str()).copied(), first);
            let mut state = initial;
            let rows = days
                .into_iter()
                .map(|(day, cs)| {
                    let row = AccountRevenue::from_changes(state, &cs, eur()).unwrap();
                    state = row.after;
                    (day, row)
                })
                .collect();
            (account, (initial, rows))
        })
        .collect()
}

/// The period's portfolio rollup from day rows, merged in random order and
/// grouping at every level.
fn rollup_from_rows(rows: &Rows, p: Period, seed: u64) -> RevenueRollup {
    let (s, e) = (p.start.day_number(), p.end.day_number());
    let mut x = seed | 1;
    let per_account: Vec<RevenueRollup> = rows
        .values()
        .map(|(initial, rows)| {
            let pick = |f: &dyn Fn(i64) -> bool| -> Vec<AccountRevenue> {
                rows.iter()
                    .filter(|(d, _)| f(*d))
                    .map(|(_, r)| r.clone())
                    .collect()
            };
            let before = fold_random(pick(&|d| d < s), next(&mut x));
            let at_start = before.end_state().unwrap_or(*initial);
            let inside = fold_random(pick(&|d| d >= s && d < e), next(&mut x));
            RevenueRollup::account(at_start, &inside)
        })
        .collect();
    fold_random(per_account, next(&mut x))
}

fn sessions() -> impl Strategy<Value = Vec<SessionFact>> {
    prop::collection::vec((0..5u8, 0..6u8, 0..70i64, 0..DAY, 0..7_200i64), 0..120).prop_map(|v| {
        v.into_iter()
            .map(|(a, u, day, sec, seconds)| SessionFact {
                account: format!("a{a}"),
                user: format!("u{u}"),
                at: Timestamp::from_seconds(BASE + day * DAY + sec),
                seconds,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Revenue: day rows merged in any order and grouping give exactly the
    /// KPIs of `revenue_kpis_with_openings` (and of `revenue_kpis` without
    /// opening balances).
    #[test]
    fn revenue_from_merged_day_rows_equals_the_list_based_kpis(
        cs in changes(), ob in openings(), p in period(), seed in any::<u64>(), with_openings in any::<bool>(),
    ) {
        let ob = if with_openings { ob } else { Vec::new() };
        let expected = revenue_kpis_with_openings(&cs, &ob, p, eur()).unwrap();
        if ob.is_empty() {
            prop_assert_eq!(&expected, &revenue_kpis(&cs, p, eur()).unwrap());
        }
        let rows = day_rows(&cs, &ob);
        prop_assert_eq!(&rollup_from_rows(&rows, p, seed).kpis(p, eur()).unwrap(), &expected);
        prop_assert_eq!(&revenue_rollup(&cs, &ob, p, eur()).unwrap().kpis(p, eur()).unwrap(), &expected);
        prop_assert!(expected.bridge.balances());
    }

    /// A quarter is the merge of each account's months, not of monthly
    /// portfolio rollups: per-account rows of three consecutive periods
    /// merged give the KPIs of their union.
    #[test]
    fn account_rows_of_consecutive_periods_merge_into_their_union(
        cs in changes(), ob in openings(), start in 0..60i64, a in 1..20i64, b in 1..20i64, c in 1..20i64, seed in any::<u64>(),
    ) {
        let d = |n: i64| Timestamp::from_seconds(BASE + n * DAY);
        let union = Period::new(d(start), d(start + a + b + c)).unwrap();
        let parts = [(start, start + a), (start + a, start + a + b), (start + a + b, start + a + b + c)];
        let rows = day_rows(&cs, &ob);
        let base_day = BASE / DAY;
        let (start, parts) = (base_day + start, parts.map(|(s, e)| (base_day + s, base_day + e)));
        let mut x = seed | 1;
        let per_account: Vec<RevenueRollup> = rows.values().map(|(initial, rows)| {
            let before: Vec<AccountRevenue> = rows.iter().filter(|(day, _)| *day < start).map(|(_, r)| r.clone()).collect();
            let at_start = fold_random(before, next(&mut x)).end_state().unwrap_or(*initial);
            let months: Vec<AccountRevenue> = parts.iter().map(|&(s, e)| {
                let v = rows.iter().filter(|(day, _)| *day >= s && *day < e).map(|(_, r)| r.clone()).collect();
                fold_random(v, next(&mut x))
            }).collect();
            RevenueRollup::account(at_start, &fold_random(months, next(&mut x)))
        }).collect();
        let merged = fold_random(per_account, next(&mut x));
        prop_assert_eq!(merged.kpis(union, eur()).unwrap(), revenue_kpis_with_openings(&cs, &ob, union, eur()).unwrap());
    }

    /// Experience: answers split into random rows and merged in any order
    /// give exactly nps, csat, ces, fcr, renewal_rate.
    #[test]
    fn experience_from_merged_rows_equals_the_list_based_kpis(
        nps in prop::collection::vec((0..=10u8, 0..8u8), 0..80),
        csat in prop::collection::vec((any::<bool>(), 1..=10u8, 0..8u8), 0..80),
        ces in prop::collection::vec((any::<bool>(), 1..=7u8, 0..8u8), 0..80),
        tickets in prop::collection::vec((1..4u32, 0..8u8), 0..40),
        renewals in prop::collection::vec((any::<bool>(), 0..8u8), 0..20),
        five in 1..=5u8, ten in 1..=10u8, seed in any::<u64>(),
    ) {
        let thresholds = CsatThresholds { one_to_five: five, one_to_ten: ten };
        let csat: Vec<(Scale, u8)> = csat.into_iter().map(|(f, s, g)| if f { (Scale::OneToFive, 1 + (s - 1) % 5, g) } else { (Scale::OneToTen, s, g) }).map(|(a, b, _)| (a, b)).collect();
        let ces: Vec<(Scale, u8)> = ces.into_iter().map(|(f, s, _)| if f { (Scale::OneToFive, 1 + (s - 1) % 5) } else { (Scale::OneToSeven, s) }).collect();
        let mut rows = vec![ExperienceRollup::default(); 8];
        for &(s, g) in &nps { prop_assert!(rows[usize::from(g)].add_nps(s)); }
        for (i, &(scale, s)) in csat.iter().enumerate() { prop_assert!(rows[i % 8].add_csat(scale, s)); }
        for (i, &(scale, s)) in ces.iter().enumerate() { prop_assert!(rows[(i * 3) % 8].add_ces(scale, s)); }
        for &(c, g) in &tickets { rows[usize::from(g)].add_resolution(c); }
        for &(r, g) in &renewals { rows[usize::from(g)].add_renewal(r); }
        let m = fold_random(rows, seed);
        let scores: Vec<u8> = nps.iter().map(|a| a.0).collect();
        prop_assert_eq!(m.nps(), experience::nps(&scores));
        prop_assert_eq!(m.csat(thresholds), experience::csat(&csat, thresholds));
        prop_assert_eq!(m.ces(), experience::ces(&ces));
        let contacts: Vec<u32> = tickets.iter().map(|t| t.0).collect();
        prop_assert_eq!(m.fcr(), experience::fcr(&contacts));
        let renewed = renewals.iter().filter(|r| r.0).count() as u64;
        prop_assert_eq!(m.renewal_rate(), experience::renewal_rate(renewed, renewals.len() as u64));
        let (p, pa, d) = m.nps_buckets();
        prop_assert_eq!(p + pa + d, scores.len() as u64);
    }

    /// The latest answer per user survives any merge order.
    #[test]
    fn latest_answers_merge_in_any_order(
        answers in prop::collection::vec((0..6u32, 0..1_000i64, 0..=10u8, 0..6u8), 0..60), seed in any::<u64>(),
    ) {
        let mut rows = vec![LatestAnswers::default(); 6];
        let mut latest: HashMap<u32, ((i64, String), u8)> = HashMap::new();
        for (i, &(user, at, score, g)) in answers.iter().enumerate() {
            let id = format!("e{i}");
            rows[usize::from(g)].add(user, Timestamp::from_seconds(at), &id, score);
            let e = latest.entry(user).or_insert(((at, id.clone()), score));
            if (at, &id) > (e.0.0, &e.0.1) { *e = ((at, id), score); }
        }
        let m = fold_random(rows, seed);
        let n = latest.len();
        let expected = (n > 0).then(|| latest.values().map(|v| u64::from(v.1)).sum::<u64>() as f64 / n as f64);
        prop_assert_eq!(m.mean(), expected);
    }

    /// Adoption: one row per account-day, merged in any order, gives
    /// exactly active(), sessions_per_day, time_in_app and
    /// product_usage_rate over the same sessions.
    #[test]
    fn adoption_from_merged_day_rows_equals_the_list_based_kpis(
        ss in sessions(), start in 0..60i64, len in 1..40i64, target in 0.5..5.0f64, seed in any::<u64>(),
    ) {
        let p = Period::new(Timestamp::from_seconds(BASE + start * DAY), Timestamp::from_seconds(BASE + (start + len) * DAY)).unwrap();
        let mut users: HashMap<(String, String), u32> = HashMap::new();
        let mut accounts: HashMap<String, u32> = HashMap::new();
        let mut by_day: BTreeMap<(String, i64), Vec<SessionFact>> = BTreeMap::new();
        for s in &ss {
            by_day.entry((s.account.clone(), s.at.day_number())).or_default().push(s.clone());
        }
        let mut all_rows = Vec::new();
        let mut period_rows = Vec::new();
        for ((_, day), v) in &by_day {
            let row = AdoptionRollup::from_sessions(
                v,
                |a, u| { let k = users.len() as u32; *users.entry((a.to_owned(), u.to_owned())).or_insert(k) },
                |a| { let k = accounts.len() as u32; *accounts.entry(a.to_owned()).or_insert(k) },
            );
            if *day >= p.start.day_number() && *day < p.end.day_number() {
                period_rows.push(row.clone());
            }
            all_rows.push(row);
        }
        let all = fold_random(all_rows, seed);
        let in_p = fold_random(period_rows, seed.rotate_left(7));
        prop_assert_eq!(all.active(p.end).unwrap(), adoption::active(&ss, p.end));
        prop_assert_eq!(in_p.sessions_per_day(p), adoption::sessions_per_day(&ss, p));
        prop_assert_eq!(in_p.time_in_app(), adoption::time_in_app(&ss, p));
        let paying_names: HashSet<&str> = ["a0", "a2", "a3", "a9"].into_iter().collect();
        let paying: HashSet<u32> = paying_names.iter().filter_map(|a| accounts.get(*a).copied()).chain([10_000]).collect();
        // Paying accounts without any session count in the denominator on both sides.
        let mut paying_names = paying_names;
        paying_names.insert("never-seen");
        let paying_names: HashSet<&str> = paying_names.into_iter().filter(|a| accounts.contains_key(*a) || *a == "never-seen").collect();
        prop_assert_eq!(
            in_p.product_usage_rate(p, &paying, target),
            adoption::product_usage_rate(&ss, p, &paying_names, target)
        );
    }

    /// Costs: the rollups of adjacent spans add up to the rollup of their
    /// union, exactly, and equal `prorated_spend` over the union.
    #[test]
    fn cost_rollups_of_adjacent_spans_add_up_to_their_union(
        costs in prop::collection::vec((any::<bool>(), 1..10_000_000i64, 0..200i64, 1..100i64, prop_oneof![Just(0i64), 0..DAY]), 0..6),
        cuts in prop::collection::vec(1..30i64, 1..6), start in 0..150i64, seed in any::<u64>(),
    ) {
        let facts: Vec<CostFact> = costs.iter().map(|&(cs, amount, from, len, sec)| CostFact {
            kind: if cs { CostKind::CustomerSuccess } else { CostKind::Acquisition },
            amount: Money::new(amount, eur()),
            covers: Period::new(Timestamp::from_seconds(BASE + from * DAY + sec), Timestamp::from_seconds(BASE + (from + len) * DAY)).unwrap(),
        }).collect();
        let mut edges = vec![start];
        for c in &cuts { edges.push(edges.last().unwrap() + c); }
        let d = |n: i64| Timestamp::from_seconds(BASE + n * DAY);
        let parts: Result<Vec<CostRollup>, _> = edges.windows(2).map(|w| CostRollup::from_costs(&facts, Period::new(d(w[0]), d(w[1])).unwrap(), eur())).collect();
        let union = Period::new(d(edges[0]), d(*edges.last().unwrap())).unwrap();
        let whole = CostRollup::from_costs(&facts, union, eur());
        // Spans of unrelated microsecond lengths can overflow 128-bit
        // fractions (prorated_spend's limit); compare where they fit.
        prop_assume!(parts.is_ok() && whole.is_ok());
        let merged = fold_random(parts.unwrap(), seed);
        prop_assume!(merged.customer_success != Exact::Absent(retain_domain::Absence::Overflow) && merged.acquisition != Exact::Absent(retain_domain::Absence::Overflow));
        prop_assert_eq!(merged, whole.unwrap());
    }
}

fn jan(day: u32) -> Timestamp {
    Timestamp::from_ymd(2024, 1, day)
}

/// An imported customer paying 5,000 before the import's first signal is
/// in the start cohort, not new; its later rise is an expansion; and a
/// backfill of its real history replaces the opening balance.
#[test]
fn opening_balance_keeps_imported_customers_out_of_new() {
    let feb = Period::month(2024, 2);
    let imported = vec![change("acme", Timestamp::from_ymd(2024, 2, 10), 7_000)];
    let opening = vec![OpeningBalance {
        account: "acme".into(),
        at: jan(15),
        mrr: Money::new(5_000, eur()),
    }];
    // Without the opening balance the first imported change is a new account.
    let naive = revenue_kpis(&imported, feb, eur()).unwrap();
    assert_eq!((naive.new_accounts, naive.start_cohort), (1, 0));
    let k = revenue_kpis_with_openings(&imported, &opening, feb, eur()).unwrap();
    assert_eq!((k.new_accounts, k.start_cohort), (0, 1));
    assert_eq!(k.bridge.start.minor, 5_000);
    assert_eq!(k.bridge.expansion.minor, 2_000);
    assert_eq!(k.bridge.new.minor, 0);
    assert!(k.bridge.balances());
    assert_eq!(k.nrr, retain_domain::Measure::Value(140.0));
    // The rollup agrees.
    let r = revenue_rollup(&imported, &opening, feb, eur()).unwrap();
    assert_eq!(r.kpis(feb, eur()).unwrap(), k);
    // The January of the import: constant opening MRR, no movement.
    let january =
        revenue_kpis_with_openings(&imported, &opening, Period::month(2024, 1), eur()).unwrap();
    assert_eq!(
        (january.bridge.start.minor, january.bridge.end.minor),
        (5_000, 5_000)
    );
    assert_eq!(january.new_accounts, 0);
    // An opening of 0 is a former customer: coming back is a reactivation.
    let former = vec![OpeningBalance {
        mrr: Money::new(0, eur()),
        ..opening[0].clone()
    }];
    let k = revenue_kpis_with_openings(&imported, &former, feb, eur()).unwrap();
    assert_eq!((k.new_accounts, k.bridge.reactivation.minor), (0, 7_000));
    // Real history older than the opening arrives: it replaces the opening.
    let mut backfilled = imported.clone();
    backfilled.push(change("acme", Timestamp::from_ymd(2023, 6, 1), 5_000));
    let k =
        revenue_kpis_with_openings(&backfilled, &opening, Period::month(2023, 6), eur()).unwrap();
    assert_eq!(k.new_accounts, 1);
    let with_backfill = revenue_kpis_with_openings(&backfilled, &opening, feb, eur()).unwrap();
    let without_opening = revenue_kpis(&backfilled, feb, eur()).unwrap();
    assert_eq!(with_backfill, without_opening);
}

fn billing(at: Timestamp, status: BillingStatus) -> BillingChange {
    BillingChange {
        at,
        seq: format!("b{}", at.micros()),
        status,
    }
}

/// payment_failed for more than N days counts as churn: at exactly N days
/// it does not, N days and a moment later (and at N + 1 days) it does.
#[test]
fn payment_failed_counts_as_churn_after_more_than_n_days() {
    const N: u32 = 14;
    let since = jan(3);
    let history = vec![
        billing(jan(1), BillingStatus::Current),
        billing(since, BillingStatus::PaymentFailed),
    ];
    let at_n = since.plus(i64::from(N) * DAY);
    assert!(
        !is_payment_failed_churned(&history, at_n, N),
        "exactly N days is not more than N"
    );
    assert!(is_payment_failed_churned(&history, at_n.plus_micros(1), N));
    let at_n_plus_1 = since.plus(i64::from(N + 1) * DAY);
    assert!(is_payment_failed_churned(&history, at_n_plus_1, N));
    assert_eq!(
        payment_failed_churns(&history, at_n_plus_1, N),
        [ImpliedChurn {
            failed_since: since,
            churned_at: at_n,
            recovered_at: None
        }]
    );
    // Recovering at exactly N days: never churned. A day later: churned, then back.
    let mut recovered = history.clone();
    recovered.push(billing(at_n, BillingStatus::Current));
    assert!(payment_failed_churns(&recovered, jan(31), N).is_empty());
    let mut late = history.clone();
    late.push(billing(at_n_plus_1, BillingStatus::Current));
    let churns = payment_failed_churns(&late, jan(31), N);
    assert_eq!(churns.len(), 1);
    assert!(!is_payment_failed_churned(&late, jan(31), N));
    // In the revenue KPIs: a churn dated N days after the failure, then a
    // reactivation at recovery; the real price change inside is held back.
    let subs = vec![
        change("acme", Timestamp::from_ymd(2023, 12, 1), 9_000),
        change("acme", jan(17).plus(3_600), 9_500),
    ];
    let applied = with_payment_failed_churn(&subs, &churns);
    let kinds: Vec<(MovementKind, Timestamp, i64)> = movements(&applied, eur())
        .unwrap()
        .into_iter()
        .map(|m| (m.kind, m.at, m.after))
        .collect();
    assert_eq!(
        kinds,
        [
            (MovementKind::New, Timestamp::from_ymd(2023, 12, 1), 9_000),
            (MovementKind::Churn, at_n, 0),
            (MovementKind::Reactivation, at_n_plus_1, 9_500),
        ]
    );
    let k = revenue_kpis(&applied, Period::month(2024, 1), eur()).unwrap();
    assert_eq!((k.churned_accounts, k.start_cohort), (1, 1));
    assert!(k.bridge.balances());
}

/// A CS cost covering 15 Jan – 15 Feb puts 17/31 of it in January and
/// 14/31 in February; the two months add up to the whole, and CRC uses the
/// month's share.
#[test]
fn cost_spread_across_a_period_boundary() {
    let cost = [CostFact {
        kind: CostKind::CustomerSuccess,
        amount: Money::new(31_000, eur()),
        covers: Period::new(jan(15), Timestamp::from_ymd(2024, 2, 15)).unwrap(),
    }];
    let january = CostRollup::from_costs(&cost, Period::month(2024, 1), eur()).unwrap();
    let february = CostRollup::from_costs(&cost, Period::month(2024, 2), eur()).unwrap();
    assert_eq!(
        january.customer_success,
        Exact::Value(Ratio::integer(17_000))
    );
    assert_eq!(
        february.customer_success,
        Exact::Value(Ratio::integer(14_000))
    );
    assert_eq!(
        january.merged(&february).customer_success,
        Exact::Value(Ratio::integer(31_000))
    );
    assert_eq!(january.acquisition, Exact::Value(Ratio::ZERO));
    assert_eq!(january.crc(eur(), 4), MoneyMeasure::ratio(eur(), 17_000, 4));
    assert_eq!(
        february.cac(eur(), 0).minor,
        Exact::Absent(retain_domain::Absence::ZeroDenominator)
    );
}

/// A day's signals become the row the add_* calls would build; only the
/// latest renewal signal of the day counts, once.
#[test]
fn experience_row_from_one_account_days_signals() {
    use retain_domain::signal::{RenewalOutcome, Signal, SignalBody, SurveyKind, TicketStatus};
    let at = |h: u32| Timestamp::from_ymd_hms(2024, 1, 5, h, 0, 0);
    let sig = |id: &str, h: u32, body: SignalBody| Signal {
        event_id: id.into(),
        account_id: "acme".into(),
        occurred_at: at(h),
        body,
    };
    let survey = |kind, scale, score| SignalBody::Survey {
        kind,
        scale,
        score,
        user_id: "u".into(),
        comment: String::new(),
    };
    let ticket = |status, contacts| SignalBody::Ticket {
        ticket_id: "t".into(),
        status,
        topics: vec![],
        contacts_until_resolution: contacts,
    };
    let renewal = |outcome, contract_end| SignalBody::Renewal {
        outcome,
        contract_end,
    };
    let signals = [
        sig("e1", 9, survey(SurveyKind::Nps, Scale::ZeroToTen, 9)),
        sig("e2", 9, survey(SurveyKind::Nps, Scale::ZeroToTen, 3)),
        sig("e3", 10, survey(SurveyKind::Csat, Scale::OneToFive, 4)),
        sig("e4", 10, survey(SurveyKind::Ces, Scale::OneToSeven, 2)),
        sig("e5", 11, ticket(TicketStatus::Opened, 0)),
        sig("e6", 12, ticket(TicketStatus::Resolved, 1)),
        // One contract: "due" sent first, "renewed" later — one renewal,
        // renewed. Another contract, only due: due, not renewed.
        sig("e7", 13, renewal(RenewalOutcome::Renewed, at(23))),
        sig("e8", 8, renewal(RenewalOutcome::Due, at(23))),
        sig("e9", 9, renewal(RenewalOutcome::Due, at(22))),
    ];
    let row = ExperienceRollup::from_signals(&signals);
    let mut expected = ExperienceRollup::default();
    expected.add_nps(9);
    expected.add_nps(3);
    expected.add_csat(Scale::OneToFive, 4);
    expected.add_ces(Scale::OneToSeven, 2);
    expected.add_resolution(1);
    expected.add_renewal(true);
    expected.add_renewal(false);
    assert_eq!(row, expected);
    assert_eq!(row.renewal_rate(), retain_domain::Measure::Value(50.0));
    assert_eq!(row.nps(), retain_domain::Measure::Value(0.0));
}
