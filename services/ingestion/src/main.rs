//! `retain-ingestion`: the ingestion service as its own process.
//!
//! ```text
//! retain-ingestion [--config FILE] [serve]   run the gRPC server (default)
//! retain-ingestion [--config FILE] migrate   apply the database migrations and exit
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use retain_runtime::auth::Authenticator;
use retain_runtime::config::Settings;
use retain_runtime::server::{ServeOptions, Services, serve, shutdown_on_signals};

const USAGE: &str = "usage: retain-ingestion [--config FILE] [serve|migrate]

  serve     run the IngestionService gRPC server (default)
  migrate   apply the database migrations and exit

Configuration: built-in defaults < --config FILE (or RETAIN_CONFIG) <
RETAIN__SECTION__KEY environment variables; see deploy/config/retain.toml.";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config: Option<PathBuf> = None;
    let mut command = String::from("serve");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => {
                config = Some(args.next().context("--config needs a file")?.into());
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "serve" | "migrate" => command = arg,
            other => anyhow::bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    let settings = Settings::load(config.as_deref())?;
    let _telemetry = retain_runtime::telemetry::init(&settings.telemetry, "retain-ingestion")?;
    let db = retain_store::connect(&settings.database.url, &settings.database.pool())
        .await
        .with_context(|| {
            format!(
                "connecting to {}",
                retain_store::redact(&settings.database.url)
            )
        })?;
    if command == "migrate" {
        retain_store::migrate(&db).await?;
        tracing::info!("migrations applied");
        return Ok(());
    }
    if retain_store::backend_of(&settings.database.url)? == retain_store::DatabaseBackend::Sqlite {
        // One process owns a SQLite file: nobody else will migrate it.
        retain_store::migrate(&db).await?;
    }
    let addr = settings.server.listen_addr()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding server.listen = {addr}"))?;
    let ingestion = retain_ingestion::Ingestion::new(db.clone(), &settings);
    let opts = ServeOptions {
        settings: settings.server.clone(),
        auth: Arc::new(Authenticator::from_settings(&settings.auth)?),
        db,
        health_interval: Duration::from_secs(5),
    };
    tracing::info!(%addr, "retain-ingestion listening");
    serve(
        listener,
        opts,
        Services::new().with(ingestion.server()),
        shutdown_on_signals(),
    )
    .await?;
    Ok(())
}
