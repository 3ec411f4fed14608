//! The consumer loop: claim a batch, handle each message, ack, repeat;
//! poll with adaptive back-off when idle; release leases on shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::queue::{Bus, BusError, Delivery, NackOutcome, RetryPolicy, Subscription};

/// Why a handler could not handle a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerError {
    /// What went wrong (kept on the message as `last_error`).
    pub message: String,
    /// True when retrying cannot help (a payload that does not decode): the
    /// message is dead-lettered at once.
    pub permanent: bool,
    /// Not a failure: the message must wait until this instant (µs since
    /// the epoch) and is put back without counting an attempt
    /// ([`crate::Bus::defer`]).
    pub defer_until: Option<i64>,
}

impl HandlerError {
    /// A failure worth retrying (database unavailable, timeout).
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
            defer_until: None,
        }
    }

    /// A failure no retry can fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
            defer_until: None,
        }
    }

    /// Not a failure: the message waits until `until` (µs since the
    /// epoch), `reason` noted on it, and its attempt is not counted.
    pub fn defer(until: i64, reason: impl Into<String>) -> Self {
        Self {
            message: reason.into(),
            permanent: false,
            defer_until: Some(until),
        }
    }
}

/// Handles one message. Must be idempotent: delivery is at least once.
pub trait Handler: Send + Sync {
    /// Handles `delivery`; `Ok` acknowledges it.
    fn handle(&self, delivery: &Delivery) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Handles a whole claimed batch at once — one transaction for many
/// messages, where one per message would wait on a commit each — with
/// [`Handler::handle`] as the fallback.
pub trait BatchHandler: Handler {
    /// Handles every message of `batch` (claim order: one key's messages
    /// in order) and acknowledges them all in its own transaction
    /// (`ack_all_in`; the consumer does not), or keeps nothing and fails:
    /// the consumer then handles each message on its own, so one bad
    /// message is retried or dead-lettered alone.
    fn handle_batch(
        &self,
        batch: &[Delivery],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Tuning for a [`Consumer`].
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// This replica's lease-owner name; unique per process and consumer.
    pub owner: String,
    /// Messages claimed per round trip.
    pub batch_size: usize,
    /// How long a claim is held before another replica may take it over.
    pub lease: Duration,
    /// Back-off between attempts of a failing message.
    pub retry: RetryPolicy,
    /// First idle poll interval; doubles while idle.
    pub idle_min: Duration,
    /// Longest idle poll interval.
    pub idle_max: Duration,
    /// Messages of different keys handled at once. Messages of one key
    /// are always handled one after another, in order. More than 1 helps
    /// a handler that waits on its own commit (one WAL flush each).
    pub concurrency: usize,
}

impl ConsumerOptions {
    /// Defaults for a consumer named `owner`: batches of 100, 30 s leases,
    /// idle polling from 20 ms up to 1 s, one message at a time.
    pub fn new(owner: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            batch_size: 100,
            lease: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            idle_min: Duration::from_millis(20),
            idle_max: Duration::from_secs(1),
            concurrency: 1,
        }
    }
}

/// One replica's consumer of one subscription.
#[derive(Debug, Clone)]
pub struct Consumer {
    bus: Bus,
    sub: Subscription,
    opts: ConsumerOptions,
}

impl Consumer {
    /// A consumer of `group`'s subscription to `topic`, which must exist.
    pub async fn new(
        bus: Bus,
        topic: &str,
        group: &str,
        opts: ConsumerOptions,
    ) -> Result<Self, BusError> {
        let sub = bus.subscription(topic, group).await?;
        Ok(Self { bus, sub, opts })
    }

    /// The subscription consumed.
    pub fn subscription(&self) -> &Subscription {
        &self.sub
    }

    /// One round: claims a batch, handles each key's messages in order (up
    /// to `concurrency` keys at once), acks what succeeded and nacks what
    /// failed. Returns how many messages were claimed.
    pub async fn run_once<H: Handler>(&self, handler: &H) -> Result<usize, BusError> {
        let batch = self.claim().await?;
        self.handle_each(handler, &batch).await?;
        Ok(batch.len())
    }

    /// One round with a [`BatchHandler`]: claims a batch and hands it over
    /// whole; when that fails, handles each message on its own as
    /// [`Consumer::run_once`] does. Returns how many messages were claimed.
    pub async fn run_once_batched<H: BatchHandler>(&self, handler: &H) -> Result<usize, BusError> {
        let batch = self.claim().await?;
        if batch.is_empty() {
            return Ok(0);
        }
        // Each message keeps its own trace: a `bus.handle` span in its
        // publisher's trace lasts as long as the batch that handles it,
        // and the batch's span links to every one of them.
        let messages: Vec<tracing::Span> = batch
            .iter()
            .map(|delivery| {
                let span = tracing::info_span!(
                    "bus.handle",
                    topic = %self.sub.topic,
                    group = %self.sub.group,
                    id = delivery.id,
                    attempt = delivery.attempt,
                    batch = batch.len(),
                    batch_failed = tracing::field::Empty
                );
                delivery.headers.set_parent_of(&span);
                span
            })
            .collect();
        let span = tracing::info_span!(
            "bus.handle_batch",
            topic = %self.sub.topic,
            group = %self.sub.group,
            messages = batch.len()
        );
        for message in &messages {
            span.follows_from(message);
        }
        match handler.handle_batch(&batch).instrument(span).await {
            // The handler acknowledged the batch in its own transaction;
            // acking here too would delete messages it did not handle.
            Ok(()) => drop(messages),
            Err(e) => {
                for message in &messages {
                    message.record("batch_failed", true);
                }
                drop(messages);
                tracing::debug!(error = %e.message, messages = batch.len(), "batch failed; handling each message");
                self.handle_each(handler, &batch).await?;
            }
        }
        Ok(batch.len())
    }

