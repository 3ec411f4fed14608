//! The bus on PostgreSQL: array parameters for publishing, `SKIP LOCKED`
//! and a statement timeout for claiming.

use std::time::Duration;

use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, QueryResult, Statement,
    TransactionTrait,
};

use super::{Claim, Driver, claim_sql, claim_values, fold_clause};
use crate::message::OutgoingMessage;

/// The PostgreSQL driver.
#[derive(Debug)]
pub(crate) struct Postgres;

impl Driver for Postgres {
    /// One statement per round with array parameters (measured faster than
    /// a multi-row `VALUES`, and free of the bind-parameter limit).
    async fn publish_round<C: ConnectionTrait>(
        conn: &C,
        topic: &str,
        now: i64,
        round: &[&OutgoingMessage],
    ) -> Result<u64, DbErr> {
        // A text[] parameter cannot hold NULLs through sea-query, so "no
        // key" and "no label" travel as '' and become NULL again in SQL (an
        // empty key is no key; a subscription's label is never empty).
        let keys: Vec<String> = round
            .iter()
            .map(|m| m.key.clone().unwrap_or_default())
            .collect();
        let payloads: Vec<Vec<u8>> = round.iter().map(|m| m.payload.clone()).collect();
        let headers: Vec<String> = round.iter().map(|m| m.headers.encode()).collect();
        let labels: Vec<String> = round
            .iter()
            .map(|m| m.label.unwrap_or_default().to_owned())
            .collect();
        let sql = format!(
            "INSERT INTO bus_messages (topic, consumer_group, msg_key, coalesce_key, payload, \
             headers, state, attempts, available_at, coalesced, created_at) \
             SELECT s.topic, s.consumer_group, v.k, CASE WHEN s.coalesce THEN v.k ELSE NULL END, \
             v.p, v.h, 0, 0, $2, 1, $2 \
             FROM (SELECT NULLIF(k, '') AS k, p, h, NULLIF(l, '') AS l, n \
                   FROM UNNEST($3::text[], $4::bytea[], $5::text[], $6::text[]) \
                   WITH ORDINALITY AS u(k, p, h, l, n)) AS v \
             CROSS JOIN bus_subscriptions s WHERE s.topic = $1 \
             AND (s.label IS NULL OR s.label = v.l) ORDER BY v.n, s.consumer_group {}",
            fold_clause(&Self::concat("bus_messages.payload", "excluded.payload"))
        );
        let res = conn
            .execute_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                sql,
                [
                    topic.into(),
                    now.into(),
                    keys.into(),
                    payloads.into(),
                    headers.into(),
                    labels.into(),
                ],
            ))
            .await?;
        Ok(res.rows_affected())
    }

    /// `id = ANY(ARRAY(subquery))` makes the planner look the claimed ids up
    /// by primary key; `id IN (subquery)` was planned as a hash semi-join
    /// over a full scan of the table (twice as slow at 100k queued
    /// messages, measured with EXPLAIN ANALYZE). A runaway claim must not
    /// hold the xmin horizon (and with it vacuum and every ack behind it):
    /// the statement timeout cancels it, and the consumer retries.
    async fn claim(
        db: &DatabaseConnection,
        claim: &Claim<'_>,
        timeout: Duration,
    ) -> Result<Vec<QueryResult>, DbErr> {
        let stmt = Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            claim_sql("= ANY(ARRAY(", "))", " FOR UPDATE SKIP LOCKED"),
            claim_values(claim),
        );
        let tx = db.begin().await?;
        tx.execute_unprepared(&format!(
            "SET LOCAL statement_timeout = {}",
            timeout.as_millis().max(1)
        ))
        .await?;
        let rows = tx.query_all_raw(stmt).await?;
        tx.commit().await?;
        Ok(rows)
    }

    fn concat(a: &str, b: &str) -> String {
        format!("{a} || {b}")
    }
}
