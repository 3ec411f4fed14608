//! What lets the metrics consumer recompute an account from what changed
//! instead of its whole history (`services/metrics/src/recompute.rs`).
//!
//! `signals_sparse`: a partial index of every signal that is not a
//! session or a product action (kinds 11 and 12) — subscriptions, surveys,
//! tickets, milestones, billing, trials, renewals, purchases, costs and
//! upserts, the few signals an account's lifetime facts come from — so a
//! recompute reads those without touching the sessions and actions that
//! make up most of a large account's history, which it reads by time
//! range only. Ingestion's writes of sessions and actions do not touch it.
//!
//! `account_metrics.read_version`: the latest `ingested_at` among the
//! signals a snapshot was computed from, which replaces `signal_count` as
//! the order of two writers of one account (m0012): a recompute that
//! reads by time range does not count the account's signals. Signals are
//! only inserted and each recompute reads every signal ingested since the
//! ones its message announces, so a snapshot with a later read version saw
//! what one with an earlier saw; the daily refresh writes only when its
//! read version is at least the stored one (and, when equal, its as-of
//! time too). Existing rows start at 0: the next recompute sets it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE INDEX signals_sparse ON signals (tenant_id, account_id, occurred_at) \
             WHERE kind NOT IN (11, 12)",
        )
        .await?;
        db.execute_unprepared(
            "ALTER TABLE account_metrics ADD COLUMN read_version BIGINT NOT NULL DEFAULT 0",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE account_metrics DROP COLUMN read_version")
            .await?;
        db.execute_unprepared("DROP INDEX signals_sparse").await?;
        Ok(())
    }
}
