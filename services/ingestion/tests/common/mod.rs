//! The ingestion service on a real gRPC server over loopback, on a test
//! database, with tokens for two tenants and every role.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use retain_proto::v1;
use retain_proto::v1::ingestion_service_client::IngestionServiceClient;
use retain_runtime::{Authenticator, Principal, Role, ServeOptions, Services, Settings};
use retain_store::testing::TestDatabase;
use sea_orm::{ConnectionTrait, Statement};
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// `acme`: ingest + read.
pub const WRITER: &str = "acme-writer";
/// `acme`: read only.
pub const READER: &str = "acme-reader";
/// `acme`: ingest only.
pub const INGEST_ONLY: &str = "acme-ingest-only";
/// `globex`: ingest + read.
pub const GLOBEX: &str = "globex-writer";

pub struct App {
    pub db: TestDatabase,
    /// `http://127.0.0.1:port` of the server.
    pub url: String,
    pub client: IngestionServiceClient<Channel>,
    shutdown: CancellationToken,
}

impl Drop for App {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Test settings: EUR tenants, the default checklist.
pub fn settings() -> Settings {
    let mut s = Settings::default();
    s.tenants.default.base_currency = "EUR".into();
    s.server.shutdown_grace_ms = 1_000;
    s
}

pub async fn start(db: TestDatabase) -> App {
    start_with(db, settings()).await
}

pub async fn start_with(db: TestDatabase, settings: Settings) -> App {
    let mut auth = Authenticator::default();
    let p = |tenant: &str, roles: Vec<Role>| Principal {
        tenant: retain_domain::TenantId::parse(tenant).unwrap(),
        roles,
        name: String::new(),
    };
    auth.insert(WRITER, p("acme", vec![Role::Ingest, Role::Read]));
    auth.insert(READER, p("acme", vec![Role::Read]));
    auth.insert(INGEST_ONLY, p("acme", vec![Role::Ingest]));
    auth.insert(GLOBEX, p("globex", vec![Role::Ingest, Role::Read]));
    let ingestion = retain_ingestion::Ingestion::new(db.conn.clone(), &settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let opts = ServeOptions {
        settings: settings.server.clone(),
        auth: Arc::new(auth),
        db: db.conn.clone(),
        health_interval: Duration::from_secs(1),
    };
    tokio::spawn(retain_runtime::serve(
        listener,
        opts,
        Services::new().with(ingestion.server()),
        shutdown.clone(),
    ));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    App {
        db,
        url: format!("http://{addr}"),
        client: IngestionServiceClient::new(channel).max_encoding_message_size(64 << 20),
        shutdown,
    }
}

pub fn with_token<T>(token: &str, msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    req
}

impl App {
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

    /// Ingests `signals` as acme (LIVE).
    pub async fn send(&self, signals: Vec<v1::Signal>) -> v1::IngestSignalsResponse {
        self.ingest(WRITER, batch(signals)).await.unwrap()
    }

    pub async fn count(&self, table: &str) -> i64 {
        self.scalar(&format!("SELECT COUNT(*) FROM {table}")).await
    }

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

    pub async fn exec(&self, sql: &str) {
        let backend = self.db.conn.get_database_backend();
        self.db
            .conn
            .execute_raw(Statement::from_string(backend, sql.to_owned()))
            .await
            .unwrap();
    }

    /// `signals.recorded` messages of `group`: (key, event), by id.
    pub async fn recorded(&self, group: &str) -> Vec<(String, v1::SignalsRecorded)> {
        let backend = self.db.conn.get_database_backend();
        let rows = self
            .db
            .conn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                "SELECT msg_key, payload FROM bus_messages WHERE topic = 'signals.recorded' \
                 AND consumer_group = $1 ORDER BY id",
                [group.into()],
            ))
            .await
            .unwrap();
        rows.into_iter()
            .map(|r| {
                let key: String = r.try_get_by_index(0).unwrap();
                let payload: Vec<u8> = r.try_get_by_index(1).unwrap();
                (
                    key,
                    v1::SignalsRecorded::decode(payload.as_slice()).unwrap(),
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

pub fn batch(signals: Vec<v1::Signal>) -> v1::IngestSignalsRequest {
    v1::IngestSignalsRequest {
        signals,
        ..Default::default()
    }
}

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn ts(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

/// A signal an hour ago.
pub fn signal(event_id: &str, account: &str, body: v1::signal::Body) -> v1::Signal {
    v1::Signal {
        event_id: event_id.into(),
        account_id: account.into(),
        occurred_at: ts(now() - 3_600),
        body: Some(body),
    }
}

pub fn eur(minor: i64) -> Option<v1::Money> {
    Some(v1::Money {
        amount_minor: minor,
        currency: "EUR".into(),
    })
}

pub fn session(user: &str, seconds: i64) -> v1::signal::Body {
    v1::signal::Body::Session(v1::Session {
        user_id: user.into(),
        duration_seconds: seconds,
    })
}

pub fn nps(score: i32) -> v1::signal::Body {
    v1::signal::Body::Survey(v1::SurveyAnswer {
        kind: v1::SurveyKind::Nps as i32,
        score,
        user_id: "u1".into(),
        ..Default::default()
    })
}

pub fn subscription(minor: i64) -> v1::signal::Body {
    v1::signal::Body::Subscription(v1::SubscriptionChange {
        amount: eur(minor),
        interval: v1::BillingInterval::Monthly as i32,
        churn_reason: if minor == 0 {
            v1::ChurnReason::Price as i32
        } else {
            0
        },
        add_on: false,
    })
}

/// One valid signal of every kind, for `account` (cost is portfolio-wide).
pub fn every_kind(prefix: &str, account: &str) -> Vec<v1::Signal> {
    use v1::signal::Body;
    let bodies = vec![
        Body::Account(v1::AccountUpsert {
            name: Some("Acme GmbH".into()),
            segment: Some("Agencies".into()),
            plan: Some("pro".into()),
            csm_owner_email: Some("csm@vendor.io".into()),
            contact_emails: vec!["ops@acme.io".into()],
            seats: Some(25),
            lifecycle: v1::LifecycleStage::Active as i32,
            renewal_date: ts(now() + 90 * 86_400),
            acquisition_cost: eur(120_000),
        }),
        session("u1", 1_800),
        Body::Action(v1::ProductAction {
            user_id: "u2".into(),
            action_key: "export_report".into(),
            count: 3,
        }),
        Body::Ticket(v1::SupportTicket {
            ticket_id: "T-1".into(),
            status: v1::TicketStatus::Opened as i32,
            topics: vec!["integration".into()],
            contacts_until_resolution: 0,
        }),
        nps(9),
        subscription(49_900),
        Body::Billing(v1::BillingStatusChange {
            status: v1::BillingStatus::Current as i32,
        }),
        Body::Renewal(v1::Renewal {
            outcome: v1::RenewalOutcome::Due as i32,
            contract_end: ts(now() + 90 * 86_400),
        }),
        Body::Trial(v1::Trial {
            event: v1::TrialEvent::Converted as i32,
        }),
        Body::Milestone(v1::OnboardingMilestone {
            milestone_key: "data_source_connected".into(),
            achieved: true,
            user_id: "u1".into(),
        }),
        Body::Purchase(v1::Purchase { amount: eur(5_000) }),
    ];
    let mut out: Vec<v1::Signal> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, b)| signal(&format!("{prefix}-{i}"), account, b))
        .collect();
    out.push(signal(
        &format!("{prefix}-cost"),
        "*",
        Body::Cost(v1::Cost {
            kind: v1::CostKind::CustomerSuccess as i32,
            amount: eur(1_000_000),
            period: Some(v1::Period {
                start: ts(now() - 30 * 86_400),
                end: ts(now()),
            }),
        }),
    ));
    out
}

pub fn outcomes(r: &v1::IngestSignalsResponse) -> Vec<v1::SignalOutcome> {
    r.results
        .iter()
        .map(|x| v1::SignalOutcome::try_from(x.outcome).unwrap())
        .collect()
}

/// The field paths of result `i`'s violations.
pub fn fields(r: &v1::IngestSignalsResponse, i: usize) -> Vec<String> {
    r.results[i]
        .violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}
