//! `retain-loadgen`: drives the ingestion service and reports persisted
//! signals/s and per-call latency percentiles, beside a raw-insert baseline
//! of the same rows measured in the same run.
//!
//! ```text
//! cargo run --release -p retain-loadgen                  # the documented benchmark
//! cargo run --release -p retain-loadgen -- --help        # knobs
//! ```
//!
//! By default it runs, on PostgreSQL (a throwaway cluster with default
//! durability, or `--database-url` / `RETAIN_BENCH_DATABASE_URL`, an admin
//! URL) and then on SQLite:
//!
//! 1. the baselines: the batches' `signals` rows written raw by
//!    `--clients` writers, one statement per batch — on PostgreSQL with a
//!    multi-row `INSERT`, `INSERT … UNNEST` and `COPY … FROM STDIN` (the
//!    signals-only reference), on SQLite with a multi-row `INSERT` and with
//!    single-row `INSERT`s in one transaction (the reference); then the
//!    fairest limit: every row the service writes for a batch, one
//!    transaction per batch, by binary `COPY` on PostgreSQL and prepared
//!    single-row `INSERT`s on SQLite ([`copy`]). Every line is printed as
//!    a ratio to both ("vs raw", "vs fair");
//! 2. `IngestSignals` with `--clients` concurrent clients and batches of
//!    `--batch`;
//! 3. `StreamSignals`, one stream per client, same batches;
//! 4. `IngestSignals` carrying 1 signal per call from `--small-clients`
//!    clients.
//!
//! The service is the release binary `retain-ingestion`, started as its
//! own process on 127.0.0.1 (real gRPC, a tokens file, its own runtime and
//! connection pool), as users deploy it ([`process`]); build it first with
//! `cargo build --release --bins`. `--in-process` serves it inside this
//! process instead. With `--target URL --token T` the scenarios 2–4 run
//! against a remote server (no baseline).

mod copy;
mod process;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use prost::Message;
use retain_proto::v1;
use retain_proto::v1::ingestion_service_client::IngestionServiceClient;
use retain_runtime::{Authenticator, Principal, Role, ServeOptions, Settings};
use retain_store::now_micros;
use retain_testkit::{BenchPostgres, TestDatabase};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement, Value};
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

const USAGE: &str = "usage: retain-loadgen [options]

  --backend postgres|sqlite|both   databases to run on (both)
  --signals N                      signals per batched scenario (200000)
  --batch N                        signals per call or streamed batch (1000)
  --clients N                      concurrent clients / writers (4)
  --small-signals N                signals in the 1-signal-per-call scenario (20000)
  --small-clients N                clients in the 1-signal-per-call scenario (64)
  --group-commit on|off            shared transactions for concurrent calls (on)
  --in-process                     serve ingestion inside this process instead
                                   of running target/release/retain-ingestion
  --database-url URL               PostgreSQL admin URL to create databases in
                                   (default: RETAIN_BENCH_DATABASE_URL, else a
                                   throwaway local cluster)
  --target URL[,URL...] --token T  run against remote ingestion servers
                                   (scenarios 2-4 only); with several URLs
                                   the clients spread over them in turn, as
                                   a client balancing over a headless
                                   Service's replicas does";

