//! Revenue rollups: the MRR bridge, cohorts, NRR/GRR, logo churn.
//!
//! **What adds per account-day and what needs state.** Classifying a
//! change needs the account's MRR just before it and whether it ever paid
//! ([`MrrState`]), so a day's row is built from the day's changes *given
//! the state before the day* (the after-state of the account's previous
//! row, or its [`opening_state`]). Given that, the movement sums of a day
//! add across days and accounts, and so does the `new` count (an account
//! is new at most once: after it, it has paid).
//!
//! What does not add across days is what depends on an account's state at
//! the period's boundaries: the start cohort (paying at `start`), the
//! cohort's end and kept MRR (NRR, GRR), and logo churn (an account that
//! churns twice in a period is one churned account, with the reason of its
//! last churn). So there are two levels:
//!
//! - [`AccountRevenue`]: one account over a span of its history (a day, a
//!   month, any union of days). Merging two spans of one account keeps the
//!   state before the earlier and after the later, adds the sums and keeps
//!   the later churn — ordered by the changes' `(at, seq)`, so the merge is
//!   commutative.
//! - [`RevenueRollup`]: the portfolio over one period, the sum of every
//!   account's contribution ([`RevenueRollup::account`]: its state at the
//!   period's start and its [`AccountRevenue`] over the period). It adds
//!   across accounts (so a segment/plan filter merges the accounts it
//!   selects) but **not across periods**: a quarter is built from each
//!   account's three months merged, not from three monthly portfolio
//!   rollups.
//!
//! A period must be a union of whole rows: for day rows, whole UTC days
//! (every calendar period is). A custom period that starts or ends inside
//! a day needs that day's changes split at the boundary
//! ([`AccountRevenue::from_changes`] takes any span).

use std::collections::{BTreeMap, HashMap};

use super::Rollup;
use crate::exact::MoneyMeasure;
use crate::kpi::revenue::{
    ChurnReason, MovementKind, MrrBridge, MrrChange, MrrState, OpeningBalance, RevenueError,
    RevenueKpis, classify, opening_state, openings_by_account,
};
use crate::measure::Measure;
use crate::money::{Currency, Money, MoneyError, fit};
use crate::time::{Period, Timestamp};

/// The position of a change in an account's canonical order.
pub type ChangeKey = (Timestamp, String);

/// One account's revenue over a span of its history: the state before and
/// after it, the MRR movements inside it, and its last churn.
///
/// The default (no change) is the identity of [`Rollup::merge`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccountRevenue {
    /// `(at, seq)` of the span's earliest change; `None` without changes.
    pub first: Option<ChangeKey>,
    /// `(at, seq)` of the span's latest change.
    pub last: Option<ChangeKey>,
    /// State just before the earliest change.
    pub before: MrrState,
    /// State after the latest change.
    pub after: MrrState,
    /// New MRR (minor units).
    pub new: i128,
    /// Reactivation MRR.
    pub reactivation: i128,
    /// Expansion MRR.
    pub expansion: i128,
    /// Contraction MRR (positive).
    pub contraction: i128,
    /// Churned MRR (positive).
    pub churned: i128,
    /// Whether the span holds the account's `new` movement.
    pub is_new: bool,
    /// The span's last churn: its `(at, seq)` and reason (`other` when the
    /// change gave none).
    pub last_churn: Option<(ChangeKey, ChurnReason)>,
}

impl AccountRevenue {
    /// The row of one account's `changes` (one day's, or any span's; any
    /// order) starting from `before`, the account's state just before the
    /// span. Refuses another currency and negative MRR, as
    /// [`revenue_kpis`](crate::kpi::revenue::revenue_kpis) does.
    pub fn from_changes(
        before: MrrState,
        changes: &[MrrChange],
        currency: Currency,
    ) -> Result<Self, RevenueError> {
        let mut sorted: Vec<&MrrChange> = Vec::with_capacity(changes.len());
        for c in changes {
            if c.mrr.currency != currency {
                return Err(MoneyError::CurrencyMismatch(currency, c.mrr.currency).into());
            }
            if c.mrr.minor < 0 {
                return Err(RevenueError::NegativeMrr {
                    account: c.account.clone(),
                    mrr: c.mrr.minor,
                });
            }
            sorted.push(c);
        }
        sorted.sort_by(|a, b| (a.at, &a.seq).cmp(&(b.at, &b.seq)));
        let mut row = Self {
            first: sorted.first().map(|c| (c.at, c.seq.clone())),
            last: sorted.last().map(|c| (c.at, c.seq.clone())),
            before,
            ..Self::default()
        };
        let MrrState { mut mrr, mut paid } = before;
        for c in sorted {
            if let Some(kind) = classify(mrr, c.mrr.minor, paid) {
                let amount = i128::from((c.mrr.minor - mrr).abs());
                match kind {
                    MovementKind::New => {
                        row.new += amount;
                        row.is_new = true;
                    }
                    MovementKind::Reactivation => row.reactivation += amount,
                    MovementKind::Expansion => row.expansion += amount,
                    MovementKind::Contraction => row.contraction += amount,
                    MovementKind::Churn => {
                        row.churned += amount;
                        row.last_churn = Some((
                            (c.at, c.seq.clone()),
                            c.churn_reason.unwrap_or(ChurnReason::Other),
                        ));
                    }
                }
            }
            paid |= c.mrr.minor > 0;
            mrr = c.mrr.minor;
        }
        row.after = MrrState { mrr, paid };
        Ok(row)
    }

