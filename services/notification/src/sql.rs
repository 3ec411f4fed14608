//! Every statement the notification service runs: its own tables
//! (`notification_policies`, `notification_actions`, `notification_tasks`,
//! `notification_snoozes`; see the migration).

use prost::Message;
use retain_proto::v1;
use sea_orm::{ConnectionTrait, DbErr, QueryResult, Statement, Value};

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

/// The columns of a task, in the order [`task_from_row`] reads them.
const TASK_COLUMNS: &str = "task_id, account_id, rule, title, message, queue, priority, state, \
     assignee, due_at, sla_breached, resolution, created_at, updated_at";

/// A task to create.
pub struct NewTask<'a> {
    /// Task id (the notification id).
    pub task_id: &'a str,
    /// Account.
    pub account: &'a str,
    /// Rule key.
    pub rule: &'a str,
    /// Title.
    pub title: &'a str,
    /// Body.
    pub message: &'a str,
    /// Queue.
    pub queue: &'a str,
    /// `TaskPriority` number.
    pub priority: i16,
    /// Assigned CSM ('' for none).
    pub assignee: &'a str,
    /// SLA due, µs.
    pub due_at: i64,
    /// Now, µs.
    pub now: i64,
}

fn task_from_row(r: &QueryResult) -> Result<v1::Task, DbErr> {
    let rule: String = r.try_get_by_index(2)?;
    let trigger = retain_domain::routing::Rule::ALL
        .into_iter()
        .find(|x| x.key() == rule)
        .map_or(
            v1::RoutingTrigger::Unspecified,
            retain_proto::routing::rule_to_proto,
        );
    let at = |i: usize| -> Result<Option<prost_types::Timestamp>, DbErr> {
        Ok(Some(retain_proto::convert::from_micros(
            r.try_get_by_index(i)?,
        )))
    };
    Ok(v1::Task {
        task_id: r.try_get_by_index(0)?,
        account_id: r.try_get_by_index(1)?,
        trigger: trigger as i32,
        title: r.try_get_by_index(3)?,
        message: r.try_get_by_index(4)?,
        queue: r.try_get_by_index(5)?,
        priority: i32::from(r.try_get_by_index::<i16>(6)?),
        state: i32::from(r.try_get_by_index::<i16>(7)?),
        assignee: r.try_get_by_index(8)?,
        due_at: at(9)?,
        sla_breached: r.try_get_by_index(10)?,
        resolution: r.try_get_by_index(11)?,
        created_at: at(12)?,
        updated_at: at(13)?,
    })
}

/// One task of the tenant.
pub async fn task<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    task_id: &str,
) -> Result<Option<v1::Task>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!("SELECT {TASK_COLUMNS} FROM notification_tasks WHERE tenant_id = $1 AND task_id = $2"),
            [tenant.into(), task_id.into()],
        ))
        .await?;
    row.as_ref().map(task_from_row).transpose()
}

/// Moves a task from one of `from` (states) to `to`, setting `assignee`
/// when given and the resolution; `false` when the task is not in one of
/// `from` (or does not exist). The state check and the change are one
/// statement, so of two concurrent CSMs exactly one wins.
pub async fn transition<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    task_id: &str,
    (from, to): (&[i16], i16),
    assignee: Option<&str>,
    resolution: &str,
    now: i64,
) -> Result<bool, DbErr> {
    let mut values: Vec<Value> = vec![
        Value::SmallInt(Some(to)),
        resolution.into(),
        now.into(),
        tenant.into(),
        task_id.into(),
    ];
    let mut sql =
        String::from("UPDATE notification_tasks SET state = $1, resolution = $2, updated_at = $3");
    if let Some(a) = assignee {
        values.push(a.into());
        sql.push_str(&format!(", assignee = ${}", values.len()));
    }
    sql.push_str(" WHERE tenant_id = $4 AND task_id = $5 AND state IN (");
    let list: Vec<String> = from
        .iter()
        .map(|s| {
            values.push(Value::SmallInt(Some(*s)));
            format!("${}", values.len())
        })
        .collect();
    sql.push_str(&list.join(", "));
    sql.push(')');
    Ok(retain_store::exec(db, sql, values).await? == 1)
}

