//! What two writers of one account need to agree on.
//!
//! `account_metrics.signal_count`: how many of the account's stored
//! signals its snapshot was computed from. Signals are only ever inserted,
//! so a snapshot from more signals saw everything one from fewer saw; the
//! daily refresh, which recomputes outside the bus's per-account order,
//! writes only when it read at least as many signals as the stored
//! snapshot, and never puts an older snapshot back over a newer one.
//! Existing rows start at 0: the next recompute sets it.
//!
//! `health_current.live_scored`: whether a LIVE snapshot of the account
//! has been scored. The first LIVE score acts on its band (a Red account
//! gets its review task the first time Retain sees it live); scores from
//! BACKFILL history do not. Existing rows start true: accounts scored
//! before this migration were acted on under the old rule, and upgrading
//! must not re-announce every account.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "ALTER TABLE account_metrics ADD COLUMN signal_count BIGINT NOT NULL DEFAULT 0",
        )
        .await?;
        db.execute_unprepared(
            "ALTER TABLE health_current ADD COLUMN live_scored BOOLEAN NOT NULL DEFAULT TRUE",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE health_current DROP COLUMN live_scored")
            .await?;
        db.execute_unprepared("ALTER TABLE account_metrics DROP COLUMN signal_count")
            .await?;
        Ok(())
    }
}
