//! GetAccount and ListAccounts over real gRPC on SQLite and PostgreSQL:
//! upserts maintain the record (late upserts never undo newer ones),
//! filters, stable pagination, and tenant isolation.

#![allow(clippy::unwrap_used)]

use retain_ingestion::Ingestion;
use retain_proto::v1;
use retain_proto::v1::signal::Body;
use retain_testkit::*;
use tonic::Code;
use tonic_types::StatusExt;

fn upsert(
    event: &str,
    account: &str,
    at: i64,
    f: impl FnOnce(&mut v1::AccountUpsert),
) -> v1::Signal {
    let mut a = v1::AccountUpsert::default();
    f(&mut a);
    let mut s = signal(event, account, Body::Account(a));
    s.occurred_at = ts(at);
    s
}

async fn get(app: &TestApp, token: &str, id: &str) -> Result<v1::Account, tonic::Status> {
    app.client
        .clone()
        .get_account(with_token(
            token,
            v1::GetAccountRequest {
                account_id: id.into(),
            },
        ))
        .await
        .map(|r| r.into_inner().account.unwrap())
}

async fn list(
    app: &TestApp,
    token: &str,
    req: v1::ListAccountsRequest,
) -> Result<v1::ListAccountsResponse, tonic::Status> {
    app.client
        .clone()
        .list_accounts(with_token(token, req))
        .await
        .map(tonic::Response::into_inner)
}

retain_testkit::storage_test!(async fn upserts_maintain_the_account(db) {
    let app = spawn_app::<Ingestion>(db).await;
    let t = now() - 10_000;
    app.send(vec![upsert("u-1", "acme-1", t, |a| {
        a.name = Some("Acme".into());
        a.segment = Some("Agencies".into());
        a.plan = Some("starter".into());
        a.csm_owner_email = Some("ana@vendor.io".into());
        a.contact_emails = vec!["ops@acme.io".into(), "cfo@acme.io".into()];
        a.seats = Some(10);
        a.lifecycle = v1::LifecycleStage::Onboarding as i32;
        a.renewal_date = ts(t + 365 * 86_400);
        a.acquisition_cost = eur(99_000);
    })])
    .await;
    // A newer upsert changes only what it carries.
    app.send(vec![upsert("u-2", "acme-1", t + 100, |a| {
        a.plan = Some("pro".into());
        a.seats = Some(25);
    })])
    .await;
    // A late, older upsert cannot undo the newer plan, but fills gaps.
    app.send(vec![upsert("u-0", "acme-1", t - 100, |a| {
        a.plan = Some("trial".into());
        a.segment = Some("SMB".into());
    })])
    .await;
    let a = get(&app, READER, "acme-1").await.unwrap();
    assert_eq!(a.name, "Acme");
    assert_eq!(a.segment, "Agencies");
    assert_eq!(a.plan, "pro");
    assert_eq!(a.seats, 25);
    assert_eq!(a.csm_owner_email, "ana@vendor.io");
    assert_eq!(a.contact_emails, vec!["ops@acme.io", "cfo@acme.io"]);
    assert_eq!(a.lifecycle, v1::LifecycleStage::Onboarding as i32);
    assert_eq!(a.renewal_date.unwrap().seconds, t + 365 * 86_400);
    assert_eq!(a.acquisition_cost.unwrap().amount_minor, 99_000);
    assert!(a.created_at.is_some() && a.updated_at.is_some());

    // An empty owner email clears the owner.
    app.send(vec![upsert("u-3", "acme-1", t + 200, |a| a.csm_owner_email = Some(String::new()))]).await;
    assert_eq!(get(&app, READER, "acme-1").await.unwrap().csm_owner_email, "");

    // Any signal creates a bare account record.
    app.send(vec![signal("s-1", "acme-2", session("u1", 60))]).await;
    let bare = get(&app, READER, "acme-2").await.unwrap();
    assert_eq!((bare.name.as_str(), bare.seats), ("", 0));
});

retain_testkit::storage_test!(async fn get_account_errors(db) {
    let app = spawn_app::<Ingestion>(db).await;
    app.send(vec![signal("s-1", "acme-1", session("u1", 60))]).await;
    let err = get(&app, READER, "missing").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = get(&app, READER, "bad id").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.get_details_bad_request().unwrap().field_violations[0].field, "account_id");
    // Reading needs the read role; another tenant sees nothing.
    assert_eq!(get(&app, INGEST_ONLY, "acme-1").await.unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(get(&app, GLOBEX, "acme-1").await.unwrap_err().code(), Code::NotFound);
    let r = list(&app, GLOBEX, v1::ListAccountsRequest::default()).await.unwrap();
    assert!(r.accounts.is_empty());
});

