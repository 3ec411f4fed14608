//! Routable `signals.recorded` messages are routed a claimed batch per
//! transaction, on SQLite and PostgreSQL: every account of the batch gets
//! its task and every message is acknowledged with one commit; a batch
//! with a message whose lease was lost routes nothing and fails, so the
//! consumer routes each message on its own.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::sync::Arc;
use std::time::Duration;

use retain_bus::{BatchHandler, Bus, groups};
use retain_ingestion::topics::SIGNALS_RECORDED;
use retain_notification::{Router, Signals};
use retain_proto::v1;
use retain_testkit::*;
use sea_orm::TransactionTrait;

const LEASE: Duration = Duration::from_secs(30);

/// A detractor's NPS answer for `account`, as ingestion announces it.
fn detractor(account: &str) -> v1::SignalsRecorded {
    let answer = v1::Signal {
        occurred_at: ts(now() - 60),
        ..signal(&format!("{account}-nps"), account, nps(2))
    };
    v1::SignalsRecorded {
        tenant_id: "acme".into(),
        account_id: account.into(),
        signal_count: 1,
        mode: v1::IngestMode::Live as i32,
        routable: vec![answer],
        ..Default::default()
    }
}

async fn publish(db: &TestDatabase, events: &[v1::SignalsRecorded]) {
    let tx = db.conn.begin().await.unwrap();
    SIGNALS_RECORDED.publish(&tx, events).await.unwrap();
    tx.commit().await.unwrap();
}

fn signals(db: &TestDatabase) -> Signals {
    Signals(Router {
        db: db.conn.clone(),
        clock: retain_runtime::Clock::system(),
        tenants: Arc::new(
            retain_notification::tenants(
                &retain_runtime::Settings::default().tenants.parse().unwrap(),
            )
            .unwrap(),
        ),
    })
}

async fn task_accounts(db: &TestDatabase) -> Vec<String> {
    use sea_orm::{ConnectionTrait, Statement};
    let rows = db
        .conn
        .query_all_raw(Statement::from_string(
            db.conn.get_database_backend(),
            "SELECT account_id FROM notification_tasks ORDER BY account_id",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect()
}

retain_testkit::storage_test!(async fn a_claimed_batch_of_accounts_is_routed_in_one_transaction(db) {
    let bus = Bus::new(db.conn.clone());
    publish(&db, &[detractor("acct-a"), detractor("acct-b"), detractor("acct-c")]).await;
    let claimed = bus.claim(SIGNALS_RECORDED.name(), groups::NOTIFICATION, "w1", 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 3);

    signals(&db).handle_batch(&claimed).await.unwrap();
    assert_eq!(task_accounts(&db).await, ["acct-a", "acct-b", "acct-c"]);
    let stats = bus.stats(SIGNALS_RECORDED.name(), groups::NOTIFICATION).await.unwrap();
    assert_eq!((stats.pending, stats.leased), (0, 0), "the batch was acknowledged with its tasks");
});

retain_testkit::storage_test!(async fn a_batch_with_a_lost_lease_routes_nothing_and_fails(db) {
    let bus = Bus::new(db.conn.clone());
    publish(&db, &[detractor("acct-a"), detractor("acct-b")]).await;
    let claimed = bus.claim(SIGNALS_RECORDED.name(), groups::NOTIFICATION, "w1", 10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 2);
    // Another replica took acct-b's message over (as when w1's lease
    // expires and w2 claims it).
    {
        use sea_orm::{ConnectionTrait, Statement};
        db.conn
            .execute_raw(Statement::from_sql_and_values(
                db.conn.get_database_backend(),
                "UPDATE bus_messages SET lease_owner = 'w2' WHERE id = $1",
                [claimed[1].id.into()],
            ))
            .await
            .unwrap();
    }
    let taken = [retain_bus::Delivery { owner: "w2".into(), ..claimed[1].clone() }];

    let err = signals(&db).handle_batch(&claimed).await.unwrap_err();
    assert!(!err.permanent, "a lost lease is retried message by message: {}", err.message);
    assert!(task_accounts(&db).await.is_empty(), "nothing of the batch was kept");
    // Alone, acct-a's message routes; acct-b's is w2's to route.
    signals(&db).handle_batch(&claimed[..1]).await.unwrap();
    signals(&db).handle_batch(&taken).await.unwrap();
    assert_eq!(task_accounts(&db).await, ["acct-a", "acct-b"]);
});
