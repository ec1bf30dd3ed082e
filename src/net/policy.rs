//! The event loop's decisions, without sockets: what to do when a connection opens or
//! closes, which connections to prune, which peers to sync with, how to judge a gossip
//! message, when a provider lookup is done, how long providers live and which DHT
//! record a storing node keeps under a shared key. Inputs (events, `now`, the RNG) come in,
//! decisions go out; the event loop carries them out on the swarm.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::gossipsub::MessageAcceptance;
use libp2p::{Multiaddr, PeerId};
use rand::seq::SliceRandom;
use rand::Rng;

use super::discovery::Bootstrap;
use super::peers::Penalties;
use super::ratelimit::Limiter;
use super::reputation::PeerEvent;
use super::{NetError, PeerInfo};
use crate::package::{Record, RecordBody};
use crate::store::IngestOutcome;

/// How long a provider record lives in the DHT (kad's provider record TTL), and how long
/// the store counts a provider as live after it was last confirmed.
pub const PROVIDER_TTL: Duration = Duration::from_secs(24 * 3600);
/// How often kad re-publishes this node's provider records while it runs: a third of
/// [`PROVIDER_TTL`], so a record outlives two failed re-publications.
pub const REPROVIDE_INTERVAL: Duration = Duration::from_secs(8 * 3600);
/// How often the store forgets providers not confirmed within [`PROVIDER_TTL`].
pub const PROVIDER_UPKEEP: Duration = Duration::from_secs(3600);
/// Pause between two archives provided at start, so a node holding many spreads the
/// DHT work instead of starting hundreds of queries at once.
pub const PROVIDE_SPACING: Duration = Duration::from_millis(25);

/// The oldest confirmation time (ms since the epoch) of a provider still counted as live
/// at `now_ms`.
pub fn live_since(now_ms: u64) -> u64 {
    now_ms.saturating_sub(PROVIDER_TTL.as_millis() as u64)
}

/// Whether a storing node replaces the DHT record it `held` under a key with the one it
/// is `offered` there (both already verified under that key). A shared name key keeps
/// its first publisher, as the store keeps a name's first owner: another publisher's
/// record never displaces it, whatever version it claims; the same publisher's record
/// replaces it when its version is the same (a refresh) or newer. Records under a key
/// of their own (yanks, rotations) are always replaced.
pub fn replaces_held_record(held: &Record, offered: &Record) -> bool {
    match (held.body(), offered.body()) {
        (RecordBody::Version(held), RecordBody::Version(offered)) => {
            held.publisher == offered.publisher && offered.version >= held.version
        }
        _ => true,
    }
}

/// Peers a periodic anti-entropy round syncs with (on-connect syncs are extra): enough to
/// converge quickly, few enough that the cost does not grow with the network.
pub(crate) const SYNC_FANOUT: usize = 3;

/// Connections kept when pruning: twice the gossip mesh degree `mesh_n` (at least 8),
/// within 90 % of the connection limit. The mesh itself may grow to mesh_n_high before
/// gossipsub trims it; mesh peers are never pruned, so a full mesh leaves no idle peer.
pub(crate) fn prune_target(max_connections: u32, mesh_n: usize) -> usize {
    let max = max_connections as usize;
    let ceiling = max - max / 10;
    (2 * mesh_n).max(8).min(ceiling)
}

/// Connection slots kept free for newcomers: a tenth of the limit (none under 10). When
/// fewer are free, idle peers are pruned at once, young ones too, so a node whose slots
/// an attacker fills with idle connections still lets an honest peer in (eclipse
/// resistance).
pub(crate) fn free_slots(max_connections: u32) -> usize {
    max_connections as usize / 10
}

/// What the loop knows about a connected peer.
#[derive(Debug, Default)]
pub(crate) struct PeerState {
    /// When the first current connection opened (pruning spares young connections).
    pub connected_at: Option<Instant>,
    pub agent: Option<String>,
    pub listen_addrs: Vec<Multiaddr>,
    pub remote_addr: Option<Multiaddr>,
    pub rtt: Option<Duration>,
    /// Keys of provider records the peer announced without addresses before identify
    /// told us its own ([`Policy::provider_addrs`]); filled in when it does.
    pub unaddressed: Vec<libp2p::kad::RecordKey>,
}

/// Provider records a peer may leave waiting for its addresses (a node provides its
/// archives at start, spaced out, so a handful arrive per connection).
const MAX_UNADDRESSED: usize = 256;

