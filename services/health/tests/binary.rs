//! The `retain-health` binary with the reference configuration: it starts,
//! answers GetScoringModel, stops cleanly on SIGTERM, and refuses a bad
//! configuration naming the key.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use retain_proto::v1;
use retain_proto::v1::health_service_client::HealthServiceClient;
use retain_testkit::eventually;
use tonic::metadata::MetadataValue;

const BIN: &str = env!("CARGO_BIN_EXE_retain-health");
const TOKEN: &str = "binary-test-token";

#[tokio::test]
async fn serves_with_the_reference_config_and_stops_on_sigterm() {
    let reference = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/config/retain.toml"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("retain.toml");
    std::fs::write(
        &config,
        format!(
            "{reference}\n[[auth.tokens]]\nname = \"test\"\ntenant = \"acme\"\nroles = [\"read\"]\nsha256 = \"{}\"\n",
            retain_runtime::auth::token_hash(TOKEN)
        ),
    )
    .unwrap();
    let address_file = dir.path().join("addr");
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .env("RETAIN__SERVER__LISTEN", "127.0.0.1:0")
        .env("RETAIN__SERVER__ADDRESS_FILE", &address_file)
        .env(
            "RETAIN__DATABASE__URL",
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("health.db").display()
            ),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = eventually(
        "the binary to report its address",
        Duration::from_secs(30),
        || {
            let addr = std::fs::read_to_string(&address_file).ok();
            async move { addr }
        },
    )
    .await;
    let url = format!("http://{addr}");
    let channel = eventually("the binary to listen", Duration::from_secs(30), || {
        let endpoint = tonic::transport::Endpoint::from_shared(url.clone()).unwrap();
        async move { endpoint.connect().await.ok() }
    })
    .await;
    let mut request = tonic::Request::new(v1::GetScoringModelRequest::default());
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {TOKEN}")).unwrap(),
    );
    let model = HealthServiceClient::new(channel)
        .get_scoring_model(request)
        .await
        .unwrap()
        .into_inner()
        .model
        .unwrap();
    assert_eq!((model.version, model.dimensions.len()), (0, 4));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || {
            let mut child = child;
            child.wait()
        }),
    )
    .await
    .expect("no exit within 30 s of SIGTERM")
    .unwrap()
    .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn a_bad_config_stops_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .env("RETAIN__HEALTH__CONSUMER_CONCURRENCY", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("health.consumer_concurrency"), "{stderr}");
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("retain-health "));
}
