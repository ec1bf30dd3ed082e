//! The libp2p side of a download: the node's [`Client`] as a [`ChunkSource`] (the chunk
//! list over `/ggen/rr`, ranges of chunks streamed over `/ggen/chunks`, or one `/ggen/rr`
//! exchange per chunk with a peer that does not speak it), and [`download_to_store`],
//! which files the finished, verified archive into the [`Store`].

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use futures::future::Either;
use futures::{Stream, StreamExt};

use super::stream::{ask_offers, open_range, read_range, OpenError, RangeRequest};
use super::{
    download_verified, ChunkSource, ListError, Offer, TransferConfig, TransferError, Verdict,
};
use crate::net::reputation::{rank_providers, PeerEvent};
use crate::net::{Client, PeerId, Request, Response};
use crate::package::{ArchiveInfo, Blake3Hash};
use crate::store::partial::Layout;
use crate::store::Store;

impl ChunkSource for Client {
    type Peer = PeerId;

    async fn chunk_list(
        &self,
        peer: &PeerId,
        archive: &Blake3Hash,
    ) -> Result<Vec<Blake3Hash>, ListError> {
        let request = Request::ChunkList { archive: *archive };
        match self.request(*peer, request).await {
            Ok(Response::ChunkList { chunks }) => Ok(chunks),
            Ok(other) => Err(ListError::Answered(unexpected(other, "the chunk list"))),
            Err(e) => Err(ListError::Failed(e.to_string())),
        }
    }

    async fn chunk(
        &self,
        peer: &PeerId,
        archive: &Blake3Hash,
        index: u32,
    ) -> Result<Vec<u8>, String> {
        let request = Request::Chunk {
            archive: *archive,
            index,
        };
        match self.request(*peer, request).await {
            Ok(Response::Chunk { bytes }) => Ok(bytes.into_vec()),
            Ok(other) => Err(unexpected(other, &format!("chunk {index}"))),
            Err(e) => Err(e.to_string()),
        }
    }

    fn chunk_range(
        &self,
        peer: PeerId,
        archive: Blake3Hash,
        first: u32,
        count: u32,
    ) -> impl Stream<Item = Result<(u32, Vec<u8>), String>> + Send + '_ {
        let request = RangeRequest {
            archive,
            first,
            count,
        };
        let (control, pool, guard) = self.chunk_stream(peer);
        let opening = async move {
            let opened = match open_range(control, &pool, peer, request).await {
                Err(OpenError::Other(e)) => {
                    Err(OpenError::Other(self.explain_failure(peer, e).await))
                }
                other => other,
            };
            (opened, pool)
        };
        let mut guard = Some(guard);
        futures::stream::once(opening).flat_map(move |(opened, pool)| {
            match (opened, guard.take()) {
                (Ok((stream, bytes)), Some(guard)) => Either::Left(
                    futures::stream::iter([Ok((first, bytes))])
                        .chain(read_range(stream, request, pool, peer, guard))
                        .then(move |item| async move {
                            match item {
                                Err(e) => Err(self.explain_failure(peer, e).await),
                                ok => ok,
                            }
                        }),
                ),
                (Err(OpenError::Unsupported), _) => Either::Right(Either::Left(
                    self.chunk_by_chunk(peer, archive, first, count),
                )),
                (Err(OpenError::Other(e)), _) => {
                    Either::Right(Either::Right(futures::stream::iter([Err(e)])))
                }
                (Ok(_), None) => Either::Right(Either::Right(futures::stream::iter([Err(
                    "range opened twice".to_string(),
                )]))),
            }
        })
    }

    fn judged(&self, peer: &PeerId, verdict: Verdict) {
        self.judge_verdict(peer, verdict);
    }

    async fn offers(
        &self,
        peer: &PeerId,
        archive: &Blake3Hash,
        mine: Vec<bool>,
    ) -> Result<Offer, String> {
        self.offers_of(peer, archive, mine, false).await
    }

    async fn discover(&self, archive: &Blake3Hash) -> Vec<PeerId> {
        // Peers named by peer exchange first (no lookup needed), the DHT otherwise.
        let heard = self.swarms().take_heard(archive);
        if !heard.is_empty() {
            return heard;
        }
        self.find_providers(*archive).await.unwrap_or_else(|e| {
            tracing::debug!("provider lookup during a download: {e}");
            Vec::new()
        })
    }

    fn named(&self, archive: &Blake3Hash) -> Vec<PeerId> {
        self.swarms().take_heard(archive)
    }

    fn joined(&self, archive: &Blake3Hash, path: &Path, layout: Layout, have: Vec<bool>) {
        self.swarms()
            .join(*archive, path.to_path_buf(), layout, have);
        // Others fetching it now find this node and get the chunks it already has.
        let (client, archive) = (self.clone(), *archive);
        tokio::spawn(async move {
            if let Err(e) = client.announce_partial(archive).await {
                tracing::debug!("announcing the download of {archive}: {e}");
            }
        });
    }

    fn held(&self, archive: &Blake3Hash, index: u32) {
        self.swarms().hold(archive, index);
    }

    fn left(&self, archive: &Blake3Hash) {
        self.swarms().leave(archive);
    }
}

