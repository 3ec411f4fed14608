//! A model change end to end, over real gRPC on SQLite and PostgreSQL: the
//! preview shows what it would move and stores nothing; a rescoring job
//! moves exactly those accounts, reports its progress and announces each
//! change once; a watcher that disconnects and resumes from its cursor
//! misses nothing and sees nothing twice.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::time::Duration;

use retain_proto::v1;
use retain_runtime::Service as _;
use retain_testkit::*;
use tonic::Code;

mod support;
use support::*;

async fn current(app: &TestApp, id: &str) -> Option<v1::HealthScore> {
    client(app)
        .get_health(with_token(
            READER,
            v1::GetHealthRequest {
                account_id: id.into(),
            },
        ))
        .await
        .ok()
        .and_then(|r| r.into_inner().score)
}

/// Support weighs 60, usage 20, NPS 10, billing 10: an account with three
/// tickets falls to 16 + 7 + 0 + 10 = 33.0 (Red); one without stays Green
/// at 16 + 7 + 60 + 10 = 93.0.
fn support_first(builtin: &v1::ScoringModel) -> v1::ScoringModel {
    let mut m = builtin.clone();
    let weights = [20.0, 10.0, 60.0, 10.0];
    for (d, w) in m.dimensions.iter_mut().zip(weights) {
        d.weight = w;
    }
    m
}

