//! IngestSignals and StreamSignals over real gRPC, on SQLite and
//! PostgreSQL: acceptance, idempotency, conflicts, all-or-nothing, modes,
//! streams, limits, auth, atomicity and the bus messages.

#![allow(clippy::unwrap_used)]

use retain_ingestion::{Ingestion, IngestionSettings};
use retain_proto::v1;
use retain_proto::v1::SignalOutcome::{Accepted, Duplicate, Rejected};
use retain_testkit::*;
use tonic::Code;
use tonic_types::StatusExt;

retain_testkit::storage_test!(async fn every_kind_is_accepted_stored_and_announced(db) {
    let app = spawn_app::<Ingestion>(db).await;
    let signals = every_kind("e", "acme-1");
    let n = signals.len();
    let r = app.send(signals).await;
    assert_eq!(outcomes(&r), vec![Accepted; n], "{r:?}");
    assert_eq!((r.accepted, r.duplicates, r.rejected), (n as i32, 0, 0));
    assert_eq!(r.results[3].event_id, "e-3");
    assert_eq!(app.count("signals").await, n as i64);
    assert_eq!(app.count("signal_ids").await, n as i64);
    // The account exists (the portfolio's "*" is not an account); users u1, u2.
    assert_eq!(app.count("accounts").await, 1);
    assert_eq!(app.count("users").await, 2);
    // Each kind is stored with its oneof number.
    assert_eq!(app.scalar("SELECT COUNT(DISTINCT kind) FROM signals").await, 12);

    // One message per touched account for metrics; notification gets only
    // the accounts with routable signals (the domain's contract: account
    // upsert, NPS answer, subscription change — not the billing status,
    // which routes through the health score), and those signals in it.
    let keys = |msgs: Vec<(String, v1::SignalsRecorded)>| msgs.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(keys(app.recorded("metrics").await), ["acme/*", "acme/acme-1"]);
    assert_eq!(keys(app.recorded("notification").await), ["acme/acme-1"]);
    let (_, event) = &app.recorded("notification").await[0];
    assert_eq!(event.tenant_id, "acme");
    assert_eq!(event.signal_count, (n - 1) as i64);
    assert_eq!(event.mode, v1::IngestMode::Live as i32);
    let routable: Vec<&str> = event.routable.iter().map(|s| s.event_id.as_str()).collect();
    assert_eq!(routable, vec!["e-0", "e-4", "e-5"]);
});

// An opening balance is history, not a change: metrics hears of it, but it
// never travels to routing (no contraction or churn task for an import).
retain_testkit::storage_test!(async fn an_opening_balance_is_announced_but_never_routed(db) {
    let app = spawn_app::<Ingestion>(db).await;
    let opening = match mrr_change(0, v1::ChurnReason::Price) {
        v1::signal::Body::Subscription(x) => v1::signal::Body::Subscription(v1::SubscriptionChange { opening_balance: true, ..x }),
        _ => unreachable!(),
    };
    let r = app.send(vec![
        days_ago("o-1", "acme-1", 3, opening),
        days_ago("m-1", "acme-1", 2, mrr_change(5_000, v1::ChurnReason::Unspecified)),
    ]).await;
    assert_eq!(r.accepted, 2, "{r:?}");
    let (_, event) = &app.recorded("notification").await[0];
    assert_eq!(event.signal_count, 2);
    let routable: Vec<&str> = event.routable.iter().map(|s| s.event_id.as_str()).collect();
    assert_eq!(routable, vec!["m-1"]);
});

retain_testkit::storage_test!(async fn a_retried_batch_counts_once(db) {
    let app = spawn_app::<Ingestion>(db).await;
    let signals = every_kind("e", "acme-1");
    let n = signals.len();
    app.send(signals.clone()).await;
    let before = app.footprint().await;
    let r = app.send(signals).await;
    assert_eq!(outcomes(&r), vec![Duplicate; n]);
    assert_eq!((r.accepted, r.duplicates), (0, n as i32));
    // Nothing new anywhere, not even a bus message.
    assert_eq!(app.footprint().await, before);

    // The same event twice in one batch: stored once, the second a duplicate.
    let s = signal("twice", "acme-2", session("u9", 60));
    let r = app.send(vec![s.clone(), s]).await;
    assert_eq!(outcomes(&r), vec![Accepted, Duplicate]);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM signals WHERE event_id = 'twice'").await, 1);
});

