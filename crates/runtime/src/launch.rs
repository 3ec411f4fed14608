//! The composition root: one way to run any set of Retain services in one
//! process. A service binary runs its one service ([`crate::cli::run`]);
//! the all-in-one `retain serve` runs all four; both go through
//! [`launch`], in this order:
//!
//! 1. check the settings of every service it runs ([`check`]): each
//!    service's section and per-tenant keys parse and validate, and a
//!    section or tenant key no service of the process knows is refused
//!    (or, for a process that runs only some of the services, named in the
//!    log and left to the others);
//! 2. start telemetry, connect the database, and migrate it or check it is
//!    migrated;
//! 3. build each service ([`crate::Service::build`]: nothing starts) over
//!    one [`Context`], and merge them;
//! 4. bind the listener, write the address file, and serve until the
//!    shutdown token is cancelled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::clock::Clock;
use crate::config::{ConfigError, Settings, TenantKeys, Tenants};
use crate::section::Section;
use crate::server::{ServeOptions, ServerError, Services, serve};
use crate::service::{Context, Service};

/// One service as the composition root sees it: its names, the keys of
/// the configuration it owns, and how it is checked and built.
#[derive(Clone, Copy)]
pub struct Component {
    /// The service's binary name (`retain-ingestion`).
    pub name: &'static str,
    /// Its section (`ingestion`).
    pub section: &'static str,
    /// The per-tenant keys it owns (`queues`).
    pub tenant_keys: &'static [&'static str],
    check: fn(&Settings, &Tenants) -> Result<(), ConfigError>,
    build: fn(&Context) -> anyhow::Result<Services>,
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.name)
            .field("section", &self.section)
            .field("tenant_keys", &self.tenant_keys)
            .finish_non_exhaustive()
    }
}

impl Component {
    /// Service `S`.
    pub fn of<S: Service>() -> Self {
        Self {
            name: S::NAME,
            section: <S::Settings as Section>::KEY,
            tenant_keys: <S::TenantKeys as TenantKeys>::KEYS,
            check: |settings, tenants| {
                settings.section::<S::Settings>()?;
                tenants.keys::<S::TenantKeys>()?;
                Ok(())
            },
            build: |ctx| S::build(ctx, ctx.settings.section()?),
        }
    }
}

/// How strictly [`check`] treats configuration no component knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// The components are every service there is (`retain`): an unknown
    /// section or tenant key is a typo and an error.
    All,
    /// The components are some of the services (one service's binary,
    /// which shares its file with the others): unknown keys are named in
    /// the log and left to the processes that run the other services
    /// (`retain migrate --check`, every pod's init container, checks them
    /// all).
    Some,
}

/// Checks `settings` for `components` (step 1 of [`launch`]): every
/// component's section and tenant keys parse and validate, and keys no
/// component knows are refused ([`Known::All`]) or logged ([`Known::Some`]).
pub fn check(settings: &Settings, components: &[Component], known: Known) -> anyhow::Result<()> {
    let tenants = settings.tenants.parse()?;
    for c in components {
        (c.check)(settings, &tenants)?;
    }
    let sections: Vec<&str> = components.iter().map(|c| c.section).collect();
    let tenant_keys: Vec<&str> = components
        .iter()
        .flat_map(|c| c.tenant_keys)
        .copied()
        .collect();
    let unknown = settings.unknown_keys(&sections, &tenant_keys);
    match (unknown.first(), known) {
        (None, _) => Ok(()),
        (Some(key), Known::All) => Err(ConfigError::invalid(
            key.clone(),
            format!(
                "unknown key; the sections are server, database, telemetry, auth, tenants and {}, \
                 and the tenant keys base_currency, onboarding_checklist and {}",
                sections.join(", "),
                tenant_keys.join(", ")
            ),
        )
        .into()),
        (Some(_), Known::Some) => {
            tracing::warn!(
                keys = ?unknown,
                "configuration this service does not read: keys of the other services, or typos \
                 (`retain migrate --check` refuses a typo by name)"
            );
            Ok(())
        }
    }
}

/// What [`launch`] runs and how.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The process's name (logs, telemetry).
    pub name: &'static str,
    /// The services it runs.
    pub components: Vec<Component>,
    /// Whether they are all the services there are.
    pub known: Known,
    /// Whether start-up applies pending migrations (`true`: the process
    /// owns the database — SQLite, or the embedded platform); otherwise it
    /// refuses to start on a schema with pending migrations.
    pub migrate: bool,
}

