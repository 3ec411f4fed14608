//! Retain's health service: `HealthService` over gRPC.
//!
//! Its worker consumes `account.metrics` ([`score`]): every snapshot the
//! metrics service publishes is scored with the tenant's model for the
//! account's segment ([`models`]), appended to the account's history with
//! its explanation, and a LIVE band change is announced on
//! `health.band_changed`. The RPCs read what it stored: `GetHealth` (the
//! current score, explained in numbers and words), `ListHealth`,
//! `GetHealthHistory` (a point per day plus every band change), and the
//! model versions (`GetScoringModel`, `PutScoringModel`). docs/HEALTH.md
//! describes the service for its users.

pub mod jobs;
mod models;
mod preview;
mod score;
mod settings;
mod sql;
pub mod topics;
mod watch;

use std::pin::Pin;

use futures::Stream;
use retain_bus::{Consumer, groups};
use retain_metrics::topics::ACCOUNT_METRICS;

use crate::topics::RESCORE_REQUESTED;
use retain_proto::v1;
use retain_proto::v1::health_service_server::{HealthService, HealthServiceServer};
use retain_runtime::auth::{Principal, Role};
use retain_runtime::error::Error;
use retain_runtime::paging::{Filters, page_size};
use retain_runtime::{Clock, Context, Service, Services, Workers};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

pub use crate::score::Scorer;
pub use crate::settings::HealthSettings;

pub use retain_runtime::paging::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};

