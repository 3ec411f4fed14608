//! Freshness: how long after the `IngestSignals` reply a detractor's CSM
//! task is visible in `ListTasks`, under a steady background load, on a
//! throwaway PostgreSQL (default durability), in one run:
//!
//! 1. embedded: the four services composed in this process (as
//!    `retain serve` composes them);
//! 2. separate processes: the four release binaries (built beforehand with
//!    `cargo build --release --bins`; skipped, saying so, when missing),
//!    sharing one database.
//!
//! Each: `FRESHNESS_LOAD` (400) background signals/s (sessions of 2,000
//! accounts, from two clients), then 100 probes, each an NPS 3 for a new
//! account, polled with `ListTasks` every millisecond until its "call
//! within 24 h" task shows. Baseline in the same run: a `ListTasks` round
//! trip (the probe's own resolution).
//!
//! ```text
//! cargo build --release --bins && cargo bench -p retain --bench freshness
//! ```

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use retain_proto::v1;
use retain_proto::v1::ingestion_service_client::IngestionServiceClient;
use retain_proto::v1::notification_service_client::NotificationServiceClient;
use retain_runtime::{Clock, Context, Service, Settings};
use retain_testkit::{BenchPostgres, Served, serve_in_process, with_token};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Runs the load and the probes against `ingest` and `tasks` with `token`;
/// prints the figures under `label`.
async fn measure(label: &str, ingest: Channel, tasks: Channel, token: &str) {
    let slug = label.replace(' ', "-");
    let rate = std::env::var("FRESHNESS_LOAD")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(400)
        .max(1);
    let pause = Duration::from_secs_f64(200.0 / rate as f64);
    let stop = CancellationToken::new();
    let mut load = Vec::new();
    for c in 0..2 {
        let (channel, stop, token) = (ingest.clone(), stop.clone(), token.to_owned());
        let label = slug.clone();
        load.push(tokio::spawn(async move {
            let mut client = IngestionServiceClient::new(channel);
            let (mut sent, mut round) = (0usize, 0usize);
            while !stop.is_cancelled() {
                let started = Instant::now();
                let signals: Vec<v1::Signal> = (0..100)
                    .map(|k| v1::Signal {
                        event_id: format!("{label}-load-{c}-{round}-{k}"),
                        account_id: format!("load-{c}-{:04}", (round * 100 + k) % 1_000),
                        occurred_at: retain_testkit::ts(now() - 60),
                        body: Some(retain_testkit::session("u1", 60)),
                    })
                    .collect();
                sent += signals.len();
                client
                    .ingest_signals(with_token(&token, retain_testkit::batch(signals)))
                    .await
                    .unwrap();
                round += 1;
                tokio::time::sleep(pause.saturating_sub(started.elapsed())).await;
            }
            sent
        }));
    }
    let load_started = Instant::now();
    let mut client = IngestionServiceClient::new(ingest);
    let mut queue = NotificationServiceClient::new(tasks);
    let (mut latencies, mut round_trips) = (Vec::new(), Vec::new());
    for i in 0..100 {
        let account = format!("{slug}-probe-{i:03}");
        let nps = v1::Signal {
            occurred_at: retain_testkit::ts(now() - 30),
            ..retain_testkit::signal(&format!("{account}-nps"), &account, retain_testkit::nps(3))
        };
        client
            .ingest_signals(with_token(token, retain_testkit::batch(vec![nps])))
            .await
            .unwrap();
        let replied = Instant::now();
        loop {
            let asked = Instant::now();
            let found = !queue
                .list_tasks(with_token(
                    token,
                    v1::ListTasksRequest {
                        account_id: account.clone(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .tasks
                .is_empty();
            round_trips.push(asked.elapsed());
            if found {
                break;
            }
            assert!(
                replied.elapsed() < Duration::from_secs(60),
                "{account}'s task not visible within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(replied.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let mut sent = 0;
    for l in load {
        sent += l.await.unwrap();
    }
    let elapsed = load_started.elapsed();
    latencies.sort();
    round_trips.sort();
    println!(
        "{label}: under {:.0} background signals/s, IngestSignals reply → task in ListTasks p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (goal p99 ≤ 1 s)",
        sent as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    println!(
        "  baseline, a ListTasks round trip: p50 {:.2} ms, p99 {:.2} ms ({} calls)",
        ms(percentile(&round_trips, 0.5)),
        ms(percentile(&round_trips, 0.99)),
        round_trips.len()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("freshness: run with `cargo bench -p retain --bench freshness`");
        return;
    }
    let pg = BenchPostgres::start().expect("PostgreSQL for the benchmark");

    // 1. Embedded.
    let url = pg.database("retain_freshness_embedded").await.unwrap();
    let db = retain_store::connect(&url, &retain_store::PoolOptions::default())
        .await
        .unwrap();
    retain_store::migrate(&db).await.unwrap();
    let mut settings = Settings::default();
    settings.telemetry.log_filter = "warn".into();
    let ctx = Context::new(db.clone(), settings, Clock::system()).expect("valid tenants");
    let outbox = tempfile::tempdir().unwrap();
    let notification = retain_notification::NotificationSettings {
        email: retain_notification::EmailSettings::outbox(outbox.path().to_str().unwrap()),
        ..Default::default()
    };
    let services = retain_ingestion::Ingestion::build(&ctx, Default::default())
        .unwrap()
        .merge(retain_metrics::Metrics::build(&ctx, Default::default()).unwrap())
        .merge(retain_health::Health::build(&ctx, Default::default()).unwrap())
        .merge(retain_notification::Notification::build(&ctx, notification).unwrap());
    let Served {
        channel,
        shutdown,
        server,
        ..
    } = serve_in_process(&ctx, services, Duration::from_secs(5)).await;
    // The test kit's WRITER token ingests and reads.
    measure("embedded", channel.clone(), channel, retain_testkit::WRITER).await;
    shutdown.cancel();
    let _ = server.await;

    // 2. Separate processes.
    let release = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release");
    let url = pg.database("retain_freshness_processes").await.unwrap();
    let db = retain_store::connect(&url, &retain_store::PoolOptions::default())
        .await
        .unwrap();
    retain_store::migrate(&db).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token = "freshness-token";
    let config = retain_testkit::binary::reference_config(
        dir.path(),
        token,
        &["ingest", "read", "admin", "csm"],
    );
    let Some(processes) = retain_testkit::binary::Processes::new(
        "freshness as separate processes (cargo build --release --bins)",
        &release,
        dir.path(),
        &config,
        &url,
    ) else {
        return;
    };
    let running = processes.start_all().await;
    measure(
        "separate processes",
        running[0].channel.clone(),
        running[3].channel.clone(),
        token,
    )
    .await;
    for r in running {
        r.stop().await;
    }
}
