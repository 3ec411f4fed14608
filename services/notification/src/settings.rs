//! The `[notification]` section of the configuration, owned by this service.

use retain_runtime::{ConfigError, Section};
use serde::Deserialize;

/// Notification service settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    /// Messages one consumer claims per round trip.
    pub consumer_batch: usize,
    /// Accounts one consumer routes at once (each commits on its own).
    pub consumer_concurrency: usize,
    /// How long a claimed message is held before another replica may take
    /// it over, in seconds.
    pub consumer_lease_seconds: u64,
    /// How often open tasks past their SLA are marked breached, in
    /// milliseconds.
    pub sla_sweep_interval_ms: u64,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            consumer_batch: 100,
            consumer_concurrency: 4,
            consumer_lease_seconds: 30,
            sla_sweep_interval_ms: 10_000,
        }
    }
}

impl Section for NotificationSettings {
    const KEY: &'static str = "notification";

    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=10_000).contains(&self.consumer_batch) {
            return Err(ConfigError::invalid(
                "notification.consumer_batch",
                "must be 1 to 10000",
            ));
        }
        if !(1..=64).contains(&self.consumer_concurrency) {
            return Err(ConfigError::invalid(
                "notification.consumer_concurrency",
                "must be 1 to 64",
            ));
        }
        if !(1..=3_600).contains(&self.consumer_lease_seconds) {
            return Err(ConfigError::invalid(
                "notification.consumer_lease_seconds",
                "must be 1 to 3600",
            ));
        }
        if !(10..=3_600_000).contains(&self.sla_sweep_interval_ms) {
            return Err(ConfigError::invalid(
                "notification.sla_sweep_interval_ms",
                "must be 10 to 3600000",
            ));
        }
        Ok(())
    }
}
