//! The embedded platform: ingestion, metrics, health and notification
//! composed into one server on one port — through the same
//! `Service::build` and `retain_runtime::serve` each service's own binary
//! uses — on SQLite in the data folder unless the configuration names a
//! database.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use retain_runtime::auth::{Authenticator, TokenSettings};
use retain_runtime::config::DatabaseSettings;
use retain_runtime::server::{ServeOptions, ServerError};
use retain_runtime::{Clock, Context, Service, Settings};
use sha2::Digest;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The tenant the dev token acts for.
pub const DEV_TENANT: &str = "demo";

/// Where the embedded platform keeps its data, and how it was configured.
#[derive(Debug, Clone)]
pub struct Options {
    /// The data folder: the SQLite file, the dev token, the email outbox.
    pub data_dir: PathBuf,
    /// A configuration file, if any.
    pub config: Option<PathBuf>,
    /// Logs to show when the configuration sets no filter of its own.
    pub quiet: bool,
}

/// The running platform.
pub struct Platform {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The dev token (every role, tenant [`DEV_TENANT`]).
    pub token: String,
    /// The database (bus backlog checks).
    pub db: sea_orm::DatabaseConnection,
    /// Where emails are written (when the transport is the outbox).
    pub outbox: Option<PathBuf>,
    /// The database, for display (password hidden).
    pub database: String,
    /// The dev tenant's base currency.
    pub currency: String,
    server: JoinHandle<Result<(), ServerError>>,
    _telemetry: retain_runtime::telemetry::TelemetryGuard,
}

impl Platform {
    /// Starts the platform: settings (defaults < file < environment), the
    /// dev token, the database (migrated), the four services, the server.
    pub async fn start(opts: &Options, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let mut settings = settings(opts)?;
        create_data_dir(opts)?;
        let token = dev_token(&opts.data_dir)?;
        settings.auth.tokens.push(TokenSettings {
            sha256: hex::encode(sha2::Sha256::digest(token.as_bytes())),
            tenant: DEV_TENANT.into(),
            roles: ["ingest", "read", "admin", "csm"]
                .map(String::from)
                .to_vec(),
            name: "retain dev token".into(),
        });
        let mut notification: retain_notification::NotificationSettings = settings.section()?;
        let default_outbox = retain_notification::EmailSettings::default().outbox_dir;
        if notification.email.outbox_dir == default_outbox {
            notification.email.outbox_dir = opts.data_dir.join("outbox").display().to_string();
        }
        // A fresh embedded install retries an email after a second, not
        // half a minute (an NPS email may wait for the account's contacts).
        if notification.email.retry_initial_ms
            == retain_notification::EmailSettings::default().retry_initial_ms
        {
            notification.email.retry_initial_ms = 1_000;
        }
        let currency = settings
            .tenants
            .parse()?
            .of(DEV_TENANT)
            .base_currency
            .as_str()
            .to_owned();
        let outbox = (notification.email.transport == retain_notification::EmailTransport::Outbox)
            .then(|| PathBuf::from(&notification.email.outbox_dir));

        let telemetry = retain_runtime::telemetry::init(&settings.telemetry, "retain")?;
        let database = retain_store::redact(&settings.database.url);
        let db = retain_store::connect(&settings.database.url, &settings.database.pool())
            .await
            .with_context(|| format!("connecting to {database}"))?;
        retain_store::migrate(&db).await?;

        let ctx = Context::new(db.clone(), settings.clone(), Clock::system());
        let services = retain_ingestion::Ingestion::build(&ctx, settings.section()?)?
            .merge(retain_metrics::Metrics::build(&ctx, settings.section()?)?)
            .merge(retain_health::Health::build(&ctx, settings.section()?)?)
            .merge(retain_notification::Notification::build(
                &ctx,
                notification,
            )?);
        let addr = settings.server.listen_addr()?;
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("binding {addr} (is Retain already running? set RETAIN__SERVER__LISTEN to use another address)")
        })?;
        let addr = listener.local_addr()?;
        if let Some(path) = &settings.server.address_file {
            retain_runtime::cli::write_address(path, &addr.to_string())
                .with_context(|| format!("writing server.address_file {}", path.display()))?;
        }
        let serve_opts = ServeOptions {
            settings: settings.server.clone(),
            auth: Arc::new(Authenticator::from_settings(&settings.auth)?),
            db: db.clone(),
            health_interval: Duration::from_secs(5),
            bus_metrics: (!settings.telemetry.otlp_endpoint.is_empty())
                .then_some(Duration::from_secs(15)),
        };
        let server = tokio::spawn(retain_runtime::serve(
            listener,
            serve_opts,
            services,
            shutdown.clone(),
        ));
        Ok(Self {
            addr,
            token,
            db,
            outbox,
            database,
            currency,
            server,
            _telemetry: telemetry,
        })
    }

    /// `http://host:port`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the server stops (a signal, or [`Platform::shutdown`]).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.server.await??;
        Ok(())
    }
}

