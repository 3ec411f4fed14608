//! Subscriptions that take only labelled publications.
//!
//! `bus_subscriptions.label`: when set, a publication is written for the
//! group only if it carries that label. Notification acts on few of
//! `signals.recorded`'s messages (those with survey answers, subscription
//! and billing changes or account upserts; ingestion labels them
//! `routable`), yet received a copy of every one — under load about one
//! bus row per signal it only acknowledged. Its subscription now takes
//! only the labelled ones. Messages already queued stay and are handled as
//! before; a publisher from before this migration labels nothing and its
//! statement does not filter, so it still writes every copy.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE bus_subscriptions ADD COLUMN label TEXT NULL")
            .await?;
        db.execute_unprepared(
            "UPDATE bus_subscriptions SET label = 'routable' \
             WHERE topic = 'signals.recorded' AND consumer_group = 'notification'",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE bus_subscriptions DROP COLUMN label")
            .await?;
        Ok(())
    }
}