retain_testkit::storage_test!(async fn same_event_id_with_other_content_is_a_conflict(db) {
    let app = spawn_app::<Ingestion>(db).await;
    app.send(vec![signal("e-1", "acme-1", nps(9))]).await;
    let before = app.footprint().await;
    let r = app
        .send(vec![
            signal("e-1", "acme-1", nps(3)),
            signal("e-2", "acme-1", nps(7)),
        ])
        .await;
    assert_eq!(outcomes(&r), vec![Rejected, Accepted]);
    assert_eq!(fields(&r, 0), vec!["signals[0].event_id"]);
    assert!(r.results[0].violations[0].description.contains("different content"));
    // The stored answer is still the first one.
    let app_signals = app.count("signals").await;
    assert_eq!(app_signals, before[1] + 1);

    // Inside one batch too.
    let r = app
        .send(vec![
            signal("e-3", "acme-1", nps(1)),
            signal("e-3", "acme-1", nps(2)),
        ])
        .await;
    assert_eq!(outcomes(&r), vec![Accepted, Rejected]);
    assert_eq!(fields(&r, 1), vec!["signals[1].event_id"]);
});

retain_testkit::storage_test!(async fn all_or_nothing_writes_nothing_when_one_fails(db) {
    let app = spawn_app::<Ingestion>(db).await;
    let mut req = batch(vec![
        signal("a-1", "acme-1", nps(9)),
        signal("a-2", "acme-1", nps(11)),
        signal("a-3", "acme-1", nps(5)),
    ]);
    req.all_or_nothing = true;
    let r = app.ingest(WRITER, req.clone()).await.unwrap();
    assert_eq!(outcomes(&r), vec![Rejected; 3]);
    assert_eq!(fields(&r, 1), vec!["signals[1].survey.score"]);
    assert_eq!(fields(&r, 0), vec!["signals[0]"]);
    assert!(r.results[0].violations[0].description.contains("signals[1]"));
    assert_eq!(app.footprint().await[..4], [0, 0, 0, 0]);

    // A conflict found only on write also rolls the whole batch back.
    app.send(vec![signal("c-1", "acme-1", nps(9))]).await;
    let before = app.footprint().await;
    let mut req = batch(vec![
        signal("c-2", "acme-1", nps(8)),
        signal("c-1", "acme-1", nps(0)),
    ]);
    req.all_or_nothing = true;
    let r = app.ingest(WRITER, req).await.unwrap();
    assert_eq!(outcomes(&r), vec![Rejected, Rejected]);
    assert_eq!(fields(&r, 1), vec!["signals[1].event_id"]);
    assert_eq!(app.footprint().await, before, "c-2 must not be stored");

    // Without the flag the valid ones go through.
    req_without_flag(&app).await;
});

async fn req_without_flag(app: &TestApp) {
    let r = app
        .send(vec![
            signal("m-1", "acme-1", nps(9)),
            signal("m-2", "acme-1", nps(11)),
        ])
        .await;
    assert_eq!(outcomes(&r), vec![Accepted, Rejected]);
    assert_eq!((r.accepted, r.rejected), (1, 1));
}

retain_testkit::storage_test!(async fn backfill_takes_old_history_and_marks_it(db) {
    let app = spawn_app::<Ingestion>(db).await;
    let mut old = signal("old-1", "acme-1", nps(4));
    old.occurred_at = ts(now() - 400 * 86_400);
    let r = app.send(vec![old.clone()]).await;
    assert_eq!(outcomes(&r), vec![Rejected]);
    assert_eq!(fields(&r, 0), vec!["signals[0].occurred_at"]);
    assert!(r.results[0].violations[0].description.contains("backfill"));

    let mut req = batch(vec![old]);
    req.mode = v1::IngestMode::Backfill as i32;
    let r = app.ingest(WRITER, req).await.unwrap();
    assert_eq!(outcomes(&r), vec![Accepted]);
    assert_eq!(
        app.scalar("SELECT CAST(mode AS BIGINT) FROM signals WHERE event_id = 'old-1'").await,
        v1::IngestMode::Backfill as i64
    );
    let (_, event) = &app.recorded("notification").await[0];
    assert_eq!(event.mode, v1::IngestMode::Backfill as i32);

    // The future is bounded in both modes.
    let mut future = signal("future", "acme-1", nps(4));
    future.occurred_at = ts(now() + 86_400);
    let mut req = batch(vec![future]);
    req.mode = v1::IngestMode::Backfill as i32;
    let r = app.ingest(WRITER, req).await.unwrap();
    assert_eq!(fields(&r, 0), vec!["signals[0].occurred_at"]);

    // An unknown mode is refused as a whole.
    let mut req = batch(vec![signal("x", "acme-1", nps(4))]);
    req.mode = 7;
    let err = app.ingest(WRITER, req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.get_details_bad_request().unwrap().field_violations[0].field, "mode");
});