#[derive(Debug, Clone)]
struct Args {
    backends: Vec<DatabaseBackend>,
    signals: usize,
    batch: usize,
    clients: usize,
    small_signals: usize,
    small_clients: usize,
    database_url: Option<String>,
    target: Option<Vec<String>>,
    token: String,
    group_commit: bool,
    in_process: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        backends: vec![DatabaseBackend::Postgres, DatabaseBackend::Sqlite],
        signals: 200_000,
        batch: 1_000,
        clients: 4,
        small_signals: 20_000,
        small_clients: 64,
        database_url: std::env::var("RETAIN_BENCH_DATABASE_URL").ok(),
        target: None,
        token: "loadgen-token".into(),
        group_commit: true,
        in_process: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        if flag == "--in-process" {
            a.in_process = true;
            continue;
        }
        let value = it
            .next()
            .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))?;
        let num = || -> anyhow::Result<usize> {
            value
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("{flag}: {value:?} is not a positive number"))
        };
        match flag.as_str() {
            "--backend" => {
                a.backends = match value.as_str() {
                    "postgres" => vec![DatabaseBackend::Postgres],
                    "sqlite" => vec![DatabaseBackend::Sqlite],
                    "both" => vec![DatabaseBackend::Postgres, DatabaseBackend::Sqlite],
                    _ => bail!("--backend: {value:?} is not postgres, sqlite or both"),
                }
            }
            "--signals" => a.signals = num()?,
            "--batch" => a.batch = num()?,
            "--clients" => a.clients = num()?,
            "--small-signals" => a.small_signals = num()?,
            "--small-clients" => a.small_clients = num()?,
            "--database-url" => a.database_url = Some(value),
            "--target" => {
                a.target = Some(value.split(',').map(str::to_owned).collect());
            }
            "--token" => a.token = value,
            "--group-commit" => {
                a.group_commit = match value.as_str() {
                    "on" => true,
                    "off" => false,
                    _ => bail!("--group-commit: {value:?} is not on or off"),
                }
            }
            _ => bail!("unknown option {flag}\n\n{USAGE}"),
        }
    }
    Ok(a)
}

/// A deterministic, realistic mix of signal kinds over 10,000 accounts.
fn generate(tag: &str, n: usize) -> Vec<v1::Signal> {
    use v1::signal::Body;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let r = next();
            let account = format!("acct-{:05}", r % 10_000);
            let user = format!("user-{}", (r >> 20) % 20);
            let body = match (r >> 8) % 100 {
                0..=49 => Body::Session(v1::Session {
                    user_id: user,
                    duration_seconds: ((r >> 32) % 3_600) as i64,
                }),
                50..=74 => Body::Action(v1::ProductAction {
                    user_id: user,
                    action_key: ["export_report", "create_dashboard", "invite", "share"]
                        [((r >> 33) % 4) as usize]
                        .into(),
                    count: 1 + ((r >> 40) % 5) as i64,
                }),
                75..=79 => Body::Ticket(v1::SupportTicket {
                    ticket_id: format!("T-{i}"),
                    status: v1::TicketStatus::Opened as i32,
                    topics: vec!["integration".into()],
                    contacts_until_resolution: 0,
                }),
                80..=84 => Body::Survey(v1::SurveyAnswer {
                    kind: v1::SurveyKind::Nps as i32,
                    score: ((r >> 36) % 11) as i32,
                    user_id: user,
                    ..Default::default()
                }),
                85..=87 => Body::Subscription(v1::SubscriptionChange {
                    amount: Some(v1::Money {
                        amount_minor: 10_000 + ((r >> 30) % 90_000) as i64,
                        currency: "USD".into(),
                    }),
                    interval: v1::BillingInterval::Monthly as i32,
                    churn_reason: 0,
                    add_on: false,
                    opening_balance: false,
                }),
                88..=89 => Body::Billing(v1::BillingStatusChange {
                    status: v1::BillingStatus::Current as i32,
                }),
                90..=94 => Body::Milestone(v1::OnboardingMilestone {
                    milestone_key: "data_source_connected".into(),
                    achieved: true,
                    user_id: user,
                }),
                95..=97 => Body::Account(v1::AccountUpsert {
                    segment: Some(
                        ["Agencies", "SMB", "Enterprise"][((r >> 34) % 3) as usize].into(),
                    ),
                    seats: Some(5 + ((r >> 41) % 50) as i32),
                    ..Default::default()
                }),
                _ => Body::Trial(v1::Trial {
                    event: v1::TrialEvent::Started as i32,
                }),
            };
            v1::Signal {
                event_id: format!("{tag}-{i}"),
                account_id: account,
                occurred_at: Some(prost_types::Timestamp {
                    seconds: now - 86_400 + ((r >> 16) % 86_000) as i64,
                    nanos: 0,
                }),
                body: Some(body),
            }
        })
        .collect()
}

