//! Downloads over the streaming chunk protocol (`/ggen/chunks/1.0.0`) between real
//! libp2p swarms on 127.0.0.1: a slow provider's chunks are stolen by a fast one, a
//! provider streaming bad bytes is dropped and penalised, a stalled one is dropped at
//! the deadline. Provider misbehaviour comes from the `test-support` hostile hook, which
//! the stream server consults per chunk.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ggen_p2p::net::hostile::{Hostile, HostileAnswer};
use ggen_p2p::net::transfer::{download_with, Limits, TransferConfig};
use ggen_p2p::net::{Request, Response};
use ggen_p2p::package::digest::CHUNK_SIZE;
use ggen_p2p::package::ArchiveInfo;
use ggen_p2p::store::Store;
use serde_bytes::ByteBuf;
use tokio_util::sync::CancellationToken;

mod support;
use support::net::{config, start, Node};

/// An archive of `chunks` MiB of pseudo-random bytes in `store` (`chunks` 1 MiB chunks
/// before small archives got 256 KiB chunks: now four times as many chunks).
fn put_archive(store: &Store, chunks: usize, seed: u32) -> (ArchiveInfo, Vec<u8>) {
    let mut state = seed;
    let bytes: Vec<u8> = (0..chunks * CHUNK_SIZE as usize)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    let mut writer = store.blob_writer().unwrap();
    writer.write_all(&bytes).unwrap();
    (writer.commit().unwrap().info, bytes)
}

/// A provider holding the same archive, answering chunk streams by `rule`; counts the
/// chunks it was asked to stream.
async fn provider(
    bytes: &[u8],
    shutdown: &CancellationToken,
    rule: impl Fn(u32) -> HostileAnswer + Send + Sync + 'static,
) -> (Node, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let mut config = config(vec![], Duration::from_secs(3600));
    config.hostile = Some(Hostile::new(move |request| match request {
        Request::Chunk { index, .. } => {
            counter.fetch_add(1, Ordering::SeqCst);
            rule(*index)
        }
        _ => HostileAnswer::Honest,
    }));
    let node = start(config, shutdown).await;
    let mut writer = node.store.blob_writer().unwrap();
    writer.write_all(bytes).unwrap();
    writer.commit().unwrap();
    (node, asked)
}

async fn downloader(providers: &[&Node], shutdown: &CancellationToken) -> Node {
    let node = start(config(vec![], Duration::from_secs(3600)), shutdown).await;
    for p in providers {
        node.client.dial(p.addr.clone()).await.unwrap();
    }
    node
}

fn transfer_config(steal_after: Duration, chunk_deadline: Duration) -> TransferConfig {
    TransferConfig {
        limits: Limits {
            per_provider: 4,
            total: 8,
            chunk_deadline,
            max_strikes: 3,
            steal_after,
        },
        list_deadline: Duration::from_secs(10),
        ..TransferConfig::default()
    }
}

/// A provider that sends nothing for a minute holds half the ranges at first; once the
/// fast one has fetched everything else, it steals them and the download ends long
/// before the slow provider would have answered (or the stall deadline, two minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chunks_are_stolen_from_a_slow_provider() {
    let shutdown = CancellationToken::new();
    let seed_store_dir = tempfile::tempdir().unwrap();
    let seed = Store::open(seed_store_dir.path()).unwrap();
    let (info, bytes) = put_archive(&seed, 16, 5);
    let (fast, fast_asked) = provider(&bytes, &shutdown, |_| HostileAnswer::Honest).await;
    let (slow, slow_asked) = provider(&bytes, &shutdown, |_| {
        HostileAnswer::Delay(Duration::from_secs(60))
    })
    .await;
    let d = downloader(&[&fast, &slow], &shutdown).await;

    let begun = Instant::now();
    let providers = vec![slow.client.peer_id(), fast.client.peer_id()];
    let config = transfer_config(Duration::from_millis(300), Duration::from_secs(120));
    let path = tokio::time::timeout(
        Duration::from_secs(50),
        download_with(&d.client, &d.store, &info, providers, config, |_, _| {}),
    )
    .await
    .expect("stealing finishes the download long before the slow provider answers")
    .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), bytes);
    let slow_asked = slow_asked.load(Ordering::SeqCst);
    assert!(slow_asked >= 1, "the slow provider was given work");
    assert!(
        fast_asked.load(Ordering::SeqCst) >= 16 - 4,
        "the fast provider sent its share and the stolen chunks"
    );
    assert!(begun.elapsed() < Duration::from_secs(50));
    shutdown.cancel();
}

