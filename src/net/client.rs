//! The cloneable handle to the network: each call sends a [`Command`] with a oneshot reply
//! to the event loop and waits (bounded) for the answer. Multi-step work that needs no
//! swarm access between steps (announce, anti-entropy, network search) runs here, so the
//! event loop stays a translator.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use super::command::Command;
use super::metrics::RecordPath;
use super::policy;
use super::protocol::{dht_keys, name_key, name_version_key, parse_record, Request, Response};
use super::sync::{self, SyncSource};
use super::{NetError, NetStatus, PeerInfo, Receipt};
use crate::package::{Blake3Hash, PublisherId, Record, RecordId};
use crate::store::{IngestOutcome, Query, Store};

/// Slack on top of the loop's own timeouts before a caller gives up waiting.
const REPLY_SLACK: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Client {
    peer_id: PeerId,
    commands: mpsc::Sender<Command>,
    store: Store,
    query_timeout: Duration,
    request_timeout: Duration,
    metrics: std::sync::Arc<super::Metrics>,
    /// Opens `/ggen/chunks` streams (`transfer::stream`); a clone per range.
    streams: libp2p_stream::Control,
    /// Peers with a chunk stream open, which pruning spares.
    active: super::transfer::stream::ActiveStreams,
    /// Finished chunk streams kept for the next range (`transfer::stream`).
    pool: super::transfer::stream::StreamPool,
    /// What this node offers of archives many nodes fetch at once (`transfer::swarm`).
    swarms: super::transfer::swarm::Swarms,
    /// Chunks served take turns on the upload link (`transfer::pace`).
    pacer: super::transfer::pace::Pacer,
}

impl Client {
    pub(crate) fn new(
        peer_id: PeerId,
        commands: mpsc::Sender<Command>,
        store: Store,
        (query_timeout, request_timeout): (Duration, Duration),
        metrics: std::sync::Arc<super::Metrics>,
        streams: libp2p_stream::Control,
        active: super::transfer::stream::ActiveStreams,
    ) -> Self {
        Self {
            peer_id,
            commands,
            store,
            query_timeout,
            request_timeout,
            metrics,
            streams,
            active,
            pool: Default::default(),
            swarms: Default::default(),
            pacer: Default::default(),
        }
    }

    /// This client with served chunks paced by `pacer` (unpaced by default).
    pub(crate) fn pacing(self, pacer: super::transfer::pace::Pacer) -> Self {
        Self { pacer, ..self }
    }

    /// Waits for chunk `index` of `archive` (`bytes` long), about to be served, to have
    /// its turn on the upload link: the chunks fewest peers hold go first.
    pub(crate) async fn pace(
        &self,
        archive: &crate::package::Blake3Hash,
        index: u32,
        bytes: usize,
    ) {
        let rank = || self.swarms.holders(archive, index);
        self.pacer.wait(bytes, rank).await;
    }

    /// This node's swarms: partial downloads it serves, what it sent as a seeder.
    pub(crate) fn swarms(&self) -> &super::transfer::swarm::Swarms {
        &self.swarms
    }

    /// `bytes` of chunk data of `archive` were sent to a peer (either chunk path): counted
    /// in `/metrics` and in the archive's swarm (status, dashboard).
    pub(crate) fn served(&self, archive: &crate::package::Blake3Hash, bytes: u64) {
        self.metrics().served_archive(archive, bytes);
        self.swarms.uploaded(archive, bytes);
    }

    /// A handle for opening chunk streams, the finished streams kept for reuse, and the
    /// guard that marks `peer` busy.
    pub(crate) fn chunk_stream(
        &self,
        peer: PeerId,
    ) -> (
        libp2p_stream::Control,
        super::transfer::stream::StreamPool,
        super::transfer::stream::StreamGuard,
    ) {
        (
            self.streams.clone(),
            self.pool.clone(),
            self.active.enter(peer),
        )
    }

