//! Retain's ingestion service: `IngestionService` over gRPC.
//!
//! Follow one `IngestSignals` call down this file: the handler checks the
//! caller's role, then [`Ingestion::ingest`] checks the batch as a whole
//! (size, mode, the tenant's rate), [`intake`] checks each signal (wire
//! conversion and domain validation, no I/O), and the valid signals are
//! committed with their accounts, users and `signals.recorded` messages in
//! one transaction ([`commit`]; shared with concurrent calls through
//! [`group`], the statements in [`sql`]) before the call is answered, one
//! [`Verdict`] per signal. Rejected signals change nothing; a retried batch
//! answers `DUPLICATE` for what was already stored and never counts it
//! twice.

mod accounts;
mod commit;
mod group;
mod intake;
mod limit;
mod recent;
mod settings;
mod sql;
pub mod topics;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use retain_domain::signal::{Mode, Rules};
use retain_proto::convert;
use retain_proto::v1;
use retain_proto::v1::ingestion_service_server::{IngestionService, IngestionServiceServer};
use retain_runtime::auth::{Principal, Role};
use retain_runtime::config::Tenants;
use retain_runtime::error::{Error, FieldViolation};
use retain_runtime::{Clock, ConfigError, Context, Service, Services, Workers};
use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

pub use crate::commit::Verdict;
use crate::intake::Prepared;
/// The user a wire signal names, and whether notification acts on it: the
/// load generator's fairest limit writes the rows the service would.
pub use crate::intake::user_of;
use crate::limit::TenantLimiter;
pub use crate::settings::{IngestionSettings, MAX_BATCH_SIGNALS};

