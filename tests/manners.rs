//! Terminal manners of the real `ggen-p2p` binary: usage errors exit 2, errors under
//! `--json` are one JSON object on stdout, completions, `config show` and its sources,
//! the documented key list, a closed stdout during `start`, libp2p errors in words, and
//! the tour (`demo`) from a directory that is not the repository.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod support;
use support::process::{self, Daemon, BIN};

fn run(data: &Path, args: &[&str]) -> Output {
    process::run(data, args)
}

/// A failure with `code`; returns (stdout, stderr).
fn fails(data: &Path, args: &[&str], code: i32) -> (String, String) {
    let output = run(data, args);
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(
        output.status.code(),
        Some(code),
        "{args:?}: {stderr}{stdout}"
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    (stdout, stderr)
}

/// The `--json` error object of a failing command, checked for its shape.
fn json_error(data: &Path, args: &[&str], code: i32) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (stdout, _) = fails(data, &all, code);
    let value: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {stdout}"));
    let error = &value["error"];
    for field in ["kind", "message", "hint"] {
        let text = error[field].as_str().unwrap_or_default();
        assert!(!text.is_empty(), "{args:?}: error.{field} missing: {value}");
    }
    assert_eq!(value.as_object().unwrap().len(), 1, "{value}");
    value
}

#[test]
fn our_usage_errors_exit_2_like_clap_s_own() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_, err) = fails(&data, &["search"], 2);
    assert!(err.contains("ggen-p2p search rust web"), "{err}");
    let (_, err) = fails(&data, &["yank", "rust-axum-service"], 2);
    assert!(err.contains("rust-axum-service@1.2.0"), "{err}");
    let (_, err) = fails(&data, &["yank", "rust-axum-service@^1"], 2);
    assert!(err.contains("exact version"), "{err}");
    let (_, err) = fails(&data, &["demo", "--nodes", "1"], 2);
    assert!(err.contains("at least 2"), "{err}");
    fails(&data, &["search", "--limit", "many"], 2);
    fails(&data, &["completions", "tcsh"], 2);
    fails(&data, &["-q", "-v", "status"], 2);
    // Help and version are not errors.
    assert!(run(&data, &["help", "install"]).status.success());
    assert!(run(&data, &["--version"]).status.success());
}

#[test]
fn errors_under_json_are_one_object_on_stdout_with_a_stable_kind() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let usage = json_error(&data, &["search"], 2);
    assert_eq!(usage["error"]["kind"], "usage");
    let clap = json_error(&data, &["search", "--limit", "many"], 2);
    assert_eq!(clap["error"]["kind"], "usage");
    assert!(
        clap["error"]["message"].as_str().unwrap().contains("many"),
        "{clap}"
    );
    let offline = json_error(&data, &["peers"], 1);
    assert_eq!(offline["error"]["kind"], "not_running");
    assert!(
        offline["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("ggen-p2p start"),
        "{offline}"
    );
    let unknown = json_error(&data, &["info", "nothing-here"], 1);
    assert_eq!(unknown["error"]["kind"], "not_found", "{unknown}");
    assert_eq!(
        unknown["error"]["hint"], "check the spelling or sync with peers first",
        "{unknown}"
    );
    // Every kind printed is one the docs list.
    let guide =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/user-guide.md"))
            .unwrap();
    for kind in ggen_p2p::cli::error::KINDS {
        assert!(
            guide.contains(&format!("| `{kind}` |")),
            "docs/user-guide.md does not list error kind {kind}"
        );
    }
}

#[test]
fn search_network_without_a_node_says_to_start_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_, err) = fails(&data, &["search", "axum", "--network"], 1);
    assert!(err.contains("ggen-p2p start"), "{err}");
    assert!(!err.contains("try `--network`"), "{err}");
}

