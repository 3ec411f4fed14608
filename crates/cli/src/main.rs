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

mod client;
mod demo;
mod ingest;
mod json;
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
    /// Where a client command finds Retain.
    #[arg(
        long,
        global = true,
        env = "RETAIN_ENDPOINT",
        default_value = "http://127.0.0.1:50051",
        value_name = "URL"
    )]
    endpoint: String,
    /// The bearer token of a client command (default: the data folder's
    /// dev token).
    #[arg(long, global = true, env = "RETAIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the answers of `metrics`, `health` and `tasks` as JSON
    /// (protobuf JSON, field names as in the proto files) for scripts.
    #[arg(long, global = true)]
    json: bool,
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
        /// Send the demo to the server at --endpoint (with --token)
        /// instead of starting one here.
        #[arg(long)]
        remote: bool,
    },
    /// Serve ingestion, metrics, health and notification on one port until
    /// SIGTERM or Ctrl-C (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Print a shell completion script (`retain completions bash >
    /// /etc/bash_completion.d/retain`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// The portfolio's KPIs (with warnings and insights) and MRR bridge for
    /// a month.
    Metrics {
        /// The month, `YYYY-MM` (default: the last full month).
        #[arg(long, value_name = "YYYY-MM")]
        month: Option<String>,
    },
    /// A scorecard: the KPIs of one strategy or journey stage for a month.
    Scorecard {
        /// The strategy's lens.
        #[arg(
            long,
            value_enum,
            conflicts_with = "stage",
            required_unless_present = "stage"
        )]
        strategy: Option<StrategyArg>,
        /// The journey stage's lens.
        #[arg(long, value_enum)]
        stage: Option<StageArg>,
        /// The month, `YYYY-MM` (default: the last full month).
        #[arg(long, value_name = "YYYY-MM")]
        month: Option<String>,
    },
    /// The health bands and the accounts most at risk, or one account's
    /// score explained dimension by dimension.
    Health {
        /// An account id.
        account: Option<String>,
        /// How many accounts at risk to list.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i32).range(1..=1_000))]
        limit: i32,
    },
    /// Send signals from a JSON Lines file (one signal per line, protobuf
    /// JSON); rejected lines go to FILE.rejected with their reasons.
    Ingest {
        /// The file.
        file: PathBuf,
        /// Historical data: recorded and counted, never notified.
        #[arg(long)]
        backfill: bool,
        /// Signals per call.
        #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u16).range(1..=10_000))]
        batch: u16,
    },
    /// The health scoring model: get, put, preview.
    Model {
        #[command(subcommand)]
        action: ModelAction,
    },
    /// The routing policy: get, put.
    Policy {
        #[command(subcommand)]
        action: PolicyAction,
    },
    /// The CSM queue, most urgent first; or act on one task.
    Tasks {
        #[command(subcommand)]
        action: Option<TaskAction>,
        /// Only this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only tasks assigned to this CSM.
        #[arg(long)]
        assignee: Option<String>,
        /// Only tasks past their SLA.
        #[arg(long)]
        overdue: bool,
        /// How many tasks to list.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i32).range(1..=1_000))]
        limit: i32,
    },
}

/// A scorecard's strategy.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum StrategyArg {
    /// Keep the customers there are.
    Stability,
    /// Prove the product fits.
    ProductMarketFit,
    /// Grow revenue per customer.
    Profitability,
}

/// A scorecard's journey stage.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum StageArg {
    /// New customers.
    Onboarding,
    /// Customers in their stride.
    Retention,
    /// Customers ready for more.
    Expansion,
}