/// The running process: where it listens and how to wait for it.
pub struct Launched {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The database pool it runs on.
    pub db: sea_orm::DatabaseConnection,
    /// Every tenant's shared settings.
    pub tenants: Arc<Tenants>,
    server: JoinHandle<Result<(), ServerError>>,
    _telemetry: crate::telemetry::TelemetryGuard,
}

impl std::fmt::Debug for Launched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launched")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Launched {
    /// Waits until the server stops (the shutdown token was cancelled, or a
    /// worker failed).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.server.await??;
        Ok(())
    }
}

/// Runs `launch.components` over `settings` until `shutdown` is cancelled;
/// returns once the server listens (the steps are in the module's doc).
pub async fn launch(
    launch: Launch,
    settings: Settings,
    shutdown: CancellationToken,
) -> anyhow::Result<Launched> {
    let telemetry = crate::telemetry::init(&settings.telemetry, launch.name)?;
    check(&settings, &launch.components, launch.known)?;

    let database = retain_store::redact(&settings.database.url);
    let db = retain_store::connect(&settings.database.url, &settings.database.pool())
        .await
        .with_context(|| format!("connecting to {database}"))?;
    if launch.migrate {
        retain_store::migrate(&db).await?;
    } else {
        retain_store::check_migrated(&db).await?;
    }

    let ctx = Context::new(db.clone(), settings.clone(), Clock::system())?;
    let mut services = Services::new();
    for c in &launch.components {
        services = services.merge((c.build)(&ctx).with_context(|| format!("building {}", c.name))?);
    }

    let addr = settings.server.listen_addr()?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "binding {addr} (is it already in use? set server.listen or RETAIN__SERVER__LISTEN)"
        )
    })?;
    let addr = listener.local_addr()?;
    if let Some(path) = &settings.server.address_file {
        crate::cli::write_address(path, &addr.to_string())
            .with_context(|| format!("writing server.address_file {}", path.display()))?;
    }
    let opts = ServeOptions {
        settings: settings.server.clone(),
        auth: Arc::new(Authenticator::from_settings(&settings.auth)?),
        db: db.clone(),
        // Readiness notices a database outage within about 3 s.
        health_interval: Duration::from_secs(1),
        bus_metrics: (!settings.telemetry.otlp_endpoint.is_empty())
            .then_some(Duration::from_secs(15)),
    };
    tracing::info!(%addr, services = ?services.names(), workers = ?services.worker_names(), "{} listening", launch.name);
    let server = tokio::spawn(serve(listener, opts, services, shutdown));
    Ok(Launched {
        addr,
        db,
        tenants: ctx.tenants.clone(),
        server,
        _telemetry: telemetry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct ProbeSettings {
        limit: u32,
    }
    impl Section for ProbeSettings {
        const KEY: &'static str = "probe";
        fn validate(&self) -> Result<(), ConfigError> {
            if self.limit > 10 {
                return Err(ConfigError::invalid("probe.limit", "must be at most 10"));
            }
            Ok(())
        }
    }
    struct Probe;
    impl Service for Probe {
        const NAME: &'static str = "retain-probe";
        const ABOUT: &'static str = "a test service";
        type Settings = ProbeSettings;
        type TenantKeys = crate::NoTenantKeys;
        fn build(_: &Context, _: ProbeSettings) -> anyhow::Result<Services> {
            Ok(Services::new())
        }
    }

    fn settings(text: &str) -> Settings {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("r.toml");
        std::fs::write(&path, text).expect("write");
        Settings::load_from(Some(&path), Vec::new()).expect("loads")
    }

    #[test]
    fn all_services_refuse_unknown_keys_and_some_leave_them_to_the_others() {
        let components = [Component::of::<Probe>()];
        let s = settings("[probe]\nlimit = 3\n[other]\nx = 1\n[tenants.default]\nqueues = {}\n");
        check(&s, &components, Known::Some).expect("left to the other services");
        let err = check(&s, &components, Known::All).expect_err("unknown to every service");
        assert!(err.to_string().contains("`other`"), "{err}");
        let s = settings("[probe]\nlimit = 3\n[tenants.default]\nqueues = {}\n");
        let err = check(&s, &components, Known::All).expect_err("unknown tenant key");
        assert!(err.to_string().contains("tenants.default.queues"), "{err}");

        let s = settings("[probe]\nlimit = 11\n");
        for known in [Known::Some, Known::All] {
            let err = check(&s, &components, known).expect_err("its own section is checked");
            assert!(err.to_string().contains("probe.limit"), "{err}");
        }
    }
}
