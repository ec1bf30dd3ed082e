use assert_cmd::Command;
use predicates::prelude::*;

#[test]
fn {{cmd}}_help_mentions_about() {
    Command::cargo_bin("{{bin}}")
        .unwrap()
        .args(["{{cmd}}", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("{{about}}"));
}

#[test]
fn {{cmd}}_dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    std::fs::write(&input, "hello").unwrap();
    Command::cargo_bin("{{bin}}")
        .unwrap()
        .arg("{{cmd}}")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .arg("--dry-run")
        .assert()
        .success();
    assert!(!output.exists());
}
