//! The fault suite, short form (run in CI): the four service binaries on
//! a PostgreSQL cluster of their own and a real SMTP server, fed a steady
//! stream of signals by a client that retries as docs/INGESTION.md says
//! (the same request again on `UNAVAILABLE`, `RESOURCE_EXHAUSTED`,
//! `DEADLINE_EXCEEDED`, `CANCELLED` or a broken connection), while faults
//! come one after another:
//!
//! 1. each consumer (metrics, health, notification) killed with SIGKILL
//!    while it holds leases, then started again;
//! 2. PostgreSQL crashed (`pg_ctl stop -m immediate`) until a call has
//!    been refused, then started again;
//! 3. the SMTP server down while emails are due, until a send has failed,
//!    then back;
//! 4. every service restarted in turn with SIGTERM, each exiting 0.
//!
//! Then nothing is lost and nothing counts twice: the database holds
//! exactly the event ids the client sent, once each; every detractor has
//! one task; every promoter's email reached the SMTP server (each
//! Message-ID the records name, none missing) and none is dead; and every
//! error the client saw carried a code the docs promise for a fault —
//! never `INTERNAL` or `UNKNOWN`.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use retain_proto::v1;
use retain_proto::v1::ingestion_service_client::IngestionServiceClient;
use retain_proto::v1::notification_service_client::NotificationServiceClient;
use retain_testkit::binary::{Processes, RunningBinary, reference_config};
use retain_testkit::smtp::free_port;
use retain_testkit::{PgCluster, SmtpSink, eventually, now, signal, ts, with_token};
use sea_orm::{ConnectionTrait, Statement};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "faults-token";
const TEST: &str = "faults_lose_nothing_and_answer_the_promised_codes";

/// What the feeding client did.
#[derive(Debug, Default)]
struct Fed {
    /// Every event id sent (each batch until it was answered).
    event_ids: BTreeSet<String>,
    /// Accounts whose NPS answer was a detractor's (2) / a promoter's (10).
    detractors: Vec<String>,
    promoters: Vec<String>,
    /// Errors a fault explains, by code: retried.
    retried: BTreeMap<String, usize>,
    /// Anything else: the failures of this test.
    wrong: Vec<String>,
}

/// Batch `k`: account `f-k` (upserted with a CSM owner and a contact), a
/// session, and one NPS answer, a detractor's for even `k`.
fn batch(k: usize) -> Vec<v1::Signal> {
    let account = format!("f-{k}");
    let at = |s: v1::Signal, ago: i64| v1::Signal {
        occurred_at: ts(now() - ago),
        ..s
    };
    vec![
        at(
            signal(
                &format!("{account}-upsert"),
                &account,
                v1::signal::Body::Account(v1::AccountUpsert {
                    name: Some(format!("Fault {k}")),
                    csm_owner_email: Some("ana@vendor.example".into()),
                    contact_emails: vec![format!("ops@{account}.example")],
                    ..Default::default()
                }),
            ),
            600,
        ),
        at(
            signal(
                &format!("{account}-session"),
                &account,
                retain_testkit::session("u-1", 300),
            ),
            300,
        ),
        at(
            signal(
                &format!("{account}-nps"),
                &account,
                v1::signal::Body::Survey(v1::SurveyAnswer {
                    kind: v1::SurveyKind::Nps as i32,
                    score: if k.is_multiple_of(2) { 2 } else { 10 },
                    user_id: "u-1".into(),
                    ..Default::default()
                }),
            ),
            60,
        ),
    ]
}

