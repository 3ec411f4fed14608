//! Group commit: concurrent calls share transactions. This module only
//! batches; [`crate::commit`] writes.
//!
//! Every call's valid signals go to a queue; a writer takes whatever calls
//! are waiting (up to a signal budget), commits them in one transaction and
//! answers each. One transaction at a time per writer means concurrent
//! calls never wait on each other's row locks, and many small calls share
//! one commit (one WAL flush). The transaction is still committed before
//! any of its calls is answered.
//!
//! When a shared transaction fails for anything but an unavailable
//! database, each of its calls is retried alone, so one caller's data can
//! never fail another caller's call. `all_or_nothing` calls never come here
//! (their rollback must not undo others' work).

use std::sync::Arc;

use retain_runtime::error::Error;
use retain_runtime::{Clock, Workers};
use sea_orm::DatabaseConnection;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::commit::{self, Call, Verdict};
use crate::intake::Prepared;
use crate::recent::Recent;

/// A call waiting for a writer.
#[derive(Debug)]
struct Job {
    tenant: String,
    signals: Vec<Prepared>,
    reply: oneshot::Sender<Result<Vec<Verdict>, Error>>,
    /// The calling request's span: the transaction runs in the first
    /// call's, so the messages it publishes carry that call's trace.
    span: tracing::Span,
}

/// The handle calls submit their signals to.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// The handle, and `writers` writers declared (not started: the server
    /// starts and stops them). A transaction takes the calls waiting when
    /// its writer is free, until it holds `max_signals` signals.
    pub fn new(
        db: DatabaseConnection,
        recent: Arc<Recent>,
        clock: Clock,
        writers: usize,
        max_signals: usize,
    ) -> (Self, Workers) {
        let (tx, rx) = mpsc::channel::<Job>(1_024);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Workers::new();
        for i in 0..writers.max(1) {
            let (db, recent, rx, clock) = (db.clone(), recent.clone(), rx.clone(), clock.clone());
            workers.add(format!("ingestion.group-commit-{i}"), move |stop| {
                writer(db, recent, clock, rx, max_signals, stop)
            });
        }
        (Self { tx }, workers)
    }

    /// Writes `signals` in the next shared transaction and returns their
    /// verdicts once it has committed.
    pub async fn submit(
        &self,
        tenant: &str,
        signals: Vec<Prepared>,
    ) -> Result<Vec<Verdict>, Error> {
        let stopped = || Error::Unavailable("the ingestion writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job {
                tenant: tenant.to_owned(),
                signals,
                reply,
                span: tracing::Span::current(),
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// One writer: takes the calls waiting, commits them together, answers
/// each, and goes back for more, until `stop` is cancelled. A transaction
/// under way is finished and answered first; calls still queued when the
/// last writer stops are answered `UNAVAILABLE`.
async fn writer(
    db: DatabaseConnection,
    recent: Arc<Recent>,
    clock: Clock,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    max_signals: usize,
    stop: CancellationToken,
) {
    loop {
        let jobs = tokio::select! {
            () = stop.cancelled() => return,
            jobs = take_waiting(&queue, max_signals) => match jobs {
                Some(jobs) => jobs,
                None => return,
            },
        };
        let span = jobs[0].span.clone();
        let results = commit_shared(&db, &recent, &jobs, clock.now_micros())
            .instrument(span)
            .await;
        for (job, result) in jobs.into_iter().zip(results) {
            let _ = job.reply.send(result);
        }
    }
}

/// The calls waiting now, at least one (waits for it), up to `max_signals`
/// signals; `None` once the queue is closed. One writer at a time takes.
async fn take_waiting(queue: &Mutex<mpsc::Receiver<Job>>, max_signals: usize) -> Option<Vec<Job>> {
    let mut rx = queue.lock().await;
    let first = rx.recv().await?;
    let mut n = first.signals.len();
    let mut jobs = vec![first];
    while n < max_signals {
        match rx.try_recv() {
            Ok(j) => {
                n += j.signals.len();
                jobs.push(j);
            }
            Err(_) => break,
        }
    }
    Some(jobs)
}

/// The calls of `jobs`, as the transaction sees them.
fn calls(jobs: &[Job]) -> Vec<Call<'_>> {
    jobs.iter()
        .map(|j| Call {
            tenant: &j.tenant,
            signals: &j.signals,
        })
        .collect()
}

/// Commits `jobs` in one transaction; if it fails for a reason other than
/// an unavailable database and holds more than one call, commits each call
/// alone so only the call at fault fails.
async fn commit_shared(
    db: &DatabaseConnection,
    recent: &Recent,
    jobs: &[Job],
    now: i64,
) -> Vec<Result<Vec<Verdict>, Error>> {
    let signals: usize = jobs.iter().map(|j| j.signals.len()).sum();
    match commit::commit(db, recent, &calls(jobs), false, now).await {
        Ok(per_call) => {
            tracing::debug!(calls = jobs.len(), signals, "group committed");
            per_call.into_iter().map(Ok).collect()
        }
        Err(e) if jobs.len() == 1 || matches!(e, Error::Unavailable(_)) => {
            jobs.iter().map(|_| Err(e.clone())).collect()
        }
        Err(e) => {
            tracing::warn!(calls = jobs.len(), error = %e, "shared transaction failed; committing its calls one by one");
            let mut results = Vec::with_capacity(jobs.len());
            for job in jobs {
                let alone =
                    commit::commit(db, recent, &calls(std::slice::from_ref(job)), false, now).await;
                results.push(alone.map(|mut v| v.pop().unwrap_or_default()));
            }
            results
        }
    }
}
