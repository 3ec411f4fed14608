//! One test per validation rule, over real gRPC on SQLite and PostgreSQL:
//! the signal is REJECTED with the rule's field path, and nothing at all
//! is written (no signal, no account, no bus message).

#![allow(clippy::unwrap_used)]

use retain_ingestion::Ingestion;
use retain_proto::v1;
use retain_proto::v1::signal::Body;
use retain_testkit::*;

/// `rule!(name, signal, "field.path")`: the signal must be rejected with a
/// violation of exactly that field (relative to `signals[0].`).
macro_rules! rule {
    ($name:ident, $signal:expr, $field:expr) => {
        retain_testkit::storage_test!(async fn $name(db) {
            let app = spawn_app::<Ingestion>(db).await;
            let s: v1::Signal = $signal;
            let r = app.send(vec![s]).await;
            assert_eq!(outcomes(&r), vec![v1::SignalOutcome::Rejected], "{r:?}");
            let want = format!("signals[0].{}", $field);
            assert!(
                fields(&r, 0).contains(&want),
                "expected a violation of {want}, got {:?}",
                r.results[0].violations
            );
            assert!(!r.results[0].violations[0].description.is_empty());
            assert_eq!(app.footprint().await, [0, 0, 0, 0, 0]);
        });
    };
}

fn ok() -> v1::Signal {
    signal("e-1", "acme-1", nps(9))
}

fn with(f: impl FnOnce(&mut v1::Signal)) -> v1::Signal {
    let mut s = ok();
    f(&mut s);
    s
}

fn body(b: Body) -> v1::Signal {
    signal("e-1", "acme-1", b)
}

fn survey(kind: v1::SurveyKind, scale: v1::SurveyScale, score: i32) -> v1::Signal {
    body(Body::Survey(v1::SurveyAnswer {
        kind: kind as i32,
        scale: scale as i32,
        score,
        ..Default::default()
    }))
}

fn sub(
    amount: Option<v1::Money>,
    interval: v1::BillingInterval,
    reason: v1::ChurnReason,
) -> v1::Signal {
    body(Body::Subscription(v1::SubscriptionChange {
        amount,
        interval: interval as i32,
        churn_reason: reason as i32,
        add_on: false,
        opening_balance: false,
    }))
}

fn money(minor: i64, currency: &str) -> Option<v1::Money> {
    Some(v1::Money {
        amount_minor: minor,
        currency: currency.into(),
    })
}

fn account(f: impl FnOnce(&mut v1::AccountUpsert)) -> v1::Signal {
    let mut a = v1::AccountUpsert::default();
    f(&mut a);
    body(Body::Account(a))
}

use v1::BillingInterval::{Annual, Monthly, Unspecified as NoInterval};
use v1::ChurnReason::{Other, Unspecified as NoReason};
use v1::SurveyKind::{Ces, Csat, Nps};
use v1::SurveyScale::{OneToFive, OneToSeven, OneToTen, Unspecified as DefaultScale, ZeroToTen};

// Envelope.
rule!(
    event_id_is_required,
    with(|s| s.event_id.clear()),
    "event_id"
);
rule!(
    event_id_is_bounded,
    with(|s| s.event_id = "e".repeat(129)),
    "event_id"
);
rule!(
    account_id_is_required,
    with(|s| s.account_id.clear()),
    "account_id"
);
rule!(
    account_id_has_no_spaces,
    with(|s| s.account_id = "acme 1".into()),
    "account_id"
);
rule!(
    occurred_at_is_required,
    with(|s| s.occurred_at = None),
    "occurred_at"
);
rule!(
    occurred_at_nanos_in_range,
    with(|s| s.occurred_at = Some(prost_types::Timestamp {
        seconds: now(),
        nanos: -1
    })),
    "occurred_at"
);
rule!(
    occurred_at_not_in_the_future,
    with(|s| s.occurred_at = ts(now() + 3_600)),
    "occurred_at"
);
rule!(
    live_signals_are_recent,
    with(|s| s.occurred_at = ts(now() - 60 * 86_400)),
    "occurred_at"
);
rule!(body_is_required, with(|s| s.body = None), "body");

