//! Real libp2p swarms over 127.0.0.1 TCP in one process: records travel along a line of
//! nodes by gossip, a late joiner catches up by anti-entropy, invalid gossip is refused,
//! providers are found across the line, and chunks are served over request-response.

use std::io::Write;
use std::time::Duration;

use ggen_p2p::net::{self, Multiaddr, Request, Response};
use ggen_p2p::package::digest::{chunks_root, CHUNK_SIZE};
use ggen_p2p::package::{
    ArchiveInfo, Blake3Hash, PublisherKey, Record, RecordBody, RecordId, VersionRecord,
};
use ggen_p2p::store::Store;
use libp2p::multiaddr::Protocol;
use tokio_util::sync::CancellationToken;

mod support;
use support::eventually;
use support::net::{config, connected, line, line_with, start, Node};

async fn has_record(store: &Store, id: RecordId) -> bool {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.record(&id).unwrap().is_some())
        .await
        .unwrap()
}

/// Writes a real archive of `size` pseudo-random bytes through the store's blob writer.
fn put_archive(store: &Store, seed: u8, size: usize) -> (ArchiveInfo, Vec<Blake3Hash>) {
    let mut writer = store.blob_writer().unwrap();
    let mut state = u32::from(seed) + 1;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    writer.write_all(&bytes).unwrap();
    let digest = writer.commit().unwrap();
    (digest.info, digest.chunks)
}

