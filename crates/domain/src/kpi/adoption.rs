//! Adoption KPIs: active users, stickiness, sessions, time in app, usage
//! rate, trial-to-paid, onboarding engagement.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::measure::Measure;
use crate::time::{DAY, Period, Timestamp};

/// A product session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFact {
    /// Account.
    pub account: String,
    /// User within the account.
    pub user: String,
    /// Start.
    pub at: Timestamp,
    /// Length in seconds.
    pub seconds: i64,
}

/// Distinct users active in `[now − window, now)`.
fn active_users(sessions: &[SessionFact], now: Timestamp, window_days: i64) -> u64 {
    let from = now.plus(-window_days * DAY);
    sessions
        .iter()
        .filter(|s| s.at >= from && s.at < now)
        .map(|s| (s.account.as_str(), s.user.as_str()))
        .collect::<HashSet<_>>()
        .len() as u64
}

/// Days of the monthly active-user window: the longest any active-user
/// count looks back.
pub const MAU_DAYS: i64 = 30;

/// DAU, WAU, MAU as of `now`, and stickiness = DAU / MAU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActiveUsers {
    /// Distinct users in the last day.
    pub dau: u64,
    /// … last 7 days.
    pub wau: u64,
    /// … last 30 days.
    pub mau: u64,
    /// DAU / MAU (a fraction, 0–1).
    pub stickiness: Measure,
}

/// Active users as of `now`.
pub fn active(sessions: &[SessionFact], now: Timestamp) -> ActiveUsers {
    let (dau, wau, mau) = (
        active_users(sessions, now, 1),
        active_users(sessions, now, 7),
        active_users(sessions, now, MAU_DAYS),
    );
    ActiveUsers {
        dau,
        wau,
        mau,
        stickiness: Measure::ratio(dau as f64, mau as f64),
    }
}

/// Sessions per day = sessions in the period / days in the period.
pub fn sessions_per_day(sessions: &[SessionFact], period: Period) -> Measure {
    let n = sessions.iter().filter(|s| period.contains(s.at)).count();
    Measure::ratio(n as f64, period.days())
}

/// Time in app = session seconds / active user-days in the period.
pub fn time_in_app(sessions: &[SessionFact], period: Period) -> Measure {
    let mut seconds = 0i128;
    let mut user_days = HashSet::new();
    for s in sessions.iter().filter(|s| period.contains(s.at)) {
        seconds += i128::from(s.seconds);
        user_days.insert((s.account.as_str(), s.user.as_str(), s.at.day_number()));
    }
    Measure::ratio(seconds as f64, user_days.len() as f64)
}

/// Distinct active days per account in the period.
pub fn active_days(sessions: &[SessionFact], period: Period) -> HashMap<&str, u32> {
    let mut days: HashMap<&str, HashSet<i64>> = HashMap::new();
    for s in sessions.iter().filter(|s| period.contains(s.at)) {
        days.entry(s.account.as_str())
            .or_default()
            .insert(s.at.day_number());
    }
    days.into_iter()
        .map(|(a, d)| (a, u32::try_from(d.len()).unwrap_or(u32::MAX)))
        .collect()
}

/// Product usage rate % = paying accounts that reached the target
/// frequency (active on at least `target_days_per_week` days per week on
/// average over the period) / paying accounts × 100.
pub fn product_usage_rate(
    sessions: &[SessionFact],
    period: Period,
    paying: &HashSet<&str>,
    target_days_per_week: f64,
) -> Measure {
    let weeks = period.days() / 7.0;
    let days = active_days(sessions, period);
    let reached = paying
        .iter()
        .filter(|a| {
            days.get(**a)
                .is_some_and(|&d| f64::from(d) / weeks >= target_days_per_week)
        })
        .count();
    Measure::percent(reached as f64, paying.len() as f64)
}

/// A trial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialFact {
    /// Account.
    pub account: String,
    /// Segment of the account.
    pub segment: String,
    /// Start.
    pub started_at: Timestamp,
    /// Conversion, if any.
    pub converted_at: Option<Timestamp>,
}

