//! The one task that owns the swarm. It only translates: [`Command`]s into swarm calls,
//! swarm events into replies. The decisions are in [`policy`](super::policy), the callers
//! waiting on the swarm in [`Pending`] (answered on every outcome, drained on shutdown).
//! Store work runs in spawned tasks that report back through the command channel, so
//! SQLite never blocks the loop.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::kad;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

use super::behaviour::{bind, build_swarm, records_topic, Behaviour};
use super::client::Client;
use super::command::Command;
use super::discovery::{peer_of, Bootstrap};
use super::nat::{circuit_listen_addr, Nat};
use super::pending::{Dial, Lookup, Outbound, Pending, RecordGet};
use super::policy::{self, Policy};
use super::protocol::provider_key;
use super::ratelimit::Limiter;
use super::reputation::{PeerEvent, BAN_DURATION, EXCLUDE_SCORE};
use super::{NetConfig, NetError, NetStatus};
use crate::store::Store;
use crate::tasks::Tasks;

mod events;

const COMMAND_QUEUE: usize = 1024;
/// Bootstrap redials and ledger expiry are checked this often.
const TICK: Duration = Duration::from_secs(1);
/// Changed reputation scores are saved, and ended bans lifted, every this many ticks.
const REPUTATION_TICKS: u32 = 10;

struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    client: Client,
    store: Store,
    /// The registry's shutdown root: the loop ends when it is cancelled, and every task
    /// the loop spawns is tracked by it.
    tasks: Tasks,
    prune_interval: Duration,
    sync_interval: Duration,
    /// Off: syncs the policy starts end at once (see `Config::anti_entropy`).
    anti_entropy: bool,
    /// Off: never ask relays for a reservation (see `Config::relay_client`).
    relay_client: bool,
    policy: Policy,
    pending: Pending,
    /// Reachability, relay reservations and connection kinds (decisions in `nat.rs`).
    nat: Nat,
    /// What the node counts (`/metrics`), shared with the client and the registry.
    metrics: std::sync::Arc<super::Metrics>,
    /// Relay circuit listeners: listener → relay, to forget the reservation if it fails.
    relay_listeners: std::collections::HashMap<libp2p::core::transport::ListenerId, PeerId>,
    /// Peers with a chunk stream open either way (busy: never pruned mid-transfer).
    active: super::transfer::stream::ActiveStreams,
    /// Test hook: a hostile node's answers (see `net/hostile.rs`).
    #[cfg(feature = "test-support")]
    hostile: Option<super::hostile::Hostile>,
    /// Response channels a hostile test node holds forever (an answer that never ends).
    #[cfg(feature = "test-support")]
    held: Vec<libp2p::request_response::ResponseChannel<super::protocol::Response>>,
}

