//! The health service's tables, and the standing subscription of
//! notification to `health.band_changed`.
//!
//! `health_models` holds every scoring model version a tenant stored (the
//! encoded `ScoringModel`; never edited: a change is a new version).
//! `health_scores` is each account's score history, one row per snapshot
//! scored (keyed by the snapshot's `as_of`, so a redelivered snapshot
//! appends nothing), with the encoded `HealthScore` — inputs, sub-scores,
//! contributions, bands, model version — and two flags for the history
//! view: `is_change` (the account's first score, or the band or the model
//! version differs from the previous score's) and `last_of_day` (dropped by m0008: the
//! history reads it). `health_current` is each
//! account's latest score, for lists and filters. A snapshot is scored
//! once per model version: rescoring after a model change appends a row.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let (blob, double) = match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => ("BYTEA", "DOUBLE PRECISION"),
            _ => ("BLOB", "REAL"),
        };
        db.execute_unprepared(&format!(
            "CREATE TABLE health_models (\
               tenant_id VARCHAR NOT NULL, \
               version BIGINT NOT NULL, \
               segment VARCHAR NOT NULL, \
               model {blob} NOT NULL, \
               created_at BIGINT NOT NULL, \
               PRIMARY KEY (tenant_id, version))"
        ))
        .await?;
        db.execute_unprepared(
            "CREATE INDEX health_models_segment ON health_models (tenant_id, segment, version)",
        )
        .await?;
        db.execute_unprepared(&format!(
            "CREATE TABLE health_scores (\
               tenant_id VARCHAR NOT NULL, \
               account_id VARCHAR NOT NULL, \
               as_of BIGINT NOT NULL, \
               score {double} NOT NULL, \
               band SMALLINT NOT NULL, \
               model_version BIGINT NOT NULL, \
               is_change BOOLEAN NOT NULL, \
               last_of_day BOOLEAN NOT NULL, \
               record {blob} NOT NULL, \
               scored_at BIGINT NOT NULL, \
               PRIMARY KEY (tenant_id, account_id, as_of, model_version))"
        ))
        .await?;
        db.execute_unprepared(&format!(
            "CREATE TABLE health_current (\
               tenant_id VARCHAR NOT NULL, \
               account_id VARCHAR NOT NULL, \
               segment VARCHAR NOT NULL, \
               as_of BIGINT NOT NULL, \
               model_version BIGINT NOT NULL, \
               score {double} NOT NULL, \
               band SMALLINT NOT NULL, \
               record {blob} NOT NULL, \
               PRIMARY KEY (tenant_id, account_id))"
        ))
        .await?;
        db.execute_unprepared(
            "CREATE INDEX health_current_band ON health_current (tenant_id, band, account_id)",
        )
        .await?;
        // Band changes as announced, numbered per tenant in commit order
        // (the number is taken from `health_watch_heads` inside the
        // announcing transaction, whose row lock orders the commits): what
        // WatchBandChanges streams from a cursor.
        db.execute_unprepared(&format!(
            "CREATE TABLE health_band_changes (\
               tenant_id VARCHAR NOT NULL, \
               seq BIGINT NOT NULL, \
               account_id VARCHAR NOT NULL, \
               segment VARCHAR NOT NULL, \
               to_band SMALLINT NOT NULL, \
               event {blob} NOT NULL, \
               created_at BIGINT NOT NULL, \
               PRIMARY KEY (tenant_id, seq))"
        ))
        .await?;
        db.execute_unprepared(
            "CREATE TABLE health_watch_heads (\
               tenant_id VARCHAR NOT NULL PRIMARY KEY, \
               seq BIGINT NOT NULL)",
        )
        .await?;
        // RescoreAll jobs and their progress.
        db.execute_unprepared(
            "CREATE TABLE health_jobs (\
               tenant_id VARCHAR NOT NULL, \
               job_id VARCHAR NOT NULL, \
               segment VARCHAR NOT NULL, \
               state SMALLINT NOT NULL, \
               total BIGINT NOT NULL, \
               done BIGINT NOT NULL, \
               band_changes BIGINT NOT NULL, \
               cursor VARCHAR NOT NULL, \
               lease_owner VARCHAR, \
               lease_until BIGINT NOT NULL, \
               created_at BIGINT NOT NULL, \
               updated_at BIGINT NOT NULL, \
               PRIMARY KEY (tenant_id, job_id))",
        )
        .await?;
        db.execute_unprepared(
            "INSERT INTO bus_subscriptions (topic, consumer_group, coalesce, max_attempts) VALUES \
             ('health.band_changed', 'notification', FALSE, 10) \
             ON CONFLICT (topic, consumer_group) DO NOTHING",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "DELETE FROM bus_subscriptions WHERE topic = 'health.band_changed' AND consumer_group = 'notification'",
        )
        .await?;
        for table in [
            "health_jobs",
            "health_watch_heads",
            "health_band_changes",
            "health_current",
            "health_scores",
            "health_models",
        ] {
            db.execute_unprepared(&format!("DROP TABLE {table}"))
                .await?;
        }
        Ok(())
    }
}
