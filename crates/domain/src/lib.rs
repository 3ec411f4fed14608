//! Retain's domain: the types every service agrees on, with their validation.
//!
//! No I/O, no async, no tonic. The services feed these types and persist what
//! they return. KPI formulas, the health model and routing rules grow here.

pub mod ids;

pub use ids::{AccountId, IdError, TenantId};
