//! Retain's durable bus: topics kept in the service's own database.
//!
//! It is a transactional outbox and a work queue in one table
//! (`bus_messages`), the pattern of River, Oban and pgmq:
//!
//! - [`publish`] runs inside the caller's transaction, so a message exists
//!   exactly when the data it describes was committed.
//! - Each topic fans out to every subscribed consumer group
//!   ([`Subscription`]); each group gets every message, and one replica of
//!   the group handles each message.
//! - [`Bus::claim`] leases a batch (`FOR UPDATE SKIP LOCKED` on PostgreSQL);
//!   a crashed replica's lease expires and another replica claims the work.
//! - A subscription may take only publications carrying a label the
//!   topic puts on some of them ([`Topic::labelled`]); the rest are never
//!   written for that group.
//! - Messages with the same key are handled one at a time, in order.
//! - A coalescing subscription folds publications for a key that is still
//!   pending into one message whose payload is their concatenation, which
//!   protobuf decodes as their merge; [`Topic`] declares a topic's payload
//!   type, its key and whether it may be coalesced. Each service declares
//!   the topics it publishes (`retain_ingestion::topics`, …): the bus
//!   knows no message type.
//! - [`Bus::nack`] retries with exponential backoff and dead-letters after
//!   the subscription's `max_attempts`; dead letters stay visible and counted.
//! - Messages carry W3C trace context in their headers ([`Headers`]).
//!
//! [`Consumer`] wraps claim/handle/ack in a polling loop with adaptive
//! back-off and graceful shutdown.

mod consumer;
mod driver;
mod headers;
mod message;
mod queue;
mod topic;

pub use consumer::{BatchHandler, Consumer, ConsumerOptions, Handler, HandlerError};
pub use headers::Headers;
pub use queue::{
    Backlog, Bus, BusError, BusStats, DEFAULT_CLAIM_TIMEOUT, Delivery, NackOutcome,
    OutgoingMessage, RetryPolicy, Subscription, ack_all_in, ack_in, publish,
};
pub use topic::Topic;

/// The key of a message about one tenant's account, `tenant/account`: the
/// order in which one account's messages are handled, and what a
/// coalescing group folds by. Topics build their keys with it
/// ([`Topic::key_of`]).
pub fn account_key(tenant: &str, account: &str) -> String {
    format!("{tenant}/{account}")
}

/// Consumer groups. The migrations subscribe the standing consumers of
/// `signals.recorded` (`metrics` coalescing, `notification` not) so
/// messages published before a consumer's first start are kept for it.
pub mod groups {
    /// The metrics service.
    pub const METRICS: &str = "metrics";
    /// The notification service.
    pub const NOTIFICATION: &str = "notification";
    /// The health service.
    pub const HEALTH: &str = "health";
}
