//! What this node offers of each archive while many nodes fetch it at once: the chunks a
//! running download has verified (served before the download completes), and, for an
//! archive it holds whole, which chunks to advertise to each asker so that it hands out
//! every chunk about once while others lack chunks it never handed out (super-seeding):
//! each asker gets a window of at most [`WINDOW`] chunks, the ones handed out least, and
//! asks again when it has used them. A chunk on its way to one asker is offered to no
//! other, unless that asker's chunks stopped moving ([`STALL`]): then a second copy goes
//! out rather than the only one waiting behind a starved connection. The wire side
//! is `stream.rs` (the offers request); the decisions here are pure over the counts kept.
//!
//! Not here: which chunk to ask of whom (`schedule.rs`), the files (`store::partial`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::choke::{Choker, Role};
use crate::package::Blake3Hash;
use crate::store::partial::Layout;

/// Chunks a whole-archive holder offers one of several askers per offers request: a
/// window it drains within its short turn (`choke::SEEDER_TURN`) at its share of the
/// seeder's link. Larger windows, e.g. 32 chunks of 256 KiB, left chunks reserved for
/// slow askers unsent when the lab's publisher left; with short turns and 256 KiB
/// chunks 8 chunks measured 1.70–1.76 × the bound at N = 16, 4 chunks 1.64–1.69, 2
/// chunks 1.66–1.77, 1 chunk 1.89–1.96 (each range then carries a single chunk). With
/// 128 KiB chunks it is 8, the same 1 MiB.
pub(crate) const WINDOW: usize = 8;
/// What is held for a lone asker (offered everything), in bytes: 8 chunks of 1 MiB, 32
/// of 256 KiB. Measured in chunks it shrank to 2 MiB with the smaller chunks, and a lone
/// first asker fetched far past it (the lab's leave scenario, N = 3, then lost first
/// copies to duplicates).
pub(crate) const LONE_HOLD_BYTES: u64 = 8 << 20;

/// [`LONE_HOLD_BYTES`] in chunks of `chunk_size` (at least one).
pub(crate) fn lone_hold(chunk_size: u32) -> usize {
    (LONE_HOLD_BYTES / u64::from(chunk_size.max(1))).max(1) as usize
}
/// Peers named per offers answer (peer exchange).
pub(crate) const MAX_NAMED: usize = 8;
/// How long an asker counts as a member of an archive's swarm.
const ASKER_FRESH: Duration = Duration::from_secs(10);
/// How long a chunk sent to an asker counts as on its way to it.
const PENDING_TTL: Duration = Duration::from_secs(5);
/// How long a chunk offered to an asker is kept for it (it asks again every 250 ms while
/// it holds an upload slot; one that lost its slot frees its window this soon, so the
/// seeder's never-sent chunks go to the peers it serves now, not twice to others).
const OFFER_HOLD: Duration = Duration::from_secs(1);
/// Longest a node still downloading holds an offers request that asks for news
/// (`stream.rs`) while it has verified nothing new the asker lacks: it answers as soon as
/// it has, and the asker asks again at once, so chunks are announced as they arrive
/// instead of at the asker's next poll.
pub(crate) const NEWS_WAIT: Duration = Duration::from_secs(1);
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
    /// As a seeder: chunks handed to an asker that it does not hold yet (chunk, asker,
    /// until when): offered ones for [`OFFER_HOLD`] (renewed while offered again), sent
    /// ones for [`PENDING_TTL`].
    pending: Vec<(u32, PeerId, Instant)>,
    /// The chunks each recent asker said it does not need (held, or coming from others).
    bits: HashMap<PeerId, Vec<bool>>,
    /// As a seeder: chunks asked of this node and not written yet, per asker (how many
    /// ranges). Such an asker counts the chunk as not needed, but it does not hold it.
    unsent: HashMap<(u32, PeerId), u32>,
    /// When the chunks asked by each peer last moved here: its first request while it
    /// had none waiting, or a chunk written to it, with `written` at that moment (see
    /// [`Entry::stalled`]). A peer has an entry exactly while it has chunks in `unsent`.
    progress: HashMap<PeerId, (Instant, u64)>,
    /// Chunks of it written to anyone so far: the clock [`Entry::stalled`] also reads.
    written: u64,
    /// Bytes of it sent to peers and verified from peers, in all and lately.
    traffic: Traffic,
    /// Chunks held of all when its download here ended.
    left_with: Option<(u32, u32)>,
    /// As a partial holder: what each asker was last told it holds (news is beyond it).
    told: HashMap<PeerId, Vec<bool>>,
}

impl Entry {
    /// True when `peer` has chunks asked of this node and none of them was written to
    /// it for [`STALL`] while at least [`STALL_CHUNKS`] went to others: its connection is
    /// not draining (one TCP flow starved at a congested link), so what waits for it is
    /// not on its way and may go to others. Counting the chunks written meanwhile keeps
    /// a range that waits its turn on a busy link (large chunks, several askers) from
    /// looking stalled.
    fn stalled(&self, peer: &PeerId, now: Instant) -> bool {
        self.progress.get(peer).is_some_and(|(at, written)| {
            now.saturating_duration_since(*at) >= STALL
                && self.written.saturating_sub(*written) >= STALL_CHUNKS
        })
    }

    /// Every peer [`Entry::stalled`] at `now` (only peers with chunks asked have a
    /// progress time).
    fn stalled_peers(&self, now: Instant) -> std::collections::HashSet<PeerId> {
        (self.progress.keys())
            .filter(|peer| self.stalled(peer, now))
            .copied()
            .collect()
    }

    /// Keeps chunk `index`'s hand-out to `peer` pending until at least `until`; false if
    /// there is none.
    fn renew_pending(&mut self, index: u32, peer: PeerId, until: Instant) -> bool {
        match (self.pending.iter_mut()).find(|(i, p, _)| *i == index && *p == peer) {
            Some(hand_out) => {
                hand_out.2 = hand_out.2.max(until);
                true
            }
            None => false,
        }
    }
}