// Surveys: kind, scale per kind, score range per scale.
rule!(
    survey_kind_is_required,
    survey(v1::SurveyKind::Unspecified, DefaultScale, 5),
    "survey.kind"
);
rule!(
    nps_is_0_to_10,
    survey(Nps, DefaultScale, 11),
    "survey.score"
);
rule!(
    nps_is_not_negative,
    survey(Nps, ZeroToTen, -1),
    "survey.score"
);
rule!(
    nps_uses_its_own_scale,
    survey(Nps, OneToFive, 3),
    "survey.scale"
);
rule!(csat_1_to_5, survey(Csat, OneToFive, 6), "survey.score");
rule!(
    csat_1_to_10_starts_at_1,
    survey(Csat, OneToTen, 0),
    "survey.score"
);
rule!(
    csat_not_on_1_to_7,
    survey(Csat, OneToSeven, 5),
    "survey.scale"
);
rule!(ces_1_to_7, survey(Ces, OneToSeven, 8), "survey.score");
rule!(
    ces_not_on_0_to_10,
    survey(Ces, ZeroToTen, 5),
    "survey.scale"
);

// Subscriptions and money.
rule!(
    mrr_is_not_negative,
    sub(money(-1, "EUR"), Monthly, NoReason),
    "subscription.amount.amount_minor"
);
rule!(
    amount_is_required,
    sub(None, Monthly, NoReason),
    "subscription.amount"
);
rule!(
    currency_is_iso_4217,
    sub(money(100, "euro"), Monthly, NoReason),
    "subscription.amount.currency"
);
rule!(
    currency_is_the_tenants,
    sub(money(100, "USD"), Annual, NoReason),
    "subscription.amount.currency"
);
rule!(
    interval_is_required,
    sub(money(100, "EUR"), NoInterval, NoReason),
    "subscription.interval"
);
rule!(
    churn_needs_a_reason,
    sub(money(0, "EUR"), Monthly, NoReason),
    "subscription.churn_reason"
);
rule!(
    purchase_is_positive,
    body(Body::Purchase(v1::Purchase {
        amount: money(0, "EUR")
    })),
    "purchase.amount.amount_minor"
);
rule!(
    cost_kind_is_required,
    body(Body::Cost(v1::Cost {
        kind: 0,
        amount: money(1, "EUR"),
        period: Some(v1::Period {
            start: ts(now() - 86_400),
            end: ts(now())
        })
    })),
    "cost.kind"
);
rule!(
    cost_period_is_required,
    body(Body::Cost(v1::Cost {
        kind: v1::CostKind::Acquisition as i32,
        amount: money(1, "EUR"),
        period: None
    })),
    "cost.period"
);

// Other kinds.
rule!(
    session_user_is_required,
    body(session("", 60)),
    "session.user_id"
);
rule!(
    session_is_at_most_a_day,
    body(session("u1", 86_401)),
    "session.duration_seconds"
);
rule!(
    session_is_not_negative,
    body(session("u1", -5)),
    "session.duration_seconds"
);
rule!(
    action_key_is_required,
    body(Body::Action(v1::ProductAction {
        user_id: "u1".into(),
        action_key: String::new(),
        count: 1
    })),
    "action.action_key"
);
rule!(
    action_count_is_positive,
    body(Body::Action(v1::ProductAction {
        user_id: "u1".into(),
        action_key: "export".into(),
        count: 0
    })),
    "action.count"
);
rule!(
    ticket_status_is_required,
    body(Body::Ticket(v1::SupportTicket {
        ticket_id: "T-1".into(),
        ..Default::default()
    })),
    "ticket.status"
);
rule!(
    resolved_ticket_has_contacts,
    body(Body::Ticket(v1::SupportTicket {
        ticket_id: "T-1".into(),
        status: v1::TicketStatus::Resolved as i32,
        topics: vec![],
        contacts_until_resolution: 0
    })),
    "ticket.contacts_until_resolution"
);
rule!(
    billing_status_is_required,
    body(Body::Billing(v1::BillingStatusChange { status: 0 })),
    "billing.status"
);
rule!(
    billing_status_is_known,
    body(Body::Billing(v1::BillingStatusChange { status: 42 })),
    "billing.status"
);
rule!(
    renewal_outcome_is_required,
    body(Body::Renewal(v1::Renewal {
        outcome: 0,
        contract_end: None
    })),
    "renewal.outcome"
);
rule!(
    renewal_contract_end_is_required,
    body(Body::Renewal(v1::Renewal {
        outcome: v1::RenewalOutcome::Renewed as i32,
        contract_end: None
    })),
    "renewal.contract_end"
);
rule!(
    trial_event_is_required,
    body(Body::Trial(v1::Trial { event: 0 })),
    "trial.event"
);
rule!(
    milestone_is_on_the_checklist,
    body(Body::Milestone(v1::OnboardingMilestone {
        milestone_key: "made_coffee".into(),
        achieved: true,
        user_id: String::new()
    })),
    "milestone.milestone_key"
);
rule!(
    owner_email_is_an_email,
    account(|a| a.csm_owner_email = Some("not-an-email".into())),
    "account.csm_owner_email"
);
rule!(
    contact_emails_are_emails,
    account(|a| a.contact_emails = vec!["ok@acme.io".into(), "nope".into()]),
    "account.contact_emails[1]"
);
rule!(
    seats_are_not_negative,
    account(|a| a.seats = Some(-1)),
    "account.seats"
);
rule!(
    account_name_is_bounded,
    account(|a| a.name = Some("n".repeat(201))),
    "account.name"
);
rule!(
    acquisition_cost_in_base_currency,
    account(|a| a.acquisition_cost = money(10, "GBP")),
    "account.acquisition_cost.currency"
);

