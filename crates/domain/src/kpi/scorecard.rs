//! Strategy and journey-stage scorecards, and rule-based insights.

use crate::exact::{Exact, Ratio};
use crate::measure::Measure;

/// Every KPI, as named in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum KpiId {
    Mrr,
    Arpa,
    GrossMrrChurn,
    NetMrrChurn,
    ExpansionMrr,
    Nrr,
    Grr,
    LogoChurn,
    Ltv,
    Clv,
    Crc,
    Cac,
    LtvToCac,
    LtvToCrc,
    Nps,
    Csat,
    Ces,
    Fcr,
    RenewalRate,
    Dau,
    Wau,
    Mau,
    Stickiness,
    SessionsPerDay,
    TimeInApp,
    ProductUsageRate,
    TrialToPaid,
    OnboardingEngagement,
    HealthDistribution,
}

/// The lens a scorecard is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Keep what you have.
    Stability,
    /// Prove the product fits.
    ProductMarketFit,
    /// Grow revenue per customer.
    Profitability,
}

/// A customer-journey stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JourneyStage {
    /// Trial and onboarding.
    Onboarding,
    /// Staying.
    Retention,
    /// Growing.
    Expansion,
}

/// The headline KPIs of a strategy, in order (docs/KPIS.md, "Scorecards").
pub fn strategy_kpis(s: Strategy) -> &'static [KpiId] {
    match s {
        Strategy::Stability => &[KpiId::LogoChurn, KpiId::SessionsPerDay],
        Strategy::ProductMarketFit => &[KpiId::TrialToPaid, KpiId::OnboardingEngagement],
        Strategy::Profitability => &[KpiId::ExpansionMrr, KpiId::LtvToCac],
    }
}

/// The headline KPIs of a journey stage, in order (docs/KPIS.md,
/// "Scorecards").
pub fn stage_kpis(s: JourneyStage) -> &'static [KpiId] {
    match s {
        JourneyStage::Onboarding => &[KpiId::TrialToPaid, KpiId::OnboardingEngagement],
        JourneyStage::Retention => &[KpiId::HealthDistribution, KpiId::LogoChurn, KpiId::Csat],
        JourneyStage::Expansion => &[KpiId::ExpansionMrr, KpiId::Ltv, KpiId::Nps],
    }
}

/// Orders `all` for a scorecard: the headline KPIs first, in their order,
/// then the rest in their given order.
pub fn scorecard_order(headline: &[KpiId], all: &[KpiId]) -> Vec<KpiId> {
    let mut out: Vec<KpiId> = headline.to_vec();
    out.extend(all.iter().filter(|k| !headline.contains(k)));
    out
}

/// How an insight reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Good news.
    Positive,
    /// A threshold is breached.
    Warning,
}

/// A rule-based observation.
#[derive(Debug, Clone, PartialEq)]
pub struct Insight {
    /// Stable key.
    pub key: &'static str,
    /// Severity.
    pub severity: Severity,
    /// The KPI concerned.
    pub kpi: KpiId,
    /// Text.
    pub message: String,
}

/// The KPI values insights look at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InsightInputs {
    /// LTV:CAC ratio, exact.
    pub ltv_to_cac: Exact,
    /// LTV:CRC ratio, exact.
    pub ltv_to_crc: Exact,
    /// NRR %.
    pub nrr: Measure,
    /// Net MRR churn %.
    pub net_mrr_churn: Measure,
}

/// Warnings and insights: LTV:CAC below 3, LTV:CRC at or below 2 (both
/// decided on the exact ratio: exactly 3:1 does not warn, exactly 2:1
/// does), NRR below 100, negative churn reached. Absent KPIs raise nothing.
pub fn insights(i: &InsightInputs) -> Vec<Insight> {
    let mut out = Vec::new();
    if let Some(r) = i
        .ltv_to_cac
        .value()
        .filter(|&r| r < Ratio::integer(3))
        .map(Ratio::to_f64)
    {
        out.push(Insight {
            key: "ltv_to_cac_below_3",
            severity: Severity::Warning,
            kpi: KpiId::LtvToCac,
            message: format!(
                "LTV:CAC is {r:.2}:1, below 3:1: acquisition costs more than customers return"
            ),
        });
    }
    if let Some(r) = i
        .ltv_to_crc
        .value()
        .filter(|&r| r <= Ratio::integer(2))
        .map(Ratio::to_f64)
    {
        out.push(Insight {
            key: "ltv_to_crc_at_or_below_2",
            severity: Severity::Warning,
            kpi: KpiId::LtvToCrc,
            message: format!(
                "LTV:CRC is {r:.2}:1, at or below 2:1: retention spend eats the lifetime value"
            ),
        });
    }
    if let Some(n) = i.nrr.value().filter(|&n| n < 100.0) {
        out.push(Insight {
            key: "nrr_below_100",
            severity: Severity::Warning,
            kpi: KpiId::Nrr,
            message: format!("NRR is {n:.1} %: the start cohort is worth less than at the start"),
        });
    }
    if let Some(c) = i.net_mrr_churn.value().filter(|&c| c < 0.0) {
        out.push(Insight {
            key: "negative_churn",
            severity: Severity::Positive,
            kpi: KpiId::NetMrrChurn,
            message: format!(
                "Negative churn reached: net MRR churn is {c:.1} %, expansion outgrows losses"
            ),
        });
    }
    out
}