type BandChanges = Pin<Box<dyn Stream<Item = Result<v1::WatchBandChangesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl HealthService for Health {
    async fn get_health(
        &self,
        request: Request<v1::GetHealthRequest>,
    ) -> Result<Response<v1::GetHealthResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(Role::Read)?;
        let account = account_id(&request.get_ref().account_id)?;
        let current = sql::current(&self.db, principal.tenant.as_str(), account)
            .await
            .map_err(Error::from)?
            .ok_or_else(|| Error::NotFound(format!("health of account {}", quote(account))))?;
        Ok(Response::new(v1::GetHealthResponse {
            score: Some(current.score),
        }))
    }

    async fn list_health(
        &self,
        request: Request<v1::ListHealthRequest>,
    ) -> Result<Response<v1::ListHealthResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(Role::Read)?;
        let req = request.get_ref();
        let mut v = retain_domain::Violations::new();
        let size = page_size(&mut v, "page_size", req.page_size);
        let bands = check_bands(&mut v, "bands", &req.bands);
        check_segment(&mut v, "segment", &req.segment);
        check_owner(&mut v, "csm_owner_email", &req.csm_owner_email);
        let sort = list_sort(&mut v, req.sort);
        let filters = Filters::of([
            format!("{:?}", req.bands),
            req.segment.clone(),
            req.csm_owner_email.clone(),
        ]);
        let after = list_position(&mut v, sort, &filters, &req.page_token);
        v.into_result(()).map_err(Error::from)?;
        let filter = sql::ListFilter {
            bands: &bands,
            segment: Some(req.segment.as_str()).filter(|s| !s.is_empty()),
            csm_owner: Some(req.csm_owner_email.as_str()).filter(|s| !s.is_empty()),
        };
        let (order, code) = sort;
        let mut page = sql::list(
            &self.db,
            principal.tenant.as_str(),
            &filter,
            (order, &after),
            size + 1,
        )
        .await
        .map_err(Error::from)?;
        let next_page_token = filters.next_token(&mut page, size, |(key, s)| match order {
            sql::Order::Account => s.account_id.clone(),
            sql::Order::By { .. } => sorted_position(code, *key, &s.account_id),
        });
        Ok(Response::new(v1::ListHealthResponse {
            scores: page.into_iter().map(|(_, s)| s).collect(),
            next_page_token,
        }))
    }

    async fn get_health_history(
        &self,
        request: Request<v1::GetHealthHistoryRequest>,
    ) -> Result<Response<v1::GetHealthHistoryResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(Role::Read)?;
        let req = request.get_ref();
        let mut v = retain_domain::Violations::new();
        if let Err(e) = retain_domain::AccountId::parse(req.account_id.clone()) {
            v.push("account_id", e.to_string());
        }
        let size = page_size(&mut v, "page_size", req.page_size);
        // The position is the last score's (as_of, model version).
        let filters = Filters::of([req.account_id.clone(), format!("{:?}", req.range)]);
        let before = match filters.position(&mut v, "page_token", &req.page_token) {
            t if t.is_empty() => (i64::MAX, i64::MAX),
            t => t
                .split_once(':')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .unwrap_or_else(|| {
                    v.push("page_token", "is not a token this service issued");
                    (i64::MAX, i64::MAX)
                }),
        };
        let (from, to) = match &req.range {
            None => (i64::MIN, i64::MAX),
            Some(range) => retain_proto::convert::period_field(&mut v, "range", range)
                .map_or((i64::MIN, i64::MAX), |p| (p.start.micros(), p.end.micros())),
        };
        v.into_result(()).map_err(Error::from)?;
        let mut points = sql::history(
            &self.db,
            principal.tenant.as_str(),
            &req.account_id,
            (from, to),
            before,
            size + 1,
        )
        .await
        .map_err(Error::from)?;
        // An account never scored is unknown, as GetHealth says; one whose
        // scores all lie outside the range has an empty history.
        if points.is_empty()
            && sql::current(&self.db, principal.tenant.as_str(), &req.account_id)
                .await
                .map_err(Error::from)?
                .is_none()
        {
            return Err(
                Error::NotFound(format!("health of account {}", quote(&req.account_id))).into(),
            );
        }
        let next_page_token = filters.next_token(&mut points, size, |((as_of, version), _)| {
            format!("{as_of}:{version}")
        });
        Ok(Response::new(v1::GetHealthHistoryResponse {
            scores: points.into_iter().map(|p| p.1).collect(),
            next_page_token,
        }))
    }

    async fn get_scoring_model(
        &self,
        request: Request<v1::GetScoringModelRequest>,
    ) -> Result<Response<v1::GetScoringModelResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(Role::Read)?;
        let req = request.get_ref();
        let mut v = retain_domain::Violations::new();
        check_segment(&mut v, "segment", &req.segment);
        v.into_result(()).map_err(Error::from)?;
        let model = models::get(
            &self.db,
            principal.tenant.as_str(),
            &req.segment,
            req.version,
        )
        .await?;
        Ok(Response::new(v1::GetScoringModelResponse {
            model: Some(model),
        }))
    }

    async fn put_scoring_model(
        &self,
        request: Request<v1::PutScoringModelRequest>,
    ) -> Result<Response<v1::PutScoringModelResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(Role::Admin)?;
        let req = request.get_ref();
        let tenant = principal.tenant.as_str();
        let model = models::put(
            &self.db,
            tenant,
            req.model.as_ref(),
            self.clock.now().micros(),
        )
        .await?;
        let rescore_job_id = if req.rescore {
            jobs::queue(&self.db, tenant, &model.segment, &self.clock)
                .await?
                .0
        } else {
            String::new()
        };
        Ok(Response::new(v1::PutScoringModelResponse {
            model: Some(model),
            rescore_job_id,
        }))
    }

    async fn preview_scoring_model(
        &self,
        request: Request<v1::PreviewScoringModelRequest>,
    ) -> Result<Response<v1::PreviewScoringModelResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(Role::Admin)?;
        let req = request.get_ref();
        let out = preview::preview(
            &self.db,
            principal.tenant.as_str(),
            req.model.as_ref(),
            &req.account_ids,
        )
        .await?;
        Ok(Response::new(out))
    }

    async fn rescore_all(
        &self,
        request: Request<v1::RescoreAllRequest>,
    ) -> Result<Response<v1::RescoreAllResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(Role::Admin)?;
        let segment = &request.get_ref().segment;
        let mut v = retain_domain::Violations::new();
        check_segment(&mut v, "segment", segment);
        v.into_result(()).map_err(Error::from)?;
        let (job_id, accounts_queued) =
            jobs::queue(&self.db, principal.tenant.as_str(), segment, &self.clock).await?;
        Ok(Response::new(v1::RescoreAllResponse {
            accounts_queued,
            job_id,
        }))
    }

    async fn get_rescore_job(
        &self,
        request: Request<v1::GetRescoreJobRequest>,
    ) -> Result<Response<v1::RescoreJob>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(Role::Read)?;
        let job_id = &request.get_ref().job_id;
        if job_id.is_empty() || job_id.len() > 128 {
            return Err(
                Error::invalid("job_id", "must be a job id from RescoreAll (1–128 bytes)").into(),
            );
        }
        Ok(Response::new(
            jobs::progress(&self.db, principal.tenant.as_str(), job_id).await?,
        ))
    }

    type WatchBandChangesStream = BandChanges;

    async fn watch_band_changes(
        &self,
        request: Request<v1::WatchBandChangesRequest>,
    ) -> Result<Response<Self::WatchBandChangesStream>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(Role::Read)?;
        let req = request.get_ref();
        let mut v = retain_domain::Violations::new();
        let to_bands = check_bands(&mut v, "to_bands", &req.to_bands);
        check_segment(&mut v, "segment", &req.segment);
        let after = match req.cursor.as_str() {
            "" => None,
            c => {
                let n = watch::parse_cursor(c);
                if n.is_none() {
                    v.push("cursor", "is not a cursor this service issued");
                }
                n
            }
        };
        v.into_result(()).map_err(Error::from)?;
        let tenant = principal.tenant.as_str().to_owned();
        let after = match after {
            Some(n) => n,
            None => sql::watch_head(&self.db, &tenant)
                .await
                .map_err(Error::from)?,
        };
        let wake = self.heads.subscribe(&tenant);
        let stream = watch::stream(
            self.db.clone(),
            watch::Watch {
                tenant,
                to_bands,
                segment: Some(req.segment.clone()).filter(|s| !s.is_empty()),
                after,
            },
            wake,
            self.draining.clone(),
        );
        Ok(Response::new(Box::pin(stream)))
    }
}

