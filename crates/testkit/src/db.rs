//! Test databases: a temporary SQLite file, or a fresh database on a
//! throwaway PostgreSQL cluster.
//!
//! PostgreSQL comes from, in order: `RETAIN_TEST_DATABASE_URL` (an admin URL
//! of a running server; each test creates its own database on it), or a
//! cluster this process starts once from the local `initdb`/`pg_ctl` (PATH,
//! then `/usr/lib/postgresql/*/bin`) on a free loopback port in a temporary
//! directory, as the `postgres` system user when running as root. The
//! cluster is stopped and its directory removed when the test process exits.
//!
//! Where PostgreSQL is not available the PostgreSQL variant of a test prints
//! why it skipped; with `RETAIN_REQUIRE_POSTGRES=1` (set by CI) it fails
//! instead, so a CI run can never skip them silently.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection};

use retain_store::{PoolOptions, connect, migrate};

/// Runs one storage test body on SQLite and on PostgreSQL: it expands to a
/// module with two tests, `sqlite` and `postgres`, each getting a freshly
/// migrated [`TestDatabase`] bound to the given name.
///
/// ```text
/// retain_testkit::storage_test!(async fn counts_rows(db) {
///     assert!(db.conn.ping().await.is_ok());
/// });
/// ```
#[macro_export]
macro_rules! storage_test {
    ($(#[$meta:meta])* async fn $name:ident($db:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $db = $crate::TestDatabase::sqlite().await;
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some($db) = $crate::TestDatabase::postgres(module_path!()).await
                else {
                    return;
                };
                $body
            }
        }
    };
}

/// A migrated database that lives as long as this value (SQLite) or the
/// test process (PostgreSQL).
#[derive(Debug)]
pub struct TestDatabase {
    /// The pool, migrated.
    pub conn: DatabaseConnection,
    /// Its URL, for code under test that connects by itself.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    /// A new SQLite file in a temporary directory.
    ///
    /// # Panics
    /// If the database cannot be created or migrated (a broken test setup).
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("create temp dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("retain.db").display()
        );
        let conn = connect(&url, &PoolOptions::default())
            .await
            .expect("open sqlite");
        migrate(&conn).await.expect("migrate sqlite");
        Self {
            conn,
            url,
            _dir: Some(dir),
        }
    }

    /// A new, migrated database on the test PostgreSQL server, or `None`
    /// (after printing why) when none is available. `test` names the test
    /// in that message.
    ///
    /// # Panics
    /// If PostgreSQL is unavailable and `RETAIN_REQUIRE_POSTGRES=1`, or the
    /// server is there but refuses to create the database.
    pub async fn postgres(test: &str) -> Option<Self> {
        Self::postgres_with(test, &PoolOptions::default()).await
    }

    /// [`TestDatabase::postgres`] with explicit pool options.
    ///
    /// # Panics
    /// As [`TestDatabase::postgres`].
    pub async fn postgres_with(test: &str, pool: &PoolOptions) -> Option<Self> {
        let url = Self::postgres_unmigrated(test).await?;
        let conn = connect(&url, pool).await.expect("connect to test database");
        migrate(&conn).await.expect("migrate postgres");
        Some(Self {
            conn,
            url,
            _dir: None,
        })
    }

    /// A new, empty database on the test PostgreSQL server — nothing
    /// migrated, for tests of migrating — as its URL; `None` as
    /// [`TestDatabase::postgres`].
    ///
    /// # Panics
    /// As [`TestDatabase::postgres`].
    pub async fn postgres_unmigrated(test: &str) -> Option<String> {
        let admin_url = match postgres_admin_url() {
            Ok(url) => url,
            Err(why) => {
                if std::env::var("RETAIN_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                    panic!(
                        "PostgreSQL required (RETAIN_REQUIRE_POSTGRES=1) but unavailable: {why}"
                    );
                }
                crate::skip(&format!("{test} on PostgreSQL"), &why);
                return None;
            }
        };
        Some(
            create_database(&admin_url, &unique_db_name())
                .await
                .expect("create the test database"),
        )
    }

    /// Which backend this is.
    pub fn backend(&self) -> DatabaseBackend {
        self.conn.get_database_backend()
    }
}

