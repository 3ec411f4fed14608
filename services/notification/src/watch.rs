//! `WatchTasks`: the tenant's task creations and changes as a stream,
//! resumable from a cursor ("t" and the change's number; see
//! `retain_runtime::watch`). Every creation and change is numbered per
//! tenant inside the transaction that makes it
//! (`sql::record_task_change`); each item carries the task as it is when
//! streamed (a page of changes reads its tasks in one statement).

use std::time::Duration;

use futures::Stream;
use retain_proto::v1;
use retain_runtime::error::Error;
use retain_runtime::watch;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::sql;

/// How often a tenant's latest change number is read while it has
/// watchers (one read per tenant, whatever the number of its streams).
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Changes read per query.
const PAGE: u64 = 500;

/// What a watcher asked for.
pub struct Watch {
    /// Tenant.
    pub tenant: String,
    /// Only tasks of this queue.
    pub queue: Option<String>,
    /// Only tasks assigned to this CSM (after the change).
    pub assignee: Option<String>,
    /// The last number seen.
    pub after: i64,
}

/// The number a cursor holds; `None` for anything this service did not
/// issue.
pub fn parse_cursor(cursor: &str) -> Option<i64> {
    watch::parse_cursor('t', cursor)
}

/// The tenants' latest change numbers, polled once per tenant for all of
/// its watchers (`retain_runtime::watch::Heads`).
pub fn heads(db: DatabaseConnection) -> watch::Heads {
    watch::Heads::new(POLL_INTERVAL, move |tenant: String| {
        let db = db.clone();
        async move {
            sql::task_watch_head(&db, &tenant)
                .await
                .map_err(Error::from)
        }
    })
}

/// The stream of `w`'s changes, from after `w.after` on, woken by `wake`
/// (its tenant's [`heads`]), until `draining` is cancelled.
pub fn stream(
    db: DatabaseConnection,
    w: Watch,
    wake: tokio::sync::watch::Receiver<i64>,
    draining: CancellationToken,
) -> impl Stream<Item = Result<v1::WatchTasksResponse, Status>> + Send {
    let after = w.after;
    let read = move |after: i64| {
        let (db, tenant) = (db.clone(), w.tenant.clone());
        let (queue, assignee) = (w.queue.clone(), w.assignee.clone());
        async move {
            let changes = sql::task_changes_after(&db, &tenant, after, PAGE).await?;
            let wanted = |q: &str, a: &str| {
                queue.as_deref().is_none_or(|x| x == q)
                    && assignee.as_deref().is_none_or(|x| x == a)
            };
            // The wanted tasks of the page, read in one statement.
            let ids: Vec<&str> = changes
                .iter()
                .filter(|(_, _, q, a)| wanted(q, a))
                .map(|(_, id, _, _)| id.as_str())
                .collect();
            let tasks = sql::tasks_by_id(&db, &tenant, &ids).await?;
            let out: Vec<(i64, Option<v1::Task>)> = changes
                .iter()
                .map(|(seq, id, q, a)| {
                    (*seq, wanted(q, a).then(|| tasks.get(id).cloned()).flatten())
                })
                .collect();
            Ok::<_, Error>(out)
        }
    };
    futures::StreamExt::map(watch::stream(after, wake, draining, read), |item| {
        item.map(|(seq, task)| v1::WatchTasksResponse {
            task: Some(task),
            cursor: watch::cursor('t', seq),
        })
    })
}