#[test]
fn completions_name_the_subcommands_and_bash_parses_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for shell in ["bash", "zsh", "fish"] {
        let output = run(&data, &["completions", shell]);
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8(output.stdout).unwrap();
        for command in ["publish", "install", "search", "completions", "config"] {
            assert!(script.contains(command), "{shell} lacks {command}");
        }
    }
    let script = dir.path().join("ggen-p2p.bash");
    std::fs::write(&script, run(&data, &["completions", "bash"]).stdout).unwrap();
    let checked = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(checked.success(), "bash -n refused the completion script");
}

fn config_show(data: &Path, env: &[(&str, &str)], flags: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .arg("--data-dir")
        .arg(data)
        .args(["config", "show", "--json"])
        .args(flags)
        .env_remove("GGEN_P2P_HOME");
    for (var, _) in std::env::vars().filter(|(v, _)| v.starts_with("GGEN_P2P_")) {
        command.env_remove(var);
    }
    for (var, value) in env {
        command.env(var, value);
    }
    command.output().unwrap()
}

fn entry<'a>(report: &'a Value, key: &str) -> &'a Value {
    report["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == key)
        .unwrap_or_else(|| panic!("no key {key} in {report}"))
}

#[test]
fn config_show_tells_default_file_environment_and_flag_apart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("config.toml"),
        "cache_size = 5\n[gossip]\nmesh_n = 8\n",
    )
    .unwrap();
    let output = config_show(
        &data,
        &[
            ("GGEN_P2P_MAX_CONNECTIONS", "7"),
            ("GGEN_P2P_GOSSIP__HEARTBEAT_MS", "700"),
            ("GGEN_P2P_CACHE_SIZE", "9"),
        ],
        &["--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["file_exists"], true);
    let check = |key: &str, value: Value, source: &str| {
        let e = entry(&report, key);
        assert_eq!(e["value"], value, "{key}: {e}");
        assert_eq!(e["source"], source, "{key}: {e}");
    };
    check("replication_factor", 20.into(), "default");
    check("gossip.mesh_n", 8.into(), "file");
    check("gossip.mesh_n_low", 4.into(), "default");
    check("cache_size", 9.into(), "environment");
    check("max_connections", 7.into(), "environment");
    check("gossip.heartbeat_ms", 700.into(), "environment");
    check(
        "listen",
        serde_json::json!(["/ip4/127.0.0.1/tcp/0"]),
        "flag",
    );
    check("mdns", false.into(), "flag");
    assert_eq!(
        entry(&report, "gossip.mesh_n")["env"],
        "GGEN_P2P_GOSSIP__MESH_N"
    );

    let bad = config_show(&data, &[("GGEN_P2P_MAX_CONNECTIONS", "lots")], &[]);
    assert_eq!(bad.status.code(), Some(1));
    let said: Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(said["error"]["kind"], "config", "{said}");
    assert!(
        said["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GGEN_P2P_MAX_CONNECTIONS"),
        "{said}"
    );
}

/// docs/configuration.md lists exactly the keys the node knows, each with its variable.
#[test]
fn config_docs_list_every_key() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md"),
    )
    .unwrap();
    let mut documented = Vec::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split(" | ").collect();
        let key = cells[0].trim_start_matches("| ").trim_matches('`');
        if !key.starts_with("GGEN_P2P_") && !matches!(key, "RUST_LOG" | "NO_COLOR") {
            let env = cells.get(2).copied().unwrap_or_default().trim_matches('`');
            assert_eq!(env, ggen_p2p::config::env_var(key), "variable of {key}");
            documented.push(key.to_string());
        }
    }
    let real = ggen_p2p::config::keys();
    assert_eq!(documented, real, "docs/configuration.md keys vs the code");
    // And `config show` prints the same list.
    let dir = tempfile::tempdir().unwrap();
    let output = config_show(&dir.path().join("data"), &[], &[]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let shown: Vec<String> = report["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(shown, real);
}

/// `start | head` then Ctrl-C: the node's stdout and stderr are closed under it; it must
/// stop cleanly (no panic, exit 0) and remove `api.json`.
#[test]
fn start_survives_closed_pipes_and_removes_its_api_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["start", "--listen", "/ip4/127.0.0.1/tcp/0"])
        .args(["--no-mdns", "--no-autonat"])
        .env_remove("GGEN_P2P_HOME")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Like `| head -4`: read what `start` prints (it ends with the `api` line), then
    // close both pipes under the running node; what it writes next (the log, "stopping…")
    // meets a closed pipe.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("peer id"), "{first}");
    for line in lines.by_ref() {
        if line.unwrap().starts_with("api ") {
            break;
        }
    }
    drop(lines);
    drop(child.stderr.take());
    support::wait_until("api.json written", || data.join("api.json").exists());
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let mut status = None;
    support::wait_until("start exits after SIGINT", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let status = status.unwrap();
    assert_ne!(status.code(), Some(101), "start panicked: {status}");
    assert!(status.success(), "{status}");
    assert!(!data.join("api.json").exists(), "api.json left behind");
}

