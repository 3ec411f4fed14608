//! What a Retain service is to the process that runs it.
//!
//! Construction is apart from running: [`Service::build`] turns a database
//! and the settings into [`Services`] (the gRPC services and the declared
//! background workers) and starts nothing; [`crate::serve`] runs them.
//! A service binary runs one through [`crate::launch`], the all-in-one
//! `retain` binary runs all four through the same call, and a test builds
//! one with `retain_testkit::spawn_app::<TheService>(db)`.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::clock::Clock;
use crate::config::{ConfigError, Settings, TenantKeys, Tenants};
use crate::section::Section;
use crate::server::Services;

/// What every service is built from.
#[derive(Debug, Clone)]
pub struct Context {
    /// The database (pool).
    pub db: DatabaseConnection,
    /// The settings, every section included.
    pub settings: Settings,
    /// Every tenant's shared settings, parsed once from `settings.tenants`.
    pub tenants: Arc<Tenants>,
    /// Where the service reads the time.
    pub clock: Clock,
    /// The bus over `db`, shared by every service of the process: a
    /// publisher's `wake` after a commit wakes this process's idle
    /// consumers at once (other processes find the message at their next
    /// poll).
    pub bus: retain_bus::Bus,
}

impl Context {
    /// A context over `db` with `settings` and `clock`, and a bus over `db`;
    /// fails, naming the key, when the tenants' settings do not parse.
    pub fn new(
        db: DatabaseConnection,
        settings: Settings,
        clock: Clock,
    ) -> Result<Self, ConfigError> {
        let bus = retain_bus::Bus::new(db.clone());
        let tenants = Arc::new(settings.tenants.parse()?);
        Ok(Self {
            db,
            settings,
            tenants,
            clock,
            bus,
        })
    }
}

/// A tenant key-set for a service that owns no per-tenant key.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoTenantKeys {}

impl TenantKeys for NoTenantKeys {
    const KEYS: &'static [&'static str] = &[];
}

/// A Retain service.
pub trait Service {
    /// The binary's name (`retain-ingestion`): `--help`, logs, telemetry.
    const NAME: &'static str;
    /// One line saying what it does, for `--help`.
    const ABOUT: &'static str;
    /// Its own section of the configuration (`[ingestion]`).
    type Settings: Section;
    /// The per-tenant keys it owns (`[tenants.default] queues`), read with
    /// `ctx.tenants.keys()`; [`NoTenantKeys`] when it owns none.
    type TenantKeys: TenantKeys;

    /// Builds the service from `ctx` and its own section. Starts no task:
    /// the workers it needs are declared in the returned [`Services`] and
    /// started by [`crate::serve`].
    fn build(ctx: &Context, own: Self::Settings) -> anyhow::Result<Services>;
}
