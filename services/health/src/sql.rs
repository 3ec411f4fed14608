//! Every statement the health service runs: its own tables
//! (`health_models`, `health_scores`, `health_current`; see the migration).

use prost::Message;
use retain_proto::v1;
use sea_orm::{ConnectionTrait, DbErr, Statement, Value};

fn decode<M: Message + Default>(bytes: &[u8], what: &str) -> Result<M, DbErr> {
    M::decode(bytes).map_err(|e| DbErr::Custom(format!("a stored {what} does not decode: {e}")))
}

/// The latest stored model of `segment` ('' = the tenant default).
pub async fn latest_model<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    segment: &str,
) -> Result<Option<v1::ScoringModel>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT model FROM health_models WHERE tenant_id = $1 AND segment = $2 \
             ORDER BY version DESC LIMIT 1",
            [tenant.into(), segment.into()],
        ))
        .await?;
    row.map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?, "scoring model"))
        .transpose()
}

/// One stored model version of the tenant.
pub async fn model_version<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    version: i64,
) -> Result<Option<v1::ScoringModel>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT model FROM health_models WHERE tenant_id = $1 AND version = $2",
            [tenant.into(), version.into()],
        ))
        .await?;
    row.map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?, "scoring model"))
        .transpose()
}

/// The tenant's highest model version (0 before the first).
pub async fn max_version<C: ConnectionTrait>(db: &C, tenant: &str) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT COALESCE(MAX(version), 0) FROM health_models WHERE tenant_id = $1",
            [tenant.into()],
        ))
        .await?;
    row.map_or(Ok(0), |r| r.try_get_by_index(0))
}

/// Stores a model version; `false` when the version was taken meanwhile.
pub async fn insert_model<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    model: &v1::ScoringModel,
    now: i64,
) -> Result<bool, DbErr> {
    Ok(retain_store::exec(
        db,
        "INSERT INTO health_models (tenant_id, version, segment, model, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, version) DO NOTHING",
        [
            tenant.into(),
            model.version.into(),
            model.segment.clone().into(),
            model.encode_to_vec().into(),
            now.into(),
        ],
    )
    .await?
        == 1)
}

/// The account's current score and the `as_of` of the snapshot it scored.
pub async fn current<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    account: &str,
) -> Result<Option<(i64, v1::HealthScore)>, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT as_of, record FROM health_current WHERE tenant_id = $1 AND account_id = $2",
            [tenant.into(), account.into()],
        ))
        .await?;
    row.map(|r| {
        Ok((
            r.try_get_by_index(0)?,
            decode(&r.try_get_by_index::<Vec<u8>>(1)?, "health score")?,
        ))
    })
    .transpose()
}

/// A score to append.
pub struct NewScore<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// The account's segment ('' for none).
    pub segment: &'a str,
    /// The snapshot's `as_of`, µs: the score's key.
    pub as_of: i64,
    /// The band or the model version differs from the previous score's.
    pub is_change: bool,
    /// The score.
    pub record: &'a v1::HealthScore,
    /// When it was computed, µs.
    pub now: i64,
}

/// Appends a score to the account's history and makes it current; `false`
/// (and nothing written) when a score of this snapshot is already there.
pub async fn append<C: ConnectionTrait>(db: &C, s: &NewScore<'_>) -> Result<bool, DbErr> {
    let account = s.record.account_id.as_str();
    let bytes = s.record.encode_to_vec();
    let appended = retain_store::exec(
        db,
        "INSERT INTO health_scores (tenant_id, account_id, as_of, score, band, model_version, \
         is_change, last_of_day, record, scored_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, TRUE, $8, $9) \
         ON CONFLICT (tenant_id, account_id, as_of) DO NOTHING",
        [
            s.tenant.into(),
            account.into(),
            s.as_of.into(),
            s.record.score.into(),
            Value::SmallInt(Some(i16::try_from(s.record.band).unwrap_or(0))),
            s.record.model_version.into(),
            s.is_change.into(),
            bytes.clone().into(),
            s.now.into(),
        ],
    )
    .await?;
    if appended == 0 {
        return Ok(false);
    }
    // The history shows one point per UTC day (its last score) plus every
    // band change: an earlier score of the same day is no longer the last.
    let day_start = s.as_of - s.as_of.rem_euclid(86_400_000_000);
    retain_store::exec(
        db,
        "UPDATE health_scores SET last_of_day = FALSE WHERE tenant_id = $1 AND account_id = $2 \
         AND as_of >= $3 AND as_of < $4 AND last_of_day",
        [
            s.tenant.into(),
            account.into(),
            day_start.into(),
            s.as_of.into(),
        ],
    )
    .await?;
    retain_store::exec(
        db,
        "INSERT INTO health_current (tenant_id, account_id, segment, as_of, score, band, record) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (tenant_id, account_id) DO UPDATE SET segment = excluded.segment, \
         as_of = excluded.as_of, score = excluded.score, band = excluded.band, \
         record = excluded.record WHERE health_current.as_of < excluded.as_of",
        [
            s.tenant.into(),
            account.into(),
            s.segment.into(),
            s.as_of.into(),
            s.record.score.into(),
            Value::SmallInt(Some(i16::try_from(s.record.band).unwrap_or(0))),
            bytes.into(),
        ],
    )
    .await?;
    Ok(true)
}

/// A page of current scores in account order after `after`, of the given
/// bands (all when empty) and segment (any when `None`).
pub async fn list<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    bands: &[i32],
    segment: Option<&str>,
    after: &str,
    limit: u64,
) -> Result<Vec<v1::HealthScore>, DbErr> {
    let mut sql =
        String::from("SELECT record FROM health_current WHERE tenant_id = $1 AND account_id > $2");
    let mut values: Vec<Value> = vec![tenant.into(), after.into()];
    if let Some(segment) = segment {
        values.push(segment.into());
        sql.push_str(&format!(" AND segment = ${}", values.len()));
    }
    if !bands.is_empty() {
        let mut list = Vec::new();
        for b in bands {
            values.push(Value::SmallInt(Some(i16::try_from(*b).unwrap_or(0))));
            list.push(format!("${}", values.len()));
        }
        sql.push_str(&format!(" AND band IN ({})", list.join(", ")));
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
        .map(|r| decode(&r.try_get_by_index::<Vec<u8>>(0)?, "health score"))
        .collect()
}

/// A page of an account's history, newest first: the last score of each
/// UTC day and every change of band or model version, with `as_of` in
/// `[from, to)`.
pub async fn history<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    account: &str,
    (from, to): (i64, i64),
    limit: u64,
) -> Result<Vec<(i64, v1::HealthScore)>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT as_of, record FROM health_scores WHERE tenant_id = $1 AND account_id = $2 \
             AND as_of >= $3 AND as_of < $4 AND (last_of_day OR is_change) \
             ORDER BY as_of DESC LIMIT $5",
            [
                tenant.into(),
                account.into(),
                from.into(),
                to.into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
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
