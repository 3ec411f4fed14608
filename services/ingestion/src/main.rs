//! `retain-ingestion`: the ingestion service as its own process.
//! `retain-ingestion --help` lists the commands.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    retain_runtime::cli::run::<retain_ingestion::Ingestion>().await
}
