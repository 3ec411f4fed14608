//! Every statement the health service runs: its own tables
//! (`health_models`, `health_scores`, `health_current`; see the migration).

use prost::Message;
use retain_proto::v1;
use sea_orm::{ConnectionTrait, DbErr, Statement, Value};

/// A band as stored in `health_scores.band`, `health_current.band` and
/// `health_band_changes.to_band` (Red 1 … Thriving 4; 0 for none), from
/// its wire number.
fn band_code(wire: i32) -> Value {
    use retain_domain::health::Band;
    let code: i16 = match retain_proto::health::band_from_proto(wire) {
        None => 0,
        Some(Band::Red) => 1,
        Some(Band::Yellow) => 2,
        Some(Band::Green) => 3,
        Some(Band::Thriving) => 4,
    };
    Value::SmallInt(Some(code))
}

/// A rescoring job's state, as stored in `health_jobs.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for a consumer.
    Queued,
    /// Rescoring.
    Running,
    /// Every account rescored.
    Done,
}

impl JobState {
    /// The stored number.
    pub const fn code(self) -> i16 {
        match self {
            Self::Queued => 1,
            Self::Running => 2,
            Self::Done => 3,
        }
    }

    /// The state stored as `code` (an unknown number reads as done: it
    /// is not pending, and a client is not told a made-up state).
    pub fn from_code(code: i16) -> Self {
        match code {
            1 => Self::Queued,
            2 => Self::Running,
            _ => Self::Done,
        }
    }
}

/// "Queued or running": the predicate of the partial unique index
/// `health_jobs (tenant_id, segment) WHERE state < 3` (migration m0013),
/// which keeps one pending job per tenant and segment; `ON CONFLICT` must
/// name it as written there.
const UNFINISHED: &str = "state < 3";

fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, DbErr> {
    M::decode(bytes).map_err(|e| DbErr::Custom(format!("a stored {what} does not decode: {e}")))
}

/// The scoring models, versioned per tenant (`health_models`).
const MODELS: retain_store::Documents = retain_store::Documents::new("health_models", "model");

/// The latest stored model of `segment` ('' = the tenant default).
pub async fn latest_model<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    segment: &str,
) -> Result<Option<v1::ScoringModel>, DbErr> {
    MODELS.latest(db, tenant, segment).await
}

/// One stored model version of the tenant.
pub async fn model_version<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    version: i64,
) -> Result<Option<v1::ScoringModel>, DbErr> {
    MODELS.version(db, tenant, version).await
}

/// Stores `model` as the tenant's next version, stamped with it and
/// `now`; `None` when concurrent puts kept taking the version first.
pub async fn put_model<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    model: &v1::ScoringModel,
    now: i64,
) -> Result<Option<v1::ScoringModel>, DbErr> {
    let stamped = |version| v1::ScoringModel {
        version,
        created_at: Some(retain_proto::convert::from_micros(now)),
        ..model.clone()
    };
    MODELS.put(db, (tenant, &model.segment), stamped, now).await
}

/// The account's current score and the `as_of` of the snapshot it scored.
pub async fn current<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    account: &str,
) -> Result<Option<Current>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT as_of, record, live_scored FROM health_current \
             WHERE tenant_id = $1 AND account_id = $2",
            [tenant.into(), account.into()],
        ))
        .await?;
    row.map(|r| {
        Ok(Current {
            as_of: r.try_get_by_index(0)?,
            score: decode(&r.try_get_by_index::<Vec<u8>>(1)?, "health score")?,
            live_scored: r.try_get_by_index(2)?,
        })
    })
    .transpose()
}

/// An account's current score.
#[derive(Debug, Clone)]
pub struct Current {
    /// The scored snapshot's `as_of`, µs.
    pub as_of: i64,
    /// The score.
    pub score: v1::HealthScore,
    /// Whether a LIVE snapshot of the account has been scored (and its
    /// band acted on) — false while every score came from BACKFILL.
    pub live_scored: bool,
}

/// A score to append.
pub struct NewScore<'a> {
    /// The account's segment ('' for none).
    pub segment: &'a str,
    /// The account's CSM owner ('' for none).
    pub csm_owner: &'a str,
    /// The snapshot's `as_of`, µs: with the model version, the score's key.
    pub as_of: i64,
    /// The first score, or the band or the model version differs from the
    /// previous score's.
    pub is_change: bool,
    /// Scored from a LIVE snapshot (the account's band has been acted on).
    pub live: bool,
    /// The score.
    pub record: &'a v1::HealthScore,
    /// When it was computed, µs.
    pub now: i64,
}

