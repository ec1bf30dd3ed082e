//! Three real `ggen-p2p start` processes on 127.0.0.1, joined in a line, driven only
//! through the command line: publish at one end, search and install at the other.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ggen-p2p");
const DEADLINE: Duration = Duration::from_secs(30);

struct Daemon {
    data: PathBuf,
    child: Child,
    addr: String,
}

impl Daemon {
    fn start(data: PathBuf, bootstrap: Option<&str>) -> Daemon {
        let mut command = Command::new(BIN);
        command
            .arg("--data-dir")
            .arg(&data)
            .args([
                "start",
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--no-mdns",
                "--no-autonat",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(addr) = bootstrap {
            command.args(["--bootstrap", addr]);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut addr = None;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(rest) = line.strip_prefix("listening ") {
                addr = Some(rest.trim().to_string());
            }
            if line.starts_with("api ") {
                break;
            }
        }
        let addr = addr.expect("the daemon printed its listen address");
        Daemon { data, child, addr }
    }

    fn cli(&self, args: &[&str]) -> Value {
        let output = Command::new(BIN)
            .arg("--data-dir")
            .arg(&self.data)
            .args(args)
            .arg("--json")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Stops the daemon the way Ctrl-C would (SIGTERM) and waits for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let begun = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "daemon exited with {status}");
                break;
            }
            assert!(begun.elapsed() < DEADLINE, "daemon did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !self.data.join("api.json").exists(),
            "a clean stop removes api.json"
        );
    }
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let begun = Instant::now();
    while !check() {
        assert!(begun.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn three_daemons_publish_search_install_through_the_cli() {
    let root = tempfile::tempdir().unwrap();
    let a = Daemon::start(root.path().join("a"), None);
    let b = Daemon::start(root.path().join("b"), Some(&a.addr));
    let c = Daemon::start(root.path().join("c"), Some(&b.addr));

    a.cli(&["key", "generate"]);
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/packs/rust-axum-service");
    let published = a.cli(&["publish", pack.to_str().unwrap()]);
    assert!(
        published["receipt"].is_object(),
        "online publish: {published}"
    );

    wait_until("the record to reach node c", || {
        let found = c.cli(&["search", "axum"]);
        found["results"].as_array().is_some_and(|r| {
            r.iter()
                .any(|h| h["package"]["name"] == "rust-axum-service")
        })
    });
    let status = c.cli(&["status"]);
    assert_eq!(status["online"], true);
    assert!(status["net"]["connected_peers"].as_u64().unwrap() >= 1);
    let peers = c.cli(&["peers"]);
    assert!(!peers["peers"].as_array().unwrap().is_empty());
    let network = c.cli(&["search", "axum", "--network"]);
    assert!(network["peers_asked"].as_u64().unwrap() >= 1, "{network}");

    // Peers change at run time: c joins a directly, then drops it again.
    let a_id = a.addr.rsplit('/').next().unwrap().to_string();
    let added = c.cli(&["peers", "add", &a.addr]);
    assert!(
        added["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["peer_id"] == a_id.as_str()),
        "{added}"
    );
    let removed = c.cli(&["peers", "remove", &a_id]);
    assert!(
        !removed["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["peer_id"] == a_id.as_str()),
        "{removed}"
    );

    let target = root.path().join("installed");
    let installed = c.cli(&[
        "install",
        "rust-axum-service",
        "--to",
        target.to_str().unwrap(),
    ]);
    assert_eq!(installed["archive"], published["archive"]["blake3"]);
    assert!(target.join("package.toml").is_file());

    c.stop();
    b.stop();
    a.stop();
}
