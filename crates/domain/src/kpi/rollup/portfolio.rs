//! One account's contribution to a period's portfolio KPIs.
//!
//! Every portfolio KPI is a ratio of sums over accounts: MRR movements and
//! cohorts add per account ([`RevenueRollup`]), survey and ticket counts
//! add ([`ExperienceRollup`]), and so do sessions, active users, trials,
//! onboarding progress and purchases. Distinct users add too, because a
//! user id is scoped by its account: the DAU of a portfolio is the sum of
//! its accounts' DAUs. So a [`Contribution`] — a fixed list of integers
//! computed from one account's signals for one period, "as of" one instant
//! — merges by addition, and the merged contributions of any set of
//! accounts give that set's KPIs exactly.
//!
//! The metrics service uses this twice: at query time over the selected
//! accounts' signals, and ahead of time, storing each account's
//! contribution to each finished calendar month and adding them up per
//! segment and plan, so a month over a large portfolio is a few rows to
//! merge. Both paths go through [`account_contribution`]; they cannot
//! disagree on what a KPI counts.
//!
//! Costs are not here: they belong to the portfolio, not to an account,
//! and are prorated over the period at query time ([`super::cost`]).

use std::collections::BTreeMap;

use super::Rollup;
use super::billing::{BillingChange, payment_failed_churns, with_payment_failed_churn};
use super::experience::ExperienceRollup;
use super::revenue::{RevenueRollup, revenue_rollup};
use crate::exact::{Exact, MoneyMeasure};
use crate::kpi::adoption::{self, ActiveUsers, MilestoneFact, SessionFact};
use crate::kpi::revenue::{self, MrrChange, OpeningBalance, RevenueError};
use crate::measure::Measure;
use crate::money::{Currency, Money, MoneyError};
use crate::signal::{self, Signal, SignalBody, TrialEvent};
use crate::time::{DAY, Period, Timestamp};

/// What one account adds to a period's portfolio KPIs (or, merged, what a
/// set of accounts does). The default is the identity of [`Rollup::merge`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contribution {
    /// MRR bridge, cohorts, churned and new accounts, churn reasons.
    pub revenue: RevenueRollup,
    /// NPS, CSAT, CES, FCR and renewals of the period.
    pub experience: ExperienceRollup,
    /// Sessions in the elapsed part of the period.
    pub sessions: u64,
    /// Their seconds.
    pub seconds: u64,
    /// Distinct (user, day) with a session in the elapsed part.
    pub user_days: u64,
    /// Distinct users in the day before the "as of" instant.
    pub dau: u64,
    /// … in the 7 days before it.
    pub wau: u64,
    /// … in the 30 days before it.
    pub mau: u64,
    /// Accounts paying before the period's end (the usage rate's base).
    pub paying: u64,
    /// Of those, accounts active on the target days per week.
    pub usage_reached: u64,
    /// Accounts whose first trial started in the period.
    pub trials_started: u64,
    /// Of those, converted within the trial window.
    pub trials_converted: u64,
    /// Accounts whose onboarding is scored (seen before the period's end,
    /// with a checklist configured).
    pub onboarding_accounts: u64,
    /// Checklist milestones those accounts achieved by the period's end.
    pub onboarding_achieved: u64,
    /// Of those accounts, stuck at the period's end.
    pub stuck: u64,
    /// One-off purchases in the period.
    pub purchases: u64,
    /// Their total, minor units.
    pub purchase_total: i64,
    /// Accounts with a purchase in the period.
    pub purchasing_accounts: u64,
}

/// What [`account_contribution`] needs besides the signals.
#[derive(Debug, Clone, Copy)]
pub struct Basis<'a> {
    /// The KPI period.
    pub period: Period,
    /// The instant "as of" KPIs are measured at: the period's end, or now
    /// while the period has not ended.
    pub as_of: Timestamp,
    /// The tenant's base currency.
    pub currency: Currency,
    /// The tenant's onboarding checklist.
    pub checklist: &'a [String],
    /// Days a week a paying account must be active on, on average.
    pub usage_days_per_week: f64,
    /// Days after its start a trial may convert and count.
    pub trial_window_days: i64,
    /// Days without progress after which an incomplete onboarding is stuck.
    pub stuck_after_days: i64,
    /// Days of failed payment after which the account counts as churned
    /// ([`super::billing`]); `None`: never.
    pub payment_failed_churn_days: Option<u32>,
}

