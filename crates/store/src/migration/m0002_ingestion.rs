//! The ingestion tables: `accounts`, `users`, `signal_ids` and `signals`,
//! and the standing subscriptions to `signals.recorded`.
//!
//! Signals live in two tables so `signals` can later be partitioned by
//! time on PostgreSQL: its key `(tenant_id, account_id, occurred_at,
//! event_id)` contains the partition column, while idempotency (one
//! `event_id` per tenant, ever) is kept by the narrow `signal_ids` table,
//! whose unique key could not span time partitions.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Accounts {
    Table,
    TenantId,
    AccountId,
    Name,
    Segment,
    Plan,
    CsmOwnerEmail,
    ContactEmails,
    Seats,
    Lifecycle,
    RenewalDate,
    AcquisitionCostMinor,
    AcquisitionCurrency,
    ProfileAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    TenantId,
    AccountId,
    UserId,
    FirstSeenAt,
    LastSeenAt,
}

#[derive(DeriveIden)]
enum SignalIds {
    Table,
    TenantId,
    EventId,
    ContentHash,
}

#[derive(DeriveIden)]
enum Signals {
    Table,
    TenantId,
    AccountId,
    OccurredAt,
    EventId,
    Kind,
    Mode,
    Payload,
    IngestedAt,
}

fn text(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c).string().not_null().to_owned()
}

fn micros(c: impl IntoIden) -> ColumnDef {
    ColumnDef::new(c).big_integer().not_null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Accounts::Table)
                    .col(text(Accounts::TenantId))
                    .col(text(Accounts::AccountId))
                    .col(ColumnDef::new(Accounts::Name).string().null())
                    .col(ColumnDef::new(Accounts::Segment).string().null())
                    .col(ColumnDef::new(Accounts::Plan).string().null())
                    .col(ColumnDef::new(Accounts::CsmOwnerEmail).string().null())
                    .col(ColumnDef::new(Accounts::ContactEmails).text().not_null())
                    .col(ColumnDef::new(Accounts::Seats).big_integer().null())
                    .col(ColumnDef::new(Accounts::Lifecycle).small_integer().null())
                    .col(ColumnDef::new(Accounts::RenewalDate).big_integer().null())
                    .col(
                        ColumnDef::new(Accounts::AcquisitionCostMinor)
                            .big_integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(Accounts::AcquisitionCurrency)
                            .string()
                            .null(),
                    )
                    .col(ColumnDef::new(Accounts::ProfileAt).big_integer().null())
                    .col(micros(Accounts::CreatedAt))
                    .col(micros(Accounts::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(Accounts::TenantId)
                            .col(Accounts::AccountId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(text(Users::TenantId))
                    .col(text(Users::AccountId))
                    .col(text(Users::UserId))
                    .col(micros(Users::FirstSeenAt))
                    .col(micros(Users::LastSeenAt))
                    .primary_key(
                        Index::create()
                            .col(Users::TenantId)
                            .col(Users::AccountId)
                            .col(Users::UserId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SignalIds::Table)
                    .col(text(SignalIds::TenantId))
                    .col(text(SignalIds::EventId))
                    .col(ColumnDef::new(SignalIds::ContentHash).blob().not_null())
                    .primary_key(
                        Index::create()
                            .col(SignalIds::TenantId)
                            .col(SignalIds::EventId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Signals::Table)
                    .col(text(Signals::TenantId))
                    .col(text(Signals::AccountId))
                    .col(micros(Signals::OccurredAt))
                    .col(text(Signals::EventId))
                    .col(ColumnDef::new(Signals::Kind).small_integer().not_null())
                    .col(ColumnDef::new(Signals::Mode).small_integer().not_null())
                    .col(ColumnDef::new(Signals::Payload).blob().not_null())
                    .col(micros(Signals::IngestedAt))
                    .primary_key(
                        Index::create()
                            .col(Signals::TenantId)
                            .col(Signals::AccountId)
                            .col(Signals::OccurredAt)
                            .col(Signals::EventId),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // ListAccounts filters, each ending in account_id for keyset paging.
        for (name, col) in [
            ("accounts_segment", "segment"),
            ("accounts_csm", "csm_owner_email"),
            ("accounts_lifecycle", "lifecycle"),
        ] {
            db.execute_unprepared(&format!(
                "CREATE INDEX {name} ON accounts (tenant_id, {col}, account_id)"
            ))
            .await?;
        }
        // signals.recorded fans out to the groups that exist when it is
        // published, so the standing consumers are subscribed here, before
        // any ingestion: nothing published before a consumer first starts
        // is lost. The consumers re-assert the same rows at start-up.
        db.execute_unprepared(
            "INSERT INTO bus_subscriptions (topic, consumer_group, coalesce, max_attempts) VALUES \
             ('signals.recorded', 'metrics', TRUE, 10), \
             ('signals.recorded', 'notification', FALSE, 10) \
             ON CONFLICT (topic, consumer_group) DO NOTHING",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "DELETE FROM bus_subscriptions WHERE topic = 'signals.recorded' \
                 AND consumer_group IN ('metrics', 'notification')",
            )
            .await?;
        for t in ["signals", "signal_ids", "users", "accounts"] {
            manager
                .drop_table(Table::drop().table(Alias::new(t)).to_owned())
                .await?;
        }
        Ok(())
    }
}
