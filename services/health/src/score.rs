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
                .apply(&tx, tenant, &[(snapshot, &model, previous)], mode)
                .await?
                .pop()
                .flatten()
                .map(|(s, _)| s);
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

    /// Scores snapshots of distinct accounts of one tenant in one
    /// transaction (an import, a benchmark's seed): each against the
    /// account's current score, skipping one no newer than it. Returns how
    /// many scores were appended.
    pub async fn score_batch(
        &self,
        tenant: &str,
        snapshots: &[v1::AccountMetricsSnapshot],
        mode: v1::IngestMode,
    ) -> Result<usize, Error> {
        let tx = self.db.begin().await?;
        let mut currents = Vec::with_capacity(snapshots.len());
        let mut models: std::collections::HashMap<String, v1::ScoringModel> =
            std::collections::HashMap::new();
        for snapshot in snapshots {
            let current = sql::current(&tx, tenant, &snapshot.account_id).await?;
            if !models.contains_key(&snapshot.segment) {
                let model = models::effective(&tx, tenant, &snapshot.segment).await?;
                models.insert(snapshot.segment.clone(), model);
            }
            currents.push(current);
        }
        let items: Vec<_> = snapshots
            .iter()
            .zip(&currents)
            .filter(|(snap, current)| {
                let as_of = snap.as_of.as_ref().map_or(0, convert::micros);
                current.as_ref().is_none_or(|(at, _)| *at < as_of)
            })
            .filter_map(|(snap, current)| {
                Some((
                    snap,
                    models.get(&snap.segment)?,
                    current.as_ref().map(|(_, s)| s),
                ))
            })
            .collect();
        let appended = self.apply(&tx, tenant, &items, mode).await?;
        tx.commit().await?;
        Ok(appended.iter().filter(|a| a.is_some()).count())
    }

    /// Rescores the tenant's scored accounts in `(after, through]` (of
    /// `segment` when not empty), in one transaction: each account's
    /// current snapshot with the model now in force for its segment, when
    /// that is another version than its score's. Returns how many accounts
    /// it read and how many changed band (each announced like any other
    /// change).
    pub async fn rescore_page(
        &self,
        tenant: &str,
        segment: &str,
        (after, through): (&str, &str),
    ) -> Result<(i64, i64), Error> {
        let tx = self.db.begin().await?;
        let page =
            sql::current_page(&tx, tenant, segment, (after, Some(through)), u64::MAX).await?;
        let mut models: std::collections::HashMap<String, v1::ScoringModel> =
            std::collections::HashMap::new();
        for (_, current) in &page {
            let seg = current.inputs.as_ref().map_or("", |i| i.segment.as_str());
            if !models.contains_key(seg) {
                models.insert(seg.to_owned(), models::effective(&tx, tenant, seg).await?);
            }
        }
        let items: Vec<(
            &v1::AccountMetricsSnapshot,
            &v1::ScoringModel,
            Option<&v1::HealthScore>,
        )> = page
            .iter()
            .filter_map(|(_, current)| {
                let snapshot = current.inputs.as_ref()?;
                let model = models.get(snapshot.segment.as_str())?;
                (model.version != current.model_version).then_some((snapshot, model, Some(current)))
            })
            .collect();
        let changes = self
            .apply(&tx, tenant, &items, v1::IngestMode::Live)
            .await?
            .iter()
            .filter(|a| a.as_ref().is_some_and(|(_, changed)| *changed))
            .count();
        tx.commit().await?;
        Ok((
            i64::try_from(page.len()).unwrap_or(i64::MAX),
            i64::try_from(changes).unwrap_or(i64::MAX),
        ))
    }

    /// Scores each snapshot with its model against its previous score,
    /// appends the scores (nothing for a snapshot that already has a score
    /// of that model version) and announces each band change from a LIVE
    /// snapshot: one `health.band_changed` message and one numbered row
    /// for watchers. Returns, per item, the score appended and whether its
    /// band changed.
    async fn apply<C: sea_orm::ConnectionTrait>(
        &self,
        tx: &C,
        tenant: &str,
        items: &[(
            &v1::AccountMetricsSnapshot,
            &v1::ScoringModel,
            Option<&v1::HealthScore>,
        )],
        mode: v1::IngestMode,
    ) -> Result<Vec<Option<(v1::HealthScore, bool)>>, Error> {
        let now = self.clock.now().micros();
        // Score everything first (pure), then write in bulk.
        let mut scored = Vec::with_capacity(items.len());
        for (snapshot, stored, previous) in items {
            let model = models::domain(stored)?;
            let previous = previous.map(previous_of);
            let s = health::score(&model, &wire::health_snapshot(snapshot), previous.as_ref()).map(
                |s| {
                    let record = wire::score_to_proto(&model, &s, snapshot);
                    let from = previous.as_ref().map(|p| p.band);
                    // The first score, a new band or a new model version: a
                    // point of the history whatever its day.
                    let is_change = previous
                        .as_ref()
                        .is_none_or(|p| p.band != s.band || p.model_version != s.model_version);
                    (record, from, is_change)
                },
            );
            scored.push(s);
        }
        let rows: Vec<sql::NewScore<'_>> = items
            .iter()
            .zip(&scored)
            .filter_map(|((snapshot, _, _), s)| {
                let (record, _, is_change) = s.as_ref()?;
                Some(sql::NewScore {
                    segment: &snapshot.segment,
                    csm_owner: &snapshot.csm_owner_email,
                    as_of: snapshot.as_of.as_ref().map_or(0, convert::micros),
                    is_change: *is_change,
                    record,
                    now,
                })
            })
            .collect();
        let mut fresh = sql::append(tx, tenant, &rows).await?.into_iter();
        let mut out = Vec::with_capacity(items.len());
        let mut announce = Vec::new();
        for ((snapshot, _, _), s) in items.iter().zip(scored) {
            let Some((record, from, _)) = s else {
                out.push(None);
                continue;
            };
            if !fresh.next().unwrap_or(false) {
                out.push(None);
                continue;
            }
            let changed = from.is_some_and(|b| wire::band_to_proto(b) as i32 != record.band);
            if changed && mode == v1::IngestMode::Live {
                let event = v1::HealthBandChanged {
                    tenant_id: tenant.to_owned(),
                    account_id: snapshot.account_id.clone(),
                    from_band: from.map_or(v1::HealthBand::Unspecified, wire::band_to_proto) as i32,
                    to_band: record.band,
                    score: Some(record.clone()),
                    mode: mode as i32,
                };
                announce.push((
                    snapshot.segment.as_str(),
                    format!("{tenant}/{}", snapshot.account_id),
                    event,
                ));
            }
            out.push(Some((record, changed)));
        }
        if !announce.is_empty() {
            let rows: Vec<(&str, &v1::HealthBandChanged)> =
                announce.iter().map(|(seg, _, e)| (*seg, e)).collect();
            sql::record_changes(tx, tenant, &rows, now).await?;
            let messages: Vec<(String, v1::HealthBandChanged)> =
                announce.into_iter().map(|(_, key, e)| (key, e)).collect();
            HEALTH_BAND_CHANGED
                .publish(tx, &messages)
                .await
                .map_err(bus_error)?;
        }
        Ok(out)
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
