//! The demo's report, read from the services' gRPC APIs as any client
//! would: the portfolio's KPIs for the last full month with their
//! warnings, the MRR bridge, the band distribution, the accounts most at
//! risk with their explanations, the CSM queue and the emails written.

use std::path::Path;

use comfy_table::CellAlignment::{self, Left, Right};
use retain_proto::v1;
use retain_proto::v1::health_service_client::HealthServiceClient;
use retain_proto::v1::metrics_service_client::MetricsServiceClient;
use retain_proto::v1::notification_service_client::NotificationServiceClient;

use crate::client::Remote;
use crate::json;

/// Prints the report as of `now`: last month's portfolio and MRR bridge,
/// the bands, the ten accounts most at risk, the CSM queue, the emails.
pub async fn print(remote: &Remote, now: i64, outbox: Option<&Path>) -> anyhow::Result<()> {
    portfolio(remote, last_full_month(now), false).await?;
    bands(remote).await?;
    at_risk(remote, 10, false).await?;
    queue(remote, v1::ListTasksRequest::default(), 10, false).await?;
    emails(remote, outbox).await
}

/// `YYYY-MM` of a period's start.
fn month_of(period: &v1::Period) -> String {
    period
        .start
        .as_ref()
        .and_then(retain_proto::convert::timestamp)
        .map(|t| {
            let (y, m, _) = t.ymd();
            format!("{y}-{m:02}")
        })
        .unwrap_or_default()
}

/// The portfolio's KPIs with their warnings and insights, and the MRR
/// bridge, for a month.
pub async fn portfolio(remote: &Remote, period: v1::Period, json: bool) -> anyhow::Result<()> {
    let month = month_of(&period);
    let mut metrics = MetricsServiceClient::new(remote.channel.clone());
    let portfolio = metrics
        .get_portfolio_metrics(remote.request(v1::GetPortfolioMetricsRequest {
            period: Some(period),
            filter: None,
        }))
        .await
        .map_err(|e| remote.failed("GetPortfolioMetrics", e))?
        .into_inner();
    let bridge = metrics
        .get_mrr_bridge(remote.request(v1::GetMrrBridgeRequest {
            period: Some(period),
            filter: None,
        }))
        .await
        .map_err(|e| remote.failed("GetMrrBridge", e))?
        .into_inner();
    if json {
        let both = serde_json::json!({
            "portfolio": json::value("retain.v1.GetPortfolioMetricsResponse", &portfolio)?,
            "mrr_bridge": json::value("retain.v1.GetMrrBridgeResponse", &bridge)?,
        });
        say!("{}", serde_json::to_string_pretty(&both)?);
        return Ok(());
    }
    heading(&format!("Portfolio, {month}"));
    kpis(&portfolio.kpis);
    insights(&portfolio.insights);
    heading(&format!("MRR bridge, {month}"));
    let rows = [
        ("start", &bridge.start_mrr, ""),
        ("new", &bridge.new_mrr, "+"),
        ("reactivation", &bridge.reactivation_mrr, "+"),
        ("expansion", &bridge.expansion_mrr, "+"),
        ("contraction", &bridge.contraction_mrr, "−"),
        ("churned", &bridge.churned_mrr, "−"),
        ("end", &bridge.end_mrr, "="),
    ]
    .map(|(label, amount, sign)| vec![sign.to_owned(), label.to_owned(), money(amount.as_ref())]);
    table(&[], &[Left, Left, Right], None, rows);
    Ok(())
}

/// How many accounts have a health score.
pub async fn scored(remote: &Remote) -> anyhow::Result<usize> {
    let mut health = HealthServiceClient::new(remote.channel.clone());
    let (mut n, mut page_token) = (0, String::new());
    loop {
        let page = health
            .list_health(remote.request(v1::ListHealthRequest {
                page_size: 1_000,
                page_token,
                ..Default::default()
            }))
            .await
            .map_err(|e| remote.failed("ListHealth", e))?
            .into_inner();
        n += page.scores.len();
        if page.next_page_token.is_empty() {
            return Ok(n);
        }
        page_token = page.next_page_token;
    }
}

/// Open and claimed tasks by title, every page.
pub async fn open_tasks(
    remote: &Remote,
) -> anyhow::Result<std::collections::BTreeMap<String, usize>> {
    let mut client = NotificationServiceClient::new(remote.channel.clone());
    let (mut out, mut page_token) = (std::collections::BTreeMap::new(), String::new());
    loop {
        let page = client
            .list_tasks(remote.request(v1::ListTasksRequest {
                page_size: 1_000,
                page_token,
                ..Default::default()
            }))
            .await
            .map_err(|e| remote.failed("ListTasks", e))?
            .into_inner();
        for t in page.tasks {
            *out.entry(t.title).or_insert(0) += 1;
        }
        if page.next_page_token.is_empty() {
            return Ok(out);
        }
        page_token = page.next_page_token;
    }
}

