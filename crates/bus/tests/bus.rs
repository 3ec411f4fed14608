//! Bus semantics on SQLite and PostgreSQL: fan-out, leases, exactly-once
//! under concurrency, coalescing, per-key order, dead letters, rollback.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use retain_bus::{
    Bus, Consumer, ConsumerOptions, Delivery, Handler, HandlerError, Headers, NackOutcome,
    OutgoingMessage, RetryPolicy, Subscription, Topic, publish,
};
use sea_orm::TransactionTrait;
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "test.recorded";

fn message(key: Option<&str>, payload: &str) -> OutgoingMessage {
    OutgoingMessage {
        key: key.map(str::to_owned),
        payload: payload.as_bytes().to_vec(),
        headers: Headers::new(),
        label: None,
    }
}

async fn publish_committed(bus: &Bus, msgs: &[OutgoingMessage]) {
    let tx = bus.db().begin().await.expect("begin");
    publish(&tx, TOPIC, msgs).await.expect("publish");
    tx.commit().await.expect("commit");
}

const LEASE: Duration = Duration::from_secs(30);

retain_testkit::storage_test!(async fn every_group_gets_every_message(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "metrics")).await.unwrap();
    bus.subscribe(&Subscription::new(TOPIC, "notification")).await.unwrap();
    let msgs: Vec<_> = (0..5).map(|i| message(Some(&format!("a{i}")), &format!("p{i}"))).collect();
    publish_committed(&bus, &msgs).await;

    let metrics = bus.claim(TOPIC, "metrics", "m-1", 100, LEASE).await.unwrap();
    assert_eq!(metrics.len(), 5);
    assert_eq!(bus.ack("m-1", &metrics.iter().map(|d| d.id).collect::<Vec<_>>()).await.unwrap(), 5);

    // Acking in one group leaves the other group's copies alone.
    let notification = bus.claim(TOPIC, "notification", "n-1", 100, LEASE).await.unwrap();
    let payloads: Vec<_> = notification.iter().map(|d| String::from_utf8(d.payload.clone()).unwrap()).collect();
    assert_eq!(payloads, ["p0", "p1", "p2", "p3", "p4"]);
    assert_eq!(bus.stats(TOPIC, "metrics").await.unwrap().pending, 0);
});

retain_testkit::storage_test!(async fn a_labelled_subscription_gets_only_labelled_messages(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "all")).await.unwrap();
    bus.subscribe(&Subscription::new(TOPIC, "few").only_labelled("urgent")).await.unwrap();
    assert_eq!(bus.subscription(TOPIC, "few").await.unwrap().label.as_deref(), Some("urgent"));
    // An empty label would mean "unlabelled" on one database and "never"
    // on the other: refused, like an empty name.
    let err = bus.subscribe(&Subscription::new(TOPIC, "odd").only_labelled("")).await.unwrap_err();
    assert!(matches!(err, retain_bus::BusError::InvalidName(_)), "{err}");
    let msgs = [
        message(Some("a"), "plain"),
        message(Some("b"), "urgent").labelled(Some("urgent")),
        message(Some("c"), "other label").labelled(Some("later")),
        message(None, "unkeyed urgent").labelled(Some("urgent")),
    ];
    let tx = bus.db().begin().await.unwrap();
    assert_eq!(publish(&tx, TOPIC, &msgs).await.unwrap(), 4 + 2, "rows written: all four, two of them twice");
    tx.commit().await.unwrap();

    let payloads = |ds: Vec<Delivery>| ds.into_iter().map(|d| String::from_utf8(d.payload).unwrap()).collect::<Vec<_>>();
    assert_eq!(payloads(bus.claim(TOPIC, "few", "f", 10, LEASE).await.unwrap()), ["urgent", "unkeyed urgent"]);
    assert_eq!(bus.claim(TOPIC, "all", "a", 10, LEASE).await.unwrap().len(), 4);
});

