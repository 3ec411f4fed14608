//! `retain demo`: a seeded, realistic portfolio sent through the running
//! platform's gRPC API exactly as a client would, the pipeline watched
//! until it settles, and the report a CS leader reads.

use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use retain_bus::{Bus, groups};
use retain_datagen::{Config, generate};
use retain_health::topics::HEALTH_BAND_CHANGED;
use retain_ingestion::topics::SIGNALS_RECORDED;
use retain_metrics::topics::ACCOUNT_METRICS;
use retain_proto::v1;
use retain_proto::v1::ingestion_service_client::IngestionServiceClient;

use crate::client::Remote;
use crate::report;

/// Every subscription the pipeline runs on, upstream first.
const PIPELINE: [(&str, &str, &str); 5] = [
    ("signals.recorded", groups::METRICS, "metrics"),
    (
        "signals.recorded",
        groups::NOTIFICATION,
        "notification (NPS, revenue)",
    ),
    ("account.metrics", groups::HEALTH, "health"),
    (
        "account.metrics",
        groups::NOTIFICATION,
        "notification (accounts)",
    ),
    (
        "health.band_changed",
        groups::NOTIFICATION,
        "notification (bands)",
    ),
];

/// Where the demo sends its portfolio.
pub struct Target<'a> {
    /// The server, connected with a token.
    pub remote: Remote,
    /// The tenant's base currency (every money amount's).
    pub currency: String,
    /// Where emails are written, when known.
    pub outbox: Option<&'a Path>,
    /// The embedded platform's database, to watch the bus; for a server
    /// elsewhere the pipeline is watched through its API instead.
    pub db: Option<&'a sea_orm::DatabaseConnection>,
}

/// The instant the demo's history ends, in seconds: the one kept in
/// `dir/demo-anchor` by the first run, so a second run sends the very
/// same signals (all recognised as duplicates) instead of a portfolio
/// whose event ids clash with the first.
pub fn anchor(dir: &Path) -> anyhow::Result<i64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let path = dir.join("demo-anchor");
    if let Some(kept) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
    {
        return Ok(kept);
    }
    std::fs::write(&path, now.to_string())?;
    Ok(now)
}

/// Sends `accounts` accounts' history, waits for the pipeline, prints the
/// report.
pub async fn run(target: &Target<'_>, accounts: usize, anchor: i64) -> anyhow::Result<()> {
    debug_assert_eq!(PIPELINE[0].0, SIGNALS_RECORDED.name());
    debug_assert_eq!(PIPELINE[2].0, ACCOUNT_METRICS.name());
    debug_assert_eq!(PIPELINE[4].0, HEALTH_BAND_CHANGED.name());
    let started = Instant::now();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let config = Config {
        accounts,
        history_days: 120,
        now: anchor,
        id_prefix: "demo-".into(),
        currency: target.currency.clone(),
        ..Config::default()
    };
    let data = generate(&config);
    let batches = data.in_delivery_order(7).batches(1_000);
    let total = data.signals.len() as u64;
    say!(
        "Sending {total} signals of {accounts} accounts ({} days of product use, tickets, surveys, billing) through gRPC…",
        config.history_days
    );
    ingest(&target.remote, batches, total).await?;
    settled(target, accounts).await?;
    say!(
        "Pipeline settled {:.1} s after the start.",
        started.elapsed().as_secs_f64()
    );
    report::print(&target.remote, now, target.outbox).await
}

