//! The embedded platform: ingestion, metrics, health and notification
//! composed into one server on one port by the runtime's composition root
//! (`retain_runtime::launch`, the call each service's own binary makes for
//! its one service), on SQLite in the data folder unless the configuration
//! names a database.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use retain_runtime::auth::TokenSettings;
use retain_runtime::config::Value;
use retain_runtime::{Component, Known, Launch, Settings};
use sha2::Digest;
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
    launched: retain_runtime::Launched,
}

/// Every service there is: what `retain serve` runs and what `retain
/// migrate --check` checks the configuration against.
fn components() -> Vec<Component> {
    vec![
        Component::of::<retain_ingestion::Ingestion>(),
        Component::of::<retain_metrics::Metrics>(),
        Component::of::<retain_health::Health>(),
        Component::of::<retain_notification::Notification>(),
    ]
}

impl Platform {
    /// Starts the platform: settings (the embedded defaults < file <
    /// environment), the dev token, then the four services through the
    /// runtime's composition root, migrating the database first.
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
            email: String::new(),
        });
        let notification: retain_notification::NotificationSettings = settings.section()?;
        let outbox = (notification.email.transport == retain_notification::EmailTransport::Outbox)
            .then(|| PathBuf::from(&notification.email.outbox_dir));
        let database = retain_store::redact(&settings.database.url);
        let launch = Launch {
            name: "retain",
            components: components(),
            known: Known::All,
            migrate: true,
        };
        let launched = retain_runtime::launch(launch, settings, shutdown).await?;
        let currency = launched
            .tenants
            .of(DEV_TENANT)
            .base_currency
            .as_str()
            .to_owned();
        Ok(Self {
            addr: launched.addr,
            token,
            db: launched.db.clone(),
            outbox,
            database,
            currency,
            launched,
        })
    }

    /// `http://host:port`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the server stops (a signal, or the shutdown token).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.launched.wait().await
    }
}

/// The settings: the embedded defaults (the database, the email outbox in
/// the data folder; only warnings logged when quiet) under the file and the
/// environment, checked against every service.
fn settings(opts: &Options) -> anyhow::Result<Settings> {
    let in_data_dir = |name: &str| opts.data_dir.join(name).display().to_string();
    let mut defaults: Vec<(&str, Value)> = vec![
        (
            "database.url",
            format!("sqlite://{}?mode=rwc", in_data_dir("retain.db")).into(),
        ),
        (
            "notification.email.outbox_dir",
            in_data_dir("outbox").into(),
        ),
        // A fresh embedded install retries an email after a second, not
        // half a minute (an NPS email may wait for the account's contacts).
        ("notification.email.retry_initial_ms", 1_000_i64.into()),
    ];
    if opts.quiet {
        defaults.push(("telemetry.log_filter", "warn".into()));
    }
    let env_file = std::env::var_os("RETAIN_CONFIG").map(PathBuf::from);
    let file = opts.config.clone().or(env_file);
    let settings = Settings::load_layered(&defaults, file.as_deref(), std::env::vars())?;
    retain_runtime::launch::check(&settings, &components(), Known::All)?;
    if retain_store::backend_of(&settings.database.url)? == retain_store::DatabaseBackend::Sqlite {
        create_data_dir(opts)?;
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
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        // The folder holds the database, the dev token and the emails:
        // its owner's only.
        builder.mode(0o700);
    }
    builder
        .create(&opts.data_dir)
        .with_context(|| format!("creating the data folder {}", opts.data_dir.display()))
}

/// The data folder's dev token, created (random, 32 bytes hex) on first
/// use with its final mode — readable by its owner only, from the moment
/// it exists. An existing token file anyone else may read is refused: the
/// token acts for every role.
fn dev_token(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("dev-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
            anyhow::ensure!(
                mode & 0o077 == 0,
                "{} is readable by others (mode {mode:o}): the dev token acts for every role; \
                 run `chmod 600 {}` or delete it for a new one",
                path.display(),
                path.display()
            );
        }
        let token = token.trim().to_owned();
        if token.len() >= 32 {
            return Ok(token);
        }
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let write = |options: &std::fs::OpenOptions| -> std::io::Result<()> {
        use std::io::Write;
        options.open(&path)?.write_all(token.as_bytes())
    };
    write(&options).with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::Options;

    fn options(dir: &std::path::Path, config: &str) -> Options {
        let path = dir.join("retain.toml");
        std::fs::write(&path, config).unwrap();
        Options {
            data_dir: dir.join("data"),
            config: Some(path),
            quiet: false,
        }
    }

    #[test]
    fn the_embedded_defaults_sit_under_what_an_operator_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = super::settings(&options(dir.path(), "")).unwrap();
        assert!(
            s.database.url.contains("data/retain.db"),
            "{}",
            s.database.url
        );
        let n: retain_notification::NotificationSettings = s.section().unwrap();
        assert!(
            n.email.outbox_dir.ends_with("data/outbox"),
            "{}",
            n.email.outbox_dir
        );
        assert_eq!(n.email.retry_initial_ms, 1_000);

        // The built-in defaults written out are kept as written, not taken
        // for "unset".
        let builtin = retain_notification::EmailSettings::default();
        let written = format!(
            "[notification.email]\nretry_initial_ms = {}\noutbox_dir = {:?}\n",
            builtin.retry_initial_ms, builtin.outbox_dir
        );
        let s = super::settings(&options(dir.path(), &written)).unwrap();
        let n: retain_notification::NotificationSettings = s.section().unwrap();
        assert_eq!(n.email.retry_initial_ms, builtin.retry_initial_ms);
        assert_eq!(n.email.outbox_dir, builtin.outbox_dir);
    }

    #[test]
    fn every_section_and_tenant_key_of_every_service_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        for (config, key) in [
            ("[notifcation]\nx = 1\n", "notifcation"),
            ("[tenants.default]\nqueus = {}\n", "tenants.default.queus"),
            (
                "[metrics]\nrefresh_interval_seconds = 0\n",
                "metrics.refresh_interval_seconds",
            ),
            (
                "[[tenants.overrides]]\nid = \"acme\"\npayment_failed_churn_days = 999\n",
                "tenants.overrides[0].payment_failed_churn_days",
            ),
            (
                "[tenants.default.queues]\ncsm = [\"ana\"]\n",
                "tenants.default.queues.csm[0]",
            ),
        ] {
            let err = super::settings(&options(dir.path(), config)).unwrap_err();
            assert!(format!("{err:#}").contains(key), "{config}: {err:#}");
        }
        super::settings(&options(
            dir.path(),
            "[tenants.default]\npayment_failed_churn_days = 30\nqueues = { csm = [\"a@b.io\"] }\n",
        ))
        .unwrap();
    }

    #[test]
    fn the_dev_token_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = super::dev_token(dir.path()).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(super::dev_token(dir.path()).unwrap(), first);
    }

    #[cfg(unix)]
    #[test]
    fn the_dev_token_is_its_owners_only_and_a_wider_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        super::create_data_dir(&Options {
            data_dir: data.clone(),
            config: None,
            quiet: true,
        })
        .unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        super::dev_token(&data).unwrap();
        let token = data.join("dev-token");
        assert_eq!(mode(&token), 0o600);
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = super::dev_token(&data).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