retain_testkit::storage_test!(async fn one_coalesced_message_per_touched_account(db) {
    let app = spawn_app::<Ingestion>(db).await;
    let mut signals = Vec::new();
    for i in 0..300 {
        signals.push(signal(
            &format!("s-{i}"),
            &format!("acct-{}", i % 3),
            session(&format!("u{}", i % 7), 60),
        ));
    }
    app.send(signals).await;
    assert_eq!(app.recorded("metrics").await.len(), 3);
    let counts: Vec<i64> = app
        .recorded("metrics")
        .await
        .iter()
        .map(|(_, e)| e.signal_count)
        .collect();
    assert_eq!(counts, vec![100, 100, 100]);
    // A second batch for the same accounts, while the first messages are
    // still pending: metrics (coalescing) still holds one per account;
    // notification (not coalescing, routable publications only) holds the
    // second batch's three NPS answers and none of the sessions.
    let more: Vec<_> = (0..3)
        .map(|i| signal(&format!("t-{i}"), &format!("acct-{i}"), nps(8)))
        .collect();
    app.send(more).await;
    let metrics = app.recorded("metrics").await;
    assert_eq!(metrics.len(), 3);
    // Each folded message carries both publications' facts.
    assert!(metrics.iter().all(|(_, e)| e.merged().signal_count == 101), "{metrics:?}");
    assert!(metrics.iter().all(|(_, e)| e.batches.len() == 2 && e.routable.len() == 1));
    let to_notification = app.recorded("notification").await;
    assert!(to_notification.iter().all(|(_, e)| e.signal_count == 1 && e.routable.len() == 1), "{to_notification:?}");
    assert_eq!(to_notification.len(), 3);
    assert_eq!(
        app.scalar("SELECT COALESCE(SUM(coalesced), 0) FROM bus_messages WHERE consumer_group = 'metrics'").await,
        6
    );
});

retain_testkit::storage_test!(async fn a_failure_mid_transaction_leaves_nothing(db) {
    let app = spawn_app::<Ingestion>(db).await;
    // The bus insert, the last write of the transaction, fails.
    match app.db.conn.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => {
            app.exec("CREATE FUNCTION fail_bus() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql").await;
            app.exec("CREATE TRIGGER fail_bus BEFORE INSERT ON bus_messages FOR EACH ROW EXECUTE FUNCTION fail_bus()").await;
        }
        _ => {
            app.exec("CREATE TRIGGER fail_bus BEFORE INSERT ON bus_messages BEGIN SELECT RAISE(ABORT, 'injected failure'); END").await;
        }
    }
    let signals = every_kind("f", "acme-1");
    let err = app.send_err(signals.clone()).await;
    assert_eq!(err.code(), Code::Internal, "{err:?}");
    // The database's words stay in the log; the caller gets an id.
    assert!(err.message().contains("correlation id"), "{}", err.message());
    assert!(!err.message().contains("injected") && !err.message().contains("database"), "{}", err.message());
    assert_eq!(app.footprint().await, [0, 0, 0, 0, 0]);

    match app.db.conn.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => app.exec("DROP TRIGGER fail_bus ON bus_messages").await,
        _ => app.exec("DROP TRIGGER fail_bus").await,
    }
    // The retry is accepted, not a duplicate: nothing was recorded before.
    let r = app.send(signals.clone()).await;
    assert_eq!(outcomes(&r), vec![Accepted; signals.len()]);
});

retain_testkit::storage_test!(async fn batch_and_message_limits(db) {
    let mut settings = settings();
    settings.server.max_message_bytes = 64 * 1024;
    let own = IngestionSettings { max_batch_signals: 3, tenant_burst_signals: 1_000, ..Default::default() };
    let app = spawn_app_with::<Ingestion>(db, settings, own).await;

    let four: Vec<_> = (0..4).map(|i| signal(&format!("b-{i}"), "acme-1", nps(5))).collect();
    let err = app.send_err(four).await;
    assert_eq!(err.code(), Code::InvalidArgument);
    let v = &err.get_details_bad_request().unwrap().field_violations[0];
    assert_eq!(v.field, "signals");
    assert!(v.description.contains("limit of 3"), "{}", v.description);

    let err = app.send_err(Vec::new()).await;
    assert_eq!(err.code(), Code::InvalidArgument);

    // A message over server.max_message_bytes is refused before decoding.
    let mut big = signal("big", "acme-1", nps(5));
    if let Some(v1::signal::Body::Survey(s)) = &mut big.body {
        s.comment = "x".repeat(100 * 1024);
    }
    let err = app.send_err(vec![big]).await;
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert_eq!(app.footprint().await, [0, 0, 0, 0, 0]);
});