impl Client {
    /// A verdict of a download driven with the bare client, fed to the peer's reputation
    /// at once ([`download_to_store`] credits verified bytes once, at the end).
    fn judge_verdict(&self, peer: &PeerId, verdict: Verdict) {
        let event = match verdict {
            Verdict::Bad => PeerEvent::BadChunk,
            Verdict::Stalled => PeerEvent::Stall,
            Verdict::Good { bytes } => {
                self.swarms().received_from(*peer, bytes);
                PeerEvent::GoodTransfer { bytes }
            }
        };
        self.judge(*peer, event);
    }

    /// What `peer` offers of `archive` (see [`ask_offers`]; `wait`: it may hold the
    /// request until it has news), the peers it named noted for discovery.
    async fn offers_of(
        &self,
        peer: &PeerId,
        archive: &Blake3Hash,
        mine: Vec<bool>,
        wait: bool,
    ) -> Result<Offer, String> {
        let (control, pool, _busy) = self.chunk_stream(*peer);
        let asked = ask_offers(control, &pool, *peer, *archive, &mine, wait).await;
        let (offered, named) = match asked {
            Ok(answer) => answer,
            Err(e) => return Err(self.explain_failure(*peer, e).await),
        };
        let me = self.peer_id();
        let named = named.into_iter().filter(|p| *p != me).collect();
        self.swarms().heard(*archive, named);
        Ok(offered)
    }

    /// A range from a peer without `/ggen/chunks`: one `/ggen/rr` request per chunk,
    /// all sent at once.
    fn chunk_by_chunk(
        &self,
        peer: PeerId,
        archive: Blake3Hash,
        first: u32,
        count: u32,
    ) -> impl Stream<Item = Result<(u32, Vec<u8>), String>> + Send + '_ {
        futures::stream::iter(first..first.saturating_add(count))
            .map(move |index| async move {
                self.chunk(&peer, &archive, index).await.map(|b| (index, b))
            })
            .buffered(count.max(1) as usize)
    }
}

/// The client as a chunk source that notes which providers sent chunks, so the store can
/// confirm them as live providers once the whole archive has checked out, and feeds the
/// download's verdicts to each provider's reputation (verified bytes once, at the end).
struct Noting<'a> {
    client: &'a Client,
    served: Mutex<HashSet<PeerId>>,
    verified: Mutex<HashMap<PeerId, u64>>,
    /// Providers asked what they offer: later asks may wait for news, the first may not
    /// (the download gives a first answer only a short deadline).
    asked: Mutex<HashSet<PeerId>>,
}