type ResultStream = Pin<Box<dyn Stream<Item = Result<v1::StreamSignalsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl IngestionService for Ingestion {
    async fn ingest_signals(
        &self,
        request: Request<v1::IngestSignalsRequest>,
    ) -> Result<Response<v1::IngestSignalsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(Role::Ingest)?;
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
            let mut last_batch: Option<String> = None;
            loop {
                let next = match inbound.message().await {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(status) => {
                        // A frame that does not decode or is over the size
                        // limit ends the stream with an error the client
                        // sees, never as if it had finished: it must know
                        // which batches were not read.
                        let _ = tx
                            .send(Err(unreadable_batch(&status, last_batch.as_deref())))
                            .await;
                        break;
                    }
                };
                let batch_id = next.batch_id;
                // Echoed in the answer: one line, bounded, like any text.
                let mut v = retain_domain::Violations::new();
                let line = retain_domain::validation::Text::Line(MAX_BATCH_ID_BYTES);
                retain_domain::validation::check_text(&mut v, "batch_id", &batch_id, line, false);
                if !v.is_empty() {
                    let _ = tx.send(Err(Error::from(v).into())).await;
                    break;
                }
                last_batch = Some(batch_id.clone());
                let Some(batch) = next.batch else {
                    let err = Error::invalid(
                        "batch",
                        format!(
                            "batch {} has no batch",
                            retain_domain::validation::quote(&batch_id)
                        ),
                    );
                    let _ = tx.send(Err(err.into())).await;
                    break;
                };
                let reply = match this.ingest_streamed(&principal, batch).await {
                    Ok(result) => Ok(v1::StreamSignalsResponse {
                        batch_id,
                        result: Some(result),
                    }),
                    Err(e) => Err(in_batch(Status::from(e), &batch_id)),
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

/// `status` with the batch it is about named first, details kept: a
/// stream's error ends the stream, and the client must know where.
fn in_batch(status: Status, batch_id: &str) -> Status {
    Status::with_details_and_metadata(
        status.code(),
        format!(
            "batch {}: {}",
            retain_domain::validation::quote(batch_id),
            status.message()
        ),
        status.details().to_vec().into(),
        status.metadata().clone(),
    )
}

/// The error a client gets when the next frame of its stream cannot be
/// read: the stream's own status where it is the caller's fault (over the
/// size limit: `OUT_OF_RANGE`), `INVALID_ARGUMENT` for a frame that does not
/// decode (tonic says `INTERNAL`), naming the last batch that was read.
fn unreadable_batch(status: &Status, last: Option<&str>) -> Status {
    let after = match last {
        Some(id) => format!(
            "the batch after batch {}",
            retain_domain::validation::quote(id)
        ),
        None => "the first batch".to_owned(),
    };
    let code = match status.code() {
        tonic::Code::Internal | tonic::Code::Unknown => tonic::Code::InvalidArgument,
        other => other,
    };
    tracing::debug!(%status, "stream frame unreadable");
    let detail: String = status.message().chars().take(200).collect();
    Status::new(
        code,
        format!("{after} could not be read ({detail}); it and any later batches were not ingested"),
    )
}

/// The ingestion service's state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Ingestion {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: DatabaseConnection,
    settings: IngestionSettings,
    tenants: Arc<Tenants>,
    limiter: TenantLimiter,
    recent: Arc<recent::Recent>,
    group: Option<group::GroupCommit>,
    max_message_bytes: usize,
    clock: Clock,
    bus: retain_bus::Bus,
}

impl Service for Ingestion {
    const NAME: &'static str = "retain-ingestion";
    const ABOUT: &'static str =
        "Retain's ingestion service: validated, idempotent, durable signal intake over gRPC.";
    type Settings = IngestionSettings;
    type TenantKeys = retain_runtime::NoTenantKeys;

    fn build(ctx: &Context, own: IngestionSettings) -> anyhow::Result<Services> {
        let (ingestion, workers) = Ingestion::new(ctx, own)?;
        Ok(Services::new()
            .with(ingestion.server())
            .with_workers(workers))
    }
}

impl Ingestion {
    /// The service over `ctx` with its own settings `s` (and the shared
    /// tenant settings and the server's message limit), and the workers it
    /// needs running (the group-commit writers, when enabled). Starts
    /// nothing: `retain_runtime::serve` starts the workers with the server
    /// and stops them after the last call.
    pub fn new(ctx: &Context, s: IngestionSettings) -> Result<(Self, Workers), ConfigError> {
        let db = ctx.db.clone();
        let tenants = ctx.tenants.clone();
        let recent = Arc::new(recent::Recent::default());
        let mut workers = Workers::new();
        let group = s.group_commit.then(|| {
            let (group, writers) = group::GroupCommit::new(
                db.clone(),
                recent.clone(),
                ctx.clock.clone(),
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
                max_message_bytes: ctx.settings.server.max_message_bytes,
                clock: ctx.clock.clone(),
                bus: ctx.bus.clone(),
            }),
        };
        Ok((ingestion, workers))
    }

    /// The tonic service, with the configured message size limit, behind
    /// [`Admission`].
    pub fn server(&self) -> Admission {
        Admission {
            server: IngestionServiceServer::new(self.clone())
                .max_decoding_message_size(self.inner.max_message_bytes),
            ingestion: self.clone(),
        }
    }

    /// One `IngestSignals` batch of `principal`, whose role was checked.
    #[tracing::instrument(name = "ingest", skip_all, fields(tenant = %principal.tenant, signals = req.signals.len()))]
    async fn ingest(
        &self,
        principal: &Principal,
        req: v1::IngestSignalsRequest,
    ) -> Result<v1::IngestSignalsResponse, Error> {
        let mode = self.check_batch(&req)?;
        let tenant = principal.tenant.as_str();
        self.inner
            .limiter
            .try_take(tenant, req.signals.len())
            .map_err(|wait| self.rate_limited(tenant, req.signals.len(), wait))?;
        self.process(tenant, mode, req).await
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

    /// Checks the parts of a batch that are not per signal: size and mode.
    fn check_batch(&self, req: &v1::IngestSignalsRequest) -> Result<Mode, Error> {
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
        let mode = convert::mode(req.mode).unwrap_or_else(|| {
            violations.push(FieldViolation::new(
                "mode",
                format!("{} is not a mode; use LIVE or BACKFILL", req.mode),
            ));
            Mode::Live
        });
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

    /// Checks every signal, writes the valid ones, and answers one verdict
    /// per signal in request order.
    async fn process(
        &self,
        tenant: &str,
        mode: Mode,
        req: v1::IngestSignalsRequest,
    ) -> Result<v1::IngestSignalsResponse, Error> {
        let ts = self.inner.tenants.of(tenant);
        let rules = Rules {
            now: self.inner.clock.now(),
            max_future_seconds: self.inner.settings.max_future_seconds,
            max_past_seconds: (mode == Mode::Live)
                .then(|| self.inner.settings.max_live_age_days * retain_domain::time::DAY),
            base_currency: ts.base_currency,
            checklist: &ts.onboarding_checklist,
        };
        let all_or_nothing = req.all_or_nothing;
        let (event_ids, checked) = intake::check(req.signals, mode, &rules);
        let mut verdicts: Vec<Option<Verdict>> = Vec::with_capacity(checked.len());
        let mut valid: Vec<Prepared> = Vec::with_capacity(checked.len());
        for c in checked {
            match c {
                Ok(p) => {
                    verdicts.push(None);
                    valid.push(p);
                }
                Err(v) => verdicts.push(Some(Verdict::Rejected(v))),
            }
        }
        if all_or_nothing && valid.len() < verdicts.len() {
            return Ok(respond(&event_ids, reject_all(verdicts)));
        }
        let indexes: Vec<usize> = valid.iter().map(|p| p.index).collect();
        let written = self.write(tenant, valid, all_or_nothing).await?;
        if written.contains(&Verdict::Accepted) {
            // Committed: this process's idle consumers (metrics in the
            // all-in-one mode) look now instead of at their next poll.
            self.inner.bus.wake();
        }
        for (i, v) in indexes.into_iter().zip(written) {
            verdicts[i] = Some(v);
        }
        if all_or_nothing
            && verdicts
                .iter()
                .any(|v| matches!(v, Some(Verdict::Rejected(_))))
        {
            return Ok(respond(&event_ids, reject_all(verdicts)));
        }
        let verdicts = verdicts
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.unwrap_or_else(|| {
                    Verdict::Rejected(vec![FieldViolation::new(
                        format!("signals[{i}]"),
                        "was not written (internal: no verdict)",
                    )])
                })
            })
            .collect();
        Ok(respond(&event_ids, verdicts))
    }

    /// Writes the valid signals of a batch: through the shared group
    /// commit, or alone for `all_or_nothing` (a conflict rolls it back).
    async fn write(
        &self,
        tenant: &str,
        valid: Vec<Prepared>,
        all_or_nothing: bool,
    ) -> Result<Vec<Verdict>, Error> {
        if valid.is_empty() {
            return Ok(Vec::new());
        }
        if !all_or_nothing && let Some(g) = &self.inner.group {
            return g.submit(tenant, valid).await;
        }
        let call = commit::Call {
            tenant,
            signals: &valid,
        };
        let now = self.inner.clock.now_micros();
        let mut out = commit::commit(
            &self.inner.db,
            &self.inner.recent,
            &[call],
            all_or_nothing,
            now,
        )
        .await?;
        Ok(out.pop().unwrap_or_default())
    }
}

/// With `all_or_nothing`, every signal is rejected once one is: the
/// rejected ones with their reasons, the rest "with its batch".
fn reject_all(verdicts: Vec<Option<Verdict>>) -> Vec<Verdict> {
    let first = verdicts
        .iter()
        .position(|v| matches!(v, Some(Verdict::Rejected(_))))
        .unwrap_or(0);
    verdicts
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Some(rejected @ Verdict::Rejected(_)) => rejected,
            _ => Verdict::Rejected(vec![FieldViolation::new(
                format!("signals[{i}]"),
                format!("not written: signals[{first}] was rejected and all_or_nothing is set"),
            )]),
        })
        .collect()
}