/// What to do with a connection that just opened.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OnConnect {
    /// The peer is banned: close it, and fail a dial that asked for it.
    Refuse,
    /// Keep it; `sync` on the peer's first connection.
    Accept { sync: bool },
}

/// The error a dial to a banned peer is answered with.
pub(crate) fn banned_dial(addr: Multiaddr, peer: &PeerId) -> NetError {
    NetError::Dial {
        addr,
        reason: format!(
            "peer {peer} is banned (invalid records, or blocked by the operator); lift it with `ggen-p2p peers unblock {peer}`"
        ),
    }
}

/// Why a dial to a peer outside the configured `allow` list is refused.
pub(crate) fn not_allowed(peer: &PeerId) -> String {
    format!("peer {peer} is not on this node's allow list; add its id to `allow` in config.toml")
}

/// Per-peer state behind the decisions: bootstrap schedule, penalties (reputation and
/// bans), rate limits, what is known of each connected peer and which peers are being
/// synced with.
pub(crate) struct Policy {
    pub bootstrap: Bootstrap,
    pub penalties: Penalties,
    /// Token buckets of the requests each peer sends us.
    pub limiter: Limiter,
    pub peers: HashMap<PeerId, PeerState>,
    syncing: HashSet<PeerId>,
    /// When non-empty, the only peers allowed to connect.
    allow: HashSet<PeerId>,
    limits: Limits,
}

/// The numbers behind pruning and bootstrap redials.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Connections kept by the periodic prune ([`prune_target`]).
    pub prune_target: usize,
    /// Connections younger than this are only pruned when slots run out.
    pub prune_grace: Duration,
    /// The connection limit; [`free_slots`] of it are kept free.
    pub max_connections: u32,
    /// Below this many connections the node is lonely and redials its bootstrap peers;
    /// at or above it, a lost bootstrap peer is only remembered (gossip mesh_n_low).
    pub min_peers: usize,
}

impl Policy {
    pub fn new(bootstrap: Bootstrap, limits: Limits) -> Self {
        Self {
            bootstrap,
            penalties: Penalties::default(),
            limiter: Limiter::new(Default::default()),
            peers: HashMap::new(),
            syncing: HashSet::new(),
            allow: HashSet::new(),
            limits,
        }
    }

    /// Bootstrap peers to dial now. Only a lonely node (fewer than `min_peers`
    /// connections) redials: one with other peers keeps its bootstrap peers known (their
    /// backoff runs on) but lets them prune it, so well-known bootstrap nodes do not
    /// drift towards a full mesh.
    pub fn bootstrap_due(&mut self, connected: usize, now: Instant) -> Vec<(PeerId, Multiaddr)> {
        if connected >= self.limits.min_peers {
            return Vec::new();
        }
        self.bootstrap.due(now)
    }

    /// Whether the free slots ran out: more than the limit minus [`free_slots`] are open.
    pub fn slots_short(&self, connected: usize) -> bool {
        let max = self.limits.max_connections as usize;
        connected > max - free_slots(self.limits.max_connections)
    }

    /// Restricts connections to `allow` (no restriction when it is empty).
    pub fn set_allow(&mut self, allow: impl IntoIterator<Item = PeerId>) {
        self.allow = allow.into_iter().collect();
    }

    /// False when an allow list is set and `peer` is not on it, or `peer` is banned.
    pub fn admits(&self, peer: &PeerId) -> bool {
        (self.allow.is_empty() || self.allow.contains(peer)) && !self.penalties.is_banned(peer)
    }

    /// A connection to `peer` opened (`first`: no other connection to it was open).
    /// Banned peers are refused; others are recorded, bootstrap peers marked connected,
    /// and a first connection starts a sync unless one runs already.
    pub fn connected(
        &mut self,
        peer: PeerId,
        remote: Multiaddr,
        first: bool,
        now: Instant,
    ) -> OnConnect {
        if !self.admits(&peer) {
            return OnConnect::Refuse;
        }
        self.bootstrap.on_connected(&peer);
        let state = self.peers.entry(peer).or_default();
        state.remote_addr = Some(remote);
        state.connected_at.get_or_insert(now);
        OnConnect::Accept {
            sync: first && self.start_sync(peer),
        }
    }

    /// The last connection to `peer` closed.
    pub fn disconnected(&mut self, peer: &PeerId, now: Instant) {
        self.peers.remove(peer);
        self.limiter.forget(peer);
        self.bootstrap.on_lost(peer, now);
    }

