//! `retain-fairness`: one tenant abusing a replica while another works.
//!
//! ```text
//! cargo build --release --bins
//! cargo run --release -p retain-loadgen --bin retain-fairness [-- --seconds 20]
//! ```
//!
//! Starts the release `retain serve` (all four services in one process:
//! one replica that both tenants share) on a throwaway PostgreSQL with
//! PostgreSQL's default durability, seeds both tenants with 200 accounts
//! each, then measures tenant B's steady mix of RPCs — ingest 10 signals
//! (twenty batches in turn, duplicates after the first pass, so B's data
//! is the same in both phases),
//! portfolio KPIs, MRR bridge, scorecard, a KPI series, an account's
//! metrics and health, the health list, tasks, emails, the routing policy
//! — one call after another for `--seconds`, twice:
//!
//! 1. **alone**, the baseline;
//! 2. **while tenant A abuses the replica**: it opens `WatchTasks` streams
//!    until refused and holds them, sends `ListTasks` with 100,000 states
//!    and `ListHealth` with 100,000 bands (25 a second each), floods
//!    `IngestSignals` with 60 batches of 1,000 signals a second from 6
//!    clients (twice what one replica takes in, measured by
//!    `retain-loadgen`; each tenant's `ingestion.tenant_signals_per_second`
//!    is `--tenant-rate`, 2,000 by default, a fifth of what the whole
//!    pipeline takes in on the machine of docs/BENCHMARKS.md), and asks
//!    `RescoreAll` 20 times a second.
//!
//! `--abuse` picks some of the four, or `heavy`: 20 current-month
//! `GetPortfolioMetrics` calls of A's in flight at once, each computed
//! from its signals at query time (with `--a-signals N`, N more sessions
//! of A's loaded first, through a replica without a rate limit, then the
//! replica started again with it); the replica's peak RSS is sampled in
//! each phase. `--abuser-apart` runs A's client as a process of its own at
//! nice 19, standing in for a client on another machine.
//!
//! It prints B's p50 / p99 / max per phase, B's errors (the goal: none),
//! the ratio of B's p99 under abuse to alone (the goal: at most 2), and
//! what A was answered, by code. A line per figure, no assertion: the
//! numbers go to docs/BENCHMARKS.md.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use retain_proto::v1;
use retain_proto::v1::health_service_client::HealthServiceClient;
use retain_proto::v1::ingestion_service_client::IngestionServiceClient;
use retain_proto::v1::metrics_service_client::MetricsServiceClient;
use retain_proto::v1::notification_service_client::NotificationServiceClient;
use retain_testkit::procfs::{self, memory_mib};
use retain_testkit::{BenchPostgres, now, signal, ts, with_token};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

const A: &str = "fair-a-token";
const B: &str = "fair-b-token";
const ROLES: &str = r#"["ingest", "read", "admin", "csm"]"#;