#[derive(Debug, Subcommand)]
enum ModelAction {
    /// Print the model in force (JSON, as `put` takes it).
    Get {
        /// The segment's model ('' = the tenant default).
        #[arg(long, default_value = "")]
        segment: String,
    },
    /// Store a model from a JSON file as the next version.
    Put {
        /// A `ScoringModel` in JSON.
        file: PathBuf,
        /// Rescore every account with it at once.
        #[arg(long)]
        rescore: bool,
    },
    /// Score accounts with a model from a JSON file without storing it.
    Preview {
        /// A `ScoringModel` in JSON.
        file: PathBuf,
        /// Only these accounts (default: a sample the server picks).
        accounts: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyAction {
    /// Print the routing policy in force (JSON, as `put` takes it).
    Get {
        /// The segment's policy ('' = the tenant default).
        #[arg(long, default_value = "")]
        segment: String,
    },
    /// Store a routing policy from a JSON file as the next version.
    Put {
        /// A `RoutingPolicy` in JSON.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TaskAction {
    /// Claim an open task for a CSM.
    Claim {
        /// The task id (`retain tasks` shows it).
        task_id: String,
        /// The CSM's email address.
        #[arg(long = "as", value_name = "EMAIL")]
        assignee: String,
    },
    /// Complete a task, with what was done.
    Complete {
        /// The task id.
        task_id: String,
        /// What was done.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Dismiss a task, with why.
    Dismiss {
        /// The task id.
        task_id: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
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
        Command::Migrate => {
            let database = platform::migrate(&opts).await?;
            say!("migrations applied to {database}");
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
                None => demo::last_full_month(now()),
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
                None => demo::last_full_month(now()),
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
            demo::run(&target, usize::from(accounts), demo::anchor(None)?).await
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
            let anchor = demo::anchor(Some(&opts.data_dir))?;
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

/// Now, seconds since the epoch.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `YYYY-MM` as the period of that calendar month.
fn month_period(month: &str) -> anyhow::Result<retain_proto::v1::Period> {
    let parsed = month.split_once('-').and_then(|(y, m)| {
        let (y, m) = (y.parse::<i32>().ok()?, m.parse::<u32>().ok()?);
        ((1970..=9999).contains(&y) && (1..=12).contains(&m)).then_some((y, m))
    });
    let Some((y, m)) = parsed else {
        anyhow::bail!("--month {month:?}: expected YYYY-MM, like 2026-10");
    };
    let p = retain_domain::Period::month(y, m);
    Ok(retain_proto::v1::Period {
        start: Some(retain_proto::convert::from_micros(p.start.micros())),
        end: Some(retain_proto::convert::from_micros(p.end.micros())),
    })
}

/// Claims, completes or dismisses one task, and shows it after.
async fn act(remote: &client::Remote, action: TaskAction) -> anyhow::Result<()> {
    use retain_proto::v1;
    let mut tasks =
        v1::notification_service_client::NotificationServiceClient::new(remote.channel.clone());
    let (task, done) = match action {
        TaskAction::Claim { task_id, assignee } => (
            tasks
                .claim_task(remote.request(v1::ClaimTaskRequest { task_id, assignee }))
                .await
                .map_err(|e| remote.failed("ClaimTask", e))?
                .into_inner()
                .task,
            "claimed",
        ),
        TaskAction::Complete { task_id, note } => (
            tasks
                .complete_task(remote.request(v1::CompleteTaskRequest { task_id, note }))
                .await
                .map_err(|e| remote.failed("CompleteTask", e))?
                .into_inner()
                .task,
            "completed",
        ),
        TaskAction::Dismiss { task_id, reason } => (
            tasks
                .dismiss_task(remote.request(v1::DismissTaskRequest { task_id, reason }))
                .await
                .map_err(|e| remote.failed("DismissTask", e))?
                .into_inner()
                .task,
            "dismissed",
        ),
    };
    if let Some(t) = task {
        let who = if t.assignee.is_empty() {
            "nobody"
        } else {
            &t.assignee
        };
        say!(
            "{done}: {} — {} ({}), assigned to {who}",
            t.task_id,
            t.title,
            t.account_id
        );
    }
    Ok(())
}

/// Writes one line to standard output; exits quietly (status 0) when the
/// reader has gone away.
fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if writeln!(std::io::stdout().lock(), "{line}").is_err() {
        std::process::exit(0);
    }
}

/// A JSON file as message `name`, naming the file when it does not read.
fn read_json<M: prost::Message + Default>(name: &str, file: &std::path::Path) -> anyhow::Result<M> {
    use anyhow::Context as _;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    json::parse(name, &text).with_context(|| format!("{} is not a {name} in JSON", file.display()))
}

/// `retain model …`.
async fn model(remote: &client::Remote, action: ModelAction) -> anyhow::Result<()> {
    use retain_proto::v1;
    let mut health = v1::health_service_client::HealthServiceClient::new(remote.channel.clone());
    match action {
        ModelAction::Get { segment } => {
            let model = health
                .get_scoring_model(remote.request(v1::GetScoringModelRequest {
                    segment,
                    version: 0,
                }))
                .await
                .map_err(|e| remote.failed("GetScoringModel", e))?
                .into_inner()
                .model
                .unwrap_or_default();
            say!("{}", json::print("retain.v1.ScoringModel", &model)?);
        }
        ModelAction::Put { file, rescore } => {
            let model: v1::ScoringModel = read_json("retain.v1.ScoringModel", &file)?;
            let reply = health
                .put_scoring_model(remote.request(v1::PutScoringModelRequest {
                    model: Some(model),
                    rescore,
                }))
                .await
                .map_err(|e| remote.failed("PutScoringModel", e))?
                .into_inner();
            say!(
                "{}",
                json::print("retain.v1.PutScoringModelResponse", &reply)?
            );
        }
        ModelAction::Preview { file, accounts } => {
            let model: v1::ScoringModel = read_json("retain.v1.ScoringModel", &file)?;
            let reply = health
                .preview_scoring_model(remote.request(v1::PreviewScoringModelRequest {
                    model: Some(model),
                    account_ids: accounts,
                }))
                .await
                .map_err(|e| remote.failed("PreviewScoringModel", e))?
                .into_inner();
            say!(
                "{}",
                json::print("retain.v1.PreviewScoringModelResponse", &reply)?
            );
        }
    }
    Ok(())
}

/// `retain policy …`.
async fn policy(remote: &client::Remote, action: PolicyAction) -> anyhow::Result<()> {
    use retain_proto::v1;
    let mut notification =
        v1::notification_service_client::NotificationServiceClient::new(remote.channel.clone());
    match action {
        PolicyAction::Get { segment } => {
            let policy = notification
                .get_routing_policy(remote.request(v1::GetRoutingPolicyRequest { segment }))
                .await
                .map_err(|e| remote.failed("GetRoutingPolicy", e))?
                .into_inner()
                .policy
                .unwrap_or_default();
            say!("{}", json::print("retain.v1.RoutingPolicy", &policy)?);
        }
        PolicyAction::Put { file } => {
            let policy: v1::RoutingPolicy = read_json("retain.v1.RoutingPolicy", &file)?;
            let stored = notification
                .put_routing_policy(remote.request(v1::PutRoutingPolicyRequest {
                    policy: Some(policy),
                }))
                .await
                .map_err(|e| remote.failed("PutRoutingPolicy", e))?
                .into_inner()
                .policy
                .unwrap_or_default();
            say!("stored as version {}", stored.version);
        }
    }
    Ok(())
}
