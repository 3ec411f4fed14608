//! Bus throughput: publish + claim + ack, batched, on PostgreSQL and SQLite,
//! against a baseline measured in the same run.
//!
//! Run: `cargo bench -p retain-bus --bench bus_throughput`
//! Env: `BUS_BENCH_MESSAGES` (default 200000), `BUS_BENCH_BATCH` (1000),
//! `BUS_BENCH_CONSUMERS` (2), `BUS_BENCH_ROUNDS` (1: PostgreSQL rounds in a
//! row, each printed, for checking that no round collapses),
//! `RETAIN_BENCH_DATABASE_URL` (an admin URL of
//! an existing PostgreSQL; otherwise a durable throwaway cluster is started
//! with PostgreSQL's default fsync settings).
//!
//! Before the claim+ack-alone phase, PostgreSQL's statistics are refreshed
//! while the queue is empty (`VACUUM ANALYZE`), so the claim then plans a
//! 200,000-message backlog from the statistics of an empty table: the case
//! that used to make the claim collapse. The slowest single claim is
//! printed.
//!
//! The baseline is the floor for the same work: the same rows written with
//! one multi-row INSERT per batch into a bare table and deleted by id per
//! batch, with no keys, leases or fan-out.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::time::{Duration, Instant};

use retain_bus::{Bus, Headers, OutgoingMessage, Subscription, publish};
use retain_store::{PoolOptions, connect, migrate};
use retain_testkit::BenchPostgres;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait, Value};

const TOPIC: &str = "bench.recorded";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    backend: &'static str,
    /// Publishers and consumers running at once, end to end.
    bus: Duration,
    /// Publishing everything, alone.
    publish: Duration,
    /// Claiming and acking everything, alone.
    consume: Duration,
    /// The slowest single claim of the claim+ack phase.
    slowest_claim: Duration,
    baseline: Duration,
    messages: usize,
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

async fn bench_bus(db: &DatabaseConnection, n: usize, batch: usize, consumers: usize) -> Duration {
    let bus = Bus::new(db.clone());
    bus.subscribe(&Subscription::new(TOPIC, "bench"))
        .await
        .expect("subscribe");
    let payload = vec![7u8; 64];
    let start = Instant::now();
    let publisher = {
        let db = db.clone();
        let payload = payload.clone();
        tokio::spawn(async move {
            let mut i = 0;
            while i < n {
                let msgs: Vec<_> = (i..(i + batch).min(n))
                    .map(|k| OutgoingMessage {
                        key: Some(format!("tenant/acct-{}", k % 10_000)),
                        payload: payload.clone(),
                        headers: Headers::new(),
                        label: None,
                    })
                    .collect();
                let tx = db.begin().await.expect("begin");
                publish(&tx, TOPIC, &msgs).await.expect("publish");
                tx.commit().await.expect("commit");
                i += batch;
            }
        })
    };
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..consumers {
        let bus = bus.clone();
        let done = done.clone();
        workers.push(tokio::spawn(async move {
            let owner = format!("bench-{w}");
            while done.load(std::sync::atomic::Ordering::Relaxed) < n {
                let got = bus
                    .claim(TOPIC, "bench", &owner, batch, Duration::from_secs(60))
                    .await
                    .expect("claim");
                if got.is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                let ids: Vec<i64> = got.iter().map(|d| d.id).collect();
                let acked = bus.ack(&owner, &ids).await.expect("ack");
                done.fetch_add(
                    usize::try_from(acked).unwrap_or(0),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        }));
    }
    publisher.await.expect("publisher");
    for w in workers {
        w.await.expect("worker");
    }
    start.elapsed()
}

/// Publishes everything, then claims and acks everything: the cost of each
/// side on its own.
async fn bench_phases(
    db: &DatabaseConnection,
    n: usize,
    batch: usize,
) -> (Duration, Duration, Duration) {
    let bus = Bus::new(db.clone());
    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        // Statistics of a (nearly) empty queue, then a deep backlog.
        db.execute_unprepared("VACUUM ANALYZE bus_messages")
            .await
            .expect("vacuum analyze");
    }
    bus.subscribe(&Subscription::new(TOPIC, "phases"))
        .await
        .expect("subscribe");
    let start = Instant::now();
    for i in (0..n).step_by(batch) {
        let msgs: Vec<_> = (i..(i + batch).min(n))
            .map(|k| OutgoingMessage {
                key: Some(format!("tenant/acct-{}", k % 10_000)),
                payload: vec![7u8; 64],
                headers: Headers::new(),
                label: None,
            })
            .collect();
        let tx = db.begin().await.expect("begin");
        publish(&tx, TOPIC, &msgs).await.expect("publish");
        tx.commit().await.expect("commit");
    }
    let publish_time = start.elapsed();
    let start = Instant::now();
    let mut done = 0;
    let mut slowest = Duration::ZERO;
    while done < n {
        let claim_start = Instant::now();
        let got = bus
            .claim(TOPIC, "phases", "phases", batch, Duration::from_secs(60))
            .await
            .expect("claim");
        slowest = slowest.max(claim_start.elapsed());
        let ids: Vec<i64> = got.iter().map(|d| d.id).collect();
        done += usize::try_from(bus.ack("phases", &ids).await.expect("ack")).unwrap_or(0);
    }
    (publish_time, start.elapsed(), slowest)
}

async fn bench_baseline(db: &DatabaseConnection, n: usize, batch: usize) -> Duration {
    let backend = db.get_database_backend();
    let ddl = match backend {
        sea_orm::DatabaseBackend::Postgres => {
            "CREATE TABLE bench_raw (id BIGSERIAL PRIMARY KEY, payload BYTEA NOT NULL)"
        }
        _ => "CREATE TABLE bench_raw (id INTEGER PRIMARY KEY AUTOINCREMENT, payload BLOB NOT NULL)",
    };
    db.execute_unprepared(ddl)
        .await
        .expect("create baseline table");
    let payload = vec![7u8; 64];
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let rows = (i + batch).min(n) - i;
        let placeholders: Vec<String> = (1..=rows).map(|p| format!("(${p})")).collect();
        let values: Vec<Value> = (0..rows).map(|_| payload.clone().into()).collect();
        let tx = db.begin().await.expect("begin");
        tx.execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO bench_raw (payload) VALUES {}",
                placeholders.join(",")
            ),
            values,
        ))
        .await
        .expect("insert");
        tx.commit().await.expect("commit");
        i += batch;
    }
    loop {
        let deleted = db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                "DELETE FROM bench_raw WHERE id IN (SELECT id FROM bench_raw ORDER BY id LIMIT $1)",
                [i64::try_from(batch).unwrap_or(1000).into()],
            ))
            .await
            .expect("delete")
            .rows_affected();
        if deleted == 0 {
            break;
        }
    }
    start.elapsed()
}

