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
//!   protobuf decodes as their merge; [`Topic`] declares which topics may
//!   be coalesced, and with which payload type.
//! - [`Bus::nack`] retries with exponential backoff and dead-letters after
//!   the subscription's `max_attempts`; dead letters stay visible and counted.
//! - Messages carry W3C trace context in their headers ([`Headers`]).
//!
//! [`Consumer`] wraps claim/handle/ack in a polling loop with adaptive
//! back-off and graceful shutdown.

mod consumer;
mod driver;
mod headers;
mod queue;
mod topic;

pub use consumer::{BatchHandler, Consumer, ConsumerOptions, Handler, HandlerError};
pub use headers::Headers;
pub use queue::{
    Backlog, Bus, BusError, BusStats, DEFAULT_CLAIM_TIMEOUT, Delivery, NackOutcome,
    OutgoingMessage, RetryPolicy, Subscription, ack_all_in, ack_in, publish,
};
pub use topic::Topic;

/// The topics Retain services exchange, with their payload types.
pub mod topics {
    use retain_proto::v1;

    use crate::Topic;

    /// Ingestion → metrics, notification: signals accepted for an account.
    /// Publications that carry signals notification acts on are labelled
    /// [`ROUTABLE`]; notification's subscription takes only those.
    pub const SIGNALS_RECORDED: Topic<v1::SignalsRecorded> =
        Topic::coalescible("signals.recorded").labelled(ROUTABLE, |m| !m.routable.is_empty());
    /// The label of a `signals.recorded` publication with routable signals
    /// (the migrations subscribe notification to it).
    pub const ROUTABLE: &str = "routable";
    /// Metrics → health: an account's metric snapshot changed.
    pub const ACCOUNT_METRICS: Topic<v1::AccountMetricsUpdated> = Topic::new("account.metrics");
    /// Health → notification: an account changed health band.
    pub const HEALTH_BAND_CHANGED: Topic<v1::HealthBandChanged> = Topic::new("health.band_changed");
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
