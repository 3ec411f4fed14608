//! The error a caller gets when PostgreSQL goes away under a statement: a
//! real server's backend terminated mid-query is `UNAVAILABLE` (retry), as
//! the docs promise for an unreachable database — not `INTERNAL`.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use retain_runtime::Error;
use retain_testkit::TestDatabase;
use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use tonic::{Code, Status};

#[tokio::test]
async fn a_backend_terminated_under_a_statement_is_unavailable() {
    let test = "a_backend_terminated_under_a_statement_is_unavailable";
    let Some(db) = TestDatabase::postgres(test).await else {
        return;
    };
    let stmt = |sql: &str| Statement::from_string(sea_orm::DatabaseBackend::Postgres, sql);
    let tx = db.conn.begin().await.unwrap();
    let pid: i32 = tx
        .query_one_raw(stmt("SELECT pg_backend_pid()"))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    let sleeper = tokio::spawn(async move { tx.query_one_raw(stmt("SELECT pg_sleep(30)")).await });
    // Once the statement runs, its backend is terminated from another
    // connection, as a database restart or failover would.
    let running = format!(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = {pid} AND query LIKE '%pg_sleep(30)%'"
    );
    retain_testkit::eventually(
        "the sleep to run",
        std::time::Duration::from_secs(10),
        || async {
            let row = db
                .conn
                .query_one_raw(stmt(&running))
                .await
                .unwrap()
                .unwrap();
            (row.try_get_by_index::<i64>(0).unwrap() == 1).then_some(())
        },
    )
    .await;
    db.conn
        .execute_raw(stmt(&format!("SELECT pg_terminate_backend({pid})")))
        .await
        .unwrap();
    let err = sleeper
        .await
        .unwrap()
        .expect_err("the statement's connection is gone");
    let status: Status = Error::from(err).into();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}
