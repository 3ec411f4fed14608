//! Every statement the metrics service runs. It reads ingestion's
//! `signals` and `accounts` tables (the shared, append-only record of what
//! was accepted; see docs/ARCHITECTURE.md) and owns `account_metrics`.

use prost::Message;
use retain_proto::v1;
use retain_store::entity::account;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, Statement, TransactionTrait,
};

/// Signals of one account as a recompute read them, and the latest
/// `ingested_at` among them (the snapshot's read version, migration m0016).
#[derive(Debug, Default)]
pub struct AccountRead {
    /// The signals read.
    pub signals: Vec<v1::Signal>,
    /// The latest `ingested_at` among them (0 for none).
    pub read_version: i64,
}

impl AccountRead {
    /// Adds what another read found.
    pub fn extend(&mut self, other: AccountRead) {
        self.signals.extend(other.signals);
        self.read_version = self.read_version.max(other.read_version);
    }
}

/// Session and product action: the kinds (stored codes) that make up most
/// of a large account's history, read by time range only.
const DENSE_KINDS: &str = "(11, 12)";

/// The stored codes of the kinds a portfolio query reads only from its
/// periods' reach (`retain_domain::kpi::rollup::portfolio::REACH_KINDS`),
/// as an SQL list.
fn reach_kinds() -> String {
    let codes: Vec<String> = retain_domain::kpi::rollup::portfolio::REACH_KINDS
        .iter()
        .map(|k| k.code().to_string())
        .collect();
    format!("({})", codes.join(", "))
}

/// Every stored signal of the account.
pub async fn account_signals<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    account: &str,
) -> Result<AccountRead, DbErr> {
    read(
        db,
        "SELECT payload, ingested_at FROM signals WHERE tenant_id = $1 AND account_id = $2",
        vec![tenant.into(), account.into()],
    )
    .await
}

/// The account's signals of every kind but sessions and actions — the
/// few its lifetime facts come from (index `signals_sparse`, m0016).
pub async fn account_sparse_signals<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    account: &str,
) -> Result<AccountRead, DbErr> {
    read(
        db,
        &format!(
            "SELECT payload, ingested_at FROM signals WHERE tenant_id = $1 AND account_id = $2 \
             AND kind NOT IN {DENSE_KINDS}"
        ),
        vec![tenant.into(), account.into()],
    )
    .await
}

/// The account's sessions and actions that occurred at or after `from`
/// (µs), and, of those before it, the earliest session or action (when the
/// account was first seen) and the earliest session (whether it ever had
/// one). Each earliest is the first row of a scan of the account's
/// history in time order: found at once where sessions are what the
/// history is made of; an account with old actions and no session before
/// `from` has its actions scanned.
pub async fn account_dense_signals_since<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    account: &str,
    from: i64,
) -> Result<AccountRead, DbErr> {
    let earliest = |name: &str, kinds: &str| {
        format!(
            "SELECT payload, ingested_at FROM (SELECT payload, ingested_at FROM signals \
             WHERE tenant_id = $1 AND account_id = $2 AND occurred_at < $3 AND kind {kinds} \
             ORDER BY occurred_at, event_id LIMIT 1) AS {name}"
        )
    };
    let mut read = read(
        db,
        &format!(
            "SELECT payload, ingested_at FROM signals WHERE tenant_id = $1 AND account_id = $2 \
             AND occurred_at >= $3 AND kind IN {DENSE_KINDS} UNION ALL {} UNION ALL {}",
            earliest("first_dense", &format!("IN {DENSE_KINDS}")),
            earliest("first_session", "= 11")
        ),
        vec![tenant.into(), account.into(), from.into()],
    )
    .await?;
    // The earliest session may be the earliest of both (they come last).
    // A copy would be harmless — both lie before every window and month
    // the recompute counts in, and only their times are used — but the
    // count of signals read says what was read once.
    if let [.., a, b] = read.signals.as_slice()
        && a.event_id == b.event_id
    {
        read.signals.pop();
    }
    Ok(read)
}