/// The settings (defaults < file < environment), with the database in
/// the data folder unless configured, and only warnings logged when quiet.
fn settings(opts: &Options) -> anyhow::Result<Settings> {
    let mut settings = Settings::load(opts.config.as_deref())?;
    if settings.database.url == DatabaseSettings::default().url {
        create_data_dir(opts)?;
        settings.database.url = format!(
            "sqlite://{}?mode=rwc",
            opts.data_dir.join("retain.db").display()
        );
    }
    if opts.quiet && settings.telemetry.log_filter == "info" {
        settings.telemetry.log_filter = "warn".into();
    }
    Ok(settings)
}

/// Applies the migrations to the configured database; returns it (password
/// hidden).
pub async fn migrate(opts: &Options) -> anyhow::Result<String> {
    let (db, database, _telemetry) = connect(opts).await?;
    retain_store::migrate(&db).await?;
    Ok(database)
}

/// Waits up to `wait` for every migration to be applied by another
/// process, applying none; returns the database (password hidden), or the
/// error naming the pending migrations once `wait` has passed.
///
/// An unreachable database is waited for the same way: in Kubernetes the
/// init container may start before the database answers, and failing at
/// once would crash-loop.
pub async fn wait_migrated(opts: &Options, wait: Duration) -> anyhow::Result<String> {
    let (settings, database, _telemetry) = prepare(opts)?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let checked =
            match retain_store::connect(&settings.database.url, &settings.database.pool()).await {
                Ok(db) => retain_store::check_migrated(&db).await,
                Err(e) => Err(e),
            };
        match checked {
            Ok(()) => return Ok(database),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::info!(database, "waiting for the migrations: {e}");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(anyhow::Error::from(e).context(format!("checking {database}"))),
        }
    }
}

/// What a database command starts from: the settings, the database's
/// name (password hidden), and logs.
fn prepare(
    opts: &Options,
) -> anyhow::Result<(Settings, String, retain_runtime::telemetry::TelemetryGuard)> {
    let settings = settings(opts)?;
    let telemetry = retain_runtime::telemetry::init(&settings.telemetry, "retain")?;
    let database = retain_store::redact(&settings.database.url);
    Ok((settings, database, telemetry))
}

/// The configured database, connected; its name (password hidden); logs.
async fn connect(
    opts: &Options,
) -> anyhow::Result<(
    sea_orm::DatabaseConnection,
    String,
    retain_runtime::telemetry::TelemetryGuard,
)> {
    let (settings, database, telemetry) = prepare(opts)?;
    let db = retain_store::connect(&settings.database.url, &settings.database.pool())
        .await
        .with_context(|| format!("connecting to {database}"))?;
    Ok((db, database, telemetry))
}

/// Creates the data folder (only a command that keeps something there
/// does: `migrate` on PostgreSQL runs on a read-only file system).
fn create_data_dir(opts: &Options) -> anyhow::Result<()> {
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("creating the data folder {}", opts.data_dir.display()))
}

/// The data folder's dev token, created (random, 32 bytes hex, readable
/// by its owner only) on first use.
fn dev_token(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("dev-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim().to_owned();
        if token.len() >= 32 {
            return Ok(token);
        }
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    std::fs::write(&path, &token).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn the_dev_token_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = super::dev_token(dir.path()).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(super::dev_token(dir.path()).unwrap(), first);
    }
}
