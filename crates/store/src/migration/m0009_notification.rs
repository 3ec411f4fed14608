//! The notification service's tables.
//!
//! - `notification_policies`: routing policy versions per tenant (the
//!   encoded `RoutingPolicy`; segment '' = the tenant default); never
//!   edited, a change is a new version.
//! - `notification_actions`: one row per routed trigger, keyed by its
//!   deterministic notification id, so a redelivered or replayed trigger
//!   inserts nothing: what was decided (task, email, record), whether it
//!   was suppressed (cooldown, snooze), and when the trigger happened (for
//!   cooldowns in both directions of time).
//! - `notification_tasks`: CSM tasks (task id = notification id) with
//!   their state, assignee and SLA.
//! - `notification_snoozes`: a rule silenced for one account until a time.
//! - `notification_messages`: emails and in-app messages (the encoded
//!   `Notification`: template, variables, recipients, delivery state).
//! - `notification_task_changes`: every task creation and change, numbered
//!   per tenant in commit order (the number is taken from
//!   `notification_task_heads` inside the changing transaction, whose row
//!   lock orders the commits): what WatchTasks streams from a cursor.
//! - `notification_queue_cursors`: how many unowned tasks each queue has
//!   assigned, for round-robin assignment.
//! - `notification_accounts`: what routing needs of each account (segment,
//!   CSM owner, name, contacts), from the latest metrics snapshot — its own
//!   subscription to `account.metrics` — so notification never reads
//!   ingestion's tables.
//! - `notification_mrr`: each account's subscription changes (MRR after
//!   each, monthly, minor units), so a change can be told a contraction or
//!   a churn by the MRR before it.

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
            "CREATE TABLE notification_policies (\
               tenant_id VARCHAR NOT NULL, \
               version BIGINT NOT NULL, \
               segment VARCHAR NOT NULL, \
               policy {blob} NOT NULL, \
               created_at BIGINT NOT NULL, \
               PRIMARY KEY (tenant_id, version))"
        ))
        .await?;
        db.execute_unprepared(
            "CREATE INDEX notification_policies_segment \
             ON notification_policies (tenant_id, segment, version)",
        )
        .await?;
        // kind: 1 task, 2 email, 3 record. suppressed: 0 no, 1 cooldown,
        // 2 snooze.
        db.execute_unprepared(
            "CREATE TABLE notification_actions (\
               tenant_id VARCHAR NOT NULL, \
               notification_id VARCHAR NOT NULL, \
               account_id VARCHAR NOT NULL, \
               rule VARCHAR NOT NULL, \
               kind SMALLINT NOT NULL, \
               suppressed SMALLINT NOT NULL, \
               trigger_at BIGINT NOT NULL, \
               created_at BIGINT NOT NULL, \
               PRIMARY KEY (tenant_id, notification_id))",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX notification_actions_rule \
             ON notification_actions (tenant_id, account_id, rule, trigger_at)",
        )
        .await?;
        // state: 1 open, 2 claimed, 3 done, 4 dismissed (TaskState).
        db.execute_unprepared(
            "CREATE TABLE notification_tasks (\
               tenant_id VARCHAR NOT NULL, \
               task_id VARCHAR NOT NULL, \
               account_id VARCHAR NOT NULL, \
               rule VARCHAR NOT NULL, \
               title VARCHAR NOT NULL, \
               message VARCHAR NOT NULL, \
               queue VARCHAR NOT NULL, \
               priority SMALLINT NOT NULL, \
               state SMALLINT NOT NULL, \
               assignee VARCHAR NOT NULL, \
               due_at BIGINT NOT NULL, \
               sla_breached BOOLEAN NOT NULL, \
               resolution VARCHAR NOT NULL, \
               created_at BIGINT NOT NULL, \
               updated_at BIGINT NOT NULL, \
               PRIMARY KEY (tenant_id, task_id))",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX notification_tasks_queue \
             ON notification_tasks (tenant_id, state, priority, due_at, task_id)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TABLE notification_snoozes (\
               tenant_id VARCHAR NOT NULL, \
               account_id VARCHAR NOT NULL, \
               rule VARCHAR NOT NULL, \
               until_at BIGINT NOT NULL, \
               PRIMARY KEY (tenant_id, account_id, rule))",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TABLE notification_task_changes (\
               tenant_id VARCHAR NOT NULL, \
               seq BIGINT NOT NULL, \
               task_id VARCHAR NOT NULL, \
               queue VARCHAR NOT NULL, \
               assignee VARCHAR NOT NULL, \
               created_at BIGINT NOT NULL, \
               PRIMARY KEY (tenant_id, seq))",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TABLE notification_task_heads (\
               tenant_id VARCHAR NOT NULL PRIMARY KEY, \
               seq BIGINT NOT NULL)",
        )
        .await?;
        db.execute_unprepared(&format!(
            "CREATE TABLE notification_messages (\
               tenant_id VARCHAR NOT NULL, \
               notification_id VARCHAR NOT NULL, \
               channel SMALLINT NOT NULL, \
               account_id VARCHAR NOT NULL, \
               state SMALLINT NOT NULL, \
               record {blob} NOT NULL, \
               created_at BIGINT NOT NULL, \
               PRIMARY KEY (tenant_id, notification_id, channel))"
        ))
        .await?;
        db.execute_unprepared(
            "CREATE INDEX notification_messages_recent \
             ON notification_messages (tenant_id, created_at, notification_id)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TABLE notification_queue_cursors (\
               tenant_id VARCHAR NOT NULL, \
               queue VARCHAR NOT NULL, \
               assigned BIGINT NOT NULL, \
               PRIMARY KEY (tenant_id, queue))",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TABLE notification_accounts (\
               tenant_id VARCHAR NOT NULL, \
               account_id VARCHAR NOT NULL, \
               segment VARCHAR NOT NULL, \
               csm_owner VARCHAR NOT NULL, \
               name VARCHAR NOT NULL, \
               contacts VARCHAR NOT NULL, \
               as_of BIGINT NOT NULL, \
               PRIMARY KEY (tenant_id, account_id))",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TABLE notification_mrr (\
               tenant_id VARCHAR NOT NULL, \
               account_id VARCHAR NOT NULL, \
               at BIGINT NOT NULL, \
               event_id VARCHAR NOT NULL, \
               mrr_minor BIGINT NOT NULL, \
               PRIMARY KEY (tenant_id, account_id, at, event_id))",
        )
        .await?;
        db.execute_unprepared(
            "INSERT INTO bus_subscriptions (topic, consumer_group, coalesce, max_attempts) VALUES \
             ('account.metrics', 'notification', FALSE, 10) \
             ON CONFLICT (topic, consumer_group) DO NOTHING",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "DELETE FROM bus_subscriptions WHERE topic = 'account.metrics' AND consumer_group = 'notification'",
        )
        .await?;
        for table in [
            "notification_mrr",
            "notification_accounts",
            "notification_queue_cursors",
            "notification_messages",
            "notification_task_heads",
            "notification_task_changes",
            "notification_snoozes",
            "notification_tasks",
            "notification_actions",
            "notification_policies",
        ] {
            db.execute_unprepared(&format!("DROP TABLE {table}"))
                .await?;
        }
        Ok(())
    }
}