/// Sends batch after batch to `addr` until `stop`, each one until it is
/// answered, recording what it saw in `fed`.
async fn feed(addr: String, fed: Arc<Mutex<Fed>>, stop: CancellationToken) {
    let channel = tonic::transport::Endpoint::from_shared(addr)
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    let mut client = IngestionServiceClient::new(channel);
    let mut k = 0;
    while !stop.is_cancelled() {
        let signals = batch(k);
        fed.lock()
            .unwrap()
            .event_ids
            .extend(signals.iter().map(|s| s.event_id.clone()));
        loop {
            let mut request = with_token(
                TOKEN,
                v1::IngestSignalsRequest {
                    signals: signals.clone(),
                    ..Default::default()
                },
            );
            request.set_timeout(Duration::from_secs(5));
            let answer =
                tokio::time::timeout(Duration::from_secs(10), client.ingest_signals(request)).await;
            let code = match answer {
                Ok(Ok(reply)) => {
                    let reply = reply.into_inner();
                    if reply.accepted + reply.duplicates != 3 {
                        fed.lock()
                            .unwrap()
                            .wrong
                            .push(format!("batch {k}: {reply:?}"));
                    }
                    break;
                }
                Ok(Err(status)) => status.code(),
                // No answer at all: the outcome is unknown, as for a deadline.
                Err(_) => tonic::Code::DeadlineExceeded,
            };
            let retry = {
                let mut f = fed.lock().unwrap();
                match code {
                    tonic::Code::Unavailable
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Cancelled => {
                        *f.retried.entry(format!("{code:?}")).or_default() += 1;
                        true
                    }
                    other => {
                        f.wrong.push(format!("batch {k}: {other:?}"));
                        false
                    }
                }
            };
            if !retry {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        {
            let mut f = fed.lock().unwrap();
            let account = format!("f-{k}");
            if k.is_multiple_of(2) {
                f.detractors.push(account);
            } else {
                f.promoters.push(account);
            }
        }
        k += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the feed has had `more` further batches answered: work
/// goes on between faults, and a stopped service misses some.
async fn feed_on(fed: &Arc<Mutex<Fed>>, more: usize) {
    let answered = |f: &Fed| f.detractors.len() + f.promoters.len();
    let target = answered(&fed.lock().unwrap()) + more;
    eventually(
        &format!("{more} more batches answered"),
        Duration::from_secs(60),
        || {
            let done = answered(&fed.lock().unwrap()) >= target;
            async move { done.then_some(()) }
        },
    )
    .await;
}

/// Keeps PostgreSQL down until the feed has had a call refused since the
/// crash (calls wait at most 2 s for a connection): the outage lasts
/// until clients have felt it, not a guessed time.
async fn until_a_call_is_refused(fed: &Arc<Mutex<Fed>>) {
    let refused = |f: &Fed| f.retried.values().sum::<usize>();
    let before = refused(&fed.lock().unwrap());
    eventually(
        "a call refused while PostgreSQL is down",
        Duration::from_secs(60),
        || {
            let felt = refused(&fed.lock().unwrap()) > before;
            async move { felt.then_some(()) }
        },
    )
    .await;
}

/// Every email notification (the feed makes fewer than a page), or
/// `None` while the service does not answer.
async fn emails(
    client: &NotificationServiceClient<tonic::transport::Channel>,
) -> Option<Vec<v1::Notification>> {
    let page = client
        .clone()
        .list_notifications(with_token(
            TOKEN,
            v1::ListNotificationsRequest {
                channel: v1::NotificationChannel::Email as i32,
                page_size: 1000,
                ..Default::default()
            },
        ))
        .await
        .ok()?;
    Some(page.into_inner().notifications)
}

/// The emails with a failed attempt: (id, attempts).
async fn failed_emails(
    client: &NotificationServiceClient<tonic::transport::Channel>,
) -> Option<BTreeSet<(String, i32)>> {
    Some(
        emails(client)
            .await?
            .into_iter()
            .filter(|e| !e.last_error.is_empty())
            .map(|e| (e.notification_id, e.attempts))
            .collect(),
    )
}

/// Keeps the SMTP server down until a send has failed since it went down
/// (the feed makes a promoter's email every other batch).
async fn until_an_email_fails(
    client: &NotificationServiceClient<tonic::transport::Channel>,
    before: &BTreeSet<(String, i32)>,
) {
    eventually(
        "an email send failed while the SMTP server is down",
        Duration::from_secs(60),
        || async move {
            let now = failed_emails(client).await?;
            now.difference(before).next().map(|_| ())
        },
    )
    .await;
}

#[tokio::test]
async fn faults_lose_nothing_and_answer_the_promised_codes() {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_retain")).parent().unwrap();
    let required = std::env::var("RETAIN_REQUIRE_POSTGRES").as_deref() == Ok("1");
    // Durable (fsync and synchronous commit on, PostgreSQL's defaults):
    // the tests' usual cluster trades both away for speed, and a crash of
    // it loses the last commits by design.
    let cluster = match PgCluster::start(true) {
        Ok(c) => c,
        Err(why) => {
            assert!(!required, "{TEST}: {why}");
            retain_testkit::skip(
                TEST,
                &format!("needs a PostgreSQL cluster of its own: {why}"),
            );
            return;
        }
    };
    let url = retain_testkit::BenchPostgres::at(cluster.admin_url())
        .database("retain_faults")
        .await
        .unwrap();
    {
        let db = retain_store::connect(&url, &retain_store::PoolOptions::default())
            .await
            .unwrap();
        retain_store::migrate(&db).await.unwrap();
        db.close().await.unwrap();
    }
    let Some(mut sink) = SmtpSink::start(TEST) else {
        return;
    };
    let smtp_port = sink.port.to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = reference_config(dir.path(), TOKEN, &["ingest", "read", "admin", "csm"]);
    let Some(deployment) = Processes::new(TEST, bin_dir, dir.path(), &config, &url) else {
        return;
    };
    let deployment = deployment
        // Short leases: a killed consumer's messages are taken over in
        // seconds, not the default 30.
        .with_env("RETAIN__METRICS__CONSUMER__LEASE_SECONDS", "3")
        .with_env("RETAIN__HEALTH__CONSUMER__LEASE_SECONDS", "3")
        .with_env("RETAIN__NOTIFICATION__CONSUMER__LEASE_SECONDS", "3")
        // A call waits at most 2 s for a connection, so one made while
        // PostgreSQL is down is answered (UNAVAILABLE) within the outage.
        .with_env("RETAIN__DATABASE__ACQUIRE_TIMEOUT_MS", "2000")
        .with_env("RETAIN__NOTIFICATION__EMAIL__TRANSPORT", "smtp")
        .with_env("RETAIN__NOTIFICATION__EMAIL__SMTP_HOST", "127.0.0.1")
        .with_env("RETAIN__NOTIFICATION__EMAIL__SMTP_PORT", &smtp_port)
        .with_env("RETAIN__NOTIFICATION__EMAIL__SMTP_TLS", "none")
        .with_env("RETAIN__NOTIFICATION__EMAIL__SMTP_TIMEOUT_MS", "1000")
        .with_env("RETAIN__NOTIFICATION__EMAIL__LEASE_SECONDS", "3")
        .with_env("RETAIN__NOTIFICATION__EMAIL__RETRY_INITIAL_MS", "200")
        .with_env("RETAIN__NOTIFICATION__EMAIL__RETRY_MAX_MS", "1000")
        .with_env("RETAIN__NOTIFICATION__EMAIL__MAX_ATTEMPTS", "100")
        .with_env("RETAIN__NOTIFICATION__EMAIL__POLL_INTERVAL_MS", "50");
    // Ingestion keeps its port across restarts, as a Service's address does.
    let ingestion_listen = format!("127.0.0.1:{}", free_port());
    let listen = [("RETAIN__SERVER__LISTEN", ingestion_listen.as_str())];
    let start_ingestion = || deployment.start_with("retain-ingestion", &listen);
    let mut ingestion = start_ingestion().await;
    let mut metrics = deployment.start("retain-metrics").await;
    let mut health = deployment.start("retain-health").await;
    let mut notification = deployment.start("retain-notification").await;

    let fed = Arc::new(Mutex::new(Fed::default()));
    let stop = CancellationToken::new();
    let feeder = tokio::spawn(feed(
        format!("http://{ingestion_listen}"),
        fed.clone(),
        stop.clone(),
    ));
    feed_on(&fed, 20).await;

    // 1. Each consumer killed while it works, then started again.
    metrics.kill();
    feed_on(&fed, 10).await;
    metrics = deployment.start("retain-metrics").await;
    health.kill();
    feed_on(&fed, 10).await;
    health = deployment.start("retain-health").await;
    notification.kill();
    feed_on(&fed, 10).await;
    notification = deployment.start("retain-notification").await;
    feed_on(&fed, 20).await;

    // 2. PostgreSQL crashes under load and comes back.
    cluster.crash().unwrap();
    until_a_call_is_refused(&fed).await;
    cluster.start_again().unwrap();
    feed_on(&fed, 20).await;

    // 3. The SMTP server down while emails are due, then back on its port.
    let mut received = sink.received();
    let port = sink.port;
    let client = NotificationServiceClient::new(notification.channel.clone());
    let failed_before = failed_emails(&client).await.unwrap_or_default();
    drop(sink);
    until_an_email_fails(&client, &failed_before).await;
    sink = SmtpSink::start_on(TEST, port).unwrap();
    feed_on(&fed, 20).await;

    // 4. Every service restarted in turn; each drains and exits 0.
    assert!(ingestion.stop().await.success(), "ingestion on SIGTERM");
    ingestion = start_ingestion().await;
    let restart = |name: &'static str, running: RunningBinary| {
        let deployment = &deployment;
        async move {
            assert!(running.stop().await.success(), "{name} on SIGTERM");
            deployment.start(name).await
        }
    };
    metrics = restart("retain-metrics", metrics).await;
    health = restart("retain-health", health).await;
    notification = restart("retain-notification", notification).await;
    feed_on(&fed, 20).await;
    stop.cancel();
    feeder.await.unwrap();

    let fed = std::mem::take(&mut *fed.lock().unwrap());
    assert!(
        fed.wrong.is_empty(),
        "answers no fault explains: {:?}",
        fed.wrong
    );
    assert!(fed.promoters.len() >= 5, "the feed barely ran: {fed:?}");
    // The outage was felt (answered with a code the client retries), not
    // slept through.
    assert!(!fed.retried.is_empty(), "no call saw a fault: {fed:?}");
    eprintln!(
        "{TEST}: {} batches, retried {:?}",
        fed.detractors.len() + fed.promoters.len(),
        fed.retried
    );

    // Every event id stored once, and nothing else.
    let db = retain_store::connect(&url, &retain_store::PoolOptions::default())
        .await
        .unwrap();
    let stored: Vec<String> = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT event_id FROM signals WHERE tenant_id = 'acme'",
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index(0).unwrap())
        .collect();
    let unique: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(unique.len(), stored.len(), "a signal stored twice");
    let lost: Vec<&String> = fed.event_ids.difference(&unique).collect();
    let unknown: Vec<&String> = unique.difference(&fed.event_ids).collect();
    assert!(
        lost.is_empty() && unknown.is_empty(),
        "lost {lost:?}; never sent {unknown:?}"
    );

    // Every detractor has one task.
    let notifications = NotificationServiceClient::new(notification.channel.clone());
    let detractors: BTreeSet<String> = fed.detractors.iter().cloned().collect();
    eventually("one task per detractor", Duration::from_secs(60), || {
        let mut client = notifications.clone();
        let detractors = detractors.clone();
        async move {
            let tasks = client
                .list_tasks(with_token(
                    TOKEN,
                    v1::ListTasksRequest {
                        page_size: 1000,
                        ..Default::default()
                    },
                ))
                .await
                .ok()?
                .into_inner()
                .tasks;
            let calls: Vec<&str> = tasks
                .iter()
                .filter(|t| t.trigger == v1::RoutingTrigger::NpsDetractor as i32)
                .map(|t| t.account_id.as_str())
                .collect();
            let distinct: BTreeSet<String> = calls.iter().map(|a| (*a).to_owned()).collect();
            assert_eq!(
                distinct.len(),
                calls.len(),
                "a detractor's task twice: {calls:?}"
            );
            (distinct == detractors).then_some(())
        }
    })
    .await;

    // Every promoter's email sent, and received under its Message-ID.
    let promoters: BTreeSet<String> = fed.promoters.iter().cloned().collect();
    let sent = eventually(
        "every promoter's email sent",
        Duration::from_secs(60),
        || {
            let (client, promoters) = (&notifications, promoters.clone());
            async move {
                let emails = emails(client).await?;
                assert!(
                    emails
                        .iter()
                        .all(|e| e.state != v1::DeliveryState::Dead as i32),
                    "an email dead-lettered: {emails:?}"
                );
                // Band changes email too (a Yellow nudge): the promoters' are
                // the referral asks.
                let referrals: Vec<v1::Notification> = emails
                    .into_iter()
                    .filter(|e| e.template == "nps_promoter_referral")
                    .collect();
                let sent: BTreeSet<String> = referrals
                    .iter()
                    .filter(|e| e.state == v1::DeliveryState::Sent as i32)
                    .map(|e| e.account_id.clone())
                    .collect();
                assert!(
                    referrals.len() <= promoters.len(),
                    "a promoter emailed twice: {referrals:?}"
                );
                (sent == promoters && referrals.len() == promoters.len()).then_some(referrals)
            }
        },
    )
    .await;
    received.extend(sink.received());
    let ids: BTreeSet<String> = received
        .iter()
        .filter_map(|m| m.header("Message-ID"))
        .collect();
    for email in &sent {
        assert!(
            ids.iter()
                .any(|id| id.starts_with(&format!("<{}@", email.notification_id))),
            "{}'s email never reached the server",
            email.account_id
        );
    }

    for service in [ingestion, metrics, health, notification] {
        assert!(service.stop().await.success());
    }
}
