//! `retain-ingestion`: the ingestion service as its own process.
//! `retain-ingestion --help` lists the commands.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    retain_runtime::cli::run(
        "retain-ingestion",
        "Retain's ingestion service: validated, idempotent, durable signal intake over gRPC.",
        retain_ingestion::services,
    )
    .await
}