/// The bands a filter names: at most 16, each a band, each read once.
fn check_bands(v: &mut retain_domain::Violations, field: &str, bands: &[i32]) -> Vec<i32> {
    retain_domain::validation::enum_list(
        v,
        field,
        bands,
        |b| retain_proto::health::band_from_proto(b).map(|_| b),
        "a health band (RED, YELLOW, GREEN, THRIVING)",
    )
}

/// A segment a request names, by the rule of every stored text.
fn check_segment(v: &mut retain_domain::Violations, field: &str, segment: &str) {
    use retain_domain::validation::{MAX_LABEL_LEN, Text, check_text};
    check_text(v, field, segment, Text::Line(MAX_LABEL_LEN), false);
}

/// An owner's email a filter names, by the rule of every stored text.
fn check_owner(v: &mut retain_domain::Violations, field: &str, email: &str) {
    use retain_domain::validation::{MAX_EMAIL_LEN, Text, check_text};
    check_text(v, field, email, Text::Line(MAX_EMAIL_LEN), false);
}

/// A checked account id.
fn account_id(id: &str) -> Result<&str, Error> {
    retain_domain::AccountId::parse(id.to_owned())
        .map(|_| id)
        .map_err(|e| Error::invalid("account_id", e.to_string()))
}

fn quote(s: &str) -> String {
    retain_domain::validation::quote(s)
}

/// ListHealth's order and the sort's wire number.
fn list_sort(v: &mut retain_domain::Violations, sort: i32) -> (sql::Order, i32) {
    use v1::HealthSort as S;
    let by = |column, descending| sql::Order::By { column, descending };
    let order = match S::try_from(sort) {
        Ok(S::Unspecified | S::Account) => sql::Order::Account,
        Ok(S::ScoreAscending) => by("score", false),
        Ok(S::ScoreDescending) => by("score", true),
        Ok(S::ChangeAscending) => by("score_change", false),
        Ok(S::ChangeDescending) => by("score_change", true),
        Err(_) => {
            v.push(
                "sort",
                format!("{sort} is not a HealthSort (ACCOUNT, SCORE_ASCENDING, SCORE_DESCENDING, CHANGE_ASCENDING, CHANGE_DESCENDING)"),
            );
            sql::Order::Account
        }
    };
    (order, sort)
}

/// Marks a sorted position, which an account id never starts with.
const SORTED: char = '\u{1}';

/// The position of a sorted page's last score: the sort, the key's bits and
/// the account, so a token is only taken back for the same sort.
fn sorted_position(sort: i32, key: f64, account: &str) -> String {
    format!("{SORTED}{sort}:{:016x}:{account}", key.to_bits())
}

