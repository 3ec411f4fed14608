//! `WatchBandChanges`: the tenant's announced band changes as a stream,
//! resumable from a cursor ("c" and the change's number; see
//! `retain_runtime::watch`). Every announced change is numbered per tenant
//! inside the transaction that announces it (`sql::record_changes`).

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
    /// Only changes to these bands (all when empty).
    pub to_bands: Vec<i32>,
    /// Only accounts of this segment (all when `None`).
    pub segment: Option<String>,
    /// The last number seen.
    pub after: i64,
}

/// The number a cursor holds; `None` for anything this service did not
/// issue.
pub fn parse_cursor(cursor: &str) -> Option<i64> {
    watch::parse_cursor('c', cursor)
}

/// The tenants' latest change numbers, polled once per tenant for all of
/// its watchers (`retain_runtime::watch::Heads`).
pub fn heads(db: DatabaseConnection) -> watch::Heads {
    watch::Heads::new(POLL_INTERVAL, move |tenant: String| {
        let db = db.clone();
        async move { sql::watch_head(&db, &tenant).await.map_err(Error::from) }
    })
}

/// The stream of `w`'s changes, from after `w.after` on, woken by `wake`
/// (its tenant's [`heads`]), until `draining` is cancelled.
pub fn stream(
    db: DatabaseConnection,
    w: Watch,
    wake: tokio::sync::watch::Receiver<i64>,
    draining: CancellationToken,
) -> impl Stream<Item = Result<v1::WatchBandChangesResponse, Status>> + Send {
    let after = w.after;
    let read = move |after: i64| {
        let (db, tenant) = (db.clone(), w.tenant.clone());
        let (to_bands, segment) = (w.to_bands.clone(), w.segment.clone());
        async move {
            let rows = sql::changes_after(&db, &tenant, after, PAGE)
                .await
                .map_err(Error::from)?;
            Ok(rows
                .into_iter()
                .map(|(seq, seg, event)| {
                    let wanted = (to_bands.is_empty() || to_bands.contains(&event.to_band))
                        && segment.as_ref().is_none_or(|s| *s == seg);
                    (seq, wanted.then_some(event))
                })
                .collect())
        }
    };
    futures::StreamExt::map(watch::stream(after, wake, draining, read), |item| {
        item.map(|(seq, event)| v1::WatchBandChangesResponse {
            account_id: event.account_id,
            from_band: event.from_band,
            to_band: event.to_band,
            score: event.score,
            cursor: watch::cursor('c', seq),
        })
    })
}
