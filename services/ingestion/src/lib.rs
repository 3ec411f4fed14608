//! Retain's ingestion service: `IngestionService` over gRPC.
//!
//! A batch is checked first ([`intake`]: wire conversion, domain
//! validation, duplicates inside the batch), then every valid signal is
//! written with its accounts, users and `signals.recorded` bus messages in
//! one transaction ([`write`]), and only then answered. Rejected signals
//! change nothing; a retried batch answers `DUPLICATE` for what was already
//! stored and never counts it twice.
//!
//! [`Ingestion`] holds the state; [`Ingestion::server`] is the tonic
//! service to hand to `retain_runtime::serve`.

pub mod accounts;
pub mod group;
pub mod intake;
pub mod limit;
pub mod recent;
pub mod settings;
pub mod write;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use retain_domain::Timestamp;
use retain_domain::signal::Rules;
use retain_proto::v1;
use retain_proto::v1::ingestion_service_server::{IngestionService, IngestionServiceServer};
use retain_runtime::auth::{Principal, Role};
use retain_runtime::config::{Settings, Tenants};
use retain_runtime::error::{Error, FieldViolation};
use retain_runtime::{ConfigError, Service, Services, Workers};
use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::intake::{Checked, Prepared, Slot};
use crate::limit::TenantLimiter;
pub use crate::settings::IngestionSettings;
use crate::write::Written;

/// The ingestion service's state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ingestion {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: DatabaseConnection,
    settings: IngestionSettings,
    tenants: Tenants,
    limiter: TenantLimiter,
    recent: Arc<recent::Recent>,
    group: Option<group::GroupCommit>,
    max_message_bytes: usize,
}

/// Per-signal outcome while a batch is answered.
enum Outcome {
    Accepted,
    Duplicate,
    Rejected(Vec<FieldViolation>),
}

impl Service for Ingestion {
    const NAME: &'static str = "retain-ingestion";
    const ABOUT: &'static str =
        "Retain's ingestion service: validated, idempotent, durable signal intake over gRPC.";
    type Settings = IngestionSettings;

    fn build(
        db: DatabaseConnection,
        settings: &Settings,
        own: IngestionSettings,
    ) -> anyhow::Result<Services> {
        let (ingestion, workers) = Ingestion::new(db, settings, own)?;
        Ok(Services::new()
            .with(ingestion.server())
            .with_workers(workers))
    }
}

impl Ingestion {
    /// The service over `db` with its own settings `s`, the shared tenant
    /// settings and the server's message limit, and the workers it needs
    /// running (the group-commit writers, when enabled). Starts nothing:
    /// `retain_runtime::serve` starts the workers with the server and stops
    /// them after the last call.
    pub fn new(
        db: DatabaseConnection,
        settings: &Settings,
        s: IngestionSettings,
    ) -> Result<(Self, Workers), ConfigError> {
        let tenants = settings.tenants.parse()?;
        let recent = Arc::new(recent::Recent::default());
        let mut workers = Workers::new();
        let group = s.group_commit.then(|| {
            let (group, writers) = group::GroupCommit::new(
                db.clone(),
                recent.clone(),
                s.group_commit_writers,
                s.group_commit_max_signals,
            );
            workers.extend(writers);
            group
        });
        let ingestion = Self {
            inner: Arc::new(Inner {
                db,
                group,
                limiter: TenantLimiter::new(s.tenant_signals_per_second, s.tenant_burst_signals),
                settings: s,
                tenants,
                recent,
                max_message_bytes: settings.server.max_message_bytes,
            }),
        };
        Ok((ingestion, workers))
    }

    /// The tonic service, with the configured message size limit.
    pub fn server(&self) -> IngestionServiceServer<Self> {
        IngestionServiceServer::new(self.clone())
            .max_decoding_message_size(self.inner.max_message_bytes)
    }

    /// Checks the parts of a batch that are not per signal: size and mode.
    fn check_batch(&self, req: &v1::IngestSignalsRequest) -> Result<v1::IngestMode, Error> {
        let n = req.signals.len();
        let max = self.inner.settings.max_batch_signals;
        let mut violations = Vec::new();
        if n == 0 {
            violations.push(FieldViolation::new(
                "signals",
                "must hold at least one signal",
            ));
        } else if n > max {
            violations.push(FieldViolation::new(
                "signals",
                format!("{n} signals is over the limit of {max} per batch; split the batch"),
            ));
        }
        let mode = match v1::IngestMode::try_from(req.mode) {
            Ok(v1::IngestMode::Unspecified | v1::IngestMode::Live) => v1::IngestMode::Live,
            Ok(v1::IngestMode::Backfill) => v1::IngestMode::Backfill,
            Err(_) => {
                violations.push(FieldViolation::new(
                    "mode",
                    format!("{} is not a mode; use LIVE or BACKFILL", req.mode),
                ));
                v1::IngestMode::Live
            }
        };
        if violations.is_empty() {
            Ok(mode)
        } else {
            Err(Error::InvalidArgument(violations))
        }
    }

