//! What every Retain service shares at run time.
//!
//! - [`config`]: typed settings from defaults, a TOML file and `RETAIN__*`
//!   environment variables.
//! - [`telemetry`]: logs, OTLP traces/metrics, trace-context propagation.
//! - [`auth`]: bearer tokens bound to a tenant and roles.
//! - [`error`]: one error type mapped to gRPC status codes with details.
//! - [`server`]: the gRPC server bootstrap with health, reflection, load
//!   shedding and graceful shutdown.

pub mod auth;
pub mod config;
pub mod error;
pub mod server;
pub mod telemetry;

pub use auth::{Authenticator, Principal, Role};
pub use config::Settings;
pub use error::{Error, FieldViolation};
pub use server::{ServeOptions, Services, serve, shutdown_on_signals};
