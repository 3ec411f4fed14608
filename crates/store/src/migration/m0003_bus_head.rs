//! The bus's per-key head check gets an index nothing else can stand in for.
//!
//! The claim delivers a keyed message only when no older unfinished message
//! of the same key exists. Written against plain columns, that check could
//! be answered from the primary key or the claim index with a filter on the
//! key, and with stale statistics PostgreSQL sometimes chose to: each
//! candidate then rescanned the whole backlog (one claim of 1,000 messages
//! took minutes). The check now compares one expression, the message's
//! *head key* `consumer_group || ' ' || topic || ' ' || msg_key` and
//! `id + 0`, two expressions only this index covers (the primary key and
//! the claim index index `id` itself, not `id + 0`), so this index is the
//! only plan short of a sequential scan. Group and topic names hold no space, so the expression is
//! unambiguous. Dead letters never block a key and are left out.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS bus_messages_key")
            .await?;
        db.execute_unprepared(
            "CREATE INDEX bus_messages_head ON bus_messages \
             ((consumer_group || ' ' || topic || ' ' || msg_key), (id + 0)) \
             WHERE msg_key IS NOT NULL AND state <> 2",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS bus_messages_head")
            .await?;
        db.execute_unprepared(
            "CREATE INDEX bus_messages_key ON bus_messages (consumer_group, topic, msg_key, id) \
             WHERE msg_key IS NOT NULL",
        )
        .await?;
        Ok(())
    }
}
