//! Group commit: concurrent calls share transactions.
//!
//! Every call's valid signals go to one writer task per replica, which
//! takes whatever calls are waiting (up to a signal budget), writes them in
//! one transaction and answers each. One transaction at a time means
//! concurrent calls never wait on each other's row locks (accounts, users
//! and the bus's per-account keys are shared between batches), and many
//! small calls share one commit (one WAL flush). The transaction is still
//! committed before any of its calls is answered.
//!
//! `all_or_nothing` calls are written alone ([`write_batches`] with
//! rollback on conflict), since their rollback must not undo others' work.

use std::collections::HashMap;

use retain_proto::v1;
use retain_runtime::Workers;
use retain_runtime::error::Error;
use sea_orm::{DatabaseConnection, TransactionTrait};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::intake::Prepared;
use crate::recent::Recent;
use crate::write::{self, Written};

/// One call's valid signals, as the writer sees them.
#[derive(Debug)]
pub struct Batch<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// LIVE or BACKFILL.
    pub mode: v1::IngestMode,
    /// Valid signals, in request order.
    pub signals: Vec<&'a Prepared>,
}

/// Writes `batches` in one transaction; one `Written` per signal of each
/// batch. With `all_or_nothing`, any conflict rolls the transaction back
/// (the outcomes still say which signals conflicted).
pub async fn write_batches(
    db: &DatabaseConnection,
    recent: &Recent,
    batches: &[Batch<'_>],
    all_or_nothing: bool,
) -> Result<Vec<Vec<Written>>, Error> {
    let mut out: Vec<Vec<Written>> = batches
        .iter()
        .map(|b| vec![Written::Accepted; b.signals.len()])
        .collect();
    let tx = db.begin().await?;
    let mut after_commit = Vec::new();
    // Batches of one tenant and mode are written together.
    let mut groups: Vec<(&str, v1::IngestMode, Vec<usize>)> = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|(t, m, _)| *t == b.tenant && *m == b.mode)
        {
            Some(g) => g.2.push(i),
            None => groups.push((b.tenant, b.mode, vec![i])),
        }
    }
    // The same order in every transaction, so two writers touching the same
    // rows lock them in the same order and cannot deadlock.
    groups.sort_by_key(|(t, m, _)| (*t, *m as i32));
    for (tenant, mode, members) in groups {
        // The first occurrence of an event id claims it; a later one (the
        // same event retried by a concurrent call) is compared with what
        // is stored once this transaction commits.
        let mut first: HashMap<&str, usize> = HashMap::new();
        let mut unique: Vec<&Prepared> = Vec::new();
        // (batch, position, index in `unique`, is the first occurrence)
        let mut slots: Vec<(usize, usize, usize, bool)> = Vec::new();
        for &b in &members {
            for (k, p) in batches[b].signals.iter().enumerate() {
                match first.get(p.wire.event_id.as_str()) {
                    Some(&u) => slots.push((b, k, u, false)),
                    None => {
                        first.insert(&p.wire.event_id, unique.len());
                        slots.push((b, k, unique.len(), true));
                        unique.push(p);
                    }
                }
            }
        }
        let (claimed, stored) = write::claim_ids(&tx, tenant, &unique).await?;
        for (b, k, u, is_first) in slots {
            out[b][k] = if is_first {
                claimed[u]
            } else {
                let stored_hash: &[u8] = match claimed[u] {
                    Written::Accepted => &unique[u].hash,
                    _ => stored
                        .get(unique[u].wire.event_id.as_str())
                        .map_or(&[][..], Vec::as_slice),
                };
                if stored_hash == batches[b].signals[k].hash {
                    Written::Duplicate
                } else {
                    Written::Conflict
                }
            };
        }
        if all_or_nothing && claimed.contains(&Written::Conflict) {
            tx.rollback().await?;
            return Ok(out);
        }
        let accepted: Vec<&Prepared> = unique
            .iter()
            .zip(&claimed)
            .filter(|(_, w)| **w == Written::Accepted)
            .map(|(p, _)| *p)
            .collect();
        if accepted.is_empty() {
            continue;
        }
        let create = recent.accounts_to_create(tenant, &write::touched_accounts(&accepted));
        let users = recent.users_to_write(tenant, write::user_sightings(&accepted));
        write::insert_signals(&tx, tenant, mode, &accepted).await?;
        // Row locks from here on, least contended first: a row another
        // replica's transaction holds is waited for as late as possible.
        write::upsert_users(&tx, tenant, &users).await?;
        write::upsert_accounts(&tx, tenant, &create, &accepted).await?;
        let messages = write::signals_recorded(tenant, mode, &accepted);
        retain_bus::topics::SIGNALS_RECORDED
            .publish(&tx, &messages)
            .await
            .map_err(bus_error)?;
        after_commit.push((tenant, create, users));
    }
    tx.commit().await?;
    for (tenant, create, users) in after_commit {
        recent.committed(tenant, &create, &users);
    }
    Ok(out)
}

