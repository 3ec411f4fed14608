//! Account fields remember when each was last set, so upserts merge field
//! by field whatever order they arrive in.
//!
//! An upsert used to be judged against the whole record's last update
//! (`profile_at`): upserts at 11-20 (plan `starter`), 11-22 (no plan) and
//! 11-21 (plan `growth`), delivered in that order, left the plan at
//! `starter`. Each field now has the `occurred_at` (µs) of the upsert that
//! set it; an upsert sets a field it carries when it is newer than that.
//! Existing rows take `profile_at` as the time of every field they hold.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The per-field time columns, beside the field they time.
pub const FIELD_TIME_COLUMNS: [(&str, &str); 9] = [
    ("name_at", "name"),
    ("segment_at", "segment"),
    ("plan_at", "plan"),
    ("csm_owner_email_at", "csm_owner_email"),
    ("contact_emails_at", "contact_emails"),
    ("seats_at", "seats"),
    ("lifecycle_at", "lifecycle"),
    ("renewal_date_at", "renewal_date"),
    ("acquisition_cost_at", "acquisition_cost_minor"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (column, field) in FIELD_TIME_COLUMNS {
            db.execute_unprepared(&format!(
                "ALTER TABLE accounts ADD COLUMN {column} BIGINT NULL"
            ))
            .await?;
            let held = if field == "contact_emails" {
                "contact_emails <> ''".to_owned()
            } else {
                format!("{field} IS NOT NULL")
            };
            db.execute_unprepared(&format!(
                "UPDATE accounts SET {column} = profile_at WHERE {held}"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (column, _) in FIELD_TIME_COLUMNS {
            db.execute_unprepared(&format!("ALTER TABLE accounts DROP COLUMN {column}"))
                .await?;
        }
        Ok(())
    }
}
