//! Retain's notification service: `NotificationService` over gRPC.
//!
//! Its workers consume `health.band_changed` ([`route`]) and the NPS
//! answers, contractions and churns in `signals.recorded` ([`signals`]);
//! each trigger is routed by the tenant's policy for the account's
//! segment ([`policy`]) to a CSM task, an email or a record — exactly
//! once, suppressed inside the rule's cooldown or a snooze. A third worker
//! keeps each account's segment, CSM and contacts from `account.metrics`.
//! The RPCs work the CSM queue (`ListTasks`, `GetTask`, `ClaimTask`,
//! `CompleteTask`, `DismissTask`), silence a rule for an account
//! (`SnoozeRule`) and read or replace the routing policy.
//! docs/NOTIFICATION.md describes the service for its users, and what it
//! does not do yet.

mod email;
mod policy;
mod route;
mod settings;
mod signals;
mod sql;
mod tasks;
pub mod topics;
mod watch;

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use retain_bus::{BatchHandler, Consumer, ConsumerOptions, Handler, groups};
use retain_domain::validation::{
    MAX_EMAIL_LEN, MAX_LABEL_LEN, Text, check_text, enum_list, is_email,
};
use retain_health::topics::HEALTH_BAND_CHANGED;
use retain_ingestion::topics::SIGNALS_RECORDED;
use retain_metrics::topics::ACCOUNT_METRICS;
use retain_proto::v1;
use retain_proto::v1::notification_service_server::{
    NotificationService, NotificationServiceServer,
};
use retain_runtime::auth::{Principal, Role};
use retain_runtime::error::Error;
use retain_runtime::paging::{Filters, page_size};
use retain_runtime::{Clock, Context, Service, Services, Workers};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::tasks::{Move, TaskState};

pub use crate::email::{Mailer, Templates};
pub use crate::route::{Outcome, Router, band_trigger};
pub use crate::settings::{
    EmailSettings, EmailTransport, NotificationSettings, NotificationTenantKeys, SmtpTls, Tenant,
    Tenants, tenants,
};
pub use crate::signals::{Signals, Snapshots};

type TaskChanges = Pin<Box<dyn Stream<Item = Result<v1::WatchTasksResponse, Status>> + Send>>;

/// Longest free text a CSM writes (a note, a reason).
const MAX_NOTE: usize = 2_000;

#[tonic::async_trait]
impl NotificationService for Notification {
    async fn list_tasks(
        &self,
        request: Request<v1::ListTasksRequest>,
    ) -> Result<Response<v1::ListTasksResponse>, Status> {
        let principal = Principal::of(&request)?;
        require_any(principal, &[Role::Read, Role::Csm, Role::Admin])?;
        let req = request.get_ref();
        let mut v = retain_domain::Violations::new();
        let size = page_size(&mut v, "page_size", req.page_size);
        let filters = Filters::of([
            req.queue.clone(),
            req.assignee.clone(),
            req.account_id.clone(),
            format!("{:?}", req.states),
            req.overdue.to_string(),
        ]);
        let after = match filters
            .position(&mut v, "page_token", &req.page_token)
            .as_str()
        {
            "" => None,
            position => {
                let parsed = position.splitn(3, ':').collect::<Vec<_>>();
                match parsed.as_slice() {
                    [p, c, id] => p
                        .parse()
                        .ok()
                        .zip(c.parse().ok())
                        .map(|(p, c)| (p, c, (*id).to_owned())),
                    _ => None,
                }
                .or_else(|| {
                    v.push("page_token", "is not a token this service issued");
                    None
                })
            }
        };
        let mut states = enum_list(
            &mut v,
            "states",
            &req.states,
            TaskState::from_wire,
            "a task state (OPEN, CLAIMED, DONE, DISMISSED)",
        );
        if states.is_empty() {
            states = TaskState::LIVE.to_vec();
        }
        for (field, value) in [("queue", &req.queue), ("assignee", &req.assignee)] {
            check_text(&mut v, field, value, Text::Line(MAX_EMAIL_LEN), false);
        }
        if !req.account_id.is_empty()
            && let Err(e) = retain_domain::AccountId::parse(req.account_id.clone())
        {
            v.push("account_id", e.to_string());
        }
        v.into_result(()).map_err(Error::from)?;
        let non_empty = |s: &str| Some(s).filter(|s| !s.is_empty()).map(str::to_owned);
        let (queue, assignee, account) = (
            non_empty(&req.queue),
            non_empty(&req.assignee),
            non_empty(&req.account_id),
        );
        let filter = sql::TaskFilter {
            queue: queue.as_deref(),
            states,
            assignee: assignee.as_deref(),
            account: account.as_deref(),
            overdue: req.overdue,
        };
        let mut tasks = sql::tasks(
            &self.db,
            principal.tenant.as_str(),
            &filter,
            after,
            size + 1,
        )
        .await
        .map_err(Error::from)?;
        let next_page_token = filters.next_token(&mut tasks, size, |t| {
            let due = t.due_at.as_ref().map_or(0, retain_proto::convert::micros);
            format!("{}:{due}:{}", t.priority, t.task_id)
        });
        Ok(Response::new(v1::ListTasksResponse {
            tasks,
            next_page_token,
        }))
    }

