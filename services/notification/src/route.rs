//! The consumer of `health.band_changed`: turns each band change into the
//! action the tenant's routing policy names for the account's segment — a
//! CSM task, an email, or a record — exactly once.
//!
//! **Exactly once.** Every trigger has a deterministic notification id
//! (tenant, account, rule, and the trigger's identity: the band change and
//! the instant scored), recorded in `notification_actions` in the same
//! transaction as the task it creates and the message's acknowledgement. A
//! redelivered message or a replayed trigger finds its id there and
//! changes nothing.
//!
//! **Suppressed, and counted.** A trigger inside the rule's cooldown of an
//! earlier action for the same account — before *or after* it, since
//! triggers arrive late — or while a CSM has snoozed the rule for the
//! account, is recorded as suppressed and acts on nothing. Triggers of one
//! account and rule come from one topic and one bus key, in order, so two
//! replicas never decide on them at once.
//!
//! **Backfill.** A band change computed from imported history is recorded,
//! never acted on.

use retain_bus::topics::HEALTH_BAND_CHANGED;
use retain_bus::{Delivery, Handler, HandlerError};
use retain_domain::routing::{self, AccountContext, Planned, Trigger};
use retain_domain::time::Timestamp;
use retain_proto::{convert, health as wire, v1};
use retain_runtime::Clock;
use retain_runtime::config::Tenants;
use retain_runtime::error::Error;
use sea_orm::{DatabaseConnection, TransactionTrait};
use std::sync::Arc;

use crate::{policy, sql};

/// Routes triggers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Router {
    /// The database.
    pub db: DatabaseConnection,
    /// Now.
    pub clock: Clock,
    /// Every tenant's settings (the CSMs of each task queue).
    pub tenants: Arc<Tenants>,
}

/// What routing did with one trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No rule applies.
    NoRule,
    /// Recorded before: nothing changed.
    Duplicate,
    /// Suppressed by the rule's cooldown.
    Cooldown,
    /// Suppressed by a snooze.
    Snoozed,
    /// Acted on (a task, an email, or a record).
    Acted,
}

impl Handler for Router {
    async fn handle(&self, delivery: &Delivery) -> Result<(), HandlerError> {
        let event = HEALTH_BAND_CHANGED.decode(delivery)?;
        let (trigger, ctx) = band_trigger(&event).map_err(HandlerError::permanent)?;
        self.route(&trigger, &ctx, Some(delivery))
            .await
            .map(|_| ())
            .map_err(|e| HandlerError::transient(e.to_string()))
    }
}

/// The trigger and account context a band change carries.
pub fn band_trigger(e: &v1::HealthBandChanged) -> Result<(Trigger, AccountContext), String> {
    let score = e
        .score
        .as_ref()
        .ok_or("health.band_changed without a score")?;
    let mut inputs = score.inputs.clone().unwrap_or_default();
    inputs.account_id.clone_from(&e.account_id);
    let to = wire::band_from_proto(e.to_band).ok_or("health.band_changed without a to_band")?;
    let at = score
        .scored_at
        .as_ref()
        .and_then(convert::timestamp)
        .ok_or("health.band_changed without a valid scored_at")?;
    let weakest = score
        .dimensions
        .iter()
        .filter(|d| !d.missing)
        .min_by(|a, b| a.sub_score.total_cmp(&b.sub_score))
        .map(|d| d.key.clone());
    let trigger = Trigger::BandChanged {
        from: wire::band_from_proto(e.from_band),
        to,
        score: score.score,
        at,
        drivers: score.explanation.clone(),
        weakest,
        missing_milestones: inputs.milestones_missing.clone(),
        ticket_topics: score.ticket_topics.clone(),
        backfill: e.mode() == v1::IngestMode::Backfill,
    };
    Ok((trigger, context(&e.tenant_id, &inputs)))
}

impl Router {
    /// The CSM an unowned task of `queue` goes to: one of the queue's
    /// members (tenant settings) by `strategy`; '' when the queue has none.
    async fn assign<C: sea_orm::ConnectionTrait>(
        &self,
        tx: &C,
        tenant: &str,
        queue: &str,
        strategy: routing::Assignment,
    ) -> Result<String, Error> {
        let Some(members) = self
            .tenants
            .of(tenant)
            .queues
            .get(queue)
            .filter(|m| !m.is_empty())
        else {
            return Ok(String::new());
        };
        let (open, cursor) = match strategy {
            routing::Assignment::RoundRobin => {
                (Vec::new(), sql::next_in_rotation(tx, tenant, queue).await?)
            }
            routing::Assignment::FewestOpen => {
                (sql::open_counts(tx, tenant, queue, members).await?, 0)
            }
        };
        Ok(routing::assign(strategy, members, &open, cursor)
            .unwrap_or_default()
            .to_owned())
    }
}

/// What routing needs of the account a snapshot describes.
pub fn context(tenant: &str, s: &v1::AccountMetricsSnapshot) -> AccountContext {
    AccountContext {
        tenant: tenant.to_owned(),
        account: s.account_id.clone(),
        name: s.account_name.clone(),
        segment: Some(s.segment.clone()).filter(|x| !x.is_empty()),
        csm_owner: Some(s.csm_owner_email.clone()).filter(|x| !x.is_empty()),
        contacts: s.contact_emails.clone(),
    }
}

