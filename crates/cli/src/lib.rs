//! `retain`: Retain in one process.
//!
//! ```text
//! retain demo       serve, send a seeded portfolio through gRPC, print the report, keep serving
//!                   (--remote: send it to the server at --endpoint instead)
//! retain serve      ingestion, metrics, health and notification on one port (127.0.0.1:50051)
//! retain migrate    apply the database migrations and exit
//!
//! retain metrics [--month YYYY-MM]     the portfolio's KPIs and MRR bridge
//! retain scorecard --strategy S | --stage S   a strategy's or journey stage's KPIs
//! retain health [ACCOUNT]              the bands and the accounts most at risk, or one account explained
//! retain tasks [--queue Q] …           the CSM queue; tasks claim|complete|dismiss ID
//! retain ingest FILE [--backfill]      signals from a JSON Lines file
//! retain model get|put|preview         the health scoring model (JSON)
//! retain policy get|put                the routing policy (JSON)
//! ```
//!
//! The client commands talk to `--endpoint` (`RETAIN_ENDPOINT`, default
//! `http://127.0.0.1:50051`) with `--token` (`RETAIN_TOKEN`, default the
//! data folder's dev token).
//!
//! Data lives in `--data-dir` (`./retain-data`): the SQLite database
//! (unless the configuration names another), the dev token, the email
//! outbox.

/// `println!` that ends the program quietly when standard output is
/// closed (`retain health | head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say(format_args!($($arg)*))
    };
}

mod args;
mod client;
mod commands;
mod demo;
mod ingest;
mod json;
mod platform;
mod report;

use std::time::Duration;

use clap::Parser;

use crate::args::{Cli, Command, StageArg, StrategyArg};
use crate::commands::{act, model, month_period, now, policy};
use crate::platform::{DEV_TENANT, Options, Platform};

