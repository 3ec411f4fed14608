//! A service spawned in-process on `127.0.0.1:0`, the way its binary runs
//! it (`retain_runtime::serve`, with its workers), on a test database.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use retain_bus::{Bus, Topic};
use retain_proto::v1;
use retain_proto::v1::ingestion_service_client::IngestionServiceClient;
use retain_runtime::server::ServerError;
use retain_runtime::{Clock, Context, Section, ServeOptions, Service, Services, Settings};
use sea_orm::{ConnectionTrait, Statement};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::transport::Channel;

use crate::db::TestDatabase;
use crate::fixtures::batch;
use crate::tokens::{WRITER, authenticator, with_token};

/// Test settings: tenants bill in EUR, the default onboarding checklist,
/// and a one-second shutdown grace so a test that stops a server is quick.
pub fn settings() -> Settings {
    let mut s = Settings::default();
    s.tenants.default.base_currency = "EUR".into();
    s.server.shutdown_grace_ms = 1_000;
    s
}

/// A running service and what a test needs to talk to it.
pub struct TestApp {
    /// Its database.
    pub db: TestDatabase,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// A connected channel, for any client.
    pub channel: Channel,
    /// An `IngestionService` client on [`TestApp::channel`] (tokens go on
    /// each request: [`with_token`]).
    pub client: IngestionServiceClient<Channel>,
    shutdown: CancellationToken,
    server: Option<JoinHandle<Result<(), ServerError>>>,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestApp").field("url", &self.url).finish()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Spawns service `S` on `db` with [`settings`] and its section's defaults.
pub async fn spawn_app<S: Service>(db: TestDatabase) -> TestApp {
    spawn_app_with::<S>(db, settings(), S::Settings::default()).await
}

/// Spawns service `S` on `db` with `settings` and its own section `own`,
/// through the same `retain_runtime::serve` its binary uses, on a port of
/// `127.0.0.1` the system picks, with the [`crate::tokens`].
pub async fn spawn_app_with<S: Service>(
    db: TestDatabase,
    settings: Settings,
    own: S::Settings,
) -> TestApp {
    spawn_app_at::<S>(db, settings, own, Clock::system()).await
}

/// [`spawn_app_with`] on `clock` (a [`Clock::manual`] the test moves).
pub async fn spawn_app_at<S: Service>(
    db: TestDatabase,
    settings: Settings,
    own: S::Settings,
    clock: Clock,
) -> TestApp {
    own.validate().expect("the test's settings are valid");
    spawn_composed(db, settings, clock, |ctx| S::build(ctx, own)).await
}

/// Spawns services `A` and `B` with their defaults merged into one server
/// on `db` — the all-in-one binary's way — with [`settings`].
pub async fn spawn_two<A: Service, B: Service>(db: TestDatabase) -> TestApp {
    spawn_composed(db, settings(), Clock::system(), |ctx| {
        Ok(A::build(ctx, A::Settings::default())?.merge(B::build(ctx, B::Settings::default())?))
    })
    .await
}

/// Services served in this process on a port of `127.0.0.1` the system
/// picks: what tests and benchmarks talk to.
pub struct Served {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Connected to it.
    pub channel: tonic::transport::Channel,
    /// Cancel to shut it down as SIGTERM would.
    pub shutdown: CancellationToken,
    /// `serve`'s task.
    pub server: tokio::task::JoinHandle<Result<(), ServerError>>,
}

/// Serves `services` (built from `ctx`) through the same
/// `retain_runtime::serve` a binary uses, with the test [`crate::tokens`],
/// and connects to it.
pub async fn serve_in_process(
    ctx: &Context,
    services: Services,
    health_interval: Duration,
) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let opts = ServeOptions {
        settings: ctx.settings.server.clone(),
        auth: Arc::new(authenticator()),
        db: ctx.db.clone(),
        health_interval,
        bus_metrics: None,
    };
    let server = tokio::spawn(retain_runtime::serve(
        listener,
        opts,
        services,
        shutdown.clone(),
    ));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Served {
        addr,
        channel,
        shutdown,
        server,
    }
}

/// Spawns the services `build` composes from one context — several
/// services merged into one server, as the all-in-one binary runs them
/// (`Services::merge`) — on `db` with `settings` and `clock`.
pub async fn spawn_composed(
    db: TestDatabase,
    settings: Settings,
    clock: Clock,
    build: impl FnOnce(&Context) -> anyhow::Result<Services>,
) -> TestApp {
    let ctx =
        Context::new(db.conn.clone(), settings.clone(), clock).expect("valid tenant settings");
    let services = build(&ctx).expect("build the services");
    let Served {
        addr,
        channel,
        shutdown,
        server,
    } = serve_in_process(&ctx, services, Duration::from_secs(1)).await;
    let url = format!("http://{addr}");
    TestApp {
        db,
        addr,
        url,
        client: IngestionServiceClient::new(channel.clone()).max_encoding_message_size(64 << 20),
        channel,
        shutdown,
        server: Some(server),
    }
}

