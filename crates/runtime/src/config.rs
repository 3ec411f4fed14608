//! Service configuration: built-in defaults < a TOML file (`--config` or
//! `RETAIN_CONFIG`) < environment variables `RETAIN__SECTION__KEY`.
//!
//! Every section denies unknown keys, so a typo stops start-up instead of
//! being ignored, and [`Settings::validate`] names the offending key. The
//! service sections and the service-owned tenant keys are known to the
//! process that runs the services (`crate::launch`): `retain` refuses an
//! unknown one, a one-service binary names it in a warning.
//! `deploy/config/retain.toml` is the commented reference.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::auth::AuthSettings;
pub use crate::section::{ConfigError, Section};
/// A configuration value as read (a service's section, an embedded default).
pub use config::Value;

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::invalid(key, reason)
}

/// Everything a Retain service reads at start-up.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
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
    /// The services' own sections (`[ingestion]`, …), kept as read and
    /// parsed by the service that owns them ([`Settings::section`]).
    #[serde(flatten)]
    pub sections: HashMap<String, config::Value>,
}

/// Environment variables ending so are taken as text, never parsed as a
/// number or boolean (secrets and addresses).
const TEXT_SUFFIXES: &[&str] = &["PASSWORD", "USERNAME", "_URL", "_HOST", "_FILE", "_FROM"];

/// Per-tenant product settings: `default` for every tenant, `overrides`
/// for named ones.
///
/// The runtime owns the keys every service reads (`base_currency`,
/// `onboarding_checklist`); a key only one service reads (notification's
/// `queues`) is kept here as written and parsed by that service through
/// [`Tenants::keys`]. Which keys exist is known to the process that runs the
/// services, so a typo is refused there ([`Settings::check_known`]).
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
#[serde(default)]
pub struct TenantSettings {
    /// ISO-4217 code every money amount must use (`EUR`).
    pub base_currency: String,
    /// Milestone keys of the onboarding checklist, in order.
    pub onboarding_checklist: Vec<String>,
    /// The keys a service owns, as written.
    #[serde(flatten)]
    pub keys: BTreeMap<String, config::Value>,
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
            keys: BTreeMap::new(),
        }
    }
}

/// A named tenant's settings; unset keys fall back to `tenants.default`.
#[derive(Debug, Clone, Deserialize)]
pub struct TenantOverride {
    /// Tenant id.
    pub id: String,
    /// Base currency.
    pub base_currency: Option<String>,
    /// Onboarding checklist.
    pub onboarding_checklist: Option<Vec<String>>,
    /// The keys a service owns, as written.
    #[serde(flatten)]
    pub keys: BTreeMap<String, config::Value>,
}

/// A tenant's shared product settings in domain types, parsed once at
/// start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// The currency every money amount must use.
    pub base_currency: retain_domain::Currency,
    /// Milestone keys of the onboarding checklist, in order.
    pub onboarding_checklist: Vec<String>,
}

/// Per-tenant keys one service owns (`queues` for notification): a struct
/// of those keys, its defaults, and the checks its types cannot express.
pub trait TenantKeys: DeserializeOwned + Default + Clone + Send + Sync + 'static {
    /// The keys, as written under `[tenants.default]`.
    const KEYS: &'static [&'static str];

    /// Checks values the types alone cannot; errors name `prefix.key`
    /// (`tenants.overrides[2].queues`).
    fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let _ = prefix;
        Ok(())
    }
}

/// Every tenant's value of one service's keys `T`: the default and the
/// overrides.
#[derive(Debug, Clone)]
pub struct PerTenant<T> {
    default: T,
    overrides: HashMap<String, T>,
}

impl<T> PerTenant<T> {
    /// The value of `tenant`.
    pub fn of(&self, tenant: &str) -> &T {
        self.overrides.get(tenant).unwrap_or(&self.default)
    }

    /// Every tenant has `value` (tests, benches).
    pub fn all(value: T) -> Self {
        Self {
            default: value,
            overrides: HashMap::new(),
        }
    }
}

/// A tenant's settings as one service reads them: the shared ones
/// (through `Deref`: `tenant.base_currency`) and the keys `T` it owns
/// (`tenant.own`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantView<T> {
    /// The settings every service reads.
    pub shared: Tenant,
    /// The keys the service owns.
    pub own: T,
}

