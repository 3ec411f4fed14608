//! The consumers of `signals.recorded` and `account.metrics`.
//!
//! `signals.recorded` carries the signals routing acts on directly — those
//! `retain_domain::routing::routable` names, the one contract ingestion
//! labels publications by: an NPS answer fires the detractor, passive or
//! promoter rule; a subscription change fires the contraction or churn
//! rule when the MRR before it (the account's earlier changes, kept in
//! `notification_mrr`) says it was one; an account upsert changes who the
//! account's triggers go to.
//! A claimed batch of messages (distinct accounts: the bus hands out one
//! message per key at a time) is routed in one transaction with its
//! acknowledgement — one commit for the batch, not one per account — and
//! falls back to one transaction per message when the batch fails; a
//! backfilled batch's triggers are recorded, never acted on.
//! A change that arrives late is judged by the changes known when it
//! arrives; decisions already taken on later changes stand.
//!
//! `account.metrics` keeps what routing needs of each account (segment,
//! CSM owner, name, contacts) for these triggers.

use retain_bus::{BatchHandler, Delivery, Handler, HandlerError};
use retain_domain::kpi::revenue::{self, MovementKind};
use retain_domain::routing::{self, Routable, Trigger};
use retain_ingestion::topics::SIGNALS_RECORDED;
use retain_metrics::topics::ACCOUNT_METRICS;
use retain_proto::{convert, v1};
use retain_runtime::error::Error;
use sea_orm::TransactionTrait;

use crate::route::{Router, context};
use crate::sql;

/// Routes the triggers in `signals.recorded`.
#[derive(Debug, Clone)]
pub struct Signals(pub Router);

/// Keeps account contexts from `account.metrics`.
#[derive(Debug, Clone)]
pub struct Snapshots(pub Router);

impl Handler for Signals {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let event = SIGNALS_RECORDED.decode(delivery)?;
        if event.routable.is_empty() {
            // Sessions, actions, tickets…: nothing to route and no account
            // change. Notification's subscription takes only publications
            // labelled routable, so these come only from a publisher older
            // than that label (a rolling upgrade) or from before it. No
            // transaction: the consumer acknowledges the whole claimed
            // batch's such messages in one statement.
            return Ok(());
        }
        self.record(std::slice::from_ref(&event), &[delivery])
            .await
            .map_err(|e| HandlerError::transient(e.to_string()))
    }
}

impl BatchHandler for Signals {
    async fn handle_batch(&self, batch: &[Delivery]) -> Result<(), HandlerError> {
        let mut events = Vec::with_capacity(batch.len());
        for delivery in batch {
            events.push(SIGNALS_RECORDED.decode(delivery)?);
        }
        let deliveries: Vec<&Delivery> = batch.iter().collect();
        self.record(&events, &deliveries)
            .await
            .map_err(|e| HandlerError::transient(e.to_string()))
    }
}

impl Signals {
    /// Routes every trigger of `events` in one transaction with the
    /// acknowledgement of `deliveries`, account by account in order (see
    /// [`Router::commit_acked`] for a lost lease).
    async fn record(
        &self,
        events: &[v1::SignalsRecorded],
        deliveries: &[&Delivery],
    ) -> Result<(), Error> {
        let router = &self.0;
        let tx = router.db.begin().await?;
        let now = router.clock.now().micros();
        let mut triggers = Vec::new();
        // Nothing routable (a publisher from before the label): no read,
        // only the acknowledgement with the rest.
        for event in events.iter().filter(|e| !e.routable.is_empty()) {
            account_triggers(&tx, &router.tenants, event, now, &mut triggers).await?;
        }
        router.route_in(&tx, &triggers).await?;
        router.commit_acked(tx, deliveries).await?;
        Ok(())
    }
}

