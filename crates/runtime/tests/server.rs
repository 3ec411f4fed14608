//! The server bootstrap over real gRPC on loopback: auth, roles, error
//! details, health, reflection, load shedding and graceful shutdown.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::sync::Arc;
use std::time::Duration;

use retain_proto::v1::ingestion_service_client::IngestionServiceClient;
use retain_proto::v1::ingestion_service_server::{IngestionService, IngestionServiceServer};
use retain_proto::v1::{
    Account, GetAccountRequest, GetAccountResponse, IngestSignalsRequest, IngestSignalsResponse,
    ListAccountsRequest, ListAccountsResponse, StreamSignalsRequest, StreamSignalsResponse,
};
use retain_runtime::config::ServerSettings;
use retain_runtime::{
    Authenticator, Error, FieldViolation, Principal, Role, ServeOptions, Services, Workers,
};
use retain_testkit::{eventually, health_status, with_token};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

/// A stand-in IngestionService that exercises the runtime: it checks
/// roles, echoes the caller's tenant, and can be made to block so a test
/// holds a call in flight.
#[derive(Clone)]
struct Probe {
    gate: Arc<Semaphore>,
    entered: Arc<std::sync::atomic::AtomicUsize>,
}

#[tonic::async_trait]
impl IngestionService for Probe {
    async fn ingest_signals(
        &self,
        request: Request<IngestSignalsRequest>,
    ) -> Result<Response<IngestSignalsResponse>, Status> {
        Principal::of(&request)?.require(Role::Ingest)?;
        if request.get_ref().signals.is_empty() {
            return Err(Error::InvalidArgument(vec![FieldViolation::new(
                "signals",
                "must hold 1 to 5000 signals",
            )])
            .into());
        }
        Ok(Response::new(IngestSignalsResponse::default()))
    }

    /// A stream that stays open and says nothing: an idle watcher.
    type StreamSignalsStream = tokio_stream::Pending<Result<StreamSignalsResponse, Status>>;

    async fn stream_signals(
        &self,
        request: Request<tonic::Streaming<StreamSignalsRequest>>,
    ) -> Result<Response<Self::StreamSignalsStream>, Status> {
        Principal::of(&request)?.require(Role::Ingest)?;
        Ok(Response::new(tokio_stream::pending()))
    }

    async fn get_account(
        &self,
        request: Request<GetAccountRequest>,
    ) -> Result<Response<GetAccountResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        principal.require(Role::Read)?;
        if request.get_ref().account_id == "block" {
            // Held until the test adds a permit.
            self.entered
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _permit = self
                .gate
                .acquire()
                .await
                .map_err(|_| Status::aborted("gate closed"))?;
        }
        Ok(Response::new(GetAccountResponse {
            account: Some(Account {
                account_id: request.get_ref().account_id.clone(),
                name: principal.tenant.to_string(),
                ..Default::default()
            }),
        }))
    }

    async fn list_accounts(
        &self,
        _: Request<ListAccountsRequest>,
    ) -> Result<Response<ListAccountsResponse>, Status> {
        Err(Status::unimplemented("not part of this probe"))
    }
}

struct Harness {
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    gate: Arc<Semaphore>,
    entered: Arc<std::sync::atomic::AtomicUsize>,
    server: tokio::task::JoinHandle<Result<(), retain_runtime::server::ServerError>>,
    db: retain_testkit::TestDatabase,
}

async fn start(settings: ServerSettings) -> Harness {
    start_with(settings, Workers::new()).await
}

async fn start_with(settings: ServerSettings, workers: Workers) -> Harness {
    let db = retain_testkit::TestDatabase::sqlite().await;
    let mut auth = Authenticator::default();
    let principal = |tenant: &str, roles: Vec<Role>| Principal {
        tenant: retain_domain::TenantId::parse(tenant).unwrap(),
        roles,
        name: String::new(),
        email: None,
    };
    auth.insert("reader-token", principal("acme", vec![Role::Read]));
    auth.insert(
        "writer-token",
        principal("acme", vec![Role::Ingest, Role::Read]),
    );
    auth.insert("globex-token", principal("globex", vec![Role::Read]));
    auth.insert(
        "globex-writer",
        principal("globex", vec![Role::Ingest, Role::Read]),
    );
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let opts = ServeOptions {
        settings,
        auth: Arc::new(auth),
        db: db.conn.clone(),
        health_interval: Duration::from_millis(50),
        bus_metrics: None,
    };
    let services = Services::new()
        .with(IngestionServiceServer::new(Probe {
            gate: gate.clone(),
            entered: entered.clone(),
        }))
        .with_workers(workers);
    let server = tokio::spawn(retain_runtime::serve(
        listener,
        opts,
        services,
        shutdown.clone(),
    ));
    Harness {
        addr,
        shutdown,
        gate,
        entered,
        server,
        db,
    }
}

