//! The hostile-input corpus of the ingestion service: a few hundred
//! requests over all four RPCs (IngestSignals, StreamSignals, GetAccount,
//! ListAccounts), well-formed messages with hostile values and raw bytes
//! that are not protobuf at all, on SQLite and PostgreSQL.
//!
//! Every case says what it must get back (a status code naming the field,
//! or a REJECTED outcome naming the field) and is checked to leave the
//! database as it found it: every table's row count and every account as
//! `ListAccounts` reads it. The runner and the raw-bytes channel are in
//! `retain_testkit::hostile`; the services to come build their corpus the
//! same way.

#![allow(clippy::unwrap_used)]

use prost::Message;
use retain_ingestion::Ingestion;
use retain_proto::v1;
use retain_proto::v1::signal::Body;
use retain_testkit::hostile::{self, Case, Expect, malformed};
use retain_testkit::*;
use tonic::Code;

const INGEST: &str = "/retain.v1.IngestionService/IngestSignals";
const STREAM: &str = "/retain.v1.IngestionService/StreamSignals";
const GET: &str = "/retain.v1.IngestionService/GetAccount";
const LIST: &str = "/retain.v1.IngestionService/ListAccounts";

/// What the corpus runs against: one account with every field set and a
/// signal of every kind, so reads have something to return and a change
/// would show.
fn seed() -> Vec<v1::Signal> {
    every_kind("seed", "acme-1")
}

/// The seed batch again, as a stream frame: answered with DUPLICATEs and
/// changing nothing, so a stream can carry good batches before a bad one
/// and the database must still be unchanged.
fn seed_frame(seed: &[v1::Signal], id: &str) -> Vec<u8> {
    v1::StreamSignalsRequest {
        batch_id: id.into(),
        batch: Some(batch(seed.to_vec())),
    }
    .encode_to_vec()
}

