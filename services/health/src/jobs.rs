//! `RescoreAll` as a job on the bus, whose progress can be read.
//!
//! Queuing a job stores it (`health_jobs`: what `GetRescoreJob` reads) and
//! publishes `health.rescore` in the same transaction — or, when the
//! tenant already has a job of that segment pending or running, returns
//! that one's id (one per tenant and segment, a unique index on the
//! unfinished ones). The bus does the rest of what a queue does: any
//! replica's consumer leases the message, retries it with back-off after a
//! failure, dead-letters it after the subscription's attempts; messages of
//! one tenant and segment are handled one at a time.
//!
//! Handling a message rescores the job's accounts in account order,
//! [`PAGES_AT_ONCE`] consecutive pages at a time ([`Scorer::rescore_page`]:
//! one transaction per page, on its own connection; the model now in force
//! for each account's segment, when it differs from the one its score
//! used). After each round it records how far it got and renews its lease
//! on the message. A replica that dies mid-round leaves the lease to
//! expire; the next one resumes after the last recorded account and redoes
//! at most one round — which appends nothing twice and announces no change
//! twice, because a rescored snapshot already has its score of the new
//! version.
//!
//! **Turns.** A job rescores `[health] rescore_turn_accounts` accounts
//! (50,000), then — its progress recorded — publishes its own
//! continuation and acknowledges its message in one transaction: the
//! continuation queues behind the jobs that came meanwhile, so the jobs of
//! every tenant take turns instead of one tenant's segments holding the
//! replica's one job worker.
//!
//! Two pages at once keep both the database and the scorer busy: one
//! page's statements run while the other's are prepared (100,000 accounts:
//! see docs/BENCHMARKS.md). On SQLite, with one connection, they take
//! turns.

use std::time::Duration;

use retain_bus::{Bus, Delivery, Handler, HandlerError};
use retain_proto::v1;
use retain_runtime::Clock;
use retain_runtime::error::Error;
use sea_orm::{DatabaseConnection, TransactionTrait};

use crate::score::Scorer;
use crate::sql;
use crate::topics::RESCORE_REQUESTED;

/// Accounts one transaction rescores.
const PAGE: u64 = 500;
/// Pages rescored concurrently, between two progress records.
const PAGES_AT_ONCE: u64 = 2;

/// Queues a rescoring of the tenant's scored accounts (of `segment` when
/// not empty), or finds the one already pending: (job id, accounts it
/// rescores).
pub async fn queue(
    db: &DatabaseConnection,
    tenant: &str,
    segment: &str,
    clock: &Clock,
) -> Result<(String, i64), Error> {
    let now = clock.now().micros();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let job_id = format!(
        "rescore-{now:x}-{:x}-{:x}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let tx = db.begin().await?;
    let total = sql::count_scored(&tx, tenant, Some(segment).filter(|s| !s.is_empty())).await?;
    if !sql::create_job(&tx, tenant, &job_id, segment, total, now).await? {
        // One is pending or running for this tenant and segment: it
        // rescores everything this one would.
        tx.rollback().await?;
        return sql::pending_job(db, tenant, segment).await?.ok_or_else(|| {
            Error::Unavailable("the pending rescoring job just ended; retry".into())
        });
    }
    let request = v1::RescoreRequested {
        tenant_id: tenant.to_owned(),
        job_id: job_id.clone(),
        segment: segment.to_owned(),
    };
    RESCORE_REQUESTED.publish(&tx, &[request]).await?;
    tx.commit().await?;
    Ok((job_id, total))
}

/// Publishes the bus message of every unfinished job queued before jobs
/// were work on the bus (they have none); once.
pub async fn adopt(db: &DatabaseConnection) -> Result<usize, Error> {
    let tx = db.begin().await?;
    let orphans = sql::unqueued_jobs(&tx).await?;
    let requests: Vec<v1::RescoreRequested> = orphans
        .into_iter()
        .map(|(tenant_id, job_id, segment)| v1::RescoreRequested {
            tenant_id,
            job_id,
            segment,
        })
        .collect();
    RESCORE_REQUESTED.publish(&tx, &requests).await?;
    sql::mark_queued(&tx).await?;
    tx.commit().await?;
    Ok(requests.len())
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
        sql::JobState::Queued => v1::RescoreJobState::Queued,
        sql::JobState::Running => v1::RescoreJobState::Running,
        sql::JobState::Done => v1::RescoreJobState::Done,
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

/// Runs the jobs of `health.rescore` messages. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Rescorer {
    /// Scores each page.
    pub scorer: Scorer,
    /// The bus the messages come from (to renew their leases).
    pub bus: Bus,
    /// How far each renewal extends the lease.
    pub lease: Duration,
    /// Accounts a job rescores before it yields its turn.
    pub turn_accounts: u64,
}

impl Handler for Rescorer {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let request = RESCORE_REQUESTED.decode(delivery)?;
        self.run(&request, delivery)
            .await
            .map_err(|e| HandlerError::transient(e.to_string()))
    }
}

impl Rescorer {
    /// Runs one job from where it got to, to its end — unless the lease on
    /// its message is lost (the replica that holds it now goes on).
    async fn run(&self, request: &v1::RescoreRequested, delivery: &Delivery) -> Result<(), Error> {
        let db = &self.scorer.db;
        let (tenant, job_id) = (request.tenant_id.as_str(), request.job_id.as_str());
        let Some(mut cursor) = sql::job_cursor(db, tenant, job_id).await? else {
            // Done already (a redelivery after the end was recorded).
            return Ok(());
        };
        let segment = request.segment.as_str();
        tracing::info!(%tenant, %job_id, "rescoring");
        let turn_rounds = (self.turn_accounts / (PAGE * PAGES_AT_ONCE)).max(1);
        for round in 1.. {
            // The round's pages: (after, through] account ranges.
            let ends = sql::page_ends(db, tenant, segment, &cursor, PAGE, PAGES_AT_ONCE).await?;
            let finished =
                ends.len() < PAGES_AT_ONCE as usize || ends.last().is_none_or(|e| e.1 < PAGE);
            let mut after = cursor.clone();
            let pages = ends.iter().map(|(through, _)| {
                let page = (after.clone(), through.clone());
                after.clone_from(through);
                page
            });
            let rescored =
                futures::future::try_join_all(pages.map(|(after, through)| async move {
                    self.scorer
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
            // Renewed before the progress is recorded: a replica that lost
            // the lease records nothing over the one that took it.
            if !finished && !self.bus.renew(delivery, self.lease).await? {
                tracing::info!(%tenant, %job_id, "rescoring continues on the replica that took its lease");
                return Ok(());
            }
            let now = self.scorer.clock.now().micros();
            let progress = sql::Progress {
                done: accounts,
                band_changes: changes,
                cursor: &cursor,
                finished,
            };
            sql::job_progress(db, (tenant, job_id), &progress, now).await?;
            if finished {
                return Ok(());
            }
            if round % turn_rounds == 0 {
                // Its turn is over: the rest queues behind what came since.
                let tx = db.begin().await?;
                RESCORE_REQUESTED
                    .publish(&tx, std::slice::from_ref(request))
                    .await?;
                retain_bus::ack_in(&tx, delivery).await?;
                tx.commit().await?;
                tracing::info!(%tenant, %job_id, cursor = %cursor, "rescoring yields its turn");
                return Ok(());
            }
        }
        Ok(())
    }
}
