//! The topic ingestion publishes, declared here so its payload, key and
//! label are written once for the publisher and every consumer.

use retain_bus::{Topic, account_key};
use retain_proto::v1;

/// Signals accepted for an account, one publication per account and
/// transaction, keyed by the account (metrics coalesces them). The
/// publications that carry what notification acts on are labelled
/// [`ROUTABLE`]; notification's subscription takes only those.
pub const SIGNALS_RECORDED: Topic<v1::SignalsRecorded> =
    Topic::coalescible("signals.recorded", |m: &v1::SignalsRecorded| {
        account_key(&m.tenant_id, &m.account_id)
    })
    .labelled(ROUTABLE, |m| !m.routable.is_empty());

/// The label of a `signals.recorded` publication with routable signals
/// (the migrations subscribe notification to it).
pub const ROUTABLE: &str = "routable";