/// How many emails wait to be sent.
pub async fn pending_emails(remote: &Remote) -> anyhow::Result<i64> {
    let counts = NotificationServiceClient::new(remote.channel.clone())
        .list_notifications(remote.request(v1::ListNotificationsRequest {
            channel: v1::NotificationChannel::Email as i32,
            page_size: 1,
            ..Default::default()
        }))
        .await
        .map_err(|e| remote.failed("ListNotifications", e))?
        .into_inner()
        .counts;
    Ok(counts
        .iter()
        .filter(|c| c.state == v1::DeliveryState::Pending as i32)
        .map(|c| c.count)
        .sum())
}

/// How many accounts are in each band.
pub async fn bands(remote: &Remote) -> anyhow::Result<()> {
    let mut health = HealthServiceClient::new(remote.channel.clone());
    let mut bands = [0_usize; 5];
    let mut page_token = String::new();
    loop {
        let page = health
            .list_health(remote.request(v1::ListHealthRequest {
                page_size: 1_000,
                page_token,
                ..Default::default()
            }))
            .await
            .map_err(|e| remote.failed("ListHealth", e))?
            .into_inner();
        for s in &page.scores {
            if let Some(n) = usize::try_from(s.band).ok().and_then(|b| bands.get_mut(b)) {
                *n += 1;
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    heading("Health bands");
    let rows = [
        v1::HealthBand::Thriving,
        v1::HealthBand::Green,
        v1::HealthBand::Yellow,
        v1::HealthBand::Red,
    ]
    .map(|band| vec![band_name(band as i32), bands[band as usize].to_string()]);
    table(&[], &[Left, Right], None, rows);
    Ok(())
}

/// The `n` accounts with the lowest scores, with their explanations.
pub async fn at_risk(remote: &Remote, n: i32, json: bool) -> anyhow::Result<()> {
    let at_risk = HealthServiceClient::new(remote.channel.clone())
        .list_health(remote.request(v1::ListHealthRequest {
            page_size: n,
            sort: v1::HealthSort::ScoreAscending as i32,
            ..Default::default()
        }))
        .await
        .map_err(|e| remote.failed("ListHealth", e))?
        .into_inner();
    if json {
        say!("{}", json::print("retain.v1.ListHealthResponse", &at_risk)?);
        return Ok(());
    }
    heading(&format!("The {n} accounts most at risk"));
    let rows = at_risk.scores.iter().map(|s| {
        vec![
            s.account_id.clone(),
            format!("{:.1}", s.score),
            band_name(s.band),
            s.explanation.clone(),
        ]
    });
    table(&[], &[Left, Right, Left, Left], Some(3), rows);

    Ok(())
}

/// One account's score, explained dimension by dimension.
pub async fn account(remote: &Remote, account: &str, json: bool) -> anyhow::Result<()> {
    let score = HealthServiceClient::new(remote.channel.clone())
        .get_health(remote.request(v1::GetHealthRequest {
            account_id: account.to_owned(),
        }))
        .await
        .map_err(|e| remote.failed("GetHealth", e))?
        .into_inner()
        .score
        .ok_or_else(|| anyhow::anyhow!("GetHealth: no score for {account}"))?;
    if json {
        say!("{}", json::print("retain.v1.HealthScore", &score)?);
        return Ok(());
    }
    heading(&format!(
        "{account}: {:.1}, {}",
        score.score,
        band_name(score.band)
    ));
    say!("  {}", score.explanation);
    say!("");
    let rows = score.dimensions.iter().map(|d| {
        if d.missing {
            return vec![
                d.key.clone(),
                "—".into(),
                "—".into(),
                "—".into(),
                "no data".into(),
            ];
        }
        vec![
            d.key.clone(),
            format!("{:.1}", d.sub_score),
            format!("{:.0}%", d.effective_weight),
            format!("{:.1}", d.contribution),
            band_name(d.band),
        ]
    });
    table(
        &["dimension", "sub-score", "weight", "contribution", "band"],
        &[Left, Right, Right, Right, Left],
        None,
        rows,
    );
    Ok(())
}

/// Tasks of the CSM queue, most urgent first.
pub async fn queue(
    remote: &Remote,
    filter: v1::ListTasksRequest,
    n: i32,
    json: bool,
) -> anyhow::Result<()> {
    let filter_is_default = filter == v1::ListTasksRequest::default();
    let tasks = NotificationServiceClient::new(remote.channel.clone())
        .list_tasks(remote.request(v1::ListTasksRequest {
            page_size: n,
            ..filter
        }))
        .await
        .map_err(|e| remote.failed("ListTasks", e))?
        .into_inner();
    if json {
        say!("{}", json::print("retain.v1.ListTasksResponse", &tasks)?);
        return Ok(());
    }
    heading("CSM queue (most urgent first)");
    if tasks.tasks.is_empty() {
        say!("  (none)");
    } else if filter_is_default {
        let by_title = open_tasks(remote).await?;
        let summary: Vec<String> = by_title
            .iter()
            .map(|(title, n)| format!("{n} {}", title.to_lowercase()))
            .collect();
        say!("  open: {}", summary.join(" · "));
    }
    let rows = tasks.tasks.iter().map(|t| {
        let priority = v1::TaskPriority::try_from(t.priority)
            .map_or("?", |p| p.as_str_name())
            .trim_start_matches("TASK_PRIORITY_")
            .to_lowercase();
        let who = if t.assignee.is_empty() {
            "unassigned"
        } else {
            &t.assignee
        };
        let state = v1::TaskState::try_from(t.state)
            .map_or("?", |s| s.as_str_name())
            .trim_start_matches("TASK_STATE_")
            .to_lowercase();
        let overdue = if t.sla_breached { ", overdue" } else { "" };
        vec![
            priority,
            format!("{}\n{}\nid {}", t.title, t.message, t.task_id),
            t.account_id.clone(),
            who.to_owned(),
            format!("{state}{overdue}"),
        ]
    });
    if !tasks.tasks.is_empty() {
        table(
            &["priority", "task", "account", "assignee", "state"],
            &[Left; 5],
            Some(1),
            rows,
        );
    }
    Ok(())
}

/// Emails by delivery state, and the latest few.
pub async fn emails(remote: &Remote, outbox: Option<&Path>) -> anyhow::Result<()> {
    let emails = NotificationServiceClient::new(remote.channel.clone())
        .list_notifications(remote.request(v1::ListNotificationsRequest {
            channel: v1::NotificationChannel::Email as i32,
            page_size: 5,
            ..Default::default()
        }))
        .await
        .map_err(|e| remote.failed("ListNotifications", e))?
        .into_inner();
    heading("Emails");
    let counts = emails.counts.iter().map(|c| {
        let state = v1::DeliveryState::try_from(c.state)
            .map_or("?", |s| s.as_str_name())
            .trim_start_matches("DELIVERY_STATE_")
            .to_lowercase();
        vec![state, c.count.to_string()]
    });
    table(&[], &[Left, Right], None, counts);
    let latest = emails.notifications.iter().map(|n| {
        vec![
            n.template.clone(),
            format!("to {}", n.recipients.join(", ")),
            n.account_id.clone(),
        ]
    });
    table(&[], &[Left; 3], Some(1), latest);
    if let Some(dir) = outbox {
        say!("  written to {}", dir.display());
    }
    Ok(())
}

/// One line per KPI: its name and its value in words.
fn kpis(entries: &[v1::KpiEntry]) {
    let rows = entries.iter().map(|entry| {
        let name = v1::Kpi::try_from(entry.kpi)
            .map_or("unknown", |k| k.as_str_name())
            .trim_start_matches("KPI_")
            .replace('_', " ")
            .to_lowercase();
        vec![name, kpi(entry.value.as_ref())]
    });
    table(&[], &[Left, Left], Some(1), rows);
}

/// Prints `rows` as a table without borders, indented under a heading,
/// each column aligned as `align` says; `header` when not empty. Only the
/// column `wrap` (free text) wraps, to keep the table within `COLUMNS`
/// (120 when unset); ids and numbers are never broken.
fn table(
    header: &[&str],
    align: &[CellAlignment],
    wrap: Option<usize>,
    rows: impl IntoIterator<Item = Vec<String>>,
) {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(120_u16);
    t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_width(width.saturating_sub(1));
    if !header.is_empty() {
        t.set_header(header.to_vec());
    }
    for row in rows {
        t.add_row(row);
    }
    if t.row_count() == 0 {
        return;
    }
    for (i, (column, a)) in t.column_iter_mut().zip(align).enumerate() {
        column.set_cell_alignment(*a);
        if wrap != Some(i) {
            column.set_constraint(comfy_table::ColumnConstraint::ContentWidth);
        }
    }
    for line in t.lines() {
        say!(" {}", line.trim_end());
    }
}

/// Warnings (!), good news (+) and the rest (·).
fn insights(all: &[v1::Insight]) {
    if all.is_empty() {
        return;
    }
    say!("");
    for insight in all {
        let mark = match v1::InsightSeverity::try_from(insight.severity) {
            Ok(v1::InsightSeverity::Warning) => "!",
            Ok(v1::InsightSeverity::Positive) => "+",
            _ => "·",
        };
        say!("  {mark} {}", insight.message);
    }
}

/// The scorecard of a strategy or journey stage for a month: headline and
/// supporting KPIs, the band distribution, the insights.
pub async fn scorecard(
    remote: &Remote,
    lens: v1::get_scorecard_request::Lens,
    title: &str,
    period: v1::Period,
    json: bool,
) -> anyhow::Result<()> {
    let month = month_of(&period);
    let card = MetricsServiceClient::new(remote.channel.clone())
        .get_scorecard(remote.request(v1::GetScorecardRequest {
            lens: Some(lens),
            period: Some(period),
            filter: None,
        }))
        .await
        .map_err(|e| remote.failed("GetScorecard", e))?
        .into_inner();
    if json {
        say!("{}", json::print("retain.v1.GetScorecardResponse", &card)?);
        return Ok(());
    }
    heading(&format!("Scorecard: {title}, {month}"));
    kpis(&card.headline);
    if !card.supporting.is_empty() {
        say!("  supporting:");
        kpis(&card.supporting);
    }
    if !card.health_distribution.is_empty() {
        let bands: Vec<String> = card
            .health_distribution
            .iter()
            .map(|b| format!("{} {}", band_name(b.band), b.accounts))
            .collect();
        say!("  health: {}", bands.join(", "));
    }
    insights(&card.insights);
    Ok(())
}

fn heading(title: &str) {
    say!("\n{title}\n{}", "─".repeat(title.chars().count()));
}

fn band_name(band: i32) -> String {
    v1::HealthBand::try_from(band)
        .map_or("?", |b| b.as_str_name())
        .trim_start_matches("HEALTH_BAND_")
        .to_lowercase()
}

/// `1,234.56 EUR` (`12,000 JPY`): the domain's money, in the currency's
/// own minor unit.
fn money(m: Option<&v1::Money>) -> String {
    let Some(m) = m else {
        return "—".into();
    };
    match retain_domain::Currency::parse(&m.currency) {
        Ok(currency) => retain_domain::Money::new(m.amount_minor, currency).to_string(),
        Err(_) => format!("{} (minor units) {}", m.amount_minor, m.currency),
    }
}

/// A KPI value in words: a number with its unit, or why there is none.
fn kpi(v: Option<&v1::KpiValue>) -> String {
    use v1::kpi_value::Result as R;
    let Some(v) = v else {
        return "—".into();
    };
    match &v.result {
        Some(R::Value(x)) => match v1::KpiUnit::try_from(v.unit) {
            Ok(v1::KpiUnit::Percent) => format!("{x:.1} %"),
            Ok(v1::KpiUnit::Ratio) => format!("{x:.2}:1"),
            Ok(v1::KpiUnit::Seconds) => format!("{:.1} h", x / 3_600.0),
            _ => format!("{x:.1}"),
        },
        Some(R::Money(m)) => money(Some(m)),
        Some(R::Count(n)) => n.to_string(),
        Some(R::Absent(a)) => format!("— ({})", a.detail),
        None => "—".into(),
    }
}

/// The period of the last full calendar month before `now` (UTC).
pub fn last_full_month(now: i64) -> v1::Period {
    use retain_domain::{Period, Timestamp};
    let (y, m, _) = Timestamp::from_micros(now.saturating_mul(1_000_000)).ymd();
    let (y, m) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
    let month = Period::month(y, m);
    v1::Period {
        start: Some(retain_proto::convert::from_micros(month.start.micros())),
        end: Some(retain_proto::convert::from_micros(month.end.micros())),
    }
}

#[cfg(test)]
mod tests {
    use retain_proto::v1;

    #[test]
    fn money_reads_like_money() {
        let m = |amount_minor| v1::Money {
            amount_minor,
            currency: "EUR".into(),
        };
        assert_eq!(super::money(Some(&m(123_456_789))), "1,234,567.89 EUR");
        assert_eq!(super::money(Some(&m(-5))), "-0.05 EUR");
        assert_eq!(super::money(Some(&m(100_000))), "1,000.00 EUR");
    }

    #[test]
    fn the_last_full_month_is_the_calendar_month_before() {
        // 2026-11-23T12:00:00Z → [2026-10-01, 2026-11-01).
        let p = super::last_full_month(1_795_435_200);
        assert_eq!(p.start.unwrap().seconds, 1_790_812_800);
        assert_eq!(p.end.unwrap().seconds, 1_793_491_200);
        // January → December of the year before.
        let p = super::last_full_month(1_768_478_400); // 2026-01-15T12:00:00Z
        assert_eq!(p.start.unwrap().seconds, 1_764_547_200); // 2025-12-01
    }
}