// Enum numbers the contract does not define are refused with their field,
// never read as "unspecified" (a survey scale of 99 used to score on the
// default scale; a lifecycle of 99 was written into the account).
rule!(
    survey_scale_is_defined,
    body(Body::Survey(v1::SurveyAnswer {
        kind: v1::SurveyKind::Nps as i32,
        scale: 99,
        score: 9,
        ..Default::default()
    })),
    "survey.scale"
);
rule!(
    survey_scale_is_not_negative,
    body(Body::Survey(v1::SurveyAnswer {
        kind: v1::SurveyKind::Nps as i32,
        scale: -7,
        score: 9,
        ..Default::default()
    })),
    "survey.scale"
);
rule!(
    survey_kind_is_defined,
    body(Body::Survey(v1::SurveyAnswer {
        kind: 7,
        score: 9,
        ..Default::default()
    })),
    "survey.kind"
);
rule!(
    churn_reason_is_defined,
    sub(
        money(0, "EUR"),
        v1::BillingInterval::Monthly,
        v1::ChurnReason::Price
    )
    .tap(|s| {
        if let Some(Body::Subscription(x)) = &mut s.body {
            x.churn_reason = 99;
        }
    }),
    "subscription.churn_reason"
);
rule!(
    account_lifecycle_is_defined,
    account(|a| a.lifecycle = 99),
    "account.lifecycle"
);
rule!(
    account_lifecycle_is_not_negative,
    account(|a| a.lifecycle = -1),
    "account.lifecycle"
);
rule!(
    ticket_status_is_defined,
    body(Body::Ticket(v1::SupportTicket {
        ticket_id: "T-1".into(),
        status: 9,
        topics: vec![],
        contacts_until_resolution: 0
    })),
    "ticket.status"
);
rule!(
    billing_interval_is_defined,
    sub(
        money(100, "EUR"),
        v1::BillingInterval::Monthly,
        v1::ChurnReason::Unspecified
    )
    .tap(|s| {
        if let Some(Body::Subscription(x)) = &mut s.body {
            x.interval = 3;
        }
    }),
    "subscription.interval"
);
rule!(
    an_opening_balance_is_not_an_add_on,
    sub(
        money(100, "EUR"),
        v1::BillingInterval::Monthly,
        v1::ChurnReason::Unspecified
    )
    .tap(|s| {
        if let Some(Body::Subscription(x)) = &mut s.body {
            x.add_on = true;
            x.opening_balance = true;
        }
    }),
    "subscription.opening_balance"
);
rule!(
    renewal_outcome_is_defined,
    body(Body::Renewal(v1::Renewal {
        outcome: 12,
        contract_end: None
    })),
    "renewal.outcome"
);
rule!(
    trial_event_is_defined,
    body(Body::Trial(v1::Trial { event: -3 })),
    "trial.event"
);

