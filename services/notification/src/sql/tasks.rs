//! The CSM queue's statements: tasks and their states
//! (`notification_tasks`), the numbered changes watchers read
//! (`notification_task_changes`, `notification_task_heads`), the SLA
//! sweep and round-robin positions (`notification_queue_cursors`).

use retain_proto::v1;
use sea_orm::{ConnectionTrait, DbErr, QueryResult, Statement, Value};

use crate::tasks::TaskState;

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
        state: TaskState::from_code(r.try_get_by_index(7)?)
            .map_or(v1::TaskState::Unspecified, TaskState::to_wire) as i32,
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

/// The tasks of the tenant among `ids` (a watch page's), by id, in one
/// statement per parameter-limit chunk.
pub async fn tasks_by_id<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    ids: &[&str],
) -> Result<std::collections::HashMap<String, v1::Task>, DbErr> {
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let sql = |list: &str| {
        format!(
            "SELECT {TASK_COLUMNS} FROM notification_tasks WHERE tenant_id = $1 \
             AND task_id IN ({list})"
        )
    };
    let rows = retain_store::select_in(db, sql, &[tenant.into()], ids).await?;
    rows.iter()
        .map(|r| task_from_row(r).map(|t| (t.task_id.clone(), t)))
        .collect()
}

/// Moves a task from one of `from` (states) to `to`, setting `assignee`
/// when given and the resolution; `false` when the task is not in one of
/// `from` (or does not exist). The state check and the change are one
/// statement, so of two concurrent CSMs exactly one wins.
pub async fn transition<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    task_id: &str,
    (from, to): (&[TaskState], TaskState),
    assignee: Option<&str>,
    resolution: &str,
    now: i64,
) -> Result<bool, DbErr> {
    let mut values: Vec<Value> = vec![
        Value::SmallInt(Some(to.code())),
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
            values.push(Value::SmallInt(Some(s.code())));
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
    /// Only these states.
    pub states: Vec<TaskState>,
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
            values.push(Value::SmallInt(Some(s.code())));
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
            format!(
                "SELECT assignee, COUNT(*) FROM notification_tasks WHERE tenant_id = $1 \
                 AND queue = $2 AND state IN ({}) GROUP BY assignee",
                TaskState::sql_list(&TaskState::LIVE)
            ),
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
            format!(
                "UPDATE notification_tasks SET sla_breached = TRUE, updated_at = $1 \
                 WHERE state IN ({}) AND due_at <= $1 AND NOT sla_breached \
                 RETURNING tenant_id, task_id, queue, assignee",
                TaskState::sql_list(&TaskState::LIVE)
            ),
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

/// Open and claimed tasks marked past their SLA, per tenant.
pub async fn breached_open<C: ConnectionTrait>(db: &C) -> Result<Vec<(String, i64)>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!(
                "SELECT tenant_id, COUNT(*) FROM notification_tasks \
                 WHERE state IN ({}) AND sla_breached GROUP BY tenant_id ORDER BY tenant_id",
                TaskState::sql_list(&TaskState::LIVE)
            ),
            [],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
        .collect()
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
                Value::SmallInt(Some(TaskState::Open.code())),
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