    async fn get_task(
        &self,
        request: Request<v1::GetTaskRequest>,
    ) -> Result<Response<v1::GetTaskResponse>, Status> {
        let principal = Principal::of(&request)?;
        require_any(principal, &[Role::Read, Role::Csm, Role::Admin])?;
        let id = task_id(&request.get_ref().task_id)?;
        let task = self.task(principal.tenant.as_str(), id).await?;
        Ok(Response::new(v1::GetTaskResponse { task: Some(task) }))
    }

    async fn claim_task(
        &self,
        request: Request<v1::ClaimTaskRequest>,
    ) -> Result<Response<v1::ClaimTaskResponse>, Status> {
        let principal = Principal::of(&request)?;
        require_any(principal, &[Role::Csm, Role::Admin])?;
        let req = request.get_ref();
        let mut v = retain_domain::Violations::new();
        if task_id(&req.task_id).is_err() {
            v.push("task_id", "must be a task id (1–128 bytes)");
        }
        // A token that names its CSM claims for that CSM: the assignee may
        // be left empty, and naming anyone else is refused (an admin token
        // claims for anyone).
        let own = principal.email.as_deref();
        // The token's own spelling is stored, so the assignee filters and
        // round-robin counts (exact matches) find the task.
        let assignee = match own {
            Some(email) if req.assignee.is_empty() || req.assignee.eq_ignore_ascii_case(email) => {
                email
            }
            _ => req.assignee.as_str(),
        };
        if !is_email(assignee) {
            v.push("assignee", "must be the claiming CSM's email address");
        }
        v.into_result(()).map_err(Error::from)?;
        if let Some(email) = own
            && !assignee.eq_ignore_ascii_case(email)
            && !principal.roles.contains(&Role::Admin)
        {
            return Err(Status::permission_denied(format!(
                "this token claims tasks for {email} only; ask an admin to assign the task to {}",
                retain_domain::validation::quote(assignee)
            )));
        }
        let task = self
            .apply(
                principal.tenant.as_str(),
                &req.task_id,
                Move::Claim,
                Some(assignee),
                "",
            )
            .await?;
        Ok(Response::new(v1::ClaimTaskResponse { task: Some(task) }))
    }

    async fn complete_task(
        &self,
        request: Request<v1::CompleteTaskRequest>,
    ) -> Result<Response<v1::CompleteTaskResponse>, Status> {
        let principal = Principal::of(&request)?;
        require_any(principal, &[Role::Csm, Role::Admin])?;
        let req = request.get_ref();
        let mut v = retain_domain::Violations::new();
        if task_id(&req.task_id).is_err() {
            v.push("task_id", "must be a task id (1–128 bytes)");
        }
        check_text(&mut v, "note", &req.note, Text::Prose(MAX_NOTE), false);
        v.into_result(()).map_err(Error::from)?;
        let task = self
            .apply(
                principal.tenant.as_str(),
                &req.task_id,
                Move::Complete,
                None,
                &req.note,
            )
            .await?;
        Ok(Response::new(v1::CompleteTaskResponse { task: Some(task) }))
    }

    async fn dismiss_task(
        &self,
        request: Request<v1::DismissTaskRequest>,
    ) -> Result<Response<v1::DismissTaskResponse>, Status> {
        let principal = Principal::of(&request)?;
        require_any(principal, &[Role::Csm, Role::Admin])?;
        let req = request.get_ref();
        let mut v = retain_domain::Violations::new();
        if task_id(&req.task_id).is_err() {
            v.push("task_id", "must be a task id (1–128 bytes)");
        }
        check_text(&mut v, "reason", &req.reason, Text::Prose(MAX_NOTE), true);
        v.into_result(()).map_err(Error::from)?;
        let task = self
            .apply(
                principal.tenant.as_str(),
                &req.task_id,
                Move::Dismiss,
                None,
                &req.reason,
            )
            .await?;
        Ok(Response::new(v1::DismissTaskResponse { task: Some(task) }))
    }

