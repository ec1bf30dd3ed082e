//! Crash hygiene and bans, end to end: a publish killed with SIGKILL leaves a temp file
//! the next command sweeps; a blocked peer stays refused after a restart (real swarms on
//! 127.0.0.1); `peers block/unblock` through the CLI against a daemon.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ggen_p2p::net::PeerId;
use ggen_p2p::registry::{BlockPeerRequest, Registry, UnblockPeerRequest};

mod support;
use support::process::{self, Daemon, BIN};
use support::registry;

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn a_publish_killed_mid_way_leaves_a_temp_file_the_next_command_sweeps() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    // Incompressible bytes, so packing takes long enough to be killed mid-way.
    let pack = support::big_pack(root.path(), "big-pack", 128);
    let key = process::run(&data, &["key", "generate"]);
    assert!(key.status.success());

    let tmp = data.join("blobs/tmp");
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(&data)
        .args(["publish", pack.to_str().unwrap()])
        .env_remove("GGEN_P2P_HOME")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let begun = Instant::now();
    while files_in(&tmp) == 0 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "publish finished before its temp file was seen; make the pack bigger"
        );
        assert!(
            begun.elapsed() < Duration::from_secs(60),
            "no temp file appeared"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(files_in(&tmp), 1, "the killed publish left its temp file");
    // The sweep leaves files younger than 2 s alone (a writer locks just after creating).
    std::thread::sleep(Duration::from_millis(2100));

    let verify = process::json(&data, &["verify"]);
    assert_eq!(verify["orphans"], serde_json::json!([]), "{verify}");
    assert_eq!(files_in(&tmp), 0, "the next command swept the temp file");
    assert_eq!(verify["bad_archives"], serde_json::json!([]), "{verify}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_peer_stays_blocked_after_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let a = registry::node(root.path(), "a", vec![]).await;
    let b = registry::node(root.path(), "b", vec![registry::address(&a).await]).await;
    registry::wait_connected(&a, 1).await;
    let b_id = b.client().unwrap().peer_id();
    let b_addr = registry::address(&b).await;

    let report = a
        .block_peer(BlockPeerRequest {
            peer: b_id.to_string(),
        })
        .await
        .unwrap();
    assert!(report.blocked && report.changed);
    assert_eq!(report.banned.len(), 1);
    let a_client = a.client().unwrap();
    support::eventually("a to drop the blocked peer", || {
        let a_client = a_client.clone();
        async move { !a_client.connected_peers().await.unwrap().contains(&b_id) }
    })
    .await;
    a.stop().await.unwrap();

    let a = registry::loopback(&root.path().join("a"), vec![]);
    a.start().await.unwrap();
    let client = a.client().unwrap();
    let refused = client.dial(b_addr.parse().unwrap()).await.unwrap_err();
    assert!(refused.to_string().contains("banned"), "{refused}");
    // b dials in: the connection is refused, so the two never stay connected.
    let a_addr = registry::address(&a).await;
    let _ = b.client().unwrap().dial(a_addr.parse().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!client.connected_peers().await.unwrap().contains(&b_id));

    let lifted = a
        .unblock_peer(UnblockPeerRequest {
            peer: b_id.to_string(),
        })
        .await
        .unwrap();
    assert!(!lifted.blocked && lifted.changed && lifted.banned.is_empty());
    assert_eq!(client.dial(b_addr.parse().unwrap()).await.unwrap(), b_id);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[test]
fn peers_block_and_unblock_through_the_cli_against_a_daemon() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("d");
    let stranger = PeerId::random().to_string();
    // Offline: the block is stored, and the daemon loads it at start.
    let offline = process::json(&data, &["peers", "block", &stranger]);
    assert_eq!(offline["blocked"], true);
    let daemon = Daemon::start(data.clone(), None);
    let other = PeerId::random().to_string();
    let blocked = daemon.cli(&["peers", "block", &other]);
    assert_eq!(blocked["changed"], true, "{blocked}");
    let banned: Vec<&str> = blocked["banned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["peer_id"].as_str().unwrap())
        .collect();
    assert_eq!(banned, [stranger.as_str(), other.as_str()]);
    let again = daemon.cli(&["peers", "block", &other]);
    assert_eq!(again["changed"], false);
    let lifted = daemon.cli(&["peers", "unblock", &stranger]);
    assert_eq!(lifted["blocked"], false);
    assert_eq!(lifted["banned"].as_array().unwrap().len(), 1);
    let bad = process::run(&data, &["peers", "block", "not-a-peer"]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("is not a peer id"), "{stderr}");
    daemon.stop();
}

#[test]
fn reserved_device_names_are_refused_as_package_and_entry_names() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    assert!(process::run(&data, &["key", "generate"]).status.success());
    let manifest = |name: &str| {
        format!("[package]\nname = \"{name}\"\nversion = \"1.0.0\"\ndescription = \"x\"\n")
    };
    let named = root.path().join("named");
    std::fs::create_dir_all(named.join("templates")).unwrap();
    std::fs::write(named.join("package.toml"), manifest("nul")).unwrap();
    std::fs::write(named.join("templates/a.txt"), "a").unwrap();
    let entry = root.path().join("entry");
    std::fs::create_dir_all(entry.join("templates")).unwrap();
    std::fs::write(entry.join("package.toml"), manifest("fine")).unwrap();
    std::fs::write(entry.join("templates/Aux.txt"), "a").unwrap();
    for (dir, expected) in [(&named, "\"nul\""), (&entry, "Aux.txt")] {
        let output = process::run(&data, &["publish", dir.to_str().unwrap()]);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("reserved device name") && stderr.contains(expected),
            "{stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one sentence: {stderr}");
    }
}
