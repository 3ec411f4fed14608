//! The command line every Retain service binary shares, and the one way a
//! binary runs its service.
//!
//! ```text
//! retain-ingestion [--config FILE] [serve]    run the gRPC server (default)
//! retain-ingestion [--config FILE] migrate    apply the migrations and exit
//! retain-ingestion --help | --version
//! ```
//!
//! A service binary's `main` is one call, `main::<TheService>()`: it runs
//! [`run`], which launches the one service through [`crate::launch`].

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::Settings;
use crate::launch::{Component, Known, Launch, check};
use crate::server::shutdown_on_signals;
use crate::service::Service;

/// The shared command line.
#[derive(Debug, Parser)]
#[command(
    after_help = "Configuration: built-in defaults < --config FILE (or RETAIN_CONFIG) < \
                  RETAIN__SECTION__KEY environment variables; see deploy/config/retain.toml."
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(short, long, global = true, env = "RETAIN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Run the gRPC server until SIGTERM or Ctrl-C (the default).
    Serve,
    /// Apply the database migrations and exit (the Kubernetes migration Job).
    Migrate,
}

impl Cli {
    /// Parses the process arguments for the binary `name`, described by
    /// `about`; `--help` and `--version` print and exit.
    pub fn parse_for(name: &'static str, about: &'static str) -> Self {
        let matches = Self::command()
            .name(name)
            .bin_name(name)
            .about(about)
            .version(env!("CARGO_PKG_VERSION"))
            .get_matches();
        match Self::from_arg_matches(&matches) {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        }
    }
}

/// The whole `main` of service `S`'s binary: [`run`], and on failure one
/// line `error: …` with its causes on standard error and exit code 1 (no
/// backtrace: a configuration mistake is not a crash).
pub async fn main<S: Service>() -> std::process::ExitCode {
    match run::<S>().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the binary of service `S`: parses the command line, loads the
/// settings, then either checks them, applies the migrations and exits
/// (`migrate`), or runs the service through [`crate::launch`] until
/// SIGTERM/Ctrl-C (`serve`).
///
/// On SQLite, `serve` applies the migrations first: one process owns the
/// file and nobody else would. On PostgreSQL, `migrate` does (a replica
/// never changes the schema at start-up), and `serve` refuses to start on a
/// schema with pending migrations instead of answering every call INTERNAL.
pub async fn run<S: Service>() -> anyhow::Result<()> {
    let name = S::NAME;
    let cli = Cli::parse_for(name, S::ABOUT);
    let settings = Settings::load(cli.config.as_deref())?;
    let components = vec![Component::of::<S>()];
    if cli.command.unwrap_or(Command::Serve) == Command::Migrate {
        let _telemetry = crate::telemetry::init(&settings.telemetry, name)?;
        check(&settings, &components, Known::Some)?;
        let database = retain_store::redact(&settings.database.url);
        let db = retain_store::connect(&settings.database.url, &settings.database.pool())
            .await
            .with_context(|| format!("connecting to {database}"))?;
        retain_store::migrate(&db).await?;
        tracing::info!("migrations applied");
        return Ok(());
    }
    let migrate =
        retain_store::backend_of(&settings.database.url)? == retain_store::DatabaseBackend::Sqlite;
    let launch = Launch {
        name,
        components,
        known: Known::Some,
        migrate,
    };
    crate::launch(launch, settings, shutdown_on_signals())
        .await?
        .wait()
        .await?;
    tracing::info!("{name} stopped");
    Ok(())
}

/// Writes `address` to `path` whole: to a temporary file first, renamed
/// into place, so a reader never sees half an address.
pub fn write_address(path: &Path, address: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, address)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_parses_config_anywhere_and_defaults_to_serve() {
        let cli = Cli::try_parse_from(["x", "migrate", "--config", "a.toml"]).expect("parses");
        assert_eq!(cli.command, Some(Command::Migrate));
        assert_eq!(cli.config.as_deref(), Some(Path::new("a.toml")));
        let cli = Cli::try_parse_from(["x", "-c", "b.toml"]).expect("parses");
        assert_eq!(cli.command, None);
        let err = Cli::try_parse_from(["x", "frobnicate"]).expect_err("unknown subcommand");
        assert!(err.to_string().contains("frobnicate"), "{err}");
    }
}