pub(crate) async fn spawn(
    config: NetConfig,
    store: Store,
    tasks: Tasks,
) -> Result<Client, NetError> {
    // Test-support builds only: a daemon made hostile by its environment (the swarm lab's
    // bad node, `net/hostile.rs`); a normal build never reads the variable.
    #[cfg(feature = "test-support")]
    let mut config = config;
    #[cfg(feature = "test-support")]
    if config.hostile.is_none() {
        config.hostile = super::hostile::from_env().map_err(NetError::Config)?;
    }
    let mut swarm = build_swarm(&config)?;
    bind(&mut swarm, &config.listen).await?;
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
    let mut streams = swarm.behaviour().stream.new_control();
    let incoming = streams
        .accept(super::transfer::stream::protocol())
        .map_err(|e| NetError::Config(format!("chunk stream protocol: {e}")))?;
    let active = super::transfer::stream::ActiveStreams::default();
    let client = Client::new(
        *swarm.local_peer_id(),
        sender,
        store.clone(),
        (config.query_timeout, config.connection_timeout),
        config.metrics.clone(),
        streams,
        active.clone(),
    )
    .pacing(super::transfer::pace::Pacer::new(config.upload_limit));
    #[cfg(feature = "test-support")]
    let hook = config.hostile.clone();
    #[cfg(not(feature = "test-support"))]
    let hook = None;
    tasks.spawn(super::transfer::stream::serve(
        incoming,
        store.clone(),
        client.clone(),
        active.clone(),
        tasks.clone(),
        hook,
    ));
    let limits = policy::Limits {
        prune_target: policy::prune_target(config.max_connections, config.gossip_mesh.0),
        prune_grace: config.prune_grace,
        max_connections: config.max_connections,
        min_peers: config.gossip_mesh.1.max(1),
    };
    let mut policy = Policy::new(bootstrap, limits);
    policy.set_allow(config.allow.iter().copied());
    policy.limiter = Limiter::new(config.rate_limits.clone());
    let now_ms = crate::store::now_ms();
    let (lifted, bans, scores) = store
        .call(move |store| {
            let lifted = store.lift_expired_bans(now_ms)?;
            Ok::<_, crate::store::StoreError>((lifted, store.banned_peers()?, store.peer_scores()?))
        })
        .await
        .map_err(|e| NetError::Config(format!("loading banned peers and scores: {e}")))?;
    for stored in scores {
        match stored.peer.parse::<PeerId>() {
            Ok(peer) => (policy.penalties.reputation).load(peer, stored.score, stored.updated_at),
            Err(e) => tracing::warn!(
                "stored score of {:?} ignored: not a peer id ({e})",
                stored.peer
            ),
        }
    }
    for peer in lifted.iter().filter_map(|p| p.parse::<PeerId>().ok()) {
        // A ban that ended while the node was down: on probation, as in `Penalties::expire`.
        policy.penalties.reputation.set(peer, EXCLUDE_SCORE, now_ms);
    }
    for ban in bans {
        match ban.peer.parse::<PeerId>() {
            Ok(peer) => {
                policy.penalties.ban_until(peer, ban.expires_at);
                swarm.behaviour_mut().blocked.block_peer(peer);
            }
            Err(e) => tracing::warn!("stored ban of {:?} ignored: not a peer id ({e})", ban.peer),
        }
    }
    // Config `block`: banned for as long as it is configured (not stored).
    for peer in &config.block {
        policy.penalties.ban_until(*peer, None);
        swarm.behaviour_mut().blocked.block_peer(*peer);
    }
    let event_loop = EventLoop {
        swarm,
        commands,
        client: client.clone(),
        store,
        tasks: tasks.clone(),
        prune_interval: config.prune_interval.max(Duration::from_millis(100)),
        sync_interval: config.sync_interval,
        anti_entropy: config.anti_entropy,
        relay_client: config.relay_client,
        policy,
        pending: Pending::new(config.connection_timeout, config.query_timeout),
        nat: Nat::default(),
        metrics: config.metrics.clone(),
        relay_listeners: Default::default(),
        active,
        #[cfg(feature = "test-support")]
        hostile: config.hostile.clone(),
        #[cfg(feature = "test-support")]
        held: Vec::new(),
    };
    tasks.spawn(event_loop.run());
    Ok(client)
}

impl EventLoop {
    async fn run(mut self) {
        let tasks = self.tasks.clone();
        let mut tick = tokio::time::interval(TICK);
        let mut sync_tick =
            tokio::time::interval(self.sync_interval.max(Duration::from_millis(100)));
        sync_tick.tick().await; // the first sync happens on connect
        let mut prune_tick = tokio::time::interval(self.prune_interval);
        let mut ticks: u32 = 0;
        loop {
            tokio::select! {
                _ = tasks.cancelled() => break,
                event = self.swarm.select_next_some() => {
                    self.metrics.record_swarm(&event);
                    self.on_swarm_event(event);
                }
                Some(command) = self.commands.recv() => {
                    #[cfg(feature = "test-support")]
                    if matches!(command, Command::Halt) {
                        tracing::warn!("network event loop halted (test hook)");
                        return;
                    }
                    self.on_command(command);
                }
                _ = tick.tick() => {
                    self.dial_bootstrap();
                    self.expire();
                    self.reserve_relays();
                    self.close_redundant_relayed();
                    ticks = ticks.wrapping_add(1);
                    if ticks.is_multiple_of(REPUTATION_TICKS) {
                        self.lift_ended_bans();
                        let save = self.save_scores();
                        self.tasks.spawn(save);
                    }
                }
                _ = sync_tick.tick() => {
                    let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                    for peer in self.policy.sync_targets(&peers, &mut rand::thread_rng()) {
                        self.spawn_sync(peer);
                    }
                }
                _ = prune_tick.tick() => self.prune(),
            }
        }
        self.pending.drain();
        self.save_scores().await;
        tracing::debug!("network event loop stopped");
    }

