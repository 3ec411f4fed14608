//! Bands over real gRPC, on SQLite and PostgreSQL: the hysteresis margin
//! at each boundary in both directions, and each missing-data policy.
//! Snapshots are handed to the scorer as the consumer would (the path from
//! signals to snapshots is `health.rs`'s); scores are read with GetHealth.

#![allow(clippy::unwrap_used, clippy::float_cmp)] // Tests fail loudly.

use retain_health::{Health, Scorer};
use retain_proto::v1;
use retain_proto::v1::health_service_client::HealthServiceClient;
use retain_testkit::*;

/// With the built-in model: usage 2 points per active day (target 20,
/// weight 40), NPS 1 point per point of mean (weight 10), support 20 with
/// no ticket and 0 with three, billing 30 when current and 0 in
/// collections. So `base + 2 × days + nps` where base is 0 or 50.
fn snapshot(
    account: &str,
    step: i64,
    healthy: bool,
    days: i32,
    nps: f64,
) -> v1::AccountMetricsSnapshot {
    v1::AccountMetricsSnapshot {
        account_id: account.into(),
        as_of: ts(now() - 3_600 + step),
        active_days_30d: Some(days),
        nps_mean: Some(nps),
        tickets_opened_30d: Some(if healthy { 0 } else { 3 }),
        billing_status: Some(if healthy { "current" } else { "collections" }.into()),
        ..Default::default()
    }
}