retain_testkit::storage_test!(async fn a_tenant_over_its_rate_is_told_when_to_retry(db) {
    let own = IngestionSettings {
        max_batch_signals: 5,
        tenant_signals_per_second: 1,
        tenant_burst_signals: 5,
        ..Default::default()
    };
    let app = spawn_app_with::<Ingestion>(db, settings(), own).await;
    let five = |p: &str| -> Vec<v1::Signal> {
        (0..5).map(|i| signal(&format!("{p}-{i}"), "acme-1", nps(5))).collect()
    };
    assert_eq!(app.send(five("r")).await.accepted, 5);
    let before = app.footprint().await;
    let err = app.send_err(five("s")).await;
    assert_eq!(err.code(), Code::ResourceExhausted);
    let retry = err.get_details_retry_info().unwrap().retry_delay.unwrap();
    assert!(retry.as_secs_f64() > 1.0, "{retry:?}");
    assert_eq!(app.footprint().await, before, "nothing half-written");
    // Called again before the wait is over, it is refused unread: an empty
    // batch, which a read request answers INVALID_ARGUMENT, is refused for
    // the rate, with the wait left.
    let err = app.ingest(WRITER, batch(Vec::new())).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("told to wait"), "{}", err.message());
    let left = err.get_details_retry_info().unwrap().retry_delay.unwrap();
    assert!(left <= retry, "{left:?} after {retry:?}");
    // Another tenant has its own budget, and is read as ever.
    let r = app.ingest(GLOBEX, batch(five("g"))).await.unwrap();
    assert_eq!(r.accepted, 5);
    let err = app.ingest(GLOBEX, batch(Vec::new())).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
});

