//! The gRPC server every Retain service runs on.
//!
//! [`serve`] adds what each service would otherwise repeat: `grpc.health.v1`
//! (the overall `""` status and each service's follow a database ping and
//! turn NOT_SERVING at shutdown — readiness; [`LIVENESS`] stays SERVING
//! while the process answers — liveness), server reflection,
//! bearer-token auth, a global concurrency limit that sheds load with
//! `RESOURCE_EXHAUSTED`, default deadlines, optional TLS/mTLS, a request
//! span joined to the caller's trace, and the service's background
//! [`Workers`], started with the server and stopped after it.
//!
//! Shutdown, once the token is cancelled: report NOT_SERVING, wait the
//! readiness delay, stop accepting and end the long-lived calls (every
//! [`Services::draining`] token is cancelled: a server stream ends with
//! `UNAVAILABLE` and its client reconnects elsewhere), drain the calls in
//! flight (up to the grace period), cancel the workers, wait for them (bus
//! consumers release their leases), return.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::auth::{AuthLayer, Authenticator};
use crate::config::ServerSettings;
use crate::error::Error;
use crate::telemetry;
use crate::workers::Workers;

/// The `grpc.health.v1` service name for a liveness probe: SERVING for as
/// long as the server answers calls, whatever the database does.
pub const LIVENESS: &str = "liveness";

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// TLS files could not be read.
    #[error("configuration key `server.tls`: {0}")]
    Tls(String),
    /// Reflection could not be built from the descriptor sets.
    #[error("reflection: {0}")]
    Reflection(String),
    /// The transport failed.
    #[error("grpc transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A worker returned or panicked while the server was running; the
    /// server was shut down so the process can be restarted.
    #[error("{0}")]
    WorkerStopped(String),
}

/// What a process serves: gRPC services, collected with their names so
/// their health can be reported, and the background workers that run
/// beside them. A service crate builds its part; a process that runs
/// several services [`merge`](Services::merge)s them.
#[derive(Default)]
pub struct Services {
    routes: Vec<AddRoute>,
    names: Vec<&'static str>,
    workers: Workers,
    draining: Vec<CancellationToken>,
}

type AddRoute = Box<dyn FnOnce(&mut RoutesBuilder) + Send>;

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("names", &self.names)
            .field("workers", &self.workers)
            .finish()
    }
}

impl Services {
    /// No services yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a generated tonic server (e.g. `IngestionServiceServer`).
    pub fn with<S>(mut self, svc: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = Infallible,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes
            .push(Box::new(move |routes: &mut RoutesBuilder| {
                routes.add_service(svc);
            }));
        self
    }

    /// Adds background workers, started by [`serve`] and stopped after the
    /// last call has drained.
    pub fn with_workers(mut self, workers: Workers) -> Self {
        self.workers.extend(workers);
        self
    }

    /// Adds another service's gRPC services and workers.
    pub fn merge(mut self, other: Services) -> Self {
        self.routes.extend(other.routes);
        self.names.extend(other.names);
        self.workers.extend(other.workers);
        self.draining.extend(other.draining);
        self
    }

    /// A token [`serve`] cancels when it starts draining (after the
    /// readiness delay): a call that would otherwise run until the client
    /// leaves — a server stream — ends on it, so shutdown does not wait the
    /// whole grace period for it.
    pub fn draining(&mut self) -> CancellationToken {
        let token = CancellationToken::new();
        self.draining.push(token.clone());
        token
    }

    /// Names of the added services (`retain.v1.IngestionService`).
    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// Names of the declared workers.
    pub fn worker_names(&self) -> Vec<&str> {
        self.workers.names()
    }
}

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Server settings (limits, timeouts, TLS).
    pub settings: ServerSettings,
    /// Token table.
    pub auth: Arc<Authenticator>,
    /// The database whose reachability drives the health status.
    pub db: DatabaseConnection,
    /// How often the database is pinged for the health status.
    pub health_interval: Duration,
    /// How often the bus backlog is sampled for the operators' metrics
    /// (`None`: never, as when no OTLP endpoint is configured).
    pub bus_metrics: Option<Duration>,
}

