//! Migrations apply, are idempotent, and leave working tables on both
//! SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use retain_store::entity::bus_subscription;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};

retain_testkit::storage_test!(async fn migrations_create_usable_tables(db) {
    // A second run finds nothing to do and does not fail.
    retain_store::migrate(&db.conn).await.expect("re-migrate");
    retain_store::ping(&db.conn).await.expect("ping");

    // The standing consumers of signals.recorded exist from migration on,
    // so nothing ingested before they first start is lost.
    let standing = bus_subscription::Entity::find().all(&db.conn).await.expect("select");
    let mut groups: Vec<(String, bool, Option<String>)> = standing
        .iter()
        .filter(|s| s.topic == "signals.recorded")
        .map(|s| (s.consumer_group.clone(), s.coalesce, s.label.clone()))
        .collect();
    groups.sort();
    // Notification takes only the publications labelled routable.
    assert_eq!(
        groups,
        vec![
            ("metrics".to_owned(), true, None),
            ("notification".to_owned(), false, Some("routable".to_owned()))
        ]
    );

    // Health is subscribed to account.metrics before metrics first
    // publishes (one delivery per snapshot: the topic is not coalescible).
    assert!(
        standing.iter().any(|s| s.topic == "account.metrics" && s.consumer_group == "health" && !s.coalesce),
        "{standing:?}"
    );

    // Notification keeps each account's context from account.metrics
    // (the notification migration).
    assert!(
        standing.iter().any(|s| s.topic == "account.metrics" && s.consumer_group == "notification" && !s.coalesce),
        "{standing:?}"
    );

    // Notification is subscribed to health.band_changed before health
    // first announces (the health migration).
    assert!(
        standing.iter().any(|s| s.topic == "health.band_changed" && s.consumer_group == "notification" && !s.coalesce),
        "{standing:?}"
    );

    // Email deliveries are work on the bus, for notification (m0014).
    assert!(
        standing.iter().any(|s| s.topic == "notification.email" && s.consumer_group == "notification" && !s.coalesce),
        "{standing:?}"
    );

    // Rescoring jobs are work on the bus, for health (m0013).
    assert!(
        standing.iter().any(|s| s.topic == "health.rescore" && s.consumer_group == "health" && !s.coalesce),
        "{standing:?}"
    );

    // The table takes new rows.
    bus_subscription::ActiveModel {
        topic: Set("test.topic".into()),
        consumer_group: Set("test".into()),
        coalesce: Set(false),
        max_attempts: Set(5),
        label: Set(None),
    }
    .insert(&db.conn)
    .await
    .expect("insert");
    let all = bus_subscription::Entity::find().all(&db.conn).await.expect("select");
    assert_eq!(all.len(), standing.len() + 1);
    assert!(all.iter().any(|s| s.topic == "test.topic" && s.consumer_group == "test"));
});

#[tokio::test]
async fn a_schema_with_pending_migrations_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("empty.db").display()
    );
    let db = retain_store::connect(&url, &retain_store::PoolOptions::default())
        .await
        .expect("connect");
    let err = retain_store::check_migrated(&db)
        .await
        .expect_err("nothing applied yet");
    let text = err.to_string();
    assert!(
        text.contains("not up to date") && text.contains("migrate"),
        "{text}"
    );
    retain_store::migrate(&db).await.expect("migrate");
    retain_store::check_migrated(&db)
        .await
        .expect("up to date once migrated");
}

// During a rolling upgrade the new release's migration Job runs while the
// previous release's replicas still serve, and one of those may restart:
// a schema with migrations this binary does not know (only additions) is
// fine; one it knows missing is refused, naming it.
retain_testkit::storage_test!(async fn a_newer_schema_is_accepted_and_a_missing_migration_named(db) {
    use sea_orm::ConnectionTrait;
    let conn = &db.conn;
    conn.execute_unprepared(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m9999_from_a_newer_release', 0)",
    )
    .await
    .expect("record a newer release's migration");
    retain_store::check_migrated(conn).await.expect("a newer schema serves");
    retain_store::migrate(conn)
        .await
        .expect("the previous release's migrate leaves a newer schema as it is");
    conn.execute_unprepared("DELETE FROM seaql_migrations WHERE version LIKE 'm0010%'")
        .await
        .expect("forget one");
    let err = retain_store::check_migrated(conn).await.expect_err("m0010 missing");
    assert!(err.to_string().contains("m0010_email_delivery"), "{err}");
});
