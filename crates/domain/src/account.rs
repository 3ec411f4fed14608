//! An account record: what Retain knows about one customer account, merged
//! from its account upserts.

use crate::money::Money;
use crate::signal::Lifecycle;
use crate::time::Timestamp;

/// One account of a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// External account id.
    pub account_id: String,
    /// Display name.
    pub name: Option<String>,
    /// Segment (`Agencies`).
    pub segment: Option<String>,
    /// Plan.
    pub plan: Option<String>,
    /// The CSM who owns the account.
    pub csm_owner_email: Option<String>,
    /// Contacts.
    pub contact_emails: Vec<String>,
    /// Seats.
    pub seats: Option<i64>,
    /// Lifecycle stage.
    pub lifecycle: Option<Lifecycle>,
    /// Next renewal date.
    pub renewal_date: Option<Timestamp>,
    /// What acquiring the account cost.
    pub acquisition_cost: Option<Money>,
    /// First seen by Retain.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}
