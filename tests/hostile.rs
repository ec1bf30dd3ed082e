//! A hostile peer built from this crate (a real libp2p swarm speaking the same
//! protocols, answering through the `test-support` hook `net::hostile`) aimed at an
//! honest node: forged records by gossip, in sync replies and in search replies, an
//! oversize answer, an answer that never comes, and a request flood. Everything is
//! refused, the hostile peer's score falls until it is banned (stored, and still banned
//! after a restart), and an honest publish still reaches the other honest nodes.

use std::path::Path;
use std::time::Duration;

use futures::future::join_all;
use ggen_p2p::net::hostile::{Hostile, HostileAnswer};
use ggen_p2p::net::reputation::BAN_SCORE;
use ggen_p2p::net::{self, Client, Multiaddr, NetConfig, PeerId, Request, Response};
use ggen_p2p::package::{ArchiveInfo, Blake3Hash, PublisherKey, Record, RecordBody, VersionRecord};
use ggen_p2p::store::{Query, Store};
use ggen_p2p::tasks::Tasks;
use libp2p::multiaddr::Protocol;
use serde_bytes::ByteBuf;
use tokio_util::sync::CancellationToken;

mod support;
use support::eventually;
use support::net::{config, connected};

struct Node {
    client: Client,
    store: Store,
    addr: Multiaddr,
    tasks: Tasks,
}

/// A node on the store in `dir` (opened again on a restart), its tasks its own.
async fn start(config: NetConfig, dir: &Path) -> Node {
    let store = Store::open(dir).unwrap();
    let tasks = Tasks::with_token(CancellationToken::new());
    let client = net::spawn(config, store.clone(), &tasks).await.unwrap();
    let addr = client.listen_addrs().await.unwrap()[0]
        .clone()
        .with(Protocol::P2p(client.peer_id()));
    Node {
        client,
        store,
        addr,
        tasks,
    }
}

fn record(key: &PublisherKey, name: &str) -> Record {
    let body = VersionRecord {
        description: format!("{name} pack"),
        keywords: vec!["hostile".into()],
        published_at: 1_700_000_000_000,
        ..VersionRecord::fixture(key, name, "1.0.0", ArchiveInfo::fixture(name.as_bytes()))
    };
    Record::sign(RecordBody::Version(body), key).unwrap()
}

/// A genuine record with one signature byte flipped.
fn forged(key: &PublisherKey, name: &str) -> Vec<u8> {
    let mut bytes = record(key, name).as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    bytes
}

async fn has(store: &Store, id: Blake3Hash) -> bool {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.record(&id).unwrap().is_some())
        .await
        .unwrap()
}

async fn score(node: &Node, peer: PeerId) -> f64 {
    node.client.scores(vec![peer]).await.unwrap()[0]
}