    async fn snooze_rule(
        &self,
        request: Request<v1::SnoozeRuleRequest>,
    ) -> Result<Response<v1::SnoozeRuleResponse>, Status> {
        let principal = Principal::of(&request)?;
        require_any(principal, &[Role::Csm, Role::Admin])?;
        let req = request.get_ref();
        let now = self.clock.now().micros();
        let mut v = retain_domain::Violations::new();
        if let Err(e) = retain_domain::AccountId::parse(req.account_id.clone()) {
            v.push("account_id", e.to_string());
        }
        let rule = retain_proto::routing::rule_from_proto(req.trigger);
        if rule.is_none() {
            v.push(
                "trigger",
                format!("{} is not a routing trigger", req.trigger),
            );
        }
        let year = 365 * 86_400 * 1_000_000_i64;
        let until = retain_proto::convert::timestamp_field(&mut v, "until", req.until.as_ref())
            .map(|t| t.micros());
        match until {
            Some(u) if u > now && u <= now + year => {}
            None if req.until.is_some() => {} // malformed: recorded above
            _ => v.push("until", "must be in the future, at most 365 days ahead"),
        }
        v.into_result(()).map_err(Error::from)?;
        let (Some(rule), Some(until)) = (rule, until) else {
            return Err(Error::Internal("checked above".into()).into());
        };
        sql::snooze(
            &self.db,
            principal.tenant.as_str(),
            &req.account_id,
            rule.key(),
            until,
        )
        .await
        .map_err(Error::from)?;
        Ok(Response::new(v1::SnoozeRuleResponse {
            until: Some(retain_proto::convert::from_micros(until)),
        }))
    }

    type WatchTasksStream = TaskChanges;