/// A result line.
struct Line {
    backend: &'static str,
    scenario: String,
    signals: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Line {
    fn rate(&self) -> f64 {
        self.signals as f64 / self.elapsed.as_secs_f64()
    }

    fn pct(&self, p: f64) -> String {
        if self.latencies.is_empty() {
            return "-".into();
        }
        let mut l = self.latencies.clone();
        l.sort();
        let i = ((l.len() as f64 * p).ceil() as usize).clamp(1, l.len()) - 1;
        format!("{:.1}", l[i].as_secs_f64() * 1e3)
    }
}

/// Prints `lines`, each as a ratio to the signals-only reference and to
/// the fairest limit where they were measured.
fn print(lines: &[Line], reference: Option<f64>, fairest: Option<f64>) {
    let ratio = |l: &Line, b: Option<f64>| {
        b.map_or("-".into(), |b| format!("{:.0} %", 100.0 * l.rate() / b))
    };
    for l in lines {
        println!(
            "{:<10} {:<64} {:>10.0} {:>8} {:>8} {:>8} {:>9} {:>9}",
            l.backend,
            l.scenario,
            l.rate(),
            l.pct(0.50),
            l.pct(0.95),
            l.pct(0.99),
            ratio(l, reference),
            ratio(l, fairest)
        );
    }
}

/// A fresh, migrated database on `backend`, and its URL.
async fn database(
    backend: DatabaseBackend,
    args: &Args,
    keep: &mut Vec<Box<dyn std::any::Any>>,
) -> anyhow::Result<(DatabaseConnection, String)> {
    let pool = retain_store::PoolOptions {
        max_connections: 16,
        acquire_timeout: Duration::from_secs(30),
    };
    match backend {
        DatabaseBackend::Postgres => {
            let pg = match &args.database_url {
                Some(url) => BenchPostgres::at(url.clone()),
                None => BenchPostgres::start().map_err(|e| anyhow::anyhow!(e))?,
            };
            let url = pg
                .database(&format!("retain_loadgen_{}", std::process::id()))
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            keep.push(Box::new(pg));
            let db = retain_store::connect(&url, &pool).await?;
            retain_store::migrate(&db).await?;
            Ok((db, url))
        }
        _ => {
            let db = TestDatabase::sqlite().await;
            let conn = db.conn.clone();
            let url = db.url.clone();
            keep.push(Box::new(db));
            Ok((conn, url))
        }
    }
}

/// The `signals` rows of `batch`, as the service would write them.
struct Row {
    account: String,
    at: i64,
    event: String,
    kind: i16,
    payload: Vec<u8>,
}

fn rows(batch: &[v1::Signal]) -> Vec<Row> {
    batch
        .iter()
        .map(|s| Row {
            account: s.account_id.clone(),
            at: s
                .occurred_at
                .as_ref()
                .map_or(0, retain_proto::convert::micros),
            event: s.event_id.clone(),
            kind: s
                .body
                .as_ref()
                .map_or(0, |b| retain_proto::convert::kind_of(b).code()),
            payload: s.encode_to_vec(),
        })
        .collect()
}

/// How the baseline writes a batch of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    /// One multi-row `INSERT … VALUES (…), (…)` (both backends).
    Values,
    /// `INSERT … SELECT * FROM UNNEST($1::text[], …)` (PostgreSQL).
    Unnest,
    /// `COPY … FROM STDIN` (PostgreSQL).
    Copy,
    /// One single-row `INSERT` per row, all in one transaction (the
    /// statement is prepared once and cached by the driver).
    Rows,
}

/// Baseline: the rows written raw by `clients` writers, one statement per
/// batch, each its own transaction.
async fn baseline(
    db: &DatabaseConnection,
    batches: Vec<Vec<v1::Signal>>,
    clients: usize,
    method: Method,
) -> anyhow::Result<Duration> {
    let batches: Vec<Vec<Row>> = batches.iter().map(|b| rows(b)).collect();
    writers(batches, clients, db, move |db, batch| async move {
        match method {
            Method::Copy => copy_batch(&db, &batch).await,
            Method::Unnest => unnest_batch(&db, &batch).await,
            Method::Values => insert_batch(&db, &batch).await,
            Method::Rows => insert_rows(&db, &batch).await,
        }
    })
    .await
}

