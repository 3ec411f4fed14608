//! The CSM queue over real gRPC, on SQLite and PostgreSQL: listing in
//! urgency order with stable pages, claiming (two CSMs at once: exactly
//! one wins), completing and dismissing, with the state checked.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use retain_health::topics::HEALTH_BAND_CHANGED;
use retain_notification::Notification;
use retain_proto::v1;
use retain_proto::v1::notification_service_client::NotificationServiceClient;
use retain_testkit::*;
use tonic::Code;

fn client(app: &TestApp) -> NotificationServiceClient<tonic::transport::Channel> {
    NotificationServiceClient::new(app.channel.clone())
}

fn red(account: &str, at: i64) -> v1::HealthBandChanged {
    let to = v1::HealthBand::Red;
    {
        v1::HealthBandChanged {
            tenant_id: "acme".into(),
            account_id: account.into(),
            from_band: v1::HealthBand::Yellow as i32,
            to_band: to as i32,
            score: Some(v1::HealthScore {
                account_id: account.into(),
                score: 30.0,
                band: to as i32,
                scored_at: ts(at),
                ..Default::default()
            }),
            mode: v1::IngestMode::Live as i32,
        }
    }
}

retain_testkit::storage_test!(async fn tasks_are_listed_claimed_completed_and_dismissed(db) {
    let app = spawn_app::<Notification>(db).await;
    let messages: Vec<_> = (0..5).map(|i| red(&format!("acct-{i}"), now() - 600 + i)).collect();
    HEALTH_BAND_CHANGED.publish(&app.db.conn, &messages).await.unwrap();
    app.drained(HEALTH_BAND_CHANGED.name(), "notification").await;

    // Pages of two, earliest SLA first within one priority: no task skipped or
    // repeated. Unowned tasks have no assignee yet.
    let (mut all, mut token) = (Vec::new(), String::new());
    loop {
        let page = client(&app)
            .list_tasks(with_token(READER, v1::ListTasksRequest { page_size: 2, page_token: token, ..Default::default() }))
            .await
            .unwrap()
            .into_inner();
        assert!(all.len() < 10, "the pages end");
        all.extend(page.tasks);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    // A page token is bound to its filters: reused with others it would
    // skip or repeat tasks, so it is refused, naming the field.
    let first = client(&app)
        .list_tasks(with_token(READER, v1::ListTasksRequest { page_size: 2, ..Default::default() }))
        .await
        .unwrap()
        .into_inner();
    let err = client(&app)
        .list_tasks(with_token(READER, v1::ListTasksRequest { page_size: 2, page_token: first.next_page_token, queue: "expansion".into(), ..Default::default() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("page_token") && err.message().contains("other filters"), "{}", err.message());
    let accounts: Vec<&str> = all.iter().map(|t| t.account_id.as_str()).collect();
    assert_eq!(accounts, ["acct-0", "acct-1", "acct-2", "acct-3", "acct-4"]);
    assert!(all.iter().all(|t| t.assignee.is_empty()));

    // Two CSMs claim the same task at once: exactly one wins.
    let id = all[0].task_id.clone();
    let claim = |who: &'static str| {
        let (app, id) = (&app, id.clone());
        async move {
            client(app)
                .claim_task(with_token(CSM, v1::ClaimTaskRequest { task_id: id, assignee: who.into() }))
                .await
        }
    };
    let (a, b) = tokio::join!(claim("ana@vendor.io"), claim("bo@vendor.io"));
    let (won, lost) = match (a, b) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w.into_inner().task.unwrap(), l),
        other => panic!("exactly one claim wins: {other:?}"),
    };
    assert_eq!(won.state, v1::TaskState::Claimed as i32);
    assert_eq!(lost.code(), Code::FailedPrecondition);
    assert!(lost.message().contains("claimed"), "{}", lost.message());
    let mine = client(&app)
        .list_tasks(with_token(READER, v1::ListTasksRequest { assignee: won.assignee.clone(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(mine.iter().map(|t| t.task_id.as_str()).collect::<Vec<_>>(), [id.as_str()]);

    // Complete it with a note; a second task is dismissed, and then
    // cannot be completed.
    let done = client(&app)
        .complete_task(with_token(CSM, v1::CompleteTaskRequest { task_id: id.clone(), note: "Called the sponsor; integration fixed".into() }))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert_eq!((done.state, done.resolution.as_str()), (v1::TaskState::Done as i32, "Called the sponsor; integration fixed"));
    let other = all[1].task_id.clone();
    let err = client(&app)
        .dismiss_task(with_token(CSM, v1::DismissTaskRequest { task_id: other.clone(), reason: "  ".into() }))
        .await
        .unwrap_err();
    assert!(err.message().contains("reason"), "{}", err.message());
    client(&app)
        .dismiss_task(with_token(CSM, v1::DismissTaskRequest { task_id: other.clone(), reason: "duplicate of a call today".into() }))
        .await
        .unwrap();
    let err = client(&app)
        .complete_task(with_token(CSM, v1::CompleteTaskRequest { task_id: other.clone(), note: String::new() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("dismissed"), "{}", err.message());

    // The default listing shows open and claimed tasks only.
    let open = client(&app)
        .list_tasks(with_token(READER, v1::ListTasksRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(open.len(), 3);

    // Roles, unknown tasks, another tenant, bad filters.
    let err = client(&app)
        .claim_task(with_token(READER, v1::ClaimTaskRequest { task_id: all[2].task_id.clone(), assignee: "ana@vendor.io".into() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = client(&app)
        .get_task(with_token(READER, v1::GetTaskRequest { task_id: "nope".into() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = client(&app)
        .get_task(with_token(GLOBEX, v1::GetTaskRequest { task_id: id.clone() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "another tenant's task does not exist for globex");
    let err = client(&app)
        .list_tasks(with_token(READER, v1::ListTasksRequest { states: vec![9], page_token: "zz".into(), ..Default::default() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("states[0]") && err.message().contains("page_token"), "{}", err.message());
    let err = client(&app)
        .claim_task(with_token(CSM, v1::ClaimTaskRequest { task_id: all[2].task_id.clone(), assignee: "not an email".into() }))
        .await
        .unwrap_err();
    assert!(err.message().contains("assignee"), "{}", err.message());
});

// A token that names its CSM claims for her: with no assignee the task is
// hers, naming someone else is refused; an admin assigns anyone.
retain_testkit::storage_test!(async fn a_csms_own_token_claims_for_her_only(db) {
    let app = spawn_app::<Notification>(db).await;
    let messages: Vec<_> = (0..3).map(|i| red(&format!("acct-{i}"), now() - 600 + i)).collect();
    HEALTH_BAND_CHANGED.publish(&app.db.conn, &messages).await.unwrap();
    app.drained(HEALTH_BAND_CHANGED.name(), "notification").await;
    let tasks = client(&app)
        .list_tasks(with_token(READER, v1::ListTasksRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .tasks;
    assert_eq!(tasks.len(), 3);
    let claim = |token: &'static str, i: usize, who: &str| {
        let req = v1::ClaimTaskRequest { task_id: tasks[i].task_id.clone(), assignee: who.into() };
        let app = &app;
        async move { client(app).claim_task(with_token(token, req)).await }
    };
    let mine = claim(CSM_ANA, 0, "").await.unwrap().into_inner().task.unwrap();
    assert_eq!(mine.assignee, "ana@vendor.io");
    let err = claim(CSM_ANA, 1, "bo@vendor.io").await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("ana@vendor.io"), "{}", err.message());
    let task = client(&app)
        .get_task(with_token(READER, v1::GetTaskRequest { task_id: tasks[1].task_id.clone() }))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    assert!(task.assignee.is_empty(), "the refused claim changed nothing");
    let theirs = claim(ADMIN, 1, "bo@vendor.io").await.unwrap().into_inner().task.unwrap();
    assert_eq!(theirs.assignee, "bo@vendor.io");
    // A token that names no one still claims for whoever it says.
    let named = claim(CSM, 2, "cy@vendor.io").await.unwrap().into_inner().task.unwrap();
    assert_eq!(named.assignee, "cy@vendor.io");
});

fn owned_queue_settings() -> retain_runtime::config::Settings {
    let mut s = settings();
    let queues: retain_runtime::config::Value = std::collections::HashMap::from([(
        "csm".to_owned(),
        vec!["ana@vendor.io", "bo@vendor.io"],
    )])
    .into();
    s.tenants.default.keys.insert("queues".into(), queues);
    s
}

async fn assignees(app: &TestApp) -> Vec<String> {
    let mut who: Vec<String> = client(app)
        .list_tasks(with_token(READER, v1::ListTasksRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .tasks
        .into_iter()
        .map(|t| t.assignee)
        .collect();
    who.sort();
    who
}

// A task of an account without a CSM goes to the queue's CSMs in turn, or
// to the one with the fewest open tasks when the policy says so.
retain_testkit::storage_test!(async fn unowned_tasks_are_assigned_in_turn_or_to_the_least_loaded(db) {
    let app = spawn_app_with::<Notification>(db, owned_queue_settings(), Default::default()).await;
    let messages: Vec<_> = (0..3).map(|i| red(&format!("acct-{i}"), now() - 600 + i)).collect();
    HEALTH_BAND_CHANGED.publish(&app.db.conn, &messages).await.unwrap();
    app.drained(HEALTH_BAND_CHANGED.name(), "notification").await;
    assert_eq!(assignees(&app).await, ["ana@vendor.io", "ana@vendor.io", "bo@vendor.io"]);

    let fewest = v1::RoutingPolicy { assignment: v1::AssignmentStrategy::FewestOpen as i32, ..Default::default() };
    client(&app)
        .put_routing_policy(with_token(ADMIN, v1::PutRoutingPolicyRequest { policy: Some(fewest) }))
        .await
        .unwrap();
    HEALTH_BAND_CHANGED.publish(&app.db.conn, &[red("acct-9", now() - 60)]).await.unwrap();
    app.drained(HEALTH_BAND_CHANGED.name(), "notification").await;
    assert_eq!(
        assignees(&app).await,
        ["ana@vendor.io", "ana@vendor.io", "bo@vendor.io", "bo@vendor.io"],
        "the new task goes to bo, who had one open task to ana's two"
    );
});

// Fewest-open counts the tasks the same batch gave a queue's CSM as
// their account's owner: ana's owned account's task comes first in the
// batch, so the unowned one after it goes to bo.
retain_testkit::storage_test!(async fn fewest_open_counts_owned_tasks_of_the_same_batch(db) {
    let app = spawn_app_with::<Notification>(db, owned_queue_settings(), Default::default()).await;
    let fewest = v1::RoutingPolicy { assignment: v1::AssignmentStrategy::FewestOpen as i32, ..Default::default() };
    client(&app)
        .put_routing_policy(with_token(ADMIN, v1::PutRoutingPolicyRequest { policy: Some(fewest) }))
        .await
        .unwrap();
    let mut owned = red("owned-1", now() - 120);
    let inputs = v1::AccountMetricsSnapshot { account_id: "owned-1".into(), csm_owner_email: "ana@vendor.io".into(), ..Default::default() };
    owned.score.as_mut().unwrap().inputs = Some(inputs);
    HEALTH_BAND_CHANGED.publish(&app.db.conn, &[owned, red("unowned-1", now() - 60)]).await.unwrap();
    app.drained(HEALTH_BAND_CHANGED.name(), "notification").await;
    assert_eq!(assignees(&app).await, ["ana@vendor.io", "bo@vendor.io"]);
});

// The sweep marks an open task breached once its SLA passes (the clock is
// moved, not waited for); ListTasks' `overdue` lists it.
retain_testkit::storage_test!(async fn a_task_past_its_sla_is_marked_breached(db) {
    let start = retain_domain::time::Timestamp::from_seconds(now());
    let clock = retain_runtime::Clock::manual(start);
    let own = retain_notification::NotificationSettings { sla_sweep_interval_ms: 20, ..Default::default() };
    let app = spawn_app_at::<Notification>(db, settings(), own, clock.clone()).await;
    HEALTH_BAND_CHANGED.publish(&app.db.conn, &[red("late-1", start.seconds() - 60)]).await.unwrap();
    app.drained(HEALTH_BAND_CHANGED.name(), "notification").await;
    let overdue = |app: &TestApp| {
        let mut c = client(app);
        async move {
            c.list_tasks(with_token(READER, v1::ListTasksRequest { overdue: true, ..Default::default() }))
                .await
                .unwrap()
                .into_inner()
                .tasks
        }
    };
    assert!(overdue(&app).await.is_empty(), "due in 24 h");
    clock.advance(std::time::Duration::from_secs(25 * 3_600));
    let breached = eventually("the sweep to mark the task", std::time::Duration::from_secs(30), || async {
        Some(overdue(&app).await).filter(|t| !t.is_empty())
    })
    .await;
    assert_eq!(breached.len(), 1);
    assert!(breached[0].sla_breached);
    assert_eq!(breached[0].account_id, "late-1");
});

// WatchTasks streams creations and changes; a watcher that disconnects
// and resumes from its last cursor misses nothing and sees nothing twice.
retain_testkit::storage_test!(async fn a_task_watcher_resumes_from_its_cursor(db) {
    let app = spawn_app::<Notification>(db).await;
    let mut watch = client(&app)
        .watch_tasks(with_token(READER, v1::WatchTasksRequest { queue: "csm".into(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner();
    let messages: Vec<_> = (0..3).map(|i| red(&format!("w-{i}"), now() - 600 + i)).collect();
    HEALTH_BAND_CHANGED.publish(&app.db.conn, &messages).await.unwrap();
    let first = watch.message().await.unwrap().unwrap();
    let second = watch.message().await.unwrap().unwrap();
    drop(watch);
    app.drained(HEALTH_BAND_CHANGED.name(), "notification").await;
    let claimed = client(&app)
        .claim_task(with_token(CSM, v1::ClaimTaskRequest { task_id: first.task.as_ref().unwrap().task_id.clone(), assignee: "ana@vendor.io".into() }))
        .await
        .unwrap()
        .into_inner()
        .task
        .unwrap();
    let mut resumed = client(&app)
        .watch_tasks(with_token(READER, v1::WatchTasksRequest { queue: "csm".into(), cursor: second.cursor.clone(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner();
    let third = resumed.message().await.unwrap().unwrap();
    let fourth = resumed.message().await.unwrap().unwrap();
    let mut created: Vec<String> = [&first, &second, &third].iter().map(|c| c.task.as_ref().unwrap().account_id.clone()).collect();
    created.sort();
    assert_eq!(created, ["w-0", "w-1", "w-2"]);
    let change = fourth.task.unwrap();
    assert_eq!((change.task_id.as_str(), change.state), (claimed.task_id.as_str(), v1::TaskState::Claimed as i32));
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(500), resumed.message()).await.is_err(),
        "nothing after the claim"
    );
    let err = client(&app)
        .watch_tasks(with_token(READER, v1::WatchTasksRequest { cursor: "42".into(), ..Default::default() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("cursor"), "{}", err.message());
});
