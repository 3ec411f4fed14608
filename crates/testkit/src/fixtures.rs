//! Fixtures: valid signals of every kind (tenants bill in EUR, see
//! [`crate::settings`]), readers of ingestion answers, and waits for what
//! a running service shows over gRPC (a health status, a CSM task).

use retain_proto::v1;

/// A request carrying `signals` (LIVE, not all-or-nothing).
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

/// A timestamp `seconds` after the epoch.
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

/// `minor` cents of EUR.
pub fn eur(minor: i64) -> Option<v1::Money> {
    Some(v1::Money {
        amount_minor: minor,
        currency: "EUR".into(),
    })
}

/// A session of `user` lasting `seconds`.
pub fn session(user: &str, seconds: i64) -> v1::signal::Body {
    v1::signal::Body::Session(v1::Session {
        user_id: user.into(),
        duration_seconds: seconds,
    })
}

/// An NPS answer of `score`.
pub fn nps(score: i32) -> v1::signal::Body {
    v1::signal::Body::Survey(v1::SurveyAnswer {
        kind: v1::SurveyKind::Nps as i32,
        score,
        user_id: "u1".into(),
        ..Default::default()
    })
}

/// A monthly subscription at `minor` cents of EUR (0: churned for price).
pub fn subscription(minor: i64) -> v1::signal::Body {
    subscription_in(minor, "EUR")
}

/// [`subscription`] in `currency` (`USD`: the built-in base currency).
pub fn subscription_in(minor: i64, currency: &str) -> v1::signal::Body {
    v1::signal::Body::Subscription(v1::SubscriptionChange {
        amount: Some(v1::Money {
            amount_minor: minor,
            currency: currency.into(),
        }),
        interval: v1::BillingInterval::Monthly as i32,
        churn_reason: if minor == 0 {
            v1::ChurnReason::Price as i32
        } else {
            0
        },
        add_on: false,
        opening_balance: false,
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

/// The outcome of every signal of an answer, in order.
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

/// The value of `kpi` in a portfolio answer.
pub fn kpi_value(r: &v1::GetPortfolioMetricsResponse, kpi: v1::Kpi) -> v1::kpi_value::Result {
    r.kpis
        .iter()
        .find(|e| e.kpi == kpi as i32)
        .and_then(|e| e.value.clone())
        .and_then(|v| v.result)
        .unwrap_or_else(|| panic!("{kpi:?} is missing from the answer"))
}

/// `kpi`'s number (a percentage, ratio, score…); panics on another kind.
pub fn kpi_number(r: &v1::GetPortfolioMetricsResponse, kpi: v1::Kpi) -> f64 {
    match kpi_value(r, kpi) {
        v1::kpi_value::Result::Value(v) => v,
        other => panic!("{kpi:?}: {other:?}"),
    }
}

/// `kpi`'s money amount in minor units; panics on another kind.
pub fn kpi_money(r: &v1::GetPortfolioMetricsResponse, kpi: v1::Kpi) -> i64 {
    match kpi_value(r, kpi) {
        v1::kpi_value::Result::Money(m) => m.amount_minor,
        other => panic!("{kpi:?}: {other:?}"),
    }
}

/// `kpi`'s count; panics on another kind.
pub fn kpi_count(r: &v1::GetPortfolioMetricsResponse, kpi: v1::Kpi) -> i64 {
    match kpi_value(r, kpi) {
        v1::kpi_value::Result::Count(n) => n,
        other => panic!("{kpi:?}: {other:?}"),
    }
}

/// A signal `days_ago` days before now (to the second).
pub fn days_ago(id: &str, account: &str, days_ago: i64, body: v1::signal::Body) -> v1::Signal {
    v1::Signal {
        occurred_at: ts(now() - days_ago * 86_400),
        ..signal(id, account, body)
    }
}

/// A monthly subscription change to `minor` cents of EUR (0 churns, for
/// `reason`).
pub fn mrr_change(minor: i64, reason: v1::ChurnReason) -> v1::signal::Body {
    v1::signal::Body::Subscription(v1::SubscriptionChange {
        amount: eur(minor),
        interval: v1::BillingInterval::Monthly as i32,
        churn_reason: reason as i32,
        add_on: false,
        opening_balance: false,
    })
}

/// Waits (at most 60 s) until the CSM queue behind `channel` holds a task
/// titled `title` for `account`, as `token` sees it, and returns it.
pub async fn task_titled(
    channel: &tonic::transport::Channel,
    token: &str,
    account: &str,
    title: &str,
) -> v1::Task {
    let client = v1::notification_service_client::NotificationServiceClient::new(channel.clone());
    crate::eventually(
        &format!("{account}'s task {title:?}"),
        std::time::Duration::from_secs(60),
        || {
            let mut client = client.clone();
            let request = crate::with_token(
                token,
                v1::ListTasksRequest {
                    account_id: account.into(),
                    ..Default::default()
                },
            );
            async move {
                client
                    .list_tasks(request)
                    .await
                    .unwrap()
                    .into_inner()
                    .tasks
                    .into_iter()
                    .find(|t| t.title == title)
            }
        },
    )
    .await
}

/// The `grpc.health.v1` status the server behind `channel` reports for
/// `service` (`""`: overall; `retain_runtime::LIVENESS`).
pub async fn health_status(
    channel: &tonic::transport::Channel,
    service: &str,
) -> tonic_health::pb::health_check_response::ServingStatus {
    let request = tonic_health::pb::HealthCheckRequest {
        service: service.into(),
    };
    tonic_health::pb::health_client::HealthClient::new(channel.clone())
        .check(request)
        .await
        .unwrap()
        .into_inner()
        .status()
}