/// Rows one multi-row statement writes (11 parameters at most: well inside
/// SQLite's and PostgreSQL's limits).
const ROWS_PER_STATEMENT: usize = 500;

/// Appends scores of distinct accounts to their histories and makes each
/// current — two statements per 500 scores. Returns, per score, whether
/// it was appended (`false`: this snapshot already has a score of this
/// model version, and nothing was written for it).
pub async fn append<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    scores: &[NewScore<'_>],
) -> Result<Vec<bool>, DbErr> {
    let mut fresh = Vec::with_capacity(scores.len());
    for chunk in scores.chunks(ROWS_PER_STATEMENT) {
        fresh.extend(append_chunk(db, tenant, chunk).await?);
    }
    Ok(fresh)
}

async fn append_chunk<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    scores: &[NewScore<'_>],
) -> Result<Vec<bool>, DbErr> {
    let backend = db.get_database_backend();
    let band = |s: &NewScore<'_>| band_code(s.record.band);
    let encoded: Vec<Vec<u8>> = scores.iter().map(|s| s.record.encode_to_vec()).collect();

    // 1. The history rows; RETURNING names the ones that were new.
    let mut values: Vec<Value> = vec![tenant.into()];
    let mut rows = Vec::with_capacity(scores.len());
    for (s, bytes) in scores.iter().zip(&encoded) {
        let at = values.len();
        rows.push(format!(
            "($1, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
            at + 1,
            at + 2,
            at + 3,
            at + 4,
            at + 5,
            at + 6,
            at + 7,
            at + 8
        ));
        values.extend([
            s.record.account_id.clone().into(),
            s.as_of.into(),
            s.record.score.into(),
            band(s),
            s.record.model_version.into(),
            s.is_change.into(),
            bytes.clone().into(),
            s.now.into(),
        ]);
    }
    let inserted = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO health_scores (tenant_id, account_id, as_of, score, band, \
                 model_version, is_change, record, scored_at) VALUES {} \
                 ON CONFLICT (tenant_id, account_id, as_of, model_version) DO NOTHING \
                 RETURNING account_id",
                rows.join(", ")
            ),
            values,
        ))
        .await?;
    let new: std::collections::HashSet<String> = inserted
        .iter()
        .map(|r| r.try_get_by_index(0))
        .collect::<Result<_, _>>()?;
    let fresh: Vec<bool> = scores
        .iter()
        .map(|s| new.contains(&s.record.account_id))
        .collect();
    let appended: Vec<(&NewScore<'_>, &Vec<u8>)> = scores
        .iter()
        .zip(&encoded)
        .zip(&fresh)
        .filter(|(_, f)| **f)
        .map(|(x, _)| x)
        .collect();
    if appended.is_empty() {
        return Ok(fresh);
    }

    // 2. The current scores: a newer snapshot, or the same one scored by a
    // newer model version, replaces the one there.
    let mut values: Vec<Value> = vec![tenant.into()];
    let mut rows = Vec::with_capacity(appended.len());
    for (s, bytes) in &appended {
        let at = values.len();
        rows.push(format!(
            "($1, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
            at + 1,
            at + 2,
            at + 3,
            at + 4,
            at + 5,
            at + 6,
            at + 7,
            at + 8,
            at + 9,
            at + 10
        ));
        values.extend([
            s.record.account_id.clone().into(),
            s.segment.into(),
            s.csm_owner.into(),
            s.as_of.into(),
            s.record.model_version.into(),
            s.record.score.into(),
            s.record.delta.unwrap_or(0.0).into(),
            band(s),
            (*bytes).clone().into(),
            s.live.into(),
        ]);
    }
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        format!(
            "INSERT INTO health_current (tenant_id, account_id, segment, csm_owner, as_of, \
             model_version, score, score_change, band, record, live_scored) VALUES {} \
             ON CONFLICT (tenant_id, account_id) DO UPDATE SET segment = excluded.segment, \
             csm_owner = excluded.csm_owner, as_of = excluded.as_of, \
             model_version = excluded.model_version, score = excluded.score, \
             score_change = excluded.score_change, band = excluded.band, record = excluded.record, \
             live_scored = health_current.live_scored OR excluded.live_scored \
             WHERE health_current.as_of < excluded.as_of OR (health_current.as_of = excluded.as_of \
             AND health_current.model_version < excluded.model_version)",
            rows.join(", ")
        ),
        values,
    ))
    .await?;
    Ok(fresh)
}