/// How long chunks asked of this node may wait without any of them being written to
/// their asker before what waits for it counts as stalled ([`Entry::stalled`]). A seeder
/// serves at most `choke::SLOTS` peers at once, so a range that moves gets a chunk
/// written every few hundred milliseconds; the swarm lab (N = 16) showed a flow at a
/// congested link getting one 128 KiB chunk every 2.5 s while it held the only copies of
/// the seeder's last chunks (BENCHMARKS.md "Stop 29").
const STALL: Duration = Duration::from_millis(1500);
/// How many chunks this node must have written to others since an asker's chunks last
/// moved before that asker counts as stalled ([`Entry::stalled`]): four rounds of a
/// seeder's `choke::SLOTS` (two of a partial holder's `PARTIAL_SLOTS`), so a range
/// served in turn with the others is never stalled by the clock alone. Why a count as
/// well as [`STALL`]: STALL was measured with 128 KiB chunks (55 ms each at the lab's
/// 20 Mbit/s, about 27 of them in 1.5 s); with 1 MiB chunks (archives over 64 MiB) a
/// seeder serving four askers writes one to each every 1.8 s, so every asker looked
/// stalled and its chunks went out again (the lab at 64 MiB: the publisher sent 2.6
/// copies).
const STALL_CHUNKS: u64 = 4 * super::choke::SLOTS as u64;
/// How long the rates `status` shows average over.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// How long a seeded archive stays in `status` after its last asker.
const SHOWN_FOR: Duration = Duration::from_secs(60);

/// Byte counts of one archive's swarm: totals, and the last [`RATE_WINDOW`] for rates.
#[derive(Debug, Default)]
struct Traffic {
    sent: u64,
    received: u64,
    /// (when, sent, received), oldest first, at most [`RATE_WINDOW`] old.
    recent: std::collections::VecDeque<(Instant, u64, u64)>,
}

impl Traffic {
    fn add(&mut self, now: Instant, sent: u64, received: u64) {
        self.sent += sent;
        self.received += received;
        self.recent.push_back((now, sent, received));
        self.forget(now);
    }

    fn forget(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|(at, _, _)| now.saturating_duration_since(*at) > RATE_WINDOW)
        {
            self.recent.pop_front();
        }
    }

    /// Bytes per second sent and received over the last [`RATE_WINDOW`].
    fn rates(&self, now: Instant) -> (u64, u64) {
        let (sent, received) = self
            .recent
            .iter()
            .filter(|(at, _, _)| now.saturating_duration_since(*at) <= RATE_WINDOW)
            .fold((0, 0), |(s, r), (_, a, b)| (s + a, r + b));
        let secs = RATE_WINDOW.as_secs();
        (sent / secs, received / secs)
    }
}

/// The node's swarms, shared by its downloads (which join, hold and leave) and its chunk
/// server (which serves partial archives and answers offers requests).
#[derive(Clone, Default)]
pub(crate) struct Swarms {
    archives: Arc<Mutex<HashMap<Blake3Hash, Entry>>>,
    /// Who may fetch from this node now (one set of upload slots for all archives: the
    /// upload link is one).
    slots: Arc<Mutex<Choker>>,
    /// Woken when a running download verifies a chunk or ends (held offers requests).
    news: Arc<tokio::sync::Notify>,
}

/// A range being sent (see [`Swarms::serving`]).
pub(crate) struct Serving {
    slots: Arc<Mutex<Choker>>,
    peer: PeerId,
}

impl Drop for Serving {
    fn drop(&mut self) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.finished(self.peer, Instant::now());
    }
}

