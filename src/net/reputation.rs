//! Per-peer reputation, without sockets or clocks: what each thing a peer did is worth
//! (bad chunks and records cost most, stalls and failed requests a little, verified bytes
//! and answered requests earn a little), a score bounded to [`MIN_SCORE`, `MAX_SCORE`]
//! that decays toward zero with a half-life, provider ranking by score, and the ban
//! threshold. Time comes in as ms since the Unix epoch (scores are persisted by the
//! event loop); the ban set itself is in `peers.rs`.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use libp2p::PeerId;

/// The lowest score a peer can have.
pub const MIN_SCORE: f64 = -100.0;
/// The highest: small, so credit earned by serving well cannot buy many offences.
pub const MAX_SCORE: f64 = 25.0;
/// At or below this a peer is banned (persisted, for [`BAN_DURATION`]).
pub const BAN_SCORE: f64 = -50.0;
/// Invalid records or chunks a neutral peer may send before it is banned.
pub const BAN_THRESHOLD: u32 = 5;
/// At or below this a provider is left out of downloads while others remain.
pub const EXCLUDE_SCORE: f64 = -25.0;
/// Scores halve toward zero over this time.
pub const HALF_LIFE: Duration = Duration::from_secs(3600);
/// How long a ban earned by a low score lasts (operator blocks last until lifted).
pub const BAN_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Scores closer to zero than this are forgotten (in memory and on disk).
const NEGLIGIBLE: f64 = 0.5;
/// Verified bytes worth one point, and the most points one transfer earns.
const BYTES_PER_POINT: u64 = 1 << 20;
const MAX_TRANSFER_POINTS: f64 = 5.0;

/// Something a peer did that changes its score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerEvent {
    /// Sent chunk bytes (or a chunk list) that do not match the signed record.
    BadChunk,
    /// Sent a record that is oversize, unparsable or badly signed (gossip, sync, search,
    /// DHT).
    BadRecord,
    /// Held a chunk request past its deadline.
    Stall,
    /// A request to it failed: timed out, connection lost, oversize or garbled answer.
    Timeout,
    /// Served this many verified bytes of an archive.
    GoodTransfer { bytes: u64 },
    /// Answered one of our requests.
    Served,
    /// Sent requests faster than this node's rate limits allow.
    RateLimited,
}

impl PeerEvent {
    /// What the peer did, in a few words (for logs and ban reasons).
    pub fn describe(self) -> &'static str {
        match self {
            PeerEvent::BadChunk => "sent bad chunk data",
            PeerEvent::BadRecord => "sent invalid records",
            PeerEvent::Stall => "stalled a transfer",
            PeerEvent::Timeout => "failed requests",
            PeerEvent::GoodTransfer { .. } => "served verified bytes",
            PeerEvent::Served => "answered a request",
            PeerEvent::RateLimited => "flooded this node with requests",
        }
    }

    /// The score change: [`BAN_SCORE`] is five bad records or chunks from a neutral peer
    /// (see [`BAN_THRESHOLD`]), fifty rate-limited requests, a dozen stalls.
    pub fn weight(self) -> f64 {
        match self {
            PeerEvent::BadChunk | PeerEvent::BadRecord => BAN_SCORE / BAN_THRESHOLD as f64,
            PeerEvent::Stall => -4.0,
            PeerEvent::Timeout => -2.0,
            PeerEvent::RateLimited => -1.0,
            // Tiny: a peer answering a fresh sync's 257 listings earns about 5 points.
            PeerEvent::Served => 0.02,
            PeerEvent::GoodTransfer { bytes } => {
                ((bytes / BYTES_PER_POINT) as f64 + 0.5).min(MAX_TRANSFER_POINTS)
            }
        }
    }
}

/// `score` after `elapsed_ms` of exponential decay toward zero.
pub fn decayed(score: f64, elapsed_ms: u64) -> f64 {
    let half_lives = elapsed_ms as f64 / HALF_LIFE.as_millis() as f64;
    score * 0.5f64.powf(half_lives)
}

/// A score as of a moment.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Score {
    value: f64,
    at_ms: u64,
}

impl Score {
    fn at(&self, now_ms: u64) -> f64 {
        decayed(self.value, now_ms.saturating_sub(self.at_ms))
    }
}

/// Every known peer's score, and which changed since they were last saved.
#[derive(Debug, Default)]
pub struct Reputation {
    scores: HashMap<PeerId, Score>,
    dirty: HashSet<PeerId>,
}

impl Reputation {
    /// Applies `event` at `now_ms`; returns the new score.
    pub fn record(&mut self, peer: PeerId, event: PeerEvent, now_ms: u64) -> f64 {
        let value = (self.score(&peer, now_ms) + event.weight()).clamp(MIN_SCORE, MAX_SCORE);
        self.set(peer, value, now_ms);
        value
    }

    /// The score of `peer` at `now_ms` (0 for a peer never seen).
    pub fn score(&self, peer: &PeerId, now_ms: u64) -> f64 {
        self.scores.get(peer).map_or(0.0, |s| s.at(now_ms))
    }

    /// Sets a score (a stored one loaded at start, or a reset); marks it for saving
    /// unless it is being loaded.
    pub fn set(&mut self, peer: PeerId, value: f64, now_ms: u64) {
        let value = value.clamp(MIN_SCORE, MAX_SCORE);
        self.scores.insert(
            peer,
            Score {
                value,
                at_ms: now_ms,
            },
        );
        self.dirty.insert(peer);
    }

    /// A stored score, as saved at `at_ms`.
    pub fn load(&mut self, peer: PeerId, value: f64, at_ms: u64) {
        let value = value.clamp(MIN_SCORE, MAX_SCORE);
        self.scores.insert(peer, Score { value, at_ms });
    }

