//! Domain benchmarks, each beside a baseline measured in the same run.
//!
//! Run: `cargo bench -p retain-domain --bench domain`
//!
//! - `health/score_1m`: the default model scoring 1,000,000 snapshots,
//!   against `health/baseline_1m`, the same four-dimension arithmetic
//!   hand-inlined (the floor: no model interpretation, no explanation).
//! - `revenue/kpis_1m_changes`: the portfolio revenue KPIs of one month over
//!   1,000,000 subscription changes, against `revenue/baseline_1m_changes`,
//!   one pass summing the same amounts.
//! - `distinct/mau_*`: MAU at a month's end from 30 daily sets of active
//!   users (100,000 a day out of 1,000,000 dense user numbers, most of
//!   them regulars): the union of the 30 sets and its size, with the
//!   rollups' [`UserSet`] (roaring bitmaps), a sorted `Vec<u32>` merged
//!   pairwise, and the baseline `HashSet<u32>`; `distinct/build_*` builds
//!   the 30 daily sets from the day's user numbers.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use retain_domain::health::{self, BillingStatus, HealthSnapshot, ScoringModel};
use std::collections::HashSet;

use retain_domain::kpi::revenue::{MrrChange, revenue_kpis};
use retain_domain::kpi::rollup::adoption::UserSet;
use retain_domain::{Currency, Money, Period, Timestamp};

const N: usize = 1_000_000;

fn snapshots() -> Vec<HealthSnapshot> {
    let statuses = [
        BillingStatus::Current,
        BillingStatus::Overdue,
        BillingStatus::PaymentFailed,
        BillingStatus::Collections,
    ];
    (0..N)
        .map(|i| HealthSnapshot {
            active_days_30d: Some((i % 31) as f64),
            nps_mean: if i % 7 == 0 {
                None
            } else {
                Some((i % 11) as f64)
            },
            tickets_opened_30d: Some((i % 5) as f64),
            billing_status: Some(statuses[i % 4]),
            ..Default::default()
        })
        .collect()
}

/// The default model's arithmetic, hand-inlined.
fn baseline_score(s: &HealthSnapshot) -> f64 {
    let usage = (100.0 * s.active_days_30d.unwrap_or(0.0) / 20.0).min(150.0);
    let tickets = match s.tickets_opened_30d.unwrap_or(0.0) {
        t if t <= 0.0 => 100.0,
        t if t <= 1.0 => 70.0,
        t if t <= 2.0 => 40.0,
        _ => 0.0,
    };
    let billing = match s.billing_status {
        Some(BillingStatus::Current) => 100.0,
        Some(BillingStatus::Overdue) => 30.0,
        Some(BillingStatus::PaymentFailed) => 10.0,
        _ => 0.0,
    };
    let (nps, w) = match s.nps_mean {
        Some(n) => ((10.0 * n).min(100.0), 100.0),
        None => (0.0, 90.0),
    };
    let total = (40.0 * usage + 10.0 * nps + 20.0 * tickets + 30.0 * billing) / w;
    (total * 10.0).round() / 10.0
}

fn bench_health(c: &mut Criterion) {
    let snaps = snapshots();
    let model = ScoringModel::default();
    let mut g = c.benchmark_group("health");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.bench_function("score_1m", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for s in &snaps {
                if let Some(h) = health::score(&model, black_box(s), None) {
                    sum += h.score;
                }
            }
            black_box(sum)
        })
    });
    g.bench_function("baseline_1m", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for s in &snaps {
                sum += baseline_score(black_box(s));
            }
            black_box(sum)
        })
    });
    g.finish();
}

fn changes() -> Vec<MrrChange> {
    let eur = Currency::parse("EUR").expect("EUR");
    let start = Timestamp::from_ymd(2024, 1, 1);
    (0..N)
        .map(|i| {
            let mrr = if i % 13 == 0 {
                0
            } else {
                ((i * 7919) % 50_000) as i64 + 1_000
            };
            MrrChange {
                account: format!("acct-{}", i % 100_000),
                at: start.plus(((i * 104_729) % (180 * 86_400)) as i64),
                seq: i.to_string(),
                mrr: Money::new(mrr, eur),
                churn_reason: None,
            }
        })
        .collect()
}