/// The release `retain serve`; killed when dropped.
struct Replica {
    child: Child,
    url: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(database_url: &str, dir: &std::path::Path, tenant_rate: u64) -> anyhow::Result<Replica> {
    let exe = std::env::current_exe()?.with_file_name("retain");
    if !exe.exists() {
        bail!(
            "{} not found: cargo build --release --bins first",
            exe.display()
        );
    }
    let token = |t: &str| hex::encode(Sha256::digest(t.as_bytes()));
    let tokens = dir.join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[tokens]]\nname = \"a\"\ntenant = \"tenant-a\"\nroles = {ROLES}\nsha256 = \"{}\"\n\
             [[tokens]]\nname = \"b\"\ntenant = \"tenant-b\"\nroles = {ROLES}\nsha256 = \"{}\"\n",
            token(A),
            token(B)
        ),
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut command = Command::new(&exe);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("RETAIN") {
            command.env_remove(key);
        }
    }
    let log = std::fs::File::create(dir.join("retain.log"))?;
    let child = command
        .arg("serve")
        .current_dir(dir)
        .env("RETAIN__DATABASE__URL", database_url)
        .env("RETAIN__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("RETAIN__AUTH__TOKENS_FILE", &tokens)
        .env(
            "RETAIN__INGESTION__TENANT_SIGNALS_PER_SECOND",
            tenant_rate.to_string(),
        )
        .env(
            "RETAIN__INGESTION__TENANT_BURST_SIGNALS",
            (2 * tenant_rate).max(5_000).to_string(),
        )
        .env("RETAIN__TELEMETRY__LOG_FILTER", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    Ok(Replica {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

/// Account `i` of a tenant: an upsert, a subscription, sessions, an NPS
/// answer.
fn account(prefix: &str, i: usize) -> Vec<v1::Signal> {
    let id = format!("{prefix}-{i}");
    let at = |s: v1::Signal, ago: i64| v1::Signal {
        occurred_at: ts(now() - ago),
        ..s
    };
    let mut out = vec![
        at(
            signal(
                &format!("{id}-up"),
                &id,
                v1::signal::Body::Account(v1::AccountUpsert {
                    name: Some(format!("Account {i}")),
                    segment: Some(
                        if i.is_multiple_of(2) {
                            "smb"
                        } else {
                            "enterprise"
                        }
                        .into(),
                    ),
                    contact_emails: vec![format!("ops@{id}.example")],
                    ..Default::default()
                }),
            ),
            40 * 86_400,
        ),
        at(
            signal(
                &format!("{id}-sub"),
                &id,
                retain_testkit::subscription_in(10_000 + i as i64 * 100, "USD"),
            ),
            35 * 86_400,
        ),
    ];
    for d in 0..10 {
        out.push(at(
            signal(
                &format!("{id}-s{d}"),
                &id,
                retain_testkit::session(&format!("u{}", d % 3), 600),
            ),
            d * 86_400 + 3_600,
        ));
    }
    out.push(at(
        signal(
            &format!("{id}-nps"),
            &id,
            v1::signal::Body::Survey(v1::SurveyAnswer {
                kind: v1::SurveyKind::Nps as i32,
                score: (i % 11) as i32,
                user_id: "u0".into(),
                ..Default::default()
            }),
        ),
        7_200,
    ));
    out
}

/// Waits until `replica` serves, or fails with its log.
async fn serving(replica: &Replica, dir: &std::path::Path) -> anyhow::Result<()> {
    if let Err(e) = wait_serving(&replica.url).await {
        let log = std::fs::read_to_string(dir.join("retain.log")).unwrap_or_default();
        bail!("{e}; its log:\n{log}");
    }
    Ok(())
}

/// `n` more sessions of tenant A over its 200 accounts and the 60 days
/// before now, as a backfill in batches of 5,000, 4 at once.
async fn load_a(ch: &Channel, n: usize) -> anyhow::Result<()> {
    let batches: Vec<usize> = (0..n.div_ceil(5_000)).collect();
    for wave in batches.chunks(4) {
        let mut calls = Vec::new();
        for &b in wave {
            let mut client =
                IngestionServiceClient::new(ch.clone()).max_encoding_message_size(64 << 20);
            let signals: Vec<v1::Signal> = (b * 5_000..((b + 1) * 5_000).min(n))
                .map(|i| v1::Signal {
                    occurred_at: ts(now() - 3_600 - (i as i64 * 7) % (60 * 86_400)),
                    ..signal(
                        &format!("a-load-{i}"),
                        &format!("a-{}", i % 200),
                        retain_testkit::session(&format!("u{}", i % 50), 300),
                    )
                })
                .collect();
            calls.push(tokio::spawn(async move {
                client
                    .ingest_signals(with_token(
                        A,
                        v1::IngestSignalsRequest {
                            signals,
                            mode: v1::IngestMode::Backfill as i32,
                            ..Default::default()
                        },
                    ))
                    .await
            }));
        }
        for call in calls {
            let r = call.await?.context("loading tenant A")?.into_inner();
            if r.rejected > 0 {
                bail!("loading tenant A: {} rejected", r.rejected);
            }
        }
    }
    Ok(())
}

async fn seed(channel: &Channel, token: &str, prefix: &str) -> anyhow::Result<()> {
    let mut client = IngestionServiceClient::new(channel.clone());
    for chunk in (0..200).collect::<Vec<_>>().chunks(50) {
        let signals = chunk.iter().flat_map(|i| account(prefix, *i)).collect();
        client
            .ingest_signals(with_token(
                token,
                v1::IngestSignalsRequest {
                    signals,
                    ..Default::default()
                },
            ))
            .await
            .context("seeding")?;
    }
    Ok(())
}

/// One round of B's mix: every call's latency, or its error.
async fn b_round(
    ch: &Channel,
    round: usize,
) -> Vec<(&'static str, Result<Duration, tonic::Status>)> {
    let mut out = Vec::new();
    macro_rules! call {
        ($name:literal, $fut:expr) => {{
            let started = Instant::now();
            out.push(($name, $fut.await.map(|_| started.elapsed())));
        }};
    }
    let account = format!("b-{}", round % 200);
    let (mut ing, mut met) = (
        IngestionServiceClient::new(ch.clone()),
        MetricsServiceClient::new(ch.clone()),
    );
    let (mut hea, mut not) = (
        HealthServiceClient::new(ch.clone()),
        NotificationServiceClient::new(ch.clone()),
    );
    // Twenty batches in turn, the same again after the first pass (their
    // verdict DUPLICATE): B's data, which the query-time portfolio reads
    // whole, is the same size in both phases, so they compare.
    let turn = round % 20;
    let signals = (0..10)
        .map(|k| {
            signal(
                &format!("b-live-{turn}-{k}"),
                &format!("b-{turn}"),
                retain_testkit::session("u9", 60),
            )
        })
        .collect();
    call!(
        "IngestSignals",
        ing.ingest_signals(with_token(
            B,
            v1::IngestSignalsRequest {
                signals,
                ..Default::default()
            }
        ))
    );
    call!(
        "GetPortfolioMetrics",
        met.get_portfolio_metrics(with_token(B, v1::GetPortfolioMetricsRequest::default()))
    );
    call!(
        "GetMrrBridge",
        met.get_mrr_bridge(with_token(B, v1::GetMrrBridgeRequest::default()))
    );
    call!(
        "GetAccountMetrics",
        met.get_account_metrics(with_token(
            B,
            v1::GetAccountMetricsRequest {
                account_id: account.clone()
            }
        ))
    );
    let range = v1::Period {
        start: ts(now() - 90 * 86_400),
        end: ts(now()),
    };
    call!(
        "GetKpiSeries",
        met.get_kpi_series(with_token(
            B,
            v1::GetKpiSeriesRequest {
                kpi: v1::Kpi::Mrr as i32,
                granularity: v1::Granularity::Month as i32,
                range: Some(range),
                filter: None,
            }
        ))
    );
    call!(
        "GetHealth",
        hea.get_health(with_token(
            B,
            v1::GetHealthRequest {
                account_id: account.clone()
            }
        ))
    );
    call!(
        "ListHealth",
        hea.list_health(with_token(B, v1::ListHealthRequest::default()))
    );
    call!(
        "ListTasks",
        not.list_tasks(with_token(B, v1::ListTasksRequest::default()))
    );
    call!(
        "ListNotifications",
        not.list_notifications(with_token(B, v1::ListNotificationsRequest::default()))
    );
    call!(
        "GetRoutingPolicy",
        not.get_routing_policy(with_token(B, v1::GetRoutingPolicyRequest::default()))
    );
    out
}

#[derive(Default)]
struct Phase {
    latencies: Vec<Duration>,
    by_rpc: BTreeMap<&'static str, Vec<Duration>>,
    errors: BTreeMap<String, usize>,
}

/// CPU seconds used so far by the replica, by every PostgreSQL process,
/// and by this client.
fn cpu_split(replica: u32) -> [f64; 3] {
    let postgres: f64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .map(|pid| procfs::cpu_seconds(&pid))
        .sum();
    [
        procfs::cpu_seconds(&replica.to_string()),
        postgres,
        procfs::cpu_seconds("self"),
    ]
}

/// [`measure_b`], sampling the replica's resident memory every 100 ms:
/// the phase and its peak, MiB. Prints where the phase's CPU time went.
async fn measure_b_and_rss(ch: &Channel, (seconds, rate): (u64, u64), pid: u32) -> (Phase, f64) {
    let cpu_before = cpu_split(pid);
    let stop = CancellationToken::new();
    let sampler = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut peak: f64 = 0.0;
            while !stop.is_cancelled() {
                peak = peak.max(memory_mib(&pid.to_string(), "VmRSS:"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        }
    });
    let phase = measure_b(ch, seconds, rate).await;
    stop.cancel();
    let cpu_after = cpu_split(pid);
    let used: Vec<f64> = cpu_after
        .iter()
        .zip(cpu_before)
        .map(|(a, b)| (a - b) / seconds as f64)
        .collect();
    println!(
        "    CPU (cores busy on average): replica {:.2}, PostgreSQL {:.2} (processes that lived through the phase), this client {:.2}",
        used[0], used[1], used[2]
    );
    (phase, sampler.await.unwrap_or(0.0))
}

/// B's mix for `seconds`: `rate` rounds a second, or back to back at 0.
async fn measure_b(ch: &Channel, seconds: u64, rate: u64) -> Phase {
    let mut phase = Phase::default();
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut round = 0;
    // Paced (`--b-rounds-per-second`), or one round after another.
    let mut pace = (rate > 0).then(|| {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    });
    while Instant::now() < end {
        if let Some(tick) = &mut pace {
            tick.tick().await;
        }
        for (name, result) in b_round(ch, round).await {
            match result {
                Ok(d) => {
                    phase.latencies.push(d);
                    phase.by_rpc.entry(name).or_default().push(d);
                }
                // A GetHealth of an account not scored yet is an answer.
                Err(s) if s.code() == tonic::Code::NotFound => {}
                Err(s) => {
                    *phase
                        .errors
                        .entry(format!("{name}: {:?} {}", s.code(), s.message()))
                        .or_default() += 1
                }
            }
        }
        round += 1;
    }
    phase
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e3
}

/// Tenant A's abuse until `stop`; what it was answered, by code.
async fn abuse(
    ch: Channel,
    kinds: Vec<String>,
    stop: CancellationToken,
) -> BTreeMap<String, usize> {
    let on = |k: &str| kinds.iter().any(|x| x == k);
    let codes = Arc::new(Mutex::new(BTreeMap::<String, usize>::new()));
    let count =
        |codes: &Arc<Mutex<BTreeMap<String, usize>>>, what: &str, r: Result<(), tonic::Status>| {
            let code = r.map_or_else(
                |s| match s.code() {
                    // Say why where the code alone does not.
                    tonic::Code::Unavailable | tonic::Code::Internal | tonic::Code::Unknown => {
                        format!(
                            "{:?} ({})",
                            s.code(),
                            s.message().chars().take(80).collect::<String>()
                        )
                    }
                    code => format!("{code:?}"),
                },
                |()| "Ok".into(),
            );
            *codes
                .lock()
                .unwrap()
                .entry(format!("{what}: {code}"))
                .or_default() += 1;
        };
    let mut tasks = Vec::new();
    // Streams until refused, held open.
    let mut held = Vec::new();
    let mut watch = NotificationServiceClient::new(ch.clone());
    for _ in 0..if on("streams") { 64 } else { 0 } {
        let r = watch
            .watch_tasks(with_token(A, v1::WatchTasksRequest::default()))
            .await;
        match r {
            Ok(stream) => {
                held.push(stream.into_inner());
                count(&codes, "WatchTasks", Ok(()));
            }
            Err(s) => count(&codes, "WatchTasks", Err(s)),
        }
    }
    // Repeated fields as large as a request may carry, 25 a second each.
    for which in 0..if on("fields") { 2 } else { 0 } {
        let (ch, stop, codes) = (ch.clone(), stop.clone(), codes.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(40));
            while !stop.is_cancelled() {
                tick.tick().await;
                let r = if which == 0 {
                    NotificationServiceClient::new(ch.clone())
                        .list_tasks(with_token(
                            A,
                            v1::ListTasksRequest {
                                states: vec![1; 100_000],
                                ..Default::default()
                            },
                        ))
                        .await
                        .map(|_| ())
                } else {
                    HealthServiceClient::new(ch.clone())
                        .list_health(with_token(
                            A,
                            v1::ListHealthRequest {
                                bands: vec![1; 100_000],
                                ..Default::default()
                            },
                        ))
                        .await
                        .map(|_| ())
                };
                count(
                    &codes,
                    if which == 0 {
                        "ListTasks 100k states"
                    } else {
                        "ListHealth 100k bands"
                    },
                    r,
                );
            }
        }));
    }
    // The ingestion flood: 6 clients, 10 batches of 1,000 a second each —
    // 60,000 signals/s offered, twice what one replica takes in.
    for client in 0..if on("flood") { 6 } else { 0 } {
        let (ch, stop, codes) = (ch.clone(), stop.clone(), codes.clone());
        tasks.push(tokio::spawn(async move {
            let mut ing = IngestionServiceClient::new(ch).max_encoding_message_size(64 << 20);
            // Built ahead, so the flood costs this process little: the
            // server's work is what is measured.
            let batches: Vec<v1::IngestSignalsRequest> = (0..50)
                .map(|n| v1::IngestSignalsRequest {
                    signals: (0..1_000)
                        .map(|k| {
                            signal(
                                &format!("a-flood-{client}-{n}-{k}"),
                                &format!("a-{}", k % 200),
                                retain_testkit::session("u1", 30),
                            )
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect();
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            for batch in batches.iter().cycle() {
                tick.tick().await;
                if stop.is_cancelled() {
                    break;
                }
                let r = ing.ingest_signals(with_token(A, batch.clone())).await;
                count(&codes, "IngestSignals 1,000", r.map(|_| ()));
            }
        }));
    }
    // Heavy queries: 20 calls of the current month's portfolio KPIs at
    // once, again and again (each read from A's signals at query time).
    for _ in 0..if on("heavy") { 20 } else { 0 } {
        let (ch, stop, codes) = (ch.clone(), stop.clone(), codes.clone());
        tasks.push(tokio::spawn(async move {
            let mut metrics = MetricsServiceClient::new(ch);
            while !stop.is_cancelled() {
                let r = metrics
                    .get_portfolio_metrics(with_token(A, v1::GetPortfolioMetricsRequest::default()))
                    .await;
                count(&codes, "GetPortfolioMetrics (20 at once)", r.map(|_| ()));
            }
        }));
    }
    // Rescoring asked again and again.
    if on("rescore") {
        let (ch, stop, codes) = (ch.clone(), stop.clone(), codes.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let r = HealthServiceClient::new(ch.clone())
                    .rescore_all(with_token(A, v1::RescoreAllRequest::default()))
                    .await;
                count(&codes, "RescoreAll", r.map(|_| ()));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    stop.cancelled().await;
    for t in tasks {
        t.await.unwrap();
    }
    drop(held);
    codes.lock().unwrap().clone()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut seconds = 20;
    let mut tenant_rate = 2_000;
    let mut kinds: Vec<String> = ["streams", "fields", "flood", "rescore"]
        .map(String::from)
        .to_vec();
    let mut abuser_apart = false;
    let mut a_signals: usize = 0;
    let mut b_rate: u64 = 0;
    let mut abuser_of: Option<(String, u64)> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().context("--seconds N")?.parse()?,
            "--abuser-apart" => abuser_apart = true,
            "--a-signals" => a_signals = args.next().context("--a-signals N")?.parse()?,
            // The child `--abuser-apart` starts: A's abuse of URL for N s.
            "--abuser-of" => {
                let url = args.next().context("--abuser-of URL SECONDS")?;
                let secs = args.next().context("--abuser-of URL SECONDS")?.parse()?;
                abuser_of = Some((url, secs));
            }
            "--tenant-rate" => tenant_rate = args.next().context("--tenant-rate N")?.parse()?,
            "--b-rounds-per-second" => {
                b_rate = args.next().context("--b-rounds-per-second N")?.parse()?;
            }
            "--abuse" => {
                kinds = args
                    .next()
                    .context("--abuse LIST")?
                    .split(',')
                    .map(str::to_owned)
                    .collect();
            }
            "--help" | "-h" => {
                println!(
                    "usage: retain-fairness [--seconds N] [--tenant-rate N] [--abuse streams,fields,flood,rescore,heavy]\n\
                     \x20                      [--a-signals N] [--abuser-apart]\n\n\
                     --seconds N   each phase (default 20)\n\
                     --a-signals N  N more sessions of tenant A's, loaded before (the replica started\n\
                     \x20             without a rate limit for them, then again with it)\n\
                     --abuser-apart  tenant A's client in a process of its own at the lowest CPU priority\n\
                     \x20             (nice 19), standing in for a client on another machine\n\
                     --tenant-rate N  ingestion.tenant_signals_per_second of both tenants (default 2000;\n\
                     \x20             the burst is twice that, at least 5000)\n\
                     --abuse LIST  what tenant A does (default: all four)\n\
                     --b-rounds-per-second N  B's mix paced at N rounds of its RPCs a second\n\
                     \x20             (default 0: one round after another, as fast as the replica answers)"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other} (--help)"),
        }
    }
    if let Some((url, secs)) = abuser_of {
        let ch = tonic::transport::Endpoint::from_shared(url)?
            .connect()
            .await?;
        let stop = CancellationToken::new();
        let abuser = tokio::spawn(abuse(ch, kinds, stop.clone()));
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop.cancel();
        for (what, n) in abuser.await? {
            println!("{n}\t{what}");
        }
        return Ok(());
    }
    let pg = BenchPostgres::start().map_err(anyhow::Error::msg)?;
    let url = pg
        .database("retain_fairness")
        .await
        .map_err(anyhow::Error::msg)?;
    let dir: PathBuf = std::env::temp_dir().join(format!("retain-fairness-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    if a_signals > 0 {
        let loader = start(&url, &dir, 0)?;
        serving(&loader, &dir).await?;
        let ch = tonic::transport::Endpoint::from_shared(loader.url.clone())?
            .connect()
            .await?;
        let started = Instant::now();
        load_a(&ch, a_signals).await?;
        println!(
            "loaded {a_signals} more sessions of tenant A in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let replica = start(&url, &dir, tenant_rate)?;
    serving(&replica, &dir).await?;
    let ch = tonic::transport::Endpoint::from_shared(replica.url.clone())?
        .connect()
        .await?;
    seed(&ch, A, "a").await?;
    seed(&ch, B, "b").await?;
    // Let the pipeline score the seeded accounts before measuring.
    tokio::time::sleep(Duration::from_secs(5)).await;

    println!(
        "tenant B's steady mix, {seconds} s per phase, one replica (retain serve, PostgreSQL), \
         each tenant's ingestion limited to {tenant_rate} signals/s"
    );
    let pid = replica.child.id();
    let (alone, rss_alone) = measure_b_and_rss(&ch, (seconds, b_rate), pid).await;
    let stop = CancellationToken::new();
    println!(
        "  tenant A's abuse: {}{}",
        kinds.join(", "),
        if abuser_apart {
            " (its client a process of its own, nice 19)"
        } else {
            ""
        }
    );
    let (abused, a_codes) = if abuser_apart {
        let child = Command::new("nice")
            .args(["-n", "19"])
            .arg(std::env::current_exe()?)
            .args(["--abuse", &kinds.join(","), "--abuser-of", &replica.url])
            .arg((seconds + 3).to_string())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting tenant A's client")?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let abused = measure_b_and_rss(&ch, (seconds, b_rate), pid).await;
        let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
        let codes = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (n, what) = l.split_once('\t')?;
                Some((what.to_owned(), n.parse().ok()?))
            })
            .collect();
        (abused, codes)
    } else {
        let abuser = tokio::spawn(abuse(ch.clone(), kinds, stop.clone()));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let abused = measure_b_and_rss(&ch, (seconds, b_rate), pid).await;
        stop.cancel();
        (abused, abuser.await?)
    };
    let (abused, rss_abused) = abused;
    let rss = [rss_alone, rss_abused];

    let mut p99 = [0.0; 2];
    for (i, (name, mut phase)) in [("alone", alone), ("while A abuses", abused)]
        .into_iter()
        .enumerate()
    {
        phase.latencies.sort();
        p99[i] = pct(&phase.latencies, 0.99);
        println!(
            "  B {name:>15}: {} calls, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, errors {}; \
             the replica's peak RSS {:.0} MiB",
            phase.latencies.len(),
            pct(&phase.latencies, 0.50),
            p99[i],
            pct(&phase.latencies, 1.0),
            phase.errors.values().sum::<usize>(),
            rss[i]
        );
        for (e, n) in &phase.errors {
            println!("      {n} x {e}");
        }
        let per_rpc: Vec<String> = phase
            .by_rpc
            .iter_mut()
            .map(|(rpc, l)| {
                l.sort();
                format!("{rpc} {:.1}", pct(l, 0.99))
            })
            .collect();
        println!("      p99 by RPC (ms): {}", per_rpc.join(", "));
    }
    println!(
        "  B's p99 under abuse / alone: {:.2} (goal: at most 2)",
        p99[1] / p99[0].max(1e-9)
    );
    println!("  what A was answered:");
    for (what, n) in &a_codes {
        println!("      {n} x {what}");
    }
    println!("  the replica's log: {}", dir.join("retain.log").display());
    Ok(())
}

async fn wait_serving(url: &str) -> anyhow::Result<()> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(ch) = endpoint.connect().await {
            let health = tonic_health::pb::health_client::HealthClient::new(ch)
                .check(tonic_health::pb::HealthCheckRequest {
                    service: String::new(),
                })
                .await;
            if health.is_ok_and(|r| {
                r.get_ref().status()
                    == tonic_health::pb::health_check_response::ServingStatus::Serving
            }) {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{url} did not serve within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