    /// Forgets `peer`'s score (saved as a removal).
    pub fn reset(&mut self, peer: &PeerId) {
        if self.scores.remove(peer).is_some() {
            self.dirty.insert(*peer);
        }
    }

    /// Scores changed since the last call, as of `now_ms`: those to save, and those
    /// decayed to nothing (forgotten here, to delete on disk).
    pub fn take_changes(&mut self, now_ms: u64) -> (Vec<(PeerId, f64)>, Vec<PeerId>) {
        let (mut save, mut forget) = (Vec::new(), Vec::new());
        for peer in std::mem::take(&mut self.dirty) {
            match self.scores.get(&peer).map(|s| s.at(now_ms)) {
                Some(value) if value.abs() >= NEGLIGIBLE => save.push((peer, value)),
                _ => forget.push(peer),
            }
        }
        self.scores.retain(|_, s| s.at(now_ms).abs() >= NEGLIGIBLE);
        (save, forget)
    }
}

/// Providers best first by score; those at or below [`EXCLUDE_SCORE`] are left out
/// unless no other remains (then they come last, worst last). Ties keep their order.
pub fn rank_providers<P>(scored: Vec<(P, f64)>) -> Vec<P> {
    let mut scored = scored;
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    if scored.iter().any(|(_, s)| *s > EXCLUDE_SCORE) {
        scored.retain(|(_, s)| *s > EXCLUDE_SCORE);
    }
    scored.into_iter().map(|(p, _)| p).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const HOUR: u64 = 3600 * 1000;

    #[test]
    fn offences_cost_more_than_service_earns() {
        let mut rep = Reputation::default();
        let peer = PeerId::random();
        assert_eq!(rep.score(&peer, 0), 0.0);
        for _ in 0..4 {
            rep.record(peer, PeerEvent::BadRecord, 0);
        }
        assert!(rep.score(&peer, 0) > BAN_SCORE);
        assert!(rep.record(peer, PeerEvent::BadChunk, 0) <= BAN_SCORE);
        // Served a lot: capped, so five offences still ban it.
        let good = PeerId::random();
        for _ in 0..1000 {
            rep.record(good, PeerEvent::GoodTransfer { bytes: 1 << 30 }, 0);
        }
        assert_eq!(rep.score(&good, 0), MAX_SCORE);
        assert_eq!(PeerEvent::GoodTransfer { bytes: 1 << 30 }.weight(), 5.0);
        assert_eq!(PeerEvent::GoodTransfer { bytes: 1000 }.weight(), 0.5);
        for _ in 0..8 {
            rep.record(good, PeerEvent::BadChunk, 0);
        }
        assert!(rep.score(&good, 0) <= BAN_SCORE);
    }

    #[test]
    fn scores_halve_every_half_life_and_negligible_ones_are_forgotten() {
        let mut rep = Reputation::default();
        let peer = PeerId::random();
        rep.record(peer, PeerEvent::BadRecord, 0);
        assert!((rep.score(&peer, HOUR) + 5.0).abs() < 1e-9);
        assert!((rep.score(&peer, 2 * HOUR) + 2.5).abs() < 1e-9);
        let (save, forget) = rep.take_changes(0);
        assert_eq!(save, vec![(peer, -10.0)]);
        assert!(forget.is_empty());
        assert_eq!(
            rep.take_changes(0),
            (vec![], vec![]),
            "nothing changed since"
        );
        rep.record(peer, PeerEvent::Served, 10 * HOUR);
        let (save, forget) = rep.take_changes(10 * HOUR);
        assert!(save.is_empty());
        assert_eq!(forget, vec![peer], "decayed to nothing");
        assert_eq!(rep.score(&peer, 10 * HOUR), 0.0);
    }

    #[test]
    fn providers_are_ranked_best_first_and_bad_ones_left_out_while_others_remain() {
        let ranked = rank_providers(vec![("a", 0.0), ("b", 5.0), ("c", -30.0), ("d", -3.0)]);
        assert_eq!(ranked, vec!["b", "a", "d"]);
        let only_bad = rank_providers(vec![("x", -60.0), ("y", -30.0)]);
        assert_eq!(
            only_bad,
            vec!["y", "x"],
            "worst last when nothing else is left"
        );
        assert!(rank_providers::<u8>(vec![]).is_empty());
    }

    fn event() -> impl Strategy<Value = PeerEvent> {
        prop_oneof![
            Just(PeerEvent::BadChunk),
            Just(PeerEvent::BadRecord),
            Just(PeerEvent::Stall),
            Just(PeerEvent::Timeout),
            Just(PeerEvent::Served),
            Just(PeerEvent::RateLimited),
            any::<u64>().prop_map(|bytes| PeerEvent::GoodTransfer { bytes }),
        ]
    }

    proptest! {
        /// Whatever happens, in whatever order and at whatever times, the score stays in
        /// bounds, and with nothing new it only moves toward zero.
        #[test]
        fn the_score_is_bounded_and_decays(
            events in prop::collection::vec((event(), 0u64..10 * HOUR), 0..200),
            later in 1u64..100 * HOUR,
        ) {
            let mut rep = Reputation::default();
            let peer = PeerId::random();
            let mut now = 0;
            for (event, gap) in events {
                now += gap;
                let score = rep.record(peer, event, now);
                prop_assert!((MIN_SCORE..=MAX_SCORE).contains(&score), "{score}");
            }
            let at = rep.score(&peer, now);
            let after = rep.score(&peer, now + later);
            prop_assert!(after.abs() <= at.abs());
            prop_assert!(after == 0.0 || after.signum() == at.signum());
            prop_assert!(rep.score(&peer, now + 40 * HOUR).abs() < NEGLIGIBLE);
        }
    }
}
