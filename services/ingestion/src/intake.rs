//! Checking a batch before anything is written: wire conversion and
//! domain validation, signal by signal. Pure: no I/O. (Whether a valid
//! signal is new, a duplicate or a conflict is decided once, when it is
//! written: [`crate::commit`].)

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
    /// The valid domain signal.
    pub domain: signal::Signal,
    /// `occurred_at`, µs since the epoch.
    pub occurred_at_us: i64,
    /// The stored kind code ([`retain_domain::signal::SignalKind::code`]).
    pub kind: i16,
    /// LIVE or BACKFILL: the mode of the call that sent it.
    pub mode: signal::Mode,
    /// The encoded wire signal, stored as is.
    pub payload: Vec<u8>,
    /// SHA-256 of `payload`: same event id + same hash = duplicate.
    pub hash: [u8; 32],
}

/// A checked signal: ready to write, or rejected with every violation
/// (paths from the request root).
pub type Checked = Result<Prepared, Vec<FieldViolation>>;

/// Checks every signal of a batch against `rules`, taking the signals
/// (valid ones move into [`Prepared`] without a copy). Field paths are
/// `signals[i].…`. Returns every signal's event id (for the answer) and
/// one [`Checked`] per signal, in request order.
pub fn check(
    signals: Vec<v1::Signal>,
    mode: signal::Mode,
    rules: &Rules<'_>,
) -> (Vec<String>, Vec<Checked>) {
    let event_ids: Vec<String> = signals.iter().map(|s| s.event_id.clone()).collect();
    let checked = signals
        .into_iter()
        .enumerate()
        .map(|(i, wire)| prepare(i, wire, mode, rules))
        .collect();
    (event_ids, checked)
}

fn prepare(index: usize, wire: v1::Signal, mode: signal::Mode, rules: &Rules<'_>) -> Checked {
    let prefix = format!("signals[{index}].");
    // Wire-level violations (an undefined enum number, a timestamp out of
    // the window) and the domain's, together: the caller fixes everything
    // in one round. A domain violation about a field the wire conversion
    // already reported (or left out: `body`) would only repeat it.
    let (raw, wire_violations) = convert::raw_signal(&wire);
    let domain = match (signal::validate(&raw, rules), wire_violations.is_empty()) {
        (Ok(valid), true) => valid,
        (Ok(_), false) => return Err(wire_violations.prefixed(&prefix).0),
        (Err(domain), _) => {
            let mut all = wire_violations;
            for d in domain.0 {
                let repeated = all
                    .0
                    .iter()
                    .any(|w| w.field == d.field || w.field.starts_with(&format!("{}.", d.field)));
                // A body the wire conversion left out is not missing.
                let body_left_out = d.field == "body" && !all.is_empty();
                if !repeated && !body_left_out {
                    all.0.push(d);
                }
            }
            return Err(all.prefixed(&prefix).0);
        }
    };
    let mut domain = domain;
    let mut wire = wire;
    if matches!(domain.body, SignalBody::Cost { .. }) {
        // A cost is portfolio-wide whatever account id it carries (the
        // contract says it is ignored): stored under `*`, it never creates
        // an account.
        domain.account_id = PORTFOLIO.to_owned();
        wire.account_id = PORTFOLIO.to_owned();
    }
    let (kind, occurred_at_us) = (domain.body.kind().code(), domain.occurred_at.micros());
    let payload = wire.encode_to_vec();
    let hash: [u8; 32] = Sha256::digest(&payload).into();
    Ok(Prepared {
        index,
        kind,
        mode,
        occurred_at_us,
        wire,
        domain,
        payload,
        hash,
    })
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

/// Whether notification acts on this signal, so it travels in the event
/// and labels it `routable`: the domain's one routing contract
/// (`retain_domain::routing::routable` — NPS answers, subscription changes
/// but opening balances, account upserts).
pub fn is_routable(p: &Prepared) -> bool {
    retain_domain::routing::routable(&p.domain).is_some()
}

pub use retain_domain::signal::PORTFOLIO;
