//! Adoption rollups: sessions, time in app, active users, usage rate.
//!
//! **Dense numbers.** Distinct counts do not add across days (a user
//! active on Monday and Tuesday is one weekly user), so the rollup keeps
//! the sets themselves, over dense `u32` numbers the metrics service
//! assigns per tenant: one number per *(account, user id)* — users are
//! scoped by account, so numbering pairs keeps the same user id in two
//! accounts two users — and one number per account. A set merges by
//! union, so DAU/WAU/MAU stay exact across any merge.
//!
//! The sets are roaring bitmaps ([`UserSet`]): measured against a sorted
//! `Vec<u32>` and a `HashSet<u32>` in `benches/domain.rs`
//! (`docs/BENCHMARKS.md`).

use std::collections::{BTreeMap, HashSet};

use roaring::RoaringBitmap;

use super::Rollup;
use crate::kpi::adoption::{ActiveUsers, SessionFact};
use crate::measure::Measure;
use crate::time::{DAY_MICROS, Period, Timestamp};

/// An exact set of dense numbers (users or accounts).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserSet(RoaringBitmap);

impl UserSet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `n`; `true` when it was not there.
    pub fn insert(&mut self, n: u32) -> bool {
        self.0.insert(n)
    }

    /// Whether `n` is in the set.
    pub fn contains(&self, n: u32) -> bool {
        self.0.contains(n)
    }

    /// How many numbers.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds every number of `other`.
    pub fn union_with(&mut self, other: &Self) {
        self.0 |= &other.0;
    }

    /// The numbers in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter()
    }
}

impl FromIterator<u32> for UserSet {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl Rollup for UserSet {
    /// Union.
    fn merge(&mut self, other: &Self) {
        self.union_with(other);
    }
}

/// The adoption facts of a set of account-days.
///
/// `sessions`, `seconds` and `user_days` add because each (account, day)
/// is in one row only; `users_by_day` merges by union per day;
/// `active_days` adds per account (each account-day row counts its day
/// once).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AdoptionRollup {
    /// Sessions.
    pub sessions: u64,
    /// Session seconds.
    pub seconds: i128,
    /// Distinct (account, user, day) with a session.
    pub user_days: u64,
    /// UTC day number → users (dense numbers) with a session that day.
    pub users_by_day: BTreeMap<i64, UserSet>,
    /// Account (dense number) → days with a session.
    pub active_days: BTreeMap<u32, u32>,
}

impl AdoptionRollup {
    /// The row of some sessions — one account-day's, or any set of whole
    /// account-days. `user` numbers an (account, user id) pair, `account`
    /// an account; both must be stable and injective per tenant.
    pub fn from_sessions(
        sessions: &[SessionFact],
        mut user: impl FnMut(&str, &str) -> u32,
        mut account: impl FnMut(&str) -> u32,
    ) -> Self {
        let mut row = Self::default();
        let mut account_days: HashSet<(u32, i64)> = HashSet::new();
        for s in sessions {
            let day = s.at.day_number();
            row.sessions += 1;
            row.seconds += i128::from(s.seconds);
            if row
                .users_by_day
                .entry(day)
                .or_default()
                .insert(user(&s.account, &s.user))
            {
                row.user_days += 1;
            }
            let a = account(&s.account);
            if account_days.insert((a, day)) {
                *row.active_days.entry(a).or_default() += 1;
            }
        }
        row
    }

    /// DAU, WAU, MAU at `now` (the period's end) from the day sets:
    /// exactly [`active`](crate::kpi::adoption::active) over the same
    /// sessions. `None` when `now` is not midnight UTC — day sets cannot
    /// answer a window that starts inside a day.
    pub fn active(&self, now: Timestamp) -> Option<ActiveUsers> {
        if now.micros().rem_euclid(DAY_MICROS) != 0 {
            return None;
        }
        let today = now.day_number();
        let distinct = |days: i64| -> u64 {
            let mut set = UserSet::new();
            for (_, users) in self.users_by_day.range(today - days..today) {
                set.union_with(users);
            }
            set.len()
        };
        let (dau, wau, mau) = (distinct(1), distinct(7), distinct(30));
        Some(ActiveUsers {
            dau,
            wau,
            mau,
            stickiness: Measure::ratio(dau as f64, mau as f64),
        })
    }

    /// Sessions per day of `period` (the rollup must hold exactly the
    /// period's days): [`sessions_per_day`](crate::kpi::adoption::sessions_per_day).
    pub fn sessions_per_day(&self, period: Period) -> Measure {
        Measure::ratio(self.sessions as f64, period.days())
    }

    /// Time in app: [`time_in_app`](crate::kpi::adoption::time_in_app)
    /// (the rollup holding exactly the period's days).
    pub fn time_in_app(&self) -> Measure {
        Measure::ratio(self.seconds as f64, self.user_days as f64)
    }

    /// Product usage rate % over `period` (the rollup holding exactly the
    /// period's days) among `paying` accounts (dense numbers):
    /// [`product_usage_rate`](crate::kpi::adoption::product_usage_rate).
    pub fn product_usage_rate(
        &self,
        period: Period,
        paying: &HashSet<u32>,
        target_days_per_week: f64,
    ) -> Measure {
        let weeks = period.days() / 7.0;
        let reached = paying
            .iter()
            .filter(|a| {
                self.active_days
                    .get(a)
                    .is_some_and(|&d| f64::from(d) / weeks >= target_days_per_week)
            })
            .count();
        Measure::percent(reached as f64, paying.len() as f64)
    }
}

impl Rollup for AdoptionRollup {
    /// Sums; union of each day's users; active days summed per account.
    fn merge(&mut self, o: &Self) {
        self.sessions += o.sessions;
        self.seconds += o.seconds;
        self.user_days += o.user_days;
        for (day, users) in &o.users_by_day {
            self.users_by_day.entry(*day).or_default().union_with(users);
        }
        for (a, d) in &o.active_days {
            *self.active_days.entry(*a).or_default() += d;
        }
    }
}
