//! The generator's promises, in process: determinism, coverage of every
//! case the metrics tests need, validity under the ingestion rules, and
//! delivery order and batching.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashSet};

use retain_datagen::calendar::{DAY, month_start};
use retain_datagen::{
    Config, Dataset, Entry, LATE_FRACTION, MAX_BATCH_SIGNALS, PORTFOLIO, generate, kind_name,
    mode_for,
};
use retain_domain::Currency;
use retain_domain::signal::{Rules, validate};
use retain_domain::time::Timestamp;
use retain_proto::convert::signal_from_proto;
use retain_proto::v1;
use v1::signal::Body;

fn secs(s: &v1::Signal) -> i64 {
    s.occurred_at.as_ref().unwrap().seconds
}

#[test]
fn same_seed_same_signals_other_seed_other_signals() {
    let cfg = Config::default();
    let a = generate(&cfg);
    let b = generate(&cfg);
    assert_eq!(a, b);
    let c = generate(&Config {
        seed: 2,
        ..cfg.clone()
    });
    assert_ne!(a.signals, c.signals);
    assert_eq!(a.in_delivery_order(9), b.in_delivery_order(9));
    assert_ne!(
        a.in_delivery_order(9).signals,
        a.in_delivery_order(10).signals
    );
}

#[test]
fn more_accounts_leave_the_existing_ones_unchanged() {
    let small = generate(&Config {
        accounts: 30,
        ..Config::default()
    });
    let big = generate(&Config {
        accounts: 40,
        ..Config::default()
    });
    for a in &small.accounts {
        let before: Vec<_> = small.signals_of(&a.id).collect();
        let after: Vec<_> = big.signals_of(&a.id).collect();
        assert_eq!(before, after, "{}", a.id);
    }
}

/// Checks every signal of `data` against the ingestion service's
/// validation (the same functions it calls), as BACKFILL and, for the
/// signals `mode_for` sends LIVE, as LIVE; and the limits of
/// docs/INGESTION.md the domain does not check itself.
fn assert_valid(data: &Dataset) {
    let cfg = &data.config;
    let currency = Currency::parse(&cfg.currency).unwrap();
    let backfill = Rules {
        now: Timestamp::from_seconds(cfg.now),
        max_future_seconds: 0,
        max_past_seconds: None,
        base_currency: currency,
        checklist: &cfg.checklist,
    };
    let live = Rules {
        max_past_seconds: Some(30 * DAY),
        ..backfill
    };
    let mut ids = HashSet::new();
    for s in &data.signals {
        assert!(
            ids.insert(s.event_id.clone()),
            "duplicate event id {}",
            s.event_id
        );
        assert!(s.event_id.len() <= 128);
        let t = secs(s);
        assert!(t >= cfg.start() && t < cfg.now, "{} at {t}", s.event_id);
        let raw = signal_from_proto(s).unwrap_or_else(|v| panic!("{s:?}: {v:?}"));
        validate(&raw, &backfill).unwrap_or_else(|v| panic!("{s:?}: {v:?}"));
        if mode_for(t, cfg.now) == v1::IngestMode::Live {
            validate(&raw, &live).unwrap_or_else(|v| panic!("LIVE {s:?}: {v:?}"));
        }
        if s.account_id != PORTFOLIO {
            assert!(data.account(&s.account_id).is_some(), "{}", s.account_id);
        }
    }
    for pair in data.signals.windows(2) {
        assert!(
            secs(&pair[0]) <= secs(&pair[1]),
            "signals are in time order"
        );
    }
}

#[test]
fn every_signal_passes_ingestion_validation() {
    assert_valid(&generate(&Config::default()));
    for (seed, accounts, days) in [(3, 13, 45), (4, 50, 400), (5, 25, 10), (6, 1, 1)] {
        let data = generate(&Config {
            seed,
            accounts,
            history_days: days,
            now: 1_700_000_123,
            currency: "USD".into(),
            id_prefix: "t1/".into(),
            ..Config::default()
        });
        assert!(data.signals.iter().all(|s| s.event_id.starts_with("t1/")));
        assert_valid(&data);
    }
}

