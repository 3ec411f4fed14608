//! The consumer of `account.metrics`: scores each snapshot metrics
//! publishes, appends the score to the account's history and announces a
//! band change on `health.band_changed` — all in one transaction with the
//! message's acknowledgement.
//!
//! **Exactly once.** A score is keyed by the snapshot's `as_of`: a
//! redelivered message finds its score there and appends nothing; a
//! snapshot no newer than the current score's is a late duplicate and is
//! skipped. Messages of one account arrive in order (the bus hands out one
//! key at a time), so two replicas never score one account at once.
//!
//! **What is announced.** A band change (past the model's hysteresis
//! margin) from a LIVE snapshot. The first score of an account has no
//! "from" band and announces nothing — an account nobody has looked at yet
//! pages nobody; a change computed from BACKFILL history lies in the past
//! and is recorded in the history, never announced.

use retain_bus::topics::{ACCOUNT_METRICS, HEALTH_BAND_CHANGED};
use retain_bus::{Delivery, Handler, HandlerError};
use retain_domain::health::{self, PreviousScore};
use retain_proto::{convert, health as wire, v1};
use retain_runtime::Clock;
use retain_runtime::error::Error;
use sea_orm::{DatabaseConnection, TransactionTrait};

use crate::{models, sql};

/// Scores snapshots. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Scorer {
    /// The database.
    pub db: DatabaseConnection,
    /// Now.
    pub clock: Clock,
}

impl Handler for Scorer {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let event = ACCOUNT_METRICS.decode(delivery)?;
        let Some(snapshot) = event.snapshot.as_ref() else {
            return Err(HandlerError::permanent(
                "account.metrics without a snapshot",
            ));
        };
        self.score(&event.tenant_id, snapshot, event.mode(), Some(delivery))
            .await
            .map(|_| ())
            .map_err(|e| HandlerError::transient(e.to_string()))
    }
}

impl Scorer {
    /// Scores one snapshot; acknowledges `delivery` in the same
    /// transaction. Returns the score appended, if any.
    pub async fn score(
        &self,
        tenant: &str,
        snapshot: &v1::AccountMetricsSnapshot,
        mode: v1::IngestMode,
        delivery: Option<&Delivery>,
    ) -> Result<Option<v1::HealthScore>, Error> {
        let as_of = snapshot.as_of.as_ref().map_or(0, convert::micros);
        let tx = self.db.begin().await?;
        let current = sql::current(&tx, tenant, &snapshot.account_id).await?;
        let mut appended = None;
        if current.as_ref().is_none_or(|(at, _)| *at < as_of) {
            let model = models::effective(&tx, tenant, &snapshot.segment).await?;
            let previous = current.as_ref().map(|(_, s)| s);
            appended = self
                .apply(&tx, tenant, snapshot, &model, previous, mode)
                .await?;
        }
        if let Some(d) = delivery
            && !retain_bus::ack_in(&tx, d).await.map_err(bus_error)?
        {
            // The lease was lost: the replica that has the message scores it.
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(appended)
    }

    /// Rescores an account's current snapshot with the model now in force
    /// for its segment, when that is another version than its current
    /// score's. Returns the score appended, if any, and whether its band
    /// changed (announced like any other change).
    pub async fn rescore(
        &self,
        tenant: &str,
        account: &str,
    ) -> Result<Option<(v1::HealthScore, bool)>, Error> {
        let tx = self.db.begin().await?;
        let Some((_, current)) = sql::current(&tx, tenant, account).await? else {
            return Ok(None);
        };
        let Some(snapshot) = current.inputs.clone() else {
            return Ok(None);
        };
        let model = models::effective(&tx, tenant, &snapshot.segment).await?;
        if model.version == current.model_version {
            return Ok(None);
        }
        let appended = self
            .apply(
                &tx,
                tenant,
                &snapshot,
                &model,
                Some(&current),
                v1::IngestMode::Live,
            )
            .await?;
        tx.commit().await?;
        Ok(appended.map(|s| {
            let changed = s.band != current.band;
            (s, changed)
        }))
    }

    /// Scores `snapshot` with `model` against the `previous` score, appends
    /// it (nothing when this snapshot already has a score of this model
    /// version) and announces a band change from a LIVE snapshot: one
    /// `health.band_changed` message and one numbered row for watchers.
    async fn apply<C: sea_orm::ConnectionTrait>(
        &self,
        tx: &C,
        tenant: &str,
        snapshot: &v1::AccountMetricsSnapshot,
        stored: &v1::ScoringModel,
        previous: Option<&v1::HealthScore>,
        mode: v1::IngestMode,
    ) -> Result<Option<v1::HealthScore>, Error> {
        let model = models::domain(stored)?;
        let previous = previous.map(previous_of);
        let Some(scored) =
            health::score(&model, &wire::health_snapshot(snapshot), previous.as_ref())
        else {
            return Ok(None);
        };
        let record = wire::score_to_proto(&model, &scored, snapshot);
        let from = previous.as_ref().map(|p| p.band);
        let band_changed = from.is_some_and(|b| b != scored.band);
        // The first score, a new band or a new model version: a point of
        // the history whatever its day.
        let is_change = previous
            .as_ref()
            .is_none_or(|p| p.band != scored.band || p.model_version != scored.model_version);
        let now = self.clock.now().micros();
        let fresh = sql::append(
            tx,
            &sql::NewScore {
                tenant,
                segment: &snapshot.segment,
                as_of: snapshot.as_of.as_ref().map_or(0, convert::micros),
                is_change,
                record: &record,
                now,
            },
        )
        .await?;
        if !fresh {
            return Ok(None);
        }
        if band_changed && mode == v1::IngestMode::Live {
            let event = v1::HealthBandChanged {
                tenant_id: tenant.to_owned(),
                account_id: snapshot.account_id.clone(),
                from_band: from.map_or(v1::HealthBand::Unspecified, wire::band_to_proto) as i32,
                to_band: record.band,
                score: Some(record.clone()),
                mode: mode as i32,
            };
            sql::record_change(tx, tenant, &snapshot.segment, &event, now).await?;
            let key = format!("{tenant}/{}", snapshot.account_id);
            HEALTH_BAND_CHANGED
                .publish(tx, &[(key, event)])
                .await
                .map_err(bus_error)?;
        }
        Ok(Some(record))
    }
}

/// The previous score as the domain compares with it.
pub(crate) fn previous_of(s: &v1::HealthScore) -> PreviousScore {
    PreviousScore {
        score: s.score,
        band: wire::band_from_proto(s.band).unwrap_or(health::Band::Red),
        model_version: s.model_version,
        contributions: s
            .dimensions
            .iter()
            .map(|d| (d.key.clone(), d.contribution))
            .collect(),
    }
}

fn bus_error(e: retain_bus::BusError) -> Error {
    Error::Internal(format!("bus: {e}"))
}
