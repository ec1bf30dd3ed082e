//! One daemon per data directory, with real processes: a second `start` is refused
//! naming the first one's PID, a command never works offline beside a daemon that holds
//! the lock but does not answer, and processes opening one fresh directory at once all
//! succeed.

use std::process::{Command, Stdio};

mod support;
use support::process::{self, Daemon, BIN};

#[test]
fn second_start_is_refused_naming_the_pid() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("a");
    let first = Daemon::start(data.clone(), None);

    let second = process::start_command(&data, false, None)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    let pid = first.pid().to_string();
    assert!(
        stderr.contains(&format!("pid {pid}")) && stderr.contains("daemon.lock"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // The first daemon is untouched and still answers.
    assert_eq!(first.cli(&["status"])["online"], true);
    first.stop();

    // Once it has stopped, the directory is free again.
    Daemon::start(data, None).stop();
}

/// A daemon frozen with SIGSTOP keeps its lock but cannot answer: the command says so,
/// naming the PID, instead of opening the store beside it.
#[cfg(unix)]
#[test]
fn a_silent_daemon_holding_the_lock_is_named_not_bypassed() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("a");
    let daemon = Daemon::start(data.clone(), None);
    let pid = daemon.pid().to_string();
    let signal = |name: &str| {
        assert!(Command::new("kill")
            .args([name, &pid])
            .status()
            .unwrap()
            .success());
    };

    signal("-STOP");
    let output = process::run(&data, &["list", "--json"]);
    signal("-CONT");
    // Under --json the error is JSON on stdout (docs/user-guide.md, "Errors").
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let error: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON error, not an offline list");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("pid {pid}")) && message.contains("does not answer"),
        "{stdout}"
    );
    assert_eq!(error["error"]["kind"], "daemon_unreachable", "{stdout}");

    // Awake again, it answers and commands go through it.
    assert_eq!(daemon.cli(&["status"])["online"], true);
    daemon.stop();
}

#[test]
fn processes_opening_one_fresh_directory_at_once_all_succeed() {
    let root = tempfile::tempdir().unwrap();
    for round in 0..20 {
        let data = root.path().join(format!("fresh-{round}"));
        let children: Vec<_> = (0..2)
            .map(|_| {
                Command::new(BIN)
                    .arg("--data-dir")
                    .arg(&data)
                    .args(["list", "--json"])
                    .env_remove("GGEN_P2P_HOME")
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}