impl Swarms {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Blake3Hash, Entry>> {
        self.archives.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Choker> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `peer`, which lacks something this node offers, may fetch now (see
    /// `choke.rs`).
    pub(crate) fn may_fetch(&self, peer: PeerId, whole: bool) -> bool {
        let role = if whole { Role::Seeder } else { Role::Partial };
        self.slots().ask_as(peer, Instant::now(), role)
    }

    /// A range to `peer` is being sent until the returned guard drops: its upload slot
    /// is in use meanwhile.
    pub(crate) fn serving(&self, peer: PeerId) -> Serving {
        self.slots().started(peer, Instant::now());
        Serving {
            slots: self.slots.clone(),
            peer,
        }
    }

    /// `bytes` from `peer` were verified: credit toward serving it (reciprocation).
    pub(crate) fn received_from(&self, peer: PeerId, bytes: u64) {
        self.slots().received(peer, bytes, Instant::now());
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
        let mut map = self.lock();
        let Some(entry) = map.get_mut(archive) else {
            return;
        };
        if let Some(partial) = entry.partial.as_mut() {
            if let Some(bit) = partial.have.get_mut(index as usize) {
                *bit = true;
            }
            let bytes = partial.layout.len(index);
            entry.traffic.add(Instant::now(), 0, bytes);
        }
        drop(map);
        self.news.notify_waiters();
    }

    /// `bytes` of `archive` were sent to a peer (whole or partial holder alike).
    pub(crate) fn uploaded(&self, archive: &Blake3Hash, bytes: u64) {
        let now = Instant::now();
        let mut map = self.lock();
        let entry = map.entry(*archive).or_default();
        entry.touched = Some(now);
        entry.traffic.add(now, bytes, 0);
    }

    /// The download of `archive` ended (done: the store serves it now; or failed).
    pub(crate) fn leave(&self, archive: &Blake3Hash) {
        let mut map = self.lock();
        if let Some(entry) = map.get_mut(archive) {
            if let Some(partial) = entry.partial.take() {
                let held = partial.have.iter().filter(|&&b| b).count() as u32;
                entry.left_with = Some((held, partial.layout.count));
            }
            entry.told.clear();
        }
        drop(map);
        self.news.notify_waiters();
    }

    /// Waits until the running download of `archive` holds a chunk that `peer` lacks
    /// (`theirs` false) and was not told of in this node's last answer to it, the
    /// download ends, or [`NEWS_WAIT`] passes. Returns at once without a running download
    /// or when `theirs` is not one bit per chunk (a held request keeps its bits in
    /// memory, so only bits of the archive's own size are held).
    pub(crate) async fn news_for(&self, archive: &Blake3Hash, peer: PeerId, theirs: &[bool]) {
        let deadline = tokio::time::Instant::now() + NEWS_WAIT;
        loop {
            let notified = self.news.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.has_news(archive, peer, theirs) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Whether [`Swarms::news_for`] would return now (true without a running download).
    fn has_news(&self, archive: &Blake3Hash, peer: PeerId, theirs: &[bool]) -> bool {
        let map = self.lock();
        let Some((entry, partial)) = map
            .get(archive)
            .and_then(|e| e.partial.as_ref().map(|p| (e, p)))
        else {
            return true;
        };
        if theirs.len() != partial.have.len() {
            return true; // not this archive's bits: answered (and judged) at once, not held
        }
        let told = entry.told.get(&peer);
        let bit = |bits: Option<&Vec<bool>>, i: usize| bits.and_then(|b| b.get(i)).copied();
        (partial.have.iter().enumerate()).any(|(i, &held)| {
            held && !theirs.get(i).copied().unwrap_or(false) && bit(told, i) != Some(true)
        })
    }

    /// `peer` was told that this node holds `have` of `archive` (an answer that asks it
    /// to come back for news).
    pub(crate) fn told(&self, archive: &Blake3Hash, peer: PeerId, have: &[bool]) {
        if let Some(entry) = self.lock().get_mut(archive) {
            // Kept only while `peer` is a recent asker (pruned in `asked`).
            entry.told.insert(peer, have.to_vec());
        }
    }

    /// How many peers that asked about `archive` lately hold chunk `index` or fetch it
    /// from others (what their last offers requests said): a served chunk's rank on the
    /// upload link (`pace.rs`), fewest first.
    pub(crate) fn holders(&self, archive: &Blake3Hash, index: u32) -> u32 {
        let map = self.lock();
        let Some(entry) = map.get(archive) else {
            return 0;
        };
        let holds = |bits: &&Vec<bool>| bits.get(index as usize).copied().unwrap_or(false);
        entry.bits.values().filter(holds).count() as u32
    }

    /// The running download of `archive`, if any: where its chunks are and which.
    pub(crate) fn partial(&self, archive: &Blake3Hash) -> Option<Partial> {
        self.lock().get(archive).and_then(|e| e.partial.clone())
    }

    /// `peer` asked what this node offers of `archive`; returns up to [`MAX_NAMED`] other
    /// peers that asked recently (peer exchange: members of the swarm find each other
    /// through whoever they all ask, usually the publisher).
    pub(crate) fn asked(&self, archive: Blake3Hash, peer: PeerId, theirs: &[bool]) -> Vec<PeerId> {
        self.asked_at(archive, peer, theirs, Instant::now())
    }

    /// [`Swarms::asked`] at `now`.
    fn asked_at(
        &self,
        archive: Blake3Hash,
        peer: PeerId,
        theirs: &[bool],
        now: Instant,
    ) -> Vec<PeerId> {
        let mut map = self.lock();
        let entry = map.entry(archive).or_default();
        entry.touched = Some(now);
        // What it holds counts for rarity even while it waits for an upload slot.
        entry.bits.insert(peer, theirs.to_vec());
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
        // What is kept per asker is kept only for recent askers (`askers` is bounded):
        // one that finished and left would otherwise count as holding every chunk
        // (`holders`) for as long as this entry lives.
        let askers = &entry.askers;
        let recent = |p: &PeerId| askers.iter().any(|(a, _)| a == p);
        (entry.bits).retain(|p, _| recent(p));
        (entry.told).retain(|p, _| recent(p));
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
        let mut map = self.lock();
        for entry in map.values_mut() {
            entry.traffic.forget(now);
        }
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
                    None if peers > 0
                        || e.touched
                            .is_some_and(|t| now.saturating_duration_since(t) < SHOWN_FOR)
                            && e.traffic.sent > 0 =>
                    {
                        let n = e.handed.len() as u32;
                        let (held, count) = e.left_with.unwrap_or((n, n));
                        (false, held, count)
                    }
                    None => return None,
                };
                let (upload_rate, download_rate) = e.traffic.rates(now);
                Some(crate::net::SwarmStatus {
                    archive: archive.to_string(),
                    downloading,
                    chunks_held: held,
                    chunk_count: count,
                    peers,
                    chunks_handed_out: e.handed.iter().map(|&n| u64::from(n)).sum(),
                    bytes_uploaded: e.traffic.sent,
                    bytes_downloaded: e.traffic.received,
                    upload_bytes_per_s: upload_rate,
                    download_bytes_per_s: download_rate,
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

    /// What to advertise of `archive` to `asker`, which holds `theirs`: a partial
    /// download offers what it holds; a whole-archive holder of `whole` chunks chooses
    /// with [`super_seed`] and notes what it handed out — all the asker lacks when it is
    /// `alone` (nobody else asked lately: nothing to spread, so nothing to hold back).
    pub(crate) fn offers(
        &self,
        archive: &Blake3Hash,
        whole: Option<Layout>,
        theirs: &[bool],
        asker: PeerId,
        alone: bool,
    ) -> Vec<bool> {
        self.offers_at(archive, whole, theirs, asker, alone, Instant::now())
    }

    /// [`Swarms::offers`] at `now`.
    pub(crate) fn offers_at(
        &self,
        archive: &Blake3Hash,
        whole: Option<Layout>,
        theirs: &[bool],
        asker: PeerId,
        alone: bool,
        now: Instant,
    ) -> Vec<bool> {
        let mut map = self.lock();
        let Some((chunk_count, lone)) = whole.map(|l| (l.count, lone_hold(l.chunk_size))) else {
            return map
                .get(archive)
                .and_then(|e| e.partial.as_ref())
                .map(|p| p.have.clone())
                .unwrap_or_default();
        };
        map.retain(|key, e| {
            key == archive
                || e.partial.is_some()
                || e.touched
                    .is_some_and(|t| now.duration_since(t) < FORGET_AFTER)
        });
        let entry = map.entry(*archive).or_default();
        entry.touched = Some(now);
        let n = chunk_count as usize;
        if entry.handed.len() != n {
            entry.handed = vec![0; n];
        }
        let held = |bits: &[bool], i: usize| bits.get(i).copied().unwrap_or(false);
        // What each recent asker holds; a hand-out is pending until its receiver holds it.
        entry.bits.insert(asker, theirs.to_vec());
        let fresh: Vec<PeerId> = (entry.askers.iter())
            .filter(|(_, at)| now.duration_since(*at) < ASKER_FRESH)
            .map(|(p, _)| *p)
            .chain([asker])
            .collect();
        entry.bits.retain(|p, _| fresh.contains(p));
        let bits = &entry.bits;
        entry.pending.retain(|(i, p, until)| {
            now < *until && !bits.get(p).is_some_and(|b| held(b, *i as usize))
        });
        let unsent = &entry.unsent;
        let holders: Vec<u32> = (0..n)
            .map(|i| {
                bits.iter()
                    .filter(|(p, b)| held(b, i) && !unsent.contains_key(&(i as u32, **p)))
                    .count() as u32
            })
            .collect();
        let mut pending_any = vec![false; n];
        let mut pending_mine = vec![false; n];
        // What waits for a stalled asker is not on its way: others may be handed it.
        let stalled = entry.stalled_peers(now);
        // On its way: asked and unsent here, or written and not yet held.
        let on_the_way =
            (unsent.keys().copied()).chain(entry.pending.iter().map(|&(i, p, _)| (i, p)));
        for (i, p) in on_the_way {
            if p != asker && stalled.contains(&p) {
                continue;
            }
            if let Some(slot) = pending_any.get_mut(i as usize) {
                *slot = true;
            }
            if p == asker {
                if let Some(slot) = pending_mine.get_mut(i as usize) {
                    *slot = true;
                }
            }
        }
        let askers = fresh.iter().collect::<std::collections::HashSet<_>>().len();
        let window = if alone {
            usize::MAX
        } else {
            n.div_ceil(askers.max(1)).clamp(1, WINDOW)
        };
        let choice = Choice {
            theirs,
            holders: &holders,
            pending_any: &pending_any,
            pending_mine: &pending_mine,
            handed: &entry.handed,
        };
        let offered = super_seed(chunk_count, &choice, window);
        if tracing::enabled!(tracing::Level::TRACE) {
            let zero = holders.iter().filter(|&&h| h == 0).count();
            let list: Vec<usize> = (0..n).filter(|&i| offered[i]).collect();
            let mine: Vec<usize> = (0..n).filter(|&i| pending_mine[i]).collect();
            tracing::trace!(%asker, zero, window, ?list, ?mine, "seeder offers");
        }
        // What is held for this asker: its window; for a lone asker, which is offered
        // everything, only the first LONE_HOLD_BYTES of chunks it lacks (it fetches lowest first):
        // holding all of them left a second asker arriving a moment later nothing to
        // fetch, holding none let both fetch the same first chunks (the lab's leave
        // scenario lost its only copies of other chunks to those duplicates).
        let held_for_it: Vec<bool> = if alone {
            let mut left = lone;
            offered
                .iter()
                .map(|&o| {
                    let take = o && left > 0;
                    left -= usize::from(take);
                    take
                })
                .collect()
        } else {
            offered.clone()
        };
        let hold = now + OFFER_HOLD;
        for (i, p, until) in &mut entry.pending {
            if *p == asker && held_for_it.get(*i as usize) == Some(&true) {
                *until = (*until).max(hold);
            }
        }
        for i in (0..n).filter(|&i| held_for_it[i] && !pending_mine[i]) {
            entry.handed[i] += 1;
            entry.pending.push((i as u32, asker, hold));
        }
        offered
    }

    /// One flag per chunk of `archive` (`count` of them): whether this node is sending it
    /// to some peer right now (a range being served, [`Swarms::sending`]); for
    /// [`relay_offer`].
    pub(crate) fn sending_now(&self, archive: &Blake3Hash, count: usize) -> Vec<bool> {
        self.sending_at(archive, count, Instant::now())
    }

    /// [`Swarms::sending_now`] at `now`: chunks waiting for a stalled asker do not count
    /// as being sent (see [`Entry::stalled`]).
    fn sending_at(&self, archive: &Blake3Hash, count: usize, now: Instant) -> Vec<bool> {
        let mut sending = vec![false; count];
        if let Some(entry) = self.lock().get(archive) {
            let stalled = entry.stalled_peers(now);
            for &(index, peer) in entry.unsent.keys() {
                if stalled.contains(&peer) {
                    continue;
                }
                if let Some(bit) = sending.get_mut(index as usize) {
                    *bit = true;
                }
            }
        }
        sending
    }

    /// Chunks `first..end` of `archive` are asked by `peer` (see [`Swarms::sent`]);
    /// until the returned guard says one was written, `peer` counts as lacking it (its
    /// offers requests call it not needed, since it is being fetched here), and, at a
    /// node still downloading it, the chunk is being sent (see [`relay_offer`]). Without
    /// this, once every chunk was asked of the seeder somewhere, it took its first copies
    /// as out while up to 6 s of them still queued here (the swarm lab at 20 Mbit/s,
    /// N = 16) and offered second copies ahead of them.
    pub(crate) fn sending(
        &self,
        archive: Blake3Hash,
        peer: PeerId,
        first: u32,
        end: u32,
        now: Instant,
    ) -> Sending {
        for index in first..end {
            self.sent(&archive, peer, index, now);
        }
        Sending {
            swarms: self.clone(),
            archive,
            peer,
            next: first,
            end,
        }
    }

    /// Chunk `index` asked by `peer` left this node's queue: written at `Some(now)`, or
    /// never (`None`: its range ended early).
    fn unsent_done(
        &self,
        archive: &Blake3Hash,
        peer: PeerId,
        index: u32,
        written: Option<Instant>,
    ) {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(archive) else {
            return;
        };
        // A seeder's chunk is on its way from now: pending until `peer` says it holds it
        // (a range queued here longer than PENDING_TTL has outlived its hand-out). A node
        // still downloading keeps no hand-outs.
        if let Some(now) = written {
            entry.written += 1;
            entry.progress.insert(peer, (now, entry.written));
        }
        if let (Some(now), None) = (written, &entry.partial) {
            if !entry.renew_pending(index, peer, now + PENDING_TTL) {
                entry.pending.push((index, peer, now + PENDING_TTL));
            }
        }
        if let std::collections::hash_map::Entry::Occupied(mut left) =
            entry.unsent.entry((index, peer))
        {
            *left.get_mut() -= 1;
            if *left.get() == 0 {
                left.remove();
            }
        }
        if !entry.unsent.keys().any(|(_, p)| *p == peer) {
            entry.progress.remove(&peer);
        }
    }

    /// Chunk `index` of `archive` is asked by `peer` (unsent until written); as a
    /// whole-archive holder it is on its way there (not offered to others for a while)
    /// unless an offer already counted it.
    fn sent(&self, archive: &Blake3Hash, peer: PeerId, index: u32, now: Instant) {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(archive) else {
            return;
        };
        let until = now + PENDING_TTL;
        entry.progress.entry(peer).or_insert((now, entry.written));
        *entry.unsent.entry((index, peer)).or_default() += 1;
        if entry.partial.is_some() || entry.renew_pending(index, peer, until) {
            return;
        }
        if let Some(count) = entry.handed.get_mut(index as usize) {
            *count += 1;
            entry.pending.push((index, peer, until));
        }
    }
}

/// What a node still downloading an archive offers an asker: the chunks it holds that
/// the asker lacks (`theirs` false) and that this node is not sending to anyone right now
/// (`sending`), when there is at least one; otherwise every chunk it holds.
///
/// Why: the first holder of a fresh chunk is asked for it by every peer it serves (each
/// takes the rarest chunk first), and sent it to them one after another, 55 ms each at
/// the lab's 20 Mbit/s, while those that had it already could have passed it on. Held
/// back while one copy is on its way, the chunk goes to one asker at a time and every
/// receiver becomes a source: a tree instead of a star (BitTorrent's super-seeding
/// applied at every partial holder). Nothing is held back when it would leave the asker
/// without anything new from this node, so its link never idles for it.
pub(crate) fn relay_offer(have: &[bool], theirs: &[bool], sending: &[bool]) -> Vec<bool> {
    let lacks = |i: usize| !theirs.get(i).copied().unwrap_or(false);
    let fresh: Vec<bool> = (0..have.len())
        .map(|i| have[i] && lacks(i) && !sending.get(i).copied().unwrap_or(false))
        .collect();
    if fresh.contains(&true) {
        fresh
    } else {
        have.to_vec()
    }
}

/// A range being sent (see [`Swarms::sending`]).
pub(crate) struct Sending {
    swarms: Swarms,
    archive: Blake3Hash,
    peer: PeerId,
    /// The chunks not written yet.
    next: u32,
    end: u32,
}

impl Sending {
    /// Chunk `index` was written at `now` (ranges are written in order).
    pub(crate) fn written(&mut self, index: u32, now: Instant) {
        while self.next < self.end && self.next <= index {
            (self.swarms).unsent_done(&self.archive, self.peer, self.next, Some(now));
            self.next += 1;
        }
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        for index in self.next..self.end {
            self.swarms
                .unsent_done(&self.archive, self.peer, index, None);
        }
    }
}

/// What a seeder knows when it chooses what to offer one asker (one entry per chunk).
pub(crate) struct Choice<'a> {
    /// The asker's chunks (short: the rest lacking).
    pub theirs: &'a [bool],
    /// How many recent askers hold each chunk.
    pub holders: &'a [u32],
    /// Handed to some asker and not arrived yet.
    pub pending_any: &'a [bool],
    /// Handed to this asker and not arrived yet.
    pub pending_mine: &'a [bool],
    /// Times handed out so far.
    pub handed: &'a [u32],
}

/// Super-seeding, as a pure choice: the asker keeps what was handed to it and has not
/// arrived; that is topped up to `window` with chunks it lacks that nobody is being sent
/// now, the rarest among the askers first (then the least handed out, then the lowest),
/// and only chunks no asker holds while there are any.
/// A chunk on its way to one asker is not offered to another: the others get it from that
/// asker once it holds it, so the seeder sends each chunk about once.
pub(crate) fn super_seed(chunk_count: u32, choice: &Choice<'_>, window: usize) -> Vec<bool> {
    let at = |v: &[bool], i: usize| v.get(i).copied().unwrap_or(false);
    let n = chunk_count as usize;
    let lacks = |i: usize| !at(choice.theirs, i);
    let mut offered: Vec<bool> = (0..n)
        .map(|i| lacks(i) && at(choice.pending_mine, i))
        .collect();
    let count_of = |v: &[u32], i: usize| v.get(i).copied().unwrap_or(0);
    // First copies first: while some chunk is held by no asker, only such chunks are
    // handed out (if they are all on their way to others, nothing new: the asker gets
    // chunks from its peers meanwhile). A seeder that topped windows up with chunks
    // others hold sent a third of the chunks twice before every chunk was out once.
    let first_copies = (0..n).any(|i| count_of(choice.holders, i) == 0);
    let mut candidates: Vec<usize> = (0..n)
        .filter(|&i| lacks(i) && !at(choice.pending_any, i))
        .filter(|&i| !first_copies || count_of(choice.holders, i) == 0)
        .collect();
    candidates.sort_by_key(|&i| (count_of(choice.holders, i), count_of(choice.handed, i), i));
    let left = window.saturating_sub(offered.iter().filter(|&&o| o).count());
    for i in candidates.into_iter().take(left) {
        offered[i] = true;
    }
    offered
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

    fn choose(
        theirs: &[bool],
        holders: &[u32],
        pending_any: &[bool],
        pending_mine: &[bool],
        window: usize,
    ) -> Vec<bool> {
        let handed = vec![0; holders.len()];
        let choice = Choice {
            theirs,
            holders,
            pending_any,
            pending_mine,
            handed: &handed,
        };
        super_seed(holders.len() as u32, &choice, window)
    }

    #[test]
    fn a_lone_downloader_is_offered_everything_it_lacks() {
        let none = [false; 4];
        let theirs = [true, false, false, true];
        assert_eq!(
            choose(&theirs, &[0; 4], &none, &none, usize::MAX),
            vec![false, true, true, false]
        );
        // At most a window, lowest first.
        assert_eq!(
            choose(&[], &[0; 4], &none, &none, 2),
            vec![true, true, false, false]
        );
    }

    #[test]
    fn chunks_on_their_way_to_others_are_not_offered_and_rare_ones_go_first() {
        let none = [false; 4];
        // 0 and 1 are being sent to someone else: the newcomer is offered 2 and 3.
        let busy = [true, true, false, false];
        assert_eq!(
            choose(&[], &[0; 4], &busy, &none, 8),
            vec![false, false, true, true]
        );
        // The rarest among the askers first.
        assert_eq!(
            choose(&[], &[2, 0, 1, 0], &none, &none, 2),
            vec![false, true, false, true]
        );
        // What was handed to this asker stays offered, topped up to the window.
        let mine = [true, false, false, false];
        assert_eq!(
            choose(&[], &[0; 4], &mine, &mine, 2),
            vec![true, true, false, false]
        );
        assert_eq!(
            choose(&[], &[0; 4], &mine, &mine, 1),
            vec![true, false, false, false]
        );
        // Everything lacking is on its way to others: nothing new.
        assert_eq!(
            choose(
                &[true, true, false, false],
                &[0; 4],
                &busy.map(|_| true),
                &none,
                8
            ),
            vec![false; 4]
        );
    }

    /// An archive of `count` chunks of 1 MiB.
    fn mib(count: u32) -> Option<Layout> {
        Some(Layout {
            size: u64::from(count) << 20,
            chunk_size: 1 << 20,
            count,
        })
    }

    #[test]
    fn a_lone_askers_hold_is_measured_in_bytes() {
        assert_eq!(lone_hold(1 << 20), 8);
        assert_eq!(lone_hold(1 << 18), 32);
        assert_eq!(lone_hold(64 << 20), 1);
    }

    #[test]
    fn askers_together_get_disjoint_windows_and_hand_outs_clear_on_arrival() {
        let swarms = Swarms::default();
        let archive = Blake3Hash::of(b"s");
        let (a, b) = (PeerId::random(), PeerId::random());
        swarms.asked(archive, a, &[]);
        swarms.asked(archive, b, &[]);
        let x = swarms.offers(&archive, mib(100), &[], a, false);
        let y = swarms.offers(&archive, mib(100), &[], b, false);
        assert_eq!(x.iter().filter(|&&v| v).count(), WINDOW);
        assert_eq!(y.iter().filter(|&&v| v).count(), WINDOW);
        assert!(x.iter().zip(&y).all(|(p, q)| !(p & q)), "{x:?} {y:?}");
        // Asking again before anything arrived: the same window, nothing more.
        assert_eq!(swarms.offers(&archive, mib(100), &[], a, false), x);
        // a now holds its window: it gets a new one, and b may now be offered a's chunks.
        let z = swarms.offers(&archive, mib(100), &x, a, false);
        assert!(z.iter().zip(&x).all(|(p, q)| !(p & q)));
        assert_eq!(z.iter().filter(|&&v| v).count(), WINDOW);
        // Alone, an asker is offered everything it lacks.
        let c = swarms.offers(&Blake3Hash::of(b"t"), mib(100), &[], PeerId::random(), true);
        assert!(c.iter().all(|&v| v));
    }

    #[test]
    fn a_chunk_queued_or_written_here_goes_to_nobody_else_until_it_arrives() {
        let swarms = Swarms::default();
        let archive = Blake3Hash::of(b"q");
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        swarms.asked(archive, a, &[]);
        swarms.asked(archive, b, &[]);
        // Two chunks, so each asker's window is one chunk.
        let layout = Some(Layout {
            size: 2 << 20,
            chunk_size: 1 << 20,
            count: 2,
        });
        let offers = |asker, theirs: &[bool], ms| {
            swarms.offers_at(&archive, layout, theirs, asker, false, at(ms))
        };
        assert_eq!(offers(a, &[], 0), [true, false]);
        assert_eq!(offers(b, &[], 0), [false, true]);
        let mut range = swarms.sending(archive, a, 0, 1, at(10));
        // Queued here past the offer's hold: still a's, nobody else's (see the next test
        // for a queue that stops moving).
        assert_eq!(offers(b, &[], 1_400), [false, true]);
        // Written, and a has not said yet that it holds it: still a's.
        range.written(0, at(7_000));
        drop(range);
        assert_eq!(offers(b, &[], 7_100), [false, true]);
        // A range that ends before a chunk is written gives the chunk back at once.
        drop(swarms.sending(archive, a, 1, 2, at(7_200)));
        assert_eq!(offers(b, &[], 7_300), [false, true]);
        // Once a holds both chunks, every chunk has a holder: b may fetch chunk 0 as a
        // second copy.
        assert_eq!(offers(a, &[true, true], 7_400), [false, false]);
        assert_eq!(offers(b, &[false, true], 7_500), [true, false]);
    }

    #[test]
    fn chunks_waiting_for_a_stalled_asker_go_to_others() {
        let swarms = Swarms::default();
        let archive = Blake3Hash::of(b"s");
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let stall = STALL.as_millis() as u64;
        let others = STALL_CHUNKS as u32;
        swarms.asked(archive, a, &[]);
        swarms.asked(archive, b, &[]);
        // Four chunks, so each asker's window is two.
        let layout = Some(Layout {
            size: 4 << 20,
            chunk_size: 1 << 20,
            count: 4,
        });
        let offers = |asker, theirs: &[bool], ms| {
            swarms.offers_at(&archive, layout, theirs, asker, false, at(ms))
        };
        assert_eq!(offers(a, &[], 0), [true, true, false, false]);
        assert_eq!(offers(b, &[], 0), [false, false, true, true]);
        // a asks for its two; the first is written at 1 s, the second waits here.
        let mut range = swarms.sending(archive, a, 0, 2, at(10));
        range.written(0, at(1_000));
        // b holds its own two: while a's range moves, a's chunks are nobody else's.
        let b_holds = [false, false, true, true];
        assert_eq!(offers(b, &b_holds, 1_000 + stall - 100), [false; 4]);
        // Nothing written to anyone since: a waits its turn on a busy link (large
        // chunks), it is not stalled however long that takes.
        assert_eq!(offers(b, &b_holds, 1_000 + 2 * stall), [false; 4]);
        // STALL_CHUNKS written to c (chunks past this layout, so they stay out of the
        // offers) and still nothing to a: both go to b too (the one written may sit in
        // a's socket as long as the rest waits here).
        let mut to_c = swarms.sending(archive, c, 4, 4 + others, at(1_000));
        to_c.written(4 + others - 2, at(1_000 + 2 * stall));
        assert_eq!(
            offers(b, &b_holds, 1_000 + 2 * stall),
            [false; 4],
            "one short"
        );
        to_c.written(4 + others - 1, at(1_000 + 2 * stall));
        assert_eq!(
            offers(b, &b_holds, 1_000 + 2 * stall),
            [true, true, false, false]
        );
        // A partial holder's chunk waiting for a stalled asker is not "being sent".
        let partial = Blake3Hash::of(b"p");
        swarms.join(
            partial,
            PathBuf::from("p.part"),
            Layout {
                size: 8,
                chunk_size: 4,
                count: 2,
            },
            vec![true, true],
        );
        let _sending = swarms.sending(partial, a, 0, 1, at(0));
        assert_eq!(swarms.sending_at(&partial, 2, at(100)), [true, false]);
        assert_eq!(
            swarms.sending_at(&partial, 2, at(stall + 100)),
            [true, false],
            "nothing written to others meanwhile"
        );
        let mut to_c = swarms.sending(partial, c, 2, 2 + others, at(0));
        to_c.written(1 + others, at(100));
        assert_eq!(
            swarms.sending_at(&partial, 2, at(stall + 100)),
            [false, false]
        );
        range.written(1, at(5_000));
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
            swarms.offers(&archive, None, &[], PeerId::random(), true),
            vec![true, true, false]
        );
        swarms.leave(&archive);
        assert!(swarms.partial(&archive).is_none());
        // Peer exchange: each asker hears of the earlier ones.
        let (a, b) = (PeerId::random(), PeerId::random());
        assert!(swarms.asked(archive, a, &[]).is_empty());
        assert_eq!(swarms.asked(archive, b, &[]), vec![a]);
        assert_eq!(swarms.asked(archive, a, &[]), vec![b]);
        assert!(swarms
            .offers(&archive, None, &[], PeerId::random(), true)
            .is_empty());
    }

    proptest! {
        #[test]
        fn bits_round_trip(bits in proptest::collection::vec(any::<bool>(), 0..100)) {
            prop_assert_eq!(unpack(&pack(&bits), bits.len() as u32), bits);
        }

        /// Super-seeding offers only chunks the asker lacks, never one on its way to
        /// another asker, and tops up to `window` at most.
        #[test]
        fn super_seeding_never_offers_what_is_on_its_way_elsewhere(
            theirs in proptest::collection::vec(any::<bool>(), 0..40),
            holders in proptest::collection::vec(0u32..4, 1..40),
            pending_any in proptest::collection::vec(any::<bool>(), 40),
            mine_mask in proptest::collection::vec(any::<bool>(), 40),
            window in 1usize..50,
        ) {
            let n = holders.len();
            let pending_any = &pending_any[..n];
            let pending_mine: Vec<bool> = (0..n).map(|i| pending_any[i] && mine_mask[i]).collect();
            let offered = choose(&theirs, &holders, pending_any, &pending_mine, window);
            let lacks = |i: usize| !theirs.get(i).copied().unwrap_or(false);
            prop_assert_eq!(offered.len(), n);
            let (mut new, mut kept) = (0, 0);
            for i in 0..n {
                if offered[i] {
                    prop_assert!(lacks(i));
                    prop_assert!(!pending_any[i] || pending_mine[i], "chunk {} is on its way elsewhere", i);
                    new += usize::from(!pending_mine[i]);
                    kept += usize::from(pending_mine[i]);
                }
            }
            prop_assert!(new == 0 || new + kept <= window);
            // While a chunk is held by no asker, no chunk someone holds is handed out anew.
            if holders.contains(&0) {
                for i in 0..n {
                    prop_assert!(!offered[i] || pending_mine[i] || holders[i] == 0, "chunk {} is a second copy", i);
                }
            }
        }
    }
}

#[cfg(test)]
mod news_tests {
    //! Held offers requests (`Swarms::news_for`) with a real running-download entry.
    use super::*;

    const ARCHIVE: Blake3Hash = Blake3Hash([7; 32]);
    /// "At once" for a held ask: well below `NEWS_WAIT`.
    const AT_ONCE: Duration = Duration::from_millis(100);

    fn downloading(have: Vec<bool>) -> Swarms {
        let swarms = Swarms::default();
        let layout = Layout {
            size: 4 * 1024,
            chunk_size: 1024,
            count: 4,
        };
        swarms.join(ARCHIVE, PathBuf::from("unused"), layout, have);
        swarms
    }

    /// Asserts that a held ask returns within `within` (`why` otherwise).
    async fn answered(held: tokio::task::JoinHandle<()>, within: Duration, why: &str) {
        tokio::time::timeout(within, held)
            .await
            .expect(why)
            .unwrap();
    }

    /// Spawns `news_for` and returns a handle that finishes when it returns.
    fn wait(swarms: &Swarms, peer: PeerId, theirs: Vec<bool>) -> tokio::task::JoinHandle<()> {
        let swarms = swarms.clone();
        tokio::spawn(async move { swarms.news_for(&ARCHIVE, peer, &theirs).await })
    }

    #[tokio::test]
    async fn a_held_ask_returns_when_a_chunk_the_asker_lacks_arrives() {
        let swarms = downloading(vec![true, false, false, false]);
        let peer = PeerId::random();
        // It holds chunk 0, which the asker has: nothing new, so it waits.
        let held = wait(&swarms, peer, vec![true, false, false, false]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!held.is_finished(), "answered with nothing new");
        // Chunk 1 verified; the asker lacks it: answered at once (well before NEWS_WAIT).
        swarms.hold(&ARCHIVE, 1);
        answered(
            held,
            NEWS_WAIT / 2,
            "a chunk the asker lacks wakes the held ask",
        )
        .await;
    }

    /// What the running download offers an asker with `theirs`, and what the asker is
    /// told (every chunk held), as `serve_offers` computes them.
    fn relay(swarms: &Swarms, theirs: &[bool]) -> Option<(Vec<bool>, Vec<bool>)> {
        let have = swarms.partial(&ARCHIVE)?.have;
        let sending = swarms.sending_now(&ARCHIVE, have.len());
        Some((relay_offer(&have, theirs, &sending), have))
    }

    #[test]
    fn a_chunk_on_its_way_to_one_peer_is_not_offered_to_the_next() {
        let swarms = downloading(vec![true, true, false, false]);
        let (first, second) = (PeerId::random(), PeerId::random());
        let lacking = vec![false; 4];
        // Nothing is being sent: everything held is offered.
        let (offered, told) = relay(&swarms, &lacking).unwrap();
        assert_eq!(offered, vec![true, true, false, false]);
        assert_eq!(told, vec![true, true, false, false]);
        // Chunk 0 goes to the first asker: the second is offered only chunk 1 meanwhile,
        // and told of both (chunk 0 is no news to wake it with).
        let mut range = swarms.sending(ARCHIVE, first, 0, 1, Instant::now());
        let (offered, told) = relay(&swarms, &lacking).unwrap();
        assert_eq!(offered, vec![false, true, false, false]);
        assert_eq!(told, vec![true, true, false, false]);
        // An asker that has chunk 1 would get nothing new: it is offered all that is held.
        let has_1 = vec![false, true, false, false];
        let (offered, _) = relay(&swarms, &has_1).unwrap();
        assert_eq!(offered, vec![true, true, false, false]);
        // Written: offered to everyone again.
        range.written(0, Instant::now());
        let (offered, _) = relay(&swarms, &lacking).unwrap();
        assert_eq!(offered, vec![true, true, false, false]);
        // A range that ends early (dropped) releases what it had not written.
        let range = swarms.sending(ARCHIVE, second, 0, 2, Instant::now());
        let (offered, _) = relay(&swarms, &lacking).unwrap();
        assert_eq!(
            offered,
            vec![true, true, false, false],
            "both on their way: all offered"
        );
        drop(range);
        let mut range = swarms.sending(ARCHIVE, second, 1, 2, Instant::now());
        let (offered, _) = relay(&swarms, &lacking).unwrap();
        assert_eq!(offered, vec![true, false, false, false]);
        range.written(1, Instant::now());
        assert!(relay(&Swarms::default(), &lacking).is_none());
    }

    #[test]
    fn askers_gone_quiet_no_longer_count_as_holders() {
        let swarms = downloading(vec![true, true, false, false]);
        let (gone, here) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        swarms.asked_at(ARCHIVE, gone, &[true, true, true, true], t0);
        swarms.asked_at(ARCHIVE, here, &[true, false, false, false], t0);
        assert_eq!(swarms.holders(&ARCHIVE, 0), 2);
        assert_eq!(swarms.holders(&ARCHIVE, 3), 1);
        // `gone` finished and left; `here` keeps asking.
        let later = t0 + ASKER_FRESH + Duration::from_secs(1);
        swarms.asked_at(ARCHIVE, here, &[true, true, false, false], later);
        assert_eq!(swarms.holders(&ARCHIVE, 0), 1);
        assert_eq!(swarms.holders(&ARCHIVE, 1), 1);
        assert_eq!(
            swarms.holders(&ARCHIVE, 3),
            0,
            "a quiet asker still counted"
        );
    }

    #[test]
    fn relay_offers_hold_back_only_what_leaves_something_new() {
        let have = [true, true, true, false];
        // Chunk 1 is on its way elsewhere; the asker lacks 1 and 2: it gets 2.
        let offered = relay_offer(
            &have,
            &[true, false, false, false],
            &[false, true, false, false],
        );
        assert_eq!(offered, vec![false, false, true, false]);
        // It lacks only chunk 1: holding it back would leave nothing, so all is offered.
        let offered = relay_offer(
            &have,
            &[true, false, true, false],
            &[false, true, false, false],
        );
        assert_eq!(offered, have.to_vec());
        // Short bits: the rest count as lacking.
        let offered = relay_offer(&have, &[], &[true]);
        assert_eq!(offered, vec![false, true, true, false]);
    }

    #[tokio::test]
    async fn told_chunks_and_chunks_the_asker_has_are_no_news() {
        let swarms = downloading(vec![true, true, false, false]);
        let peer = PeerId::random();
        swarms.asked(ARCHIVE, peer, &[false; 4]);
        // Without an earlier answer, held chunks the asker lacks are news at once.
        let fresh = wait(&swarms, peer, vec![false; 4]);
        answered(fresh, AT_ONCE, "chunks it was never told of are news").await;
        swarms.told(&ARCHIVE, peer, &[true, true, false, false]);
        let begun = std::time::Instant::now();
        let held = wait(&swarms, peer, vec![false, false, true, false]);
        // Chunk 2 arrives, but the asker has it: still nothing new.
        swarms.hold(&ARCHIVE, 2);
        held.await.unwrap();
        assert!(
            begun.elapsed() >= NEWS_WAIT,
            "returned before NEWS_WAIT without news"
        );
        // Another asker, never told anything, gets the same chunks as news at once.
        let other = PeerId::random();
        answered(
            wait(&swarms, other, vec![false; 4]),
            AT_ONCE,
            "another asker's news",
        )
        .await;
    }

    #[tokio::test]
    async fn the_end_of_the_download_releases_held_asks() {
        let swarms = downloading(vec![false; 4]);
        let held = wait(&swarms, PeerId::random(), vec![false; 4]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!held.is_finished());
        swarms.leave(&ARCHIVE);
        answered(held, NEWS_WAIT / 2, "leaving wakes held asks").await;
        // Bits of another size are not held.
        let swarms = downloading(vec![false; 4]);
        let wrong = vec![false; 4096];
        let held = wait(&swarms, PeerId::random(), wrong);
        answered(held, AT_ONCE, "bits of the wrong size are answered at once").await;
        // Nothing running: no wait at all.
        let unknown = Swarms::default();
        let held = wait(&unknown, PeerId::random(), vec![]);
        answered(held, AT_ONCE, "no running download, no wait").await;
    }
}
