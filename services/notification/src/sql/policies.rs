//! The routing policy's statements: versioned policies per tenant and
//! segment (`notification_policies`).

use prost::Message;
use retain_proto::v1;
use sea_orm::{ConnectionTrait, DbErr, Statement};

/// The latest stored policy of `segment` ('' = the tenant default).
pub async fn latest_policy<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    segment: &str,
) -> Result<Option<v1::RoutingPolicy>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT policy FROM notification_policies WHERE tenant_id = $1 AND segment = $2 \
             ORDER BY version DESC LIMIT 1",
            [tenant.into(), segment.into()],
        ))
        .await?;
    row.map(|r| {
        v1::RoutingPolicy::decode(r.try_get_by_index::<Vec<u8>>(0)?.as_slice())
            .map_err(|e| DbErr::Custom(format!("a stored routing policy does not decode: {e}")))
    })
    .transpose()
}

/// Stores `policy` as the tenant's next version; `false` when another
/// writer took that version first (the caller retries).
pub async fn insert_policy<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    policy: &v1::RoutingPolicy,
    now: i64,
) -> Result<bool, DbErr> {
    Ok(retain_store::exec(
        db,
        "INSERT INTO notification_policies (tenant_id, version, segment, policy, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, version) DO NOTHING",
        [
            tenant.into(),
            policy.version.into(),
            policy.segment.clone().into(),
            policy.encode_to_vec().into(),
            now.into(),
        ],
    )
    .await?
        == 1)
}

/// The tenant's highest policy version (0 before the first).
pub async fn max_policy_version<C: ConnectionTrait>(db: &C, tenant: &str) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT COALESCE(MAX(version), 0) FROM notification_policies WHERE tenant_id = $1",
            [tenant.into()],
        ))
        .await?;
    row.map_or(Ok(0), |r| r.try_get_by_index(0))
}
