//! `GetPortfolioMetrics`: every KPI of a period over the accounts a filter
//! selects, from their signals, each formula in `retain-domain` (docs/KPIS.md
//! says what each counts). Like the bridge, this first version reads the
//! signals at query time; the rollups will serve the same answers faster.

use std::collections::{BTreeMap, HashMap, HashSet};

use retain_domain::kpi::adoption::{
    self, DEFAULT_TRIAL_WINDOW_DAYS, MilestoneFact, SessionFact, TrialFact,
};
use retain_domain::kpi::experience::{self, CsatThresholds};
use retain_domain::kpi::revenue::{self, MrrChange, OpeningBalance, Purchase, RevenueKpis};
use retain_domain::kpi::rollup::cost::{CostFact, CostRollup};
use retain_domain::kpi::scorecard::{self, InsightInputs, KpiId, Severity};
use retain_domain::signal::{
    RenewalOutcome, Signal, SignalBody, SurveyKind, TicketStatus, TrialEvent,
};
use retain_domain::snapshot::STUCK_AFTER_DAYS;
use retain_domain::{Absence, Currency, Exact, Measure, Money, MoneyMeasure, Period, Ratio};
use retain_proto::{convert, v1};
use retain_runtime::error::Error;

/// Days a week a paying account must be active on, on average, to count
/// for the product usage rate.
pub const USAGE_TARGET_DAYS_PER_WEEK: f64 = 3.0;

/// The facts of the selected accounts' signals the KPIs need.
#[derive(Debug, Default)]
pub struct Facts {
    changes: Vec<MrrChange>,
    openings: Vec<OpeningBalance>,
    sessions: Vec<SessionFact>,
    nps: Vec<u8>,
    csat: Vec<(retain_domain::kpi::experience::Scale, u8)>,
    ces: Vec<(retain_domain::kpi::experience::Scale, u8)>,
    resolved_contacts: Vec<u32>,
    renewals: BTreeMap<(String, i64), (retain_domain::Timestamp, String, RenewalOutcome)>,
    trials: BTreeMap<
        String,
        (
            Option<retain_domain::Timestamp>,
            Option<retain_domain::Timestamp>,
        ),
    >,
    milestones: BTreeMap<String, Vec<MilestoneFact>>,
    first_seen: BTreeMap<String, retain_domain::Timestamp>,
    purchases: Vec<Purchase>,
    costs: Vec<CostFact>,
}