fn bench_revenue(c: &mut Criterion) {
    let cs = changes();
    let eur = Currency::parse("EUR").expect("EUR");
    let may = Period::month(2024, 5);
    let mut g = c.benchmark_group("revenue");
    g.throughput(Throughput::Elements(N as u64));
    g.sample_size(10);
    g.bench_function("kpis_1m_changes", |b| {
        b.iter(|| black_box(revenue_kpis(black_box(&cs), may, eur).expect("kpis")))
    });
    g.bench_function("baseline_1m_changes", |b| {
        b.iter(|| {
            let mut sum = 0i128;
            for c in black_box(&cs) {
                if may.contains(c.at) {
                    sum += i128::from(c.mrr.minor);
                }
            }
            black_box(sum)
        })
    });
    g.finish();
}

const USERS: u64 = 1_000_000;
const DAILY: usize = 100_000;
const DAYS: usize = 30;

/// 30 days of active user numbers: 80 % from 200,000 regulars, the rest
/// from the whole population (xorshift, fixed seed).
fn daily_users() -> Vec<Vec<u32>> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..DAYS)
        .map(|_| {
            (0..DAILY)
                .map(|_| {
                    let r = next();
                    let range = if r % 5 == 0 { USERS } else { 200_000 };
                    (next() % range) as u32
                })
                .collect()
        })
        .collect()
}

fn sorted_set(users: &[u32]) -> Vec<u32> {
    let mut v = users.to_vec();
    v.sort_unstable();
    v.dedup();
    v
}

/// Union of two sorted, deduplicated vectors.
fn merge_sorted(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        out.push(x.min(y));
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

fn bench_distinct(c: &mut Criterion) {
    let days = daily_users();
    let roaring: Vec<UserSet> = days.iter().map(|d| d.iter().copied().collect()).collect();
    let sorted: Vec<Vec<u32>> = days.iter().map(|d| sorted_set(d)).collect();
    let hashed: Vec<HashSet<u32>> = days.iter().map(|d| d.iter().copied().collect()).collect();
    let mau = roaring
        .iter()
        .fold(UserSet::new(), |mut a, s| {
            a.union_with(s);
            a
        })
        .len();
    let vec_bytes: usize = sorted.iter().map(|v| v.len() * 4).sum();
    println!(
        "distinct: {DAYS} days x {DAILY} sessions over {USERS} users; MAU {mau}; \
         daily distinct {}; sorted Vec bytes for the 30 days {vec_bytes}",
        sorted[0].len()
    );
    let mut g = c.benchmark_group("distinct");
    g.sample_size(20);
    g.throughput(Throughput::Elements((DAYS * DAILY) as u64));
    g.bench_function("mau_roaring", |b| {
        b.iter(|| {
            let mut all = UserSet::new();
            for s in black_box(&roaring) {
                all.union_with(s);
            }
            black_box(all.len())
        })
    });
    g.bench_function("mau_sorted_vec", |b| {
        b.iter(|| {
            let mut all: Vec<u32> = Vec::new();
            for s in black_box(&sorted) {
                all = merge_sorted(&all, s);
            }
            black_box(all.len())
        })
    });
    g.bench_function("mau_baseline_hashset", |b| {
        b.iter(|| {
            let mut all: HashSet<u32> = HashSet::new();
            for s in black_box(&hashed) {
                all.extend(s.iter().copied());
            }
            black_box(all.len())
        })
    });
    g.bench_function("build_roaring", |b| {
        b.iter(|| {
            let sets: Vec<UserSet> = black_box(&days)
                .iter()
                .map(|d| d.iter().copied().collect())
                .collect();
            black_box(sets)
        })
    });
    g.bench_function("build_sorted_vec", |b| {
        b.iter(|| {
            let sets: Vec<Vec<u32>> = black_box(&days).iter().map(|d| sorted_set(d)).collect();
            black_box(sets)
        })
    });
    g.bench_function("build_baseline_hashset", |b| {
        b.iter(|| {
            let sets: Vec<HashSet<u32>> = black_box(&days)
                .iter()
                .map(|d| d.iter().copied().collect())
                .collect();
            black_box(sets)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_health, bench_revenue, bench_distinct);
criterion_main!(benches);