/// Longest `batch_id` a stream may use, in bytes.
const MAX_BATCH_ID_BYTES: usize = 128;

/// Largest answer the service builds, in bytes: under the 4 MiB a default
/// gRPC client accepts, with room to spare. A client that cannot read the
/// answer never learns which signals failed.
const MAX_REPLY_BYTES: usize = 3 << 20;
/// Violations an answer lists per signal; more are counted, not listed.
const MAX_VIOLATIONS_PER_SIGNAL: usize = 5;
/// Longest violation description an answer carries, in bytes.
const MAX_DESCRIPTION_BYTES: usize = 300;
/// Longest event id an answer echoes, in bytes (a valid one is at most 128).
const MAX_ECHOED_ID_BYTES: usize = retain_domain::signal::MAX_EVENT_ID_LEN;

/// The answer: one result per signal, in request order, and the counts.
/// Whatever the request held, the answer stays under [`MAX_REPLY_BYTES`]:
/// each signal lists at most [`MAX_VIOLATIONS_PER_SIGNAL`] violations with
/// bounded texts, and once the budget is spent, later rejected signals say
/// so in one line (resend one alone to see every reason).
fn respond(event_ids: &[String], verdicts: Vec<Verdict>) -> v1::IngestSignalsResponse {
    use prost::Message;
    let mut resp = v1::IngestSignalsResponse::default();
    let mut size = 0usize;
    for (i, verdict) in verdicts.into_iter().enumerate() {
        let (outcome, violations) = match verdict {
            Verdict::Accepted => {
                resp.accepted += 1;
                (v1::SignalOutcome::Accepted, Vec::new())
            }
            Verdict::Duplicate => {
                resp.duplicates += 1;
                (v1::SignalOutcome::Duplicate, Vec::new())
            }
            Verdict::Rejected(v) => {
                resp.rejected += 1;
                (v1::SignalOutcome::Rejected, v)
            }
        };
        let over_budget = size + 1024 > MAX_REPLY_BYTES;
        let mut result = v1::SignalResult {
            index: i32::try_from(i).unwrap_or(i32::MAX),
            event_id: if over_budget {
                String::new()
            } else {
                truncated(
                    event_ids.get(i).map_or("", String::as_str),
                    MAX_ECHOED_ID_BYTES,
                )
            },
            outcome: outcome as i32,
            violations: bounded(i, violations),
        };
        if !result.violations.is_empty() && size + result.encoded_len() > MAX_REPLY_BYTES {
            // Over budget: the first such signal says why its reasons and
            // the later ones' are missing; later ones carry none at all.
            result.violations = if over_budget {
                Vec::new()
            } else {
                vec![v1::FieldViolation {
                    field: format!("signals[{i}]"),
                    description: "rejected; from here on reasons are omitted to keep this \
                                  answer readable by a default client (4 MiB): resend the \
                                  rejected signals alone to see them"
                        .into(),
                }]
            };
        }
        size += result.encoded_len() + 4;
        resp.results.push(result);
    }
    resp
}