    /// An outgoing connection to `peer` failed and no other is open.
    pub fn dial_failed(&mut self, peer: &PeerId, now: Instant) {
        self.bootstrap.on_lost(peer, now);
    }

    /// The user dropped `peer`: forget it (no bootstrap redial, no state).
    pub fn forget(&mut self, peer: &PeerId) {
        self.bootstrap.forget(peer);
        self.peers.remove(peer);
    }

    /// Counts an invalid item; true when it bans the peer (close it and drop its
    /// addresses).
    #[cfg(test)]
    pub fn penalize(&mut self, peer: PeerId, now_ms: u64) -> bool {
        self.judge(peer, PeerEvent::BadRecord, now_ms)
    }

    /// Applies `event` to `peer`'s reputation; true when it bans the peer (close it and
    /// drop its addresses).
    pub fn judge(&mut self, peer: PeerId, event: PeerEvent, now_ms: u64) -> bool {
        let banned = self.penalties.judge(peer, event, now_ms);
        if banned {
            self.bootstrap.forget(&peer);
        }
        banned
    }

    /// Identify told us who `peer` is; returns the keys of provider records it left
    /// without addresses, to fill in with these.
    pub fn identified(
        &mut self,
        peer: PeerId,
        agent: String,
        listen_addrs: Vec<Multiaddr>,
    ) -> Vec<libp2p::kad::RecordKey> {
        let state = self.peers.entry(peer).or_default();
        state.agent = Some(agent);
        state.listen_addrs = listen_addrs;
        std::mem::take(&mut state.unaddressed)
    }

    /// The addresses a provider record `peer` announced under `key` is kept with. A
    /// provider sends only its confirmed external addresses, none before AutoNAT has
    /// confirmed one (or with AutoNAT off); kad then answers for it only while it sits in
    /// the answering node's routing table, so lookups miss providers whose k-bucket is
    /// full. Here the record gets the addresses identify reported instead, or, before
    /// identify has spoken, waits for them (see [`Policy::identified`]).
    pub fn provider_addrs(
        &mut self,
        peer: PeerId,
        key: &libp2p::kad::RecordKey,
        announced: Vec<Multiaddr>,
    ) -> Vec<Multiaddr> {
        if !announced.is_empty() {
            return announced;
        }
        let Some(state) = self.peers.get_mut(&peer) else {
            return Vec::new();
        };
        if state.listen_addrs.is_empty() && state.agent.is_none() {
            if state.unaddressed.len() < MAX_UNADDRESSED && !state.unaddressed.contains(key) {
                state.unaddressed.push(key.clone());
            }
            return Vec::new();
        }
        state.listen_addrs.clone()
    }

    /// A ping to a connected `peer` took `rtt`.
    pub fn measured(&mut self, peer: &PeerId, rtt: Duration) {
        if let Some(state) = self.peers.get_mut(peer) {
            state.rtt = Some(rtt);
        }
    }

