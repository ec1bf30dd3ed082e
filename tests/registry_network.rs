//! Several real nodes (full registries: store + libp2p swarm over loopback TCP) in one
//! process: what one publishes, the others find and install, verified — along a line of
//! nodes, for late joiners, across a provider dying mid-download, and across restarts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ggen_p2p::package::PublisherKey;
use ggen_p2p::registry::{
    InfoRequest, InstallRequest, P2PRegistry, P2PRegistryBuilder, Package, PackageSpec, Registry,
};

const DEADLINE: Duration = Duration::from_secs(30);

fn packs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/packs")
}

async fn node(root: &Path, name: &str, bootstrap: Vec<String>) -> P2PRegistry {
    let registry = P2PRegistryBuilder::new()
        .with_data_dir(root.join(name))
        .with_listen_addresses(vec!["/ip4/127.0.0.1/tcp/0".into()])
        .with_bootstrap_peers(bootstrap)
        .with_mdns(false)
        .with_autonat(false)
        .build()
        .unwrap();
    registry.start().await.unwrap();
    registry
}

async fn address(node: &P2PRegistry) -> String {
    let client = node.client().unwrap();
    let begun = Instant::now();
    loop {
        if let Some(addr) = client.listen_addrs().await.unwrap().first() {
            return format!("{addr}/p2p/{}", client.peer_id());
        }
        assert!(
            begun.elapsed() < DEADLINE,
            "node never reported a listen address"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Nodes 0..count, node i bootstrapping from node i-1 only.
async fn line(root: &Path, count: usize) -> Vec<P2PRegistry> {
    let mut nodes: Vec<P2PRegistry> = Vec::new();
    for index in 0..count {
        let bootstrap = match nodes.last() {
            Some(previous) => vec![address(previous).await],
            None => vec![],
        };
        nodes.push(node(root, &format!("n{index}"), bootstrap).await);
    }
    nodes
}

fn with_key(node: &P2PRegistry) {
    PublisherKey::generate()
        .save(&node.publisher_key_path(), false)
        .unwrap();
}

async fn wait_for(node: &P2PRegistry, name: &str, version: &semver::Version) {
    let begun = Instant::now();
    while node.store().version(name, version, None).unwrap().is_none() {
        assert!(
            begun.elapsed() < DEADLINE,
            "{name}@{version} never reached {}",
            node.data_dir().display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_at_one_end_install_at_the_other() {
    let root = tempfile::tempdir().unwrap();
    let nodes = line(root.path(), 5).await;
    with_key(&nodes[0]);
    let package = Package::from_dir(packs().join("rust-axum-service")).unwrap();
    let published = nodes[0].publish(package.into()).await.unwrap();
    let receipt = published.receipt.expect("an online publish has a receipt");
    assert!(receipt.providers >= 1);

    let far = &nodes[4];
    wait_for(far, &published.name, &published.version).await;
    let hits = far
        .search(ggen_p2p::SearchRequest::new(vec!["axum".into()]))
        .await
        .unwrap()
        .results;
    assert_eq!(hits[0].package.name, "rust-axum-service");

    let target = root.path().join("installed");
    let report = far
        .install(install_request("rust-axum-service", &target), None)
        .await
        .unwrap();
    assert!(!report.fetched_from.is_empty(), "archive came from a peer");
    assert!(target.join("package.toml").is_file());
    // Having fetched it, the far node now provides it too.
    assert!(far.store().has_archive(&published.archive.blake3));
    for node in &nodes {
        node.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_catches_up_on_everything() {
    let root = tempfile::tempdir().unwrap();
    let nodes = line(root.path(), 2).await;
    with_key(&nodes[0]);
    let mut published = Vec::new();
    for pack in [
        "rust-tracing-setup",
        "github-actions-ci",
        "python-fastapi-service",
    ] {
        let package = Package::from_dir(packs().join(pack)).unwrap();
        published.push(nodes[0].publish(package.into()).await.unwrap());
    }
    for report in &published {
        wait_for(&nodes[1], &report.name, &report.version).await;
    }
    // Joins after every publish, knowing only node 1.
    let late = node(root.path(), "late", vec![address(&nodes[1]).await]).await;
    for report in &published {
        wait_for(&late, &report.name, &report.version).await;
    }
    late.stop().await.unwrap();
    for node in &nodes {
        node.stop().await.unwrap();
    }
}

/// Writes a pack whose archive spans many chunks (random bytes do not compress).
fn big_pack(dir: &Path, megabytes: usize) -> PathBuf {
    let pack = dir.join("big-pack");
    std::fs::create_dir_all(&pack).unwrap();
    std::fs::write(
        pack.join("package.toml"),
        "[package]\nname = \"big-pack\"\nversion = \"1.0.0\"\ndescription = \"many chunks\"\n",
    )
    .unwrap();
    let mut data = vec![0u8; megabytes << 20];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for byte in data.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
    std::fs::write(pack.join("blob.bin"), data).unwrap();
    pack
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_dies_mid_download_and_install_completes_from_another() {
    let root = tempfile::tempdir().unwrap();
    let nodes = line(root.path(), 3).await;
    with_key(&nodes[0]);
    let package = Package::from_dir(big_pack(root.path(), 48)).unwrap();
    let published = nodes[0].publish(package.into()).await.unwrap();
    // Node 1 fetches it too, becoming a second provider.
    wait_for(&nodes[1], "big-pack", &published.version).await;
    nodes[1]
        .install(
            install_request("big-pack", &root.path().join("copy1")),
            None,
        )
        .await
        .unwrap();

    wait_for(&nodes[2], "big-pack", &published.version).await;
    let killed = Arc::new(AtomicBool::new(false));
    let victim = nodes[0].clone();
    let flag = killed.clone();
    let progress: ggen_p2p::registry::Progress = Arc::new(move |done, total| {
        if done > total / 4 && !flag.swap(true, Ordering::SeqCst) {
            let victim = victim.clone();
            tokio::spawn(async move { victim.stop().await });
        }
    });
    let target = root.path().join("copy2");
    let report = nodes[2]
        .install(install_request("big-pack", &target), Some(progress))
        .await
        .unwrap();
    assert!(
        killed.load(Ordering::SeqCst),
        "the download outlived the provider"
    );
    assert_eq!(report.archive, published.archive.blake3);
    assert_eq!(
        std::fs::metadata(target.join("blob.bin")).unwrap().len(),
        48 << 20
    );
    for node in &nodes[1..] {
        node.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_keeps_identity_records_and_packs() {
    let root = tempfile::tempdir().unwrap();
    let first = node(root.path(), "keeper", vec![]).await;
    with_key(&first);
    let package = Package::from_dir(packs().join("rust-cli-subcommand")).unwrap();
    let published = first.publish(package.into()).await.unwrap();
    let peer_id = first.client().unwrap().peer_id();
    first.stop().await.unwrap();
    drop(first);

    let again = node(root.path(), "keeper", vec![]).await;
    assert_eq!(again.client().unwrap().peer_id(), peer_id);
    let info = again
        .info(InfoRequest::new(PackageSpec::new(
            "rust-cli-subcommand",
            "",
        )))
        .await
        .unwrap();
    assert_eq!(info.package.archive.blake3, published.archive.blake3);
    assert!(again.store().has_archive(&published.archive.blake3));
    again.stop().await.unwrap();
}

fn install_request(name: &str, target: &std::path::Path) -> InstallRequest {
    InstallRequest::new(PackageSpec::new(name, "")).with_target(target)
}