/// What ListTasks keeps.
#[derive(Debug, Default)]
pub struct TaskFilter<'a> {
    /// Only this queue.
    pub queue: Option<&'a str>,
    /// Only these states (numbers).
    pub states: Vec<i16>,
    /// Only this assignee.
    pub assignee: Option<&'a str>,
    /// Only this account.
    pub account: Option<&'a str>,
    /// Only tasks marked past their SLA.
    pub overdue: bool,
}

/// A page of tasks, highest priority first, then the earliest SLA due
/// time, after the position (priority, due_at, task_id) of the previous
/// page's last task.
pub async fn tasks<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    filter: &TaskFilter<'_>,
    after: Option<(i64, i64, String)>,
    limit: u64,
) -> Result<Vec<v1::Task>, DbErr> {
    let mut sql = format!("SELECT {TASK_COLUMNS} FROM notification_tasks WHERE tenant_id = $1");
    let mut values: Vec<Value> = vec![tenant.into()];
    for (column, wanted) in [
        ("queue", filter.queue),
        ("assignee", filter.assignee),
        ("account_id", filter.account),
    ] {
        if let Some(w) = wanted {
            values.push(w.into());
            sql.push_str(&format!(" AND {column} = ${}", values.len()));
        }
    }
    let list: Vec<String> = filter
        .states
        .iter()
        .map(|s| {
            values.push(Value::SmallInt(Some(*s)));
            format!("${}", values.len())
        })
        .collect();
    sql.push_str(&format!(" AND state IN ({})", list.join(", ")));
    if filter.overdue {
        sql.push_str(" AND sla_breached");
    }
    if let Some((priority, due, id)) = after {
        values.extend([(-priority).into(), due.into(), id.into()]);
        let n = values.len();
        sql.push_str(&format!(
            " AND (0 - priority, due_at, task_id) > (${}, ${}, ${n})",
            n - 2,
            n - 1
        ));
    }
    values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
    sql.push_str(&format!(
        " ORDER BY priority DESC, due_at, task_id LIMIT ${}",
        values.len()
    ));
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    rows.iter().map(task_from_row).collect()
}

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

/// Open and claimed tasks of each of `members` in `queue`, in their order.
pub async fn open_counts<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    queue: &str,
    members: &[String],
) -> Result<Vec<u64>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT assignee, COUNT(*) FROM notification_tasks WHERE tenant_id = $1 \
             AND queue = $2 AND state IN (1, 2) GROUP BY assignee",
            [tenant.into(), queue.into()],
        ))
        .await?;
    let mut counts = std::collections::HashMap::new();
    for r in &rows {
        let (who, n): (String, i64) = (r.try_get_by_index(0)?, r.try_get_by_index(1)?);
        counts.insert(who, u64::try_from(n).unwrap_or(0));
    }
    Ok(members
        .iter()
        .map(|m| counts.get(m).copied().unwrap_or(0))
        .collect())
}

/// Marks open and claimed tasks past their due time as breached (every
/// tenant) and records the changes, one tenant at a time in tenant order:
/// each tenant's watch head stays locked until commit, so every writer
/// taking several heads takes them in one order and none waits on
/// another in a cycle. Returns how many it marked.
pub async fn mark_breached<C: ConnectionTrait>(db: &C, now: i64) -> Result<u64, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "UPDATE notification_tasks SET sla_breached = TRUE, updated_at = $1 \
             WHERE state IN (1, 2) AND due_at <= $1 AND NOT sla_breached \
             RETURNING tenant_id, task_id, queue, assignee",
            [now.into()],
        ))
        .await?;
    let mut marked = rows
        .iter()
        .map(|r| {
            Ok((
                r.try_get_by_index::<String>(0)?,
                r.try_get_by_index::<String>(1)?,
                r.try_get_by_index::<String>(2)?,
                r.try_get_by_index::<String>(3)?,
            ))
        })
        .collect::<Result<Vec<_>, DbErr>>()?;
    marked.sort();
    for tenant_rows in marked.chunk_by(|a, b| a.0 == b.0) {
        let changes: Vec<(&str, &str, &str)> = tenant_rows
            .iter()
            .map(|(_, task, queue, assignee)| (task.as_str(), queue.as_str(), assignee.as_str()))
            .collect();
        record_task_changes(db, &tenant_rows[0].0, &changes, now).await?;
    }
    Ok(rows.len() as u64)
}