    /// The state after the span, or `None` for a span without changes.
    pub fn end_state(&self) -> Option<MrrState> {
        self.first.as_ref().map(|_| self.after)
    }
}

impl Rollup for AccountRevenue {
    /// Concatenates two spans of one account's history, whichever comes
    /// first in time: state before the earlier, after the later; sums add;
    /// the later churn is kept. Associative and commutative for spans that
    /// do not overlap (rows of distinct days).
    fn merge(&mut self, other: &Self) {
        let (Some(first), Some(last)) = (other.first.as_ref(), other.last.as_ref()) else {
            return;
        };
        if self.first.as_ref().is_none_or(|f| first < f) {
            self.first = Some(first.clone());
            self.before = other.before;
        }
        if self.last.as_ref().is_none_or(|l| last > l) {
            self.last = Some(last.clone());
            self.after = other.after;
        }
        self.new += other.new;
        self.reactivation += other.reactivation;
        self.expansion += other.expansion;
        self.contraction += other.contraction;
        self.churned += other.churned;
        self.is_new |= other.is_new;
        if let Some(c) = &other.last_churn
            && self.last_churn.as_ref().is_none_or(|mine| c.0 > mine.0)
        {
            self.last_churn = Some(c.clone());
        }
    }
}

/// The portfolio's revenue over one period: sums over accounts of what
/// [`RevenueKpis`] needs. Adds across accounts (merge the accounts a
/// filter selects), never across periods.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RevenueRollup {
    /// Σ MRR at the period's start.
    pub start_mrr: i128,
    /// Σ new MRR.
    pub new: i128,
    /// Σ reactivation MRR.
    pub reactivation: i128,
    /// Σ expansion MRR.
    pub expansion: i128,
    /// Σ contraction MRR.
    pub contraction: i128,
    /// Σ churned MRR.
    pub churned: i128,
    /// Σ MRR at the period's end.
    pub end_mrr: i128,
    /// Accounts paying at the start (the start cohort).
    pub start_cohort: u64,
    /// Accounts paying at the end.
    pub paying_end: u64,
    /// Σ end MRR over the start cohort (NRR's numerator).
    pub cohort_end_mrr: i128,
    /// Σ min(end, start) over the start cohort (GRR's numerator).
    pub cohort_kept_mrr: i128,
    /// Accounts with at least one churn in the period.
    pub churned_accounts: u64,
    /// Churned accounts by the reason of their last churn in the period,
    /// indexed as [`ChurnReason::ALL`].
    pub churn_by_reason: [u64; 5],
    /// Accounts with a `new` movement in the period.
    pub new_accounts: u64,
}

impl RevenueRollup {
    /// One account's contribution to a period: `at_start` is its state at
    /// the period's start (after its last change before it, or its opening
    /// state), `in_period` its rows of the period merged.
    pub fn account(at_start: MrrState, in_period: &AccountRevenue) -> Self {
        let start = at_start.mrr;
        let end = in_period.end_state().unwrap_or(at_start).mrr;
        let mut churn_by_reason = [0; 5];
        if let Some((_, reason)) = &in_period.last_churn
            && let Some(i) = ChurnReason::ALL.iter().position(|r| r == reason)
        {
            churn_by_reason[i] = 1;
        }
        let in_cohort = start > 0;
        Self {
            start_mrr: i128::from(start),
            new: in_period.new,
            reactivation: in_period.reactivation,
            expansion: in_period.expansion,
            contraction: in_period.contraction,
            churned: in_period.churned,
            end_mrr: i128::from(end),
            start_cohort: u64::from(in_cohort),
            paying_end: u64::from(end > 0),
            cohort_end_mrr: if in_cohort { i128::from(end) } else { 0 },
            cohort_kept_mrr: if in_cohort {
                i128::from(end.min(start))
            } else {
                0
            },
            churned_accounts: u64::from(in_period.last_churn.is_some()),
            churn_by_reason,
            new_accounts: u64::from(in_period.is_new),
        }
    }