/// Applies one message's account upserts and collects its triggers, each
/// with the account's context as routing must see it.
async fn account_triggers<C: sea_orm::ConnectionTrait>(
    tx: &C,
    tenants: &crate::settings::Tenants,
    event: &v1::SignalsRecorded,
    now: i64,
    triggers: &mut Vec<(Trigger, retain_domain::routing::AccountContext)>,
) -> Result<(), Error> {
    let (tenant, account) = (event.tenant_id.as_str(), event.account_id.as_str());
    let backfill = !event.batches.is_empty()
        && event
            .batches
            .iter()
            .all(|b| b.mode() == v1::IngestMode::Backfill);
    let settings = tenants.of(tenant);
    // The wire signals, read back as the domain's (they were valid when
    // accepted), and what each asks of routing: the one contract
    // ingestion labelled them by.
    let signals: Vec<retain_domain::signal::Signal> = event
        .routable
        .iter()
        .filter_map(|wire| {
            convert::stored_signal(wire, settings.base_currency, &settings.onboarding_checklist)
                .map_err(|v| tracing::warn!(%tenant, %account, event_id = %wire.event_id, violations = %v, "routable signal skipped"))
                .ok()
        })
        .collect();
    let mut ctx = sql::account(tx, tenant, account).await?;
    // The message carries account upserts: a trigger of the same message
    // goes to the CSM and contacts they name. Not replayed here (a late
    // upsert would undo a newer one): the account as ingestion merged
    // them, field by field by occurrence, committed before this message.
    let upserts = signals
        .iter()
        .any(|s| routing::routable(s) == Some(Routable::AccountUpsert));
    if upserts && let Some(merged) = sql::account_record(tx, tenant, account).await? {
        ctx = merged;
        sql::merge_account(tx, &ctx, now).await?;
    }
    for signal in &signals {
        if let Some(trigger) = trigger(tx, (tenant, account), signal, backfill).await? {
            triggers.push((trigger, ctx.clone()));
        }
    }
    Ok(())
}

/// The trigger one routable signal fires, if any: an NPS answer its rule,
/// a subscription change a contraction or churn when the MRR before it
/// (the account's earlier changes, `notification_mrr`) says it was one.
async fn trigger<C: sea_orm::ConnectionTrait>(
    tx: &C,
    (tenant, account): (&str, &str),
    signal: &retain_domain::signal::Signal,
    backfill: bool,
) -> Result<Option<Trigger>, Error> {
    let (at, event_id) = (signal.occurred_at, signal.event_id.clone());
    Ok(match routing::routable(signal) {
        Some(Routable::NpsAnswer {
            score,
            user,
            comment,
        }) => Some(Trigger::NpsAnswer {
            event_id,
            score,
            user: user.to_owned(),
            at,
            comment: comment.to_owned(),
            backfill,
        }),
        Some(Routable::MrrChange {
            mrr,
            add_on,
            churn_reason,
        }) => {
            let (before, paid) =
                sql::mrr_change(tx, (tenant, account), (at.micros(), &event_id), mrr.minor).await?;
            match revenue::classify(before, mrr.minor, paid) {
                Some(MovementKind::Contraction) => Some(Trigger::Contraction {
                    event_id,
                    add_on,
                    lost: retain_domain::Money::new(before - mrr.minor, mrr.currency),
                    at,
                    backfill,
                }),
                Some(MovementKind::Churn) => churn_reason.map(|reason| Trigger::Churn {
                    event_id,
                    reason,
                    at,
                    backfill,
                }),
                _ => None,
            }
        }
        Some(Routable::AccountUpsert) | None => None,
    })
}

impl Handler for Snapshots {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let event = ACCOUNT_METRICS.decode(delivery)?;
        let Some(snapshot) = event.snapshot.as_ref() else {
            return Err(HandlerError::permanent(
                "account.metrics without a snapshot",
            ));
        };
        let router = &self.0;
        let run = async {
            let tx = router.db.begin().await?;
            let as_of = snapshot.as_of.as_ref().map_or(0, convert::micros);
            sql::upsert_account(&tx, &context(&event.tenant_id, snapshot), as_of).await?;
            if router.ack(&tx, &[delivery]).await? {
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
            Ok::<(), Error>(())
        };
        run.await
            .map_err(|e| HandlerError::transient(e.to_string()))
    }
}
