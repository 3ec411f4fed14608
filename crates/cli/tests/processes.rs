//! The four services as separate processes — the real binaries, as a
//! Kubernetes deployment runs them — sharing one PostgreSQL database: a
//! client's signals go in at ingestion and come out as a health score and
//! a CSM task; a service stopped mid-stream loses nothing.
//!
//! The service binaries are found beside `retain` in the target folder
//! (`cargo test --workspace` builds them all).

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::path::Path;
use std::time::Duration;

use retain_proto::v1;
use retain_proto::v1::health_service_client::HealthServiceClient;
use retain_proto::v1::ingestion_service_client::IngestionServiceClient;
use retain_proto::v1::notification_service_client::NotificationServiceClient;
use retain_testkit::binary::{Processes, RunningBinary, reference_config};
use retain_testkit::{TestDatabase, batch, eventually, now, signal, task_titled, ts, with_token};

const TOKEN: &str = "e2e-token";

fn nps(id: &str, account: &str, score: i32) -> v1::Signal {
    v1::Signal {
        occurred_at: ts(now() - 60),
        ..signal(
            id,
            account,
            v1::signal::Body::Survey(v1::SurveyAnswer {
                kind: v1::SurveyKind::Nps as i32,
                score,
                user_id: "u-1".into(),
                ..Default::default()
            }),
        )
    }
}

async fn call_task(notification: &RunningBinary, account: &str) -> v1::Task {
    task_titled(&notification.channel, TOKEN, account, "Call within 24 h").await
}

#[tokio::test]
async fn four_processes_on_one_postgresql_turn_signals_into_scores_and_tasks() {
    let test = "four_processes_on_one_postgresql_turn_signals_into_scores_and_tasks";
    let Some(db) = TestDatabase::postgres(test).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = reference_config(dir.path(), TOKEN, &["ingest", "read", "admin", "csm"]);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_retain")).parent().unwrap();
    let Some(deployment) = Processes::new(test, bin_dir, dir.path(), &config, &db.url) else {
        return;
    };
    let ingestion = deployment.start("retain-ingestion").await;
    let metrics = deployment.start("retain-metrics").await;
    let health = deployment.start("retain-health").await;
    let notification = deployment.start("retain-notification").await;

    // The account, its use, and a detractor's answer, in at ingestion.
    let upsert = v1::Signal {
        occurred_at: ts(now() - 3_600),
        ..signal(
            "a-1",
            "acme-1",
            v1::signal::Body::Account(v1::AccountUpsert {
                name: Some("Acme Corp".into()),
                csm_owner_email: Some("ana@vendor.example".into()),
                contact_emails: vec!["ops@acme.example".into()],
                ..Default::default()
            }),
        )
    };
    let mut intake = IngestionServiceClient::new(ingestion.channel.clone());
    let reply = intake
        .ingest_signals(with_token(
            TOKEN,
            batch(vec![
                upsert,
                retain_testkit::days_ago("s-1", "acme-1", 1, retain_testkit::session("u-1", 600)),
                nps("n-1", "acme-1", 3),
            ]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 3, "{reply:?}");

    // Out at notification: the detractor's task for the account's CSM.
    let task = call_task(&notification, "acme-1").await;
    assert_eq!(task.assignee, "ana@vendor.example");
    assert!(
        task.message.contains("Acme Corp: u-1 answered NPS 3"),
        "{}",
        task.message
    );
    // And at health: the account scored, explained.
    let scores = HealthServiceClient::new(health.channel.clone());
    let score = eventually("acme-1's score", Duration::from_secs(60), || {
        let request = with_token(
            TOKEN,
            v1::GetHealthRequest {
                account_id: "acme-1".into(),
            },
        );
        let mut scores = scores.clone();
        async move {
            scores
                .get_health(request)
                .await
                .ok()
                .and_then(|r| r.into_inner().score)
        }
    })
    .await;
    assert!(score.explanation.contains("nps"), "{}", score.explanation);

    // Notification stopped mid-stream: what arrives meanwhile waits on
    // the bus, and is acted on once it is back.
    assert!(notification.stop().await.success());
    let reply = intake
        .ingest_signals(with_token(TOKEN, batch(vec![nps("n-2", "acme-2", 2)])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 1);
    let notification = deployment.start("retain-notification").await;
    let task = call_task(&notification, "acme-2").await;
    assert!(task.message.contains("answered NPS 2"), "{}", task.message);
    let all = NotificationServiceClient::new(notification.channel.clone())
        .list_tasks(with_token(TOKEN, v1::ListTasksRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .tasks;
    let calls = all
        .iter()
        .filter(|t| t.trigger == v1::RoutingTrigger::NpsDetractor as i32)
        .count();
    assert_eq!(calls, 2, "one task per detractor, none twice: {all:?}");
    // Whatever band each account's first live score had, it acted at most
    // once: never a second review task for one account.
    let reviews = all
        .iter()
        .filter(|t| t.trigger == v1::RoutingTrigger::BandRed as i32)
        .count();
    assert!(reviews <= 1, "{all:?}");

    for service in [ingestion, metrics, health, notification] {
        assert!(service.stop().await.success());
    }
}
