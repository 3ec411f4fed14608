//! The command line: what `retain` takes.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
pub(crate) struct Cli {
    /// TOML configuration file.
    #[arg(short, long, global = true, env = "RETAIN_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The data folder: SQLite database, dev token, email outbox.
    #[arg(
        long,
        global = true,
        env = "RETAIN_DATA_DIR",
        default_value = "retain-data",
        value_name = "DIR"
    )]
    pub(crate) data_dir: PathBuf,
    /// Where a client command finds Retain.
    #[arg(
        long,
        global = true,
        env = "RETAIN_ENDPOINT",
        default_value = "http://127.0.0.1:50051",
        value_name = "URL"
    )]
    pub(crate) endpoint: String,
    /// The bearer token of a client command (default: the data folder's
    /// dev token).
    #[arg(long, global = true, env = "RETAIN_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Print the answers of `metrics`, `health` and `tasks` as JSON
    /// (protobuf JSON, field names as in the proto files) for scripts.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
    Migrate {
        /// Apply nothing: exit 0 when the schema is up to date, else name
        /// the pending migrations and exit 1 (a Kubernetes init container
        /// waiting for the migration Job).
        #[arg(long)]
        check: bool,
        /// With --check: wait up to this many seconds for another process
        /// (the migration Job) to apply them, checking every two seconds.
        #[arg(long, value_name = "SECONDS", requires = "check", default_value_t = 0)]
        wait: u64,
    },
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
pub(crate) enum StrategyArg {
    /// Keep the customers there are.
    Stability,
    /// Prove the product fits.
    ProductMarketFit,
    /// Grow revenue per customer.
    Profitability,
}

/// A scorecard's journey stage.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum StageArg {
    /// New customers.
    Onboarding,
    /// Customers in their stride.
    Retention,
    /// Customers ready for more.
    Expansion,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ModelAction {
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
pub(crate) enum PolicyAction {
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
pub(crate) enum TaskAction {
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
