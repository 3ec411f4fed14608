//! The `[metrics]` section of the configuration, owned by this service.

use retain_runtime::{ConfigError, ConsumerSettings, Section};
use serde::Deserialize;

/// Metrics service settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// The `signals.recorded` consumer (`[metrics.consumer]`): 100
    /// messages a claim, 4 accounts recomputed at once (each commits on its
    /// own; several at once share the database's WAL flushes), 30 s leases.
    pub consumer: ConsumerSettings,
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
            consumer: ConsumerSettings::new(100, 4, 30),
            refresh_interval_seconds: 300,
            cells_rebuild_interval_ms: 1_000,
        }
    }
}

impl Section for MetricsSettings {
    const KEY: &'static str = "metrics";

    fn validate(&self) -> Result<(), ConfigError> {
        self.consumer.validate(Self::KEY)?;
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
