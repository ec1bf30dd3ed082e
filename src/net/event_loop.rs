//! The one task that owns the swarm. It turns [`Command`]s into swarm calls and swarm
//! events into replies, keeps pending work in maps keyed by dial / query / request id and
//! answers every entry on every outcome. Store work and record verification run in
//! spawned tasks that report back through the same command channel, so SQLite never
//! blocks the loop.

use rand::seq::SliceRandom;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::core::ConnectedPoint;
use libp2p::gossipsub::{self, MessageAcceptance, MessageId};
use libp2p::kad::store::RecordStore;
use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{identify, mdns, ping, Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

use super::behaviour::{build_swarm, records_topic, Behaviour, BehaviourEvent};
use super::client::Client;
use super::discovery::{peer_of, Bootstrap};
use super::peers::Penalties;
use super::protocol::{
    archive_of_key, check_dht_record, dht_key, parse_record, provider_key, Request, Response,
    KAD_PROTOCOL,
};
use super::{NetConfig, NetError, NetStatus, PeerInfo};
use crate::package::{Blake3Hash, Record};
use crate::store::{IngestOutcome, Store};
use crate::tasks::Tasks;

const COMMAND_QUEUE: usize = 1024;
const BOOTSTRAP_TICK: Duration = Duration::from_secs(1);
/// Peers a periodic anti-entropy round syncs with (on-connect syncs are extra): enough to
/// converge quickly, few enough that the cost does not grow with the network.
const SYNC_FANOUT: usize = 3;
const LISTEN_WAIT: Duration = Duration::from_secs(10);

/// Work for the event loop: public calls (each with its reply) and reports from tasks the
/// loop spawned.
// Commands are short-lived and sent one by one; boxing the big variants would only add
// an allocation per request.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    /// Gossip raw record bytes (the client only sends verified records, or test input).
    Publish {
        bytes: Vec<u8>,
        reply: oneshot::Sender<usize>,
    },
    PutRecord {
        record: Record,
        reply: oneshot::Sender<Result<usize, NetError>>,
    },
    StartProviding {
        archive: Blake3Hash,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    GetProviders {
        archive: Blake3Hash,
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Request {
        peer: PeerId,
        request: Request,
        reply: oneshot::Sender<Result<Response, NetError>>,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Status {
        reply: oneshot::Sender<NetStatus>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, NetError>>,
    },
    Disconnect {
        peer: PeerId,
        reply: oneshot::Sender<()>,
    },
    /// A peer sent something invalid.
    Penalize {
        peer: PeerId,
    },
    /// Verdict on a gossip message, from its validation task.
    GossipVerdict {
        message_id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
    },
    /// Answer to an inbound request, computed off the loop.
    Respond {
        channel: ResponseChannel<Response>,
        response: Response,
    },
    /// A sync task with `peer` ended.
    SyncDone {
        peer: PeerId,
    },
}

/// What the loop knows about a connected peer.
#[derive(Default)]
struct PeerState {
    /// When the first current connection opened (pruning spares young connections).
    connected_at: Option<Instant>,
    agent: Option<String>,
    listen_addrs: Vec<Multiaddr>,
    remote_addr: Option<Multiaddr>,
    rtt: Option<Duration>,
}

fn prune_target(max_connections: u32, mesh_n_high: usize) -> usize {
    let max = max_connections as usize;
    let ceiling = max - max / 10;
    (2 * mesh_n_high).max(8).min(ceiling)
}

struct ProvidersQuery {
    found: HashSet<PeerId>,
    reply: oneshot::Sender<Vec<PeerId>>,
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    client: Client,
    store: Store,
    /// The registry's shutdown root: the loop ends when it is cancelled, and every task
    /// the loop spawns is tracked by it.
    tasks: Tasks,
    /// Connections kept when pruning: twice the gossip mesh's upper bound, within 90 % of
    /// the connection limit.
    prune_target: usize,
    prune_interval: Duration,
    prune_grace: Duration,
    sync_interval: Duration,
    bootstrap: Bootstrap,
    penalties: Penalties,
    peers: HashMap<PeerId, PeerState>,
    syncing: HashSet<PeerId>,
    pending_dials: HashMap<ConnectionId, oneshot::Sender<Result<PeerId, NetError>>>,
    pending_dial_addrs: HashMap<ConnectionId, Multiaddr>,
    /// Our outbound requests, with the peer asked (so pruning spares busy peers).
    pending_requests:
        HashMap<OutboundRequestId, (PeerId, oneshot::Sender<Result<Response, NetError>>)>,
    pending_puts: HashMap<QueryId, oneshot::Sender<Result<usize, NetError>>>,
    pending_provides: HashMap<QueryId, oneshot::Sender<Result<(), NetError>>>,
    pending_providers: HashMap<QueryId, ProvidersQuery>,
}

pub(crate) async fn spawn(
    config: NetConfig,
    store: Store,
    tasks: Tasks,
) -> Result<Client, NetError> {
    let mut swarm = build_swarm(&config)?;
    let mut listeners = HashSet::new();
    for addr in &config.listen {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Listen {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        listeners.insert(id);
    }
    // Wait until every listener is bound, so `listen_addrs` is meaningful at once.
    let deadline = tokio::time::Instant::now() + LISTEN_WAIT;
    while !listeners.is_empty() {
        match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr { listener_id, .. }) => {
                listeners.remove(&listener_id);
            }
            Ok(SwarmEvent::ListenerClosed {
                addresses, reason, ..
            }) => {
                let reason = match reason {
                    Ok(()) => "closed".to_string(),
                    Err(e) => e.to_string(),
                };
                let addr = addresses
                    .into_iter()
                    .next()
                    .unwrap_or_else(Multiaddr::empty);
                return Err(NetError::Listen { addr, reason });
            }
            Ok(SwarmEvent::ListenerError { error, .. }) => {
                return Err(NetError::Config(format!("listener: {error}")));
            }
            Ok(_) => {}
            Err(_) => {
                return Err(NetError::Timeout {
                    what: "binding listen addresses".into(),
                    after: LISTEN_WAIT,
                })
            }
        }
    }

    let (bootstrap, refused) = Bootstrap::new(&config.bootstrap, Instant::now());
    if let Some(addr) = refused.first() {
        return Err(NetError::Config(format!(
            "bootstrap address {addr} has no /p2p/<peer id>: append the peer id of that node"
        )));
    }
    for (peer, addr) in bootstrap.addrs() {
        swarm.behaviour_mut().kad.add_address(peer, addr.clone());
    }

    let (sender, commands) = mpsc::channel(COMMAND_QUEUE);
    let client = Client::new(
        *swarm.local_peer_id(),
        sender,
        store.clone(),
        config.query_timeout,
        config.connection_timeout,
    );
    let event_loop = EventLoop {
        swarm,
        commands,
        client: client.clone(),
        store,
        tasks: tasks.clone(),
        prune_target: prune_target(config.max_connections, config.gossip_mesh.2),
        prune_interval: config.prune_interval.max(Duration::from_millis(100)),
        prune_grace: config.prune_grace,
        sync_interval: config.sync_interval,
        bootstrap,
        penalties: Penalties::default(),
        peers: HashMap::new(),
        syncing: HashSet::new(),
        pending_dials: HashMap::new(),
        pending_dial_addrs: HashMap::new(),
        pending_requests: HashMap::new(),
        pending_puts: HashMap::new(),
        pending_provides: HashMap::new(),
        pending_providers: HashMap::new(),
    };
    tasks.spawn(event_loop.run());
    Ok(client)
}

impl EventLoop {
    async fn run(mut self) {
        let tasks = self.tasks.clone();
        let mut bootstrap_tick = tokio::time::interval(BOOTSTRAP_TICK);
        let mut sync_tick =
            tokio::time::interval(self.sync_interval.max(Duration::from_millis(100)));
        sync_tick.tick().await; // the first sync happens on connect
        let mut prune_tick = tokio::time::interval(self.prune_interval);
        loop {
            tokio::select! {
                _ = tasks.cancelled() => break,
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(command) = self.commands.recv() => self.on_command(command),
                _ = bootstrap_tick.tick() => self.dial_bootstrap(),
                _ = sync_tick.tick() => {
                    let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                    let chosen = peers.choose_multiple(&mut rand::thread_rng(), SYNC_FANOUT);
                    for peer in chosen.copied().collect::<Vec<_>>() {
                        self.start_sync(peer);
                    }
                }
                _ = prune_tick.tick() => self.prune(),
            }
        }
        // Pending replies are dropped here: callers see `NetError::Shutdown`.
        tracing::debug!("network event loop stopped");
    }

    fn dial_bootstrap(&mut self) {
        for (peer, addr) in self.bootstrap.due(Instant::now()) {
            if self.swarm.is_connected(&peer) {
                self.bootstrap.on_connected(&peer);
                continue;
            }
            let opts = DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!("bootstrap dial {addr}: {e}");
                self.bootstrap.on_lost(&peer, Instant::now());
            }
        }
    }

    /// Keeps connections bounded: gossipsub keeps every connection alive (rust-libp2p
    /// #5190) and every DHT query opens more, so beyond [`EventLoop::prune_target`] the
    /// loop closes connections that are not bootstrap peers, not in the gossip mesh, not
    /// waiting on one of our requests (a download in progress) and older than
    /// `prune_grace`. Kademlia keeps their addresses, so they can be dialled again.
    fn prune(&mut self) {
        let target = self.prune_target;
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        if connected.len() <= target {
            return;
        }
        let mesh: HashSet<PeerId> = self
            .swarm
            .behaviour()
            .gossipsub
            .all_mesh_peers()
            .copied()
            .collect();
        let busy: HashSet<PeerId> = self.pending_requests.values().map(|(p, _)| *p).collect();
        let now = Instant::now();
        let excess = connected.len() - target;
        let victims: Vec<PeerId> = connected
            .into_iter()
            .filter(|p| !self.bootstrap.contains(p) && !mesh.contains(p) && !busy.contains(p))
            .filter(|p| {
                let since = self.peers.get(p).and_then(|s| s.connected_at);
                since.is_none_or(|at| now.duration_since(at) >= self.prune_grace)
            })
            .take(excess)
            .collect();
        for peer in victims {
            tracing::debug!("pruning connection to {peer}");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn start_sync(&mut self, peer: PeerId) {
        if !self.syncing.insert(peer) {
            return;
        }
        let client = self.client.clone();
        self.tasks.spawn(async move {
            match client.sync_peer(peer).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!("sync with {peer}: {n} records gained"),
                Err(e) => tracing::debug!("sync with {peer}: {e}"),
            }
            let _ = client_send(&client, Command::SyncDone { peer }).await;
        });
    }

    fn penalize(&mut self, peer: PeerId) {
        if self.penalties.penalize(peer) {
            tracing::info!("banning {peer}: too many invalid records");
            self.bootstrap.forget(&peer);
            self.swarm.behaviour_mut().blocked.block_peer(peer);
            let _ = self.swarm.disconnect_peer_id(peer);
            self.swarm.behaviour_mut().kad.remove_peer(&peer);
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::ListenAddrs { reply } => {
                let _ = reply.send(self.swarm.listeners().cloned().collect());
            }
            Command::Publish { bytes, reply } => {
                let topic = records_topic();
                let hash = topic.hash();
                let gossip = &mut self.swarm.behaviour_mut().gossipsub;
                let reached = match gossip.publish(topic, bytes) {
                    Ok(_) => gossip
                        .all_peers()
                        .filter(|(_, topics)| topics.contains(&&hash))
                        .count(),
                    Err(e) => {
                        tracing::debug!("gossip publish: {e}");
                        0
                    }
                };
                let _ = reply.send(reached);
            }
            Command::PutRecord { record, reply } => {
                let key = dht_key(&record);
                let kad_record = kad::Record::new(key, record.into_bytes());
                match self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .put_record(kad_record, kad::Quorum::One)
                {
                    Ok(id) => {
                        self.pending_puts.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dht(format!("put record: {e}"))));
                    }
                }
            }
            Command::StartProviding { archive, reply } => {
                match self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .start_providing(provider_key(&archive))
                {
                    Ok(id) => {
                        self.pending_provides.insert(id, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dht(format!("provide {archive}: {e}"))));
                    }
                }
            }
            Command::GetProviders { archive, reply } => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .get_providers(provider_key(&archive));
                self.pending_providers.insert(
                    id,
                    ProvidersQuery {
                        found: HashSet::new(),
                        reply,
                    },
                );
            }
            Command::Request {
                peer,
                request,
                reply,
            } => {
                let id = self.swarm.behaviour_mut().rr.send_request(&peer, request);
                self.pending_requests.insert(id, (peer, reply));
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.peer_infos());
            }
            Command::Dial { addr, reply } => self.dial(addr, reply),
            Command::Disconnect { peer, reply } => {
                self.bootstrap.forget(&peer);
                self.swarm.behaviour_mut().kad.remove_peer(&peer);
                let _ = self.swarm.disconnect_peer_id(peer);
                self.peers.remove(&peer);
                let _ = reply.send(());
            }
            Command::Penalize { peer } => self.penalize(peer),
            Command::GossipVerdict {
                message_id,
                source,
                acceptance,
            } => {
                let reject = matches!(acceptance, MessageAcceptance::Reject);
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &source, acceptance);
                if reject {
                    self.penalize(source);
                }
            }
            Command::Respond { channel, response } => {
                if self
                    .swarm
                    .behaviour_mut()
                    .rr
                    .send_response(channel, response)
                    .is_err()
                {
                    tracing::debug!("response dropped: the requester went away");
                }
            }
            Command::SyncDone { peer } => {
                self.syncing.remove(&peer);
            }
        }
    }

    fn dial(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<PeerId, NetError>>) {
        let opts = match peer_of(&addr) {
            Some(peer) if self.swarm.is_connected(&peer) => {
                let _ = reply.send(Ok(peer));
                return;
            }
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::Always)
                .build(),
            None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
        };
        let connection = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => {
                self.pending_dials.insert(connection, reply);
                self.pending_dial_addrs.insert(connection, addr);
            }
            Err(e) => {
                let _ = reply.send(Err(NetError::Dial {
                    addr,
                    reason: e.to_string(),
                }));
            }
        }
    }

    fn status(&mut self) -> NetStatus {
        let routing_table_size = self
            .swarm
            .behaviour_mut()
            .kad
            .kbuckets()
            .map(|bucket| bucket.num_entries())
            .sum();
        let behaviour = self.swarm.behaviour();
        NetStatus {
            peer_id: self.swarm.local_peer_id().to_string(),
            listen_addrs: self.swarm.listeners().map(|a| a.to_string()).collect(),
            connected_peers: self.swarm.connected_peers().count(),
            routing_table_size,
            gossip_mesh_peers: behaviour.gossipsub.all_mesh_peers().count(),
        }
    }

    fn peer_infos(&self) -> Vec<PeerInfo> {
        self.swarm
            .connected_peers()
            .map(|peer| {
                let state = self.peers.get(peer);
                let mut addrs: Vec<String> = Vec::new();
                if let Some(state) = state {
                    addrs.extend(state.remote_addr.iter().map(|a| a.to_string()));
                    addrs.extend(state.listen_addrs.iter().map(|a| a.to_string()));
                    addrs.dedup();
                }
                PeerInfo {
                    peer_id: peer.to_string(),
                    addrs,
                    agent: state.and_then(|s| s.agent.clone()),
                    rtt_ms: state.and_then(|s| s.rtt).map(|d| d.as_millis() as u64),
                }
            })
            .collect()
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(event) => self.on_behaviour_event(event),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                if self.penalties.is_banned(&peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                self.pending_dial_addrs.remove(&connection_id);
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                self.bootstrap.on_connected(&peer_id);
                let remote = match endpoint {
                    ConnectedPoint::Dialer { address, .. } => address,
                    ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
                };
                let state = self.peers.entry(peer_id).or_default();
                state.remote_addr = Some(remote);
                state.connected_at.get_or_insert_with(Instant::now);
                if num_established.get() == 1 {
                    self.start_sync(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.peers.remove(&peer_id);
                self.bootstrap.on_lost(&peer_id, Instant::now());
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                let addr = self.pending_dial_addrs.remove(&connection_id);
                if let Some(reply) = self.pending_dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial {
                        addr: addr.unwrap_or_else(Multiaddr::empty),
                        reason: error.to_string(),
                    }));
                }
                if let Some(peer) = peer_id {
                    if !self.swarm.is_connected(&peer) {
                        self.bootstrap.on_lost(&peer, Instant::now());
                    }
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!("listening on {address}");
            }
            _ => {}
        }
    }

    fn on_behaviour_event(&mut self, event: BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. }) => {
                let speaks_kad = info.protocols.iter().any(|p| p.as_ref() == KAD_PROTOCOL);
                if speaks_kad {
                    for addr in &info.listen_addrs {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer_id, addr.clone());
                    }
                }
                let state = self.peers.entry(peer_id).or_default();
                state.agent = Some(info.agent_version);
                state.listen_addrs = info.listen_addrs;
            }
            BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            }) => {
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.rtt = Some(rtt);
                }
            }
            BehaviourEvent::Kad(event) => self.on_kad_event(event),
            BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            }) => self.validate_gossip(propagation_source, message_id, message.data),
            BehaviourEvent::Rr(event) => self.on_rr_event(event),
            BehaviourEvent::Mdns(mdns::Event::Discovered(found)) => {
                for (peer, addr) in found {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer, addr.clone());
                    if !self.swarm.is_connected(&peer) && !self.penalties.is_banned(&peer) {
                        let opts = DialOpts::peer_id(peer)
                            .addresses(vec![addr])
                            .condition(PeerCondition::DisconnectedAndNotDialing)
                            .build();
                        let _ = self.swarm.dial(opts);
                    }
                }
            }
            _ => {}
        }
    }

    /// Gossip: size check and signature check in a task, ingest, then report the verdict
    /// (only accepted messages are forwarded).
    fn validate_gossip(&mut self, source: PeerId, message_id: MessageId, data: Vec<u8>) {
        let client = self.client.clone();
        let store = self.store.clone();
        self.tasks.spawn(async move {
            let acceptance = match parse_record(data) {
                Err(reason) => {
                    tracing::debug!("gossip from {source}: {reason}");
                    MessageAcceptance::Reject
                }
                Ok(record) => {
                    match tokio::task::spawn_blocking(move || store.ingest(&record)).await {
                        Ok(Ok(IngestOutcome::Added | IngestOutcome::Duplicate)) => {
                            MessageAcceptance::Accept
                        }
                        Ok(Ok(outcome)) => {
                            tracing::debug!("gossip from {source}: not forwarded: {outcome:?}");
                            MessageAcceptance::Ignore
                        }
                        Ok(Err(e)) => {
                            tracing::warn!("gossip from {source}: store: {e}");
                            MessageAcceptance::Ignore
                        }
                        Err(e) => {
                            tracing::warn!("gossip from {source}: store task: {e}");
                            MessageAcceptance::Ignore
                        }
                    }
                }
            };
            let _ = client_send(
                &client,
                Command::GossipVerdict {
                    message_id,
                    source,
                    acceptance,
                },
            )
            .await;
        });
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        source,
                        record: Some(record),
                        ..
                    },
            } => self.on_dht_put(source, record),
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::AddProvider {
                        record: Some(provider),
                    },
            } => {
                let Some(archive) = archive_of_key(&provider.key) else {
                    tracing::debug!(
                        "provider record with a non-archive key from {}",
                        provider.provider
                    );
                    return;
                };
                let peer = provider.provider.to_string();
                if let Err(e) = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .store_mut()
                    .add_provider(provider)
                {
                    tracing::debug!("dht provider store: {e}");
                }
                let store = self.store.clone();
                self.tasks.spawn_blocking(move || {
                    if let Err(e) = store.add_provider(&archive, &peer) {
                        tracing::warn!("store provider {archive}: {e}");
                    }
                });
            }
            kad::Event::OutboundQueryProgressed {
                id,
                result,
                stats,
                step,
            } => match result {
                QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders {
                    providers, ..
                })) => {
                    let done = match self.pending_providers.get_mut(&id) {
                        Some(query) => {
                            query.found.extend(providers);
                            !query.found.is_empty()
                        }
                        None => false,
                    };
                    if done || step.last {
                        self.finish_providers(id);
                    }
                }
                QueryResult::GetProviders(other) => {
                    if let Err(e) = other {
                        tracing::debug!("get providers: {e}");
                    }
                    self.finish_providers(id);
                }
                QueryResult::PutRecord(result) => {
                    if let Err(e) = &result {
                        tracing::debug!("dht put: {e}");
                    }
                    if let Some(reply) = self.pending_puts.remove(&id) {
                        let _ = reply.send(Ok(stats.num_successes() as usize));
                    }
                }
                QueryResult::StartProviding(result) => {
                    // The provider record is stored locally either way and republished
                    // periodically, so a failed spread is logged, not fatal.
                    if let Err(e) = result {
                        tracing::debug!("dht provide: {e}");
                    }
                    if let Some(reply) = self.pending_provides.remove(&id) {
                        let _ = reply.send(Ok(()));
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn finish_providers(&mut self, id: QueryId) {
        if let Some(query) = self.pending_providers.remove(&id) {
            if let Some(mut running) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                running.finish();
            }
            let me = *self.swarm.local_peer_id();
            let found = query.found.into_iter().filter(|p| *p != me).collect();
            let _ = query.reply.send(found);
        }
    }

    /// A peer asked us to store a DHT record: it must be a valid record under its own key.
    fn on_dht_put(&mut self, source: PeerId, kad_record: kad::Record) {
        let record = match check_dht_record(&kad_record.key, kad_record.value.clone()) {
            Ok(record) => record,
            Err(reason) => {
                tracing::debug!("dht put from {source}: {reason}");
                self.penalize(source);
                return;
            }
        };
        if let Err(e) = self.swarm.behaviour_mut().kad.store_mut().put(kad_record) {
            tracing::debug!("dht store: {e}");
        }
        let store = self.store.clone();
        self.tasks.spawn_blocking(move || {
            if let Err(e) = store.ingest(&record) {
                tracing::warn!("dht record: store: {e}");
            }
        });
    }

    fn on_rr_event(&mut self, event: request_response::Event<Request, Response>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    let store = self.store.clone();
                    let client = self.client.clone();
                    self.tasks.spawn(async move {
                        let response = match tokio::task::spawn_blocking(move || {
                            super::inbound::answer(&store, request)
                        })
                        .await
                        {
                            Ok(response) => response,
                            Err(e) => Response::Error {
                                message: format!("internal error: {e}"),
                            },
                        };
                        let _ = client_send(&client, Command::Respond { channel, response }).await;
                    });
                    tracing::trace!("request from {peer}");
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some((_, reply)) = self.pending_requests.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some((_, reply)) = self.pending_requests.remove(&request_id) {
                    let _ = reply.send(Err(NetError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!("inbound request from {peer} failed: {error}");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}

async fn client_send(client: &Client, command: Command) -> Result<(), NetError> {
    client.send_internal(command).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_target_is_twice_the_mesh_within_the_connection_limit() {
        assert_eq!(prune_target(100, 12), 24);
        assert_eq!(prune_target(20, 12), 18);
        assert_eq!(prune_target(2, 12), 2);
        assert_eq!(prune_target(100, 2), 8);
    }
}
