//! `retain-metrics`: the metrics service as its own process.
//! `retain-metrics --help` lists the commands.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    retain_runtime::cli::main::<retain_metrics::Metrics>().await
}