retain_testkit::storage_test!(async fn a_model_change_previews_rescores_and_streams_each_change_once(db) {
    let app = spawn(db).await;
    let mut all = Vec::new();
    for i in 0..4 {
        all.extend(account(&format!("acme-{i}"), 3));
    }
    all.extend(account("acme-green", 0));
    assert_eq!(app.send(all).await.accepted, 21 * 4 + 18);
    for (id, score) in [("acme-0", 69.0), ("acme-1", 69.0), ("acme-2", 69.0), ("acme-3", 69.0), ("acme-green", 89.0)] {
        eventually(&format!("{id} scored"), Duration::from_secs(30), || async {
            current(&app, id).await.filter(|s| s.score == score)
        })
        .await;
    }
    // A watcher from now on.
    let mut watch = client(&app)
        .watch_band_changes(with_token(READER, v1::WatchBandChangesRequest::default()))
        .await
        .unwrap()
        .into_inner();

    let builtin = tenant_model(&app).await;
    let draft = support_first(&builtin);

    // The preview: four accounts would go Yellow → Red; nothing stored.
    let footprint = (app.count("health_scores").await, app.count("health_models").await, app.count("bus_messages").await);
    let preview = client(&app)
        .preview_scoring_model(with_token(ADMIN, v1::PreviewScoringModelRequest { model: Some(draft.clone()), account_ids: vec![] }))
        .await
        .unwrap()
        .into_inner();
    let count = |list: &[v1::BandCount], band: v1::HealthBand| list.iter().find(|c| c.band == band as i32).map_or(0, |c| c.accounts);
    assert_eq!(count(&preview.bands_before, v1::HealthBand::Yellow), 4);
    assert_eq!(count(&preview.bands_before, v1::HealthBand::Green), 1);
    assert_eq!(count(&preview.bands_after, v1::HealthBand::Red), 4);
    assert_eq!(count(&preview.bands_after, v1::HealthBand::Green), 1);
    assert_eq!(preview.changed_total, 4);
    assert_eq!(preview.changed_accounts, ["acme-0", "acme-1", "acme-2", "acme-3"]);
    let named = client(&app)
        .preview_scoring_model(with_token(ADMIN, v1::PreviewScoringModelRequest { model: Some(draft.clone()), account_ids: vec!["acme-green".into(), "acme-0".into()] }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(named.candidate.iter().map(|s| s.score).collect::<Vec<_>>(), [93.0, 33.0]);
    assert_eq!(named.current.iter().map(|s| s.score).collect::<Vec<_>>(), [89.0, 69.0]);
    assert_eq!(
        (app.count("health_scores").await, app.count("health_models").await, app.count("bus_messages").await),
        footprint,
        "a preview stores nothing"
    );
    let err = client(&app)
        .preview_scoring_model(with_token(READER, v1::PreviewScoringModelRequest { model: Some(draft.clone()), account_ids: vec![] }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = client(&app)
        .preview_scoring_model(with_token(ADMIN, v1::PreviewScoringModelRequest { model: Some(draft.clone()), account_ids: vec!["nobody".into()] }))
        .await
        .unwrap_err();
    assert!(err.message().contains("account_ids[0]"), "{}", err.message());

    // Store it and rescore: the job reports its progress to the end.
    let put = client(&app)
        .put_scoring_model(with_token(ADMIN, v1::PutScoringModelRequest { model: Some(draft), rescore: true }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(put.model.unwrap().version, 1);
    let job_id = put.rescore_job_id;
    let job = eventually("the rescoring job to finish", Duration::from_secs(60), || async {
        client(&app)
            .get_rescore_job(with_token(READER, v1::GetRescoreJobRequest { job_id: job_id.clone() }))
            .await
            .ok()
            .map(|r| r.into_inner())
            .filter(|j| j.state == v1::RescoreJobState::Done as i32)
    })
    .await;
    assert_eq!((job.total, job.done, job.band_changes), (5, 5, 4));
    for i in 0..4 {
        let s = current(&app, &format!("acme-{i}")).await.unwrap();
        assert_eq!((s.score, s.band, s.model_version), (33.0, v1::HealthBand::Red as i32, 1));
    }
    assert_eq!(current(&app, "acme-green").await.unwrap().score, 93.0);
    // Besides each account's first (live) score, from no band.
    let changes = || async {
        app.published(retain_health::topics::HEALTH_BAND_CHANGED, "notification")
            .await
            .into_iter()
            .filter(|(_, e)| e.from_band != v1::HealthBand::Unspecified as i32)
            .count()
    };
    assert_eq!(changes().await, 4, "each change announced once");

    // Rescoring again changes nothing and announces nothing.
    let again = client(&app)
        .rescore_all(with_token(ADMIN, v1::RescoreAllRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.accounts_queued, 5);
    let job = eventually("the second job to finish", Duration::from_secs(60), || async {
        client(&app)
            .get_rescore_job(with_token(READER, v1::GetRescoreJobRequest { job_id: again.job_id.clone() }))
            .await
            .ok()
            .map(|r| r.into_inner())
            .filter(|j| j.state == v1::RescoreJobState::Done as i32)
    })
    .await;
    assert_eq!(job.band_changes, 0);
    assert_eq!(changes().await, 4);
    let err = client(&app)
        .get_rescore_job(with_token(READER, v1::GetRescoreJobRequest { job_id: "nope".into() }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // The watcher saw the four; it drops after two and resumes from the
    // second's cursor: the other two, nothing twice.
    let first = watch.message().await.unwrap().unwrap();
    let second = watch.message().await.unwrap().unwrap();
    drop(watch);
    assert_eq!(first.from_band, v1::HealthBand::Yellow as i32);
    assert_eq!(first.to_band, v1::HealthBand::Red as i32);
    let mut resumed = client(&app)
        .watch_band_changes(with_token(READER, v1::WatchBandChangesRequest { cursor: second.cursor.clone(), ..Default::default() }))
        .await
        .unwrap()
        .into_inner();
    let third = resumed.message().await.unwrap().unwrap();
    let fourth = resumed.message().await.unwrap().unwrap();
    let mut seen: Vec<String> = [&first, &second, &third, &fourth].iter().map(|c| c.account_id.clone()).collect();
    seen.sort();
    assert_eq!(seen, ["acme-0", "acme-1", "acme-2", "acme-3"]);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), resumed.message()).await.is_err(),
        "nothing after the fourth"
    );
    // Filters: only Green changes from the start (acme-green's first
    // score, nothing else), and a cursor it never issued.
    let mut greens = client(&app)
        .watch_band_changes(with_token(READER, v1::WatchBandChangesRequest { cursor: "c0".into(), to_bands: vec![v1::HealthBand::Green as i32], ..Default::default() }))
        .await
        .unwrap()
        .into_inner();
    let green = greens.message().await.unwrap().unwrap();
    assert_eq!((green.account_id.as_str(), green.from_band), ("acme-green", v1::HealthBand::Unspecified as i32));
    assert!(tokio::time::timeout(Duration::from_millis(500), greens.message()).await.is_err());
    let err = client(&app)
        .watch_band_changes(with_token(READER, v1::WatchBandChangesRequest { cursor: "42".into(), ..Default::default() }))
        .await
        .unwrap_err();
    assert!(err.message().contains("cursor"), "{}", err.message());
});

/// A watch stream would otherwise run until its client leaves: shutdown
/// ends it with UNAVAILABLE and the reason, and the server stops.
#[tokio::test]
async fn a_watch_stream_ends_with_unavailable_when_the_server_shuts_down() {
    let app = spawn(TestDatabase::sqlite().await).await;
    let mut watch = client(&app)
        .watch_band_changes(with_token(READER, v1::WatchBandChangesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let stopping = tokio::spawn(app.stop());
    // A generous bound, not a timing assertion: without the drain the
    // stream would never end.
    let end = tokio::time::timeout(Duration::from_secs(60), watch.message())
        .await
        .expect("the stream ends when the server shuts down")
        .unwrap_err();
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    assert!(
        end.message().contains("reconnect with the last cursor"),
        "{}",
        end.message()
    );
    stopping.await.unwrap().unwrap();
}

// Many rounds of concurrent pages (2,300 accounts: four full pages and a
// short one): every account rescored once with the new version, each band
// change announced once, and the changes are exactly those the domain
// computes for each account.
retain_testkit::storage_test!(async fn a_rescoring_over_many_pages_rescores_each_account_once(db) {
    let app = spawn(db).await;
    let scorer = retain_health::Scorer { db: app.db.conn.clone(), clock: retain_runtime::Clock::system() };
    let snapshots: Vec<v1::AccountMetricsSnapshot> = (0..2_300_i32)
        .map(|i| v1::AccountMetricsSnapshot {
            account_id: format!("acct-{i:05}"),
            as_of: ts(now() - 3_600),
            active_days_30d: Some(i * 7 % 31),
            nps_mean: Some(f64::from(i % 11)),
            tickets_opened_30d: Some(i % 4),
            billing_status: Some("current".into()),
            ..Default::default()
        })
        .collect();
    for chunk in snapshots.chunks(1_000) {
        // Seeded as history: only the rescoring's changes are announced.
        scorer.score_batch("acme", chunk, v1::IngestMode::Backfill).await.unwrap();
    }
    let builtin = tenant_model(&app).await;
    let draft = support_first(&builtin);
    // The domain's answer, account by account: the band each would end in.
    let (old, new) = (
        retain_proto::health::model_from_proto(&builtin).unwrap(),
        retain_proto::health::model_from_proto(&draft).unwrap(),
    );
    let expected_changes = snapshots
        .iter()
        .filter(|s| {
            let snap = retain_proto::health::health_snapshot(s);
            let before = retain_domain::health::score(&old, &snap, None).unwrap();
            let previous = retain_domain::health::PreviousScore {
                score: before.score,
                band: before.band,
                model_version: 0,
                contributions: Default::default(),
            };
            retain_domain::health::score(&new, &snap, Some(&previous)).unwrap().band != before.band
        })
        .count() as i64;
    assert!(expected_changes > 0);
    let put = client(&app)
        .put_scoring_model(with_token(ADMIN, v1::PutScoringModelRequest { model: Some(draft), rescore: true }))
        .await
        .unwrap()
        .into_inner();
    let job = eventually("the rescoring job to finish", Duration::from_secs(120), || async {
        client(&app)
            .get_rescore_job(with_token(READER, v1::GetRescoreJobRequest { job_id: put.rescore_job_id.clone() }))
            .await
            .ok()
            .map(|r| r.into_inner())
            .filter(|j| j.state == v1::RescoreJobState::Done as i32)
    })
    .await;
    assert_eq!((job.total, job.done, job.band_changes), (2_300, 2_300, expected_changes));
    assert_eq!(app.scalar("SELECT COUNT(*) FROM health_scores WHERE model_version = 1").await, 2_300);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM health_current WHERE model_version = 1").await, 2_300);
    let announced = app.published(retain_health::topics::HEALTH_BAND_CHANGED, "notification").await;
    let mut accounts: Vec<String> = announced.iter().map(|(_, e)| e.account_id.clone()).collect();
    accounts.sort();
    accounts.dedup();
    assert_eq!((announced.len() as i64, accounts.len() as i64), (expected_changes, expected_changes));
});

// One rescoring job per tenant and segment waits at a time: a repeat
// returns the pending job's id and queues nothing, instead of an unbounded
// line of duplicates; another segment or tenant gets its own.
retain_testkit::storage_test!(async fn a_repeated_rescore_returns_the_pending_job(db) {
    let clock = retain_runtime::Clock::system();
    let queue = |tenant: &'static str, segment: &'static str| {
        let (conn, clock) = (db.conn.clone(), clock.clone());
        async move { retain_health::jobs::queue(&conn, tenant, segment, &clock).await.unwrap().0 }
    };
    let first = queue("acme", "").await;
    assert_eq!(queue("acme", "").await, first, "a repeat while pending");
    let enterprise = queue("acme", "Enterprise").await;
    let globex = queue("globex", "").await;
    assert!(enterprise != first && globex != first && globex != enterprise);
    let messages = |sql: &str| {
        let conn = db.conn.clone();
        let sql = sql.to_owned();
        async move {
            use sea_orm::ConnectionTrait;
            let row = conn.query_one_raw(sea_orm::Statement::from_string(conn.get_database_backend(), sql)).await.unwrap().unwrap();
            row.try_get_by_index::<i64>(0).unwrap()
        }
    };
    assert_eq!(messages("SELECT COUNT(*) FROM bus_messages WHERE topic = 'health.rescore'").await, 3);
    assert_eq!(messages("SELECT COUNT(*) FROM health_jobs WHERE state < 3").await, 3);
});

// Rescoring jobs take turns across tenants: with one job worker, a big job
// queued first yields after its turn (1,000 accounts here), and a small
// job of another tenant queued behind it finishes while the big one is
// still going — then the big one finishes too, every account once.
retain_testkit::storage_test!(async fn rescoring_jobs_of_different_tenants_take_turns(db) {
    let scorer = retain_health::Scorer { db: db.conn.clone(), clock: retain_runtime::Clock::system() };
    let snapshots = |n: i32| -> Vec<v1::AccountMetricsSnapshot> {
        (0..n)
            .map(|i| v1::AccountMetricsSnapshot {
                account_id: format!("acct-{i:05}"),
                as_of: ts(now() - 3_600),
                active_days_30d: Some(i % 31),
                billing_status: Some("current".into()),
                ..Default::default()
            })
            .collect()
    };
    for chunk in snapshots(4_000).chunks(1_000) {
        scorer.score_batch("acme", chunk, v1::IngestMode::Backfill).await.unwrap();
    }
    scorer.score_batch("globex", &snapshots(300), v1::IngestMode::Backfill).await.unwrap();
    // Both jobs wait on the bus before any worker runs: acme's first.
    let clock = retain_runtime::Clock::system();
    let (big, big_total) = retain_health::jobs::queue(&db.conn, "acme", "", &clock).await.unwrap();
    let (small, _) = retain_health::jobs::queue(&db.conn, "globex", "", &clock).await.unwrap();
    assert_eq!(big_total, 4_000);
    let own = retain_health::HealthSettings { rescore_turn_accounts: 1_000, ..Default::default() };
    let app = spawn_composed(db, settings(), clock, move |ctx| {
        let metrics = retain_metrics::Metrics::build(ctx, Default::default())?;
        Ok(metrics.merge(retain_health::Health::build(ctx, own)?))
    })
    .await;
    let job = |token: &'static str, id: String| {
        let app = &app;
        async move {
            client(app)
                .get_rescore_job(with_token(token, v1::GetRescoreJobRequest { job_id: id }))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let small_done = eventually("globex's job to finish", Duration::from_secs(120), || async {
        Some(job(GLOBEX, small.clone()).await).filter(|j| j.state == v1::RescoreJobState::Done as i32)
    })
    .await;
    assert_eq!((small_done.total, small_done.done), (300, 300));
    let big_then = job(READER, big.clone()).await;
    assert!(big_then.done < 4_000, "acme's job yielded its turn: {big_then:?}");
    let big_done = eventually("acme's job to finish", Duration::from_secs(120), || async {
        Some(job(READER, big.clone()).await).filter(|j| j.state == v1::RescoreJobState::Done as i32)
    })
    .await;
    assert_eq!((big_done.total, big_done.done), (4_000, 4_000), "every account once");
});