retain_testkit::storage_test!(async fn unsubscribed_topic_stores_nothing(db) {
    let bus = Bus::new(db.conn.clone());
    let tx = bus.db().begin().await.unwrap();
    assert_eq!(publish(&tx, "nobody.listens", &[message(None, "x")]).await.unwrap(), 0);
    tx.commit().await.unwrap();
});

retain_testkit::storage_test!(async fn rolled_back_transaction_publishes_nothing(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "metrics")).await.unwrap();
    let tx = bus.db().begin().await.unwrap();
    assert_eq!(publish(&tx, TOPIC, &[message(Some("a"), "x"), message(None, "y")]).await.unwrap(), 2);
    tx.rollback().await.unwrap();
    assert!(bus.claim(TOPIC, "metrics", "m", 10, LEASE).await.unwrap().is_empty());
    assert_eq!(bus.stats(TOPIC, "metrics").await.unwrap(), Default::default());
});

retain_testkit::storage_test!(async fn expired_lease_is_taken_over(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "metrics")).await.unwrap();
    publish_committed(&bus, &[message(Some("a"), "1"), message(Some("b"), "2")]).await;

    // Replica A claims with a short lease and dies without acking.
    let dead_replica = bus.claim(TOPIC, "metrics", "A", 10, Duration::from_millis(200)).await.unwrap();
    assert_eq!(dead_replica.len(), 2);
    // While the lease holds, nobody else gets the messages.
    assert!(bus.claim(TOPIC, "metrics", "B", 10, LEASE).await.unwrap().is_empty());

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let taken = loop {
        let got = bus.claim(TOPIC, "metrics", "B", 10, LEASE).await.unwrap();
        if !got.is_empty() || tokio::time::Instant::now() > deadline {
            break got;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(taken.iter().map(|d| d.id).collect::<Vec<_>>(), dead_replica.iter().map(|d| d.id).collect::<Vec<_>>());
    assert!(taken.iter().all(|d| d.attempt == 2), "second attempt: {taken:?}");
    // A's late ack touches nothing it no longer holds; B's ack finishes the work.
    assert_eq!(bus.ack("A", &[taken[0].id]).await.unwrap(), 0);
    assert_eq!(bus.ack("B", &taken.iter().map(|d| d.id).collect::<Vec<_>>()).await.unwrap(), 2);
    assert_eq!(bus.stats(TOPIC, "metrics").await.unwrap(), Default::default());
});

// A handler whose work outlasts a lease renews it: nobody else claims the
// message meanwhile; once the lease is lost, renewing says so.
retain_testkit::storage_test!(async fn a_renewed_lease_holds_and_a_lost_one_says_so(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "jobs")).await.unwrap();
    publish_committed(&bus, &[message(Some("job"), "1")]).await;
    // Claimed with a lease already over: without a renewal, B could take
    // it at once. Renewed, B finds nothing to claim.
    let held = bus.claim(TOPIC, "jobs", "A", 1, Duration::ZERO).await.unwrap().remove(0);
    assert!(bus.renew(&held, LEASE).await.unwrap());
    assert!(bus.claim(TOPIC, "jobs", "B", 1, LEASE).await.unwrap().is_empty());
    // Let it lapse: B takes it over, and A's renewal is refused.
    assert!(bus.renew(&held, Duration::ZERO).await.unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let taken = loop {
        let got = bus.claim(TOPIC, "jobs", "B", 1, LEASE).await.unwrap();
        if !got.is_empty() || tokio::time::Instant::now() > deadline {
            break got;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(taken.len(), 1);
    assert!(!bus.renew(&held, LEASE).await.unwrap(), "the lost lease was renewed");
    assert!(bus.renew(&taken[0], LEASE).await.unwrap());
});

retain_testkit::storage_test!(async fn released_leases_are_claimable_at_once(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "metrics")).await.unwrap();
    publish_committed(&bus, &[message(Some("a"), "1")]).await;
    let held = bus.claim(TOPIC, "metrics", "A", 10, LEASE).await.unwrap();
    assert_eq!(bus.release("A").await.unwrap(), 1);
    let again = bus.claim(TOPIC, "metrics", "B", 10, LEASE).await.unwrap();
    assert_eq!(again[0].id, held[0].id);
    assert_eq!(again[0].attempt, 1, "a released lease does not count as an attempt");
});

