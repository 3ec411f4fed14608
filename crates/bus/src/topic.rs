//! Typed topics: a topic's name, its payload type, the key a message is
//! ordered (and coalesced) by, and whether consumer groups may coalesce
//! it — declared once, by the service that publishes it
//! (`retain_ingestion::topics`, …), so a publisher and a consumer cannot
//! disagree on the bytes or the key.

use std::marker::PhantomData;

use sea_orm::ConnectionTrait;

use crate::consumer::HandlerError;
use crate::queue::{BusError, Delivery, OutgoingMessage, Subscription, publish};

/// A topic carrying protobuf messages of type `M`.
#[derive(Debug)]
pub struct Topic<M> {
    name: &'static str,
    key: fn(&M) -> String,
    coalescible: bool,
    label: Option<Label<M>>,
    payload: PhantomData<fn() -> M>,
}

/// A label the topic puts on the publications that satisfy a predicate,
/// for subscriptions that take only those ([`Subscription::only_labelled`]).
#[derive(Debug)]
struct Label<M> {
    name: &'static str,
    when: fn(&M) -> bool,
}

impl<M> Clone for Label<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for Label<M> {}

impl<M> Clone for Topic<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for Topic<M> {}

impl<M> Topic<M> {
    /// A topic whose messages are each delivered on their own; messages
    /// with the same `key` are delivered one at a time, in order.
    pub const fn new(name: &'static str, key: fn(&M) -> String) -> Self {
        Self {
            name,
            key,
            coalescible: false,
            label: None,
            payload: PhantomData,
        }
    }

    /// A topic whose consumer groups may coalesce it by `key`: `M` keeps
    /// every per-publication fact in repeated fields and its singular
    /// fields are the same for every publication of a key, so the bus's
    /// fold (concatenated encodings, decoded as a merge) loses nothing.
    pub const fn coalescible(name: &'static str, key: fn(&M) -> String) -> Self {
        Self {
            name,
            key,
            coalescible: true,
            label: None,
            payload: PhantomData,
        }
    }

    /// The key `message` is published under: its ordering (and coalescing)
    /// key, built by the topic, never by hand.
    pub fn key_of(&self, message: &M) -> String {
        (self.key)(message)
    }

    /// Labels every publication for which `when` holds with `label`, so a
    /// group that acts only on those can subscribe to just them
    /// ([`Subscription::only_labelled`]); the others are then never
    /// written for that group.
    pub const fn labelled(mut self, label: &'static str, when: fn(&M) -> bool) -> Self {
        self.label = Some(Label { name: label, when });
        self
    }

    /// The label this topic may put on a publication, if any.
    pub const fn label(&self) -> Option<&'static str> {
        match self.label {
            Some(l) => Some(l.name),
            None => None,
        }
    }

    /// The label a publication of `message` carries, if any.
    pub fn label_for(&self, message: &M) -> Option<&'static str> {
        self.label.filter(|l| (l.when)(message)).map(|l| l.name)
    }

    /// The topic's name (`signals.recorded`).
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// `group`'s subscription, one delivery per publication.
    pub fn subscription(&self, group: &str) -> Subscription {
        Subscription::new(self.name, group)
    }

    /// `group`'s coalescing subscription, or an error for a topic whose
    /// payload would not survive folding.
    pub fn coalescing_subscription(&self, group: &str) -> Result<Subscription, BusError> {
        if !self.coalescible {
            return Err(BusError::NotCoalescible {
                topic: self.name.to_owned(),
            });
        }
        Ok(Subscription::new(self.name, group).coalescing())
    }
}

impl<M: prost::Message + Default> Topic<M> {
    /// Publishes `messages` inside `conn`, the caller's transaction, each
    /// under the topic's key for it, carrying the current span's trace
    /// context and the topic's label where its predicate holds. See
    /// [`publish`] for fan-out, filtering and coalescing.
    pub async fn publish<C: ConnectionTrait>(
        &self,
        conn: &C,
        messages: &[M],
    ) -> Result<u64, BusError> {
        let outgoing: Vec<OutgoingMessage> = messages.iter().map(|m| self.outgoing(m)).collect();
        publish(conn, self.name, &outgoing).await
    }

    /// `message` as the bus writes it: keyed, encoded, labelled.
    pub fn outgoing(&self, message: &M) -> OutgoingMessage {
        OutgoingMessage::keyed(self.key_of(message), message.encode_to_vec())
            .labelled(self.label_for(message))
    }

    /// Decodes a delivery of this topic. A payload that does not decode is
    /// a permanent failure: no retry can fix it.
    pub fn decode(&self, delivery: &Delivery) -> Result<M, HandlerError> {
        M::decode(delivery.payload.as_slice()).map_err(|e| {
            HandlerError::permanent(format!(
                "message {} of topic {} does not decode: {e}",
                delivery.id, self.name
            ))
        })
    }
}