    /// The revenue KPIs of `period` from this merged rollup: exactly what
    /// [`revenue_kpis_with_openings`](crate::kpi::revenue::revenue_kpis_with_openings)
    /// returns for the same accounts' changes (and
    /// [`revenue_kpis`](crate::kpi::revenue::revenue_kpis) without opening
    /// balances).
    pub fn kpis(&self, period: Period, currency: Currency) -> Result<RevenueKpis, RevenueError> {
        let money = |v: i128| -> Result<Money, RevenueError> { Ok(Money::new(fit(v)?, currency)) };
        let bridge = MrrBridge {
            start: money(self.start_mrr)?,
            new: money(self.new)?,
            reactivation: money(self.reactivation)?,
            expansion: money(self.expansion)?,
            contraction: money(self.contraction)?,
            churned: money(self.churned)?,
            end: money(self.end_mrr)?,
        };
        let start_mrr = self.start_mrr as f64;
        let churn_by_reason: BTreeMap<ChurnReason, u64> = ChurnReason::ALL
            .into_iter()
            .zip(self.churn_by_reason)
            .filter(|&(_, n)| n > 0)
            .collect();
        Ok(RevenueKpis {
            period,
            bridge,
            start_cohort: self.start_cohort,
            paying_accounts: self.paying_end,
            mrr: bridge.end,
            arpa: MoneyMeasure::ratio(currency, self.end_mrr, i128::from(self.paying_end)),
            gross_mrr_churn: Measure::percent((self.churned + self.contraction) as f64, start_mrr),
            net_mrr_churn: Measure::percent(
                (self.churned + self.contraction - self.expansion - self.reactivation) as f64,
                start_mrr,
            ),
            expansion_rate: Measure::percent(self.expansion as f64, start_mrr),
            nrr: Measure::percent(self.cohort_end_mrr as f64, start_mrr),
            grr: Measure::percent(self.cohort_kept_mrr as f64, start_mrr),
            logo_churn: Measure::percent(self.churned_accounts as f64, self.start_cohort as f64),
            churned_accounts: self.churned_accounts,
            churn_by_reason,
            new_accounts: self.new_accounts,
        })
    }
}

impl Rollup for RevenueRollup {
    /// Field-wise sum.
    fn merge(&mut self, o: &Self) {
        self.start_mrr += o.start_mrr;
        self.new += o.new;
        self.reactivation += o.reactivation;
        self.expansion += o.expansion;
        self.contraction += o.contraction;
        self.churned += o.churned;
        self.end_mrr += o.end_mrr;
        self.start_cohort += o.start_cohort;
        self.paying_end += o.paying_end;
        self.cohort_end_mrr += o.cohort_end_mrr;
        self.cohort_kept_mrr += o.cohort_kept_mrr;
        self.churned_accounts += o.churned_accounts;
        for (a, b) in self.churn_by_reason.iter_mut().zip(o.churn_by_reason) {
            *a += b;
        }
        self.new_accounts += o.new_accounts;
    }
}

/// The portfolio rollup of `period` straight from a list of changes and
/// opening balances (what a backfill or a check computes in one pass).
pub fn revenue_rollup(
    changes: &[MrrChange],
    openings: &[OpeningBalance],
    period: Period,
    currency: Currency,
) -> Result<RevenueRollup, RevenueError> {
    let openings = openings_by_account(openings, currency)?;
    let mut by_account: BTreeMap<&str, Vec<MrrChange>> = BTreeMap::new();
    for c in changes {
        by_account
            .entry(c.account.as_str())
            .or_default()
            .push(c.clone());
    }
    for a in openings.keys() {
        by_account.entry(a).or_default();
    }
    let mut total = RevenueRollup::default();
    for (account, history) in by_account {
        let first = history.iter().map(|c| c.at).min();
        let opening = opening_state(openings.get(account).copied(), first);
        let (before, rest): (Vec<MrrChange>, Vec<MrrChange>) =
            history.into_iter().partition(|c| c.at < period.start);
        let in_period: Vec<MrrChange> = rest.into_iter().filter(|c| c.at < period.end).collect();
        let at_start = AccountRevenue::from_changes(opening, &before, currency)?.after;
        let row = AccountRevenue::from_changes(at_start, &in_period, currency)?;
        total.merge(&RevenueRollup::account(at_start, &row));
    }
    Ok(total)
}

/// Per-account index of opening balances, for callers building rows.
pub fn opening_balances(
    openings: &[OpeningBalance],
    currency: Currency,
) -> Result<HashMap<&str, &OpeningBalance>, RevenueError> {
    openings_by_account(openings, currency)
}
