//! Routing over real gRPC, on SQLite and PostgreSQL: band changes arrive on
//! `health.band_changed` as the health service publishes them, and come
//! out as CSM tasks, recorded emails or records — once per trigger,
//! suppressed inside a cooldown (both ways in time) or a snooze, never
//! acted on when backfilled, with a segment's override in force.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use retain_health::topics::HEALTH_BAND_CHANGED;
use retain_notification::Notification;
use retain_proto::v1;
use retain_proto::v1::notification_service_client::NotificationServiceClient;
use retain_testkit::*;
use tonic::Code;
use v1::HealthBand::{Green, Red, Thriving, Yellow};

const HOUR: i64 = 3_600;

/// Notification with its emails written into a fresh outbox folder
/// (removed with the returned guard).
async fn spawn(db: TestDatabase) -> (TestApp, tempfile::TempDir) {
    let outbox = tempfile::tempdir().unwrap();
    let app = spawn_app_with::<Notification>(db, settings(), outboxed(&outbox)).await;
    (app, outbox)
}

fn outboxed(dir: &tempfile::TempDir) -> retain_notification::NotificationSettings {
    retain_notification::NotificationSettings {
        email: retain_notification::EmailSettings::outbox(dir.path().to_str().unwrap()),
        ..Default::default()
    }
}

fn client(app: &TestApp) -> NotificationServiceClient<tonic::transport::Channel> {
    NotificationServiceClient::new(app.channel.clone())
}