impl ChunkSource for Noting<'_> {
    type Peer = PeerId;

    async fn chunk_list(
        &self,
        peer: &PeerId,
        archive: &Blake3Hash,
    ) -> Result<Vec<Blake3Hash>, ListError> {
        self.client.chunk_list(peer, archive).await
    }

    async fn chunk(
        &self,
        peer: &PeerId,
        archive: &Blake3Hash,
        index: u32,
    ) -> Result<Vec<u8>, String> {
        let bytes = self.client.chunk(peer, archive, index).await?;
        self.served
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*peer);
        Ok(bytes)
    }

    fn chunk_range(
        &self,
        peer: PeerId,
        archive: Blake3Hash,
        first: u32,
        count: u32,
    ) -> impl Stream<Item = Result<(u32, Vec<u8>), String>> + Send + '_ {
        self.client
            .chunk_range(peer, archive, first, count)
            .inspect(move |item| {
                if item.is_ok() {
                    self.served
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(peer);
                }
            })
    }

    async fn offers(
        &self,
        peer: &PeerId,
        archive: &Blake3Hash,
        mine: Vec<bool>,
    ) -> Result<Offer, String> {
        let wait = !(self.asked.lock().unwrap_or_else(|e| e.into_inner())).insert(*peer);
        self.client.offers_of(peer, archive, mine, wait).await
    }

    async fn discover(&self, archive: &Blake3Hash) -> Vec<PeerId> {
        self.client.discover(archive).await
    }

    fn named(&self, archive: &Blake3Hash) -> Vec<PeerId> {
        self.client.named(archive)
    }

    fn joined(&self, archive: &Blake3Hash, path: &Path, layout: Layout, have: Vec<bool>) {
        self.client.joined(archive, path, layout, have);
    }

    fn held(&self, archive: &Blake3Hash, index: u32) {
        self.client.held(archive, index);
    }

    fn left(&self, archive: &Blake3Hash) {
        self.client.left(archive);
    }

    fn judged(&self, peer: &PeerId, verdict: Verdict) {
        match verdict {
            Verdict::Bad => self.client.judge(*peer, PeerEvent::BadChunk),
            Verdict::Stalled => self.client.judge(*peer, PeerEvent::Stall),
            Verdict::Good { bytes } => {
                self.client.swarms().received_from(*peer, bytes);
                let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
                *verified.entry(*peer).or_default() += bytes;
            }
        }
    }
}

impl Noting<'_> {
    /// Credits every provider with the verified bytes it sent.
    fn credit(&self) {
        let verified =
            std::mem::take(&mut *self.verified.lock().unwrap_or_else(|e| e.into_inner()));
        for (peer, bytes) in verified {
            self.client.judge(peer, PeerEvent::GoodTransfer { bytes });
        }
    }
}

/// `providers` best first by this node's reputation of them; those with a bad score
/// are left out while others remain (see [`rank_providers`]).
async fn ranked(client: &Client, providers: Vec<PeerId>) -> Vec<PeerId> {
    match client.scores(providers.clone()).await {
        Ok(scores) => rank_providers(providers.into_iter().zip(scores).collect()),
        Err(e) => {
            tracing::debug!("provider scores: {e}");
            providers
        }
    }
}

fn unexpected(response: Response, asked: &str) -> String {
    match response {
        Response::NotFound => format!("does not have {asked}"),
        Response::Error { message } => format!("refused {asked}: {message}"),
        other => format!("answered {} to a {asked} request", other.kind()),
    }
}