retain_testkit::storage_test!(async fn list_filters_and_pages_stably(db) {
    let app = spawn_app::<Ingestion>(db).await;
    let t = now() - 5_000;
    let mut signals = Vec::new();
    for i in 0..7 {
        signals.push(upsert(&format!("u-{i}"), &format!("acct-{i}"), t, |a| {
            a.segment = Some(if i % 2 == 0 { "Agencies" } else { "SMB" }.into());
            a.csm_owner_email = Some(format!("csm{}@vendor.io", i % 3));
            a.lifecycle = if i < 3 { v1::LifecycleStage::Trial } else { v1::LifecycleStage::Active } as i32;
        }));
    }
    app.send(signals).await;

    let ids = |r: &v1::ListAccountsResponse| -> Vec<String> {
        r.accounts.iter().map(|a| a.account_id.clone()).collect()
    };
    let seg = list(&app, READER, v1::ListAccountsRequest { segment: "Agencies".into(), ..Default::default() }).await.unwrap();
    assert_eq!(ids(&seg), vec!["acct-0", "acct-2", "acct-4", "acct-6"]);
    let csm = list(&app, READER, v1::ListAccountsRequest { csm_owner_email: "csm1@vendor.io".into(), ..Default::default() }).await.unwrap();
    assert_eq!(ids(&csm), vec!["acct-1", "acct-4"]);
    let trial = list(&app, READER, v1::ListAccountsRequest { lifecycle: v1::LifecycleStage::Trial as i32, ..Default::default() }).await.unwrap();
    assert_eq!(ids(&trial), vec!["acct-0", "acct-1", "acct-2"]);

    // Pages of 3; an account added between pages does not shift them.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let r = list(&app, READER, v1::ListAccountsRequest { page_size: 3, page_token: token.clone(), ..Default::default() }).await.unwrap();
        seen.extend(ids(&r));
        pages += 1;
        if pages == 1 {
            app.send(vec![signal("late", "acct-00", session("u", 5))]).await;
        }
        if r.next_page_token.is_empty() {
            break;
        }
        token = r.next_page_token;
    }
    let expected: Vec<String> = (0..7).map(|i| format!("acct-{i}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);

    // Bad requests name their field.
    let first = list(&app, READER, v1::ListAccountsRequest { page_size: 2, ..Default::default() }).await.unwrap();
    for (req, field) in [
        (v1::ListAccountsRequest { page_token: "garbage".into(), ..Default::default() }, "page_token"),
        // A forged token whose cursor is not an account id (NUL reached
        // PostgreSQL as INTERNAL).
        (
            v1::ListAccountsRequest {
                page_token: format!("{}.00", first.next_page_token.split_once('.').unwrap().0),
                page_size: 2,
                ..Default::default()
            },
            "page_token",
        ),
        (v1::ListAccountsRequest { page_token: first.next_page_token.clone(), segment: "SMB".into(), ..Default::default() }, "page_token"),
        (v1::ListAccountsRequest { page_size: -1, ..Default::default() }, "page_size"),
        (v1::ListAccountsRequest { page_size: 5_000, ..Default::default() }, "page_size"),
        (v1::ListAccountsRequest { lifecycle: 99, ..Default::default() }, "lifecycle"),
    ] {
        let err = list(&app, READER, req).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(err.get_details_bad_request().unwrap().field_violations[0].field, field);
    }
    assert_eq!(list(&app, INGEST_ONLY, v1::ListAccountsRequest::default()).await.unwrap_err().code(), Code::PermissionDenied);
});

// A cost's account id is ignored (the contract says so): it is stored as
// portfolio-wide and never creates an account.
retain_testkit::storage_test!(async fn a_cost_never_creates_an_account(db) {
    let app = spawn_app::<Ingestion>(db).await;
    let cost = signal(
        "cost-1",
        "c1",
        Body::Cost(v1::Cost {
            kind: v1::CostKind::CustomerSuccess as i32,
            amount: eur(10_000),
            period: Some(v1::Period { start: ts(now() - 40 * 86_400), end: ts(now() - 10 * 86_400) }),
        }),
    );
    assert_eq!(app.send(vec![cost]).await.accepted, 1);
    assert_eq!(app.count("accounts").await, 0);
    assert_eq!(app.scalar("SELECT COUNT(*) FROM signals WHERE account_id = '*'").await, 1);
});
