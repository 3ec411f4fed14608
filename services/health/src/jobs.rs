//! `RescoreAll` as a background job whose progress can be read.
//!
//! Queuing a job stores it (`health_jobs`) with the number of accounts to
//! rescore and returns its id; any replica's worker takes the oldest
//! unfinished job whose lease has expired and rescores its accounts in
//! account order, [`PAGES_AT_ONCE`] consecutive pages at a time
//! ([`Scorer::rescore_page`]: one transaction per page, on its own
//! connection; the model now in force for each account's segment, when it
//! differs from the one its score used). After each round it records how
//! far it got, renewing its lease. A replica that dies mid-round leaves
//! the lease to expire; the next one resumes after the last recorded
//! account and redoes at most one round — which appends nothing twice and
//! announces no change twice, because a rescored snapshot already has its
//! score of the new version.
//!
//! Two pages at once keep both the database and the scorer busy: one
//! page's statements run while the other's are prepared (100,000 accounts:
//! see docs/BENCHMARKS.md). On SQLite, with one connection, they take
//! turns.

use std::time::Duration;

use retain_proto::v1;
use retain_runtime::Clock;
use retain_runtime::error::Error;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use crate::score::Scorer;
use crate::sql;

/// Accounts one transaction rescores.
const PAGE: u64 = 500;
/// Pages rescored concurrently, between two progress records.
const PAGES_AT_ONCE: u64 = 2;
/// How long a worker holds a job without recording progress.
const LEASE: Duration = Duration::from_secs(60);
/// How often an idle worker looks for a job.
const IDLE: Duration = Duration::from_millis(500);

/// Queues a rescoring of the tenant's scored accounts (of `segment` when
/// not empty): (job id, accounts queued).
pub async fn queue(
    db: &DatabaseConnection,
    tenant: &str,
    segment: &str,
    clock: &Clock,
) -> Result<(String, i64), Error> {
    let now = clock.now().micros();
    let total = sql::count_scored(db, tenant, Some(segment).filter(|s| !s.is_empty())).await?;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let job_id = format!(
        "rescore-{now:x}-{:x}-{:x}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    sql::create_job(db, tenant, &job_id, segment, total, now).await?;
    Ok((job_id, total))
}

/// A job's progress on the wire.
pub async fn progress(
    db: &DatabaseConnection,
    tenant: &str,
    job_id: &str,
) -> Result<v1::RescoreJob, Error> {
    let job = sql::job(db, tenant, job_id).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "rescoring job {}",
            retain_domain::validation::quote(job_id)
        ))
    })?;
    let state = match job.state {
        1 => v1::RescoreJobState::Queued,
        2 => v1::RescoreJobState::Running,
        _ => v1::RescoreJobState::Done,
    };
    Ok(v1::RescoreJob {
        job_id: job_id.to_owned(),
        segment: job.segment,
        state: state as i32,
        total: job.total,
        done: job.done,
        band_changes: job.band_changes,
        created_at: Some(retain_proto::convert::from_micros(job.created_at)),
        updated_at: Some(retain_proto::convert::from_micros(job.updated_at)),
    })
}

/// Works through queued jobs until `stop`.
pub async fn run(scorer: Scorer, owner: String, stop: CancellationToken) {
    loop {
        match work_one(&scorer, &owner, &stop).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "rescoring failed; the job resumes later"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(IDLE) => {}
        }
    }
}

/// Takes one job and runs it to its end (or until `stop`); `false` when
/// there was none.
async fn work_one(scorer: &Scorer, owner: &str, stop: &CancellationToken) -> Result<bool, Error> {
    let db = &scorer.db;
    let lease = |now: i64| now + i64::try_from(LEASE.as_micros()).unwrap_or(i64::MAX);
    let now = scorer.clock.now().micros();
    let Some((tenant, job_id, segment, mut cursor)) =
        sql::claim_job(db, owner, now, lease(now)).await?
    else {
        return Ok(false);
    };
    tracing::info!(%tenant, %job_id, "rescoring");
    loop {
        if stop.is_cancelled() {
            return Ok(true);
        }
        // The round's pages: (after, through] account ranges.
        let ends = sql::page_ends(db, &tenant, &segment, &cursor, PAGE, PAGES_AT_ONCE).await?;
        let finished =
            ends.len() < PAGES_AT_ONCE as usize || ends.last().is_none_or(|e| e.1 < PAGE);
        let mut after = cursor.clone();
        let pages = ends.iter().map(|(through, _)| {
            let page = (after.clone(), through.clone());
            after.clone_from(through);
            page
        });
        let (tenant, segment) = (tenant.as_str(), segment.as_str());
        let rescored = futures::future::try_join_all(pages.map(|(after, through)| async move {
            scorer
                .rescore_page(tenant, segment, (&after, &through))
                .await
        }))
        .await?;
        let (accounts, changes) = rescored
            .iter()
            .fold((0, 0), |(a, c), (pa, pc)| (a + pa, c + pc));
        if let Some((last, _)) = ends.last() {
            cursor.clone_from(last);
        }
        let now = scorer.clock.now().micros();
        let held = sql::job_progress(
            db,
            (tenant, &job_id, owner),
            accounts,
            changes,
            &cursor,
            finished,
            now,
            lease(now),
        )
        .await?;
        if !held || finished {
            return Ok(true);
        }
    }
}