/// A closed port as a peer: `peers add` and a bootstrap entry both say it in one
/// sentence with a hint, with no libp2p internals.
#[test]
fn unreachable_peers_are_told_in_words() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nobody = format!(
        "/ip4/127.0.0.1/tcp/{port}/p2p/{}",
        ggen_p2p::net::PeerId::random()
    );
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path().join("data"), Some(&nobody));
    let (_, err) = fails(&daemon.data, &["peers", "add", &nobody], 1);
    let expected = format!(
        "could not reach 127.0.0.1:{port}: connection refused — is a node listening there?"
    );
    assert!(err.contains(&expected), "{err}");
    assert!(!err.contains("Failed to negotiate"), "{err}");
    assert!(!err.contains("PeerId("), "{err}");
    support::wait_until("status shows the bootstrap failure", || {
        let status = daemon.cli(&["status"]);
        status["net"]["bootstrap"][0]["error"]
            .as_str()
            .is_some_and(|e| e == expected)
    });
    let status = daemon.cli(&["status"]);
    assert_eq!(status["net"]["bootstrap"][0]["connected"], false);
    // Through the daemon (HTTP 404), an unknown pack is the same kind as offline.
    let unknown = json_error(&daemon.data, &["info", "nothing-here"], 1);
    assert_eq!(unknown["error"]["kind"], "not_found", "{unknown}");
    daemon.stop();
}

/// The tour from a directory that is not the repository (as after `cargo install`),
/// with `--json` and `--data-dir`.
#[test]
fn demo_runs_from_anywhere_with_json_and_a_data_dir() {
    let cwd = tempfile::tempdir().unwrap();
    let tour = cwd.path().join("tour");
    let output = Command::new(BIN)
        .args(["demo", "--fast", "--nodes", "3", "--json", "--data-dir"])
        .arg(&tour)
        .current_dir(cwd.path())
        .env_remove("GGEN_P2P_HOME")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["nodes"].as_array().unwrap().len(), 3);
    let published = report["published"].as_array().unwrap();
    assert!(published.len() >= 2, "{report}");
    for pack in published {
        let arrivals = pack["arrivals"].as_array().unwrap();
        assert_eq!(arrivals.len(), 3, "{pack}");
        let far = arrivals.iter().find(|a| a["node"] == 2).unwrap();
        assert_eq!(far["hops"], 2);
    }
    assert!(
        !report["search"]["results"].as_array().unwrap().is_empty(),
        "{report}"
    );
    let install = &report["install"];
    assert_eq!(install["node"], 2);
    assert!(install["files"].as_u64().unwrap() > 0, "{install}");
    assert!(!install["fetched_from"].as_array().unwrap().is_empty());
    assert!(Path::new(install["path"].as_str().unwrap()).exists());
    assert_eq!(report["data_dir"], tour.to_str().unwrap());
    // The far node's data directory is kept and readable by the other commands.
    let far = process::json(&tour.join("node2"), &["list"]);
    assert!(
        far.to_string().contains(install["name"].as_str().unwrap()),
        "{far}"
    );
    // A second tour into the same directory is refused as a usage error.
    let again = Command::new(BIN)
        .args(["demo", "--fast", "--data-dir"])
        .arg(&tour)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
}
