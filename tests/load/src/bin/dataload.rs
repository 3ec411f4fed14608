//! `retain-dataload`: bulk-loads a generated tenant history (retain-datagen)
//! straight into PostgreSQL with `COPY` — the rows ingestion would have
//! written, not millions of gRPC calls — then times the metrics service's
//! portfolio queries over it: announces every account on the bus as
//! ingestion would, lets the metrics consumer build its snapshots and
//! monthly rollups (printing the backlog over time and the peak memory),
//! then times `GetPortfolioMetrics` for the last finished month against
//! the same KPIs computed from the raw signals at query time.
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
use retain_ingestion::topics::SIGNALS_RECORDED;
use retain_metrics::{Metrics, MetricsSettings};
use retain_proto::v1;
use retain_proto::v1::metrics_service_client::MetricsServiceClient;
use retain_runtime::{Clock, Context, Service, Settings};
use retain_testkit::procfs::{memory_mib, reset_peak_memory};
use retain_testkit::{BenchPostgres, READER, Served, serve_in_process, with_token};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgPoolCopyExt;

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

/// `runs` computations of one period's portfolio KPIs from the signals at
/// query time: the median time and every answer.
async fn from_signals(
    db: &sea_orm::DatabaseConnection,
    settings: &retain_metrics::Tenant,
    (period, at): (retain_domain::Period, retain_domain::Timestamp),
    page: retain_metrics::Page,
    runs: usize,
) -> anyhow::Result<(Duration, Vec<v1::GetPortfolioMetricsResponse>)> {
    let mut times = Vec::with_capacity(runs);
    let mut answers = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        let r = retain_metrics::portfolio_from_signals(db, settings, TENANT, (period, at), page)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(t.elapsed());
        answers.push(r);
    }
    times.sort();
    Ok((times[times.len() / 2], answers))
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
    let mut announced = Vec::with_capacity(args.accounts);
    for i in 0..args.accounts {
        let (info, list) = generate_account(&cfg, i);
        announced.push((info.id.clone(), list.len()));
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

    // Announce every account as ingestion would have: one signals.recorded
    // message each, for the metrics consumer to build its rollups from.
    for chunk in announced.chunks(1_000) {
        let messages: Vec<v1::SignalsRecorded> = chunk
            .iter()
            .map(|(account, n)| {
                let batch = v1::RecordedBatch {
                    earliest_occurred_at: None,
                    latest_occurred_at: None,
                    signal_count: *n as i64,
                    mode: v1::IngestMode::Backfill as i32,
                };
                v1::SignalsRecorded {
                    tenant_id: TENANT.into(),
                    account_id: account.clone(),
                    signal_count: *n as i64,
                    mode: v1::IngestMode::Backfill as i32,
                    batches: vec![batch],
                    ..Default::default()
                }
            })
            .collect();
        SIGNALS_RECORDED.publish(&db, &messages).await?;
    }
    drop(announced);

    // The metrics service on the loaded database, over loopback: its
    // consumer builds every account's snapshot and monthly rollups.
    reset_peak_memory();
    let rss_before = memory_mib("self", "VmRSS:");
    let mut settings = Settings::default();
    settings.tenants.default.base_currency = cfg.currency.clone();
    settings.server.request_timeout_ms = 3_600_000;
    settings.server.max_message_bytes = 64 << 20;
    let ctx = Context::new(db.clone(), settings.clone(), Clock::system())?;
    let services = Metrics::build(&ctx, MetricsSettings::default())?;
    let Served {
        channel,
        shutdown,
        server,
        ..
    } = serve_in_process(&ctx, services, Duration::from_secs(5)).await;
    let bus = retain_bus::Bus::new(db.clone());
    let consuming = Instant::now();
    let mut last = (0.0f64, args.accounts as u64);
    println!("consuming: elapsed s, backlog (accounts), accounts/s since last line, RSS MiB");
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let stats = bus
            .stats(SIGNALS_RECORDED.name(), retain_bus::groups::METRICS)
            .await?;
        let backlog = stats.pending + stats.leased;
        let t = consuming.elapsed().as_secs_f64();
        if t - last.0 >= 5.0 || backlog == 0 {
            println!(
                "  {t:>6.1}  {backlog:>8}  {:>7.0}  {:>6.0}",
                last.1.saturating_sub(backlog) as f64 / (t - last.0),
                memory_mib("self", "VmRSS:")
            );
            last = (t, backlog);
        }
        if backlog == 0 {
            break;
        }
        anyhow::ensure!(
            t < 4.0 * 3_600.0,
            "the metrics backlog did not drain within 4 hours ({backlog} left)"
        );
    }
    let consumed = consuming.elapsed();
    println!(
        "consumed {} accounts / {total} signals in {:.0} s: {:.0} accounts/s, {:.0} signals/s; \
         RSS {rss_before:.0} MiB before, peak {:.0} MiB while consuming",
        args.accounts,
        consumed.as_secs_f64(),
        args.accounts as f64 / consumed.as_secs_f64(),
        total as f64 / consumed.as_secs_f64(),
        memory_mib("self", "VmHWM:")
    );
    // The worker sums each month's rows into its cells (a query would too).
    loop {
        let dirty: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM metrics_dirty_months WHERE version > built")
                .fetch_one(&pool)
                .await?;
        if dirty == 0 {
            break;
        }
        anyhow::ensure!(
            consuming.elapsed() < Duration::from_secs(4 * 3_600 + 600),
            "{dirty} months still waiting for their cells"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
    let mut served = None;
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
        served = Some(r);
    }
    times.sort();
    // The baseline: the same KPIs from the raw signals at query time, read
    // in pages of accounts as the service does, and — for memory — in one
    // page of every account (what a query did before it paged).
    let tenant_settings = retain_metrics::tenants(&ctx.tenants)?.of(TENANT).clone();
    let paged = retain_metrics::Page::of(&MetricsSettings::default());
    let mut medians = Vec::new();
    for (label, page) in [
        (
            format!(
                "pages of {} accounts / {} signals",
                paged.accounts, paged.signals
            ),
            paged,
        ),
        (
            "one page of every account".to_owned(),
            retain_metrics::Page::WHOLE,
        ),
    ] {
        reset_peak_memory();
        let rss_from = memory_mib("self", "VmRSS:");
        let at = retain_domain::Timestamp::from_seconds(now_s);
        let (median, answers) = from_signals(
            &db,
            &tenant_settings,
            (month, at),
            page,
            args.queries.clamp(1, 3),
        )
        .await?;
        anyhow::ensure!(
            answers.iter().all(|r| served.as_ref() == Some(r)),
            "the rollups and the raw signals ({label}) disagree"
        );
        println!(
            "  from the raw signals, {label}: median {:.0} ms, peak RSS {:.0} MiB (from {rss_from:.0})",
            median.as_secs_f64() * 1e3,
            memory_mib("self", "VmHWM:")
        );
        medians.push(median);
    }
    // Periods the monthly cells do not answer, from the signals at query
    // time: reading what each period reaches (what the service does)
    // against reading every signal, in the same pages; same answer.
    let at = retain_domain::Timestamp::from_seconds(now_s);
    let today = retain_domain::Period::containing(at, retain_domain::Granularity::Day).start;
    let days = |n: i64| today.plus(-n * 86_400);
    for (label, period) in [
        (
            "the month so far",
            retain_domain::Period::containing(at, retain_domain::Granularity::Month),
        ),
        (
            "the last 7 days",
            retain_domain::Period::new(days(7), today)?,
        ),
        (
            "90 days across months",
            retain_domain::Period::new(days(90), today)?,
        ),
    ] {
        let mut medians = Vec::new();
        let mut answers = Vec::new();
        for windowed in [true, false] {
            let page = retain_metrics::Page { windowed, ..paged };
            let (median, runs) = from_signals(
                &db,
                &tenant_settings,
                (period, at),
                page,
                args.queries.clamp(1, 3),
            )
            .await?;
            answers.extend(runs);
            medians.push(median.as_secs_f64() * 1e3);
        }
        anyhow::ensure!(
            answers.windows(2).all(|w| w[0] == w[1]),
            "{label}: reading what the period reaches and reading every signal disagree"
        );
        println!(
            "  {label}, from the signals: what it reaches {:.0} ms, every signal {:.0} ms (median): {:.1}× less time; same answer: yes",
            medians[0],
            medians[1],
            medians[1] / medians[0].max(1e-9)
        );
    }
    let (fast, slow) = (times[times.len() / 2], medians[0]);
    println!(
        "GetPortfolioMetrics, one month over {} accounts / {total} signals: min {:.1} ms, median {:.1} ms (goal ≤ 100 ms)",
        args.accounts,
        times[0].as_secs_f64() * 1e3,
        fast.as_secs_f64() * 1e3
    );
    println!(
        "baseline, the same month from the raw signals at query time: median {:.0} ms — rollups {:.0}× faster (goal ≥ 10×); same answer: yes",
        slow.as_secs_f64() * 1e3,
        slow.as_secs_f64() / fast.as_secs_f64(),
    );
    shutdown.cancel();
    let _ = server.await;
    Ok(())
}
