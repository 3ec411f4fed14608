//! LTV and CLV need a monthly logo churn rate (docs/KPIS.md, "LTV"): a
//! period that is one whole calendar month answers them; any other period
//! — a 41-day range, a week, a quarter, the month so far — gives the
//! reason instead of a rate of another length scaled as if monthly. The
//! same rule holds per bucket of `GetKpiSeries` and in `GetScorecard`.

#![allow(clippy::unwrap_used)] // Tests fail loudly.

use retain_domain::{Granularity, Period, Timestamp};
use retain_ingestion::Ingestion;
use retain_metrics::Metrics;
use retain_proto::v1;
use retain_proto::v1::kpi_value::Result as KpiResult;
use retain_proto::v1::metrics_service_client::MetricsServiceClient;
use retain_testkit::*;

const DAY: i64 = 86_400;
const NEEDS_A_MONTH: &str = "needs a one-calendar-month period";

fn month_before(t: Timestamp) -> Period {
    let this = Period::containing(t, Granularity::Month);
    Period::containing(this.start.plus_micros(-1), Granularity::Month)
}

fn wire(p: Period) -> Option<v1::Period> {
    Some(v1::Period {
        start: ts(p.start.seconds()),
        end: ts(p.end.seconds()),
    })
}

fn at(id: &str, account: &str, t: Timestamp, body: v1::signal::Body) -> v1::Signal {
    v1::Signal {
        occurred_at: ts(t.seconds()),
        ..signal(id, account, body)
    }
}

/// Four accounts paying 100.00 EUR a month from 100 days ago; acct-3
/// churns in the month before last, acct-4 last month, when acct-5 starts
/// paying 100.00 EUR (a new customer, acquired for 300.00 EUR spent over
/// last month) and acct-1 buys once for 50.00 EUR.
async fn portfolio(app: &TestApp, last: Period, before_last: Period) {
    let since = Timestamp::from_seconds(now() - 100 * DAY);
    let mut signals: Vec<v1::Signal> = (1..=4)
        .map(|i| {
            at(
                &format!("pay-{i}"),
                &format!("acct-{i}"),
                since,
                subscription(10_000),
            )
        })
        .collect();
    signals.push(at(
        "churn-3",
        "acct-3",
        before_last.start.plus(9 * DAY),
        subscription(0),
    ));
    signals.push(at(
        "churn-4",
        "acct-4",
        last.start.plus(9 * DAY),
        subscription(0),
    ));
    signals.push(at(
        "pay-5",
        "acct-5",
        last.start.plus(4 * DAY),
        subscription(10_000),
    ));
    signals.push(at(
        "buy-1",
        "acct-1",
        last.start.plus(6 * DAY),
        v1::signal::Body::Purchase(v1::Purchase { amount: eur(5_000) }),
    ));
    let cost = v1::Cost {
        kind: v1::CostKind::Acquisition as i32,
        amount: eur(30_000),
        period: wire(last),
    };
    signals.push(at(
        "cac",
        "*",
        last.start.plus(DAY),
        v1::signal::Body::Cost(cost),
    ));
    let n = signals.len();
    let req = v1::IngestSignalsRequest {
        signals,
        mode: v1::IngestMode::Backfill as i32,
        ..Default::default()
    };
    assert_eq!(app.ingest(WRITER, req).await.unwrap().accepted as usize, n);
    app.settled("metrics").await;
}

fn client(app: &TestApp) -> MetricsServiceClient<tonic::transport::Channel> {
    MetricsServiceClient::new(app.channel.clone())
}

