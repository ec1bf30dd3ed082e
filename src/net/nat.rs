//! NAT traversal decisions, without sockets: what AutoNAT's verdict means for this node
//! (reachability, Kademlia mode), which relays to reserve a slot on, which connections are
//! relayed and when a relayed duplicate of a direct connection may close. The event loop
//! feeds events in and carries the decisions out; the relay server's limits live here too.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{autonat, kad, relay, Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

/// The protocol a relay v2 server advertises (only once AutoNAT confirmed an external
/// address: libp2p's relay server hides it before).
pub(crate) const HOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/hop";
/// Relays a node behind NAT keeps a reservation on (more only add keep-alive traffic).
pub(crate) const WANTED_RESERVATIONS: usize = 2;
/// A reservation request unanswered this long may be retried (on another relay too).
pub(crate) const RESERVATION_RETRY: Duration = Duration::from_secs(30);

/// What AutoNAT concluded about this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    /// Not probed yet (or AutoNAT is off, e.g. on loopback-only test networks).
    #[default]
    Unknown,
    /// Peers could dial back an address of ours.
    Public,
    /// Dial-backs failed: behind NAT or a firewall.
    Private,
}

impl Reachability {
    pub fn of(status: &autonat::NatStatus) -> Self {
        match status {
            autonat::NatStatus::Public(_) => Self::Public,
            autonat::NatStatus::Private => Self::Private,
            autonat::NatStatus::Unknown => Self::Unknown,
        }
    }

    /// Kademlia answers queries only when others can reach it: behind NAT it must not
    /// advertise itself as a server (peers would add an undialable node to their tables).
    pub fn kad_mode(self) -> kad::Mode {
        match self {
            Self::Private => kad::Mode::Client,
            Self::Public | Self::Unknown => kad::Mode::Server,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Public => "public",
            Self::Private => "private",
        }
    }
}

/// Bounds of the circuit relay v2 server (`[relay]` in config.toml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayLimits {
    pub max_reservations: usize,
    pub max_reservations_per_peer: usize,
    pub reservation_duration: Duration,
    pub max_circuits: usize,
    pub max_circuits_per_peer: usize,
    pub max_circuit_duration: Duration,
    pub max_circuit_bytes: u64,
}

impl RelayLimits {
    /// libp2p's server configuration with these bounds (its rate limiters kept).
    pub fn server_config(&self) -> relay::Config {
        relay::Config {
            max_reservations: self.max_reservations,
            max_reservations_per_peer: self.max_reservations_per_peer,
            reservation_duration: self.reservation_duration,
            max_circuits: self.max_circuits,
            max_circuits_per_peer: self.max_circuits_per_peer,
            max_circuit_duration: self.max_circuit_duration,
            max_circuit_bytes: self.max_circuit_bytes,
            ..relay::Config::default()
        }
    }
}

/// True for an address that goes through a relay (`…/p2p-circuit…`).
pub(crate) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// The address to listen on for a reservation on `relay` reached at `addr`.
pub(crate) fn circuit_listen_addr(addr: &Multiaddr, relay: PeerId) -> Multiaddr {
    let mut base: Multiaddr = addr
        .iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect();
    base.push(Protocol::P2p(relay));
    base.push(Protocol::P2pCircuit);
    base
}

/// The relay peer of a circuit address (`…/p2p/<relay>/p2p-circuit…`).
pub(crate) fn relay_of(addr: &Multiaddr) -> Option<PeerId> {
    let mut last = None;
    for p in addr.iter() {
        match p {
            Protocol::P2p(peer) => last = Some(peer),
            Protocol::P2pCircuit => return last,
            _ => {}
        }
    }
    None
}

/// NAT state of the node: reachability, relay candidates and reservations, and the kind
/// (direct or relayed) of every open connection.
#[derive(Debug, Default)]
pub(crate) struct Nat {
    pub reachability: Reachability,
    /// Connected peers that serve as relays, with the direct address we dialed them on.
    candidates: HashMap<PeerId, Multiaddr>,
    /// The direct address of our latest outgoing connection to each peer.
    dialed: HashMap<PeerId, Multiaddr>,
    /// Reservation requests in flight: relay → when asked.
    asked: HashMap<PeerId, Instant>,
    /// Accepted reservations: relay → our circuit address through it (once known).
    reservations: HashMap<PeerId, Option<Multiaddr>>,
    /// Open connections per peer, `true` for relayed ones.
    connections: HashMap<PeerId, HashMap<ConnectionId, bool>>,
    /// Peers whose last connection, now closed, was relayed (a relay's limits may have
    /// ended it): a failed request to them says so.
    closed_relayed: HashSet<PeerId>,
}

impl Nat {
    /// AutoNAT changed its verdict; returns the Kademlia mode to switch to.
    pub fn status_changed(&mut self, status: &autonat::NatStatus) -> kad::Mode {
        self.reachability = Reachability::of(status);
        self.reachability.kad_mode()
    }

