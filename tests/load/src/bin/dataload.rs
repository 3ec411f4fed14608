//! `retain-dataload`: bulk-loads a generated tenant history (retain-datagen)
//! straight into PostgreSQL with `COPY` — the rows ingestion would have
//! written, not millions of gRPC calls — then times the metrics service's
//! portfolio queries over it.
//!
//! ```text
//! cargo run --release -p retain-loadgen --bin retain-dataload -- --accounts 100000
//! ```
//!
//! 100,000 accounts over 100 days is about 9.3 million signals. Options:
//! `--accounts N` (10000), `--history-days D` (100), `--database-url URL`
//! (an admin URL of a PostgreSQL server to create `retain_dataload` in;
//! default `RETAIN_BENCH_DATABASE_URL`, else a throwaway durable cluster),
//! `--queries N` (5: timed calls of each portfolio RPC).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use prost::Message;
use retain_datagen::{Config, generate_account, generate_costs, mode_for};
use retain_metrics::{Metrics, MetricsSettings};
use retain_proto::v1;
use retain_proto::v1::metrics_service_client::MetricsServiceClient;
use retain_runtime::{Clock, Context, ServeOptions, Service, Settings};
use retain_testkit::{BenchPostgres, READER, authenticator, with_token};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgPoolCopyExt;
use tokio_util::sync::CancellationToken;

const TENANT: &str = "acme";