impl Facts {
    /// The facts of `signals` (valid, any order) that lie in `period`,
    /// plus the history revenue, trials and onboarding need.
    pub fn gather(signals: &[Signal], period: Period) -> Self {
        let mut f = Facts::default();
        for s in signals {
            let in_period = period.contains(s.occurred_at);
            let account = &s.account_id;
            if account != retain_domain::signal::PORTFOLIO {
                let first = f.first_seen.entry(account.clone()).or_insert(s.occurred_at);
                *first = (*first).min(s.occurred_at);
            }
            match &s.body {
                SignalBody::Subscription {
                    amount,
                    interval,
                    churn_reason,
                    opening,
                    ..
                } => {
                    let mrr = Money::new(
                        retain_domain::signal::monthly_mrr(amount.minor, *interval),
                        amount.currency,
                    );
                    if *opening {
                        f.openings.push(OpeningBalance {
                            account: account.clone(),
                            at: s.occurred_at,
                            mrr,
                        });
                    } else {
                        f.changes.push(MrrChange {
                            account: account.clone(),
                            at: s.occurred_at,
                            seq: s.event_id.clone(),
                            mrr,
                            churn_reason: *churn_reason,
                        });
                    }
                }
                SignalBody::Session {
                    user_id,
                    duration_seconds,
                } => f.sessions.push(SessionFact {
                    account: account.clone(),
                    user: user_id.clone(),
                    at: s.occurred_at,
                    seconds: *duration_seconds,
                }),
                SignalBody::Survey {
                    kind, scale, score, ..
                } if in_period => {
                    let score = u8::try_from(*score).unwrap_or(0);
                    match kind {
                        SurveyKind::Nps => f.nps.push(score),
                        SurveyKind::Csat => f.csat.push((*scale, score)),
                        SurveyKind::Ces => f.ces.push((*scale, score)),
                    }
                }
                SignalBody::Ticket {
                    status: TicketStatus::Resolved,
                    contacts_until_resolution,
                    ..
                } if in_period => f
                    .resolved_contacts
                    .push(u32::try_from(*contacts_until_resolution).unwrap_or(u32::MAX)),
                SignalBody::Renewal(outcome) if in_period => {
                    // One renewal per account and contract-end day: its
                    // latest outcome.
                    let key = (account.clone(), s.occurred_at.day_number());
                    let candidate = (s.occurred_at, s.event_id.clone(), *outcome);
                    let e = f.renewals.entry(key).or_insert(candidate.clone());
                    if (candidate.0, &candidate.1) > (e.0, &e.1) {
                        *e = candidate;
                    }
                }
                SignalBody::Trial(event) => {
                    let e = f.trials.entry(account.clone()).or_default();
                    match event {
                        TrialEvent::Started => {
                            e.0 = Some(e.0.map_or(s.occurred_at, |t| t.min(s.occurred_at)));
                        }
                        TrialEvent::Converted => {
                            e.1 = Some(e.1.map_or(s.occurred_at, |t| t.min(s.occurred_at)));
                        }
                        TrialEvent::Expired => {}
                    }
                }
                SignalBody::Milestone { key, achieved } => {
                    f.milestones
                        .entry(account.clone())
                        .or_default()
                        .push(MilestoneFact {
                            account: account.clone(),
                            key: key.clone(),
                            at: s.occurred_at,
                            achieved: *achieved,
                        });
                }
                SignalBody::Purchase(amount) => f.purchases.push(Purchase {
                    account: account.clone(),
                    at: s.occurred_at,
                    amount: *amount,
                }),
                SignalBody::Cost {
                    kind,
                    amount,
                    period: covers,
                } => f.costs.push(CostFact {
                    kind: *kind,
                    amount: *amount,
                    covers: *covers,
                }),
                _ => {}
            }
        }
        f
    }
}

