//! Scoring models: versions per tenant, never edited in place.
//!
//! A tenant starts with the built-in model (docs/HEALTH.md's default: usage 40, NPS
//! 10, support 20, billing 30), which has version 0 and is never stored.
//! `PutScoringModel` stores version 1, 2, … (one sequence per tenant,
//! whatever the segment). An account is scored with its segment's latest
//! model, else the tenant default's latest, else the built-in one. A stored
//! score keeps the version that produced it and its explanation, so an old
//! score still explains itself after the model changed.

use retain_domain::health::ScoringModel;
use retain_proto::{health as wire, v1};
use retain_runtime::error::Error;
use sea_orm::{ConnectionTrait, DatabaseConnection};

use crate::sql;

/// The built-in model, version 0.
pub fn builtin() -> v1::ScoringModel {
    let mut m = wire::model_to_proto(&ScoringModel::default());
    m.version = 0;
    m
}

/// A stored (hence valid) model in domain terms.
pub fn domain(m: &v1::ScoringModel) -> Result<ScoringModel, Error> {
    let mut model = wire::model_from_proto(m)
        .map_err(|v| Error::Internal(format!("stored model {} is invalid: {v}", m.version)))?;
    model.version = m.version;
    Ok(model)
}

/// The model that scores accounts of `segment` ('' for none).
pub async fn effective<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    segment: &str,
) -> Result<v1::ScoringModel, Error> {
    if !segment.is_empty()
        && let Some(m) = sql::latest_model(db, tenant, segment).await?
    {
        return Ok(m);
    }
    Ok(sql::latest_model(db, tenant, "")
        .await?
        .unwrap_or_else(builtin))
}

/// `GetScoringModel`: a version (`version` > 0) or the latest of
/// `segment` (the model its accounts are scored with).
pub async fn get(
    db: &DatabaseConnection,
    tenant: &str,
    segment: &str,
    version: i64,
) -> Result<v1::ScoringModel, Error> {
    match version {
        0 => effective(db, tenant, segment).await,
        v if v < 0 => Err(Error::invalid(
            "version",
            "must be 0 (current) or a stored version",
        )),
        v => sql::model_version(db, tenant, v)
            .await?
            .ok_or_else(|| Error::NotFound(format!("scoring model version {v}"))),
    }
}

/// `PutScoringModel`: checks the model and stores it as the tenant's next
/// version.
pub async fn put(
    db: &DatabaseConnection,
    tenant: &str,
    model: Option<&v1::ScoringModel>,
    now: i64,
) -> Result<v1::ScoringModel, Error> {
    let Some(model) = model else {
        return Err(Error::invalid("model", "is required"));
    };
    wire::model_from_request(model).map_err(Error::from)?;
    sql::put_model(db, tenant, model, now)
        .await?
        .ok_or_else(|| {
            Error::Unavailable("scoring models are being changed concurrently; retry".into())
        })
}
