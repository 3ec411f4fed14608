//! `GetScorecard` and `GetKpiSeries` arguments, and the scorecard: the
//! KPIs a strategy or journey stage puts first (`retain-domain` decides
//! which and in what order), then the rest.

use retain_domain::Granularity;
use retain_domain::kpi::scorecard::{self, JourneyStage, KpiId, Strategy};
use retain_proto::v1;
use retain_runtime::error::Error;

/// The headline KPIs of a scorecard's lens, in the order it puts them.
pub fn headline(lens: Option<&v1::get_scorecard_request::Lens>) -> Result<Vec<v1::Kpi>, Error> {
    use v1::get_scorecard_request::Lens;
    let ids: &[KpiId] = match lens {
        None => {
            return Err(Error::invalid(
                "lens",
                "is required: a strategy or a journey stage",
            ));
        }
        Some(Lens::Strategy(n)) => scorecard::strategy_kpis(match v1::Strategy::try_from(*n) {
            Ok(v1::Strategy::Stability) => Strategy::Stability,
            Ok(v1::Strategy::ProductMarketFit) => Strategy::ProductMarketFit,
            Ok(v1::Strategy::Profitability) => Strategy::Profitability,
            _ => {
                return Err(Error::invalid(
                    "strategy",
                    format!(
                        "{n} is not a strategy; use STABILITY, PRODUCT_MARKET_FIT or PROFITABILITY"
                    ),
                ));
            }
        }),
        Some(Lens::Stage(n)) => scorecard::stage_kpis(match v1::JourneyStage::try_from(*n) {
            Ok(v1::JourneyStage::Onboarding) => JourneyStage::Onboarding,
            Ok(v1::JourneyStage::Retention) => JourneyStage::Retention,
            Ok(v1::JourneyStage::Expansion) => JourneyStage::Expansion,
            _ => {
                return Err(Error::invalid(
                    "stage",
                    format!("{n} is not a journey stage; use ONBOARDING, RETENTION or EXPANSION"),
                ));
            }
        }),
    };
    // The health distribution is not a KPI entry: it has its own field.
    Ok(ids
        .iter()
        .filter(|k| **k != KpiId::HealthDistribution)
        .map(|k| crate::kpis::kpi_of(*k))
        .collect())
}

/// The scorecard of `headline` from the period's portfolio KPIs. The
/// health distribution stays empty until the health service scores
/// accounts.
pub fn build(
    headline: &[v1::Kpi],
    metrics: v1::GetPortfolioMetricsResponse,
) -> v1::GetScorecardResponse {
    let mut first = Vec::with_capacity(headline.len());
    for k in headline {
        if let Some(e) = metrics.kpis.iter().find(|e| e.kpi == *k as i32) {
            first.push(e.clone());
        }
    }
    let supporting = metrics
        .kpis
        .into_iter()
        .filter(|e| !headline.iter().any(|k| *k as i32 == e.kpi))
        .collect();
    v1::GetScorecardResponse {
        headline: first,
        supporting,
        health_distribution: Vec::new(),
        insights: metrics.insights,
    }
}

/// The KPI a series asks for.
pub fn kpi(n: i32) -> Result<v1::Kpi, Error> {
    match v1::Kpi::try_from(n) {
        Ok(v1::Kpi::Unspecified) => Err(Error::invalid("kpi", "is required")),
        Ok(k) => Ok(k),
        Err(_) => Err(Error::invalid("kpi", format!("{n} is not a KPI"))),
    }
}

/// A series' bucket size (`UNSPECIFIED` is a month).
pub fn granularity(n: i32) -> Result<Granularity, Error> {
    match v1::Granularity::try_from(n) {
        Ok(v1::Granularity::Unspecified | v1::Granularity::Month) => Ok(Granularity::Month),
        Ok(v1::Granularity::Day) => Ok(Granularity::Day),
        Ok(v1::Granularity::Week) => Ok(Granularity::Week),
        Ok(v1::Granularity::Quarter) => Ok(Granularity::Quarter),
        Ok(v1::Granularity::Year) => Ok(Granularity::Year),
        Err(_) => Err(Error::invalid(
            "granularity",
            format!("{n} is not a granularity; use DAY, WEEK, MONTH, QUARTER or YEAR"),
        )),
    }
}