// A deferred message waits until its time without spending an attempt,
// however often it is deferred, and keeps its key's order.
retain_testkit::storage_test!(async fn a_deferred_message_waits_without_spending_an_attempt(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "mail").max_attempts(2)).await.unwrap();
    publish_committed(&bus, &[message(Some("t/1"), "first"), message(Some("t/1"), "second")]).await;
    let now = retain_store::now_micros();
    for _ in 0..3 {
        let d = bus.claim(TOPIC, "mail", "o", 10, LEASE).await.unwrap().remove(0);
        assert_eq!((d.payload.as_slice(), d.attempt), (&b"first"[..], 1), "deferring counted an attempt");
        let outcome = bus.defer("o", &d, now, "quota spent").await.unwrap();
        assert_eq!(outcome, NackOutcome::Deferred);
    }
    let d = bus.claim(TOPIC, "mail", "o", 10, LEASE).await.unwrap().remove(0);
    // Deferred into the future: nothing of its key is claimable meanwhile.
    bus.defer("o", &d, now + 3_600_000_000, "quota spent").await.unwrap();
    assert!(bus.claim(TOPIC, "mail", "o", 10, LEASE).await.unwrap().is_empty());
    assert_eq!(bus.stats(TOPIC, "mail").await.unwrap().pending, 2);
    assert_eq!(bus.stats(TOPIC, "mail").await.unwrap().dead, 0);
    // A lease it no longer holds is not deferred.
    assert_eq!(bus.defer("o", &d, now, "x").await.unwrap(), NackOutcome::LeaseLost);
});

// A consumer whose handler defers puts the message back, and another key
// goes on meanwhile.
retain_testkit::storage_test!(async fn a_handler_defers_and_other_keys_go_on(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "mail").max_attempts(1)).await.unwrap();
    publish_committed(&bus, &[message(Some("a/1"), "wait"), message(Some("b/1"), "go")]).await;
    let handled = Arc::new(Mutex::new(Vec::new()));
    let handler = Defers { handled: handled.clone() };
    let consumer = Consumer::new(bus.clone(), TOPIC, "mail", ConsumerOptions::new("c")).await.unwrap();
    for _ in 0..3 {
        consumer.run_once(&handler).await.unwrap();
    }
    assert_eq!(*handled.lock().unwrap(), ["go".to_owned()]);
    let stats = bus.stats(TOPIC, "mail").await.unwrap();
    assert_eq!((stats.pending, stats.dead), (1, 0), "deferred once with max_attempts 1 and not dead");
    let waiting = bus.peek(TOPIC, "mail", 10).await.unwrap();
    assert_eq!((waiting[0].payload.as_slice(), waiting[0].attempt), (&b"wait"[..], 0));
});

struct Defers {
    handled: Arc<Mutex<Vec<String>>>,
}

impl Handler for Defers {
    async fn handle(&self, d: &Delivery) -> Result<(), HandlerError> {
        if d.payload == b"wait" {
            return Err(HandlerError::defer(
                retain_store::now_micros() + 3_600_000_000,
                "later",
            ));
        }
        self.handled
            .lock()
            .unwrap()
            .push(String::from_utf8(d.payload.clone()).unwrap());
        Ok(())
    }
}