/// The whole `main` of the `retain` binary: parse the command line, run
/// it, and on failure print one line `error: …` with its causes and exit 1.
pub async fn main() -> std::process::ExitCode {
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
    let (cli_endpoint, cli_token, json) = (cli.endpoint, cli.token, cli.json);
    let opts = Options {
        data_dir: cli.data_dir,
        config: cli.config,
        quiet: matches!(command, Command::Demo { .. }),
    };
    match command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "retain", &mut std::io::stdout());
            Ok(())
        }
        Command::Migrate { check: false, .. } => {
            let database = platform::migrate(&opts).await?;
            say!("migrations applied to {database}");
            Ok(())
        }
        Command::Migrate { check: true, wait } => {
            let database = platform::wait_migrated(&opts, Duration::from_secs(wait)).await?;
            say!("the schema of {database} is up to date");
            Ok(())
        }
        Command::Serve => {
            let platform = Platform::start(&opts, retain_runtime::shutdown_on_signals()).await?;
            banner(&platform);
            platform.wait().await
        }
        Command::Metrics { month } => {
            let remote = client::Remote::connect(&cli_endpoint, cli_token, &opts.data_dir).await?;
            let period = match month {
                Some(m) => month_period(&m)?,
                None => report::last_full_month(now()),
            };
            report::portfolio(&remote, period, json).await
        }
        Command::Scorecard {
            strategy,
            stage,
            month,
        } => {
            use retain_proto::v1::{JourneyStage, Strategy, get_scorecard_request::Lens};
            let remote = client::Remote::connect(&cli_endpoint, cli_token, &opts.data_dir).await?;
            let period = match month {
                Some(m) => month_period(&m)?,
                None => report::last_full_month(now()),
            };
            let (lens, title) = match (strategy, stage) {
                (Some(s), _) => {
                    let s = match s {
                        StrategyArg::Stability => Strategy::Stability,
                        StrategyArg::ProductMarketFit => Strategy::ProductMarketFit,
                        StrategyArg::Profitability => Strategy::Profitability,
                    };
                    (Lens::Strategy(s as i32), s.as_str_name())
                }
                (None, Some(s)) => {
                    let s = match s {
                        StageArg::Onboarding => JourneyStage::Onboarding,
                        StageArg::Retention => JourneyStage::Retention,
                        StageArg::Expansion => JourneyStage::Expansion,
                    };
                    (Lens::Stage(s as i32), s.as_str_name())
                }
                (None, None) => anyhow::bail!("pass --strategy or --stage"),
            };
            let title = title
                .trim_start_matches("STRATEGY_")
                .trim_start_matches("JOURNEY_STAGE_")
                .replace('_', " ")
                .to_lowercase();
            report::scorecard(&remote, lens, &title, period, json).await
        }
        Command::Health { account, limit } => {
            let remote = client::Remote::connect(&cli_endpoint, cli_token, &opts.data_dir).await?;
            match account {
                Some(account) => report::account(&remote, &account, json).await,
                None if json => report::at_risk(&remote, limit, json).await,
                None => {
                    report::bands(&remote).await?;
                    report::at_risk(&remote, limit, json).await
                }
            }
        }
        Command::Tasks {
            action,
            queue,
            assignee,
            overdue,
            limit,
        } => {
            let remote = client::Remote::connect(&cli_endpoint, cli_token, &opts.data_dir).await?;
            match action {
                None => {
                    let filter = retain_proto::v1::ListTasksRequest {
                        queue: queue.unwrap_or_default(),
                        assignee: assignee.unwrap_or_default(),
                        overdue,
                        ..Default::default()
                    };
                    report::queue(&remote, filter, limit, json).await
                }
                Some(action) => act(&remote, action).await,
            }
        }
        Command::Ingest {
            file,
            backfill,
            batch,
        } => {
            let remote = client::Remote::connect(&cli_endpoint, cli_token, &opts.data_dir).await?;
            let mode = if backfill {
                retain_proto::v1::IngestMode::Backfill
            } else {
                retain_proto::v1::IngestMode::Live
            };
            ingest::run(&remote, &file, mode, usize::from(batch)).await
        }
        Command::Model { action } => {
            let remote = client::Remote::connect(&cli_endpoint, cli_token, &opts.data_dir).await?;
            model(&remote, action).await
        }
        Command::Policy { action } => {
            let remote = client::Remote::connect(&cli_endpoint, cli_token, &opts.data_dir).await?;
            policy(&remote, action).await
        }
        Command::Demo {
            accounts,
            remote: true,
            ..
        } => {
            let remote = client::Remote::connect(&cli_endpoint, cli_token, &opts.data_dir).await?;
            let target = demo::Target {
                currency: demo::currency_of(&remote).await?,
                remote,
                outbox: None,
                db: None,
            };
            // The data folder keeps the anchor here too, so a second run
            // from it — or one after a local demo there — sends the very
            // same signals.
            std::fs::create_dir_all(&opts.data_dir)?;
            let anchor = demo::anchor(&opts.data_dir)?;
            demo::run(&target, usize::from(accounts), anchor).await
        }
        Command::Demo { accounts, exit, .. } => {
            let shutdown = retain_runtime::shutdown_on_signals();
            let platform = Platform::start(&opts, shutdown.clone()).await?;
            let remote = client::Remote::connect(
                &platform.endpoint(),
                Some(platform.token.clone()),
                &opts.data_dir,
            )
            .await?;
            let target = demo::Target {
                remote,
                currency: platform.currency.clone(),
                outbox: platform.outbox.as_deref(),
                db: Some(&platform.db),
            };
            let anchor = demo::anchor(&opts.data_dir)?;
            demo::run(&target, usize::from(accounts), anchor).await?;
            say!("");
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
    say!("Retain is serving ingestion, metrics, health and notification on {addr}");
    say!("  database   {}", p.database);
    if let Some(outbox) = &p.outbox {
        say!("  emails     {}", outbox.display());
    }
    say!("  token      {} (tenant {DEV_TENANT}, every role)", p.token);
    say!("Try it (server reflection is on):");
    say!(
        "  grpcurl -plaintext -H 'authorization: Bearer {}' {addr} retain.v1.NotificationService/ListTasks",
        p.token
    );
    say!("Stop with Ctrl-C.");
}

/// Writes one line to standard output; exits quietly (status 0) when the
/// reader has gone away.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if writeln!(std::io::stdout().lock(), "{line}").is_err() {
        std::process::exit(0);
    }
}
