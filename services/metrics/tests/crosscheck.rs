//! The metrics service against an independent computation: a generated
//! tenant history (retain-datagen) is sent through ingestion out of
//! order, late signals last, and MRR, paying accounts, logo churn, NRR,
//! GRR, NPS, CSAT, FCR, DAU/WAU/MAU, sessions per day, time in app and
//! trial-to-paid are computed here with plain loops over the signals sent
//! — not the service's code path — for a finished month (answered from
//! the monthly rollups), a 30-day span and the last 10 days (from the
//! signals at query time), under filters, with and without opening
//! balances (an import that starts mid-history), on SQLite and PostgreSQL.
//! The other KPIs are checked against hand-computed figures
//! (`portfolio.rs`, `worked_examples.rs`).

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::collections::{BTreeMap, BTreeSet};

use retain_datagen::{Config, generate};
use retain_ingestion::Ingestion;
use retain_metrics::Metrics;
use retain_proto::v1;
use retain_proto::v1::kpi_value::Result as KpiResult;
use retain_proto::v1::metrics_service_client::MetricsServiceClient;
use retain_proto::v1::signal::Body;
use retain_testkit::*;

const DAY: i64 = 86_400;

/// What the loops below compute for one period and one set of accounts.
#[derive(Debug, PartialEq)]
struct Expected {
    mrr: i64,
    paying: i64,
    logo_churn: Option<f64>,
    nps: Option<f64>,
    nrr: Option<f64>,
    grr: Option<f64>,
    csat: Option<f64>,
    fcr: Option<f64>,
    dau: i64,
    wau: i64,
    mau: i64,
    sessions_per_day: Option<f64>,
    time_in_app: Option<f64>,
    trial_to_paid: Option<f64>,
}

/// `num / den × scale`, absent when `den` is 0.
fn ratio(num: f64, den: f64, scale: f64) -> Option<f64> {
    (den != 0.0).then(|| num / den * scale)
}

fn micros(t: &prost_types::Timestamp) -> i64 {
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000
}