retain_testkit::storage_test!(async fn tokens_roles_and_tenants(db) {
    let app = spawn_app::<Ingestion>(db).await;
    let req = || batch(vec![signal("e-1", "acme-1", nps(9))]);
    let err = app.client.clone().ingest_signals(req()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = app.ingest("wrong-token", req()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = app.ingest(READER, req()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("ingest"), "{}", err.message());
    assert_eq!(app.footprint().await, [0, 0, 0, 0, 0]);

    assert_eq!(app.ingest(WRITER, req()).await.unwrap().accepted, 1);
    // The same event id is another event for another tenant.
    assert_eq!(app.ingest(GLOBEX, req()).await.unwrap().accepted, 1);
    assert_eq!(app.count("signals").await, 2);
    let keys: Vec<String> = app.recorded("metrics").await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec!["acme/acme-1", "globex/acme-1"]);
});

retain_testkit::storage_test!(async fn concurrent_retries_store_one_copy(db) {
    concurrent_retries(spawn_app::<Ingestion>(db).await).await;
});

retain_testkit::storage_test!(async fn concurrent_retries_without_group_commit(db) {
    let own = IngestionSettings { group_commit: false, ..Default::default() };
    concurrent_retries(spawn_app_with::<Ingestion>(db, settings(), own).await).await;
});

/// Four clients send the same 200 signals at once.
async fn concurrent_retries(app: TestApp) {
    let signals: Vec<_> = (0..200)
        .map(|i| {
            signal(
                &format!("c-{i}"),
                &format!("a-{}", i % 10),
                session("u", 30),
            )
        })
        .collect();
    let mut calls = Vec::new();
    for _ in 0..4 {
        let client = app.client.clone();
        let req = batch(signals.clone());
        calls.push(tokio::spawn(async move {
            client
                .clone()
                .ingest_signals(with_token(WRITER, req))
                .await
                .unwrap()
                .into_inner()
        }));
    }
    let mut accepted = 0;
    let mut duplicates = 0;
    for c in calls {
        let r = c.await.unwrap();
        accepted += r.accepted;
        duplicates += r.duplicates;
    }
    assert_eq!((accepted, duplicates), (200, 600));
    assert_eq!(app.count("signals").await, 200);
    let per_account: i64 = app
        .recorded("metrics")
        .await
        .iter()
        .map(|(_, e)| e.merged().signal_count)
        .sum();
    assert_eq!(per_account, 200, "every signal announced exactly once");
}

retain_testkit::storage_test!(async fn a_stream_of_many_batches(db) {
    let app = spawn_app::<Ingestion>(db).await;
    let batches: Vec<v1::StreamSignalsRequest> = (0..40)
        .map(|b| v1::StreamSignalsRequest {
            batch_id: format!("batch-{b}"),
            batch: Some(batch(
                (0..50)
                    .map(|i| signal(&format!("s-{b}-{i}"), &format!("a-{}", i % 5), session("u", 10)))
                    .collect(),
            )),
        })
        .collect();
    let mut client = app.client.clone();
    let mut responses = client
        .stream_signals(with_token(WRITER, tokio_stream::iter(batches)))
        .await
        .unwrap()
        .into_inner();
    let mut ids = Vec::new();
    while let Some(r) = responses.message().await.unwrap() {
        assert_eq!(r.result.as_ref().unwrap().accepted, 50);
        ids.push(r.batch_id);
    }
    let expected: Vec<String> = (0..40).map(|b| format!("batch-{b}")).collect();
    assert_eq!(ids, expected, "one result per batch, in order");
    assert_eq!(app.count("signals").await, 2_000);

    // A bad batch ends the stream with its error, after the earlier results.
    let reqs = vec![
        v1::StreamSignalsRequest {
            batch_id: "ok".into(),
            batch: Some(batch(vec![signal("z-1", "a-1", nps(1))])),
        },
        v1::StreamSignalsRequest {
            batch_id: "empty".into(),
            batch: Some(batch(Vec::new())),
        },
    ];
    let mut responses = client
        .stream_signals(with_token(WRITER, tokio_stream::iter(reqs)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(responses.message().await.unwrap().unwrap().batch_id, "ok");
    let err = responses.message().await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    // The error names the batch it is about, and keeps its field details.
    assert!(err.message().starts_with("batch \"empty\": "), "{}", err.message());
    assert_eq!(err.get_details_bad_request().unwrap().field_violations[0].field, "signals");

    // Streams need the ingest role too.
    let err = client
        .stream_signals(with_token(READER, tokio_stream::iter(Vec::<v1::StreamSignalsRequest>::new())))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
});

retain_testkit::storage_test!(async fn a_stream_that_is_not_read_stops_being_read(db) {
    let own = IngestionSettings { stream_buffered_results: 1, ..Default::default() };
    let app = spawn_app_with::<Ingestion>(db, settings(), own).await;
    // 60 batches of 1,000 signals (~6 MB) from a client that does not read
    // its results: the server must stop reading once one result waits,
    // leaving the rest in HTTP/2 flow control, not in its memory.
    let total_batches = 60;
    let (tx, rx) = tokio::sync::mpsc::channel::<v1::StreamSignalsRequest>(1);
    let feeder = tokio::spawn(async move {
        for b in 0..total_batches {
            let signals = (0..1_000)
                .map(|i| {
                    let mut s = signal(&format!("bp-{b}-{i}"), &format!("a-{}", i % 50), nps(7));
                    if let Some(v1::signal::Body::Survey(x)) = &mut s.body {
                        x.comment = "c".repeat(64);
                    }
                    s
                })
                .collect();
            let req = v1::StreamSignalsRequest {
                batch_id: b.to_string(),
                batch: Some(batch(signals)),
            };
            if tx.send(req).await.is_err() {
                return;
            }
        }
    });
    // A client whose receive window holds less than one result, so results
    // it does not read stay on the server side, where the bound applies.
    let channel = tonic::transport::Endpoint::from_shared(app.url.clone())
        .unwrap()
        .initial_stream_window_size(Some(16 * 1024))
        .initial_connection_window_size(Some(16 * 1024))
        .connect()
        .await
        .unwrap();
    let mut responses = v1::ingestion_service_client::IngestionServiceClient::new(channel)
        .stream_signals(with_token(WRITER, tokio_stream::wrappers::ReceiverStream::new(rx)))
        .await
        .unwrap()
        .into_inner();
    // Wait until the server has taken everything it is allowed to: the
    // stored count has stopped moving (unchanged for 300 ms).
    let last = std::cell::Cell::new((-1i64, tokio::time::Instant::now()));
    let (last, app_ref) = (&last, &app);
    let stored = retain_testkit::eventually(
        "the server to stop taking batches",
        std::time::Duration::from_secs(60),
        move || async move {
            let n = app_ref.count("signals").await;
            let (previous, since) = last.get();
            if n != previous {
                last.set((n, tokio::time::Instant::now()));
                None
            } else {
                (n > 0 && since.elapsed() >= std::time::Duration::from_millis(300)).then_some(n)
            }
        },
    )
    .await;
    // At most: one result in the client's window, one being sent, one
    // queued, one batch being written; allow a few more for slack.
    assert!(
        stored <= 8_000,
        "the server kept reading a stream whose results were not read ({stored} signals stored)"
    );
    // Reading the results lets the stream finish, with every batch stored.
    let mut results = 0;
    while let Some(r) = responses.message().await.unwrap() {
        assert_eq!(r.result.unwrap().accepted, 1_000);
        results += 1;
    }
    feeder.await.unwrap();
    assert_eq!(results, total_batches);
    assert_eq!(app.count("signals").await, 1_000 * total_batches as i64);
});

retain_testkit::storage_test!(async fn shared_transactions_keep_tenants_and_modes_apart(db) {
    let app = spawn_app::<Ingestion>(db).await;
    // Eight concurrent calls: two tenants × two modes, each set of event ids
    // sent twice per tenant. Group commit may put any of them in one
    // transaction.
    let mut calls = Vec::new();
    for c in 0..8 {
        let token = if c % 2 == 0 { WRITER } else { GLOBEX };
        // Calls 0–3 send g-0-* LIVE, calls 4–7 g-1-* BACKFILL; each tenant
        // sends each set twice.
        let mode = if c < 4 { v1::IngestMode::Live } else { v1::IngestMode::Backfill };
        let signals: Vec<_> = (0..50)
            .map(|i| signal(&format!("g-{}-{i}", c / 4), &format!("a-{}", i % 5), session("u", 30)))
            .collect();
        let mut req = batch(signals);
        req.mode = mode as i32;
        let client = app.client.clone();
        calls.push(tokio::spawn(async move {
            client.clone().ingest_signals(with_token(token, req)).await.unwrap().into_inner()
        }));
    }
    let mut accepted = 0;
    for c in calls {
        let r = c.await.unwrap();
        assert_eq!(r.rejected, 0, "{r:?}");
        accepted += r.accepted;
    }
    // Per tenant, ids g-0-* (LIVE calls) and g-1-* (BACKFILL calls): 100 each.
    assert_eq!(accepted, 200);
    for tenant in ["acme", "globex"] {
        for (prefix, mode) in [("g-0-", v1::IngestMode::Live), ("g-1-", v1::IngestMode::Backfill)] {
            let n = app
                .scalar(&format!(
                    "SELECT COUNT(*) FROM signals WHERE tenant_id = '{tenant}' AND event_id LIKE '{prefix}%' AND mode = {}",
                    mode as i32
                ))
                .await;
            assert_eq!(n, 50, "{tenant} {prefix}");
        }
    }
});

// One tenant's calls fail inside the database (a trigger stands in for any
// value the database refuses). Group commit shares transactions between
// concurrent calls, so without isolation the other tenant's calls that
// shared a transaction with a failing one would fail too.
retain_testkit::storage_test!(async fn one_tenants_failing_writes_never_fail_another_tenants_calls(db) {
    let app = spawn_app::<Ingestion>(db).await;
    match app.db.conn.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => {
            app.exec("CREATE FUNCTION fail_globex() RETURNS trigger AS $$ BEGIN IF NEW.tenant_id = 'globex' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql").await;
            app.exec("CREATE TRIGGER fail_globex BEFORE INSERT ON signals FOR EACH ROW EXECUTE FUNCTION fail_globex()").await;
        }
        _ => {
            app.exec("CREATE TRIGGER fail_globex BEFORE INSERT ON signals WHEN NEW.tenant_id = 'globex' BEGIN SELECT RAISE(ABORT, 'injected failure'); END").await;
        }
    }
    let mut calls = Vec::new();
    for round in 0..10 {
        for (token, tenant) in [(WRITER, "acme"), (GLOBEX, "globex")] {
            let client = app.client.clone();
            let signals: Vec<_> = (0..20)
                .map(|i| signal(&format!("{tenant}-{round}-{i}"), "acct-1", session("u1", 60)))
                .collect();
            calls.push(tokio::spawn(async move {
                let r = client.clone().ingest_signals(with_token(token, batch(signals))).await;
                (tenant, r.map(tonic::Response::into_inner))
            }));
        }
    }
    let mut acme_accepted = 0;
    for call in calls {
        let (tenant, result) = call.await.unwrap();
        match tenant {
            "acme" => acme_accepted += result.expect("acme's calls never fail").accepted,
            _ => assert_eq!(result.expect_err("globex's writes fail").code(), Code::Internal),
        }
    }
    assert_eq!(acme_accepted, 200);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM signals WHERE tenant_id = 'globex'").await, 0);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM signals WHERE tenant_id = 'acme'").await, 200);
});

