//! An account's recompute reads what its new signals can reach — every
//! signal but sessions and actions, then sessions and actions only from
//! the earliest month they can change (or the snapshot's window) on — and
//! gets exactly what reading its whole history gets: the same snapshot and
//! the same monthly rows, for every account of a generated portfolio and
//! every point a change may start from, on both databases.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use retain_datagen::{Config, generate};
use retain_ingestion::Ingestion;
use retain_metrics::{Reading, Recompute};
use retain_proto::v1;
use retain_testkit::*;

const DAY: i64 = 86_400;

retain_testkit::storage_test!(async fn a_windowed_recompute_equals_one_over_the_whole_history(db) {
    let app = spawn_app::<Ingestion>(db).await;
    // "Now" on the 20th of a month: the snapshot's 30-day window then
    // starts before the earliest month a recent change reaches, so a read
    // that covered only that month would miss part of the window.
    let this_month = retain_domain::Period::containing(
        retain_domain::Timestamp::from_seconds(now()),
        retain_domain::Granularity::Month,
    );
    let last_month = retain_domain::Period::containing(this_month.start.plus_micros(-1), retain_domain::Granularity::Month);
    let at = last_month.start.plus(19 * DAY + 12 * 3_600);
    let data = generate(&Config { accounts: 12, history_days: 200, now: at.seconds(), ..Config::default() });
    // The portfolio's costs ('*') are no account.
    let accounts: std::collections::BTreeSet<String> = data
        .signals
        .iter()
        .map(|s| s.account_id.clone())
        .filter(|a| a != retain_domain::signal::PORTFOLIO)
        .collect();
    let first = accounts.iter().next().unwrap().clone();
    for batch in data.in_delivery_order(3).batches(5_000) {
        // History, as of a past "now": sent as a backfill.
        let mut request = batch.request();
        request.mode = v1::IngestMode::Backfill as i32;
        let r = app.ingest(WRITER, request).await.unwrap();
        assert_eq!(r.rejected, 0, "{:?}", r.results.iter().find(|x| !x.violations.is_empty()));
    }
    // A renewal sent now for a contract that ended months ago: the months
    // it reaches are read whatever the change's start.
    let renewal = v1::Signal {
        occurred_at: ts(at.seconds() - DAY),
        ..signal(
            "late-renewal",
            &first,
            v1::signal::Body::Renewal(v1::Renewal {
                outcome: v1::RenewalOutcome::Renewed as i32,
                contract_end: ts(at.seconds() - 150 * DAY),
            }),
        )
    };
    let r = app.ingest(WRITER, batch(vec![renewal])).await.unwrap();
    assert_eq!(r.accepted, 1, "{r:?}");

    let recompute = Recompute {
        db: app.db.conn.clone(),
        tenants: std::sync::Arc::new(retain_metrics::tenants(&settings().tenants.parse().unwrap()).unwrap()),
        // One instant for both reads: their as-of times must agree.
        clock: retain_runtime::Clock::manual(at),
    };
    let mode = v1::IngestMode::Live;
    let mut windowed_reads = 0;
    for account in &accounts {
        for days_ago in [0, 1, 20, 45, 90, 150, 400] {
            let from = Some(at.plus(-days_ago * DAY));
            let window = recompute.compute("acme", account, mode, from).await.unwrap();
            let all = recompute.compute_reading("acme", account, mode, from, Reading::All).await.unwrap();
            assert_eq!(window.snapshot(), all.snapshot(), "{account}, changed {days_ago} days ago: snapshot");
            assert_eq!(window.rollups(), all.rollups(), "{account}, changed {days_ago} days ago: monthly rows");
            if window.signals_read() < all.signals_read() {
                windowed_reads += 1;
            }
        }
    }
    // The window was read, not the whole history, for most of them.
    assert_eq!(accounts.len(), 12);
    assert!(windowed_reads >= 12 * 3, "only {windowed_reads} recomputes read less than everything");
});
