//! Per-tenant email quotas (`notification_email_quota`, migration m0015):
//! the sends each tenant took from each UTC hour and day.

use sea_orm::{ConnectionTrait, DbErr, Statement};

/// Takes one send from the tenant's `span` window starting at `window`,
/// if fewer than `limit` were taken: how many are taken now, or `None`
/// when the window is spent. One statement, so concurrent senders never
/// pass the limit.
pub async fn take_send<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    (span, window): (&str, i64),
    limit: u64,
) -> Result<Option<i64>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "INSERT INTO notification_email_quota (tenant_id, span, window_start, used) \
             VALUES ($1, $2, $3, 1) \
             ON CONFLICT (tenant_id, span, window_start) \
             DO UPDATE SET used = notification_email_quota.used + 1 \
             WHERE notification_email_quota.used < $4 \
             RETURNING used",
            [
                tenant.into(),
                span.into(),
                window.into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        ))
        .await?;
    row.map(|r| r.try_get_by_index(0)).transpose()
}

/// Gives back one send taken from a window (the send failed).
pub async fn give_back_send<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    (span, window): (&str, i64),
) -> Result<(), DbErr> {
    retain_store::exec(
        db,
        "UPDATE notification_email_quota SET used = used - 1 \
         WHERE tenant_id = $1 AND span = $2 AND window_start = $3 AND used > 0",
        [tenant.into(), span.into(), window.into()],
    )
    .await
    .map(|_| ())
}

/// Deletes the tenant's windows that started before `before`.
pub async fn forget_windows<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    before: i64,
) -> Result<(), DbErr> {
    retain_store::exec(
        db,
        "DELETE FROM notification_email_quota WHERE tenant_id = $1 AND window_start < $2",
        [tenant.into(), before.into()],
    )
    .await
    .map(|_| ())
}
