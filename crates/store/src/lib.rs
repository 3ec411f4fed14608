//! Retain storage: one way to connect, one set of migrations, on SQLite and
//! PostgreSQL from a single URL.
//!
//! - [`connect`] opens a pool for `sqlite://…?mode=rwc` or `postgres://…`.
//! - [`migration::Migrator`] holds every table's migration; services add
//!   theirs to it in the same pattern. Migrations run as their own step
//!   (`retain migrate`), never implicitly in a replica's start-up.
//! - [`entity`] holds the sea-orm entities.
//! - [`Documents`]: a tenant's versioned documents (scoring models, routing
//!   policies), one put = the next version.
//!
//! Test databases (a temporary SQLite file, a database on a throwaway
//! PostgreSQL cluster) live in the `retain-testkit` crate.

pub mod documents;
pub mod entity;
pub mod migration;

pub use documents::Documents;

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database};
pub use sea_orm::{DatabaseBackend, DatabaseConnection};
use sea_orm_migration::MigratorTrait;

/// The clock every table uses: microseconds since the Unix epoch (UTC), so
/// the same SQL compares times on SQLite and PostgreSQL.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Runs one statement with bind parameters (`$1`, `$2`, … on both
/// backends) on `conn`, a pool or a transaction; returns the rows affected.
pub async fn exec<C: ConnectionTrait>(
    conn: &C,
    sql: impl Into<String>,
    values: impl IntoIterator<Item = sea_orm::Value>,
) -> Result<u64, sea_orm::DbErr> {
    let backend = conn.get_database_backend();
    Ok(conn
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            backend, sql, values,
        ))
        .await?
        .rows_affected())
}

/// Most bind parameters one statement may carry on either backend
/// (PostgreSQL allows 65,535, SQLite 32,766); bulk writes chunk under it.
pub const MAX_BIND_PARAMS: usize = 30_000;

/// Inserts `rows` with `head` (`INSERT INTO t (cols) VALUES `) and `tail`
/// (`ON CONFLICT …`, `RETURNING …`), as many rows per statement as the
/// bind-parameter limit allows; returns the rows the statements returned.
pub async fn insert_rows<C: ConnectionTrait, T>(
    db: &C,
    head: &str,
    tail: &str,
    rows: &[T],
    values: impl Fn(&T) -> Vec<sea_orm::Value>,
) -> Result<Vec<sea_orm::QueryResult>, sea_orm::DbErr> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let cols = values(first).len();
    let mut out = Vec::new();
    for chunk in rows.chunks((MAX_BIND_PARAMS / cols).max(1)) {
        let sql = format!("{head}{}{tail}", values_placeholders(chunk.len(), cols, 1));
        let params: Vec<sea_orm::Value> = chunk.iter().flat_map(&values).collect();
        out.extend(
            db.query_all_raw(sea_orm::Statement::from_sql_and_values(
                db.get_database_backend(),
                sql,
                params,
            ))
            .await?,
        );
    }
    Ok(out)
}

/// A query with an `IN (…)` list over `items`, chunked under the
/// parameter limit: `sql(list)` is the statement around the list, whose
/// placeholders follow `fixed`'s; the chunks' rows are gathered.
pub async fn select_in<C: ConnectionTrait>(
    db: &C,
    sql: impl Fn(&str) -> String,
    fixed: &[sea_orm::Value],
    items: &[&str],
) -> Result<Vec<sea_orm::QueryResult>, sea_orm::DbErr> {
    let mut out = Vec::new();
    for chunk in items.chunks(MAX_BIND_PARAMS - fixed.len()) {
        let list = placeholder_list(chunk.len(), fixed.len() + 1);
        let mut params = fixed.to_vec();
        params.extend(chunk.iter().map(|i| sea_orm::Value::from(*i)));
        out.extend(
            db.query_all_raw(sea_orm::Statement::from_sql_and_values(
                db.get_database_backend(),
                sql(&list),
                params,
            ))
            .await?,
        );
    }
    Ok(out)
}