/// `clients` writers, each taking the next batch as it finishes one, until
/// none is left; returns the elapsed time.
async fn writers<T, F, Fut>(
    batches: Vec<T>,
    clients: usize,
    db: &DatabaseConnection,
    write: F,
) -> anyhow::Result<Duration>
where
    T: Send + 'static,
    F: Fn(DatabaseConnection, T) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let queue = Arc::new(Mutex::new(VecDeque::from(batches)));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (queue, db, write) = (queue.clone(), db.clone(), write.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(batch) = queue
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .pop_front()
                else {
                    return anyhow::Ok(());
                };
                write(db.clone(), batch).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(start.elapsed())
}

async fn copy_batch(db: &DatabaseConnection, batch: &[Row]) -> anyhow::Result<()> {
    use sqlx::postgres::PgPoolCopyExt;
    let now = now_micros();
    let mut text = String::with_capacity(batch.len() * 400);
    for r in batch {
        // COPY text format; bytea as \\x… (the backslash escaped).
        text.push_str(&format!(
            "baseline\t{}\t{}\t{}\t{}\t1\t\\\\x{}\t{now}\n",
            r.account,
            r.at,
            r.event,
            r.kind,
            hex::encode(&r.payload)
        ));
    }
    let mut copy = db
        .get_postgres_connection_pool()
        .copy_in_raw(
            "COPY signals (tenant_id, account_id, occurred_at, event_id, kind, mode, payload, ingested_at) FROM STDIN",
        )
        .await?;
    copy.send(text.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

async fn unnest_batch(db: &DatabaseConnection, batch: &[Row]) -> anyhow::Result<()> {
    let now = now_micros();
    sqlx::query(
        "INSERT INTO signals (tenant_id, account_id, occurred_at, event_id, kind, mode, payload, ingested_at) \
         SELECT 'baseline', a, o, e, k, 1, p, $6 FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::int2[], $5::bytea[]) AS t(a, o, e, k, p)",
    )
    .bind(batch.iter().map(|r| r.account.clone()).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.at).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.event.clone()).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.kind).collect::<Vec<_>>())
    .bind(batch.iter().map(|r| r.payload.clone()).collect::<Vec<_>>())
    .bind(now)
    .execute(db.get_postgres_connection_pool())
    .await?;
    Ok(())
}

async fn insert_rows(db: &DatabaseConnection, batch: &[Row]) -> anyhow::Result<()> {
    use sea_orm::TransactionTrait;
    let now = now_micros();
    let tx = db.begin().await?;
    for r in batch {
        tx.execute_raw(Statement::from_sql_and_values(
            tx.get_database_backend(),
            "INSERT INTO signals (tenant_id, account_id, occurred_at, event_id, kind, mode, payload, ingested_at) \
             VALUES ('baseline', $1, $2, $3, $4, 1, $5, $6)",
            [
                Value::from(r.account.clone()),
                r.at.into(),
                r.event.clone().into(),
                r.kind.into(),
                r.payload.clone().into(),
                now.into(),
            ],
        ))
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn insert_batch(db: &DatabaseConnection, batch: &[Row]) -> anyhow::Result<()> {
    const COLS: usize = 5;
    let now = now_micros();
    for chunk in batch.chunks(retain_store::MAX_BIND_PARAMS / COLS) {
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * COLS);
        let mut sql = String::from(
            "INSERT INTO signals (tenant_id, account_id, occurred_at, event_id, kind, mode, payload, ingested_at) VALUES ",
        );
        for (n, r) in chunk.iter().enumerate() {
            let p = 1 + n * COLS;
            if n > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "('baseline',${},${},${},${},1,${},{now})",
                p,
                p + 1,
                p + 2,
                p + 3,
                p + 4
            ));
            values.extend([
                Value::from(r.account.clone()),
                r.at.into(),
                r.event.clone().into(),
                r.kind.into(),
                r.payload.clone().into(),
            ]);
        }
        db.execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    }
    Ok(())
}

