//! `accounts`: the tenant's customers, maintained by account-upsert signals.

use sea_orm::entity::prelude::*;

/// One account of one tenant.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "accounts")]
pub struct Model {
    /// Owning tenant.
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: String,
    /// The tenant's external id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub account_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Segment.
    pub segment: Option<String>,
    /// Plan key.
    pub plan: Option<String>,
    /// Owning CSM's email.
    pub csm_owner_email: Option<String>,
    /// Contact emails, one per line.
    pub contact_emails: String,
    /// Licensed seats.
    pub seats: Option<i64>,
    /// Lifecycle stage (`retain_domain::signal::Lifecycle::code`).
    pub lifecycle: Option<i16>,
    /// Next renewal date, seconds since the epoch.
    pub renewal_date: Option<i64>,
    /// Acquisition cost, minor units.
    pub acquisition_cost_minor: Option<i64>,
    /// Acquisition cost currency.
    pub acquisition_currency: Option<String>,
    /// `occurred_at` (µs) of the newest account upsert applied.
    pub profile_at: Option<i64>,
    /// `occurred_at` (µs) of the upsert that set `name`.
    pub name_at: Option<i64>,
    /// … that set `segment`.
    pub segment_at: Option<i64>,
    /// … that set `plan`.
    pub plan_at: Option<i64>,
    /// … that set (or cleared) `csm_owner_email`.
    pub csm_owner_email_at: Option<i64>,
    /// … that set `contact_emails`.
    pub contact_emails_at: Option<i64>,
    /// … that set `seats`.
    pub seats_at: Option<i64>,
    /// … that set `lifecycle`.
    pub lifecycle_at: Option<i64>,
    /// … that set `renewal_date`.
    pub renewal_date_at: Option<i64>,
    /// … that set the acquisition cost.
    pub acquisition_cost_at: Option<i64>,
    /// First signal seen (µs since the epoch, server clock).
    pub created_at: i64,
    /// Last change (µs since the epoch, server clock).
    pub updated_at: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
