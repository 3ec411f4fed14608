//! `GetPortfolioMetrics`: every KPI of a period over the accounts a filter
//! selects, from the sum of their contributions
//! (`retain_domain::kpi::rollup::portfolio`) — summed at query time over
//! their signals, or read pre-summed for a finished month (`rollups`).
//! Every formula is in `retain-domain`; docs/KPIS.md says what each counts.

use std::collections::BTreeMap;

use crate::settings::Tenant;
use retain_domain::kpi::experience::CsatThresholds;
use retain_domain::kpi::revenue::{self, RevenueKpis};
use retain_domain::kpi::rollup::cost::{CostFact, CostRollup};
use retain_domain::kpi::rollup::portfolio::{Basis, Contribution};
use retain_domain::kpi::scorecard::{self, InsightInputs, KpiId, Severity};
use retain_domain::{Absence, Exact, Measure, Money, MoneyMeasure, Period, Ratio};
use retain_proto::{convert, v1};
use retain_runtime::error::Error;

/// Days a week a paying account must be active on, on average, to count
/// for the product usage rate.
pub const USAGE_TARGET_DAYS_PER_WEEK: f64 = 3.0;

/// What one period's portfolio KPIs are computed from: the selected
/// accounts' contributions summed, trials per segment, and the
/// portfolio's costs.
#[derive(Debug, Default)]
pub struct Tally {
    /// Every selected account's contribution, merged.
    pub total: Contribution,
    /// Segment ("" for none) → (trials started, converted).
    pub trials_by_segment: BTreeMap<String, (u64, u64)>,
    /// The portfolio's cost signals.
    pub costs: Vec<CostFact>,
}

impl Tally {
    /// Adds another set of accounts' tally (its costs are the portfolio's,
    /// set once by the caller, and not added).
    pub fn merge(&mut self, other: Tally) {
        use retain_domain::kpi::rollup::Rollup;
        self.total.merge(&other.total);
        for (segment, (started, converted)) in other.trials_by_segment {
            let e = self.trials_by_segment.entry(segment).or_default();
            e.0 += started;
            e.1 += converted;
        }
    }
}

/// The basis of a period's contributions: as of its end, or `now` while
/// it has not ended.
pub fn basis(period: Period, now: retain_domain::Timestamp, tenant: &Tenant) -> Basis<'_> {
    Basis {
        period,
        as_of: period.end.min(now).max(period.start),
        currency: tenant.base_currency,
        checklist: &tenant.onboarding_checklist,
        payment_failed_churn_days: tenant.own.payment_failed_churn_days(),
        usage_days_per_week: USAGE_TARGET_DAYS_PER_WEEK,
        trial_window_days: retain_domain::kpi::adoption::DEFAULT_TRIAL_WINDOW_DAYS,
        stuck_after_days: retain_domain::snapshot::STUCK_AFTER_DAYS,
    }
}

