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
//! margin) from a LIVE snapshot, and the account's first score from a LIVE
//! snapshot whatever its band: an account Retain first sees Red gets its
//! review task like one that turns Red (docs/HEALTH.md, "Band changes").
//! Scores computed from BACKFILL history lie in the past: they are
//! recorded in the history, never announced — so an account imported as
//! history is acted on when its first LIVE snapshot is scored. A first
//! announcement whose band equals the band already recorded has no "from"
//! band (`UNSPECIFIED`).

use crate::topics::HEALTH_BAND_CHANGED;
use retain_bus::{Delivery, Handler, HandlerError};
use retain_domain::health::{self, PreviousScore};
use retain_metrics::topics::ACCOUNT_METRICS;
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
        if current.as_ref().is_none_or(|c| c.as_of < as_of) {
            let model = models::effective(&tx, tenant, &snapshot.segment).await?;
            let item = Item::new(snapshot, &model, current.as_ref());
            appended = self
                .apply(&tx, tenant, &[item], mode, Announce::FirstLiveToo)
                .await?
                .pop()
                .flatten()
                .map(|(s, _)| s);
        }
        if let Some(d) = delivery
            && !retain_bus::ack_in(&tx, d).await.map_err(Error::from)?
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
                current.as_ref().is_none_or(|c| c.as_of < as_of)
            })
            .filter_map(|(snap, current)| {
                Some(Item::new(
                    snap,
                    models.get(&snap.segment)?,
                    current.as_ref(),
                ))
            })
            .collect();
        let appended = self
            .apply(&tx, tenant, &items, mode, Announce::FirstLiveToo)
            .await?;
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
        let items: Vec<Item<'_>> = page
            .iter()
            .filter_map(|(_, current)| {
                let snapshot = current.inputs.as_ref()?;
                let model = models.get(snapshot.segment.as_str())?;
                (model.version != current.model_version).then_some(Item {
                    snapshot,
                    model,
                    previous: Some(current),
                    live_scored: true,
                })
            })
            .collect();
        // A new model is no new signal: only band changes are announced.
        let changes = self
            .apply(
                &tx,
                tenant,
                &items,
                v1::IngestMode::Live,
                Announce::ChangesOnly,
            )
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
    /// of that model version) and announces, from a LIVE snapshot, each
    /// band change — and with [`Announce::FirstLiveToo`] each account's
    /// first LIVE score: one `health.band_changed` message and one
    /// numbered row for watchers. Returns, per item, the score appended and
    /// whether its band changed.
    async fn apply<C: sea_orm::ConnectionTrait>(
        &self,
        tx: &C,
        tenant: &str,
        items: &[Item<'_>],
        mode: v1::IngestMode,
        announce_what: Announce,
    ) -> Result<Vec<Option<(v1::HealthScore, bool)>>, Error> {
        let now = self.clock.now().micros();
        let live = mode == v1::IngestMode::Live;
        // Only scoring a LIVE snapshot of new signals acts on an account's
        // band; a rescore under a new model leaves the flag as it was.
        let acts = live && announce_what == Announce::FirstLiveToo;
        // Score everything first (pure), then write in bulk.
        let mut scored = Vec::with_capacity(items.len());
        for item in items {
            let model = models::domain(item.model)?;
            let previous = item.previous.map(previous_of);
            let s = health::score(
                &model,
                &wire::health_snapshot(item.snapshot),
                previous.as_ref(),
            )
            .map(|s| {
                let record = wire::score_to_proto(&model, &s, item.snapshot);
                let from = previous.as_ref().map(|p| p.band);
                // The first score, a new band or a new model version: a
                // point of the history whatever its day.
                let is_change = previous
                    .as_ref()
                    .is_none_or(|p| p.band != s.band || p.model_version != s.model_version);
                (record, from, is_change)
            });
            scored.push(s);
        }
        let rows: Vec<sql::NewScore<'_>> = items
            .iter()
            .zip(&scored)
            .filter_map(|(item, s)| {
                let (record, _, is_change) = s.as_ref()?;
                Some(sql::NewScore {
                    segment: &item.snapshot.segment,
                    csm_owner: &item.snapshot.csm_owner_email,
                    as_of: item.snapshot.as_of.as_ref().map_or(0, convert::micros),
                    is_change: *is_change,
                    live: acts,
                    record,
                    now,
                })
            })
            .collect();
        let mut fresh = sql::append(tx, tenant, &rows).await?.into_iter();
        let mut out = Vec::with_capacity(items.len());
        let mut announce = Vec::new();
        for (item, s) in items.iter().zip(scored) {
            let Some((record, from, _)) = s else {
                out.push(None);
                continue;
            };
            if !fresh.next().unwrap_or(false) {
                out.push(None);
                continue;
            }
            let changed = from.is_some_and(|b| wire::band_to_proto(b) as i32 != record.band);
            let first_live = announce_what == Announce::FirstLiveToo && !item.live_scored;
            if live && (changed || first_live) {
                // A first announcement in the band already recorded comes
                // from no band: the trigger is "first seen in this band".
                let from_band = from
                    .map(wire::band_to_proto)
                    .filter(|b| *b as i32 != record.band)
                    .unwrap_or(v1::HealthBand::Unspecified);
                let event = v1::HealthBandChanged {
                    tenant_id: tenant.to_owned(),
                    account_id: item.snapshot.account_id.clone(),
                    from_band: from_band as i32,
                    to_band: record.band,
                    score: Some(record.clone()),
                    mode: mode as i32,
                };
                announce.push((item.snapshot.segment.as_str(), event));
            }
            out.push(Some((record, changed)));
        }
        if !announce.is_empty() {
            let rows: Vec<(&str, &v1::HealthBandChanged)> =
                announce.iter().map(|(seg, e)| (*seg, e)).collect();
            sql::record_changes(tx, tenant, &rows, now).await?;
            let messages: Vec<v1::HealthBandChanged> =
                announce.into_iter().map(|(_, e)| e).collect();
            HEALTH_BAND_CHANGED
                .publish(tx, &messages)
                .await
                .map_err(Error::from)?;
        }
        Ok(out)
    }
}

/// One snapshot to score, with what it is scored against.
#[derive(Debug, Clone, Copy)]
struct Item<'a> {
    snapshot: &'a v1::AccountMetricsSnapshot,
    model: &'a v1::ScoringModel,
    /// The account's current score, if any.
    previous: Option<&'a v1::HealthScore>,
    /// Whether a LIVE snapshot of the account was scored before.
    live_scored: bool,
}

impl<'a> Item<'a> {
    fn new(
        snapshot: &'a v1::AccountMetricsSnapshot,
        model: &'a v1::ScoringModel,
        current: Option<&'a sql::Current>,
    ) -> Self {
        Self {
            snapshot,
            model,
            previous: current.map(|c| &c.score),
            live_scored: current.is_some_and(|c| c.live_scored),
        }
    }
}

/// What [`Scorer::apply`] announces from a LIVE snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Announce {
    /// Band changes, and the account's first LIVE score (new signals).
    FirstLiveToo,
    /// Band changes only (a rescore under a new model).
    ChangesOnly,
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