/// `$first,$first+1,…`: `n` placeholders for an `IN (…)` list.
pub fn placeholder_list(n: usize, first: usize) -> String {
    values_placeholders(1, n, first)
        .trim_start_matches('(')
        .trim_end_matches(')')
        .to_owned()
}

/// `($first, $first+1, …), (…)`: placeholders for a multi-row `VALUES` of
/// `rows` rows with `cols` columns, numbered from `first`.
pub fn values_placeholders(rows: usize, cols: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * cols * 6);
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push(',');
            }
            sql.push('$');
            sql.push_str(&(first + r * cols + c).to_string());
        }
        sql.push(')');
    }
    sql
}

/// Errors opening or migrating a database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names a database Retain does not support.
    #[error("database url must start with sqlite:// or postgres:// (got {0:?})")]
    UnsupportedUrl(String),
    /// The database refused or failed.
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// Migrations are pending: the schema is older than this binary.
    #[error(
        "the database schema is not up to date: {} migration(s) not applied (first: {}); run the binary's `migrate` command (the Kubernetes migration Job) first",
        .0.len(),
        .0.first().map_or("", String::as_str)
    )]
    NotMigrated(Vec<String>),
}

/// How to size and time the connection pool.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Maximum open connections. SQLite is always held to one writer
    /// connection: it serialises writes anyway, and one connection never
    /// meets `SQLITE_BUSY`.
    pub max_connections: u32,
    /// How long a caller waits for a free connection.
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

/// Which backend a URL names, or an error naming the URL.
pub fn backend_of(url: &str) -> Result<DatabaseBackend, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(DatabaseBackend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(DatabaseBackend::Postgres)
    } else {
        Err(StoreError::UnsupportedUrl(redact(url)))
    }
}

/// The URL with any password replaced by `***`, safe to log: the one in
/// its user information (`postgres://user:***@host/db`) and the values of
/// `password` and `sslpassword` in its query string.
pub fn redact(url: &str) -> String {
    // The user information ends at the last '@' of the authority (before
    // the first '/' after the scheme), wherever a '?' may stand in it.
    let scheme_end = url.find("://").map(|i| i + 3);
    let authority_end = scheme_end.map(|s| url[s..].find('/').map_or(url.len(), |i| s + i));
    let mut out = match (scheme_end, authority_end) {
        (Some(s), Some(e)) => match url[s..e].rfind('@') {
            Some(at) => {
                let creds = &url[s..s + at];
                match creds.find(':') {
                    Some(colon) => {
                        format!("{}{}:***{}", &url[..s], &creds[..colon], &url[s + at..e])
                    }
                    None => url[..e].to_owned(),
                }
            }
            None => url[..e].to_owned(),
        },
        _ => String::new(),
    };
    let rest = authority_end.map_or(url, |e| &url[e..]);
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    out.push_str(path);
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _))
                    if key.eq_ignore_ascii_case("password")
                        || key.eq_ignore_ascii_case("sslpassword") =>
                {
                    format!("{key}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// Opens a connection pool for `url` and applies Retain's per-backend
/// settings (SQLite: WAL journal, full fsync on commit, foreign keys).
pub async fn connect(url: &str, pool: &PoolOptions) -> Result<DatabaseConnection, StoreError> {
    let backend = backend_of(url)?;
    let max = match backend {
        DatabaseBackend::Sqlite => 1,
        _ => pool.max_connections.max(1),
    };
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max)
        .min_connections(0)
        .acquire_timeout(pool.acquire_timeout)
        .sqlx_logging(false);
    let db = Database::connect(options).await?;
    if backend == DatabaseBackend::Sqlite {
        // WAL lets readers proceed during a write; synchronous=FULL makes a
        // commit durable before it returns, as the product promises.
        db.execute_unprepared(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .await?;
    }
    tracing::debug!(url = %redact(url), ?backend, "database connected");
    Ok(db)
}

/// Applies every pending migration. A schema that already holds every
/// migration this binary knows is left as it is, even when a newer
/// release added more (sea-orm's own `up` refuses such a schema): rolling
/// back to the previous release reruns its migration Job harmlessly.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), StoreError> {
    if check_migrated(db).await.is_ok() {
        return Ok(());
    }
    migration::Migrator::up(db, None).await?;
    Ok(())
}

/// Fails with [`StoreError::NotMigrated`] when migrations this binary
/// knows are not applied, so a replica never serves on a schema older
/// than its code. Migrations a newer release applied are fine: they only
/// add, so the previous release's replicas keep starting during a rolling
/// upgrade (sea-orm's own pending check refuses such a schema).
pub async fn check_migrated(db: &DatabaseConnection) -> Result<(), StoreError> {
    let backend = db.get_database_backend();
    let exists = match backend {
        DatabaseBackend::Postgres => {
            "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() \
             AND tablename = 'seaql_migrations'"
        }
        _ => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'seaql_migrations'"
        }
    };
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(backend, exists))
        .await?;
    let table: i64 = row.map_or(Ok(0), |r| r.try_get_by_index(0))?;
    let mut applied = std::collections::HashSet::new();
    if table > 0 {
        for r in db
            .query_all_raw(sea_orm::Statement::from_string(
                backend,
                "SELECT version FROM seaql_migrations",
            ))
            .await?
        {
            applied.insert(r.try_get_by_index::<String>(0)?);
        }
    }
    let pending: Vec<String> = <migration::Migrator as MigratorTrait>::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .filter(|name| !applied.contains(name))
        .collect();
    if pending.is_empty() {
        Ok(())
    } else {
        Err(StoreError::NotMigrated(pending))
    }
}

