//! What the queue and its drivers share: a message's states as stored,
//! the message to publish, and the bind-parameter budget of a statement.
//! Both `queue.rs` and `driver/` depend on this module, not on each other.

use crate::Headers;

/// Stored state: waiting to be claimed.
pub(crate) const PENDING: i16 = 0;
/// Stored state: claimed by a lease owner until `lease_until`.
pub(crate) const LEASED: i16 = 1;
/// Stored state: dead-lettered.
pub(crate) const DEAD: i16 = 2;

/// Bind parameters per statement: under SQLite's 32,766 and PostgreSQL's
/// 65,535 limits.
pub(crate) const MAX_PARAMS: usize = retain_store::MAX_BIND_PARAMS;

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Ordering and coalescing key (`tenant/account`), if any.
    pub key: Option<String>,
    /// Encoded protobuf payload.
    pub payload: Vec<u8>,
    /// Headers; see [`Headers::from_current_span`].
    pub headers: Headers,
    /// A label for subscriptions that take only labelled publications
    /// ([`Subscription::only_labelled`]); groups without such a filter
    /// receive the message either way.
    pub label: Option<&'static str>,
}

impl OutgoingMessage {
    /// A keyed message carrying the current span's trace context.
    pub fn keyed(key: impl Into<String>, payload: Vec<u8>) -> Self {
        Self {
            key: Some(key.into()),
            payload,
            headers: Headers::from_current_span(),
            label: None,
        }
    }

    /// The same message, labelled for subscriptions that filter on `label`.
    pub fn labelled(mut self, label: Option<&'static str>) -> Self {
        self.label = label;
        self
    }
}
