//! What routing decided, per trigger: recorded actions (the exactly-once
//! ledger and the cooldown history, `notification_actions`) and snoozes
//! (`notification_snoozes`).

use sea_orm::{ConnectionTrait, DbErr, Value};

/// Snoozes the account's rule until `until` (µs), replacing any snooze.
pub async fn snooze<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    account: &str,
    rule: &str,
    until: i64,
) -> Result<(), DbErr> {
    retain_store::exec(
        db,
        "INSERT INTO notification_snoozes (tenant_id, account_id, rule, until_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (tenant_id, account_id, rule) \
         DO UPDATE SET until_at = excluded.until_at",
        [tenant.into(), account.into(), rule.into(), until.into()],
    )
    .await
    .map(|_| ())
}

/// An action decided for one trigger.
pub struct NewAction<'a> {
    /// Deterministic id.
    pub notification_id: &'a str,
    /// Account.
    pub account: &'a str,
    /// Rule key.
    pub rule: &'a str,
    /// 1 task, 2 email, 3 record.
    pub kind: i16,
    /// 0 no, 1 cooldown, 2 snooze.
    pub suppressed: i16,
    /// When the trigger happened, µs.
    pub trigger_at: i64,
    /// Now, µs.
    pub now: i64,
}

/// Which of `ids` the tenant has recorded actions for.
pub async fn recorded<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    ids: &[&str],
) -> Result<std::collections::HashSet<String>, DbErr> {
    let rows = retain_store::select_in(
        db,
        |list| {
            format!(
                "SELECT notification_id FROM notification_actions \
                 WHERE tenant_id = $1 AND notification_id IN ({list})"
            )
        },
        &[tenant.into()],
        ids,
    )
    .await?;
    rows.iter().map(|r| r.try_get_by_index(0)).collect()
}

/// The snoozes of `accounts`: (account, rule) → until (µs).
pub async fn snoozes<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    accounts: &[&str],
) -> Result<std::collections::HashMap<(String, String), i64>, DbErr> {
    let rows = retain_store::select_in(
        db,
        |list| {
            format!(
                "SELECT account_id, rule, until_at FROM notification_snoozes \
                 WHERE tenant_id = $1 AND account_id IN ({list})"
            )
        },
        &[tenant.into()],
        accounts,
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                (r.try_get_by_index(0)?, r.try_get_by_index(1)?),
                r.try_get_by_index(2)?,
            ))
        })
        .collect()
}

/// When the actions of `accounts` that were not suppressed happened (µs),
/// within `(from, to)`: (account, rule) → times.
pub async fn acted<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    accounts: &[&str],
    (from, to): (i64, i64),
) -> Result<std::collections::HashMap<(String, String), Vec<i64>>, DbErr> {
    let rows = retain_store::select_in(
        db,
        |list| {
            format!(
                "SELECT account_id, rule, trigger_at FROM notification_actions \
                 WHERE tenant_id = $1 AND trigger_at > $2 AND trigger_at < $3 \
                 AND suppressed = 0 AND account_id IN ({list})"
            )
        },
        &[tenant.into(), from.into(), to.into()],
        accounts,
    )
    .await?;
    let mut out: std::collections::HashMap<(String, String), Vec<i64>> = Default::default();
    for r in &rows {
        out.entry((r.try_get_by_index(0)?, r.try_get_by_index(1)?))
            .or_default()
            .push(r.try_get_by_index(2)?);
    }
    Ok(out)
}

/// Records actions; returns the ids actually inserted (an id recorded
/// before — by a concurrent replica — is left alone and not returned).
pub async fn insert_actions<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    actions: &[NewAction<'_>],
) -> Result<std::collections::HashSet<String>, DbErr> {
    let rows = retain_store::insert_rows(
        db,
        "INSERT INTO notification_actions (tenant_id, notification_id, account_id, rule, kind, \
         suppressed, trigger_at, created_at) VALUES ",
        " ON CONFLICT (tenant_id, notification_id) DO NOTHING RETURNING notification_id",
        actions,
        |a| {
            vec![
                tenant.into(),
                a.notification_id.into(),
                a.account.into(),
                a.rule.into(),
                Value::SmallInt(Some(a.kind)),
                Value::SmallInt(Some(a.suppressed)),
                a.trigger_at.into(),
                a.now.into(),
            ]
        },
    )
    .await?;
    rows.iter().map(|r| r.try_get_by_index(0)).collect()
}
