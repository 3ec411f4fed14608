//! The product's scenarios end to end, over real gRPC, against both
//! deployments: the four services embedded in one process (as
//! `retain serve` runs them; SQLite and PostgreSQL), and the four real
//! binaries as separate processes sharing one PostgreSQL. Each scenario
//! sends raw signals to ingestion and checks what the other services
//! answer. Scenarios: the worked B2B example (docs/KPIS.md) (69.0, Yellow, an email
//! aimed at its tickets), a detractor, a duplicate resend, an add-on
//! cancelled, a scored account turning Red with its tickets' topic, a
//! healthy account slipping to Yellow (an email aimed at the weakest
//! dimension), a backfill that fires nothing, a model change whose rescore
//! turns an account Thriving and notifies once.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::time::Duration;

use retain_proto::v1;
use retain_proto::v1::ingestion_service_client::IngestionServiceClient;
use retain_proto::v1::notification_service_client::NotificationServiceClient;
use retain_proto::v1::signal::Body;
use retain_runtime::Service;
use retain_testkit::*;
use tonic::transport::Channel;

const HOUR: i64 = 3_600;

/// Where each service answers, and the token to use.
struct Deployment {
    /// A token with the admin role (models).
    admin: String,
    ingest: Channel,
    health: Channel,
    notification: Channel,
    token: String,
}

