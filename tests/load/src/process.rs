//! The ingestion service as users deploy it: the release binary
//! `retain-ingestion`, started as its own process beside this one, with
//! its configuration in the environment and its token in a tokens file.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A running `retain-ingestion`; killed when dropped.
pub struct Service {
    child: Child,
    dir: PathBuf,
    /// Its gRPC URL.
    pub url: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts the binary next to this one on a free loopback port, over
/// `database_url`, accepting `token` for tenant `loadgen`, and waits until
/// it reports SERVING.
pub async fn start(database_url: &str, token: &str, group_commit: bool) -> anyhow::Result<Service> {
    let exe = std::env::current_exe()?.with_file_name("retain-ingestion");
    if !exe.exists() {
        bail!(
            "{} not found: build the services first (cargo build --release --bins), \
             or pass --in-process",
            exe.display()
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let dir = std::env::temp_dir().join(format!("retain-loadgen-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let tokens = dir.join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[tokens]]\nname = \"loadgen\"\ntenant = \"loadgen\"\nroles = [\"ingest\", \"read\"]\nsha256 = \"{}\"\n",
            hex::encode(Sha256::digest(token.as_bytes()))
        ),
    )?;
    let log = std::fs::File::create(dir.join("service.log"))?;
    let mut command = Command::new(&exe);
    // The service's configuration is this function's alone: nothing of
    // the caller's RETAIN_* environment leaks into it.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RETAIN") {
            command.env_remove(key);
        }
    }
    let child = command
        .arg("serve")
        .current_dir(&dir)
        .env("RETAIN__DATABASE__URL", database_url)
        .env("RETAIN__DATABASE__MAX_CONNECTIONS", "16")
        .env("RETAIN__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("RETAIN__SERVER__MAX_MESSAGE_BYTES", (16 << 20).to_string())
        .env("RETAIN__SERVER__CONCURRENCY_LIMIT", "1024")
        .env("RETAIN__AUTH__TOKENS_FILE", &tokens)
        // Measure the service, not the limiter.
        .env("RETAIN__INGESTION__TENANT_SIGNALS_PER_SECOND", "0")
        .env("RETAIN__INGESTION__MAX_BATCH_SIGNALS", "10000")
        .env("RETAIN__INGESTION__GROUP_COMMIT", group_commit.to_string())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let mut service = Service {
        child,
        dir,
        url: format!("http://127.0.0.1:{port}"),
    };
    let (child, log) = (&mut service.child, service.dir.join("service.log"));
    wait_serving(&service.url, Duration::from_secs(60), || {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("retain-ingestion exited ({status}) before serving:\n{log}");
        }
        Ok(())
    })
    .await?;
    Ok(service)
}

/// Waits until the server at `url` reports SERVING on the gRPC health
/// service (its readiness), polling every 100 ms for up to `timeout`;
/// `alive` is asked each round whether waiting still makes sense.
pub async fn wait_serving(
    url: &str,
    timeout: Duration,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())?;
    let deadline = Instant::now() + timeout;
    loop {
        alive()?;
        if let Ok(channel) = endpoint.connect().await {
            let request = HealthCheckRequest {
                service: String::new(),
            };
            let status = HealthClient::new(channel).check(request).await;
            if status.is_ok_and(|r| r.get_ref().status() == ServingStatus::Serving) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "{url} did not report SERVING within {} s",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
