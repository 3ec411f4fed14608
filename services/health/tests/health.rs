//! The health service beside ingestion and metrics on one database, over
//! real gRPC, on SQLite and PostgreSQL: signals become a snapshot, the
//! snapshot a score with its explanation; band changes are announced once
//! and only for live data; models are versioned and checked.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::time::Duration;

use retain_health::Health;
use retain_ingestion::Ingestion;
use retain_metrics::Metrics;
use retain_proto::v1;
use retain_proto::v1::signal::Body;
use retain_runtime::Service;
use retain_testkit::*;
use tonic::Code;

mod support;
use support::*;

async fn health_of(app: &TestApp, account: &str) -> Result<v1::HealthScore, tonic::Status> {
    client(app)
        .get_health(with_token(
            READER,
            v1::GetHealthRequest {
                account_id: account.into(),
            },
        ))
        .await
        .map(|r| r.into_inner().score.unwrap())
}

async fn settled_health(
    app: &TestApp,
    account: &str,
    want: impl Fn(&v1::HealthScore) -> bool,
) -> v1::HealthScore {
    eventually("the account's health", Duration::from_secs(30), || async {
        health_of(app, account).await.ok().filter(|s| want(s))
    })
    .await
}

// The worked health example of docs/KPIS.md end to end: Yellow 69.0, explained in numbers and
// words, the ticket topics named.
retain_testkit::storage_test!(async fn the_b2b_example_scores_yellow_69_with_its_reasons(db) {
    let app = spawn(db).await;
    assert_eq!(app.send(b2b("acme-b2b")).await.accepted, 21);
    let s = settled_health(&app, "acme-b2b", |s| s.inputs.as_ref().is_some_and(|i| i.active_days_30d == Some(16))).await;
    assert_eq!(s.score, 69.0);
    assert_eq!(s.band, v1::HealthBand::Yellow as i32);
    assert_eq!(s.model_version, 0, "the built-in model");
    assert_eq!(s.ticket_topics, ["integration"]);
    let subs: Vec<(&str, f64)> = s.dimensions.iter().map(|d| (d.key.as_str(), d.sub_score)).collect();
    assert_eq!(subs, [("product_usage", 80.0), ("nps", 70.0), ("support_tickets", 0.0), ("billing_status", 100.0)]);
    assert!(
        s.explanation.starts_with("support_tickets: red — 3 tickets opened in 30 days (integration ×3)"),
        "{}",
        s.explanation
    );
    assert!(s.explanation.contains("product_usage: green — 16 of 20 target active days"), "{}", s.explanation);
    assert!(s.delta.is_none(), "a first score has no delta");
    // Another tenant does not see it; a bad id names the field.
    let other = client(&app)
        .get_health(with_token(GLOBEX, v1::GetHealthRequest { account_id: "acme-b2b".into() }))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::NotFound);
    let bad = client(&app)
        .get_health(with_token(READER, v1::GetHealthRequest { account_id: String::new() }))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("account_id"), "{}", bad.message());
});

