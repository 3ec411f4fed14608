//! The `retain-ingestion` binary with the reference configuration: it
//! starts, serves IngestSignals and GetAccount, stops cleanly on SIGTERM,
//! and refuses a bad configuration naming the key.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use retain_proto::v1;
use retain_proto::v1::ingestion_service_client::IngestionServiceClient;
use retain_testkit::binary::{reference_config, start_binary};
use retain_testkit::with_token;

const BIN: &str = env!("CARGO_BIN_EXE_retain-ingestion");
const TOKEN: &str = "binary-test-token";

#[tokio::test]
async fn serves_with_the_reference_config_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = reference_config(dir.path(), TOKEN, &["ingest", "read"]);
    let running = start_binary(BIN, &config, dir.path()).await;
    let channel = running.channel.clone();
    let mut client = IngestionServiceClient::new(channel);
    let signal = v1::Signal {
        event_id: "bin-1".into(),
        account_id: "acme-1".into(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64
                - 60,
            nanos: 0,
        }),
        body: Some(v1::signal::Body::Survey(v1::SurveyAnswer {
            kind: v1::SurveyKind::Nps as i32,
            score: 10,
            ..Default::default()
        })),
    };
    let r = client
        .ingest_signals(with_token(
            TOKEN,
            v1::IngestSignalsRequest {
                signals: vec![signal],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 1);
    let a = client
        .get_account(with_token(
            TOKEN,
            v1::GetAccountRequest {
                account_id: "acme-1".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.account.unwrap().account_id, "acme-1");

    let exit = running.stop().await;
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn a_bad_config_stops_start_up_naming_the_key() {
    let out = Command::new(BIN)
        .env("RETAIN__INGESTION__MAX_BATCH_SIGNALS", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ingestion.max_batch_signals"), "{stderr}");

    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("migrate") && help.contains("--config"),
        "{help}"
    );

    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(version.starts_with("retain-ingestion "), "{version}");

    let out = Command::new(BIN).arg("frobnicate").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("frobnicate"));
}
