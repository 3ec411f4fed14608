//! `retain`: Retain in one process, and its client. `retain --help` lists
//! the commands; the library (`src/lib.rs`) builds them.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    retain::main().await
}