/// Records one task's creation or change ([`record_task_changes`]).
pub async fn record_task_change<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    change: (&str, &str, &str),
    now: i64,
) -> Result<(), DbErr> {
    record_task_changes(db, tenant, &[change], now).await
}

/// Records task creations or changes under the tenant's next watch
/// numbers, in order. The numbers come from `notification_task_heads`,
/// whose row stays locked until the caller commits, so numbers become
/// visible in order.
pub async fn record_task_changes<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    changes: &[(&str, &str, &str)],
    now: i64,
) -> Result<(), DbErr> {
    if changes.is_empty() {
        return Ok(());
    }
    let n = changes.len() as i64;
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "INSERT INTO notification_task_heads (tenant_id, seq) VALUES ($1, $2) \
             ON CONFLICT (tenant_id) DO UPDATE SET seq = notification_task_heads.seq + $2 \
             RETURNING seq",
            [tenant.into(), n.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("no watch number returned".into()))?;
    let last: i64 = row.try_get_by_index(0)?;
    let numbered: Vec<(i64, &(&str, &str, &str))> = (last - n + 1..).zip(changes).collect();
    retain_store::insert_rows(
        db,
        "INSERT INTO notification_task_changes (tenant_id, seq, task_id, queue, assignee, \
         created_at) VALUES ",
        "",
        &numbered,
        |(seq, (task, queue, assignee))| {
            vec![
                tenant.into(),
                (*seq).into(),
                (*task).into(),
                (*queue).into(),
                (*assignee).into(),
                now.into(),
            ]
        },
    )
    .await
    .map(|_| ())
}

/// The tenant's latest task watch number (0 before the first change).
pub async fn task_watch_head<C: ConnectionTrait>(db: &C, tenant: &str) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT seq FROM notification_task_heads WHERE tenant_id = $1",
            [tenant.into()],
        ))
        .await?;
    row.map_or(Ok(0), |r| r.try_get_by_index(0))
}

/// The tenant's task changes after watch number `after`, in order, at most
/// `limit`: (number, task id, queue, assignee).
pub async fn task_changes_after<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    after: i64,
    limit: u64,
) -> Result<Vec<(i64, String, String, String)>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT seq, task_id, queue, assignee FROM notification_task_changes \
             WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            [
                tenant.into(),
                after.into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get_by_index(0)?,
                r.try_get_by_index(1)?,
                r.try_get_by_index(2)?,
                r.try_get_by_index(3)?,
            ))
        })
        .collect()
}

/// What ListNotifications keeps.
#[derive(Debug, Default)]
pub struct MessageFilter<'a> {
    /// Only this account.
    pub account: Option<&'a str>,
    /// Only this channel (number).
    pub channel: Option<i16>,
    /// Only these states (numbers; all when empty).
    pub states: Vec<i16>,
}

fn message_where(filter: &MessageFilter<'_>, with_states: bool, values: &mut Vec<Value>) -> String {
    let mut sql = String::from(" WHERE tenant_id = $1");
    if let Some(a) = filter.account {
        values.push(a.into());
        sql.push_str(&format!(" AND account_id = ${}", values.len()));
    }
    if let Some(c) = filter.channel {
        values.push(Value::SmallInt(Some(c)));
        sql.push_str(&format!(" AND channel = ${}", values.len()));
    }
    if with_states && !filter.states.is_empty() {
        let list: Vec<String> = filter
            .states
            .iter()
            .map(|s| {
                values.push(Value::SmallInt(Some(*s)));
                format!("${}", values.len())
            })
            .collect();
        sql.push_str(&format!(" AND state IN ({})", list.join(", ")));
    }
    sql
}

