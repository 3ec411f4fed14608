//! Versioned documents: a tenant's configuration that is never edited in
//! place (health's scoring models, notification's routing policies). Each
//! put is the tenant's next version (1, 2, …, one sequence per tenant
//! whatever the segment); the latest of a segment is in force.
//!
//! A table of documents has the columns `(tenant_id, version, segment,
//! <document>, created_at)` with `(tenant_id, version)` unique; a document
//! is a protobuf message that carries its own version, stored encoded.

use prost::Message;
use sea_orm::{ConnectionTrait, DbErr, Statement};

/// Puts that lose the race for a version this many times in a row give up
/// (the caller answers UNAVAILABLE: retry).
pub const PUT_TRIES: usize = 10;

/// One table of versioned documents.
#[derive(Debug, Clone, Copy)]
pub struct Documents {
    table: &'static str,
    column: &'static str,
}

impl Documents {
    /// The documents of `table`, kept in its column `column`.
    pub const fn new(table: &'static str, column: &'static str) -> Self {
        Self { table, column }
    }

    /// The latest document of `segment` ('' = the tenant default).
    pub async fn latest<M: Message + Default, C: ConnectionTrait>(
        &self,
        db: &C,
        tenant: &str,
        segment: &str,
    ) -> Result<Option<M>, DbErr> {
        let sql = format!(
            "SELECT {} FROM {} WHERE tenant_id = $1 AND segment = $2 \
             ORDER BY version DESC LIMIT 1",
            self.column, self.table
        );
        self.one(db, sql, [tenant.into(), segment.into()]).await
    }

    /// Version `version` of the tenant's documents.
    pub async fn version<M: Message + Default, C: ConnectionTrait>(
        &self,
        db: &C,
        tenant: &str,
        version: i64,
    ) -> Result<Option<M>, DbErr> {
        let sql = format!(
            "SELECT {} FROM {} WHERE tenant_id = $1 AND version = $2",
            self.column, self.table
        );
        self.one(db, sql, [tenant.into(), version.into()]).await
    }

    /// Stores the document `stamp(version)` makes (the document carrying
    /// that version) as the tenant's next version of `segment` and returns
    /// it; `None` when [`PUT_TRIES`] concurrent puts in a row took the
    /// version first. Each try is one read and one insert that either wins
    /// the version or writes nothing, so no transaction is held.
    pub async fn put<M: Message, C: ConnectionTrait>(
        &self,
        db: &C,
        (tenant, segment): (&str, &str),
        stamp: impl Fn(i64) -> M,
        now: i64,
    ) -> Result<Option<M>, DbErr> {
        let max = format!(
            "SELECT COALESCE(MAX(version), 0) FROM {} WHERE tenant_id = $1",
            self.table
        );
        let insert = format!(
            "INSERT INTO {} (tenant_id, version, segment, {}, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, version) DO NOTHING",
            self.table, self.column
        );
        for _ in 0..PUT_TRIES {
            let row = db
                .query_one_raw(Statement::from_sql_and_values(
                    db.get_database_backend(),
                    max.as_str(),
                    [tenant.into()],
                ))
                .await?;
            let version = row.map_or(Ok(0), |r| r.try_get_by_index::<i64>(0))? + 1;
            let document = stamp(version);
            let values = [
                tenant.into(),
                version.into(),
                segment.into(),
                document.encode_to_vec().into(),
                now.into(),
            ];
            if crate::exec(db, insert.as_str(), values).await? == 1 {
                return Ok(Some(document));
            }
        }
        Ok(None)
    }

    async fn one<M: Message + Default, C: ConnectionTrait>(
        &self,
        db: &C,
        sql: String,
        values: [sea_orm::Value; 2],
    ) -> Result<Option<M>, DbErr> {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                sql,
                values,
            ))
            .await?;
        let Some(row) = row else { return Ok(None) };
        let bytes: Vec<u8> = row.try_get_by_index(0)?;
        M::decode(bytes.as_slice()).map(Some).map_err(|e| {
            DbErr::Custom(format!(
                "a stored document of {} does not decode: {e}",
                self.table
            ))
        })
    }
}
