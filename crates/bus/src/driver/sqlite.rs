//! The bus on SQLite: multi-row `VALUES` for publishing (one writer
//! connection, so no row locking is needed to claim).

use std::time::Duration;

use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, QueryResult, Statement, Value,
};

use super::{Claim, Driver, claim_sql, claim_values, fold_clause};
use crate::message::{MAX_PARAMS, OutgoingMessage};

/// The SQLite driver.
#[derive(Debug)]
pub(crate) struct Sqlite;

impl Driver for Sqlite {
    async fn publish_round<C: ConnectionTrait>(
        conn: &C,
        topic: &str,
        now: i64,
        round: &[&OutgoingMessage],
    ) -> Result<u64, DbErr> {
        let mut written = 0;
        // Four parameters per message beside the topic and the time.
        for chunk in round.chunks((MAX_PARAMS - 2) / 4) {
            let mut values: Vec<Value> = Vec::with_capacity(2 + chunk.len() * 4);
            values.push(topic.into());
            values.push(now.into());
            for m in chunk {
                values.push(m.key.clone().into());
                values.push(m.payload.clone().into());
                values.push(m.headers.encode().into());
                values.push(m.label.map(str::to_owned).into());
            }
            let sql = format!(
                "INSERT INTO bus_messages (topic, consumer_group, msg_key, coalesce_key, payload, \
                 headers, state, attempts, available_at, coalesced, created_at) \
                 SELECT s.topic, s.consumer_group, v.column1, \
                 CASE WHEN s.coalesce THEN v.column1 ELSE NULL END, v.column2, v.column3, \
                 0, 0, $2, 1, $2 FROM (VALUES {}) AS v \
                 CROSS JOIN bus_subscriptions s WHERE s.topic = $1 \
                 AND (s.label IS NULL OR s.label = v.column4) {}",
                retain_store::values_placeholders(chunk.len(), 4, 3),
                fold_clause(&Self::concat("bus_messages.payload", "excluded.payload"))
            );
            written += conn
                .execute_raw(Statement::from_sql_and_values(
                    DatabaseBackend::Sqlite,
                    sql,
                    values,
                ))
                .await?
                .rows_affected();
        }
        Ok(written)
    }

    /// One connection writes, so the claim needs no row locks; SQLite has
    /// no statement timeout, and its one writer cannot pin a horizon.
    async fn claim(
        db: &DatabaseConnection,
        claim: &Claim<'_>,
        _timeout: Duration,
    ) -> Result<Vec<QueryResult>, DbErr> {
        db.query_all_raw(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            claim_sql("IN (", ")", ""),
            claim_values(claim),
        ))
        .await
    }

    /// `||` yields text in SQLite; the cast keeps the bytes a blob.
    fn concat(a: &str, b: &str) -> String {
        format!("CAST({a} || {b} AS BLOB)")
    }
}
