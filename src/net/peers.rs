//! Per-peer penalties: the [`Reputation`] of every peer and the set of banned ones. A
//! peer whose score falls to [`BAN_SCORE`] is banned for [`BAN_DURATION`]; operator blocks
//! last until lifted. Bans and scores are persisted by the event loop in the store and
//! loaded back at start.

use std::collections::HashMap;

use libp2p::PeerId;

use super::reputation::{PeerEvent, Reputation, BAN_DURATION, BAN_SCORE, EXCLUDE_SCORE};

#[derive(Debug, Default)]
pub struct Penalties {
    pub reputation: Reputation,
    /// Banned peers, each with when its ban ends (ms since the epoch; `None`: never).
    banned: HashMap<PeerId, Option<u64>>,
}

impl Penalties {
    /// Counts one invalid item; true when this offence bans the peer (disconnect it now).
    #[cfg(test)]
    pub fn penalize(&mut self, peer: PeerId, now_ms: u64) -> bool {
        self.judge(peer, PeerEvent::BadRecord, now_ms)
    }

    /// Applies `event` to `peer`'s score; true when this bans it (for [`BAN_DURATION`]).
    pub fn judge(&mut self, peer: PeerId, event: PeerEvent, now_ms: u64) -> bool {
        let score = self.reputation.record(peer, event, now_ms);
        if score > BAN_SCORE || self.banned.contains_key(&peer) {
            return false;
        }
        let until = now_ms.saturating_add(BAN_DURATION.as_millis() as u64);
        self.banned.insert(peer, Some(until));
        true
    }

    /// Bans `peer` outright (an operator block); true when it was not banned before.
    pub fn ban(&mut self, peer: PeerId) -> bool {
        self.banned.insert(peer, None).is_none()
    }

    /// Bans `peer` until `expires_ms` (a stored ban loaded at start; `None`: never).
    pub fn ban_until(&mut self, peer: PeerId, expires_ms: Option<u64>) {
        self.banned.insert(peer, expires_ms);
    }

    /// Lifts a ban and forgets past offences; true when the peer was banned.
    pub fn unban(&mut self, peer: &PeerId) -> bool {
        self.reputation.reset(peer);
        self.banned.remove(peer).is_some()
    }

    /// Lifts the bans that ended by `now_ms`. Each such peer starts again on probation,
    /// at [`EXCLUDE_SCORE`]: not chosen as a provider while others remain, and banned
    /// again after a few more offences.
    pub fn expire(&mut self, now_ms: u64) -> Vec<PeerId> {
        let ended: Vec<PeerId> = self
            .banned
            .iter()
            .filter(|(_, until)| until.is_some_and(|t| t <= now_ms))
            .map(|(peer, _)| *peer)
            .collect();
        for peer in &ended {
            self.banned.remove(peer);
            self.reputation.set(*peer, EXCLUDE_SCORE, now_ms);
        }
        ended
    }

    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.banned.contains_key(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::super::reputation::BAN_THRESHOLD;
    use super::*;

    #[test]
    fn ban_fires_once_at_threshold() {
        let mut penalties = Penalties::default();
        let peer = PeerId::random();
        for _ in 1..BAN_THRESHOLD {
            assert!(!penalties.penalize(peer, 0));
        }
        assert!(penalties.penalize(peer, 0));
        assert!(penalties.is_banned(&peer));
        assert!(!penalties.penalize(peer, 0), "already banned");
        assert!(!penalties.is_banned(&PeerId::random()));
        assert!(penalties.unban(&peer));
        assert!(!penalties.is_banned(&peer));
        assert!(
            !penalties.penalize(peer, 0),
            "offences were forgotten with the ban"
        );
        let other = PeerId::random();
        assert!(penalties.ban(other) && !penalties.ban(other));
        assert!(penalties.is_banned(&other));
    }

    #[test]
    fn earned_bans_expire_onto_probation_and_blocks_do_not() {
        let mut penalties = Penalties::default();
        let (offender, blocked) = (PeerId::random(), PeerId::random());
        while !penalties.judge(offender, PeerEvent::BadChunk, 1000) {}
        penalties.ban(blocked);
        let end = 1000 + BAN_DURATION.as_millis() as u64;
        assert!(penalties.expire(end - 1).is_empty());
        assert_eq!(penalties.expire(end), vec![offender]);
        assert!(!penalties.is_banned(&offender) && penalties.is_banned(&blocked));
        assert_eq!(penalties.reputation.score(&offender, end), EXCLUDE_SCORE);
        // On probation: three more offences ban it again.
        assert!(!penalties.penalize(offender, end));
        assert!(!penalties.penalize(offender, end));
        assert!(penalties.penalize(offender, end));
        assert!(penalties.expire(u64::MAX - 1).contains(&offender));
        assert!(penalties.is_banned(&blocked), "a block lasts until lifted");
    }
}
