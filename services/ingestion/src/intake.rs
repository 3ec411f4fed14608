//! Checking a batch before anything is written: wire conversion, domain
//! validation, and duplicates inside the batch itself. Pure: no I/O.

use std::collections::HashMap;

use prost::Message;
use retain_domain::signal::{self, Rules, SignalBody};
use retain_proto::convert;
use retain_proto::v1;
use sha2::{Digest, Sha256};

use retain_runtime::error::FieldViolation;

/// A signal that passed validation, ready to store.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Index in the request.
    pub index: usize,
    /// The wire signal.
    pub wire: v1::Signal,
    /// The domain signal (for account upserts).
    pub domain: signal::Signal,
    /// `occurred_at`, µs since the epoch.
    pub occurred_at_us: i64,
    /// Body kind: the `oneof` field number (10 = account … 21 = cost).
    pub kind: i16,
    /// The encoded wire signal, stored as is.
    pub payload: Vec<u8>,
    /// SHA-256 of `payload`: same event id + same hash = duplicate.
    pub hash: [u8; 32],
}

/// What checking decided for one signal.
#[derive(Debug, Clone)]
pub enum Checked {
    /// Valid; to be written (or found to be a duplicate on write).
    Valid(Box<Prepared>),
    /// Same event id and content as an earlier signal in this batch.
    DuplicateInBatch,
    /// Invalid, with every violation (paths from the request root).
    Rejected(Vec<FieldViolation>),
}

/// The `oneof` field number of a body, stored as the signal's kind.
pub fn kind_of(body: &v1::signal::Body) -> i16 {
    use v1::signal::Body;
    match body {
        Body::Account(_) => 10,
        Body::Session(_) => 11,
        Body::Action(_) => 12,
        Body::Ticket(_) => 13,
        Body::Survey(_) => 14,
        Body::Subscription(_) => 15,
        Body::Billing(_) => 16,
        Body::Renewal(_) => 17,
        Body::Trial(_) => 18,
        Body::Milestone(_) => 19,
        Body::Purchase(_) => 20,
        Body::Cost(_) => 21,
    }
}

fn violations(prefix: &str, v: retain_domain::Violations) -> Vec<FieldViolation> {
    v.prefixed(prefix)
        .0
        .into_iter()
        .map(|v| FieldViolation::new(v.field, v.description))
        .collect()
}

/// Checks every signal of a batch against `rules`. Field paths are
/// `signals[i].…`. A second signal with an event id already in the batch
/// is a duplicate when its content is the same and a conflict otherwise.
pub fn check(signals: &[v1::Signal], rules: &Rules<'_>) -> Vec<Checked> {
    let mut seen: HashMap<&str, [u8; 32]> = HashMap::with_capacity(signals.len());
    signals
        .iter()
        .enumerate()
        .map(|(i, wire)| {
            let prefix = format!("signals[{i}].");
            let domain = match convert::signal_from_proto(wire) {
                Ok(d) => d,
                Err(v) => return Checked::Rejected(violations(&prefix, v)),
            };
            if let Err(v) = signal::validate(&domain, rules) {
                return Checked::Rejected(violations(&prefix, v));
            }
            let payload = wire.encode_to_vec();
            let hash: [u8; 32] = Sha256::digest(&payload).into();
            if let Some(first) = seen.get(wire.event_id.as_str()) {
                return if *first == hash {
                    Checked::DuplicateInBatch
                } else {
                    Checked::Rejected(vec![FieldViolation::new(
                        format!("{prefix}event_id"),
                        format!(
                            "{:?} appears earlier in this batch with different content",
                            wire.event_id
                        ),
                    )])
                };
            }
            seen.insert(&wire.event_id, hash);
            let (Some(t), Some(body)) = (&wire.occurred_at, &wire.body) else {
                // validate() requires both; this cannot happen.
                return Checked::Rejected(vec![FieldViolation::new(
                    format!("{prefix}body"),
                    "is required",
                )]);
            };
            Checked::Valid(Box::new(Prepared {
                index: i,
                kind: kind_of(body),
                occurred_at_us: convert::micros(t),
                wire: wire.clone(),
                domain,
                payload,
                hash,
            }))
        })
        .collect()
}

/// The user a signal names, if any (sessions, actions, surveys, milestones).
pub fn user_of(wire: &v1::Signal) -> Option<&str> {
    use v1::signal::Body;
    let user = match wire.body.as_ref()? {
        Body::Session(x) => &x.user_id,
        Body::Action(x) => &x.user_id,
        Body::Survey(x) => &x.user_id,
        Body::Milestone(x) => &x.user_id,
        _ => return None,
    };
    (!user.is_empty()).then_some(user.as_str())
}

/// Whether notification acts on this signal directly (survey answers,
/// subscription changes, billing status), so it travels in the event.
pub fn is_routable(p: &Prepared) -> bool {
    matches!(
        p.domain.body,
        Some(SignalBody::Survey { .. } | SignalBody::Subscription { .. } | SignalBody::Billing(_))
    )
}

/// The account a signal belongs to; portfolio-level cost signals use `*`.
pub const PORTFOLIO: &str = "*";
