//! Service configuration: built-in defaults < a TOML file (`--config` or
//! `RETAIN_CONFIG`) < environment variables `RETAIN__SECTION__KEY`.
//!
//! Every struct denies unknown keys, so a typo stops start-up instead of
//! being ignored, and [`Settings::validate`] names the offending key.
//! `deploy/config/retain.toml` is the commented reference.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::Role;

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

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Everything a Retain service reads at start-up.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The gRPC server.
    pub server: ServerSettings,
    /// The database.
    pub database: DatabaseSettings,
    /// Logs, traces and metrics.
    pub telemetry: TelemetrySettings,
    /// Bearer tokens.
    pub auth: AuthSettings,
    /// Per-tenant product settings (base currency, onboarding checklist).
    pub tenants: TenantsSettings,
    /// The ingestion service.
    pub ingestion: IngestionSettings,
}

/// Per-tenant product settings: `default` for every tenant, `overrides`
/// for named ones.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantsSettings {
    /// Settings of tenants without an override.
    pub default: TenantSettings,
    /// Settings of named tenants.
    pub overrides: Vec<TenantOverride>,
}

/// One tenant's product settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TenantSettings {
    /// ISO-4217 code every money amount must use (`EUR`).
    pub base_currency: String,
    /// Milestone keys of the onboarding checklist, in order.
    pub onboarding_checklist: Vec<String>,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            base_currency: "USD".into(),
            onboarding_checklist: [
                "account_created",
                "data_source_connected",
                "teammate_invited",
                "first_report_created",
                "integration_enabled",
            ]
            .map(String::from)
            .to_vec(),
        }
    }
}

/// A named tenant's settings; unset keys fall back to `tenants.default`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantOverride {
    /// Tenant id.
    pub id: String,
    /// Base currency.
    pub base_currency: Option<String>,
    /// Onboarding checklist.
    pub onboarding_checklist: Option<Vec<String>>,
}

impl TenantsSettings {
    /// The settings of `tenant`.
    pub fn of(&self, tenant: &str) -> TenantSettings {
        match self.overrides.iter().find(|o| o.id == tenant) {
            None => self.default.clone(),
            Some(o) => TenantSettings {
                base_currency: o
                    .base_currency
                    .clone()
                    .unwrap_or_else(|| self.default.base_currency.clone()),
                onboarding_checklist: o
                    .onboarding_checklist
                    .clone()
                    .unwrap_or_else(|| self.default.onboarding_checklist.clone()),
            },
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        check_tenant(
            "tenants.default",
            Some(&self.default.base_currency),
            Some(&self.default.onboarding_checklist),
        )?;
        for (i, o) in self.overrides.iter().enumerate() {
            let key = format!("tenants.overrides[{i}]");
            retain_domain::TenantId::parse(o.id.clone())
                .map_err(|e| invalid(format!("{key}.id"), format!("{:?} {e}", o.id)))?;
            if self.overrides[..i].iter().any(|p| p.id == o.id) {
                return Err(invalid(
                    format!("{key}.id"),
                    format!("tenant {:?} has two overrides", o.id),
                ));
            }
            check_tenant(
                &key,
                o.base_currency.as_ref(),
                o.onboarding_checklist.as_ref(),
            )?;
        }
        Ok(())
    }
}

fn check_tenant(
    key: &str,
    currency: Option<&String>,
    checklist: Option<&Vec<String>>,
) -> Result<(), ConfigError> {
    if let Some(c) = currency {
        retain_domain::Currency::parse(c)
            .map_err(|e| invalid(format!("{key}.base_currency"), e.to_string()))?;
    }
    for (j, m) in checklist.into_iter().flatten().enumerate() {
        if m.trim().is_empty() || m.len() > 64 {
            return Err(invalid(
                format!("{key}.onboarding_checklist[{j}]"),
                "must be 1–64 bytes",
            ));
        }
    }
    Ok(())
}

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

impl IngestionSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_batch_signals == 0 {
            return Err(invalid("ingestion.max_batch_signals", "must be at least 1"));
        }
        if self.max_future_seconds < 0 {
            return Err(invalid(
                "ingestion.max_future_seconds",
                "must not be negative",
            ));
        }
        if self.max_live_age_days < 1 {
            return Err(invalid("ingestion.max_live_age_days", "must be at least 1"));
        }
        if self.group_commit_writers == 0 {
            return Err(invalid(
                "ingestion.group_commit_writers",
                "must be at least 1",
            ));
        }
        if self.group_commit_max_signals == 0 {
            return Err(invalid(
                "ingestion.group_commit_max_signals",
                "must be at least 1",
            ));
        }
        if self.stream_buffered_results == 0 {
            return Err(invalid(
                "ingestion.stream_buffered_results",
                "must be at least 1",
            ));
        }
        if self.tenant_signals_per_second > 0
            && self.tenant_burst_signals < self.max_batch_signals as u64
        {
            return Err(invalid(
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

/// gRPC server settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on (`0.0.0.0:50051` in a container).
    pub listen: String,
    /// Largest request message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Requests in flight across all connections before new ones are shed
    /// with `RESOURCE_EXHAUSTED`.
    pub concurrency_limit: usize,
    /// Deadline for a request that carries none, in milliseconds.
    pub request_timeout_ms: u64,
    /// After SIGTERM: how long to report NOT_SERVING before refusing new
    /// connections, so load balancers stop routing here (milliseconds).
    pub readiness_delay_ms: u64,
    /// After SIGTERM: the longest wait for in-flight calls to finish.
    pub shutdown_grace_ms: u64,
    /// TLS; absent means plaintext (inside a mesh or on loopback).
    pub tls: Option<TlsSettings>,
    /// A file the server writes its bound address to (`127.0.0.1:41234`)
    /// once it listens: how a script or test learns the port it got after
    /// asking for port 0.
    pub address_file: Option<PathBuf>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".into(),
            max_message_bytes: 4 * 1024 * 1024,
            concurrency_limit: 512,
            request_timeout_ms: 30_000,
            readiness_delay_ms: 0,
            shutdown_grace_ms: 30_000,
            tls: None,
            address_file: None,
        }
    }
}

impl ServerSettings {
    /// The parsed listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|e| {
            invalid(
                "server.listen",
                format!("{:?} is not host:port ({e})", self.listen),
            )
        })
    }

    /// Default request deadline.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