/// Everything the default dataset must hold.
fn coverage(data: &Dataset) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut add = |what: String| {
        seen.insert(what);
    };
    // Subscription movements, replayed per account.
    let mut mrr: BTreeMap<&str, (i64, bool)> = BTreeMap::new();
    let mut moves_by_month: BTreeMap<(&str, i64), Vec<&'static str>> = BTreeMap::new();
    for s in &data.signals {
        add(format!("kind {}", kind_name(s)));
        match s.body.as_ref().unwrap() {
            Body::Account(a) => {
                if let Some(seg) = &a.segment {
                    add(format!("segment {seg}"));
                }
                if a.lifecycle != 0 {
                    add(format!("lifecycle {:?}", a.lifecycle()));
                }
                if a.acquisition_cost.is_some() && a.renewal_date.is_some() && a.seats.is_some() {
                    add("full upsert".into());
                }
            }
            Body::Action(a) => add(format!("action {}", a.action_key)),
            Body::Ticket(t) => {
                add(format!("ticket {:?}", t.status()));
                if t.status() == v1::TicketStatus::Resolved {
                    assert!(t.contacts_until_resolution >= 1);
                }
                assert!(!t.topics.is_empty());
            }
            Body::Survey(x) => add(format!("survey {:?} {:?}", x.kind(), x.scale())),
            Body::Subscription(x) => {
                let annual = x.interval() == v1::BillingInterval::Annual;
                let amount = x.amount.as_ref().unwrap().amount_minor;
                let new = if annual {
                    assert_eq!(amount % 12, 0, "annual amounts keep MRR integral");
                    amount / 12
                } else {
                    amount
                };
                if annual {
                    add("annual".into());
                }
                let (before, paid) = mrr
                    .get(s.account_id.as_str())
                    .copied()
                    .unwrap_or((0, false));
                let kind = match (before, new) {
                    (0, n) if n > 0 && !paid => "new",
                    (0, n) if n > 0 => "reactivation",
                    (b, 0) if b > 0 => "churn",
                    (b, n) if n > b => "expansion",
                    (b, n) if n < b => "contraction",
                    _ => "none",
                };
                add(format!("movement {kind}"));
                if kind == "churn" {
                    add(format!("churn reason {:?}", x.churn_reason()));
                }
                if x.add_on && kind == "contraction" {
                    add("add-on cancelled".into());
                }
                if x.add_on && kind == "expansion" {
                    add("add-on bought".into());
                }
                mrr.insert(&s.account_id, (new, paid || new > 0));
                moves_by_month
                    .entry((s.account_id.as_str(), month_start(secs(s))))
                    .or_default()
                    .push(kind);
            }
            Body::Billing(b) => add(format!("billing {:?}", b.status())),
            Body::Renewal(r) => {
                assert!(r.contract_end.is_some());
                add(format!("renewal {:?}", r.outcome()));
            }
            Body::Trial(t) => add(format!("trial {:?}", t.event())),
            Body::Milestone(m) => {
                assert!(data.config.checklist.contains(&m.milestone_key));
                add(format!("milestone achieved {}", m.achieved));
            }
            Body::Cost(c) => {
                assert_eq!(s.account_id, PORTFOLIO);
                let p = c.period.as_ref().unwrap();
                assert!(p.start.unwrap().seconds < p.end.unwrap().seconds);
                add(format!("cost {:?}", c.kind()));
            }
            Body::Session(_) | Body::Purchase(_) => {}
        }
    }
    for moves in moves_by_month.values() {
        if moves.iter().filter(|m| **m != "new").count() >= 3 {
            add("several changes in one month".into());
        }
        if let (Some(c), Some(r)) = (
            moves.iter().position(|m| *m == "churn"),
            moves.iter().position(|m| *m == "reactivation"),
        ) && c < r
        {
            add("churn and reactivation in one month".into());
        }
    }
    seen
}