/// One writer: takes the calls waiting, writes them in one transaction,
/// answers each, and goes back for more, until `stop` is cancelled. A
/// transaction under way is finished and answered first; calls still queued
/// when the last writer stops are answered `UNAVAILABLE`.
async fn writer(
    db: DatabaseConnection,
    recent: std::sync::Arc<Recent>,
    queue: std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    max_signals: usize,
    stop: CancellationToken,
) {
    loop {
        // One writer at a time takes the calls waiting now.
        let mut rx = tokio::select! {
            () = stop.cancelled() => return,
            rx = queue.lock() => rx,
        };
        let first = tokio::select! {
            () = stop.cancelled() => return,
            job = rx.recv() => match job {
                Some(job) => job,
                None => return,
            },
        };
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
        drop(rx);
        let batches: Vec<Batch<'_>> = jobs
            .iter()
            .map(|j| Batch {
                tenant: &j.tenant,
                mode: j.mode,
                signals: j.signals.iter().collect(),
            })
            .collect();
        let result = write_batches(&db, &recent, &batches, false).await;
        drop(batches);
        tracing::debug!(
            calls = jobs.len(),
            signals = n,
            ok = result.is_ok(),
            "group committed"
        );
        match result {
            Ok(per_job) => {
                for (job, written) in jobs.into_iter().zip(per_job) {
                    let _ = job.reply.send(Ok(written));
                }
            }
            Err(e) => {
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// A bus failure keeps its meaning: a lost database connection is
/// `UNAVAILABLE` (retry), like any other database error.
fn bus_error(e: retain_bus::BusError) -> Error {
    match e {
        retain_bus::BusError::Db(db) => Error::from(db),
        other => Error::Internal(format!("bus: {other}")),
    }
}

/// A call waiting for the writer.
#[derive(Debug)]
struct Job {
    tenant: String,
    mode: v1::IngestMode,
    signals: Vec<Prepared>,
    reply: oneshot::Sender<Result<Vec<Written>, Error>>,
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
        recent: std::sync::Arc<Recent>,
        writers: usize,
        max_signals: usize,
    ) -> (Self, Workers) {
        let (tx, rx) = mpsc::channel::<Job>(1_024);
        let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
        let mut workers = Workers::new();
        for i in 0..writers.max(1) {
            let (db, recent, rx) = (db.clone(), recent.clone(), rx.clone());
            workers.add(format!("ingestion.group-commit-{i}"), move |stop| {
                writer(db, recent, rx, max_signals, stop)
            });
        }
        (Self { tx }, workers)
    }

    /// Writes `signals` in the next shared transaction and returns their
    /// outcomes once it has committed.
    pub async fn submit(
        &self,
        tenant: &str,
        mode: v1::IngestMode,
        signals: Vec<Prepared>,
    ) -> Result<Vec<Written>, Error> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job {
                tenant: tenant.to_owned(),
                mode,
                signals,
                reply,
            })
            .await
            .map_err(|_| Error::Unavailable("the ingestion writer has stopped".into()))?;
        match answer.await {
            Ok(Ok(w)) => Ok(w),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Unavailable(
                "the ingestion writer has stopped".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbErr, RuntimeErr};

    use super::*;

    #[test]
    fn a_lost_connection_in_the_bus_is_unavailable_for_every_call() {
        let lost = retain_bus::BusError::Db(DbErr::Conn(RuntimeErr::Internal(
            "connection reset".into(),
        )));
        let e = bus_error(lost);
        assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
        // Each call of a shared transaction gets the same code.
        assert!(matches!(e.clone(), Error::Unavailable(_)));
    }
}
