//! `retain-health`: the health service as its own process.
//! `retain-health --help` lists the commands.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    retain_runtime::cli::main::<retain_health::Health>().await
}