/// Serves `services` on `listener` until `shutdown` is cancelled, then
/// shuts down gracefully. Tests pass a listener bound to `127.0.0.1:0`.
pub async fn serve(
    listener: TcpListener,
    opts: ServeOptions,
    services: Services,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    let settings = &opts.settings;
    let Services {
        routes: add_routes,
        names,
        workers,
        draining,
    } = services;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    set_all(&reporter, &names, ServingStatus::Serving).await;
    // Liveness answers SERVING for as long as the process serves calls,
    // through a database outage and the drain: restarting a replica fixes
    // neither.
    reporter
        .set_service_status(LIVENESS, ServingStatus::Serving)
        .await;

    // Reflection in both versions: many clients (grpcurl before 1.9,
    // Python's grpcio-reflection) still ask v1alpha.
    // Only the services this process serves are advertised (the descriptor
    // set holds every Retain service).
    let reflection = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(retain_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health");
        for name in &names {
            builder = builder.with_service_name(*name);
        }
        builder
    };
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| ServerError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| ServerError::Reflection(e.to_string()))?;

    // Keepalives find a client that vanished without closing its
    // connection (a NAT timeout, a crashed host), so its open streams end
    // and give their places back (`crate::streams`).
    let mut builder = tonic::transport::Server::builder()
        .trace_fn(telemetry::request_span)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .tcp_keepalive(Some(Duration::from_secs(60)));
    if settings.max_connection_age_ms > 0 {
        builder = builder.max_connection_age(Duration::from_millis(settings.max_connection_age_ms));
    }
    if let Some(tls) = &settings.tls {
        builder = builder.tls_config(tls_config(tls)?)?;
    }
    let layers = tower::ServiceBuilder::new()
        .layer(crate::metrics::CallMetricsLayer::default())
        .layer(DeadlineLayer::new(settings.request_timeout()))
        .layer(DecodeErrorLayer)
        .layer(ShedLayer::new(settings.concurrency_limit))
        .layer(AuthLayer::new(opts.auth.clone()))
        .layer(crate::streams::StreamLimitLayer::new(
            settings.stream_limits(),
        ))
        .into_inner();
    let mut routes = RoutesBuilder::default();
    for add in add_routes {
        add(&mut routes);
    }
    routes.add_service(health_service);
    if settings.reflection {
        routes
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
    }
    let router = builder.layer(layers).add_routes(routes.routes());

    // Health follows the database until shutdown begins.
    let bus_task = opts.bus_metrics.map(|every| {
        tokio::spawn(crate::metrics::sample_bus(
            retain_bus::Bus::new(opts.db.clone()),
            every,
            shutdown.clone(),
        ))
    });
    let health_task = tokio::spawn(watch_database(
        reporter.clone(),
        names.clone(),
        opts.db.clone(),
        opts.health_interval,
        shutdown.clone(),
    ));
    // Workers run under their own token: they are cancelled only after the
    // calls that may depend on them (a group-commit writer) have drained.
    let stop_workers = CancellationToken::new();
    let mut running = workers.start(&stop_workers);

    let readiness_delay = Duration::from_millis(settings.readiness_delay_ms);
    let grace = Duration::from_millis(settings.shutdown_grace_ms);
    let signal = {
        let shutdown = shutdown.clone();
        let reporter = reporter.clone();
        let names = names.clone();
        async move {
            shutdown.cancelled().await;
            tracing::info!("shutting down: reporting NOT_SERVING");
            set_all(&reporter, &names, ServingStatus::NotServing).await;
            tokio::time::sleep(readiness_delay).await;
            tracing::info!("draining in-flight calls");
            for token in &draining {
                token.cancel();
            }
        }
    };
    // Small gRPC frames must leave at once: without TCP_NODELAY a reply's
    // trailing frame waits for the peer's delayed ACK (~40 ms a call).
    let incoming = tokio_stream::StreamExt::map(TcpListenerStream::new(listener), |conn| {
        conn.inspect(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set");
            }
        })
    });
    let server = router.serve_with_incoming_shutdown(incoming, signal);
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(readiness_delay + grace).await;
    };
    let served = async {
        tokio::select! {
            r = server => r.map_err(ServerError::from),
            () = deadline => {
                tracing::warn!(grace_ms = settings.shutdown_grace_ms, "calls still running after the shutdown grace period; stopping anyway");
                Ok(())
            }
        }
    };
    tokio::pin!(served);
    let mut early_stop: Option<String> = None;
    let result = loop {
        tokio::select! {
            r = &mut served => break r,
            Some(done) = running.next(), if early_stop.is_none() => {
                let what = match done {
                    Ok(name) => format!("worker {name} stopped while the server was running"),
                    Err(e) => format!("a worker failed while the server was running: {e}"),
                };
                tracing::error!("{what}; shutting down");
                early_stop = Some(what);
                shutdown.cancel();
            }
        }
    };
    tracing::info!("server stopped: stopping workers");
    stop_workers.cancel();
    if tokio::time::timeout(grace.max(Duration::from_secs(1)), running.wait_all())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_ms = settings.shutdown_grace_ms,
            "workers still running after the shutdown grace period; exiting anyway"
        );
    }
    health_task.abort();
    if let Some(t) = bus_task {
        t.abort();
    }
    match early_stop {
        Some(what) => Err(ServerError::WorkerStopped(what)),
        None => result,
    }
}

