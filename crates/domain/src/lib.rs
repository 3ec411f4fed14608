//! Retain's domain: the types every service agrees on, the KPI formulas,
//! the health model and the routing rules, as pure functions.
//!
//! No I/O, no async, no tonic: the services feed these functions and
//! persist what they return. `../../docs/KPIS.md` documents every KPI.

pub mod account;
pub mod exact;
pub mod health;
pub mod ids;
pub mod kpi;
pub mod measure;
pub mod money;
pub mod routing;
pub mod signal;
pub mod snapshot;
pub mod time;
pub mod validation;

pub use account::Account;
pub use exact::{Exact, MoneyMeasure, Ratio};
pub use ids::{AccountId, IdError, TenantId};
pub use measure::{Absence, Measure};
pub use money::{Currency, Money, MoneyError};
pub use time::{Granularity, Period, Timestamp};
pub use validation::{Violation, Violations};