/// Runs a `SELECT payload, ingested_at …` of signals.
async fn read<C: ConnectionTrait>(
    db: &C,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<AccountRead, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    let mut out = AccountRead {
        signals: Vec::with_capacity(rows.len()),
        read_version: 0,
    };
    for row in rows {
        let payload: Vec<u8> = row.try_get_by_index(0)?;
        let ingested_at: i64 = row.try_get_by_index(1)?;
        let signal = v1::Signal::decode(payload.as_slice())
            .map_err(|e| DbErr::Custom(format!("a stored signal does not decode: {e}")))?;
        out.signals.push(signal);
        out.read_version = out.read_version.max(ingested_at);
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

/// Replaces the account's stored snapshot, unless the stored one was read
/// at a later read version (the latest `ingested_at` among the signals
/// read, m0016), or at the same one as of a later instant. The version is
/// (`as_of` µs, signals read, read version). Returns whether it wrote.
pub async fn save_snapshot<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    account: &str,
    snapshot: &v1::AccountMetricsSnapshot,
    (as_of, signals_read, read_version): (i64, i64, i64),
    now: i64,
) -> Result<bool, DbErr> {
    let written = retain_store::exec(
        db,
        "INSERT INTO account_metrics (tenant_id, account_id, snapshot, as_of, computed_at, \
         signal_count, read_version) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (tenant_id, account_id) DO UPDATE SET snapshot = excluded.snapshot, \
         as_of = excluded.as_of, computed_at = excluded.computed_at, \
         signal_count = excluded.signal_count, read_version = excluded.read_version \
         WHERE account_metrics.read_version < excluded.read_version \
         OR (account_metrics.read_version = excluded.read_version \
         AND account_metrics.as_of <= excluded.as_of)",
        [
            tenant.into(),
            account.into(),
            snapshot.encode_to_vec().into(),
            as_of.into(),
            now.into(),
            signals_read.into(),
            read_version.into(),
        ],
    )
    .await?;
    Ok(written == 1)
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

/// One account's stored month rows: month start (µs) → (segment, plan,
/// encoded contribution).
pub async fn account_months<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    account: &str,
) -> Result<std::collections::BTreeMap<i64, (String, String, Vec<u8>)>, DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            "SELECT month_start, segment, plan, contribution FROM metrics_account_months \
             WHERE tenant_id = $1 AND account_id = $2",
            [tenant.into(), account.into()],
        ))
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get_by_index(0)?,
                (
                    r.try_get_by_index(1)?,
                    r.try_get_by_index(2)?,
                    r.try_get_by_index(3)?,
                ),
            ))
        })
        .collect()
}

/// Writes one account's month row and marks its month for a cell rebuild.
pub async fn save_account_month<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    account: &str,
    month_start: i64,
    (segment, plan): (&str, &str),
    contribution: Vec<u8>,
) -> Result<(), DbErr> {
    retain_store::exec(
        db,
        "INSERT INTO metrics_account_months \
         (tenant_id, month_start, account_id, segment, plan, contribution) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id, month_start, account_id) DO UPDATE SET \
         segment = excluded.segment, plan = excluded.plan, contribution = excluded.contribution",
        [
            tenant.into(),
            month_start.into(),
            account.into(),
            segment.into(),
            plan.into(),
            contribution.into(),
        ],
    )
    .await?;
    mark_dirty(db, tenant, month_start).await
}

/// Marks a month's cells for a rebuild: bumps its version.
pub async fn mark_dirty<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    month_start: i64,
) -> Result<(), DbErr> {
    retain_store::exec(
        db,
        "INSERT INTO metrics_dirty_months (tenant_id, month_start, version, built) \
         VALUES ($1, $2, 1, 0) ON CONFLICT (tenant_id, month_start) \
         DO UPDATE SET version = metrics_dirty_months.version + 1",
        [tenant.into(), month_start.into()],
    )
    .await
    .map(|_| ())
}

/// Months whose cells are older than their rows, at most `limit`.
pub async fn dirty_months(
    db: &DatabaseConnection,
    limit: u64,
) -> Result<Vec<(String, i64)>, DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            "SELECT tenant_id, month_start FROM metrics_dirty_months WHERE version > built \
             ORDER BY tenant_id, month_start LIMIT $1",
            [i64::try_from(limit).unwrap_or(i64::MAX).into()],
        ))
        .await?;
    rows.into_iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
        .collect()
}

/// The version of a month's rows whose cells are older than them; `None`
/// when the cells are current.
pub async fn dirty_version(
    db: &DatabaseConnection,
    tenant: &str,
    month_start: i64,
) -> Result<Option<i64>, DbErr> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT version FROM metrics_dirty_months WHERE tenant_id = $1 AND month_start = $2 \
             AND version > built",
            [tenant.into(), month_start.into()],
        ))
        .await?;
    row.map(|r| r.try_get_by_index(0)).transpose()
}

/// One page of a month's account rows after account `after`, in account
/// order: (account, segment, plan, encoded contribution).
pub async fn month_rows(
    db: &DatabaseConnection,
    tenant: &str,
    month_start: i64,
    after: &str,
    limit: u64,
) -> Result<Vec<(String, String, String, Vec<u8>)>, DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            "SELECT account_id, segment, plan, contribution FROM metrics_account_months \
             WHERE tenant_id = $1 AND month_start = $2 AND account_id > $3 \
             ORDER BY account_id LIMIT $4",
            [
                tenant.into(),
                month_start.into(),
                after.into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        ))
        .await?;
    rows.into_iter()
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