/// Creates (or re-creates, empty) database `name` on the server of
/// `admin_url` and returns its URL.
async fn create_database(admin_url: &str, name: &str) -> Result<String, String> {
    let admin = connect(admin_url, &PoolOptions::default())
        .await
        .map_err(|e| format!("connect to {}: {e}", retain_store::redact(admin_url)))?;
    for sql in [
        format!("DROP DATABASE IF EXISTS {name}"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin
            .execute_unprepared(&sql)
            .await
            .map_err(|e| format!("{sql}: {e}"))?;
    }
    admin.close().await.ok();
    Ok(with_database(admin_url, name))
}

/// PostgreSQL for benchmarks: the server at `RETAIN_BENCH_DATABASE_URL`
/// (an admin URL), else a throwaway cluster with PostgreSQL's default
/// durability (`fsync` on), unlike the tests' cluster.
#[derive(Debug)]
pub struct BenchPostgres {
    admin_url: String,
    _cluster: Option<PgCluster>,
}

impl BenchPostgres {
    /// The configured server, or a new durable cluster.
    pub fn start() -> Result<Self, String> {
        match std::env::var("RETAIN_BENCH_DATABASE_URL") {
            Ok(url) if !url.is_empty() => Ok(Self::at(url)),
            _ => {
                let cluster = PgCluster::start(true)?;
                Ok(Self {
                    admin_url: cluster.admin_url(),
                    _cluster: Some(cluster),
                })
            }
        }
    }

    /// The server at `admin_url` (an admin URL).
    pub fn at(admin_url: String) -> Self {
        Self {
            admin_url,
            _cluster: None,
        }
    }

    /// An empty database `name` (dropped first if it exists); its URL.
    pub async fn database(&self, name: &str) -> Result<String, String> {
        create_database(&self.admin_url, name).await
    }
}

/// Waits until `check` returns `Some`, polling every 10 ms, and returns
/// that value; panics naming `what` after `timeout`. For tests that wait
/// on a condition instead of sleeping a guessed time.
///
/// # Panics
/// When the condition does not hold within `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: std::time::Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn unique_db_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "retain_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Replaces the database name (the path) of a PostgreSQL URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let mut out = format!("{}/{}", &base[..host_end], name);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// The admin URL of the test server: the environment's, or the cluster
/// this process started (started on first use).
pub fn postgres_admin_url() -> Result<String, String> {
    if let Ok(url) = std::env::var("RETAIN_TEST_DATABASE_URL")
        && !url.is_empty()
    {
        return Ok(url);
    }
    static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| PgCluster::start(false))
        .as_ref()
        .map(|c| c.admin_url())
        .map_err(Clone::clone)
}

/// A PostgreSQL cluster started from the local binaries for tests and
/// benchmarks, stopped and deleted when this process exits.
#[derive(Debug)]
pub struct PgCluster {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    opts: String,
    as_root: bool,
}

impl PgCluster {
    /// Starts a cluster. `durable = false` turns off fsync (tests);
    /// `durable = true` keeps PostgreSQL's defaults (benchmarks).
    pub fn start(durable: bool) -> Result<Self, String> {
        let bin = find_pg_bin().ok_or_else(|| {
            "no initdb/pg_ctl found on PATH or in /usr/lib/postgresql/*/bin \
             (install PostgreSQL, e.g. apt-get install postgresql, or set RETAIN_TEST_DATABASE_URL)"
                .to_owned()
        })?;
        let as_root = is_root();
        if as_root && !user_exists("postgres") {
            return Err(
                "running as root and there is no `postgres` system user to run initdb as".into(),
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("retain-pg-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?
            .keep();
        if as_root {
            run(Command::new("chown").arg("postgres:").arg(&dir))?;
        }
        let data = dir.join("data");
        let pg = |tool: &str| -> Command {
            let exe = bin.join(tool);
            if as_root {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(exe);
                c
            } else {
                Command::new(exe)
            }
        };
        run(pg("initdb").arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]))?;

        let mut last_err = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let mut opts = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=128MB",
                dir.display()
            );
            if !durable {
                opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
            }
            let started = run(pg("pg_ctl")
                .arg("-D")
                .arg(&data)
                .arg("-o")
                .arg(&opts)
                .arg("-l")
                .arg(dir.join("server.log"))
                .args(["-w", "-t", "60", "start"]));
            match started {
                Ok(()) => {
                    spawn_reaper(&bin, &data, &dir, as_root);
                    return Ok(Self {
                        port,
                        dir,
                        bin,
                        opts,
                        as_root,
                    });
                }
                Err(e) => last_err = e,
            }
        }
        Err(format!("pg_ctl start failed: {last_err}"))
    }

    /// URL of the `postgres` database as the superuser.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn pg_ctl(&self) -> Command {
        let exe = self.bin.join("pg_ctl");
        let mut c = if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        c.arg("-D").arg(self.dir.join("data"));
        c
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m
    /// immediate`: connections cut, no checkpoint): what the fault tests
    /// inject.
    pub fn crash(&self) -> Result<(), String> {
        run(self.pg_ctl().args(["-w", "stop", "-m", "immediate"]))
    }

    /// Starts the server again after [`PgCluster::crash`], on the same
    /// port, waiting until it accepts connections (after its recovery).
    pub fn start_again(&self) -> Result<(), String> {
        run(self
            .pg_ctl()
            .arg("-o")
            .arg(&self.opts)
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "start"]))
    }
}

/// Stops the cluster and deletes its directory once this process is gone,
/// however it ends (even a panic or SIGKILL of the test binary).
fn spawn_reaper(bin: &Path, data: &Path, dir: &Path, as_root: bool) {
    let pg_ctl = bin.join("pg_ctl");
    let stop = if as_root {
        format!(
            "runuser -u postgres -- {} -D {} stop -m immediate",
            pg_ctl.display(),
            data.display()
        )
    } else {
        format!(
            "{} -D {} stop -m immediate",
            pg_ctl.display(),
            data.display()
        )
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop}; rm -rf {dir}",
        pid = std::process::id(),
        dir = dir.display()
    );
    // Null stdio: the reaper and the server must not hold the test runner's
    // pipes open, or `cargo test` would wait for them.
    let _ = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn find_pg_bin() -> Option<PathBuf> {
    let has_tools = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if has_tools(&d) {
                // Resolve symlinks (Debian's /usr/bin wrappers are scripts
                // that want a cluster config; use the real binary dir).
                let real = std::fs::canonicalize(d.join("initdb")).ok()?;
                return real.parent().map(Path::to_path_buf);
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| has_tools(d))
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5/postgres?sslmode=disable", "t1"),
            "postgres://u@h:5/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h:5", "t1"),
            "postgres://u@h:5/t1"
        );
    }
}
