//! The bus tables: `bus_subscriptions` and `bus_messages`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BusSubscriptions {
    Table,
    Topic,
    ConsumerGroup,
    Coalesce,
    MaxAttempts,
}

#[derive(DeriveIden)]
enum BusMessages {
    Table,
    Id,
    Topic,
    ConsumerGroup,
    MsgKey,
    CoalesceKey,
    Payload,
    Headers,
    State,
    Attempts,
    AvailableAt,
    LeaseUntil,
    LeaseOwner,
    Coalesced,
    LastError,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BusSubscriptions::Table)
                    .col(ColumnDef::new(BusSubscriptions::Topic).string().not_null())
                    .col(
                        ColumnDef::new(BusSubscriptions::ConsumerGroup)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BusSubscriptions::Coalesce)
                            .boolean()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BusSubscriptions::MaxAttempts)
                            .integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(BusSubscriptions::Topic)
                            .col(BusSubscriptions::ConsumerGroup),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(BusMessages::Table)
                    .col(
                        ColumnDef::new(BusMessages::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(BusMessages::Topic).string().not_null())
                    .col(
                        ColumnDef::new(BusMessages::ConsumerGroup)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(BusMessages::MsgKey).string().null())
                    .col(ColumnDef::new(BusMessages::CoalesceKey).string().null())
                    .col(ColumnDef::new(BusMessages::Payload).blob().not_null())
                    .col(ColumnDef::new(BusMessages::Headers).text().not_null())
                    .col(
                        ColumnDef::new(BusMessages::State)
                            .small_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(BusMessages::Attempts).integer().not_null())
                    .col(
                        ColumnDef::new(BusMessages::AvailableAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(BusMessages::LeaseUntil).big_integer().null())
                    .col(ColumnDef::new(BusMessages::LeaseOwner).string().null())
                    .col(ColumnDef::new(BusMessages::Coalesced).integer().not_null())
                    .col(ColumnDef::new(BusMessages::LastError).text().null())
                    .col(
                        ColumnDef::new(BusMessages::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // Claim scans a group's topic in id order.
        db.execute_unprepared(
            "CREATE INDEX bus_messages_claim ON bus_messages (consumer_group, topic, id)",
        )
        .await?;
        // Head-of-key lookups for per-key serial processing.
        db.execute_unprepared(
            "CREATE INDEX bus_messages_key ON bus_messages (consumer_group, topic, msg_key, id) \
             WHERE msg_key IS NOT NULL",
        )
        .await?;
        // At most one pending message per coalescing key: a publish for a key
        // that is already pending folds into it (ON CONFLICT ... DO UPDATE).
        // Rows of non-coalescing groups stay out of this index entirely.
        db.execute_unprepared(
            "CREATE UNIQUE INDEX bus_messages_coalesce ON bus_messages \
             (consumer_group, topic, coalesce_key) WHERE state = 0 AND coalesce_key IS NOT NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BusMessages::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(BusSubscriptions::Table).to_owned())
            .await
    }
}
