//! The product's worked examples, end to end: signals sent through
//! ingestion as a backfill of May 2026, KPIs read from GetPortfolioMetrics,
//! on SQLite and PostgreSQL.
//!
//! - Churn: 1,000 customers at the start of May, 64 churned in May → 6.4 %.
//! - MRR: 1,000 paying customers × ARPA 750 → 750,000 (end of April).
//! - Expansion MRR greater than churned MRR → negative net MRR churn.
//! - NPS: 50 promoters, 30 passives, 20 detractors of 100 → 30.
//! - CSAT: 40 positive of 50 answers → 80 %.
//! - Trial-to-paid: overall 15 %, segment "Agencies" 25 %.
//! - CLV: 50 per purchase × 3 purchases a month × 24 months → 3,600.
//! - LTV:CRC of 2:1 raises a warning.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use retain_ingestion::Ingestion;
use retain_metrics::Metrics;
use retain_proto::v1;
use retain_proto::v1::kpi_value::Result as KpiResult;
use retain_proto::v1::metrics_service_client::MetricsServiceClient;
use retain_proto::v1::signal::Body;
use retain_testkit::*;

/// 2026-05-01T00:00:00Z, 2026-06-01T00:00:00Z and 2026-04-01T00:00:00Z.
const MAY: i64 = 1_777_593_600;
const JUNE: i64 = 1_780_272_000;
const APRIL: i64 = 1_775_001_600;
const DAY: i64 = 86_400;

fn at(id: String, account: &str, t: i64, body: Body) -> v1::Signal {
    v1::Signal {
        occurred_at: ts(t),
        ..signal(&id, account, body)
    }
}

fn mrr(minor: i64) -> Body {
    Body::Subscription(v1::SubscriptionChange {
        amount: eur(minor),
        interval: v1::BillingInterval::Monthly as i32,
        churn_reason: if minor == 0 {
            v1::ChurnReason::Price as i32
        } else {
            0
        },
        add_on: false,
        opening_balance: false,
    })
}

fn survey(kind: v1::SurveyKind, scale: v1::SurveyScale, score: i32) -> Body {
    Body::Survey(v1::SurveyAnswer {
        kind: kind as i32,
        scale: scale as i32,
        score,
        ..Default::default()
    })
}

async fn backfill(app: &TestApp, token: &str, signals: Vec<v1::Signal>) {
    for chunk in signals.chunks(5_000) {
        let req = v1::IngestSignalsRequest {
            signals: chunk.to_vec(),
            mode: v1::IngestMode::Backfill as i32,
            ..Default::default()
        };
        let r = app.ingest(token, req).await.unwrap();
        assert_eq!(
            r.rejected,
            0,
            "{:?}",
            r.results.iter().find(|x| !x.violations.is_empty())
        );
    }
    // Finished months are answered from the consumer's monthly rollups.
    app.settled("metrics").await;
}