/// Every KPI of `basis.period` from `tally`, in `Kpi` order, with churn by
/// reason, trial-to-paid per segment, insights and stuck accounts.
/// `filtered` says a segment/plan filter selected the accounts: costs are
/// the portfolio's, so CRC and CAC are then not applicable.
pub fn portfolio(
    tally: &Tally,
    basis: &Basis<'_>,
    filtered: bool,
) -> Result<v1::GetPortfolioMetricsResponse, Error> {
    let (period, currency) = (basis.period, basis.currency);
    let c = &tally.total;
    let rev: RevenueKpis = c
        .revenue
        .kpis(period, currency)
        .map_err(|e| Error::Internal(format!("revenue KPIs: {e}")))?;
    let logo_churn = rev.logo_churn_rate();
    let ltv = revenue::ltv(rev.arpa, Ratio::ONE, logo_churn);
    let (crc, cac, ltv_to_cac, ltv_to_crc) = if filtered {
        // Replaced below by NOT_APPLICABLE: costs are portfolio-wide.
        let none = MoneyMeasure {
            currency,
            minor: Exact::Absent(Absence::NoData),
        };
        (
            none,
            none,
            Exact::Absent(Absence::NoData),
            Exact::Absent(Absence::NoData),
        )
    } else {
        let costs = CostRollup::from_costs(&tally.costs, period, currency)
            .map_err(|e| Error::Internal(format!("costs: {e}")))?;
        let crc = costs.crc(currency, rev.start_cohort);
        let cac = costs.cac(currency, rev.new_accounts);
        (
            crc,
            cac,
            ltv.ratio_to(cac).unwrap_or(Exact::Absent(Absence::NoData)),
            ltv.ratio_to(crc).unwrap_or(Exact::Absent(Absence::NoData)),
        )
    };
    let clv = {
        let (avg, per_month) = c.purchase_rates(period, currency);
        // Lifetime = 1 / logo churn: absent with the churn rate (no start
        // cohort, or no churn).
        let lifetime = if rev.start_cohort == 0 {
            Exact::Absent(Absence::ZeroDenominator)
        } else {
            Exact::ratio(
                i128::from(rev.start_cohort),
                i128::from(rev.churned_accounts),
            )
        };
        revenue::clv(avg, per_month, lifetime)
    };

    let ces = c.experience.ces();
    let ces_used: Vec<_> = ces.iter().filter(|c| c.answers > 0).collect();
    let (ces_mean, low_effort) = match ces_used.as_slice() {
        [one] => (score(one.mean), percent(one.low_effort_pct)),
        [] => (
            absent(Absence::NoData, "no CES answer in the period"),
            absent(Absence::NoData, "no CES answer in the period"),
        ),
        _ => {
            let detail = "CES answers on both the 1–5 and the 1–7 scale are not averaged together";
            (not_applicable(detail), not_applicable(detail))
        }
    };
    let active = c.active_users();
    let elapsed = basis.elapsed();

    // LTV and CLV need a monthly churn rate: only a whole calendar month
    // gives one (docs/KPIS.md, "LTV"); the ratios and their warnings
    // follow them.
    let monthly = revenue::gives_monthly_churn(period, basis.as_of);
    let (ltv_to_cac, ltv_to_crc) = if monthly {
        (ltv_to_cac, ltv_to_crc)
    } else {
        (
            Exact::Absent(Absence::NoData),
            Exact::Absent(Absence::NoData),
        )
    };
    let mut kpis: Vec<(v1::Kpi, v1::KpiValue)> = vec![
        (v1::Kpi::Mrr, money(rev.mrr.into())),
        (v1::Kpi::Arpa, money(rev.arpa)),
        (v1::Kpi::GrossMrrChurn, percent(rev.gross_mrr_churn)),
        (v1::Kpi::NetMrrChurn, percent(rev.net_mrr_churn)),
        (v1::Kpi::ExpansionMrr, percent(rev.expansion_rate)),
        (v1::Kpi::Nrr, percent(rev.nrr)),
        (v1::Kpi::Grr, percent(rev.grr)),
        (v1::Kpi::LogoChurn, percent(rev.logo_churn)),
        (v1::Kpi::Ltv, money(ltv)),
        (v1::Kpi::Clv, money(clv)),
        (v1::Kpi::Crc, money(crc)),
        (v1::Kpi::Cac, money(cac)),
        (v1::Kpi::LtvToCac, ratio(ltv_to_cac)),
        (v1::Kpi::LtvToCrc, ratio(ltv_to_crc)),
        (v1::Kpi::Nps, score(c.experience.nps())),
        (
            v1::Kpi::Csat,
            percent(c.experience.csat(CsatThresholds::default())),
        ),
        (v1::Kpi::Ces, ces_mean),
        (v1::Kpi::Fcr, percent(c.experience.fcr())),
        (v1::Kpi::RenewalRate, percent(c.experience.renewal_rate())),
        (v1::Kpi::Dau, count(active.dau)),
        (v1::Kpi::Wau, count(active.wau)),
        (v1::Kpi::Mau, count(active.mau)),
        (
            v1::Kpi::Stickiness,
            percent(active.stickiness.map(|f| f * 100.0)),
        ),
        (
            v1::Kpi::SessionsPerDay,
            number(c.sessions_per_day(elapsed), v1::KpiUnit::Count),
        ),
        (
            v1::Kpi::TimeInApp,
            number(c.time_in_app(), v1::KpiUnit::Seconds),
        ),
        (v1::Kpi::ProductUsageRate, percent(c.product_usage_rate())),
        (v1::Kpi::TrialToPaid, percent(c.trial_to_paid())),
        (
            v1::Kpi::OnboardingEngagement,
            score(c.onboarding_engagement(basis.checklist.len())),
        ),
        (v1::Kpi::LowEffortShare, low_effort),
        (v1::Kpi::PayingAccounts, count(rev.paying_accounts)),
    ];
    for (kpi, value) in &mut kpis {
        let why = match kpi {
            v1::Kpi::Ltv | v1::Kpi::Clv | v1::Kpi::LtvToCac | v1::Kpi::LtvToCrc if !monthly => {
                NEEDS_A_MONTH
            }
            v1::Kpi::Crc | v1::Kpi::Cac | v1::Kpi::LtvToCac | v1::Kpi::LtvToCrc if filtered => {
                PORTFOLIO_COSTS
            }
            _ => continue,
        };
        *value = v1::KpiValue {
            unit: value.unit,
            ..not_applicable(why)
        };
    }
    let insights = scorecard::insights(&InsightInputs {
        ltv_to_cac,
        ltv_to_crc,
        nrr: rev.nrr,
        net_mrr_churn: rev.net_mrr_churn,
    });
    Ok(v1::GetPortfolioMetricsResponse {
        period: Some(period_to_proto(period)),
        kpis: kpis
            .into_iter()
            .map(|(kpi, value)| v1::KpiEntry {
                kpi: kpi as i32,
                value: Some(value),
            })
            .collect(),
        churn_reasons: rev
            .churn_by_reason
            .iter()
            .map(|(reason, n)| v1::ChurnReasonCount {
                reason: reason.key().to_owned(),
                accounts: i64::try_from(*n).unwrap_or(i64::MAX),
            })
            .collect(),
        trial_to_paid_by_segment: tally
            .trials_by_segment
            .iter()
            .filter(|(_, (started, _))| *started > 0)
            .map(|(segment, (started, converted))| v1::SegmentKpi {
                segment: segment.clone(),
                value: Some(percent(Measure::percent(
                    *converted as f64,
                    *started as f64,
                ))),
            })
            .collect(),
        insights: insights
            .into_iter()
            .map(|i| v1::Insight {
                key: i.key.to_owned(),
                severity: match i.severity {
                    Severity::Positive => v1::InsightSeverity::Positive,
                    Severity::Warning => v1::InsightSeverity::Warning,
                } as i32,
                kpi: kpi_of(i.kpi) as i32,
                message: i.message,
            })
            .collect(),
        stuck_accounts: i64::try_from(c.stuck).unwrap_or(i64::MAX),
    })
}