/// The fairest limit: every row the service writes for each batch, from
/// `clients` writers, one transaction per batch — binary `COPY` on
/// PostgreSQL, prepared single-row `INSERT`s on SQLite ([`copy`]).
/// Returns the elapsed time and the rows written.
async fn fairest(
    db: &DatabaseConnection,
    batches: Vec<Vec<v1::Signal>>,
    clients: usize,
) -> anyhow::Result<(Duration, usize)> {
    let planned = copy::plan(batches);
    let rows = planned.iter().map(copy::rows).sum();
    let elapsed = writers(planned, clients, db, |db, batch| async move {
        if db.get_database_backend() == DatabaseBackend::Postgres {
            copy::write(db.get_postgres_connection_pool(), &batch).await
        } else {
            copy::insert(&db, &batch).await
        }
    })
    .await?;
    copy::clean(db).await?;
    Ok((elapsed, rows))
}

/// Serves ingestion on 127.0.0.1 over `db` inside this process; returns
/// its URL.
async fn serve(
    db: &DatabaseConnection,
    token: &str,
    group_commit: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<String> {
    let mut settings = Settings::default();
    let own = retain_ingestion::IngestionSettings {
        group_commit,
        tenant_signals_per_second: 0, // measure the service, not the limiter
        max_batch_signals: 10_000,
        ..Default::default()
    };
    settings.server.max_message_bytes = 16 << 20;
    settings.server.concurrency_limit = 1_024;
    let mut auth = Authenticator::default();
    auth.insert(
        token,
        Principal {
            tenant: retain_domain_tenant("loadgen")?,
            roles: vec![Role::Ingest, Role::Read],
            name: "loadgen".into(),
            email: None,
        },
    );
    let ctx = retain_runtime::Context::new(
        db.clone(),
        settings.clone(),
        retain_runtime::Clock::system(),
    )?;
    let services = <retain_ingestion::Ingestion as retain_runtime::Service>::build(&ctx, own)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let opts = ServeOptions {
        settings: settings.server.clone(),
        auth: Arc::new(auth),
        db: db.clone(),
        health_interval: Duration::from_secs(5),
        bus_metrics: None,
    };
    tokio::spawn(retain_runtime::serve(listener, opts, services, shutdown));
    Ok(format!("http://{addr}"))
}

fn retain_domain_tenant(t: &str) -> anyhow::Result<retain_domain::TenantId> {
    retain_domain::TenantId::parse(t).map_err(|e| anyhow::anyhow!("{e}"))
}

async fn client(url: &str) -> anyhow::Result<IngestionServiceClient<Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())?
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(IngestionServiceClient::new(channel)
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20))
}

fn authed<T>(token: &str, msg: T) -> anyhow::Result<tonic::Request<T>> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}"))?,
    );
    Ok(r)
}

/// `IngestSignals` from `clients` clients (up to 16 connections, spread
/// over `urls` in turn) until every batch is sent. Returns (elapsed,
/// per-call latencies, accepted).
async fn unary(
    urls: &[String],
    token: &str,
    batches: Vec<Vec<v1::Signal>>,
    clients: usize,
) -> anyhow::Result<(Duration, Vec<Duration>, usize)> {
    let queue = Arc::new(Mutex::new(VecDeque::from(batches)));
    let mut conns = Vec::new();
    for i in 0..clients.min(16).max(urls.len()) {
        conns.push(client(&urls[i % urls.len()]).await?);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let queue = queue.clone();
        let mut cl = conns[c % conns.len()].clone();
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut accepted = 0usize;
            loop {
                let Some(signals) = queue
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .pop_front()
                else {
                    return anyhow::Ok((lat, accepted));
                };
                let t = Instant::now();
                let r = cl
                    .ingest_signals(authed(
                        &token,
                        v1::IngestSignalsRequest {
                            signals,
                            ..Default::default()
                        },
                    )?)
                    .await?
                    .into_inner();
                lat.push(t.elapsed());
                accepted += r.accepted as usize;
            }
        }));
    }
    join(start, tasks).await
}