/// TLS files (PEM). With `client_ca_path`, clients must present a
/// certificate signed by that CA (mTLS).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Server certificate chain.
    pub cert_path: PathBuf,
    /// Server private key.
    pub key_path: PathBuf,
    /// CA that signs client certificates; set to require mTLS.
    pub client_ca_path: Option<PathBuf>,
}

/// Database settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://path?mode=rwc` or `postgres://user:pass@host/db`.
    pub url: String,
    /// Pool size (PostgreSQL; SQLite always uses one writer connection).
    pub max_connections: u32,
    /// How long a request waits for a pooled connection (milliseconds).
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://retain.db?mode=rwc".into(),
            max_connections: 16,
            acquire_timeout_ms: 10_000,
        }
    }
}

impl DatabaseSettings {
    /// Pool options for `retain_store::connect`.
    pub fn pool(&self) -> retain_store::PoolOptions {
        retain_store::PoolOptions {
            max_connections: self.max_connections,
            acquire_timeout: Duration::from_millis(self.acquire_timeout_ms),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    Auto,
    /// Human-readable, coloured.
    Pretty,
    /// One JSON object per line (production).
    Json,
}

/// Telemetry settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// Log format.
    pub log_format: LogFormat,
    /// `tracing` filter directives (`info,retain_bus=debug`); `RUST_LOG`
    /// overrides it.
    pub log_filter: String,
    /// OTLP/gRPC collector endpoint (`http://otel-collector:4317`); empty
    /// turns trace and metric export off.
    pub otlp_endpoint: String,
    /// `service.name` reported to the collector; empty = the binary's name.
    pub service_name: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Auto,
            log_filter: "info".into(),
            otlp_endpoint: String::new(),
            service_name: String::new(),
        }
    }
}

/// Bearer tokens accepted by the service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// One entry per token.
    pub tokens: Vec<TokenSettings>,
}

