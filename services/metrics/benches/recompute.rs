//! One account's recompute as it ages, on PostgreSQL: the cost of one
//! `signals.recorded` message (announcing a signal of a minute ago) for an
//! account of 1,000 users sending 500 sessions a day, once it has 10,000,
//! 100,000 and 1,000,000 stored signals (20 days, 200 days and five and a
//! half years of history; every 1,000th signal an NPS answer or a ticket,
//! the first a subscription) — reading what the message's signals can
//! reach (what the consumer does) beside reading the whole history (the
//! baseline, the same account in the same run).
//!
//! Run: `cargo bench -p retain-metrics --bench recompute`
//! Env: `RECOMPUTE_BENCH_SIZES` (`10000,100000,1000000`),
//! `RECOMPUTE_BENCH_ROUNDS` (5 messages per size and way),
//! `RETAIN_BENCH_DATABASE_URL` (an admin URL; otherwise a durable
//! throwaway cluster).

#![allow(clippy::unwrap_used, clippy::print_stdout)] // A benchmark fails loudly and prints.

use std::time::{Duration, Instant};

use prost::Message;
use retain_metrics::{Reading, Recompute};
use retain_proto::v1;
use retain_runtime::Clock;
use retain_testkit::{BenchPostgres, signal, ts};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, Value};

const DAY: i64 = 86_400;
const TENANT: &str = "bench";
/// Sessions the account sends a day.
const PER_DAY: i64 = 500;

/// The `size` stored signals of `account`, the newest a minute before
/// `now`, [`PER_DAY`] a day before it: signal `i` a session of user `i %
/// 1000`, but every 1,000th a sparse one (an NPS answer, a ticket) and the
/// first a subscription.
async fn add_signals(db: &DatabaseConnection, account: &str, size: usize, now: i64) {
    const CHUNK: usize = 10_000;
    let mut start = 0;
    while start < size {
        let end = (start + CHUNK).min(size);
        let (mut ids, mut at, mut kinds, mut payloads) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in start..end {
            let when = now - 60 - (size - 1 - i) as i64 * DAY / PER_DAY;
            let id = format!("s-{i:08}");
            let body = match i {
                0 => retain_testkit::subscription_in(50_000, "USD"),
                i if i % 1_000 == 500 => v1::signal::Body::Survey(v1::SurveyAnswer {
                    kind: v1::SurveyKind::Nps as i32,
                    score: (i % 11) as i32,
                    user_id: format!("u{}", i % 1_000),
                    ..Default::default()
                }),
                i if i % 1_000 == 900 => v1::signal::Body::Ticket(v1::SupportTicket {
                    ticket_id: format!("t-{i}"),
                    status: v1::TicketStatus::Opened as i32,
                    ..Default::default()
                }),
                i => retain_testkit::session(&format!("u{}", i % 1_000), 600),
            };
            let kind = match &body {
                v1::signal::Body::Session(_) => 11i16,
                v1::signal::Body::Survey(_) => 14,
                v1::signal::Body::Ticket(_) => 13,
                _ => 15,
            };
            let wire = v1::Signal {
                occurred_at: ts(when),
                ..signal(&id, account, body)
            };
            ids.push(id);
            at.push(when * 1_000_000);
            kinds.push(kind);
            payloads.push(wire.encode_to_vec());
        }
        let n = ids.len();
        db.execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "INSERT INTO signals (tenant_id, account_id, occurred_at, event_id, kind, mode, payload, ingested_at) \
             SELECT $1, $2, o, e, k, 1, p, $3 FROM UNNEST($4::int8[], $5::text[], $6::int2[], $7::bytea[]) AS t(o, e, k, p)",
            vec![
                TENANT.into(),
                account.into(),
                Value::BigInt(Some(retain_store::now_micros())),
                at.into(),
                ids.into(),
                kinds.into(),
                payloads.into(),
            ],
        ))
        .await
        .unwrap();
        assert_eq!(n, end - start);
        start = end;
    }
}

/// The median of `rounds` recompute-and-store passes reading `reading`, as
/// a message announcing a signal of a minute ago would.
async fn median(
    recompute: &Recompute,
    account: &str,
    reading: Reading,
    rounds: usize,
    now: i64,
) -> (Duration, i64) {
    let mut times = Vec::new();
    let mut read = 0;
    for _ in 0..rounds {
        let changed_from = Some(retain_domain::Timestamp::from_seconds(now - 60));
        let started = Instant::now();
        let computed = recompute
            .compute_reading(TENANT, account, v1::IngestMode::Live, changed_from, reading)
            .await
            .unwrap();
        recompute.store(&computed, None).await.unwrap();
        times.push(started.elapsed());
        read = computed.signals_read();
    }
    times.sort();
    (times[times.len() / 2], read)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("recompute: run with `cargo bench -p retain-metrics --bench recompute`");
        return;
    }
    let sizes: Vec<usize> = std::env::var("RECOMPUTE_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    let rounds: usize = std::env::var("RECOMPUTE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let pg = BenchPostgres::start().expect("PostgreSQL for the benchmark");
    let url = pg.database("retain_recompute_bench").await.unwrap();
    let db = retain_store::connect(&url, &retain_store::PoolOptions::default())
        .await
        .unwrap();
    retain_store::migrate(&db).await.unwrap();
    let now = retain_testkit::now();
    let settings = retain_runtime::Settings::default();
    let recompute = Recompute {
        db: db.clone(),
        tenants: std::sync::Arc::new(
            retain_metrics::tenants(&settings.tenants.parse().unwrap()).unwrap(),
        ),
        clock: Clock::manual(retain_domain::Timestamp::from_seconds(now)),
    };
    println!(
        "one account's recompute per message (median of {rounds}), PostgreSQL, 1,000 users, {PER_DAY} sessions a day"
    );
    println!(
        "{:>12} | {:>22} | {:>22} | {:>7}",
        "signals", "what changed reaches", "whole history (base)", "speedup"
    );
    for size in sizes {
        let account = format!("big-{size}");
        add_signals(&db, &account, size, now).await;
        db.execute_unprepared("ANALYZE signals").await.unwrap();
        let (windowed, read_w) = median(&recompute, &account, Reading::Changed, rounds, now).await;
        let (all, read_a) = median(&recompute, &account, Reading::All, rounds, now).await;
        println!(
            "{size:>12} | {:>9.1} ms ({read_w:>7} read) | {:>9.1} ms ({read_a:>7} read) | {:>6.0}x",
            windowed.as_secs_f64() * 1e3,
            all.as_secs_f64() * 1e3,
            all.as_secs_f64() / windowed.as_secs_f64()
        );
    }
}