// Deferring by key prefix holds one tenant's pending backlog in one
// statement: its messages wait, another tenant's, and leased ones, do not.
retain_testkit::storage_test!(async fn defer_pending_holds_the_keys_of_one_prefix(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "mail")).await.unwrap();
    publish_committed(&bus, &[
        message(Some("acme/1"), "a1"),
        message(Some("acme/2"), "a2"),
        message(Some("acme/3"), "a3"),
        message(Some("acmex/1"), "x1"),
        message(Some("zeta/1"), "z1"),
    ]).await;
    let leased = bus.claim(TOPIC, "mail", "o", 1, LEASE).await.unwrap().remove(0);
    assert_eq!(leased.payload, b"a1");
    let later = retain_store::now_micros() + 3_600_000_000;
    let held = bus.defer_pending((TOPIC, "mail"), "acme/", later, "acme's quota is spent").await.unwrap();
    assert_eq!(held, 2, "acme/2 and acme/3: not the leased one, not acmex");
    let rest: Vec<_> = bus.claim(TOPIC, "mail", "o", 10, LEASE).await.unwrap().into_iter().map(|d| d.payload).collect();
    assert_eq!(rest, [b"x1".to_vec(), b"z1".to_vec()]);
    assert_eq!(bus.defer_pending((TOPIC, "mail"), "acme/", later, "again").await.unwrap(), 0, "already waiting that long");
});

retain_testkit::storage_test!(async fn coalescing_folds_pending_messages_per_key(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "metrics").coalescing()).await.unwrap();
    bus.subscribe(&Subscription::new(TOPIC, "notification")).await.unwrap();
    // 100 publications for one account, in separate transactions and within
    // one batch, plus one for another account.
    for i in 0..50 {
        publish_committed(&bus, &[message(Some("t/acme"), &format!("v{i}"))]).await;
    }
    let burst: Vec<_> = (50..100).map(|i| message(Some("t/acme"), &format!("v{i}"))).collect();
    publish_committed(&bus, &burst).await;
    publish_committed(&bus, &[message(Some("t/globex"), "g")]).await;

    let stats = bus.stats(TOPIC, "metrics").await.unwrap();
    assert_eq!(stats.pending, 2, "one pending message per key");
    // The non-coalescing group still gets all 101.
    assert_eq!(bus.stats(TOPIC, "notification").await.unwrap().pending, 101);

    let claimed = bus.claim(TOPIC, "metrics", "m", 10, LEASE).await.unwrap();
    let acme = claimed.iter().find(|d| d.key.as_deref() == Some("t/acme")).unwrap();
    // Folded publications are concatenated in publication order: nothing
    // one publication said is lost.
    let all: String = (0..100).map(|i| format!("v{i}")).collect();
    assert_eq!(acme.payload, all.as_bytes(), "every publication, in order");
    let rows = retain_store::entity::bus_message::Entity::find_by_id(acme.id);
    use sea_orm::EntityTrait;
    assert_eq!(rows.one(bus.db()).await.unwrap().unwrap().coalesced, 100);

    // While the message is leased, a new publication queues behind it
    // instead of folding into work already in progress.
    publish_committed(&bus, &[message(Some("t/acme"), "later")]).await;
    assert_eq!(bus.stats(TOPIC, "metrics").await.unwrap().pending, 1);
    assert!(bus.claim(TOPIC, "metrics", "m2", 10, LEASE).await.unwrap().is_empty(), "key is busy");
    bus.ack("m", &claimed.iter().map(|d| d.id).collect::<Vec<_>>()).await.unwrap();
    let next = bus.claim(TOPIC, "metrics", "m2", 10, LEASE).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].payload, b"later");
});

retain_testkit::storage_test!(async fn one_key_is_handled_in_order_one_at_a_time(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "health")).await.unwrap();
    publish_committed(&bus, &[message(Some("k"), "1"), message(Some("k"), "2"), message(Some("j"), "3")]).await;
    let first = bus.claim(TOPIC, "health", "h", 10, LEASE).await.unwrap();
    let payloads: Vec<_> = first.iter().map(|d| d.payload.clone()).collect();
    assert_eq!(payloads, [b"1".to_vec(), b"3".to_vec()]);
    assert!(bus.claim(TOPIC, "health", "h2", 10, LEASE).await.unwrap().is_empty());
    bus.ack("h", &[first[0].id]).await.unwrap();
    let second = bus.claim(TOPIC, "health", "h2", 10, LEASE).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].payload, b"2");
});

