//! Per-peer penalties for invalid input (bad records, oversize data). Past a threshold a
//! peer is banned: disconnected and refused on reconnect. Bans (and operator blocks) are
//! persisted by the event loop in the store and loaded back at start.

use std::collections::{HashMap, HashSet};

use libp2p::PeerId;

/// Invalid items a peer may send before it is banned.
pub const BAN_THRESHOLD: u32 = 5;

#[derive(Debug, Default)]
pub struct Penalties {
    counts: HashMap<PeerId, u32>,
    banned: HashSet<PeerId>,
}

impl Penalties {
    /// Counts one offence; true when this offence bans the peer (disconnect it now).
    pub fn penalize(&mut self, peer: PeerId) -> bool {
        let count = self.counts.entry(peer).or_default();
        *count += 1;
        *count >= BAN_THRESHOLD && self.banned.insert(peer)
    }

    /// Bans `peer` outright (a stored ban loaded at start, or an operator block); true
    /// when it was not banned before.
    pub fn ban(&mut self, peer: PeerId) -> bool {
        self.banned.insert(peer)
    }

    /// Lifts a ban and forgets past offences; true when the peer was banned.
    pub fn unban(&mut self, peer: &PeerId) -> bool {
        self.counts.remove(peer);
        self.banned.remove(peer)
    }

    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.banned.contains(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_fires_once_at_threshold() {
        let mut penalties = Penalties::default();
        let peer = PeerId::random();
        for _ in 1..BAN_THRESHOLD {
            assert!(!penalties.penalize(peer));
        }
        assert!(penalties.penalize(peer));
        assert!(penalties.is_banned(&peer));
        assert!(!penalties.penalize(peer), "already banned");
        assert!(!penalties.is_banned(&PeerId::random()));
        assert!(penalties.unban(&peer));
        assert!(!penalties.is_banned(&peer));
        assert!(
            !penalties.penalize(peer),
            "offences were forgotten with the ban"
        );
        let other = PeerId::random();
        assert!(penalties.ban(other) && !penalties.ban(other));
        assert!(penalties.is_banned(&other));
    }
}