/// The wire KPI of a domain KPI id.
pub fn kpi_of(k: KpiId) -> v1::Kpi {
    match k {
        KpiId::Mrr => v1::Kpi::Mrr,
        KpiId::Arpa => v1::Kpi::Arpa,
        KpiId::GrossMrrChurn => v1::Kpi::GrossMrrChurn,
        KpiId::NetMrrChurn => v1::Kpi::NetMrrChurn,
        KpiId::ExpansionMrr => v1::Kpi::ExpansionMrr,
        KpiId::Nrr => v1::Kpi::Nrr,
        KpiId::Grr => v1::Kpi::Grr,
        KpiId::LogoChurn => v1::Kpi::LogoChurn,
        KpiId::Ltv => v1::Kpi::Ltv,
        KpiId::Clv => v1::Kpi::Clv,
        KpiId::Crc => v1::Kpi::Crc,
        KpiId::Cac => v1::Kpi::Cac,
        KpiId::LtvToCac => v1::Kpi::LtvToCac,
        KpiId::LtvToCrc => v1::Kpi::LtvToCrc,
        KpiId::Nps => v1::Kpi::Nps,
        KpiId::Csat => v1::Kpi::Csat,
        KpiId::Ces => v1::Kpi::Ces,
        KpiId::Fcr => v1::Kpi::Fcr,
        KpiId::RenewalRate => v1::Kpi::RenewalRate,
        KpiId::Dau => v1::Kpi::Dau,
        KpiId::Wau => v1::Kpi::Wau,
        KpiId::Mau => v1::Kpi::Mau,
        KpiId::Stickiness => v1::Kpi::Stickiness,
        KpiId::SessionsPerDay => v1::Kpi::SessionsPerDay,
        KpiId::TimeInApp => v1::Kpi::TimeInApp,
        KpiId::ProductUsageRate => v1::Kpi::ProductUsageRate,
        KpiId::TrialToPaid => v1::Kpi::TrialToPaid,
        KpiId::OnboardingEngagement => v1::Kpi::OnboardingEngagement,
        KpiId::HealthDistribution => v1::Kpi::Unspecified,
    }
}

