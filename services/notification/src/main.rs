//! `retain-notification`: the notification service as its own process.
//! `retain-notification --help` lists the commands.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    retain_runtime::cli::main::<retain_notification::Notification>().await
}