impl Router {
    /// Routes one trigger; acknowledges `delivery` in the same transaction.
    pub async fn route(
        &self,
        trigger: &Trigger,
        ctx: &AccountContext,
        delivery: Option<&Delivery>,
    ) -> Result<Outcome, Error> {
        let tx = self.db.begin().await?;
        let outcome = self.route_in(&tx, trigger, ctx).await?;
        if !self.ack(&tx, delivery).await? {
            tx.rollback().await?;
            return Ok(Outcome::Duplicate);
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// Routes one trigger inside the caller's transaction.
    pub(crate) async fn route_in<C: sea_orm::ConnectionTrait>(
        &self,
        tx: &C,
        trigger: &Trigger,
        ctx: &AccountContext,
    ) -> Result<Outcome, Error> {
        let (policy, assignment, _) =
            policy::effective(tx, &ctx.tenant, ctx.segment.as_deref().unwrap_or("")).await?;
        match routing::route(&policy, trigger, ctx) {
            None => Ok(Outcome::NoRule),
            Some(decision) => {
                let now = self.clock.now().micros();
                self.apply(tx, ctx, (trigger.at(), assignment), &decision, now)
                    .await
            }
        }
    }

    /// Acknowledges `delivery` inside the transaction; `false` when the
    /// lease was lost (the replica that has the message handles it, and
    /// this transaction must roll back).
    pub(crate) async fn ack<C: sea_orm::ConnectionTrait>(
        &self,
        tx: &C,
        delivery: Option<&Delivery>,
    ) -> Result<bool, Error> {
        match delivery {
            None => Ok(true),
            Some(d) => retain_bus::ack_in(tx, d)
                .await
                .map_err(|e| Error::Internal(format!("bus: {e}"))),
        }
    }

    async fn apply<C: sea_orm::ConnectionTrait>(
        &self,
        tx: &C,
        ctx: &AccountContext,
        (at, assignment): (Timestamp, routing::Assignment),
        decision: &routing::Decision,
        now: i64,
    ) -> Result<Outcome, Error> {
        let tenant = ctx.tenant.as_str();
        let rule = decision.rule.key();
        let at_us = at.micros();
        let snoozed = sql::snoozed_until(tx, tenant, &ctx.account, rule)
            .await?
            .is_some_and(|until| at_us < until);
        let cooldown_us = decision.cooldown_seconds.saturating_mul(1_000_000);
        let cooled = !snoozed && cooldown_us > 0 && {
            let earlier: Vec<routing::Sent> = sql::acted_between(
                tx,
                tenant,
                &ctx.account,
                rule,
                (
                    at_us.saturating_sub(cooldown_us),
                    at_us.saturating_add(cooldown_us),
                ),
            )
            .await?
            .into_iter()
            .map(|t| routing::Sent {
                rule: decision.rule,
                at: Timestamp::from_micros(t),
            })
            .collect();
            routing::cooldown(&earlier, decision.rule, at, decision.cooldown_seconds).is_some()
        };
        let kind = match decision.action {
            Planned::Task { .. } => 1,
            Planned::Email { .. } => 2,
            Planned::Record => 3,
        };
        let suppressed = if snoozed {
            2
        } else if cooled {
            1
        } else {
            0
        };
        let fresh = sql::insert_action(
            tx,
            tenant,
            &sql::NewAction {
                notification_id: &decision.notification_id,
                account: &ctx.account,
                rule,
                kind,
                suppressed,
                trigger_at: at_us,
                now,
            },
        )
        .await?;
        if !fresh {
            return Ok(Outcome::Duplicate);
        }
        if let Planned::Email {
            template,
            variables,
            to,
            in_app,
        } = &decision.action
        {
            use v1::DeliveryState as D;
            let record = |channel: v1::NotificationChannel, state: D| v1::Notification {
                notification_id: decision.notification_id.clone(),
                account_id: ctx.account.clone(),
                trigger: retain_proto::routing::rule_to_proto(decision.rule) as i32,
                channel: channel as i32,
                template: template.clone(),
                variables: variables.clone().into_iter().collect(),
                recipients: to.clone(),
                state: state as i32,
                attempts: 0,
                last_error: String::new(),
                created_at: Some(convert::from_micros(now)),
                // An in-app message is delivered by being recorded.
                sent_at: (state == D::Sent).then(|| convert::from_micros(now)),
            };
            let (email_state, in_app_state) = if suppressed > 0 {
                (D::Suppressed, D::Suppressed)
            } else {
                (D::Pending, D::Sent)
            };
            let email = record(v1::NotificationChannel::Email, email_state);
            sql::insert_message(tx, tenant, &email, now).await?;
            if *in_app {
                let message = record(v1::NotificationChannel::InApp, in_app_state);
                sql::insert_message(tx, tenant, &message, now).await?;
            }
        }
        match suppressed {
            2 => return Ok(Outcome::Snoozed),
            1 => return Ok(Outcome::Cooldown),
            _ => {}
        }
        if let Planned::Task {
            title,
            message,
            queue,
            priority,
            assignee,
            due,
        } = &decision.action
        {
            let assignee = match assignee {
                Some(owner) => owner.clone(),
                None => self.assign(tx, tenant, queue, assignment).await?,
            };
            sql::insert_task(
                tx,
                tenant,
                &sql::NewTask {
                    task_id: &decision.notification_id,
                    account: &ctx.account,
                    rule,
                    title,
                    message,
                    queue,
                    priority: retain_proto::routing::priority_to_proto(*priority) as i16,
                    assignee: &assignee,
                    due_at: due.micros(),
                    now,
                },
            )
            .await?;
            sql::record_task_change(
                tx,
                tenant,
                (&decision.notification_id, queue, &assignee),
                now,
            )
            .await?;
        }
        Ok(Outcome::Acted)
    }
}