/// Records announced band changes (with their accounts' segments) under
/// the tenant's next watch numbers, in order. The numbers come from
/// `health_watch_heads`, whose row stays locked until the caller commits,
/// so they become visible in order. Two statements whatever the count.
pub async fn record_changes<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    changes: &[(&str, &v1::HealthBandChanged)],
    now: i64,
) -> Result<(), DbErr> {
    if changes.is_empty() {
        return Ok(());
    }
    let n = i64::try_from(changes.len()).unwrap_or(i64::MAX);
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "INSERT INTO health_watch_heads (tenant_id, seq) VALUES ($1, $2) \
             ON CONFLICT (tenant_id) DO UPDATE SET seq = health_watch_heads.seq + $2 \
             RETURNING seq",
            [tenant.into(), n.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("no watch number returned".into()))?;
    let last: i64 = row.try_get_by_index(0)?;
    for (k, chunk) in changes.chunks(ROWS_PER_STATEMENT).enumerate() {
        let mut values: Vec<Value> = vec![tenant.into(), now.into()];
        let mut rows = Vec::with_capacity(chunk.len());
        for (j, (segment, event)) in chunk.iter().enumerate() {
            let seq = last - n + 1 + (k * ROWS_PER_STATEMENT + j) as i64;
            let at = values.len();
            rows.push(format!(
                "($1, ${}, ${}, ${}, ${}, ${}, $2)",
                at + 1,
                at + 2,
                at + 3,
                at + 4,
                at + 5
            ));
            values.extend([
                seq.into(),
                event.account_id.clone().into(),
                (*segment).into(),
                band_code(event.to_band),
                event.encode_to_vec().into(),
            ]);
        }
        db.execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!(
                "INSERT INTO health_band_changes \
                 (tenant_id, seq, account_id, segment, to_band, event, created_at) VALUES {}",
                rows.join(", ")
            ),
            values,
        ))
        .await?;
    }
    Ok(())
}

/// Band changes of the tenant after watch number `after`, in order, at most
/// `limit`: (number, segment, event).
pub async fn changes_after<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    after: i64,
    limit: u64,
) -> Result<Vec<(i64, String, v1::HealthBandChanged)>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT seq, segment, event FROM health_band_changes \
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
                decode(&r.try_get_by_index::<Vec<u8>>(2)?, "band change")?,
            ))
        })
        .collect()
}

/// The tenant's latest watch number (0 before the first change).
pub async fn watch_head<C: ConnectionTrait>(db: &C, tenant: &str) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT seq FROM health_watch_heads WHERE tenant_id = $1",
            [tenant.into()],
        ))
        .await?;
    row.map_or(Ok(0), |r| r.try_get_by_index(0))
}

/// The order of a ListHealth page: by account, or by a sort key with the
/// account breaking ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By account id.
    Account,
    /// By `column`, ascending (`descending` false) or descending; ties by
    /// account id in the same direction, so one index serves both.
    By {
        /// `score` or `score_change`.
        column: &'static str,
        /// Highest first.
        descending: bool,
    },
}

/// Where a ListHealth page starts: after this account (by account), or
/// after this (key, account) in the order.
#[derive(Debug, Clone, PartialEq)]
pub enum After {
    /// The first page.
    Start,
    /// After this account.
    Account(String),
    /// After this key and account.
    Key(f64, String),
}

/// What a ListHealth page keeps: bands (all when empty), a segment and a
/// CSM owner (any when `None`).
#[derive(Debug, Default)]
pub struct ListFilter<'a> {
    /// Only these bands.
    pub bands: &'a [i32],
    /// Only this segment.
    pub segment: Option<&'a str>,
    /// Only this CSM owner.
    pub csm_owner: Option<&'a str>,
}

