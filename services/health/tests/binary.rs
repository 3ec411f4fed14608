//! The `retain-health` binary with the reference configuration: it starts,
//! answers GetScoringModel, stops cleanly on SIGTERM, and refuses a bad
//! configuration naming the key.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use retain_proto::v1;
use retain_proto::v1::health_service_client::HealthServiceClient;
use retain_testkit::binary::{reference_config, start_binary};
use retain_testkit::with_token;

const BIN: &str = env!("CARGO_BIN_EXE_retain-health");
const TOKEN: &str = "binary-test-token";

#[tokio::test]
async fn serves_with_the_reference_config_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = reference_config(dir.path(), TOKEN, &["read"]);
    let running = start_binary(BIN, &config, dir.path()).await;
    let channel = running.channel.clone();
    let model = HealthServiceClient::new(channel)
        .get_scoring_model(with_token(TOKEN, v1::GetScoringModelRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap();
    assert_eq!((model.version, model.dimensions.len()), (0, 4));

    let exit = running.stop().await;
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn a_bad_config_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .env("RETAIN__HEALTH__CONSUMER__CONCURRENCY", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("health.consumer.concurrency"), "{stderr}");
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("retain-health "));
}
