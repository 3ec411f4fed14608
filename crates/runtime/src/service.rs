//! What a Retain service is to the process that runs it.
//!
//! Construction is apart from running: [`Service::build`] turns a database
//! and the settings into [`Services`] (the gRPC services and the declared
//! background workers) and starts nothing; [`crate::serve`] runs them.
//! A service binary is `retain_runtime::cli::run::<TheService>()`, a test
//! is `retain_testkit::spawn_app::<TheService>(db)`, and the all-in-one
//! `retain` binary builds several and merges them — the same path each time.

use sea_orm::DatabaseConnection;

use crate::clock::Clock;
use crate::config::Settings;
use crate::section::Section;
use crate::server::Services;

/// What every service is built from.
#[derive(Debug, Clone)]
pub struct Context {
    /// The database (pool).
    pub db: DatabaseConnection,
    /// The settings, every section included.
    pub settings: Settings,
    /// Where the service reads the time.
    pub clock: Clock,
    /// The bus over `db`, shared by every service of the process: a
    /// publisher's `wake` after a commit wakes this process's idle
    /// consumers at once (other processes find the message at their next
    /// poll).
    pub bus: retain_bus::Bus,
}

impl Context {
    /// A context over `db` with `settings` and `clock`, and a bus over `db`.
    pub fn new(db: DatabaseConnection, settings: Settings, clock: Clock) -> Self {
        let bus = retain_bus::Bus::new(db.clone());
        Self {
            db,
            settings,
            clock,
            bus,
        }
    }
}

/// A Retain service.
pub trait Service {
    /// The binary's name (`retain-ingestion`): `--help`, logs, telemetry.
    const NAME: &'static str;
    /// One line saying what it does, for `--help`.
    const ABOUT: &'static str;
    /// Its own section of the configuration (`[ingestion]`).
    type Settings: Section;

    /// Builds the service from `ctx` and its own section. Starts no task:
    /// the workers it needs are declared in the returned [`Services`] and
    /// started by [`crate::serve`].
    fn build(ctx: &Context, own: Self::Settings) -> anyhow::Result<Services>;
}
