//! `retain demo --exit` as a newcomer runs it: the real binary, a fresh
//! data folder, a port the system picks; it must finish with the whole
//! report and leave its data behind for `retain serve`.

#![allow(clippy::unwrap_used)] // Tests fail loudly on any unexpected error.

use std::process::Command;

#[test]
fn the_demo_runs_end_to_end_and_prints_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_retain"))
        .args(["--data-dir"])
        .arg(dir.path())
        .args(["demo", "--accounts", "40", "--exit"])
        .env("RETAIN__SERVER__LISTEN", "127.0.0.1:0")
        .env("RETAIN__SERVER__SHUTDOWN_GRACE_MS", "1000")
        .env_remove("RETAIN_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    for section in [
        "Portfolio, ",
        "MRR bridge, ",
        "Health bands",
        "The 10 accounts most at risk",
        "CSM queue",
        "Emails",
        "Retain is serving ingestion, metrics, health and notification on 127.0.0.1:",
    ] {
        assert!(stdout.contains(section), "no {section:?} in:\n{stdout}");
    }
    // Every signal accepted, none rejected.
    assert!(stdout.contains(" 0 rejected"), "{stdout}");
    // The KPIs have values, the bands add up to the accounts scored.
    assert!(stdout.contains("paying accounts"), "{stdout}");
    let bands: usize = ["thriving", "green", "yellow", "red"]
        .iter()
        .map(|b| {
            let line = stdout
                .lines()
                .find(|l| l.trim_start().starts_with(b))
                .unwrap();
            line.split_whitespace()
                .last()
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    // Every account scored, and nothing else (the portfolio's costs are
    // no account).
    assert_eq!(bands, 40, "{stdout}");
    // Every Red account scored from live signals has its review task: an
    // account first seen Red acts like one that turns Red. (One known only
    // from history acts at its first live score.)
    let missing = red_without_review(&dir.path().join("retain.db"));
    assert!(
        missing.is_empty(),
        "Red accounts with live signals but no review task: {missing:?}\n{stdout}"
    );
    // The data stays: the database, the dev token, the emails written.
    let token = std::fs::read_to_string(dir.path().join("dev-token")).unwrap();
    assert!(stdout.contains(token.trim()), "the token is printed");
    assert!(dir.path().join("retain.db").is_file());
    // A second run on the same data sends the very same portfolio: all
    // duplicates, nothing counted twice, the same report.
    let again = Command::new(env!("CARGO_BIN_EXE_retain"))
        .args(["--data-dir"])
        .arg(dir.path())
        .args(["demo", "--accounts", "40", "--exit"])
        .env("RETAIN__SERVER__LISTEN", "127.0.0.1:0")
        .env("RETAIN__SERVER__SHUTDOWN_GRACE_MS", "1000")
        .env_remove("RETAIN_CONFIG")
        .output()
        .unwrap();
    let again_out = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.status.success(),
        "{again_out}{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(
        again_out.contains(" 0 accepted, ") && again_out.contains(" 0 rejected"),
        "{again_out}"
    );
    let emails = std::fs::read_dir(dir.path().join("outbox")).map_or(0, |d| d.count());
    assert!(emails > 0, "emails in the outbox");
    assert!(
        stdout.contains(&format!(
            "written to {}",
            dir.path().join("outbox").display()
        )),
        "{stdout}"
    );
}

#[test]
fn a_taken_port_is_named_with_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_retain"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("serve")
        .env("RETAIN__SERVER__LISTEN", addr.to_string())
        .env_remove("RETAIN_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&addr.to_string()) && stderr.contains("RETAIN__SERVER__LISTEN"),
        "{stderr}"
    );
}

