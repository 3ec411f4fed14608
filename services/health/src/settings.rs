//! The `[health]` section of the configuration, owned by this service.

use retain_runtime::{ConfigError, ConsumerSettings, Section};
use serde::Deserialize;

/// Health service settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSettings {
    /// The `account.metrics` consumer (`[health.consumer]`): 100 messages
    /// a claim, 4 accounts scored at once (each commits on its own), 30 s
    /// leases.
    pub consumer: ConsumerSettings,
    /// Accounts a rescoring job rescores before it lets the next job in
    /// line have a turn (1,000–10,000,000): jobs of every tenant take
    /// turns, so one tenant's jobs never hold the others back for long.
    pub rescore_turn_accounts: u64,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            consumer: ConsumerSettings::default(),
            rescore_turn_accounts: 50_000,
        }
    }
}

impl Section for HealthSettings {
    const KEY: &'static str = "health";

    fn validate(&self) -> Result<(), ConfigError> {
        self.consumer.validate(Self::KEY)?;
        if !(1_000..=10_000_000).contains(&self.rescore_turn_accounts) {
            return Err(ConfigError::invalid(
                "health.rescore_turn_accounts",
                "must be 1000 to 10000000",
            ));
        }
        Ok(())
    }
}
