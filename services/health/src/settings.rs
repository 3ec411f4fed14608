//! The `[health]` section of the configuration, owned by this service.

use retain_runtime::{ConfigError, ConsumerSettings, Section};
use serde::Deserialize;

/// Health service settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    /// The `account.metrics` consumer (`[health.consumer]`): 100 messages
    /// a claim, 4 accounts scored at once (each commits on its own), 30 s
    /// leases.
    pub consumer: ConsumerSettings,
}

impl Section for HealthSettings {
    const KEY: &'static str = "health";

    fn validate(&self) -> Result<(), ConfigError> {
        self.consumer.validate(Self::KEY)
    }
}