/// After the demo, `retain serve` on the same data answers as the README
/// says: an NPS 3 sent for a demo account opens a "call within 24 h" task.
#[tokio::test]
async fn serve_after_the_demo_turns_a_detractor_into_a_task() {
    use retain_proto::v1;
    use retain_proto::v1::ingestion_service_client::IngestionServiceClient;

    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("retain.db").display()
    );
    let status = Command::new(env!("CARGO_BIN_EXE_retain"))
        .current_dir(dir.path())
        .args(["demo", "--accounts", "20", "--exit"])
        .env("RETAIN__SERVER__LISTEN", "127.0.0.1:0")
        .env("RETAIN__DATABASE__URL", &db)
        .env_remove("RETAIN_CONFIG")
        .output()
        .unwrap()
        .status;
    assert!(status.success());
    let config = dir.path().join("empty.toml");
    std::fs::write(&config, "").unwrap();
    let running =
        retain_testkit::binary::start_binary(env!("CARGO_BIN_EXE_retain"), &config, dir.path())
            .await;
    let token = std::fs::read_to_string(dir.path().join("retain-data/dev-token")).unwrap();
    let token = token.trim();
    let nps = v1::Signal {
        event_id: "readme-nps".into(),
        account_id: "demo-acct-00001".into(),
        occurred_at: retain_testkit::ts(retain_testkit::now()),
        body: Some(v1::signal::Body::Survey(v1::SurveyAnswer {
            kind: v1::SurveyKind::Nps as i32,
            score: 3,
            user_id: "u-1".into(),
            ..Default::default()
        })),
    };
    let reply = IngestionServiceClient::new(running.channel.clone())
        .ingest_signals(retain_testkit::with_token(
            token,
            retain_testkit::batch(vec![nps]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 1);
    let task = retain_testkit::task_titled(
        &running.channel,
        token,
        "demo-acct-00001",
        "Call within 24 h",
    )
    .await;
    assert!(task.message.contains("answered NPS 3"), "{}", task.message);

    // The client commands, against the same server.
    let endpoint = format!(
        "http://{}",
        std::fs::read_to_string(dir.path().join("addr")).unwrap()
    );
    let retain = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_retain"))
            .current_dir(dir.path())
            .args(["--endpoint", &endpoint])
            .args(args)
            .env_remove("RETAIN_TOKEN")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = retain(&["tasks", "--limit", "1000"]);
    assert!(
        ok && out.contains(&task.task_id) && out.contains("Call within 24 h"),
        "{out}{err}"
    );
    let (ok, out, err) = retain(&[
        "tasks",
        "claim",
        &task.task_id,
        "--as",
        "ana@vendor.example",
    ]);
    assert!(
        ok && out.starts_with("claimed: ") && out.contains("ana@vendor.example"),
        "{out}{err}"
    );
    let (ok, _, err) = retain(&["tasks", "dismiss", &task.task_id, "--reason", " "]);
    assert!(
        !ok && err.contains("reason"),
        "a blank reason is refused, naming the field: {err}"
    );
    let (ok, out, err) = retain(&["health", "demo-acct-00001"]);
    assert!(
        ok && out.contains("dimension") && out.contains("product_usage"),
        "{out}{err}"
    );
    let (ok, out, err) = retain(&["metrics"]);
    assert!(ok && out.contains("MRR bridge"), "{out}{err}");
    let (ok, out, err) = retain(&["scorecard", "--stage", "onboarding"]);
    assert!(
        ok && out.contains("Scorecard: onboarding") && out.contains("trial to paid"),
        "{out}{err}"
    );
    let (ok, _, err) = retain(&["--token", "wrong", "tasks"]);
    assert!(!ok && err.contains("token was refused"), "{err}");

    // The demo sent to this running server instead of starting one: the
    // same tenant, the portfolio already there.
    let (ok, out, err) = retain(&["demo", "--remote", "--accounts", "20"]);
    assert!(
        ok && out.contains("The 10 accounts most at risk"),
        "{out}{err}"
    );

    // A JSON Lines file: good lines in, bad ones out with their reasons.
    // Yesterday: a LIVE signal may be at most 30 days old.
    let when = retain_testkit::ts(retain_testkit::now() - 86_400)
        .unwrap()
        .to_string();
    let file = dir.path().join("signals.jsonl");
    std::fs::write(
        &file,
        [
            format!(
                r#"{{"event_id": "f-1", "account_id": "demo-acct-00002", "occurred_at": "{when}", "survey": {{"kind": "SURVEY_KIND_NPS", "score": 9, "user_id": "u-1"}}}}"#
            ),
            format!(
                r#"{{"event_id": "f-2", "account_id": "demo-acct-00002", "occurred_at": "{when}", "survey": {{"kind": "SURVEY_KIND_NPS", "score": 42, "user_id": "u-1"}}}}"#
            ),
            "not json".to_owned(),
        ]
        .join("\n"),
    )
    .unwrap();
    let (ok, out, err) = retain(&["ingest", file.to_str().unwrap()]);
    assert!(
        !ok && out.contains("1 accepted, 0 already known, 2 rejected"),
        "{out}{err}"
    );
    let rejected = std::fs::read_to_string(dir.path().join("signals.jsonl.rejected")).unwrap();
    let lines: Vec<&str> = rejected.lines().collect();
    assert_eq!(lines.len(), 2, "{rejected}");
    assert!(
        lines[0].contains(r#""line":2"#) && lines[0].contains("survey.score"),
        "{rejected}"
    );
    assert!(
        lines[1].contains(r#""line":3"#) && lines[1].contains("not a signal"),
        "{rejected}"
    );
    let (_, out, _) = retain(&["ingest", file.to_str().unwrap()]);
    assert!(
        out.contains("0 accepted, 1 already known"),
        "a resend counts nothing twice: {out}"
    );

    // --json for scripts: every answer parses.
    let (ok, out, err) = retain(&["--json", "tasks", "--limit", "5"]);
    assert!(ok, "{err}");
    let tasks: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        tasks["tasks"].as_array().is_some_and(|t| !t.is_empty()),
        "{out}"
    );
    let (ok, out, err) = retain(&["--json", "metrics"]);
    assert!(ok, "{err}");
    let metrics: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        metrics["portfolio"]["kpis"].is_array() && metrics["mrr_bridge"].is_object(),
        "{out}"
    );
    let (ok, out, _) = retain(&["--json", "health", "demo-acct-00001"]);
    assert!(
        ok && serde_json::from_str::<serde_json::Value>(&out).unwrap()["account_id"]
            == "demo-acct-00001"
    );
    let (ok, out, _) = retain(&["completions", "bash"]);
    assert!(ok && out.contains("retain"), "a completion script");

    // The routing policy and the scoring model, as JSON, round trip.
    let (ok, policy, err) = retain(&["policy", "get"]);
    assert!(
        ok && policy.contains("ROUTING_TRIGGER_BAND_RED"),
        "{policy}{err}"
    );
    let policy_file = dir.path().join("policy.json");
    std::fs::write(&policy_file, &policy).unwrap();
    let (ok, out, err) = retain(&["policy", "put", policy_file.to_str().unwrap()]);
    assert!(ok && out.contains("stored as version 1"), "{out}{err}");
    let (ok, model, err) = retain(&["model", "get"]);
    assert!(ok && model.contains("product_usage"), "{model}{err}");
    let model_file = dir.path().join("model.json");
    std::fs::write(&model_file, &model).unwrap();
    let (ok, out, err) = retain(&[
        "model",
        "preview",
        model_file.to_str().unwrap(),
        "demo-acct-00001",
    ]);
    assert!(
        ok && out.contains("candidate") && out.contains("demo-acct-00001"),
        "{out}{err}"
    );
    assert!(running.stop().await.success());
}

/// Red accounts with a LIVE signal and no "Account review" task.
fn red_without_review(db: &std::path::Path) -> Vec<String> {
    use sea_orm::{ConnectionTrait, Database, Statement};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = Database::connect(format!("sqlite://{}?mode=ro", db.display()))
            .await
            .unwrap();
        let sql = format!(
            "SELECT h.account_id FROM health_current h WHERE h.band = {red} \
             AND EXISTS (SELECT 1 FROM signals s WHERE s.tenant_id = h.tenant_id \
                         AND s.account_id = h.account_id AND s.mode = 1) \
             AND NOT EXISTS (SELECT 1 FROM notification_tasks t WHERE t.tenant_id = h.tenant_id \
                             AND t.account_id = h.account_id AND t.title = 'Account review')",
            red = retain_proto::v1::HealthBand::Red as i32
        );
        conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql))
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get_by_index(0).unwrap())
            .collect()
    })
}
