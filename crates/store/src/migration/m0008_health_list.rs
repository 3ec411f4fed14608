//! What ListHealth filters and sorts on, beside each account's current
//! score: the account's CSM owner (from the snapshot scored) and the score
//! change since the previous score (0 for an account's first score).
//!
//! Rows scored before this migration have no owner ('') and no change (0)
//! until the account's next snapshot is scored.
//!
//! And `health_scores.last_of_day` goes: the history reads "the last score
//! of its day" instead of each append clearing the flag of the day's older
//! scores — the update that made up 40 % of a rescoring's time.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let double = match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => "DOUBLE PRECISION",
            _ => "REAL",
        };
        db.execute_unprepared(
            "ALTER TABLE health_current ADD COLUMN csm_owner VARCHAR NOT NULL DEFAULT ''",
        )
        .await?;
        db.execute_unprepared(&format!(
            "ALTER TABLE health_current ADD COLUMN score_change {double} NOT NULL DEFAULT 0"
        ))
        .await?;
        db.execute_unprepared("ALTER TABLE health_scores DROP COLUMN last_of_day")
            .await?;
        for (name, columns) in [
            ("health_current_csm", "tenant_id, csm_owner, account_id"),
            ("health_current_score", "tenant_id, score, account_id"),
            (
                "health_current_change",
                "tenant_id, score_change, account_id",
            ),
        ] {
            db.execute_unprepared(&format!(
                "CREATE INDEX {name} ON health_current ({columns})"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX health_current_csm")
            .await?;
        db.execute_unprepared(
            "ALTER TABLE health_scores ADD COLUMN last_of_day BOOLEAN NOT NULL DEFAULT TRUE",
        )
        .await?;
        for column in ["csm_owner", "score_change"] {
            db.execute_unprepared(&format!("ALTER TABLE health_current DROP COLUMN {column}"))
                .await?;
        }
        Ok(())
    }
}