    /// A connection opened; `dialed` is its address when we dialed it.
    pub fn opened(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        dialed: Option<&Multiaddr>,
        relayed: bool,
    ) {
        if !relayed {
            self.closed_relayed.remove(&peer);
        }
        if let Some(addr) = dialed.filter(|a| !relayed && !is_relayed(a)) {
            self.dialed.insert(peer, addr.clone());
        }
        self.connections
            .entry(peer)
            .or_default()
            .insert(connection, relayed);
    }

    pub fn closed(&mut self, peer: &PeerId, connection: ConnectionId) {
        if let Some(open) = self.connections.get_mut(peer) {
            let relayed = open.remove(&connection).unwrap_or(false);
            if open.is_empty() {
                if relayed {
                    self.closed_relayed.insert(*peer);
                } else {
                    self.closed_relayed.remove(peer);
                }
                self.connections.remove(peer);
                self.candidates.remove(peer);
                self.dialed.remove(peer);
                self.asked.remove(peer);
            }
        }
    }

    /// "direct" when any connection to `peer` is direct, "relayed" when all are relayed.
    pub fn link(&self, peer: &PeerId) -> Option<&'static str> {
        let open = self.connections.get(peer)?;
        if open.is_empty() {
            None
        } else if open.values().any(|relayed| !relayed) {
            Some("direct")
        } else {
            Some("relayed")
        }
    }

    /// Why a request to `peer` may have failed when only a relay connected us: relays
    /// bound each circuit's bytes and duration, so large packs need a direct connection.
    pub fn failure_hint(&self, peer: &PeerId) -> Option<String> {
        let relayed_now = self.link(peer) == Some("relayed");
        (relayed_now || self.closed_relayed.contains(peer)).then(|| {
            format!(
                "the only connection to {peer} was relayed, and relays limit each circuit's bytes and duration; larger packs need a direct connection, which hole punching could not open through these NATs"
            )
        })
    }

    /// Identify told us what `peer` speaks. A relay is a candidate when we reached it
    /// directly (we dialed it, not through a relay): others can then reach it too.
    pub fn identified(&mut self, peer: PeerId, speaks_hop: bool) {
        match self.dialed.get(&peer).filter(|_| speaks_hop) {
            Some(addr) => {
                self.candidates.insert(peer, addr.clone());
            }
            None => {
                self.candidates.remove(&peer);
            }
        }
    }

    /// Relays to ask for a reservation now (marked as asked): only behind NAT, up to
    /// [`WANTED_RESERVATIONS`] held or in flight, unanswered requests retried after
    /// [`RESERVATION_RETRY`]. Sorted by peer id so the choice is reproducible.
    pub fn relays_to_reserve(&mut self, now: Instant) -> Vec<(PeerId, Multiaddr)> {
        if self.reachability != Reachability::Private {
            return Vec::new();
        }
        self.asked
            .retain(|_, at| now.saturating_duration_since(*at) < RESERVATION_RETRY);
        let busy = self.reservations.len() + self.asked.len();
        let mut free: Vec<(PeerId, Multiaddr)> = self
            .candidates
            .iter()
            .filter(|(peer, _)| {
                !self.reservations.contains_key(*peer) && !self.asked.contains_key(*peer)
            })
            .map(|(peer, addr)| (*peer, addr.clone()))
            .collect();
        free.sort_by_key(|(peer, _)| peer.to_bytes());
        free.truncate(WANTED_RESERVATIONS.saturating_sub(busy));
        for (peer, _) in &free {
            self.asked.insert(*peer, now);
        }
        free
    }

    pub fn reserved(&mut self, relay: PeerId) {
        self.asked.remove(&relay);
        self.reservations.entry(relay).or_insert(None);
    }

    /// We listen on `addr` through a relay: the reservation's address, to advertise.
    pub fn circuit_listening(&mut self, addr: &Multiaddr) {
        if let Some(relay) = relay_of(addr) {
            self.asked.remove(&relay);
            self.reservations.insert(relay, Some(addr.clone()));
        }
    }

    /// A circuit listener closed (reservation refused, expired or its relay gone).
    pub fn circuit_closed(&mut self, addrs: &[Multiaddr]) {
        for relay in addrs.iter().filter_map(relay_of) {
            self.reservations.remove(&relay);
        }
    }

    /// A reservation attempt on `relay` failed before any address was bound.
    pub fn reservation_failed(&mut self, relay: &PeerId) {
        self.reservations.remove(relay);
    }

    /// Our circuit addresses (one per accepted reservation whose address is known).
    pub fn reservations(&self) -> Vec<String> {
        let mut addrs: Vec<String> = self
            .reservations
            .values()
            .flatten()
            .map(|a| a.to_string())
            .collect();
        addrs.sort();
        addrs
    }

    /// Relayed connections to close because a direct one to the same peer exists (after
    /// DCUtR): transfers then use the direct path. Peers with requests in flight keep
    /// theirs until the requests are answered, so nothing is cut mid-transfer.
    pub fn redundant_relayed(&self, busy: &HashSet<PeerId>) -> Vec<(PeerId, ConnectionId)> {
        let mut out = Vec::new();
        for (peer, open) in &self.connections {
            if busy.contains(peer) || !open.values().any(|relayed| !relayed) {
                continue;
            }
            out.extend(
                open.iter()
                    .filter(|(_, relayed)| **relayed)
                    .map(|(id, _)| (*peer, *id)),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_switches_kad_to_client_and_public_back_to_server() {
        let mut nat = Nat::default();
        assert_eq!(nat.reachability, Reachability::Unknown);
        assert_eq!(
            nat.status_changed(&autonat::NatStatus::Private),
            kad::Mode::Client
        );
        assert_eq!(nat.reachability.as_str(), "private");
        let public = autonat::NatStatus::Public(addr("/ip4/198.18.0.1/tcp/4001"));
        assert_eq!(nat.status_changed(&public), kad::Mode::Server);
        assert_eq!(nat.reachability, Reachability::Public);
    }

    #[test]
    fn reserves_on_directly_dialed_relays_only_when_private() {
        let now = Instant::now();
        let mut nat = Nat::default();
        let relays: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        let dialed = addr("/ip4/198.18.0.1/tcp/4001");
        for (i, relay) in relays.iter().enumerate() {
            nat.opened(*relay, ConnectionId::new_unchecked(i), Some(&dialed), false);
            nat.identified(*relay, true);
        }
        let (plain, inbound) = (PeerId::random(), PeerId::random());
        nat.opened(plain, ConnectionId::new_unchecked(10), Some(&dialed), false);
        nat.identified(plain, false);
        nat.opened(inbound, ConnectionId::new_unchecked(11), None, false);
        nat.identified(inbound, true);
        assert!(nat.relays_to_reserve(now).is_empty(), "unknown: no relays");

        nat.status_changed(&autonat::NatStatus::Private);
        let first = nat.relays_to_reserve(now);
        assert_eq!(first.len(), WANTED_RESERVATIONS);
        assert!(first.iter().all(|(p, _)| relays.contains(p)));
        assert!(
            nat.relays_to_reserve(now).is_empty(),
            "asked, not answered yet"
        );

        // One is accepted; the other never answers and is retried later.
        nat.reserved(first[0].0);
        let later = now + RESERVATION_RETRY;
        let retry = nat.relays_to_reserve(later);
        assert_eq!(retry.len(), 1);
        assert_ne!(retry[0].0, first[0].0);
    }

    #[test]
    fn circuit_addresses_are_the_reservations_shown() {
        let relay = PeerId::random();
        let mut nat = Nat::default();
        let listen = circuit_listen_addr(
            &addr(&format!("/ip4/198.18.0.1/tcp/4001/p2p/{relay}")),
            relay,
        );
        assert_eq!(
            listen.to_string(),
            format!("/ip4/198.18.0.1/tcp/4001/p2p/{relay}/p2p-circuit")
        );
        assert!(is_relayed(&listen));
        assert_eq!(relay_of(&listen), Some(relay));
        nat.reserved(relay);
        assert!(nat.reservations().is_empty(), "no address bound yet");
        let bound = listen.clone().with(Protocol::P2p(PeerId::random()));
        nat.circuit_listening(&bound);
        assert_eq!(nat.reservations(), vec![bound.to_string()]);
        nat.circuit_closed(&[bound]);
        assert!(nat.reservations().is_empty());
    }

    #[test]
    fn relayed_duplicates_close_once_direct_and_idle() {
        let mut nat = Nat::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let (relayed, direct) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        nat.opened(a, relayed, None, true);
        nat.opened(b, ConnectionId::new_unchecked(3), None, true);
        assert_eq!(nat.link(&a), Some("relayed"));
        assert!(nat.redundant_relayed(&HashSet::new()).is_empty());
        nat.opened(a, direct, None, false);
        assert_eq!(nat.link(&a), Some("direct"));
        assert!(
            nat.redundant_relayed(&HashSet::from([a])).is_empty(),
            "busy"
        );
        assert_eq!(nat.redundant_relayed(&HashSet::new()), vec![(a, relayed)]);
        nat.closed(&a, relayed);
        nat.closed(&a, direct);
        assert_eq!(nat.link(&a), None);
        assert_eq!(nat.failure_hint(&a), None, "the last connection was direct");
    }

    #[test]
    fn failures_over_relays_say_why() {
        let mut nat = Nat::default();
        let peer = PeerId::random();
        assert_eq!(nat.failure_hint(&peer), None);
        nat.opened(peer, ConnectionId::new_unchecked(1), None, true);
        let hint = nat.failure_hint(&peer).unwrap();
        assert!(hint.contains("relays limit each circuit"), "{hint}");
        nat.closed(&peer, ConnectionId::new_unchecked(1));
        assert!(
            nat.failure_hint(&peer).is_some(),
            "closed by the relay's limits"
        );
        nat.opened(peer, ConnectionId::new_unchecked(2), None, false);
        assert_eq!(nat.failure_hint(&peer), None);
    }
}
