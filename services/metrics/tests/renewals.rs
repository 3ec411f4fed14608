//! Renewal rate by contract (docs/KPIS.md, "Renewal rate"): a renewal is
//! one contract — the account and its `contract_end` — counted in the
//! period its contract ends in, renewed when its latest outcome is
//! RENEWED, however many signals were sent about it, in which months and
//! in which order. Checked on a finished month (answered from the monthly
//! rollups) and on a range that is not a month (answered from the
//! signals), before and after a late outcome for a month already closed.

#![allow(clippy::unwrap_used, clippy::float_cmp)] // Tests fail loudly.

use retain_domain::{Granularity, Period, Timestamp};
use retain_ingestion::Ingestion;
use retain_metrics::Metrics;
use retain_proto::v1;
use retain_proto::v1::metrics_service_client::MetricsServiceClient;
use retain_proto::v1::signal::Body;
use retain_testkit::*;

const DAY: i64 = 86_400;

/// The month before the one holding `t`.
fn month_before(t: Timestamp) -> Period {
    let this = Period::containing(t, Granularity::Month);
    Period::containing(this.start.plus_micros(-1), Granularity::Month)
}

fn renewal(
    id: &str,
    account: &str,
    at: Timestamp,
    outcome: v1::RenewalOutcome,
    contract_end: Timestamp,
) -> v1::Signal {
    v1::Signal {
        occurred_at: ts(at.seconds()),
        ..signal(
            id,
            account,
            Body::Renewal(v1::Renewal {
                outcome: outcome as i32,
                contract_end: ts(contract_end.seconds()),
            }),
        )
    }
}

async fn backfill(app: &TestApp, signals: Vec<v1::Signal>) {
    let n = signals.len();
    let r = app
        .ingest(
            WRITER,
            v1::IngestSignalsRequest {
                signals,
                mode: v1::IngestMode::Backfill as i32,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r.accepted as usize, n, "{r:?}");
    app.settled("metrics").await;
}

async fn renewal_rate(app: &TestApp, p: Period) -> f64 {
    let answer = MetricsServiceClient::new(app.channel.clone())
        .get_portfolio_metrics(with_token(
            READER,
            v1::GetPortfolioMetricsRequest {
                period: Some(v1::Period {
                    start: ts(p.start.seconds()),
                    end: ts(p.end.seconds()),
                }),
                filter: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    kpi_number(&answer, v1::Kpi::RenewalRate)
}

retain_testkit::storage_test!(async fn a_renewal_is_one_contract_whenever_its_signals_arrive(db) {
    use v1::RenewalOutcome::{Due, Renewed};
    let app = spawn_two::<Ingestion, Metrics>(db).await;
    let now = Timestamp::from_seconds(now());
    let last = month_before(now);
    let before_last = month_before(last.start);
    let this_month = Period::containing(now, Granularity::Month);
    let day = |p: Period, d: i64| p.start.plus((d - 1) * DAY);

    // Last month's contracts:
    // A: due sent the month before, renewed last month.
    // B: renewed sent (and received) first, due received later but sent
    //    earlier: renewed, since the renewal is the latest by occurrence.
    // C: only due.
    // E: due sent the month before; its outcome comes late (below).
    // F: due and renewed both last month, on different days.
    // D's contract ends this month: not one of last month's renewals,
    // though its "due" was sent last month.
    backfill(
        &app,
        vec![
            renewal("a-due", "acct-a", day(before_last, 25), Due, day(last, 20)),
            renewal("a-ok", "acct-a", day(last, 10), Renewed, day(last, 20)),
            renewal("b-ok", "acct-b", day(last, 14), Renewed, day(last, 15)),
            renewal("c-due", "acct-c", day(last, 1), Due, day(last, 5)),
            renewal("e-due", "acct-e", day(before_last, 26), Due, day(last, 25)),
            renewal("f-due", "acct-f", day(last, 1), Due, day(last, 12)),
            renewal("f-ok", "acct-f", day(last, 12), Renewed, day(last, 12)),
            renewal("d-due", "acct-d", day(last, 20), Due, day(this_month, 20)),
            // G's contract ended the month before last; only due so far.
            renewal("g-due", "acct-g", day(before_last, 1), Due, day(before_last, 25)),
        ],
    )
    .await;
    backfill(&app, vec![renewal("b-due", "acct-b", day(before_last, 28), Due, day(last, 15))]).await;

    // Five contracts ended last month (A, B, C, E, F); three renewed.
    // (Counted per signal day, it would be 6 due and 3 renewed.)
    let not_a_month = Period::new(last.start, last.end.plus(DAY)).unwrap();
    assert_eq!(renewal_rate(&app, last).await, 60.0, "the finished month, from the rollups");
    assert_eq!(renewal_rate(&app, not_a_month).await, 60.0, "a range, from the signals");
    assert_eq!(renewal_rate(&app, before_last).await, 0.0);

    // E's renewal is reported this month, after last month closed: last
    // month's rows are rewritten and both paths count it.
    backfill(&app, vec![renewal("e-ok", "acct-e", now.plus(-3_600), Renewed, day(last, 25))]).await;
    assert_eq!(renewal_rate(&app, last).await, 80.0, "the finished month, from the rollups");
    assert_eq!(renewal_rate(&app, not_a_month).await, 80.0, "a range, from the signals");
    // G's renewal reported today, for a month that ended weeks ago (past
    // any window a new signal reaches back over): rewritten too.
    backfill(&app, vec![renewal("g-ok", "acct-g", now.plus(-3_600), Renewed, day(before_last, 25))]).await;
    assert_eq!(renewal_rate(&app, before_last).await, 100.0, "the month before last, from the rollups");
});