/// Replaces a month's cells with sums of its rows as of `version`: (segment,
/// plan, accounts, encoded sum). Nothing is written when cells of that
/// version or a later one are there already (another replica's rebuild):
/// recording the version first takes the month's lock, so of two
/// rebuilds the later version wins.
pub async fn replace_cells(
    db: &DatabaseConnection,
    tenant: &str,
    month_start: i64,
    version: i64,
    cells: Vec<(String, String, i64, Vec<u8>)>,
) -> Result<(), DbErr> {
    let tx = db.begin().await?;
    let newer = retain_store::exec(
        &tx,
        "UPDATE metrics_dirty_months SET built = $1 \
         WHERE tenant_id = $2 AND month_start = $3 AND built < $1",
        [version.into(), tenant.into(), month_start.into()],
    )
    .await?;
    if newer == 0 {
        return tx.rollback().await;
    }
    retain_store::exec(
        &tx,
        "DELETE FROM metrics_month_cells WHERE tenant_id = $1 AND month_start = $2",
        [tenant.into(), month_start.into()],
    )
    .await?;
    for (segment, plan, accounts, contribution) in cells {
        retain_store::exec(
            &tx,
            "INSERT INTO metrics_month_cells \
             (tenant_id, month_start, segment, plan, accounts, contribution) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            [
                tenant.into(),
                month_start.into(),
                segment.into(),
                plan.into(),
                accounts.into(),
                contribution.into(),
            ],
        )
        .await?;
    }
    tx.commit().await
}

/// A month's cells: (segment, plan, encoded sum).
pub async fn cells(
    db: &DatabaseConnection,
    tenant: &str,
    month_start: i64,
) -> Result<Vec<(String, String, Vec<u8>)>, DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            "SELECT segment, plan, contribution FROM metrics_month_cells \
             WHERE tenant_id = $1 AND month_start = $2",
            [tenant.into(), month_start.into()],
        ))
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get_by_index(0)?,
                r.try_get_by_index(1)?,
                r.try_get_by_index(2)?,
            ))
        })
        .collect()
}

/// Whether some account of `tenant` was last recomputed as of before
/// `before` (µs): its rows may lack a month that ended since.
pub async fn any_snapshot_before(
    db: &DatabaseConnection,
    tenant: &str,
    before: i64,
) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    Ok(db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT 1 FROM account_metrics WHERE tenant_id = $1 AND as_of < $2 LIMIT 1",
            [tenant.into(), before.into()],
        ))
        .await?
        .is_some())
}

/// The portfolio's own stored signals (costs).
pub async fn portfolio_signals(
    db: &DatabaseConnection,
    tenant: &str,
) -> Result<Vec<v1::Signal>, DbErr> {
    Ok(
        account_signals(db, tenant, retain_domain::signal::PORTFOLIO)
            .await?
            .signals,
    )
}

/// One page of a tenant's accounts and their signals ([`signal_page`]).
#[derive(Debug, Default)]
pub struct SignalPage {
    /// (account, payload), in account order.
    pub rows: Vec<(String, Vec<u8>)>,
    /// Each account of the page and its earliest signal's `occurred_at`
    /// (µs), whether or not that signal was read.
    pub first_seen: Vec<(String, i64)>,
    /// The last account the page covers (the next page starts after it),
    /// or `None` past the last account.
    pub last: Option<String>,
}

