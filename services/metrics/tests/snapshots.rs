//! The metrics service beside ingestion on one database, over real gRPC:
//! what ingestion accepts becomes the account's snapshot, readable with
//! `GetAccountMetrics` and announced to health, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::time::Duration;

use retain_ingestion::{Ingestion, IngestionSettings};
use retain_metrics::{Metrics, MetricsSettings};
use retain_proto::v1;
use retain_proto::v1::metrics_service_client::MetricsServiceClient;
use retain_proto::v1::signal::Body;
use retain_runtime::{Clock, Service};
use retain_testkit::*;
use tonic::Code;

async fn spawn(db: TestDatabase) -> TestApp {
    spawn_two::<Ingestion, Metrics>(db).await
}

fn days_ago(id: &str, days: i64, body: Body) -> v1::Signal {
    v1::Signal {
        occurred_at: ts(now() - days * 86_400 - 3_600),
        ..signal(id, "acme-1", body)
    }
}

fn nps_of(user: &str, score: i32) -> Body {
    Body::Survey(v1::SurveyAnswer {
        kind: v1::SurveyKind::Nps as i32,
        score,
        user_id: user.into(),
        ..Default::default()
    })
}

async fn metrics_of(
    app: &TestApp,
    account: &str,
) -> Result<v1::AccountMetricsSnapshot, tonic::Status> {
    MetricsServiceClient::new(app.channel.clone())
        .get_account_metrics(with_token(
            READER,
            v1::GetAccountMetricsRequest {
                account_id: account.into(),
            },
        ))
        .await
        .map(|r| r.into_inner().snapshot.unwrap())
}

retain_testkit::storage_test!(async fn accepted_signals_become_the_accounts_snapshot(db) {
    let app = spawn(db).await;
    let signals = vec![
        days_ago("s-1", 1, session("u1", 60)),
        days_ago("s-2", 1, session("u2", 60)),
        days_ago("s-3", 3, session("u1", 60)),
        days_ago("n-1", 20, nps_of("u1", 3)),
        days_ago("n-2", 2, nps_of("u1", 9)),
        days_ago("n-3", 5, nps_of("u2", 7)),
        days_ago(
            "t-1",
            4,
            Body::Ticket(v1::SupportTicket {
                ticket_id: "T-1".into(),
                status: v1::TicketStatus::Opened as i32,
                topics: vec!["integration".into()],
                contacts_until_resolution: 0,
            }),
        ),
        days_ago("b-1", 6, Body::Billing(v1::BillingStatusChange { status: v1::BillingStatus::Current as i32 })),
        days_ago("m-1", 10, subscription(49_900)),
    ];
    let r = app.send(signals.clone()).await;
    assert_eq!(r.accepted as usize, signals.len());
    // History older than the window, imported as a backfill.
    let old = v1::IngestSignalsRequest {
        signals: vec![days_ago("s-old", 45, session("u1", 60))],
        mode: v1::IngestMode::Backfill as i32,
        ..Default::default()
    };
    assert_eq!(app.ingest(WRITER, old).await.unwrap().accepted, 1);

    // What the snapshot must say, counted here from the signals sent.
    let snap = eventually("the snapshot to include every signal", Duration::from_secs(30), || async {
        metrics_of(&app, "acme-1").await.ok().filter(|s| s.sessions_30d == Some(3))
    })
    .await;
    assert_eq!(snap.active_days_30d, Some(2), "days 1 and 3 ago; 45 days is outside");
    assert_eq!(snap.nps_mean, Some(8.0), "u1's latest 9 and u2's 7");
    assert_eq!(snap.tickets_opened_30d, Some(1));
    assert_eq!(snap.ticket_topics_30d.get("integration"), Some(&1));
    assert_eq!(snap.billing_status.as_deref(), Some("current"));
    assert_eq!(snap.mrr.as_ref().map(|m| (m.amount_minor, m.currency.as_str())), Some((49_900, "EUR")));

    // Health hears about it.
    let announced = app.published(retain_metrics::topics::ACCOUNT_METRICS, "health").await;
    let last = &announced.last().expect("an account.metrics message for health").1;
    assert_eq!(last.tenant_id, "acme");
    assert_eq!(last.snapshot.as_ref().unwrap().sessions_30d, Some(3));

    // A retried batch changes nothing: still one snapshot, the same one.
    let again = app.send(signals).await;
    assert_eq!(again.duplicates, 9);
    assert_eq!(app.count("account_metrics").await, 1);
    assert_eq!(metrics_of(&app, "acme-1").await.unwrap().sessions_30d, Some(3));
});

