//! `GetMrrBridge` over real gRPC, on SQLite and PostgreSQL, against the
//! bridge worked out by hand from the subscription changes sent.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use retain_ingestion::Ingestion;
use retain_metrics::Metrics;
use retain_proto::v1;
use retain_proto::v1::metrics_service_client::MetricsServiceClient;
use retain_proto::v1::signal::Body;
use retain_testkit::*;
use tonic::Code;

const DAY: i64 = 86_400;

async fn spawn(db: TestDatabase) -> TestApp {
    spawn_two::<Ingestion, Metrics>(db).await
}

fn segment(name: &str) -> Body {
    Body::Account(v1::AccountUpsert {
        segment: Some(name.into()),
        ..Default::default()
    })
}

async fn bridge(
    app: &TestApp,
    req: v1::GetMrrBridgeRequest,
) -> Result<v1::GetMrrBridgeResponse, tonic::Status> {
    MetricsServiceClient::new(app.channel.clone())
        .get_mrr_bridge(with_token(READER, req))
        .await
        .map(tonic::Response::into_inner)
}

fn minor(m: &Option<v1::Money>) -> i64 {
    m.as_ref().unwrap().amount_minor
}

retain_testkit::storage_test!(async fn the_bridge_balances_and_matches_the_changes_sent(db) {
    use v1::ChurnReason::{Price, Unspecified};
    let app = spawn(db).await;
    // The period: from 20 days ago to 1 day ago.
    let period = v1::Period { start: ts(now() - 20 * DAY), end: ts(now() - DAY) };
    let signals = vec![
        days_ago("seg-1", "acme-1", 29, segment("Agencies")),
        days_ago("seg-2", "acme-2", 29, segment("Agencies")),
        days_ago("seg-3", "acme-3", 29, segment("SMB")),
        days_ago("seg-4", "acme-4", 29, segment("SMB")),
        // acme-1: new in the period.
        days_ago("m-1", "acme-1", 10, mrr_change(49_900, Unspecified)),
        // acme-2: paying before, expands in the period.
        days_ago("m-2a", "acme-2", 25, mrr_change(10_000, Unspecified)),
        days_ago("m-2b", "acme-2", 5, mrr_change(20_000, Unspecified)),
        // acme-3: paying before, churns in the period.
        days_ago("m-3a", "acme-3", 25, mrr_change(5_000, Unspecified)),
        days_ago("m-3b", "acme-3", 15, mrr_change(0, Price)),
        // acme-4: paid and churned before, reactivates in the period.
        days_ago("m-4a", "acme-4", 28, mrr_change(3_000, Unspecified)),
        days_ago("m-4b", "acme-4", 26, mrr_change(0, Price)),
        days_ago("m-4c", "acme-4", 10, mrr_change(7_000, Unspecified)),
        // After the period: not counted.
        days_ago("m-1z", "acme-1", 0, mrr_change(99_900, Unspecified)),
    ];
    let r = app.send(signals.clone()).await;
    assert_eq!(r.accepted as usize, signals.len(), "{r:?}");

    // Worked out by hand from the changes above.
    let (start, new, reactivation, expansion, contraction, churned) = (15_000, 49_900, 7_000, 10_000, 0, 5_000);
    let end = 49_900 + 20_000 + 7_000;
    assert_eq!(start + new + reactivation + expansion - contraction - churned, end);

    let b = bridge(&app, v1::GetMrrBridgeRequest { period: Some(period), filter: None }).await.unwrap();
    assert_eq!(
        [minor(&b.start_mrr), minor(&b.new_mrr), minor(&b.reactivation_mrr), minor(&b.expansion_mrr), minor(&b.contraction_mrr), minor(&b.churned_mrr), minor(&b.end_mrr)],
        [start, new, reactivation, expansion, contraction, churned, end]
    );
    assert_eq!(b.end_mrr.as_ref().unwrap().currency, "EUR");

    // Agencies only: acme-1 and acme-2.
    let filter = v1::AccountFilter { segments: vec!["Agencies".into()], plans: vec![] };
    let b = bridge(&app, v1::GetMrrBridgeRequest { period: Some(period), filter: Some(filter) }).await.unwrap();
    assert_eq!(
        [minor(&b.start_mrr), minor(&b.new_mrr), minor(&b.expansion_mrr), minor(&b.churned_mrr), minor(&b.end_mrr)],
        [10_000, 49_900, 10_000, 0, 69_900]
    );

    // Another tenant sees none of it.
    let other = MetricsServiceClient::new(app.channel.clone())
        .get_mrr_bridge(with_token(GLOBEX, v1::GetMrrBridgeRequest { period: Some(period), filter: None }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(minor(&other.end_mrr), 0);
});

fn opening(minor: i64, reason: v1::ChurnReason) -> Body {
    let Body::Subscription(x) = mrr_change(minor, reason) else {
        unreachable!()
    };
    Body::Subscription(v1::SubscriptionChange {
        opening_balance: true,
        ..x
    })
}

// An import that starts mid-history sends each existing customer's MRR as
// an opening balance: nobody is booked as new, a former customer who pays
// again is a reactivation, and real history older than the opening
// (backfilled) replaces it.
retain_testkit::storage_test!(async fn opening_balances_are_not_new_mrr(db) {
    use v1::ChurnReason::{Price, Unspecified};
    let app = spawn(db).await;
    let period = v1::Period { start: ts(now() - 20 * DAY), end: ts(now() - DAY) };
    let signals = vec![
        // acme-1: paying 10,000 when the import starts, expands later.
        days_ago("o-1", "acme-1", 15, opening(10_000, Unspecified)),
        days_ago("m-1", "acme-1", 10, mrr_change(15_000, Unspecified)),
        // acme-2: a former customer when the import starts, pays again.
        days_ago("o-2", "acme-2", 15, opening(0, Price)),
        days_ago("m-2", "acme-2", 5, mrr_change(7_000, Unspecified)),
        // acme-3: paying 20,000 throughout, no change.
        days_ago("o-3", "acme-3", 15, opening(20_000, Unspecified)),
        // acme-4: its real history from before the import replaces the opening.
        days_ago("o-4", "acme-4", 15, opening(4_000, Unspecified)),
        days_ago("m-4", "acme-4", 28, mrr_change(3_000, Unspecified)),
        // acme-5: a new customer after the import.
        days_ago("m-5", "acme-5", 8, mrr_change(5_000, Unspecified)),
    ];
    let r = app.send(signals.clone()).await;
    assert_eq!(r.accepted as usize, signals.len(), "{r:?}");

    // By hand: start 10,000 + 0 + 20,000 + 3,000; new 5,000 (acme-5 only);
    // reactivation 7,000 (acme-2); expansion 5,000 (acme-1).
    let (start, new, reactivation, expansion) = (33_000, 5_000, 7_000, 5_000);
    let end = 15_000 + 7_000 + 20_000 + 3_000 + 5_000;
    assert_eq!(start + new + reactivation + expansion, end);
    let b = bridge(&app, v1::GetMrrBridgeRequest { period: Some(period), filter: None }).await.unwrap();
    assert_eq!(
        [minor(&b.start_mrr), minor(&b.new_mrr), minor(&b.reactivation_mrr), minor(&b.expansion_mrr), minor(&b.contraction_mrr), minor(&b.churned_mrr), minor(&b.end_mrr)],
        [start, new, reactivation, expansion, 0, 0, end]
    );

});

retain_testkit::storage_test!(async fn a_bad_period_or_filter_names_its_field(db) {
    let app = spawn(db).await;
    let cases = [
        (v1::GetMrrBridgeRequest { period: Some(v1::Period { start: ts(now()), end: ts(now() - DAY) }), filter: None }, "period.end"),
        (v1::GetMrrBridgeRequest { period: Some(v1::Period { start: None, end: ts(now()) }), filter: None }, "period.start"),
        (v1::GetMrrBridgeRequest { period: Some(v1::Period { start: ts(-86_400 * 365 * 100), end: ts(now()) }), filter: None }, "period.start"),
        (
            v1::GetMrrBridgeRequest { period: None, filter: Some(v1::AccountFilter { segments: vec!["a\0b".into()], plans: vec![] }) },
            "filter.segments[0]",
        ),
    ];
    for (req, field) in cases {
        let err = bridge(&app, req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        let details = tonic_types::StatusExt::get_details_bad_request(&err).unwrap();
        assert!(details.field_violations.iter().any(|v| v.field == field), "{field}: {err:?}");
    }
    // No period: the current calendar month.
    let b = bridge(&app, v1::GetMrrBridgeRequest::default()).await.unwrap();
    assert!(b.period.unwrap().start.unwrap().seconds <= now());
});