async fn run_backend(
    backend: &'static str,
    url: &str,
    n: usize,
    batch: usize,
    consumers: usize,
) -> Run {
    let db = connect(
        url,
        &PoolOptions {
            max_connections: 8,
            ..PoolOptions::default()
        },
    )
    .await
    .expect("connect");
    migrate(&db).await.expect("migrate");
    // Warm-up: a small run so connection set-up and plan caching are not measured.
    bench_bus(&db, batch * 2, batch, consumers).await;
    let bus = bench_bus(&db, n, batch, consumers).await;
    // Only one group may see the phase run's messages: drop the first one.
    db.execute_unprepared("DELETE FROM bus_subscriptions")
        .await
        .expect("reset");
    let (publish, consume, slowest_claim) = bench_phases(&db, n, batch).await;
    let baseline = bench_baseline(&db, n, batch).await;
    Run {
        backend,
        bus,
        publish,
        consume,
        slowest_claim,
        baseline,
        messages: n,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass
    // nothing and expect a quick exit.
    if !std::env::args().any(|a| a == "--bench") {
        println!("bus_throughput: run with `cargo bench -p retain-bus --bench bus_throughput`");
        return;
    }
    let n = env_usize("BUS_BENCH_MESSAGES", 200_000);
    let batch = env_usize("BUS_BENCH_BATCH", 1_000);
    let consumers = env_usize("BUS_BENCH_CONSUMERS", 2);
    let rounds = env_usize("BUS_BENCH_ROUNDS", 1).max(1);
    let mut runs = Vec::new();

    let postgres = match BenchPostgres::start() {
        Ok(pg) => Some(pg),
        Err(e) => {
            println!("PostgreSQL skipped: {e}");
            None
        }
    };
    if let Some(pg) = &postgres {
        for round in 0..rounds {
            let url = pg
                .database(&format!("retain_bus_bench_{round}"))
                .await
                .expect("bench database");
            let run = run_backend("postgres", &url, n, batch, consumers).await;
            if rounds > 1 {
                println!(
                    "round {:>2}: end-to-end {:>7.0}/s, claim+ack alone {:>7.0}/s, slowest claim {:>6.1} ms",
                    round + 1,
                    rate(run.messages, run.bus),
                    rate(run.messages, run.consume),
                    run.slowest_claim.as_secs_f64() * 1e3
                );
            }
            runs.push(run);
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    runs.push(run_backend("sqlite", &sqlite_url, n, batch, 1).await);

    println!();
    println!(
        "bus throughput: {n} messages, batches of {batch}, {consumers} consumers on PostgreSQL (1 on SQLite)"
    );
    println!(
        "{:<10} {:>14} {:>14} {:>16} {:>13} {:>16} {:>9} {:>11}",
        "backend",
        "end-to-end/s",
        "publish/s",
        "claim+ack/s",
        "worst claim",
        "baseline rows/s",
        "e2e/base",
        "goal 50k/s"
    );
    for r in &runs {
        let bus = rate(r.messages, r.bus);
        let base = rate(r.messages, r.baseline);
        let goal = if r.backend == "postgres" {
            if bus >= 50_000.0 { "met" } else { "missed" }
        } else {
            "n/a"
        };
        println!(
            "{:<10} {:>14.0} {:>14.0} {:>16.0} {:>10.1} ms {:>16.0} {:>8.0}% {:>11}",
            r.backend,
            bus,
            rate(r.messages, r.publish),
            rate(r.messages, r.consume),
            r.slowest_claim.as_secs_f64() * 1e3,
            base,
            100.0 * bus / base,
            goal
        );
    }
    println!(
        "end-to-end: publishers and consumers at once; publish/s and claim+ack/s: each side alone;"
    );
    println!("baseline: the same rows INSERTed per batch into a bare table and DELETEd per batch.");
}
