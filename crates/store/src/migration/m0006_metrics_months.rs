//! The metrics service's monthly rollups.
//!
//! `metrics_account_months` holds each account's contribution to each
//! finished calendar month's portfolio KPIs (the encoded integers of
//! `retain_domain::kpi::rollup::portfolio::Contribution`), with the
//! account's segment and plan ('' for none) when it was computed.
//! `metrics_month_cells` holds their sums per (month, segment, plan) — what
//! a query for a month reads — rebuilt from the account rows whenever
//! `metrics_dirty_months` says the month changed: every write of a month's
//! rows bumps its `version`; a rebuild records the version it summed in
//! `built`, in the transaction that writes the cells (so a month is dirty
//! exactly while `version > built`). `metrics_account_openings` holds,
//! for an account whose history starts with an opening balance, its
//! contribution to any month before its first signal's (it pays its
//! opening MRR throughout, without movements).

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
            "CREATE TABLE metrics_account_months (\
               tenant_id VARCHAR NOT NULL, \
               month_start BIGINT NOT NULL, \
               account_id VARCHAR NOT NULL, \
               segment VARCHAR NOT NULL, \
               plan VARCHAR NOT NULL, \
               contribution {blob} NOT NULL, \
               PRIMARY KEY (tenant_id, month_start, account_id))"
        ))
        .await?;
        // The consumer reads and replaces one account's months.
        db.execute_unprepared(
            "CREATE INDEX metrics_account_months_account \
             ON metrics_account_months (tenant_id, account_id)",
        )
        .await?;
        db.execute_unprepared(&format!(
            "CREATE TABLE metrics_month_cells (\
               tenant_id VARCHAR NOT NULL, \
               month_start BIGINT NOT NULL, \
               segment VARCHAR NOT NULL, \
               plan VARCHAR NOT NULL, \
               accounts BIGINT NOT NULL, \
               contribution {blob} NOT NULL, \
               PRIMARY KEY (tenant_id, month_start, segment, plan))"
        ))
        .await?;
        db.execute_unprepared(&format!(
            "CREATE TABLE metrics_account_openings (\
               tenant_id VARCHAR NOT NULL, \
               account_id VARCHAR NOT NULL, \
               first_month BIGINT NOT NULL, \
               segment VARCHAR NOT NULL, \
               plan VARCHAR NOT NULL, \
               contribution {blob} NOT NULL, \
               PRIMARY KEY (tenant_id, account_id))"
        ))
        .await?;
        // A month's query adds the openings of accounts first seen after it.
        db.execute_unprepared(
            "CREATE INDEX metrics_account_openings_month \
             ON metrics_account_openings (tenant_id, first_month)",
        )
        .await?;
        // A month's query first asks whether any account of the tenant was
        // last recomputed before the month ended.
        db.execute_unprepared(
            "CREATE INDEX account_metrics_tenant_as_of ON account_metrics (tenant_id, as_of)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE TABLE metrics_dirty_months (\
               tenant_id VARCHAR NOT NULL, \
               month_start BIGINT NOT NULL, \
               version BIGINT NOT NULL, \
               built BIGINT NOT NULL, \
               PRIMARY KEY (tenant_id, month_start))",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP INDEX account_metrics_tenant_as_of")
            .await?;
        for table in [
            "metrics_dirty_months",
            "metrics_account_openings",
            "metrics_month_cells",
            "metrics_account_months",
        ] {
            db.execute_unprepared(&format!("DROP TABLE {table}"))
                .await?;
        }
        Ok(())
    }
}
