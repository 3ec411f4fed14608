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
//!
//! **Batches.** The consumer hands over a whole claimed batch: its
//! triggers are routed in one transaction with their acknowledgements —
//! each policy read once, the recorded ids, snoozes and earlier actions of
//! all the batch's accounts read in one statement each, and every write
//! multi-row — in claim order, so a trigger sees the batch's earlier
//! actions as it would have one transaction before. If the batch fails,
//! the consumer routes each message on its own (the same code, with a
//! batch of one).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::settings::Tenants;
use retain_bus::{BatchHandler, Delivery, Handler, HandlerError};
use retain_domain::routing::{self, AccountContext, Planned, Trigger};
use retain_domain::time::Timestamp;
use retain_health::topics::HEALTH_BAND_CHANGED;
use retain_proto::{convert, health as wire, v1};
use retain_runtime::Clock;
use retain_runtime::error::Error;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, TransactionTrait};
use std::sync::Arc;

use crate::topics::EMAIL_REQUESTED;
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
        self.handle_batch(std::slice::from_ref(delivery)).await
    }
}

impl BatchHandler for Router {
    async fn handle_batch(&self, batch: &[Delivery]) -> Result<(), HandlerError> {
        let mut items = Vec::with_capacity(batch.len());
        for delivery in batch {
            let event = HEALTH_BAND_CHANGED.decode(delivery)?;
            items.push(band_trigger(&event).map_err(HandlerError::permanent)?);
        }
        let deliveries: Vec<&Delivery> = batch.iter().collect();
        self.route_all(&items, &deliveries)
            .await
            .map(|_| ())
            .map_err(|e| HandlerError::transient(e.to_string()))
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
        let items = [(trigger.clone(), ctx.clone())];
        let outcomes = self.route_all(&items, delivery.as_slice()).await?;
        Ok(outcomes.first().copied().unwrap_or(Outcome::NoRule))
    }

    /// Routes triggers in order, in one transaction with the
    /// acknowledgement of `deliveries`; one outcome per trigger.
    pub async fn route_all(
        &self,
        items: &[(Trigger, AccountContext)],
        deliveries: &[&Delivery],
    ) -> Result<Vec<Outcome>, Error> {
        let tx = self.db.begin().await?;
        let outcomes = self.route_in(&tx, items).await?;
        if !self.commit_acked(tx, deliveries).await? {
            return Ok(vec![Outcome::Duplicate; items.len()]);
        }
        Ok(outcomes)
    }

    /// Acknowledges `deliveries` in `tx` and commits. A lost lease rolls
    /// everything back: alone, the message is another replica's now
    /// (`false`: nothing done here); in a batch, the others are still ours
    /// and were not kept, so the batch fails and each is routed on its own.
    pub(crate) async fn commit_acked(
        &self,
        tx: DatabaseTransaction,
        deliveries: &[&Delivery],
    ) -> Result<bool, Error> {
        if self.ack(&tx, deliveries).await? {
            tx.commit().await?;
            return Ok(true);
        }
        tx.rollback().await?;
        if deliveries.len() > 1 {
            return Err(Error::Unavailable(
                "a lease of the batch was lost; routing each message on its own".into(),
            ));
        }
        Ok(false)
    }

    /// Acknowledges `deliveries` inside the transaction; `false` when a
    /// lease was lost (the replica that has the message handles it, and
    /// this transaction must roll back).
    pub(crate) async fn ack<C: ConnectionTrait>(
        &self,
        tx: &C,
        deliveries: &[&Delivery],
    ) -> Result<bool, Error> {
        retain_bus::ack_all_in(tx, deliveries)
            .await
            .map_err(Error::from)
    }