async fn portfolio(
    app: &TestApp,
    token: &str,
    start: i64,
    end: i64,
) -> v1::GetPortfolioMetricsResponse {
    MetricsServiceClient::new(app.channel.clone())
        .get_portfolio_metrics(with_token(
            token,
            v1::GetPortfolioMetricsRequest {
                period: Some(v1::Period {
                    start: ts(start),
                    end: ts(end),
                }),
                filter: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
}

retain_testkit::storage_test!(async fn the_worked_examples_hold_end_to_end(db) {
    use v1::SurveyKind::{Csat, Nps};
    use v1::SurveyScale::{OneToFive, ZeroToTen};
    let app = spawn_two::<Ingestion, Metrics>(db).await;

    // acme: 1,000 customers paying 750 from mid-April; 64 churn in May; 100
    // expand by 600 (60,000 > 64 × 750 = 48,000 churned).
    let mut s = Vec::new();
    for i in 0..1_000 {
        let account = format!("c-{i}");
        s.push(at(format!("start-{i}"), &account, APRIL + 14 * DAY, mrr(75_000 / 100)));
        if i < 64 {
            s.push(at(format!("churn-{i}"), &account, MAY + 10 * DAY, mrr(0)));
        } else if i < 164 {
            s.push(at(format!("grow-{i}"), &account, MAY + 12 * DAY, mrr(750 + 600)));
        }
    }
    // NPS in May: 50 promoters, 30 passives, 20 detractors.
    for i in 0..100 {
        let score = if i < 50 { 9 } else if i < 80 { 7 } else { 3 };
        s.push(at(format!("nps-{i}"), &format!("c-{}", 200 + i), MAY + 5 * DAY, survey(Nps, ZeroToTen, score)));
    }
    // CSAT in May: 40 positive of 50.
    for i in 0..50 {
        let score = if i < 40 { 5 } else { 2 };
        s.push(at(format!("csat-{i}"), &format!("c-{}", 300 + i), MAY + 6 * DAY, survey(Csat, OneToFive, score)));
    }
    // Trials started in May: 8 Agencies accounts, 2 converted; 12 others, 1.
    for i in 0..20 {
        let account = format!("t-{i}");
        let segment = if i < 8 { "Agencies" } else { "SMB" };
        s.push(at(format!("seg-{i}"), &account, MAY + DAY, Body::Account(v1::AccountUpsert { segment: Some(segment.into()), ..Default::default() })));
        s.push(at(format!("trial-{i}"), &account, MAY + 2 * DAY, Body::Trial(v1::Trial { event: v1::TrialEvent::Started as i32 })));
        if i < 2 || i == 8 {
            s.push(at(format!("conv-{i}"), &account, MAY + 9 * DAY, Body::Trial(v1::Trial { event: v1::TrialEvent::Converted as i32 })));
        }
    }
    backfill(&app, WRITER, s).await;

    // The MRR example: end of April.
    let april = portfolio(&app, WRITER, APRIL, MAY).await;
    assert_eq!(kpi_money(&april, v1::Kpi::Mrr), 750_000);
    assert_eq!(kpi_money(&april, v1::Kpi::Arpa), 750);
    let may = portfolio(&app, WRITER, MAY, JUNE).await;
    assert!((kpi_number(&may, v1::Kpi::LogoChurn) - 6.4).abs() < 1e-9);
    assert!(kpi_number(&may, v1::Kpi::NetMrrChurn) < 0.0, "expansion above churn");
    assert!(may.insights.iter().any(|i| i.key == "negative_churn"), "{:?}", may.insights);
    assert!((kpi_number(&may, v1::Kpi::Nps) - 30.0).abs() < 1e-9);
    assert!((kpi_number(&may, v1::Kpi::Csat) - 80.0).abs() < 1e-9);
    assert!((kpi_number(&may, v1::Kpi::TrialToPaid) - 15.0).abs() < 1e-9);
    let agencies = may.trial_to_paid_by_segment.iter().find(|s| s.segment == "Agencies").unwrap();
    match agencies.value.as_ref().unwrap().result.as_ref().unwrap() {
        KpiResult::Value(v) => assert!((v - 25.0).abs() < 1e-9),
        other => panic!("{other:?}"),
    }

    // globex: 24 customers at 10,000, one churns in May (a 24-month
    // lifetime); 10 of them buy 3 times at 50 in May; CS spend sized so
    // that LTV:CRC is exactly 2:1 (LTV 240,000; CRC 120,000 over 24).
    let mut g = Vec::new();
    for i in 0..24 {
        let account = format!("g-{i}");
        g.push(at(format!("g-start-{i}"), &account, APRIL + 14 * DAY, mrr(10_000)));
        if i < 10 {
            for k in 0..3 {
                g.push(at(format!("g-buy-{i}-{k}"), &account, MAY + (3 + k) * DAY, Body::Purchase(v1::Purchase { amount: eur(50) })));
            }
        }
    }
    g.push(at("g-churn".into(), "g-23", MAY + 20 * DAY, mrr(0)));
    g.push(v1::Signal {
        occurred_at: ts(JUNE - 3_600),
        ..signal(
            "g-cs",
            "*",
            Body::Cost(v1::Cost {
                kind: v1::CostKind::CustomerSuccess as i32,
                amount: eur(2_880_000),
                period: Some(v1::Period { start: ts(MAY), end: ts(JUNE) }),
            }),
        )
    });
    backfill(&app, GLOBEX, g).await;
    let may = portfolio(&app, GLOBEX, MAY, JUNE).await;
    assert_eq!(kpi_money(&may, v1::Kpi::Clv), 3_600);
    assert_eq!(kpi_money(&may, v1::Kpi::Ltv), 240_000);
    assert_eq!(kpi_money(&may, v1::Kpi::Crc), 120_000);
    assert!((kpi_number(&may, v1::Kpi::LtvToCrc) - 2.0).abs() < 1e-12);
    assert!(may.insights.iter().any(|i| i.key == "ltv_to_crc_at_or_below_2"), "{:?}", may.insights);
});