// The service reads the time from the clock it was built with: a LIVE
// signal's age is judged against it and its rows are stamped with it.
retain_testkit::storage_test!(async fn the_service_reads_time_from_its_clock(db) {
    use retain_domain::Timestamp;
    let now = Timestamp::from_ymd(2020, 3, 1);
    let clock = retain_runtime::Clock::manual(now);
    let app = spawn_app_at::<Ingestion>(db, settings(), IngestionSettings::default(), clock.clone()).await;
    let at = |t: Timestamp, id: &str| v1::Signal {
        occurred_at: ts(t.micros() / 1_000_000),
        ..signal(id, "acme-1", session("u1", 60))
    };
    let r = app
        .send(vec![at(Timestamp::from_ymd(2020, 2, 20), "recent"), at(Timestamp::from_ymd(2020, 1, 1), "too-old")])
        .await;
    assert_eq!(outcomes(&r), vec![Accepted, Rejected], "{r:?}");
    assert_eq!(fields(&r, 1), vec!["signals[1].occurred_at"]);
    assert_eq!(app.scalar("SELECT MAX(ingested_at) FROM signals").await, now.micros());
    // Ten days later, by the clock, the same age is too old for LIVE.
    clock.advance(std::time::Duration::from_secs(10 * 86_400));
    let r = app.send(vec![at(Timestamp::from_ymd(2020, 1, 31), "now-too-old")]).await;
    assert_eq!(outcomes(&r), vec![Rejected]);
});

