//! Email delivery is work on the bus (topic `notification.email`), no
//! longer a lease queue of its own.
//!
//! `notification_messages` keeps each email's record (state, attempts,
//! last error: what `ListNotifications` reads); its `lease_until` and
//! `next_attempt_at` columns are no longer used: the bus holds the lease,
//! the back-off and the dead letters. `queued` says an email's bus message
//! exists; notification publishes one for every pending email without it
//! when it starts (the emails routed before this migration).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "ALTER TABLE notification_messages ADD COLUMN queued BOOLEAN NOT NULL DEFAULT FALSE",
        )
        .await?;
        // The delivery worker dead-letters an email itself after its
        // configured attempts (at most 100); the bus's own limit is only a
        // backstop for a worker that keeps failing on its database.
        super::subscribe(db, "notification.email", "notification", 1000).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        super::unsubscribe(db, "notification.email", "notification").await?;
        db.execute_unprepared("ALTER TABLE notification_messages DROP COLUMN queued")
            .await?;
        Ok(())
    }
}
