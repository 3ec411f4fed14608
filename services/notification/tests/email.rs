//! Email delivery to a real SMTP server (Python's aiosmtpd, started by
//! each test), over real gRPC on SQLite and PostgreSQL: every email rule
//! from a bus message to a received message; a server that is down, then
//! back; a permanent refusal and exhausted retries dead-lettered; two
//! delivery workers on one database never sending an email twice.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::collections::BTreeSet;
use std::time::Duration;

use retain_health::topics::HEALTH_BAND_CHANGED;
use retain_ingestion::topics::SIGNALS_RECORDED;
use retain_metrics::topics::ACCOUNT_METRICS;
use retain_notification::{
    EmailSettings, EmailTransport, Notification, NotificationSettings, SmtpTls,
};
use retain_proto::v1;
use retain_proto::v1::DeliveryState as D;
use retain_proto::v1::notification_service_client::NotificationServiceClient;
use retain_testkit::smtp::free_port;
use retain_testkit::*;

const HOUR: i64 = 3_600;

/// Notification sending to 127.0.0.1:`port` in plain text, retrying fast.
fn smtp(port: u16, max_attempts: u32) -> NotificationSettings {
    NotificationSettings {
        email: EmailSettings {
            transport: EmailTransport::Smtp,
            smtp_host: "127.0.0.1".into(),
            smtp_port: port,
            smtp_tls: SmtpTls::None,
            smtp_timeout_ms: 2_000,
            lease_seconds: 5,
            max_attempts,
            retry_initial_ms: 100,
            retry_max_ms: 400,
            poll_interval_ms: 20,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// `account` turning Yellow, with `contact` as its only contact.
fn yellow(account: &str, contact: &str) -> v1::HealthBandChanged {
    v1::HealthBandChanged {
        tenant_id: "acme".into(),
        account_id: account.into(),
        from_band: v1::HealthBand::Green as i32,
        to_band: v1::HealthBand::Yellow as i32,
        score: Some(v1::HealthScore {
            account_id: account.into(),
            score: 55.0,
            band: v1::HealthBand::Yellow as i32,
            scored_at: ts(now() - HOUR),
            dimensions: vec![
                v1::DimensionScore {
                    key: "product_usage".into(),
                    sub_score: 20.0,
                    ..Default::default()
                },
                v1::DimensionScore {
                    key: "nps".into(),
                    sub_score: 80.0,
                    ..Default::default()
                },
            ],
            inputs: Some(v1::AccountMetricsSnapshot {
                account_id: account.into(),
                account_name: format!("{account} Inc"),
                contact_emails: vec![contact.into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: v1::IngestMode::Live as i32,
    }
}

async fn emails(app: &TestApp) -> Vec<v1::Notification> {
    emails_of(app, READER).await
}

/// Waits until every email of the tenant is in `state`, and returns them.
async fn all_in(app: &TestApp, n: usize, state: D) -> Vec<v1::Notification> {
    eventually(
        &format!("{n} emails {state:?}"),
        Duration::from_secs(30),
        || async {
            let list = emails(app).await;
            (list.len() == n && list.iter().all(|e| e.state == state as i32)).then_some(list)
        },
    )
    .await
}

retain_testkit::storage_test!(async fn every_email_rule_reaches_a_real_smtp_server_once(db) {
    let Some(sink) = SmtpSink::start("every_email_rule_reaches_a_real_smtp_server_once") else { return };
    let app = spawn_app_with::<Notification>(db, settings(), smtp(sink.port, 8)).await;
    // The account's name and contacts arrive with its metrics snapshot.
    let snapshot = v1::AccountMetricsUpdated {
        tenant_id: "acme".into(),
        snapshot: Some(v1::AccountMetricsSnapshot {
            account_id: "acme-1".into(),
            account_name: "Acme Corp".into(),
            contact_emails: vec!["ops@acme.io".into(), "cto@acme.io".into()],
            as_of: ts(now()),
            ..Default::default()
        }),
        mode: v1::IngestMode::Live as i32,
    };
    ACCOUNT_METRICS.publish(&app.db.conn, &[snapshot]).await.unwrap();
    app.drained(ACCOUNT_METRICS.name(), "notification").await;
    // A passive and a promoter answer, then a churn (a paid subscription
    // ended, for price), as ingestion records them; and a band change.
    let at = |id: &str, hours_ago: i64, body| v1::Signal { occurred_at: ts(now() - hours_ago * HOUR), ..signal(id, "acme-1", body) };
    let recorded = v1::SignalsRecorded {
        tenant_id: "acme".into(),
        account_id: "acme-1".into(),
        routable: vec![
            at("s1", 9, subscription(10_000)),
            at("n1", 5, nps(8)),
            at("n2", 4, nps(10)),
            at("s2", 1, subscription(0)),
        ],
        ..Default::default()
    };
    let messages = [recorded];
    SIGNALS_RECORDED.publish(&app.db.conn, &messages).await.unwrap();
    let band = [yellow("yellow-1", "lead@yellow.io")];
    HEALTH_BAND_CHANGED.publish(&app.db.conn, &band).await.unwrap();

    let sent = all_in(&app, 4, D::Sent).await;
    assert!(sent.iter().all(|e| e.attempts == 1 && e.sent_at.is_some()), "{sent:?}");
    let received = sink.received();
    assert_eq!(received.len(), 4, "{received:?}");
    let by_subject = |part: &str| {
        received.iter().find(|m| m.header("Subject").is_some_and(|s| s.contains(part))).unwrap_or_else(|| panic!("no email about {part}: {received:?}"))
    };
    let passive = by_subject("three tutorials");
    assert_eq!(passive.to, ["ops@acme.io", "cto@acme.io"]);
    assert_eq!(passive.header("Subject").unwrap(), "Thanks for your feedback, Acme Corp: three tutorials picked for you");
    assert!(passive.body().contains("Thank you for rating us 8 out of 10"), "{}", passive.body());
    assert_eq!(passive.header("From").unwrap(), "\"Customer Success\" <cs@retain.localhost>");
    let promoter = by_subject("Thank you, Acme Corp!");
    assert!(promoter.body().contains("You rated us 10 out of 10"), "{}", promoter.body());
    let churn = by_subject("why you left");
    assert!(churn.body().contains("Your subscription has ended"), "{}", churn.body());
    let nudge = by_subject("yellow-1 Inc");
    assert_eq!(nudge.to, ["lead@yellow.io"]);
    assert!(nudge.body().contains("your product usage has dropped lately"), "{}", nudge.body());
    // Each Message-ID is the notification id at the From domain.
    let ids: BTreeSet<String> = received.iter().map(|m| m.header("Message-ID").unwrap()).collect();
    let expected: BTreeSet<String> = sent.iter().map(|e| format!("<{}@retain.localhost>", e.notification_id)).collect();
    assert_eq!(ids, expected);

    // Replayed, the triggers change nothing: no new email is due, none is sent.
    SIGNALS_RECORDED.publish(&app.db.conn, &messages).await.unwrap();
    HEALTH_BAND_CHANGED.publish(&app.db.conn, &band).await.unwrap();
    app.drained(SIGNALS_RECORDED.name(), "notification").await;
    app.drained(HEALTH_BAND_CHANGED.name(), "notification").await;
    assert_eq!(all_in(&app, 4, D::Sent).await.len(), 4);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM notification_messages WHERE state = 1").await, 0);
    assert_eq!(sink.received().len(), 4);
});

retain_testkit::storage_test!(async fn smtp_down_then_back_delivers_once(db) {
    let port = free_port();
    let app = spawn_app_with::<Notification>(db, settings(), smtp(port, 100)).await;
    HEALTH_BAND_CHANGED.publish(&app.db.conn, &[yellow("y-1", "ops@y.io")]).await.unwrap();
    // Nothing listens: the email stays pending, retried, with the error.
    let failing = eventually("two failed attempts", Duration::from_secs(30), || async {
        emails(&app).await.into_iter().find(|e| e.attempts >= 2)
    })
    .await;
    assert_eq!(failing.state, D::Pending as i32);
    assert!(failing.last_error.contains("SMTP"), "{}", failing.last_error);
    let Some(sink) = SmtpSink::start_on("smtp_down_then_back_delivers_once", port) else { return };
    let sent = all_in(&app, 1, D::Sent).await;
    assert!(sent[0].attempts > failing.attempts && sent[0].last_error.is_empty(), "{sent:?}");
    let received = sink.received();
    assert_eq!(received.len(), 1, "delivered once: {received:?}");
    assert_eq!(received[0].header("Message-ID").unwrap(), format!("<{}@retain.localhost>", sent[0].notification_id));
});

retain_testkit::storage_test!(async fn refused_and_exhausted_emails_are_dead_letters(db) {
    let Some(sink) = SmtpSink::start("refused_and_exhausted_emails_are_dead_letters") else { return };
    let app = spawn_app_with::<Notification>(db, settings(), smtp(sink.port, 3)).await;
    // A permanent refusal (550) dead-letters at the first attempt.
    HEALTH_BAND_CHANGED.publish(&app.db.conn, &[yellow("refused", "nobody@reject.test")]).await.unwrap();
    let dead = all_in(&app, 1, D::Dead).await;
    assert_eq!(dead[0].attempts, 1);
    assert!(dead[0].last_error.contains("550"), "{}", dead[0].last_error);
    assert!(sink.received().is_empty());
    drop(sink);

    // With the server gone, a transient failure is retried three times,
    // then dead-lettered; both are listed and counted as dead.
    HEALTH_BAND_CHANGED.publish(&app.db.conn, &[yellow("unreachable", "ops@u.io")]).await.unwrap();
    let dead = all_in(&app, 2, D::Dead).await;
    let unreachable = dead.iter().find(|e| e.account_id == "unreachable").unwrap();
    assert_eq!(unreachable.attempts, 3);
    let list = NotificationServiceClient::new(app.channel.clone())
        .list_notifications(with_token(READER, v1::ListNotificationsRequest { states: vec![D::Dead as i32], ..Default::default() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.notifications.len(), 2);
    assert!(list.counts.iter().any(|c| c.state == D::Dead as i32 && c.count == 2), "{:?}", list.counts);
});

retain_testkit::storage_test!(async fn two_delivery_workers_never_send_an_email_twice(db) {
    let Some(sink) = SmtpSink::start("two_delivery_workers_never_send_an_email_twice") else { return };
    let own = smtp(sink.port, 8);
    let second_settings = own.email.clone();
    let app = spawn_composed(db, settings(), retain_runtime::Clock::system(), |ctx| {
        let notification = <Notification as retain_runtime::Service>::build(ctx, own)?;
        let templates = std::sync::Arc::new(retain_notification::Templates::load("")?);
        let tenants = std::sync::Arc::new(retain_notification::tenants(&ctx.tenants)?);
        let second = retain_notification::Mailer::new(ctx.db.clone(), ctx.clock.clone(), templates, &second_settings, tenants)?;
        let mut workers = retain_runtime::Workers::new();
        workers.add("second-mailer", move |stop| async move { second.run(stop).await });
        Ok(notification.with_workers(workers))
    })
    .await;
    let changes: Vec<_> = (0..40).map(|i| yellow(&format!("acct-{i}"), &format!("ops@acct-{i}.io"))).collect();
    HEALTH_BAND_CHANGED.publish(&app.db.conn, &changes).await.unwrap();
    let sent = all_in(&app, 40, D::Sent).await;
    assert!(sent.iter().all(|e| e.attempts == 1), "no email was taken twice");
    let received = sink.received();
    assert_eq!(received.len(), 40);
    let ids: BTreeSet<String> = received.iter().map(|m| m.header("Message-ID").unwrap()).collect();
    assert_eq!(ids.len(), 40, "40 distinct emails");
});

// The outbox: each email a `<notification id>.eml` file; a policy naming
// a template that does not exist is refused with the field.
// A tenant's own sender: its From (and so the Message-ID's domain) and
// Reply-To on its emails; another tenant keeps the configured From.
retain_testkit::storage_test!(async fn a_tenant_sends_from_its_own_address(db) {
    let outbox = tempfile::tempdir().unwrap();
    let own = NotificationSettings { email: EmailSettings::outbox(outbox.path().to_str().unwrap()), ..Default::default() };
    let mut s = settings();
    s.tenants.default.keys.insert("email_from".into(), "Acme Success <cs@acme.example>".into());
    s.tenants.default.keys.insert("email_reply_to".into(), "help@acme.example".into());
    let app = spawn_app_with::<Notification>(db, s, own).await;
    HEALTH_BAND_CHANGED.publish(&app.db.conn, &[yellow("y-1", "ops@y.io")]).await.unwrap();
    let sent = all_in(&app, 1, D::Sent).await;
    let raw = std::fs::read_to_string(outbox.path().join(format!("{}.eml", sent[0].notification_id))).unwrap();
    let m = Received { to: Vec::new(), raw };
    assert_eq!(m.header("From").unwrap(), "\"Acme Success\" <cs@acme.example>");
    assert_eq!(m.header("Reply-To").unwrap(), "help@acme.example");
    assert_eq!(m.header("Message-ID").unwrap(), format!("<{}@acme.example>", sent[0].notification_id));
});

// An email goes to at most max_recipients of the account's contacts, its
// first ones in order: the record says who was written to.
retain_testkit::storage_test!(async fn an_email_reaches_at_most_max_recipients(db) {
    let outbox = tempfile::tempdir().unwrap();
    let mut email = EmailSettings::outbox(outbox.path().to_str().unwrap());
    email.max_recipients = 3;
    let app = spawn_app_with::<Notification>(db, settings(), NotificationSettings { email, ..Default::default() }).await;
    let mut change = yellow("y-1", "c0@y.io");
    let contacts: Vec<String> = (0..15).map(|i| format!("c{i}@y.io")).collect();
    change.score.as_mut().unwrap().inputs.as_mut().unwrap().contact_emails = contacts.clone();
    HEALTH_BAND_CHANGED.publish(&app.db.conn, &[change]).await.unwrap();
    let sent = all_in(&app, 1, D::Sent).await;
    assert_eq!(sent[0].recipients, contacts[..3], "the first three, in order");
    let raw = std::fs::read_to_string(outbox.path().join(format!("{}.eml", sent[0].notification_id))).unwrap();
    let to = Received { to: Vec::new(), raw }.header("To").unwrap();
    assert_eq!(to, "c0@y.io, c1@y.io, c2@y.io");
});

retain_testkit::storage_test!(async fn the_outbox_keeps_one_file_per_email(db) {
    let outbox = tempfile::tempdir().unwrap();
    let own = NotificationSettings { email: EmailSettings::outbox(outbox.path().to_str().unwrap()), ..Default::default() };
    let app = spawn_app_with::<Notification>(db, settings(), own).await;
    HEALTH_BAND_CHANGED.publish(&app.db.conn, &[yellow("y-1", "ops@y.io"), yellow("y-2", "ops@y2.io")]).await.unwrap();
    let sent = all_in(&app, 2, D::Sent).await;
    for e in &sent {
        let file = outbox.path().join(format!("{}.eml", e.notification_id));
        let raw = std::fs::read_to_string(&file).unwrap();
        let m = Received { to: Vec::new(), raw };
        assert_eq!(m.header("To").unwrap(), format!("ops@{}.io", if e.account_id == "y-1" { "y" } else { "y2" }));
        assert!(m.header("Subject").unwrap().contains(&format!("{} Inc", e.account_id)));
    }
    assert_eq!(smtp::read_messages(outbox.path()).len(), 2);

    let err = NotificationServiceClient::new(app.channel.clone())
        .put_routing_policy(with_token(ADMIN, v1::PutRoutingPolicyRequest {
            policy: Some(v1::RoutingPolicy {
                rules: vec![v1::RoutingRule {
                    trigger: v1::RoutingTrigger::BandYellow as i32,
                    action: Some(v1::routing_rule::Action::Email(v1::EmailAction { template: "no_such_template".into(), in_app: false })),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(hostile::names(&err, "policy.rules[0].email.template"), "{err:?}");
    assert!(err.message().contains("health_yellow_nudge"), "lists the known templates: {}", err.message());
});

/// The tenant's emails, listed with `token`.
async fn emails_of(app: &TestApp, token: &str) -> Vec<v1::Notification> {
    NotificationServiceClient::new(app.channel.clone())
        .list_notifications(with_token(
            token,
            v1::ListNotificationsRequest {
                channel: v1::NotificationChannel::Email as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .notifications
}

// A tenant past its email quota waits — its emails held, pending, with the
// reason and no attempt counted — while another tenant's go out; the next
// hour resumes it, up to its daily quota. Nothing is dead-lettered.
retain_testkit::storage_test!(async fn a_tenant_past_its_email_quota_waits_and_others_go_on(db) {
    let outbox = tempfile::tempdir().unwrap();
    let mut own = NotificationSettings { email: EmailSettings::outbox(outbox.path().to_str().unwrap()), ..Default::default() };
    own.email.poll_interval_ms = 20;
    let mut s = settings();
    s.tenants.default.keys.insert("email_quota_per_hour".into(), 2.into());
    s.tenants.default.keys.insert("email_quota_per_day".into(), 3.into());
    // Three seconds before an hour ends: held emails come back every few
    // seconds, and stay held until the test moves the clock on.
    let hour_end = retain_domain::Timestamp::from_ymd_hms(2026, 6, 10, 11, 0, 0);
    let clock = retain_runtime::Clock::manual(hour_end.plus_micros(-3_000_000));
    let app = spawn_app_at::<Notification>(db, s, own, clock.clone()).await;
    let mut changes: Vec<_> = (1..=6).map(|i| yellow(&format!("a-{i}"), &format!("ops@a{i}.io"))).collect();
    let mut other = yellow("z-1", "ops@z.io");
    other.tenant_id = "globex".into();
    changes.push(other);
    HEALTH_BAND_CHANGED.publish(&app.db.conn, &changes).await.unwrap();

    let by_state = |list: &[v1::Notification], state: D| list.iter().filter(|e| e.state == state as i32).count();
    // The emails that met the spent quota say so; the rest of the tenant's
    // backlog waits with them on the bus.
    let held = eventually("acme: 2 sent, 4 held", Duration::from_secs(30), || async {
        let list = emails_of(&app, READER).await;
        let pending: Vec<_> = list.iter().filter(|e| e.state == D::Pending as i32).cloned().collect();
        let says = pending.iter().any(|e| e.last_error.starts_with("held:"));
        (list.len() == 6 && by_state(&list, D::Sent) == 2 && pending.len() == 4 && says).then_some(pending)
    })
    .await;
    let reason = held.iter().find(|e| e.last_error.starts_with("held:")).unwrap();
    assert!(reason.last_error.contains("quota of 2 per hour"), "{}", reason.last_error);
    assert!(held.iter().all(|e| e.attempts == 0), "holding counted an attempt: {held:?}");
    let globex = eventually("globex's email sent", Duration::from_secs(30), || async {
        let list = emails_of(&app, GLOBEX).await;
        (by_state(&list, D::Sent) == 1).then_some(list)
    })
    .await;
    assert_eq!(globex.len(), 1);
    assert_eq!(smtp::read_messages(outbox.path()).len(), 3);

    // The next hour: one more, then the day's quota of 3 holds the rest.
    clock.set(hour_end.plus_micros(1_000_000));
    let list = eventually("acme: 3 sent, 3 held by the day", Duration::from_secs(30), || async {
        let list = emails_of(&app, READER).await;
        let by_day = list.iter().any(|e| e.state == D::Pending as i32 && e.last_error.contains("quota of 3 per day"));
        (by_state(&list, D::Sent) == 3 && by_state(&list, D::Pending) == 3 && by_day).then_some(list)
    })
    .await;
    assert_eq!(list.len(), 6);
    assert_eq!(smtp::read_messages(outbox.path()).len(), 4);
    let stats = retain_bus::Bus::new(app.db.conn.clone()).stats("notification.email", "notification").await.unwrap();
    assert_eq!((stats.pending + stats.leased, stats.dead), (3, 0), "{stats:?}");
});