    fn rate_limited(&self, tenant: &str, n: usize, wait: Duration) -> Error {
        Error::ResourceExhausted {
            message: format!(
                "tenant {tenant} is over its rate limit of {} signals/s ({n} asked); retry after {} ms",
                self.inner.settings.tenant_signals_per_second,
                wait.as_millis()
            ),
            retry_after: wait,
        }
    }

    /// Ingests one batch for `principal` (the `IngestSignals` call).
    #[tracing::instrument(name = "ingest", skip_all, fields(tenant = %principal.tenant, signals = req.signals.len()))]
    pub async fn ingest(
        &self,
        principal: &Principal,
        req: v1::IngestSignalsRequest,
    ) -> Result<v1::IngestSignalsResponse, Error> {
        principal.require(Role::Ingest)?;
        let mode = self.check_batch(&req)?;
        let tenant = principal.tenant.as_str();
        self.inner
            .limiter
            .try_take(tenant, req.signals.len())
            .map_err(|wait| self.rate_limited(tenant, req.signals.len(), wait))?;
        self.process(tenant, mode, req).await
    }

    /// Validates and writes a batch that passed the batch-level checks.
    async fn process(
        &self,
        tenant: &str,
        mode: v1::IngestMode,
        req: v1::IngestSignalsRequest,
    ) -> Result<v1::IngestSignalsResponse, Error> {
        let ts = self.inner.tenants.of(tenant);
        let now = retain_store::now_micros();
        let rules = Rules {
            now: Timestamp::from_micros(now),
            max_future_seconds: self.inner.settings.max_future_seconds,
            max_past_seconds: (mode == v1::IngestMode::Live)
                .then(|| self.inner.settings.max_live_age_days * retain_domain::time::DAY),
            base_currency: ts.base_currency,
            checklist: &ts.onboarding_checklist,
        };
        let all_or_nothing = req.all_or_nothing;
        let Checked {
            slots,
            valid,
            event_ids,
        } = intake::check(req.signals, &rules);
        let first_rejected = slots.iter().position(|c| matches!(c, Slot::Rejected(_)));
        if all_or_nothing && let Some(first) = first_rejected {
            return Ok(reject_all(&event_ids, slots, first, &[]));
        }
        let valid_index: Vec<usize> = valid.iter().map(|p| p.index).collect();
        let written = self.write(tenant, mode, valid, all_or_nothing).await?;
        let mut by_index: Vec<Option<Written>> = vec![None; slots.len()];
        for (i, w) in valid_index.iter().zip(&written) {
            by_index[*i] = Some(*w);
        }
        if all_or_nothing {
            let conflicts: Vec<usize> = (0..slots.len())
                .filter(|&i| by_index[i] == Some(Written::Conflict))
                .collect();
            if let Some(&first) = conflicts.first() {
                return Ok(reject_all(&event_ids, slots, first, &conflicts));
            }
        }
        let outcomes = slots
            .into_iter()
            .zip(by_index)
            .enumerate()
            .map(|(i, (slot, written))| match (slot, written) {
                (_, Some(Written::Accepted)) => Outcome::Accepted,
                (_, Some(Written::Duplicate)) | (Slot::DuplicateInBatch, _) => Outcome::Duplicate,
                (_, Some(Written::Conflict)) => Outcome::Rejected(vec![conflict(i)]),
                (Slot::Rejected(v), None) => Outcome::Rejected(v),
                (Slot::Valid, None) => Outcome::Rejected(vec![FieldViolation::new(
                    format!("signals[{i}]"),
                    "was not written (internal: no outcome)",
                )]),
            })
            .collect();
        Ok(respond(&event_ids, outcomes))
    }

    /// Writes the valid signals of a batch: through the shared group
    /// commit, or alone for `all_or_nothing` (a conflict rolls it back).
    async fn write(
        &self,
        tenant: &str,
        mode: v1::IngestMode,
        valid: Vec<Prepared>,
        all_or_nothing: bool,
    ) -> Result<Vec<Written>, Error> {
        if valid.is_empty() {
            return Ok(Vec::new());
        }
        if !all_or_nothing && let Some(g) = &self.inner.group {
            return g.submit(tenant, mode, valid).await;
        }
        let batch = group::Batch {
            tenant,
            mode,
            signals: valid.iter().collect(),
        };
        let mut out =
            group::write_batches(&self.inner.db, &self.inner.recent, &[batch], all_or_nothing)
                .await?;
        Ok(out.pop().unwrap_or_default())
    }

