//! The topic health publishes, declared here so its payload and key are
//! written once for the publisher and every consumer.

use retain_bus::{Topic, account_key};
use retain_proto::v1;

/// An account changed health band (or was first scored live), keyed by
/// the account: notification routes it.
pub const HEALTH_BAND_CHANGED: Topic<v1::HealthBandChanged> =
    Topic::new("health.band_changed", |m: &v1::HealthBandChanged| {
        account_key(&m.tenant_id, &m.account_id)
    });

/// Rescore a tenant's accounts (of one segment, or all) under the model
/// now in force, keyed by tenant and segment: one job of a tenant and
/// segment runs at a time ([`crate::jobs`]).
pub const RESCORE_REQUESTED: Topic<v1::RescoreRequested> =
    Topic::new("health.rescore", |m: &v1::RescoreRequested| {
        account_key(&m.tenant_id, &m.segment)
    });
