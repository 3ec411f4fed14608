//! Every Retain table's migration, applied in order on SQLite and
//! PostgreSQL. A later issue adds its tables as a new `mNNNN_*` module and
//! one line in [`Migrator::migrations`].

use sea_orm_migration::prelude::*;

mod m0001_bus;
mod m0002_ingestion;
mod m0003_bus_head;
mod m0004_account_field_times;
mod m0005_metrics;
mod m0006_metrics_months;
mod m0007_health;
mod m0008_health_list;
mod m0009_notification;
mod m0010_email_delivery;
mod m0011_bus_labels;
mod m0012_scoring_order;
mod m0013_rescore_on_the_bus;
mod m0014_email_on_the_bus;
mod m0015_email_quotas;
mod m0016_windowed_recompute;

/// Runs Retain's migrations (`retain migrate`, or a test helper).
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_bus::Migration),
            Box::new(m0002_ingestion::Migration),
            Box::new(m0003_bus_head::Migration),
            Box::new(m0004_account_field_times::Migration),
            Box::new(m0005_metrics::Migration),
            Box::new(m0006_metrics_months::Migration),
            Box::new(m0007_health::Migration),
            Box::new(m0008_health_list::Migration),
            Box::new(m0009_notification::Migration),
            Box::new(m0010_email_delivery::Migration),
            Box::new(m0011_bus_labels::Migration),
            Box::new(m0012_scoring_order::Migration),
            Box::new(m0013_rescore_on_the_bus::Migration),
            Box::new(m0014_email_on_the_bus::Migration),
            Box::new(m0015_email_quotas::Migration),
            Box::new(m0016_windowed_recompute::Migration),
        ]
    }
}

/// Subscribes consumer `group` to `topic` (each publication delivered on
/// its own, dead-lettered after `max_attempts`), unless it is already:
/// done by a migration, so nothing published before the consumer first
/// starts is lost.
async fn subscribe(
    db: &SchemaManagerConnection<'_>,
    topic: &str,
    group: &str,
    max_attempts: i32,
) -> Result<(), DbErr> {
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        db.get_database_backend(),
        "INSERT INTO bus_subscriptions (topic, consumer_group, coalesce, max_attempts) \
         VALUES ($1, $2, FALSE, $3) ON CONFLICT (topic, consumer_group) DO NOTHING",
        [topic.into(), group.into(), max_attempts.into()],
    ))
    .await
    .map(|_| ())
}

/// Undoes [`subscribe`].
async fn unsubscribe(
    db: &SchemaManagerConnection<'_>,
    topic: &str,
    group: &str,
) -> Result<(), DbErr> {
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        db.get_database_backend(),
        "DELETE FROM bus_subscriptions WHERE topic = $1 AND consumer_group = $2",
        [topic.into(), group.into()],
    ))
    .await
    .map(|_| ())
}
