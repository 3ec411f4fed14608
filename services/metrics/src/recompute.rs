//! The consumer of `signals.recorded`: recomputes the snapshot of each
//! account a message names, stores it and publishes `account.metrics`.
//!
//! A message (possibly several publications folded together) only says
//! *which* account changed; the snapshot is recomputed from the account's
//! stored signals, so handling a message twice, or messages out of order,
//! writes the same snapshot: delivery is at least once, the result exactly
//! once. The snapshot, its `account.metrics` message and the account's
//! monthly rollup rows (`rollups`) commit together.

use retain_bus::topics::{ACCOUNT_METRICS, SIGNALS_RECORDED};
use retain_bus::{Delivery, Handler, HandlerError};
use retain_domain::Timestamp;
use retain_domain::signal::{self, Rules};
use retain_domain::snapshot::account_snapshot;
use retain_domain::time::DAY;
use retain_proto::{convert, v1};
use retain_runtime::Clock;
use retain_runtime::config::Tenants;
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};

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
    /// (one indexed query). Returns how many were refreshed.
    pub async fn refresh_stale(&self, page: u64) -> Result<usize, DbErr> {
        let today = Timestamp::from_seconds(self.clock.now().day_number() * DAY);
        let mut refreshed = 0;
        loop {
            let stale = sql::stale_snapshots(&self.db, today.micros(), page).await?;
            if stale.is_empty() {
                return Ok(refreshed);
            }
            for (tenant, account) in &stale {
                self.account(tenant, account, v1::IngestMode::Live).await?;
            }
            refreshed += stale.len();
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
    ) -> Result<(), DbErr> {
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
    ) -> Result<(), DbErr> {
        let settings = self.tenants.of(tenant);
        let now = self.clock.now();
        let stored = sql::account_signals(&self.db, tenant, account).await?;
        // Stored signals were valid when accepted; they are parsed again
        // without the rules that depend on when they arrived.
        let rules = Rules {
            now,
            max_future_seconds: i64::MAX / 4,
            max_past_seconds: None,
            base_currency: settings.base_currency,
            checklist: &settings.onboarding_checklist,
        };
        let signals: Vec<signal::Signal> = stored
            .iter()
            .filter_map(|wire| {
                let parsed = convert::signal_from_proto(wire)
                    .and_then(|raw| signal::validate(&raw, &rules));
                if let Err(v) = &parsed {
                    tracing::warn!(%tenant, %account, event_id = %wire.event_id, violations = %v, "stored signal skipped");
                }
                parsed.ok()
            })
            .collect();
        // As of now — or of the account's latest signal when a client's
        // clock is a little ahead (ingestion accepts up to
        // max_future_seconds), so an accepted signal is never left out.
        let latest = signals.iter().map(|s| s.occurred_at).max();
        let as_of = latest.map_or(now, |l| if l >= now { l.plus_micros(1) } else { now });
        let snap = account_snapshot(&signals, as_of, &settings.onboarding_checklist);
        let rollups = crate::rollups::account_rollups(&signals, settings, snap.as_of, changed_from)
            .map_err(|e| DbErr::Custom(format!("monthly contributions of {account}: {e}")))?;
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
        let cell = (
            record.segment.as_deref().unwrap_or(""),
            record.plan.as_deref().unwrap_or(""),
        );
        crate::rollups::save(&tx, tenant, account, cell, &rollups).await?;
        let wire = convert::snapshot_to_proto(&snap, &record, settings.base_currency);
        sql::save_snapshot(
            &tx,
            tenant,
            account,
            &wire,
            snap.as_of.micros(),
            now.micros(),
        )
        .await?;
        let event = v1::AccountMetricsUpdated {
            tenant_id: tenant.to_owned(),
            snapshot: Some(wire),
            mode: mode as i32,
        };
        let bus_err = |e: retain_bus::BusError| match e {
            retain_bus::BusError::Db(db) => db,
            other => DbErr::Custom(other.to_string()),
        };
        // Portfolio-wide costs are no account: nothing to score or route.
        if account != retain_domain::signal::PORTFOLIO {
            ACCOUNT_METRICS
                .publish(&tx, &[(format!("{tenant}/{account}"), event)])
                .await
                .map_err(bus_err)?;
        }
        if let Some(d) = delivery
            && !retain_bus::ack_in(&tx, d).await.map_err(bus_err)?
        {
            // The lease was lost (it expired and another replica has the
            // message): that replica's recompute counts, not this one.
            tx.rollback().await?;
            return Ok(());
        }
        tx.commit().await
    }
}
