//! End to end: the default dataset, delivered out of order with its late
//! signals last, through a real ingestion service over gRPC, on SQLite
//! and PostgreSQL: every signal ACCEPTED, none rejected or duplicate.

#![allow(clippy::unwrap_used)]

use std::time::Instant;

use retain_datagen::{Config, generate};
use retain_ingestion::Ingestion;
use retain_proto::v1;
use retain_testkit::{WRITER, spawn_app};

retain_testkit::storage_test!(
    async fn every_generated_signal_is_accepted(db) {
        // The service runs on the system clock: generate up to now.
        let cfg = Config {
            now: retain_testkit::now(),
            ..Config::default()
        };
        assert_eq!(
            retain_testkit::settings().tenants.default.onboarding_checklist,
            cfg.checklist,
            "the generator's default checklist is the tenants' default"
        );
        assert_eq!(retain_testkit::settings().tenants.default.base_currency, cfg.currency);
        let data = generate(&cfg);
        let delivery = data.in_delivery_order(7);
        let app = spawn_app::<Ingestion>(db).await;
        let started = Instant::now();
        let (mut accepted, mut live) = (0, 0);
        for batch in delivery.batches(5_000) {
            let n = batch.signals.len();
            if batch.mode == v1::IngestMode::Live {
                live += n;
            }
            let r = app.ingest(WRITER, batch.request()).await.unwrap();
            let rejected: Vec<_> = r
                .results
                .iter()
                .filter(|x| x.outcome() != v1::SignalOutcome::Accepted)
                .take(5)
                .collect();
            assert!(rejected.is_empty(), "not accepted: {rejected:?}");
            assert_eq!(r.accepted as usize, n);
            accepted += n;
        }
        eprintln!(
            "{accepted} signals ({live} LIVE, {} late) in {:?}",
            delivery.late,
            started.elapsed()
        );
        assert_eq!(accepted, data.signals.len());
        assert!(live > 0 && live < accepted);
        assert_eq!(app.count("signals").await, accepted as i64);
        assert_eq!(app.count("accounts").await, cfg.accounts as i64);
    }
);
