//! `GetScorecard` and `GetKpiSeries` over real gRPC, on both databases.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use retain_ingestion::Ingestion;
use retain_metrics::Metrics;
use retain_proto::v1;
use retain_proto::v1::get_scorecard_request::Lens;
use retain_proto::v1::metrics_service_client::MetricsServiceClient;
use retain_proto::v1::signal::Body;
use retain_testkit::*;
use tonic::Code;

const DAY: i64 = 86_400;

async fn spawn(db: TestDatabase) -> TestApp {
    spawn_two::<Ingestion, Metrics>(db).await
}

fn mrr_at(id: &str, account: &str, days_ago: i64, minor: i64) -> v1::Signal {
    v1::Signal {
        occurred_at: ts(now() - days_ago * DAY),
        ..signal(
            id,
            account,
            Body::Subscription(v1::SubscriptionChange {
                amount: eur(minor),
                interval: v1::BillingInterval::Monthly as i32,
                churn_reason: 0,
                add_on: false,
                opening_balance: false,
            }),
        )
    }
}

fn field_of(err: &tonic::Status) -> String {
    tonic_types::StatusExt::get_details_bad_request(err)
        .unwrap()
        .field_violations[0]
        .field
        .clone()
}

retain_testkit::storage_test!(async fn scorecards_put_their_lens_first(db) {
    let app = spawn(db).await;
    let mut client = MetricsServiceClient::new(app.channel.clone());
    let req = |lens| v1::GetScorecardRequest { lens: Some(lens), period: None, filter: None };
    let card = client
        .get_scorecard(with_token(READER, req(Lens::Strategy(v1::Strategy::Profitability as i32))))
        .await
        .unwrap()
        .into_inner();
    let headline: Vec<i32> = card.headline.iter().map(|e| e.kpi).collect();
    assert_eq!(headline, [v1::Kpi::ExpansionMrr as i32, v1::Kpi::LtvToCac as i32]);
    assert_eq!(card.supporting.len(), 28, "every other KPI follows");
    let card = client
        .get_scorecard(with_token(READER, req(Lens::Stage(v1::JourneyStage::Retention as i32))))
        .await
        .unwrap()
        .into_inner();
    let headline: Vec<i32> = card.headline.iter().map(|e| e.kpi).collect();
    assert_eq!(headline, [v1::Kpi::LogoChurn as i32, v1::Kpi::Csat as i32]);

    for (req, field) in [
        (v1::GetScorecardRequest::default(), "lens"),
        (req(Lens::Strategy(99)), "strategy"),
        (req(Lens::Stage(-1)), "stage"),
    ] {
        let err = client.get_scorecard(with_token(READER, req)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(field_of(&err), field);
    }
});

retain_testkit::storage_test!(async fn a_series_has_one_point_per_bucket_matching_the_bridge(db) {
    let app = spawn(db).await;
    let signals = vec![
        mrr_at("m-1", "acme-1", 12, 10_000),
        mrr_at("m-2", "acme-2", 8, 5_000),
        mrr_at("m-3", "acme-1", 3, 25_000),
    ];
    assert_eq!(app.send(signals).await.accepted, 3);
    let mut client = MetricsServiceClient::new(app.channel.clone());
    let range = v1::Period { start: ts(now() - 14 * DAY), end: ts(now() - DAY) };
    let series = client
        .get_kpi_series(with_token(
            READER,
            v1::GetKpiSeriesRequest {
                kpi: v1::Kpi::Mrr as i32,
                granularity: v1::Granularity::Day as i32,
                range: Some(range),
                filter: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!((13..=14).contains(&series.points.len()), "{}", series.points.len());
    // Each point's MRR is the bridge's end for its bucket.
    for point in [series.points.first().unwrap(), series.points.last().unwrap()] {
        let bridge = client
            .get_mrr_bridge(with_token(READER, v1::GetMrrBridgeRequest { period: point.period, filter: None }))
            .await
            .unwrap()
            .into_inner();
        match point.value.as_ref().unwrap().result.as_ref().unwrap() {
            v1::kpi_value::Result::Money(m) => assert_eq!(m.amount_minor, bridge.end_mrr.unwrap().amount_minor),
            other => panic!("{other:?}"),
        }
    }
    let last = match series.points.last().unwrap().value.as_ref().unwrap().result.as_ref().unwrap() {
        v1::kpi_value::Result::Money(m) => m.amount_minor,
        other => panic!("{other:?}"),
    };
    assert_eq!(last, 30_000);

    let bad = |kpi: i32, granularity: i32, range: v1::Period| v1::GetKpiSeriesRequest { kpi, granularity, range: Some(range), filter: None };
    let years = v1::Period { start: ts(now() - 2 * 365 * DAY), end: ts(now()) };
    for (req, field) in [
        (bad(0, 0, range), "kpi"),
        (bad(v1::Kpi::Mrr as i32, 42, range), "granularity"),
        (bad(v1::Kpi::Mrr as i32, v1::Granularity::Day as i32, years), "range"),
        (bad(v1::Kpi::Mrr as i32, 0, v1::Period { start: ts(now()), end: ts(now() - DAY) }), "range.end"),
    ] {
        let err = client.get_kpi_series(with_token(READER, req)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert_eq!(field_of(&err), field);
    }
});
