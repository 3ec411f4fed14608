//! What the health tests share: ingestion, metrics and health in one
//! server on the test database, a client, and the worked example's B2B account.

#![allow(dead_code)] // Each test file uses a part of it.

use retain_health::Health;
use retain_ingestion::Ingestion;
use retain_metrics::Metrics;
use retain_proto::v1;
use retain_proto::v1::health_service_client::HealthServiceClient;
use retain_proto::v1::signal::Body;
use retain_runtime::Service;
use retain_testkit::*;

pub const DAY: i64 = 86_400;

/// Ingestion, metrics and health over one database, as in production.
pub async fn spawn(db: TestDatabase) -> TestApp {
    spawn_composed(db, settings(), retain_runtime::Clock::system(), |ctx| {
        let ingestion = Ingestion::build(ctx, Default::default())?;
        let metrics = Metrics::build(ctx, Default::default())?;
        let health = Health::build(ctx, Default::default())?;
        Ok(ingestion.merge(metrics).merge(health))
    })
    .await
}

pub fn client(app: &TestApp) -> HealthServiceClient<tonic::transport::Channel> {
    HealthServiceClient::new(app.channel.clone())
}

/// The model in force for the whole tenant (the built-in one until a put).
pub async fn tenant_model(app: &TestApp) -> v1::ScoringModel {
    client(app)
        .get_scoring_model(with_token(READER, v1::GetScoringModelRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap()
}

/// A signal `seconds` ago.
pub fn ago(id: &str, account: &str, seconds: i64, body: Body) -> v1::Signal {
    v1::Signal {
        occurred_at: ts(now() - seconds),
        ..signal(id, account, body)
    }
}

/// A ticket opened on `topic`.
pub fn ticket(id: &str, topic: &str) -> Body {
    Body::Ticket(v1::SupportTicket {
        ticket_id: id.into(),
        status: v1::TicketStatus::Opened as i32,
        topics: vec![topic.into()],
        contacts_until_resolution: 0,
    })
}

/// A billing status change.
pub fn billing(status: v1::BillingStatus) -> Body {
    Body::Billing(v1::BillingStatusChange {
        status: status as i32,
    })
}

/// 16 active days of a 20-day target, NPS 7, billing current and
/// `tickets` integration tickets this month: with three, the worked example's B2B
/// account (69.0, Yellow, 21 signals); with none, 89.0 Green (18 signals).
pub fn account(id: &str, tickets: i64) -> Vec<v1::Signal> {
    let mut s: Vec<v1::Signal> = (0..16)
        .map(|d| ago(&format!("{id}-s{d}"), id, d * DAY + 600, session("u1", 900)))
        .collect();
    s.push(ago(&format!("{id}-nps"), id, 2 * DAY, nps(7)));
    for t in 0..tickets {
        let tid = format!("{id}-t{t}");
        s.push(ago(&tid, id, (t + 1) * DAY, ticket(&tid, "integration")));
    }
    s.push(ago(
        &format!("{id}-bill"),
        id,
        20 * DAY,
        billing(v1::BillingStatus::Current),
    ));
    s
}

/// The worked example's B2B account.
pub fn b2b(id: &str) -> Vec<v1::Signal> {
    account(id, 3)
}