// A live band change is announced once, as is the first live score; a
// backfilled history announces nothing; a redelivered snapshot appends
// nothing.
retain_testkit::storage_test!(async fn band_changes_are_announced_once_and_only_live(db) {
    let app = spawn(db).await;
    assert_eq!(app.send(b2b("acme-1")).await.accepted, 21);
    settled_health(&app, "acme-1", |s| s.band == v1::HealthBand::Yellow as i32 && s.score == 69.0).await;
    let first = app.published(retain_health::topics::HEALTH_BAND_CHANGED, "notification").await;
    assert_eq!(first.len(), 1, "the first live score acts on its band: {first:?}");
    assert_eq!((first[0].1.from_band, first[0].1.to_band), (v1::HealthBand::Unspecified as i32, v1::HealthBand::Yellow as i32));

    // Collections: billing 100 → 0, 69 − 30 = 39.0: below 40 but within
    // the 2-point margin, so still Yellow, and nothing is announced.
    let failed = ago("acme-1-fail", "acme-1", 60, billing(v1::BillingStatus::Collections));
    assert_eq!(app.send(vec![failed]).await.accepted, 1);
    let s = settled_health(&app, "acme-1", |s| s.score == 39.0).await;
    assert_eq!(s.band, v1::HealthBand::Yellow as i32, "39.0 is within the 2-point margin below 40");
    assert_eq!(s.delta, Some(-30.0));
    assert_eq!(s.top_mover, "billing_status");
    assert_eq!(app.published(retain_health::topics::HEALTH_BAND_CHANGED, "notification").await.len(), 1);

    // NPS 0 from a second user: the mean falls to 3.5 → NPS sub-score 35,
    // 39.0 − 7 + 3.5 = 35.5 < 38: Red, announced once.
    let angry = v1::Signal {
        body: Some(Body::Survey(v1::SurveyAnswer {
            kind: v1::SurveyKind::Nps as i32,
            score: 0,
            user_id: "u2".into(),
            ..Default::default()
        })),
        ..ago("acme-1-angry", "acme-1", 30, nps(0))
    };
    assert_eq!(app.send(vec![angry]).await.accepted, 1);
    let red = settled_health(&app, "acme-1", |s| s.band == v1::HealthBand::Red as i32).await;
    assert_eq!(red.score, 35.5);
    let announced = app.published(retain_health::topics::HEALTH_BAND_CHANGED, "notification").await;
    assert_eq!(announced.len(), 2, "{announced:?}");
    assert_eq!(announced[1].1.from_band, v1::HealthBand::Yellow as i32);
    assert_eq!(announced[1].1.to_band, v1::HealthBand::Red as i32);
    assert_eq!(announced[1].1.mode, v1::IngestMode::Live as i32);

    // The same snapshot again (a redelivery) appends nothing.
    let scores = app.count("health_scores").await;
    let snapshot = red.inputs.clone().unwrap();
    let scorer = retain_health::Scorer { db: app.db.conn.clone(), clock: retain_runtime::Clock::system() };
    assert!(scorer.score("acme", &snapshot, v1::IngestMode::Live, None).await.unwrap().is_none());
    assert_eq!(app.count("health_scores").await, scores);
    assert_eq!(app.published(retain_health::topics::HEALTH_BAND_CHANGED, "notification").await.len(), 2);

    // A backfilled history that changes the band is recorded, not announced.
    let req = v1::IngestSignalsRequest { signals: b2b("acme-2"), mode: v1::IngestMode::Backfill as i32, ..Default::default() };
    assert_eq!(app.ingest(WRITER, req).await.unwrap().accepted, 21);
    settled_health(&app, "acme-2", |s| s.score == 69.0).await;
    let angry2 = v1::IngestSignalsRequest {
        signals: vec![
            ago("acme-2-col", "acme-2", 5 * DAY, billing(v1::BillingStatus::Collections)),
            v1::Signal {
                body: Some(Body::Survey(v1::SurveyAnswer { kind: v1::SurveyKind::Nps as i32, score: 0, user_id: "u2".into(), ..Default::default() })),
                ..ago("acme-2-angry", "acme-2", 4 * DAY, nps(0))
            },
        ],
        mode: v1::IngestMode::Backfill as i32,
        ..Default::default()
    };
    assert_eq!(app.ingest(WRITER, angry2).await.unwrap().accepted, 2);
    settled_health(&app, "acme-2", |s| s.band == v1::HealthBand::Red as i32).await;
    assert_eq!(app.published(retain_health::topics::HEALTH_BAND_CHANGED, "notification").await.len(), 2, "backfill announces nothing");
});

