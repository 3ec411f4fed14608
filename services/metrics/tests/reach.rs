//! A KPI query from the signals reads what its periods reach — every
//! signal of the lifetime kinds (subscriptions, billing, renewals, trials,
//! milestones), and sessions, actions, tickets, survey answers, purchases
//! and account records only from the period's start or the 30-day
//! active-user window before its "as of" instant, with each account's
//! earliest signal time — and answers exactly
//! what reading every signal answers: for every period shape, as of the
//! same instant, over a generated portfolio whose history is years longer
//! than any window. On SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use retain_datagen::{Config, generate};
use retain_domain::{Granularity, Period, Timestamp};
use retain_ingestion::Ingestion;
use retain_metrics::{MetricsSettings, Page, portfolio_from_signals};
use retain_proto::v1;
use retain_testkit::*;

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;

retain_testkit::storage_test!(async fn a_query_reads_what_its_period_reaches_and_answers_as_from_every_signal(db) {
    let app = spawn_app::<Ingestion>(db).await;
    // "Now" in the afternoon of the 12th of a month: the month so far, the
    // last day and the last week all end inside a day.
    let month = Period::containing(Timestamp::from_seconds(now()), Granularity::Month);
    let at = Period::containing(month.start.plus_micros(-1), Granularity::Month)
        .start
        .plus(11 * DAY + 15 * HOUR + 17);
    let data = generate(&Config { accounts: 30, history_days: 400, now: at.seconds(), ..Config::default() });
    for batch in data.in_delivery_order(3).batches(5_000) {
        let mut request = batch.request();
        request.mode = v1::IngestMode::Backfill as i32;
        let r = app.ingest(WRITER, request).await.unwrap();
        assert_eq!(r.rejected, 0, "{:?}", r.results.iter().find(|x| !x.violations.is_empty()));
    }
    // An account seen only through sessions, all long before any window:
    // it counts (onboarding) though none of its signals is read.
    let old_sessions: Vec<v1::Signal> = (0..3)
        .map(|i| v1::Signal {
            occurred_at: ts(at.seconds() - (300 + i) * DAY),
            ..signal(
                &format!("quiet-{i}"),
                "quiet-account",
                v1::signal::Body::Session(v1::Session { user_id: "u1".into(), duration_seconds: 60 }),
            )
        })
        .collect();
    let mut request = batch(old_sessions);
    request.mode = v1::IngestMode::Backfill as i32;
    let r = app.ingest(WRITER, request).await.unwrap();
    assert_eq!(r.accepted, 3, "{r:?}");

    let d = |days: i64| at.plus(-days * DAY);
    let today = Period::containing(at, Granularity::Day).start;
    let this_month = Period::containing(at, Granularity::Month);
    let last_month = Period::containing(this_month.start.plus_micros(-1), Granularity::Month);
    let quarter = Period::containing(at, Granularity::Quarter);
    let periods = [
        ("the month so far", this_month),
        ("last month", last_month),
        ("the last 7 days, to now", Period::new(d(7), at).unwrap()),
        ("the last 7 whole days", Period::new(today.plus(-7 * DAY), today).unwrap()),
        ("90 days across months", Period::new(today.plus(-90 * DAY), today).unwrap()),
        ("this quarter", quarter),
        ("a week 200 days ago", Period::new(d(207), d(200)).unwrap()),
        ("hours inside two days", Period::new(d(40).plus(-5 * HOUR), d(39).plus(7 * HOUR)).unwrap()),
        ("a year", Period::new(d(365), at).unwrap()),
        ("before any signal", Period::new(d(900), d(800)).unwrap()),
        ("next month", Period::containing(this_month.end, Granularity::Month)),
    ];
    let tenants = retain_metrics::tenants(&settings().tenants.parse().unwrap()).unwrap();
    let acme = tenants.of("acme");
    let windowed = Page::of(&MetricsSettings::default());
    assert!(windowed.windowed && !Page::WHOLE.windowed);
    // Small pages too: an account's signals are never split across pages.
    let small = Page { accounts: 4, signals: 50, windowed: true };
    for (name, p) in periods {
        let whole = portfolio_from_signals(&app.db.conn, acme, "acme", (p, at), Page::WHOLE).await.unwrap();
        for page in [windowed, small] {
            let read = portfolio_from_signals(&app.db.conn, acme, "acme", (p, at), page).await.unwrap();
            assert_eq!(read, whole, "{name} ({p:?}), pages of {page:?}");
        }
    }
    // The answers hold something to compare: revenue, active users and
    // onboarding, over the month so far.
    let month_so_far = portfolio_from_signals(&app.db.conn, acme, "acme", (this_month, at), windowed).await.unwrap();
    let value = |kpi: v1::Kpi| {
        month_so_far
            .kpis
            .iter()
            .find(|e| e.kpi == kpi as i32)
            .and_then(|e| e.value.clone())
            .and_then(|v| v.result)
    };
    assert!(matches!(value(v1::Kpi::Mau), Some(v1::kpi_value::Result::Count(n)) if n > 0), "{:?}", value(v1::Kpi::Mau));
    assert!(matches!(value(v1::Kpi::Mrr), Some(v1::kpi_value::Result::Money(_))), "{:?}", value(v1::Kpi::Mrr));
    assert!(matches!(value(v1::Kpi::OnboardingEngagement), Some(v1::kpi_value::Result::Value(_))));
});