fn version_record(key: &PublisherKey, name: &str, version: &str, archive: ArchiveInfo) -> Record {
    let body = VersionRecord {
        description: format!("{name} test pack"),
        category: Some("testing".into()),
        keywords: vec!["test".into()],
        license: Some("MIT".into()),
        published_at: 1_700_000_000_000,
        ..VersionRecord::fixture(key, name, version, archive)
    };
    Record::sign(RecordBody::Version(body), key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn record_crosses_a_strict_line_of_five_hop_by_hop() {
    let shutdown = CancellationToken::new();
    // Periodic sync far away: after the links are up only gossip can carry the record.
    let nodes = line_with(5, Duration::from_secs(3600), true, &shutdown).await;
    let first = &nodes[0];
    // Let the gossip meshes form before publishing.
    eventually("gossip mesh on the middle node", || async {
        nodes[2].client.status().await.unwrap().gossip_mesh_peers >= 2
    })
    .await;

    let key = PublisherKey::generate();
    let (info, _) = put_archive(&first.store, 1, 3000);
    let record = version_record(&key, "line-pack", "1.0.0", info.clone());
    let id = record.id();
    let receipt = first
        .client
        .announce(record, Some(info.blake3))
        .await
        .unwrap();
    assert_eq!(
        receipt.gossip_peers, 1,
        "the first node knows only its neighbour"
    );
    assert!(receipt.providers >= 1, "the publisher itself provides");
    assert!(receipt.dht_peers >= 1, "the DHT record reached a peer");

    for (i, node) in nodes.iter().enumerate() {
        eventually(&format!("record at node {i}"), || {
            has_record(&node.store, id)
        })
        .await;
    }
    // Still a line: the record went hop by hop.
    for (i, node) in nodes.iter().enumerate() {
        let degree = node.client.connected_peers().await.unwrap().len();
        let expected = if i == 0 || i == 4 { 1 } else { 2 };
        assert_eq!(degree, expected, "node {i} peers");
    }

    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn providers_are_found_across_a_line_of_five() {
    let shutdown = CancellationToken::new();
    // No connection caps here: a DHT lookup dials the peers it learns about, which is
    // how the far end reaches the nodes holding the provider record.
    let nodes = line(5, Duration::from_secs(3600), &shutdown).await;
    let (first, last) = (&nodes[0], &nodes[4]);
    let (info, _) = put_archive(&first.store, 2, 3000);
    first.client.provide(info.blake3).await.unwrap();
    let publisher = first.client.peer_id();
    eventually("last node finds the publisher as provider", || async {
        last.client
            .find_providers(info.blake3)
            .await
            .unwrap()
            .contains(&publisher)
    })
    .await;
    let own = first.client.find_providers(info.blake3).await.unwrap();
    assert!(!own.contains(&publisher), "find_providers excludes self");
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_joiner_catches_up_by_sync() {
    let shutdown = CancellationToken::new();
    let nodes = line(2, Duration::from_secs(3600), &shutdown).await;
    let key = PublisherKey::generate();
    let mut ids = Vec::new();
    for i in 0..3u8 {
        let (info, _) = put_archive(&nodes[0].store, 10 + i, 100);
        let record = version_record(&key, "early-pack", &format!("0.{i}.0"), info);
        ids.push(record.id());
        nodes[0].client.announce(record, None).await.unwrap();
    }
    for id in &ids {
        eventually("records at the second node", || {
            has_record(&nodes[1].store, *id)
        })
        .await;
    }

    // Joins after publication, knowing only the second node: gossip will not replay,
    // so the records can only arrive through anti-entropy on connect.
    let late = start(
        config(vec![nodes[1].addr.clone()], Duration::from_secs(3600)),
        &shutdown,
    )
    .await;
    for id in &ids {
        eventually("records at the late joiner", || {
            has_record(&late.store, *id)
        })
        .await;
    }
    // And sync_now reports nothing more to gain.
    assert_eq!(late.client.sync_now().await.unwrap(), 0);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_gossip_is_rejected_and_its_sender_banned() {
    let shutdown = CancellationToken::new();
    let nodes = line(2, Duration::from_secs(3600), &shutdown).await;
    let (sender, receiver) = (&nodes[0], &nodes[1]);
    eventually("gossip mesh", || async {
        sender.client.status().await.unwrap().gossip_mesh_peers >= 1
    })
    .await;
    let key = PublisherKey::generate();
    let (info, _) = put_archive(&sender.store, 20, 100);
    let good = version_record(&key, "good-pack", "1.0.0", info);

    // A genuine record with one signature byte flipped.
    let mut bad = good.as_bytes().to_vec();
    bad[0] ^= 1;
    assert_eq!(sender.client.gossip_raw(bad.clone()).await.unwrap(), 1);
    sender.client.announce(good.clone(), None).await.unwrap();
    eventually("valid record delivered", || {
        has_record(&receiver.store, good.id())
    })
    .await;
    assert!(!has_record(&receiver.store, Blake3Hash::of(&bad)).await);

    // Repeated invalid records get the sender disconnected.
    for i in 1..8u8 {
        let mut bad = good.as_bytes().to_vec();
        bad[1] ^= i;
        let _ = sender.client.gossip_raw(bad).await;
    }
    let banned_peer = sender.client.peer_id();
    eventually(
        "sender disconnected after repeated invalid gossip",
        || async { !connected(&receiver.client, banned_peer).await },
    )
    .await;
    let stats = receiver.store.stats().unwrap();
    assert_eq!(stats.records, 1, "only the valid record was stored");
    // A dial to the banned peer is answered with an error, not left to time out.
    let err = receiver.client.dial(sender.addr.clone()).await.unwrap_err();
    assert!(err.to_string().contains("banned"), "{err}");
    assert!(!connected(&receiver.client, banned_peer).await);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chunks_are_served_over_request_response() {
    let shutdown = CancellationToken::new();
    let nodes = line(2, Duration::from_secs(3600), &shutdown).await;
    let (server, fetcher) = (&nodes[0], &nodes[1]);
    let size = CHUNK_SIZE as usize * 2 + 12_345;
    let (info, chunks) = put_archive(&server.store, 30, size);
    let peer = server.client.peer_id();

    let listed = match fetcher
        .client
        .request(
            peer,
            Request::ChunkList {
                archive: info.blake3,
            },
        )
        .await
        .unwrap()
    {
        Response::ChunkList { chunks } => chunks,
        other => panic!("expected a chunk list, got {other:?}"),
    };
    assert_eq!(listed, chunks);
    assert_eq!(chunks_root(&listed), info.chunks_root);

    let mut total = 0;
    for (index, expected) in listed.iter().enumerate() {
        let request = Request::Chunk {
            archive: info.blake3,
            index: index as u32,
        };
        let bytes = match fetcher.client.request(peer, request).await.unwrap() {
            Response::Chunk { bytes } => bytes.into_vec(),
            other => panic!("expected a chunk, got {other:?}"),
        };
        assert_eq!(Blake3Hash::of(&bytes), *expected, "chunk {index}");
        total += bytes.len();
    }
    assert_eq!(total, size);

    let unknown = Blake3Hash::of(b"no such archive");
    let answer = fetcher
        .client
        .request(peer, Request::ChunkList { archive: unknown })
        .await
        .unwrap();
    assert!(matches!(answer, Response::NotFound), "{answer:?}");
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn network_search_pulls_matching_records() {
    let shutdown = CancellationToken::new();
    let nodes = line(2, Duration::from_secs(3600), &shutdown).await;
    let key = PublisherKey::generate();
    let (info, _) = put_archive(&nodes[0].store, 40, 100);
    // Stored only at the first node (no announce), so only a search can bring it over.
    let record = version_record(&key, "searchable-pack", "2.0.0", info);
    nodes[0].store.ingest(&record).unwrap();
    let query = ggen_p2p::store::Query::new(vec!["searchable".into()]);
    let answered = nodes[1].client.search_network(query).await.unwrap();
    assert_eq!(answered, 1);
    assert!(has_record(&nodes[1].store, record.id()).await);
    let status = nodes[1].client.status().await.unwrap();
    assert_eq!(status.connected_peers, 1);
    eventually("identify reports the peer's agent", || async {
        let peers = nodes[1].client.peers().await.unwrap();
        peers.len() == 1
            && peers[0]
                .agent
                .as_deref()
                .is_some_and(|a| a.starts_with("ggen-p2p/"))
            && peers[0].peer_id == nodes[0].client.peer_id().to_string()
    })
    .await;
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn periodic_sync_fills_gaps_gossip_never_carried() {
    let shutdown = CancellationToken::new();
    let nodes = line(3, Duration::from_millis(500), &shutdown).await;
    let key = PublisherKey::generate();
    let (info, _) = put_archive(&nodes[0].store, 50, 100);
    // Written straight into the first store: no gossip, no DHT, only anti-entropy.
    let record = version_record(&key, "quiet-pack", "1.0.0", info);
    nodes[0].store.ingest(&record).unwrap();
    eventually("record two hops away via periodic sync", || {
        has_record(&nodes[2].store, record.id())
    })
    .await;
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dial_sync_now_disconnect_and_shutdown() {
    let shutdown = CancellationToken::new();
    let far = Duration::from_secs(3600);
    let a = start(config(vec![], far), &shutdown).await;
    let b = start(config(vec![], far), &shutdown).await;
    let key = PublisherKey::generate();
    for i in 0..3u8 {
        let (info, _) = put_archive(&a.store, 60 + i, 100);
        a.store
            .ingest(&version_record(
                &key,
                "dialed-pack",
                &format!("1.{i}.0"),
                info,
            ))
            .unwrap();
    }
    // Dial by plain address (no /p2p): the peer id is learned from the handshake.
    let plain: Multiaddr = a
        .addr
        .iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect();
    assert_eq!(b.client.dial(plain).await.unwrap(), a.client.peer_id());
    // The sync the dialer starts on connect brings the three records over by itself.
    eventually("all records at the dialer", || async {
        b.store.stats().unwrap().records == 3
    })
    .await;
    // Two more, put straight into the store (never gossiped), so only anti-entropy can
    // carry them. The on-connect sync listed its buckets before it fetched the three, so
    // it cannot take them: this sync gains exactly two, and the next one nothing.
    for i in 3..5u8 {
        let (info, _) = put_archive(&a.store, 60 + i, 100);
        a.store
            .ingest(&version_record(
                &key,
                "dialed-pack",
                &format!("1.{i}.0"),
                info,
            ))
            .unwrap();
    }
    assert_eq!(b.client.sync_now().await.unwrap(), 2);
    assert_eq!(b.store.stats().unwrap().records, 5);
    assert_eq!(b.client.sync_now().await.unwrap(), 0);

    b.client.disconnect(a.client.peer_id()).await.unwrap();
    eventually("disconnected", || async {
        b.client.connected_peers().await.unwrap().is_empty()
    })
    .await;

    let unreachable: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
    assert!(b.client.dial(unreachable).await.is_err());

    shutdown.cancel();
    eventually("calls fail once the loop stopped", || async {
        matches!(b.client.status().await, Err(net::NetError::Shutdown))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn quic_transport_carries_requests() {
    let shutdown = CancellationToken::new();
    let far = Duration::from_secs(3600);
    let mut quic = config(vec![], far);
    quic.listen = vec!["/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()];
    let a = start(quic, &shutdown).await;
    assert!(
        a.addr.iter().any(|p| matches!(p, Protocol::QuicV1)),
        "{}",
        a.addr
    );
    let b = start(config(vec![a.addr.clone()], far), &shutdown).await;
    let peer = a.client.peer_id();
    eventually("connected over quic", || connected(&b.client, peer)).await;
    let answer = b.client.request(peer, Request::SyncSummary).await.unwrap();
    assert!(matches!(answer, Response::Summary { .. }), "{answer:?}");
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_moves_thousands_of_records_in_batches() {
    let shutdown = CancellationToken::new();
    let far = Duration::from_secs(3600);
    let a = start(config(vec![], far), &shutdown).await;
    let key = PublisherKey::generate();
    let (info, _) = put_archive(&a.store, 70, 100);
    // More than several GetRecords batches (512 ids each) and every bucket populated.
    let records: Vec<Record> = (0..2000)
        .map(|i| version_record(&key, &format!("bulk-pack-{i}"), "1.0.0", info.clone()))
        .collect();
    a.store.ingest_many(&records).unwrap();

    let b = start(config(vec![a.addr.clone()], far), &shutdown).await;
    eventually("all 2000 records at the new node", || async {
        b.store.stats().unwrap().records == 2000
    })
    .await;
    let ids = b.store.record_ids().unwrap();
    assert!(records.iter().all(|r| ids.binary_search(&r.id()).is_ok()));
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_are_pruned_to_a_bound_and_records_still_reach_everyone() {
    const NODES: usize = 14;
    // Mesh upper bound 4: each node keeps at most max(2 * 4, 8) = 8 connections.
    let shutdown = CancellationToken::new();
    let mut nodes: Vec<Node> = Vec::new();
    for _ in 0..NODES {
        let bootstrap = nodes
            .first()
            .map(|n| vec![n.addr.clone()])
            .unwrap_or_default();
        let mut config = config(bootstrap, Duration::from_secs(2));
        config.gossip_mesh = (3, 2, 4);
        config.prune_interval = Duration::from_millis(300);
        config.prune_grace = Duration::from_secs(1);
        nodes.push(start(config, &shutdown).await);
    }
    // Force a full mesh: every node dials every other one.
    for i in 0..NODES {
        for j in 0..i {
            let _ = nodes[i].client.dial(nodes[j].addr.clone()).await;
        }
    }
    eventually("every node pruned down to 8 connections", || async {
        for node in &nodes {
            if node.client.connected_peers().await.unwrap().len() > 8 {
                return false;
            }
        }
        true
    })
    .await;
    let key = PublisherKey::generate();
    let (info, _) = put_archive(&nodes[NODES - 1].store, 7, 1024);
    let record = version_record(&key, "after-prune", "1.0.0", info);
    let id = record.id();
    nodes[NODES - 1]
        .client
        .announce(record, None)
        .await
        .unwrap();
    eventually("the record reaches every node after pruning", || async {
        for node in &nodes {
            if !has_record(&node.store, id).await {
                return false;
            }
        }
        true
    })
    .await;
    shutdown.cancel();
}

/// A bare libp2p swarm that connects and then does nothing (ping only: no gossip, no
/// requests), as an attacker filling a node's connection slots would. Dials `target`
/// and keeps the connection until `shutdown`.
async fn idle_peer(
    target: Multiaddr,
    shutdown: CancellationToken,
) -> tokio::sync::oneshot::Receiver<()> {
    use futures::StreamExt;
    use libp2p::swarm::SwarmEvent;
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default(),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| libp2p::ping::Behaviour::default())
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build();
    swarm.dial(target).unwrap();
    let (connected, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut connected = Some(connected);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                event = swarm.select_next_some() => {
                    if let SwarmEvent::ConnectionEstablished { .. } = event {
                        if let Some(tx) = connected.take() {
                            let _ = tx.send(());
                        }
                    }
                }
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_honest_peer_gets_in_when_idle_peers_fill_the_slots() {
    const LIMIT: u32 = 20;
    let shutdown = CancellationToken::new();
    let mut config = config(vec![], Duration::from_secs(30));
    config.max_connections = LIMIT;
    // Only the immediate prune may act here: the periodic one waits five minutes
    // (after its first round at start), and every filler is younger than the grace.
    config.prune_interval = Duration::from_secs(300);
    config.prune_grace = Duration::from_secs(300);
    let a = start(config, &shutdown).await;
    for _ in 0..LIMIT {
        let _ = idle_peer(a.addr.clone(), shutdown.clone()).await.await;
    }
    // A tenth of the slots is kept free: the node holds 18 of the 20 idle peers.
    eventually(
        "the idle peers fill the 18 slots the node keeps",
        || async { a.client.connected_peers().await.unwrap().len() == 18 },
    )
    .await;

    let b = start(config_for_peer(&a), &shutdown).await;
    let a_id = a.client.peer_id();
    eventually("the honest peer connects to the full node", || {
        connected(&b.client, a_id)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        connected(&a.client, b.client.peer_id()).await,
        "the honest peer stays: idle fillers were pruned instead"
    );
    assert!(a.client.connected_peers().await.unwrap().len() <= 18);
    shutdown.cancel();
}

fn config_for_peer(a: &Node) -> net::NetConfig {
    config(vec![a.addr.clone()], Duration::from_secs(30))
}