    async fn watch_tasks(
        &self,
        request: Request<v1::WatchTasksRequest>,
    ) -> Result<Response<Self::WatchTasksStream>, Status> {
        let principal = Principal::of(&request)?;
        require_any(principal, &[Role::Read, Role::Csm, Role::Admin])?;
        let req = request.get_ref();
        let mut v = retain_domain::Violations::new();
        for (field, value) in [("queue", &req.queue), ("assignee", &req.assignee)] {
            check_text(&mut v, field, value, Text::Line(MAX_EMAIL_LEN), false);
        }
        let after = match req.cursor.as_str() {
            "" => None,
            c => {
                let n = watch::parse_cursor(c);
                if n.is_none() {
                    v.push("cursor", "is not a cursor this service issued");
                }
                n
            }
        };
        v.into_result(()).map_err(Error::from)?;
        let tenant = principal.tenant.as_str().to_owned();
        let after = match after {
            Some(n) => n,
            None => sql::task_watch_head(&self.db, &tenant)
                .await
                .map_err(Error::from)?,
        };
        let non_empty = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
        let wake = self.heads.subscribe(&tenant);
        let stream = watch::stream(
            self.db.clone(),
            watch::Watch {
                tenant,
                queue: non_empty(&req.queue),
                assignee: non_empty(&req.assignee),
                after,
            },
            wake,
            self.draining.clone(),
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_notifications(
        &self,
        request: Request<v1::ListNotificationsRequest>,
    ) -> Result<Response<v1::ListNotificationsResponse>, Status> {
        let principal = Principal::of(&request)?;
        require_any(principal, &[Role::Read, Role::Csm, Role::Admin])?;
        let req = request.get_ref();
        let mut v = retain_domain::Violations::new();
        let size = page_size(&mut v, "page_size", req.page_size);
        let filters = Filters::of([
            req.account_id.clone(),
            req.channel.to_string(),
            format!("{:?}", req.states),
        ]);
        let after = match filters
            .position(&mut v, "page_token", &req.page_token)
            .as_str()
        {
            "" => None,
            position => {
                let parsed = position.splitn(3, ':').collect::<Vec<_>>();
                match parsed.as_slice() {
                    [created, channel, id] => created
                        .parse()
                        .ok()
                        .zip(channel.parse().ok())
                        .map(|(c, ch)| (c, (*id).to_owned(), ch)),
                    _ => None,
                }
                .or_else(|| {
                    v.push("page_token", "is not a token this service issued");
                    None
                })
            }
        };
        if !req.account_id.is_empty()
            && let Err(e) = retain_domain::AccountId::parse(req.account_id.clone())
        {
            v.push("account_id", e.to_string());
        }
        let channel = match v1::NotificationChannel::try_from(req.channel) {
            Ok(v1::NotificationChannel::Unspecified) => None,
            Ok(c) => Some(c as i16),
            Err(_) => {
                v.push(
                    "channel",
                    format!("{} is not a channel (EMAIL, IN_APP)", req.channel),
                );
                None
            }
        };
        let states = enum_list(
            &mut v,
            "states",
            &req.states,
            |s| match v1::DeliveryState::try_from(s) {
                Ok(v1::DeliveryState::Unspecified) | Err(_) => None,
                Ok(state) => Some(state as i16),
            },
            "a delivery state (PENDING, SENT, DEAD, SUPPRESSED)",
        );
        v.into_result(()).map_err(Error::from)?;
        let filter = sql::MessageFilter {
            account: Some(req.account_id.as_str()).filter(|a| !a.is_empty()),
            channel,
            states,
        };
        let tenant = principal.tenant.as_str();
        // The page and the counts from one snapshot, so they agree.
        let tx = retain_store::snapshot(&self.db)
            .await
            .map_err(Error::from)?;
        let mut page = sql::messages(&tx, tenant, &filter, after, size + 1)
            .await
            .map_err(Error::from)?;
        let next_page_token = filters.next_token(&mut page, size, |(created, n)| {
            format!("{created}:{}:{}", n.channel, n.notification_id)
        });
        let counts = sql::message_counts(&tx, tenant, &filter)
            .await
            .map_err(Error::from)?
            .into_iter()
            .map(|(state, count)| v1::DeliveryStateCount {
                state: i32::from(state),
                count,
            })
            .collect();
        Ok(Response::new(v1::ListNotificationsResponse {
            notifications: page.into_iter().map(|(_, n)| n).collect(),
            next_page_token,
            counts,
        }))
    }

    async fn get_routing_policy(
        &self,
        request: Request<v1::GetRoutingPolicyRequest>,
    ) -> Result<Response<v1::GetRoutingPolicyResponse>, Status> {
        let principal = Principal::of(&request)?;
        require_any(principal, &[Role::Read, Role::Admin])?;
        let segment = &request.get_ref().segment;
        let mut v = retain_domain::Violations::new();
        check_text(&mut v, "segment", segment, Text::Line(MAX_LABEL_LEN), false);
        v.into_result(()).map_err(Error::from)?;
        let policy = policy::get(&self.db, principal.tenant.as_str(), segment).await?;
        Ok(Response::new(v1::GetRoutingPolicyResponse {
            policy: Some(policy),
        }))
    }

    async fn put_routing_policy(
        &self,
        request: Request<v1::PutRoutingPolicyRequest>,
    ) -> Result<Response<v1::PutRoutingPolicyResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(Role::Admin)?;
        let stored = policy::put(
            &self.db,
            principal.tenant.as_str(),
            request.get_ref().policy.as_ref(),
            self.clock.now().micros(),
            &self.templates,
        )
        .await?;
        Ok(Response::new(v1::PutRoutingPolicyResponse {
            policy: Some(stored),
        }))
    }
}

/// A worker consuming `topic` as the notification group with `handler`.
fn consume<H: Handler + Send + Sync + 'static>(
    workers: &mut Workers,
    ctx: &Context,
    own: &NotificationSettings,
    topic: &'static str,
    handler: H,
) {
    let bus = ctx.bus.clone();
    let opts = consumer_options(own, topic);
    workers.add(format!("notification.{topic}"), move |stop| async move {
        match Consumer::new(bus, topic, groups::NOTIFICATION, opts).await {
            Ok(consumer) => consumer.run(&handler, stop).await,
            // Without its subscription the consumer cannot run: the worker
            // ends, which stops the server (run `migrate`).
            Err(e) => tracing::error!(error = %e, topic, "notification consumer cannot start"),
        }
    });
}

