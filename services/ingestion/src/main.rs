//! `retain-ingestion`: the ingestion service as its own process.
//! `retain-ingestion --help` lists the commands.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    retain_runtime::cli::main::<retain_ingestion::Ingestion>().await
}