/// The next accounts of `tenant` that have signals, after `after` in
/// account order — at most `accounts` of them, and no more than fit in
/// `signals` signals (at least one account, however large) — with their
/// signals: every one, or with `dense_from` (µs) every one but those of
/// the kinds a period counts only from its reach (sessions, actions,
/// tickets, survey answers, purchases, account records) that occurred
/// before it. The portfolio's own
/// signals (costs, account `*`) are not among them: they are read apart.
/// Empty past the last account.
///
/// The first statement takes the candidates from `accounts` (where
/// ingestion records every account it sees) and, for each, probes the
/// primary key (`tenant_id, account_id, occurred_at, …`) without reading
/// rows: its earliest `occurred_at`, and how many signals the page would
/// read of it — those from `dense_from` on, and the others before it
/// through the partial index `signals_sparse` — so its cost follows what
/// is read, not the accounts' whole histories. The rows are then read in
/// the same two parts.
pub async fn signal_page(
    db: &DatabaseConnection,
    tenant: &str,
    after: &str,
    (accounts, signals): (u64, u64),
    dense_from: Option<i64>,
) -> Result<SignalPage, DbErr> {
    let backend = db.get_database_backend();
    let from = dense_from.unwrap_or(i64::MIN);
    let reach = reach_kinds();
    let of_account = "s.tenant_id = a.tenant_id AND s.account_id = a.account_id";
    let counts = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT a.account_id, \
                 (SELECT MIN(s.occurred_at) FROM signals s WHERE {of_account}), \
                 (SELECT COUNT(*) FROM signals s WHERE {of_account} AND s.occurred_at >= $3), \
                 (SELECT COUNT(*) FROM signals s WHERE {of_account} AND s.occurred_at < $3 \
                  AND s.kind NOT IN {DENSE_KINDS} AND s.kind NOT IN {reach}) \
                 FROM accounts a WHERE a.tenant_id = $1 AND a.account_id > $2 \
                 AND a.account_id <> '*' ORDER BY a.account_id LIMIT $4"
            ),
            [
                tenant.into(),
                after.into(),
                from.into(),
                i64::try_from(accounts).unwrap_or(i64::MAX).into(),
            ],
        ))
        .await?;
    let mut page = SignalPage::default();
    let mut taken: u64 = 0;
    for row in counts {
        let account: String = row.try_get_by_index(0)?;
        // An account recorded without a signal (an upsert alone) counts in
        // no KPI.
        let Some(first_seen) = row.try_get_by_index::<Option<i64>>(1)? else {
            page.last = Some(account);
            continue;
        };
        let n = [2, 3]
            .into_iter()
            .map(|i| row.try_get_by_index::<i64>(i))
            .sum::<Result<i64, _>>()?;
        let n = u64::try_from(n).unwrap_or(0);
        if !page.first_seen.is_empty() && taken.saturating_add(n) > signals {
            break;
        }
        taken = taken.saturating_add(n);
        page.last = Some(account.clone());
        page.first_seen.push((account, first_seen));
    }
    let (Some(last), false) = (page.last.clone(), page.first_seen.is_empty()) else {
        return Ok(page);
    };
    let range = "tenant_id = $1 AND account_id > $2 AND account_id <= $3 AND account_id <> '*'";
    let (sql, values) = match dense_from {
        None => (
            format!("SELECT account_id, payload FROM signals WHERE {range} ORDER BY account_id"),
            vec![tenant.into(), after.into(), last.into()],
        ),
        // The lifetime kinds (`signals_sparse` holds them: its predicate
        // is repeated for SQLite to use it), then the others from the
        // reach on.
        Some(from) => (
            format!(
                "SELECT account_id, payload FROM signals WHERE {range} \
                 AND kind NOT IN {DENSE_KINDS} AND kind NOT IN {reach} \
                 UNION ALL SELECT account_id, payload FROM signals WHERE {range} \
                 AND occurred_at >= $4 AND kind IN {reach} ORDER BY 1"
            ),
            vec![tenant.into(), after.into(), last.into(), from.into()],
        ),
    };
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, &sql, values))
        .await?;
    page.rows = rows
        .iter()
        .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
        .collect::<Result<_, DbErr>>()?;
    Ok(page)
}

/// Stores (or replaces) an account's contribution to the months before its
/// first signal's.
pub async fn save_opening<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    account: &str,
    first_month: i64,
    (segment, plan): (&str, &str),
    contribution: Vec<u8>,
) -> Result<(), DbErr> {
    retain_store::exec(
        db,
        "INSERT INTO metrics_account_openings \
         (tenant_id, account_id, first_month, segment, plan, contribution) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (tenant_id, account_id) DO UPDATE SET first_month = excluded.first_month, \
         segment = excluded.segment, plan = excluded.plan, contribution = excluded.contribution",
        [
            tenant.into(),
            account.into(),
            first_month.into(),
            segment.into(),
            plan.into(),
            contribution.into(),
        ],
    )
    .await
    .map(|_| ())
}

/// The opening contributions of accounts first seen after `month_start`:
/// (segment, plan, encoded contribution).
pub async fn openings_after(
    db: &DatabaseConnection,
    tenant: &str,
    month_start: i64,
) -> Result<Vec<(String, String, Vec<u8>)>, DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            "SELECT segment, plan, contribution FROM metrics_account_openings \
             WHERE tenant_id = $1 AND first_month > $2",
            [tenant.into(), month_start.into()],
        ))
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok((
                r.try_get_by_index(0)?,
                r.try_get_by_index(1)?,
                r.try_get_by_index(2)?,
            ))
        })
        .collect()
}