async fn set_all(reporter: &HealthReporter, names: &[&'static str], status: ServingStatus) {
    reporter.set_service_status("", status).await;
    for name in names {
        reporter.set_service_status(*name, status).await;
    }
}

/// Pings the database every `every` (each ping given `every` to answer,
/// half a second at least) and reports NOT_SERVING after two failures in
/// a row — an outage shows within about two periods plus a ping's wait,
/// while one slow ping on a busy pool does not flap readiness — and
/// SERVING again at the first answer.
async fn watch_database(
    reporter: HealthReporter,
    names: Vec<&'static str>,
    db: DatabaseConnection,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut healthy = true;
    let mut failures = 0_u32;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let answered = tokio::time::timeout(
            every.max(Duration::from_millis(500)),
            retain_store::ping(&db),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if shutdown.is_cancelled() {
            return;
        }
        failures = if answered { 0 } else { failures + 1 };
        let ok = failures < 2;
        if ok != healthy {
            healthy = ok;
            if ok {
                tracing::info!("database reachable again: SERVING");
            } else {
                tracing::warn!("database unreachable: NOT_SERVING");
            }
        }
        let status = if ok {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        set_all(&reporter, &names, status).await;
    }
}

fn tls_config(tls: &crate::config::TlsSettings) -> Result<ServerTlsConfig, ServerError> {
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| ServerError::Tls(format!("{}: {e}", p.display())))
    };
    let mut cfg = ServerTlsConfig::new().identity(Identity::from_pem(
        read(&tls.cert_path)?,
        read(&tls.key_path)?,
    ));
    if let Some(ca) = &tls.client_ca_path {
        cfg = cfg.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(cfg)
}

/// Cancels the returned token on SIGTERM or SIGINT (Ctrl-C).
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(
                tokio::signal::unix::SignalKind::terminate(),
            ) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                    let _ = ctrl_c.await;
                    t.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => tracing::info!("SIGINT received"),
                _ = term.recv() => tracing::info!("SIGTERM received"),
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        t.cancel();
    });
    token
}

/// Ends a call that has not answered within `server.request_timeout_ms`
/// with `DEADLINE_EXCEEDED`, as clients and the docs expect (tonic's own
/// server timeout answers `CANCELLED`). A client's own, shorter
/// `grpc-timeout` is still enforced by tonic, and the client reports its
/// deadline itself. A server stream's deadline covers its first answer,
/// not the stream's life.
#[derive(Debug, Clone)]
pub struct DeadlineLayer {
    limit: Duration,
}

impl DeadlineLayer {
    /// Calls answer within `limit`.
    pub fn new(limit: Duration) -> Self {
        Self { limit }
    }
}

impl<S> tower::Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            limit: self.limit,
        }
    }
}

/// The service [`DeadlineLayer`] builds.
#[derive(Debug, Clone)]
pub struct Deadline<S> {
    inner: S,
    limit: Duration,
}

impl<S, B> tower::Service<http::Request<B>> for Deadline<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let limit = self.limit;
        let fut = self.inner.call(req);
        Box::pin(async move {
            match tokio::time::timeout(limit, fut).await {
                Ok(answer) => answer,
                Err(_) => Ok(tonic::Status::deadline_exceeded(format!(
                    "no answer within the server's deadline of {} ms (server.request_timeout_ms)",
                    limit.as_millis()
                ))
                .into_http()),
            }
        })
    }
}