fn independent(
    signals: &[v1::Signal],
    accounts: &BTreeSet<String>,
    start: i64,
    end: i64,
) -> Expected {
    let (start, end) = (start * 1_000_000, end * 1_000_000);
    // Every account's subscription changes, in time order, and its
    // earliest opening balance `(at, mrr)`.
    let mut changes: BTreeMap<&str, Vec<(i64, &str, i64)>> = BTreeMap::new();
    let mut openings: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    let (mut promoters, mut detractors, mut answers) = (0i64, 0i64, 0i64);
    let (mut csat_positive, mut csat_answers) = (0i64, 0i64);
    let (mut first_contact, mut resolved) = (0i64, 0i64);
    // Sessions: (account, user, at µs, seconds).
    let mut sessions: Vec<(&str, &str, i64, i64)> = Vec::new();
    // Per account: earliest trial start and earliest conversion.
    let mut trials: BTreeMap<&str, (Option<i64>, Option<i64>)> = BTreeMap::new();
    for s in signals.iter().filter(|s| accounts.contains(&s.account_id)) {
        let at = micros(s.occurred_at.as_ref().unwrap());
        let in_period = at >= start && at < end;
        match s.body.as_ref().unwrap() {
            Body::Session(x) => sessions.push((&s.account_id, &x.user_id, at, x.duration_seconds)),
            Body::Survey(x) if x.kind == v1::SurveyKind::Csat as i32 && in_period => {
                let min = if x.scale == v1::SurveyScale::OneToTen as i32 {
                    6
                } else {
                    4
                };
                csat_answers += 1;
                csat_positive += i64::from(x.score >= min);
            }
            Body::Ticket(x) if x.status == v1::TicketStatus::Resolved as i32 && in_period => {
                resolved += 1;
                first_contact += i64::from(x.contacts_until_resolution == 1);
            }
            Body::Trial(x) => {
                let e = trials.entry(&s.account_id).or_default();
                let slot = if x.event == v1::TrialEvent::Started as i32 {
                    &mut e.0
                } else if x.event == v1::TrialEvent::Converted as i32 {
                    &mut e.1
                } else {
                    continue;
                };
                *slot = Some(slot.map_or(at, |t: i64| t.min(at)));
            }
            Body::Subscription(x) => {
                let amount = x.amount.as_ref().unwrap().amount_minor;
                let monthly = if x.interval == v1::BillingInterval::Annual as i32 {
                    amount / 12
                } else {
                    amount
                };
                if x.opening_balance {
                    let o = openings.entry(&s.account_id).or_insert((at, monthly));
                    *o = (*o).min((at, monthly));
                } else {
                    changes
                        .entry(&s.account_id)
                        .or_default()
                        .push((at, &s.event_id, monthly));
                }
            }
            Body::Survey(x) if x.kind == v1::SurveyKind::Nps as i32 && at >= start && at < end => {
                answers += 1;
                promoters += i64::from(x.score >= 9);
                detractors += i64::from(x.score <= 6);
            }
            _ => {}
        }
    }
    let (mut mrr, mut paying, mut cohort, mut churned) = (0, 0, 0, 0);
    let (mut start_mrr, mut cohort_end, mut cohort_kept) = (0i64, 0i64, 0i64);
    for account in openings.keys() {
        changes.entry(account).or_default();
    }
    for (account, list) in &mut changes {
        list.sort();
        // Before its first change an account pays its opening balance,
        // when that is not later than the first change; else nothing.
        let opening = match (openings.get(account), list.first()) {
            (Some(&(o_at, mrr)), first) if first.is_none_or(|c| o_at <= c.0) => mrr,
            _ => 0,
        };
        let at = |t: i64| list.iter().rfind(|c| c.0 < t).map_or(opening, |c| c.2);
        let (s, e) = (at(start), at(end));
        mrr += e;
        paying += i64::from(e > 0);
        cohort += i64::from(s > 0);
        start_mrr += s;
        if s > 0 {
            cohort_end += e;
            cohort_kept += e.min(s);
        }
        // A churn movement in the period: a change from paying to 0.
        let mut before = s;
        let mut churn = false;
        for c in list.iter().filter(|c| c.0 >= start && c.0 < end) {
            churn |= before > 0 && c.2 == 0;
            before = c.2;
        }
        churned += i64::from(churn);
    }
    // Active users as of the period's end: distinct (account, user) with a
    // session in the last 1, 7, 30 days before it.
    let active = |days: i64| {
        let from = end - days * DAY * 1_000_000;
        sessions
            .iter()
            .filter(|x| x.2 >= from && x.2 < end)
            .map(|x| (x.0, x.1))
            .collect::<BTreeSet<_>>()
            .len() as i64
    };
    let in_period: Vec<_> = sessions
        .iter()
        .filter(|x| x.2 >= start && x.2 < end)
        .collect();
    let seconds: i64 = in_period.iter().map(|x| x.3).sum();
    let user_days = in_period
        .iter()
        .map(|x| (x.0, x.1, x.2.div_euclid(DAY * 1_000_000)))
        .collect::<BTreeSet<_>>()
        .len();
    let days = (end - start) as f64 / (DAY * 1_000_000) as f64;
    let (mut trials_started, mut converted) = (0i64, 0i64);
    for (started, conversion) in trials.values() {
        if let Some(t) = started.filter(|t| *t >= start && *t < end) {
            trials_started += 1;
            converted +=
                i64::from(conversion.is_some_and(|c| c >= t && c <= t + 14 * DAY * 1_000_000));
        }
    }
    Expected {
        mrr,
        paying,
        logo_churn: ratio(churned as f64, cohort as f64, 100.0),
        nps: ratio((promoters - detractors) as f64, answers as f64, 100.0),
        nrr: ratio(cohort_end as f64, start_mrr as f64, 100.0),
        grr: ratio(cohort_kept as f64, start_mrr as f64, 100.0),
        csat: ratio(csat_positive as f64, csat_answers as f64, 100.0),
        fcr: ratio(first_contact as f64, resolved as f64, 100.0),
        dau: active(1),
        wau: active(7),
        mau: active(30),
        sessions_per_day: ratio(in_period.len() as f64, days, 1.0),
        time_in_app: ratio(seconds as f64, user_days as f64, 1.0),
        trial_to_paid: ratio(converted as f64, trials_started as f64, 100.0),
    }
}

