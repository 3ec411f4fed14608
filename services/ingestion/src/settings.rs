//! The `[ingestion]` section of the configuration, owned by this service.

use retain_runtime::{ConfigError, Section};
use serde::Deserialize;

/// The most signals a batch may be configured to hold: an answer has one
/// result per signal and must stay readable by a default client.
pub const MAX_BATCH_SIGNALS: usize = 10_000;

/// Ingestion service settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestionSettings {
    /// Most signals in one `IngestSignals` call or one streamed batch.
    pub max_batch_signals: usize,
    /// How far in the future `occurred_at` may lie (clock skew), seconds.
    pub max_future_seconds: i64,
    /// How far in the past a `LIVE` signal may lie, days; older history
    /// must be sent with `mode = BACKFILL`.
    pub max_live_age_days: i64,
    /// Sustained signals per second one tenant may send; 0 turns the limit
    /// off. Over it, calls get `RESOURCE_EXHAUSTED` with a retry delay.
    pub tenant_signals_per_second: u64,
    /// Signals a tenant may send in a burst above the sustained rate.
    pub tenant_burst_signals: u64,
    /// Results of one `StreamSignals` call waiting for a slow reader; when
    /// full, the server stops reading batches (back-pressure).
    pub stream_buffered_results: usize,
    /// Write concurrent calls in shared transactions (one writer per
    /// replica): no lock waits between calls, one commit for many.
    pub group_commit: bool,
    /// Most signals one shared transaction takes.
    pub group_commit_max_signals: usize,
    /// Shared transactions in flight at once per replica.
    pub group_commit_writers: usize,
}

impl Default for IngestionSettings {
    fn default() -> Self {
        Self {
            max_batch_signals: 5_000,
            max_future_seconds: 300,
            max_live_age_days: 30,
            tenant_signals_per_second: 200_000,
            tenant_burst_signals: 400_000,
            stream_buffered_results: 2,
            group_commit: true,
            group_commit_max_signals: 20_000,
            group_commit_writers: 2,
        }
    }
}

impl Section for IngestionSettings {
    const KEY: &'static str = "ingestion";

    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_BATCH_SIGNALS).contains(&self.max_batch_signals) {
            return Err(ConfigError::invalid(
                "ingestion.max_batch_signals",
                format!("must be 1 to {MAX_BATCH_SIGNALS} (an answer lists every signal)"),
            ));
        }
        if self.max_future_seconds < 0 {
            return Err(ConfigError::invalid(
                "ingestion.max_future_seconds",
                "must not be negative",
            ));
        }
        if self.max_live_age_days < 1 {
            return Err(ConfigError::invalid(
                "ingestion.max_live_age_days",
                "must be at least 1",
            ));
        }
        if self.group_commit_writers == 0 {
            return Err(ConfigError::invalid(
                "ingestion.group_commit_writers",
                "must be at least 1",
            ));
        }
        if self.group_commit_max_signals == 0 {
            return Err(ConfigError::invalid(
                "ingestion.group_commit_max_signals",
                "must be at least 1",
            ));
        }
        if self.stream_buffered_results == 0 {
            return Err(ConfigError::invalid(
                "ingestion.stream_buffered_results",
                "must be at least 1",
            ));
        }
        if self.tenant_signals_per_second > 0
            && self.tenant_burst_signals < self.max_batch_signals as u64
        {
            return Err(ConfigError::invalid(
                "ingestion.tenant_burst_signals",
                format!(
                    "must be at least ingestion.max_batch_signals ({}), or no full batch could ever pass",
                    self.max_batch_signals
                ),
            ));
        }
        Ok(())
    }
}
