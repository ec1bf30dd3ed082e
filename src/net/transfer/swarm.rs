//! What this node offers of each archive while many nodes fetch it at once: the chunks a
//! running download has verified (served before the download completes), and, for an
//! archive it holds whole, which chunks to advertise to each asker so that it hands out
//! every chunk about once while others lack chunks it never handed out (super-seeding):
//! each asker gets a window of at most [`WINDOW`] chunks, the ones handed out least, and
//! asks again when it has used them. The wire side
//! is `stream.rs` (the offers request); the decisions here are pure over the counts kept.
//!
//! Not here: which chunk to ask of whom (`schedule.rs`), the files (`store::partial`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::PeerId;

use crate::package::Blake3Hash;
use crate::store::partial::Layout;

/// Chunks a whole-archive holder offers per offers request.
pub(crate) const WINDOW: usize = 8;
/// Peers named per offers answer (peer exchange).
pub(crate) const MAX_NAMED: usize = 8;
/// How long an asker counts as a member of an archive's swarm.
const ASKER_FRESH: Duration = Duration::from_secs(60);
/// How long a seeder remembers how often it sent each chunk of an archive nobody asks for.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// A running download's verified chunks, servable to others.
#[derive(Debug, Clone)]
pub(crate) struct Partial {
    pub path: PathBuf,
    pub layout: Layout,
    pub have: Vec<bool>,
}

#[derive(Debug, Default)]
struct Entry {
    partial: Option<Partial>,
    /// Times each chunk was handed out (offered as a whole-archive holder).
    handed: Vec<u32>,
    touched: Option<Instant>,
    /// Peers that asked this node what it offers, most recent last.
    askers: Vec<(PeerId, Instant)>,
    /// Peers other nodes named as fetching this archive too, not yet tried.
    heard: Vec<PeerId>,
}

/// The node's swarms, shared by its downloads (which join, hold and leave) and its chunk
/// server (which serves partial archives and answers offers requests).
#[derive(Clone, Default)]
pub(crate) struct Swarms(Arc<Mutex<HashMap<Blake3Hash, Entry>>>);

impl Swarms {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Blake3Hash, Entry>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A download of `archive` started, with the chunks in `have` already verified.
    pub(crate) fn join(&self, archive: Blake3Hash, path: PathBuf, layout: Layout, have: Vec<bool>) {
        let mut map = self.lock();
        let entry = map.entry(archive).or_default();
        entry.partial = Some(Partial { path, layout, have });
        entry.touched = Some(Instant::now());
    }

    /// Chunk `index` of the running download of `archive` was verified and written.
    pub(crate) fn hold(&self, archive: &Blake3Hash, index: u32) {
        if let Some(partial) = self
            .lock()
            .get_mut(archive)
            .and_then(|e| e.partial.as_mut())
        {
            if let Some(bit) = partial.have.get_mut(index as usize) {
                *bit = true;
            }
        }
    }

    /// The download of `archive` ended (done: the store serves it now; or failed).
    pub(crate) fn leave(&self, archive: &Blake3Hash) {
        let mut map = self.lock();
        if let Some(entry) = map.get_mut(archive) {
            entry.partial = None;
        }
    }

    /// The running download of `archive`, if any: where its chunks are and which.
    pub(crate) fn partial(&self, archive: &Blake3Hash) -> Option<Partial> {
        self.lock().get(archive).and_then(|e| e.partial.clone())
    }

    /// `peer` asked what this node offers of `archive`; returns up to [`MAX_NAMED`] other
    /// peers that asked recently (peer exchange: members of the swarm find each other
    /// through whoever they all ask, usually the publisher).
    pub(crate) fn asked(&self, archive: Blake3Hash, peer: PeerId) -> Vec<PeerId> {
        let now = Instant::now();
        let mut map = self.lock();
        let entry = map.entry(archive).or_default();
        entry.touched = Some(now);
        entry
            .askers
            .retain(|(p, at)| *p != peer && now.duration_since(*at) < ASKER_FRESH);
        let others = entry
            .askers
            .iter()
            .rev()
            .take(MAX_NAMED)
            .map(|(p, _)| *p)
            .collect();
        entry.askers.push((peer, now));
        if entry.askers.len() > 4 * MAX_NAMED {
            entry.askers.remove(0);
        }
        others
    }

    /// Peers named by others as fetching `archive`, to try as providers.
    pub(crate) fn heard(&self, archive: Blake3Hash, peers: Vec<PeerId>) {
        let mut map = self.lock();
        let entry = map.entry(archive).or_default();
        for peer in peers {
            if !entry.heard.contains(&peer) && entry.heard.len() < 4 * MAX_NAMED {
                entry.heard.push(peer);
            }
        }
    }

