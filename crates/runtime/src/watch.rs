//! Resumable watch streams: a server stream of numbered changes a client
//! resumes from a cursor.
//!
//! The service numbers its changes per tenant in commit order (a counter
//! row taken inside the changing transaction, so numbers become visible in
//! order); the cursor is the number. [`stream`] reads the changes after
//! the last number it saw and, while idle, waits for the tenant's latest
//! number to move; it ends with `UNAVAILABLE` ([`SHUTTING_DOWN`]) when the
//! server starts draining — the client reconnects, to any replica, with its
//! last cursor and misses nothing and sees nothing twice. A read error
//! ends nothing: the stream reports it and the client resumes from its
//! cursor.
//!
//! [`Heads`] is the one poll per tenant behind every idle stream: a single
//! task per tenant with watchers reads the tenant's latest number every
//! `every` and wakes its streams when it moves, so a hundred idle watchers
//! of a tenant cost one query a period, not a hundred.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::error::Error;

/// The message a stream ends with when the server shuts down.
pub const SHUTTING_DOWN: &str =
    "the server is shutting down; reconnect with the last cursor you received";

/// The cursor for number `seq`: `prefix` then the number, so each stream's
/// cursors are told apart.
pub fn cursor(prefix: char, seq: i64) -> String {
    format!("{prefix}{seq}")
}

/// The number a cursor holds; `None` for anything this stream did not
/// issue.
pub fn parse_cursor(prefix: char, cursor: &str) -> Option<i64> {
    cursor
        .strip_prefix(prefix)?
        .parse()
        .ok()
        .filter(|n| *n >= 0)
}

/// Reads a tenant's latest change number.
type ReadHead =
    dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<i64, Error>> + Send>> + Send + Sync;

/// One poll per tenant for all of its watchers (see the module's doc).
/// Cheap to clone.
#[derive(Clone)]
pub struct Heads {
    inner: Arc<HeadsInner>,
}

struct HeadsInner {
    every: Duration,
    read: Box<ReadHead>,
    tenants: Mutex<HashMap<String, tokio::sync::watch::Receiver<i64>>>,
}

impl std::fmt::Debug for Heads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Heads")
            .field("every", &self.inner.every)
            .finish_non_exhaustive()
    }
}