    /// Routes triggers in order inside the caller's transaction: decides
    /// each under its account's policy, then applies the decisions tenant
    /// by tenant.
    pub(crate) async fn route_in<C: ConnectionTrait>(
        &self,
        tx: &C,
        items: &[(Trigger, AccountContext)],
    ) -> Result<Vec<Outcome>, Error> {
        let mut outcomes = vec![Outcome::NoRule; items.len()];
        let mut policies: HashMap<(&str, &str), (routing::RoutingPolicy, routing::Assignment)> =
            HashMap::new();
        let mut decided = Vec::new();
        for (i, (trigger, ctx)) in items.iter().enumerate() {
            let segment = ctx.segment.as_deref().unwrap_or("");
            let key = (ctx.tenant.as_str(), segment);
            let (policy, assignment) = match policies.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let (policy, assignment, _) =
                        policy::effective(tx, &ctx.tenant, segment).await?;
                    e.insert((policy, assignment))
                }
            };
            if let Some(decision) = routing::route(policy, trigger, ctx) {
                decided.push(Decided {
                    i,
                    ctx,
                    at: trigger.at(),
                    decision,
                    assignment: *assignment,
                });
            }
        }
        let now = self.clock.now().micros();
        let tenants: BTreeSet<&str> = decided.iter().map(|d| d.ctx.tenant.as_str()).collect();
        for tenant in tenants {
            let theirs: Vec<&Decided> = decided.iter().filter(|d| d.ctx.tenant == tenant).collect();
            self.apply(tx, tenant, &theirs, now, &mut outcomes).await?;
        }
        Ok(outcomes)
    }

    /// Applies one tenant's decisions, in order: each is a duplicate (its
    /// id recorded before), snoozed, inside the cooldown of an earlier
    /// action (stored or earlier in the batch), or acted on; then the
    /// actions, messages and tasks are written, several rows a statement.
    async fn apply<C: ConnectionTrait>(
        &self,
        tx: &C,
        tenant: &str,
        decided: &[&Decided<'_>],
        now: i64,
        outcomes: &mut [Outcome],
    ) -> Result<(), Error> {
        // What is known already, one statement each.
        let ids: Vec<&str> = decided
            .iter()
            .map(|d| d.decision.notification_id.as_str())
            .collect();
        let accounts: Vec<&str> = decided
            .iter()
            .map(|d| d.ctx.account.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let recorded = sql::recorded(tx, tenant, &ids).await?;
        let snoozes = sql::snoozes(tx, tenant, &accounts).await?;
        let longest = decided
            .iter()
            .map(|d| d.decision.cooldown_seconds.saturating_mul(1_000_000))
            .max()
            .unwrap_or(0);
        let mut acted = if longest > 0 {
            let times = decided.iter().map(|d| d.at.micros());
            let (first, last) = (times.clone().min(), times.max());
            let (first, last) = (first.unwrap_or(0), last.unwrap_or(0));
            sql::acted(
                tx,
                tenant,
                &accounts,
                (first.saturating_sub(longest), last.saturating_add(longest)),
            )
            .await?
        } else {
            HashMap::new()
        };

        // Each decision in order.
        let mut seen = HashSet::new();
        let mut taken: Vec<(&Decided, i16)> = Vec::new();
        for d in decided {
            let id = d.decision.notification_id.as_str();
            if recorded.contains(id) || !seen.insert(id) {
                outcomes[d.i] = Outcome::Duplicate;
                continue;
            }
            let rule = d.decision.rule;
            let key = (d.ctx.account.clone(), rule.key().to_owned());
            let at = d.at.micros();
            let snoozed = snoozes.get(&key).is_some_and(|until| at < *until);
            let cooled = !snoozed && d.decision.cooldown_seconds > 0 && {
                let earlier: Vec<routing::Sent> = acted
                    .get(&key)
                    .into_iter()
                    .flatten()
                    .map(|t| routing::Sent {
                        rule,
                        at: Timestamp::from_micros(*t),
                    })
                    .collect();
                routing::cooldown(&earlier, rule, d.at, d.decision.cooldown_seconds).is_some()
            };
            let (suppressed, outcome) = if snoozed {
                (2, Outcome::Snoozed)
            } else if cooled {
                (1, Outcome::Cooldown)
            } else {
                acted.entry(key).or_default().push(at);
                (0, Outcome::Acted)
            };
            outcomes[d.i] = outcome;
            taken.push((d, suppressed));
        }

        // The actions first: only those this transaction inserted (not a
        // concurrent replica) get their messages and tasks.
        let rows: Vec<sql::NewAction> = taken
            .iter()
            .map(|(d, suppressed)| sql::NewAction {
                notification_id: &d.decision.notification_id,
                account: &d.ctx.account,
                rule: d.decision.rule.key(),
                kind: match d.decision.action {
                    Planned::Task { .. } => 1,
                    Planned::Email { .. } => 2,
                    Planned::Record => 3,
                },
                suppressed: *suppressed,
                trigger_at: d.at.micros(),
                now,
            })
            .collect();
        let inserted = sql::insert_actions(tx, tenant, &rows).await?;
        let mut messages = Vec::new();
        let mut tasks = Vec::new();
        for (d, suppressed) in taken {
            if !inserted.contains(&d.decision.notification_id) {
                outcomes[d.i] = Outcome::Duplicate;
                continue;
            }
            match &d.decision.action {
                Planned::Email { .. } => messages.extend(records(d, suppressed > 0, now)),
                Planned::Task { .. } if suppressed == 0 => tasks.push(d),
                _ => {}
            }
        }
        sql::insert_messages(tx, tenant, &messages, now).await?;
        // Each pending email is work for a delivery worker, on the bus.
        let deliveries: Vec<v1::EmailRequested> = messages
            .iter()
            .filter(|m| {
                m.channel == v1::NotificationChannel::Email as i32
                    && m.state == v1::DeliveryState::Pending as i32
            })
            .map(|m| v1::EmailRequested {
                tenant_id: tenant.to_owned(),
                notification_id: m.notification_id.clone(),
            })
            .collect();
        EMAIL_REQUESTED.publish(tx, &deliveries).await?;

        // Tasks: unowned ones assigned within their queue, then created and
        // numbered for watchers.
        let assignees = self.assign(tx, tenant, &tasks).await?;
        let mut new_tasks = Vec::with_capacity(tasks.len());
        let mut changes = Vec::with_capacity(tasks.len());
        for (d, assignee) in tasks.iter().zip(&assignees) {
            let Planned::Task {
                title,
                message,
                queue,
                priority,
                due,
                ..
            } = &d.decision.action
            else {
                continue;
            };
            new_tasks.push(sql::NewTask {
                task_id: &d.decision.notification_id,
                account: &d.ctx.account,
                rule: d.decision.rule.key(),
                title,
                message,
                queue,
                priority: retain_proto::routing::priority_to_proto(*priority) as i16,
                assignee,
                due_at: due.micros(),
                now,
            });
            changes.push((
                d.decision.notification_id.as_str(),
                queue.as_str(),
                assignee.as_str(),
            ));
        }
        sql::insert_tasks(tx, tenant, &new_tasks).await?;
        sql::record_task_changes(tx, tenant, &changes, now).await?;
        Ok(())
    }

    /// Each task's assignee: the account's CSM owner, else one of the
    /// queue's CSMs (tenant settings) by the policy's strategy — round-robin
    /// positions taken per queue in one statement, or the fewest open
    /// tasks; '' when the queue has none. Fewest-open counts are read once
    /// per queue before the batch and count every task the batch gives a
    /// member of that queue, owner-assigned ones included.
    async fn assign<C: ConnectionTrait>(
        &self,
        tx: &C,
        tenant: &str,
        tasks: &[&Decided<'_>],
    ) -> Result<Vec<String>, Error> {
        let queues = &self.tenants.of(tenant).own.queues;
        let mut rotations: BTreeMap<&str, u64> = BTreeMap::new();
        let mut open: HashMap<&str, Vec<u64>> = HashMap::new();
        for d in tasks {
            let Some((queue, members)) = task_queue(queues, d) else {
                continue;
            };
            match d.assignment {
                routing::Assignment::RoundRobin if unowned(d) => {
                    *rotations.entry(queue).or_default() += 1;
                }
                routing::Assignment::RoundRobin => {}
                routing::Assignment::FewestOpen => {
                    if !open.contains_key(queue) {
                        open.insert(queue, sql::open_counts(tx, tenant, queue, members).await?);
                    }
                }
            }
        }
        for (queue, n) in &mut rotations {
            *n = sql::take_rotation(tx, tenant, queue, *n).await?;
        }
        let mut out = Vec::with_capacity(tasks.len());
        for d in tasks {
            let owner = match &d.decision.action {
                Planned::Task {
                    assignee: Some(owner),
                    ..
                } => Some(owner.clone()),
                _ => None,
            };
            let who = match (owner, task_queue(queues, d)) {
                (Some(owner), _) => owner,
                (None, None) => String::new(),
                (None, Some((queue, members))) => match d.assignment {
                    routing::Assignment::RoundRobin => {
                        let position = rotations.get_mut(queue).map_or(0, |p| {
                            *p += 1;
                            *p - 1
                        });
                        routing::assign(d.assignment, members, &[], position)
                    }
                    routing::Assignment::FewestOpen => {
                        routing::assign(d.assignment, members, &open[queue], 0)
                    }
                }
                .unwrap_or_default()
                .to_owned(),
            };
            if let Some((queue, members)) = task_queue(queues, d) {
                let k = members.iter().position(|m| *m == who);
                if let Some(c) = k.and_then(|k| open.get_mut(queue)?.get_mut(k)) {
                    *c += 1;
                }
            }
            out.push(who);
        }
        Ok(out)
    }
}

/// The queue a planned task goes to and its CSMs, when it has any.
fn task_queue<'a>(
    queues: &'a BTreeMap<String, Vec<String>>,
    d: &'a Decided<'_>,
) -> Option<(&'a str, &'a Vec<String>)> {
    match &d.decision.action {
        Planned::Task { queue, .. } => queues
            .get(queue)
            .filter(|m| !m.is_empty())
            .map(|m| (queue.as_str(), m)),
        _ => None,
    }
}

/// Whether a planned task has no owner to go to.
fn unowned(d: &Decided<'_>) -> bool {
    matches!(&d.decision.action, Planned::Task { assignee: None, .. })
}

/// A trigger a rule applies to, with its decision.
#[derive(Debug)]
pub(crate) struct Decided<'a> {
    /// Its position in the batch.
    i: usize,
    ctx: &'a AccountContext,
    at: Timestamp,
    decision: routing::Decision,
    assignment: routing::Assignment,
}

