//! The consumer of `signals.recorded`: recomputes the snapshot of each
//! account a message names, stores it and publishes `account.metrics`.
//!
//! A message (possibly several publications folded together) only says
//! *which* account changed, and from when; the snapshot is recomputed from
//! the account's stored signals — those the change can reach, not its
//! whole history ([`Recompute::compute`]) — so handling a message twice,
//! or messages out of order,
//! writes the same snapshot: delivery is at least once, the result exactly
//! once. The snapshot, its `account.metrics` message and the account's
//! monthly rollup rows (`rollups`) commit together.

use crate::settings::Tenants;
use crate::topics::ACCOUNT_METRICS;
use retain_bus::{Delivery, Handler, HandlerError};
use retain_domain::Timestamp;
use retain_domain::signal;
use retain_domain::snapshot::account_snapshot;
use retain_domain::time::DAY;
use retain_ingestion::topics::SIGNALS_RECORDED;
use retain_proto::{convert, v1};
use retain_runtime::Clock;
use retain_runtime::error::Error;
use sea_orm::{DatabaseConnection, TransactionTrait};

use crate::sql;

/// Recomputes snapshots. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Recompute {
    /// The database (ingestion's tables and metrics' own).
    pub db: DatabaseConnection,
    /// Tenant settings (currency, onboarding checklist).
    pub tenants: std::sync::Arc<Tenants>,
    /// Now.
    pub clock: Clock,
}

impl Handler for Recompute {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let event = SIGNALS_RECORDED.decode(delivery)?;
        let merged = event.merged();
        let changed_from = merged
            .earliest_occurred_at
            .as_ref()
            .and_then(convert::timestamp);
        self.account_acking(
            &event.tenant_id,
            &event.account_id,
            merged.mode(),
            changed_from,
            Some(delivery),
        )
        .await
        .map_err(|e| HandlerError::transient(e.to_string()))
    }
}

impl Recompute {
    /// Recomputes, a page at a time, every snapshot computed before the
    /// start of the current UTC day: the "last 30 days" windows move with
    /// the clock even when no signal arrives. Cheap when nothing is stale
    /// (one indexed query). Returns how many were refreshed. A page none
    /// of whose snapshots could be stored (each already newer than what
    /// could be read) ends the round instead of being read again.
    pub async fn refresh_stale(&self, page: u64) -> Result<usize, Error> {
        let today = Timestamp::from_seconds(self.clock.now().day_number() * DAY);
        let mut refreshed = 0;
        loop {
            let stale = sql::stale_snapshots(&self.db, today.micros(), page).await?;
            let mut stored = 0;
            for (tenant, account) in &stale {
                let computed = self
                    .compute(tenant, account, v1::IngestMode::Live, None)
                    .await?;
                stored += usize::from(self.store(&computed, None).await?);
            }
            refreshed += stored;
            if stored == 0 {
                return Ok(refreshed);
            }
        }
    }

