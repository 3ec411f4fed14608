//! The topic metrics publishes, declared here so its payload and key are
//! written once for the publisher and every consumer.

use retain_bus::{Topic, account_key};
use retain_proto::v1;

/// An account's metric snapshot changed (the whole snapshot), keyed by the
/// account: health scores it, notification keeps the account's context.
pub const ACCOUNT_METRICS: Topic<v1::AccountMetricsUpdated> = Topic::new("account.metrics", |m| {
    account_key(
        &m.tenant_id,
        m.snapshot.as_ref().map_or("", |s| s.account_id.as_str()),
    )
});