    /// The `peers` report of the `connected` peers, scores as of `now_ms`.
    pub fn peer_infos<'a>(
        &self,
        connected: impl Iterator<Item = &'a PeerId>,
        now_ms: u64,
    ) -> Vec<PeerInfo> {
        connected
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
                    connection: None,
                    score: round2(self.penalties.reputation.score(peer, now_ms)),
                    gossip_score: None,
                }
            })
            .collect()
    }

    /// Whether an mDNS-discovered peer is worth dialling.
    pub fn should_dial(&self, peer: &PeerId, connected: bool) -> bool {
        !connected && self.admits(peer)
    }

    /// Marks a sync with `peer` as running; false when one already is.
    pub fn start_sync(&mut self, peer: PeerId) -> bool {
        self.syncing.insert(peer)
    }

    pub fn sync_done(&mut self, peer: &PeerId) {
        self.syncing.remove(peer);
    }

    /// The periodic anti-entropy round: up to [`SYNC_FANOUT`] random connected peers not
    /// already syncing, each marked as syncing.
    pub fn sync_targets(&mut self, connected: &[PeerId], rng: &mut impl Rng) -> Vec<PeerId> {
        let idle: Vec<PeerId> = connected
            .iter()
            .filter(|p| !self.syncing.contains(p))
            .copied()
            .collect();
        let chosen: Vec<PeerId> = idle.choose_multiple(rng, SYNC_FANOUT).copied().collect();
        self.syncing.extend(chosen.iter().copied());
        chosen
    }

    /// Connections to close. Gossipsub keeps every connection alive (rust-libp2p #5190)
    /// and every DHT query opens more, so: (1) above the prune target, idle peers older
    /// than the grace period go, the most recently connected first (long-lived
    /// connections cannot be faked cheaply); (2) when fewer than [`free_slots`] slots are
    /// free, more idle peers go at once, young ones too (oldest first: the newest arrival
    /// keeps its grace to join the mesh), so a newcomer always finds a slot. Idle means
    /// not in the gossip `mesh` and not `busy` (a request in flight either way, see
    /// [`Pending::busy_peers`](super::pending::Pending::busy_peers)): pruning never cuts
    /// a connection under a request. Bootstrap peers are pruned like any other (the
    /// node redials them only when lonely, [`Policy::bootstrap_due`]); Kademlia keeps
    /// every address, so pruned peers can be dialled again.
    pub fn prune_victims(
        &self,
        connected: &[PeerId],
        mesh: &HashSet<PeerId>,
        busy: &HashSet<PeerId>,
        now: Instant,
    ) -> Vec<PeerId> {
        let limits = &self.limits;
        let max = limits.max_connections as usize;
        let keep_free = max - free_slots(limits.max_connections);
        let excess = connected.len().saturating_sub(limits.prune_target);
        let short = connected.len().saturating_sub(keep_free);
        if excess == 0 && short == 0 {
            return Vec::new();
        }
        let since = |p: &PeerId| self.peers.get(p).and_then(|s| s.connected_at);
        let (mut old, mut young): (Vec<PeerId>, Vec<PeerId>) = connected
            .iter()
            .filter(|p| !mesh.contains(p) && !busy.contains(p))
            .partition(|p| since(p).is_none_or(|at| now.duration_since(at) >= limits.prune_grace));
        // Stable sorts: peers connected at the same instant keep the caller's order.
        old.sort_by_key(|p| std::cmp::Reverse(since(p)));
        young.sort_by_key(since);
        let mut victims: Vec<PeerId> = old.iter().take(excess.max(short)).copied().collect();
        if victims.len() < short {
            victims.extend(young.iter().take(short - victims.len()));
        }
        victims
    }
}

/// A score as shown to people (two decimals).
pub(crate) fn round2(score: f64) -> f64 {
    (score * 100.0).round() / 100.0
}

/// What checking a gossip message found.
#[derive(Debug)]
pub(crate) enum GossipCheck {
    /// Oversize, unparsable or badly signed.
    Invalid,
    Ingested(IngestOutcome),
    /// The store failed; says nothing about the message.
    StoreFailed,
}

/// Forward what was stored (or already known), and evidence of equivocation (so every
/// node learns both records); drop what the store refused without blaming the sender;
/// reject invalid messages.
pub(crate) fn gossip_acceptance(check: &GossipCheck) -> MessageAcceptance {
    match check {
        GossipCheck::Invalid => MessageAcceptance::Reject,
        GossipCheck::Ingested(
            IngestOutcome::Added | IngestOutcome::Duplicate | IngestOutcome::Equivocation { .. },
        ) => MessageAcceptance::Accept,
        GossipCheck::Ingested(_) | GossipCheck::StoreFailed => MessageAcceptance::Ignore,
    }
}

/// Whether the peer that relayed a message with this verdict is penalised.
pub(crate) fn penalises_sender(acceptance: &MessageAcceptance) -> bool {
    matches!(acceptance, MessageAcceptance::Reject)
}

