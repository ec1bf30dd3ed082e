//! Many nodes installing one pack at once (issue 12), with real `ggen-p2p start`
//! processes on 127.0.0.1: a publisher and three installers that all start `install`
//! together. Every installer must end with the exact bytes; installers serve each other
//! chunks (partial holders and peer exchange), so the publisher does not send the whole
//! pack to each of them. The figures under shaped links come from benches/ (the
//! namespace lab); loopback is too fast for a timing claim, so this test checks behaviour.

use std::path::Path;
use std::process::Command;
use std::thread;

mod support;
use support::process::{self, Daemon};
use support::{big_pack, wait_until};

/// A daemon's counter from `/metrics` (its API address is in `api.json`).
fn served_bytes(daemon: &Daemon) -> f64 {
    let api: serde_json::Value =
        serde_json::from_slice(&std::fs::read(daemon.data.join("api.json")).unwrap()).unwrap();
    let addr = api["addr"]
        .as_str()
        .or(api["api"].as_str())
        .unwrap()
        .to_string();
    let output = Command::new("curl")
        .args(["-sf", &format!("http://{addr}/metrics")])
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find(|l| l.starts_with("ggen_p2p_served_bytes_total "))
        .and_then(|l| l.split_whitespace().nth(1))
        .map(|v| v.parse().unwrap())
        .unwrap_or_else(|| panic!("no served counter in /metrics of {addr}: {text}"))
}

#[test]
fn installers_starting_together_share_chunks_and_all_get_the_exact_bytes() {
    const MIB: usize = 48;
    let root = tempfile::tempdir().unwrap();
    let publisher = Daemon::start(root.path().join("publisher"), None);
    let installers: Vec<Daemon> = (0..3)
        .map(|i| Daemon::start(root.path().join(format!("node{i}")), Some(&publisher.addr)))
        .collect();
    publisher.cli(&["key", "generate"]);
    let pack = big_pack(root.path(), "swarm-pack", MIB);
    let published = publisher.cli(&["publish", pack.to_str().unwrap()]);
    let size = published["archive"]["size"].as_f64().unwrap();
    for node in &installers {
        wait_until("every installer knows the record", || {
            process::run(&node.data, &["info", "swarm-pack", "--json"])
                .status
                .success()
        });
    }
    let before = served_bytes(&publisher);

    let targets: Vec<_> = (0..installers.len())
        .map(|i| root.path().join(format!("installed{i}")))
        .collect();
    thread::scope(|scope| {
        for (node, target) in installers.iter().zip(&targets) {
            scope.spawn(move || {
                node.cli(&["install", "swarm-pack", "--to", target.to_str().unwrap()]);
            });
        }
    });

    for target in &targets {
        assert_same_tree(&pack, target);
    }
    let from_publisher = served_bytes(&publisher) - before;
    let between: f64 = installers.iter().map(served_bytes).sum();
    println!(
        "publisher sent {:.2}× the archive, installers sent each other {:.2}×",
        from_publisher / size,
        between / size
    );
    assert!(
        between > 0.0,
        "no installer served a chunk to another (publisher sent {from_publisher} bytes)"
    );
    // Everything the installers got came from someone: the totals add up.
    assert!(
        from_publisher + between >= 3.0 * size,
        "{from_publisher} + {between} < 3 × {size}"
    );
    assert!(
        from_publisher < 3.0 * size,
        "the publisher sent the whole pack to every installer ({from_publisher} bytes)"
    );
    // `status` shows the swarm the publisher seeded.
    let status = publisher.cli(&["status"]);
    let swarms = status["net"]["swarms"]
        .as_array()
        .expect("status lists swarms");
    let seeded = swarms
        .iter()
        .find(|s| s["archive"] == published["archive"]["blake3"])
        .unwrap_or_else(|| panic!("the publisher's status names the swarm: {status}"));
    assert_eq!(seeded["downloading"], false, "{seeded}");
    assert!(seeded["peers"].as_u64().unwrap() >= 1, "{seeded}");
    assert!(
        seeded["chunks_handed_out"].as_u64().unwrap() >= 1,
        "{seeded}"
    );
    // Its byte counts are the chunks it served, as /metrics counted them.
    assert_eq!(
        seeded["bytes_uploaded"].as_f64().unwrap(),
        from_publisher,
        "{seeded}"
    );
    // Installers that served others show the swarm too (within a minute), with what they
    // sent and the whole archive verified.
    let mut uploaded_by_installers = 0.0;
    for node in &installers {
        let status = node.cli(&["status"]);
        let entry = status["net"]["swarms"]
            .as_array()
            .expect("status lists swarms")
            .iter()
            .find(|s| s["archive"] == published["archive"]["blake3"])
            .cloned();
        if let Some(entry) = entry {
            assert_eq!(entry["bytes_downloaded"].as_f64().unwrap(), size, "{entry}");
            assert_eq!(entry["chunks_held"], entry["chunk_count"], "{entry}");
            uploaded_by_installers += entry["bytes_uploaded"].as_f64().unwrap();
        }
    }
    assert_eq!(uploaded_by_installers, between);
    for node in installers {
        node.stop();
    }
    publisher.stop();
}

/// Every file under `pack/templates` is in `target/templates` with the same bytes.
fn assert_same_tree(pack: &Path, target: &Path) {
    for entry in std::fs::read_dir(pack.join("templates")).unwrap() {
        let entry = entry.unwrap();
        let installed = target.join("templates").join(entry.file_name());
        assert!(
            std::fs::read(entry.path()).unwrap() == std::fs::read(&installed).unwrap(),
            "{} differs from what was published",
            installed.display()
        );
    }
}
