//! The Kubernetes deployment's start-up, run here with the very binaries
//! the image copies and the configuration its ConfigMap carries
//! (`deploy/kustomize/base/retain.toml`), on PostgreSQL, with the
//! environment the manifests set: the init container's `retain migrate
//! --check --wait` waits for the migration Job's `retain migrate` (which
//! reads only the database URL, as its manifest gives it); the four
//! services start on the migrated schema, read their tokens from the
//! tokens file (the mounted Secret), answer both health probes, turn a
//! signal into a task, and stop cleanly on SIGTERM. (`docker build` cannot
//! run on the CI machines; `deploy/check.py` checks the manifests.)

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use retain_proto::v1;
use retain_proto::v1::ingestion_service_client::IngestionServiceClient;
use retain_testkit::binary::Processes;
use retain_testkit::{
    TestDatabase, batch, health_status, now, signal, task_titled, ts, with_token,
};
use tonic_health::pb::health_check_response::ServingStatus;

const TOKEN: &str = "deploy-test-token";

fn configmap_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kustomize/base/retain.toml")
}

/// `retain` as the Job and the init containers run it: configuration from
/// `RETAIN_CONFIG`, the database URL and the tokens file from the
/// environment, in a folder that must stay empty (the pods' root file
/// system is read-only).
fn retain(dir: &Path, url: &str, tokens: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_retain"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("RETAIN_DATA_DIR")
        .env("RETAIN_CONFIG", configmap_config())
        .env("RETAIN__DATABASE__URL", url)
        .env("RETAIN__AUTH__TOKENS_FILE", tokens)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn the_configmap_config_migrates_serves_and_stops_as_the_manifests_run_it() {
    let test = "the_configmap_config_migrates_serves_and_stops_as_the_manifests_run_it";
    let Some(url) = TestDatabase::postgres_unmigrated(test).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("pod");
    std::fs::create_dir(&work).unwrap();
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        format!(
            "[[tokens]]\nname = \"deploy-test\"\ntenant = \"acme\"\nroles = [\"ingest\", \"read\", \"csm\"]\nsha256 = \"{}\"\n",
            retain_runtime::auth::token_hash(TOKEN)
        ),
    )
    .unwrap();

    // Before the Job: the check names what is pending and fails. The init
    // container runs without the tokens Secret (an empty tokens file).
    let no_tokens = Path::new("");
    let early = retain(&work, &url, no_tokens, &["migrate", "--check"])
        .output()
        .unwrap();
    assert_eq!(early.status.code(), Some(1), "{}", text(&early));
    assert!(text(&early).contains("not up to date"), "{}", text(&early));

    // The init container waits while the Job migrates.
    let waiting = retain(
        &work,
        &url,
        no_tokens,
        &["migrate", "--check", "--wait", "120"],
    )
    .spawn()
    .unwrap();
    // The Job as its manifest runs it: the database URL and nothing else.
    let job = Command::new(env!("CARGO_BIN_EXE_retain"))
        .arg("migrate")
        .current_dir(&work)
        .env_remove("RETAIN_CONFIG")
        .env_remove("RETAIN_DATA_DIR")
        .env("RETAIN__DATABASE__URL", &url)
        .env("RETAIN__DATABASE__MAX_CONNECTIONS", "1")
        .output()
        .unwrap();
    assert!(job.status.success(), "{}", text(&job));
    let waited = tokio::task::spawn_blocking(move || waiting.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(waited.status.success(), "{}", text(&waited));
    assert!(text(&waited).contains("up to date"), "{}", text(&waited));
    assert_eq!(
        std::fs::read_dir(&work).unwrap().count(),
        0,
        "migrate wrote into its working folder"
    );

    // The four services, with the ConfigMap's configuration. Emails go to
    // the outbox (the overlay dev's choice): no SMTP server here.
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_retain")).parent().unwrap();
    let Some(deployment) = Processes::new(test, bin_dir, dir.path(), &configmap_config(), &url)
    else {
        return;
    };
    let deployment = deployment
        .with_env("RETAIN__AUTH__TOKENS_FILE", tokens.to_str().unwrap())
        .with_env("RETAIN__NOTIFICATION__EMAIL__TRANSPORT", "outbox");
    let services = deployment.start_all().await;
    for service in &services {
        assert_eq!(
            health_status(&service.channel, "").await,
            ServingStatus::Serving
        );
        assert_eq!(
            health_status(&service.channel, retain_runtime::LIVENESS).await,
            ServingStatus::Serving
        );
    }

    // A detractor's answer, in at ingestion with the file's token, comes
    // out as a call task at notification.
    let answer = v1::Signal {
        occurred_at: ts(now() - 60),
        ..signal(
            "nps-1",
            "acme-1",
            v1::signal::Body::Survey(v1::SurveyAnswer {
                kind: v1::SurveyKind::Nps as i32,
                score: 2,
                user_id: "u-1".into(),
                ..Default::default()
            }),
        )
    };
    let reply = IngestionServiceClient::new(services[0].channel.clone())
        .ingest_signals(with_token(TOKEN, batch(vec![answer])))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 1);
    let task = task_titled(&services[3].channel, TOKEN, "acme-1", "Call within 24 h").await;
    assert_eq!(task.account_id, "acme-1");

    for service in services {
        let status = service.stop().await;
        assert!(
            status.success(),
            "a service exited with {status} on SIGTERM"
        );
    }
}