async fn metrics(app: &TestApp, period: Option<v1::Period>) -> v1::GetPortfolioMetricsResponse {
    client(app)
        .get_portfolio_metrics(with_token(
            READER,
            v1::GetPortfolioMetricsRequest {
                period,
                filter: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// The reason a KPI value is absent with, if it is.
fn absent(v: &KpiResult) -> Option<(v1::AbsenceReason, String)> {
    match v {
        KpiResult::Absent(a) => Some((
            v1::AbsenceReason::try_from(a.reason).unwrap(),
            a.detail.clone(),
        )),
        _ => None,
    }
}

fn needs_a_month() -> Option<(v1::AbsenceReason, String)> {
    Some((v1::AbsenceReason::NotApplicable, NEEDS_A_MONTH.into()))
}

retain_testkit::storage_test!(async fn ltv_and_clv_answer_only_for_a_whole_calendar_month(db) {
    let app = spawn_two::<Ingestion, Metrics>(db).await;
    let now_t = Timestamp::from_seconds(now());
    let last = month_before(now_t);
    let before_last = month_before(last.start);
    portfolio(&app, last, before_last).await;

    // Last month: 3 paying at its start, 1 churned (1/3); ARPA 100.00 at
    // its end → LTV 300.00. CAC 300.00 for its one new customer → LTV:CAC
    // 1:1, below 3: warned. CLV: 50.00 × 1 purchase a month × a lifetime of
    // 3 months → 150.00.
    // Last month: 3 paying at its start, 1 churned (1/3); ARPA 100.00 at
    // its end → LTV 300.00. CAC 300.00 for its one new customer → LTV:CAC
    // 1:1, below 3: warned. CLV: 50.00 × 1 purchase a month × a lifetime
    // of 3 months → 150.00.
    let month = metrics(&app, wire(last)).await;
    assert_eq!(kpi_money(&month, v1::Kpi::Ltv), 30_000);
    assert_eq!(kpi_money(&month, v1::Kpi::Clv), 15_000);
    assert!((kpi_number(&month, v1::Kpi::LtvToCac) - 1.0).abs() < 1e-9);
    assert!(month.insights.iter().any(|i| i.key == "ltv_to_cac_below_3"), "{:?}", month.insights);

    // A 41-day range across a month boundary, a week, a quarter and the
    // month so far (no period): the reason, for each of the four.
    let shapes = [
        ("41 days", wire(Period::new(last.start.plus(10 * DAY), last.start.plus(51 * DAY)).unwrap())),
        ("a week", wire(Period::new(last.start, last.start.plus(7 * DAY)).unwrap())),
        ("a quarter", wire(Period::containing(last.start, Granularity::Quarter))),
        ("the month so far", None),
    ];
    for (shape, period) in shapes {
        let answer = metrics(&app, period).await;
        for kpi in [v1::Kpi::Ltv, v1::Kpi::Clv, v1::Kpi::LtvToCac, v1::Kpi::LtvToCrc] {
            assert_eq!(absent(&kpi_value(&answer, kpi)), needs_a_month(), "{kpi:?} over {shape}");
        }
        assert!(!answer.insights.iter().any(|i| i.key.starts_with("ltv")), "{shape}: {:?}", answer.insights);
        // Other KPIs still answer (logo churn over the range).
        assert!(absent(&kpi_value(&answer, v1::Kpi::LogoChurn)).is_none_or(|(r, _)| r != v1::AbsenceReason::NotApplicable));
    }

    // A series: monthly buckets answer, weekly buckets give the reason.
    let series = |granularity: v1::Granularity, range: Period| {
        let mut c = client(&app);
        async move {
            c.get_kpi_series(with_token(READER, v1::GetKpiSeriesRequest {
                kpi: v1::Kpi::Ltv as i32,
                granularity: granularity as i32,
                range: wire(range),
                filter: None,
            }))
            .await
            .unwrap()
            .into_inner()
            .points
        }
    };
    let monthly = series(v1::Granularity::Month, Period::new(before_last.start, last.end).unwrap()).await;
    let values: Vec<_> = monthly.iter().map(|p| p.value.clone().unwrap().result.unwrap()).collect();
    // The month before last: 4 paying, 1 churned, ARPA 100.00 → 400.00.
    assert!(matches!(&values[..], [KpiResult::Money(a), KpiResult::Money(b)] if a.amount_minor == 40_000 && b.amount_minor == 30_000), "{values:?}");
    let weekly = series(v1::Granularity::Week, Period::new(last.start, last.start.plus(21 * DAY)).unwrap()).await;
    assert!(weekly.len() >= 3);
    for p in &weekly {
        assert_eq!(absent(&p.value.clone().unwrap().result.unwrap()), needs_a_month());
    }
    let quarter = Period::containing(before_last.start, Granularity::Quarter);
    let two_quarters = Period::new(quarter.start, Period::containing(quarter.end, Granularity::Quarter).end).unwrap();
    let quarterly = series(v1::Granularity::Quarter, two_quarters).await;
    assert_eq!(quarterly.len(), 2);
    for p in &quarterly {
        assert_eq!(absent(&p.value.clone().unwrap().result.unwrap()), needs_a_month());
    }
    let quarter = Period::containing(before_last.start, Granularity::Quarter);
    let two_quarters = Period::new(quarter.start, Period::containing(quarter.end, Granularity::Quarter).end).unwrap();
    let quarterly = series(v1::Granularity::Quarter, two_quarters).await;
    assert_eq!(quarterly.len(), 2);
    for p in &quarterly {
        assert_eq!(absent(&p.value.clone().unwrap().result.unwrap()), needs_a_month());
    }

    // The expansion stage's headline LTV follows the period too.
    let scorecard = |period: Option<v1::Period>| {
        let mut c = client(&app);
        async move {
            c.get_scorecard(with_token(READER, v1::GetScorecardRequest {
                lens: Some(v1::get_scorecard_request::Lens::Stage(v1::JourneyStage::Expansion as i32)),
                period,
                filter: None,
            }))
            .await
            .unwrap()
            .into_inner()
        }
    };
    let ltv_of = |card: &v1::GetScorecardResponse| {
        card.headline.iter().find(|e| e.kpi == v1::Kpi::Ltv as i32).unwrap().value.clone().unwrap().result.unwrap()
    };
    assert!(matches!(ltv_of(&scorecard(wire(last)).await), KpiResult::Money(m) if m.amount_minor == 30_000));
    let ranged = scorecard(wire(Period::new(last.start.plus(10 * DAY), last.start.plus(51 * DAY)).unwrap())).await;
    assert_eq!(absent(&ltv_of(&ranged)), needs_a_month());
});