struct AlwaysFails;

impl Handler for AlwaysFails {
    async fn handle(&self, _: &Delivery) -> Result<(), HandlerError> {
        Err(HandlerError::transient("downstream unavailable"))
    }
}

retain_testkit::storage_test!(async fn failing_messages_retry_then_dead_letter(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "notification").max_attempts(3)).await.unwrap();
    publish_committed(&bus, &[message(Some("acme"), "boom"), message(Some("acme"), "after")]).await;
    let mut opts = ConsumerOptions::new("n-1");
    opts.retry = RetryPolicy { base: Duration::from_millis(1), max: Duration::from_millis(5) };
    let consumer = Consumer::new(bus.clone(), TOPIC, "notification", opts).await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while bus.stats(TOPIC, "notification").await.unwrap().dead < 2 {
        assert!(tokio::time::Instant::now() < deadline, "never dead-lettered");
        consumer.run_once(&AlwaysFails).await.unwrap();
        tokio::task::yield_now().await;
    }
    let dead = bus.dead_letters(TOPIC, "notification", 10).await.unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].payload, b"boom");
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].last_error.as_deref(), Some("downstream unavailable"));
    // A dead letter does not block its key: nothing is left pending.
    assert_eq!(bus.stats(TOPIC, "notification").await.unwrap().pending, 0);
});

retain_testkit::storage_test!(async fn permanent_errors_dead_letter_at_once(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "g").max_attempts(5)).await.unwrap();
    publish_committed(&bus, &[message(None, "garbage")]).await;
    let d = bus.claim(TOPIC, "g", "o", 1, LEASE).await.unwrap().remove(0);
    let outcome = bus.nack("o", &d, "does not decode", d.attempt, &RetryPolicy::default()).await.unwrap();
    assert_eq!(outcome, NackOutcome::DeadLettered);
    assert_eq!(bus.stats(TOPIC, "g").await.unwrap().dead, 1);
});

retain_testkit::storage_test!(async fn nack_of_superseded_coalesced_message_folds_it_into_the_pending_one(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "metrics").coalescing()).await.unwrap();
    publish_committed(&bus, &[message(Some("a"), "old")]).await;
    let d = bus.claim(TOPIC, "metrics", "o", 1, LEASE).await.unwrap().remove(0);
    publish_committed(&bus, &[message(Some("a"), "new")]).await;
    let outcome = bus.nack("o", &d, "x", 10, &RetryPolicy::default()).await.unwrap();
    assert_eq!(outcome, NackOutcome::Superseded);
    let next = bus.claim(TOPIC, "metrics", "o", 10, LEASE).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].payload, b"oldnew", "the failed message's facts are kept, oldest first");
});

/// Counts how often each payload was handled.
#[derive(Default, Clone)]
struct Recorder(Arc<Mutex<HashMap<Vec<u8>, u32>>>);

impl Handler for Recorder {
    async fn handle(&self, d: &Delivery) -> Result<(), HandlerError> {
        *self.0.lock().unwrap().entry(d.payload.clone()).or_default() += 1;
        Ok(())
    }
}

