//! The metrics consumer beside ingestion, measured in one run on
//! PostgreSQL: how fast ingestion takes a generated history in, how fast
//! the metrics consumer turns it into snapshots (its backlog over time),
//! the latency from an `IngestSignals` reply to the updated snapshot being
//! readable, and the process's peak resident memory.
//!
//! With `METRICS_BENCH_HOT=N`, the history is instead N sessions of one
//! account's 1,000 users, all of the last hour, sent at full speed: does
//! the consumer keep up with ingestion sending to one account?
//!
//! Run: `cargo bench -p retain-metrics --bench consumer`
//! Env: `METRICS_BENCH_ACCOUNTS` (400), `METRICS_BENCH_CLIENTS` (4),
//! `METRICS_BENCH_HOT` (0: the generated portfolio),
//! `RETAIN_BENCH_DATABASE_URL` (an admin URL; otherwise a durable
//! throwaway cluster).

#![allow(clippy::unwrap_used, clippy::print_stdout)] // A benchmark fails loudly and prints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use retain_bus::{Bus, groups};
use retain_datagen::{Config, generate};
use retain_ingestion::topics;
use retain_ingestion::{Ingestion, IngestionSettings};
use retain_metrics::{Metrics, MetricsSettings};
use retain_proto::v1;
use retain_proto::v1::ingestion_service_client::IngestionServiceClient;
use retain_proto::v1::metrics_service_client::MetricsServiceClient;
use retain_runtime::{Clock, Context, Service, Settings};
use retain_testkit::procfs::memory_mib;
use retain_testkit::{BenchPostgres, READER, Served, WRITER, serve_in_process, with_token};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// `n` sessions of `account`'s 1,000 users over the last hour, in batches
/// of 1,000, oldest last (the senders pop from the end).
fn hot_batches(account: &str, n: usize, now: i64) -> Vec<v1::IngestSignalsRequest> {
    let signals: Vec<v1::Signal> = (0..n)
        .map(|i| v1::Signal {
            event_id: format!("hot-{i:09}"),
            account_id: account.to_owned(),
            occurred_at: Some(prost_types::Timestamp {
                seconds: now - 3_600 + (i as i64 * 3_540 / n as i64),
                nanos: 0,
            }),
            body: Some(v1::signal::Body::Session(v1::Session {
                user_id: format!("u{}", i % 1_000),
                duration_seconds: 300,
            })),
        })
        .collect();
    let mut batches: Vec<v1::IngestSignalsRequest> = signals
        .chunks(1_000)
        .map(|c| v1::IngestSignalsRequest {
            signals: c.to_vec(),
            ..Default::default()
        })
        .collect();
    batches.reverse();
    batches
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("consumer: run with `cargo bench -p retain-metrics --bench consumer`");
        return;
    }
    let accounts = env_usize("METRICS_BENCH_ACCOUNTS", 400);
    let clients = env_usize("METRICS_BENCH_CLIENTS", 4).max(1);
    let pg = BenchPostgres::start().expect("PostgreSQL for the benchmark");
    let url = pg.database("retain_metrics_bench").await.unwrap();
    let db = retain_store::connect(
        &url,
        &retain_store::PoolOptions {
            max_connections: 16,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    retain_store::migrate(&db).await.unwrap();

    let mut settings = Settings::default();
    settings.telemetry.log_filter = "warn".into();
    let _telemetry = retain_runtime::telemetry::init(&settings.telemetry, "metrics-bench").unwrap();
    settings.tenants.default.base_currency = "EUR".into();
    settings.server.max_message_bytes = 16 << 20;
    let ctx = Context::new(db.clone(), settings.clone(), Clock::system()).expect("valid tenants");
    let own = IngestionSettings {
        tenant_signals_per_second: 0,
        ..Default::default()
    };
    let services = Ingestion::build(&ctx, own)
        .unwrap()
        .merge(Metrics::build(&ctx, MetricsSettings::default()).unwrap());
    let Served {
        channel,
        shutdown,
        server,
        ..
    } = serve_in_process(&ctx, services, Duration::from_secs(5)).await;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let hot = env_usize("METRICS_BENCH_HOT", 0);
    let data = generate(&Config {
        accounts: if hot > 0 { 1 } else { accounts },
        now,
        ..Config::default()
    });
    let batches: Vec<v1::IngestSignalsRequest> = if hot > 0 {
        hot_batches(&data.accounts[0].id, hot, now)
    } else {
        data.in_delivery_order(3)
            .batches(1_000)
            .into_iter()
            .map(|b| b.request())
            .collect()
    };
    let total: usize = batches.iter().map(|b| b.signals.len()).sum();
    // The client's own share: the generated history and its batches, held
    // until the end; the services are up but idle here.
    let before_load_mib = memory_mib("self", "VmHWM:");

    // Backlog sampler: pending + leased metrics messages, every 250 ms.
    let bus = Bus::new(db.clone());
    let started = Instant::now();
    let sampler = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let s = bus
                    .stats(topics::SIGNALS_RECORDED.name(), groups::METRICS)
                    .await
                    .unwrap();
                samples.push((started.elapsed(), s.pending + s.leased));
                if samples.len() > 8
                    && s.pending + s.leased == 0
                    && samples[samples.len() - 2].1 == 0
                {
                    return samples;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };
    let queue = Arc::new(tokio::sync::Mutex::new(batches));
    let mut senders = Vec::new();
    for _ in 0..clients {
        let (queue, channel) = (queue.clone(), channel.clone());
        senders.push(tokio::spawn(async move {
            let mut client =
                IngestionServiceClient::new(channel).max_encoding_message_size(16 << 20);
            loop {
                let Some(batch) = queue.lock().await.pop() else {
                    return;
                };
                let r = client
                    .ingest_signals(with_token(WRITER, batch))
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(r.rejected, 0);
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }
    let ingested = started.elapsed();
    let samples = sampler.await.unwrap();
    let drained = samples.last().map_or(ingested, |s| s.0);

    // Latency: single LIVE signals at a steady pace, reply → snapshot.
    let mut ingest = IngestionServiceClient::new(channel.clone());
    let mut metrics = MetricsServiceClient::new(channel.clone());
    let mut latencies = Vec::new();
    for i in 0..100 {
        let account = data.accounts[i % data.accounts.len()].id.clone();
        let before = metrics
            .get_account_metrics(with_token(
                READER,
                v1::GetAccountMetricsRequest {
                    account_id: account.clone(),
                },
            ))
            .await
            .map(|r| r.into_inner().snapshot.unwrap().sessions_30d.unwrap_or(0))
            .unwrap_or(0);
        let signal = v1::Signal {
            event_id: format!("latency-{i}"),
            account_id: account.clone(),
            occurred_at: Some(prost_types::Timestamp {
                seconds: now - 60,
                nanos: 0,
            }),
            body: Some(v1::signal::Body::Session(v1::Session {
                user_id: "bench".into(),
                duration_seconds: 60,
            })),
        };
        ingest
            .ingest_signals(with_token(
                WRITER,
                v1::IngestSignalsRequest {
                    signals: vec![signal],
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
        let replied = Instant::now();
        loop {
            let now_sessions = metrics
                .get_account_metrics(with_token(
                    READER,
                    v1::GetAccountMetricsRequest {
                        account_id: account.clone(),
                    },
                ))
                .await
                .map(|r| r.into_inner().snapshot.unwrap().sessions_30d.unwrap_or(0))
                .unwrap_or(0);
            if now_sessions > before {
                break;
            }
            assert!(
                replied.elapsed() < Duration::from_secs(60),
                "{account}'s snapshot not updated within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        latencies.push(replied.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort();
    // Where the time goes: one recompute alone, called directly.
    let recompute = retain_metrics::Recompute {
        db: db.clone(),
        tenants: Arc::new(retain_metrics::tenants(&settings.tenants.parse().unwrap()).unwrap()),
        clock: Clock::system(),
    };
    let mut alone = Vec::new();
    for i in 0..20 {
        let account = data.accounts[i % data.accounts.len()].id.clone();
        let t = Instant::now();
        recompute
            .account("acme", &account, v1::IngestMode::Live)
            .await
            .unwrap();
        alone.push(t.elapsed());
    }
    alone.sort();
    shutdown.cancel();
    let _ = server.await;

    println!();
    println!(
        "metrics consumer beside ingestion, PostgreSQL, {} accounts, {total} signals, {clients} clients × 1,000-signal batches{}",
        data.accounts.len(),
        if hot > 0 {
            " (one account: sessions of its 1,000 users at full speed)"
        } else {
            ""
        }
    );
    println!(
        "ingestion: {:.1} s → {:.0} signals/s   (the baseline: the same run's intake rate)",
        ingested.as_secs_f64(),
        total as f64 / ingested.as_secs_f64()
    );
    println!(
        "metrics backlog drained at {:.1} s → {:.0} signals/s turned into snapshots ({:.0} % of ingestion's rate)",
        drained.as_secs_f64(),
        total as f64 / drained.as_secs_f64(),
        100.0 * ingested.as_secs_f64() / drained.as_secs_f64()
    );
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    println!("backlog (pending + leased metrics messages) over time, peak {peak}:");
    for (t, n) in samples.iter().step_by((samples.len() / 12).max(1)) {
        println!("  {:>6.2} s  {n:>6}", t.as_secs_f64());
    }
    println!(
        "reply → snapshot readable, 100 single LIVE signals: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3
    );
    println!(
        "one recompute alone (read the account's signals, snapshot, store, announce, commit): p50 {:.1} ms, max {:.1} ms",
        percentile(&alone, 0.5).as_secs_f64() * 1e3,
        alone.last().unwrap().as_secs_f64() * 1e3
    );
    let peak = memory_mib("self", "VmHWM:");
    println!(
        "peak resident memory of this process (client, both services, no database): {peak:.0} MiB; {before_load_mib:.0} MiB before the load (the client's generated history, services idle), so {:.0} MiB grew while ingesting and consuming",
        peak - before_load_mib
    );
}
