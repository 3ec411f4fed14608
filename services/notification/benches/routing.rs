//! Notification's routing throughput on a throwaway PostgreSQL (default
//! durability), side by side in one run:
//!
//! 1. `NOTIFICATION_BENCH_TRIGGERS` (20,000) band changes (Red, Yellow,
//!    Green, Thriving in turn, one account each) are published on
//!    `health.band_changed`; the service then starts and the time until
//!    its consumer has routed them all (tasks, messages, records, acks) is
//!    measured.
//! 2. The baseline: a bare insert of the same number of task rows, 500
//!    per statement, in one transaction.
//!
//! ```text
//! cargo bench -p retain-notification --bench routing
//! ```

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use retain_bus::{Bus, groups};
use retain_health::topics::HEALTH_BAND_CHANGED;
use retain_notification::Notification;
use retain_proto::v1;
use retain_runtime::{Clock, Context, Service, Settings};
use retain_testkit::{BenchPostgres, Served, serve_in_process};
use sea_orm::{ConnectionTrait, TransactionTrait};

fn change(i: usize, at: i64) -> v1::HealthBandChanged {
    use v1::HealthBand::{Green, Red, Thriving, Yellow};
    let (from, to) = [
        (Yellow, Red),
        (Green, Yellow),
        (Yellow, Green),
        (Green, Thriving),
    ][i % 4];
    let account = format!("acct-{i:06}");
    {
        v1::HealthBandChanged {
            tenant_id: "acme".into(),
            account_id: account.clone(),
            from_band: from as i32,
            to_band: to as i32,
            score: Some(v1::HealthScore {
                account_id: account.clone(),
                score: 50.0,
                band: to as i32,
                scored_at: Some(prost_types::Timestamp {
                    seconds: at,
                    nanos: 0,
                }),
                explanation: "support_tickets: red — 3 tickets opened in 30 days".into(),
                ticket_topics: vec!["integration".into()],
                inputs: Some(v1::AccountMetricsSnapshot {
                    account_id: account,
                    csm_owner_email: "ana@vendor.example".into(),
                    contact_emails: vec!["ops@customer.example".into()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mode: v1::IngestMode::Live as i32,
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("routing: run with `cargo bench -p retain-notification --bench routing`");
        return;
    }
    let n: usize = std::env::var("NOTIFICATION_BENCH_TRIGGERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let pg = BenchPostgres::start().expect("PostgreSQL for the benchmark");
    let url = pg.database("retain_notification_bench").await.unwrap();
    let db = retain_store::connect(&url, &retain_store::PoolOptions::default())
        .await
        .unwrap();
    retain_store::migrate(&db).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    // 2. The baseline first, on its own table copy, so the service's
    // tables start empty.
    db.execute_unprepared("CREATE TABLE bare_tasks (LIKE notification_tasks INCLUDING ALL)")
        .await
        .unwrap();
    let bare = Instant::now();
    let tx = db.begin().await.unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    "('acme', 'task-{i}', 'acct-{i:06}', 'band_red', 'Account review', 'acct is now Red', 'csm', 4, 1, 'ana@vendor.example', {d}, FALSE, '', {d}, {d})",
                    d = now * 1_000_000
                )
            })
            .collect();
        tx.execute_unprepared(&format!(
            "INSERT INTO bare_tasks VALUES {}",
            rows.join(", ")
        ))
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let bare = bare.elapsed();

    // 1. Publish, then serve and time the drain.
    for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
        let messages: Vec<_> = chunk.iter().map(|i| change(*i, now - 600)).collect();
        HEALTH_BAND_CHANGED.publish(&db, &messages).await.unwrap();
    }
    let mut settings = Settings::default();
    settings.telemetry.log_filter = "warn".into();
    let ctx = Context::new(db.clone(), settings, Clock::system()).expect("valid tenants");
    let started = Instant::now();
    // Yellow's emails go to a throwaway outbox, delivered while routing runs.
    let outbox = tempfile::tempdir().unwrap();
    let mut own = retain_notification::NotificationSettings {
        email: retain_notification::EmailSettings::outbox(outbox.path().to_str().unwrap()),
        ..Default::default()
    };
    if let Some(batch) = std::env::var("NOTIFICATION_BENCH_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        own.consumer.batch = batch;
    }
    let services = Notification::build(&ctx, own).unwrap();
    let Served {
        shutdown, server, ..
    } = serve_in_process(&ctx, services, Duration::from_secs(5)).await;
    let bus = Bus::new(db.clone());
    loop {
        let s = bus
            .stats(HEALTH_BAND_CHANGED.name(), groups::NOTIFICATION)
            .await
            .unwrap();
        if s.pending == 0 && s.leased == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1_800),
            "not drained in 30 minutes: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let routed = started.elapsed();
    let count = |sql: &'static str| {
        let db = db.clone();
        async move {
            db.query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index::<i64>(0)
            .unwrap()
        }
    };
    let (actions, tasks) = (
        count("SELECT COUNT(*) FROM notification_actions").await,
        count("SELECT COUNT(*) FROM notification_tasks").await,
    );
    assert_eq!(actions as usize, n, "every trigger routed once");
    println!(
        "routed {n} band changes ({tasks} tasks) in {:.2} s = {:.0} triggers/s (goal ≥ 10,000/s)",
        routed.as_secs_f64(),
        n as f64 / routed.as_secs_f64()
    );
    println!(
        "  baseline, a bare insert of {n} task rows: {:.3} s = {:.0} rows/s",
        bare.as_secs_f64(),
        n as f64 / bare.as_secs_f64()
    );
    shutdown.cancel();
    server.await.unwrap().unwrap();
}