/// The hostile answers: sync and search replies carry forged records, a chunk list is
/// answered with 5 MiB (over the 4 MiB response cap), a chunk never.
fn hostile(sync_forgery: Vec<u8>, search_forgery: Vec<u8>) -> Hostile {
    let id = Blake3Hash::of(&sync_forgery);
    Hostile::new(move |request| {
        let respond = HostileAnswer::Respond;
        match request {
            Request::SyncSummary => respond(Response::Summary {
                buckets: vec![[1; 32]; 256],
            }),
            Request::SyncBucket { bucket } if *bucket == id.as_bytes()[0] => {
                respond(Response::Ids { ids: vec![id] })
            }
            Request::SyncBucket { .. } => respond(Response::Ids { ids: vec![] }),
            Request::GetRecords { .. } => respond(Response::Records {
                records: vec![ByteBuf::from(sync_forgery.clone())],
            }),
            Request::Search { .. } => respond(Response::Records {
                records: vec![ByteBuf::from(search_forgery.clone())],
            }),
            Request::ChunkList { .. } => respond(Response::Chunk {
                bytes: ByteBuf::from(vec![7u8; 5 << 20]),
            }),
            Request::Chunk { .. } => HostileAnswer::Hold,
            Request::SyncOwners { .. } => respond(Response::NotFound),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_peer_is_refused_penalised_and_banned_and_honest_gossip_still_flows() {
    let begun = std::time::Instant::now();
    let root = tempfile::tempdir().unwrap();
    let quiet = Duration::from_secs(3600);
    let mut honest_config = config(vec![], quiet);
    honest_config.connection_timeout = Duration::from_secs(3);
    let target = start(honest_config.clone(), &root.path().join("target")).await;
    let mut publisher_config = config(vec![target.addr.clone()], quiet);
    publisher_config.connection_timeout = Duration::from_secs(3);
    let publisher = start(publisher_config.clone(), &root.path().join("publisher")).await;
    publisher_config.keypair = libp2p::identity::Keypair::generate_ed25519();
    let bystander = start(publisher_config, &root.path().join("bystander")).await;

    let mallory_key = PublisherKey::generate();
    let (sync_forgery, search_forgery, gossip_forgery) = (
        forged(&mallory_key, "sync-forgery"),
        forged(&mallory_key, "search-forgery"),
        forged(&mallory_key, "gossip-forgery"),
    );
    let mut hostile_config = config(vec![target.addr.clone()], quiet);
    hostile_config.hostile = Some(hostile(sync_forgery.clone(), search_forgery.clone()));
    let mallory = start(hostile_config, &root.path().join("mallory")).await;
    let evil = mallory.client.peer_id();

    for node in [&publisher, &bystander, &mallory] {
        let peer = node.client.peer_id();
        eventually("connected to the target", || {
            connected(&target.client, peer)
        })
        .await;
    }

    // Sync on connect: the target asked mallory for what it lacks and got a forgery
    // (after 257 honest-looking listings, worth about +5).
    eventually("the forged sync reply counted", || async {
        score(&target, evil).await < -4.0
    })
    .await;
    assert!(!has(&target.store, Blake3Hash::of(&sync_forgery)).await);

    // Forged gossip: rejected, and gossipsub's own score of mallory falls.
    let before = score(&target, evil).await;
    eventually("mallory in the gossip topic", || async {
        mallory
            .client
            .gossip_raw(gossip_forgery.clone())
            .await
            .unwrap()
            >= 1
    })
    .await;
    eventually("the forged gossip counted", || async {
        let peers = target.client.peers().await.unwrap();
        let info = peers.iter().find(|p| p.peer_id == evil.to_string());
        info.is_some_and(|i| i.score <= before - 9.0 && i.gossip_score.is_some_and(|g| g < 0.0))
    })
    .await;
    assert!(!has(&target.store, Blake3Hash::of(&gossip_forgery)).await);

    // Forged search replies: the honest nodes' answers count, mallory's does not.
    let before = score(&target, evil).await;
    target
        .client
        .search_network(Query::new(vec!["hostile".into()]))
        .await
        .unwrap();
    assert!(!has(&target.store, Blake3Hash::of(&search_forgery)).await);
    eventually("the forged search reply counted", || async {
        score(&target, evil).await <= before - 9.0
    })
    .await;

    // An oversize answer and one that never comes: both refused, both cost mallory.
    let before = score(&target, evil).await;
    let archive = Blake3Hash::of(b"anything");
    let oversize = target
        .client
        .request(evil, Request::ChunkList { archive })
        .await;
    assert!(
        oversize.is_err(),
        "an oversize answer was accepted: {oversize:?}"
    );
    let endless = target
        .client
        .request(evil, Request::Chunk { archive, index: 0 })
        .await;
    assert!(endless.is_err(), "{endless:?}");
    eventually("oversize and endless answers counted", || async {
        score(&target, evil).await <= before - 3.9
    })
    .await;
    let scored = score(&target, evil).await;
    assert!(scored > BAN_SCORE, "not banned yet: {scored}");

    // A request flood: answered one by one until the bucket is empty, then refused with
    // a clear error; the rest of the flood (each refusal costs score) gets mallory banned.
    // (Sent one at a time first: the ban closes the connection, and answers still queued
    // on it are lost, so a concurrent flood alone may see only closed connections.)
    let search = || Request::Search {
        query: Query::new(vec!["x".into()]),
    };
    let mut limited = None;
    for sent in 1..=1000 {
        match mallory
            .client
            .request(target.client.peer_id(), search())
            .await
        {
            Ok(Response::Error { message }) if message.starts_with("rate limited: retry in ") => {
                limited = Some(sent);
                break;
            }
            Ok(_) => {}
            Err(e) => panic!("request {sent} of the flood failed before any refusal: {e}"),
        }
    }
    let limited = limited.expect("1,000 searches in a row were never rate limited");
    println!("flood: the search bucket refused request {limited}");
    // Mallory keeps flooding (redialling if its connection was pruned meanwhile) until
    // the target has banned it; then the ban is stored and the connection closed.
    eventually("mallory's ban stored", || async {
        let banned = |bans: Vec<ggen_p2p::store::BannedPeer>| {
            bans.iter().any(|b| b.peer == evil.to_string())
        };
        if banned(target.store.banned_peers().unwrap()) {
            return true;
        }
        let flood = (0..50).map(|_| mallory.client.request(target.client.peer_id(), search()));
        join_all(flood).await;
        banned(target.store.banned_peers().unwrap())
    })
    .await;
    eventually("mallory disconnected", || async {
        !connected(&target.client, evil).await
    })
    .await;
    let bans = target.store.banned_peers().unwrap();
    let ban = bans
        .iter()
        .find(|b| b.peer == evil.to_string())
        .expect("a stored ban");
    assert!(ban.reason.contains("reputation fell"), "{}", ban.reason);
    assert!(ban.expires_at.is_some_and(|t| t > ban.banned_at));
    assert!(score(&target, evil).await <= BAN_SCORE);

    // An honest publish still reaches the other honest nodes.
    let good = record(&PublisherKey::generate(), "honest-pack");
    publisher.client.announce(good.clone(), None).await.unwrap();
    for node in [&target, &bystander] {
        eventually("the honest record everywhere", || {
            has(&node.store, good.id())
        })
        .await;
    }

    // After a restart the target still refuses mallory, and remembers its score.
    target.tasks.shutdown().await;
    let again = start(honest_config, &root.path().join("target")).await;
    let err = again.client.dial(mallory.addr.clone()).await.unwrap_err();
    assert!(err.to_string().contains("banned"), "{err}");
    assert!(score(&again, evil).await <= BAN_SCORE);

    for node in [&again, &publisher, &bystander, &mallory] {
        node.tasks.shutdown().await;
    }
    assert!(
        begun.elapsed() < Duration::from_secs(30),
        "{:?}",
        begun.elapsed()
    );
}