/// `count` workers consuming `topic` as the notification group, each
/// routing a claimed batch per transaction with `handler` (see [`route`]).
/// Several claim batches of different accounts at once: one's claim
/// overlaps another's routing; the bus never hands out a key's message
/// while an earlier one is held, so each account's triggers stay in order.
fn consume_batches<H: BatchHandler + Clone + 'static>(
    workers: &mut Workers,
    ctx: &Context,
    own: &NotificationSettings,
    topic: &'static str,
    count: usize,
    handler: H,
) {
    for n in 0..count {
        let (bus, handler) = (ctx.bus.clone(), handler.clone());
        let opts = consumer_options(own, &format!("{topic}-{n}"));
        workers.add(
            format!("notification.{topic}.{n}"),
            move |stop| async move {
                match Consumer::new(bus, topic, groups::NOTIFICATION, opts).await {
                    Ok(consumer) => consumer.run_batched(&handler, stop).await,
                    Err(e) => {
                        tracing::error!(error = %e, topic, "notification consumer cannot start")
                    }
                }
            },
        );
    }
}

/// The consumer options of `topic`'s worker, from the settings.
fn consumer_options(own: &NotificationSettings, topic: &str) -> ConsumerOptions {
    own.consumer.options(format!(
        "notification-{topic}-{}-{}",
        std::process::id(),
        retain_store::now_micros()
    ))
}

/// The caller has one of `roles` (the error names the first).
fn require_any(principal: &Principal, roles: &[Role]) -> Result<(), Error> {
    let mut first = None;
    for role in roles {
        match principal.require(*role) {
            Ok(()) => return Ok(()),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Err(first.unwrap_or(Error::PermissionDenied { needed: "csm" }))
}

/// A checked task id.
fn task_id(id: &str) -> Result<&str, Error> {
    if id.is_empty() || id.len() > 128 || id.contains('\0') {
        return Err(Error::invalid("task_id", "must be a task id (1–128 bytes)"));
    }
    Ok(id)
}

/// The notification service: the gRPC service and its consumer.
#[derive(Debug, Clone)]
pub struct Notification {
    db: DatabaseConnection,
    clock: Clock,
    /// Cancelled when the server starts draining: watch streams end.
    draining: tokio_util::sync::CancellationToken,
    /// Each tenant's latest change number, one poll for all its watchers.
    heads: retain_runtime::watch::Heads,
    /// The email templates a policy may name.
    templates: std::sync::Arc<Templates>,
}

impl Service for Notification {
    const NAME: &'static str = "retain-notification";
    const ABOUT: &'static str = "Retain's notification service: CSM task queues and routed actions for every health change.";
    type Settings = NotificationSettings;
    type TenantKeys = NotificationTenantKeys;

    fn build(ctx: &Context, own: NotificationSettings) -> anyhow::Result<Services> {
        let tenants = std::sync::Arc::new(tenants(&ctx.tenants)?);
        let router_tenants = tenants.clone();
        let router = Router {
            db: ctx.db.clone(),
            clock: ctx.clock.clone(),
            tenants,
        };
        let mut workers = Workers::new();
        consume_batches(
            &mut workers,
            ctx,
            &own,
            HEALTH_BAND_CHANGED.name(),
            own.band_consumers,
            router.clone(),
        );
        consume_batches(
            &mut workers,
            ctx,
            &own,
            SIGNALS_RECORDED.name(),
            own.signal_consumers,
            Signals(router.clone()),
        );
        consume(
            &mut workers,
            ctx,
            &own,
            ACCOUNT_METRICS.name(),
            Snapshots(router),
        );
        let (db, clock) = (ctx.db.clone(), ctx.clock.clone());
        let every = Duration::from_millis(own.sla_sweep_interval_ms);
        workers.add("notification.sla-sweep", move |stop| async move {
            tasks::sla_sweep(db, clock, every, stop).await;
        });
        let templates = std::sync::Arc::new(Templates::load(&own.email.templates_dir)?);
        let mailer = Mailer::new(
            ctx.db.clone(),
            ctx.clock.clone(),
            templates.clone(),
            &own.email,
            router_tenants,
        )?;
        workers.add("notification.email", move |stop| async move {
            mailer.run(stop).await;
        });
        let mut services = Services::new();
        let service = Notification {
            db: ctx.db.clone(),
            clock: ctx.clock.clone(),
            draining: services.draining(),
            heads: watch::heads(ctx.db.clone()),
            templates,
        };
        Ok(services
            .with(NotificationServiceServer::new(service))
            .with_workers(workers))
    }
}
