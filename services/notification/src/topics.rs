//! The topic notification publishes (to itself), declared here so its
//! payload and key are written once.

use retain_bus::Topic;
use retain_proto::v1;

/// An email routing recorded as pending, to deliver; keyed by its
/// notification id, so one email is handled by one replica at a time
/// ([`crate::email`]).
pub const EMAIL_REQUESTED: Topic<v1::EmailRequested> =
    Topic::new("notification.email", |m: &v1::EmailRequested| {
        format!("{}/{}", m.tenant_id, m.notification_id)
    });