struct Args {
    accounts: usize,
    history_days: u32,
    database_url: Option<String>,
    queries: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        accounts: 10_000,
        history_days: 100,
        database_url: std::env::var("RETAIN_BENCH_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty()),
        queries: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--accounts" => a.accounts = value()?.parse()?,
            "--history-days" => a.history_days = value()?.parse()?,
            "--database-url" => a.database_url = Some(value()?),
            "--queries" => a.queries = value()?.parse()?,
            "-h" | "--help" => {
                println!(
                    "usage: retain-dataload [--accounts N] [--history-days D] [--database-url URL] [--queries N]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(a)
}

/// The COPY text of one signal's rows: `signals`, `signal_ids`.
fn rows(s: &v1::Signal, now: i64, signals: &mut String, ids: &mut String) {
    let payload = s.encode_to_vec();
    let hash = Sha256::digest(&payload);
    let t = s.occurred_at.as_ref().map_or(0, |t| t.seconds);
    let kind = s
        .body
        .as_ref()
        .map_or(0, |b| retain_proto::convert::kind_of(b).code());
    let mode = if mode_for(t, now / 1_000_000) == v1::IngestMode::Backfill {
        2
    } else {
        1
    };
    signals.push_str(&format!(
        "{TENANT}\t{}\t{}\t{}\t{kind}\t{mode}\t\\\\x{}\t{now}\n",
        s.account_id,
        t * 1_000_000,
        s.event_id,
        hex::encode(&payload)
    ));
    ids.push_str(&format!(
        "{TENANT}\t{}\t\\\\x{}\n",
        s.event_id,
        hex::encode(hash)
    ));
}

async fn copy(pool: &sqlx::PgPool, statement: &str, text: String) -> anyhow::Result<()> {
    let mut copy = pool.copy_in_raw(statement).await?;
    copy.send(text.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    // Kept alive until the end: a throwaway cluster stops when dropped.
    let pg = match &args.database_url {
        Some(url) => BenchPostgres::at(url.clone()),
        None => BenchPostgres::start().map_err(anyhow::Error::msg)?,
    };
    let url = pg
        .database("retain_dataload")
        .await
        .map_err(anyhow::Error::msg)?;
    let db = retain_store::connect(
        &url,
        &retain_store::PoolOptions {
            max_connections: 8,
            ..Default::default()
        },
    )
    .await?;
    retain_store::migrate(&db).await?;
    let pool = db.get_postgres_connection_pool().clone();

    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let cfg = Config {
        accounts: args.accounts,
        history_days: args.history_days,
        now: now_s,
        ..Config::default()
    };
    let now = retain_store::now_micros();
    println!(
        "loading {} accounts over {} days into {}",
        args.accounts,
        args.history_days,
        retain_store::redact(&url)
    );
    let started = Instant::now();
    let mut total = 0usize;
    let (mut signals, mut ids, mut accounts) = (String::new(), String::new(), String::new());
    let flush = |signals: String, ids: String, accounts: String| {
        let pool = pool.clone();
        async move {
            copy(&pool, "COPY signals (tenant_id, account_id, occurred_at, event_id, kind, mode, payload, ingested_at) FROM STDIN", signals).await?;
            copy(
                &pool,
                "COPY signal_ids (tenant_id, event_id, content_hash) FROM STDIN",
                ids,
            )
            .await?;
            copy(&pool, "COPY accounts (tenant_id, account_id, name, segment, plan, csm_owner_email, contact_emails, created_at, updated_at) FROM STDIN", accounts).await?;
            anyhow::Ok(())
        }
    };
    let mut pending: Option<tokio::task::JoinHandle<anyhow::Result<()>>> = None;
    for i in 0..args.accounts {
        let (info, list) = generate_account(&cfg, i);
        for s in &list {
            rows(s, now, &mut signals, &mut ids);
        }
        total += list.len();
        accounts.push_str(&format!(
            "{TENANT}\t{}\t{}\t{}\t{}\t{}\t\t{now}\t{now}\n",
            info.id, info.name, info.segment, info.plan, info.csm_owner_email
        ));
        if signals.len() > 32 << 20 || i + 1 == args.accounts {
            if let Some(p) = pending.take() {
                p.await??;
            }
            let batch = (
                std::mem::take(&mut signals),
                std::mem::take(&mut ids),
                std::mem::take(&mut accounts),
            );
            pending = Some(tokio::spawn(flush(batch.0, batch.1, batch.2)));
        }
    }
    let costs = generate_costs(&cfg);
    for s in &costs {
        rows(s, now, &mut signals, &mut ids);
    }
    total += costs.len();
    if let Some(p) = pending.take() {
        p.await??;
    }
    flush(signals, ids, String::new()).await?;
    let loaded = started.elapsed();
    sqlx::query("ANALYZE").execute(&pool).await?;
    println!(
        "loaded {total} signals in {:.1} s ({:.0} signals/s, generation included)",
        loaded.as_secs_f64(),
        total as f64 / loaded.as_secs_f64()
    );

    // The metrics service on the loaded database, over loopback.
    let mut settings = Settings::default();
    settings.tenants.default.base_currency = cfg.currency.clone();
    settings.server.request_timeout_ms = 3_600_000;
    settings.server.max_message_bytes = 64 << 20;
    let ctx = Context::new(db.clone(), settings.clone(), Clock::system());
    let services = Metrics::build(&ctx, MetricsSettings::default())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let opts = ServeOptions {
        settings: settings.server.clone(),
        auth: std::sync::Arc::new(authenticator()),
        db: db.clone(),
        health_interval: Duration::from_secs(5),
    };
    let server = tokio::spawn(retain_runtime::serve(
        listener,
        opts,
        services,
        shutdown.clone(),
    ));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = MetricsServiceClient::new(channel).max_decoding_message_size(64 << 20);
    let month = retain_domain::Period::containing(
        retain_domain::Timestamp::from_seconds(now_s - 32 * 86_400),
        retain_domain::Granularity::Month,
    );
    let period = v1::Period {
        start: Some(prost_types::Timestamp {
            seconds: month.start.seconds(),
            nanos: 0,
        }),
        end: Some(prost_types::Timestamp {
            seconds: month.end.seconds(),
            nanos: 0,
        }),
    };
    let mut times = Vec::new();
    for _ in 0..args.queries.max(1) {
        let t = Instant::now();
        let r = client
            .get_portfolio_metrics(with_token(
                READER,
                v1::GetPortfolioMetricsRequest {
                    period: Some(period),
                    filter: None,
                },
            ))
            .await?
            .into_inner();
        times.push(t.elapsed());
        anyhow::ensure!(r.kpis.len() == 30);
    }
    times.sort();
    println!(
        "GetPortfolioMetrics, one month over {} accounts / {total} signals: min {:.0} ms, median {:.0} ms (goal ≤ 100 ms)",
        args.accounts,
        times[0].as_secs_f64() * 1e3,
        times[times.len() / 2].as_secs_f64() * 1e3
    );
    shutdown.cancel();
    let _ = server.await;
    Ok(())
}