impl<T> std::ops::Deref for TenantView<T> {
    type Target = Tenant;
    fn deref(&self) -> &Tenant {
        &self.shared
    }
}

/// Every tenant's settings, parsed: the shared keys in domain types, and
/// the service-owned keys as written, for [`Tenants::keys`].
#[derive(Debug, Clone)]
pub struct Tenants {
    shared: PerTenant<Tenant>,
    settings: TenantsSettings,
}

impl Tenants {
    /// The shared settings of `tenant`.
    pub fn of(&self, tenant: &str) -> &Tenant {
        self.shared.of(tenant)
    }

    /// Every tenant's value of the keys `T` owned by one service: an
    /// override's unset keys fall back to `tenants.default`, whose unset
    /// keys are `T`'s defaults. Errors name the key.
    pub fn keys<T: TenantKeys>(&self) -> Result<PerTenant<T>, ConfigError> {
        self.with_keys(|_, keys: T| keys)
    }

    /// Every tenant's settings as a service owning the keys `T` reads
    /// them: [`Tenants::keys`] beside the shared settings.
    pub fn views<T: TenantKeys>(&self) -> Result<PerTenant<TenantView<T>>, ConfigError> {
        self.with_keys(|shared, own: T| TenantView {
            shared: shared.clone(),
            own,
        })
    }

    /// [`Tenants::keys`], each tenant's value combined with its shared
    /// settings by `combine`.
    fn with_keys<T: TenantKeys, U>(
        &self,
        combine: impl Fn(&Tenant, T) -> U,
    ) -> Result<PerTenant<U>, ConfigError> {
        let parse =
            |prefix: &str, table: BTreeMap<String, config::Value>| -> Result<T, ConfigError> {
                let table: config::Map<String, config::Value> = table
                    .into_iter()
                    .filter(|(k, _)| T::KEYS.contains(&k.as_str()))
                    .collect();
                let value = config::Value::new(None, config::ValueKind::Table(table));
                let keys = T::deserialize(value).map_err(|e| invalid(prefix, e.to_string()))?;
                keys.validate(prefix)?;
                Ok(keys)
            };
        let default = parse("tenants.default", self.settings.default.keys.clone())?;
        let default = combine(&self.shared.default, default);
        let mut overrides = HashMap::new();
        for (i, o) in self.settings.overrides.iter().enumerate() {
            let mut table = self.settings.default.keys.clone();
            table.extend(o.keys.clone());
            let keys = parse(&format!("tenants.overrides[{i}]"), table)?;
            overrides.insert(o.id.clone(), combine(self.of(&o.id), keys));
        }
        Ok(PerTenant { default, overrides })
    }
}

impl TenantsSettings {
    /// Parses every tenant's shared settings into domain types; an
    /// override's unset keys fall back to `tenants.default`.
    pub fn parse(&self) -> Result<Tenants, ConfigError> {
        self.validate()?;
        let currency = |key: String, code: &str| {
            retain_domain::Currency::parse(code).map_err(|e| invalid(key, e.to_string()))
        };
        let default = Tenant {
            base_currency: currency(
                "tenants.default.base_currency".into(),
                &self.default.base_currency,
            )?,
            onboarding_checklist: self.default.onboarding_checklist.clone(),
        };
        let mut overrides = HashMap::new();
        for (i, o) in self.overrides.iter().enumerate() {
            let tenant = Tenant {
                base_currency: match &o.base_currency {
                    Some(code) => currency(format!("tenants.overrides[{i}].base_currency"), code)?,
                    None => default.base_currency,
                },
                onboarding_checklist: o
                    .onboarding_checklist
                    .clone()
                    .unwrap_or_else(|| default.onboarding_checklist.clone()),
            };
            overrides.insert(o.id.clone(), tenant);
        }
        Ok(Tenants {
            shared: PerTenant { default, overrides },
            settings: self.clone(),
        })
    }