/// The email record of an email decision (and its in-app message if the
/// rule has one): pending (the in-app one delivered by being recorded),
/// or suppressed.
fn records(d: &Decided<'_>, suppressed: bool, now: i64) -> Vec<v1::Notification> {
    use v1::DeliveryState as D;
    let Planned::Email {
        template,
        variables,
        to,
        in_app,
    } = &d.decision.action
    else {
        return Vec::new();
    };
    let record = |channel: v1::NotificationChannel, state: D| v1::Notification {
        notification_id: d.decision.notification_id.clone(),
        account_id: d.ctx.account.clone(),
        trigger: retain_proto::routing::rule_to_proto(d.decision.rule) as i32,
        channel: channel as i32,
        template: template.clone(),
        variables: variables.clone().into_iter().collect(),
        recipients: to.clone(),
        state: state as i32,
        attempts: 0,
        last_error: String::new(),
        created_at: Some(convert::from_micros(now)),
        sent_at: (state == D::Sent).then(|| convert::from_micros(now)),
    };
    let (email, app) = if suppressed {
        (D::Suppressed, D::Suppressed)
    } else {
        (D::Pending, D::Sent)
    };
    let mut out = vec![record(v1::NotificationChannel::Email, email)];
    if *in_app {
        out.push(record(v1::NotificationChannel::InApp, app));
    }
    out
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