/// A page of current scores in `order` after `after`, kept by `filter`,
/// with each score's sort key.
pub async fn list<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    filter: &ListFilter<'_>,
    (order, after): (Order, &After),
    limit: u64,
) -> Result<Vec<(f64, v1::HealthScore)>, DbErr> {
    let key = match order {
        // Unused: any double column will do.
        Order::Account => "score",
        Order::By { column, .. } => column,
    };
    let mut sql = format!("SELECT {key}, record FROM health_current WHERE tenant_id = $1");
    let mut values: Vec<Value> = vec![tenant.into()];
    for (column, wanted) in [("segment", filter.segment), ("csm_owner", filter.csm_owner)] {
        if let Some(wanted) = wanted {
            values.push(wanted.into());
            sql.push_str(&format!(" AND {column} = ${}", values.len()));
        }
    }
    if !filter.bands.is_empty() {
        let mut list = Vec::new();
        for b in filter.bands {
            values.push(band_code(*b));
            list.push(format!("${}", values.len()));
        }
        sql.push_str(&format!(" AND band IN ({})", list.join(", ")));
    }
    let (cmp, dir) = match order {
        Order::By {
            descending: true, ..
        } => ("<", " DESC"),
        _ => (">", ""),
    };
    match after {
        After::Start => {}
        After::Account(account) => {
            values.push(account.clone().into());
            sql.push_str(&format!(" AND account_id > ${}", values.len()));
        }
        After::Key(k, account) => {
            values.push((*k).into());
            values.push(account.clone().into());
            let n = values.len();
            sql.push_str(&format!(
                " AND ({key}, account_id) {cmp} (${}, ${n})",
                n - 1
            ));
        }
    }
    values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
    sql.push_str(&match order {
        Order::Account => format!(" ORDER BY account_id LIMIT ${}", values.len()),
        Order::By { .. } => format!(
            " ORDER BY {key}{dir}, account_id{dir} LIMIT ${}",
            values.len()
        ),
    });
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get_by_index(0)?,
                decode(&r.try_get_by_index::<Vec<u8>>(1)?, "health score")?,
            ))
        })
        .collect()
}

/// A microsecond day.
const DAY_MICROS: i64 = 86_400_000_000;

/// A page of an account's history, newest first, of scores with `as_of` in
/// `[from, to)` before `before` (as_of, model version): the last score of
/// each UTC day and every change of band or model version. "Last of its
/// day" is read here, not stored, so appending a score never rewrites an
/// older one: no later score (a later `as_of`, or the same snapshot scored
/// by a later version) in the rest of its day.
pub async fn history<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    account: &str,
    (from, to): (i64, i64),
    before: (i64, i64),
    limit: u64,
) -> Result<Vec<((i64, i64), v1::HealthScore)>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!(
                "SELECT h.as_of, h.model_version, h.record FROM health_scores h \
                 WHERE h.tenant_id = $1 AND h.account_id = $2 AND h.as_of >= $3 AND h.as_of < $4 \
                 AND (h.as_of, h.model_version) < ($5, $6) \
                 AND (h.is_change OR NOT EXISTS (SELECT 1 FROM health_scores n \
                   WHERE n.tenant_id = h.tenant_id AND n.account_id = h.account_id \
                   AND n.as_of >= h.as_of AND n.as_of < h.as_of - h.as_of % {DAY_MICROS} + {DAY_MICROS} \
                   AND (n.as_of > h.as_of OR n.model_version > h.model_version))) \
                 ORDER BY h.as_of DESC, h.model_version DESC LIMIT $7"
            ),
            [
                tenant.into(),
                account.into(),
                from.into(),
                to.into(),
                before.0.into(),
                before.1.into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                (r.try_get_by_index(0)?, r.try_get_by_index(1)?),
                decode(&r.try_get_by_index::<Vec<u8>>(2)?, "health score")?,
            ))
        })
        .collect()
}

/// A rescoring job as stored.
pub struct JobRow {
    /// Segment ('' = all).
    pub segment: String,
    /// Queued, running or done.
    pub state: JobState,
    /// Accounts to rescore.
    pub total: i64,
    /// Accounts done.
    pub done: i64,
    /// Band changes caused.
    pub band_changes: i64,
    /// Queued at, µs.
    pub created_at: i64,
    /// Last progress, µs.
    pub updated_at: i64,
}

