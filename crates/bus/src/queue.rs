//! The table-backed queue: publish, claim, ack, nack, release.
//!
//! Times are microseconds since the Unix epoch taken from the caller's clock,
//! so the same SQL runs on SQLite and PostgreSQL. Message states: 0 pending,
//! 1 leased, 2 dead.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use retain_store::now_micros;

use rand::Rng;
use retain_store::entity::bus_message;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait, Value,
};
use tokio::sync::Notify;

use crate::Headers;
use crate::driver::{Claim, Driver, Postgres, Sqlite};
pub use crate::message::OutgoingMessage;
use crate::message::{DEAD, LEASED, MAX_PARAMS, PENDING};

/// How long one claim may run on PostgreSQL before it is cancelled.
pub const DEFAULT_CLAIM_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors from the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The database failed.
    #[error("bus database error: {0}")]
    Db(#[from] DbErr),
    /// A topic or group name is empty or holds whitespace.
    #[error("bus names must be non-empty and hold no whitespace (got {0:?})")]
    InvalidName(String),
    /// A coalescing subscription was asked of a topic whose payload would
    /// not survive folding.
    #[error("topic {topic:?} is not coalescible")]
    NotCoalescible {
        /// Topic.
        topic: String,
    },
    /// A consumer named a topic/group pair nobody subscribed.
    #[error("no subscription for topic {topic:?} in consumer group {group:?}")]
    NotSubscribed {
        /// Topic.
        topic: String,
        /// Consumer group.
        group: String,
    },
}

/// A consumer group's subscription to a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Topic name.
    pub topic: String,
    /// Consumer group (usually the service name).
    pub group: String,
    /// Fold a publication into a still-pending message with the same key.
    pub coalesce: bool,
    /// Delivery attempts before a message is dead-lettered.
    pub max_attempts: i32,
    /// Deliver only publications carrying this label
    /// ([`OutgoingMessage::label`]); `None` takes every publication. A
    /// group that acts on few of a topic's messages says so here, and the
    /// others are never written for it.
    pub label: Option<String>,
}

impl Subscription {
    /// A subscription with 10 attempts and no coalescing.
    pub fn new(topic: impl Into<String>, group: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            group: group.into(),
            coalesce: false,
            max_attempts: 10,
            label: None,
        }
    }

    /// Turns coalescing on: publications for a key that is still pending
    /// fold into one message whose payload is their concatenation (see
    /// [`publish`]). Only for topics declared coalescible ([`crate::Topic`]).
    pub fn coalescing(mut self) -> Self {
        self.coalesce = true;
        self
    }

    /// Sets the attempts before dead-lettering (at least 1).
    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Delivers only publications labelled `label` to this group.
    pub fn only_labelled(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
}

/// A leased message handed to a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Message id (publication order within a group).
    pub id: i64,
    /// Key, if any.
    pub key: Option<String>,
    /// Payload.
    pub payload: Vec<u8>,
    /// Headers.
    pub headers: Headers,
    /// This delivery's attempt number, from 1.
    pub attempt: i32,
    /// The lease owner it was claimed by (empty when only peeked): what
    /// [`ack_in`] needs to acknowledge it inside the handler's transaction.
    pub owner: String,
}

/// What [`Bus::nack`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NackOutcome {
    /// Scheduled for another attempt.
    Retried,
    /// Attempts exhausted: dead-lettered.
    DeadLettered,
    /// A newer publication for the same coalescing key was pending: this
    /// message's payload was folded into it (see [`publish`]) and the
    /// failed copy dropped; the pending message carries both.
    Superseded,
    /// The lease had already been lost (expired and re-claimed elsewhere).
    LeaseLost,
    /// Put back to wait, its attempt not counted ([`Bus::defer`]).
    Deferred,
}

/// Retry back-off: `base × 2^(attempt−1)`, capped, with ±20 % jitter.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The delay before the next attempt after `attempt` failed.
    pub fn delay(&self, attempt: i32) -> Duration {
        let exp = u32::try_from(attempt.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
        let raw = self.base.saturating_mul(1u32 << exp.min(20)).min(self.max);
        let jitter = rand::rng().random_range(0.8..1.2);
        raw.mul_f64(jitter).min(self.max)
    }
}

