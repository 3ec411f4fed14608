//! `GetPortfolioMetrics` over real gRPC, on SQLite and PostgreSQL, against
//! KPIs worked out by hand (docs/KPIS.md's definitions) from the signals
//! sent.

#![allow(clippy::unwrap_used, clippy::float_cmp)] // Tests fail loudly.

use retain_ingestion::Ingestion;
use retain_metrics::Metrics;
use retain_proto::v1;
use retain_proto::v1::kpi_value::Result as KpiResult;
use retain_proto::v1::metrics_service_client::MetricsServiceClient;
use retain_proto::v1::signal::Body;
use retain_testkit::*;

const DAY: i64 = 86_400;

async fn spawn(db: TestDatabase) -> TestApp {
    spawn_two::<Ingestion, Metrics>(db).await
}

fn at_s(id: &str, account: &str, seconds_ago: i64, body: Body) -> v1::Signal {
    v1::Signal {
        occurred_at: ts(now() - seconds_ago),
        ..signal(id, account, body)
    }
}

fn survey(kind: v1::SurveyKind, scale: v1::SurveyScale, score: i32) -> Body {
    Body::Survey(v1::SurveyAnswer {
        kind: kind as i32,
        scale: scale as i32,
        score,
        ..Default::default()
    })
}

fn resolved(id: &str, contacts: i32) -> Body {
    Body::Ticket(v1::SupportTicket {
        ticket_id: id.into(),
        status: v1::TicketStatus::Resolved as i32,
        topics: vec![],
        contacts_until_resolution: contacts,
    })
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

retain_testkit::storage_test!(async fn portfolio_kpis_match_the_signals_sent(db) {
    use v1::ChurnReason::{Price, Unspecified};
    use v1::SurveyKind::{Ces, Csat, Nps};
    use v1::SurveyScale::{OneToFive, OneToSeven, ZeroToTen};
    let app = spawn(db).await;
    // The period: from 20 days ago to 1 day ago.
    let (start, end) = (now() - 20 * DAY, now() - DAY);
    let period = v1::Period { start: ts(start), end: ts(end) };
    let signals = vec![
        // Revenue, as in the bridge test: acme-1 new, acme-2 expands,
        // acme-3 churns (price), acme-4 reactivates.
        days_ago("m-1", "acme-1", 10, mrr_change(49_900, Unspecified)),
        days_ago("m-2a", "acme-2", 25, mrr_change(10_000, Unspecified)),
        days_ago("m-2b", "acme-2", 5, mrr_change(20_000, Unspecified)),
        days_ago("m-3a", "acme-3", 25, mrr_change(5_000, Unspecified)),
        days_ago("m-3b", "acme-3", 15, mrr_change(0, Price)),
        days_ago("m-4a", "acme-4", 28, mrr_change(3_000, Unspecified)),
        days_ago("m-4b", "acme-4", 26, mrr_change(0, Price)),
        days_ago("m-4c", "acme-4", 10, mrr_change(7_000, Unspecified)),
        // Experience in the period (and one NPS answer outside it).
        days_ago("n-1", "acme-1", 12, survey(Nps, ZeroToTen, 9)),
        days_ago("n-2", "acme-2", 11, survey(Nps, ZeroToTen, 10)),
        days_ago("n-3", "acme-2", 9, survey(Nps, ZeroToTen, 5)),
        days_ago("n-out", "acme-2", 25, survey(Nps, ZeroToTen, 0)),
        days_ago("c-1", "acme-1", 8, survey(Csat, OneToFive, 4)),
        days_ago("c-2", "acme-2", 8, survey(Csat, OneToFive, 5)),
        days_ago("c-3", "acme-4", 8, survey(Csat, OneToFive, 2)),
        days_ago("e-1", "acme-1", 7, survey(Ces, OneToSeven, 2)),
        days_ago("e-2", "acme-2", 7, survey(Ces, OneToSeven, 3)),
        days_ago("e-3", "acme-4", 7, survey(Ces, OneToSeven, 6)),
        days_ago("t-1", "acme-1", 6, resolved("T-1", 1)),
        days_ago("t-2", "acme-2", 6, resolved("T-2", 2)),
        days_ago("r-1", "acme-1", 4, Body::Renewal(v1::Renewal { outcome: v1::RenewalOutcome::Renewed as i32, contract_end: ts(now() - 4 * DAY) })),
        days_ago("r-2", "acme-2", 4, Body::Renewal(v1::Renewal { outcome: v1::RenewalOutcome::NotRenewed as i32, contract_end: ts(now() - 4 * DAY) })),
        // Sessions, counted as of the period's end.
        at_s("s-1", "acme-1", DAY + 2 * 3_600, session("u1", 600)),
        at_s("s-2", "acme-1", 4 * DAY, session("u2", 300)),
        at_s("s-3", "acme-2", 11 * DAY, session("u3", 300)),
        // Trials started in the period: one converted within 14 days.
        days_ago("tr-1", "acme-5", 15, Body::Trial(v1::Trial { event: v1::TrialEvent::Started as i32 })),
        days_ago("tr-2", "acme-5", 10, Body::Trial(v1::Trial { event: v1::TrialEvent::Converted as i32 })),
        days_ago("tr-3", "acme-6", 12, Body::Trial(v1::Trial { event: v1::TrialEvent::Started as i32 })),
    ];
    // Costs covering exactly the period, portfolio-wide.
    let cost = |id: &str, kind: v1::CostKind, minor: i64| v1::Signal {
        occurred_at: ts(end - 3_600),
        ..signal(id, "*", Body::Cost(v1::Cost { kind: kind as i32, amount: eur(minor), period: Some(period) }))
    };
    let mut all = signals;
    all.push(cost("k-1", v1::CostKind::Acquisition, 30_000));
    all.push(cost("k-2", v1::CostKind::CustomerSuccess, 10_000));
    let r = app.send(all.clone()).await;
    assert_eq!(r.accepted as usize, all.len(), "{r:?}");

    let p = MetricsServiceClient::new(app.channel.clone())
        .get_portfolio_metrics(with_token(READER, v1::GetPortfolioMetricsRequest { period: Some(period), filter: None }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.kpis.len(), 30, "every KPI of the Kpi enum");

    // Revenue: start cohort acme-2 (10,000) and acme-3 (5,000).
    assert_eq!(kpi_money(&p, v1::Kpi::Mrr), 76_900);
    assert_eq!(kpi_count(&p, v1::Kpi::PayingAccounts), 3);
    assert_eq!(kpi_money(&p, v1::Kpi::Arpa), 25_633, "76,900 / 3, rounded");
    assert!(close(kpi_number(&p, v1::Kpi::LogoChurn), 50.0));
    assert!(close(kpi_number(&p, v1::Kpi::Nrr), 20_000.0 / 15_000.0 * 100.0));
    assert!(close(kpi_number(&p, v1::Kpi::Grr), 10_000.0 / 15_000.0 * 100.0));
    assert!(close(kpi_number(&p, v1::Kpi::GrossMrrChurn), 5_000.0 / 15_000.0 * 100.0));
    assert!(close(kpi_number(&p, v1::Kpi::NetMrrChurn), (5_000.0 - 10_000.0 - 7_000.0) / 15_000.0 * 100.0));
    assert!(close(kpi_number(&p, v1::Kpi::ExpansionMrr), 10_000.0 / 15_000.0 * 100.0));
    assert_eq!(p.churn_reasons.iter().map(|c| (c.reason.as_str(), c.accounts)).collect::<Vec<_>>(), [("price", 1)]);
    // Costs: CAC over the one new account, CRC over the start cohort of 2.
    assert_eq!(kpi_money(&p, v1::Kpi::Cac), 30_000);
    assert_eq!(kpi_money(&p, v1::Kpi::Crc), 5_000);
    // LTV needs a monthly churn rate: a 19-day period has none, so LTV,
    // CLV and the ratios say why (periods.rs has them for a month), and
    // raise no warning.
    for kpi in [v1::Kpi::Ltv, v1::Kpi::Clv, v1::Kpi::LtvToCac, v1::Kpi::LtvToCrc] {
        match kpi_value(&p, kpi) {
            KpiResult::Absent(a) => assert_eq!((a.reason, a.detail.as_str()), (v1::AbsenceReason::NotApplicable as i32, "needs a one-calendar-month period"), "{kpi:?}"),
            other => panic!("{kpi:?}: {other:?}"),
        }
    }
    assert!(!p.insights.iter().any(|i| i.key.starts_with("ltv_to_c")), "{:?}", p.insights);
    // Experience.
    assert!(close(kpi_number(&p, v1::Kpi::Nps), (2.0 - 1.0) / 3.0 * 100.0));
    assert!(close(kpi_number(&p, v1::Kpi::Csat), 2.0 / 3.0 * 100.0));
    assert!(close(kpi_number(&p, v1::Kpi::Ces), 11.0 / 3.0));
    assert!(close(kpi_number(&p, v1::Kpi::LowEffortShare), 2.0 / 3.0 * 100.0));
    assert!(close(kpi_number(&p, v1::Kpi::Fcr), 50.0));
    assert!(close(kpi_number(&p, v1::Kpi::RenewalRate), 50.0));
    // Adoption, as of the period's end.
    assert_eq!((kpi_count(&p, v1::Kpi::Dau), kpi_count(&p, v1::Kpi::Wau), kpi_count(&p, v1::Kpi::Mau)), (1, 2, 3));
    assert!(close(kpi_number(&p, v1::Kpi::TrialToPaid), 50.0));
    // Under a segment filter, portfolio-level costs do not apply: CRC, CAC
    // and the ratios on them are absent and raise no warning.
    let filtered = MetricsServiceClient::new(app.channel.clone())
        .get_portfolio_metrics(with_token(
            READER,
            v1::GetPortfolioMetricsRequest {
                period: Some(period),
                filter: Some(v1::AccountFilter { segments: vec!["Agencies".into()], plans: vec![] }),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    for kpi in [v1::Kpi::Crc, v1::Kpi::Cac] {
        match kpi_value(&filtered, kpi) {
            KpiResult::Absent(a) => assert!(a.reason == v1::AbsenceReason::NotApplicable as i32 && a.detail.contains("segment or plan filter"), "{kpi:?}: {a:?}"),
            other => panic!("{kpi:?}: {other:?}"),
        }
    }
    assert!(!filtered.insights.iter().any(|i| i.key.starts_with("ltv_to_c")), "{:?}", filtered.insights);
});

// With nobody paying at the period's start the lifetime (1 / logo churn)
// is undefined: CLV is absent with that reason, never a money 0.
retain_testkit::storage_test!(async fn clv_is_absent_without_a_start_cohort(db) {
    let app = spawn(db).await;
    // Last month (CLV answers only for a whole calendar month).
    let this = retain_domain::Period::containing(retain_domain::Timestamp::from_seconds(now()), retain_domain::Granularity::Month);
    let last = retain_domain::Period::containing(this.start.plus_micros(-1), retain_domain::Granularity::Month);
    let on = |id: &str, day: i64, body: Body| v1::Signal { occurred_at: ts(last.start.seconds() + day * DAY), ..signal(id, "acme-1", body) };
    let signals = vec![
        on("m-1", 5, mrr_change(10_000, v1::ChurnReason::Unspecified)),
        on("m-2", 20, mrr_change(0, v1::ChurnReason::Price)),
        on("p-1", 10, Body::Purchase(v1::Purchase { amount: eur(5_000) })),
    ];
    let req = v1::IngestSignalsRequest { signals, mode: v1::IngestMode::Backfill as i32, ..Default::default() };
    assert_eq!(app.ingest(WRITER, req).await.unwrap().accepted, 3);
    app.settled("metrics").await;
    let p = MetricsServiceClient::new(app.channel.clone())
        .get_portfolio_metrics(with_token(
            READER,
            v1::GetPortfolioMetricsRequest { period: Some(v1::Period { start: ts(last.start.seconds()), end: ts(last.end.seconds()) }), filter: None },
        ))
        .await
        .unwrap()
        .into_inner();
    match kpi_value(&p, v1::Kpi::Clv) {
        KpiResult::Absent(a) => assert_eq!(a.reason, v1::AbsenceReason::ZeroDenominator as i32),
        other => panic!("CLV: {other:?}"),
    }
});

// With `payment_failed_churn_days = 30`, an account whose payment failed
// 45 days ago and never recovered churned 15 days ago: MRR falls to 0 in
// the period holding that day, from the signals and from the rollups alike.
// Without the setting nothing changes.
retain_testkit::storage_test!(async fn a_long_failed_payment_counts_as_churn_when_configured(db) {
    let mut with_rule = settings();
    with_rule
        .tenants
        .default
        .keys
        .insert("payment_failed_churn_days".into(), 30_i64.into());
    let app = spawn_composed(db, with_rule, retain_runtime::Clock::system(), |ctx| {
        use retain_runtime::Service;
        let ingestion = Ingestion::build(ctx, Default::default())?;
        let metrics = Metrics::build(ctx, Default::default())?;
        Ok(ingestion.merge(metrics))
    })
    .await;
    let failed = Body::Billing(v1::BillingStatusChange {
        status: v1::BillingStatus::PaymentFailed as i32,
    });
    let signals = vec![
        at_s("sub-a", "acme-a", 100 * DAY, subscription(10_000)),
        at_s("sub-b", "acme-b", 100 * DAY, subscription(20_000)),
        at_s("failed-a", "acme-a", 45 * DAY, failed),
    ];
    assert_eq!(backfill(&app, signals).await, 3);
    app.settled("metrics").await;
    let churn_day = now() - 15 * DAY;
    let mut periods = vec![(churn_day - 2 * DAY, churn_day + 2 * DAY)];
    let month = retain_domain::Period::containing(
        retain_domain::Timestamp::from_seconds(churn_day),
        retain_domain::Granularity::Month,
    );
    if month.end.seconds() <= now() {
        periods.push((month.start.seconds(), month.end.seconds()));
    }
    for (start, end) in periods {
        let r = portfolio_of(&app, start, end).await;
        assert_eq!(kpi_money(&r, v1::Kpi::Mrr), 20_000, "{start}..{end}");
        assert!(close(kpi_number(&r, v1::Kpi::LogoChurn), 50.0), "{start}..{end}");
        assert_eq!(r.churn_reasons.len(), 1);
        assert_eq!(r.churn_reasons[0].reason, "other");
    }
    // Before the 30 days were up, the account still paid.
    let before = portfolio_of(&app, churn_day - 6 * DAY, churn_day - 2 * DAY).await;
    assert_eq!(kpi_money(&before, v1::Kpi::Mrr), 30_000);
});

retain_testkit::storage_test!(async fn a_failed_payment_is_not_churn_by_default(db) {
    let app = spawn(db).await;
    let failed = Body::Billing(v1::BillingStatusChange {
        status: v1::BillingStatus::PaymentFailed as i32,
    });
    let signals = vec![
        at_s("sub-a", "acme-a", 100 * DAY, subscription(10_000)),
        at_s("failed-a", "acme-a", 45 * DAY, failed),
    ];
    assert_eq!(backfill(&app, signals).await, 2);
    app.settled("metrics").await;
    let r = portfolio_of(&app, now() - 20 * DAY, now() - 10 * DAY).await;
    assert_eq!(kpi_money(&r, v1::Kpi::Mrr), 10_000);
});

async fn portfolio_of(app: &TestApp, start: i64, end: i64) -> v1::GetPortfolioMetricsResponse {
    let period = v1::Period {
        start: ts(start),
        end: ts(end),
    };
    MetricsServiceClient::new(app.channel.clone())
        .get_portfolio_metrics(with_token(
            READER,
            v1::GetPortfolioMetricsRequest {
                period: Some(period),
                filter: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

/// Sends history older than the live window; returns how many were accepted.
async fn backfill(app: &TestApp, signals: Vec<v1::Signal>) -> i32 {
    let req = v1::IngestSignalsRequest {
        signals,
        mode: v1::IngestMode::Backfill as i32,
        ..Default::default()
    };
    app.ingest(WRITER, req).await.unwrap().accepted
}