/// A band change of `account` as health announces it, scored at `at`.
fn change(
    account: &str,
    (from, to): (v1::HealthBand, v1::HealthBand),
    at: i64,
    segment: &str,
    mode: v1::IngestMode,
) -> v1::HealthBandChanged {
    v1::HealthBandChanged {
        tenant_id: "acme".into(),
        account_id: account.into(),
        from_band: from as i32,
        to_band: to as i32,
        score: Some(v1::HealthScore {
            account_id: account.into(),
            score: 33.0,
            band: to as i32,
            scored_at: ts(at),
            explanation: "support_tickets: red — 3 tickets opened in 30 days (integration ×3)"
                .into(),
            ticket_topics: vec!["integration".into()],
            inputs: Some(v1::AccountMetricsSnapshot {
                account_id: account.into(),
                segment: segment.into(),
                csm_owner_email: "ana@vendor.io".into(),
                account_name: format!("{account} Inc"),
                contact_emails: vec!["ops@example.com".into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: mode as i32,
    }
}

/// Publishes the changes (each its own message) and waits until
/// notification has consumed them.
async fn announce(app: &TestApp, changes: Vec<v1::HealthBandChanged>) {
    let messages: Vec<v1::HealthBandChanged> = changes.into_iter().collect();
    HEALTH_BAND_CHANGED
        .publish(&app.db.conn, &messages)
        .await
        .unwrap();
    app.drained(HEALTH_BAND_CHANGED.name(), "notification")
        .await;
}

async fn tasks(app: &TestApp, account: &str) -> Vec<v1::Task> {
    client(app)
        .list_tasks(with_token(
            READER,
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

/// (suppressed, kind) of the account's recorded actions, in trigger order.
async fn actions(app: &TestApp, account: &str) -> Vec<(i64, i64)> {
    let n = app
        .scalar(&format!(
            "SELECT COUNT(*) FROM notification_actions WHERE account_id = '{account}'"
        ))
        .await;
    let mut out = Vec::new();
    for i in 0..n {
        let q = |col: &str| {
            format!(
                "SELECT CAST({col} AS BIGINT) FROM notification_actions WHERE account_id = '{account}' ORDER BY trigger_at LIMIT 1 OFFSET {i}"
            )
        };
        out.push((
            app.scalar(&q("suppressed")).await,
            app.scalar(&q("kind")).await,
        ));
    }
    out
}

retain_testkit::storage_test!(async fn each_band_routes_to_its_action_once(db) {
    let (app, _outbox) = spawn(db).await;
    let at = now() - HOUR;
    let live = v1::IngestMode::Live;
    announce(&app, vec![
        change("red-1", (Yellow, Red), at, "", live),
        change("yellow-1", (Green, Yellow), at, "", live),
        change("green-1", (Yellow, Green), at, "", live),
        change("thriving-1", (Green, Thriving), at, "", live),
        change("backfilled", (Yellow, Red), at, "", v1::IngestMode::Backfill),
    ])
    .await;

    // Red: an urgent account review for the account's CSM, with the
    // drivers and the ticket topics, due 24 h after the change.
    let red = tasks(&app, "red-1").await;
    assert_eq!(red.len(), 1, "{red:?}");
    let t = &red[0];
    assert_eq!((t.title.as_str(), t.queue.as_str(), t.assignee.as_str()), ("Account review", "csm", "ana@vendor.io"));
    assert_eq!(t.priority, v1::TaskPriority::Urgent as i32);
    assert_eq!(t.state, v1::TaskState::Open as i32);
    assert_eq!(t.trigger, v1::RoutingTrigger::BandRed as i32);
    assert!(t.message.contains("support_tickets: red"), "{}", t.message);
    assert!(t.message.contains("All recent tickets are about integration"), "{}", t.message);
    assert_eq!(t.due_at.unwrap().seconds, at + 24 * HOUR);
    // Thriving: an expansion opportunity in the expansion queue.
    let thriving = tasks(&app, "thriving-1").await;
    assert_eq!(thriving.len(), 1);
    assert_eq!((thriving[0].title.as_str(), thriving[0].queue.as_str()), ("Expansion opportunity", "expansion"));
    // Yellow: an email (recorded, kind 2); Green: a record (kind 3); a
    // backfilled Red: a record, no task.
    assert!(tasks(&app, "yellow-1").await.is_empty());
    assert_eq!(actions(&app, "yellow-1").await, [(0, 2)]);
    assert_eq!(actions(&app, "green-1").await, [(0, 3)]);
    assert!(tasks(&app, "backfilled").await.is_empty());
    assert_eq!(actions(&app, "backfilled").await, [(0, 3)]);

    // The same change delivered again (a replay upstream): nothing new.
    announce(&app, vec![change("red-1", (Yellow, Red), at, "", live)]).await;
    assert_eq!(tasks(&app, "red-1").await.len(), 1);
    assert_eq!(actions(&app, "red-1").await, [(0, 1)]);
});

retain_testkit::storage_test!(async fn cooldown_holds_both_ways_in_time_and_snooze_silences(db) {
    let (app, _outbox) = spawn(db).await;
    let at = now() - 2 * HOUR;
    let live = v1::IngestMode::Live;
    // Red again an hour later, and one that happened an hour *before*
    // the first but arrives late: both inside the 7-day cooldown.
    announce(&app, vec![change("acct-c", (Yellow, Red), at, "", live)]).await;
    announce(&app, vec![change("acct-c", (Green, Red), at + HOUR, "", live)]).await;
    announce(&app, vec![change("acct-c", (Green, Red), at - HOUR, "", live)]).await;
    assert_eq!(tasks(&app, "acct-c").await.len(), 1);
    assert_eq!(actions(&app, "acct-c").await, [(1, 1), (0, 1), (1, 1)], "suppressed by cooldown, counted");

    // A CSM snoozes Red for acct-s: its Red is recorded as snoozed.
    let until = now() + 86_400;
    let snoozed = client(&app)
        .snooze_rule(with_token(CSM, v1::SnoozeRuleRequest { account_id: "acct-s".into(), trigger: v1::RoutingTrigger::BandRed as i32, until: ts(until) }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(snoozed.until.unwrap().seconds, until);
    announce(&app, vec![change("acct-s", (Yellow, Red), now() - 60, "", live)]).await;
    assert!(tasks(&app, "acct-s").await.is_empty());
    assert_eq!(actions(&app, "acct-s").await, [(2, 1)]);
    // A snooze in the past, or of no rule, is refused naming the field.
    let err = client(&app)
        .snooze_rule(with_token(CSM, v1::SnoozeRuleRequest { account_id: "acct-s".into(), trigger: 0, until: ts(now() - 10) }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("trigger") && err.message().contains("until"), "{}", err.message());
    // A timestamp with nanoseconds outside 0–999,999,999 is refused, as
    // ingestion refuses it.
    let bad = prost_types::Timestamp { seconds: until, nanos: -1 };
    let err = client(&app)
        .snooze_rule(with_token(CSM, v1::SnoozeRuleRequest { account_id: "acct-s".into(), trigger: 1, until: Some(bad) }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("until: nanos -1"), "{}", err.message());
    let err = client(&app)
        .snooze_rule(with_token(READER, v1::SnoozeRuleRequest { account_id: "acct-s".into(), trigger: 1, until: ts(until) }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
});

retain_testkit::storage_test!(async fn a_segment_override_and_policy_validation(db) {
    let (app, _outbox) = spawn(db).await;
    // Enterprise sends Yellow to a CSM instead of an email.
    let enterprise = v1::RoutingPolicy {
        segment: "Enterprise".into(),
        rules: vec![v1::RoutingRule {
            trigger: v1::RoutingTrigger::BandYellow as i32,
            action: Some(v1::routing_rule::Action::Task(v1::TaskAction {
                title: "Call the sponsor".into(),
                queue: "csm".into(),
                priority: v1::TaskPriority::High as i32,
                sla_seconds: 48 * HOUR,
            })),
            cooldown_seconds: 0,
        }],
        ..Default::default()
    };
    let stored = client(&app)
        .put_routing_policy(with_token(ADMIN, v1::PutRoutingPolicyRequest { policy: Some(enterprise.clone()) }))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(stored.version, 1);
    let again = client(&app)
        .put_routing_policy(with_token(ADMIN, v1::PutRoutingPolicyRequest { policy: Some(enterprise) }))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(again.version, 2, "a put is a new version");
    // The effective Enterprise policy: its Yellow, the defaults elsewhere.
    let effective = client(&app)
        .get_routing_policy(with_token(READER, v1::GetRoutingPolicyRequest { segment: "Enterprise".into() }))
        .await
        .unwrap()
        .into_inner()
        .policy
        .unwrap();
    assert_eq!(effective.rules.len(), 9);
    let yellow = effective.rules.iter().find(|r| r.trigger == v1::RoutingTrigger::BandYellow as i32).unwrap();
    assert!(matches!(&yellow.action, Some(v1::routing_rule::Action::Task(t)) if t.title == "Call the sponsor"));

    let at = now() - HOUR;
    announce(&app, vec![
        change("big-co", (Green, Yellow), at, "Enterprise", v1::IngestMode::Live),
        change("small-co", (Green, Yellow), at, "SMB", v1::IngestMode::Live),
    ])
    .await;
    let big = tasks(&app, "big-co").await;
    assert_eq!(big.len(), 1);
    assert_eq!((big[0].title.as_str(), big[0].due_at.unwrap().seconds), ("Call the sponsor", at + 48 * HOUR));
    assert!(tasks(&app, "small-co").await.is_empty(), "SMB keeps the email");

    // An invalid policy: every problem named, nothing stored.
    let bad = v1::RoutingPolicy {
        rules: vec![v1::RoutingRule {
            trigger: v1::RoutingTrigger::BandRed as i32,
            action: Some(v1::routing_rule::Action::Task(v1::TaskAction { title: String::new(), queue: "Big Queue".into(), priority: 0, sla_seconds: 0 })),
            cooldown_seconds: -5,
        }],
        ..Default::default()
    };
    let err = client(&app)
        .put_routing_policy(with_token(ADMIN, v1::PutRoutingPolicyRequest { policy: Some(bad) }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    for field in ["cooldown_seconds", "task.title", "task.queue", "task.priority", "task.sla_seconds"] {
        assert!(retain_testkit::hostile::names(&err, &format!("policy.rules[0].{field}")), "{field}: {err:?}");
    }
    assert_eq!(app.count("notification_policies").await, 2);
    // The worst a client can send: a thousand bad rules with NUL and
    // control characters in every text. A default tonic client gets
    // INVALID_ARGUMENT (not "metadata size exceeds hard limit").
    let rule = v1::RoutingRule {
        trigger: v1::RoutingTrigger::BandRed as i32,
        action: Some(v1::routing_rule::Action::Task(v1::TaskAction { title: "a\0\u{1b}".repeat(60), queue: "q\0".into(), priority: 0, sla_seconds: 0 })),
        cooldown_seconds: -5,
    };
    let worst = v1::RoutingPolicy { segment: "\u{7}".repeat(300), rules: vec![rule; 1_000], ..Default::default() };
    let err = client(&app)
        .put_routing_policy(with_token(ADMIN, v1::PutRoutingPolicyRequest { policy: Some(worst) }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(retain_testkit::hostile::names(&err, "policy.rules"), "{err:?}");
    // Within the limit, every text is held to the rule of stored text.
    let texts = v1::RoutingPolicy {
        segment: "Enter\u{1b}prise".into(),
        rules: vec![v1::RoutingRule {
            trigger: v1::RoutingTrigger::BandRed as i32,
            action: Some(v1::routing_rule::Action::Task(v1::TaskAction { title: "Call\nnow".into(), queue: "csm".into(), priority: 1, sla_seconds: 60 })),
            cooldown_seconds: 0,
        }],
        ..Default::default()
    };
    let err = client(&app)
        .put_routing_policy(with_token(ADMIN, v1::PutRoutingPolicyRequest { policy: Some(texts) }))
        .await
        .unwrap_err();
    for field in ["policy.segment", "policy.rules[0].task.title"] {
        assert!(retain_testkit::hostile::names(&err, field), "{field}: {err:?}");
    }
    assert_eq!(app.count("notification_policies").await, 2);
    let err = client(&app)
        .put_routing_policy(with_token(READER, v1::PutRoutingPolicyRequest { policy: None }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
});

// Two notification consumers on one stream (two replicas), fed every
// change twice: each trigger yields one action and at most one task.
retain_testkit::storage_test!(async fn two_consumers_never_act_twice(db) {
    use retain_bus::{Bus, Consumer, ConsumerOptions, groups};
    let outbox = tempfile::tempdir().unwrap();
    let app = spawn_composed(db, settings(), retain_runtime::Clock::system(), |ctx| {
        let notification = <Notification as retain_runtime::Service>::build(ctx, outboxed(&outbox))?;
        let second = retain_notification::Router {
            db: ctx.db.clone(),
            clock: ctx.clock.clone(),
            tenants: std::sync::Arc::new(retain_notification::tenants(&ctx.tenants)?),
        };
        let db = ctx.db.clone();
        let mut workers = retain_runtime::Workers::new();
        workers.add("second-notification-replica", move |stop| async move {
            let consumer = Consumer::new(Bus::new(db), HEALTH_BAND_CHANGED.name(), groups::NOTIFICATION, ConsumerOptions::new("second-notification-replica"))
                .await
                .unwrap();
            consumer.run(&second, stop).await;
        });
        Ok(notification.with_workers(workers))
    })
    .await;
    let at = now() - HOUR;
    let bands = [(Yellow, Red), (Green, Yellow), (Yellow, Green), (Green, Thriving)];
    let changes: Vec<v1::HealthBandChanged> = (0..40)
        .map(|i| change(&format!("acct-{i}"), bands[i % 4], at, "", v1::IngestMode::Live))
        .collect();
    // Every change published twice, as an upstream retry would.
    announce(&app, changes.iter().chain(changes.iter()).cloned().collect()).await;
    assert_eq!(app.count("notification_actions").await, 40);
    assert_eq!(app.count("notification_tasks").await, 20, "Red and Thriving: one task each");
    let s = Bus::new(app.db.conn.clone()).stats(HEALTH_BAND_CHANGED.name(), "notification").await.unwrap();
    assert_eq!((s.pending, s.leased, s.dead), (0, 0, 0));
});

// Emails and in-app messages are recorded with their template, variables
// and recipients, a suppressed one as suppressed; emails are then sent
// (here into the outbox folder); ListNotifications pages newest first,
// filters, and counts by state.
retain_testkit::storage_test!(async fn messages_are_recorded_and_listed_with_counts(db) {
    let (app, outbox) = spawn(db).await;
    let at = now() - 2 * HOUR;
    let live = v1::IngestMode::Live;
    announce(&app, (0..3).map(|i| change(&format!("y-{i}"), (Green, Yellow), at + i, "", live)).collect()).await;
    announce(&app, vec![change("y-0", (Green, Yellow), at + HOUR, "", live)]).await;
    let list = |req: v1::ListNotificationsRequest| {
        let app = &app;
        async move {
            client(app)
                .list_notifications(with_token(READER, req))
                .await
                .map(tonic::Response::into_inner)
        }
    };
    use v1::DeliveryState as D;
    let all = eventually("the emails sent", std::time::Duration::from_secs(30), || async {
        let all = list(v1::ListNotificationsRequest::default()).await.unwrap();
        let counts: Vec<(i32, i64)> = all.counts.iter().map(|c| (c.state, c.count)).collect();
        (counts == [(D::Sent as i32, 6), (D::Suppressed as i32, 2)]).then_some(all)
    })
    .await;
    assert_eq!(all.notifications.len(), 8, "3 emails + 3 in-app, and the suppressed pair");
    let email = all
        .notifications
        .iter()
        .find(|n| n.account_id == "y-1" && n.channel == v1::NotificationChannel::Email as i32)
        .unwrap();
    assert_eq!(email.template, "health_yellow_nudge");
    assert_eq!(email.recipients, ["ops@example.com"]);
    assert_eq!(email.variables.get("account_name").map(String::as_str), Some("y-1 Inc"));
    assert_eq!((email.state, email.attempts), (D::Sent as i32, 1));
    let file = outbox.path().join(format!("{}.eml", email.notification_id));
    assert!(std::fs::read_to_string(&file).unwrap().contains("y-1 Inc"), "{file:?}");
    assert_eq!(retain_testkit::smtp::read_messages(outbox.path()).len(), 3, "suppressed: not sent");

    // Pages of three, emails only: no skip, no repeat.
    let (mut seen, mut token) = (Vec::new(), String::new());
    loop {
        let page = list(v1::ListNotificationsRequest {
            page_size: 3,
            page_token: token,
            channel: v1::NotificationChannel::Email as i32,
            states: vec![D::Sent as i32, D::Suppressed as i32],
            ..Default::default()
        })
        .await
        .unwrap();
        seen.extend(page.notifications.into_iter().map(|n| (n.account_id, n.state)));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    seen.sort();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0], ("y-0".to_owned(), D::Sent as i32));
    assert_eq!(seen[1], ("y-0".to_owned(), D::Suppressed as i32));
    let one = list(v1::ListNotificationsRequest { account_id: "y-2".into(), ..Default::default() }).await.unwrap();
    assert_eq!(one.notifications.len(), 2);
    let err = list(v1::ListNotificationsRequest { channel: 7, states: vec![0], ..Default::default() }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("channel") && err.message().contains("states[0]"), "{}", err.message());
});