impl Basis<'_> {
    /// The part of the period before `as_of`: sessions, time in app and
    /// the usage rate count what has happened so far.
    pub fn elapsed(&self) -> Period {
        Period::new(self.period.start, self.as_of.min(self.period.end)).unwrap_or(self.period)
    }
}

/// Why a contribution could not be computed: a stored amount in another
/// currency or a negative MRR (both refused at intake).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContributionError {
    /// From the revenue rules.
    #[error(transparent)]
    Revenue(#[from] RevenueError),
    /// A purchase in another currency.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// The contribution of one account's signals (valid, any order, all of
/// them: revenue, trials and onboarding look back before the period).
/// Signals of the portfolio pseudo-account are ignored.
pub fn account_contribution(
    signals: &[Signal],
    basis: &Basis<'_>,
) -> Result<Contribution, ContributionError> {
    account_contribution_seen(signals, None, basis)
}

/// The kinds a contribution counts only from its [`dense_reach`] on:
/// sessions (in the period and the active-user window), ticket and survey
/// answers and purchases (in the period), and account records and product
/// actions (only through when the account was first seen). Every other
/// kind — subscriptions, billing, renewals (counted at their contract's
/// end), trials, milestones — is lifetime state, counted whenever it
/// occurred.
pub const REACH_KINDS: [signal::SignalKind; 6] = [
    signal::SignalKind::Account,
    signal::SignalKind::Session,
    signal::SignalKind::Action,
    signal::SignalKind::Ticket,
    signal::SignalKind::Survey,
    signal::SignalKind::Purchase,
];

/// Where the signals of [`REACH_KINDS`] an account's contribution counts
/// begin: the period's start, or the start of the 30-day active-user
/// window before its "as of" instant, whichever is earlier (less a day to
/// spare). Those before it count only through when the account was first
/// seen ([`account_contribution_seen`]).
pub fn dense_reach(basis: &Basis<'_>) -> Timestamp {
    let window = basis.as_of.plus(-(adoption::MAU_DAYS + 1) * DAY);
    basis.period.start.min(window)
}

/// [`account_contribution`] of an account's signals read without those
/// of [`REACH_KINDS`] before [`dense_reach`]: `first_seen` is when the
/// account was first seen (its earliest signal of any kind, which such a
/// read may leave out). Everything else a contribution counts from those
/// kinds (active users, sessions and time, tickets, survey answers and
/// purchases of the period, active days) lies after the reach, so the
/// result equals [`account_contribution`] over the whole history.
pub fn account_contribution_seen(
    signals: &[Signal],
    first_seen: Option<Timestamp>,
    basis: &Basis<'_>,
) -> Result<Contribution, ContributionError> {
    let period = basis.period;
    let elapsed = basis.elapsed();
    let mut c = Contribution::default();
    let mut changes: Vec<MrrChange> = Vec::new();
    let mut openings: Vec<OpeningBalance> = Vec::new();
    let mut sessions: Vec<SessionFact> = Vec::new();
    let mut milestones: Vec<MilestoneFact> = Vec::new();
    let mut by_day: BTreeMap<i64, Vec<Signal>> = BTreeMap::new();
    let (mut trial_started, mut trial_converted) = (None::<Timestamp>, None::<Timestamp>);
    let mut first_seen: Option<Timestamp> = first_seen;
    let mut billing: Vec<BillingChange> = Vec::new();
    for s in signals.iter().filter(|s| s.account_id != signal::PORTFOLIO) {
        let in_period = period.contains(s.occurred_at);
        first_seen = Some(first_seen.map_or(s.occurred_at, |f| f.min(s.occurred_at)));
        match &s.body {
            SignalBody::Subscription {
                amount,
                interval,
                churn_reason,
                opening,
                ..
            } => {
                let mrr = Money::new(
                    signal::monthly_mrr(amount.minor, *interval),
                    amount.currency,
                );
                if *opening {
                    openings.push(OpeningBalance {
                        account: s.account_id.clone(),
                        at: s.occurred_at,
                        mrr,
                    });
                } else {
                    changes.push(MrrChange {
                        account: s.account_id.clone(),
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
            } => sessions.push(SessionFact {
                account: s.account_id.clone(),
                user: user_id.clone(),
                at: s.occurred_at,
                seconds: *duration_seconds,
            }),
            // Experience counts by the day a signal counts at (a
            // renewal: its contract's end, whenever it was sent).
            SignalBody::Survey { .. } | SignalBody::Ticket { .. } | SignalBody::Renewal { .. }
                if period.contains(s.counts_at()) =>
            {
                by_day
                    .entry(s.counts_at().day_number())
                    .or_default()
                    .push(s.clone());
            }
            SignalBody::Trial(TrialEvent::Started) => {
                trial_started = Some(trial_started.map_or(s.occurred_at, |t| t.min(s.occurred_at)));
            }
            SignalBody::Trial(TrialEvent::Converted) => {
                trial_converted =
                    Some(trial_converted.map_or(s.occurred_at, |t| t.min(s.occurred_at)));
            }
            SignalBody::Billing(status) => billing.push(BillingChange {
                at: s.occurred_at,
                seq: s.event_id.clone(),
                status: *status,
            }),
            SignalBody::Milestone { key, achieved } => milestones.push(MilestoneFact {
                account: s.account_id.clone(),
                key: key.clone(),
                at: s.occurred_at,
                achieved: *achieved,
            }),
            SignalBody::Purchase(amount) if in_period => {
                if amount.currency != basis.currency {
                    return Err(
                        MoneyError::CurrencyMismatch(basis.currency, amount.currency).into(),
                    );
                }
                c.purchases += 1;
                c.purchase_total = c.purchase_total.saturating_add(amount.minor);
            }
            _ => {}
        }
    }
    c.purchasing_accounts = u64::from(c.purchases > 0);

    // A payment failed for too long counts as a churn (seen as of `as_of`).
    if let Some(days) = basis.payment_failed_churn_days {
        let churns = payment_failed_churns(&billing, basis.as_of, days);
        if !churns.is_empty() {
            changes = with_payment_failed_churn(&changes, &churns);
        }
    }

    // Revenue: the account's state at the period's start and its movements
    // inside it.
    c.revenue = revenue_rollup(&changes, &openings, period, basis.currency)?;

    // Experience: one row per day (a renewal is one per contract end).
    for day in by_day.values() {
        c.experience.merge(&ExperienceRollup::from_signals(day));
    }

    // Adoption, as of `as_of` and over the elapsed part of the period.
    let active = adoption::active(&sessions, basis.as_of);
    (c.dau, c.wau, c.mau) = (active.dau, active.wau, active.mau);
    let mut user_days = std::collections::HashSet::new();
    let mut active_days = std::collections::HashSet::new();
    for s in sessions.iter().filter(|s| elapsed.contains(s.at)) {
        c.sessions += 1;
        c.seconds = c
            .seconds
            .saturating_add(u64::try_from(s.seconds).unwrap_or(0));
        user_days.insert((s.user.as_str(), s.at.day_number()));
        active_days.insert(s.at.day_number());
    }
    c.user_days = user_days.len() as u64;
    let paying =
        !revenue::paying_before(&changes, &openings, period.end, basis.currency)?.is_empty();
    if paying {
        c.paying = 1;
        let weeks = elapsed.days() / 7.0;
        c.usage_reached = u64::from(active_days.len() as f64 / weeks >= basis.usage_days_per_week);
    }

    // Trials: the account's first trial, if it started in the period.
    if let Some(started) = trial_started.filter(|t| period.contains(*t)) {
        c.trials_started = 1;
        c.trials_converted = u64::from(
            trial_converted
                .is_some_and(|t| t >= started && t <= started.plus(basis.trial_window_days * DAY)),
        );
    }

    // Onboarding at the period's end, for an account seen before it.
    if let Some(first) = first_seen.filter(|f| *f < period.end)
        && !basis.checklist.is_empty()
    {
        let facts: Vec<&MilestoneFact> = milestones.iter().collect();
        let o = adoption::onboarding(
            basis.checklist,
            &facts,
            first,
            period.end,
            basis.stuck_after_days,
        );
        c.onboarding_accounts = 1;
        c.onboarding_achieved = o.achieved.len() as u64;
        c.stuck = u64::from(o.stuck);
    }
    Ok(c)
}

impl Rollup for Contribution {
    /// Field-wise sum.
    fn merge(&mut self, o: &Self) {
        self.revenue.merge(&o.revenue);
        self.experience.merge(&o.experience);
        for (a, b) in [
            (&mut self.sessions, o.sessions),
            (&mut self.seconds, o.seconds),
            (&mut self.user_days, o.user_days),
            (&mut self.dau, o.dau),
            (&mut self.wau, o.wau),
            (&mut self.mau, o.mau),
            (&mut self.paying, o.paying),
            (&mut self.usage_reached, o.usage_reached),
            (&mut self.trials_started, o.trials_started),
            (&mut self.trials_converted, o.trials_converted),
            (&mut self.onboarding_accounts, o.onboarding_accounts),
            (&mut self.onboarding_achieved, o.onboarding_achieved),
            (&mut self.stuck, o.stuck),
            (&mut self.purchases, o.purchases),
            (&mut self.purchasing_accounts, o.purchasing_accounts),
        ] {
            *a += b;
        }
        self.purchase_total = self.purchase_total.saturating_add(o.purchase_total);
    }
}

impl Contribution {
    /// How many integers [`Contribution::values`] holds.
    pub const LEN: usize = 18 + 42 + 16;

    /// The contribution as a fixed-layout list of integers (what the
    /// metrics service stores), in the order of the struct's fields.
    pub fn values(&self) -> Vec<i64> {
        let r = &self.revenue;
        let e = &self.experience;
        let big = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
        let small = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend([
            big(r.start_mrr),
            big(r.new),
            big(r.reactivation),
            big(r.expansion),
            big(r.contraction),
            big(r.churned),
            big(r.end_mrr),
            small(r.start_cohort),
            small(r.paying_end),
            big(r.cohort_end_mrr),
            big(r.cohort_kept_mrr),
            small(r.churned_accounts),
        ]);
        out.extend(r.churn_by_reason.map(small));
        out.push(small(r.new_accounts));
        for counts in [
            &e.nps[..],
            &e.csat_five[..],
            &e.csat_ten[..],
            &e.ces_five[..],
            &e.ces_seven[..],
        ] {
            out.extend(counts.iter().map(|&n| small(n)));
        }
        out.extend(
            [
                e.resolved,
                e.first_contact,
                e.renewals_due,
                e.renewed,
                self.sessions,
                self.seconds,
                self.user_days,
                self.dau,
                self.wau,
                self.mau,
                self.paying,
                self.usage_reached,
                self.trials_started,
                self.trials_converted,
                self.onboarding_accounts,
                self.onboarding_achieved,
                self.stuck,
                self.purchases,
            ]
            .map(small),
        );
        out.push(self.purchase_total);
        out.push(small(self.purchasing_accounts));
        debug_assert_eq!(out.len(), Self::LEN);
        out
    }

    /// The contribution of [`Contribution::values`]; `None` when `v` does
    /// not hold [`Contribution::LEN`] integers or one is negative (every
    /// field counts or sums something non-negative).
    pub fn from_values(v: &[i64]) -> Option<Self> {
        if v.len() != Self::LEN || v.iter().any(|&n| n < 0) {
            return None;
        }
        let mut at = 0;
        let mut next = || {
            at += 1;
            v[at - 1].unsigned_abs()
        };
        let mut revenue = RevenueRollup {
            start_mrr: i128::from(next()),
            new: i128::from(next()),
            reactivation: i128::from(next()),
            expansion: i128::from(next()),
            contraction: i128::from(next()),
            churned: i128::from(next()),
            end_mrr: i128::from(next()),
            start_cohort: next(),
            paying_end: next(),
            cohort_end_mrr: i128::from(next()),
            cohort_kept_mrr: i128::from(next()),
            churned_accounts: next(),
            ..RevenueRollup::default()
        };
        for n in &mut revenue.churn_by_reason {
            *n = next();
        }
        revenue.new_accounts = next();
        let mut experience = ExperienceRollup::default();
        for counts in [
            &mut experience.nps[..],
            &mut experience.csat_five[..],
            &mut experience.csat_ten[..],
            &mut experience.ces_five[..],
            &mut experience.ces_seven[..],
        ] {
            for n in counts {
                *n = next();
            }
        }
        experience.resolved = next();
        experience.first_contact = next();
        experience.renewals_due = next();
        experience.renewed = next();
        Some(Self {
            revenue,
            experience,
            sessions: next(),
            seconds: next(),
            user_days: next(),
            dau: next(),
            wau: next(),
            mau: next(),
            paying: next(),
            usage_reached: next(),
            trials_started: next(),
            trials_converted: next(),
            onboarding_accounts: next(),
            onboarding_achieved: next(),
            stuck: next(),
            purchases: next(),
            purchase_total: i64::try_from(next()).unwrap_or(i64::MAX),
            purchasing_accounts: next(),
        })
    }
}

/// The KPIs a merged contribution gives, each exactly what the list-based
/// function of [`crate::kpi`] gives over the same accounts' signals.
impl Contribution {
    /// DAU, WAU, MAU and stickiness as of the basis' instant.
    pub fn active_users(&self) -> ActiveUsers {
        ActiveUsers {
            dau: self.dau,
            wau: self.wau,
            mau: self.mau,
            stickiness: Measure::ratio(self.dau as f64, self.mau as f64),
        }
    }

    /// Sessions per day over `elapsed` (the part of the period so far).
    pub fn sessions_per_day(&self, elapsed: Period) -> Measure {
        Measure::ratio(self.sessions as f64, elapsed.days())
    }

    /// Session seconds per active user-day.
    pub fn time_in_app(&self) -> Measure {
        Measure::ratio(self.seconds as f64, self.user_days as f64)
    }

    /// Paying accounts that reached the usage target, % of paying.
    pub fn product_usage_rate(&self) -> Measure {
        Measure::percent(self.usage_reached as f64, self.paying as f64)
    }

    /// Trials started in the period that converted in their window, %.
    pub fn trial_to_paid(&self) -> Measure {
        Measure::percent(self.trials_converted as f64, self.trials_started as f64)
    }

    /// Mean onboarding score (achieved / checklist size × 100) over the
    /// scored accounts; absent without a checklist or a scored account.
    pub fn onboarding_engagement(&self, checklist_len: usize) -> Measure {
        if checklist_len == 0 {
            return Measure::Absent(crate::Absence::ZeroDenominator);
        }
        Measure::ratio(
            100.0 * self.onboarding_achieved as f64 / checklist_len as f64,
            self.onboarding_accounts as f64,
        )
    }

    /// CLV's purchase inputs, exact: (average purchase value, purchases per
    /// purchasing account per calendar month of `period`).
    pub fn purchase_rates(&self, period: Period, currency: Currency) -> (MoneyMeasure, Exact) {
        let count = i128::from(self.purchases);
        let avg = MoneyMeasure::ratio(currency, i128::from(self.purchase_total), count);
        let per_month = Exact::ratio(count, i128::from(self.purchasing_accounts))
            / Exact::Value(period.calendar_months());
        (avg, per_month)
    }
}