fn served(p: &v1::GetPortfolioMetricsResponse) -> Expected {
    let get = |k: v1::Kpi| {
        p.kpis
            .iter()
            .find(|e| e.kpi == k as i32)
            .unwrap()
            .value
            .clone()
            .unwrap()
            .result
            .unwrap()
    };
    let number = |k| match get(k) {
        KpiResult::Value(v) => Some(v),
        _ => None,
    };
    let count = |k| match get(k) {
        KpiResult::Count(n) => n,
        other => panic!("{k:?}: {other:?}"),
    };
    Expected {
        mrr: match get(v1::Kpi::Mrr) {
            KpiResult::Money(m) => m.amount_minor,
            other => panic!("MRR: {other:?}"),
        },
        paying: match get(v1::Kpi::PayingAccounts) {
            KpiResult::Count(n) => n,
            other => panic!("paying: {other:?}"),
        },
        logo_churn: number(v1::Kpi::LogoChurn),
        nps: number(v1::Kpi::Nps),
        nrr: number(v1::Kpi::Nrr),
        grr: number(v1::Kpi::Grr),
        csat: number(v1::Kpi::Csat),
        fcr: number(v1::Kpi::Fcr),
        dau: count(v1::Kpi::Dau),
        wau: count(v1::Kpi::Wau),
        mau: count(v1::Kpi::Mau),
        sessions_per_day: number(v1::Kpi::SessionsPerDay),
        time_in_app: number(v1::Kpi::TimeInApp),
        trial_to_paid: number(v1::Kpi::TrialToPaid),
    }
}

fn close(a: &Expected, b: &Expected) -> bool {
    let f = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => (x - y).abs() < 1e-9 * x.abs().max(1.0),
        (None, None) => true,
        _ => false,
    };
    (a.mrr, a.paying, a.dau, a.wau, a.mau) == (b.mrr, b.paying, b.dau, b.wau, b.mau)
        && [
            (a.logo_churn, b.logo_churn),
            (a.nps, b.nps),
            (a.nrr, b.nrr),
            (a.grr, b.grr),
            (a.csat, b.csat),
            (a.fcr, b.fcr),
            (a.sessions_per_day, b.sessions_per_day),
            (a.time_in_app, b.time_in_app),
            (a.trial_to_paid, b.trial_to_paid),
        ]
        .into_iter()
        .all(|(x, y)| f(x, y))
}

retain_testkit::storage_test!(async fn portfolio_kpis_match_an_independent_computation(db) {
    crosscheck(db, false).await;
});

// The same history imported mid-way: every third account's earliest
// subscription change is sent as an opening balance instead.
retain_testkit::storage_test!(async fn portfolio_kpis_with_opening_balances_match(db) {
    crosscheck(db, true).await;
});

