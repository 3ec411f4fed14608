//! Migrations apply, are idempotent, and leave working tables on both
//! SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use retain_store::entity::bus_subscription;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};

retain_store::storage_test!(async fn migrations_create_usable_tables(db) {
    // A second run finds nothing to do and does not fail.
    retain_store::migrate(&db.conn).await.expect("re-migrate");
    retain_store::ping(&db.conn).await.expect("ping");

    bus_subscription::ActiveModel {
        topic: Set("signals.recorded".into()),
        consumer_group: Set("metrics".into()),
        coalesce: Set(true),
        max_attempts: Set(5),
    }
    .insert(&db.conn)
    .await
    .expect("insert");
    let all = bus_subscription::Entity::find().all(&db.conn).await.expect("select");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].consumer_group, "metrics");
    assert!(all[0].coalesce);
});