/// `StreamSignals`: one stream per client over its share of the batches,
/// the clients spread over `urls` in turn.
async fn stream(
    urls: &[String],
    token: &str,
    batches: Vec<Vec<v1::Signal>>,
    clients: usize,
) -> anyhow::Result<(Duration, Vec<Duration>, usize)> {
    let mut shares: Vec<Vec<Vec<v1::Signal>>> = vec![Vec::new(); clients];
    for (i, b) in batches.into_iter().enumerate() {
        shares[i % clients].push(b);
    }
    let mut conns = Vec::new();
    for i in 0..clients {
        conns.push(client(&urls[i % urls.len()]).await?);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (share, mut cl) in shares.into_iter().zip(conns) {
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            let sent: Arc<Mutex<VecDeque<Instant>>> = Arc::default();
            let (tx, rx) = tokio::sync::mpsc::channel::<v1::StreamSignalsRequest>(2);
            let mut responses = cl
                .stream_signals(authed(
                    &token,
                    tokio_stream::wrappers::ReceiverStream::new(rx),
                )?)
                .await?
                .into_inner();
            let sender = {
                let sent = sent.clone();
                tokio::spawn(async move {
                    for (i, signals) in share.into_iter().enumerate() {
                        let req = v1::StreamSignalsRequest {
                            batch_id: i.to_string(),
                            batch: Some(v1::IngestSignalsRequest {
                                signals,
                                ..Default::default()
                            }),
                        };
                        if let Ok(mut s) = sent.lock() {
                            s.push_back(Instant::now());
                        }
                        if tx.send(req).await.is_err() {
                            break;
                        }
                    }
                })
            };
            let mut lat = Vec::new();
            let mut accepted = 0usize;
            while let Some(r) = responses.message().await? {
                if let Some(t) = sent.lock().ok().and_then(|mut s| s.pop_front()) {
                    lat.push(t.elapsed());
                }
                accepted += r.result.map_or(0, |x| x.accepted as usize);
            }
            sender.await?;
            anyhow::Ok((lat, accepted))
        }));
    }
    join(start, tasks).await
}

/// One client's call latencies and accepted signals.
type ClientResult = (Vec<Duration>, usize);

/// Waits for the clients; returns (elapsed since `start`, every call's
/// latency, signals accepted).
async fn join(
    start: Instant,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<ClientResult>>>,
) -> anyhow::Result<(Duration, Vec<Duration>, usize)> {
    let mut all = Vec::new();
    let mut accepted = 0;
    for t in tasks {
        let (l, a) = t.await??;
        all.extend(l);
        accepted += a;
    }
    Ok((start.elapsed(), all, accepted))
}

fn batches(tag: &str, n: usize, size: usize) -> Vec<Vec<v1::Signal>> {
    generate(tag, n)
        .chunks(size)
        .map(<[v1::Signal]>::to_vec)
        .collect()
}

