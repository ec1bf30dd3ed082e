//! Upload slots: which of the peers asking for chunks this node serves now. A node's
//! upload link is shared by everyone it sends to; served to sixteen askers at once, each
//! gets a sixteenth, no chunk completes anywhere for seconds, and nobody has anything to
//! pass on (the swarm lab measured 3.4 s for the first 1 MiB chunk at 40 Mbit/s). With
//! [`SLOTS`] peers at a time, chunks complete one after another and their receivers pass
//! them on while this node serves the next peers.
//!
//! A slot goes to the waiting peer that uploaded most to this node lately (reciprocation:
//! bytes verified from it, halved every [`CREDIT_HALF_LIFE`]), except one, which goes to
//! the peer waiting longest (so a newcomer with nothing to give gets started, and a
//! seeder, which receives nothing, serves everyone in turn). A slot is given back when
//! its holder has had no range in progress for [`IDLE`], or after its turn while others
//! wait: [`SEEDER_TURN`] at a node holding the whole archive (its chunks must reach
//! every asker soon, so that each has something to pass on), [`TURN`] at one still
//! downloading it. Slots
//! are handed out in answers to offers requests (`stream.rs`): a peer without one is
//! offered nothing this time and asks again at its next refresh. Ranges already asked
//! are served to the end. Pure: the caller passes the time.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// Peers served at once. 6 and 8 measured the same times in the swarm lab as 4, but a
/// seeder serving 8 at once has more chunks written and not yet delivered when it
/// leaves, and the lab's leave scenario failed with 8 (BENCHMARKS.md "Swarm").
pub(crate) const SLOTS: usize = 4;
/// Peers served at once by a node that is still downloading what they ask for. More
/// than a seeder's [`SLOTS`]: in the swarm lab the publisher then sent 1.04–1.16 copies at
/// every N instead of up to 1.27 (peers served each other more), with the same times;
/// the seeder keeps 4 (8 there failed the leave scenario).
pub(crate) const PARTIAL_SLOTS: usize = 8;
/// How long a peer keeps a seeder's slot while others wait: about one window of
/// `swarm::WINDOW` chunks, so the chunks only the seeder has go to every asker in turn
/// and each of them soon holds some that the others lack (its upload is then wanted).
/// With 2 s turns the same four peers held the publisher's slots for seconds while the
/// other installers had nothing new to pass on (swarm lab, N = 16: 1.78–1.90 × the
/// bound; 0.3 s with 4-chunk windows 1.64–1.69; 0.1 s 1.77–1.93).
pub(crate) const SEEDER_TURN: Duration = Duration::from_millis(300);
/// How long a peer keeps a slot of a node still downloading while others wait (0.5 s
/// and 1 s measured no better).
pub(crate) const TURN: Duration = Duration::from_secs(2);
/// A slot whose holder has no range in progress and started or finished none this long
/// is given back: a peer granted a slot that does not use it (its own download is
/// busy elsewhere) must not keep this node's link idle while others wait.
pub(crate) const IDLE: Duration = Duration::from_millis(600);
/// A peer counts as waiting this long after its last refused ask (downloaders ask every
/// 250 ms while they want something).
const WAITING_FRESH: Duration = Duration::from_millis(1500);
/// Credit for uploaded bytes halves this often.
pub(crate) const CREDIT_HALF_LIFE: Duration = Duration::from_secs(10);

/// What this node is to the archive asked for, which sets its slots and turns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// It holds the whole archive: [`SLOTS`], [`SEEDER_TURN`].
    Seeder,
    /// It is still downloading it: [`PARTIAL_SLOTS`], [`TURN`].
    Partial,
}

impl Role {
    fn slots(self) -> usize {
        match self {
            Self::Seeder => SLOTS,
            Self::Partial => PARTIAL_SLOTS,
        }
    }

