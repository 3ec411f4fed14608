//! Per-tenant email quotas: how many emails each tenant has sent in each
//! UTC hour and UTC day, so a tenant that reaches its quota waits and the
//! other tenants' emails go on (`services/notification/src/email.rs`).
//!
//! One row per (tenant, span, window): `span` is `hour` or `day`,
//! `window_start` the window's first instant (µs since the epoch), `used`
//! the sends taken from it. A send takes one from both of its windows in
//! one statement each, only while below the limit, so replicas sending at
//! once never pass it. Rows older than two days are deleted as a tenant's
//! new hour starts.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE notification_email_quota (\
                 tenant_id TEXT NOT NULL, \
                 span TEXT NOT NULL, \
                 window_start BIGINT NOT NULL, \
                 used BIGINT NOT NULL, \
                 PRIMARY KEY (tenant_id, span, window_start))",
            )
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE notification_email_quota")
            .await
            .map(|_| ())
    }
}
