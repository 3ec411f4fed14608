//! A settings section: one part of the configuration, owned and validated
//! by the crate it configures (`[auth]` by the runtime's auth, `[ingestion]`
//! by the ingestion service), and the error every section reports.

use serde::de::DeserializeOwned;

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or has the wrong shape.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is present but not acceptable.
    #[error("configuration key `{key}`: {reason}")]
    Invalid {
        /// Dotted key path (`server.listen`).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    /// `key` holds an unacceptable value, for `reason`.
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// One top-level section of the configuration file (`[ingestion]`), with
/// its defaults and the checks its types cannot express. Its struct should
/// deny unknown fields, so a typo stops start-up.
pub trait Section: DeserializeOwned + Default + Send + Sync + 'static {
    /// The section's key (`ingestion`); errors name `KEY.field`.
    const KEY: &'static str;

    /// Checks values the types alone cannot.
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// How a service's bus consumers claim and hold messages — the
/// `[<service>.consumer]` table of every service that consumes a topic
/// (`[metrics.consumer] batch = 100`), checked the same way everywhere.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerSettings {
    /// Messages one consumer claims per round trip (1–10,000).
    pub batch: usize,
    /// Messages of different keys one consumer handles at once (1–64).
    pub concurrency: usize,
    /// How long a claimed message is held before another replica may take
    /// it over, in seconds (1–3,600).
    pub lease_seconds: u64,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self::new(100, 4, 30)
    }
}

impl ConsumerSettings {
    /// Settings of `batch` messages, `concurrency` at once, leases of
    /// `lease_seconds`: a service's defaults.
    pub const fn new(batch: usize, concurrency: usize, lease_seconds: u64) -> Self {
        Self {
            batch,
            concurrency,
            lease_seconds,
        }
    }

    /// Checks the ranges, naming `<section>.consumer.<key>`.
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        let key = |name: &str| format!("{section}.consumer.{name}");
        if !(1..=10_000).contains(&self.batch) {
            return Err(ConfigError::invalid(key("batch"), "must be 1 to 10000"));
        }
        if !(1..=64).contains(&self.concurrency) {
            return Err(ConfigError::invalid(key("concurrency"), "must be 1 to 64"));
        }
        if !(1..=3_600).contains(&self.lease_seconds) {
            return Err(ConfigError::invalid(
                key("lease_seconds"),
                "must be 1 to 3600",
            ));
        }
        Ok(())
    }

    /// The bus consumer options these settings give a consumer named
    /// `owner` (unique per process and consumer).
    pub fn options(&self, owner: impl Into<String>) -> retain_bus::ConsumerOptions {
        let mut opts = retain_bus::ConsumerOptions::new(owner);
        opts.batch_size = self.batch;
        opts.concurrency = self.concurrency;
        opts.lease = std::time::Duration::from_secs(self.lease_seconds);
        opts
    }
}
