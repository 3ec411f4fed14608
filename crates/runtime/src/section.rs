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
