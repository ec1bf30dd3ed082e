//! Names nobody can take, through real swarms over loopback: a second key that signs the
//! same name with a version dated 1970 reaches a node by gossip and sync, yet the owner
//! that node accepted first keeps the name for `info` and `install`; a record dated in
//! the future is refused by the receiving node. The owner rule itself is unit-tested in
//! `store/owner.rs` and `store/trust.rs`.

use ggen_p2p::package::{fields::MAX_CLOCK_SKEW_MS, PublisherKey, Record, RecordBody};
use ggen_p2p::registry::{InfoRequest, InstallRequest, Package, PackageSpec, Registry};

mod support;
use support::registry::{address, node, wait_connected, wait_for, with_key};
use support::{eventually, packs};

const NAME: &str = "rust-tracing-setup";

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backdated_claim_does_not_take_a_name_from_its_first_owner() {
    let root = tempfile::tempdir().unwrap();
    let b = node(root.path(), "b", vec![]).await;
    let a = node(root.path(), "a", vec![address(&b).await]).await;
    with_key(&a);
    wait_connected(&a, 1).await;
    let package = Package::from_dir(packs().join(NAME)).unwrap();
    let published = a.publish(package.into()).await.unwrap();
    wait_for(&b, NAME, &published.version).await;

    // S signs the same name with its own key, a higher version and a 1970 date.
    let s = node(root.path(), "s", vec![address(&b).await]).await;
    wait_connected(&s, 1).await;
    let genuine = a.store().record(&published.record_id).unwrap().unwrap();
    let RecordBody::Version(mut body) = genuine.body().clone() else {
        panic!("a publish makes a version record");
    };
    let squatter = PublisherKey::generate();
    body.publisher = squatter.id();
    body.version = semver::Version::new(9, 0, 0);
    body.published_at = 0;
    let forged = Record::sign(RecordBody::Version(body.clone()), &squatter).unwrap();
    s.client().unwrap().announce(forged, None).await.unwrap();
    eventually("B holds the squatter's claim", || {
        let b = b.clone();
        async move { b.store().claims(NAME).unwrap().len() == 2 }
    })
    .await;

    let claims = b.store().claims(NAME).unwrap();
    assert_eq!(claims[0].publisher, published.publisher, "{claims:?}");
    assert_eq!(claims[1].publisher, squatter.id());
    assert_eq!(claims[1].earliest_published_at, 0);
    let info = b
        .info(InfoRequest::new(PackageSpec::new(NAME, "")))
        .await
        .unwrap();
    assert_eq!(info.package.publisher, published.publisher);
    assert_eq!(info.package.version, published.version);
    let target = root.path().join("installed");
    let installed = b
        .install(
            InstallRequest::new(PackageSpec::new(NAME, "")).with_target(&target),
            None,
        )
        .await
        .unwrap();
    assert_eq!(installed.publisher, published.publisher);
    assert_eq!(installed.version, published.version);
    // The squatter's claim stays reachable by the short id `info` prints.
    let mut chosen = InfoRequest::new(PackageSpec::new(NAME, ""));
    chosen.publisher = Some(squatter.id().short().parse().unwrap());
    let chosen = b.info(chosen).await.unwrap();
    assert_eq!(chosen.package.publisher, squatter.id());
    assert_eq!(chosen.package.version, semver::Version::new(9, 0, 0));

    // A record dated beyond the skew is refused by S's own store and, gossiped raw, by B.
    let mut future = body;
    future.name = "from-the-future".into();
    future.published_at = now_ms() + MAX_CLOCK_SKEW_MS + 3_600_000;
    let future = Record::sign(RecordBody::Version(future), &squatter).unwrap();
    let refused = s.client().unwrap().announce(future.clone(), None).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("future")),
        "{refused:?}"
    );
    let client = s.client().unwrap();
    eventually("the future record is gossiped to B", || {
        let (client, bytes) = (client.clone(), future.as_bytes().to_vec());
        async move { client.gossip_raw(bytes).await.unwrap_or(0) >= 1 }
    })
    .await;
    let marker = semver::Version::new(9, 0, 1);
    let RecordBody::Version(mut later) = genuine.body().clone() else {
        unreachable!()
    };
    later.publisher = squatter.id();
    later.name = "marker".into();
    later.version = marker.clone();
    later.published_at = now_ms();
    let later = Record::sign(RecordBody::Version(later), &squatter).unwrap();
    client.announce(later, None).await.unwrap();
    wait_for(&b, "marker", &marker).await;
    assert!(b.store().claims("from-the-future").unwrap().is_empty());

    for node in [&a, &b, &s] {
        node.stop().await.unwrap();
    }
}
