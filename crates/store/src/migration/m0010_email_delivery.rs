//! Email delivery state beside each message record: how many send attempts
//! it has had, when it may be tried next, and until when a delivery worker
//! holds it (`lease_until`, so two replicas never send one email at once).
//!
//! Pending emails are found by the partial index `notification_messages_due`
//! (state 1, pending; in-app messages are never pending), oldest due first.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for column in ["attempts", "next_attempt_at", "lease_until"] {
            db.execute_unprepared(&format!(
                "ALTER TABLE notification_messages ADD COLUMN {column} BIGINT NOT NULL DEFAULT 0"
            ))
            .await?;
        }
        db.execute_unprepared(
            "CREATE INDEX notification_messages_due \
             ON notification_messages (next_attempt_at) WHERE state = 1",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX notification_messages_due")
            .await?;
        for column in ["attempts", "next_attempt_at", "lease_until"] {
            db.execute_unprepared(&format!(
                "ALTER TABLE notification_messages DROP COLUMN {column}"
            ))
            .await?;
        }
        Ok(())
    }
}