impl Heads {
    /// Tenants' latest numbers read with `read`, once every `every` per
    /// tenant that has watchers.
    pub fn new<F, Fut>(every: Duration, read: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<i64, Error>> + Send + 'static,
    {
        Self {
            inner: Arc::new(HeadsInner {
                every,
                read: Box::new(move |tenant| Box::pin(read(tenant))),
                tenants: Mutex::default(),
            }),
        }
    }

    /// A wake-up for `tenant`'s changes: its value moves when the tenant's
    /// latest number does. Starts the tenant's poll if none runs; the poll
    /// ends once the tenant's last watcher is gone.
    pub fn subscribe(&self, tenant: &str) -> tokio::sync::watch::Receiver<i64> {
        let mut tenants = self.lock();
        if let Some(rx) = tenants.get(tenant) {
            return rx.clone();
        }
        let (tx, rx) = tokio::sync::watch::channel(-1);
        tenants.insert(tenant.to_owned(), rx.clone());
        tokio::spawn(poll(self.inner.clone(), tenant.to_owned(), tx));
        rx
    }

    /// How many tenants are being polled (tests, metrics).
    pub fn polled(&self) -> usize {
        self.lock().len()
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, tokio::sync::watch::Receiver<i64>>> {
        self.inner
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A tenant's poll: its latest number every period, sent when it moves,
/// until only the map's own receiver is left.
async fn poll(inner: Arc<HeadsInner>, tenant: String, tx: tokio::sync::watch::Sender<i64>) {
    /// Takes the tenant out of the map however the poll ends (a panic in
    /// `read` included), so the next watcher starts a new poll: the sender
    /// is dropped first, and the map's receiver is removed only while it
    /// is this poll's (a new poll's channel is still open).
    struct Leave {
        inner: Arc<HeadsInner>,
        tenant: String,
        tx: Option<tokio::sync::watch::Sender<i64>>,
    }
    impl Drop for Leave {
        fn drop(&mut self) {
            drop(self.tx.take());
            let mut tenants = self
                .inner
                .tenants
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if tenants
                .get(&self.tenant)
                .is_some_and(|rx| rx.has_changed().is_err())
            {
                tenants.remove(&self.tenant);
            }
        }
    }
    let leave = Leave {
        inner: inner.clone(),
        tenant: tenant.clone(),
        tx: Some(tx),
    };
    let Some(tx) = leave.tx.as_ref() else { return };
    let mut ticks = tokio::time::interval(inner.every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        {
            let mut tenants = inner
                .tenants
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if tx.receiver_count() <= 1 {
                tenants.remove(&tenant);
                return;
            }
        }
        match (inner.read)(tenant.clone()).await {
            Ok(head) => {
                tx.send_if_modified(|h| std::mem::replace(h, head) != head);
            }
            Err(e) => {
                tracing::warn!(%tenant, error = %e, "reading the watch head failed; retrying")
            }
        }
    }
}

/// The items `read(after)` returns, from after number `after` on, until
/// `draining` is cancelled. `read` returns the numbers after `after` in
/// order, each with its item when the watcher wants it (`None`: skipped,
/// but the stream moves past it). While idle the stream waits for `wake`
/// (a [`Heads::subscribe`] of its tenant) to move.
pub fn stream<T, R, Fut>(
    after: i64,
    wake: tokio::sync::watch::Receiver<i64>,
    draining: CancellationToken,
    read: R,
) -> impl Stream<Item = Result<(i64, T), Status>> + Send
where
    T: Send + 'static,
    R: Fn(i64) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Vec<(i64, Option<T>)>, Error>> + Send,
{
    let state = Some((after, VecDeque::new(), read, wake));
    futures::stream::unfold(state, move |state| {
        let draining = draining.clone();
        async move {
            let (mut after, mut ready, read, mut wake) = state?;
            loop {
                if draining.is_cancelled() {
                    return Some((Err(Status::unavailable(SHUTTING_DOWN)), None));
                }
                if let Some(item) = ready.pop_front() {
                    return Some((Ok(item), Some((after, ready, read, wake))));
                }
                // Marked seen before reading: a change committed while the
                // read runs wakes the wait below at once.
                wake.borrow_and_update();
                match read(after).await {
                    Ok(rows) if rows.is_empty() => {
                        tokio::select! {
                            changed = wake.changed() => {
                                if changed.is_err() {
                                    // No poll any more (cannot happen while
                                    // this stream holds its receiver): read
                                    // again after a pause.
                                    tokio::time::sleep(Duration::from_secs(1)).await;
                                }
                            }
                            () = draining.cancelled() => {}
                        }
                    }
                    Ok(rows) => {
                        for (seq, item) in rows {
                            after = seq;
                            if let Some(item) = item {
                                ready.push_back((seq, item));
                            }
                        }
                    }
                    Err(e) => {
                        return Some((Err(e.into()), Some((after, ready, read, wake))));
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn cursors_round_trip_and_others_are_refused() {
        assert_eq!(parse_cursor('c', &cursor('c', 42)), Some(42));
        assert_eq!(parse_cursor('c', "42"), None);
        assert_eq!(parse_cursor('c', "c-1"), None);
        assert_eq!(parse_cursor('t', "c7"), None);
    }

    #[tokio::test]
    async fn skipped_numbers_are_passed_and_draining_ends_the_stream() {
        let draining = CancellationToken::new();
        let heads = Heads::new(Duration::from_millis(5), |_| async { Ok(3) });
        let read = |after: i64| async move {
            // Numbers 1..=3 exist; 2 is not wanted.
            Ok((after + 1..=3)
                .map(|n| (n, (n != 2).then_some(n * 10)))
                .collect::<Vec<_>>())
        };
        let wake = heads.subscribe("acme");
        let mut s = Box::pin(stream(0, wake, draining.clone(), read));
        assert_eq!(s.next().await.unwrap().unwrap(), (1, 10));
        assert_eq!(s.next().await.unwrap().unwrap(), (3, 30));
        draining.cancel();
        let end = s.next().await.unwrap().unwrap_err();
        assert_eq!(end.code(), tonic::Code::Unavailable);
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn one_poll_per_tenant_wakes_all_of_its_watchers_and_ends_with_them() {
        let head = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (h, r) = (head.clone(), reads.clone());
        let heads = Heads::new(Duration::from_millis(5), move |_| {
            let (h, r) = (h.clone(), r.clone());
            async move {
                r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(h.load(std::sync::atomic::Ordering::SeqCst))
            }
        });
        let mut watchers: Vec<_> = (0..50).map(|_| heads.subscribe("acme")).collect();
        let other = heads.subscribe("globex");
        assert_eq!(
            heads.polled(),
            2,
            "one poll per tenant, whatever its watchers"
        );
        head.store(7, std::sync::atomic::Ordering::SeqCst);
        for w in &mut watchers {
            // Every watcher is woken until it sees the move.
            while *w.borrow_and_update() != 7 {
                w.changed().await.unwrap();
            }
        }
        assert!(reads.load(std::sync::atomic::Ordering::SeqCst) >= 1);
        drop(watchers);
        drop(other);
        // With its watchers gone, each tenant's poll ends at its next tick.
        retain_testkit::eventually("the polls to end", Duration::from_secs(10), || async {
            (heads.polled() == 0).then_some(())
        })
        .await;
    }
}