    fn dial_bootstrap(&mut self) {
        let connected = self.swarm.connected_peers().count();
        for (peer, addr) in self.policy.bootstrap_due(connected, Instant::now()) {
            if self.swarm.is_connected(&peer) {
                self.policy.bootstrap.on_connected(&peer);
                continue;
            }
            let opts = DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build();
            if let Err(e) = self.swarm.dial(opts) {
                tracing::debug!("bootstrap dial {addr}: {e}");
                self.policy.bootstrap.on_lost(&peer, Instant::now());
            }
        }
    }

    /// Behind NAT: listen through relays among our peers (a reservation each).
    fn reserve_relays(&mut self) {
        if !self.relay_client {
            return;
        }
        for (relay, addr) in self.nat.relays_to_reserve(Instant::now()) {
            let listen = circuit_listen_addr(&addr, relay);
            match self.swarm.listen_on(listen.clone()) {
                Ok(id) => {
                    tracing::info!("asking relay {relay} for a reservation ({listen})");
                    self.relay_listeners.insert(id, relay);
                }
                Err(e) => {
                    tracing::debug!("relay listen {listen}: {e}");
                    self.nat.reservation_failed(&relay);
                }
            }
        }
    }

    /// Once DCUtR opened a direct connection, the relayed one closes (when idle), so
    /// transfers take the direct path.
    fn close_redundant_relayed(&mut self) {
        let busy = self.busy_peers();
        for (peer, connection) in self.nat.redundant_relayed(&busy) {
            tracing::debug!("closing the relayed connection to {peer}: a direct one is open");
            self.swarm.close_connection(connection);
        }
    }

