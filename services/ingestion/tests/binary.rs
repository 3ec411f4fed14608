//! The `retain-ingestion` binary with the reference configuration: it
//! starts, serves IngestSignals and GetAccount, stops cleanly on SIGTERM,
//! and refuses a bad configuration naming the key.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use retain_proto::v1;
use retain_proto::v1::ingestion_service_client::IngestionServiceClient;
use retain_testkit::eventually;
use tonic::metadata::MetadataValue;

const BIN: &str = env!("CARGO_BIN_EXE_retain-ingestion");
const TOKEN: &str = "binary-test-token";

fn reference_config() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/config/retain.toml"
    );
    std::fs::read_to_string(path).unwrap()
}

fn authed<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {TOKEN}")).unwrap(),
    );
    r
}

#[tokio::test]
async fn serves_with_the_reference_config_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("retain.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[[auth.tokens]]\nname = \"test\"\ntenant = \"acme\"\nroles = [\"ingest\", \"read\"]\nsha256 = \"{}\"\n",
            reference_config(),
            retain_runtime::auth::token_hash(TOKEN)
        ),
    )
    .unwrap();
    // The binary binds port 0 and writes the address it got to a file.
    let address_file = dir.path().join("addr");
    let db = dir.path().join("ingestion.db");
    let child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .env("RETAIN__SERVER__LISTEN", "127.0.0.1:0")
        .env("RETAIN__SERVER__ADDRESS_FILE", &address_file)
        .env(
            "RETAIN__DATABASE__URL",
            format!("sqlite://{}?mode=rwc", db.display()),
        )
        .env("RETAIN__TELEMETRY__LOG_FORMAT", "json")
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
        .ingest_signals(authed(v1::IngestSignalsRequest {
            signals: vec![signal],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 1);
    let a = client
        .get_account(authed(v1::GetAccountRequest {
            account_id: "acme-1".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.account.unwrap().account_id, "acme-1");

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
