//! `WatchTasks`: the tenant's task creations and changes as a stream,
//! resumable from a cursor.
//!
//! Every creation and change has a number, taken per tenant inside the
//! transaction that makes it (`sql::record_task_change`), so numbers
//! become visible in order: a client that reconnects with its last cursor
//! gets every change after it, each once. Each item carries the task as it
//! is when streamed. The stream polls every [`POLL_INTERVAL`] while idle;
//! when the server starts draining it ends with `UNAVAILABLE`
//! ([`SHUTTING_DOWN`]) and the client reconnects with its last cursor.

use std::collections::VecDeque;
use std::time::Duration;

use futures::Stream;
use retain_proto::v1;
use retain_runtime::error::Error;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::sql;

/// How often an idle stream looks for new changes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The message a stream ends with when the server shuts down.
pub const SHUTTING_DOWN: &str =
    "the server is shutting down; reconnect with the last cursor you received";

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

/// The cursor a client passes back for number `seq`.
pub fn cursor(seq: i64) -> String {
    format!("t{seq}")
}

/// The number a cursor holds; `None` for anything this service did not
/// issue.
pub fn parse_cursor(cursor: &str) -> Option<i64> {
    cursor.strip_prefix('t')?.parse().ok().filter(|n| *n >= 0)
}

type State = Option<(DatabaseConnection, Watch, VecDeque<v1::WatchTasksResponse>)>;

/// The stream of `watch`'s changes, from after `watch.after` on, until
/// `draining` is cancelled.
pub fn stream(
    db: DatabaseConnection,
    watch: Watch,
    draining: CancellationToken,
) -> impl Stream<Item = Result<v1::WatchTasksResponse, Status>> + Send {
    let state: State = Some((db, watch, VecDeque::new()));
    futures::stream::unfold(state, move |state| {
        let draining = draining.clone();
        async move {
            let (db, watch, ready) = state?;
            next(db, watch, ready, draining).await
        }
    })
}

/// The stream's next item and its state (`None` after the last).
async fn next(
    db: DatabaseConnection,
    mut watch: Watch,
    mut ready: VecDeque<v1::WatchTasksResponse>,
    draining: CancellationToken,
) -> Option<(Result<v1::WatchTasksResponse, Status>, State)> {
    loop {
        if draining.is_cancelled() {
            return Some((Err(Status::unavailable(SHUTTING_DOWN)), None));
        }
        if let Some(item) = ready.pop_front() {
            return Some((Ok(item), Some((db, watch, ready))));
        }
        let read = async {
            let mut out = Vec::new();
            for (seq, task_id, queue, assignee) in
                sql::task_changes_after(&db, &watch.tenant, watch.after, PAGE).await?
            {
                let wanted = watch.queue.as_ref().is_none_or(|q| *q == queue)
                    && watch.assignee.as_ref().is_none_or(|a| *a == assignee);
                let task = if wanted {
                    sql::task(&db, &watch.tenant, &task_id).await?
                } else {
                    None
                };
                out.push((seq, task));
            }
            Ok::<_, sea_orm::DbErr>(out)
        };
        match read.await {
            Ok(rows) if rows.is_empty() => {
                tokio::select! {
                    () = tokio::time::sleep(POLL_INTERVAL) => {}
                    () = draining.cancelled() => {}
                }
            }
            Ok(rows) => {
                for (seq, task) in rows {
                    watch.after = seq;
                    if let Some(task) = task {
                        ready.push_back(v1::WatchTasksResponse {
                            task: Some(task),
                            cursor: cursor(seq),
                        });
                    }
                }
            }
            Err(e) => {
                // The client resumes from its last cursor.
                let status: Status = Error::from(e).into();
                return Some((Err(status), Some((db, watch, ready))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_others_are_refused() {
        assert_eq!(parse_cursor(&cursor(42)), Some(42));
        assert_eq!(parse_cursor("42"), None);
        assert_eq!(parse_cursor("t-1"), None);
        assert_eq!(parse_cursor("c7"), None);
    }
}