/// Trial-to-paid conversion, overall and per segment.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialConversion {
    /// All segments.
    pub overall: Measure,
    /// Per segment, by name.
    pub by_segment: BTreeMap<String, Measure>,
}

/// The trial window when the tenant configures none (docs/KPIS.md): 14
/// days.
pub const DEFAULT_TRIAL_WINDOW_DAYS: i64 = 14;

/// Trial-to-paid % = trials started in the period that converted within
/// `window_days` of starting / trials started in the period × 100.
pub fn trial_to_paid(trials: &[TrialFact], period: Period, window_days: i64) -> TrialConversion {
    let mut per: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let (mut conv, mut started) = (0u64, 0u64);
    for t in trials.iter().filter(|t| period.contains(t.started_at)) {
        let ok = t
            .converted_at
            .is_some_and(|c| c >= t.started_at && c <= t.started_at.plus(window_days * DAY));
        let e = per.entry(t.segment.clone()).or_default();
        e.0 += u64::from(ok);
        e.1 += 1;
        conv += u64::from(ok);
        started += 1;
    }
    TrialConversion {
        overall: Measure::percent(conv as f64, started as f64),
        by_segment: per
            .into_iter()
            .map(|(s, (c, n))| (s, Measure::percent(c as f64, n as f64)))
            .collect(),
    }
}

/// An onboarding milestone attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilestoneFact {
    /// Account.
    pub account: String,
    /// Milestone key from the checklist.
    pub key: String,
    /// When.
    pub at: Timestamp,
    /// Achieved, or a failed attempt.
    pub achieved: bool,
}

/// One account's onboarding.
#[derive(Debug, Clone, PartialEq)]
pub struct Onboarding {
    /// Achieved checklist milestones / checklist size × 100.
    pub score: Measure,
    /// Achieved milestones, in checklist order.
    pub achieved: Vec<String>,
    /// Missing milestones, in checklist order.
    pub missing: Vec<String>,
    /// A failed milestone never achieved, or no progress for
    /// `stuck_after_days` while incomplete.
    pub stuck: bool,
}

/// Onboarding state of one account as of `now`. `started_at` is when its
/// onboarding began (first signal), for the no-progress rule.
pub fn onboarding(
    checklist: &[String],
    facts: &[&MilestoneFact],
    started_at: Timestamp,
    now: Timestamp,
    stuck_after_days: i64,
) -> Onboarding {
    let mut achieved_at: HashMap<&str, Timestamp> = HashMap::new();
    let mut last_failure: HashMap<&str, Timestamp> = HashMap::new();
    for f in facts.iter().filter(|f| f.at <= now) {
        let slot = if f.achieved {
            &mut achieved_at
        } else {
            &mut last_failure
        };
        let e = slot.entry(f.key.as_str()).or_insert(f.at);
        if f.achieved {
            *e = (*e).min(f.at)
        } else {
            *e = (*e).max(f.at)
        }
    }
    let (achieved, missing): (Vec<&String>, Vec<&String>) = checklist
        .iter()
        .partition(|k| achieved_at.contains_key(k.as_str()));
    let failed_unresolved = last_failure
        .keys()
        .any(|k| checklist.iter().any(|c| c == k) && !achieved_at.contains_key(k));
    let last_progress = checklist
        .iter()
        .filter_map(|k| achieved_at.get(k.as_str()))
        .max()
        .copied()
        .unwrap_or(started_at);
    let stalled = !missing.is_empty() && now > last_progress.plus(stuck_after_days * DAY);
    let stuck = !missing.is_empty() && (failed_unresolved || stalled);
    Onboarding {
        score: Measure::percent(achieved.len() as f64, checklist.len() as f64),
        achieved: achieved.into_iter().cloned().collect(),
        missing: missing.into_iter().cloned().collect(),
        stuck,
    }
}

/// Average onboarding score over accounts (accounts with no checklist are
/// absent and skipped).
pub fn average_onboarding(scores: &[Measure]) -> Measure {
    let present: Vec<f64> = scores.iter().filter_map(|m| m.value()).collect();
    Measure::ratio(present.iter().sum(), present.len() as f64)
}