/// A page of messages, newest first, after the position (created_at,
/// notification id, channel) of the previous page's last one.
pub async fn messages<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    filter: &MessageFilter<'_>,
    after: Option<(i64, String, i64)>,
    limit: u64,
) -> Result<Vec<(i64, v1::Notification)>, DbErr> {
    let mut values: Vec<Value> = vec![tenant.into()];
    let mut sql = format!(
        "SELECT created_at, record FROM notification_messages{}",
        message_where(filter, true, &mut values)
    );
    if let Some((created, id, channel)) = after {
        values.extend([created.into(), id.into(), channel.into()]);
        let n = values.len();
        sql.push_str(&format!(
            " AND (created_at, notification_id, channel) < (${}, ${}, ${n})",
            n - 2,
            n - 1
        ));
    }
    values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
    sql.push_str(&format!(
        " ORDER BY created_at DESC, notification_id DESC, channel DESC LIMIT ${}",
        values.len()
    ));
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    rows.iter()
        .map(|r| {
            let bytes: Vec<u8> = r.try_get_by_index(1)?;
            let n = v1::Notification::decode(bytes.as_slice()).map_err(|e| {
                DbErr::Custom(format!("a stored notification does not decode: {e}"))
            })?;
            Ok((r.try_get_by_index(0)?, n))
        })
        .collect()
}

/// Messages of the account and channel asked for, by state.
pub async fn message_counts<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    filter: &MessageFilter<'_>,
) -> Result<Vec<(i16, i64)>, DbErr> {
    let mut values: Vec<Value> = vec![tenant.into()];
    let sql = format!(
        "SELECT state, COUNT(*) FROM notification_messages{} GROUP BY state ORDER BY state",
        message_where(filter, false, &mut values)
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
        .collect()
}

/// The record of a pending email, if it is still pending (not sent, dead
/// or unknown).
pub async fn pending_email<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    notification_id: &str,
) -> Result<Option<v1::Notification>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT record FROM notification_messages WHERE tenant_id = $1 \
             AND notification_id = $2 AND channel = $3 AND state = $4",
            [
                tenant.into(),
                notification_id.into(),
                Value::SmallInt(Some(v1::NotificationChannel::Email as i16)),
                Value::SmallInt(Some(v1::DeliveryState::Pending as i16)),
            ],
        ))
        .await?;
    row.map(|r| {
        let bytes: Vec<u8> = r.try_get_by_index(0)?;
        v1::Notification::decode(bytes.as_slice())
            .map_err(|e| DbErr::Custom(format!("a stored notification does not decode: {e}")))
    })
    .transpose()
}

/// Records a delivery attempt's outcome on a still pending email (`record`
/// carries the new state, attempts and error); `false` when it was no
/// longer pending (another replica recorded an outcome first).
pub async fn record_email<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    record: &v1::Notification,
) -> Result<bool, DbErr> {
    retain_store::exec(
        db,
        "UPDATE notification_messages SET state = $1, record = $2 \
         WHERE tenant_id = $3 AND notification_id = $4 AND channel = $5 AND state = $6",
        [
            Value::SmallInt(Some(i16::try_from(record.state).unwrap_or(0))),
            record.encode_to_vec().into(),
            tenant.into(),
            record.notification_id.clone().into(),
            Value::SmallInt(Some(v1::NotificationChannel::Email as i16)),
            Value::SmallInt(Some(v1::DeliveryState::Pending as i16)),
        ],
    )
    .await
    .map(|rows| rows == 1)
}

/// Pending emails without a bus message (routed before deliveries were
/// work on the bus): (tenant, notification id).
pub async fn unqueued_emails<C: ConnectionTrait>(db: &C) -> Result<Vec<(String, String)>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT tenant_id, notification_id FROM notification_messages \
             WHERE channel = $1 AND state = $2 AND NOT queued ORDER BY created_at",
            [
                Value::SmallInt(Some(v1::NotificationChannel::Email as i16)),
                Value::SmallInt(Some(v1::DeliveryState::Pending as i16)),
            ],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
        .collect()
}

/// Marks every pending email as having its bus message.
pub async fn mark_emails_queued<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
    retain_store::exec(
        db,
        "UPDATE notification_messages SET queued = TRUE WHERE state = $1 AND NOT queued",
        [Value::SmallInt(Some(v1::DeliveryState::Pending as i16))],
    )
    .await
}