retain_testkit::storage_test!(async fn four_consumers_process_ten_thousand_exactly_once(db) {
    const N: usize = 10_000;
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "metrics")).await.unwrap();
    let msgs: Vec<_> = (0..N).map(|i| message(Some(&format!("acct-{}", i % 500)), &i.to_string())).collect();
    for chunk in msgs.chunks(1_000) {
        publish_committed(&bus, chunk).await;
    }

    let recorder = Recorder::default();
    let shutdown = CancellationToken::new();
    let mut workers = Vec::new();
    for w in 0..4 {
        let mut opts = ConsumerOptions::new(format!("worker-{w}"));
        opts.batch_size = 200;
        let consumer = Consumer::new(bus.clone(), TOPIC, "metrics", opts).await.unwrap();
        let (recorder, shutdown) = (recorder.clone(), shutdown.clone());
        workers.push(tokio::spawn(async move { consumer.run(&recorder, shutdown).await }));
    }
    retain_testkit::eventually("the queue to drain", Duration::from_secs(120), || async {
        let stats = bus.stats(TOPIC, "metrics").await.unwrap();
        (stats.pending == 0 && stats.leased == 0).then_some(())
    })
    .await;
    shutdown.cancel();
    for w in workers {
        w.await.unwrap();
    }
    {
        let seen = recorder.0.lock().unwrap();
        assert_eq!(seen.len(), N, "every message handled");
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n != 1).collect();
        assert!(twice.is_empty(), "handled more than once: {}", twice.len());
    }
    assert_eq!(bus.stats(TOPIC, "metrics").await.unwrap(), Default::default());
});

/// A typed topic of the test suite: timestamps keyed by their seconds.
const TYPED: Topic<prost_types::Timestamp> =
    Topic::new("test.typed", |t: &prost_types::Timestamp| {
        t.seconds.to_string()
    });

retain_testkit::storage_test!(async fn a_topic_that_cannot_fold_refuses_a_coalescing_subscription(db) {
    let bus = Bus::new(db.conn.clone());
    let err = TYPED.coalescing_subscription("health").unwrap_err();
    assert!(err.to_string().contains("not coalescible"), "{err}");
    let err = bus.subscribe(&Subscription::new("a topic", "g")).await.unwrap_err();
    assert!(err.to_string().contains("whitespace"), "{err}");
    // A payload that does not decode is a permanent failure.
    bus.subscribe(&TYPED.subscription("n")).await.unwrap();
    let tx = bus.db().begin().await.unwrap();
    publish(&tx, TYPED.name(), &[message(Some("k"), "\u{ff}garbage")]).await.unwrap();
    tx.commit().await.unwrap();
    let d = bus.claim(TYPED.name(), "n", "o", 1, LEASE).await.unwrap().remove(0);
    assert!(TYPED.decode(&d).unwrap_err().permanent);
    // A typed publication is keyed by the topic, never by hand.
    let t = prost_types::Timestamp { seconds: 42, nanos: 0 };
    assert_eq!(TYPED.outgoing(&t).key.as_deref(), Some("42"));
    assert_eq!(TYPED.key_of(&t), "42");
});

// A handler can acknowledge inside its own transaction: the message is
// gone exactly when the handler's writes commit.
retain_testkit::storage_test!(async fn ack_in_commits_and_rolls_back_with_the_handlers_writes(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "g")).await.unwrap();
    publish_committed(&bus, &[message(Some("a"), "1"), message(Some("b"), "2")]).await;
    let claimed = bus.claim(TOPIC, "g", "owner-1", 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 2);
    // Rolled back: the message stays leased, to be handled again.
    let tx = bus.db().begin().await.unwrap();
    assert!(retain_bus::ack_in(&tx, &claimed[0]).await.unwrap());
    tx.rollback().await.unwrap();
    assert_eq!(bus.stats(TOPIC, "g").await.unwrap().leased, 2);
    // Committed: gone.
    let tx = bus.db().begin().await.unwrap();
    assert!(retain_bus::ack_in(&tx, &claimed[0]).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(bus.stats(TOPIC, "g").await.unwrap().leased, 1);
    // A lease another owner holds is not acknowledged.
    let mut stolen = claimed[1].clone();
    stolen.owner = "someone-else".into();
    let tx = bus.db().begin().await.unwrap();
    assert!(!retain_bus::ack_in(&tx, &stolen).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(bus.stats(TOPIC, "g").await.unwrap().leased, 1);
});

/// Writes each batch in one transaction with its acknowledgements
/// (`ack_all_in`), and refuses any batch holding a "poison" message;
/// one at a time, it records the good ones and refuses the poison for good.
#[derive(Clone)]
struct Batches(sea_orm::DatabaseConnection, Arc<Mutex<Vec<usize>>>);

