//! The monthly rollups behind a finished month's portfolio KPIs: a month
//! is answered from them (not from the signals), a late signal rewrites
//! only the months it changes, and recomputing writes nothing new.
//! (`crosscheck.rs` compares the answers with an independent computation.)

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use retain_datagen::{Config, generate};
use retain_ingestion::Ingestion;
use retain_metrics::Metrics;
use retain_proto::v1;
use retain_proto::v1::metrics_service_client::MetricsServiceClient;
use retain_testkit::*;

const DAY: i64 = 86_400;

/// Months whose cells are older than their rows.
const DIRTY: &str = "SELECT COUNT(*) FROM metrics_dirty_months WHERE version > built";

async fn ingest_generated(app: &TestApp, accounts: usize) {
    let data = generate(&Config {
        accounts,
        history_days: 75,
        now: now(),
        ..Config::default()
    });
    for batch in data.in_delivery_order(3).batches(5_000) {
        assert_eq!(
            app.ingest(WRITER, batch.request()).await.unwrap().rejected,
            0
        );
    }
    app.settled("metrics").await;
}

fn last_month() -> retain_domain::Period {
    retain_domain::Period::containing(
        retain_domain::Timestamp::from_seconds(now() - 32 * DAY),
        retain_domain::Granularity::Month,
    )
}

async fn month_metrics(app: &TestApp, p: retain_domain::Period) -> v1::GetPortfolioMetricsResponse {
    MetricsServiceClient::new(app.channel.clone())
        .get_portfolio_metrics(with_token(
            READER,
            v1::GetPortfolioMetricsRequest {
                period: Some(v1::Period {
                    start: ts(p.start.seconds()),
                    end: ts(p.end.seconds()),
                }),
                filter: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

// With the accounts' signals gone, a finished month still answers the same
// (it is read from the rollups) while the current month, computed from the
// signals at query time, does not.
retain_testkit::storage_test!(async fn a_finished_month_is_answered_from_the_rollups(db) {
    let app = spawn_two::<Ingestion, Metrics>(db).await;
    ingest_generated(&app, 25).await;
    let month = last_month();
    let current = retain_domain::Period::containing(
        retain_domain::Timestamp::from_seconds(now()),
        retain_domain::Granularity::Month,
    );
    let before = month_metrics(&app, month).await;
    let current_before = month_metrics(&app, current).await;
    assert!(app.count("metrics_month_cells").await > 0);
    assert!(kpi_money(&before, v1::Kpi::Mrr) > 0);

    app.exec("DELETE FROM signals WHERE account_id <> '*'").await;
    assert_eq!(month_metrics(&app, month).await, before);
    assert_ne!(month_metrics(&app, current).await, current_before);
    assert_eq!(kpi_money(&month_metrics(&app, current).await, v1::Kpi::Mrr), 0);
});

// A session sent late for a past month rewrites that account's rows of that
// month (and the next, whose 30-day window reaches back into it), no other
// row; the month's answer counts it.
retain_testkit::storage_test!(async fn a_late_signal_rewrites_only_the_months_it_changes(db) {
    let app = spawn_two::<Ingestion, Metrics>(db).await;
    ingest_generated(&app, 10).await;
    let month = last_month();
    let rows = app.monthly_rows().await;
    let before = month_metrics(&app, month).await;

    let mut late = signal("late-1", "late-account", session("u-late", 600));
    late.occurred_at = ts(month.start.seconds() + 3 * DAY);
    let req = v1::IngestSignalsRequest {
        signals: vec![late],
        mode: v1::IngestMode::Backfill as i32,
        ..Default::default()
    };
    assert_eq!(app.ingest(WRITER, req).await.unwrap().accepted, 1);
    app.settled("metrics").await;

    let after_rows = app.monthly_rows().await;
    let added: Vec<_> = after_rows.iter().filter(|r| !rows.contains(r)).collect();
    assert!(after_rows.iter().filter(|r| r.0 != "late-account").eq(rows.iter()), "another account's rows changed");
    assert!(!added.is_empty() && added.iter().all(|r| r.0 == "late-account" && r.1 >= month.start.micros()));
    let after = month_metrics(&app, month).await;
    let sessions = |r: &v1::GetPortfolioMetricsResponse| kpi_number(r, v1::Kpi::SessionsPerDay);
    let days = month.days();
    assert!((sessions(&after) - sessions(&before) - 1.0 / days).abs() < 1e-9);
});

// A trial conversion counts for the trial's month, within the trial
// window: a conversion sent late for a day just after a month ended
// rewrites that month's row, and the month's answer from its cells counts
// it. (A recompute reaches back a trial window only when a conversion is
// among the signals it takes in.)
retain_testkit::storage_test!(async fn a_conversion_rewrites_the_month_its_trial_started_in(db) {
    let app = spawn_two::<Ingestion, Metrics>(db).await;
    let before_last = retain_domain::Period::containing(
        last_month().start.plus_micros(-1),
        retain_domain::Granularity::Month,
    );
    let at = |id: &str, t: i64, event: v1::TrialEvent| v1::Signal {
        occurred_at: ts(t),
        ..signal(id, "trialist", v1::signal::Body::Trial(v1::Trial { event: event as i32 }))
    };
    let backfill = |signals| v1::IngestSignalsRequest {
        signals,
        mode: v1::IngestMode::Backfill as i32,
        ..Default::default()
    };
    let started = before_last.end.seconds() - DAY;
    let req = backfill(vec![at("trial-start", started, v1::TrialEvent::Started)]);
    assert_eq!(app.ingest(WRITER, req).await.unwrap().accepted, 1);
    app.settled("metrics").await;
    let trial_to_paid = |r: &v1::GetPortfolioMetricsResponse| kpi_number(r, v1::Kpi::TrialToPaid);
    assert_eq!(trial_to_paid(&month_metrics(&app, before_last).await), 0.0);

    let req = backfill(vec![at("trial-paid", started + 3 * DAY, v1::TrialEvent::Converted)]);
    assert_eq!(app.ingest(WRITER, req).await.unwrap().accepted, 1);
    app.settled("metrics").await;
    assert_eq!(trial_to_paid(&month_metrics(&app, before_last).await), 100.0);
});

// Recomputing every account again (a redelivery) writes no month row and
// marks no month: the rows are a function of the signals.
retain_testkit::storage_test!(async fn recomputing_writes_nothing_new(db) {
    let app = spawn_two::<Ingestion, Metrics>(db).await;
    ingest_generated(&app, 10).await;
    eventually("the cells to be rebuilt", std::time::Duration::from_secs(30), || async {
        (app.scalar(DIRTY).await == 0).then_some(())
    })
    .await;
    let rows = app.monthly_rows().await;
    assert!(!rows.is_empty());
    let recompute = retain_metrics::Recompute {
        db: app.db.conn.clone(),
        tenants: std::sync::Arc::new(retain_metrics::tenants(&settings().tenants.parse().unwrap()).unwrap()),
        clock: retain_runtime::Clock::system(),
    };
    let accounts: std::collections::BTreeSet<String> = rows.iter().map(|r| r.0.clone()).collect();
    for account in &accounts {
        recompute.account("acme", account, v1::IngestMode::Live).await.unwrap();
    }
    assert_eq!(app.monthly_rows().await, rows);
    assert_eq!(app.scalar(DIRTY).await, 0);
});