/// Accounts of the tenant with a score (of `segment` when given).
pub async fn count_scored<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    segment: Option<&str>,
) -> Result<i64, DbErr> {
    let (sql, values): (&str, Vec<Value>) = match segment {
        Some(s) => (
            "SELECT COUNT(*) FROM health_current WHERE tenant_id = $1 AND segment = $2",
            vec![tenant.into(), s.into()],
        ),
        None => (
            "SELECT COUNT(*) FROM health_current WHERE tenant_id = $1",
            vec![tenant.into()],
        ),
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    row.map_or(Ok(0), |r| r.try_get_by_index(0))
}

/// Queues a rescoring job; `false` (nothing written) when the tenant has
/// one of `segment` pending or running already.
pub async fn create_job<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    job_id: &str,
    segment: &str,
    total: i64,
    now: i64,
) -> Result<bool, DbErr> {
    Ok(retain_store::exec(
        db,
        format!(
            "INSERT INTO health_jobs (tenant_id, job_id, segment, state, total, done, \
             band_changes, cursor, lease_owner, lease_until, created_at, updated_at, queued) \
             VALUES ($1, $2, $3, $6, $4, 0, 0, '', NULL, 0, $5, $5, TRUE) \
             ON CONFLICT (tenant_id, segment) WHERE {UNFINISHED} DO NOTHING"
        ),
        [
            tenant.into(),
            job_id.into(),
            segment.into(),
            total.into(),
            now.into(),
            Value::SmallInt(Some(JobState::Queued.code())),
        ],
    )
    .await?
        == 1)
}

/// The tenant's pending or running job of `segment`: (id, accounts it
/// rescores).
pub async fn pending_job<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    segment: &str,
) -> Result<Option<(String, i64)>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!(
                "SELECT job_id, total FROM health_jobs WHERE tenant_id = $1 AND segment = $2 \
                 AND {UNFINISHED}"
            ),
            [tenant.into(), segment.into()],
        ))
        .await?;
    row.map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
        .transpose()
}

/// Unfinished jobs without a bus message (queued before jobs were work on
/// the bus): (tenant, job id, segment).
pub async fn unqueued_jobs<C: ConnectionTrait>(
    db: &C,
) -> Result<Vec<(String, String, String)>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            format!(
                "SELECT tenant_id, job_id, segment FROM health_jobs WHERE {UNFINISHED} \
                 AND NOT queued ORDER BY created_at"
            ),
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get_by_index(0)?,
                r.try_get_by_index(1)?,
                r.try_get_by_index(2)?,
            ))
        })
        .collect()
}

/// Marks every unfinished job as having its bus message.
pub async fn mark_queued<C: ConnectionTrait>(db: &C) -> Result<u64, DbErr> {
    retain_store::exec(
        db,
        format!("UPDATE health_jobs SET queued = TRUE WHERE {UNFINISHED} AND NOT queued"),
        [],
    )
    .await
}

/// One job of the tenant.
pub async fn job<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    job_id: &str,
) -> Result<Option<JobRow>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT segment, state, total, done, band_changes, created_at, updated_at \
             FROM health_jobs WHERE tenant_id = $1 AND job_id = $2",
            [tenant.into(), job_id.into()],
        ))
        .await?;
    row.map(|r| {
        Ok(JobRow {
            segment: r.try_get_by_index(0)?,
            state: JobState::from_code(r.try_get_by_index(1)?),
            total: r.try_get_by_index(2)?,
            done: r.try_get_by_index(3)?,
            band_changes: r.try_get_by_index(4)?,
            created_at: r.try_get_by_index(5)?,
            updated_at: r.try_get_by_index(6)?,
        })
    })
    .transpose()
}

/// Where an unfinished job got to (the last account it rescored, '' at
/// first); `None` when it is done or unknown.
pub async fn job_cursor<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    job_id: &str,
) -> Result<Option<String>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            format!(
                "SELECT cursor FROM health_jobs WHERE tenant_id = $1 AND job_id = $2 \
                 AND {UNFINISHED}"
            ),
            [tenant.into(), job_id.into()],
        ))
        .await?;
    row.map(|r| r.try_get_by_index(0)).transpose()
}

/// One round of a job's progress.
#[derive(Debug)]
pub struct Progress<'a> {
    /// Accounts the round read.
    pub done: i64,
    /// Of those, how many changed band.
    pub band_changes: i64,
    /// The last account of the round.
    pub cursor: &'a str,
    /// No account is left.
    pub finished: bool,
}

