//! Several real nodes (full registries: store + libp2p swarm over loopback TCP) in one
//! process: what one publishes, the others find and install, verified — along a line of
//! nodes, for late joiners, across a provider dying mid-download, and across restarts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ggen_p2p::registry::{InfoRequest, InstallRequest, Package, PackageSpec, Registry};

mod support;
use support::registry::{address, line, node, wait_for, with_key};
use support::{eventually, packs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_at_one_end_install_at_the_other() {
    let root = tempfile::tempdir().unwrap();
    let nodes = line(root.path(), 5).await;
    with_key(&nodes[0]);
    let package = Package::from_dir(packs().join("rust-axum-service")).unwrap();
    // Its dependency travels too: install resolves and fetches it.
    let dependency = Package::from_dir(packs().join("rust-tracing-setup")).unwrap();
    let dependency = nodes[0].publish(dependency.into()).await.unwrap();
    let published = nodes[0].publish(package.into()).await.unwrap();
    let receipt = published.receipt.expect("an online publish has a receipt");
    assert!(receipt.providers >= 1);

    let far = &nodes[4];
    wait_for(far, &published.name, &published.version).await;
    wait_for(far, &dependency.name, &dependency.version).await;
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
    // Having fetched it, the far node keeps the archive and now provides it too: its
    // store lists itself as a provider, and a DHT lookup from the publisher finds it.
    let archive = published.archive.blake3;
    assert!(far.store().has_archive(&archive));
    let far_id = far.client().unwrap().peer_id();
    assert!(
        far.store()
            .providers(&archive)
            .unwrap()
            .contains(&far_id.to_string()),
        "the far node does not list itself as a provider"
    );
    eventually(
        "a DHT lookup from the publisher finds the far node",
        || async {
            let client = nodes[0].client().unwrap();
            client
                .find_providers(archive)
                .await
                .unwrap()
                .contains(&far_id)
        },
    )
    .await;
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