    /// The peers [`Swarms::heard`] collected since the last call.
    pub(crate) fn take_heard(&self, archive: &Blake3Hash) -> Vec<PeerId> {
        self.lock()
            .get_mut(archive)
            .map(|e| std::mem::take(&mut e.heard))
            .unwrap_or_default()
    }

    /// What `status` shows: each archive being downloaded, or seeded to askers within the
    /// last minute.
    pub(crate) fn snapshot(&self) -> Vec<crate::net::SwarmStatus> {
        let now = Instant::now();
        let map = self.lock();
        let mut out: Vec<crate::net::SwarmStatus> = map
            .iter()
            .filter_map(|(archive, e)| {
                let peers = e
                    .askers
                    .iter()
                    .filter(|(_, at)| now.duration_since(*at) < ASKER_FRESH)
                    .count();
                let (downloading, held, count) = match &e.partial {
                    Some(p) => (
                        true,
                        p.have.iter().filter(|&&b| b).count() as u32,
                        p.layout.count,
                    ),
                    None if peers > 0 => (false, e.handed.len() as u32, e.handed.len() as u32),
                    None => return None,
                };
                Some(crate::net::SwarmStatus {
                    archive: archive.to_string(),
                    downloading,
                    chunks_held: held,
                    chunk_count: count,
                    peers,
                    chunks_handed_out: e.handed.iter().map(|&n| u64::from(n)).sum(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.archive.cmp(&b.archive));
        out
    }

    /// Whether every chunk of `first..first + count` of the partial `archive` is held.
    pub(crate) fn holds_range(&self, archive: &Blake3Hash, first: u32, count: u32) -> bool {
        let map = self.lock();
        let Some(partial) = map.get(archive).and_then(|e| e.partial.as_ref()) else {
            return false;
        };
        (first..first.saturating_add(count))
            .all(|i| partial.have.get(i as usize).copied().unwrap_or(false))
    }

    /// What to advertise of `archive` to a peer that holds `theirs`: a partial download
    /// offers what it holds; a whole-archive holder of `whole` chunks a window chosen by
    /// [`super_seed`], which it counts as handed out — all it lacks when the asker is
    /// `alone` (nobody else asked lately: nothing to spread, so nothing to hold back).
    pub(crate) fn offers(
        &self,
        archive: &Blake3Hash,
        whole: Option<u32>,
        theirs: &[bool],
        alone: bool,
    ) -> Vec<bool> {
        let mut map = self.lock();
        let now = Instant::now();
        match whole {
            Some(chunk_count) => {
                map.retain(|key, e| {
                    key == archive
                        || e.partial.is_some()
                        || e.touched
                            .is_some_and(|t| now.duration_since(t) < FORGET_AFTER)
                });
                let entry = map.entry(*archive).or_default();
                entry.touched = Some(now);
                if entry.handed.len() != chunk_count as usize {
                    entry.handed = vec![0; chunk_count as usize];
                }
                let window = if alone { usize::MAX } else { WINDOW };
                let offered = super_seed(chunk_count, &entry.handed, theirs, window);
                for (count, _) in entry.handed.iter_mut().zip(&offered).filter(|(_, o)| **o) {
                    *count += 1;
                }
                offered
            }
            None => map
                .get(archive)
                .and_then(|e| e.partial.as_ref())
                .map(|p| p.have.clone())
                .unwrap_or_default(),
        }
    }
}

/// Super-seeding, as a pure choice: of the chunks the asker lacks, offer the (at most
/// `window`, lowest first) that were handed out the fewest times. Until every chunk has
/// gone out once, an asker is only offered chunks nobody got from this node yet (it gets
/// the others from its peers); a lone downloader gets window after window in order.
/// `handed` may be short (missing: never) and `theirs` short (missing bits: lacking).
pub(crate) fn super_seed(
    chunk_count: u32,
    handed: &[u32],
    theirs: &[bool],
    window: usize,
) -> Vec<bool> {
    let count_of = |i: usize| handed.get(i).copied().unwrap_or(0);
    let lacks = |i: usize| !theirs.get(i).copied().unwrap_or(false);
    let fewest = (0..chunk_count as usize)
        .filter(|&i| lacks(i))
        .map(count_of)
        .min();
    let mut left = window;
    (0..chunk_count as usize)
        .map(|i| {
            let offer = left > 0 && lacks(i) && Some(count_of(i)) == fewest;
            left -= usize::from(offer);
            offer
        })
        .collect()
}

/// `bits` packed eight to a byte, lowest index in the lowest bit.
pub(crate) fn pack(bits: &[bool]) -> Vec<u8> {
    let mut bytes = vec![0u8; bits.len().div_ceil(8)];
    for (i, _) in bits.iter().enumerate().filter(|(_, b)| **b) {
        bytes[i / 8] |= 1 << (i % 8);
    }
    bytes
}

/// The first `count` bits of `bytes` (see [`pack`]).
pub(crate) fn unpack(bytes: &[u8], count: u32) -> Vec<bool> {
    (0..count as usize)
        .map(|i| bytes.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_lone_downloader_is_offered_everything_it_lacks() {
        let theirs = [true, false, false, true];
        assert_eq!(
            super_seed(4, &[], &theirs, 8),
            vec![false, true, true, false]
        );
        // Handed out once each: still everything it lacks.
        assert_eq!(
            super_seed(4, &[1, 1, 1, 1], &theirs, 8),
            vec![false, true, true, false]
        );
        // At most a window, lowest first.
        assert_eq!(super_seed(4, &[], &[], 2), vec![true, true, false, false]);
    }

    #[test]
    fn chunks_sent_already_wait_until_the_others_went_out() {
        // 0 and 1 went to someone else; the newcomer lacking everything is offered 2, 3.
        assert_eq!(
            super_seed(4, &[1, 1, 0, 0], &[], 8),
            vec![false, false, true, true]
        );
        // It has 2 and 3 from a peer: now 0 and 1.
        assert_eq!(
            super_seed(4, &[1, 1, 0, 0], &[false, false, true, true], 8),
            vec![true, true, false, false]
        );
        // Nothing lacking: nothing offered.
        assert_eq!(super_seed(2, &[3, 0], &[true, true], 8), vec![false, false]);
        // Two askers at once get different windows.
        let swarms = Swarms::default();
        let archive = Blake3Hash::of(b"s");
        let a = swarms.offers(&archive, Some(100), &[], false);
        let b = swarms.offers(&archive, Some(100), &[], false);
        // Alone, an asker is offered everything it lacks.
        let c = swarms.offers(&Blake3Hash::of(b"t"), Some(100), &[], true);
        assert!(c.iter().all(|&x| x));
        assert_eq!(a.iter().filter(|&&x| x).count(), WINDOW);
        assert_eq!(b.iter().filter(|&&x| x).count(), WINDOW);
        assert!(a.iter().zip(&b).all(|(x, y)| !(x & y)), "{a:?} {b:?}");
    }

    #[test]
    fn partial_downloads_are_served_from_what_they_hold() {
        let swarms = Swarms::default();
        let archive = Blake3Hash::of(b"a");
        let layout = Layout {
            size: 10,
            chunk_size: 4,
            count: 3,
        };
        swarms.join(
            archive,
            PathBuf::from("x.part"),
            layout,
            vec![true, false, false],
        );
        assert!(swarms.holds_range(&archive, 0, 1));
        assert!(!swarms.holds_range(&archive, 0, 2));
        swarms.hold(&archive, 1);
        assert!(swarms.holds_range(&archive, 0, 2));
        assert_eq!(
            swarms.offers(&archive, None, &[], true),
            vec![true, true, false]
        );
        swarms.leave(&archive);
        assert!(swarms.partial(&archive).is_none());
        // Peer exchange: each asker hears of the earlier ones.
        let (a, b) = (PeerId::random(), PeerId::random());
        assert!(swarms.asked(archive, a).is_empty());
        assert_eq!(swarms.asked(archive, b), vec![a]);
        assert_eq!(swarms.asked(archive, a), vec![b]);
        assert!(swarms.offers(&archive, None, &[], true).is_empty());
    }

    proptest! {
        #[test]
        fn bits_round_trip(bits in proptest::collection::vec(any::<bool>(), 0..100)) {
            prop_assert_eq!(unpack(&pack(&bits), bits.len() as u32), bits);
        }

        /// Super-seeding offers only chunks the asker lacks, always some while it lacks
        /// any, and never a chunk sent more often than one it lacks and is not offered.
        #[test]
        fn super_seeding_offers_the_least_sent_of_what_is_lacking(
            sent in proptest::collection::vec(0u32..4, 1..40),
            theirs in proptest::collection::vec(any::<bool>(), 0..40),
            window in 1usize..50,
        ) {
            let n = sent.len() as u32;
            let offered = super_seed(n, &sent, &theirs, window);
            prop_assert!(offered.iter().filter(|&&b| b).count() <= window);
            let lacks = |i: usize| !theirs.get(i).copied().unwrap_or(false);
            prop_assert_eq!(offered.len(), sent.len());
            prop_assert_eq!(offered.iter().any(|&b| b), (0..sent.len()).any(lacks));
            for i in 0..sent.len() {
                if offered[i] {
                    prop_assert!(lacks(i));
                    for j in (0..sent.len()).filter(|&j| lacks(j)) {
                        prop_assert!(sent[i] <= sent[j]);
                    }
                }
            }
        }
    }
}
