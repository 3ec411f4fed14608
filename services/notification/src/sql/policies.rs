//! The routing policy's statements: versioned policies per tenant and
//! segment (`notification_policies`), kept as `retain_store::Documents`.

use retain_proto::v1;
use sea_orm::{ConnectionTrait, DbErr};

/// The routing policies, versioned per tenant.
const POLICIES: retain_store::Documents =
    retain_store::Documents::new("notification_policies", "policy");

/// The latest stored policy of `segment` ('' = the tenant default).
pub async fn latest_policy<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    segment: &str,
) -> Result<Option<v1::RoutingPolicy>, DbErr> {
    POLICIES.latest(db, tenant, segment).await
}

/// Stores `policy` as the tenant's next version, stamped with it; `None`
/// when concurrent puts kept taking the version first.
pub async fn put_policy<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    policy: &v1::RoutingPolicy,
    now: i64,
) -> Result<Option<v1::RoutingPolicy>, DbErr> {
    let stamped = |version| v1::RoutingPolicy {
        version,
        ..policy.clone()
    };
    POLICIES
        .put(db, (tenant, &policy.segment), stamped, now)
        .await
}
