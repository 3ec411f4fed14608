//! A KPI query the monthly cells cannot answer reads the signals a page of
//! accounts at a time (`metrics.query_page_accounts`, and no more than
//! `query_page_signals` signals): whatever the page size, every period
//! shape and every RPC gives the answer of reading all accounts at once. On SQLite and PostgreSQL, over real gRPC.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use retain_datagen::{Config, generate};
use retain_domain::{Granularity, Period, Timestamp};
use retain_ingestion::{Ingestion, IngestionSettings};
use retain_metrics::{Metrics, MetricsSettings};
use retain_proto::v1;
use retain_proto::v1::metrics_service_client::MetricsServiceClient;
use retain_runtime::Service;
use retain_testkit::*;

const DAY: i64 = 86_400;

fn wire(p: Period) -> Option<v1::Period> {
    Some(v1::Period {
        start: ts(p.start.seconds()),
        end: ts(p.end.seconds()),
    })
}

retain_testkit::storage_test!(async fn any_page_size_gives_the_answer_of_one_page(db) {
    // Pages of 3 accounts over 23 (the portfolio's cost account among
    // them): eight pages, the last one short.
    let small = MetricsSettings {
        query_page_accounts: 3,
        ..MetricsSettings::default()
    };
    let app = spawn_composed(db, settings(), retain_runtime::Clock::system(), move |ctx| {
        Ok(Ingestion::build(ctx, IngestionSettings::default())?.merge(Metrics::build(ctx, small)?))
    })
    .await;
    let data = generate(&Config {
        accounts: 23,
        history_days: 100,
        now: now(),
        ..Config::default()
    });
    for batch in data.in_delivery_order(5).batches(5_000) {
        assert_eq!(app.ingest(WRITER, batch.request()).await.unwrap().rejected, 0);
    }
    app.settled("metrics").await;

    // Periods that end in the past, so both answers are as of the same
    // instants: the last 7 days, 90 days across month boundaries, and this
    // month up to today.
    let today = Period::containing(Timestamp::from_seconds(now()), Granularity::Day).start;
    let month = Period::containing(Timestamp::from_seconds(now()), Granularity::Month);
    let mut periods = vec![
        Period::new(today.plus_micros(-7 * DAY * 1_000_000), today).unwrap(),
        Period::new(today.plus_micros(-90 * DAY * 1_000_000), today).unwrap(),
    ];
    if month.start < today {
        periods.push(Period::new(month.start, today).unwrap());
    }
    let tenants = retain_metrics::tenants(&settings().tenants.parse().unwrap()).unwrap();
    let acme = tenants.of("acme");
    let mut metrics = MetricsServiceClient::new(app.channel.clone());
    for p in periods {
        let paged = metrics
            .get_portfolio_metrics(with_token(READER, v1::GetPortfolioMetricsRequest { period: wire(p), filter: None }))
            .await
            .unwrap()
            .into_inner();
        let whole = retain_metrics::portfolio_from_signals(
            &app.db.conn,
            acme,
            "acme",
            (p, Timestamp::from_seconds(now())),
            retain_metrics::Page::WHOLE,
        )
        .await
        .unwrap();
        assert_eq!(paged, whole, "{p:?}");
        assert!(kpi_money(&paged, v1::Kpi::Mrr) > 0, "{p:?}: an answer with revenue in it");
    }

    // A series of weekly buckets and a bridge, each in pages of 3, equal
    // the same answers computed in one page (a service with pages of
    // 100,000 on the same database).
    let series = |client: &mut MetricsServiceClient<tonic::transport::Channel>| {
        let mut client = client.clone();
        async move {
            client
                .get_kpi_series(with_token(
                    READER,
                    v1::GetKpiSeriesRequest {
                        kpi: v1::Kpi::Dau as i32,
                        granularity: v1::Granularity::Week as i32,
                        range: wire(Period::new(today.plus_micros(-8 * 7 * DAY * 1_000_000), today).unwrap()),
                        filter: None,
                    },
                ))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let paged_series = series(&mut metrics).await;
    assert!(paged_series.points.len() >= 8);
    let one_page = MetricsSettings {
        query_page_accounts: 100_000,
        ..MetricsSettings::default()
    };
    // A second replica on the same database, reading in one page.
    let ctx = retain_runtime::Context::new(app.db.conn.clone(), settings(), retain_runtime::Clock::system()).unwrap();
    let other = serve_in_process(&ctx, Metrics::build(&ctx, one_page).unwrap(), std::time::Duration::from_secs(5)).await;
    let mut whole_client = MetricsServiceClient::new(other.channel.clone());
    assert_eq!(series(&mut whole_client).await, paged_series);
    // A third, whose pages end by signals (a few accounts' worth each).
    let by_signals = MetricsSettings {
        query_page_accounts: 100_000,
        query_page_signals: 250,
        ..MetricsSettings::default()
    };
    let third = serve_in_process(&ctx, Metrics::build(&ctx, by_signals).unwrap(), std::time::Duration::from_secs(5)).await;
    let mut third_client = MetricsServiceClient::new(third.channel.clone());
    assert_eq!(series(&mut third_client).await, paged_series);
    third.shutdown.cancel();
    third.server.await.unwrap().unwrap();
    let bridge = |p: Period| v1::GetMrrBridgeRequest { period: wire(p), filter: None };
    let ninety = Period::new(today.plus_micros(-90 * DAY * 1_000_000), today).unwrap();
    assert_eq!(
        metrics.get_mrr_bridge(with_token(READER, bridge(ninety))).await.unwrap().into_inner(),
        whole_client.get_mrr_bridge(with_token(READER, bridge(ninety))).await.unwrap().into_inner(),
    );
    other.shutdown.cancel();
    other.server.await.unwrap().unwrap();
});