/// One consumer group's backlog on one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    /// The topic.
    pub topic: String,
    /// The consumer group.
    pub group: String,
    /// Messages by state.
    pub stats: BusStats,
    /// Age of the oldest pending or leased message (zero when none).
    pub oldest_age: Duration,
}

/// Message counts of one group's topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Waiting (including scheduled retries).
    pub pending: u64,
    /// Leased by a consumer.
    pub leased: u64,
    /// Dead-lettered.
    pub dead: u64,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Publishes messages to `topic` on `conn`, which should be the caller's
/// transaction: the messages commit or roll back with the caller's data.
/// Each subscribed group gets its own copy, except a group whose
/// subscription takes only labelled publications and the message does not
/// carry that label. Returns the rows written or folded; a topic nobody
/// subscribes to stores nothing.
///
/// For a coalescing group, a publication whose key already has a pending
/// message is folded into it: the pending payload becomes the two payloads
/// concatenated, in publication order. Concatenated protobuf encodings
/// decode as the messages merged (repeated fields append, singular fields
/// take the later value), so a topic that may coalesce carries its
/// per-publication facts in repeated fields and nothing is lost
/// ([`crate::Topic`] declares which topics may).
pub async fn publish<C: ConnectionTrait>(
    conn: &C,
    topic: &str,
    messages: &[OutgoingMessage],
) -> Result<u64, BusError> {
    let backend = conn.get_database_backend();
    let now = now_micros();
    let mut written = 0;
    // One statement may not fold two rows with the same key (PostgreSQL
    // refuses "ON CONFLICT DO UPDATE ... a second time"), so repeated keys go
    // into successive rounds, which also keeps per-key publication order.
    for round in rounds_by_key(messages) {
        written += match backend {
            DatabaseBackend::Postgres => Postgres::publish_round(conn, topic, now, &round).await?,
            _ => Sqlite::publish_round(conn, topic, now, &round).await?,
        };
    }
    Ok(written)
}

/// Acknowledges `delivery` on `conn`, the handler's own transaction: the
/// message is deleted exactly when the handler's writes commit, so a
/// handler whose effects and acknowledgement commit together processes
/// each message exactly once (a crash before the commit leaves both
/// undone, and the message is delivered again). Returns whether the
/// message was still leased to its owner (false: the lease was lost and
/// another replica has it — roll back).
pub async fn ack_in<C: ConnectionTrait>(conn: &C, delivery: &Delivery) -> Result<bool, BusError> {
    let n = retain_store::exec(
        conn,
        format!("DELETE FROM bus_messages WHERE id = $1 AND lease_owner = $2 AND state = {LEASED}"),
        [delivery.id.into(), delivery.owner.clone().into()],
    )
    .await?;
    Ok(n == 1)
}

/// [`ack_in`] for every message of `batch` (one owner's claim) in one
/// statement; `false` when any lease was lost — roll back.
pub async fn ack_all_in<C: ConnectionTrait>(
    conn: &C,
    batch: &[&Delivery],
) -> Result<bool, BusError> {
    let Some(first) = batch.first() else {
        return Ok(true);
    };
    let mut values: Vec<sea_orm::Value> = vec![first.owner.clone().into()];
    values.extend(batch.iter().map(|d| sea_orm::Value::from(d.id)));
    let n = retain_store::exec(
        conn,
        format!(
            "DELETE FROM bus_messages WHERE lease_owner = $1 AND state = {LEASED} AND id IN ({})",
            retain_store::placeholder_list(batch.len(), 2)
        ),
        values,
    )
    .await?;
    Ok(n == batch.len() as u64)
}

fn rounds_by_key(messages: &[OutgoingMessage]) -> Vec<Vec<&OutgoingMessage>> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut rounds: Vec<Vec<&OutgoingMessage>> = vec![Vec::with_capacity(messages.len())];
    for m in messages {
        let round = match m.key.as_deref() {
            Some(k) => {
                let n = seen.entry(k).or_insert(0);
                *n += 1;
                *n - 1
            }
            None => 0,
        };
        if rounds.len() <= round {
            rounds.push(Vec::new());
        }
        rounds[round].push(m);
    }
    rounds
}

/// A handle on the bus for consumers and operators. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Bus {
    db: DatabaseConnection,
    wake: Arc<Notify>,
    claim_timeout: Duration,
}

