//! One account's metric snapshot: the inputs the health model scores, as
//! of a moment, built from the account's valid signals.
//!
//! Metrics builds it and stores it; health reads it ([`AccountSnapshot::health`]).
//! Both go through this one function, so they cannot drift apart on what
//! "active days in the last 30" or "mean of the latest NPS per user" means.
//!
//! Windows are `[as_of − 30 days, as_of)`, by `occurred_at`; signals after
//! `as_of` are ignored, so the snapshot of a moment is the same whatever
//! arrived later and in whatever order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::health::{BillingStatus, HealthSnapshot};
use crate::kpi::adoption::{MilestoneFact, onboarding};
use crate::signal::{Signal, SignalBody, SurveyKind, TicketStatus, monthly_mrr};
use crate::time::{DAY, Timestamp};

/// The window of the "last 30 days" inputs, in days.
pub const WINDOW_DAYS: i64 = 30;

/// Days without onboarding progress after which an incomplete onboarding
/// counts as stuck.
pub const STUCK_AFTER_DAYS: i64 = 14;

/// One account's metrics as of a moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AccountSnapshot {
    /// The latest `occurred_at` taken into account.
    pub as_of: Timestamp,
    /// Current MRR in minor units of the tenant's currency (0 without a
    /// subscription).
    pub mrr_minor: i64,
    /// Whether the account ever had a session (up to `as_of`): without
    /// one, usage is *not measured*, which differs from zero.
    pub has_sessions: bool,
    /// Days with at least one session in the window.
    pub active_days_30d: u32,
    /// Sessions in the window.
    pub sessions_30d: u64,
    /// Mean of each user's latest NPS answer (any time up to `as_of`);
    /// `None` before the first answer.
    pub nps_mean: Option<f64>,
    /// Tickets opened (or reopened) in the window.
    pub tickets_opened_30d: u32,
    /// Topics of those tickets, with counts.
    pub ticket_topics_30d: BTreeMap<String, u32>,
    /// The latest billing status; `None` before the first.
    pub billing_status: Option<BillingStatus>,
    /// Action counts in the window by action key.
    pub actions_30d: BTreeMap<String, i64>,
    /// Achieved onboarding milestones, in checklist order.
    pub milestones_achieved: Vec<String>,
    /// Missing onboarding milestones, in checklist order.
    pub milestones_missing: Vec<String>,
    /// Incomplete onboarding with a failed milestone or no progress for
    /// [`STUCK_AFTER_DAYS`]. Only an account that reported a milestone has
    /// an onboarding to be stuck in.
    pub onboarding_stuck: bool,
    /// Onboarding score (achieved / checklist × 100); `None` without a
    /// checklist or before the account's first milestone signal.
    pub onboarding_score: Option<f64>,
}

/// The snapshot of one account's `signals` (valid, any order) as of
/// `as_of`, against the tenant's onboarding `checklist`.
pub fn account_snapshot(
    signals: &[Signal],
    as_of: Timestamp,
    checklist: &[String],
) -> AccountSnapshot {
    let mut ordered: Vec<&Signal> = signals.iter().filter(|s| s.occurred_at <= as_of).collect();
    ordered.sort_by(|a, b| (a.occurred_at, &a.event_id).cmp(&(b.occurred_at, &b.event_id)));
    let window_start = as_of.plus(-WINDOW_DAYS * DAY);
    let in_window = |s: &Signal| s.occurred_at >= window_start && s.occurred_at < as_of;

    let mut snap = AccountSnapshot {
        as_of,
        ..AccountSnapshot::default()
    };
    let mut active_days: BTreeSet<i64> = BTreeSet::new();
    // The MRR is the last real change's; an opening balance stands for the
    // history before the first change, so it only counts without one.
    let mut last_change_mrr: Option<i64> = None;
    let mut opening_mrr: Option<(Timestamp, i64)> = None;
    let mut latest_nps: HashMap<&str, i64> = HashMap::new();
    let mut milestones: Vec<MilestoneFact> = Vec::new();
    for s in &ordered {
        match &s.body {
            SignalBody::Session { .. } => {
                snap.has_sessions = true;
                if in_window(s) {
                    snap.sessions_30d += 1;
                    active_days.insert(s.occurred_at.day_number());
                }
            }
            SignalBody::Action {
                action_key, count, ..
            } if in_window(s) => {
                *snap.actions_30d.entry(action_key.clone()).or_default() += count;
            }
            SignalBody::Ticket { status, topics, .. }
                if in_window(s)
                    && matches!(status, TicketStatus::Opened | TicketStatus::Reopened) =>
            {
                snap.tickets_opened_30d += 1;
                for t in topics {
                    *snap.ticket_topics_30d.entry(t.clone()).or_default() += 1;
                }
            }
            SignalBody::Survey {
                kind: SurveyKind::Nps,
                score,
                user_id,
                ..
            } => {
                // Ordered by time: the last answer of a user wins.
                latest_nps.insert(user_id.as_str(), *score);
            }
            SignalBody::Subscription {
                amount,
                interval,
                opening,
                ..
            } => {
                let mrr = monthly_mrr(amount.minor, *interval);
                if *opening {
                    // The earliest `(at, mrr)` counts, as in
                    // `kpi::revenue::opening_state`.
                    let o = opening_mrr.get_or_insert((s.occurred_at, mrr));
                    *o = (*o).min((s.occurred_at, mrr));
                } else {
                    // Ordered by time: the last change wins.
                    last_change_mrr = Some(mrr);
                }
            }
            SignalBody::Billing(status) => snap.billing_status = Some(*status),
            SignalBody::Milestone { key, achieved } => milestones.push(MilestoneFact {
                account: s.account_id.clone(),
                key: key.clone(),
                at: s.occurred_at,
                achieved: *achieved,
            }),
            _ => {}
        }
    }
    if let Some(mrr) = last_change_mrr.or(opening_mrr.map(|o| o.1)) {
        snap.mrr_minor = mrr;
    }
    snap.active_days_30d = u32::try_from(active_days.len()).unwrap_or(u32::MAX);
    if !latest_nps.is_empty() {
        let sum: i64 = latest_nps.values().sum();
        snap.nps_mean = Some(sum as f64 / latest_nps.len() as f64);
    }
    if !checklist.is_empty() && !milestones.is_empty() {
        let started_at = ordered.first().map_or(as_of, |s| s.occurred_at);
        let facts: Vec<&MilestoneFact> = milestones.iter().collect();
        let o = onboarding(checklist, &facts, started_at, as_of, STUCK_AFTER_DAYS);
        snap.onboarding_score = o.score.value();
        snap.milestones_achieved = o.achieved;
        snap.milestones_missing = o.missing;
        snap.onboarding_stuck = o.stuck;
    }
    snap
}

impl AccountSnapshot {
    /// What the health model scores. Tickets and actions are always
    /// measured (none is data: zero); usage is missing until the first
    /// session, the other inputs until their first signal.
    pub fn health(&self) -> HealthSnapshot {
        HealthSnapshot {
            active_days_30d: self.has_sessions.then_some(f64::from(self.active_days_30d)),
            nps_mean: self.nps_mean,
            tickets_opened_30d: Some(f64::from(self.tickets_opened_30d)),
            billing_status: self.billing_status,
            actions_30d: Some(
                self.actions_30d
                    .iter()
                    .map(|(k, n)| (k.clone(), *n as f64))
                    .collect(),
            ),
            onboarding: self.onboarding_score,
        }
    }
}