// A frame the server cannot read (over the message limit) used to end the
// stream with status OK and no answer: the client believed it had sent
// everything. It must see an error naming the last batch that was read.
retain_testkit::storage_test!(async fn an_unreadable_stream_frame_is_an_error_the_client_sees(db) {
    let mut settings = settings();
    settings.server.max_message_bytes = 64 * 1024;
    let app = spawn_app_with::<Ingestion>(db, settings, IngestionSettings::default()).await;
    let big: Vec<_> = (0..2_000).map(|i| signal(&format!("big-{i}"), "a-1", session(&"u".repeat(100), 10))).collect();
    assert!(prost::Message::encoded_len(&batch(big.clone())) > 128 * 1024);
    let reqs = vec![
        v1::StreamSignalsRequest { batch_id: "small".into(), batch: Some(batch(vec![signal("s-1", "a-1", nps(9))])) },
        v1::StreamSignalsRequest { batch_id: "too-big".into(), batch: Some(batch(big)) },
    ];
    let mut responses = app
        .client
        .clone()
        .stream_signals(with_token(WRITER, tokio_stream::iter(reqs)))
        .await
        .unwrap()
        .into_inner();
    let first = responses.message().await.expect("the first batch is answered").expect("a result");
    assert_eq!((first.batch_id.as_str(), first.result.unwrap().accepted), ("small", 1));
    let err = match responses.message().await {
        Err(status) => status,
        Ok(next) => panic!("the unreadable frame must be an error, got {:?}", next.map(|r| r.batch_id)),
    };
    assert_ne!(err.code(), Code::Ok);
    assert!(err.message().contains("\"small\""), "names the last batch read: {}", err.message());
    assert_eq!(app.count("signals").await, 1);
});

// The worst case for the answer's size: a full batch of rejected signals,
// each with long offending values and many violations. The answer used to
// outgrow the request (4.6 MB for 3.8 MB) and a default client (4 MiB)
// could not read which signals failed.
retain_testkit::storage_test!(async fn the_worst_case_answer_fits_a_default_client(db) {
    use prost::Message;
    let app = spawn_app::<Ingestion>(db).await;
    let signals: Vec<_> = (0..5_000)
        .map(|i| {
            let mut s = signal(&format!("{i:05}-{}", "e".repeat(200)), "acme-1", v1::signal::Body::Account(v1::AccountUpsert {
                contact_emails: (0..8).map(|k| format!("{k}{}", "not-an-email".repeat(4))).collect(),
                csm_owner_email: Some("x".repeat(50)),
                ..Default::default()
            }));
            s.account_id = "bad account id!".into();
            s
        })
        .collect();
    let request = batch(signals);
    assert!(request.encoded_len() < 4 << 20, "the request itself fits the server's limit");
    // The testkit client decodes answers up to tonic's default of 4 MiB.
    let r = app.ingest(WRITER, request).await.expect("the answer is readable by a default client");
    assert_eq!(r.rejected, 5_000);
    assert!(r.encoded_len() <= 3 << 20, "answer of {} bytes", r.encoded_len());
    // The first signals carry their actual reasons, bounded and counted.
    let first = &r.results[0];
    assert!(first.violations.len() <= 6, "{:?}", first.violations);
    assert!(first.violations.iter().any(|v| v.field == "signals[0].event_id"));
    assert!(first.violations.iter().any(|v| v.description.starts_with("and ") && v.description.ends_with(" more violations")));
    assert!(first.event_id.len() <= 128);
    assert_eq!(app.footprint().await, [0, 0, 0, 0, 0]);
});

// The largest batch the configuration allows, every signal empty (an 80 KB
// request whose answer once grew without bound): still under 3 MiB.
retain_testkit::storage_test!(async fn the_largest_allowed_batch_of_empty_signals_answers_within_budget(db) {
    use prost::Message;
    let own = IngestionSettings {
        max_batch_signals: retain_ingestion::MAX_BATCH_SIGNALS,
        tenant_burst_signals: 100_000,
        ..Default::default()
    };
    let app = spawn_app_with::<Ingestion>(db, settings(), own).await;
    let r = app
        .ingest(WRITER, batch(vec![v1::Signal::default(); retain_ingestion::MAX_BATCH_SIGNALS]))
        .await
        .expect("readable by a default client");
    assert_eq!(r.rejected as usize, retain_ingestion::MAX_BATCH_SIGNALS);
    assert!(r.encoded_len() <= 3 << 20, "answer of {} bytes", r.encoded_len());
    assert!(!r.results[0].violations.is_empty(), "the first signals keep their reasons");
});