    /// Answers callers whose work outlived its deadline; expired lookups stop querying.
    fn expire(&mut self) {
        for id in self.pending.expire(Instant::now()) {
            if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                query.finish();
            }
        }
    }

    /// Peers with a request or a chunk stream in flight either way.
    fn busy_peers(&self) -> HashSet<PeerId> {
        let mut busy = self.pending.busy_peers();
        busy.extend(self.active.peers());
        busy
    }

    /// Keeps connections bounded (see [`Policy::prune_victims`]): every prune interval,
    /// and at once when a new connection leaves too few free slots.
    fn prune(&mut self) {
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        let gossip = &self.swarm.behaviour().gossipsub;
        let mesh: HashSet<PeerId> = gossip.all_mesh_peers().copied().collect();
        let busy = self.busy_peers();
        let victims = self
            .policy
            .prune_victims(&connected, &mesh, &busy, Instant::now());
        for peer in victims {
            tracing::debug!("pruning connection to {peer}");
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    /// Runs a sync the policy has marked as started; it reports back when done.
    fn spawn_sync(&mut self, peer: PeerId) {
        if !self.anti_entropy {
            self.policy.sync_done(&peer);
            return;
        }
        let client = self.client.clone();
        self.tasks.spawn(async move {
            match client.sync_peer(peer).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!("sync with {peer}: {n} records gained"),
                Err(e) => tracing::debug!("sync with {peer}: {e}"),
            }
            let _ = client.send_internal(Command::SyncDone { peer }).await;
        });
    }

    fn penalize(&mut self, peer: PeerId) {
        self.judge(peer, PeerEvent::BadRecord);
    }

    /// Applies `event` to `peer`'s reputation (gossipsub's application score follows
    /// it); a peer whose score falls to the ban threshold is shut out, and the ban stored
    /// with its reason and end.
    pub(super) fn judge(&mut self, peer: PeerId, event: PeerEvent) {
        let now_ms = crate::store::now_ms();
        let banned = self.policy.judge(peer, event, now_ms);
        let score = self.policy.penalties.reputation.score(&peer, now_ms);
        (self.swarm.behaviour_mut().gossipsub).set_application_score(&peer, score);
        if !banned {
            return;
        }
        let reason = format!("reputation fell to {score:.0} (last: {})", event.describe());
        tracing::info!("banning {peer}: {reason}");
        self.shut_out(peer);
        let store = self.store.clone();
        let until = now_ms.saturating_add(BAN_DURATION.as_millis() as u64);
        self.tasks.spawn(async move {
            let stored = store
                .call(move |s| s.ban_peer_until(&peer.to_string(), &reason, now_ms, Some(until)))
                .await;
            if let Err(e) = stored {
                tracing::warn!("storing the ban of {peer}: {e}");
            }
        });
    }

    /// Lifts bans that ended (in the swarm and the store); their peers are on probation.
    fn lift_ended_bans(&mut self) {
        let now_ms = crate::store::now_ms();
        let ended = self.policy.penalties.expire(now_ms);
        if ended.is_empty() {
            return;
        }
        for peer in &ended {
            tracing::info!("the ban of {peer} ended; it is on probation");
            self.swarm.behaviour_mut().blocked.unblock_peer(*peer);
        }
        let store = self.store.clone();
        self.tasks.spawn(async move {
            if let Err(e) = store.call(move |s| s.lift_expired_bans(now_ms)).await {
                tracing::warn!("lifting ended bans: {e}");
            }
        });
    }

    /// Saves the scores changed since the last save (the returned future does the I/O).
    fn save_scores(&mut self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let now_ms = crate::store::now_ms();
        let (save, forget) = self.policy.penalties.reputation.take_changes(now_ms);
        let store = self.store.clone();
        async move {
            if save.is_empty() && forget.is_empty() {
                return;
            }
            let save: Vec<(String, f64)> =
                save.into_iter().map(|(p, s)| (p.to_string(), s)).collect();
            let forget: Vec<String> = forget.iter().map(|p| p.to_string()).collect();
            let saved = store
                .call(move |s| s.save_peer_scores(&save, &forget, now_ms))
                .await;
            if let Err(e) = saved {
                tracing::warn!("saving peer scores: {e}");
            }
        }
    }

    /// Blocks a banned peer in the swarm: disconnects it and drops its DHT entry.
    fn shut_out(&mut self, peer: PeerId) {
        self.swarm.behaviour_mut().blocked.block_peer(peer);
        let _ = self.swarm.disconnect_peer_id(peer);
        self.swarm.behaviour_mut().kad.remove_peer(&peer);
    }

    fn on_command(&mut self, command: Command) {
        let now = Instant::now();
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
            Command::PutRecord { key, record, reply } => {
                let Some(reply) = self.pending.puts.admit(reply) else {
                    return;
                };
                let kad_record = kad::Record::new(key, record.into_bytes());
                let kad = &mut self.swarm.behaviour_mut().kad;
                match kad.put_record(kad_record, kad::Quorum::One) {
                    Ok(id) => self.pending.puts.insert(id, reply, now),
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dht(format!("put record: {e}"))));
                    }
                }
            }
            Command::StartProviding { archive, reply } => {
                let Some(reply) = self.pending.provides.admit(reply) else {
                    return;
                };
                let kad = &mut self.swarm.behaviour_mut().kad;
                match kad.start_providing(provider_key(&archive)) {
                    Ok(id) => self.pending.provides.insert(id, reply, now),
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dht(format!("provide {archive}: {e}"))));
                    }
                }
            }
            Command::StopProviding { archive, reply } => {
                (self.swarm.behaviour_mut().kad).stop_providing(&provider_key(&archive));
                let _ = reply.send(());
            }
            Command::GetRecord { key, reply } => {
                if let Some(get) = self.pending.gets.admit(RecordGet::new(reply)) {
                    let id = self.swarm.behaviour_mut().kad.get_record(key);
                    self.pending.gets.insert(id, get, now);
                }
            }
            Command::GetProviders { archive, reply } => {
                if let Some(lookup) = self.pending.lookups.admit(Lookup::new(reply)) {
                    let key = provider_key(&archive);
                    let id = self.swarm.behaviour_mut().kad.get_providers(key);
                    self.pending.lookups.insert(id, lookup, now);
                }
            }
            Command::Request {
                peer,
                request,
                reply,
            } => {
                if let Some(outbound) = self.pending.requests.admit(Outbound { peer, reply }) {
                    let id = self.swarm.behaviour_mut().rr.send_request(&peer, request);
                    self.pending.requests.insert(id, outbound, now);
                }
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Command::Peers { reply } => {
                let now_ms = crate::store::now_ms();
                let mut infos = self.policy.peer_infos(self.swarm.connected_peers(), now_ms);
                for info in &mut infos {
                    if let Ok(peer) = info.peer_id.parse::<PeerId>() {
                        info.connection = self.nat.link(&peer).map(String::from);
                        info.gossip_score = (self.swarm.behaviour().gossipsub)
                            .peer_score(&peer)
                            .map(policy::round2);
                    }
                }
                let _ = reply.send(infos);
            }
            Command::Dial { addr, reply } => self.dial(addr, reply),
            Command::Disconnect { peer, reply } => {
                self.policy.forget(&peer);
                self.swarm.behaviour_mut().kad.remove_peer(&peer);
                let _ = self.swarm.disconnect_peer_id(peer);
                let _ = reply.send(());
            }
            Command::Block { peer, reply } => {
                self.policy.penalties.ban(peer);
                self.policy.forget(&peer);
                self.shut_out(peer);
                let _ = reply.send(());
            }
            Command::Unblock { peer, reply } => {
                self.policy.penalties.unban(&peer);
                self.swarm.behaviour_mut().blocked.unblock_peer(peer);
                let _ = reply.send(());
            }
            Command::Penalize { peer } => self.penalize(peer),
            Command::Judge { peer, event } => self.judge(peer, event),
            Command::AdmitChunks { peer, bytes, reply } => {
                let checked = self
                    .policy
                    .limiter
                    .check_chunks(peer, bytes, Instant::now());
                if let Err(wait) = checked {
                    tracing::debug!("{peer}: range of {bytes} bytes refused: retry in {wait:?}");
                    self.judge(peer, PeerEvent::RateLimited);
                }
                let _ = reply.send(checked);
            }
            Command::LinkHint { peer, reply } => {
                let _ = reply.send(self.nat.failure_hint(&peer));
            }
            Command::Scores { peers, reply } => {
                let now_ms = crate::store::now_ms();
                let reputation = &self.policy.penalties.reputation;
                let _ = reply.send(peers.iter().map(|p| reputation.score(p, now_ms)).collect());
            }
            Command::GossipVerdict {
                message_id,
                source,
                acceptance,
            } => {
                let penalise = policy::penalises_sender(&acceptance);
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &source, acceptance);
                if penalise {
                    self.penalize(source);
                }
            }
            Command::Respond { channel, response } => {
                let rr = &mut self.swarm.behaviour_mut().rr;
                if rr.send_response(channel, response).is_err() {
                    tracing::debug!("response dropped: the requester went away");
                }
            }
            Command::SyncDone { peer } => self.policy.sync_done(&peer),
            #[cfg(feature = "test-support")]
            Command::Halt => {}
        }
    }

    fn dial(&mut self, addr: Multiaddr, reply: oneshot::Sender<Result<PeerId, NetError>>) {
        let opts = match peer_of(&addr) {
            Some(peer) if self.swarm.is_connected(&peer) => {
                let _ = reply.send(Ok(peer));
                return;
            }
            Some(peer) if self.policy.penalties.is_banned(&peer) => {
                let _ = reply.send(Err(policy::banned_dial(addr, &peer)));
                return;
            }
            Some(peer) if !self.policy.admits(&peer) => {
                let reason = policy::not_allowed(&peer);
                let _ = reply.send(Err(NetError::Dial { addr, reason }));
                return;
            }
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(vec![addr.clone()])
                .condition(PeerCondition::Always)
                .build(),
            None => DialOpts::unknown_peer_id().address(addr.clone()).build(),
        };
        let Some(dial) = self.pending.dials.admit(Dial { addr, reply }) else {
            return;
        };
        let connection = opts.connection_id();
        match self.swarm.dial(opts) {
            Ok(()) => self.pending.dials.insert(connection, dial, Instant::now()),
            Err(e) => dial.unreachable(&e),
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
            reachability: self.nat.reachability,
            relay_reservations: self.nat.reservations(),
            relay_server: behaviour.relay_server.is_enabled()
                && self.swarm.external_addresses().next().is_some(),
            bootstrap: self.policy.bootstrap.report(),
            swarms: Vec::new(), // filled in by the client, which holds them
        }
    }
}
