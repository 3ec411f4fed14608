//! The `retain-metrics` binary: its command line, and a bad configuration
//! stopping start-up naming the key.

#![allow(clippy::unwrap_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_retain-metrics");

#[test]
fn the_binary_explains_itself_and_refuses_a_bad_section_value() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("migrate") && help.contains("--config"),
        "{help}"
    );

    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("retain-metrics "));

    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .env("RETAIN__METRICS__CONSUMER__BATCH", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("metrics.consumer.batch"), "{stderr}");
    assert!(
        !stderr.contains("stack backtrace"),
        "one line, no backtrace: {stderr}"
    );
    assert!(
        !dir.path().join("retain.db").exists(),
        "nothing opened before the settings were checked"
    );
}