// The case that found the class: one tenant sends NUL event ids while
// another sends valid calls. PostgreSQL cannot store NUL; validation now
// refuses it on both databases, so the other tenant's calls never share a
// transaction with it, and the sender learns which field is at fault.
retain_testkit::storage_test!(async fn nul_text_from_one_tenant_is_rejected_and_never_fails_another(db) {
    let app = spawn_app::<Ingestion>(db).await;
    let mut calls = Vec::new();
    for round in 0..10 {
        for (token, tenant) in [(WRITER, "acme"), (GLOBEX, "globex")] {
            let client = app.client.clone();
            let signals: Vec<_> = (0..20)
                .map(|i| {
                    let id = if tenant == "globex" { format!("nul\0{round}-{i}") } else { format!("ok-{round}-{i}") };
                    signal(&id, "acct-1", session("u1", 60))
                })
                .collect();
            calls.push(tokio::spawn(async move {
                let r = client.clone().ingest_signals(with_token(token, batch(signals))).await;
                (tenant, r.map(tonic::Response::into_inner))
            }));
        }
    }
    for call in calls {
        let (tenant, result) = call.await.unwrap();
        let r = result.expect("no call fails");
        match tenant {
            "acme" => assert_eq!(r.accepted, 20),
            _ => {
                assert_eq!(r.rejected, 20);
                assert_eq!(fields(&r, 3), vec!["signals[3].event_id"]);
            }
        }
    }
    assert_eq!(app.scalar("SELECT COUNT(*) FROM signal_ids WHERE tenant_id = 'globex'").await, 0);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM signals WHERE tenant_id = 'acme'").await, 200);
});

// A stream holds one of its tenant's stream places for as long as it is
// open (not only until its headers are sent), and none of the server's
// concurrency_limit: a tenant's open streams are capped without shedding
// anyone's calls.
retain_testkit::storage_test!(async fn open_streams_hold_their_tenants_places_not_the_call_limit(db) {
    let mut settings = settings();
    settings.server.concurrency_limit = 2;
    settings.server.max_streams_per_tenant = 2;
    let app = spawn_app_with::<Ingestion>(db, settings, IngestionSettings::default()).await;
    let open = |s: usize| {
        let client = app.client.clone();
        async move {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            tx.send(v1::StreamSignalsRequest {
                batch_id: format!("open-{s}"),
                batch: Some(batch(vec![signal(&format!("o-{s}"), "a-1", nps(9))])),
            })
            .await
            .unwrap();
            let mut responses = client
                .clone()
                .stream_signals(with_token(WRITER, tokio_stream::wrappers::ReceiverStream::new(rx)))
                .await?
                .into_inner();
            responses.message().await?.expect("the first batch is answered");
            Ok::<_, tonic::Status>((tx, responses))
        }
    };
    let mut senders = Vec::new();
    let mut streams = Vec::new();
    for s in 0..2 {
        let (tx, responses) = open(s).await.unwrap();
        senders.push(tx);
        streams.push(responses);
    }
    // Both streams are open: calls still get the two places of the limit,
    // and a third stream of the tenant is refused, naming the setting.
    app.ingest(WRITER, batch(vec![signal("third", "a-1", nps(9))])).await.unwrap();
    let Err(err) = open(2).await else {
        panic!("a third stream is refused")
    };
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("max_streams_per_tenant"), "{}", err.message());
    // Closing the streams frees their places.
    drop(senders);
    for mut s in streams {
        while s.message().await.unwrap().is_some() {}
    }
    retain_testkit::eventually("a stream place to free up", std::time::Duration::from_secs(10), || async {
        open(3).await.ok().map(|_| ())
    })
    .await;
});

// LIVE and BACKFILL calls for the same accounts at once: group commit can
// put both in one transaction, which must still lock the accounts in one
// sorted run (grouping by mode made two runs and could deadlock against
// another writer on PostgreSQL).
retain_testkit::storage_test!(async fn live_and_backfill_calls_for_the_same_accounts_never_deadlock(db) {
    let app = spawn_app::<Ingestion>(db).await;
    let mut calls = Vec::new();
    for round in 0..12 {
        for client in 0..4 {
            let backfill = (round + client) % 2 == 0;
            let age = if backfill { 40 * 86_400 } else { 3_600 };
            let signals: Vec<_> = (0..10)
                .map(|a| {
                    // Accounts in a different order per client; upserts lock rows.
                    let a = if client % 2 == 0 { a } else { 9 - a };
                    v1::Signal {
                        occurred_at: ts(now() - age - round),
                        ..signal(
                            &format!("r{round}-c{client}-a{a}"),
                            &format!("acct-{a}"),
                            v1::signal::Body::Account(v1::AccountUpsert { plan: Some(format!("p{round}")), ..Default::default() }),
                        )
                    }
                })
                .collect();
            let mut req = batch(signals);
            if backfill {
                req.mode = v1::IngestMode::Backfill as i32;
            }
            let client = app.client.clone();
            calls.push(tokio::spawn(async move { client.clone().ingest_signals(with_token(WRITER, req)).await }));
        }
    }
    for call in calls {
        let r = call.await.unwrap().expect("no call fails").into_inner();
        assert_eq!(r.accepted, 10);
    }
    assert_eq!(app.count("signals").await, 12 * 4 * 10);
});