    /// One `StreamSignals` batch: like [`Ingestion::ingest`], but a tenant
    /// over its rate waits (back-pressure on the stream) instead of failing.
    async fn ingest_streamed(
        &self,
        principal: &Principal,
        req: v1::IngestSignalsRequest,
    ) -> Result<v1::IngestSignalsResponse, Error> {
        let mode = self.check_batch(&req)?;
        let tenant = principal.tenant.as_str();
        while let Err(wait) = self.inner.limiter.try_take(tenant, req.signals.len()) {
            tokio::time::sleep(wait).await;
        }
        self.process(tenant, mode, req).await
    }
}

fn conflict(i: usize) -> FieldViolation {
    FieldViolation::new(
        format!("signals[{i}].event_id"),
        "was already recorded with different content; an event id names one event forever",
    )
}

/// Every signal rejected: the invalid ones with their violations, the
/// conflicting ones as conflicts, the rest "with its batch".
fn reject_all(
    event_ids: &[String],
    slots: Vec<Slot>,
    first: usize,
    conflicts: &[usize],
) -> v1::IngestSignalsResponse {
    let outcomes = slots
        .into_iter()
        .enumerate()
        .map(|(i, c)| match c {
            _ if conflicts.contains(&i) => Outcome::Rejected(vec![conflict(i)]),
            Slot::Rejected(v) => Outcome::Rejected(v),
            _ => Outcome::Rejected(vec![FieldViolation::new(
                format!("signals[{i}]"),
                format!("not written: signals[{first}] was rejected and all_or_nothing is set"),
            )]),
        })
        .collect();
    respond(event_ids, outcomes)
}

/// The answer: one result per signal, in request order, and the counts.
fn respond(event_ids: &[String], outcomes: Vec<Outcome>) -> v1::IngestSignalsResponse {
    let mut resp = v1::IngestSignalsResponse::default();
    for (i, o) in outcomes.into_iter().enumerate() {
        let (outcome, violations) = match o {
            Outcome::Accepted => {
                resp.accepted += 1;
                (v1::SignalOutcome::Accepted, Vec::new())
            }
            Outcome::Duplicate => {
                resp.duplicates += 1;
                (v1::SignalOutcome::Duplicate, Vec::new())
            }
            Outcome::Rejected(v) => {
                resp.rejected += 1;
                (v1::SignalOutcome::Rejected, v)
            }
        };
        resp.results.push(v1::SignalResult {
            index: i32::try_from(i).unwrap_or(i32::MAX),
            event_id: event_ids.get(i).cloned().unwrap_or_default(),
            outcome: outcome as i32,
            violations: violations
                .into_iter()
                .map(|v| v1::FieldViolation {
                    field: v.field,
                    description: v.description,
                })
                .collect(),
        });
    }
    resp
}

type ResultStream = Pin<Box<dyn Stream<Item = Result<v1::StreamSignalsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl IngestionService for Ingestion {
    async fn ingest_signals(
        &self,
        request: Request<v1::IngestSignalsRequest>,
    ) -> Result<Response<v1::IngestSignalsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let req = request.into_inner();
        Ok(Response::new(self.ingest(&principal, req).await?))
    }

    type StreamSignalsStream = ResultStream;

    async fn stream_signals(
        &self,
        request: Request<Streaming<v1::StreamSignalsRequest>>,
    ) -> Result<Response<Self::StreamSignalsStream>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(Role::Ingest)?;
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(self.inner.settings.stream_buffered_results);
        let this = self.clone();
        tokio::spawn(async move {
            // One batch at a time: the next is read only once the previous
            // result is queued, so a slow reader or a fast writer is held
            // back by HTTP/2 flow control instead of filling memory.
            loop {
                let next = match inbound.message().await {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(%status, "stream ended by the client");
                        break;
                    }
                };
                let batch_id = next.batch_id;
                let Some(batch) = next.batch else {
                    let err = Error::invalid("batch", format!("batch {batch_id:?} has no batch"));
                    let _ = tx.send(Err(err.into())).await;
                    break;
                };
                let reply = match this.ingest_streamed(&principal, batch).await {
                    Ok(result) => Ok(v1::StreamSignalsResponse {
                        batch_id,
                        result: Some(result),
                    }),
                    Err(e) => Err(Status::from(e)),
                };
                let failed = reply.is_err();
                if tx.send(reply).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn get_account(
        &self,
        request: Request<v1::GetAccountRequest>,
    ) -> Result<Response<v1::GetAccountResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(Role::Read)?;
        let account =
            accounts::get(&self.inner.db, principal.tenant.as_str(), request.get_ref()).await?;
        Ok(Response::new(v1::GetAccountResponse {
            account: Some(account),
        }))
    }

    async fn list_accounts(
        &self,
        request: Request<v1::ListAccountsRequest>,
    ) -> Result<Response<v1::ListAccountsResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(Role::Read)?;
        Ok(Response::new(
            accounts::list(&self.inner.db, principal.tenant.as_str(), request.get_ref()).await?,
        ))
    }
}
