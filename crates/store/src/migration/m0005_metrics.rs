//! The metrics service's tables, and the standing subscription of health
//! to `account.metrics`.
//!
//! `account_metrics` holds each account's latest snapshot (the encoded
//! `AccountMetricsSnapshot`), replaced whole on every recompute: a
//! snapshot is a function of the account's stored signals and its `as_of`,
//! so recomputing it twice writes the same row.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let blob = match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => "BYTEA",
            _ => "BLOB",
        };
        db.execute_unprepared(&format!(
            "CREATE TABLE account_metrics (\
               tenant_id VARCHAR NOT NULL, \
               account_id VARCHAR NOT NULL, \
               snapshot {blob} NOT NULL, \
               as_of BIGINT NOT NULL, \
               computed_at BIGINT NOT NULL, \
               PRIMARY KEY (tenant_id, account_id))"
        ))
        .await?;
        // The daily refresh looks for snapshots computed before today.
        db.execute_unprepared("CREATE INDEX account_metrics_as_of ON account_metrics (as_of)")
            .await?;
        // account.metrics fans out to the groups that exist when it is
        // published: health is subscribed before metrics first publishes.
        db.execute_unprepared(
            "INSERT INTO bus_subscriptions (topic, consumer_group, coalesce, max_attempts) VALUES \
             ('account.metrics', 'health', FALSE, 10) \
             ON CONFLICT (topic, consumer_group) DO NOTHING",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "DELETE FROM bus_subscriptions WHERE topic = 'account.metrics' AND consumer_group = 'health'",
        )
        .await?;
        db.execute_unprepared("DROP TABLE account_metrics").await?;
        Ok(())
    }
}
