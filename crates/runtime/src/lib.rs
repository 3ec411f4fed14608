//! What every Retain service shares at run time.
//!
//! - [`cli`]: the command line every service binary shares, and [`cli::run`],
//!   which runs a service from it.
//! - [`launch`]: the composition root — any set of services in one process,
//!   the same way for a service binary and for `retain serve`.
//! - [`config`]: typed settings from defaults, a TOML file and `RETAIN__*`
//!   environment variables.
//! - [`telemetry`]: logs, OTLP traces/metrics, trace-context propagation.
//! - [`auth`]: bearer tokens bound to a tenant and roles.
//! - [`error`]: one error type mapped to gRPC status codes with details.
//! - [`server`]: the gRPC server bootstrap with health, reflection, load
//!   shedding and graceful shutdown.
//! - [`workers`]: a service's background tasks, started and stopped with
//!   its server.

pub mod auth;
pub mod background;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod launch;
pub mod methods;
pub mod metrics;
pub mod paging;
pub mod section;
pub mod server;
pub mod service;
pub mod streams;
pub mod telemetry;
pub mod watch;
pub mod workers;

pub use auth::{Authenticator, Principal, Role};
pub use clock::Clock;
pub use config::{PerTenant, Settings, TenantKeys, TenantView, Tenants};
pub use error::{Error, FieldViolation};
pub use launch::{Component, Known, Launch, Launched, launch};
pub use section::{ConfigError, ConsumerSettings, Section};
pub use server::{LIVENESS, ServeOptions, Services, serve, shutdown_on_signals};
pub use service::{Context, NoTenantKeys, Service};
pub use workers::Workers;
