//! What routing knows of each account: its context (segment, owner,
//! name, contacts: `notification_accounts`, and ingestion's `accounts`)
//! and its MRR history (`notification_mrr`), which tells a contraction or
//! a churn.

use sea_orm::{ConnectionTrait, DbErr, Statement};

/// Keeps what routing needs of an account, from a snapshot as of `as_of`
/// (µs); an older snapshot than the one kept changes nothing.
pub async fn upsert_account<C: ConnectionTrait>(
    db: &C,
    ctx: &retain_domain::routing::AccountContext,
    as_of: i64,
) -> Result<(), DbErr> {
    keep_account(db, ctx, as_of, Keep::IfNewer).await
}

/// Keeps what routing knows of an account from ingestion's record, read
/// at `now` (µs): a metrics snapshot computed before now may not include
/// the upserts just routed, so it no longer replaces them; the next one
/// computed after does (it read them — they were committed before their
/// message reached notification).
pub async fn merge_account<C: ConnectionTrait>(
    db: &C,
    ctx: &retain_domain::routing::AccountContext,
    now: i64,
) -> Result<(), DbErr> {
    keep_account(db, ctx, now, Keep::Always).await
}

/// When [`keep_account`] replaces a kept context.
enum Keep {
    /// Only with a newer `as_of` (a snapshot).
    IfNewer,
    /// Always, `as_of` moving forward only (ingestion's record).
    Always,
}

/// The one statement behind [`upsert_account`] and [`merge_account`].
async fn keep_account<C: ConnectionTrait>(
    db: &C,
    ctx: &retain_domain::routing::AccountContext,
    as_of: i64,
    keep: Keep,
) -> Result<(), DbErr> {
    let tail = match keep {
        Keep::IfNewer => {
            ", as_of = excluded.as_of WHERE notification_accounts.as_of < excluded.as_of"
        }
        Keep::Always => {
            ", as_of = CASE WHEN notification_accounts.as_of > excluded.as_of \
             THEN notification_accounts.as_of ELSE excluded.as_of END"
        }
    };
    retain_store::exec(
        db,
        format!(
            "INSERT INTO notification_accounts (tenant_id, account_id, segment, csm_owner, name, \
             contacts, as_of) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id, account_id) DO UPDATE SET segment = excluded.segment, \
             csm_owner = excluded.csm_owner, name = excluded.name, contacts = excluded.contacts\
             {tail}"
        ),
        [
            ctx.tenant.clone().into(),
            ctx.account.clone().into(),
            ctx.segment.clone().unwrap_or_default().into(),
            ctx.csm_owner.clone().unwrap_or_default().into(),
            ctx.name.clone().into(),
            ctx.contacts.join("\n").into(),
            as_of.into(),
        ],
    )
    .await
    .map(|_| ())
}

/// The account as ingestion keeps it (`accounts`, the shared record every
/// upsert is merged into field by field): what routing needs of it, or
/// `None` before its first signal is committed.
pub async fn account_record<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    account: &str,
) -> Result<Option<retain_domain::routing::AccountContext>, DbErr> {
    context(
        db,
        (tenant, account),
        "SELECT segment, csm_owner_email, name, contact_emails FROM accounts \
         WHERE tenant_id = $1 AND account_id = $2",
    )
    .await
}

/// What routing knows of an account (nothing yet: only its ids).
pub async fn account<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    account: &str,
) -> Result<retain_domain::routing::AccountContext, DbErr> {
    let kept = context(
        db,
        (tenant, account),
        "SELECT segment, csm_owner, name, contacts FROM notification_accounts \
         WHERE tenant_id = $1 AND account_id = $2",
    )
    .await?;
    Ok(
        kept.unwrap_or_else(|| retain_domain::routing::AccountContext {
            tenant: tenant.to_owned(),
            account: account.to_owned(),
            ..Default::default()
        }),
    )
}

/// The account context `sql` selects — segment, owner, name and the
/// newline-joined contacts, '' or NULL for none — if it has a row.
async fn context<C: ConnectionTrait>(
    db: &C,
    (tenant, account): (&str, &str),
    sql: &str,
) -> Result<Option<retain_domain::routing::AccountContext>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            [tenant.into(), account.into()],
        ))
        .await?;
    let Some(r) = row else { return Ok(None) };
    let text = |i: usize| -> Result<String, DbErr> {
        Ok(r.try_get_by_index::<Option<String>>(i)?.unwrap_or_default())
    };
    let some = |s: String| Some(s).filter(|s| !s.is_empty());
    Ok(Some(retain_domain::routing::AccountContext {
        tenant: tenant.to_owned(),
        account: account.to_owned(),
        segment: some(text(0)?),
        csm_owner: some(text(1)?),
        name: text(2)?,
        contacts: text(3)?
            .split('\n')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
    }))
}

/// Records a subscription change (MRR after it) and returns the MRR
/// before it and whether the account paid before it.
pub async fn mrr_change<C: ConnectionTrait>(
    db: &C,
    (tenant, account): (&str, &str),
    (at, event_id): (i64, &str),
    mrr: i64,
) -> Result<(i64, bool), DbErr> {
    retain_store::exec(
        db,
        "INSERT INTO notification_mrr (tenant_id, account_id, at, event_id, mrr_minor) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, account_id, at, event_id) DO NOTHING",
        [
            tenant.into(),
            account.into(),
            at.into(),
            event_id.into(),
            mrr.into(),
        ],
    )
    .await?;
    let backend = db.get_database_backend();
    let before = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT mrr_minor FROM notification_mrr WHERE tenant_id = $1 AND account_id = $2 \
             AND (at, event_id) < ($3, $4) ORDER BY at DESC, event_id DESC LIMIT 1",
            [tenant.into(), account.into(), at.into(), event_id.into()],
        ))
        .await?
        .map(|r| r.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0);
    let paid = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT COUNT(*) FROM notification_mrr WHERE tenant_id = $1 AND account_id = $2 \
             AND (at, event_id) < ($3, $4) AND mrr_minor > 0",
            [tenant.into(), account.into(), at.into(), event_id.into()],
        ))
        .await?
        .map_or(Ok(0), |r| r.try_get_by_index::<i64>(0))?;
    Ok((before, paid > 0))
}
