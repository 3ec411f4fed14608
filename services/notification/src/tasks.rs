//! The task aggregate: a CSM task's states, the moves a CSM makes between
//! them (claim, complete, dismiss), and the SLA sweep. The statements are
//! in `sql::tasks`; the RPC handlers in `lib.rs` call [`Notification::apply`].

use std::time::Duration;

use retain_proto::v1;
use retain_runtime::{Clock, Error};
use sea_orm::{DatabaseConnection, TransactionTrait};

use crate::{Notification, sql};

/// A task's state, as stored in `notification_tasks.state` (the numbers
/// are the table's; they happen to equal the wire's `TaskState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Waiting for a CSM.
    Open,
    /// A CSM took it.
    Claimed,
    /// Done.
    Done,
    /// Dismissed, with a reason.
    Dismissed,
}

impl TaskState {
    /// The states a CSM still has to act on: what ListTasks shows by
    /// default, what the SLA sweep and round-robin count.
    pub const LIVE: [TaskState; 2] = [TaskState::Open, TaskState::Claimed];

    /// The stored number.
    pub const fn code(self) -> i16 {
        match self {
            Self::Open => 1,
            Self::Claimed => 2,
            Self::Done => 3,
            Self::Dismissed => 4,
        }
    }

    /// The state stored as `code`, if any.
    pub fn from_code(code: i16) -> Option<Self> {
        [Self::Open, Self::Claimed, Self::Done, Self::Dismissed]
            .into_iter()
            .find(|s| s.code() == code)
    }

    /// The state a client named (`TaskState` number), if one.
    pub fn from_wire(state: i32) -> Option<Self> {
        Some(match v1::TaskState::try_from(state).ok()? {
            v1::TaskState::Unspecified => return None,
            v1::TaskState::Open => Self::Open,
            v1::TaskState::Claimed => Self::Claimed,
            v1::TaskState::Done => Self::Done,
            v1::TaskState::Dismissed => Self::Dismissed,
        })
    }

    /// The wire's `TaskState`.
    pub fn to_wire(self) -> v1::TaskState {
        match self {
            Self::Open => v1::TaskState::Open,
            Self::Claimed => v1::TaskState::Claimed,
            Self::Done => v1::TaskState::Done,
            Self::Dismissed => v1::TaskState::Dismissed,
        }
    }

    /// `states` as an SQL list of their numbers (`1, 2`), for statements
    /// whose states are fixed.
    pub fn sql_list(states: &[TaskState]) -> String {
        states
            .iter()
            .map(|s| s.code().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Claimed => "claimed",
            Self::Done => "done",
            Self::Dismissed => "dismissed",
        }
    }
}

/// What a CSM does to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// Open → claimed, by an assignee.
    Claim,
    /// Open or claimed → done.
    Complete,
    /// Open or claimed → dismissed.
    Dismiss,
}

impl Move {
    /// The states the move starts from.
    pub fn from(self) -> &'static [TaskState] {
        match self {
            Self::Claim => &[TaskState::Open],
            Self::Complete | Self::Dismiss => &TaskState::LIVE,
        }
    }

    /// The state it ends in.
    pub fn to(self) -> TaskState {
        match self {
            Self::Claim => TaskState::Claimed,
            Self::Complete => TaskState::Done,
            Self::Dismiss => TaskState::Dismissed,
        }
    }

    fn done(self) -> &'static str {
        match self {
            Self::Claim => "claimed",
            Self::Complete => "completed",
            Self::Dismiss => "dismissed",
        }
    }
}

impl Notification {
    /// One task of `tenant`, or NOT_FOUND.
    pub(crate) async fn task(&self, tenant: &str, id: &str) -> Result<v1::Task, Error> {
        sql::task(&self.db, tenant, id).await?.ok_or_else(|| {
            Error::NotFound(format!("task {}", retain_domain::validation::quote(id)))
        })
    }

    /// Applies `step` to a task in one statement (of two concurrent CSMs
    /// exactly one wins), records the change for watchers, and returns the
    /// task; the loser learns, FAILED_PRECONDITION, the state it found.
    pub(crate) async fn apply(
        &self,
        tenant: &str,
        id: &str,
        step: Move,
        assignee: Option<&str>,
        resolution: &str,
    ) -> Result<v1::Task, Error> {
        let now = self.clock.now().micros();
        let tx = self.db.begin().await?;
        let moved = sql::transition(
            &tx,
            tenant,
            id,
            (step.from(), step.to()),
            assignee,
            resolution,
            now,
        )
        .await?;
        if moved {
            let task = sql::task(&tx, tenant, id)
                .await?
                .ok_or_else(|| Error::Internal(format!("task {id} vanished in its transaction")))?;
            sql::record_task_change(&tx, tenant, (id, &task.queue, &task.assignee), now).await?;
            tx.commit().await?;
            return Ok(task);
        }
        tx.rollback().await?;
        let task = self.task(tenant, id).await?;
        let state = i16::try_from(task.state)
            .ok()
            .and_then(TaskState::from_code)
            .map_or("unknown", TaskState::name);
        let by = if task.assignee.is_empty() {
            String::new()
        } else {
            format!(" (assignee {})", task.assignee)
        };
        let allowed = step
            .from()
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(" or ");
        Err(Error::FailedPrecondition(format!(
            "task {} is {state}{by}; only an {allowed} task can be {}",
            retain_domain::validation::quote(id),
            step.done()
        )))
    }
}

/// Marks open and claimed tasks past their SLA due time as breached,
/// every `every`, until `stop`. A task is marked once; ListTasks filters
/// them with `overdue`.
///
/// Exported as metrics: `retain.notification.tasks_breached` counts the
/// tasks marked; `retain.notification.tasks_overdue` is each tenant's
/// open and claimed tasks past their SLA after the sweep.
pub(crate) async fn sla_sweep(
    db: DatabaseConnection,
    clock: Clock,
    every: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let meter = opentelemetry::global::meter("retain-notification");
    let breached = meter
        .u64_counter("retain.notification.tasks_breached")
        .with_description("Tasks marked past their SLA due time")
        .build();
    let overdue = meter
        .i64_gauge("retain.notification.tasks_overdue")
        .with_description("Open and claimed tasks past their SLA due time, per tenant")
        .build();
    loop {
        let marked = async {
            let tx = db.begin().await?;
            let n = sql::mark_breached(&tx, clock.now().micros()).await?;
            tx.commit().await?;
            Ok::<(u64, Vec<(String, i64)>), sea_orm::DbErr>((n, sql::breached_open(&db).await?))
        };
        match marked.await {
            Ok((n, per_tenant)) => {
                if n > 0 {
                    tracing::info!(tasks = n, "tasks past their SLA marked breached");
                }
                breached.add(n, &[]);
                for (tenant, open) in per_tenant {
                    overdue.record(open, &[opentelemetry::KeyValue::new("tenant", tenant)]);
                }
            }
            Err(e) => tracing::warn!(error = %e, "SLA sweep failed; retrying at the next"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_numbers_and_wire_states_agree_both_ways() {
        for s in [
            TaskState::Open,
            TaskState::Claimed,
            TaskState::Done,
            TaskState::Dismissed,
        ] {
            assert_eq!(TaskState::from_code(s.code()), Some(s));
            assert_eq!(TaskState::from_wire(s.to_wire() as i32), Some(s));
        }
        assert_eq!(TaskState::from_wire(0), None);
        assert_eq!(TaskState::from_wire(99), None);
        assert_eq!(TaskState::sql_list(&TaskState::LIVE), "1, 2");
    }
}
