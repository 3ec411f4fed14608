//! Retain's test kit: what every service's tests need, written once.
//!
//! - [`db`]: a freshly migrated database per test, on SQLite and on a
//!   throwaway PostgreSQL cluster ([`storage_test!`] runs a body on both),
//!   and [`eventually`] to wait for a condition instead of sleeping.
//! - [`app`]: a service spawned in-process on `127.0.0.1:0` through the
//!   same `retain_runtime::serve` a binary uses, with typed clients.
//! - [`binary`]: a service binary run as a process with the reference
//!   configuration, stopped with SIGTERM.
//! - [`tokens`]: bearer tokens for two tenants and every role.
//! - [`fixtures`]: valid signals of every kind, and readers of answers.
//! - [`smtp`]: a real SMTP server (Python's aiosmtpd) that keeps what it
//!   receives, for email tests.
//! - [`hostile`]: hostile-input corpora as tables of cases, sent as raw
//!   bytes, each checked for its status and an unchanged database.
//!
//! ```text
//! retain_testkit::storage_test!(async fn accepts_a_session(db) {
//!     let app = spawn_app::<retain_ingestion::Ingestion>(db).await;
//!     let r = app.send(vec![signal("e-1", "acme-1", session("u1", 60))]).await;
//!     assert_eq!(r.accepted, 1);
//! });
//! ```

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // A test kit fails loudly.

pub mod app;
pub mod binary;
pub mod db;
pub mod fixtures;
pub mod hostile;
pub mod procfs;
pub mod smtp;
pub mod tokens;

pub use app::{
    Served, TestApp, serve_in_process, settings, spawn_app, spawn_app_at, spawn_app_with,
    spawn_composed, spawn_two,
};
pub use db::{BenchPostgres, PgCluster, TestDatabase, eventually};
pub use fixtures::*;
pub use smtp::{Received, SmtpSink};
pub use tokens::{
    ADMIN, CSM, CSM_ANA, GLOBEX, INGEST_ONLY, READER, WRITER, authenticator, with_token,
};

/// Says that `test` skipped, and why, where a reader sees it: `cargo test`
/// captures what a passing test prints with `eprintln!`, so a skipped
/// test would look like any other `ok`. This writes to the process's
/// standard error directly, past the capture, on every run.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let line = format!("SKIPPED {test}: {why}\n");
    // Nothing to do if stderr itself is gone.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
