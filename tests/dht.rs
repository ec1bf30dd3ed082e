//! The DHT with real swarms over loopback: a restarted publisher provides its archives
//! again, so a fresh node finds it through a DHT lookup alone; an evicted archive is
//! withdrawn; a node that missed records (no gossip, no sync) finds them by name in the
//! DHT for `info` and `install`; and a squatter cannot displace a name's record there.

use std::path::Path;
use std::time::Duration;

use ggen_p2p::config::Config;
use ggen_p2p::registry::{
    InfoRequest, InstallRequest, P2PRegistry, P2PRegistryBuilder, Package, PackageSpec, Registry,
};

mod support;
use support::registry::{address, node, wait_connected, wait_for, with_key};
use support::{eventually, packs};

/// A loopback node (as `support::registry::node`) that never runs anti-entropy itself,
/// so records reach it only by gossip or the DHT.
async fn node_without_sync(root: &Path, name: &str, bootstrap: Vec<String>) -> P2PRegistry {
    let config = Config {
        anti_entropy: false,
        ..Config::default()
    };
    let registry = P2PRegistryBuilder::new()
        .with_data_dir(root.join(name))
        .with_config(config)
        .with_listen_addresses(vec!["/ip4/127.0.0.1/tcp/0".into()])
        .with_bootstrap_peers(bootstrap)
        .with_mdns(false)
        .with_autonat(false)
        .build()
        .unwrap();
    registry.start().await.unwrap();
    registry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_publisher_is_found_through_the_dht_alone() {
    let root = tempfile::tempdir().unwrap();
    let first = node(root.path(), "a", vec![]).await;
    with_key(&first);
    let package = Package::from_dir(packs().join("rust-cli-subcommand")).unwrap();
    let published = first.publish(package.into()).await.unwrap();
    let archive = published.archive.blake3;
    first.stop().await.unwrap();
    drop(first);

    // B is new, so it cannot hold a provider record from before the restart.
    let b = node(root.path(), "b", vec![]).await;
    let a = node(root.path(), "a", vec![address(&b).await]).await;
    let a_id = a.client().unwrap().peer_id();
    eventually("the restarted publisher provides its archive to B", || {
        let b = b.clone();
        async move {
            b.store()
                .providers(&archive)
                .unwrap()
                .contains(&a_id.to_string())
        }
    })
    .await;
    wait_for(&b, &published.name, &published.version).await;

    // C knows only B; its own providers table is empty and it has never met A.
    let c = node(root.path(), "c", vec![address(&b).await]).await;
    wait_connected(&c, 1).await;
    let c_client = c.client().unwrap();
    assert!(c.store().providers(&archive).unwrap().is_empty());
    assert!(!c_client.connected_peers().await.unwrap().contains(&a_id));
    let found = c_client.find_providers(archive).await.unwrap();
    assert!(found.contains(&a_id), "the DHT lookup found {found:?}");
    assert!(
        c.store()
            .providers(&archive)
            .unwrap()
            .contains(&a_id.to_string()),
        "the DHT answer is recorded as a confirmed provider"
    );

    wait_for(&c, &published.name, &published.version).await;
    let target = root.path().join("installed");
    let report = c
        .install(
            InstallRequest::new(PackageSpec::new("rust-cli-subcommand", "")).with_target(&target),
            None,
        )
        .await
        .unwrap();
    assert_eq!(report.fetched_from, vec![a_id.to_string()]);
    assert!(target.join("package.toml").is_file());
    let info = c
        .info(InfoRequest::new(PackageSpec::new(
            "rust-cli-subcommand",
            "",
        )))
        .await
        .unwrap();
    assert_eq!(
        info.providers,
        Some(2),
        "A (confirmed by the chunks it sent) and C"
    );

    // The restarted A also put its records in the DHT again (B was not there for the
    // first put): with A gone, a node that never syncs still finds the name.
    a.stop().await.unwrap();
    let d = node_without_sync(root.path(), "d", vec![address(&b).await]).await;
    wait_connected(&d, 1).await;
    eventually("D finds the name through the DHT", || {
        let d = d.clone();
        async move {
            d.info(InfoRequest::new(PackageSpec::new(
                "rust-cli-subcommand",
                "",
            )))
            .await
            .is_ok()
        }
    })
    .await;
    // D learnt the record but never asked who holds the archive: PROVIDERS is unknown
    // (null), not 0; once it asked, the count is a number (C installed it).
    let info = |node: P2PRegistry| async move {
        let request = InfoRequest::new(PackageSpec::new("rust-cli-subcommand", ""));
        node.info(request).await.unwrap()
    };
    assert_eq!(info(d.clone()).await.providers, None);
    d.client().unwrap().find_providers(archive).await.unwrap();
    let after = info(d.clone()).await.providers;
    assert!(after.is_some_and(|n| n >= 1), "after a lookup: {after:?}");
    for node in [&b, &c, &d] {
        node.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_and_install_find_a_missed_name_in_the_dht() {
    let root = tempfile::tempdir().unwrap();
    let b = node(root.path(), "b", vec![]).await;
    let a = node(root.path(), "a", vec![address(&b).await]).await;
    with_key(&a);
    wait_connected(&a, 1).await;
    let mut published = Vec::new();
    for pack in ["rust-tracing-setup", "github-actions-ci"] {
        let package = Package::from_dir(packs().join(pack)).unwrap();
        let report = a.publish(package.into()).await.unwrap();
        let receipt = report
            .receipt
            .clone()
            .expect("an online publish has a receipt");
        assert!(receipt.dht_peers >= 1, "the record reached B's DHT store");
        wait_for(&b, &report.name, &report.version).await;
        published.push(report);
    }
    // Past gossip's replay window (IHAVE covers the last 3 heartbeats of 1 s), so a
    // newcomer cannot get the records by gossip either.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let c = node_without_sync(root.path(), "c", vec![address(&b).await]).await;
    wait_connected(&c, 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for report in &published {
        assert!(
            c.store()
                .version(&report.name, &report.version, None)
                .unwrap()
                .is_none(),
            "{} reached C before any lookup",
            report.name
        );
    }

    let info = c
        .info(InfoRequest::new(PackageSpec::new("rust-tracing-setup", "")))
        .await
        .unwrap();
    assert_eq!(info.package.version, published[0].version);
    assert_eq!(info.package.archive.blake3, published[0].archive.blake3);

    let exact = published[1].version.to_string();
    let target = root.path().join("ci");
    let report = c
        .install(
            InstallRequest::new(PackageSpec::new("github-actions-ci", &exact)).with_target(&target),
            None,
        )
        .await
        .unwrap();
    assert_eq!(report.archive, published[1].archive.blake3);
    assert!(target.join("package.toml").is_file());

    // A name nobody published is still an error after the lookup, not a hang.
    let missing = c
        .info(InfoRequest::new(PackageSpec::new("no-such-pack", "")))
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("no-such-pack"), "{missing}");
    for node in [&a, &b, &c] {
        node.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_archive_is_withdrawn() {
    let root = tempfile::tempdir().unwrap();
    let a = node(root.path(), "a", vec![]).await;
    with_key(&a);
    let mut published = Vec::new();
    // Two packs without dependencies, so each install fetches exactly one archive.
    for pack in ["python-fastapi-service", "rust-cli-subcommand"] {
        let package = Package::from_dir(packs().join(pack)).unwrap();
        published.push(a.publish(package.into()).await.unwrap());
    }
    // C keeps one fetched archive: the second install evicts the first.
    let config = Config {
        cache_size: 1,
        ..Config::default()
    };
    let c = P2PRegistryBuilder::new()
        .with_data_dir(root.path().join("c"))
        .with_config(config)
        .with_listen_addresses(vec!["/ip4/127.0.0.1/tcp/0".into()])
        .with_bootstrap_peers(vec![address(&a).await])
        .with_mdns(false)
        .with_autonat(false)
        .build()
        .unwrap();
    c.start().await.unwrap();
    let c_id = c.client().unwrap().peer_id().to_string();
    for (index, report) in published.iter().enumerate() {
        wait_for(&c, &report.name, &report.version).await;
        let target = root.path().join(format!("out{index}"));
        c.install(
            InstallRequest::new(PackageSpec::new(report.name.clone(), "")).with_target(&target),
            None,
        )
        .await
        .unwrap();
    }
    let (first, second) = (published[0].archive.blake3, published[1].archive.blake3);
    assert!(
        !c.store().has_archive(&first),
        "the first archive was evicted"
    );
    assert!(
        !c.store().providers(&first).unwrap().contains(&c_id),
        "C no longer lists itself as a provider of what it evicted"
    );
    assert!(c.store().providers(&second).unwrap().contains(&c_id));
    let info = c
        .info(InfoRequest::new(PackageSpec::new(
            published[0].name.clone(),
            "",
        )))
        .await
        .unwrap();
    assert!(!info.local);
    assert_eq!(info.providers, Some(1), "only A holds it now");
    for node in [&a, &c] {
        node.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_squatter_cannot_displace_a_name_in_the_dht() {
    use ggen_p2p::package::{PublisherKey, Record, RecordBody};

    let root = tempfile::tempdir().unwrap();
    let b = node(root.path(), "b", vec![]).await;
    let a = node(root.path(), "a", vec![address(&b).await]).await;
    with_key(&a);
    wait_connected(&a, 1).await;
    let package = Package::from_dir(packs().join("rust-tracing-setup")).unwrap();
    let published = a.publish(package.into()).await.unwrap();
    let receipt = published.receipt.clone().unwrap();
    assert!(receipt.dht_peers >= 1, "the record reached B's DHT store");

    // S signs the same name with its own key and a higher version, and puts it in the
    // DHT only (no gossip, nothing in its store).
    let s = node(root.path(), "s", vec![address(&b).await]).await;
    wait_connected(&s, 1).await;
    let genuine = a.store().record(&published.record_id).unwrap().unwrap();
    let RecordBody::Version(mut body) = genuine.body().clone() else {
        panic!("a publish makes a version record");
    };
    let squatter = PublisherKey::generate();
    body.publisher = squatter.id();
    body.version = semver::Version::new(9, 0, 0);
    let forged = Record::sign(RecordBody::Version(body), &squatter).unwrap();
    s.client().unwrap().put_record(forged).await.unwrap();
    s.stop().await.unwrap();
    a.stop().await.unwrap();

    // C reaches only B, which kept the first publisher's record under the name key.
    let c = node_without_sync(root.path(), "c", vec![address(&b).await]).await;
    wait_connected(&c, 1).await;
    let info = c
        .info(InfoRequest::new(PackageSpec::new("rust-tracing-setup", "")))
        .await
        .unwrap();
    assert_eq!(info.package.publisher, published.publisher);
    assert_eq!(info.package.version, published.version);
    for node in [&b, &c] {
        node.stop().await.unwrap();
    }
}