impl Bus {
    /// A bus over this database.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            wake: Arc::new(Notify::new()),
            claim_timeout: DEFAULT_CLAIM_TIMEOUT,
        }
    }

    /// Sets how long one claim may run on PostgreSQL before the database
    /// cancels it ([`DEFAULT_CLAIM_TIMEOUT`] by default).
    pub fn with_claim_timeout(mut self, timeout: Duration) -> Self {
        self.claim_timeout = timeout;
        self
    }

    /// The database the bus lives in.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Wakes this process's idle consumers now (call after committing a
    /// publication); other replicas find the message at their next poll.
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    pub(crate) fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Creates or updates a subscription. Messages published before it
    /// existed are not delivered to the group.
    pub async fn subscribe(&self, sub: &Subscription) -> Result<(), BusError> {
        for name in [&sub.topic, &sub.group].into_iter().chain(&sub.label) {
            if name.is_empty() || name.chars().any(char::is_whitespace) {
                return Err(BusError::InvalidName(name.clone()));
            }
        }
        let backend = self.db.get_database_backend();
        self.db
            .execute_raw(Statement::from_sql_and_values(
                backend,
                "INSERT INTO bus_subscriptions (topic, consumer_group, coalesce, max_attempts, label) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (topic, consumer_group) \
                 DO UPDATE SET coalesce = excluded.coalesce, max_attempts = excluded.max_attempts, \
                 label = excluded.label",
                [
                    sub.topic.clone().into(),
                    sub.group.clone().into(),
                    sub.coalesce.into(),
                    sub.max_attempts.into(),
                    sub.label.clone().into(),
                ],
            ))
            .await?;
        Ok(())
    }

    /// The stored subscription of `group` to `topic`.
    pub async fn subscription(&self, topic: &str, group: &str) -> Result<Subscription, BusError> {
        use retain_store::entity::bus_subscription as s;
        let found = s::Entity::find_by_id((topic.to_owned(), group.to_owned()))
            .one(&self.db)
            .await?;
        found
            .map(|m| Subscription {
                topic: m.topic,
                group: m.consumer_group,
                coalesce: m.coalesce,
                max_attempts: m.max_attempts,
                label: m.label,
            })
            .ok_or_else(|| BusError::NotSubscribed {
                topic: topic.to_owned(),
                group: group.to_owned(),
            })
    }

    /// Leases up to `max` deliverable messages of `group`'s copy of `topic`
    /// to `owner` for `lease`. A message is deliverable when it is pending
    /// and due, or its lease expired, and it is the oldest unfinished message
    /// of its key (per-key serial processing). Returned in id order.
    pub async fn claim(
        &self,
        topic: &str,
        group: &str,
        owner: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Delivery>, BusError> {
        let claim = Claim {
            owner,
            lease_until: now_micros() + micros(lease),
            group,
            topic,
            now: now_micros(),
            max: i64::try_from(max).unwrap_or(i64::MAX),
        };
        let rows = match self.db.get_database_backend() {
            DatabaseBackend::Postgres => {
                Postgres::claim(&self.db, &claim, self.claim_timeout).await?
            }
            _ => Sqlite::claim(&self.db, &claim, self.claim_timeout).await?,
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(Delivery {
                id: row.try_get_by_index(0)?,
                key: row.try_get_by_index(1)?,
                payload: row.try_get_by_index(2)?,
                headers: Headers::decode(&row.try_get_by_index::<String>(3)?),
                attempt: row.try_get_by_index(4)?,
                owner: owner.to_owned(),
            });
        }
        out.sort_by_key(|d| d.id);
        Ok(out)
    }

    /// Acknowledges handled messages: they are deleted. Only messages still
    /// leased to `owner` are affected; returns how many were.
    pub async fn ack(&self, owner: &str, ids: &[i64]) -> Result<u64, BusError> {
        let backend = self.db.get_database_backend();
        let mut done = 0;
        for chunk in ids.chunks(MAX_PARAMS) {
            if chunk.is_empty() {
                continue;
            }
            let sql = format!(
                "DELETE FROM bus_messages WHERE lease_owner = $1 AND state = {LEASED} AND id IN ({})",
                retain_store::placeholder_list(chunk.len(), 2)
            );
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() + 1);
            values.push(owner.into());
            values.extend(chunk.iter().map(|&id| Value::from(id)));
            done += self
                .db
                .execute_raw(Statement::from_sql_and_values(backend, sql, values))
                .await?
                .rows_affected();
        }
        Ok(done)
    }

    /// Extends `delivery`'s lease to `lease` from now, for a handler whose
    /// work outlasts one lease (a rescoring job renews it after each round).
    /// `false` when the lease was lost (it expired and another replica
    /// holds the message): the handler should stop, its work being the
    /// other replica's now.
    pub async fn renew(&self, delivery: &Delivery, lease: Duration) -> Result<bool, BusError> {
        let until = now_micros().saturating_add(micros(lease));
        let renewed = self
            .exec(
                &format!(
                    "UPDATE bus_messages SET lease_until = $1 \
                     WHERE id = $2 AND lease_owner = $3 AND state = {LEASED}"
                ),
                vec![
                    until.into(),
                    delivery.id.into(),
                    delivery.owner.clone().into(),
                ],
            )
            .await?;
        Ok(renewed == 1)
    }

    /// Reports a failed delivery: retried after the policy's delay, or
    /// dead-lettered once `max_attempts` is reached.
    pub async fn nack(
        &self,
        owner: &str,
        delivery: &Delivery,
        error: &str,
        max_attempts: i32,
        retry: &RetryPolicy,
    ) -> Result<NackOutcome, BusError> {
        let error: String = error.chars().take(2000).collect();
        if delivery.attempt >= max_attempts {
            let n = self
                .exec(
                    format!(
                        "UPDATE bus_messages SET state = {DEAD}, lease_owner = NULL, lease_until = NULL, \
                         last_error = $1 WHERE id = $2 AND lease_owner = $3 AND state = {LEASED}"
                    ),
                    [error.into(), delivery.id.into(), owner.into()],
                )
                .await?;
            if n == 1 {
                tracing::warn!(
                    id = delivery.id,
                    attempts = delivery.attempt,
                    "bus message dead-lettered"
                );
            }
            return Ok(if n == 1 {
                NackOutcome::DeadLettered
            } else {
                NackOutcome::LeaseLost
            });
        }
        let due = now_micros() + micros(retry.delay(delivery.attempt));
        self.reschedule(owner, delivery, error, due, 0, NackOutcome::Retried)
            .await
    }

    /// Puts a leased message back, due at `until` (µs since the epoch),
    /// without counting the attempt it was claimed for: for work that is
    /// not failing but must wait (a tenant whose email quota is spent).
    /// However often a message is deferred, it never dead-letters for it.
    pub async fn defer(
        &self,
        owner: &str,
        delivery: &Delivery,
        until: i64,
        reason: &str,
    ) -> Result<NackOutcome, BusError> {
        let reason: String = reason.chars().take(2000).collect();
        self.reschedule(owner, delivery, reason, until, 1, NackOutcome::Deferred)
            .await
    }

    /// Makes every pending message of `group` on `topic` whose key starts
    /// with `key_prefix` wait until at least `until` (µs since the epoch),
    /// noting `reason` on each; leased ones are left to their holders. One
    /// statement, so a tenant's backlog that must wait (its quota spent)
    /// stops being claimed at once instead of one claim per message.
    /// Returns how many it deferred.
    pub async fn defer_pending(
        &self,
        (topic, group): (&str, &str),
        key_prefix: &str,
        until: i64,
        reason: &str,
    ) -> Result<u64, BusError> {
        let reason: String = reason.chars().take(2000).collect();
        let len = i64::try_from(key_prefix.chars().count()).unwrap_or(i64::MAX);
        self.exec(
            format!(
                "UPDATE bus_messages SET available_at = $1, last_error = $2 \
                 WHERE consumer_group = $3 AND topic = $4 AND state = {PENDING} \
                 AND available_at < $1 AND substr(msg_key, 1, CAST($5 AS INTEGER)) = $6"
            ),
            [
                until.into(),
                reason.into(),
                group.into(),
                topic.into(),
                len.into(),
                key_prefix.into(),
            ],
        )
        .await
    }

    /// Makes a leased message pending again, due at `due`, with `error`
    /// noted and `refund` taken off its attempts — unless a newer
    /// publication for the same coalescing key is pending: two messages of
    /// one key may not both wait, so this one's payload is folded in front
    /// of it (its facts stay, in publication order) and the leased copy is
    /// dropped; the pending message goes in its place.
    async fn reschedule(
        &self,
        owner: &str,
        delivery: &Delivery,
        error: String,
        due: i64,
        refund: i32,
        outcome: NackOutcome,
    ) -> Result<NackOutcome, BusError> {
        let backend = self.db.get_database_backend();
        let tx = self.db.begin().await?;
        let concat = match backend {
            DatabaseBackend::Postgres => Postgres::concat("$1", "p.payload"),
            _ => Sqlite::concat("$1", "p.payload"),
        };
        let folded = tx
            .execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "UPDATE bus_messages AS p SET payload = {concat}, coalesced = p.coalesced + 1 \
                     WHERE p.state = {PENDING} AND p.coalesce_key IS NOT NULL AND EXISTS \
                     (SELECT 1 FROM bus_messages l WHERE l.id = $2 AND l.lease_owner = $3 \
                      AND l.state = {LEASED} AND l.coalesce_key = p.coalesce_key \
                      AND l.consumer_group = p.consumer_group AND l.topic = p.topic)"
                ),
                [
                    delivery.payload.clone().into(),
                    delivery.id.into(),
                    owner.into(),
                ],
            ))
            .await?
            .rows_affected();
        if folded == 1 {
            tx.execute_raw(Statement::from_sql_and_values(
                backend,
                format!("DELETE FROM bus_messages WHERE id = $1 AND lease_owner = $2 AND state = {LEASED}"),
                [delivery.id.into(), owner.into()],
            ))
            .await?;
            tx.commit().await?;
            return Ok(NackOutcome::Superseded);
        }
        tx.rollback().await?;
        let n = self
            .exec(
                format!(
                    "UPDATE bus_messages SET state = {PENDING}, lease_owner = NULL, lease_until = NULL, \
                     available_at = $1, last_error = $2, attempts = attempts - $3 \
                     WHERE id = $4 AND lease_owner = $5 AND state = {LEASED}"
                ),
                [
                    due.into(),
                    error.into(),
                    refund.into(),
                    delivery.id.into(),
                    owner.into(),
                ],
            )
            .await?;
        Ok(if n == 1 {
            outcome
        } else {
            NackOutcome::LeaseLost
        })
    }

    /// Runs one statement on the bus's connection; rows affected.
    async fn exec(
        &self,
        sql: impl Into<String>,
        values: impl IntoIterator<Item = Value>,
    ) -> Result<u64, BusError> {
        Ok(retain_store::exec(&self.db, sql, values).await?)
    }

    /// Gives back every lease `owner` holds, without counting an attempt:
    /// the messages are claimable at once by another replica. Called on
    /// graceful shutdown.
    pub async fn release(&self, owner: &str) -> Result<u64, BusError> {
        self.exec(
            format!(
                "UPDATE bus_messages SET lease_until = 0, lease_owner = NULL, attempts = attempts - 1 \
                 WHERE lease_owner = $1 AND state = {LEASED}"
            ),
            [owner.into()],
        )
        .await
    }

    /// Dead-letters messages whose lease expired after their last allowed
    /// attempt (a replica that crashed on them every time). Returns how many.
    pub async fn reap_expired(&self, sub: &Subscription) -> Result<u64, BusError> {
        self.exec(
            format!(
                "UPDATE bus_messages SET state = {DEAD}, lease_owner = NULL, \
                 last_error = 'lease expired on the last attempt' \
                 WHERE consumer_group = $1 AND topic = $2 AND state = {LEASED} \
                 AND lease_until < $3 AND attempts >= $4"
            ),
            [
                sub.group.clone().into(),
                sub.topic.clone().into(),
                now_micros().into(),
                sub.max_attempts.into(),
            ],
        )
        .await
    }

    /// Up to `limit` unfinished (pending or leased) messages of `group`'s
    /// copy of `topic`, oldest first, without leasing them: for operators
    /// inspecting a queue, and for tests reading what a service published.
    pub async fn peek(
        &self,
        topic: &str,
        group: &str,
        limit: u64,
    ) -> Result<Vec<Delivery>, BusError> {
        let rows = bus_message::Entity::find()
            .filter(bus_message::Column::Topic.eq(topic))
            .filter(bus_message::Column::ConsumerGroup.eq(group))
            .filter(bus_message::Column::State.ne(DEAD))
            .order_by_asc(bus_message::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|m| Delivery {
                id: m.id,
                key: m.msg_key,
                payload: m.payload,
                headers: Headers::decode(&m.headers),
                attempt: m.attempts,
                owner: String::new(),
            })
            .collect())
    }

    /// Every consumer group's backlog: messages by state and the age of the
    /// oldest waiting or leased one (one scan of the bus table, for
    /// operators' metrics).
    pub async fn backlog(&self) -> Result<Vec<Backlog>, BusError> {
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                self.db.get_database_backend(),
                "SELECT topic, consumer_group, state, COUNT(*), MIN(created_at) FROM bus_messages \
                 GROUP BY topic, consumer_group, state ORDER BY topic, consumer_group",
            ))
            .await?;
        let now = now_micros();
        let mut out: Vec<Backlog> = Vec::new();
        for row in rows {
            let (topic, group): (String, String) =
                (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
            let state: i16 = row.try_get_by_index(2)?;
            let count = u64::try_from(row.try_get_by_index::<i64>(3)?).unwrap_or(0);
            let oldest: i64 = row.try_get_by_index(4)?;
            if out
                .last()
                .is_none_or(|b| b.topic != topic || b.group != group)
            {
                out.push(Backlog {
                    topic,
                    group,
                    stats: BusStats::default(),
                    oldest_age: Duration::ZERO,
                });
            }
            let Some(b) = out.last_mut() else { continue };
            match state {
                PENDING | LEASED => {
                    if state == PENDING {
                        b.stats.pending = count;
                    } else {
                        b.stats.leased = count;
                    }
                    let age = Duration::from_micros(u64::try_from(now - oldest).unwrap_or(0));
                    b.oldest_age = b.oldest_age.max(age);
                }
                _ => b.stats.dead = count,
            }
        }
        Ok(out)
    }

    /// Messages of `group` on `topic` by state.
    pub async fn stats(&self, topic: &str, group: &str) -> Result<BusStats, BusError> {
        let backend = self.db.get_database_backend();
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                "SELECT state, COUNT(*) FROM bus_messages WHERE topic = $1 AND consumer_group = $2 \
                 GROUP BY state",
                [topic.into(), group.into()],
            ))
            .await?;
        let mut stats = BusStats::default();
        for row in rows {
            let state: i16 = row.try_get_by_index(0)?;
            let count: i64 = row.try_get_by_index(1)?;
            let count = u64::try_from(count).unwrap_or(0);
            match state {
                PENDING => stats.pending = count,
                LEASED => stats.leased = count,
                _ => stats.dead = count,
            }
        }
        Ok(stats)
    }

    /// The oldest dead letters of `group`'s copy of `topic`.
    pub async fn dead_letters(
        &self,
        topic: &str,
        group: &str,
        limit: u64,
    ) -> Result<Vec<bus_message::Model>, BusError> {
        Ok(bus_message::Entity::find()
            .filter(bus_message::Column::Topic.eq(topic))
            .filter(bus_message::Column::ConsumerGroup.eq(group))
            .filter(bus_message::Column::State.eq(DEAD))
            .order_by_asc(bus_message::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(key: &str) -> OutgoingMessage {
        OutgoingMessage {
            key: Some(key.into()),
            payload: vec![],
            headers: Headers::new(),
            label: None,
        }
    }

    #[test]
    fn repeated_keys_go_to_later_rounds_in_order() {
        let msgs = [msg("a"), msg("b"), msg("a"), msg("a")];
        let rounds = rounds_by_key(&msgs);
        assert_eq!(rounds.len(), 3);
        assert_eq!(rounds[0].len(), 2);
        assert!(std::ptr::eq(rounds[1][0], &msgs[2]));
        assert!(std::ptr::eq(rounds[2][0], &msgs[3]));
    }

    #[test]
    fn retry_delay_grows_and_is_capped() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let first = p.delay(1);
        assert!(first >= Duration::from_millis(80) && first <= Duration::from_millis(120));
        let third = p.delay(3);
        assert!(third >= Duration::from_millis(320) && third <= Duration::from_millis(480));
        assert!(p.delay(30) <= Duration::from_secs(1));
    }
}