/// Every KPI of `period` from `facts`, in `Kpi` order, with churn by
/// reason, trial-to-paid per segment, insights and stuck accounts.
pub fn portfolio(
    facts: &Facts,
    period: Period,
    now: retain_domain::Timestamp,
    filtered: bool,
    currency: Currency,
    checklist: &[String],
    segments: &HashMap<String, String>,
) -> Result<v1::GetPortfolioMetricsResponse, Error> {
    // KPIs measured "as of" the period's end (active users, onboarding)
    // are measured as of now when the period has not ended yet.
    let as_of = period.end.min(now).max(period.start);
    let rev: RevenueKpis =
        revenue::revenue_kpis_with_openings(&facts.changes, &facts.openings, period, currency)
            .map_err(|e| Error::Internal(format!("revenue KPIs: {e}")))?;
    let logo_churn = rev.logo_churn_rate();
    let ltv = revenue::ltv(rev.arpa, Ratio::ONE, logo_churn);
    // Costs are portfolio-level: under a segment/plan filter CRC and CAC
    // (and the ratios and warnings built on them) are not applicable.
    let (crc, cac, ltv_to_cac, ltv_to_crc) = if filtered {
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
        let costs = CostRollup::from_costs(&facts.costs, period, currency)
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
    let in_period: Vec<Purchase> = facts
        .purchases
        .iter()
        .filter(|p| period.contains(p.at))
        .cloned()
        .collect();
    let clv = match revenue::purchase_rates(&in_period, period, currency) {
        Ok((avg, per_month)) => {
            // Lifetime = 1 / logo churn: absent with the churn rate (no
            // start cohort, or no churn).
            let lifetime = if rev.start_cohort == 0 {
                Exact::Absent(Absence::ZeroDenominator)
            } else {
                Exact::ratio(
                    i128::from(rev.start_cohort),
                    i128::from(rev.churned_accounts),
                )
            };
            revenue::clv(avg, per_month, lifetime)
        }
        Err(e) => return Err(Error::Internal(format!("purchases: {e}"))),
    };

    let ces = experience::ces(&facts.ces);
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
    let (due, renewed) = facts.renewals.values().fold((0u64, 0u64), |(d, r), v| {
        (d + 1, r + u64::from(v.2 == RenewalOutcome::Renewed))
    });

    let active = adoption::active(&facts.sessions, as_of);
    let elapsed = Period::new(period.start, as_of).unwrap_or(period);
    let paying: HashSet<&str> =
        revenue::paying_before(&facts.changes, &facts.openings, period.end, currency)
            .map_err(|e| Error::Internal(format!("paying accounts: {e}")))?;
    let usage = adoption::product_usage_rate(
        &facts.sessions,
        elapsed,
        &paying,
        USAGE_TARGET_DAYS_PER_WEEK,
    );
    let trials: Vec<TrialFact> = facts
        .trials
        .iter()
        .filter_map(|(account, (started, converted))| {
            Some(TrialFact {
                account: account.clone(),
                segment: segments.get(account).cloned().unwrap_or_default(),
                started_at: (*started)?,
                converted_at: *converted,
            })
        })
        .collect();
    let trial = adoption::trial_to_paid(&trials, period, DEFAULT_TRIAL_WINDOW_DAYS);
    let mut scores = Vec::new();
    let mut stuck = 0i64;
    if !checklist.is_empty() {
        for (account, first) in &facts.first_seen {
            if *first >= period.end {
                continue;
            }
            let facts_of: Vec<&MilestoneFact> = facts
                .milestones
                .get(account)
                .map(|m| m.iter().collect())
                .unwrap_or_default();
            let o =
                adoption::onboarding(checklist, &facts_of, *first, period.end, STUCK_AFTER_DAYS);
            stuck += i64::from(o.stuck);
            scores.push(o.score);
        }
    }
    let onboarding = adoption::average_onboarding(&scores);

    let kpis: Vec<(v1::Kpi, v1::KpiValue)> = vec![
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
        (v1::Kpi::Nps, score(experience::nps(&facts.nps))),
        (
            v1::Kpi::Csat,
            percent(experience::csat(&facts.csat, CsatThresholds::default())),
        ),
        (v1::Kpi::Ces, ces_mean),
        (
            v1::Kpi::Fcr,
            percent(experience::fcr(&facts.resolved_contacts)),
        ),
        (
            v1::Kpi::RenewalRate,
            percent(experience::renewal_rate(renewed, due)),
        ),
        (v1::Kpi::Dau, count(active.dau)),
        (v1::Kpi::Wau, count(active.wau)),
        (v1::Kpi::Mau, count(active.mau)),
        (
            v1::Kpi::Stickiness,
            percent(active.stickiness.map(|f| f * 100.0)),
        ),
        (
            v1::Kpi::SessionsPerDay,
            number(
                adoption::sessions_per_day(&facts.sessions, elapsed),
                v1::KpiUnit::Count,
            ),
        ),
        (
            v1::Kpi::TimeInApp,
            number(
                adoption::time_in_app(&facts.sessions, elapsed),
                v1::KpiUnit::Seconds,
            ),
        ),
        (v1::Kpi::ProductUsageRate, percent(usage)),
        (v1::Kpi::TrialToPaid, percent(trial.overall)),
        (v1::Kpi::OnboardingEngagement, score(onboarding)),
        (v1::Kpi::LowEffortShare, low_effort),
        (v1::Kpi::PayingAccounts, count(rev.paying_accounts)),
    ];
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
        trial_to_paid_by_segment: trial
            .by_segment
            .iter()
            .map(|(segment, m)| v1::SegmentKpi {
                segment: segment.clone(),
                value: Some(percent(*m)),
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
        stuck_accounts: stuck,
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