    /// Every service-owned key written anywhere under `[tenants]`, with
    /// where it is written (`tenants.overrides[1].queus`).
    fn owned_keys(&self) -> impl Iterator<Item = (String, &str)> {
        let default = self
            .default
            .keys
            .keys()
            .map(|k| (format!("tenants.default.{k}"), k.as_str()));
        let overrides = self.overrides.iter().enumerate().flat_map(|(i, o)| {
            o.keys
                .keys()
                .map(move |k| (format!("tenants.overrides[{i}].{k}"), k.as_str()))
        });
        default.chain(overrides)
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
    /// How long a client connection may live before the server asks the
    /// client to reconnect (HTTP/2 GOAWAY; calls in flight finish first),
    /// in milliseconds; 0 = for ever. Behind a Kubernetes Service one
    /// HTTP/2 connection pins a client to one pod: an age makes long-lived
    /// clients spread over replicas added since they connected.
    pub max_connection_age_ms: u64,
    /// TLS; absent means plaintext (inside a mesh or on loopback).
    pub tls: Option<TlsSettings>,
    /// A file the server writes its bound address to (`127.0.0.1:41234`)
    /// once it listens: how a script or test learns the port it got after
    /// asking for port 0.
    pub address_file: Option<PathBuf>,
    /// Open streams (`WatchTasks`, `WatchBandChanges`, `StreamSignals`) on
    /// the replica, all tenants together; streams do not count against
    /// `concurrency_limit`.
    pub max_streams: usize,
    /// Open streams of one tenant on the replica.
    pub max_streams_per_tenant: usize,
    /// With `max_connection_age_ms` set, a stream ends (`UNAVAILABLE`: the
    /// client reconnects with its cursor) this long after the connection's
    /// age, in milliseconds.
    pub stream_age_grace_ms: u64,
    /// Serve gRPC server reflection (the API's schema, to anyone who can
    /// connect, without a token): on by default, for `grpcurl` and a
    /// newcomer; the production overlay turns it off.
    pub reflection: bool,
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
            max_connection_age_ms: 0,
            tls: None,
            address_file: None,
            max_streams: 256,
            max_streams_per_tenant: 16,
            stream_age_grace_ms: 30_000,
            reflection: true,
        }
    }
}