/// Every table's row count and every account of both tenants.
fn state(
    app: &TestApp,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send + '_>> {
    Box::pin(async move {
        let mut out = hostile::tables(app).await;
        for token in [READER, GLOBEX] {
            let page = app
                .client
                .clone()
                .list_accounts(with_token(
                    token,
                    v1::ListAccountsRequest {
                        page_size: 1_000,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            out.push_str(&format!("{:?}", page.accounts));
        }
        out
    })
}

async fn seeded(db: TestDatabase) -> (TestApp, Vec<v1::Signal>) {
    let app = spawn_app::<Ingestion>(db).await;
    let seed = seed();
    let r = app.send(seed.clone()).await;
    assert_eq!(r.accepted as usize, seed.len(), "{r:?}");
    (app, seed)
}

// ---------------------------------------------------------------- checks

/// The answer of an IngestSignals call: signal `index` is REJECTED with a
/// violation of `signals[index].{field}`, and every other signal too when
/// `all` (all_or_nothing).
fn rejected(index: usize, field: &str, all: bool) -> Expect {
    let want = format!("signals[{index}].{field}");
    Expect::answers(move |replies| {
        let r = v1::IngestSignalsResponse::decode(replies[0].as_slice())
            .map_err(|e| format!("the reply does not decode: {e}"))?;
        judge_rejected(&r, index, &want, all)
    })
}

fn judge_rejected(
    r: &v1::IngestSignalsResponse,
    index: usize,
    want: &str,
    all: bool,
) -> Result<(), String> {
    let Some(result) = r.results.get(index) else {
        return Err(format!("no result {index}: {r:?}"));
    };
    if result.outcome != v1::SignalOutcome::Rejected as i32 {
        return Err(format!(
            "signal {index} is {:?}, not REJECTED (violations {:?})",
            v1::SignalOutcome::try_from(result.outcome),
            result.violations
        ));
    }
    if !result.violations.iter().any(|v| v.field == want) {
        let got: Vec<String> = result
            .violations
            .iter()
            .map(|v| format!("{}: {}", v.field, short(&v.description)))
            .collect();
        return Err(format!("REJECTED without a violation of {want}: {got:?}"));
    }
    if let Some(v) = result
        .violations
        .iter()
        .find(|v| v.description.len() > 1_024)
    {
        return Err(format!(
            "{}: a violation message of {} bytes (quote offending values up to a bound)",
            v.field,
            v.description.len()
        ));
    }
    let rejected = if all { r.results.len() } else { 1 };
    if r.rejected as usize != rejected || r.accepted != 0 || r.duplicates != 0 {
        return Err(format!(
            "counts accepted {} duplicates {} rejected {}, expected {rejected} rejected",
            r.accepted, r.duplicates, r.rejected
        ));
    }
    Ok(())
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}

// ------------------------------------------------- per-signal: IngestSignals

fn ok_signal() -> v1::Signal {
    signal("h-1", "acme-1", nps(9))
}

fn body(b: Body) -> v1::Signal {
    signal("h-1", "acme-1", b)
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

fn survey(f: impl FnOnce(&mut v1::SurveyAnswer)) -> v1::Signal {
    let mut s = v1::SurveyAnswer {
        kind: v1::SurveyKind::Nps as i32,
        score: 9,
        user_id: "u1".into(),
        ..Default::default()
    };
    f(&mut s);
    body(Body::Survey(s))
}

fn subscription(f: impl FnOnce(&mut v1::SubscriptionChange)) -> v1::Signal {
    let mut s = v1::SubscriptionChange {
        amount: eur(49_900),
        interval: v1::BillingInterval::Monthly as i32,
        churn_reason: 0,
        add_on: false,
        opening_balance: false,
    };
    f(&mut s);
    body(Body::Subscription(s))
}

fn ticket(f: impl FnOnce(&mut v1::SupportTicket)) -> v1::Signal {
    let mut t = v1::SupportTicket {
        ticket_id: "T-1".into(),
        status: v1::TicketStatus::Opened as i32,
        topics: vec!["integration".into()],
        contacts_until_resolution: 0,
    };
    f(&mut t);
    body(Body::Ticket(t))
}

fn action(f: impl FnOnce(&mut v1::ProductAction)) -> v1::Signal {
    let mut a = v1::ProductAction {
        user_id: "u2".into(),
        action_key: "export_report".into(),
        count: 1,
    };
    f(&mut a);
    body(Body::Action(a))
}

fn milestone(f: impl FnOnce(&mut v1::OnboardingMilestone)) -> v1::Signal {
    let mut m = v1::OnboardingMilestone {
        milestone_key: "data_source_connected".into(),
        achieved: true,
        user_id: "u1".into(),
    };
    f(&mut m);
    body(Body::Milestone(m))
}

fn cost(f: impl FnOnce(&mut v1::Cost)) -> v1::Signal {
    let mut c = v1::Cost {
        kind: v1::CostKind::CustomerSuccess as i32,
        amount: eur(1_000),
        period: Some(v1::Period {
            start: ts(now() - 30 * 86_400),
            end: ts(now() - 86_400),
        }),
    };
    f(&mut c);
    signal("h-1", "*", Body::Cost(c))
}

fn renewal(f: impl FnOnce(&mut v1::Renewal)) -> v1::Signal {
    let mut r = v1::Renewal {
        outcome: v1::RenewalOutcome::Due as i32,
        contract_end: ts(now() + 90 * 86_400),
    };
    f(&mut r);
    body(Body::Renewal(r))
}

/// A text field of some signal kind: its path, a valid value, and the
/// signal carrying a given value in it.
struct TextField {
    path: &'static str,
    valid: &'static str,
    set: fn(String) -> v1::Signal,
}

fn text_fields() -> Vec<TextField> {
    vec![
        TextField {
            path: "event_id",
            valid: "h-1",
            set: |v| v1::Signal {
                event_id: v,
                ..ok_signal()
            },
        },
        TextField {
            path: "account_id",
            valid: "acme-1",
            set: |v| v1::Signal {
                account_id: v,
                ..ok_signal()
            },
        },
        TextField {
            path: "account.name",
            valid: "Acme GmbH",
            set: |v| account(|a| a.name = Some(v)),
        },
        TextField {
            path: "account.segment",
            valid: "Agencies",
            set: |v| account(|a| a.segment = Some(v)),
        },
        TextField {
            path: "account.plan",
            valid: "pro",
            set: |v| account(|a| a.plan = Some(v)),
        },
        TextField {
            path: "account.csm_owner_email",
            valid: "csm@vendor.io",
            set: |v| account(|a| a.csm_owner_email = Some(v)),
        },
        TextField {
            path: "account.contact_emails[0]",
            valid: "ops@acme.io",
            set: |v| account(|a| a.contact_emails = vec![v]),
        },
        TextField {
            path: "session.user_id",
            valid: "u1",
            set: |v| body(session(&v, 60)),
        },
        TextField {
            path: "action.user_id",
            valid: "u2",
            set: |v| action(|a| a.user_id = v),
        },
        TextField {
            path: "action.action_key",
            valid: "export_report",
            set: |v| action(|a| a.action_key = v),
        },
        TextField {
            path: "ticket.ticket_id",
            valid: "T-1",
            set: |v| ticket(|t| t.ticket_id = v),
        },
        TextField {
            path: "ticket.topics[0]",
            valid: "integration",
            set: |v| ticket(|t| t.topics = vec![v]),
        },
        TextField {
            path: "survey.user_id",
            valid: "u1",
            set: |v| survey(|s| s.user_id = v),
        },
        TextField {
            path: "survey.comment",
            valid: "great support",
            set: |v| survey(|s| s.comment = v),
        },
        TextField {
            path: "milestone.milestone_key",
            valid: "data_source_connected",
            set: |v| milestone(|m| m.milestone_key = v),
        },
        TextField {
            path: "milestone.user_id",
            valid: "u1",
            set: |v| milestone(|m| m.user_id = v),
        },
    ]
}

/// One signal alone in a LIVE batch, to be REJECTED on `field`.
fn reject(name: String, s: v1::Signal, field: &str) -> Case {
    Case::unary(
        name,
        INGEST,
        WRITER,
        &batch(vec![s]),
        rejected(0, field, false),
    )
}

/// The same in a BACKFILL batch (no bound on age but the window's).
fn reject_backfill(name: String, s: v1::Signal, field: &str) -> Case {
    let mut req = batch(vec![s]);
    req.mode = v1::IngestMode::Backfill as i32;
    Case::unary(name, INGEST, WRITER, &req, rejected(0, field, false))
}

/// U+0000 anywhere in any text field: storable on SQLite, refused by
/// PostgreSQL, so validation must refuse it on both.
fn nul_cases() -> Vec<Case> {
    let mut out = Vec::new();
    for f in text_fields() {
        let mid = f.valid.len() / 2;
        let variants = [
            ("alone", "\0".to_owned()),
            ("first", format!("\0{}", f.valid)),
            (
                "inside",
                format!("{}\0{}", &f.valid[..mid], &f.valid[mid..]),
            ),
            ("last", format!("{}\0", f.valid)),
        ];
        for (where_, value) in variants {
            out.push(reject(
                format!("NUL {where_} in {}", f.path),
                (f.set)(value),
                f.path,
            ));
        }
    }
    // Currency codes are text too.
    for (path, s) in [
        (
            "subscription.amount.currency",
            subscription(|x| x.amount = money(100, "EU\0")),
        ),
        (
            "purchase.amount.currency",
            body(Body::Purchase(v1::Purchase {
                amount: money(100, "\0EU"),
            })),
        ),
        (
            "cost.amount.currency",
            cost(|c| c.amount = money(100, "E\0R")),
        ),
        (
            "account.acquisition_cost.currency",
            account(|a| a.acquisition_cost = money(100, "EUR\0")),
        ),
    ] {
        out.push(reject(format!("NUL in {path}"), s, path));
    }
    out
}

/// Every text field far over any sane length; the survey comment just
/// over its documented 4,096 bytes (in ASCII and in 2-byte characters)
/// and at 1 MiB.
fn length_cases() -> Vec<Case> {
    let mut out = Vec::new();
    for f in text_fields()
        .into_iter()
        .filter(|f| f.path != "survey.comment")
    {
        out.push(reject(
            format!("10,000 bytes in {}", f.path),
            (f.set)("x".repeat(10_000)),
            f.path,
        ));
    }
    for (what, comment) in [
        ("4,097 ASCII bytes", "c".repeat(4_097)),
        ("4,098 bytes of é", "é".repeat(2_049)),
        ("1 MiB", "c".repeat(1 << 20)),
    ] {
        out.push(reject(
            format!("survey comment of {what}"),
            survey(|s| s.comment = comment),
            "survey.comment",
        ));
    }
    out
}

/// Every enum field with numbers the contract does not define.
fn enum_cases() -> Vec<Case> {
    type Set = fn(i32) -> v1::Signal;
    let fields: [(&str, i32, Set); 10] = [
        ("survey.kind", 4, |v| survey(|s| s.kind = v)),
        ("survey.scale", 5, |v| survey(|s| s.scale = v)),
        ("subscription.interval", 3, |v| {
            subscription(|s| s.interval = v)
        }),
        ("subscription.churn_reason", 6, |v| {
            subscription(|s| {
                s.amount = eur(0);
                s.churn_reason = v;
            })
        }),
        ("billing.status", 5, |v| {
            body(Body::Billing(v1::BillingStatusChange { status: v }))
        }),
        ("ticket.status", 4, |v| ticket(|t| t.status = v)),
        ("renewal.outcome", 4, |v| renewal(|r| r.outcome = v)),
        ("trial.event", 4, |v| {
            body(Body::Trial(v1::Trial { event: v }))
        }),
        ("cost.kind", 3, |v| cost(|c| c.kind = v)),
        ("account.lifecycle", 6, |v| account(|a| a.lifecycle = v)),
    ];
    let mut out = Vec::new();
    for (path, past_last, set) in fields {
        for v in [past_last, -1, i32::MAX, i32::MIN] {
            out.push(reject(format!("{path} = {v}"), set(v), path));
        }
    }
    out
}

/// Every timestamp field outside 1970-01-01T00:00:00Z ≤ t <
/// 2200-01-01T00:00:00Z, or with nanoseconds outside 0–999,999,999.
fn timestamp_cases() -> Vec<Case> {
    let end = retain_domain::Timestamp::from_ymd(2200, 1, 1).seconds();
    let bad = |valid: i64| -> Vec<(String, prost_types::Timestamp)> {
        let t = |seconds, nanos| prost_types::Timestamp { seconds, nanos };
        vec![
            ("a second before 1970".into(), t(-1, 0)),
            ("a nanosecond before 1970".into(), t(-1, 999_999_999)),
            ("year 1".into(), t(-62_135_596_800, 0)),
            ("i64::MIN seconds".into(), t(i64::MIN, 0)),
            ("2200-01-01".into(), t(end, 0)),
            ("i64::MAX seconds".into(), t(i64::MAX, 0)),
            ("nanos -1".into(), t(valid, -1)),
            ("nanos 1e9".into(), t(valid, 1_000_000_000)),
            ("nanos i32::MIN".into(), t(valid, i32::MIN)),
            ("nanos i32::MAX".into(), t(valid, i32::MAX)),
        ]
    };
    let mut out = Vec::new();
    for (what, t) in bad(now() - 3_600) {
        let s = v1::Signal {
            occurred_at: Some(t),
            ..ok_signal()
        };
        out.push(reject(
            format!("occurred_at {what} (LIVE)"),
            s.clone(),
            "occurred_at",
        ));
        out.push(reject_backfill(
            format!("occurred_at {what} (BACKFILL)"),
            s,
            "occurred_at",
        ));
    }
    for (what, t) in bad(now() + 90 * 86_400) {
        out.push(reject(
            format!("renewal_date {what}"),
            account(|a| a.renewal_date = Some(t)),
            "account.renewal_date",
        ));
        out.push(reject(
            format!("contract_end {what}"),
            renewal(|r| r.contract_end = Some(t)),
            "renewal.contract_end",
        ));
    }
    for (what, t) in bad(now() - 30 * 86_400) {
        out.push(reject(
            format!("cost period start {what}"),
            cost(|c| c.period.as_mut().unwrap().start = Some(t)),
            "cost.period.start",
        ));
    }
    for (what, t) in bad(now() - 86_400) {
        out.push(reject(
            format!("cost period end {what}"),
            cost(|c| c.period.as_mut().unwrap().end = Some(t)),
            "cost.period.end",
        ));
    }
    out
}

/// Money over 10^14 minor units, and at the extremes of i64.
fn money_cases() -> Vec<Case> {
    type Set = fn(i64) -> v1::Signal;
    let fields: [(&str, Set); 4] = [
        ("subscription.amount", |v| {
            subscription(|s| s.amount = eur(v))
        }),
        ("purchase.amount", |v| {
            body(Body::Purchase(v1::Purchase { amount: eur(v) }))
        }),
        ("cost.amount", |v| cost(|c| c.amount = eur(v))),
        ("account.acquisition_cost", |v| {
            account(|a| a.acquisition_cost = eur(v))
        }),
    ];
    let mut out = Vec::new();
    for (path, set) in fields {
        for v in [100_000_000_000_001, i64::MAX, i64::MIN] {
            out.push(reject(
                format!("{path} of {v} minor units"),
                set(v),
                &format!("{path}.amount_minor"),
            ));
        }
    }
    out
}

/// Per-signal problems inside otherwise valid batches: REJECTED outcomes.
fn per_signal_cases() -> Vec<Case> {
    let mut out = Vec::new();
    out.extend(nul_cases());
    out.extend(length_cases());
    out.extend(enum_cases());
    out.extend(timestamp_cases());
    out.extend(money_cases());
    out.push(reject(
        "no body".into(),
        v1::Signal {
            body: None,
            ..ok_signal()
        },
        "body",
    ));

    // all_or_nothing: one NUL rejects the whole batch, the valid one with it.
    let mut req = batch(vec![
        signal("aon-1", "acme-1", nps(9)),
        signal("aon-\0", "acme-1", nps(8)),
    ]);
    req.all_or_nothing = true;
    out.push(Case::unary(
        "all_or_nothing with a NUL event id",
        INGEST,
        WRITER,
        &req,
        rejected(1, "event_id", true),
    ));

    // The worst case reply: a batch as large as the limits allow whose
    // every signal is rejected on several fields with long values must
    // still fit a default client's 4 MiB receive limit (the runner's).
    let value = |i: usize, c: char| format!("{i}\0{}", c.to_string().repeat(150));
    let signals: Vec<v1::Signal> = (0..5_000)
        .map(|i| {
            let mut s = account(|a| {
                a.name = Some(value(i, 'n'));
                a.segment = Some(value(i, 's'));
                a.plan = Some(value(i, 'p'));
                a.csm_owner_email = Some(value(i, 'e'));
            });
            s.event_id = format!("w-{i}-{}", "\0".repeat(100));
            s
        })
        .collect();
    let req = batch(signals);
    assert!(req.encoded_len() < 4 << 20, "{} bytes", req.encoded_len());
    out.push(Case::unary(
        "5,000 signals rejected on five long fields each: the reply fits 4 MiB",
        INGEST,
        WRITER,
        &req,
        Expect::answers(|replies| {
            let r = v1::IngestSignalsResponse::decode(replies[0].as_slice())
                .map_err(|e| e.to_string())?;
            judge_rejected(&r, 4_999, "signals[4999].account.name", false).or_else(|_| {
                (r.rejected == 5_000)
                    .then_some(())
                    .ok_or_else(|| format!("{} of 5,000 rejected", r.rejected))
            })
        }),
    ));
    out
}

// ------------------------------------------- batch level and raw bytes

/// Bytes whose string field carries `MARK` get it replaced by invalid
/// UTF-8 (same length).
const MARK: &str = "MARKMARK";

/// Garbage that prost refuses as an `M`: fixed patterns and a few
/// pseudo-random blobs (a fixed seed, so every run sends the same).
fn garbage<M: Message + Default>() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![
        ("0xFF × 32".to_owned(), vec![0xFF; 32]),
        ("an 11-byte varint key".to_owned(), vec![0xFF; 11]),
        (
            "ASCII text".to_owned(),
            b"POST / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("field number 0".to_owned(), vec![0x00, 0x01]),
        ("wire type 6".to_owned(), malformed::key(5, 6)),
        ("wire type 7".to_owned(), malformed::key(5, 7)),
        ("an unmatched end-group".to_owned(), malformed::key(1, 4)),
        (
            "a length of 4 GiB over 3 bytes".to_owned(),
            [
                malformed::key(1, 2),
                malformed::varint(u64::from(u32::MAX)),
                vec![1, 2, 3],
            ]
            .concat(),
        ),
        (
            "100,000 nested groups".to_owned(),
            malformed::nested_groups(1, 100_000),
        ),
        (
            "200 nested groups of an unknown field".to_owned(),
            malformed::nested_groups(99, 200),
        ),
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut blobs = 0;
    while blobs < 4 {
        let blob: Vec<u8> = (0..64)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        if malformed::refused::<M>(&blob) {
            blobs += 1;
            out.push((format!("random bytes #{blobs}"), blob));
        }
    }
    out.into_iter()
        .filter(|(_, b)| malformed::refused::<M>(b))
        .collect()
}

/// Raw malformed IngestSignals bodies, and the field each must name when
/// there is one to name.
fn raw_ingest(seed: &[v1::Signal]) -> Vec<(String, Vec<u8>, Option<&'static str>)> {
    use malformed::{key, len_field, varint};
    let mut out: Vec<(String, Vec<u8>, Option<&'static str>)> =
        garbage::<v1::IngestSignalsRequest>()
            .into_iter()
            .map(|(n, b)| (n, b, None))
            .collect();
    // Invalid UTF-8 in each kind of string field.
    let marked: [(&str, v1::Signal); 8] = [
        (
            "event_id",
            v1::Signal {
                event_id: MARK.into(),
                ..ok_signal()
            },
        ),
        (
            "account_id",
            v1::Signal {
                account_id: MARK.into(),
                ..ok_signal()
            },
        ),
        ("user_id", body(session(MARK, 60))),
        ("comment", survey(|s| s.comment = MARK.into())),
        ("name", account(|a| a.name = Some(MARK.into()))),
        (
            "contact_emails",
            account(|a| a.contact_emails = vec![MARK.into()]),
        ),
        ("topics", ticket(|t| t.topics = vec![MARK.into()])),
        ("currency", subscription(|s| s.amount = money(100, MARK))),
    ];
    for (field, s) in marked {
        let bytes = malformed::invalid_utf8(&batch(vec![s]), MARK);
        out.push((format!("invalid UTF-8 in {field}"), bytes, Some(field)));
    }
    // Wrong wire types, at the top and nested.
    let signal_with = |inner: Vec<u8>| len_field(1, &inner);
    let wrong: [(&str, Vec<u8>); 9] = [
        ("signals", [key(1, 0), varint(1)].concat()),
        ("mode", len_field(2, b"x")),
        ("all_or_nothing", [key(3, 1), vec![0; 8]].concat()),
        ("event_id", signal_with([key(1, 0), varint(5)].concat())),
        ("occurred_at", signal_with([key(3, 0), varint(5)].concat())),
        ("body", signal_with([key(14, 5), vec![0; 4]].concat())),
        ("score", signal_with(len_field(14, &len_field(3, b"ab")))),
        ("seconds", signal_with(len_field(3, &len_field(1, b"ab")))),
        (
            "amount_minor",
            signal_with(len_field(20, &len_field(1, &len_field(1, b"ab")))),
        ),
    ];
    for (field, bytes) in wrong {
        out.push((format!("wrong wire type for {field}"), bytes, Some(field)));
    }
    // Groups nested inside a signal and inside its body.
    out.push((
        "300 nested groups inside a signal".into(),
        signal_with(malformed::nested_groups(10, 300)),
        None,
    ));
    out.push((
        "300 nested groups inside a survey".into(),
        signal_with(len_field(14, &malformed::nested_groups(4, 300))),
        None,
    ));
    // A valid batch cut short.
    let whole = batch(seed.to_vec()).encode_to_vec();
    for (k, cut) in malformed::truncations::<v1::IngestSignalsRequest>(&whole) {
        out.push((
            format!("a valid batch cut at {k} of {} bytes", whole.len()),
            cut,
            None,
        ));
    }
    out.into_iter()
        .map(|(n, b, f)| {
            let b = malformed::checked::<v1::IngestSignalsRequest>(&n, b);
            (n, b, f)
        })
        .collect()
}

fn ingest_call_cases(seed: &[v1::Signal]) -> Vec<Case> {
    let mut out = Vec::new();
    let one = || batch(vec![ok_signal()]);
    out.push(Case::unary(
        "an empty batch",
        INGEST,
        WRITER,
        &batch(vec![]),
        Expect::status(Code::InvalidArgument, "signals"),
    ));
    let many: Vec<v1::Signal> = (0..5_001)
        .map(|i| signal(&format!("m-{i}"), "acme-1", nps(5)))
        .collect();
    out.push(Case::unary(
        "5,001 signals",
        INGEST,
        WRITER,
        &batch(many),
        Expect::status(Code::InvalidArgument, "signals"),
    ));
    for mode in [3, -1, i32::MAX, i32::MIN] {
        let mut req = one();
        req.mode = mode;
        out.push(Case::unary(
            format!("mode {mode}"),
            INGEST,
            WRITER,
            &req,
            Expect::status(Code::InvalidArgument, "mode"),
        ));
    }
    let mut big = ok_signal();
    if let Some(Body::Survey(s)) = &mut big.body {
        s.comment = "x".repeat(5 << 20);
    }
    out.push(Case::unary(
        "a 5 MiB message",
        INGEST,
        WRITER,
        &batch(vec![big]),
        Expect::code(Code::OutOfRange),
    ));
    out.push(
        Case::unary(
            "no token",
            INGEST,
            WRITER,
            &one(),
            Expect::code(Code::Unauthenticated),
        )
        .without_token(),
    );
    out.push(Case::unary(
        "an unknown token",
        INGEST,
        "not-a-token",
        &one(),
        Expect::code(Code::Unauthenticated),
    ));
    out.push(Case::unary(
        "a reader writing",
        INGEST,
        READER,
        &one(),
        Expect::status(Code::PermissionDenied, "ingest"),
    ));
    for (name, bytes, field) in raw_ingest(seed) {
        let expect = match field {
            Some(f) => Expect::status(Code::InvalidArgument, f),
            None => Expect::code(Code::InvalidArgument),
        };
        out.push(Case::raw(
            format!("IngestSignals: {name}"),
            INGEST,
            WRITER,
            bytes,
            expect,
        ));
    }
    out
}

// ------------------------------------------------------------- StreamSignals

fn stream_cases(seed: &[v1::Signal]) -> Vec<Case> {
    let good = || seed_frame(seed, "good");
    let frame = |batch_id: &str, b: Option<v1::IngestSignalsRequest>| {
        v1::StreamSignalsRequest {
            batch_id: batch_id.into(),
            batch: b,
        }
        .encode_to_vec()
    };
    let mut out = Vec::new();
    // Malformed frames: the client must see an error, after the batches
    // before them were answered — never a clean end.
    let mut malformed_frames: Vec<(String, Vec<u8>)> = garbage::<v1::StreamSignalsRequest>();
    malformed_frames.push((
        "invalid UTF-8 in batch_id".into(),
        malformed::invalid_utf8(
            &v1::StreamSignalsRequest {
                batch_id: MARK.into(),
                batch: Some(batch(vec![ok_signal()])),
            },
            MARK,
        ),
    ));
    malformed_frames.push((
        "invalid UTF-8 in an event_id".into(),
        malformed::invalid_utf8(
            &v1::StreamSignalsRequest {
                batch_id: "b".into(),
                batch: Some(batch(vec![v1::Signal {
                    event_id: MARK.into(),
                    ..ok_signal()
                }])),
            },
            MARK,
        ),
    ));
    malformed_frames.push((
        "a wrong wire type for batch".into(),
        [malformed::key(2, 0), malformed::varint(7)].concat(),
    ));
    let whole = seed_frame(seed, "cut");
    let cuts = malformed::truncations::<v1::StreamSignalsRequest>(&whole);
    for (k, cut) in cuts.into_iter().take(3) {
        malformed_frames.push((format!("a frame cut at {k} of {} bytes", whole.len()), cut));
    }
    for (name, bytes) in malformed_frames {
        let bytes = malformed::checked::<v1::StreamSignalsRequest>(&name, bytes);
        out.push(Case::stream(
            format!("StreamSignals: {name} after one good batch"),
            STREAM,
            WRITER,
            vec![good(), bytes.clone()],
            Expect::error_after(1),
        ));
    }
    out.push(Case::stream(
        "StreamSignals: garbage as the first frame",
        STREAM,
        WRITER,
        vec![vec![0xFF; 16], good()],
        Expect::error_after(0),
    ));
    // A frame over the server's 4 MiB message limit.
    let mut big = ok_signal();
    if let Some(Body::Survey(s)) = &mut big.body {
        s.comment = "x".repeat(5 << 20);
    }
    for before in [1, 2] {
        let mut frames = vec![good(); before];
        frames.push(frame("big", Some(batch(vec![big.clone()]))));
        frames.push(good());
        out.push(Case::stream(
            format!("StreamSignals: a 5 MiB frame after {before} good batches"),
            STREAM,
            WRITER,
            frames,
            Expect::error_after(before),
        ));
    }
    // Well-formed but invalid batches end the stream with their error.
    out.push(Case::stream(
        "StreamSignals: a frame without a batch",
        STREAM,
        WRITER,
        vec![good(), frame("none", None)],
        Expect::status_after(1, Code::InvalidArgument, "batch"),
    ));
    out.push(Case::stream(
        "StreamSignals: an empty batch",
        STREAM,
        WRITER,
        vec![good(), frame("empty", Some(batch(vec![])))],
        Expect::status_after(1, Code::InvalidArgument, "signals"),
    ));
    let mut bad_mode = batch(vec![ok_signal()]);
    bad_mode.mode = 9;
    out.push(Case::stream(
        "StreamSignals: mode 9",
        STREAM,
        WRITER,
        vec![good(), frame("mode", Some(bad_mode))],
        Expect::status_after(1, Code::InvalidArgument, "mode"),
    ));
    // A per-signal problem is an answer, not a stream error.
    let nul = batch(vec![v1::Signal {
        event_id: "s\0".into(),
        ..ok_signal()
    }]);
    out.push(Case::stream(
        "StreamSignals: a NUL event id",
        STREAM,
        WRITER,
        vec![good(), frame("nul", Some(nul))],
        Expect::answers(|replies| {
            if replies.len() != 2 {
                return Err(format!("{} replies, expected 2", replies.len()));
            }
            let r = v1::StreamSignalsResponse::decode(replies[1].as_slice())
                .map_err(|e| e.to_string())?;
            judge_rejected(
                &r.result.unwrap_or_default(),
                0,
                "signals[0].event_id",
                false,
            )
        }),
    ));
    out.push(Case::stream(
        "StreamSignals: a reader",
        STREAM,
        READER,
        vec![good()],
        Expect::status(Code::PermissionDenied, "ingest"),
    ));
    out.push(
        Case::stream(
            "StreamSignals: no token",
            STREAM,
            WRITER,
            vec![good()],
            Expect::code(Code::Unauthenticated),
        )
        .without_token(),
    );
    out
}

// ------------------------------------------------------------ GetAccount

fn get_cases() -> Vec<Case> {
    let get = |id: &str| v1::GetAccountRequest {
        account_id: id.into(),
    };
    let mut out = Vec::new();
    for (what, id) in [
        ("empty", String::new()),
        ("NUL", "\0".to_owned()),
        ("NUL inside", "acme\0-1".to_owned()),
        ("NUL last", "acme-1\0".to_owned()),
        ("129 bytes", "a".repeat(129)),
        ("10,000 bytes", "a".repeat(10_000)),
        ("a space", "acme 1".to_owned()),
        ("a newline", "acme-1\n".to_owned()),
        ("a quote", "acme'1".to_owned()),
        ("a SQL wildcard", "acme%".to_owned()),
        ("non-ASCII", "äcme-1".to_owned()),
    ] {
        out.push(Case::unary(
            format!("GetAccount: account_id {what}"),
            GET,
            READER,
            &get(&id),
            Expect::status(Code::InvalidArgument, "account_id"),
        ));
    }
    out.push(Case::unary(
        "GetAccount: a missing account",
        GET,
        READER,
        &get("missing"),
        Expect::status(Code::NotFound, "missing"),
    ));
    out.push(Case::unary(
        "GetAccount: another tenant's account",
        GET,
        GLOBEX,
        &get("acme-1"),
        Expect::status(Code::NotFound, "acme-1"),
    ));
    out.push(Case::unary(
        "GetAccount: without the read role",
        GET,
        INGEST_ONLY,
        &get("acme-1"),
        Expect::status(Code::PermissionDenied, "read"),
    ));
    out.push(
        Case::unary(
            "GetAccount: no token",
            GET,
            READER,
            &get("acme-1"),
            Expect::code(Code::Unauthenticated),
        )
        .without_token(),
    );

    let mut raw: Vec<(String, Vec<u8>, Option<&str>)> = garbage::<v1::GetAccountRequest>()
        .into_iter()
        .map(|(n, b)| (n, b, None))
        .collect();
    raw.push((
        "invalid UTF-8 in account_id".into(),
        malformed::invalid_utf8(&get(MARK), MARK),
        Some("account_id"),
    ));
    raw.push((
        "a wrong wire type for account_id".into(),
        [malformed::key(1, 0), malformed::varint(1)].concat(),
        Some("account_id"),
    ));
    let whole = get("acme-1").encode_to_vec();
    for (k, cut) in malformed::truncations::<v1::GetAccountRequest>(&whole) {
        raw.push((format!("cut at {k} of {} bytes", whole.len()), cut, None));
    }
    for (name, bytes, field) in raw {
        let bytes = malformed::checked::<v1::GetAccountRequest>(&name, bytes);
        let expect = field.map_or(Expect::code(Code::InvalidArgument), |f| {
            Expect::status(Code::InvalidArgument, f)
        });
        out.push(Case::raw(
            format!("GetAccount: {name}"),
            GET,
            READER,
            bytes,
            expect,
        ));
    }
    out
}

// ---------------------------------------------------------- ListAccounts

fn list_cases() -> Vec<Case> {
    let list = |f: fn(&mut v1::ListAccountsRequest)| {
        let mut r = v1::ListAccountsRequest::default();
        f(&mut r);
        r
    };
    let mut out = Vec::new();
    // A negative page size is negative, and only that.
    out.push(Case::unary(
        "ListAccounts: page_size -1",
        LIST,
        READER,
        &list(|r| r.page_size = -1),
        Expect::fails_with(|s| {
            use tonic_types::StatusExt;
            if s.code() != Code::InvalidArgument {
                return Err(format!("code {:?}", s.code()));
            }
            let v = s
                .get_details_bad_request()
                .map(|b| b.field_violations)
                .unwrap_or_default();
            match v.as_slice() {
                [one] if one.field == "page_size" && one.description.contains("negative") => Ok(()),
                _ => Err(format!(
                    "expected one violation of page_size saying \"must not be negative\", got {v:?}"
                )),
            }
        }),
    ));
    type Edit = fn(&mut v1::ListAccountsRequest);
    let cases: [(&str, Edit, &str); 15] = [
        (
            "page_size i32::MIN",
            |r| r.page_size = i32::MIN,
            "page_size",
        ),
        ("page_size 1,001", |r| r.page_size = 1_001, "page_size"),
        (
            "page_size i32::MAX",
            |r| r.page_size = i32::MAX,
            "page_size",
        ),
        (
            "page_token garbage",
            |r| r.page_token = "garbage".into(),
            "page_token",
        ),
        (
            "page_token NUL",
            |r| r.page_token = "\0".into(),
            "page_token",
        ),
        (
            "page_token 10,000 bytes",
            |r| r.page_token = "a".repeat(10_000),
            "page_token",
        ),
        (
            "page_token not hex",
            |r| r.page_token = "zzzzzzzzzzzz.zz".into(),
            "page_token",
        ),
        (
            "page_token a dot only",
            |r| r.page_token = ".".into(),
            "page_token",
        ),
        (
            "page_token non-ASCII",
            |r| r.page_token = "ü.ü".into(),
            "page_token",
        ),
        (
            "segment with NUL",
            |r| r.segment = "Agen\0cies".into(),
            "segment",
        ),
        (
            "csm_owner_email with NUL",
            |r| r.csm_owner_email = "csm@vendor.io\0".into(),
            "csm_owner_email",
        ),
        ("lifecycle 6", |r| r.lifecycle = 6, "lifecycle"),
        ("lifecycle 99", |r| r.lifecycle = 99, "lifecycle"),
        ("lifecycle -1", |r| r.lifecycle = -1, "lifecycle"),
        (
            "lifecycle i32::MIN",
            |r| r.lifecycle = i32::MIN,
            "lifecycle",
        ),
    ];
    for (what, f, field) in cases {
        out.push(Case::unary(
            format!("ListAccounts: {what}"),
            LIST,
            READER,
            &list(f),
            Expect::status(Code::InvalidArgument, field),
        ));
    }
    out.push(Case::unary(
        "ListAccounts: without the read role",
        LIST,
        INGEST_ONLY,
        &list(|_| {}),
        Expect::status(Code::PermissionDenied, "read"),
    ));
    out.push(
        Case::unary(
            "ListAccounts: no token",
            LIST,
            READER,
            &list(|_| {}),
            Expect::code(Code::Unauthenticated),
        )
        .without_token(),
    );

    let mut raw: Vec<(String, Vec<u8>, Option<&str>)> = garbage::<v1::ListAccountsRequest>()
        .into_iter()
        .map(|(n, b)| (n, b, None))
        .collect();
    for (field, req) in [
        (
            "page_token",
            v1::ListAccountsRequest {
                page_token: MARK.into(),
                ..Default::default()
            },
        ),
        (
            "segment",
            v1::ListAccountsRequest {
                segment: MARK.into(),
                ..Default::default()
            },
        ),
        (
            "csm_owner_email",
            v1::ListAccountsRequest {
                csm_owner_email: MARK.into(),
                ..Default::default()
            },
        ),
    ] {
        raw.push((
            format!("invalid UTF-8 in {field}"),
            malformed::invalid_utf8(&req, MARK),
            Some(field),
        ));
    }
    raw.push((
        "a wrong wire type for page_size".into(),
        malformed::len_field(1, b"10"),
        Some("page_size"),
    ));
    raw.push((
        "a wrong wire type for lifecycle".into(),
        [malformed::key(5, 1), vec![0; 8]].concat(),
        Some("lifecycle"),
    ));
    let whole = v1::ListAccountsRequest {
        page_size: 10,
        segment: "Agencies".into(),
        ..Default::default()
    }
    .encode_to_vec();
    for (k, cut) in malformed::truncations::<v1::ListAccountsRequest>(&whole) {
        raw.push((format!("cut at {k} of {} bytes", whole.len()), cut, None));
    }
    for (name, bytes, field) in raw {
        let bytes = malformed::checked::<v1::ListAccountsRequest>(&name, bytes);
        let expect = field.map_or(Expect::code(Code::InvalidArgument), |f| {
            Expect::status(Code::InvalidArgument, f)
        });
        out.push(Case::raw(
            format!("ListAccounts: {name}"),
            LIST,
            READER,
            bytes,
            expect,
        ));
    }
    out
}

// ------------------------------------------------------------------ tests

retain_testkit::storage_test!(async fn ingest_signals_rejects_hostile_signals(db) {
    let (app, _) = seeded(db).await;
    hostile::run(&app, per_signal_cases(), state).await;
});

retain_testkit::storage_test!(async fn ingest_signals_refuses_hostile_calls_and_bytes(db) {
    let (app, seed) = seeded(db).await;
    hostile::run(&app, ingest_call_cases(&seed), state).await;
});

retain_testkit::storage_test!(async fn stream_signals_refuses_hostile_frames(db) {
    let (app, seed) = seeded(db).await;
    hostile::run(&app, stream_cases(&seed), state).await;
});

retain_testkit::storage_test!(async fn get_account_refuses_hostile_requests(db) {
    let (app, _) = seeded(db).await;
    hostile::run(&app, get_cases(), state).await;
});

retain_testkit::storage_test!(async fn list_accounts_refuses_hostile_requests(db) {
    let (app, _) = seeded(db).await;
    hostile::run(&app, list_cases(), state).await;
});

/// The corpus is as large as the issue asks, covers every RPC, and its
/// case names are unique (the runner checks per test; this checks across).
#[test]
fn the_corpus_covers_every_rpc_with_200_cases_or_more() {
    let seed = seed();
    let all: Vec<Case> = [
        per_signal_cases(),
        ingest_call_cases(&seed),
        stream_cases(&seed),
        get_cases(),
        list_cases(),
    ]
    .concat();
    eprintln!("hostile corpus: {} cases", all.len());
    assert!(all.len() >= 200, "{} cases", all.len());
    for method in [INGEST, STREAM, GET, LIST] {
        assert!(
            all.iter().any(|c| c.method == method),
            "no case for {method}"
        );
    }
    let mut names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n, "case names are unique");
}
