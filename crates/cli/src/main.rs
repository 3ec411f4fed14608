//! `retain`: Retain in one process.
//!
//! ```text
//! retain demo       serve, send a seeded portfolio through gRPC, print the report, keep serving
//! retain serve      ingestion, metrics, health and notification on one port (127.0.0.1:50051)
//! retain migrate    apply the database migrations and exit
//! ```
//!
//! Data lives in `--data-dir` (`./retain-data`): the SQLite database
//! (unless the configuration names another), the dev token, the email
//! outbox.

mod demo;
mod platform;
mod report;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::platform::{DEV_TENANT, Options, Platform};

/// Retain: customer-success KPIs, explained health scores and CSM tasks,
/// in one process.
#[derive(Debug, Parser)]
#[command(
    name = "retain",
    version,
    after_help = "Configuration: built-in defaults < --config FILE (or RETAIN_CONFIG) < \
                  RETAIN__SECTION__KEY environment variables (deploy/config/retain.toml is the \
                  commented reference)."
)]
struct Cli {
    /// TOML configuration file.
    #[arg(short, long, global = true, env = "RETAIN_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The data folder: SQLite database, dev token, email outbox.
    #[arg(
        long,
        global = true,
        env = "RETAIN_DATA_DIR",
        default_value = "retain-data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
    /// What to do (default: serve).
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve, load a seeded demo portfolio through gRPC, wait for the
    /// pipeline, print the report; then keep serving until Ctrl-C.
    Demo {
        /// Accounts in the demo portfolio.
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u16).range(10..=5_000))]
        accounts: u16,
        /// Stop once the report is printed instead of serving on.
        #[arg(long)]
        exit: bool,
    },
    /// Serve ingestion, metrics, health and notification on one port until
    /// SIGTERM or Ctrl-C (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.unwrap_or(Command::Serve);
    let opts = Options {
        data_dir: cli.data_dir,
        config: cli.config,
        quiet: matches!(command, Command::Demo { .. }),
    };
    match command {
        Command::Migrate => {
            let database = platform::migrate(&opts).await?;
            println!("migrations applied to {database}");
            Ok(())
        }
        Command::Serve => {
            let platform = Platform::start(&opts, retain_runtime::shutdown_on_signals()).await?;
            banner(&platform);
            platform.wait().await
        }
        Command::Demo { accounts, exit } => {
            let shutdown = retain_runtime::shutdown_on_signals();
            let platform = Platform::start(&opts, shutdown.clone()).await?;
            demo::run(&platform, usize::from(accounts)).await?;
            println!();
            banner(&platform);
            if exit {
                shutdown.cancel();
            }
            platform.wait().await
        }
    }
}

/// Where Retain listens and how to talk to it.
fn banner(p: &Platform) {
    let addr = p.addr;
    println!("Retain is serving ingestion, metrics, health and notification on {addr}");
    println!("  database   {}", p.database);
    if let Some(outbox) = &p.outbox {
        println!("  emails     {}", outbox.display());
    }
    println!("  token      {} (tenant {DEV_TENANT}, every role)", p.token);
    println!("Try it (server reflection is on):");
    println!(
        "  grpcurl -plaintext -H 'authorization: Bearer {}' {addr} retain.v1.NotificationService/ListTasks",
        p.token
    );
    println!("Stop with Ctrl-C.");
}
