//! The `[health]` section of the configuration, owned by this service.

use retain_runtime::{ConfigError, Section};
use serde::Deserialize;

/// Health service settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    /// `account.metrics` messages one consumer claims per round trip.
    pub consumer_batch: usize,
    /// Accounts one consumer scores at once (each commits on its own).
    pub consumer_concurrency: usize,
    /// How long a claimed message is held before another replica may take
    /// it over, in seconds.
    pub consumer_lease_seconds: u64,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            consumer_batch: 100,
            consumer_concurrency: 4,
            consumer_lease_seconds: 30,
        }
    }
}

impl Section for HealthSettings {
    const KEY: &'static str = "health";

    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=10_000).contains(&self.consumer_batch) {
            return Err(ConfigError::invalid(
                "health.consumer_batch",
                "must be 1 to 10000",
            ));
        }
        if !(1..=64).contains(&self.consumer_concurrency) {
            return Err(ConfigError::invalid(
                "health.consumer_concurrency",
                "must be 1 to 64",
            ));
        }
        if !(1..=3_600).contains(&self.consumer_lease_seconds) {
            return Err(ConfigError::invalid(
                "health.consumer_lease_seconds",
                "must be 1 to 3600",
            ));
        }
        Ok(())
    }
}