// Text a database cannot store (U+0000: PostgreSQL refuses it) is refused
// by validation, identically on both backends, before any write.
rule!(
    event_id_holds_no_nul,
    with(|s| s.event_id = "e\0".into()),
    "event_id"
);
rule!(
    account_name_holds_no_nul,
    account(|a| a.name = Some("Acme\0GmbH".into())),
    "account.name"
);
rule!(
    account_segment_holds_no_nul,
    account(|a| a.segment = Some("\0".into())),
    "account.segment"
);
rule!(
    account_plan_holds_no_nul,
    account(|a| a.plan = Some("pro\0".into())),
    "account.plan"
);
rule!(
    csm_email_holds_no_nul,
    account(|a| a.csm_owner_email = Some("csm\0@vendor.io".into())),
    "account.csm_owner_email"
);
rule!(
    session_user_holds_no_nul,
    body(Body::Session(v1::Session {
        user_id: "u\0".into(),
        duration_seconds: 5
    })),
    "session.user_id"
);
rule!(
    milestone_user_holds_no_nul,
    body(Body::Milestone(v1::OnboardingMilestone {
        milestone_key: "data_source_connected".into(),
        achieved: true,
        user_id: "u\0".into()
    })),
    "milestone.user_id"
);
rule!(
    survey_comment_is_bounded,
    body(Body::Survey(v1::SurveyAnswer {
        kind: v1::SurveyKind::Nps as i32,
        score: 9,
        comment: "x".repeat(1 << 20),
        ..Default::default()
    })),
    "survey.comment"
);
// Timestamps: a documented window (1970 to 2199), nanos included.
rule!(
    occurred_at_before_1970_is_refused,
    with(|s| s.occurred_at = ts(-62_135_596_800 - 86_400)),
    "occurred_at"
);
rule!(
    occurred_at_at_the_minimum_is_refused,
    with(|s| s.occurred_at = ts(i64::MIN)),
    "occurred_at"
);
rule!(
    renewal_date_in_year_82000_is_refused,
    account(|a| a.renewal_date = ts(2_525_630_000_000)),
    "account.renewal_date"
);
rule!(
    contract_end_nanos_are_checked,
    body(Body::Renewal(v1::Renewal {
        outcome: v1::RenewalOutcome::Due as i32,
        contract_end: Some(prost_types::Timestamp {
            seconds: 1_800_000_000,
            nanos: -1
        })
    })),
    "renewal.contract_end"
);
// Money: a sane upper bound (10^14 minor units).
rule!(
    an_amount_of_i64_max_is_refused,
    sub(
        money(i64::MAX, "EUR"),
        v1::BillingInterval::Monthly,
        v1::ChurnReason::Unspecified
    ),
    "subscription.amount.amount_minor"
);

/// Changes a value in place and returns it.
trait Tap: Sized {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

impl Tap for v1::Signal {}

retain_testkit::storage_test!(async fn every_violation_is_reported_at_once(db) {
    let app = spawn_app::<Ingestion>(db).await;
    let mut s = sub(money(-5, "USD"), NoInterval, NoReason);
    s.event_id.clear();
    let r = app.send(vec![ok(), s]).await;
    assert_eq!(
        outcomes(&r),
        vec![v1::SignalOutcome::Accepted, v1::SignalOutcome::Rejected]
    );
    let mut got = fields(&r, 1);
    got.sort();
    assert_eq!(
        got,
        vec![
            "signals[1].event_id",
            "signals[1].subscription.amount.amount_minor",
            "signals[1].subscription.amount.currency",
            "signals[1].subscription.interval",
        ]
    );
    // The valid neighbour was stored; the invalid one left no trace.
    assert_eq!(app.count("signals").await, 1);
});

retain_testkit::storage_test!(async fn annual_plans_and_portfolio_costs_are_accepted(db) {
    let app = spawn_app::<Ingestion>(db).await;
    let r = app
        .send(vec![
            sub(money(119_999, "EUR"), Annual, NoReason),
            {
                let mut s = sub(money(0, "EUR"), Monthly, Other);
                s.event_id = "e-2".into();
                s
            },
        ])
        .await;
    assert_eq!(r.accepted, 2, "{r:?}");
});

// A wire-level violation (an undefined enum number) no longer hides the
// domain's violations of the other fields: one answer lists them all.
retain_testkit::storage_test!(async fn wire_and_domain_violations_are_reported_together(db) {
    let app = spawn_app::<Ingestion>(db).await;
    let mut s = body(Body::Survey(v1::SurveyAnswer { kind: 9, score: 5, ..Default::default() }));
    s.event_id = "e".repeat(200);
    s.account_id = "#".repeat(300);
    let r = app.send(vec![s]).await;
    let mut got = fields(&r, 0);
    got.sort();
    assert_eq!(got, ["signals[0].account_id", "signals[0].event_id", "signals[0].survey.kind"], "{:?}", r.results[0].violations);
    assert_eq!(app.footprint().await, [0, 0, 0, 0, 0]);
});