#[test]
fn the_default_dataset_holds_every_case() {
    for seed in [1, 2, 3] {
        let data = generate(&Config {
            seed,
            ..Config::default()
        });
        let seen = coverage(&data);
        let mut expected: Vec<String> = [
            "account",
            "session",
            "action",
            "ticket",
            "survey",
            "subscription",
            "billing",
            "renewal",
            "trial",
            "milestone",
            "purchase",
            "cost",
        ]
        .iter()
        .map(|k| format!("kind {k}"))
        .collect();
        for seg in ["Agencies", "Enterprise", "SMB", "Mid-Market"] {
            expected.push(format!("segment {seg}"));
        }
        for a in [
            "export_report",
            "create_dashboard",
            "invite_user",
            "api_call",
            "share_link",
        ] {
            expected.push(format!("action {a}"));
        }
        for x in [
            "ticket Opened",
            "ticket Resolved",
            "ticket Reopened",
            "survey Nps ZeroToTen",
            "survey Csat OneToFive",
            "survey Csat OneToTen",
            "survey Ces OneToFive",
            "survey Ces OneToSeven",
            "movement new",
            "movement expansion",
            "movement contraction",
            "movement churn",
            "movement reactivation",
            "add-on bought",
            "add-on cancelled",
            "churn reason Competitor",
            "churn reason Freemium",
            "churn reason BusinessClosed",
            "churn reason Price",
            "churn reason Other",
            "annual",
            "several changes in one month",
            "churn and reactivation in one month",
            "billing Current",
            "billing Overdue",
            "billing PaymentFailed",
            "billing Collections",
            "renewal Due",
            "renewal Renewed",
            "renewal NotRenewed",
            "trial Started",
            "trial Converted",
            "trial Expired",
            "milestone achieved true",
            "milestone achieved false",
            "cost CustomerSuccess",
            "cost Acquisition",
            "lifecycle Trial",
            "lifecycle Onboarding",
            "lifecycle Active",
            "lifecycle Renewal",
            "lifecycle Churned",
            "full upsert",
        ] {
            expected.push(x.into());
        }
        let missing: Vec<&String> = expected.iter().filter(|e| !seen.contains(*e)).collect();
        assert!(missing.is_empty(), "seed {seed}: missing {missing:?}");
        // Every kind over 90+ days of the history.
        let first = data.signals.first().map(secs).unwrap();
        let last = data.signals.last().map(secs).unwrap();
        assert!(last - first >= 90 * DAY);
        for e in [
            Entry::Existing,
            Entry::Newcomer,
            Entry::TrialConverted,
            Entry::TrialExpired,
        ] {
            assert!(data.accounts.iter().any(|a| a.entry == e), "{e:?}");
        }
        assert!(data.accounts_by_segment()["Agencies"].len() >= 20);
    }
}

#[test]
fn delivery_is_shuffled_with_late_signals_for_past_months_last() {
    let data = generate(&Config::default());
    let d = data.in_delivery_order(42);
    assert_eq!(d.signals.len(), data.signals.len());
    let mut sorted = d.signals.clone();
    sorted.sort_by(|a, b| (secs(a), &a.event_id).cmp(&(secs(b), &b.event_id)));
    assert_eq!(sorted, data.signals, "every signal once");
    assert_ne!(d.signals, data.signals, "out of order");
    let this_month = month_start(data.config.now);
    assert!(d.late_signals().iter().all(|s| secs(s) < this_month));
    let past = data.signals.iter().filter(|s| secs(s) < this_month).count() as f64;
    let share = d.late as f64 / past;
    assert!(
        (LATE_FRACTION / 2.0..LATE_FRACTION * 2.0).contains(&share),
        "{share}"
    );

    let batches = d.batches(5_000);
    let mut sent = 0;
    let mut late_seen = false;
    for b in &batches {
        assert!(!b.signals.is_empty() && b.signals.len() <= MAX_BATCH_SIGNALS);
        for s in &b.signals {
            assert_eq!(mode_for(secs(s), d.now), b.mode);
        }
        // Late signals come in batches of their own, after the others.
        let late_here = sent >= d.signals.len() - d.late;
        assert!(!late_seen || late_here);
        late_seen |= late_here;
        sent += b.signals.len();
    }
    assert_eq!(sent, d.signals.len());
    assert!(batches.iter().any(|b| b.mode == v1::IngestMode::Live));
    assert!(batches.iter().any(|b| b.mode == v1::IngestMode::Backfill));
    assert!(d.batches(0).iter().all(|b| b.signals.len() == 1));
}

#[test]
fn default_dataset_size() {
    let data = generate(&Config::default());
    let counts = data.counts_by_kind();
    eprintln!("{} signals: {counts:?}", data.signals.len());
    eprintln!(
        "segments: {:?}",
        data.accounts_by_segment()
            .iter()
            .map(|(k, v)| (k, v.len()))
            .collect::<Vec<_>>()
    );
    assert!(data.signals.len() < 40_000, "{}", data.signals.len());
}

#[test]
fn accounts_generate_alone_as_in_the_dataset() {
    let cfg = Config {
        accounts: 15,
        ..Config::default()
    };
    let data = generate(&cfg);
    let mut pieces: Vec<v1::Signal> = retain_datagen::generate_costs(&cfg);
    for i in 0..cfg.accounts {
        let (info, signals) = retain_datagen::generate_account(&cfg, i);
        assert_eq!(data.account(&info.id), Some(&info));
        assert_eq!(
            data.signals_of(&info.id).cloned().collect::<Vec<_>>(),
            signals
        );
        pieces.extend(signals);
    }
    assert_eq!(pieces.len(), data.signals.len());
}