    async fn claim(&self) -> Result<Vec<Delivery>, BusError> {
        self.bus
            .claim(
                &self.sub.topic,
                &self.sub.group,
                &self.opts.owner,
                self.opts.batch_size,
                self.opts.lease,
            )
            .await
    }

    /// Handles each key's messages in order (up to `concurrency` keys at
    /// once), acks what succeeded and nacks what failed.
    async fn handle_each<H: Handler>(
        &self,
        handler: &H,
        batch: &[Delivery],
    ) -> Result<(), BusError> {
        // Per key, in claim order; keyless messages each on their own.
        let mut chains: Vec<Vec<&Delivery>> = Vec::new();
        let mut chain_of: HashMap<&str, usize> = HashMap::new();
        for delivery in batch {
            match delivery.key.as_deref() {
                Some(key) => {
                    let i = *chain_of.entry(key).or_insert_with(|| {
                        chains.push(Vec::new());
                        chains.len() - 1
                    });
                    chains[i].push(delivery);
                }
                None => chains.push(vec![delivery]),
            }
        }
        let mut pending = Vec::with_capacity(chains.len());
        for chain in chains {
            pending.push(self.handle_chain(handler, chain));
        }
        let handled: Vec<Vec<(&Delivery, Result<(), HandlerError>)>> =
            futures::stream::iter(pending)
                .buffer_unordered(self.opts.concurrency.max(1))
                .collect()
                .await;
        let mut done = Vec::with_capacity(batch.len());
        for (delivery, result) in handled.into_iter().flatten() {
            match result {
                Ok(()) => done.push(delivery.id),
                Err(HandlerError {
                    defer_until: Some(until),
                    message,
                    ..
                }) => {
                    self.bus
                        .defer(&self.opts.owner, delivery, until, &message)
                        .await?;
                }
                Err(e) => {
                    let max = if e.permanent {
                        delivery.attempt
                    } else {
                        self.sub.max_attempts
                    };
                    let outcome = self
                        .bus
                        .nack(
                            &self.opts.owner,
                            delivery,
                            &e.message,
                            max,
                            &self.opts.retry,
                        )
                        .await?;
                    if outcome != NackOutcome::DeadLettered {
                        tracing::debug!(id = delivery.id, ?outcome, error = %e.message, "bus message failed");
                    }
                }
            }
        }
        if !done.is_empty() {
            self.bus.ack(&self.opts.owner, &done).await?;
        }
        Ok(())
    }

    /// Handles one key's messages one after another.
    async fn handle_chain<'a, H: Handler>(
        &self,
        handler: &H,
        chain: Vec<&'a Delivery>,
    ) -> Vec<(&'a Delivery, Result<(), HandlerError>)> {
        let mut out = Vec::with_capacity(chain.len());
        for delivery in chain {
            out.push((delivery, self.handle_one(handler, delivery).await));
        }
        out
    }

    /// Handles one message inside its trace span.
    async fn handle_one<H: Handler>(
        &self,
        handler: &H,
        delivery: &Delivery,
    ) -> Result<(), HandlerError> {
        let span = tracing::info_span!(
            "bus.handle",
            topic = %self.sub.topic,
            group = %self.sub.group,
            id = delivery.id,
            attempt = delivery.attempt
        );
        delivery.headers.set_parent_of(&span);
        handler.handle(delivery).instrument(span).await
    }

    /// Runs until `shutdown` is cancelled, then releases this replica's
    /// leases so another replica can continue at once. Database errors are
    /// logged and retried after the idle interval; they never end the loop.
    pub async fn run<H: Handler>(&self, handler: &H, shutdown: CancellationToken) {
        self.run_rounds(shutdown, || self.run_once(handler)).await;
    }

    /// [`Consumer::run`] with a [`BatchHandler`]: each claimed batch is
    /// handed over whole ([`Consumer::run_once_batched`]).
    pub async fn run_batched<H: BatchHandler>(&self, handler: &H, shutdown: CancellationToken) {
        self.run_rounds(shutdown, || self.run_once_batched(handler))
            .await;
    }

    async fn run_rounds<'a, F, Fut>(&'a self, shutdown: CancellationToken, mut round: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<usize, BusError>> + 'a,
    {
        let wake = self.bus.wake_handle();
        let mut idle = self.opts.idle_min;
        let reap_every = self.opts.lease;
        let mut last_reap = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            if last_reap.elapsed() >= reap_every {
                last_reap = tokio::time::Instant::now();
                if let Err(e) = self.bus.reap_expired(&self.sub).await {
                    tracing::warn!(error = %e, "bus reaper failed");
                }
            }
            let claimed = match round().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, topic = %self.sub.topic, "bus consumer round failed");
                    0
                }
            };
            if claimed > 0 {
                idle = self.opts.idle_min;
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = wake.notified() => idle = self.opts.idle_min,
                () = tokio::time::sleep(idle) => idle = (idle * 2).min(self.opts.idle_max),
            }
        }
        match self.bus.release(&self.opts.owner).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "bus leases released on shutdown"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "releasing bus leases failed; they will expire"),
        }
    }
}
