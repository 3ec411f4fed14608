//! The `[metrics]` section of the configuration, owned by this service.

use retain_runtime::{ConfigError, ConsumerSettings, PerTenant, Section, TenantKeys, TenantView};
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
    /// Accounts whose signals a KPI query the monthly cells cannot answer
    /// reads and folds at once (1–100,000).
    pub query_page_accounts: u64,
    /// Most signals such a page holds (1–10,000,000): a page ends at the
    /// account that would take it past this (it holds at least one
    /// account, however large). With `query_page_accounts`, what bounds
    /// one heavy query's memory.
    pub query_page_signals: u64,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            consumer: ConsumerSettings::new(100, 4, 30),
            refresh_interval_seconds: 300,
            cells_rebuild_interval_ms: 1_000,
            query_page_accounts: 500,
            query_page_signals: 100_000,
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
        if !(1..=100_000).contains(&self.query_page_accounts) {
            return Err(ConfigError::invalid(
                "metrics.query_page_accounts",
                "must be 1 to 100000",
            ));
        }
        if !(1..=10_000_000).contains(&self.query_page_signals) {
            return Err(ConfigError::invalid(
                "metrics.query_page_signals",
                "must be 1 to 10000000",
            ));
        }
        Ok(())
    }
}

/// The per-tenant key metrics owns (`[tenants.default]`, overridable per
/// tenant like every tenant key).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsTenantKeys {
    /// An account whose payment has failed for more than this many days
    /// counts as churned in the revenue KPIs (0, the default: never; at
    /// most 365).
    pub payment_failed_churn_days: u32,
}

impl TenantKeys for MetricsTenantKeys {
    const KEYS: &'static [&'static str] = &["payment_failed_churn_days"];

    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        if self.payment_failed_churn_days > 365 {
            return Err(ConfigError::invalid(
                format!("{prefix}.payment_failed_churn_days"),
                "must be 0 (never) to 365",
            ));
        }
        Ok(())
    }
}

impl MetricsTenantKeys {
    /// Days of failed payment after which an account counts as churned;
    /// `None`: never.
    pub fn payment_failed_churn_days(&self) -> Option<u32> {
        Some(self.payment_failed_churn_days).filter(|d| *d > 0)
    }
}

/// A tenant's settings as metrics reads them: the shared ones and its own
/// keys (`tenant.own`).
pub type Tenant = TenantView<MetricsTenantKeys>;

/// Every tenant's settings as metrics reads them.
pub type Tenants = PerTenant<Tenant>;

/// Every tenant's settings as metrics reads them, from the parsed
/// `[tenants]`; errors name the key.
pub fn tenants(all: &retain_runtime::Tenants) -> Result<Tenants, ConfigError> {
    all.views()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn payment_failed_churn_days_is_off_by_default_overridable_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(
            &path,
            "[tenants.default]\npayment_failed_churn_days = 30\n[[tenants.overrides]]\nid = \"acme\"\npayment_failed_churn_days = 0\n",
        )
        .unwrap();
        let s = retain_runtime::Settings::load_from(Some(&path), Vec::new()).unwrap();
        let tenants = super::tenants(&s.tenants.parse().unwrap()).unwrap();
        assert_eq!(
            tenants.of("other").own.payment_failed_churn_days(),
            Some(30)
        );
        assert_eq!(
            tenants.of("acme").own.payment_failed_churn_days(),
            None,
            "0 turns it off"
        );
        let default = retain_runtime::Settings::default().tenants.parse().unwrap();
        assert_eq!(
            super::tenants(&default)
                .unwrap()
                .of("any")
                .own
                .payment_failed_churn_days(),
            None
        );

        std::fs::write(
            &path,
            "[tenants.default]\npayment_failed_churn_days = 366\n",
        )
        .unwrap();
        let s = retain_runtime::Settings::load_from(Some(&path), Vec::new()).unwrap();
        let err = super::tenants(&s.tenants.parse().unwrap()).unwrap_err();
        assert!(
            err.to_string()
                .contains("tenants.default.payment_failed_churn_days"),
            "{err}"
        );
    }
}