/// One bearer token, stored only as its SHA-256 hash.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// Lower-case hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`).
    pub sha256: String,
    /// Tenant the token acts for.
    pub tenant: String,
    /// Roles: `ingest`, `read`, `admin`, `csm`.
    pub roles: Vec<String>,
    /// Free text naming the holder, for logs.
    #[serde(default)]
    pub name: String,
}

impl Settings {
    /// Loads defaults, then `file` (or `RETAIN_CONFIG` when `file` is
    /// `None`), then `RETAIN__SECTION__KEY` variables, and validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env_file = std::env::var_os("RETAIN_CONFIG").map(PathBuf::from);
        let file = file.map(Path::to_path_buf).or(env_file);
        Self::load_from(file.as_deref(), std::env::vars())
    }

    /// [`Settings::load`] with the environment given explicitly (tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(invalid(
                    "--config",
                    format!("{} does not exist", path.display()),
                ));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let vars: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("RETAIN__"))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("RETAIN")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(vars)),
        );
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks values the types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.listen_addr()?;
        if self.server.max_message_bytes < 1024 {
            return Err(invalid("server.max_message_bytes", "must be at least 1024"));
        }
        if self.server.concurrency_limit == 0 {
            return Err(invalid("server.concurrency_limit", "must be at least 1"));
        }
        if self.server.request_timeout_ms == 0 {
            return Err(invalid("server.request_timeout_ms", "must be at least 1"));
        }
        if let Some(tls) = &self.server.tls {
            for (key, path) in [
                ("server.tls.cert_path", Some(&tls.cert_path)),
                ("server.tls.key_path", Some(&tls.key_path)),
                ("server.tls.client_ca_path", tls.client_ca_path.as_ref()),
            ] {
                if let Some(path) = path
                    && !path.is_file()
                {
                    return Err(invalid(key, format!("{} does not exist", path.display())));
                }
            }
        }
        retain_store::backend_of(&self.database.url)
            .map_err(|e| invalid("database.url", e.to_string()))?;
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        for (i, token) in self.auth.tokens.iter().enumerate() {
            let key = |field: &str| format!("auth.tokens[{i}].{field}");
            if token.sha256.len() != 64 || !token.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid(
                    key("sha256"),
                    "must be 64 hex digits (the SHA-256 of the token)",
                ));
            }
            retain_domain::TenantId::parse(token.tenant.clone())
                .map_err(|e| invalid(key("tenant"), format!("{:?} {e}", token.tenant)))?;
            if token.roles.is_empty() {
                return Err(invalid(key("roles"), "must name at least one role"));
            }
            for (j, role) in token.roles.iter().enumerate() {
                Role::parse(role).ok_or_else(|| {
                    invalid(
                        format!("auth.tokens[{i}].roles[{j}]"),
                        format!("{role:?} is not a role; use ingest, read, admin or csm"),
                    )
                })?;
            }
        }
        self.tenants.validate()?;
        self.ingestion.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn write(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("retain.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }

    #[test]
    fn defaults_are_valid() {
        let s = Settings::load_from(None, env(&[])).expect("defaults load");
        assert_eq!(s.server.listen, "127.0.0.1:50051");
        assert_eq!(s.database.url, "sqlite://retain.db?mode=rwc");
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            &dir,
            "[server]\nlisten = \"0.0.0.0:7000\"\nconcurrency_limit = 9\n",
        );
        let s = Settings::load_from(
            Some(&path),
            env(&[("RETAIN__SERVER__CONCURRENCY_LIMIT", "33")]),
        )
        .expect("loads");
        assert_eq!(s.server.listen, "0.0.0.0:7000");
        assert_eq!(s.server.concurrency_limit, 33);
        assert_eq!(s.server.max_message_bytes, 4 * 1024 * 1024);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = Settings::load_from(None, env(&[("RETAIN__SERVER__LISTEN", "nowhere")]))
            .expect_err("bad listen");
        assert!(err.to_string().contains("server.listen"), "{err}");

        let err = Settings::load_from(None, env(&[("RETAIN__SERVER__CONCURRENCY_LIMIT", "lots")]))
            .expect_err("bad number");
        assert!(err.to_string().contains("concurrency_limit"), "{err}");

        let err = Settings::load_from(None, env(&[("RETAIN__DATABASE__URL", "mysql://x")]))
            .expect_err("bad url");
        assert!(err.to_string().contains("database.url"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(&dir, "[server]\nconcurency_limit = 9\n");
        let err = Settings::load_from(Some(&path), env(&[])).expect_err("typo");
        assert!(err.to_string().contains("concurency_limit"), "{err}");
    }

    #[test]
    fn tokens_are_validated_with_their_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hash = "a".repeat(64);
        let path = write(
            &dir,
            &format!(
                "[[auth.tokens]]\nsha256 = \"{hash}\"\ntenant = \"acme\"\nroles = [\"read\", \"root\"]\n"
            ),
        );
        let err = Settings::load_from(Some(&path), env(&[])).expect_err("bad role");
        assert!(err.to_string().contains("auth.tokens[0].roles[1]"), "{err}");

        let path = write(
            &dir,
            "[[auth.tokens]]\nsha256 = \"abc\"\ntenant = \"acme\"\nroles = [\"read\"]\n",
        );
        let err = Settings::load_from(Some(&path), env(&[])).expect_err("bad hash");
        assert!(err.to_string().contains("auth.tokens[0].sha256"), "{err}");
    }

    #[test]
    fn reference_config_loads_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config/retain.toml");
        let s = Settings::load_from(Some(&path), env(&[])).expect("reference config is valid");
        let d = Settings::default();
        assert_eq!(s.server.listen, d.server.listen);
        assert_eq!(s.server.max_message_bytes, d.server.max_message_bytes);
        assert_eq!(s.server.concurrency_limit, d.server.concurrency_limit);
        assert_eq!(s.database.url, d.database.url);
        assert_eq!(s.telemetry.log_filter, d.telemetry.log_filter);
        assert_eq!(
            s.tenants.default.base_currency,
            d.tenants.default.base_currency
        );
        assert_eq!(
            s.tenants.default.onboarding_checklist,
            d.tenants.default.onboarding_checklist
        );
        let (i, di) = (&s.ingestion, &d.ingestion);
        assert_eq!(
            (
                i.max_batch_signals,
                i.max_future_seconds,
                i.max_live_age_days
            ),
            (
                di.max_batch_signals,
                di.max_future_seconds,
                di.max_live_age_days
            )
        );
        assert_eq!(
            (
                i.tenant_signals_per_second,
                i.tenant_burst_signals,
                i.stream_buffered_results
            ),
            (
                di.tenant_signals_per_second,
                di.tenant_burst_signals,
                di.stream_buffered_results
            )
        );
    }

    #[test]
    fn tenant_overrides_fall_back_to_the_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            &dir,
            "[tenants.default]\nbase_currency = \"EUR\"\n[[tenants.overrides]]\nid = \"acme\"\nbase_currency = \"GBP\"\n",
        );
        let s = Settings::load_from(Some(&path), env(&[])).expect("loads");
        assert_eq!(s.tenants.of("acme").base_currency, "GBP");
        assert_eq!(s.tenants.of("other").base_currency, "EUR");
        assert_eq!(
            s.tenants.of("acme").onboarding_checklist,
            TenantSettings::default().onboarding_checklist
        );

        let path = write(
            &dir,
            "[[tenants.overrides]]\nid = \"acme\"\nbase_currency = \"euro\"\n",
        );
        let err = Settings::load_from(Some(&path), env(&[])).expect_err("bad currency");
        assert!(
            err.to_string()
                .contains("tenants.overrides[0].base_currency"),
            "{err}"
        );
    }

    #[test]
    fn ingestion_limits_are_checked() {
        let err = Settings::load_from(
            None,
            env(&[("RETAIN__INGESTION__TENANT_BURST_SIGNALS", "10")]),
        )
        .expect_err("burst below a batch");
        assert!(
            err.to_string().contains("ingestion.tenant_burst_signals"),
            "{err}"
        );
    }

    #[test]
    fn missing_file_is_named() {
        let err = Settings::load_from(Some(Path::new("/nonexistent/retain.toml")), env(&[]))
            .expect_err("missing");
        assert!(
            err.to_string().contains("/nonexistent/retain.toml"),
            "{err}"
        );
    }
}