/// A provider that streams wrong bytes is dropped at its first bad chunk and loses
/// reputation; an honest one completes the download.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_streaming_bad_bytes_is_dropped_and_penalised() {
    let shutdown = CancellationToken::new();
    let seed_store_dir = tempfile::tempdir().unwrap();
    let seed = Store::open(seed_store_dir.path()).unwrap();
    let (info, bytes) = put_archive(&seed, 12, 9);
    let (good, _) = provider(&bytes, &shutdown, |_| HostileAnswer::Honest).await;
    let (bad, bad_asked) = provider(&bytes, &shutdown, |_| {
        HostileAnswer::Respond(Response::Chunk {
            bytes: ByteBuf::from(vec![0u8; CHUNK_SIZE as usize]),
        })
    })
    .await;
    let d = downloader(&[&good, &bad], &shutdown).await;
    let providers = vec![bad.client.peer_id(), good.client.peer_id()];
    let config = transfer_config(Duration::from_secs(60), Duration::from_secs(60));
    let path = download_with(&d.client, &d.store, &info, providers, config, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), bytes);
    assert!(
        bad_asked.load(Ordering::SeqCst) <= 4,
        "dropped at the first bad chunk: at most its first ranges were streamed"
    );
    let scores = d.client.scores(vec![bad.client.peer_id()]).await.unwrap();
    assert!(scores[0] < 0.0, "bad bytes cost reputation: {scores:?}");
    shutdown.cancel();
}

/// A provider that never sends its chunks is dropped at the chunk deadline and judged
/// stalled; the other provider completes the download.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_stream_is_dropped_at_the_deadline() {
    let shutdown = CancellationToken::new();
    let seed_store_dir = tempfile::tempdir().unwrap();
    let seed = Store::open(seed_store_dir.path()).unwrap();
    let (info, bytes) = put_archive(&seed, 8, 11);
    let (good, _) = provider(&bytes, &shutdown, |_| HostileAnswer::Honest).await;
    let (stalled, _) = provider(&bytes, &shutdown, |_| HostileAnswer::Hold).await;
    let d = downloader(&[&good, &stalled], &shutdown).await;
    let providers = vec![stalled.client.peer_id(), good.client.peer_id()];
    // No stealing: only the deadline can take the stalled provider's chunks away.
    let config = transfer_config(Duration::from_secs(600), Duration::from_secs(2));
    let begun = Instant::now();
    let path = download_with(&d.client, &d.store, &info, providers, config, |_, _| {})
        .await
        .unwrap();
    assert!(
        begun.elapsed() >= Duration::from_secs(2),
        "waited for the deadline"
    );
    assert_eq!(std::fs::read(path).unwrap(), bytes);
    let scores = d
        .client
        .scores(vec![stalled.client.peer_id()])
        .await
        .unwrap();
    assert!(scores[0] < 0.0, "a stall costs reputation: {scores:?}");
    shutdown.cancel();
}

/// Spot check: a provider that offers the whole archive and then answers "not found" for
/// its chunks is dropped with that reason and loses reputation; the honest provider
/// completes the download.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_that_offers_chunks_it_does_not_serve_is_penalised() {
    let shutdown = CancellationToken::new();
    let seed_store_dir = tempfile::tempdir().unwrap();
    let seed = Store::open(seed_store_dir.path()).unwrap();
    let (info, bytes) = put_archive(&seed, 8, 13);
    let (good, _) = provider(&bytes, &shutdown, |_| HostileAnswer::Honest).await;
    let (liar, liar_asked) = provider(&bytes, &shutdown, |_| {
        HostileAnswer::Respond(Response::NotFound)
    })
    .await;
    let d = downloader(&[&good, &liar], &shutdown).await;
    let providers = vec![liar.client.peer_id(), good.client.peer_id()];
    let config = transfer_config(Duration::from_secs(60), Duration::from_secs(60));
    let path = download_with(&d.client, &d.store, &info, providers, config, |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), bytes);
    assert!(
        liar_asked.load(Ordering::SeqCst) >= 1,
        "the liar was asked for what it offered"
    );
    let scores = d.client.scores(vec![liar.client.peer_id()]).await.unwrap();
    assert!(
        scores[0] < 0.0,
        "offering chunks and not serving them costs reputation: {scores:?}"
    );
    shutdown.cancel();
}