/// Records a round of a job's progress (and its end): the job is running,
/// or done when `finished`.
pub async fn job_progress<C: ConnectionTrait>(
    db: &C,
    (tenant, job_id): (&str, &str),
    p: &Progress<'_>,
    now: i64,
) -> Result<(), DbErr> {
    retain_store::exec(
        db,
        format!(
            "UPDATE health_jobs SET done = done + $1, band_changes = band_changes + $2, \
             cursor = $3, state = $4, updated_at = $5 WHERE tenant_id = $6 AND job_id = $7 \
             AND {UNFINISHED}"
        ),
        [
            p.done.into(),
            p.band_changes.into(),
            p.cursor.into(),
            Value::SmallInt(Some(if p.finished {
                JobState::Done.code()
            } else {
                JobState::Running.code()
            })),
            now.into(),
            tenant.into(),
            job_id.into(),
        ],
    )
    .await
    .map(|_| ())
}

/// The ends of the next `pages` pages of `page` scored accounts after
/// `after` in account order (of `segment` when not empty): each page's last
/// account and its size (only the last page may be short).
pub async fn page_ends<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    segment: &str,
    after: &str,
    page: u64,
    pages: u64,
) -> Result<Vec<(String, u64)>, DbErr> {
    let limit = i64::try_from(page * pages).unwrap_or(i64::MAX);
    let (sql, values): (&str, Vec<Value>) = if segment.is_empty() {
        (
            "SELECT account_id FROM health_current WHERE tenant_id = $1 \
             AND account_id > $2 ORDER BY account_id LIMIT $3",
            vec![tenant.into(), after.into(), limit.into()],
        )
    } else {
        (
            "SELECT account_id FROM health_current WHERE tenant_id = $1 \
             AND account_id > $2 AND segment = $3 ORDER BY account_id LIMIT $4",
            vec![tenant.into(), after.into(), segment.into(), limit.into()],
        )
    };
    let ids: Vec<String> = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await?
        .iter()
        .map(|r| r.try_get_by_index(0))
        .collect::<Result<_, _>>()?;
    Ok(ids
        .chunks(usize::try_from(page).unwrap_or(usize::MAX).max(1))
        .filter_map(|c| Some((c.last()?.clone(), c.len() as u64)))
        .collect())
}

/// At most `limit` current scores of accounts after `after` in account
/// order, up to `through` when given (of `segment` when not empty):
/// (account, score).
pub async fn current_page<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    segment: &str,
    (after, through): (&str, Option<&str>),
    limit: u64,
) -> Result<Vec<(String, v1::HealthScore)>, DbErr> {
    let mut sql = String::from(
        "SELECT account_id, record FROM health_current WHERE tenant_id = $1 AND account_id > $2",
    );
    let mut values: Vec<Value> = vec![tenant.into(), after.into()];
    if let Some(through) = through {
        values.push(through.into());
        sql.push_str(&format!(" AND account_id <= ${}", values.len()));
    }
    if !segment.is_empty() {
        values.push(segment.into());
        sql.push_str(&format!(" AND segment = ${}", values.len()));
    }
    values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
    sql.push_str(&format!(" ORDER BY account_id LIMIT ${}", values.len()));
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get_by_index(0)?,
                decode(&r.try_get_by_index::<Vec<u8>>(1)?, "health score")?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unfinished_predicate_is_queued_or_running() {
        assert_eq!(UNFINISHED, format!("state < {}", JobState::Done.code()));
        for s in [JobState::Queued, JobState::Running, JobState::Done] {
            assert_eq!(JobState::from_code(s.code()), s);
            assert_eq!(s.code() < JobState::Done.code(), s != JobState::Done);
        }
    }

    #[test]
    fn bands_are_stored_by_their_own_numbers() {
        let code = |b: v1::HealthBand| match band_code(b as i32) {
            Value::SmallInt(Some(c)) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(v1::HealthBand::Unspecified), 0);
        assert_eq!(code(v1::HealthBand::Red), 1);
        assert_eq!(code(v1::HealthBand::Thriving), 4);
        assert_eq!(band_code(99), Value::SmallInt(Some(0)));
    }
}