impl TestApp {
    /// Shuts the server down as SIGTERM would and returns what `serve`
    /// returned, once its workers have stopped.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        self.shutdown.cancel();
        let server = self.server.take().unwrap();
        server.await.expect("the server task panicked")
    }

    /// `IngestSignals` as `token`.
    pub async fn ingest(
        &self,
        token: &str,
        req: v1::IngestSignalsRequest,
    ) -> Result<v1::IngestSignalsResponse, Status> {
        self.client
            .clone()
            .ingest_signals(with_token(token, req))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Ingests `signals` as acme (LIVE) and expects an answer.
    pub async fn send(&self, signals: Vec<v1::Signal>) -> v1::IngestSignalsResponse {
        self.ingest(WRITER, batch(signals)).await.unwrap()
    }

    /// Ingests `signals` as acme and expects the call to fail.
    pub async fn send_err(&self, signals: Vec<v1::Signal>) -> Status {
        self.ingest(WRITER, batch(signals)).await.unwrap_err()
    }

    /// Rows in `table`.
    pub async fn count(&self, table: &str) -> i64 {
        self.scalar(&format!("SELECT COUNT(*) FROM {table}")).await
    }

    /// The integer `sql` selects.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let backend = self.db.conn.get_database_backend();
        let row = self
            .db
            .conn
            .query_one_raw(Statement::from_string(backend, sql.to_owned()))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }

    /// Runs `sql`.
    pub async fn exec(&self, sql: &str) {
        let backend = self.db.conn.get_database_backend();
        self.db
            .conn
            .execute_raw(Statement::from_string(backend, sql.to_owned()))
            .await
            .unwrap();
    }

    /// What the service published on `topic` for `group` and nobody has
    /// consumed yet, oldest first, as (key, message): read through the
    /// bus API without leasing anything.
    pub async fn published<M: prost::Message + Default>(
        &self,
        topic: Topic<M>,
        group: &str,
    ) -> Vec<(String, M)> {
        let bus = Bus::new(self.db.conn.clone());
        bus.peek(topic.name(), group, 100_000)
            .await
            .unwrap()
            .iter()
            .map(|d| (d.key.clone().unwrap_or_default(), topic.decode(d).unwrap()))
            .collect()
    }

    /// `signals.recorded` messages waiting for `group`.
    pub async fn recorded(&self, group: &str) -> Vec<(String, v1::SignalsRecorded)> {
        self.published(retain_ingestion::topics::SIGNALS_RECORDED, group)
            .await
    }

    /// Waits until `group` has consumed every `signals.recorded` message
    /// (none pending or leased; dead letters do not count): what a
    /// consumer-maintained read model has caught up with.
    pub async fn settled(&self, group: &str) {
        self.drained(retain_ingestion::topics::SIGNALS_RECORDED.name(), group)
            .await;
    }

    /// Waits until `group` has consumed every message of `topic` (none
    /// pending or leased; dead letters do not count).
    pub async fn drained(&self, topic: &str, group: &str) {
        let bus = Bus::new(self.db.conn.clone());
        crate::eventually(
            &format!("{group} to consume every {topic} message"),
            std::time::Duration::from_secs(60),
            || async {
                let stats = bus.stats(topic, group).await.unwrap();
                (stats.pending == 0 && stats.leased == 0).then_some(())
            },
        )
        .await;
    }

    /// The metrics service's monthly rollup rows, as (account, month start
    /// µs, encoded contribution), in that order.
    pub async fn monthly_rows(&self) -> Vec<(String, i64, Vec<u8>)> {
        let backend = self.db.conn.get_database_backend();
        self.db
            .conn
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT account_id, month_start, contribution FROM metrics_account_months \
                 ORDER BY account_id, month_start",
            ))
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.try_get_by_index(0).unwrap(),
                    r.try_get_by_index(1).unwrap(),
                    r.try_get_by_index(2).unwrap(),
                )
            })
            .collect()
    }

    /// Rows in every table ingestion writes, and its bus messages.
    pub async fn footprint(&self) -> [i64; 5] {
        [
            self.count("signal_ids").await,
            self.count("signals").await,
            self.count("accounts").await,
            self.count("users").await,
            self.count("bus_messages").await,
        ]
    }
}