/// One step of a provider lookup added `providers` to `found`: the lookup is done once
/// any provider is known or the query has no more steps.
pub(crate) fn lookup_done(
    found: &mut HashSet<PeerId>,
    providers: impl IntoIterator<Item = PeerId>,
    last: bool,
) -> bool {
    found.extend(providers);
    !found.is_empty() || last
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn a_name_key_keeps_its_first_publisher_and_its_newest_version() {
        use crate::package::PublisherKey;
        use crate::store::test_util::version;
        let (owner, squatter) = (PublisherKey::generate(), PublisherKey::generate());
        let v1 = version(&owner, "web-kit", "1.0.0", 1);
        let v2 = version(&owner, "web-kit", "2.0.0", 2);
        let other = version(&squatter, "web-kit", "9.0.0", 3);
        assert!(replaces_held_record(&v1, &v2));
        assert!(
            replaces_held_record(&v2, &v2),
            "a refresh of the same record"
        );
        assert!(!replaces_held_record(&v2, &v1), "an older version");
        assert!(!replaces_held_record(&v1, &other), "another publisher");
        let yank = crate::store::test_util::yank(&owner, "web-kit", "1.0.0");
        assert!(replaces_held_record(&yank, &yank));
    }

    #[test]
    fn providers_live_for_the_ttl_and_are_republished_well_before() {
        let ttl = PROVIDER_TTL.as_millis() as u64;
        assert_eq!(live_since(ttl + 5), 5);
        assert_eq!(live_since(3), 0);
        assert!(REPROVIDE_INTERVAL * 2 < PROVIDER_TTL);
    }

    const GRACE: Duration = Duration::from_secs(10);

    fn addr(port: u16) -> Multiaddr {
        format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
    }

    fn policy(bootstrap: &[Multiaddr], target: usize) -> Policy {
        policy_with(bootstrap, target, 100)
    }

    fn policy_with(bootstrap: &[Multiaddr], target: usize, max: u32) -> Policy {
        let (bootstrap, refused) = Bootstrap::new(bootstrap, Instant::now());
        assert!(refused.is_empty());
        let limits = Limits {
            prune_target: target,
            prune_grace: GRACE,
            max_connections: max,
            min_peers: 4,
        };
        Policy::new(bootstrap, limits)
    }

    fn ban(policy: &mut Policy, peer: PeerId) {
        while !policy.penalize(peer, 0) {}
    }

    #[test]
    fn prune_target_is_twice_the_mesh_within_the_connection_limit() {
        assert_eq!(prune_target(100, 6), 12);
        assert_eq!(prune_target(100, 12), 24);
        assert_eq!(prune_target(20, 12), 18);
        assert_eq!(prune_target(2, 12), 2);
        assert_eq!(prune_target(100, 2), 8);
    }

    #[test]
    fn an_allow_list_admits_only_its_peers_and_bans_still_apply() {
        let now = Instant::now();
        let mut policy = policy(&[], 8);
        let (friend, stranger) = (PeerId::random(), PeerId::random());
        assert!(
            policy.admits(&stranger),
            "no allow list: everyone may connect"
        );
        policy.set_allow([friend]);
        assert_eq!(
            policy.connected(stranger, addr(1), true, now),
            OnConnect::Refuse
        );
        assert!(!policy.should_dial(&stranger, false));
        assert!(matches!(
            policy.connected(friend, addr(2), true, now),
            OnConnect::Accept { .. }
        ));
        policy.penalties.ban(friend);
        assert!(!policy.admits(&friend));
        policy.penalties.unban(&friend);
        assert!(policy.admits(&friend));
        assert!(not_allowed(&stranger).contains("allow list"));
    }

    #[test]
    fn a_banned_peer_is_refused_and_its_dial_answered_with_a_clear_error() {
        let now = Instant::now();
        let mut policy = policy(&[], 8);
        let peer = PeerId::random();
        ban(&mut policy, peer);
        assert_eq!(
            policy.connected(peer, addr(1), true, now),
            OnConnect::Refuse
        );
        assert!(!policy.peers.contains_key(&peer), "nothing recorded");
        assert!(!policy.should_dial(&peer, false));

        // The ledger's dial entry for it is answered with a clear error.
        let (reply, mut rx) = tokio::sync::oneshot::channel();
        super::super::pending::Dial {
            addr: addr(1),
            reply,
        }
        .banned(&peer);
        let err = rx.try_recv().unwrap().unwrap_err().to_string();
        assert!(
            err.contains("banned") && err.contains(&peer.to_string()),
            "{err}"
        );
    }

    #[test]
    fn the_first_connection_syncs_once_and_bootstrap_peers_are_marked_connected() {
        let boot = PeerId::random();
        let boot_addr = addr(2).with(libp2p::multiaddr::Protocol::P2p(boot));
        let mut policy = policy(&[boot_addr], 8);
        let now = Instant::now();
        assert_eq!(policy.bootstrap.due(now).len(), 1);
        assert_eq!(
            policy.connected(boot, addr(2), true, now),
            OnConnect::Accept { sync: true }
        );
        assert_eq!(
            policy.connected(boot, addr(3), false, now + GRACE),
            OnConnect::Accept { sync: false },
            "a second connection does not sync"
        );
        assert_eq!(
            policy.peers[&boot].connected_at,
            Some(now),
            "age counts from the first connection"
        );
        policy.disconnected(&boot, now);
        assert!(!policy.peers.contains_key(&boot));
        assert_eq!(
            policy.connected(boot, addr(2), true, now),
            OnConnect::Accept { sync: false },
            "its first sync is still running"
        );
        policy.sync_done(&boot);
        policy.disconnected(&boot, now);
        assert_eq!(
            policy.connected(boot, addr(2), true, now),
            OnConnect::Accept { sync: true }
        );
        // Connected bootstrap peers are not redialled; lost ones are, after backoff.
        assert!(policy.bootstrap.due(now + GRACE).is_empty());
        policy.disconnected(&boot, now);
        assert_eq!(policy.bootstrap.due(now + GRACE).len(), 1);
    }

    #[test]
    fn prune_spares_mesh_busy_and_young_peers_and_takes_the_excess() {
        let now = Instant::now();
        let boot = PeerId::random();
        let mut policy = policy(&[addr(1).with(libp2p::multiaddr::Protocol::P2p(boot))], 2);
        let old = now - 2 * GRACE;
        let peers: Vec<PeerId> = (0..8).map(|_| PeerId::random()).collect();
        let (mesh, busy, young) = (peers[0], peers[1], peers[2]);
        let connected: Vec<PeerId> = std::iter::once(boot).chain(peers.clone()).collect();
        for peer in &connected {
            let at = if *peer == young { now } else { old };
            policy.connected(*peer, addr(9), true, at);
        }
        let mesh_set = HashSet::from([mesh]);
        let busy_set = HashSet::from([busy]);
        let victims = policy.prune_victims(&connected, &mesh_set, &busy_set, now);
        // 9 connected, target 2: 7 excess, but only the bootstrap peer and peers[3..] (6)
        // may go: a bootstrap peer is pruned like any other.
        let idle: Vec<PeerId> = std::iter::once(boot).chain(peers[3..].to_vec()).collect();
        assert_eq!(victims, idle);

        let small = policy.prune_victims(&idle, &mesh_set, &busy_set, now);
        assert_eq!(
            small,
            idle[..4].to_vec(),
            "exactly the excess over the target"
        );
        assert!(policy
            .prune_victims(&connected[..2], &mesh_set, &busy_set, now)
            .is_empty());
        // Once the grace period is over, the young peer may go too.
        let later = policy.prune_victims(&connected, &mesh_set, &busy_set, now + GRACE);
        assert!(later.contains(&young));
    }

    #[test]
    fn prune_takes_the_most_recent_old_connections_first() {
        let now = Instant::now();
        let mut policy = policy(&[], 2);
        let peers: Vec<PeerId> = (0..4).map(|_| PeerId::random()).collect();
        for (i, peer) in peers.iter().enumerate() {
            let at = now - GRACE * (10 - i as u32);
            policy.connected(*peer, addr(9), true, at);
        }
        let none = HashSet::new();
        let victims = policy.prune_victims(&peers, &none, &none, now);
        assert_eq!(victims, vec![peers[3], peers[2]], "the longest-lived stay");
    }

    #[test]
    fn when_slots_run_short_idle_peers_go_at_once_so_a_newcomer_gets_in() {
        // Limit 20: 2 slots kept free, so at most 18 stay; the prune target is 18 too.
        let now = Instant::now();
        let mut policy = policy_with(&[], 18, 20);
        assert!(!policy.slots_short(18));
        assert!(policy.slots_short(19));
        // An attacker filled 19 slots within the grace period, with idle connections.
        let fillers: Vec<PeerId> = (0..19).map(|_| PeerId::random()).collect();
        for (i, peer) in fillers.iter().enumerate() {
            policy.connected(*peer, addr(9), true, now + Duration::from_millis(i as u64));
        }
        let honest = PeerId::random();
        let at = now + Duration::from_secs(1);
        policy.connected(honest, addr(8), true, at);
        let connected: Vec<PeerId> = fillers.iter().copied().chain([honest]).collect();
        let none = HashSet::new();
        let victims = policy.prune_victims(&connected, &none, &none, at);
        assert_eq!(
            victims,
            fillers[..2].to_vec(),
            "the oldest idle fillers go, young as they are; the newcomer stays"
        );
        // Mesh and busy peers are never cut, even when slots are short.
        let mesh: HashSet<PeerId> = fillers[..10].iter().copied().collect();
        let busy: HashSet<PeerId> = fillers[10..].iter().copied().collect();
        assert_eq!(
            policy.prune_victims(&connected, &mesh, &busy, at),
            vec![honest],
            "only the newcomer is idle"
        );
        assert!(policy
            .prune_victims(
                &connected,
                &mesh,
                &busy.iter().copied().chain([honest]).collect(),
                at
            )
            .is_empty());
    }

    #[test]
    fn small_limits_keep_no_free_slot() {
        assert_eq!(free_slots(2), 0);
        assert_eq!(free_slots(9), 0);
        assert_eq!(free_slots(10), 1);
        assert_eq!(free_slots(100), 10);
        let policy = policy_with(&[], 2, 2);
        assert!(!policy.slots_short(2));
    }

    #[test]
    fn only_a_lonely_node_redials_its_bootstrap_peers() {
        let boot = PeerId::random();
        let mut policy = policy(&[addr(1).with(libp2p::multiaddr::Protocol::P2p(boot))], 8);
        let now = Instant::now();
        assert_eq!(policy.bootstrap_due(0, now).len(), 1, "the first dial");
        policy.connected(boot, addr(1), true, now);
        policy.disconnected(&boot, now);
        let later = now + Duration::from_secs(120);
        assert!(
            policy.bootstrap_due(4, later).is_empty(),
            "pruned by its bootstrap peer but with 4 others: no redial"
        );
        assert!(policy.bootstrap.contains(&boot), "still known");
        assert_eq!(
            policy.bootstrap_due(3, later),
            vec![(boot, addr(1).with(libp2p::multiaddr::Protocol::P2p(boot)))],
            "lonely again: redial"
        );
    }

    proptest::proptest! {
        /// Whatever the mix, pruning never touches a mesh or busy peer, never a young
        /// peer unless slots are short, takes no more than needed, and leaves at most
        /// the target (or every protected peer) when it can.
        #[test]
        fn prune_keeps_its_promises(
            ages in proptest::collection::vec((0u64..30, 0u8..4), 0..60),
            target in 1usize..30,
            max in 1u32..70,
        ) {
            let now = Instant::now() + Duration::from_secs(100);
            let mut policy = policy_with(&[], target, max);
            let (mut connected, mut mesh, mut busy) = (Vec::new(), HashSet::new(), HashSet::new());
            for (age, kind) in &ages {
                let peer = PeerId::random();
                policy.connected(peer, addr(1), true, now - Duration::from_secs(*age));
                connected.push(peer);
                match kind {
                    0 => { mesh.insert(peer); }
                    1 => { busy.insert(peer); }
                    _ => {}
                }
            }
            let victims = policy.prune_victims(&connected, &mesh, &busy, now);
            let short = policy.slots_short(connected.len());
            let unique: HashSet<&PeerId> = victims.iter().collect();
            proptest::prop_assert_eq!(unique.len(), victims.len());
            let keep_free = max as usize - free_slots(max);
            let needed = connected.len().saturating_sub(target.min(keep_free));
            proptest::prop_assert!(victims.len() <= needed);
            let idle = |p: &&PeerId| !mesh.contains(*p) && !busy.contains(*p);
            for v in &victims {
                proptest::prop_assert!(idle(&v));
                let age = now.duration_since(policy.peers[v].connected_at.unwrap());
                proptest::prop_assert!(short || age >= GRACE);
            }
            let idle_old = connected.iter().filter(idle).filter(|p| {
                now.duration_since(policy.peers[*p].connected_at.unwrap()) >= GRACE
            }).count();
            let idle_all = connected.iter().filter(idle).count();
            let wanted = connected.len().saturating_sub(target);
            proptest::prop_assert!(victims.len() >= wanted.min(idle_old));
            if short {
                let wanted = connected.len() - keep_free;
                proptest::prop_assert!(victims.len() >= wanted.min(idle_all));
            }
        }
    }

    #[test]
    fn sync_targets_are_a_few_random_idle_peers() {
        let mut policy = policy(&[], 8);
        let peers: Vec<PeerId> = (0..10).map(|_| PeerId::random()).collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        assert!(policy.start_sync(peers[0]));
        let first = policy.sync_targets(&peers, &mut rng);
        assert_eq!(first.len(), SYNC_FANOUT);
        assert!(!first.contains(&peers[0]), "already syncing");
        let second = policy.sync_targets(&peers, &mut rng);
        assert_eq!(second.len(), SYNC_FANOUT);
        assert!(second.iter().all(|p| !first.contains(p)));
        let mut all: Vec<PeerId> = first.iter().chain(&second).copied().collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 2 * SYNC_FANOUT);
        // Only 3 idle peers left, then none.
        assert_eq!(policy.sync_targets(&peers, &mut rng).len(), 3);
        assert!(policy.sync_targets(&peers, &mut rng).is_empty());
        policy.sync_done(&peers[0]);
        assert_eq!(policy.sync_targets(&peers, &mut rng), vec![peers[0]]);
        assert!(policy.sync_targets(&[], &mut rng).is_empty());
    }

    #[test]
    fn gossip_is_forwarded_ignored_or_rejected_and_only_rejects_penalise() {
        let cases = [
            (GossipCheck::Invalid, MessageAcceptance::Reject, true),
            (
                GossipCheck::Ingested(IngestOutcome::Added),
                MessageAcceptance::Accept,
                false,
            ),
            (
                GossipCheck::Ingested(IngestOutcome::Duplicate),
                MessageAcceptance::Accept,
                false,
            ),
            (
                GossipCheck::Ingested(IngestOutcome::Equivocation {
                    existing: crate::package::Blake3Hash::of(b"x"),
                }),
                MessageAcceptance::Accept,
                false,
            ),
            (
                GossipCheck::Ingested(IngestOutcome::Rejected {
                    reason: "yanked".into(),
                }),
                MessageAcceptance::Ignore,
                false,
            ),
            (GossipCheck::StoreFailed, MessageAcceptance::Ignore, false),
        ];
        for (check, acceptance, penalise) in cases {
            let got = gossip_acceptance(&check);
            assert_eq!(got, acceptance, "{check:?}");
            assert_eq!(penalises_sender(&got), penalise, "{check:?}");
        }
    }

    #[test]
    fn a_banned_peer_is_forgotten_by_bootstrap_once() {
        let peer = PeerId::random();
        let mut policy = policy(&[addr(4).with(libp2p::multiaddr::Protocol::P2p(peer))], 8);
        for _ in 1..super::super::reputation::BAN_THRESHOLD {
            assert!(!policy.penalize(peer, 0));
        }
        assert!(policy.bootstrap.contains(&peer));
        assert!(policy.penalize(peer, 0));
        assert!(!policy.bootstrap.contains(&peer));
        assert!(!policy.penalize(peer, 0), "banned once");
    }

    #[test]
    fn provider_records_without_addresses_get_the_ones_identify_reported() {
        let now = Instant::now();
        let mut policy = policy(&[], 8);
        let (early, late) = (PeerId::random(), PeerId::random());
        let key = libp2p::kad::RecordKey::new(&b"archive");
        let announced = vec![addr(7)];
        assert_eq!(
            policy.provider_addrs(early, &key, announced.clone()),
            announced,
            "announced addresses are kept"
        );
        assert!(
            policy.provider_addrs(early, &key, vec![]).is_empty(),
            "not connected: nothing known"
        );
        policy.connected(early, addr(1), true, now);
        policy.identified(early, "ggen-p2p".into(), vec![addr(2)]);
        assert_eq!(policy.provider_addrs(early, &key, vec![]), vec![addr(2)]);

        // Before identify: the key waits, once, and is handed back when identify comes.
        policy.connected(late, addr(3), true, now);
        assert!(policy.provider_addrs(late, &key, vec![]).is_empty());
        assert!(policy.provider_addrs(late, &key, vec![]).is_empty());
        let waiting = policy.identified(late, "ggen-p2p".into(), vec![addr(4)]);
        assert_eq!(waiting, vec![key.clone()]);
        assert!(policy
            .identified(late, "ggen-p2p".into(), vec![addr(4)])
            .is_empty());
        assert_eq!(policy.provider_addrs(late, &key, vec![]), vec![addr(4)]);
    }

    #[test]
    fn a_lookup_is_done_at_the_first_provider_or_the_last_step() {
        let mut found = HashSet::new();
        assert!(!lookup_done(&mut found, [], false));
        assert!(lookup_done(&mut found, [], true), "no more steps");
        let peer = PeerId::random();
        assert!(lookup_done(&mut found, [peer], false));
        assert_eq!(found, HashSet::from([peer]));
    }
}
