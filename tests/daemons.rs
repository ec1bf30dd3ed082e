//! Three real `ggen-p2p start` processes on 127.0.0.1, joined in a line, driven only
//! through the command line: publish at one end, search and install at the other.

use std::path::Path;

mod support;
use support::process::Daemon;
use support::wait_until;

#[test]
fn three_daemons_publish_search_install_through_the_cli() {
    let root = tempfile::tempdir().unwrap();
    let a = Daemon::start(root.path().join("a"), None);
    let b = Daemon::start(root.path().join("b"), Some(&a.addr));
    let c = Daemon::start(root.path().join("c"), Some(&b.addr));

    a.cli(&["key", "generate"]);
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/packs/rust-axum-service");
    // Its dependency too: install resolves and fetches it.
    let dependency = pack.with_file_name("rust-tracing-setup");
    a.cli(&["publish", dependency.to_str().unwrap()]);
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
    // `peers remove` closes our connections to a (like `ipfs swarm disconnect`), but a
    // may dial c again on its own (its DHT provide for the archive just published goes
    // to the closest peers, c among them), so a report still naming a is retried.
    let mut removes = 0;
    wait_until("peers remove to leave a out of c's report", || {
        removes += 1;
        let removed = c.cli(&["peers", "remove", &a_id]);
        !removed["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["peer_id"] == a_id.as_str())
    });
    eprintln!("peers remove: a left c's report after {removes} tries");

    let target = root.path().join("installed");
    let installed = c.cli(&[
        "install",
        "rust-axum-service",
        "--to",
        target.to_str().unwrap(),
    ]);
    assert_eq!(installed["archive"], published["archive"]["blake3"]);
    assert!(target.join("package.toml").is_file());
    assert!(target
        .join(".ggen-p2p/deps/rust-tracing-setup/package.toml")
        .is_file());

    c.stop();
    b.stop();
    a.stop();
}