impl Deployment {
    async fn send(
        &self,
        mode: v1::IngestMode,
        signals: Vec<v1::Signal>,
    ) -> v1::IngestSignalsResponse {
        IngestionServiceClient::new(self.ingest.clone())
            .ingest_signals(with_token(
                &self.token,
                v1::IngestSignalsRequest {
                    signals,
                    mode: mode as i32,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
    }

    async fn tasks(&self, account: &str) -> Vec<v1::Task> {
        NotificationServiceClient::new(self.notification.clone())
            .list_tasks(with_token(
                &self.token,
                v1::ListTasksRequest {
                    account_id: account.into(),
                    states: vec![1, 2, 3, 4],
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .tasks
    }

    /// Waits for the account's task titled `title`.
    async fn task(&self, account: &str, title: &str) -> v1::Task {
        eventually(
            &format!("{account}'s {title:?} task"),
            Duration::from_secs(60),
            || async {
                self.tasks(account)
                    .await
                    .into_iter()
                    .find(|t| t.title == title)
            },
        )
        .await
    }

    async fn health(&self, account: &str) -> Option<v1::HealthScore> {
        retain_proto::v1::health_service_client::HealthServiceClient::new(self.health.clone())
            .get_health(with_token(
                &self.token,
                v1::GetHealthRequest {
                    account_id: account.into(),
                },
            ))
            .await
            .ok()
            .and_then(|r| r.into_inner().score)
    }

    /// Waits until rescore job `job_id` is done.
    async fn rescored(&self, job_id: String) -> v1::RescoreJob {
        let health =
            retain_proto::v1::health_service_client::HealthServiceClient::new(self.health.clone());
        eventually("the rescore job", Duration::from_secs(60), || {
            let mut health = health.clone();
            let request = with_token(
                &self.admin,
                v1::GetRescoreJobRequest {
                    job_id: job_id.clone(),
                },
            );
            async move {
                let job = health.get_rescore_job(request).await.unwrap().into_inner();
                (job.state == v1::RescoreJobState::Done as i32).then_some(job)
            }
        })
        .await
    }

    async fn notifications(&self, account: &str) -> Vec<v1::Notification> {
        NotificationServiceClient::new(self.notification.clone())
            .list_notifications(with_token(
                &self.token,
                v1::ListNotificationsRequest {
                    account_id: account.into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .notifications
    }
}

fn at(id: &str, account: &str, seconds_ago: i64, body: Body) -> v1::Signal {
    v1::Signal {
        occurred_at: ts(now() - seconds_ago),
        ..signal(id, account, body)
    }
}

fn upsert(account: &str) -> Body {
    Body::Account(v1::AccountUpsert {
        name: Some(format!("{account} Ltd")),
        csm_owner_email: Some("ana@vendor.example".into()),
        contact_emails: vec![format!("ops@{account}.example")],
        ..Default::default()
    })
}

fn nps_from(user: &str, score: i32) -> Body {
    Body::Survey(v1::SurveyAnswer {
        kind: v1::SurveyKind::Nps as i32,
        score,
        user_id: user.into(),
        ..Default::default()
    })
}

fn ticket(id: &str, topic: &str) -> Body {
    Body::Ticket(v1::SupportTicket {
        ticket_id: id.into(),
        status: v1::TicketStatus::Opened as i32,
        topics: vec![topic.into()],
        contacts_until_resolution: 0,
    })
}

/// Every scenario, one after another, each on its own accounts.
async fn scenarios(d: &Deployment) {
    let live = v1::IngestMode::Live;

    // A detractor's answer: a "call within 24 h" task for the account's
    // CSM, due a day after the answer.
    let batch = vec![
        at("d-0", "detractor", 2 * HOUR, upsert("detractor")),
        at("d-1", "detractor", HOUR, nps_from("u-1", 3)),
    ];
    assert_eq!(d.send(live, batch.clone()).await.accepted, 2);
    let call = d.task("detractor", "Call within 24 h").await;
    assert_eq!(call.assignee, "ana@vendor.example");
    assert_eq!(
        call.due_at.unwrap().seconds,
        batch[1].occurred_at.unwrap().seconds + 24 * HOUR
    );
    assert_eq!(call.priority, v1::TaskPriority::High as i32);

    // The same batch sent again: all duplicates, nothing new anywhere.
    let again = d.send(live, batch).await;
    assert_eq!((again.accepted, again.duplicates), (0, 2));

    // An add-on cancelled (100.00 → 80.00): "contact now", urgent.
    let mut addon = subscription(8_000);
    if let Body::Subscription(s) = &mut addon {
        s.add_on = true;
    }
    let signals = vec![
        at("a-0", "addon", 3 * HOUR, upsert("addon")),
        at("a-1", "addon", 2 * HOUR, subscription(10_000)),
        at("a-2", "addon", HOUR, addon),
    ];
    assert_eq!(d.send(live, signals).await.accepted, 3);
    let contact = d.task("addon", "Contact now").await;
    assert_eq!(contact.priority, v1::TaskPriority::Urgent as i32);
    assert!(
        contact
            .message
            .contains("addon Ltd cancelled an add-on: MRR down by 20.00 EUR."),
        "{}",
        contact.message
    );

    // A scored account (an account's first score announces nothing)
    // whose tickets pile up about one topic, whose users turn unhappy and
    // whose payments go to collections: Red, and an urgent account review
    // naming the tickets' topic.
    let billing = |status: v1::BillingStatus| {
        Body::Billing(v1::BillingStatusChange {
            status: status as i32,
        })
    };
    let mut signals = vec![
        at("r-0", "collapse", 10 * 24 * HOUR, upsert("collapse")),
        at("r-1", "collapse", 9 * 24 * HOUR, nps_from("u-1", 9)),
        at(
            "r-2",
            "collapse",
            9 * 24 * HOUR,
            billing(v1::BillingStatus::Current),
        ),
    ];
    signals.extend(
        (1..=6).map(|day| days_ago(&format!("r-s{day}"), "collapse", day, session("u-1", 900))),
    );
    assert_eq!(d.send(live, signals).await.accepted, 9);
    eventually(
        "collapse's first score",
        Duration::from_secs(60),
        || async {
            let scored = d.health("collapse").await;
            scored.filter(|s| s.band != v1::HealthBand::Red as i32)
        },
    )
    .await;
    let signals = vec![
        at("r-3", "collapse", 4 * HOUR, ticket("T-1", "integration")),
        at("r-4", "collapse", 3 * HOUR, ticket("T-2", "integration")),
        at("r-5", "collapse", 2 * HOUR, ticket("T-3", "integration")),
        at("r-6", "collapse", 2 * HOUR, nps_from("u-2", 1)),
        at(
            "r-7",
            "collapse",
            HOUR,
            billing(v1::BillingStatus::Collections),
        ),
    ];
    assert_eq!(d.send(live, signals).await.accepted, 5);
    let review = d.task("collapse", "Account review").await;
    assert_eq!(review.priority, v1::TaskPriority::Urgent as i32);
    assert!(review.message.contains("is now red"), "{}", review.message);
    assert!(
        review
            .message
            .contains("All recent tickets are about integration"),
        "{}",
        review.message
    );

    // The worked B2B example (docs/KPIS.md): actively used (16 of 20 target days: usage
    // 80), NPS 7, three integration tickets this month, billing current —
    // 0.4·80 + 0.1·70 + 0.2·0 + 0.3·100 = 69.0, Yellow. It gets there from
    // Red (payments in collections: 39.0; a first score announces
    // nothing), so the move is announced, and its contacts get the email
    // aimed at the weakest dimension, the tickets.
    let mut signals = vec![
        at("s-0", "b2b", 20 * 24 * HOUR, upsert("b2b")),
        at("s-1", "b2b", 9 * 24 * HOUR, nps_from("u-1", 7)),
        at(
            "s-2",
            "b2b",
            9 * 24 * HOUR,
            billing(v1::BillingStatus::Collections),
        ),
        at("s-3", "b2b", 5 * 24 * HOUR, ticket("B-1", "integration")),
        at("s-4", "b2b", 4 * 24 * HOUR, ticket("B-2", "integration")),
        at("s-5", "b2b", 3 * 24 * HOUR, ticket("B-3", "integration")),
    ];
    signals.extend(
        (1..=16).map(|day| days_ago(&format!("s-s{day}"), "b2b", day, session("u-1", 900))),
    );
    assert_eq!(d.send(live, signals).await.accepted, 22);
    eventually(
        "b2b's first score, Red",
        Duration::from_secs(60),
        || async {
            d.health("b2b")
                .await
                .filter(|s| s.band == v1::HealthBand::Red as i32)
        },
    )
    .await;
    assert_eq!(
        d.send(
            live,
            vec![at("s-6", "b2b", HOUR, billing(v1::BillingStatus::Current))]
        )
        .await
        .accepted,
        1
    );
    let nudge = eventually("b2b's Yellow email", Duration::from_secs(60), || async {
        d.notifications("b2b").await.into_iter().find(|n| {
            n.template == "health_yellow_nudge"
                && n.channel == v1::NotificationChannel::Email as i32
        })
    })
    .await;
    assert_eq!(
        nudge.variables.get("weakest_dimension").map(String::as_str),
        Some("support_tickets"),
        "{nudge:?}"
    );
    let score = d.health("b2b").await.unwrap();
    assert_eq!(
        (score.score, score.band),
        (69.0, v1::HealthBand::Yellow as i32),
        "{score:?}"
    );
    assert!(
        score.explanation.contains("integration"),
        "{}",
        score.explanation
    );

    // A healthy account whose payments go to collections: Yellow, and an
    // email to its contacts aimed at the weakest dimension.
    let mut signals = vec![
        at("y-0", "slipping", 10 * 24 * HOUR, upsert("slipping")),
        at("y-1", "slipping", 9 * 24 * HOUR, nps_from("u-1", 9)),
        at(
            "y-2",
            "slipping",
            9 * 24 * HOUR,
            billing(v1::BillingStatus::Current),
        ),
    ];
    signals.extend(
        (1..=18).map(|day| days_ago(&format!("y-s{day}"), "slipping", day, session("u-1", 900))),
    );
    assert_eq!(d.send(live, signals).await.accepted, 21);
    eventually(
        "slipping's first score",
        Duration::from_secs(60),
        || async {
            d.health("slipping")
                .await
                .filter(|s| s.band == v1::HealthBand::Green as i32)
        },
    )
    .await;
    assert_eq!(
        d.send(
            live,
            vec![at(
                "y-3",
                "slipping",
                HOUR,
                billing(v1::BillingStatus::Collections)
            )]
        )
        .await
        .accepted,
        1
    );
    let nudge = eventually(
        "slipping's Yellow email",
        Duration::from_secs(60),
        || async {
            d.notifications("slipping").await.into_iter().find(|n| {
                n.template == "health_yellow_nudge"
                    && n.channel == v1::NotificationChannel::Email as i32
            })
        },
    )
    .await;
    assert_eq!(nudge.recipients, ["ops@slipping.example"]);
    assert_eq!(
        nudge.variables.get("weakest_dimension").map(String::as_str),
        Some("billing_status"),
        "{nudge:?}"
    );
    assert_eq!(
        d.health("slipping").await.unwrap().band,
        v1::HealthBand::Yellow as i32
    );

    // Old history sent as BACKFILL fires nothing: a detractor from 200
    // days ago opens no task. A live promoter after it is acted on (an
    // email), which shows the backfill was consumed before it.
    let signals = vec![
        at("b-0", "history", 201 * 24 * HOUR, upsert("history")),
        at("b-1", "history", 200 * 24 * HOUR, nps_from("u-1", 1)),
    ];
    assert_eq!(d.send(v1::IngestMode::Backfill, signals).await.accepted, 2);
    assert_eq!(
        d.send(live, vec![at("b-2", "history", HOUR, nps_from("u-2", 10))])
            .await
            .accepted,
        1
    );
    let promoted = eventually(
        "the live promoter's email",
        Duration::from_secs(60),
        || async {
            d.notifications("history")
                .await
                .into_iter()
                .find(|n| n.template == "nps_promoter_referral")
        },
    )
    .await;
    assert_eq!(promoted.recipients, ["ops@history.example"]);
    assert!(
        d.tasks("history").await.is_empty(),
        "a backfilled detractor opens no task"
    );

    // The model changes (Thriving above 90) and every account is rescored:
    // the healthy champion (95) turns Thriving, and one expansion task
    // opens; rescoring again opens nothing more.
    let mut signals = vec![
        at("c-0", "champion", 10 * 24 * HOUR, upsert("champion")),
        at("c-1", "champion", 9 * 24 * HOUR, nps_from("u-1", 9)),
        at(
            "c-2",
            "champion",
            9 * 24 * HOUR,
            billing(v1::BillingStatus::Current),
        ),
    ];
    signals.extend(
        (1..=18).map(|day| days_ago(&format!("c-s{day}"), "champion", day, session("u-1", 900))),
    );
    assert_eq!(d.send(live, signals).await.accepted, 21);
    eventually(
        "champion's first score",
        Duration::from_secs(60),
        || async {
            d.health("champion")
                .await
                .filter(|s| s.band == v1::HealthBand::Green as i32)
        },
    )
    .await;
    let mut health =
        retain_proto::v1::health_service_client::HealthServiceClient::new(d.health.clone());
    let mut model = health
        .get_scoring_model(with_token(&d.admin, v1::GetScoringModelRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap();
    model.green_max = 90.0;
    let put = health
        .put_scoring_model(with_token(
            &d.admin,
            v1::PutScoringModelRequest {
                model: Some(model),
                rescore: true,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let expansion = d.task("champion", "Expansion opportunity").await;
    assert_eq!(expansion.queue, "expansion");
    d.rescored(put.rescore_job_id).await;
    let again = health
        .rescore_all(with_token(&d.admin, v1::RescoreAllRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let job = d.rescored(again.job_id).await;
    assert_eq!(job.band_changes, 0, "nothing moves twice");
    let expansions = d
        .tasks("champion")
        .await
        .into_iter()
        .filter(|t| t.title == "Expansion opportunity")
        .count();
    assert_eq!(expansions, 1, "notified once");
}

retain_testkit::storage_test!(async fn every_scenario_embedded_in_one_process(db) {
    let outbox = tempfile::tempdir().unwrap();
    let own = retain_notification::NotificationSettings {
        email: retain_notification::EmailSettings::outbox(outbox.path().to_str().unwrap()),
        ..Default::default()
    };
    let app = spawn_composed(db, settings(), retain_runtime::Clock::system(), |ctx| {
        Ok(retain_ingestion::Ingestion::build(ctx, Default::default())?
            .merge(retain_metrics::Metrics::build(ctx, Default::default())?)
            .merge(retain_health::Health::build(ctx, Default::default())?)
            .merge(retain_notification::Notification::build(ctx, own)?))
    })
    .await;
    let d = Deployment { admin: ADMIN.into(), ingest: app.channel.clone(), health: app.channel.clone(), notification: app.channel.clone(), token: WRITER.into() };
    scenarios(&d).await;
});

#[tokio::test]
async fn every_scenario_as_separate_processes_on_postgresql() {
    let test = "every_scenario_as_separate_processes_on_postgresql";
    let Some(db) = TestDatabase::postgres(test).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token = "scenario-token";
    let config = binary::reference_config(dir.path(), token, &["ingest", "read", "admin", "csm"]);
    // The scenarios' money is in EUR.
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "base_currency = \"USD\"",
        "base_currency = \"EUR\"",
        1,
    );
    std::fs::write(&config, text).unwrap();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_retain"))
        .parent()
        .unwrap();
    let Some(processes) = binary::Processes::new(test, bin_dir, dir.path(), &config, &db.url)
    else {
        return;
    };
    let running = processes.start_all().await;
    let d = Deployment {
        admin: token.into(),
        ingest: running[0].channel.clone(),
        health: running[2].channel.clone(),
        notification: running[3].channel.clone(),
        token: token.into(),
    };
    scenarios(&d).await;
    for r in running {
        assert!(r.stop().await.success());
    }
}