impl ServerSettings {
    /// The limits on open streams these settings give.
    pub fn stream_limits(&self) -> crate::streams::StreamLimits {
        crate::streams::StreamLimits {
            total: self.max_streams,
            per_tenant: self.max_streams_per_tenant,
            max_age: (self.max_connection_age_ms > 0).then(|| {
                Duration::from_millis(self.max_connection_age_ms + self.stream_age_grace_ms)
            }),
        }
    }

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
        Self::load_layered(&[], file, env)
    }

    /// [`Settings::load_from`] over other defaults: each `(key, value)` of
    /// `defaults` (`("database.url", "sqlite://…")`) replaces the built-in
    /// default of its dotted key, and the file and the environment still
    /// override it. A process that runs Retain its own way (the embedded
    /// `retain serve`) states its defaults so; a value an operator writes is
    /// never second-guessed, even when it equals the built-in default.
    pub fn load_layered(
        defaults: &[(&str, config::Value)],
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        for (key, value) in defaults {
            builder = builder.set_default(*key, value.clone())?;
        }
        if let Some(path) = file {
            if !path.is_file() {
                return Err(invalid(
                    "--config",
                    format!("{} does not exist", path.display()),
                ));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        // Numbers and booleans are parsed from the environment (the flattened
        // sections need typed values), except for keys that are always text
        // — a password "007" or a user "1e3" must arrive as written.
        let (text, typed): (config::Map<String, String>, config::Map<String, String>) = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("RETAIN__"))
            .partition(|(k, _)| TEXT_SUFFIXES.iter().any(|s| k.ends_with(s)));
        for (vars, parse) in [(typed, true), (text, false)] {
            builder = builder.add_source(
                config::Environment::with_prefix("RETAIN")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(parse)
                    .source(Some(vars)),
            );
        }
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.auth.read_tokens_file()?;
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
        if self.server.max_streams == 0 {
            return Err(invalid("server.max_streams", "must be at least 1"));
        }
        if self.server.max_streams_per_tenant == 0 {
            return Err(invalid(
                "server.max_streams_per_tenant",
                "must be at least 1",
            ));
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
        self.auth.validate()?;
        self.tenants.validate()?;
        Ok(())
    }

    /// Every service section and service-owned tenant key written in these
    /// settings that none of `sections` and `tenant_keys` names, with where
    /// it is written (`ingestoin`, `tenants.default.queus`). The process
    /// that runs the services knows which exist; see [`crate::launch`].
    pub fn unknown_keys(&self, sections: &[&str], tenant_keys: &[&str]) -> Vec<String> {
        let mut unknown: Vec<String> = self
            .sections
            .keys()
            .filter(|k| !sections.contains(&k.as_str()))
            .cloned()
            .collect();
        unknown.sort();
        unknown.extend(
            self.tenants
                .owned_keys()
                .filter(|(_, k)| !tenant_keys.contains(k))
                .map(|(at, _)| at),
        );
        unknown
    }

    /// The service section `S` (`[ingestion]`): its defaults overridden by
    /// the file and the environment, validated. An absent section is the
    /// defaults.
    pub fn section<S: Section>(&self) -> Result<S, ConfigError> {
        let section: S = match self.sections.get(S::KEY) {
            None => S::default(),
            Some(value) => {
                S::deserialize(value.clone()).map_err(|e| invalid(S::KEY, e.to_string()))?
            }
        };
        section.validate()?;
        Ok(section)
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

    // The token list can live in its own file (a mounted Secret), given
    // by path in the configuration or the environment; its tokens add to
    // the inline ones, and its mistakes are named by file and index.
    #[test]
    fn tokens_can_come_from_a_file_of_their_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = |hash: char, tenant: &str| {
            format!(
                "[[tokens]]\nsha256 = \"{}\"\ntenant = \"{tenant}\"\nroles = [\"read\"]\n",
                hash.to_string().repeat(64)
            )
        };
        let file = dir.path().join("tokens.toml");
        std::fs::write(&file, token('b', "globex") + &token('c', "initech")).expect("write");
        let config = write(
            &dir,
            &token('a', "acme").replace("[[tokens]]", "[[auth.tokens]]"),
        );
        let vars = env(&[("RETAIN__AUTH__TOKENS_FILE", file.to_str().expect("utf-8"))]);
        let s = Settings::load_from(Some(&config), vars.clone()).expect("valid");
        let tenants: Vec<&str> = s.auth.tokens.iter().map(|t| t.tenant.as_str()).collect();
        assert_eq!(tenants, ["acme", "globex", "initech"]);

        std::fs::write(&file, token('b', "globex") + &token('a', "acme")).expect("write");
        let err = Settings::load_from(Some(&config), vars.clone()).expect_err("listed twice");
        let text = err.to_string();
        assert!(
            text.contains("tokens.toml tokens[1].sha256") && text.contains("auth.tokens[0]"),
            "{text}"
        );

        std::fs::write(&file, "[[tokens]]\nsha256 = 1\n").expect("write");
        let err = Settings::load_from(Some(&config), vars).expect_err("not a token");
        assert!(err.to_string().contains("auth.tokens_file"), "{err}");

        let missing = env(&[("RETAIN__AUTH__TOKENS_FILE", "/nonexistent/tokens.toml")]);
        let err = Settings::load_from(Some(&config), missing).expect_err("missing");
        assert!(
            err.to_string()
                .contains("/nonexistent/tokens.toml: does not exist"),
            "{err}"
        );
    }

    // Secrets and addresses from the environment arrive as written (a
    // password "007" is not the number 7); numbers still parse.
    #[test]
    fn text_from_the_environment_stays_text() {
        let vars = env(&[
            ("RETAIN__NOTIFICATION__EMAIL__SMTP_PASSWORD", "007"),
            ("RETAIN__NOTIFICATION__EMAIL__SMTP_USERNAME", "1e3"),
            ("RETAIN__SERVER__CONCURRENCY_LIMIT", "64"),
        ]);
        let s = Settings::load_from(None, vars).expect("valid");
        assert_eq!(s.server.concurrency_limit, 64);
        let email = &s.sections["notification"];
        let email: HashMap<String, config::Value> =
            email.clone().into_table().expect("a table")["email"]
                .clone()
                .into_table()
                .expect("a table");
        assert_eq!(
            email["smtp_password"].clone().into_string().expect("text"),
            "007"
        );
        assert_eq!(
            email["smtp_username"].clone().into_string().expect("text"),
            "1e3"
        );
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
        assert_eq!(
            s.unknown_keys(
                &["ingestion", "metrics", "health", "notification"],
                &[
                    "payment_failed_churn_days",
                    "queues",
                    "email_from",
                    "email_reply_to",
                    "email_quota_per_hour",
                    "email_quota_per_day",
                ]
            ),
            Vec::<String>::new()
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
        let tenants = s.tenants.parse().expect("parses");
        assert_eq!(tenants.of("acme").base_currency.as_str(), "GBP");
        assert_eq!(tenants.of("other").base_currency.as_str(), "EUR");
        assert_eq!(
            tenants.of("acme").onboarding_checklist,
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

    #[derive(Debug, Clone, Default, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Days {
        days: u32,
        queues: BTreeMap<String, Vec<String>>,
    }
    impl TenantKeys for Days {
        const KEYS: &'static [&'static str] = &["days", "queues"];
        fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
            if self.days > 365 {
                return Err(invalid(format!("{prefix}.days"), "must be 0 to 365"));
            }
            Ok(())
        }
    }

    #[test]
    fn service_tenant_keys_fall_back_per_key_and_name_their_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            &dir,
            "[tenants.default]\ndays = 30\nqueues = { csm = [\"a@b.io\"] }\n\
             [[tenants.overrides]]\nid = \"acme\"\ndays = 0\n\
             [[tenants.overrides]]\nid = \"beta\"\nqueues = { x = [] }\n",
        );
        let s = Settings::load_from(Some(&path), env(&[])).expect("loads");
        let days = s
            .tenants
            .parse()
            .expect("parses")
            .keys::<Days>()
            .expect("keys");
        assert_eq!(days.of("other").days, 30);
        assert_eq!(days.of("acme").days, 0, "the override's value");
        assert_eq!(
            days.of("acme").queues["csm"],
            ["a@b.io"],
            "unset: the default's"
        );
        assert!(
            !days.of("beta").queues.contains_key("csm"),
            "a key is replaced whole"
        );
        assert_eq!(days.of("beta").days, 30);
        let none = TenantsSettings::default().parse().expect("parses");
        assert_eq!(none.keys::<Days>().expect("defaults").of("any").days, 0);

        let path = write(&dir, "[[tenants.overrides]]\nid = \"acme\"\ndays = 366\n");
        let s =
            Settings::load_from(Some(&path), env(&[])).expect("loads: days is not the runtime's");
        let err = s
            .tenants
            .parse()
            .expect("parses")
            .keys::<Days>()
            .expect_err("too many");
        assert!(
            err.to_string().contains("tenants.overrides[0].days"),
            "{err}"
        );
        let path = write(&dir, "[tenants.default]\ndays = \"many\"\n");
        let s = Settings::load_from(Some(&path), env(&[])).expect("loads");
        let err = s
            .tenants
            .parse()
            .expect("parses")
            .keys::<Days>()
            .expect_err("not a number");
        assert!(err.to_string().contains("tenants.default"), "{err}");
    }

    #[test]
    fn unknown_sections_and_tenant_keys_are_named_where_they_are_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(
            &dir,
            "[ingestoin]\nx = 1\n[metrics]\ny = 2\n[tenants.default]\nqueus = {}\n\
             [[tenants.overrides]]\nid = \"acme\"\nqueues = {}\ndayz = 3\n",
        );
        let s = Settings::load_from(Some(&path), env(&[])).expect("loads");
        assert_eq!(
            s.unknown_keys(&["metrics"], &["queues"]),
            [
                "ingestoin",
                "tenants.default.queus",
                "tenants.overrides[0].dayz"
            ]
        );
    }

    #[test]
    fn service_sections_are_kept_for_their_service() {
        let dir = tempfile::tempdir().expect("tempdir");
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        struct Probe {
            limit: u32,
        }
        impl Section for Probe {
            const KEY: &'static str = "metrics";
            fn validate(&self) -> Result<(), ConfigError> {
                if self.limit > 10 {
                    return Err(invalid("metrics.limit", "must be at most 10"));
                }
                Ok(())
            }
        }
        let path = write(&dir, "[metrics]\nlimit = 3\n");
        let s = Settings::load_from(Some(&path), env(&[("RETAIN__METRICS__LIMIT", "7")]))
            .expect("loads");
        assert_eq!(s.section::<Probe>().expect("parses").limit, 7);
        let s = Settings::load_from(None, env(&[("RETAIN__METRICS__LIMIT", "70")])).expect("loads");
        let err = s.section::<Probe>().expect_err("too big");
        assert!(err.to_string().contains("metrics.limit"), "{err}");
        let s = Settings::load_from(None, env(&[("RETAIN__METRICS__LIMT", "1")])).expect("loads");
        let err = s.section::<Probe>().expect_err("typo inside a section");
        assert!(err.to_string().contains("limt"), "{err}");
        assert_eq!(
            Settings::default()
                .section::<Probe>()
                .expect("defaults")
                .limit,
            0
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
