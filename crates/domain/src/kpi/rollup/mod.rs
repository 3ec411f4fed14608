//! Additive rollups: what the metrics service keeps per (tenant, account,
//! day) and per period instead of raw signals, so every KPI is computed
//! from merged rollups rather than from a scan at query time.
//!
//! Every rollup is a commutative monoid: [`Rollup::merge`] is associative
//! and commutative and `Default` is its identity, so rows can be merged in
//! any order and grouping (per day, per account, per period, per segment
//! filter) and give the same KPIs. Each rollup has a builder from the facts
//! of one account-day (a row is a pure function of that day's signals, so
//! the service rebuilds the row when a signal for that day arrives — a
//! redelivered or late signal gives the same row as the first time), a
//! `merge`, and functions computing the KPIs that return exactly what the
//! list-based functions of [`crate::kpi`] return (property-tested in
//! `tests/rollups.rs`). Everything is integers or exact ratios; `f64`
//! appears only where the list-based function returns a [`Measure`].
//!
//! Rows merge correctly only when they cover disjoint facts: two rows for
//! the same (account, day) must not both be merged (the service replaces a
//! row, never adds a second one). What the pieces hold and why they add is
//! documented on each type and in `docs/KPIS.md` ("Rollups").
//!
//! [`Measure`]: crate::Measure

pub mod adoption;
pub mod billing;
pub mod cost;
pub mod experience;
pub mod portfolio;
pub mod revenue;

/// A commutative monoid: `merge` is associative and commutative and
/// `Default::default()` is its identity.
pub trait Rollup: Default {
    /// Adds `other` into `self`.
    fn merge(&mut self, other: &Self);

    /// `self` merged with `other`.
    #[must_use]
    fn merged(mut self, other: &Self) -> Self
    where
        Self: Sized,
    {
        self.merge(other);
        self
    }
}

/// Merges every rollup of `items` (the identity when empty).
pub fn merge_all<'a, R: Rollup + 'a>(items: impl IntoIterator<Item = &'a R>) -> R {
    items.into_iter().fold(R::default(), |acc, r| acc.merged(r))
}