// Models: versions are new rows, bad models name their fields, a segment's
// model scores its accounts, old scores keep their version.
retain_testkit::storage_test!(async fn models_are_versioned_checked_and_applied(db) {
    let app = spawn(db).await;
    let builtin = tenant_model(&app).await;
    assert_eq!(builtin.version, 0);
    assert_eq!(builtin.dimensions.len(), 4);

    // Weights summing to 90, an unknown metric: every problem, by field.
    let mut bad = builtin.clone();
    bad.dimensions[0].weight = 30.0;
    bad.dimensions[1].metric = "vibes".into();
    let err = client(&app)
        .put_scoring_model(with_token(ADMIN, v1::PutScoringModelRequest { model: Some(bad), rescore: false }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("model.dimensions[1].metric"), "{}", err.message());
    let mut three = builtin.clone();
    three.dimensions.truncate(3);
    let err = client(&app)
        .put_scoring_model(with_token(ADMIN, v1::PutScoringModelRequest { model: Some(three), rescore: false }))
        .await
        .unwrap_err();
    assert!(err.message().contains("model.dimensions"), "{}", err.message());
    // Keys are stored text: NUL, a control character and 1 MiB are refused
    // with their paths, by PutScoringModel and PreviewScoringModel alike.
    let mut keys = builtin.clone();
    keys.dimensions[0].key = "usage\0".into();
    keys.dimensions[1].key = "nps\u{1b}[2J".into();
    keys.dimensions[2].key = "k".repeat(1 << 20);
    let err = client(&app)
        .put_scoring_model(with_token(ADMIN, v1::PutScoringModelRequest { model: Some(keys.clone()), rescore: false }))
        .await
        .unwrap_err();
    for i in 0..3 {
        assert!(retain_testkit::hostile::names(&err, &format!("model.dimensions[{i}].key")), "{i}: {err:?}");
    }
    let err = client(&app)
        .preview_scoring_model(with_token(ADMIN, v1::PreviewScoringModelRequest { model: Some(keys), account_ids: vec![] }))
        .await
        .unwrap_err();
    assert!(retain_testkit::hostile::names(&err, "model.dimensions[0].key"), "{err:?}");
    // The worst case: six dimensions of a hundred bad category keys each.
    let mut many = builtin.clone();
    let billing = many.dimensions.iter().position(|d| d.metric == "billing_status").unwrap();
    if let Some(v1::dimension::Normaliser::Categorical(c)) = &mut many.dimensions[billing].normaliser {
        c.scores = (0..100).map(|i| (format!("bad\0{i}"), 1.0)).collect();
    }
    let err = client(&app)
        .put_scoring_model(with_token(ADMIN, v1::PutScoringModelRequest { model: Some(many), rescore: false }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(app.count("health_models").await, 0, "nothing stored");
    // Only admins change models.
    let err = client(&app)
        .put_scoring_model(with_token(READER, v1::PutScoringModelRequest { model: Some(builtin.clone()), rescore: false }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    assert_eq!(app.send(b2b("acme-1")).await.accepted, 21);
    let before = settled_health(&app, "acme-1", |s| s.score == 69.0).await;
    assert_eq!(before.model_version, 0);

    // Enterprise accounts: support weighs 40, usage 20.
    let mut enterprise = builtin.clone();
    enterprise.segment = "Enterprise".into();
    enterprise.dimensions[0].weight = 20.0;
    enterprise.dimensions[2].weight = 40.0;
    let stored = client(&app)
        .put_scoring_model(with_token(ADMIN, v1::PutScoringModelRequest { model: Some(enterprise.clone()), rescore: false }))
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap();
    assert_eq!(stored.version, 1);
    let again = client(&app)
        .put_scoring_model(with_token(ADMIN, v1::PutScoringModelRequest { model: Some(enterprise), rescore: false }))
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap();
    assert_eq!(again.version, 2, "a put never edits a version in place");
    let v1_again = client(&app)
        .get_scoring_model(with_token(READER, v1::GetScoringModelRequest { segment: String::new(), version: 1 }))
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap();
    assert_eq!(v1_again.version, 1);
    assert_eq!(v1_again.segment, "Enterprise");

    // acme-1 moves to Enterprise: scored with version 2,
    // 80×0.2 + 70×0.1 + 0×0.4 + 100×0.3 = 53.0.
    let upsert = Body::Account(v1::AccountUpsert { segment: Some("Enterprise".into()), ..Default::default() });
    assert_eq!(app.send(vec![ago("acme-1-seg", "acme-1", 10, upsert)]).await.accepted, 1);
    let after = settled_health(&app, "acme-1", |s| s.model_version == 2).await;
    assert_eq!(after.score, 53.0);
    assert!(after.model_changed);
    assert_eq!(after.top_mover, "", "no top mover across model versions");
    // The old score still explains itself with its version.
    let history = client(&app)
        .get_health_history(with_token(READER, v1::GetHealthHistoryRequest { account_id: "acme-1".into(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.scores[0].model_version, 2);
    let old = history.scores.iter().find(|s| s.model_version == 0).unwrap();
    assert_eq!(old.score, 69.0);
    assert!(old.explanation.contains("support_tickets: red"));
});

// ListHealth keeps one CSM's accounts and sorts by score or by change, the
// account breaking ties, with pages that neither skip nor repeat; a token
// is only taken back for the sort that issued it.
retain_testkit::storage_test!(async fn lists_by_csm_sorted_by_score_and_change(db) {
    let app = spawn(db).await;
    let owners = ["ana@vendor.io", "ana@vendor.io", "ana@vendor.io", "bo@vendor.io", "bo@vendor.io"];
    let tickets: [i64; 5] = [0, 1, 3, 3, 2];
    let mut all = Vec::new();
    for (i, (owner, n)) in owners.iter().zip(tickets).enumerate() {
        let id = format!("acme-{i}");
        all.extend(account(&id, n));
        let upsert = Body::Account(v1::AccountUpsert { csm_owner_email: Some((*owner).into()), ..Default::default() });
        all.push(ago(&format!("{id}-owner"), &id, 25 * DAY, upsert));
    }
    assert_eq!(app.send(all).await.accepted, 5 * 19 + 9);
    let settle = |i: usize, n: i64| {
        let app = &app;
        let owner = owners[i];
        async move {
            settled_health(app, &format!("acme-{i}"), |s| {
                s.inputs.as_ref().is_some_and(|x| x.tickets_opened_30d == Some(n as i32) && x.csm_owner_email == owner)
            })
            .await
        }
    };
    for (i, n) in tickets.iter().enumerate() {
        settle(i, *n).await;
    }
    // Two more tickets for acme-0, one for acme-1: their scores drop.
    app.send(vec![
        ago("acme-0-t8", "acme-0", 60, ticket("acme-0-t8", "billing")),
        ago("acme-0-t9", "acme-0", 30, ticket("acme-0-t9", "billing")),
        ago("acme-1-t9", "acme-1", 30, ticket("acme-1-t9", "billing")),
    ])
    .await;
    let dropped = [settle(0, 2).await, settle(1, 2).await];
    assert!(dropped.iter().all(|s| s.delta.unwrap() < 0.0), "{dropped:?}");
    // Every page of a listing, two at a time.
    let list = |sort: v1::HealthSort, csm: &'static str| {
        let app = &app;
        async move {
            let (mut out, mut token) = (Vec::new(), String::new());
            loop {
                let page = client(app)
                    .list_health(with_token(READER, v1::ListHealthRequest { page_size: 2, page_token: token, csm_owner_email: csm.into(), sort: sort as i32, ..Default::default() }))
                    .await
                    .unwrap()
                    .into_inner();
                out.extend(page.scores);
                if page.next_page_token.is_empty() {
                    return out;
                }
                token = page.next_page_token;
            }
        }
    };
    let everyone = list(v1::HealthSort::Account, "").await;
    assert_eq!(everyone.len(), 5);
    let ids = |scores: &[v1::HealthScore]| scores.iter().map(|s| s.account_id.clone()).collect::<Vec<_>>();
    // The expected orders, computed here from the scores themselves.
    let expect = |key: fn(&v1::HealthScore) -> f64, descending: bool| {
        let mut v = everyone.clone();
        v.sort_by(|a, b| {
            let o = key(a).total_cmp(&key(b)).then_with(|| a.account_id.cmp(&b.account_id));
            if descending { o.reverse() } else { o }
        });
        ids(&v)
    };
    let score = |s: &v1::HealthScore| s.score;
    let change = |s: &v1::HealthScore| s.delta.unwrap_or(0.0);
    assert_eq!(ids(&list(v1::HealthSort::ScoreAscending, "").await), expect(score, false));
    assert_eq!(ids(&list(v1::HealthSort::ScoreDescending, "").await), expect(score, true));
    let by_change = ids(&list(v1::HealthSort::ChangeAscending, "").await);
    assert_eq!(by_change, expect(change, false));
    assert!(by_change[0] == "acme-0" || by_change[0] == "acme-1", "{by_change:?}");
    assert_eq!(ids(&list(v1::HealthSort::ChangeDescending, "").await), expect(change, true));
    // acme-2 and acme-3 tie at 69.0: the expected orders break the tie by
    // account, in the sort's direction. Then one CSM's accounts only.
    let bo = ids(&list(v1::HealthSort::ScoreAscending, "bo@vendor.io").await);
    assert_eq!(bo.len(), 2);
    assert!(bo.iter().all(|id| id == "acme-3" || id == "acme-4"));
    assert_eq!(ids(&list(v1::HealthSort::Account, "ana@vendor.io").await), ["acme-0", "acme-1", "acme-2"]);
    assert!(list(v1::HealthSort::Account, "nobody@vendor.io").await.is_empty());

    // A token from one sort is refused by another, naming the field.
    let first = client(&app)
        .list_health(with_token(READER, v1::ListHealthRequest { page_size: 2, sort: v1::HealthSort::ScoreAscending as i32, ..Default::default() }))
        .await
        .unwrap()
        .into_inner();
    for sort in [v1::HealthSort::Account, v1::HealthSort::ScoreDescending] {
        let err = client(&app)
            .list_health(with_token(READER, v1::ListHealthRequest { page_size: 2, page_token: first.next_page_token.clone(), sort: sort as i32, ..Default::default() }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.message().contains("page_token"), "{}", err.message());
    }
    let err = client(&app)
        .list_health(with_token(READER, v1::ListHealthRequest { sort: 42, csm_owner_email: "a\u{0}b".into(), ..Default::default() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("sort") && err.message().contains("csm_owner_email"), "{}", err.message());
});

// ListHealth filters by band and segment and pages in account order;
// GetHealthHistory keeps a point per day and every change.
retain_testkit::storage_test!(async fn lists_filter_and_page(db) {
    let app = spawn(db).await;
    let mut all = Vec::new();
    for i in 0..5 {
        all.extend(b2b(&format!("acme-{i}")));
    }
    assert_eq!(app.send(all).await.accepted, 105);
    for i in 0..5 {
        settled_health(&app, &format!("acme-{i}"), |s| s.score == 69.0).await;
    }
    let page = |token: String, bands: Vec<i32>| {
        let app = &app;
        async move {
            client(app)
                .list_health(with_token(READER, v1::ListHealthRequest { page_size: 2, page_token: token, bands, ..Default::default() }))
                .await
                .map(|r| r.into_inner())
        }
    };
    let first = page(String::new(), vec![]).await.unwrap();
    assert_eq!(first.scores.len(), 2);
    let second = page(first.next_page_token.clone(), vec![]).await.unwrap();
    let third = page(second.next_page_token.clone(), vec![]).await.unwrap();
    assert_eq!(third.scores.len(), 1);
    assert!(third.next_page_token.is_empty());
    let ids: Vec<String> = [first.scores, second.scores, third.scores].concat().into_iter().map(|s| s.account_id).collect();
    assert_eq!(ids, ["acme-0", "acme-1", "acme-2", "acme-3", "acme-4"]);
    let red = page(String::new(), vec![v1::HealthBand::Red as i32]).await.unwrap();
    assert!(red.scores.is_empty());
    let err = page("not-a-token".into(), vec![]).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("page_token"), "{}", err.message());
    let err = page(String::new(), vec![9]).await.unwrap_err();
    assert!(err.message().contains("bands[0]"), "{}", err.message());

    let history = client(&app)
        .get_health_history(with_token(READER, v1::GetHealthHistoryRequest { account_id: "acme-0".into(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner();
    assert!(!history.scores.is_empty());
    let err = client(&app)
        .get_health_history(with_token(READER, v1::GetHealthHistoryRequest { account_id: "acme-0".into(), page_size: 5_000, ..Default::default() }))
        .await
        .unwrap_err();
    assert!(err.message().contains("page_size"), "{}", err.message());
});

// Two health consumers on one stream (two replicas): every account ends
// with the score of its latest snapshot, its history has one score per
// snapshot, and nothing is left unconsumed.
retain_testkit::storage_test!(async fn two_consumers_score_what_one_does(db) {
    use retain_bus::{Bus, Consumer, ConsumerOptions, groups};
    use retain_metrics::topics;
    let app = spawn_composed(db, settings(), retain_runtime::Clock::system(), |ctx| {
        let ingestion = Ingestion::build(ctx, Default::default())?;
        let metrics = Metrics::build(ctx, Default::default())?;
        let health = Health::build(ctx, Default::default())?;
        let second = retain_health::Scorer { db: ctx.db.clone(), clock: ctx.clock.clone() };
        let db = ctx.db.clone();
        let mut workers = retain_runtime::Workers::new();
        workers.add("second-health-replica", move |stop| async move {
            let consumer = Consumer::new(Bus::new(db), topics::ACCOUNT_METRICS.name(), groups::HEALTH, ConsumerOptions::new("second-health-replica"))
                .await
                .unwrap();
            consumer.run(&second, stop).await;
        });
        Ok(ingestion.merge(metrics).merge(health).with_workers(workers))
    })
    .await;
    for round in 0..5 {
        let batch: Vec<_> = (0..20)
            .map(|a| ago(&format!("r{round}-a{a}"), &format!("acct-{a}"), 600 - round * 60, session("u1", 60)))
            .collect();
        assert_eq!(app.send(batch).await.accepted, 20);
    }
    app.settled("metrics").await;
    let bus = Bus::new(app.db.conn.clone());
    eventually("health to consume every snapshot", Duration::from_secs(60), || async {
        let s = bus.stats(topics::ACCOUNT_METRICS.name(), groups::HEALTH).await.unwrap();
        (s.pending == 0 && s.leased == 0 && s.dead == 0).then_some(())
    })
    .await;
    assert_eq!(app.count("health_current").await, 20);
    for a in 0..20 {
        let account = format!("acct-{a}");
        let latest = app
            .scalar(&format!("SELECT as_of FROM account_metrics WHERE account_id = '{account}'"))
            .await;
        let s = health_of(&app, &account).await.unwrap();
        assert_eq!(retain_proto::convert::micros(s.scored_at.as_ref().unwrap()), latest, "{account}");
        let scored = app
            .scalar(&format!("SELECT COUNT(*) FROM health_scores WHERE account_id = '{account}'"))
            .await;
        let distinct = app
            .scalar(&format!("SELECT COUNT(DISTINCT as_of) FROM health_scores WHERE account_id = '{account}'"))
            .await;
        assert_eq!(scored, distinct, "one score per snapshot: {account}");
    }
});

retain_testkit::storage_test!(async fn concurrent_model_puts_take_consecutive_versions(db) {
    let app = spawn(db).await;
    let builtin = tenant_model(&app).await;
    // Eight admins at once, two segments: each put is the tenant's next
    // version, none lost and none twice.
    let puts = (0..8).map(|i| {
        let (app, mut model) = (&app, builtin.clone());
        model.segment = if i % 2 == 0 { "smb".into() } else { String::new() };
        async move {
            client(app)
                .put_scoring_model(with_token(ADMIN, v1::PutScoringModelRequest { model: Some(model), rescore: false }))
                .await
                .map(|r| r.into_inner().model.unwrap().version)
        }
    });
    let mut versions: Vec<i64> = futures::future::join_all(puts).await.into_iter().map(Result::unwrap).collect();
    versions.sort_unstable();
    assert_eq!(versions, (1..=8).collect::<Vec<_>>());
    let smb = client(&app)
        .get_scoring_model(with_token(READER, v1::GetScoringModelRequest { segment: "smb".into(), version: 0 }))
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap();
    assert_eq!(smb.segment, "smb");
    assert!(smb.version >= 1 && smb.version <= 8);
    assert!(smb.created_at.is_some());
    assert_eq!(app.count("health_models").await, 8);
});