retain_testkit::storage_test!(async fn get_account_metrics_checks_its_caller_and_input(db) {
    let app = spawn(db).await;
    let err = metrics_of(&app, "no such account").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = metrics_of(&app, "unknown-1").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    // Another tenant never sees acme's snapshot.
    app.send(vec![signal("s-1", "acme-1", session("u1", 60))]).await;
    eventually("acme's snapshot", Duration::from_secs(30), || async { metrics_of(&app, "acme-1").await.ok() }).await;
    let err = MetricsServiceClient::new(app.channel.clone())
        .get_account_metrics(with_token(GLOBEX, v1::GetAccountMetricsRequest { account_id: "acme-1".into() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    // Reading needs the read role.
    let err = MetricsServiceClient::new(app.channel.clone())
        .get_account_metrics(with_token(INGEST_ONLY, v1::GetAccountMetricsRequest { account_id: "acme-1".into() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
});

// The 30-day windows move with the clock: a day later, with no new signal,
// a session 29.5 days old has left the window.
retain_testkit::storage_test!(async fn snapshots_follow_the_clock_without_new_signals(db) {
    let start = retain_domain::Timestamp::from_seconds(now());
    let clock = Clock::manual(start);
    let own = MetricsSettings { refresh_interval_seconds: 1, ..MetricsSettings::default() };
    let app = spawn_composed(db, settings(), clock.clone(), |ctx| {
        let ingestion = Ingestion::build(ctx, IngestionSettings::default())?;
        let metrics = Metrics::build(ctx, own)?;
        Ok(ingestion.merge(metrics))
    })
    .await;
    let old_session = v1::Signal {
        occurred_at: ts(now() - 29 * 86_400 - 12 * 3_600),
        ..signal("s-1", "acme-1", session("u1", 60))
    };
    assert_eq!(app.send(vec![old_session]).await.accepted, 1);
    eventually("the first snapshot", Duration::from_secs(30), || async {
        metrics_of(&app, "acme-1").await.ok().filter(|s| s.active_days_30d == Some(1))
    })
    .await;
    clock.advance(Duration::from_secs(86_400));
    let later = eventually("the next day's snapshot", Duration::from_secs(30), || async {
        metrics_of(&app, "acme-1").await.ok().filter(|s| s.active_days_30d == Some(0))
    })
    .await;
    assert_eq!(later.sessions_30d, Some(0));
    assert!(later.as_of.unwrap().seconds >= start.seconds() + 86_400);
});

// Two metrics consumers on one stream (two replicas): every account's
// snapshot is the one a single consumer computes, and none is missing.
retain_testkit::storage_test!(async fn two_consumers_compute_what_one_does(db) {
    use retain_bus::{Bus, Consumer, ConsumerOptions, groups};
    use retain_ingestion::topics;
    use retain_runtime::Workers;
    // One clock for everything, so snapshots are comparable.
    let clock = Clock::manual(retain_domain::Timestamp::from_seconds(now()));
    let app = spawn_composed(db, settings(), clock.clone(), |ctx| {
        let ingestion = Ingestion::build(ctx, IngestionSettings::default())?;
        let metrics = Metrics::build(ctx, MetricsSettings::default())?;
        // A second replica's consumer of the same group.
        let second = retain_metrics::Recompute {
            db: ctx.db.clone(),
            tenants: std::sync::Arc::new(retain_metrics::tenants(&ctx.tenants)?),
            clock: ctx.clock.clone(),
        };
        let db = ctx.db.clone();
        let mut workers = Workers::new();
        workers.add("second-replica", move |stop| async move {
            let consumer = Consumer::new(Bus::new(db), topics::SIGNALS_RECORDED.name(), groups::METRICS, ConsumerOptions::new("second-replica"))
                .await
                .unwrap();
            consumer.run(&second, stop).await;
        });
        Ok(ingestion.merge(metrics).with_workers(workers))
    })
    .await;
    for round in 0..5 {
        let batch: Vec<_> = (0..20)
            .map(|a| signal(&format!("r{round}-a{a}"), &format!("acct-{a}"), session("u1", 60)))
            .collect();
        assert_eq!(app.send(batch).await.accepted, 20);
        // And one in a finished month, so every account has monthly rows.
        let old = v1::IngestSignalsRequest {
            signals: (0..20)
                .map(|a| v1::Signal {
                    occurred_at: ts(now() - 45 * 86_400 + round * 3_600),
                    ..signal(&format!("old-r{round}-a{a}"), &format!("acct-{a}"), session("u2", 60))
                })
                .collect(),
            mode: v1::IngestMode::Backfill as i32,
            ..Default::default()
        };
        assert_eq!(app.ingest(WRITER, old).await.unwrap().accepted, 20);
    }
    let backlog_drained = || async {
        let stats = Bus::new(app.db.conn.clone()).stats(topics::SIGNALS_RECORDED.name(), groups::METRICS).await.unwrap();
        (stats.pending == 0 && stats.leased == 0).then_some(())
    };
    eventually("the metrics backlog to drain", Duration::from_secs(60), backlog_drained).await;
    // What one consumer computes from the same stored signals.
    let one = retain_metrics::Recompute {
        db: app.db.conn.clone(),
        tenants: std::sync::Arc::new(retain_metrics::tenants(&settings().tenants.parse().unwrap()).unwrap()),
        clock: clock.clone(),
    };
    let rows_of_two = app.monthly_rows().await;
    assert!(rows_of_two.len() >= 20, "every account has a finished month: {rows_of_two:?}");
    for a in 0..20 {
        let account = format!("acct-{a}");
        let served = metrics_of(&app, &account).await.unwrap();
        assert_eq!(served.sessions_30d, Some(5), "{account}");
        one.account("acme", &account, v1::IngestMode::Live).await.unwrap();
        assert_eq!(metrics_of(&app, &account).await.unwrap(), served, "{account}");
    }
    assert_eq!(app.count("account_metrics").await, 20);
    // One consumer's recompute finds the monthly rows the two wrote.
    assert_eq!(app.monthly_rows().await, rows_of_two);
});

// A client clock a little ahead (ingestion accepts up to 5 minutes) must not
// leave the signal out of the snapshot until the next day.
retain_testkit::storage_test!(async fn a_signal_slightly_in_the_future_is_in_the_snapshot(db) {
    let app = spawn(db).await;
    let ahead = v1::Signal {
        occurred_at: ts(now() + 120),
        ..signal("skew-1", "skew1", subscription(9_900))
    };
    assert_eq!(app.send(vec![ahead]).await.accepted, 1);
    let snap = eventually("the snapshot", Duration::from_secs(30), || async { metrics_of(&app, "skew1").await.ok() }).await;
    assert_eq!(snap.mrr.unwrap().amount_minor, 9_900);
    // It never had a session: usage is unset, not zero.
    assert_eq!((snap.active_days_30d, snap.sessions_30d), (None, None));
    assert!(!snap.onboarding_stuck);
});

// The daily refresh recomputes accounts outside the bus's per-account
// order. When the consumer stores a newer snapshot between the refresh's
// read and its write, the refresh writes nothing: neither the snapshot,
// nor the month rows, nor an announcement (docs/METRICS.md, "Snapshots").
retain_testkit::storage_test!(async fn the_refresh_never_stores_an_older_snapshot_over_a_newer_one(db) {
    let app = spawn(db).await;
    assert_eq!(app.send(vec![days_ago("s-2", 2, session("u1", 600))]).await.accepted, 1);
    app.settled("metrics").await;
    let refresh = retain_metrics::Recompute {
        db: app.db.conn.clone(),
        tenants: std::sync::Arc::new(retain_metrics::tenants(&settings().tenants.parse().unwrap()).unwrap()),
        clock: Clock::system(),
    };
    // The refresh reads the account's signals…
    let stale = refresh.compute("acme", "acme-1", v1::IngestMode::Live, None).await.unwrap();
    let rows_before = app.monthly_rows().await;
    // …then a late session of another user, in a month that has ended,
    // arrives and the consumer stores it (snapshot and month rows).
    let late = v1::IngestSignalsRequest {
        signals: vec![days_ago("s-3", 45, session("u2", 600))],
        mode: v1::IngestMode::Backfill as i32,
        ..Default::default()
    };
    assert_eq!(app.ingest(WRITER, late).await.unwrap().accepted, 1);
    app.settled("metrics").await;
    let newer = metrics_of(&app, "acme-1").await.unwrap();
    let rows = app.monthly_rows().await;
    assert_ne!(rows, rows_before, "the late session is in a finished month's rows");
    let announced = app.count("bus_messages").await;

    // The refresh commits last: nothing of it is stored.
    assert!(!refresh.store(&stale, None).await.unwrap(), "an older snapshot was stored");
    assert_eq!(metrics_of(&app, "acme-1").await.unwrap(), newer);
    assert_eq!(app.monthly_rows().await, rows, "older month rows were stored");
    assert_eq!(app.count("bus_messages").await, announced, "an older snapshot was announced");

    // A refresh that reads everything stores (a later `as_of`, same signals).
    let fresh = refresh.compute("acme", "acme-1", v1::IngestMode::Live, None).await.unwrap();
    assert!(refresh.store(&fresh, None).await.unwrap());
    assert_eq!(app.monthly_rows().await, rows);
});
