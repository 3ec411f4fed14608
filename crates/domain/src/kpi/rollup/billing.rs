//! "An account `payment_failed` for more than N days may count as churned"
//! (docs/KPIS.md, configurable per tenant).
//!
//! [`payment_failed_churns`] reads an account's billing status history and
//! returns each stretch of `payment_failed` that lasted more than N days
//! before it ended or before `now`. The churn is dated at the stretch's
//! start + N days: MRR at t is set by changes strictly before t, so at
//! exactly N days the account is not churned and any instant later it is.
//! A stretch is consecutive `payment_failed` statuses; any other status
//! (`current`, `overdue`, `collections`) ends it — `collections` is a
//! different state the tenant reports on its own.
//! [`with_payment_failed_churn`] turns those stretches into MRR changes so
//! the revenue KPIs and rollups count them like any churn.

use crate::health::BillingStatus;
use crate::kpi::revenue::{ChurnReason, MrrChange};
use crate::money::Money;
use crate::time::{DAY, Timestamp};

/// One billing status change of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingChange {
    /// When.
    pub at: Timestamp,
    /// Tie-breaker (the event id).
    pub seq: String,
    /// The status from `at` on.
    pub status: BillingStatus,
}

/// A `payment_failed` stretch that counts as churn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImpliedChurn {
    /// When the payment first failed (start of the stretch).
    pub failed_since: Timestamp,
    /// `failed_since` + N days: the churn's date.
    pub churned_at: Timestamp,
    /// When another status ended the stretch, if it ended before `now`.
    pub recovered_at: Option<Timestamp>,
}

/// Every `payment_failed` stretch of `history` (any order; one account)
/// that lasted more than `after_days` days, as seen at `now` (statuses
/// after `now` are ignored).
pub fn payment_failed_churns(
    history: &[BillingChange],
    now: Timestamp,
    after_days: u32,
) -> Vec<ImpliedChurn> {
    let mut sorted: Vec<&BillingChange> = history.iter().filter(|b| b.at <= now).collect();
    sorted.sort_by(|a, b| (a.at, &a.seq).cmp(&(b.at, &b.seq)));
    let grace = i64::from(after_days) * DAY;
    let mut out = Vec::new();
    let mut since: Option<Timestamp> = None;
    let mut close = |since: Timestamp, end: Timestamp, recovered: Option<Timestamp>| {
        let churned_at = since.plus(grace);
        if end > churned_at {
            out.push(ImpliedChurn {
                failed_since: since,
                churned_at,
                recovered_at: recovered,
            });
        }
    };
    for b in sorted {
        match (b.status, since) {
            (BillingStatus::PaymentFailed, None) => since = Some(b.at),
            (BillingStatus::PaymentFailed, Some(_)) => {}
            (_, Some(s)) => {
                close(s, b.at, Some(b.at));
                since = None;
            }
            (_, None) => {}
        }
    }
    if let Some(s) = since {
        close(s, now, None);
    }
    out
}

/// Whether the account counts as churned at `now` under the rule: its
/// current `payment_failed` stretch is older than `after_days` days.
pub fn is_payment_failed_churned(
    history: &[BillingChange],
    now: Timestamp,
    after_days: u32,
) -> bool {
    payment_failed_churns(history, now, after_days)
        .last()
        .is_some_and(|c| c.recovered_at.is_none())
}

/// One account's subscription `changes` with its implied churns applied:
/// MRR goes to 0 at each `churned_at` (reason `other`), real changes
/// inside the churned stretch are held back, and at recovery MRR returns
/// to what the subscription says then (a reactivation when > 0). Synthetic
/// changes get event ids `payment_failed:<µs>` / `payment_recovered:<µs>`.
pub fn with_payment_failed_churn(changes: &[MrrChange], churns: &[ImpliedChurn]) -> Vec<MrrChange> {
    let Some(first) = changes.first() else {
        return Vec::new();
    };
    let (account, currency) = (first.account.clone(), first.mrr.currency);
    let mut sorted: Vec<&MrrChange> = changes.iter().collect();
    sorted.sort_by(|a, b| (a.at, &a.seq).cmp(&(b.at, &b.seq)));
    let inside = |t: Timestamp| {
        churns
            .iter()
            .any(|c| t > c.churned_at && c.recovered_at.is_none_or(|r| t <= r))
    };
    let mut out: Vec<MrrChange> = sorted
        .iter()
        .filter(|c| !inside(c.at))
        .map(|c| (*c).clone())
        .collect();
    for c in churns {
        out.push(MrrChange {
            account: account.clone(),
            at: c.churned_at,
            seq: format!("payment_failed:{}", c.churned_at.micros()),
            mrr: Money::new(0, currency),
            churn_reason: Some(ChurnReason::Other),
        });
        if let Some(r) = c.recovered_at {
            let mrr = sorted
                .iter()
                .rev()
                .find(|x| x.at <= r)
                .map_or(0, |x| x.mrr.minor);
            out.push(MrrChange {
                account: account.clone(),
                at: r,
                seq: format!("payment_recovered:{}", r.micros()),
                mrr: Money::new(mrr, currency),
                churn_reason: None,
            });
        }
    }
    out
}
