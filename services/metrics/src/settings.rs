//! The `[metrics]` section of the configuration, owned by this service.

use retain_runtime::{ConfigError, Section};
use serde::Deserialize;

/// Metrics service settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// `signals.recorded` messages one consumer claims per round trip.
    pub consumer_batch: usize,
    /// Accounts one consumer recomputes at once (each commits on its own;
    /// several at once share the database's WAL flushes).
    pub consumer_concurrency: usize,
    /// How long a claimed message is held before another replica may take
    /// it over, in seconds.
    pub consumer_lease_seconds: u64,
    /// How often a replica looks for snapshots computed before today (the
    /// 30-day windows move at midnight UTC), in seconds.
    pub refresh_interval_seconds: u64,
    /// How often a replica rebuilds the monthly cells that changed, in
    /// milliseconds (a query for a month rebuilds its cells itself when
    /// they changed since).
    pub cells_rebuild_interval_ms: u64,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            consumer_batch: 100,
            consumer_concurrency: 4,
            consumer_lease_seconds: 30,
            refresh_interval_seconds: 300,
            cells_rebuild_interval_ms: 1_000,
        }
    }
}

impl Section for MetricsSettings {
    const KEY: &'static str = "metrics";

    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=10_000).contains(&self.consumer_batch) {
            return Err(ConfigError::invalid(
                "metrics.consumer_batch",
                "must be 1 to 10000",
            ));
        }
        if !(1..=64).contains(&self.consumer_concurrency) {
            return Err(ConfigError::invalid(
                "metrics.consumer_concurrency",
                "must be 1 to 64",
            ));
        }
        if !(1..=3_600).contains(&self.consumer_lease_seconds) {
            return Err(ConfigError::invalid(
                "metrics.consumer_lease_seconds",
                "must be 1 to 3600",
            ));
        }
        if !(1..=86_400).contains(&self.refresh_interval_seconds) {
            return Err(ConfigError::invalid(
                "metrics.refresh_interval_seconds",
                "must be 1 to 86400",
            ));
        }
        if !(10..=3_600_000).contains(&self.cells_rebuild_interval_ms) {
            return Err(ConfigError::invalid(
                "metrics.cells_rebuild_interval_ms",
                "must be 10 to 3600000",
            ));
        }
        Ok(())
    }
}
