//! Customer-success KPIs (docs/KPIS.md) as pure functions over plain
//! inputs.
//!
//! Every function takes the facts it needs (subscription changes, answers,
//! sessions…) in any order and returns [`Measure`](crate::Measure)s: a
//! KPI with a zero denominator is absent with a reason, never 0 or NaN.
//! Rates keep full precision; round only for display. `docs/KPIS.md`
//! documents each formula and its edge cases.

pub mod adoption;
pub mod experience;
pub mod revenue;
pub mod rollup;
pub mod scorecard;