/// Open and claimed tasks marked past their SLA, per tenant.
pub async fn breached_open<C: ConnectionTrait>(db: &C) -> Result<Vec<(String, i64)>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT tenant_id, COUNT(*) FROM notification_tasks \
             WHERE state IN (1, 2) AND sla_breached GROUP BY tenant_id ORDER BY tenant_id",
            [],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
        .collect()
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

/// Creates open tasks.
pub async fn insert_tasks<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    tasks: &[NewTask<'_>],
) -> Result<(), DbErr> {
    retain_store::insert_rows(
        db,
        "INSERT INTO notification_tasks (tenant_id, task_id, account_id, rule, title, message, \
         queue, priority, state, assignee, due_at, sla_breached, resolution, created_at, \
         updated_at) VALUES ",
        " ON CONFLICT (tenant_id, task_id) DO NOTHING",
        tasks,
        |t| {
            vec![
                tenant.into(),
                t.task_id.into(),
                t.account.into(),
                t.rule.into(),
                t.title.into(),
                t.message.into(),
                t.queue.into(),
                Value::SmallInt(Some(t.priority)),
                Value::SmallInt(Some(1)),
                t.assignee.into(),
                t.due_at.into(),
                false.into(),
                "".into(),
                t.now.into(),
                t.now.into(),
            ]
        },
    )
    .await
    .map(|_| ())
}

/// Stores email and in-app message records (nothing for a record that is
/// there already).
pub async fn insert_messages<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    messages: &[v1::Notification],
    now: i64,
) -> Result<(), DbErr> {
    retain_store::insert_rows(
        db,
        "INSERT INTO notification_messages (tenant_id, notification_id, channel, account_id, \
         state, record, created_at, queued) VALUES ",
        " ON CONFLICT (tenant_id, notification_id, channel) DO NOTHING",
        messages,
        |n| {
            vec![
                tenant.into(),
                n.notification_id.clone().into(),
                Value::SmallInt(Some(i16::try_from(n.channel).unwrap_or(0))),
                n.account_id.clone().into(),
                Value::SmallInt(Some(i16::try_from(n.state).unwrap_or(0))),
                n.encode_to_vec().into(),
                now.into(),
                true.into(),
            ]
        },
    )
    .await
    .map(|_| ())
}

/// Takes `n` consecutive round-robin positions of the queue and returns
/// the first: how many unowned tasks it had assigned before these (the
/// count is taken and bumped in one statement, so concurrent routers get
/// different positions).
pub async fn take_rotation<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    queue: &str,
    n: u64,
) -> Result<u64, DbErr> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "INSERT INTO notification_queue_cursors (tenant_id, queue, assigned) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, queue) DO UPDATE \
             SET assigned = notification_queue_cursors.assigned + $3 RETURNING assigned",
            [tenant.into(), queue.into(), n.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("no queue position returned".into()))?;
    let assigned: i64 = row.try_get_by_index(0)?;
    Ok(u64::try_from(assigned - n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn a_pending_email(id: &str) -> v1::Notification {
        v1::Notification {
            notification_id: id.into(),
            account_id: "acme-1".into(),
            channel: v1::NotificationChannel::Email as i32,
            state: v1::DeliveryState::Pending as i32,
            ..Default::default()
        }
    }

    retain_testkit::storage_test!(
        async fn an_outcome_is_recorded_once_on_a_pending_email(db) {
            let db = &db.conn;
            insert_messages(db, "t1", &[a_pending_email("n-1")], 0).await.unwrap();
            let mut sent = pending_email_record(db, "n-1").await;
            sent.state = v1::DeliveryState::Sent as i32;
            assert!(record_email(db, "t1", &sent).await.unwrap());
            assert!(super::pending_email(db, "t1", "n-1").await.unwrap().is_none());
            // A late worker cannot turn the sent email back into a retry.
            let mut retry = sent.clone();
            retry.state = v1::DeliveryState::Pending as i32;
            retry.last_error = "late".into();
            assert!(!record_email(db, "t1", &retry).await.unwrap());
            assert!(super::pending_email(db, "t1", "n-1").await.unwrap().is_none());
        }
    );

    async fn pending_email_record(db: &sea_orm::DatabaseConnection, id: &str) -> v1::Notification {
        super::pending_email(db, "t1", id).await.unwrap().unwrap()
    }
}
