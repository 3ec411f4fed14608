//! The account snapshot metrics stores and health scores.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use retain_domain::health::BillingStatus;
use retain_domain::kpi::experience::Scale;
use retain_domain::signal::{BillingInterval, Signal, SignalBody, SurveyKind, TicketStatus};
use retain_domain::snapshot::account_snapshot;
use retain_domain::{Currency, Money, Timestamp};

fn at(d: u32, h: u32) -> Timestamp {
    Timestamp::from_ymd_hms(2026, 5, d, h, 0, 0)
}

fn s(id: &str, t: Timestamp, body: SignalBody) -> Signal {
    Signal {
        event_id: id.into(),
        account_id: "acme".into(),
        occurred_at: t,
        body,
    }
}

fn nps(user: &str, score: i64) -> SignalBody {
    SignalBody::Survey {
        kind: SurveyKind::Nps,
        scale: Scale::ZeroToTen,
        score,
        user_id: user.into(),
        comment: String::new(),
    }
}

fn session() -> SignalBody {
    SignalBody::Session {
        user_id: "u1".into(),
        duration_seconds: 60,
    }
}

fn history() -> Vec<Signal> {
    let eur = Currency::parse("EUR").unwrap();
    vec![
        s("s-old", Timestamp::from_ymd(2026, 3, 1), session()), // before the window
        s("s-1", at(10, 9), session()),
        s("s-2", at(10, 15), session()), // same day
        s("s-3", at(20, 9), session()),
        s("n-1", at(2, 9), nps("u1", 3)),
        s("n-2", at(25, 9), nps("u1", 9)), // u1's latest
        s("n-3", at(3, 9), nps("u2", 7)),
        s(
            "t-1",
            at(12, 9),
            SignalBody::Ticket {
                ticket_id: "T1".into(),
                status: TicketStatus::Opened,
                topics: vec!["integration".into()],
                contacts_until_resolution: 0,
            },
        ),
        s(
            "t-2",
            at(13, 9),
            SignalBody::Ticket {
                ticket_id: "T1".into(),
                status: TicketStatus::Resolved,
                topics: vec!["integration".into()],
                contacts_until_resolution: 2,
            },
        ),
        s(
            "a-1",
            at(14, 9),
            SignalBody::Action {
                user_id: "u1".into(),
                action_key: "export_report".into(),
                count: 3,
            },
        ),
        s("b-1", at(1, 9), SignalBody::Billing(BillingStatus::Overdue)),
        s("b-2", at(5, 9), SignalBody::Billing(BillingStatus::Current)),
        s(
            "m-1",
            at(4, 9),
            SignalBody::Subscription {
                amount: Money::new(120_000, eur),
                interval: BillingInterval::Annual,
                churn_reason: None,
                add_on: false,
                opening: false,
            },
        ),
        s(
            "o-1",
            at(6, 9),
            SignalBody::Milestone {
                key: "connect_data".into(),
                achieved: true,
            },
        ),
        s("late", at(31, 9), session()), // after as_of: ignored
    ]
}

#[test]
fn a_snapshot_holds_the_health_inputs_of_its_window() {
    let checklist = vec!["connect_data".to_owned(), "invite_teammate".to_owned()];
    let snap = account_snapshot(&history(), at(30, 0), &checklist);
    assert_eq!(snap.active_days_30d, 2, "10 and 20 May; March is outside");
    assert_eq!(snap.sessions_30d, 3);
    assert_eq!(snap.nps_mean, Some(8.0), "u1's latest (9) and u2 (7)");
    assert_eq!(snap.tickets_opened_30d, 1);
    assert_eq!(snap.ticket_topics_30d.get("integration"), Some(&1));
    assert_eq!(snap.billing_status, Some(BillingStatus::Current));
    assert_eq!(snap.mrr_minor, 10_000, "120,000 a year");
    assert_eq!(snap.actions_30d.get("export_report"), Some(&3));
    assert_eq!(snap.milestones_achieved, ["connect_data"]);
    assert_eq!(snap.milestones_missing, ["invite_teammate"]);
    assert!(snap.onboarding_stuck, "no progress for more than 14 days");
    assert_eq!(snap.onboarding_score, Some(50.0));
    let health = snap.health();
    assert_eq!(health.tickets_opened_30d, Some(1.0));
    assert_eq!(health.active_days_30d, Some(2.0));
}

#[test]
fn arrival_order_never_changes_a_snapshot() {
    let checklist = vec!["connect_data".to_owned()];
    let forward = account_snapshot(&history(), at(30, 0), &checklist);
    let mut reversed = history();
    reversed.reverse();
    assert_eq!(account_snapshot(&reversed, at(30, 0), &checklist), forward);
}

#[test]
fn an_account_without_sessions_has_no_usage_rather_than_zero() {
    let eur = Currency::parse("EUR").unwrap();
    let only_billing = vec![
        s("b-1", at(5, 9), SignalBody::Billing(BillingStatus::Current)),
        s(
            "m-1",
            at(4, 9),
            SignalBody::Subscription {
                amount: Money::new(5_000, eur),
                interval: BillingInterval::Monthly,
                churn_reason: None,
                add_on: false,
                opening: false,
            },
        ),
    ];
    let checklist = vec!["connect_data".to_owned()];
    let snap = account_snapshot(&only_billing, at(30, 0), &checklist);
    assert!(!snap.has_sessions);
    assert_eq!(
        snap.health().active_days_30d,
        None,
        "not measured, not zero"
    );
    // Nor is an account that never reported a milestone stuck in onboarding.
    assert!(!snap.onboarding_stuck);
    assert_eq!(snap.onboarding_score, None);
    // One session, even outside the window, makes usage measured (zero).
    let mut with_old_session = only_billing;
    with_old_session.push(s("s-old", Timestamp::from_ymd(2026, 3, 1), session()));
    let snap = account_snapshot(&with_old_session, at(30, 0), &checklist);
    assert_eq!(snap.health().active_days_30d, Some(0.0));
}

#[test]
fn an_opening_balance_is_the_mrr_until_the_first_change() {
    let eur = Currency::parse("EUR").unwrap();
    let sub = |minor: i64, opening: bool| SignalBody::Subscription {
        amount: Money::new(minor, eur),
        interval: BillingInterval::Monthly,
        churn_reason: None,
        add_on: false,
        opening,
    };
    let checklist: Vec<String> = Vec::new();
    // The opening alone is the account's MRR.
    let mut signals = vec![s("o-1", at(5, 9), sub(10_000, true))];
    assert_eq!(
        account_snapshot(&signals, at(30, 0), &checklist).mrr_minor,
        10_000
    );
    // A later change replaces it.
    signals.push(s("m-1", at(10, 9), sub(12_000, false)));
    assert_eq!(
        account_snapshot(&signals, at(30, 0), &checklist).mrr_minor,
        12_000
    );
    // Real history older than the opening wins over it, in any order.
    let backfilled = vec![
        s("o-1", at(5, 9), sub(10_000, true)),
        s("m-0", at(1, 9), sub(3_000, false)),
    ];
    assert_eq!(
        account_snapshot(&backfilled, at(30, 0), &checklist).mrr_minor,
        3_000
    );
    // Two openings at one instant: the lower MRR counts, whatever the ids.
    let tied = vec![
        s("a", at(5, 9), sub(9_000, true)),
        s("b", at(5, 9), sub(8_000, true)),
    ];
    assert_eq!(
        account_snapshot(&tied, at(30, 0), &checklist).mrr_minor,
        8_000
    );
}
