//! A service binary run as a process, the way an operator runs it: the
//! reference configuration plus a token, a SQLite file in a temporary
//! directory, port 0 reported through `server.address_file`, and SIGTERM to
//! stop it.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tonic::transport::Channel;

use crate::eventually;

/// A running binary and a channel to it.
pub struct RunningBinary {
    /// The process (killed if the test ends without [`RunningBinary::stop`],
    /// so a failing test leaves no server behind).
    child: Option<Child>,
    /// Connected to its gRPC port.
    pub channel: Channel,
}

/// `deploy/config/retain.toml` with one token (`name = "test"`) for tenant
/// `acme` with `roles`, written to `dir/retain.toml`.
pub fn reference_config(dir: &Path, token: &str, roles: &[&str]) -> std::path::PathBuf {
    let reference = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/config/retain.toml"
    ))
    .unwrap();
    let roles: Vec<String> = roles.iter().map(|r| format!("{r:?}")).collect();
    let path = dir.join("retain.toml");
    std::fs::write(
        &path,
        format!(
            "{reference}\n[[auth.tokens]]\nname = \"test\"\ntenant = \"acme\"\nroles = [{}]\nsha256 = \"{}\"\n",
            roles.join(", "),
            retain_runtime::auth::token_hash(token)
        ),
    )
    .unwrap();
    path
}

/// Starts `bin serve` with `config` on a SQLite file in `dir`, listening
/// on a port the system picks, and connects to it.
pub async fn start_binary(bin: &str, config: &Path, dir: &Path) -> RunningBinary {
    let url = format!("sqlite://{}?mode=rwc", dir.join("retain.db").display());
    start_binary_on(bin, config, dir, &url).await
}

/// [`start_binary`] on the database at `url` (several binaries sharing one
/// PostgreSQL database, as deployed).
pub async fn start_binary_on(bin: &str, config: &Path, dir: &Path, url: &str) -> RunningBinary {
    start_binary_with(bin, config, dir, url, &[]).await
}

/// [`start_binary_on`] with more environment variables (`RETAIN__…`
/// overrides, as a Deployment sets them).
pub async fn start_binary_with(
    bin: &str,
    config: &Path,
    dir: &Path,
    url: &str,
    env: &[(String, String)],
) -> RunningBinary {
    let address_file = dir.join("addr");
    let _ = std::fs::remove_file(&address_file);
    let mut command = Command::new(bin);
    // A port the system picks, unless the caller chose one.
    command.env("RETAIN__SERVER__LISTEN", "127.0.0.1:0");
    let child = command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .arg("--config")
        .arg(config)
        // Relative paths of the configuration (the email outbox) land in `dir`.
        .current_dir(dir)
        .env("RETAIN__SERVER__ADDRESS_FILE", &address_file)
        .env("RETAIN__DATABASE__URL", url)
        .env("RETAIN__TELEMETRY__LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = eventually(
        "the binary to report its address",
        Duration::from_secs(30),
        || {
            let addr = std::fs::read_to_string(&address_file).ok();
            async move { addr }
        },
    )
    .await;
    let url = format!("http://{addr}");
    let channel = eventually("the binary to listen", Duration::from_secs(30), || {
        let endpoint = tonic::transport::Endpoint::from_shared(url.clone()).unwrap();
        async move { endpoint.connect().await.ok() }
    })
    .await;
    RunningBinary {
        child: Some(child),
        channel,
    }
}

impl RunningBinary {
    /// Sends SIGTERM and waits (at most 30 s) for the exit.
    pub async fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(
            Duration::from_secs(30),
            tokio::task::spawn_blocking(move || child.wait()),
        )
        .await
        .expect("no exit within 30 s of SIGTERM")
        .unwrap()
        .unwrap()
    }
}

impl RunningBinary {
    /// Kills the process with SIGKILL (a crash: no draining, leases left
    /// held) and waits for it to be gone.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for RunningBinary {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The four service binaries, upstream first.
pub const SERVICES: [&str; 4] = [
    "retain-ingestion",
    "retain-metrics",
    "retain-health",
    "retain-notification",
];

/// The four service binaries of one build folder started as separate
/// processes on one database, as a Kubernetes deployment runs them: each
/// in its own folder under `dir`, with `config`.
#[derive(Debug)]
pub struct Processes {
    bin_dir: std::path::PathBuf,
    dir: std::path::PathBuf,
    config: std::path::PathBuf,
    url: String,
    env: Vec<(String, String)>,
}

impl Processes {
    /// `None` (after printing why `test` skips) when a binary is not built
    /// in `bin_dir`; with `RETAIN_REQUIRE_POSTGRES=1` (CI) that fails
    /// instead. `cargo test --workspace` builds them all.
    pub fn new(test: &str, bin_dir: &Path, dir: &Path, config: &Path, url: &str) -> Option<Self> {
        if let Some(missing) = SERVICES.iter().find(|n| !bin_dir.join(n).is_file()) {
            let why = format!(
                "{} is not built (cargo test --workspace builds it)",
                bin_dir.join(missing).display()
            );
            assert!(
                std::env::var("RETAIN_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "{why}"
            );
            crate::skip(test, &why);
            return None;
        }
        Some(Self {
            bin_dir: bin_dir.to_owned(),
            dir: dir.to_owned(),
            config: config.to_owned(),
            url: url.to_owned(),
            env: Vec::new(),
        })
    }

    /// Sets `key` in every binary's environment.
    #[must_use]
    pub fn with_env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Starts service `name` (one of [`SERVICES`]).
    pub async fn start(&self, name: &str) -> RunningBinary {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let bin = self.bin_dir.join(name);
        start_binary_with(
            bin.to_str().unwrap(),
            &self.config,
            &dir,
            &self.url,
            &self.env,
        )
        .await
    }

    /// [`Processes::start`] with more environment variables for this one
    /// (`RETAIN__SERVER__LISTEN` to keep a port across restarts).
    pub async fn start_with(&self, name: &str, env: &[(&str, &str)]) -> RunningBinary {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let bin = self.bin_dir.join(name);
        let mut all = self.env.clone();
        all.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        start_binary_with(bin.to_str().unwrap(), &self.config, &dir, &self.url, &all).await
    }

    /// Starts all four, in [`SERVICES`] order.
    pub async fn start_all(&self) -> Vec<RunningBinary> {
        let mut running = Vec::with_capacity(SERVICES.len());
        for name in SERVICES {
            running.push(self.start(name).await);
        }
        running
    }
}