/// The tenant's base currency as the server reports money (USD when it
/// has none yet).
pub async fn currency_of(remote: &Remote) -> anyhow::Result<String> {
    let portfolio =
        retain_proto::v1::metrics_service_client::MetricsServiceClient::new(remote.channel.clone())
            .get_portfolio_metrics(
                remote.request(v1::GetPortfolioMetricsRequest {
                    period: Some(report::last_full_month(
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)?
                            .as_secs() as i64,
                    )),
                    filter: None,
                }),
            )
            .await
            .map_err(|e| remote.failed("GetPortfolioMetrics", e))?
            .into_inner();
    Ok(portfolio
        .kpis
        .iter()
        .find_map(|k| match k.value.as_ref()?.result.as_ref()? {
            v1::kpi_value::Result::Money(m) if !m.currency.is_empty() => Some(m.currency.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "USD".into()))
}

/// Waits for the pipeline to settle: on the bus when the database is at
/// hand, through the API otherwise.
async fn settled(target: &Target<'_>, accounts: usize) -> anyhow::Result<()> {
    match target.db {
        Some(db) => settle(db).await,
        None => settle_remote(&target.remote, accounts).await,
    }
}

/// Sends `batches` (shuffled, late signals last, as a real client would),
/// with a progress bar.
async fn ingest(
    remote: &Remote,
    batches: Vec<retain_datagen::Batch>,
    total: u64,
) -> anyhow::Result<()> {
    let mut client =
        IngestionServiceClient::new(remote.channel.clone()).max_encoding_message_size(64 << 20);
    let bar = ProgressBar::new(total).with_style(ProgressStyle::with_template(
        "  {bar:40} {pos}/{len} signals  {per_sec}  {msg}",
    )?);
    let (mut accepted, mut duplicates, mut rejected) = (0, 0, 0);
    let mut first_rejection: Option<String> = None;
    let mut clashes = 0;
    for batch in batches {
        let request = batch.request();
        let n = request.signals.len() as u64;
        let reply = client
            .ingest_signals(remote.request(request))
            .await
            .map_err(|e| remote.failed("IngestSignals", e))?
            .into_inner();
        clashes += reply
            .results
            .iter()
            .filter(|r| {
                !r.violations.is_empty()
                    && r.violations.iter().all(|v| v.field.ends_with(".event_id"))
            })
            .count();
        if let Some(bad) = reply.results.iter().find(|r| !r.violations.is_empty()) {
            let why: Vec<String> = bad
                .violations
                .iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect();
            first_rejection.get_or_insert_with(|| format!("{}: {}", bad.event_id, why.join("; ")));
        }
        accepted += reply.accepted;
        duplicates += reply.duplicates;
        rejected += reply.rejected;
        bar.inc(n);
    }
    bar.finish_and_clear();
    say!("  {accepted} accepted, {duplicates} already known, {rejected} rejected");
    if rejected > 0 && usize::try_from(rejected).is_ok_and(|r| r == clashes) {
        say!(
            "  (the rejected signals reuse event ids of a demo loaded on another day: that portfolio stays as it was)"
        );
        return Ok(());
    }
    if rejected > 0 {
        anyhow::bail!(
            "{rejected} demo signals were rejected (first: {}): a bug in the demo data",
            first_rejection.unwrap_or_default()
        );
    }
    Ok(())
}

/// Waits until every consumer group has worked off its backlog and every
/// email is out, showing what is still waiting.
async fn settle(db: &sea_orm::DatabaseConnection) -> anyhow::Result<()> {
    let bus = Bus::new(db.clone());
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(120));
    let mut quiet_rounds = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while quiet_rounds < 3 {
        let mut waiting = Vec::new();
        for (topic, group, label) in PIPELINE {
            let s = bus.stats(topic, group).await?;
            let n = s.pending + s.leased;
            if n > 0 {
                waiting.push(format!("{label} {n}"));
            }
        }
        let emails = pending_emails(db).await?;
        if emails > 0 {
            waiting.push(format!("emails {emails}"));
        }
        if waiting.is_empty() {
            quiet_rounds += 1;
            spinner.set_message("settling…");
        } else {
            quiet_rounds = 0;
            spinner.set_message(format!("waiting for {}", waiting.join(", ")));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the pipeline did not settle in 10 minutes: {}",
            waiting.join(", ")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    spinner.finish_and_clear();
    Ok(())
}

/// For a server elsewhere: waits until the number of scored accounts
/// (at least `accounts`) and of open tasks stop changing and no email is
/// pending, three looks in a row half a second apart.
async fn settle_remote(remote: &Remote, accounts: usize) -> anyhow::Result<()> {
    let spinner = ProgressBar::new_spinner();
    spinner.enable_steady_tick(Duration::from_millis(120));
    let deadline = Instant::now() + Duration::from_secs(600);
    let (mut last, mut quiet_rounds) = (None, 0);
    while quiet_rounds < 3 {
        let scored = report::scored(remote).await?;
        let pending = report::pending_emails(remote).await?;
        let tasks: usize = report::open_tasks(remote).await?.values().sum();
        spinner.set_message(format!(
            "waiting: {scored} of {accounts} accounts scored, {pending} emails pending, {tasks} tasks open"
        ));
        let now = (scored, pending, tasks);
        if scored >= accounts && pending == 0 && last == Some(now) {
            quiet_rounds += 1;
        } else {
            quiet_rounds = 0;
        }
        last = Some(now);
        anyhow::ensure!(
            Instant::now() < deadline,
            "the pipeline did not settle in 10 minutes ({scored} of {accounts} accounts scored, {pending} emails pending)"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    spinner.finish_and_clear();
    Ok(())
}

async fn pending_emails(db: &sea_orm::DatabaseConnection) -> anyhow::Result<i64> {
    use sea_orm::ConnectionTrait;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) FROM notification_messages WHERE state = 1",
        ))
        .await?;
    Ok(row.map_or(Ok(0), |r| r.try_get_by_index::<i64>(0))?)
}
