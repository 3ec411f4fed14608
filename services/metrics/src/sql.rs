//! Every statement the metrics service runs. It reads ingestion's
//! `signals` and `accounts` tables (the shared, append-only record of what
//! was accepted; see docs/ARCHITECTURE.md) and owns `account_metrics`.

use prost::Message;
use retain_proto::v1;
use retain_store::entity::account;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, Statement};

/// The stored signals of one account, in storage order.
pub async fn account_signals<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    account: &str,
) -> Result<Vec<v1::Signal>, DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            "SELECT payload FROM signals WHERE tenant_id = $1 AND account_id = $2",
            [tenant.into(), account.into()],
        ))
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let payload: Vec<u8> = row.try_get_by_index(0)?;
        let signal = v1::Signal::decode(payload.as_slice())
            .map_err(|e| DbErr::Custom(format!("a stored signal does not decode: {e}")))?;
        out.push(signal);
    }
    Ok(out)
}

/// The account record ingestion keeps (segment, plan).
pub async fn account_row<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    account: &str,
) -> Result<Option<account::Model>, DbErr> {
    account::Entity::find_by_id((tenant.to_owned(), account.to_owned()))
        .one(db)
        .await
}

/// Replaces the account's stored snapshot.
pub async fn save_snapshot<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    account: &str,
    snapshot: &v1::AccountMetricsSnapshot,
    as_of: i64,
    now: i64,
) -> Result<(), DbErr> {
    retain_store::exec(
        db,
        "INSERT INTO account_metrics (tenant_id, account_id, snapshot, as_of, computed_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, account_id) DO UPDATE SET \
         snapshot = excluded.snapshot, as_of = excluded.as_of, computed_at = excluded.computed_at",
        [
            tenant.into(),
            account.into(),
            snapshot.encode_to_vec().into(),
            as_of.into(),
            now.into(),
        ],
    )
    .await
    .map(|_| ())
}

/// The account's stored snapshot, if metrics has computed one.
pub async fn snapshot(
    db: &DatabaseConnection,
    tenant: &str,
    account: &str,
) -> Result<Option<v1::AccountMetricsSnapshot>, DbErr> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT snapshot FROM account_metrics WHERE tenant_id = $1 AND account_id = $2",
            [tenant.into(), account.into()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let bytes: Vec<u8> = row.try_get_by_index(0)?;
    v1::AccountMetricsSnapshot::decode(bytes.as_slice())
        .map(Some)
        .map_err(|e| DbErr::Custom(format!("a stored snapshot does not decode: {e}")))
}

/// Accounts whose snapshot was computed as of before `before` (µs), at
/// most `limit`.
pub async fn stale_snapshots(
    db: &DatabaseConnection,
    before: i64,
    limit: u64,
) -> Result<Vec<(String, String)>, DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            "SELECT tenant_id, account_id FROM account_metrics WHERE as_of < $1 \
             ORDER BY as_of LIMIT $2",
            [
                before.into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        ))
        .await?;
    rows.into_iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
        .collect()
}