impl Handler for Batches {
    async fn handle(&self, d: &Delivery) -> Result<(), HandlerError> {
        retain_bus::BatchHandler::handle_batch(self, std::slice::from_ref(d)).await
    }
}

impl retain_bus::BatchHandler for Batches {
    async fn handle_batch(&self, batch: &[Delivery]) -> Result<(), HandlerError> {
        if batch.iter().any(|d| d.payload == b"poison") {
            return Err(HandlerError::permanent("poison"));
        }
        let tx = self.0.begin().await.unwrap();
        let all: Vec<&Delivery> = batch.iter().collect();
        assert!(
            retain_bus::ack_all_in(&tx, &all).await.unwrap(),
            "every lease held"
        );
        tx.commit().await.unwrap();
        self.1.lock().unwrap().push(batch.len());
        Ok(())
    }
}

retain_testkit::storage_test!(async fn a_batch_handler_takes_whole_batches_and_falls_back_to_one_by_one(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "g")).await.unwrap();
    let good: Vec<OutgoingMessage> = (0..10).map(|i| message(Some(&format!("k{i}")), "ok")).collect();
    publish_committed(&bus, &good).await;
    let handler = Batches(db.conn.clone(), Arc::default());
    let mut opts = ConsumerOptions::new("b-1");
    opts.batch_size = 100;
    let consumer = Consumer::new(bus.clone(), TOPIC, "g", opts).await.unwrap();
    assert_eq!(consumer.run_once_batched(&handler).await.unwrap(), 10);
    assert_eq!(*handler.1.lock().unwrap(), [10], "one batch of ten");
    let s = bus.stats(TOPIC, "g").await.unwrap();
    assert_eq!((s.pending, s.leased, s.dead), (0, 0, 0));

    // A poisoned batch: the batch fails, each message is handled alone —
    // the good ones pass, the poison is dead-lettered on its own.
    publish_committed(&bus, &[message(Some("a"), "ok"), message(Some("b"), "poison"), message(Some("c"), "ok")]).await;
    assert_eq!(consumer.run_once_batched(&handler).await.unwrap(), 3);
    assert_eq!(*handler.1.lock().unwrap(), [10, 1, 1]);
    let s = bus.stats(TOPIC, "g").await.unwrap();
    assert_eq!((s.pending, s.leased, s.dead), (0, 0, 1));
    assert_eq!(bus.dead_letters(TOPIC, "g", 10).await.unwrap()[0].payload, b"poison");
});

retain_testkit::storage_test!(async fn the_backlog_counts_each_group_by_state_with_its_oldest_age(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&Subscription::new(TOPIC, "slow")).await.unwrap();
    bus.subscribe(&Subscription::new(TOPIC, "fast")).await.unwrap();
    let published = std::time::Instant::now();
    publish_committed(&bus, &[message(None, "a"), message(None, "b"), message(None, "c")]).await;
    // fast: all three acknowledged; slow: one leased, one dead, one waiting.
    let fast = bus.claim(TOPIC, "fast", "f", 10, LEASE).await.unwrap();
    bus.ack("f", &fast.iter().map(|d| d.id).collect::<Vec<_>>()).await.unwrap();
    let slow = bus.claim(TOPIC, "slow", "s", 2, LEASE).await.unwrap();
    bus.nack("s", &slow[0], "poison", slow[0].attempt, &RetryPolicy::default()).await.unwrap();
    let backlog = bus.backlog().await.unwrap();
    assert_eq!(backlog.len(), 1, "a group with nothing left has no backlog: {backlog:?}");
    let b = &backlog[0];
    assert_eq!((b.topic.as_str(), b.group.as_str()), (TOPIC, "slow"));
    assert_eq!((b.stats.pending, b.stats.leased, b.stats.dead), (1, 1, 1));
    // Measured from the message's publication: no older than this test's.
    assert!(b.oldest_age <= published.elapsed(), "{:?}", b.oldest_age);
});
