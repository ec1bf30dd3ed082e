//! Per-peer penalties for invalid input (bad records, oversize data). Past a threshold a
//! peer is banned: disconnected and refused on reconnect for the node's lifetime.

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
    }
}
