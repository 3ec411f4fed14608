//! What differs between the databases the bus runs on, behind one
//! interface: the rest of the bus (`queue.rs`) is written once against
//! [`Driver`], and one conformance suite (`tests/bus.rs`, every test run on
//! SQLite and on PostgreSQL) is what each driver must pass. A new backend is
//! a new module here that passes that suite.

use std::future::Future;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, QueryResult};

use crate::message::OutgoingMessage;

mod postgres;
mod sqlite;

pub(crate) use postgres::Postgres;
pub(crate) use sqlite::Sqlite;

/// What a claim asks for.
#[derive(Debug)]
pub(crate) struct Claim<'a> {
    /// Lease owner.
    pub owner: &'a str,
    /// The lease's end, µs since the epoch.
    pub lease_until: i64,
    /// Consumer group.
    pub group: &'a str,
    /// Topic.
    pub topic: &'a str,
    /// Now, µs since the epoch.
    pub now: i64,
    /// Most messages to lease.
    pub max: i64,
}

/// The database-specific half of the bus.
pub(crate) trait Driver {
    /// Writes one round of publications (no key twice in a round) for every
    /// group subscribed to `topic`, folding a publication into a pending
    /// message of a coalescing group by concatenating the payloads. Returns
    /// the rows written or folded.
    fn publish_round<C: ConnectionTrait>(
        conn: &C,
        topic: &str,
        now: i64,
        round: &[&OutgoingMessage],
    ) -> impl Future<Output = Result<u64, DbErr>> + Send;

    /// Leases up to `claim.max` deliverable messages (pending and due, or
    /// lease expired; the oldest unfinished of their key) and returns
    /// `id, msg_key, payload, headers, attempts` of each. A claim that runs
    /// longer than `timeout` is cancelled where the database can do so.
    fn claim(
        db: &DatabaseConnection,
        claim: &Claim<'_>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<QueryResult>, DbErr>> + Send;

    /// SQL for the blob `a` followed by the blob `b`.
    fn concat(a: &str, b: &str) -> String;
}

/// The claim statement, the same on both databases but for how the claimed
/// ids are matched (`open`, `close`) and row locking (`lock`).
///
/// The per-key head check compares the head key and `id + 0`, the two
/// expressions of the `bus_messages_head` index and of no other, so no
/// other index can answer it with a filter that rescans the backlog per
/// candidate (the plan that collapsed the claim under a deep backlog;
/// migration m0003 says more).
fn claim_sql(open: &str, close: &str, lock: &str) -> String {
    use crate::message::{DEAD, LEASED, PENDING};
    const HEAD_D: &str = "(d.consumer_group || ' ' || d.topic || ' ' || d.msg_key)";
    const HEAD_H: &str = "(h.consumer_group || ' ' || h.topic || ' ' || h.msg_key)";
    format!(
        "UPDATE bus_messages SET state = {LEASED}, lease_owner = $1, lease_until = $2, \
         attempts = attempts + 1 \
         WHERE id {open}SELECT d.id FROM bus_messages d \
           WHERE d.consumer_group = $3 AND d.topic = $4 AND d.available_at <= $5 \
           AND (d.state = {PENDING} OR (d.state = {LEASED} AND d.lease_until < $5)) \
           AND (d.msg_key IS NULL OR NOT EXISTS (SELECT 1 FROM bus_messages h \
                WHERE {HEAD_H} = {HEAD_D} AND h.id + 0 < d.id \
                AND h.msg_key IS NOT NULL AND h.state <> {DEAD})) \
           ORDER BY d.id LIMIT $6{lock}{close} \
         RETURNING id, msg_key, payload, headers, attempts"
    )
}

/// The claim's parameters, in `claim_sql`'s order.
fn claim_values(c: &Claim<'_>) -> [sea_orm::Value; 6] {
    [
        c.owner.into(),
        c.lease_until.into(),
        c.group.into(),
        c.topic.into(),
        c.now.into(),
        c.max.into(),
    ]
}

/// The `ON CONFLICT` clause that folds a publication into a pending
/// message of a coalescing group.
fn fold_clause(concat: &str) -> String {
    format!(
        "ON CONFLICT (consumer_group, topic, coalesce_key) WHERE state = 0 AND coalesce_key IS NOT NULL \
         DO UPDATE SET payload = {concat}, headers = excluded.headers, \
         coalesced = bus_messages.coalesced + 1"
    )
}