    fn turn(self) -> Duration {
        match self {
            Self::Seeder => SEEDER_TURN,
            Self::Partial => TURN,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    since: Instant,
    /// When it was granted or its last range started or ended.
    used: Instant,
    /// Ranges being sent to the holder now (a slot in use is never idle).
    active: u32,
    /// Given for waiting longest rather than for credit.
    optimistic: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Choker {
    slots: HashMap<PeerId, Slot>,
    /// Peers refused a slot: since when they wait, when they last asked.
    waiting: HashMap<PeerId, (Instant, Instant)>,
    /// Bytes verified from each peer, decayed, and when last decayed.
    credit: HashMap<PeerId, (f64, Instant)>,
}

impl Choker {
    /// [`Choker::ask_within`] [`SLOTS`] and [`TURN`].
    #[cfg(test)]
    pub(crate) fn ask(&mut self, peer: PeerId, now: Instant) -> bool {
        self.ask_within(peer, now, SLOTS, TURN)
    }

    /// `peer` wants chunks of an archive this node is the `role` of: whether it may
    /// fetch now (it holds a slot or gets one; one set of slots for all archives, at most
    /// the role's number taken). Its slot ends here when it has held it for the role's
    /// turn and others wait.
    pub(crate) fn ask_as(&mut self, peer: PeerId, now: Instant, role: Role) -> bool {
        self.ask_within(peer, now, role.slots(), role.turn())
    }

    /// [`Choker::ask_as`] with the number of slots and the turn given.
    fn ask_within(&mut self, peer: PeerId, now: Instant, limit: usize, turn: Duration) -> bool {
        self.expire(now);
        if let Some(slot) = self.slots.get(&peer) {
            let others_wait = self.waiting.keys().any(|p| *p != peer);
            if !(others_wait && now.saturating_duration_since(slot.since) >= turn) {
                return true;
            }
            self.slots.remove(&peer);
        }
        self.waiting.entry(peer).or_insert((now, now)).1 = now;
        self.fill(now, limit);
        self.slots.contains_key(&peer)
    }

    /// A range to `peer` starts being sent.
    pub(crate) fn started(&mut self, peer: PeerId, now: Instant) {
        if let Some(slot) = self.slots.get_mut(&peer) {
            slot.active += 1;
            slot.used = now;
        }
    }

    /// A range to `peer` ended (sent, failed or cancelled).
    pub(crate) fn finished(&mut self, peer: PeerId, now: Instant) {
        if let Some(slot) = self.slots.get_mut(&peer) {
            slot.active = slot.active.saturating_sub(1);
            slot.used = now;
        }
    }

    /// `bytes` from `peer` were verified here: credit toward a slot at `peer`'s asking.
    pub(crate) fn received(&mut self, peer: PeerId, bytes: u64, now: Instant) {
        let entry = self.credit.entry(peer).or_insert((0.0, now));
        entry.0 = decayed(entry.0, entry.1, now) + bytes as f64;
        entry.1 = now;
    }

    /// Peers holding a slot now.
    #[cfg(test)]
    pub(crate) fn holders(&self) -> usize {
        self.slots.len()
    }

    fn expire(&mut self, now: Instant) {
        self.slots
            .retain(|_, slot| slot.active > 0 || now.saturating_duration_since(slot.used) < IDLE);
        self.waiting
            .retain(|_, (_, asked)| now.saturating_duration_since(*asked) < WAITING_FRESH);
        self.credit
            .retain(|_, (bytes, at)| decayed(*bytes, *at, now) >= 1.0);
    }

    fn credit_of(&self, peer: &PeerId, now: Instant) -> f64 {
        self.credit
            .get(peer)
            .map_or(0.0, |&(bytes, at)| decayed(bytes, at, now))
    }

    /// Gives free slots to waiting peers: the longest waiting for the optimistic slot,
    /// the most credited for the others (ties: longest waiting, then peer id).
    fn fill(&mut self, now: Instant, limit: usize) {
        while self.slots.len() < limit && !self.waiting.is_empty() {
            let optimistic = !self.slots.values().any(|s| s.optimistic);
            let pick = self
                .waiting
                .iter()
                .map(|(peer, &(since, _))| {
                    let credit = if optimistic {
                        0.0
                    } else {
                        self.credit_of(peer, now)
                    };
                    (*peer, since, credit)
                })
                .max_by(|a, b| a.2.total_cmp(&b.2).then(b.1.cmp(&a.1)).then(b.0.cmp(&a.0)))
                .map(|(peer, _, _)| peer);
            let Some(peer) = pick else { break };
            self.waiting.remove(&peer);
            self.slots.insert(
                peer,
                Slot {
                    since: now,
                    used: now,
                    active: 0,
                    optimistic,
                },
            );
        }
    }
}

fn decayed(bytes: f64, at: Instant, now: Instant) -> f64 {
    let age = now.saturating_duration_since(at).as_secs_f64();
    bytes * 0.5f64.powf(age / CREDIT_HALF_LIFE.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `peer` fetched a range from the choker's node at `t` (sent at once).
    fn fetched(choker: &mut Choker, peer: PeerId, t: Instant) {
        choker.started(peer, t);
        choker.finished(peer, t);
    }

    fn peers(n: usize) -> Vec<PeerId> {
        let mut v: Vec<PeerId> = (0..n).map(|_| PeerId::random()).collect();
        v.sort();
        v
    }

    #[test]
    fn at_most_slots_peers_are_served_and_turns_rotate() {
        let t0 = Instant::now();
        let ps = peers(SLOTS + 2);
        let mut choker = Choker::default();
        let granted: Vec<bool> = ps.iter().map(|&p| choker.ask(p, t0)).collect();
        assert_eq!(granted.iter().filter(|&&g| g).count(), SLOTS);
        // Slot holders keep fetching; the two refused ones keep asking.
        let ms = Duration::from_millis;
        let mut t = t0;
        for _ in 0..7 {
            t += ms(250);
            for (&p, &g) in ps.iter().zip(&granted) {
                if g {
                    fetched(&mut choker, p, t);
                } else {
                    assert!(!choker.ask(p, t), "served before any turn ended");
                }
            }
        }
        // A turn over: a holder asking again gives its slot to a waiting peer.
        t = t0 + TURN;
        let holder = ps[granted.iter().position(|&g| g).expect("some")];
        assert!(!choker.ask(holder, t));
        let waiting: Vec<PeerId> = (0..ps.len())
            .filter(|&i| !granted[i])
            .map(|i| ps[i])
            .collect();
        assert!(waiting.iter().any(|&p| choker.slots.contains_key(&p)));
        assert_eq!(choker.holders(), SLOTS);
    }

    #[test]
    fn a_seeders_turns_are_short_so_every_asker_gets_a_window_soon() {
        let t0 = Instant::now();
        let ps = peers(3 * SLOTS);
        let mut choker = Choker::default();
        let ask = |c: &mut Choker, p, t| c.ask_as(p, t, Role::Seeder);
        let mut served = std::collections::HashSet::new();
        let mut t = t0;
        // Everyone asks every 100 ms and fetches at once when granted.
        while t < t0 + SEEDER_TURN * 4 {
            for &p in &ps {
                if ask(&mut choker, p, t) {
                    fetched(&mut choker, p, t);
                    served.insert(p);
                }
            }
            assert!(choker.holders() <= SLOTS);
            t += Duration::from_millis(100);
        }
        assert_eq!(
            served.len(),
            ps.len(),
            "each of 3 × SLOTS askers served within 4 turns"
        );
        // With the long turn of a partial holder, the first SLOTS keep their slots.
        let mut choker = Choker::default();
        let mut served = std::collections::HashSet::new();
        let mut t = t0;
        while t < t0 + SEEDER_TURN * 4 {
            for &p in &ps {
                if choker.ask_within(p, t, SLOTS, TURN) {
                    fetched(&mut choker, p, t);
                    served.insert(p);
                }
            }
            t += Duration::from_millis(100);
        }
        assert_eq!(served.len(), SLOTS);
    }

    #[test]
    fn a_lone_peer_keeps_its_slot_and_idle_slots_are_given_back() {
        let t0 = Instant::now();
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut choker = Choker::default();
        assert!(choker.ask(a, t0));
        // Nobody waits: no turn ends.
        assert!(choker.ask(a, t0 + TURN * 3 - IDLE / 2));
        // Idle (fetched nothing) for IDLE: given back, and asked again, granted again.
        let later = t0 + TURN * 10;
        assert!(choker.ask(b, later));
        assert_eq!(choker.holders(), 1);
        assert!(choker.ask(a, later));
    }

    #[test]
    fn a_range_in_progress_keeps_its_slot_however_long_it_takes() {
        let t0 = Instant::now();
        let ps = peers(SLOTS + 1);
        let mut choker = Choker::default();
        for &p in &ps[..SLOTS] {
            assert!(choker.ask(p, t0));
        }
        // One holder's range runs long; the others never fetch.
        choker.started(ps[0], t0);
        let later = t0 + IDLE * 3;
        assert!(choker.ask(ps[SLOTS], later), "idle slots were given back");
        assert!(choker.slots.contains_key(&ps[0]), "a slot in use was taken");
        choker.finished(ps[0], later);
        assert!(choker.slots.contains_key(&ps[0]));
        choker.ask(ps[1], later + IDLE);
        assert!(
            !choker.slots.contains_key(&ps[0]),
            "idle after its range: given back"
        );
    }

    #[test]
    fn reciprocation_prefers_peers_that_uploaded_here() {
        let t0 = Instant::now();
        let ps = peers(SLOTS + 3);
        let mut choker = Choker::default();
        // The last peer sent us a lot; all wait, it asks last.
        let giver = *ps.last().expect("peers");
        choker.received(giver, 8 << 20, t0);
        // Fill the slots with others first (the first one granted is optimistic).
        for &p in &ps[..SLOTS] {
            assert!(choker.ask(p, t0));
        }
        let late = t0 + Duration::from_millis(100);
        for &p in &ps[SLOTS..] {
            assert!(!choker.ask(p, late));
        }
        // Every holder goes idle: the next asker frees them all; the giver, though it
        // waited least, gets a credit slot at once.
        let t = t0 + IDLE + Duration::from_millis(200);
        choker.ask(ps[SLOTS], t);
        assert!(choker.slots.contains_key(&giver));
        // Credit fades: after many half-lives it counts for nothing.
        assert!(choker.credit_of(&giver, t0 + CREDIT_HALF_LIFE * 40) < 1.0);
    }

    proptest! {
        /// Whatever the asking and fetching pattern: never more than SLOTS holders, a
        /// peer told yes holds a slot, and everyone who keeps asking is served within a
        /// bounded time while the holders keep fetching (no starvation).
        #[test]
        fn slots_are_bounded_and_nobody_starves(
            n in 1usize..12,
            steps in proptest::collection::vec((0usize..12, any::<bool>()), 50..400),
        ) {
            let ps = peers(n);
            let t0 = Instant::now();
            let mut choker = Choker::default();
            let mut last_served: Vec<Instant> = vec![t0; n];
            let mut t = t0;
            for (step, (i, fetch)) in steps.into_iter().enumerate() {
                t += Duration::from_millis(50);
                let p = i % n;
                // Everyone asks every 250 ms, at different moments; one random peer
                // fetches (or not) per step, so slots also go idle.
                for (k, &peer) in ps.iter().enumerate() {
                    if (k + step) % 5 == 0 && choker.ask(peer, t) {
                        last_served[k] = t;
                        prop_assert!(choker.slots.contains_key(&peer));
                    }
                }
                if fetch {
                    fetched(&mut choker, ps[p], t);
                }
                prop_assert!(choker.holders() <= SLOTS);
                let bound = (TURN + IDLE) * (n.div_ceil(SLOTS) as u32 + 1) + Duration::from_secs(1);
                for (k, served) in last_served.iter().enumerate() {
                    prop_assert!(
                        t.saturating_duration_since(*served) <= bound,
                        "peer {} waited {:?}", k, t.saturating_duration_since(*served)
                    );
                }
            }
        }
    }
}