async fn crosscheck(db: TestDatabase, openings: bool) {
    let cfg = Config {
        accounts: 40,
        history_days: 75,
        now: now(),
        ..Config::default()
    };
    let mut data = generate(&cfg);
    if openings {
        let mut earliest: BTreeMap<String, (i64, usize)> = BTreeMap::new();
        for (i, s) in data.signals.iter().enumerate() {
            if let Some(Body::Subscription(x)) = &s.body
                && !x.add_on
            {
                let e = earliest
                    .entry(s.account_id.clone())
                    .or_insert((i64::MAX, i));
                *e = (*e).min((micros(s.occurred_at.as_ref().unwrap()), i));
            }
        }
        for (k, (_, i)) in earliest.values().enumerate() {
            if k % 3 == 0
                && let Some(Body::Subscription(x)) = &mut data.signals[*i].body
            {
                x.opening_balance = true;
            }
        }
    }
    let app = spawn_two::<Ingestion, Metrics>(db).await;
    let delivery = data.in_delivery_order(11);
    for batch in delivery.batches(5_000) {
        let r = app.ingest(WRITER, batch.request()).await.unwrap();
        assert_eq!(
            r.rejected,
            0,
            "{:?}",
            r.results.iter().find(|x| !x.violations.is_empty())
        );
    }
    // A finished month is answered from the consumer's monthly rollups.
    app.settled("metrics").await;
    let all: BTreeSet<String> = data.accounts.iter().map(|a| a.id.clone()).collect();
    let by_segment = data.accounts_by_segment();
    let agencies: BTreeSet<String> = by_segment["Agencies"].iter().cloned().collect();
    let (plan, on_plan) = data.accounts_by_plan().into_iter().next().unwrap();
    let on_plan: BTreeSet<String> = on_plan.into_iter().collect();
    let month = retain_domain::Period::containing(
        retain_domain::Timestamp::from_seconds(now() - 32 * DAY),
        retain_domain::Granularity::Month,
    );
    let periods = [
        (month.start.seconds(), month.end.seconds()),
        (now() - 60 * DAY, now() - 30 * DAY),
        (now() - 10 * DAY, now()),
    ];
    let filters = [
        (None, &all),
        (
            Some(v1::AccountFilter {
                segments: vec!["Agencies".into()],
                plans: vec![],
            }),
            &agencies,
        ),
        (
            Some(v1::AccountFilter {
                segments: vec![],
                plans: vec![plan.clone()],
            }),
            &on_plan,
        ),
    ];
    // The same signals with every opening read as a plain change: the
    // openings must make a difference somewhere, or this test shows nothing.
    let mut plain = data.signals.clone();
    for s in &mut plain {
        if let Some(Body::Subscription(x)) = &mut s.body {
            x.opening_balance = false;
        }
    }
    let differ = periods
        .iter()
        .filter(|(start, end)| {
            independent(&plain, &all, *start, *end)
                != independent(&data.signals, &all, *start, *end)
        })
        .count();
    assert_eq!(
        differ > 0,
        openings,
        "periods where opening balances change the KPIs: {differ}"
    );
    let mut client = MetricsServiceClient::new(app.channel.clone());
    for (start, end) in periods {
        for (filter, accounts) in &filters {
            let want = independent(&data.signals, accounts, start, end);
            if filter.is_none() {
                // The generated history is not trivial for any period.
                assert!(
                    want.mrr > 0 && want.paying > 0 && want.nps.is_some(),
                    "{want:?}"
                );
                assert!(
                    want.mau > 0 && want.wau > 0 && want.csat.is_some() && want.fcr.is_some(),
                    "{want:?}"
                );
                assert!(want.nrr.is_some() && want.time_in_app.is_some(), "{want:?}");
            }
            let got = served(
                &client
                    .get_portfolio_metrics(with_token(
                        READER,
                        v1::GetPortfolioMetricsRequest {
                            period: Some(v1::Period {
                                start: ts(start),
                                end: ts(end),
                            }),
                            filter: filter.clone(),
                        },
                    ))
                    .await
                    .unwrap()
                    .into_inner(),
            );
            assert!(
                close(&got, &want),
                "period {start}..{end}, filter {filter:?}: served {got:?}, computed {want:?}"
            );
        }
    }
}

// A backfill for an old month changes that month's KPIs, never today's.
retain_testkit::storage_test!(async fn a_backfill_changes_its_month_and_not_the_current_one(db) {
    let app = spawn_two::<Ingestion, Metrics>(db).await;
    let change = |id: &str, days_ago: i64, minor: i64| v1::Signal {
        occurred_at: ts(now() - days_ago * DAY),
        ..signal(id, "acme-1", subscription(minor))
    };
    assert_eq!(app.send(vec![change("live", 5, 30_000)]).await.accepted, 1);
    let old = v1::Period { start: ts(now() - 90 * DAY), end: ts(now() - 60 * DAY) };
    let current = v1::Period { start: ts(now() - 30 * DAY), end: ts(now()) };
    let mut client = MetricsServiceClient::new(app.channel.clone());
    let mut mrr_of = async |period: v1::Period| {
        let r = client
            .get_mrr_bridge(with_token(READER, v1::GetMrrBridgeRequest { period: Some(period), filter: None }))
            .await
            .unwrap()
            .into_inner();
        (r.new_mrr.unwrap().amount_minor, r.end_mrr.unwrap().amount_minor)
    };
    let (current_before, old_before) = (mrr_of(current).await, mrr_of(old).await);
    assert_eq!(old_before, (0, 0));
    // History: the account paid 10,000 from 80 days ago.
    let backfill = v1::IngestSignalsRequest {
        signals: vec![change("history", 80, 10_000)],
        mode: v1::IngestMode::Backfill as i32,
        ..Default::default()
    };
    assert_eq!(app.ingest(WRITER, backfill).await.unwrap().accepted, 1);
    assert_eq!(mrr_of(old).await, (10_000, 10_000), "the old period now shows the account as new");
    let current_after = mrr_of(current).await;
    assert_eq!(current_after.1, current_before.1, "today's MRR is unchanged");
    assert_eq!(current_after.0, 0, "and the live change is now an expansion, not new");
});
