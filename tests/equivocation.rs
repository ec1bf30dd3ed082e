//! Equivocation and owner attestation through real swarms over loopback: two nodes that
//! each published a different archive under one key for the same version connect, and
//! they and a node that joins later all mark the version compromised (`info` says so,
//! `install` refuses it unless the archive is pinned); a node meeting a name with two
//! claims adopts the owner most of its peers attest. The rules themselves are
//! unit-tested in `store/equivocation.rs`, `store/owner.rs` and `store/attest.rs`.

use ggen_p2p::package::{ArchiveInfo, PublisherKey, Record, RecordBody, VersionRecord};
use ggen_p2p::registry::{
    InfoRequest, InstallRequest, Package, PackageSpec, Registry, SearchRequest,
};

mod support;
use support::registry::{address, node, wait_connected};
use support::{eventually, packs};

const NAME: &str = "rust-tracing-setup";

/// Copies a directory tree (the example pack) so one copy can be changed.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_equivocation_is_marked_compromised_on_every_node() {
    let root = tempfile::tempdir().unwrap();
    let a = node(root.path(), "a", vec![]).await;
    let b = node(root.path(), "b", vec![]).await;
    // One key (leaked, or used carelessly on two machines) on both nodes.
    let key = PublisherKey::generate();
    key.save(&a.publisher_key_path(), false).unwrap();
    key.save(&b.publisher_key_path(), false).unwrap();
    let other = root.path().join("other-pack");
    copy_dir(&packs().join(NAME), &other);
    std::fs::write(
        other.join("EXTRA.md"),
        "a different archive, same version\n",
    )
    .unwrap();
    let first = a
        .publish(Package::from_dir(packs().join(NAME)).unwrap().into())
        .await
        .unwrap();
    let second = b
        .publish(Package::from_dir(&other).unwrap().into())
        .await
        .unwrap();
    assert_eq!(first.version, second.version);
    let (hash_a, hash_b) = (first.archive.blake3, second.archive.blake3);
    assert_ne!(hash_a, hash_b);

    b.client()
        .unwrap()
        .dial(address(&a).await.parse().unwrap())
        .await
        .unwrap();
    let compromised = |node: &ggen_p2p::registry::P2PRegistry| {
        let node = node.clone();
        async move { node.store().compromised(NAME).unwrap().len() == 1 }
    };
    eventually("A marks the version compromised", || compromised(&a)).await;
    eventually("B marks the version compromised", || compromised(&b)).await;
    // A third node joins later, knowing only A.
    let c = node(root.path(), "c", vec![address(&a).await]).await;
    wait_connected(&c, 1).await;
    eventually("C marks the version compromised", || compromised(&c)).await;

    let mut both = [hash_a, hash_b];
    both.sort();
    for node in [&a, &b, &c] {
        let info = node
            .info(InfoRequest::new(PackageSpec::new(
                NAME,
                first.version.to_string(),
            )))
            .await
            .unwrap();
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["versions"][0]["compromised"], true, "{json}");
        assert_eq!(json["compromised"][0]["version"], first.version.to_string());
        let archives: Vec<String> = both.iter().map(|h| h.to_string()).collect();
        assert_eq!(
            json["compromised"][0]["archives"],
            serde_json::json!(archives)
        );
        let hits = node
            .search(SearchRequest::new(vec!["tracing".into()]))
            .await
            .unwrap();
        let hit = hits
            .results
            .iter()
            .find(|h| h.package.name == NAME)
            .unwrap();
        assert!(hit.compromised);
    }

    // Installing it, as the newest or exactly, is refused with the explanation.
    for spec in ["", &first.version.to_string()] {
        let err = c
            .install(
                InstallRequest::new(PackageSpec::new(NAME, spec))
                    .with_target(root.path().join("refused")),
                None,
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("compromised"), "{err}");
        assert!(err.contains("leaked"), "{err}");
        assert!(
            err.contains(&hash_a.to_string()) && err.contains(&hash_b.to_string()),
            "{err}"
        );
    }
    assert!(!root.path().join("refused").exists());

    // Pinned by hash (as a lockfile does), either side installs.
    let target = root.path().join("pinned");
    let installed = c
        .install(
            InstallRequest::new(PackageSpec::new(NAME, ""))
                .with_target(&target)
                .with_archive(hash_b),
            None,
        )
        .await
        .unwrap();
    assert_eq!(installed.archive, hash_b);
    assert!(target.join("EXTRA.md").exists());

    for node in [&a, &b, &c] {
        node.stop().await.unwrap();
    }
}

fn claim(key: &PublisherKey, version: &str) -> Record {
    let body = VersionRecord::fixture(
        key,
        "contested-pack",
        version,
        ArchiveInfo::fixture(version.as_bytes()),
    );
    Record::sign(RecordBody::Version(body), key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_met_contested_takes_the_owner_most_peers_attest() {
    let root = tempfile::tempdir().unwrap();
    let (x, y) = (PublisherKey::generate(), PublisherKey::generate());
    let (from_x, from_y) = (claim(&x, "1.0.0"), claim(&y, "2.0.0"));
    // A and B accepted X (they saw it first), D accepted Y; each holds both claims.
    let mut peers = Vec::new();
    for (name, first, second) in [
        ("a", &from_x, &from_y),
        ("b", &from_x, &from_y),
        ("d", &from_y, &from_x),
    ] {
        let peer = node(root.path(), name, vec![]).await;
        peer.store().ingest(first).unwrap();
        peer.store().ingest(second).unwrap();
        peers.push(peer);
    }
    let mut bootstrap = Vec::new();
    for peer in &peers {
        bootstrap.push(address(peer).await);
    }
    let c = node(root.path(), "c", bootstrap).await;
    wait_connected(&c, 3).await;
    let client = c.client().unwrap();
    eventually("C has asked all three peers for the owner", || {
        let (c, client) = (c.clone(), client.clone());
        async move {
            let _ = client.sync_now().await;
            c.store()
                .name_standing("contested-pack")
                .unwrap()
                .attested
                .is_some_and(|a| a.of == 3)
        }
    })
    .await;
    let info = c
        .info(InfoRequest::new(PackageSpec::new("contested-pack", "")))
        .await
        .unwrap();
    assert!(info.contested);
    let attested = info.owner_attested.as_ref().unwrap();
    assert_eq!(
        (attested.owner, attested.peers, attested.of),
        (x.id(), 2, 3)
    );
    assert_eq!(info.package.publisher, x.id());
    let json = serde_json::to_value(&info).unwrap();
    assert_eq!(json["owner_attested"]["peers"], 2, "{json}");
    assert_eq!(json["contested"], true);
    // The peers that accepted an owner themselves keep it.
    for (peer, owner) in peers.iter().zip([x.id(), x.id(), y.id()]) {
        assert_eq!(
            peer.store().claims("contested-pack").unwrap()[0].publisher,
            owner
        );
    }

    for node in peers.iter().chain([&c]) {
        node.stop().await.unwrap();
    }
}