    /// Charges `bytes` of chunks to `peer`'s chunk rate limit before a range is served
    /// (the limit counts MiB: `ratelimit::CHUNK_UNIT`); over the limit, how long to wait
    /// (the peer loses a little reputation).
    pub(crate) async fn admit_chunks(&self, peer: PeerId, bytes: u64) -> Result<(), Duration> {
        let asked = self
            .call("rate limit", self.quick(), |reply| Command::AdmitChunks {
                peer,
                bytes,
                reply,
            })
            .await;
        asked.unwrap_or(Err(Duration::from_secs(1)))
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// What this node counts (`/metrics`).
    pub fn metrics(&self) -> &std::sync::Arc<super::Metrics> {
        &self.metrics
    }

    async fn call<T>(
        &self,
        what: &str,
        wait: Duration,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| NetError::Shutdown)?;
        match tokio::time::timeout(wait, answer).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(NetError::Shutdown),
            Err(_) => Err(NetError::Timeout {
                what: what.to_string(),
                after: wait,
            }),
        }
    }

    fn quick(&self) -> Duration {
        REPLY_SLACK * 2
    }

    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, NetError> {
        self.call("listen addresses", self.quick(), |reply| {
            Command::ListenAddrs { reply }
        })
        .await
    }

    /// Ingests locally, gossips the record, puts it in the DHT, and with `provide` starts
    /// providing that archive; the receipt says how far it reached.
    pub async fn announce(
        &self,
        record: Record,
        provide: Option<Blake3Hash>,
    ) -> Result<Receipt, NetError> {
        let local = record.clone();
        match self.store.call(move |store| store.ingest(&local)).await? {
            IngestOutcome::Added | IngestOutcome::Duplicate => {}
            IngestOutcome::Equivocation { existing } => {
                return Err(NetError::Store(format!(
                "record {}: conflicts with record {existing} for the same version; not announced",
                record.id()
            )))
            }
            IngestOutcome::Rejected { reason } => {
                return Err(NetError::Store(format!(
                    "record {}: refused by the local store: {reason}; not announced",
                    record.id()
                )))
            }
        }
        let gossip_peers = self.gossip_raw(record.as_bytes().to_vec()).await?;
        let dht_peers = self.put_record(record).await?;
        let mut providers = 0;
        if let Some(archive) = provide {
            self.provide(archive).await?;
            providers = self.find_providers(archive).await?.len() + 1;
        }
        Ok(Receipt {
            gossip_peers,
            dht_peers,
            providers,
        })
    }

    /// Puts a record in the DHT under each of its keys ([`dht_keys`]: its own, and for a
    /// version its name and name-and-version keys) at once; returns the peers that took
    /// it under its own key.
    pub async fn put_record(&self, record: Record) -> Result<usize, NetError> {
        let wait = self.query_timeout + REPLY_SLACK;
        let puts = dht_keys(&record).into_iter().map(|key| {
            let record = record.clone();
            self.call("dht put", wait, move |reply| Command::PutRecord {
                key,
                record,
                reply,
            })
        });
        let mut answers = join_all(puts).await.into_iter();
        let own = answers.next().ok_or(NetError::Shutdown)???;
        for other in answers {
            if let Err(e) = other? {
                tracing::debug!("dht put under a name key: {e}");
            }
        }
        Ok(own)
    }

    /// Looks `name` up in the DHT (its name key, or with `version` its name-and-version
    /// key), verifies every record found and ingests it; returns how many were added to
    /// the store. For a node that missed the records through gossip and sync.
    pub async fn lookup_name(
        &self,
        name: &str,
        version: Option<&semver::Version>,
    ) -> Result<usize, NetError> {
        let key = match version {
            Some(version) => name_version_key(name, version),
            None => name_key(name),
        };
        let wait = self.query_timeout + REPLY_SLACK;
        let found = self
            .call("dht get record", wait, |reply| Command::GetRecord {
                key,
                reply,
            })
            .await??;
        let mut records = Vec::new();
        for bytes in found {
            match parse_record(bytes) {
                Ok(record) => records.push(record),
                Err(reason) => {
                    tracing::debug!("dht record for {name}: {reason}");
                    self.metrics.invalid(RecordPath::dht);
                }
            }
        }
        let count = records.len();
        let outcomes = (self.store)
            .call(move |store| store.ingest_many(&records))
            .await
            .inspect_err(|_| self.metrics.store_failed(RecordPath::dht, count))?;
        for outcome in &outcomes {
            self.metrics.ingested(RecordPath::dht, outcome);
        }
        Ok(outcomes
            .iter()
            .filter(|o| matches!(o, IngestOutcome::Added))
            .count())
    }

    /// Gossips bytes as they are, unverified: for tests and diagnostics that must put bad
    /// input on the wire (peers validate and reject it). Returns the peers reached.
    pub async fn gossip_raw(&self, bytes: Vec<u8>) -> Result<usize, NetError> {
        self.call("gossip publish", self.quick(), |reply| Command::Publish {
            bytes,
            reply,
        })
        .await
    }

    /// The store counts this node among the providers of `archive`.
    async fn observe_self(&self, archive: Blake3Hash) -> Result<(), NetError> {
        let me = self.peer_id.to_string();
        (self.store)
            .call(move |store| {
                store.observe_providers([(&archive, me.as_str())], crate::store::now_ms())
            })
            .await?;
        Ok(())
    }

    /// Records this node as a provider of `archive` (store and DHT).
    pub async fn provide(&self, archive: Blake3Hash) -> Result<(), NetError> {
        self.observe_self(archive).await?;
        self.start_providing(archive).await
    }

    /// Kademlia announces this node as a provider of `archive`; waits for the query.
    async fn start_providing(&self, archive: Blake3Hash) -> Result<(), NetError> {
        let wait = self.query_timeout + REPLY_SLACK;
        self.call("dht provide", wait, |reply| Command::StartProviding {
            archive,
            reply,
        })
        .await?
    }

    /// [`Client::provide`] without waiting for the DHT: the store lists this node as a
    /// provider at once, and the announcement to the closest peers (a query whose
    /// messages wait behind chunk data on a busy link: 0.2–0.4 s in the swarm lab, more on
    /// a slow network) runs on while the caller goes on; a failure there is logged, and
    /// the node provides every stored archive again at its next start. Installs use it:
    /// they are done when the files are in place.
    pub async fn provide_in_background(&self, archive: Blake3Hash) -> Result<(), NetError> {
        self.observe_self(archive).await?;
        let client = self.clone();
        tokio::spawn(async move {
            match client.start_providing(archive).await {
                Ok(()) | Err(NetError::Shutdown) => {}
                Err(e) => tracing::debug!("announcing {archive} in the DHT: {e}"),
            }
        });
        Ok(())
    }

    /// Announces in the DHT that this node is downloading `archive` and serves the chunks
    /// it has verified (`transfer::swarm`); unlike [`Client::provide`], the store does not
    /// list it as holding the archive. Once complete, `provide` follows.
    pub async fn announce_partial(&self, archive: Blake3Hash) -> Result<(), NetError> {
        self.start_providing(archive).await
    }

    /// Stops announcing this node as a provider of `archive` (after evicting it): the DHT
    /// no longer gets it from us and the store no longer lists us.
    pub async fn stop_providing(&self, archive: Blake3Hash) -> Result<(), NetError> {
        self.call("dht stop providing", self.quick(), |reply| {
            Command::StopProviding { archive, reply }
        })
        .await?;
        let me = self.peer_id.to_string();
        (self.store)
            .call(move |store| store.remove_provider(&archive, &me))
            .await?;
        Ok(())
    }

    /// Providers known locally (confirmed within the provider TTL) merged with a DHT
    /// lookup, this node excluded. Every provider the DHT names is confirmed in the store.
    pub async fn find_providers(&self, archive: Blake3Hash) -> Result<Vec<PeerId>, NetError> {
        Ok(self.find_providers_counted(archive).await?.providers)
    }

    /// [`Client::find_providers`], with the number of DHT requests the lookup took.
    pub async fn find_providers_counted(
        &self,
        archive: Blake3Hash,
    ) -> Result<super::ProvidersFound, NetError> {
        let since = policy::live_since(crate::store::now_ms());
        let known = self
            .store
            .call(move |store| store.live_providers(&archive, since))
            .await?;
        let mut found: HashSet<PeerId> = known.iter().filter_map(|p| p.parse().ok()).collect();
        let wait = self.query_timeout + REPLY_SLACK;
        let from_dht = self
            .call("dht get providers", wait, |reply| Command::GetProviders {
                archive,
                reply,
            })
            .await??;
        let dht_requests = from_dht.dht_requests;
        let from_dht = from_dht.providers;
        let confirmed: Vec<String> = from_dht
            .iter()
            .filter(|p| **p != self.peer_id)
            .map(|p| p.to_string())
            .collect();
        (self.store)
            .call(move |store| {
                store.provider_lookup_done(&archive, crate::store::now_ms())?;
                let sightings = confirmed.iter().map(|peer| (&archive, peer.as_str()));
                store.observe_providers(sightings, crate::store::now_ms())
            })
            .await?;
        found.extend(from_dht);
        found.remove(&self.peer_id);
        Ok(super::ProvidersFound {
            providers: found.into_iter().collect(),
            dht_requests,
        })
    }

    /// Asks every connected peer to run `query`; the records they return are verified and
    /// ingested, so a local search afterwards sees them. Returns how many peers answered.
    pub async fn search_network(&self, query: Query) -> Result<usize, NetError> {
        let peers = self.connected_peers().await?;
        let answers = join_all(peers.into_iter().map(|peer| {
            let request = Request::Search {
                query: query.clone(),
            };
            async move { (peer, self.request(peer, request).await) }
        }))
        .await;
        let mut answered = 0;
        for (peer, answer) in answers {
            if let Ok(Response::Records { records }) = answer {
                answered += 1;
                let bytes = records.into_iter().map(|b| b.into_vec()).collect();
                sync::ingest(self, &self.store, peer, bytes, RecordPath::search).await?;
            }
        }
        Ok(answered)
    }

    /// One request-response exchange.
    pub async fn request(&self, peer: PeerId, request: Request) -> Result<Response, NetError> {
        let wait = self.request_timeout + REPLY_SLACK;
        self.call("request", wait, |reply| Command::Request {
            peer,
            request,
            reply,
        })
        .await?
    }

    /// Anti-entropy with every connected peer now; returns records gained.
    pub async fn sync_now(&self) -> Result<usize, NetError> {
        let peers = self.connected_peers().await?;
        let results = join_all(peers.into_iter().map(|peer| self.sync_peer(peer))).await;
        let mut gained = 0;
        for result in results {
            match result {
                Ok(n) => gained += n,
                Err(NetError::Shutdown) => return Err(NetError::Shutdown),
                Err(e) => tracing::debug!("sync: {e}"),
            }
        }
        Ok(gained)
    }

    /// Anti-entropy with one peer (see [`sync::run`]). Returns records added to the store.
    pub async fn sync_peer(&self, peer: PeerId) -> Result<usize, NetError> {
        let result = sync::run(self, &self.store, peer).await;
        self.metrics.sync_round(result.is_ok());
        result
    }

    pub(crate) async fn penalize(&self, peer: PeerId) {
        let _ = self.send_internal(Command::Penalize { peer }).await;
    }

    /// Reports something `peer` did to its reputation, without waiting (dropped when the
    /// event loop's queue is full: a score is advisory).
    pub(crate) fn judge(&self, peer: PeerId, event: super::reputation::PeerEvent) {
        let _ = self.commands.try_send(Command::Judge { peer, event });
    }

    /// `failure` with the reason a relay may have caused it, when only a relayed
    /// connection joined us to `peer` (relays bound each circuit's bytes and duration).
    pub(crate) async fn explain_failure(&self, peer: PeerId, failure: String) -> String {
        let hint = self
            .call("link hint", self.quick(), |reply| Command::LinkHint {
                peer,
                reply,
            })
            .await;
        match hint {
            Ok(Some(hint)) => format!("{failure} ({hint})"),
            _ => failure,
        }
    }

    /// This node's reputation score of each of `peers`, in order.
    pub async fn scores(&self, peers: Vec<PeerId>) -> Result<Vec<f64>, NetError> {
        self.call("peer scores", self.quick(), |reply| Command::Scores {
            peers,
            reply,
        })
        .await
    }

    /// Reports from tasks the event loop spawned (no reply expected).
    pub(crate) async fn send_internal(&self, command: Command) -> Result<(), NetError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| NetError::Shutdown)
    }

    /// Test hook: ends the event loop as a crash would; later calls fail.
    #[cfg(feature = "test-support")]
    pub async fn halt(&self) {
        let _ = self.send_internal(Command::Halt).await;
    }

    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetError> {
        self.call("connected peers", self.quick(), |reply| {
            Command::ConnectedPeers { reply }
        })
        .await
    }

    pub async fn status(&self) -> Result<NetStatus, NetError> {
        let mut status = self
            .call("status", self.quick(), |reply| Command::Status { reply })
            .await?;
        status.swarms = self.swarms.snapshot();
        Ok(status)
    }

    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NetError> {
        self.call("peers", self.quick(), |reply| Command::Peers { reply })
            .await
    }

    /// Dials `addr` and waits until connected; returns the remote peer id.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId, NetError> {
        let wait = self.request_timeout + REPLY_SLACK;
        self.call(&format!("dial {addr}"), wait, |reply| Command::Dial {
            addr: addr.clone(),
            reply,
        })
        .await?
    }

    /// Closes every connection to `peer` and forgets its addresses.
    /// Closes every connection to `peer` and forgets its addresses. Returns once the
    /// connections are closed (closing is asynchronous in the swarm), or after 2 s.
    /// Bans `peer` in the running node (refused and disconnected); storing the ban is
    /// the caller's job.
    pub async fn block(&self, peer: PeerId) -> Result<(), NetError> {
        self.call("block", self.quick(), |reply| Command::Block {
            peer,
            reply,
        })
        .await
    }

    /// Lifts `peer`'s ban in the running node.
    pub async fn unblock(&self, peer: PeerId) -> Result<(), NetError> {
        self.call("unblock", self.quick(), |reply| Command::Unblock {
            peer,
            reply,
        })
        .await
    }

    pub async fn disconnect(&self, peer: PeerId) -> Result<(), NetError> {
        self.call("disconnect", self.quick(), |reply| Command::Disconnect {
            peer,
            reply,
        })
        .await?;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        while self.connected_peers().await?.contains(&peer)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

fn unexpected(peer: PeerId, asked: &str, got: &Response) -> NetError {
    let reason = match got {
        Response::Error { message } => format!("{asked}: peer error: {message}"),
        other => format!("{asked}: unexpected {} response", other.kind()),
    };
    NetError::Request { peer, reason }
}

impl SyncSource for Client {
    fn metrics(&self) -> Option<&super::Metrics> {
        Some(&self.metrics)
    }

    async fn summary(&self, peer: PeerId) -> Result<Vec<[u8; 32]>, NetError> {
        match self.request(peer, Request::SyncSummary).await? {
            Response::Summary { buckets } => Ok(buckets),
            other => Err(unexpected(peer, "sync summary", &other)),
        }
    }

    async fn bucket(&self, peer: PeerId, bucket: u8) -> Result<Vec<RecordId>, NetError> {
        match self.request(peer, Request::SyncBucket { bucket }).await? {
            Response::Ids { ids } => Ok(ids),
            other => Err(unexpected(peer, "sync bucket", &other)),
        }
    }

    async fn records(&self, peer: PeerId, ids: Vec<RecordId>) -> Result<Vec<Vec<u8>>, NetError> {
        match self.request(peer, Request::GetRecords { ids }).await? {
            Response::Records { records } => {
                Ok(records.into_iter().map(|b| b.into_vec()).collect())
            }
            other => Err(unexpected(peer, "get records", &other)),
        }
    }

    async fn owners(
        &self,
        peer: PeerId,
        names: Vec<String>,
    ) -> Result<Vec<(String, PublisherId)>, NetError> {
        match self.request(peer, Request::SyncOwners { names }).await? {
            Response::Owners { owners, .. } => Ok(owners),
            other => Err(unexpected(peer, "sync owners", &other)),
        }
    }

    async fn penalize(&self, peer: PeerId) {
        Client::penalize(self, peer).await;
    }
}
