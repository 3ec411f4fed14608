//! The demo's report, read from the services' gRPC APIs as any client
//! would: the portfolio's KPIs for the last full month with their
//! warnings, the MRR bridge, the band distribution, the accounts most at
//! risk with their explanations, the CSM queue and the emails written.

use std::path::Path;

use retain_proto::v1;
use retain_proto::v1::health_service_client::HealthServiceClient;
use retain_proto::v1::metrics_service_client::MetricsServiceClient;
use retain_proto::v1::notification_service_client::NotificationServiceClient;
use tonic::transport::Channel;

use crate::demo::{authorized, last_full_month};

/// Prints the report for the dev tenant as of `now`.
pub async fn print(
    channel: Channel,
    token: &str,
    now: i64,
    outbox: Option<&Path>,
) -> anyhow::Result<()> {
    let call =
        |what: &'static str| move |s: tonic::Status| anyhow::anyhow!("{what}: {}", s.message());
    let period = last_full_month(now);
    let month = period
        .start
        .as_ref()
        .and_then(retain_proto::convert::timestamp)
        .map(|t| {
            let (y, m, _) = t.ymd();
            format!("{y}-{m:02}")
        })
        .unwrap_or_default();

    // Portfolio KPIs and the MRR bridge.
    let mut metrics = MetricsServiceClient::new(channel.clone());
    let portfolio = metrics
        .get_portfolio_metrics(authorized(
            token,
            v1::GetPortfolioMetricsRequest {
                period: Some(period),
                filter: None,
            },
        )?)
        .await
        .map_err(call("GetPortfolioMetrics"))?
        .into_inner();
    heading(&format!("Portfolio, {month}"));
    for entry in &portfolio.kpis {
        let name = v1::Kpi::try_from(entry.kpi)
            .map_or("unknown", |k| k.as_str_name())
            .trim_start_matches("KPI_")
            .replace('_', " ")
            .to_lowercase();
        println!("  {name:<34} {}", kpi(entry.value.as_ref()));
    }
    if !portfolio.insights.is_empty() {
        println!();
        for insight in &portfolio.insights {
            let mark = match v1::InsightSeverity::try_from(insight.severity) {
                Ok(v1::InsightSeverity::Warning) => "!",
                Ok(v1::InsightSeverity::Positive) => "+",
                _ => "·",
            };
            println!("  {mark} {}", insight.message);
        }
    }
    let bridge = metrics
        .get_mrr_bridge(authorized(
            token,
            v1::GetMrrBridgeRequest {
                period: Some(period),
                filter: None,
            },
        )?)
        .await
        .map_err(call("GetMrrBridge"))?
        .into_inner();
    heading(&format!("MRR bridge, {month}"));
    for (label, amount, sign) in [
        ("start", &bridge.start_mrr, ""),
        ("new", &bridge.new_mrr, "+"),
        ("reactivation", &bridge.reactivation_mrr, "+"),
        ("expansion", &bridge.expansion_mrr, "+"),
        ("contraction", &bridge.contraction_mrr, "−"),
        ("churned", &bridge.churned_mrr, "−"),
        ("end", &bridge.end_mrr, "="),
    ] {
        println!("  {sign:>1} {label:<14} {:>14}", money(amount.as_ref()));
    }

    // Health: the bands, and the accounts most at risk.
    let mut health = HealthServiceClient::new(channel.clone());
    let mut bands = [0_usize; 5];
    let mut page_token = String::new();
    loop {
        let page = health
            .list_health(authorized(
                token,
                v1::ListHealthRequest {
                    page_size: 1_000,
                    page_token,
                    ..Default::default()
                },
            )?)
            .await
            .map_err(call("ListHealth"))?
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
    for band in [
        v1::HealthBand::Thriving,
        v1::HealthBand::Green,
        v1::HealthBand::Yellow,
        v1::HealthBand::Red,
    ] {
        println!(
            "  {:<10} {:>5}",
            band_name(band as i32),
            bands[band as usize]
        );
    }
    let at_risk = health
        .list_health(authorized(
            token,
            v1::ListHealthRequest {
                page_size: 10,
                sort: v1::HealthSort::ScoreAscending as i32,
                ..Default::default()
            },
        )?)
        .await
        .map_err(call("ListHealth"))?
        .into_inner();
    heading("The ten accounts most at risk");
    for s in &at_risk.scores {
        println!(
            "  {:<16} {:>5.1}  {:<8} {}",
            s.account_id,
            s.score,
            band_name(s.band),
            s.explanation
        );
    }

    // The CSM queue and the emails.
    let mut notification = NotificationServiceClient::new(channel);
    let tasks = notification
        .list_tasks(authorized(
            token,
            v1::ListTasksRequest {
                page_size: 10,
                ..Default::default()
            },
        )?)
        .await
        .map_err(call("ListTasks"))?
        .into_inner();
    heading("CSM queue (open tasks, most urgent first)");
    if tasks.tasks.is_empty() {
        println!("  (none)");
    }
    for t in &tasks.tasks {
        let priority = v1::TaskPriority::try_from(t.priority)
            .map_or("?", |p| p.as_str_name())
            .trim_start_matches("TASK_PRIORITY_")
            .to_lowercase();
        let who = if t.assignee.is_empty() {
            "unassigned"
        } else {
            &t.assignee
        };
        println!(
            "  [{priority:<6}] {:<22} {:<16} {who}",
            t.title, t.account_id
        );
        println!("           {}", t.message);
    }
    let emails = notification
        .list_notifications(authorized(
            token,
            v1::ListNotificationsRequest {
                channel: v1::NotificationChannel::Email as i32,
                page_size: 5,
                ..Default::default()
            },
        )?)
        .await
        .map_err(call("ListNotifications"))?
        .into_inner();
    heading("Emails");
    for c in &emails.counts {
        let state = v1::DeliveryState::try_from(c.state)
            .map_or("?", |s| s.as_str_name())
            .trim_start_matches("DELIVERY_STATE_")
            .to_lowercase();
        println!("  {state:<11} {:>5}", c.count);
    }
    for n in &emails.notifications {
        println!(
            "  {:<24} to {:<28} {}",
            n.template,
            n.recipients.join(", "),
            n.account_id
        );
    }
    if let Some(dir) = outbox {
        println!("  written to {}", dir.display());
    }
    Ok(())
}

fn heading(title: &str) {
    println!("\n{title}\n{}", "─".repeat(title.chars().count()));
}

fn band_name(band: i32) -> String {
    v1::HealthBand::try_from(band)
        .map_or("?", |b| b.as_str_name())
        .trim_start_matches("HEALTH_BAND_")
        .to_lowercase()
}

/// `1,234.56 EUR`.
fn money(m: Option<&v1::Money>) -> String {
    let Some(m) = m else {
        return "—".into();
    };
    let (sign, minor) = if m.amount_minor < 0 {
        ("-", m.amount_minor.unsigned_abs())
    } else {
        ("", m.amount_minor.unsigned_abs())
    };
    let units = (minor / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in units.chars().enumerate() {
        if i > 0 && (units.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{sign}{grouped}.{:02} {}", minor % 100, m.currency)
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
}