    /// Runs [`Recompute::refresh_stale`] every `every` until `stop`.
    pub async fn refresh_daily(
        &self,
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            match self.refresh_stale(1_000).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(refreshed = n, "snapshots refreshed for a new day"),
                Err(e) => tracing::warn!(error = %e, "refreshing snapshots failed; retrying later"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Recomputes, stores and announces one account's snapshot.
    pub async fn account(
        &self,
        tenant: &str,
        account: &str,
        mode: v1::IngestMode,
    ) -> Result<(), Error> {
        self.account_acking(tenant, account, mode, None, None).await
    }

    /// [`Recompute::account`], acknowledging `delivery` in the same
    /// transaction: the snapshot, its announcement and the acknowledgement
    /// commit together (one WAL flush, and exactly once). `changed_from` is
    /// the earliest signal the message announces: finished months it cannot
    /// change are not recomputed (`None`: all are).
    async fn account_acking(
        &self,
        tenant: &str,
        account: &str,
        mode: v1::IngestMode,
        changed_from: Option<retain_domain::Timestamp>,
        delivery: Option<&Delivery>,
    ) -> Result<(), Error> {
        let computed = self.compute(tenant, account, mode, changed_from).await?;
        self.store(&computed, delivery).await.map(|_| ())
    }

    /// Step 1: reads the account's signals and computes its snapshot and
    /// monthly rows, writing nothing.
    ///
    /// With `changed_from` (the earliest signal the message announces),
    /// what it reads is bounded by what changed, not by the account's age:
    /// every signal but sessions and actions (the few its lifetime facts
    /// come from), then sessions and actions only from
    /// [`crate::rollups::dense_read_from`] on — the snapshot's 30-day
    /// window and the months those signals can change — and the earliest
    /// session and action before that. Without it (the daily refresh, a
    /// direct recompute) it reads everything. Both give the same result
    /// (`tests/windowed.rs` checks it on generated histories).
    pub async fn compute(
        &self,
        tenant: &str,
        account: &str,
        mode: v1::IngestMode,
        changed_from: Option<retain_domain::Timestamp>,
    ) -> Result<Computed, Error> {
        self.compute_reading(tenant, account, mode, changed_from, Reading::Changed)
            .await
    }

    /// [`Recompute::compute`], reading the account's whole history with
    /// [`Reading::All`] whatever `changed_from` says: the reference the
    /// windowed read is tested against.
    pub async fn compute_reading(
        &self,
        tenant: &str,
        account: &str,
        mode: v1::IngestMode,
        changed_from: Option<retain_domain::Timestamp>,
        reading: Reading,
    ) -> Result<Computed, Error> {
        let settings = self.tenants.of(tenant);
        let now = self.clock.now();
        let window = changed_from.filter(|_| reading == Reading::Changed);
        // The reads (async), then the decoding and the computation on the
        // background pool: off the async workers, which keep answering
        // calls meanwhile, and behind calls when the cores are busy.
        let read = match window {
            None => sql::account_signals(&self.db, tenant, account).await?,
            Some(from) => {
                let mut read = sql::account_sparse_signals(&self.db, tenant, account).await?;
                let sparse: Vec<signal::Signal> = read
                    .signals
                    .iter()
                    .filter_map(|w| parse(w, settings, (tenant, account)))
                    .collect();
                match crate::rollups::dense_read_from(&sparse, from, now) {
                    Some(dense_from) => {
                        let dense = sql::account_dense_signals_since(
                            &self.db,
                            tenant,
                            account,
                            dense_from.micros(),
                        )
                        .await?;
                        read.extend(dense);
                        read
                    }
                    None => sql::account_signals(&self.db, tenant, account).await?,
                }
            }
        };
        let (tenant_id, account_id) = (tenant.to_owned(), account.to_owned());
        let tenants = self.tenants.clone();
        let (snapshot, rollups, (signals_read, read_version)) =
            retain_runtime::background::run(move || {
                let settings = tenants.of(&tenant_id);
                let read_count = i64::try_from(read.signals.len()).unwrap_or(i64::MAX);
                // Each wire signal is dropped as it is converted: a large
                // account's read is not held twice.
                let signals: Vec<signal::Signal> = read
                    .signals
                    .into_iter()
                    .filter_map(|w| parse(&w, settings, (&tenant_id, &account_id)))
                    .collect();
                // As of now — or of the account's latest signal when a
                // client's clock is a little ahead (ingestion accepts up to
                // max_future_seconds), so an accepted signal is never left out.
                let latest = signals.iter().map(|s| s.occurred_at).max();
                let as_of = latest.map_or(now, |l| if l >= now { l.plus_micros(1) } else { now });
                let snapshot = account_snapshot(&signals, as_of, &settings.onboarding_checklist);
                let rollups = crate::rollups::account_rollups(
                    &signals,
                    settings,
                    snapshot.as_of,
                    changed_from,
                )
                .map_err(|e| {
                    Error::Internal(format!("monthly contributions of {account_id}: {e}"))
                })?;
                Ok::<_, Error>((snapshot, rollups, (read_count, read.read_version)))
            })
            .await
            .map_err(|e| Error::Internal(format!("recompute: {e}")))??;
        Ok(Computed {
            tenant: tenant.to_owned(),
            account: account.to_owned(),
            mode,
            signals_read,
            read_version,
            snapshot,
            rollups,
            now,
        })
    }

    /// Step 2: stores what [`Recompute::compute`] computed — the snapshot,
    /// the month rows that changed and the `account.metrics` announcement —
    /// and acknowledges `delivery`, in one transaction. Unless a snapshot
    /// read at a later read version (the latest `ingested_at` it read; or
    /// the same, as of a later instant) is already stored: the daily
    /// refresh recomputes outside the
    /// bus's per-account order, so a consumer may have stored a newer
    /// snapshot since this one was read; then nothing is written but the
    /// acknowledgement. Returns whether it was stored.
    ///
    /// Lock order: the account's `account_metrics` row (taken by the
    /// conditional upsert), then its month rows.
    pub async fn store(
        &self,
        computed: &Computed,
        delivery: Option<&Delivery>,
    ) -> Result<bool, Error> {
        let Computed {
            tenant,
            account,
            mode,
            signals_read,
            read_version,
            snapshot: snap,
            rollups,
            now,
        } = computed;
        let (tenant, account, now) = (tenant.as_str(), account.as_str(), *now);
        let settings = self.tenants.of(tenant);
        let tx = self.db.begin().await?;
        let row = sql::account_row(&tx, tenant, account).await?;
        let record = retain_domain::Account {
            account_id: account.to_owned(),
            name: row.as_ref().and_then(|r| r.name.clone()),
            segment: row.as_ref().and_then(|r| r.segment.clone()),
            plan: row.as_ref().and_then(|r| r.plan.clone()),
            csm_owner_email: row.as_ref().and_then(|r| r.csm_owner_email.clone()),
            contact_emails: row.as_ref().map_or_else(Vec::new, |r| {
                r.contact_emails
                    .split('\n')
                    .filter(|e| !e.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
            seats: None,
            lifecycle: None,
            renewal_date: None,
            acquisition_cost: None,
            created_at: now,
            updated_at: now,
        };
        let wire = convert::snapshot_to_proto(snap, &record, settings.base_currency);
        let stored = sql::save_snapshot(
            &tx,
            tenant,
            account,
            &wire,
            (snap.as_of.micros(), *signals_read, *read_version),
            now.micros(),
        )
        .await?;
        if stored {
            let cell = (
                record.segment.as_deref().unwrap_or(""),
                record.plan.as_deref().unwrap_or(""),
            );
            crate::rollups::save(&tx, tenant, account, cell, rollups).await?;
            let event = v1::AccountMetricsUpdated {
                tenant_id: tenant.to_owned(),
                snapshot: Some(wire),
                mode: *mode as i32,
            };
            // Portfolio-wide costs are no account: nothing to score or route.
            if account != retain_domain::signal::PORTFOLIO {
                ACCOUNT_METRICS
                    .publish(&tx, &[event])
                    .await
                    .map_err(Error::from)?;
            }
        }
        if let Some(d) = delivery
            && !retain_bus::ack_in(&tx, d).await.map_err(Error::from)?
        {
            // The lease was lost (it expired and another replica has the
            // message): that replica's recompute counts, not this one.
            tx.rollback().await?;
            return Ok(false);
        }
        tx.commit().await?;
        Ok(stored)
    }
}

/// One account's recompute, computed by [`Recompute::compute`] and not yet
/// stored.
#[derive(Debug)]
pub struct Computed {
    tenant: String,
    account: String,
    mode: v1::IngestMode,
    /// How many stored signals it was computed from.
    signals_read: i64,
    /// The latest `ingested_at` among them: the order of two writers.
    read_version: i64,
    snapshot: retain_domain::snapshot::AccountSnapshot,
    rollups: crate::rollups::AccountRollups,
    now: Timestamp,
}

impl Computed {
    /// The snapshot computed.
    pub fn snapshot(&self) -> &retain_domain::snapshot::AccountSnapshot {
        &self.snapshot
    }

    /// The monthly rows computed.
    pub fn rollups(&self) -> &crate::rollups::AccountRollups {
        &self.rollups
    }

    /// How many stored signals were read.
    pub fn signals_read(&self) -> i64 {
        self.signals_read
    }
}

/// What [`Recompute::compute_reading`] reads of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// What the changed signals can reach ([`Recompute::compute`]).
    Changed,
    /// The whole history.
    All,
}

/// A stored signal under the tenant's rules, or `None` (logged) for one
/// that no longer passes them.
fn parse(
    wire: &v1::Signal,
    settings: &crate::settings::Tenant,
    (tenant, account): (&str, &str),
) -> Option<signal::Signal> {
    let parsed =
        convert::stored_signal(wire, settings.base_currency, &settings.onboarding_checklist);
    if let Err(v) = &parsed {
        tracing::warn!(%tenant, %account, event_id = %wire.event_id, violations = %v, "stored signal skipped");
    }
    parsed.ok()
}