/// Sheds calls beyond a global in-flight limit with `RESOURCE_EXHAUSTED`
/// and a retry hint, instead of queueing them without bound.
#[derive(Debug, Clone)]
pub struct ShedLayer {
    permits: Arc<Semaphore>,
}

impl ShedLayer {
    /// At most `limit` calls in flight.
    pub fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit.max(1))),
        }
    }
}

impl<S> tower::Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Shed {
            inner,
            permits: self.permits.clone(),
        }
    }
}

/// The service [`ShedLayer`] builds.
#[derive(Debug, Clone)]
pub struct Shed<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for Shed<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        // Health probes are never shed: an overloaded replica is still
        // alive. Streams have places of their own (`crate::streams`).
        let path = req.uri().path();
        let exempt = path.starts_with("/grpc.health.v1.") || crate::methods::is_tenant_stream(path);
        let permit = if exempt {
            None
        } else {
            match self.permits.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    let status: tonic::Status = Error::ResourceExhausted {
                        message: "server is at its concurrency limit; retry with backoff".into(),
                        retry_after: Duration::from_millis(100),
                    }
                    .into();
                    return Box::pin(std::future::ready(Ok(status.into_http())));
                }
            }
        };
        let fut = self.inner.call(req);
        Box::pin(async move {
            // The permit lives as long as the response body: a stream
            // this layer does count (health's Watch, reflection) holds
            // its place until it ends, not only until its headers go.
            let res = fut.await?;
            Ok(match permit {
                None => res,
                Some(permit) => res.map(|inner| {
                    tonic::body::Body::new(Permitted {
                        inner,
                        _permit: permit,
                    })
                }),
            })
        })
    }
}

/// A response body holding a concurrency permit until it ends or is dropped.
struct Permitted {
    inner: tonic::body::Body,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl http_body::Body for Permitted {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Answers a request body that does not decode with `INVALID_ARGUMENT`.
///
/// tonic reports a protobuf decoding failure (garbage bytes, invalid UTF-8
/// in a string, wrong wire types, truncation) as `INTERNAL`, which tells a
/// client the server failed and the call may be retried — a client would
/// retry garbage forever. It is the caller's fault, so this layer rewrites
/// exactly those answers (`grpc-status: 13` whose message is prost's
/// "failed to decode Protobuf message") to `INVALID_ARGUMENT`.
#[derive(Debug, Clone, Copy)]
pub struct DecodeErrorLayer;

impl<S> tower::Layer<S> for DecodeErrorLayer {
    type Service = DecodeErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DecodeErrors { inner }
    }
}

/// The service [`DecodeErrorLayer`] builds.
#[derive(Debug, Clone)]
pub struct DecodeErrors<S> {
    inner: S,
}

/// The start of every prost decoding error's text, as it appears in the
/// percent-encoded `grpc-message` header.
const DECODE_FAILURE: &str = "failed%20to%20decode%20Protobuf%20message";

impl<S, B> tower::Service<http::Request<B>> for DecodeErrors<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let fut = self.inner.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            let headers = res.headers_mut();
            let internal = headers
                .get("grpc-status")
                .is_some_and(|v| v.as_bytes() == b"13");
            let decode = headers
                .get("grpc-message")
                .is_some_and(|v| v.as_bytes().starts_with(DECODE_FAILURE.as_bytes()));
            if internal && decode {
                let detail = headers
                    .get("grpc-message")
                    .and_then(|v| v.to_str().ok())
                    .map(|m| m.trim_start_matches(DECODE_FAILURE).trim_start_matches(':'))
                    .unwrap_or_default()
                    .trim_start_matches("%20")
                    .to_owned();
                tracing::debug!(%detail, "request body does not decode");
                headers.insert("grpc-status", http::HeaderValue::from_static("3"));
                let message = format!(
                    "the request body is not a valid protobuf message of this method's request type{}{}",
                    if detail.is_empty() { "" } else { ": " },
                    detail
                );
                if let Ok(v) = http::HeaderValue::from_str(&message) {
                    headers.insert("grpc-message", v);
                }
            }
            Ok(res)
        })
    }
}