/// Where a ListHealth page in `sort` starts, from its token.
fn list_position(
    v: &mut retain_domain::Violations,
    (order, sort): (sql::Order, i32),
    filters: &Filters,
    token: &str,
) -> sql::After {
    let position = filters.position(v, "page_token", token);
    if position.is_empty() {
        return sql::After::Start;
    }
    let sorted = position.strip_prefix(SORTED).and_then(|rest| {
        let (code, rest) = rest.split_once(':')?;
        let (bits, account) = rest.split_once(':')?;
        let bits = u64::from_str_radix(bits, 16).ok()?;
        Some((code.parse::<i32>().ok()?, f64::from_bits(bits), account))
    });
    match (order, sorted) {
        (sql::Order::Account, None) => sql::After::Account(position),
        (sql::Order::By { .. }, Some((code, key, account))) if code == sort && !key.is_nan() => {
            sql::After::Key(key, account.to_owned())
        }
        _ => {
            v.push(
                "page_token",
                "was issued for another sort order; pass the same sort as the first page",
            );
            sql::After::Start
        }
    }
}

/// The health service: the gRPC service and its consumer.
#[derive(Debug, Clone)]
pub struct Health {
    db: DatabaseConnection,
    clock: Clock,
    /// Cancelled when the server starts draining: watch streams end.
    draining: tokio_util::sync::CancellationToken,
    /// Each tenant's latest change number, one poll for all its watchers.
    heads: retain_runtime::watch::Heads,
}

impl Service for Health {
    const NAME: &'static str = "retain-health";
    const ABOUT: &'static str = "Retain's health service: explainable, versioned customer health scores from metric snapshots.";
    type Settings = HealthSettings;
    type TenantKeys = retain_runtime::NoTenantKeys;

    fn build(ctx: &Context, own: HealthSettings) -> anyhow::Result<Services> {
        let scorer = Scorer {
            db: ctx.db.clone(),
            clock: ctx.clock.clone(),
        };
        let scorer_for_jobs = scorer.clone();
        let jobs_consumer = own.consumer.clone();
        let mut workers = Workers::new();
        let bus = ctx.bus.clone();
        workers.add("health.account-metrics", move |stop| async move {
            let opts = own.consumer.options(format!(
                "health-{}-{}",
                std::process::id(),
                retain_store::now_micros()
            ));
            match Consumer::new(bus, ACCOUNT_METRICS.name(), groups::HEALTH, opts).await {
                Ok(consumer) => consumer.run(&scorer, stop).await,
                // Without its subscription the consumer cannot run: the
                // worker ends, which stops the server (run `migrate`).
                Err(e) => tracing::error!(error = %e, "health consumer cannot start"),
            }
        });
        // Rescoring jobs: the bus's `health.rescore` messages, one job at a
        // time per replica (a job renews its lease as it goes).
        let rescorer = jobs::Rescorer {
            scorer: scorer_for_jobs,
            bus: ctx.bus.clone(),
            lease: std::time::Duration::from_secs(jobs_consumer.lease_seconds),
            turn_accounts: own.rescore_turn_accounts,
        };
        let (bus, db) = (ctx.bus.clone(), ctx.db.clone());
        workers.add("health.rescore-jobs", move |stop| async move {
            let mut opts = jobs_consumer.options(format!(
                "health-jobs-{}-{}",
                std::process::id(),
                retain_store::now_micros()
            ));
            (opts.batch_size, opts.concurrency) = (1, 1);
            if let Err(e) = jobs::adopt(&db).await {
                tracing::warn!(error = %e, "queuing the jobs of an earlier release failed; retried at the next start");
            }
            match Consumer::new(bus, RESCORE_REQUESTED.name(), groups::HEALTH, opts).await {
                Ok(consumer) => consumer.run(&rescorer, stop).await,
                Err(e) => tracing::error!(error = %e, "rescoring consumer cannot start"),
            }
        });
        let mut services = Services::new();
        let health = Health {
            db: ctx.db.clone(),
            clock: ctx.clock.clone(),
            draining: services.draining(),
            heads: watch::heads(ctx.db.clone()),
        };
        Ok(services
            .with(HealthServiceServer::new(health))
            .with_workers(workers))
    }
}