/// A read-only transaction whose reads all see one snapshot: REPEATABLE
/// READ on PostgreSQL (whose default gives each statement its own); on
/// SQLite every transaction reads one snapshot already.
pub async fn snapshot(
    db: &DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
    use sea_orm::{AccessMode, IsolationLevel, TransactionTrait};
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await
        }
        _ => db.begin().await,
    }
}

/// Checks the database answers; the gRPC health status follows this.
pub async fn ping(db: &DatabaseConnection) -> Result<(), StoreError> {
    db.ping().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_pick_their_backend() {
        assert_eq!(
            backend_of("sqlite://retain.db?mode=rwc").ok(),
            Some(DatabaseBackend::Sqlite)
        );
        assert_eq!(
            backend_of("postgres://u:p@h/db").ok(),
            Some(DatabaseBackend::Postgres)
        );
        assert!(matches!(
            backend_of("mysql://u:secret@h/db"),
            Err(StoreError::UnsupportedUrl(u)) if u == "mysql://u:***@h/db"
        ));
    }

    #[test]
    fn placeholders_number_rows_and_columns() {
        assert_eq!(values_placeholders(2, 3, 2), "($2,$3,$4),($5,$6,$7)");
        assert_eq!(values_placeholders(0, 3, 1), "");
        assert_eq!(placeholder_list(3, 2), "$2,$3,$4");
    }

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://retain:s3cret@db:5432/retain"),
            "postgres://retain:***@db:5432/retain"
        );
        assert_eq!(redact("postgres://db/retain"), "postgres://db/retain");
        assert_eq!(
            redact("postgres://db/retain?user=retain&password=s3cret&sslmode=require"),
            "postgres://db/retain?user=retain&password=***&sslmode=require"
        );
        assert_eq!(
            redact("postgres://u:p@db/retain?SSLPASSWORD=k&application_name=x@y"),
            "postgres://u:***@db/retain?SSLPASSWORD=***&application_name=x@y"
        );
        assert_eq!(redact("sqlite://x.db?mode=rwc"), "sqlite://x.db?mode=rwc");
        assert_eq!(
            redact("postgres://u:pa?ss@h/db"),
            "postgres://u:***@h/db",
            "a '?' in the password"
        );
        assert_eq!(redact("not a url at all"), "not a url at all");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
