//! The topic ingestion publishes, as the bus carries it: notification's
//! subscription takes only routable publications, and a coalescing
//! consumer reads every folded publication's facts.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::time::Duration;

use retain_bus::Bus;
use retain_ingestion::topics::SIGNALS_RECORDED;
use retain_proto::v1;
use sea_orm::TransactionTrait;

const LEASE: Duration = Duration::from_secs(30);

// The migrations subscribe notification to routable `signals.recorded`
// publications only, and the topic labels exactly those: a batch of
// sessions reaches metrics and writes nothing for notification.
retain_testkit::storage_test!(async fn notification_receives_only_routable_signals_recorded(db) {
    let bus = Bus::new(db.conn.clone());
    let migrated = bus.subscription(SIGNALS_RECORDED.name(), "notification").await.unwrap();
    assert_eq!(migrated.label.as_deref(), SIGNALS_RECORDED.label(), "the migration and the topic name one label");
    let routable = recorded(1_000, 1_000, 1, v1::IngestMode::Live);
    let sessions = v1::SignalsRecorded { routable: vec![], account_id: "quiet".into(), ..routable.clone() };
    let tx = bus.db().begin().await.unwrap();
    let written = SIGNALS_RECORDED
        .publish(&tx, &[routable, sessions])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(written, 3, "metrics gets both, notification the routable one");

    let to_notification = bus.claim(SIGNALS_RECORDED.name(), "notification", "n", 10, LEASE).await.unwrap();
    let accounts: Vec<_> = to_notification.iter().map(|d| SIGNALS_RECORDED.decode(d).unwrap().account_id).collect();
    assert_eq!(accounts, ["acme"]);
    assert_eq!(bus.claim(SIGNALS_RECORDED.name(), "metrics", "m", 10, LEASE).await.unwrap().len(), 2);
});

fn recorded(earliest: i64, latest: i64, n: i64, mode: v1::IngestMode) -> v1::SignalsRecorded {
    let ts = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
    let batch = v1::RecordedBatch {
        earliest_occurred_at: ts(earliest),
        latest_occurred_at: ts(latest),
        signal_count: n,
        mode: mode as i32,
    };
    v1::SignalsRecorded {
        tenant_id: "t".into(),
        account_id: "acme".into(),
        earliest_occurred_at: batch.earliest_occurred_at,
        latest_occurred_at: batch.latest_occurred_at,
        signal_count: n,
        mode: mode as i32,
        routable: vec![v1::Signal {
            event_id: format!("routable-{earliest}"),
            ..Default::default()
        }],
        batches: vec![batch],
    }
}

// A backfill batch for an old month, then a live batch, both published
// before the coalescing consumer claims: the folded message must still say
// "recompute from the backfill's start", "LIVE", and carry both batches'
// counts and routable signals. (Replacing the payload lost the backfill's
// start; the reverse order said BACKFILL, so a live change never notified.)
retain_testkit::storage_test!(async fn coalesced_signals_recorded_keeps_every_batch_fact(db) {
    let bus = Bus::new(db.conn.clone());
    bus.subscribe(&SIGNALS_RECORDED.coalescing_subscription("metrics").unwrap()).await.unwrap();
    for order in [[0, 1], [1, 0]] {
        let batches = [
            recorded(1_000, 2_000, 40, v1::IngestMode::Backfill),
            recorded(9_000, 9_001, 2, v1::IngestMode::Live),
        ];
        for i in order {
            let tx = bus.db().begin().await.unwrap();
            SIGNALS_RECORDED.publish(&tx, std::slice::from_ref(&batches[i])).await.unwrap();
            tx.commit().await.unwrap();
        }
        let mut claimed = bus.claim(SIGNALS_RECORDED.name(), "metrics", "m", 10, LEASE).await.unwrap();
        assert_eq!(claimed.len(), 1, "folded into one message");
        let d = claimed.remove(0);
        let event = SIGNALS_RECORDED.decode(&d).unwrap();
        let merged = event.merged();
        assert_eq!(merged.earliest_occurred_at.unwrap().seconds, 1_000, "order {order:?}");
        assert_eq!(merged.latest_occurred_at.unwrap().seconds, 9_001);
        assert_eq!(merged.signal_count, 42);
        assert_eq!(merged.mode(), v1::IngestMode::Live, "order {order:?}");
        assert_eq!(event.routable.len(), 2, "both batches' routable signals");
        assert_eq!(event.batches.len(), 2);
        bus.ack("m", &[d.id]).await.unwrap();
    }
});
