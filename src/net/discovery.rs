//! Bootstrap peers: which to (re)dial and when. A bootstrap peer that is not connected
//! is redialed with exponential backoff (1 s doubling to 60 s), reset once connected.
//! Pure state; the event loop dials what [`Bootstrap::due`] returns.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Entry {
    addr: Multiaddr,
    connected: bool,
    dialing: bool,
    backoff: Duration,
    next_dial: Instant,
    /// Why the last dial failed, in words (`net::explain`); cleared once connected.
    last_error: Option<String>,
}

/// One bootstrap peer as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BootstrapPeer {
    pub addr: String,
    pub connected: bool,
    /// Why the last dial failed, while it is not connected.
    pub error: Option<String>,
}

/// Reconnect schedule of the configured bootstrap peers.
#[derive(Debug, Default)]
pub struct Bootstrap {
    peers: HashMap<PeerId, Entry>,
}

/// The peer id in an address's trailing `/p2p/<id>`, if any.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

impl Bootstrap {
    /// Tracks `addrs`; each must end in `/p2p/<peer id>` (others are returned as refused).
    pub fn new(addrs: &[Multiaddr], now: Instant) -> (Self, Vec<Multiaddr>) {
        let mut peers = HashMap::new();
        let mut refused = Vec::new();
        for addr in addrs {
            match peer_of(addr) {
                Some(peer) => {
                    peers.insert(
                        peer,
                        Entry {
                            addr: addr.clone(),
                            connected: false,
                            dialing: false,
                            backoff: FIRST_BACKOFF,
                            next_dial: now,
                            last_error: None,
                        },
                    );
                }
                None => refused.push(addr.clone()),
            }
        }
        (Self { peers }, refused)
    }

    #[cfg(test)]
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.peers.contains_key(peer)
    }

    pub fn addrs(&self) -> impl Iterator<Item = (&PeerId, &Multiaddr)> {
        self.peers.iter().map(|(p, e)| (p, &e.addr))
    }

    /// Peers to dial now; each is marked as dialing until connected or failed.
    pub fn due(&mut self, now: Instant) -> Vec<(PeerId, Multiaddr)> {
        let mut out = Vec::new();
        for (peer, entry) in &mut self.peers {
            if !entry.connected && !entry.dialing && entry.next_dial <= now {
                entry.dialing = true;
                out.push((*peer, entry.addr.clone()));
            }
        }
        out
    }

    pub fn on_connected(&mut self, peer: &PeerId) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.connected = true;
            entry.dialing = false;
            entry.backoff = FIRST_BACKOFF;
            entry.last_error = None;
        }
    }

    /// The last connection closed or a dial failed: wait out the backoff, then double it.
    pub fn on_lost(&mut self, peer: &PeerId, now: Instant) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.connected = false;
            entry.dialing = false;
            entry.next_dial = now + entry.backoff;
            entry.backoff = (entry.backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// A dial to `peer` failed for `reason`; true when it is a bootstrap peer and the
    /// reason is new (so it is worth telling the operator once, not at every redial).
    pub fn on_dial_error(&mut self, peer: &PeerId, reason: String) -> bool {
        match self.peers.get_mut(peer) {
            Some(entry) if entry.last_error.as_deref() != Some(reason.as_str()) => {
                entry.last_error = Some(reason);
                true
            }
            _ => false,
        }
    }

    /// Every bootstrap peer, sorted by address.
    pub fn report(&self) -> Vec<BootstrapPeer> {
        let mut peers: Vec<BootstrapPeer> = self
            .peers
            .values()
            .map(|e| BootstrapPeer {
                addr: e.addr.to_string(),
                connected: e.connected,
                error: if e.connected {
                    None
                } else {
                    e.last_error.clone()
                },
            })
            .collect();
        peers.sort_by(|a, b| a.addr.cmp(&b.addr));
        peers
    }

    /// Stops redialing `peer` (an explicit disconnect).
    pub fn forget(&mut self, peer: &PeerId) {
        self.peers.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> (PeerId, Multiaddr) {
        let peer = PeerId::random();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}")
            .parse()
            .unwrap();
        (peer, addr)
    }

    #[test]
    fn addresses_without_peer_id_are_refused() {
        let plain: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let (boot, refused) = Bootstrap::new(std::slice::from_ref(&plain), Instant::now());
        assert_eq!(refused, vec![plain]);
        assert_eq!(boot.addrs().count(), 0);
    }

    #[test]
    fn backoff_doubles_until_connected_then_resets() {
        let now = Instant::now();
        let (peer, a) = addr();
        let (mut boot, _) = Bootstrap::new(std::slice::from_ref(&a), now);
        assert_eq!(boot.due(now), vec![(peer, a.clone())]);
        assert!(
            boot.due(now).is_empty(),
            "no second dial while one is pending"
        );
        boot.on_lost(&peer, now);
        assert!(boot.due(now).is_empty());
        assert_eq!(boot.due(now + Duration::from_secs(1)).len(), 1);
        boot.on_lost(&peer, now);
        assert!(boot.due(now + Duration::from_secs(1)).is_empty());
        assert_eq!(boot.due(now + Duration::from_secs(2)).len(), 1);
        boot.on_connected(&peer);
        assert!(boot.due(now + Duration::from_secs(100)).is_empty());
        boot.on_lost(&peer, now);
        assert_eq!(boot.due(now + Duration::from_secs(1)).len(), 1);
    }

    #[test]
    fn a_dial_error_is_reported_once_until_connected() {
        let now = Instant::now();
        let (peer, a) = addr();
        let (mut boot, _) = Bootstrap::new(std::slice::from_ref(&a), now);
        assert!(boot.on_dial_error(&peer, "refused".into()));
        assert!(!boot.on_dial_error(&peer, "refused".into()), "told once");
        assert!(
            !boot.on_dial_error(&PeerId::random(), "x".into()),
            "not bootstrap"
        );
        assert_eq!(boot.report()[0].error.as_deref(), Some("refused"));
        boot.on_connected(&peer);
        assert_eq!(boot.report()[0].error, None);
        assert!(boot.report()[0].connected);
    }

    #[test]
    fn backoff_is_capped() {
        let now = Instant::now();
        let (peer, a) = addr();
        let (mut boot, _) = Bootstrap::new(&[a], now);
        for _ in 0..20 {
            boot.on_lost(&peer, now);
        }
        assert_eq!(boot.due(now + MAX_BACKOFF).len(), 1);
    }
}
