//! Health benchmarks on a throwaway PostgreSQL, side by side in one run:
//!
//! 1. `RescoreAll` over `HEALTH_BENCH_ACCOUNTS` (100,000) scored accounts
//!    after a weight change, from the `PutScoringModel` reply to the job's
//!    DONE, against the same scoring done in memory alone (the domain's
//!    share; the rest is the storage path).
//! 2. Freshness under steady load: ingestion, metrics and health in one
//!    process; two clients send `HEALTH_BENCH_LOAD` (400) signals/s in
//!    batches of 100 for 2,000 other accounts while 100 single LIVE
//!    signals are each timed from the `IngestSignals` reply until
//!    `GetHealth` shows the score of the new snapshot.
//!
//! ```text
//! cargo bench -p retain-health --bench health
//! ```

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use retain_health::{Health, Scorer};
use retain_ingestion::{Ingestion, IngestionSettings};
use retain_metrics::Metrics;
use retain_proto::v1;
use retain_proto::v1::health_service_client::HealthServiceClient;
use retain_proto::v1::ingestion_service_client::IngestionServiceClient;
use retain_runtime::{Clock, Context, Service, Settings};
use retain_testkit::{ADMIN, BenchPostgres, READER, Served, WRITER, serve_in_process, with_token};
use tokio_util::sync::CancellationToken;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len().max(1) - 1) as f64 * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// A varied synthetic snapshot: usage, NPS, tickets and billing spread so
/// every band is populated.
fn snapshot(i: usize, as_of: i64) -> v1::AccountMetricsSnapshot {
    let billing = ["current", "current", "current", "overdue", "payment_failed"][i % 5];
    v1::AccountMetricsSnapshot {
        account_id: format!("acct-{i:06}"),
        segment: ["SMB", "Mid-Market", "Enterprise"][i % 3].into(),
        as_of: Some(prost_types::Timestamp {
            seconds: as_of,
            nanos: 0,
        }),
        active_days_30d: Some((i * 7 % 31) as i32),
        nps_mean: Some((i % 11) as f64),
        tickets_opened_30d: Some((i % 4) as i32),
        billing_status: Some(billing.into()),
        ..Default::default()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("health: run with `cargo bench -p retain-health --bench health`");
        return;
    }
    let accounts = env_usize("HEALTH_BENCH_ACCOUNTS", 100_000);
    let pg = BenchPostgres::start().expect("PostgreSQL for the benchmark");
    let url = pg.database("retain_health_bench").await.unwrap();
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
    let _telemetry = retain_runtime::telemetry::init(&settings.telemetry, "health-bench").unwrap();
    settings.tenants.default.base_currency = "EUR".into();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    // Seed: every account scored once with the built-in model.
    let seeding = Instant::now();
    let scorer = Scorer {
        db: db.clone(),
        clock: Clock::system(),
    };
    let snapshots: Vec<v1::AccountMetricsSnapshot> =
        (0..accounts).map(|i| snapshot(i, now - 3_600)).collect();
    for chunk in snapshots.chunks(2_000) {
        scorer
            .score_batch("acme", chunk, v1::IngestMode::Backfill)
            .await
            .unwrap();
    }
    println!(
        "seeded {accounts} scored accounts in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let ctx = Context::new(db.clone(), settings.clone(), Clock::system()).expect("valid tenants");
    let services = Ingestion::build(
        &ctx,
        IngestionSettings {
            tenant_signals_per_second: 0,
            ..Default::default()
        },
    )
    .unwrap()
    .merge(Metrics::build(&ctx, Default::default()).unwrap())
    .merge(Health::build(&ctx, Default::default()).unwrap());
    let Served {
        channel,
        shutdown,
        server,
        ..
    } = serve_in_process(&ctx, services, Duration::from_secs(5)).await;
    let mut health = HealthServiceClient::new(channel.clone());

    // 1. RescoreAll after a weight change.
    let mut model = health
        .get_scoring_model(with_token(READER, v1::GetScoringModelRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap();
    for (d, w) in model.dimensions.iter_mut().zip([20.0, 10.0, 60.0, 10.0]) {
        d.weight = w;
    }
    let domain_model = retain_proto::health::model_from_proto(&model).unwrap();
    let in_memory = Instant::now();
    let mut bands = [0usize; 4];
    for s in &snapshots {
        let scored = retain_domain::health::score(
            &domain_model,
            &retain_proto::health::health_snapshot(s),
            None,
        )
        .unwrap();
        bands[scored.band as usize] += 1;
    }
    let in_memory = in_memory.elapsed();
    let started = Instant::now();
    let put = health
        .put_scoring_model(with_token(
            ADMIN,
            v1::PutScoringModelRequest {
                model: Some(model),
                rescore: true,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let job = loop {
        let job = health
            .get_rescore_job(with_token(
                READER,
                v1::GetRescoreJobRequest {
                    job_id: put.rescore_job_id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        if job.state == v1::RescoreJobState::Done as i32 {
            break job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the rescoring job did not finish within 10 minutes: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let rescore = started.elapsed();
    println!(
        "RescoreAll over {} accounts: {:.2} s from the PutScoringModel reply to DONE ({} band changes; goal ≤ 5 s)",
        job.done,
        rescore.as_secs_f64(),
        job.band_changes
    );
    println!(
        "  the same scoring in memory alone (the domain's share): {:.1} ms = {:.1} % of it; bands after {bands:?}",
        in_memory.as_secs_f64() * 1e3,
        100.0 * in_memory.as_secs_f64() / rescore.as_secs_f64()
    );

    // ListHealth over the rescored accounts: 20 pages of 100 per order.
    for sort in [
        v1::HealthSort::Account,
        v1::HealthSort::ScoreAscending,
        v1::HealthSort::ChangeAscending,
    ] {
        let (mut token, mut took) = (String::new(), Vec::new());
        for _ in 0..20 {
            let t = Instant::now();
            let page = health
                .list_health(with_token(
                    READER,
                    v1::ListHealthRequest {
                        page_size: 100,
                        page_token: token,
                        sort: sort as i32,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            took.push(t.elapsed());
            assert_eq!(page.scores.len(), 100, "a full page");
            token = page.next_page_token;
        }
        took.sort();
        println!(
            "  ListHealth by {:?}, pages of 100: median {:.1} ms, max {:.1} ms (20 pages)",
            sort,
            took[10].as_secs_f64() * 1e3,
            took[19].as_secs_f64() * 1e3
        );
    }
    // 2. Freshness under steady load: HEALTH_BENCH_LOAD signals/s (400),
    // in batches of 100 from two clients, over 2,000 accounts — a load the
    // metrics consumer sustains (each touched account is one recompute).
    let rate = env_usize("HEALTH_BENCH_LOAD", 400).max(1);
    let pause = Duration::from_secs_f64(200.0 / rate as f64);
    let stop = CancellationToken::new();
    let mut load = Vec::new();
    for c in 0..2 {
        let channel = channel.clone();
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let mut ingestion = IngestionServiceClient::new(channel);
            let mut sent = 0usize;
            let mut round = 0usize;
            while !stop.is_cancelled() {
                let batch_started = Instant::now();
                let signals = (0..100)
                    .map(|k| v1::Signal {
                        event_id: format!("load-{c}-{round}-{k}"),
                        account_id: format!("load-{c}-{:04}", (round * 100 + k) % 1_000),
                        occurred_at: Some(prost_types::Timestamp {
                            seconds: now - 60,
                            nanos: 0,
                        }),
                        body: Some(retain_testkit::session("u1", 60)),
                    })
                    .collect::<Vec<_>>();
                sent += signals.len();
                ingestion
                    .ingest_signals(with_token(
                        WRITER,
                        v1::IngestSignalsRequest {
                            signals,
                            ..Default::default()
                        },
                    ))
                    .await
                    .unwrap();
                round += 1;
                tokio::time::sleep(pause.saturating_sub(batch_started.elapsed())).await;
            }
            sent
        }));
    }
    let load_started = Instant::now();
    let mut ingestion = IngestionServiceClient::new(channel.clone());
    let mut latencies = Vec::new();
    for i in 0..100 {
        let account = format!("probe-{i:03}");
        let signal = v1::Signal {
            event_id: format!("probe-{i}"),
            account_id: account.clone(),
            occurred_at: Some(prost_types::Timestamp {
                seconds: now - 30,
                nanos: 0,
            }),
            body: Some(retain_testkit::session("u1", 60)),
        };
        ingestion
            .ingest_signals(with_token(
                WRITER,
                v1::IngestSignalsRequest {
                    signals: vec![signal],
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
        let t = Instant::now();
        loop {
            let scored = health
                .get_health(with_token(
                    READER,
                    v1::GetHealthRequest {
                        account_id: account.clone(),
                    },
                ))
                .await
                .is_ok();
            if scored {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "{account} not scored within 60 s: is the load above what metrics sustains?"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(t.elapsed());
    }
    stop.cancel();
    let mut sent = 0;
    for l in load {
        sent += l.await.unwrap();
    }
    let elapsed = load_started.elapsed();
    latencies.sort();
    println!(
        "freshness under load ({sent} background signals in {:.1} s = {:.0} signals/s): reply → score readable p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (goal p99 ≤ 1 s)",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    shutdown.cancel();
    let _ = server.await;
}
