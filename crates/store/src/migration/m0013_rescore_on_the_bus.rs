//! Rescoring jobs are work on the bus (topic `health.rescore`), no longer
//! a lease queue of their own.
//!
//! `health_jobs` keeps each job's progress (what `GetRescoreJob` reads);
//! its `lease_owner`/`lease_until` columns are no longer used: the bus
//! holds the lease, the retries and the dead letters. One job per tenant
//! and segment may be pending or running at a time (a unique index on the
//! unfinished ones): `RescoreAll` repeated while one waits returns its id.
//! Duplicates queued before this migration are folded into the newest,
//! which rescores everything they would have. `queued` says a job's bus
//! message exists; health publishes one for every unfinished job without
//! it when it starts (the jobs queued before this migration).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "UPDATE health_jobs SET state = 3 WHERE state < 3 AND EXISTS (\
               SELECT 1 FROM health_jobs n WHERE n.tenant_id = health_jobs.tenant_id \
               AND n.segment = health_jobs.segment AND n.state < 3 \
               AND (n.created_at > health_jobs.created_at OR (n.created_at = health_jobs.created_at \
                    AND n.job_id > health_jobs.job_id)))",
        )
        .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX health_jobs_one_pending ON health_jobs (tenant_id, segment) \
             WHERE state < 3",
        )
        .await?;
        db.execute_unprepared(
            "ALTER TABLE health_jobs ADD COLUMN queued BOOLEAN NOT NULL DEFAULT FALSE",
        )
        .await?;
        super::subscribe(db, "health.rescore", "health", 10).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        super::unsubscribe(db, "health.rescore", "health").await?;
        db.execute_unprepared("ALTER TABLE health_jobs DROP COLUMN queued")
            .await?;
        db.execute_unprepared("DROP INDEX health_jobs_one_pending")
            .await?;
        Ok(())
    }
}
