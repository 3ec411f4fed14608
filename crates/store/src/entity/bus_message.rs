//! `bus_messages`: one row per message per subscribed consumer group.
//!
//! The hot paths (publish, claim, ack) are hand-written SQL in `retain-bus`;
//! this entity serves inspection (dead letters, depth) and tests.

use sea_orm::entity::prelude::*;

/// A message waiting for, leased by, or dead-lettered in one consumer group.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bus_messages")]
pub struct Model {
    /// Monotonic id; order of publication.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// Topic name (`signals.recorded`).
    pub topic: String,
    /// Consumer group that must handle this copy (`metrics`).
    pub consumer_group: String,
    /// Ordering/coalescing key (`tenant/account`); messages with one key are
    /// handled one at a time, in order.
    pub msg_key: Option<String>,
    /// Encoded protobuf payload.
    pub payload: Vec<u8>,
    /// W3C trace context and other headers, `name=value` lines.
    pub headers: String,
    /// 0 pending, 1 leased, 2 dead.
    pub state: i16,
    /// Delivery attempts so far.
    pub attempts: i32,
    /// Not deliverable before this time (µs since the Unix epoch).
    pub available_at: i64,
    /// Lease expiry (µs), while leased.
    pub lease_until: Option<i64>,
    /// Consumer instance holding the lease.
    pub lease_owner: Option<String>,
    /// How many publications were folded into this one by coalescing.
    pub coalesced: i32,
    /// Last handler error, for dead letters.
    pub last_error: Option<String>,
    /// Publication time (µs).
    pub created_at: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
