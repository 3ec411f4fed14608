//! `WatchBandChanges`: the tenant's announced band changes as a stream,
//! resumable from a cursor.
//!
//! Every announced change has a number, taken per tenant inside the
//! transaction that announces it (`sql::record_changes`), so numbers become
//! visible in order: a reader that has seen number N and later reads
//! "after N" cannot miss one that committed in between. The cursor is the
//! number; a client that reconnects with its last cursor gets every change
//! after it, each once. The stream polls the table every
//! [`POLL_INTERVAL`] while idle. When the server starts draining it ends
//! with `UNAVAILABLE` ([`SHUTTING_DOWN`]): the client reconnects (to
//! another replica) with its last cursor.

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
    /// Only changes to these bands (all when empty).
    pub to_bands: Vec<i32>,
    /// Only accounts of this segment (all when `None`).
    pub segment: Option<String>,
    /// The last number seen.
    pub after: i64,
}

/// The cursor a client passes back for number `seq`.
pub fn cursor(seq: i64) -> String {
    format!("c{seq}")
}

/// The number a cursor holds; `None` for anything this service did not
/// issue.
pub fn parse_cursor(cursor: &str) -> Option<i64> {
    cursor.strip_prefix('c')?.parse().ok().filter(|n| *n >= 0)
}

/// The stream of `watch`'s changes, from after `watch.after` on, until
/// `draining` is cancelled.
pub fn stream(
    db: DatabaseConnection,
    watch: Watch,
    draining: CancellationToken,
) -> impl Stream<Item = Result<v1::WatchBandChangesResponse, Status>> + Send {
    let state = Some((db, watch, VecDeque::new()));
    futures::stream::unfold(state, move |state| {
        let draining = draining.clone();
        async move {
            let (db, watch, ready) = state?;
            next(db, watch, ready, draining).await
        }
    })
}

type State = Option<(
    DatabaseConnection,
    Watch,
    VecDeque<v1::WatchBandChangesResponse>,
)>;

/// The stream's next item and its state (`None` after the last).
async fn next(
    db: DatabaseConnection,
    mut watch: Watch,
    mut ready: VecDeque<v1::WatchBandChangesResponse>,
    draining: CancellationToken,
) -> Option<(Result<v1::WatchBandChangesResponse, Status>, State)> {
    loop {
        if draining.is_cancelled() {
            return Some((Err(Status::unavailable(SHUTTING_DOWN)), None));
        }
        if let Some(item) = ready.pop_front() {
            return Some((Ok(item), Some((db, watch, ready))));
        }
        match sql::changes_after(&db, &watch.tenant, watch.after, PAGE).await {
            Ok(rows) if rows.is_empty() => {
                tokio::select! {
                    () = tokio::time::sleep(POLL_INTERVAL) => {}
                    () = draining.cancelled() => {}
                }
            }
            Ok(rows) => {
                for (seq, segment, event) in rows {
                    watch.after = seq;
                    let band_ok =
                        watch.to_bands.is_empty() || watch.to_bands.contains(&event.to_band);
                    let segment_ok = watch.segment.as_ref().is_none_or(|s| *s == segment);
                    if band_ok && segment_ok {
                        ready.push_back(v1::WatchBandChangesResponse {
                            account_id: event.account_id,
                            from_band: event.from_band,
                            to_band: event.to_band,
                            score: event.score,
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
        assert_eq!(parse_cursor("c-1"), None);
        assert_eq!(parse_cursor("cx"), None);
    }
}