/// A period on the wire.
pub fn period_to_proto(p: Period) -> v1::Period {
    v1::Period {
        start: Some(convert::from_micros(p.start.micros())),
        end: Some(convert::from_micros(p.end.micros())),
    }
}

/// Why LTV, CLV and their ratios are absent for a period that is not one
/// whole calendar month.
pub const NEEDS_A_MONTH: &str = "needs a one-calendar-month period";

/// Why CRC, CAC and the LTV ratios are absent under a segment or plan
/// filter.
pub const PORTFOLIO_COSTS: &str =
    "costs are the whole portfolio's: not applicable under a segment or plan filter";

fn absent(reason: Absence, detail: &str) -> v1::KpiValue {
    let reason = match reason {
        Absence::ZeroDenominator => v1::AbsenceReason::ZeroDenominator,
        Absence::NoData => v1::AbsenceReason::NoData,
        Absence::Overflow => v1::AbsenceReason::NotApplicable,
    };
    v1::KpiValue {
        result: Some(v1::kpi_value::Result::Absent(v1::Absent {
            reason: reason as i32,
            detail: detail.to_owned(),
        })),
        unit: v1::KpiUnit::Unspecified as i32,
    }
}

fn not_applicable(detail: &str) -> v1::KpiValue {
    v1::KpiValue {
        result: Some(v1::kpi_value::Result::Absent(v1::Absent {
            reason: v1::AbsenceReason::NotApplicable as i32,
            detail: detail.to_owned(),
        })),
        unit: v1::KpiUnit::Unspecified as i32,
    }
}

fn why(a: Absence) -> &'static str {
    match a {
        Absence::ZeroDenominator => "its denominator is zero in this period",
        Absence::NoData => "the signals it needs were never ingested",
        Absence::Overflow => "the exact value does not fit",
    }
}

fn number(m: Measure, unit: v1::KpiUnit) -> v1::KpiValue {
    match m {
        Measure::Value(v) => v1::KpiValue {
            result: Some(v1::kpi_value::Result::Value(v)),
            unit: unit as i32,
        },
        Measure::Absent(a) => v1::KpiValue {
            unit: unit as i32,
            ..absent(a, why(a))
        },
    }
}

fn percent(m: Measure) -> v1::KpiValue {
    number(m, v1::KpiUnit::Percent)
}

fn score(m: Measure) -> v1::KpiValue {
    number(m, v1::KpiUnit::Score)
}

fn ratio(e: Exact) -> v1::KpiValue {
    number(e.to_measure(), v1::KpiUnit::Ratio)
}

fn count(n: u64) -> v1::KpiValue {
    v1::KpiValue {
        result: Some(v1::kpi_value::Result::Count(
            i64::try_from(n).unwrap_or(i64::MAX),
        )),
        unit: v1::KpiUnit::Count as i32,
    }
}

/// Money rounded to the minor unit (half away from zero) for display; the
/// KPI was exact until here.
fn money(m: MoneyMeasure) -> v1::KpiValue {
    match m.minor {
        Exact::Value(r) => {
            let (n, d) = (r.numer(), r.denom());
            let rounded = (2 * n + d * n.signum()) / (2 * d);
            v1::KpiValue {
                result: Some(v1::kpi_value::Result::Money(convert::money_to_proto(
                    Money::new(i64::try_from(rounded).unwrap_or(i64::MAX), m.currency),
                ))),
                unit: v1::KpiUnit::Money as i32,
            }
        }
        Exact::Absent(a) => v1::KpiValue {
            unit: v1::KpiUnit::Money as i32,
            ..absent(a, why(a))
        },
    }
}