async fn channel(addr: std::net::SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Waits until a call is parked inside the probe's handler.
async fn wait_entered(h: &Harness) {
    eventually(
        "the call to reach the handler",
        Duration::from_secs(10),
        || async { (h.entered.load(std::sync::atomic::Ordering::SeqCst) > 0).then_some(()) },
    )
    .await;
}

/// Starts a call that the probe parks until the test adds a permit, and
/// waits until it is parked. Returns the channel and the parked call.
async fn hold_a_call(
    h: &Harness,
) -> (
    Channel,
    tokio::task::JoinHandle<Result<Response<GetAccountResponse>, Status>>,
) {
    let ch = channel(h.addr).await;
    let mut blocked = IngestionServiceClient::new(ch.clone());
    let held = tokio::spawn(async move {
        blocked
            .get_account(with_token("reader-token", get("block")))
            .await
    });
    wait_entered(h).await;
    (ch, held)
}

/// Waits until the overall health status is NOT_SERVING.
async fn wait_not_serving(health: &HealthClient<Channel>, what: &str) {
    eventually(what, Duration::from_secs(10), || {
        let mut health = health.clone();
        async move {
            let r = health.check(HealthCheckRequest::default()).await.unwrap();
            (r.get_ref().status() == ServingStatus::NotServing).then_some(())
        }
    })
    .await;
}

fn get(id: &str) -> GetAccountRequest {
    GetAccountRequest {
        account_id: id.into(),
    }
}

#[tokio::test]
async fn calls_need_a_known_token_and_the_right_role() {
    let h = start(ServerSettings::default()).await;
    let mut client = IngestionServiceClient::new(channel(h.addr).await);

    let err = client
        .get_account(Request::new(get("a")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = client
        .get_account(with_token("forged", get("a")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let ok = client
        .get_account(with_token("reader-token", get("a")))
        .await
        .unwrap();
    assert_eq!(
        ok.get_ref().account.as_ref().unwrap().name,
        "acme",
        "tenant comes from the token"
    );
    let other = client
        .get_account(with_token("globex-token", get("a")))
        .await
        .unwrap();
    assert_eq!(other.get_ref().account.as_ref().unwrap().name, "globex");

    let err = client
        .ingest_signals(with_token("reader-token", IngestSignalsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("ingest"), "{}", err.message());
}

#[tokio::test]
async fn invalid_argument_reaches_the_client_with_field_violations() {
    let h = start(ServerSettings::default()).await;
    let mut client = IngestionServiceClient::new(channel(h.addr).await);
    let err = client
        .ingest_signals(with_token("writer-token", IngestSignalsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let details = err.get_error_details();
    let violations = &details
        .bad_request()
        .expect("BadRequest details")
        .field_violations;
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "signals");
}

#[tokio::test]
async fn health_and_reflection_are_public() {
    let h = start(ServerSettings::default()).await;
    let ch = channel(h.addr).await;
    let mut health = HealthClient::new(ch.clone());
    for service in ["", "retain.v1.IngestionService"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap();
        assert_eq!(r.get_ref().status(), ServingStatus::Serving, "{service:?}");
    }

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut reflection = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::once(req))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in ["retain.v1.IngestionService", "grpc.health.v1.Health"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    // Services this process does not serve are not advertised.
    assert!(!names.contains(&"retain.v1.MetricsService"), "{names:?}");

    // Clients that only speak the older v1alpha reflection get the same.
    use tonic_reflection::pb::v1alpha;
    let mut old =
        v1alpha::server_reflection_client::ServerReflectionClient::new(channel(h.addr).await);
    let req = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut stream = old
        .server_reflection_info(tokio_stream::once(req))
        .await
        .expect("v1alpha is served")
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        resp.message_response
    else {
        panic!("unexpected v1alpha reflection answer");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "retain.v1.IngestionService")
    );
}

/// Opens a `StreamSignals` stream for `token` that sends nothing (its
/// request half ends at once, like a watch's) and stays open until the
/// server ends it or the client drops it.
async fn open_stream(
    ch: &Channel,
    token: &str,
) -> Result<tonic::Streaming<StreamSignalsResponse>, Status> {
    let requests = tokio_stream::empty::<StreamSignalsRequest>();
    IngestionServiceClient::new(ch.clone())
        .stream_signals(with_token(token, requests))
        .await
        .map(Response::into_inner)
}

#[tokio::test]
async fn a_tenants_streams_are_capped_without_taking_the_replica_from_others() {
    let h = start(ServerSettings {
        concurrency_limit: 1,
        max_streams_per_tenant: 2,
        max_streams: 3,
        ..ServerSettings::default()
    })
    .await;
    let ch = channel(h.addr).await;
    let _a1 = open_stream(&ch, "writer-token")
        .await
        .expect("first stream");
    let _a2 = open_stream(&ch, "writer-token")
        .await
        .expect("second stream");
    let err = open_stream(&ch, "writer-token").await.expect_err("a third");
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(
        err.message().contains("max_streams_per_tenant"),
        "{}",
        err.message()
    );
    // Another tenant still opens one, and calls that end still get the one
    // place of concurrency_limit = 1: idle streams do not hold it.
    let b1 = open_stream(&ch, "globex-writer")
        .await
        .expect("another tenant's stream");
    IngestionServiceClient::new(ch.clone())
        .get_account(with_token("globex-token", get("x")))
        .await
        .expect("a unary call is not blocked by open streams");
    let err = open_stream(&ch, "globex-writer")
        .await
        .expect_err("the replica is full");
    assert!(
        err.message().contains("server.max_streams"),
        "{}",
        err.message()
    );
    // A stream that ends gives its place back.
    drop(b1);
    retain_testkit::eventually("the place to be free", Duration::from_secs(5), || async {
        open_stream(&ch, "globex-writer").await.ok()
    })
    .await;
}

#[tokio::test]
async fn a_stream_ends_unavailable_after_the_connection_age_and_its_grace() {
    let h = start(ServerSettings {
        max_connection_age_ms: 200,
        stream_age_grace_ms: 100,
        max_streams_per_tenant: 1,
        ..ServerSettings::default()
    })
    .await;
    let mut stream = open_stream(&channel(h.addr).await, "writer-token")
        .await
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the stream ends by itself")
        .expect_err("with a status");
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");
    assert!(end.message().contains("reconnect"), "{}", end.message());
    // Its place is free again: the client reconnects (on a new connection,
    // the old one having been asked to go away).
    let again = channel(h.addr).await;
    retain_testkit::eventually("the place to be free", Duration::from_secs(5), || async {
        open_stream(&again, "writer-token").await.ok()
    })
    .await;
}

#[tokio::test]
async fn reflection_can_be_turned_off() {
    let h = start(ServerSettings {
        reflection: false,
        ..ServerSettings::default()
    })
    .await;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let err = ServerReflectionClient::new(channel(h.addr).await)
        .server_reflection_info(tokio_stream::once(req))
        .await
        .expect_err("no reflection");
    assert_eq!(err.code(), Code::Unimplemented, "{err:?}");
    // Health still answers.
    let r = HealthClient::new(channel(h.addr).await)
        .check(HealthCheckRequest::default())
        .await
        .unwrap();
    assert_eq!(r.get_ref().status(), ServingStatus::Serving);
}

#[tokio::test]
async fn calls_beyond_the_concurrency_limit_are_shed_with_retry_info() {
    let h = start(ServerSettings {
        concurrency_limit: 1,
        ..ServerSettings::default()
    })
    .await;
    let (ch, held) = hold_a_call(&h).await;
    let mut client = IngestionServiceClient::new(ch.clone());
    let err = client
        .get_account(with_token("reader-token", get("x")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.get_error_details().retry_info().is_some(), "retry hint");
    // Health probes are never shed.
    let r = HealthClient::new(ch)
        .check(HealthCheckRequest::default())
        .await
        .unwrap();
    assert_eq!(r.get_ref().status(), ServingStatus::Serving);

    h.gate.add_permits(1);
    assert!(held.await.unwrap().is_ok());
    client
        .get_account(with_token("reader-token", get("x")))
        .await
        .expect("slot free again");
}

#[tokio::test]
async fn a_call_past_the_servers_deadline_is_deadline_exceeded() {
    let h = start(ServerSettings {
        request_timeout_ms: 300,
        ..ServerSettings::default()
    })
    .await;
    let (ch, held) = hold_a_call(&h).await;
    let err = held.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(
        err.message().contains("server.request_timeout_ms"),
        "{}",
        err.message()
    );
    // A call that answers in time is untouched.
    h.gate.add_permits(1);
    IngestionServiceClient::new(ch)
        .get_account(with_token("reader-token", get("x")))
        .await
        .expect("a quick call");
}

#[tokio::test]
async fn shutdown_reports_not_serving_then_drains_in_flight_calls() {
    let h = start(ServerSettings {
        readiness_delay_ms: 300,
        ..ServerSettings::default()
    })
    .await;
    let (ch, held) = hold_a_call(&h).await;
    let health = HealthClient::new(ch.clone());

    h.shutdown.cancel();
    wait_not_serving(&health, "NOT_SERVING after shutdown began").await;
    assert_eq!(
        health_status(&ch, retain_runtime::LIVENESS).await,
        ServingStatus::Serving,
        "live while draining"
    );
    assert!(
        !h.server.is_finished(),
        "the in-flight call keeps the server draining"
    );
    h.gate.add_permits(1);
    let answer = held
        .await
        .unwrap()
        .expect("in-flight call completes during drain");
    assert_eq!(
        answer.get_ref().account.as_ref().unwrap().account_id,
        "block"
    );
    tokio::time::timeout(Duration::from_secs(10), h.server)
        .await
        .expect("server stops after draining")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn overall_health_follows_the_database() {
    let h = start(ServerSettings::default()).await;
    let ch = channel(h.addr).await;
    let health = HealthClient::new(ch.clone());
    let db = h.db.conn.clone();
    db.close_by_ref().await.unwrap();
    wait_not_serving(&health, "NOT_SERVING once the database is closed").await;
    assert_eq!(
        health_status(&ch, retain_runtime::LIVENESS).await,
        ServingStatus::Serving,
        "a database outage is no reason to restart the replica"
    );
}

// With `max_connection_age_ms`, the server asks a client connection to go
// away (HTTP/2 GOAWAY; calls in flight finish) once it is that old, so a
// long-lived client reconnects — and, behind a Kubernetes Service, may
// land on another pod. Seen from a raw TCP socket speaking HTTP/2: without
// the age no GOAWAY would ever come and the deadline would fail the test.
#[tokio::test]
async fn a_connection_older_than_the_max_age_is_asked_to_go_away() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = start(ServerSettings {
        max_connection_age_ms: 200,
        ..ServerSettings::default()
    })
    .await;
    let mut socket = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    // The client preface and an empty SETTINGS frame.
    socket
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let goaway = async {
        loop {
            let mut header = [0_u8; 9];
            socket.read_exact(&mut header).await.unwrap();
            let len =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            let mut payload = vec![0_u8; len];
            socket.read_exact(&mut payload).await.unwrap();
            if header[3] == 7 {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), goaway)
        .await
        .expect("a GOAWAY once the connection is older than the max age");
}

/// What a test worker saw, in order.
#[derive(Clone, Default)]
struct Journal(Arc<std::sync::Mutex<Vec<&'static str>>>);

impl Journal {
    fn push(&self, what: &'static str) {
        self.0.lock().unwrap().push(what);
    }
    fn entries(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn workers_start_with_the_server_and_stop_only_after_calls_drain() {
    let journal = Journal::default();
    let mut workers = Workers::new();
    let j = journal.clone();
    // Handing back its work takes until the test says so; serve must wait.
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let r = release.clone();
    workers.add("test.worker", move |stop| async move {
        j.push("started");
        stop.cancelled().await;
        j.push("cancelled");
        let _ = r.acquire().await;
        j.push("stopped");
    });
    let h = start_with(
        ServerSettings {
            readiness_delay_ms: 100,
            ..ServerSettings::default()
        },
        workers,
    )
    .await;
    eventually("the worker to start", Duration::from_secs(10), || async {
        journal.entries().contains(&"started").then_some(())
    })
    .await;
    let (ch, held) = hold_a_call(&h).await;
    let health = HealthClient::new(ch);
    h.shutdown.cancel();
    wait_not_serving(&health, "NOT_SERVING after shutdown began").await;
    // The call is still in flight: the worker must not be cancelled yet.
    assert_eq!(journal.entries(), ["started"]);
    h.gate.add_permits(1);
    held.await.unwrap().expect("the in-flight call completes");
    eventually(
        "the worker to be cancelled",
        Duration::from_secs(10),
        || async { journal.entries().contains(&"cancelled").then_some(()) },
    )
    .await;
    // The worker is still handing back its work: serve has not returned.
    assert!(
        !h.server.is_finished(),
        "serve returned before its worker stopped"
    );
    release.add_permits(1);
    tokio::time::timeout(Duration::from_secs(10), h.server)
        .await
        .expect("server stops")
        .unwrap()
        .expect("a clean shutdown returns Ok");
    // serve returned only once the worker had finished stopping.
    assert_eq!(journal.entries(), ["started", "cancelled", "stopped"]);
}

#[tokio::test]
async fn a_worker_that_stops_on_its_own_shuts_the_server_down_with_an_error() {
    let mut workers = Workers::new();
    workers.add("test.crashes", |_stop| async {});
    let h = start_with(ServerSettings::default(), workers).await;
    let result = tokio::time::timeout(Duration::from_secs(10), h.server)
        .await
        .expect("server stops when a worker dies")
        .unwrap();
    let err = result.expect_err("an early worker exit is an error");
    assert!(err.to_string().contains("test.crashes"), "{err}");
}

#[tokio::test]
async fn merged_services_serve_every_part_and_run_every_worker() {
    // The all-in-one binary composes services with `merge`: each part's
    // routes are served and each part's workers run and stop.
    let journal = Journal::default();
    let mut first = Workers::new();
    let j = journal.clone();
    first.add("part-a.worker", move |stop| async move {
        j.push("a started");
        stop.cancelled().await;
    });
    let mut second = Workers::new();
    let j = journal.clone();
    second.add("part-b.worker", move |stop| async move {
        j.push("b started");
        stop.cancelled().await;
    });
    let probe = Probe {
        gate: Arc::new(Semaphore::new(0)),
        entered: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    };
    let merged = Services::new().with_workers(first).merge(
        Services::new()
            .with(IngestionServiceServer::new(probe))
            .with_workers(second),
    );
    assert_eq!(merged.worker_names(), ["part-a.worker", "part-b.worker"]);
    assert_eq!(merged.names(), ["retain.v1.IngestionService"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = CancellationToken::new();
    let mut auth = Authenticator::default();
    auth.insert(
        "writer-token",
        Principal {
            tenant: retain_domain::TenantId::parse("acme").unwrap(),
            roles: vec![Role::Ingest],
            name: String::new(),
            email: None,
        },
    );
    let db = retain_testkit::TestDatabase::sqlite().await;
    let opts = ServeOptions {
        settings: ServerSettings::default(),
        auth: Arc::new(auth),
        db: db.conn.clone(),
        health_interval: Duration::from_millis(50),
        bus_metrics: None,
    };
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(retain_runtime::serve(
        listener,
        opts,
        merged,
        shutdown.clone(),
    ));
    // The merged part's service answers (its own INVALID_ARGUMENT, not
    // UNIMPLEMENTED).
    let err = IngestionServiceClient::new(channel(addr).await)
        .ingest_signals(with_token("writer-token", IngestSignalsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    eventually(
        "both parts' workers to start",
        Duration::from_secs(10),
        || async {
            let e = journal.entries();
            (e.contains(&"a started") && e.contains(&"b started")).then_some(())
        },
    )
    .await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("stops")
        .unwrap()
        .expect("clean");
}