/// At most [`MAX_VIOLATIONS_PER_SIGNAL`] violations of signal `i`, each
/// description cut to [`MAX_DESCRIPTION_BYTES`], and a count of the rest.
fn bounded(i: usize, violations: Vec<FieldViolation>) -> Vec<v1::FieldViolation> {
    let total = violations.len();
    let mut out: Vec<v1::FieldViolation> = violations
        .into_iter()
        .take(MAX_VIOLATIONS_PER_SIGNAL)
        .map(|v| v1::FieldViolation {
            field: truncated(&v.field, MAX_DESCRIPTION_BYTES),
            description: truncated(&v.description, MAX_DESCRIPTION_BYTES),
        })
        .collect();
    if total > MAX_VIOLATIONS_PER_SIGNAL {
        out.push(v1::FieldViolation {
            field: format!("signals[{i}]"),
            description: format!("and {} more violations", total - MAX_VIOLATIONS_PER_SIGNAL),
        });
    }
    out
}

/// `s` cut to at most `max` bytes on a character boundary, marked with `…`.
fn truncated(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The ingestion service behind its admission check: an `IngestSignals`
/// call of a tenant that was refused for its rate and told to wait, made
/// before that wait is over, is answered `RESOURCE_EXHAUSTED` (with the
/// wait left) before its request is read — so a client that ignores the
/// `RetryInfo` and floods costs the replica a header's worth of work per
/// call, not a decoded batch. Every other call goes straight through.
#[derive(Debug, Clone)]
pub struct Admission {
    server: IngestionServiceServer<Ingestion>,
    ingestion: Ingestion,
}

/// The path of the calls [`Admission`] may refuse unread.
const INGEST_SIGNALS_PATH: &str = "/retain.v1.IngestionService/IngestSignals";

impl tonic::server::NamedService for Admission {
    const NAME: &'static str =
        <IngestionServiceServer<Ingestion> as tonic::server::NamedService>::NAME;
}

impl tower::Service<http::Request<tonic::body::Body>> for Admission {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future =
        futures::future::Either<
            std::future::Ready<Result<Self::Response, Self::Error>>,
            <IngestionServiceServer<Ingestion> as tower::Service<
                http::Request<tonic::body::Body>,
            >>::Future,
        >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::<http::Request<tonic::body::Body>>::poll_ready(&mut self.server, cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        if req.uri().path() == INGEST_SIGNALS_PATH
            && let Some(principal) = req.extensions().get::<Principal>()
            && let Some(wait) = self
                .ingestion
                .inner
                .limiter
                .refusing(principal.tenant.as_str())
        {
            let tenant = principal.tenant.as_str();
            let status = Status::from(Error::ResourceExhausted {
                message: format!(
                    "tenant {tenant} is over its rate limit of {} signals/s and was told to wait; \
                     retry after {} ms",
                    self.ingestion.inner.settings.tenant_signals_per_second,
                    wait.as_millis()
                ),
                retry_after: wait,
            });
            return futures::future::Either::Left(std::future::ready(Ok(status.into_http())));
        }
        futures::future::Either::Right(tower::Service::call(&mut self.server, req))
    }
}