async fn scenarios(
    name: &'static str,
    urls: &[String],
    args: &Args,
    tag: &str,
) -> anyhow::Result<Vec<Line>> {
    let plan = [
        (
            false,
            "u",
            args.signals,
            args.batch,
            args.clients,
            format!("IngestSignals {} clients × {}", args.clients, args.batch),
        ),
        (
            true,
            "s",
            args.signals,
            args.batch,
            args.clients,
            format!("StreamSignals {} streams × {}", args.clients, args.batch),
        ),
        (
            false,
            "1",
            args.small_signals,
            1,
            args.small_clients,
            format!("IngestSignals {} clients × 1", args.small_clients),
        ),
    ];
    let mut lines = Vec::new();
    for (streamed, suffix, n, size, clients, scenario) in plan {
        let work = batches(&format!("{tag}-{suffix}"), n, size);
        let (elapsed, latencies, accepted) = if streamed {
            stream(urls, &args.token, work, clients).await?
        } else {
            unary(urls, &args.token, work, clients).await?
        };
        if accepted != n {
            bail!("{scenario}: {accepted} of {n} signals accepted");
        }
        lines.push(Line {
            backend: name,
            scenario,
            signals: accepted,
            elapsed,
            latencies,
        });
    }
    Ok(lines)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    println!(
        "retain-loadgen: {} signals per batched scenario, batches of {}, {} clients; {} single-signal calls from {} clients; group commit {}",
        args.signals,
        args.batch,
        args.clients,
        args.small_signals,
        args.small_clients,
        if args.group_commit { "on" } else { "off" }
    );
    println!(
        "ingestion runs {}",
        if args.target.is_some() {
            "remotely (--target)"
        } else if args.in_process {
            "inside this process (--in-process)"
        } else {
            "as its own process (target/release/retain-ingestion)"
        }
    );
    println!(
        "{:<10} {:<64} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "backend", "scenario", "signals/s", "p50 ms", "p95 ms", "p99 ms", "vs raw", "vs fair"
    );
    let tag = format!("lg{}", now_micros());
    if let Some(urls) = &args.target {
        // Servers started just before (a replica set) may not be ready yet.
        for url in urls {
            process::wait_serving(url, Duration::from_secs(60), || Ok(())).await?;
        }
        let lines = scenarios("remote", urls, &args, &tag).await?;
        print(&lines, None, None);
        return Ok(());
    }
    for backend in args.backends.clone() {
        let name = if backend == DatabaseBackend::Postgres {
            "postgres"
        } else {
            "sqlite"
        };
        let mut keep = Vec::new();
        let (db, url) = database(backend, &args, &mut keep).await?;
        let methods: &[Method] = if backend == DatabaseBackend::Postgres {
            &[Method::Values, Method::Unnest, Method::Copy]
        } else {
            &[Method::Values, Method::Rows]
        };
        let mut bases = Vec::new();
        for (i, &method) in methods.iter().enumerate() {
            let elapsed = baseline(
                &db,
                batches(&format!("{tag}-b{i}"), args.signals, args.batch),
                args.clients,
                method,
            )
            .await?;
            bases.push(Line {
                backend: name,
                scenario: format!(
                    "raw {} into signals, {} writers × {}",
                    match method {
                        Method::Values => "multi-row INSERT",
                        Method::Unnest => "INSERT … UNNEST",
                        Method::Copy => "COPY",
                        Method::Rows => "single-row INSERTs",
                    },
                    args.clients,
                    args.batch
                ),
                signals: args.signals,
                elapsed,
                latencies: Vec::new(),
            });
            db.execute_unprepared("DELETE FROM signals").await?;
            if backend == DatabaseBackend::Postgres {
                db.execute_unprepared("VACUUM signals").await?;
            }
        }
        // The reference is the last, fastest method: COPY on PostgreSQL,
        // single-row INSERTs in one transaction on SQLite.
        let base = bases.pop().context("no baseline ran")?;
        let fair = {
            let (elapsed, rows) = fairest(
                &db,
                batches(&format!("{tag}-f"), args.signals, args.batch),
                args.clients,
            )
            .await?;
            Some(Line {
                backend: name,
                scenario: format!(
                    "fairest limit: all {:.1} rows/signal, {}, {} × {}",
                    rows as f64 / args.signals as f64,
                    if backend == DatabaseBackend::Postgres {
                        "binary COPY"
                    } else {
                        "prepared INSERTs"
                    },
                    args.clients,
                    args.batch
                ),
                signals: args.signals,
                elapsed,
                latencies: Vec::new(),
            })
        };
        let shutdown = CancellationToken::new();
        let (url, _service) = if args.in_process {
            let url = serve(&db, &args.token, args.group_commit, shutdown.clone()).await?;
            (url, None)
        } else {
            let service = process::start(&url, &args.token, args.group_commit).await?;
            (service.url.clone(), Some(service))
        };
        let lines = scenarios(name, &[url], &args, &tag).await?;
        let (rate, fair_rate) = (base.rate(), fair.as_ref().map(Line::rate));
        print(&bases, Some(rate), fair_rate);
        print(&[base], Some(rate), fair_rate);
        print(fair.as_slice(), Some(rate), fair_rate);
        print(&lines, Some(rate), fair_rate);
        shutdown.cancel();
    }
    Ok(())
}