/// Downloads `info`'s archive from `providers` (partial state kept by the store, resumed
/// on the next attempt) and moves it into the store. Already stored:
/// nothing to do.
pub async fn download_to_store(
    client: &Client,
    store: &Store,
    info: &ArchiveInfo,
    providers: Vec<PeerId>,
    progress: impl Fn(u64, u64) + Send + Sync,
) -> Result<(), TransferError> {
    let archive = info.blake3;
    if store
        .call(move |store| Ok::<_, TransferError>(store.has_archive(&archive)))
        .await?
    {
        return Ok(());
    }
    let source = Noting {
        client,
        served: Mutex::new(HashSet::new()),
        verified: Mutex::new(HashMap::new()),
        asked: Mutex::new(HashSet::new()),
    };
    let providers = ranked(client, providers).await;
    let downloaded = download_verified(
        &source,
        store,
        info,
        providers,
        TransferConfig::default(),
        progress,
    )
    .await;
    source.credit();
    let (path, digest) = match downloaded {
        Ok(done) => done,
        Err(e) => {
            // It announced itself as downloading it (`joined`): withdraw that.
            if let Err(e) = client.stop_providing(archive).await {
                tracing::debug!("withdrawing the announcement of {archive}: {e}");
            }
            return Err(e);
        }
    };
    let info = info.clone();
    // The whole file matched the record; every peer that sent chunks of it is confirmed
    // as a live provider. "Confirmed" means it recently answered with chunks of this
    // archive, not that each chunk was good: a peer that sent a bad one was dropped by
    // the download at once, and is confirmed all the same.
    let served = source
        .served
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    store
        .call(move |store| {
            let result = store.put_verified_archive(&path, &digest, &info);
            // On success the file was renamed away; on failure nothing is worth keeping.
            let _ = std::fs::remove_file(&path);
            if result.is_ok() {
                let served: Vec<String> = served.iter().map(|p| p.to_string()).collect();
                let sightings = served.iter().map(|peer| (&archive, peer.as_str()));
                if let Err(e) = store.observe_providers(sightings, crate::store::now_ms()) {
                    tracing::debug!("confirm providers of {archive}: {e}");
                }
            }
            Ok::<_, TransferError>(result)
        })
        .await?
        .map_err(|e| TransferError::Store {
            archive,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Mutex;
    use std::time::Duration;

    use libp2p::multiaddr::Protocol;
    use rand::{RngCore, SeedableRng};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::net::{self, Multiaddr, NetConfig};
    use crate::package::digest::CHUNK_SIZE;

    struct Node {
        client: Client,
        store: Store,
        addr: Multiaddr,
        _dir: tempfile::TempDir,
    }

    async fn start(shutdown: &CancellationToken) -> Node {
        let mut config = NetConfig::new(libp2p::identity::Keypair::generate_ed25519());
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        config.mdns = false;
        config.autonat = false;
        config.connection_timeout = Duration::from_secs(10);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let client = net::spawn(
            config,
            store.clone(),
            &crate::tasks::Tasks::with_token(shutdown.child_token()),
        )
        .await
        .unwrap();
        let addr = client.listen_addrs().await.unwrap()[0]
            .clone()
            .with(Protocol::P2p(client.peer_id()));
        Node {
            client,
            store,
            addr,
            _dir: dir,
        }
    }

    /// Real swarms on loopback: the downloader asks a peer that has the archive and one
    /// that does not; the archive arrives verified in the store and the partial dir is
    /// left empty.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn downloads_over_libp2p_into_the_store() {
        let shutdown = CancellationToken::new();
        let (seeder, empty, leecher) = (
            start(&shutdown).await,
            start(&shutdown).await,
            start(&shutdown).await,
        );
        let mut bytes = vec![0u8; 3 * CHUNK_SIZE as usize + 12_345];
        rand::rngs::StdRng::seed_from_u64(3).fill_bytes(&mut bytes);
        let mut writer = seeder.store.blob_writer().unwrap();
        writer.write_all(&bytes).unwrap();
        let info = writer.commit().unwrap().info;

        for node in [&seeder, &empty] {
            leecher.client.dial(node.addr.clone()).await.unwrap();
        }
        let reports = Mutex::new(Vec::new());
        let providers = vec![empty.client.peer_id(), seeder.client.peer_id()];
        download_to_store(
            &leecher.client,
            &leecher.store,
            &info,
            providers,
            |done, total| reports.lock().unwrap().push((done, total)),
        )
        .await
        .unwrap();

        let path = leecher.store.archive_path(&info.blake3).unwrap();
        assert_eq!(std::fs::read(path).unwrap(), bytes);
        assert_eq!(
            reports.lock().unwrap().last(),
            Some(&(info.size, info.size))
        );
        let partial = leecher.store.dir().join("blobs/partial");
        assert_eq!(std::fs::read_dir(partial).unwrap().count(), 0);
        // Stored already: a second call has nothing to do, even with no providers.
        download_to_store(&leecher.client, &leecher.store, &info, vec![], |_, _| {})
            .await
            .unwrap();
        shutdown.cancel();
    }
}
