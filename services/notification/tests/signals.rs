//! Triggers that come straight from signals, end to end over real gRPC on
//! SQLite and PostgreSQL: ingestion accepts them, notification routes the
//! NPS answers, the contraction and the churn — with the account's CSM and
//! contacts from the metrics snapshot — and a backfilled answer is only
//! recorded.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::time::Duration;

use retain_ingestion::Ingestion;
use retain_metrics::Metrics;
use retain_notification::Notification;
use retain_proto::v1;
use retain_proto::v1::notification_service_client::NotificationServiceClient;
use retain_proto::v1::signal::Body;
use retain_runtime::Service;
use retain_testkit::*;

const HOUR: i64 = 3_600;

fn at(id: &str, seconds_ago: i64, body: Body) -> v1::Signal {
    v1::Signal {
        occurred_at: ts(now() - seconds_ago),
        ..signal(id, "acme-1", body)
    }
}

fn nps_from(user: &str, score: i32) -> Body {
    Body::Survey(v1::SurveyAnswer {
        kind: v1::SurveyKind::Nps as i32,
        score,
        user_id: user.into(),
        comment: "the integration keeps failing".into(),
        ..Default::default()
    })
}

async fn tasks(app: &TestApp) -> Vec<v1::Task> {
    NotificationServiceClient::new(app.channel.clone())
        .list_tasks(with_token(READER, v1::ListTasksRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .tasks
}

retain_testkit::storage_test!(async fn nps_contraction_and_churn_route_from_signals(db) {
    let outbox = tempfile::tempdir().unwrap();
    let own = retain_notification::NotificationSettings {
        email: retain_notification::EmailSettings::outbox(outbox.path().to_str().unwrap()),
        ..Default::default()
    };
    let app = spawn_composed(db, settings(), retain_runtime::Clock::system(), |ctx| {
        let ingestion = Ingestion::build(ctx, Default::default())?;
        let metrics = Metrics::build(ctx, Default::default())?;
        let notification = Notification::build(ctx, own)?;
        Ok(ingestion.merge(metrics).merge(notification))
    })
    .await;
    // The account first: its owner and contacts reach notification
    // through the metrics snapshot.
    let upsert = Body::Account(v1::AccountUpsert {
        name: Some("Acme Corp".into()),
        csm_owner_email: Some("ana@vendor.io".into()),
        contact_emails: vec!["ops@acme.io".into()],
        ..Default::default()
    });
    assert_eq!(app.send(vec![at("u", 10 * HOUR, upsert), at("s1", 9 * HOUR, subscription(10_000))]).await.accepted, 2);
    eventually("the account's context", Duration::from_secs(30), || async {
        (app.scalar("SELECT COUNT(*) FROM notification_accounts WHERE csm_owner = 'ana@vendor.io'").await == 1).then_some(())
    })
    .await;

    // An add-on cancelled (100.00 → 80.00), a detractor, a passive, a
    // promoter, then the churn.
    let mut addon = subscription(8_000);
    if let Body::Subscription(s) = &mut addon {
        s.add_on = true;
    }
    let answered = now() - 5 * HOUR;
    let signals = vec![
        at("s2", 8 * HOUR, addon),
        v1::Signal { occurred_at: ts(answered), ..signal("n1", "acme-1", nps_from("u1", 3)) },
        at("n2", 4 * HOUR, nps_from("u2", 8)),
        at("n3", 3 * HOUR, nps_from("u3", 10)),
        at("s3", HOUR, subscription(0)),
    ];
    assert_eq!(app.send(signals).await.accepted, 5);
    app.settled("notification").await;

    let tasks = tasks(&app).await;
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    // Most urgent first: the contraction, then the detractor.
    let (contact, call) = (&tasks[0], &tasks[1]);
    assert_eq!((contact.title.as_str(), contact.priority), ("Contact now", v1::TaskPriority::Urgent as i32));
    assert!(contact.message.contains("Acme Corp cancelled an add-on: MRR down by 20.00 EUR."), "{}", contact.message);
    assert_eq!(contact.assignee, "ana@vendor.io");
    assert_eq!((call.title.as_str(), call.priority), ("Call within 24 h", v1::TaskPriority::High as i32));
    assert_eq!(call.due_at.unwrap().seconds, answered + 24 * HOUR);
    assert!(call.message.contains("the integration keeps failing"), "{}", call.message);
    // Passive, promoter and churn are emails (kind 2).
    let emails = app.scalar("SELECT COUNT(*) FROM notification_actions WHERE kind = 2 AND rule IN ('nps_passive', 'nps_promoter', 'churn')").await;
    assert_eq!(emails, 3);
    let written = eventually("three emails in the outbox", Duration::from_secs(30), || async {
        let m = retain_testkit::smtp::read_messages(outbox.path());
        (m.len() == 3).then_some(m)
    })
    .await;
    assert!(written.iter().all(|m| m.header("To").as_deref() == Some("ops@acme.io")), "{written:?}");

    // A backfilled detractor: recorded (kind 3), no task.
    let old = v1::IngestSignalsRequest {
        signals: vec![at("n0", 40 * 24 * HOUR, nps_from("u9", 1))],
        mode: v1::IngestMode::Backfill as i32,
        ..Default::default()
    };
    assert_eq!(app.ingest(WRITER, old).await.unwrap().accepted, 1);
    app.settled("notification").await;
    assert_eq!(app.scalar("SELECT COUNT(*) FROM notification_actions WHERE rule = 'nps_detractor' AND kind = 3").await, 1);
    assert_eq!(app.count("notification_tasks").await, 2);
});

// An empty `csm_owner_email` clears the owner (the proto's rule) in every
// place that keeps it: the account record and routing — the next task is
// not assigned to the old owner, even when a metrics snapshot computed
// before the clear (still naming the owner) reaches notification after it.
retain_testkit::storage_test!(async fn an_empty_owner_clears_it_everywhere(db) {
    // No metrics service: the snapshots are published by hand, in the
    // order that loses the clear if notification trusts them blindly.
    let app = spawn_two::<Ingestion, Notification>(db).await;
    let owner = |email: &str| Body::Account(v1::AccountUpsert { csm_owner_email: Some(email.into()), ..Default::default() });
    assert_eq!(app.send(vec![at("own", 10 * HOUR, owner("ana@vendor.io"))]).await.accepted, 1);
    app.settled("notification").await;
    let before_the_clear = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    assert_eq!(app.send(vec![at("unown", 9 * HOUR, owner(""))]).await.accepted, 1);
    app.settled("notification").await;
    let stale = v1::AccountMetricsUpdated {
        tenant_id: "acme".into(),
        snapshot: Some(v1::AccountMetricsSnapshot {
            account_id: "acme-1".into(),
            as_of: Some(prost_types::Timestamp {
                seconds: before_the_clear.as_secs() as i64,
                nanos: before_the_clear.subsec_nanos() as i32,
            }),
            csm_owner_email: "ana@vendor.io".into(),
            ..Default::default()
        }),
        mode: v1::IngestMode::Live as i32,
    };
    retain_metrics::topics::ACCOUNT_METRICS.publish(&app.db.conn, &[stale]).await.unwrap();
    app.drained("account.metrics", "notification").await;

    let account = app.client.clone()
        .get_account(with_token(READER, v1::GetAccountRequest { account_id: "acme-1".into() }))
        .await.unwrap().into_inner().account.unwrap();
    assert_eq!(account.csm_owner_email, "");
    assert_eq!(app.scalar("SELECT COUNT(*) FROM notification_accounts WHERE csm_owner = 'ana@vendor.io'").await, 0);
    assert_eq!(app.send(vec![at("n1", HOUR, nps_from("u1", 2))]).await.accepted, 1);
    app.settled("notification").await;
    let tasks = tasks(&app).await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_ne!(tasks[0].assignee, "ana@vendor.io", "the cleared owner got the task");
});

// A late upsert (sent after a newer one, for an earlier moment) changes
// nothing that the newer one set: routing follows the account as
// ingestion merged it, field by field by occurrence, not the order the
// upserts arrived in.
retain_testkit::storage_test!(async fn a_late_upsert_never_undoes_a_newer_one(db) {
    let app = spawn_two::<Ingestion, Notification>(db).await;
    let owner = |email: &str| Body::Account(v1::AccountUpsert { csm_owner_email: Some(email.into()), ..Default::default() });
    assert_eq!(app.send(vec![at("new", 5 * HOUR, owner("ana@vendor.io"))]).await.accepted, 1);
    app.settled("notification").await;
    assert_eq!(app.send(vec![at("late", 8 * HOUR, owner("bob@vendor.io")), at("n1", HOUR, nps_from("u1", 2))]).await.accepted, 2);
    app.settled("notification").await;
    let tasks = tasks(&app).await;
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].assignee, "ana@vendor.io");
});