async fn band_of(app: &TestApp, account: &str) -> (f64, v1::HealthBand) {
    let s = HealthServiceClient::new(app.channel.clone())
        .get_health(with_token(
            READER,
            v1::GetHealthRequest {
                account_id: account.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .score
        .unwrap();
    (s.score, v1::HealthBand::try_from(s.band).unwrap())
}

retain_testkit::storage_test!(async fn each_boundary_holds_its_margin_both_ways(db) {
    use v1::HealthBand::{Green, Red, Thriving, Yellow};
    let app = spawn_app::<Health>(db).await;
    let scorer = Scorer { db: app.db.conn.clone(), clock: retain_runtime::Clock::system() };
    // (account, healthy, days, nps, expected score, expected band)
    let steps: [(&str, bool, i32, f64, f64, v1::HealthBand); 15] = [
        // 40: Yellow ↔ Red, margin 2 (Red below 38, Yellow above 42).
        ("b40", false, 20, 5.0, 45.0, Yellow),
        ("b40", false, 19, 0.5, 38.5, Yellow),
        ("b40", false, 18, 1.9, 37.9, Red),
        ("b40", false, 20, 1.5, 41.5, Red),
        ("b40", false, 21, 0.1, 42.1, Yellow),
        // 70: Yellow ↔ Green.
        ("b70", true, 5, 0.0, 60.0, Yellow),
        ("b70", true, 10, 1.5, 71.5, Yellow),
        ("b70", true, 11, 0.5, 72.5, Green),
        ("b70", true, 9, 0.5, 68.5, Green),
        ("b70", true, 8, 1.5, 67.5, Yellow),
        // 100: Green ↔ Thriving.
        ("b100", true, 20, 5.0, 95.0, Green),
        ("b100", true, 25, 1.5, 101.5, Green),
        ("b100", true, 26, 0.5, 102.5, Thriving),
        ("b100", true, 24, 0.5, 98.5, Thriving),
        ("b100", true, 23, 1.5, 97.5, Green),
    ];
    for (i, (account, healthy, days, nps, score, band)) in steps.into_iter().enumerate() {
        let snap = snapshot(account, i as i64, healthy, days, nps);
        scorer.score("acme", &snap, v1::IngestMode::Live, None).await.unwrap();
        assert_eq!(band_of(&app, account).await, (score, band), "step {i}");
    }
    // Each account's first (live) score, then two changes per boundary,
    // each announced once.
    let announced = app.published(retain_health::topics::HEALTH_BAND_CHANGED, "notification").await;
    assert_eq!(announced.len(), 9, "{announced:?}");
});

retain_testkit::storage_test!(async fn each_missing_data_policy_scores_as_documented(db) {
    let app = spawn_app::<Health>(db).await;
    let scorer = Scorer { db: app.db.conn.clone(), clock: retain_runtime::Clock::system() };
    let mut client = HealthServiceClient::new(app.channel.clone());
    let builtin = client
        .get_scoring_model(with_token(READER, v1::GetScoringModelRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap();
    // Usage, support and billing at 100, NPS never answered.
    let no_nps = |account: &str| v1::AccountMetricsSnapshot {
        nps_mean: None,
        ..snapshot(account, 0, true, 20, 0.0)
    };
    for (i, (policy, score)) in [
        (v1::MissingDataPolicy::Redistribute, 100.0),
        (v1::MissingDataPolicy::Neutral, 95.0),
        (v1::MissingDataPolicy::Zero, 90.0),
    ]
    .into_iter()
    .enumerate()
    {
        let mut model = builtin.clone();
        model.missing_data = policy as i32;
        client
            .put_scoring_model(with_token(ADMIN, v1::PutScoringModelRequest { model: Some(model), rescore: false }))
            .await
            .unwrap();
        let account = format!("p{i}");
        scorer.score("acme", &no_nps(&account), v1::IngestMode::Live, None).await.unwrap();
        let s = client
            .get_health(with_token(READER, v1::GetHealthRequest { account_id: account.clone() }))
            .await
            .unwrap()
            .into_inner()
            .score
            .unwrap();
        assert_eq!(s.score, score, "{policy:?}");
        assert_eq!(s.missing_dimensions, ["nps"], "{policy:?}");
        assert_eq!(s.missing_data, policy as i32);
        assert!(s.explanation.contains("nps: no data"), "{}", s.explanation);
    }
});

// GetHealthHistory: the last score of each UTC day plus every band change,
// newest first, in pages that neither skip nor repeat, within a range.
retain_testkit::storage_test!(async fn history_keeps_each_days_last_score_and_every_change(db) {
    let app = spawn_app::<Health>(db).await;
    let scorer = Scorer { db: app.db.conn.clone(), clock: retain_runtime::Clock::system() };
    let day = 86_400;
    let day0 = (now() / day - 5) * day;
    // (day, hour, healthy, active days, nps) → score, and whether the
    // history shows it (the first score, a band change, a day's last).
    let steps: [(i64, i64, bool, i32, f64, bool); 9] = [
        (0, 1, true, 20, 5.0, true),   // 95 Green, the first
        (0, 5, true, 20, 4.0, false),  // 94
        (0, 9, true, 20, 3.0, true),   // 93, day 0's last
        (1, 2, false, 5, 0.0, true),   // 10 Red: a change
        (1, 3, false, 6, 0.0, false),  // 12
        (1, 4, false, 7, 0.0, true),   // 14, day 1's last
        (2, 1, true, 20, 5.0, true),   // 95 Green: a change
        (2, 2, true, 20, 4.0, false),  // 94
        (2, 6, true, 19, 5.0, true),   // 93, day 2's last
    ];
    let mut expected = Vec::new();
    for (d, h, healthy, days, nps, shown) in steps {
        let as_of = day0 + d * day + h * 3_600;
        let snap = v1::AccountMetricsSnapshot {
            account_id: "hist".into(),
            as_of: ts(as_of),
            active_days_30d: Some(days),
            nps_mean: Some(nps),
            tickets_opened_30d: Some(if healthy { 0 } else { 3 }),
            billing_status: Some(if healthy { "current" } else { "collections" }.into()),
            ..Default::default()
        };
        scorer.score("acme", &snap, v1::IngestMode::Live, None).await.unwrap();
        if shown {
            expected.push(as_of);
        }
    }
    expected.reverse();
    let history = |range: Option<v1::Period>| {
        let mut client = HealthServiceClient::new(app.channel.clone());
        async move {
            let (mut out, mut token) = (Vec::new(), String::new());
            loop {
                let page = client
                    .get_health_history(with_token(READER, v1::GetHealthHistoryRequest { account_id: "hist".into(), range, page_size: 4, page_token: token }))
                    .await
                    .unwrap()
                    .into_inner();
                assert!(page.scores.len() <= 4);
                out.extend(page.scores.iter().map(|s| s.scored_at.unwrap().seconds));
                if page.next_page_token.is_empty() {
                    return out;
                }
                token = page.next_page_token;
            }
        }
    };
    assert_eq!(history(None).await, expected);
    let day1 = v1::Period { start: ts(day0 + day), end: ts(day0 + 2 * day) };
    assert_eq!(history(Some(day1)).await, [day0 + day + 4 * 3_600, day0 + day + 2 * 3_600]);
    // A range that misses every score is an empty history; an account
    // never scored is unknown, as GetHealth says.
    assert!(history(Some(v1::Period { start: ts(day0 - 10 * day), end: ts(day0 - 9 * day) })).await.is_empty());
    let ask = |account: &str, range: Option<v1::Period>| {
        let mut client = HealthServiceClient::new(app.channel.clone());
        let account = account.to_owned();
        async move {
            client
                .get_health_history(with_token(READER, v1::GetHealthHistoryRequest { account_id: account, range, ..Default::default() }))
                .await
        }
    };
    let unknown = ask("nobody", None).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");
    // A Period has both bounds, every RPC: one unset is refused, named.
    let half = ask("hist", Some(v1::Period { start: ts(day0), end: None })).await.unwrap_err();
    assert_eq!(half.code(), tonic::Code::InvalidArgument);
    assert!(half.message().contains("range.end"), "{}", half.message());
    // Nanoseconds are checked as ingestion checks them.
    let bad = prost_types::Timestamp { seconds: day0, nanos: 1_000_000_000 };
    let nanos = ask("hist", Some(v1::Period { start: Some(bad), end: ts(day0 + day) })).await.unwrap_err();
    assert!(nanos.message().contains("range.start"), "{}", nanos.message());
});

// The first LIVE score of an account acts on its band like a change into
// it: it is announced whatever the band (notification decides what the
// band asks for). A first score from BACKFILL history is silent; the
// account's first LIVE score after it is announced, from no band when the
// band stayed; later LIVE scores only when the band changes.
retain_testkit::storage_test!(async fn the_first_live_score_is_announced_once(db) {
    use retain_health::topics::HEALTH_BAND_CHANGED;
    use v1::HealthBand::{Green, Red, Unspecified};
    let app = spawn_app::<Health>(db).await;
    let scorer = Scorer { db: app.db.conn.clone(), clock: retain_runtime::Clock::system() };
    let announced = || async {
        app.published(HEALTH_BAND_CHANGED, "notification")
            .await
            .into_iter()
            .map(|(_, e)| (e.account_id, v1::HealthBand::try_from(e.from_band).unwrap(), v1::HealthBand::try_from(e.to_band).unwrap()))
            .collect::<Vec<_>>()
    };
    // live-red: first seen LIVE, Red (score 10): announced from no band.
    scorer.score("acme", &snapshot("live-red", 0, false, 5, 0.0), v1::IngestMode::Live, None).await.unwrap();
    assert_eq!(announced().await, [("live-red".into(), Unspecified, Red)]);
    // Scored again LIVE, still Red: nothing more.
    scorer.score("acme", &snapshot("live-red", 1, false, 6, 0.0), v1::IngestMode::Live, None).await.unwrap();
    assert_eq!(announced().await.len(), 1);

    // hist: first scored from history (Red), silent; its first LIVE score,
    // still Red, is announced from no band; the next LIVE one is not.
    scorer.score("acme", &snapshot("hist", 0, false, 5, 0.0), v1::IngestMode::Backfill, None).await.unwrap();
    scorer.score("acme", &snapshot("hist", 1, false, 6, 0.0), v1::IngestMode::Backfill, None).await.unwrap();
    assert_eq!(announced().await.len(), 1, "history is silent");
    scorer.score("acme", &snapshot("hist", 2, false, 7, 0.0), v1::IngestMode::Live, None).await.unwrap();
    assert_eq!(announced().await[1], ("hist".into(), Unspecified, Red));
    scorer.score("acme", &snapshot("hist", 3, false, 8, 0.0), v1::IngestMode::Live, None).await.unwrap();
    assert_eq!(announced().await.len(), 2);

    // moved: history Red, first LIVE score Green: a change from Red.
    scorer.score("acme", &snapshot("moved", 0, false, 5, 0.0), v1::IngestMode::Backfill, None).await.unwrap();
    scorer.score("acme", &snapshot("moved", 1, true, 20, 5.0), v1::IngestMode::Live, None).await.unwrap();
    assert_eq!(announced().await[2], ("moved".into(), Red, Green));
    assert_eq!(band_of(&app, "moved").await.1, Green);

    // tuned: history Red, then a new model rescores it (no new signal:
    // nothing acted on), then its first LIVE score is still announced.
    scorer.score("acme", &snapshot("tuned", 0, false, 5, 0.0), v1::IngestMode::Backfill, None).await.unwrap();
    let mut client = HealthServiceClient::new(app.channel.clone());
    let mut model = client
        .get_scoring_model(with_token(READER, v1::GetScoringModelRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap();
    model.hysteresis = 3.0;
    client.put_scoring_model(with_token(ADMIN, v1::PutScoringModelRequest { model: Some(model), rescore: false })).await.unwrap();
    scorer.rescore_page("acme", "", ("", "zzzz")).await.unwrap();
    assert_eq!(announced().await.len(), 3, "a rescore of history acts on nothing");
    scorer.score("acme", &snapshot("tuned", 1, false, 6, 0.0), v1::IngestMode::Live, None).await.unwrap();
    assert_eq!(announced().await[3], ("tuned".into(), Unspecified, Red));
});
