//! The socket-free heart of a download: which chunk to ask of which provider next, what a
//! failure, a stall or a success means, and when the download is done or cannot finish.
//! It takes events and `now` and answers with work to do; it never touches I/O or time.
//!
//! Work goes out per chunk ([`Schedule::next_assignments`]) or as runs of consecutive
//! chunks, one streamed range per run ([`Schedule::next_ranges`]). Once nothing is left
//! to hand out, an idle provider steals the last chunk of a provider whose oldest request
//! has waited past [`Limits::steal_after`] ([`Schedule::steal`]); each chunk is stolen at
//! most once, and whichever answer is verified first counts.
//!
//! Providers may hold only some chunks (partial holders in a swarm, or a seeder that
//! advertises only what it has not sent yet): [`Schedule::set_have`] records what each
//! one offers, and a provider is only ever asked for chunks it offers. Among those, the
//! rarest chunk (held by the fewest active providers) goes first; ties go to the queue's
//! order, or, after [`Schedule::set_spread`], to a per-download pseudo-random order of
//! blocks, so that downloaders starting together ask for different chunks.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::{self, Debug};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Caps and deadlines of one download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests outstanding to one provider at a time.
    pub per_provider: usize,
    /// Chunks outstanding overall. Received chunks wait in a bounded verification queue,
    /// so memory is bounded by that queue and the transport's windows, not by this.
    pub total: usize,
    /// A provider that sent nothing for this long while requests to it are outstanding
    /// is stalled (see [`Schedule::on_progress`]).
    pub chunk_deadline: Duration,
    /// Consecutive transport errors after which a provider is dropped.
    pub max_strikes: u32,
    /// Once every missing chunk is asked for, a chunk whose provider has sent nothing
    /// for this long, and for [`STEAL_GAPS`] of its usual gaps between chunks, may be
    /// asked of an idle provider too (work stealing from a slow provider).
    pub steal_after: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // Chunks asked of one provider: two streamed ranges of 8 in flight, so the
            // provider starts the next range while the receiver drains the first.
            per_provider: 16,
            total: 48,
            chunk_deadline: Duration::from_secs(30),
            max_strikes: 3,
            // 2 s left the swarm lab's last installer waiting up to 1.5 s for its last
            // 128 KiB chunk behind a busy peer (N = 16: 1.57–1.88 × the bound, 1.47–1.50
            // with 0.5 s); a provider's own pace (STEAL_GAPS) keeps slow links from
            // being stolen from while they send.
            steal_after: Duration::from_millis(500),
        }
    }
}

/// A provider is slow enough to steal from once silent for this many of its usual gaps
/// between chunks (and at least [`Limits::steal_after`]).
const STEAL_GAPS: f64 = 4.0;

/// Why a chunk request did not yield a verified chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The provider answered with bytes that do not match the chunk list: dropped at once.
    Corrupt(String),
    /// The request failed (connection, not found, remote error): a strike.
    Transport(String),
}

/// The download cannot finish: chunks are missing and every provider was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck<P> {
    pub missing: u32,
    pub total: u32,
    /// Each provider given, with why it was dropped.
    pub failures: Vec<(P, String)>,
}

impl<P: Debug> fmt::Display for Stuck<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} chunks missing and no provider left",
            self.missing, self.total
        )?;
        if self.failures.is_empty() {
            return f.write_str(" (no providers were given)");
        }
        f.write_str(" (")?;
        for (n, (peer, why)) in self.failures.iter().enumerate() {
            if n > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{peer:?}: {why}")?;
        }
        f.write_str(")")
    }
}

#[derive(Debug)]
struct Provider<P> {
    id: P,
    in_flight: usize,
    strikes: u32,
    /// `Some(reason)` once dropped; a dropped provider gets no more work.
    dropped: Option<String>,
    /// The chunks it offers; `None`: all of them.
    has: Option<Vec<bool>>,
    /// Smoothed time between its chunks while it has work (its rate), once measured.
    gap: Option<f64>,
    /// When its last chunk arrived, or its first request went out after it was idle.
    last: Option<Instant>,
    /// What it offers is a seeder's window held for this node: asked whole, at once.
    window: bool,
}

/// A download's state as far as asking more goes (see [`Schedule::pressure`]): with
/// chunks queued and `in_flight < cap` (`in_flight` counts what the cap limits, so not
/// a seeder's window), `askable == 0` means no provider that has room
/// offers any of them (the swarm starves it); `in_flight == cap` means its own cap holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pressure {
    pub in_flight: usize,
    pub cap: usize,
    pub queued: usize,
    pub providers: usize,
    pub with_room: usize,
    pub offering: usize,
    pub askable: usize,
}

/// Chunks asked at once of a provider that offers only some (a swarm peer) before its
/// rate is known.
const START_WINDOW: usize = 2;
/// A swarm peer is asked at most what it delivers in this long (its rate measured from
/// its chunks' arrivals), and at least [`START_WINDOW`]: a chunk asked of a peer whose
/// upload is shared by many waits there while others that offer it sit idle, so each peer
/// gets what it can send soon, not [`Limits::per_provider`].
const QUEUE_TIME: Duration = Duration::from_secs(1);
/// Chunks outstanding overall, at least, while swarm peers are in play (see
/// `Schedule::total_cap`).
const SWARM_TOTAL: usize = 6;

/// The plan of one download. Each missing chunk is either queued or outstanding with
/// exactly one provider; only the outstanding provider's answer counts for it.
#[derive(Debug)]
pub struct Schedule<P> {
    limits: Limits,
    verified: Vec<bool>,
    missing: u32,
    /// Chunks asked for: the provider (index into `providers`) and since when. At most
    /// `limits.total` entries, so per-event scans stay cheap on huge archives.
    outstanding: BTreeMap<u32, (usize, Instant)>,
    in_flight: usize,
    /// Missing chunks nobody is asked for, lowest first except re-queued ones (front).
    queue: VecDeque<u32>,
    providers: Vec<Provider<P>>,
    by_id: HashMap<P, usize>,
    /// Where the least-loaded search starts, so ties rotate between providers.
    cursor: usize,
    /// Chunks already stolen once (never stolen again, so stealing ends).
    stolen: std::collections::HashSet<u32>,
    /// Outstanding chunks asked as part of a seeder's window: they do not count against
    /// the overall cap (see [`Schedule::take_window`]).
    windowed: std::collections::HashSet<u32>,
    /// Seed of the tie-break order between equally rare chunks (`None`: queue order).
    spread: Option<(u64, u32)>,
    /// Smoothed time between chunks from anyone while chunks are asked (this node's
    /// download rate), and when the last arrived or work restarted.
    gap: Option<f64>,
    last: Option<Instant>,
}

impl<P: Clone + Eq + Hash + Debug> Schedule<P> {
    /// A plan for `chunk_count` chunks of which `have` are already verified (resume).
    /// Indices out of range in `have` are ignored; duplicate providers are merged.
    pub fn new(
        chunk_count: u32,
        have: impl IntoIterator<Item = u32>,
        providers: impl IntoIterator<Item = P>,
        limits: Limits,
    ) -> Self {
        let mut verified = vec![false; chunk_count as usize];
        for index in have {
            if let Some(slot) = verified.get_mut(index as usize) {
                *slot = true;
            }
        }
        let queue: VecDeque<u32> = (0..chunk_count)
            .filter(|&i| !verified[i as usize])
            .collect();
        let mut schedule = Self {
            limits: Limits {
                per_provider: limits.per_provider.max(1),
                total: limits.total.max(1),
                max_strikes: limits.max_strikes.max(1),
                ..limits
            },
            missing: queue.len() as u32,
            verified,
            outstanding: BTreeMap::new(),
            in_flight: 0,
            queue,
            providers: Vec::new(),
            by_id: HashMap::new(),
            cursor: 0,
            stolen: std::collections::HashSet::new(),
            windowed: std::collections::HashSet::new(),
            spread: None,
            gap: None,
            last: None,
        };
        for provider in providers {
            schedule.add_provider(provider);
        }
        schedule
    }

    /// Adds a provider found later; a known one (even dropped) is left as it is.
    pub fn add_provider(&mut self, id: P) {
        if self.by_id.contains_key(&id) {
            return;
        }
        self.by_id.insert(id.clone(), self.providers.len());
        self.providers.push(Provider {
            id,
            in_flight: 0,
            strikes: 0,
            dropped: None,
            has: None,
            gap: None,
            last: None,
            window: false,
        });
    }

    /// What provider `id` offers: `Some(bits)` one flag per chunk, `None` every chunk. A
    /// list of the wrong length is taken as offering nothing. Chunks already asked of it
    /// stay asked (a seeder stops advertising what it sent, and still serves it).
    pub fn set_have(&mut self, id: &P, has: Option<Vec<bool>>) {
        let Some(&p) = self.by_id.get(id) else { return };
        let count = self.verified.len();
        self.providers[p].has = match has {
            Some(bits) if bits.len() == count => Some(bits),
            Some(_) => Some(vec![false; count]),
            None => None,
        };
    }

    /// What `id` offers (see [`Schedule::set_have`]) is a seeder's window held for this
    /// node (super-seeding): the next [`Schedule::next_ranges`] asks all of it that is
    /// queued, past the caps. A seeder holds a window for a moment only and hands out
    /// chunks nobody else has, so a window left waiting behind the caps idles the link
    /// every other node depends on.
    pub fn take_window(&mut self, id: &P) {
        if let Some(&p) = self.by_id.get(id) {
            self.providers[p].window = self.providers[p].has.is_some();
        }
    }

    /// Breaks ties between equally rare chunks by a pseudo-random order of blocks of
    /// `block` chunks drawn from `seed` (consecutive chunks stay together, so streamed
    /// ranges stay long) instead of the queue's order.
    pub fn set_spread(&mut self, seed: u64, block: u32) {
        self.spread = Some((seed, block.max(1)));
    }

    /// True in the end game: every missing chunk is asked of someone. (Chunks nobody
    /// offers yet do not count as the end game: in a swarm they are on their way to a
    /// peer, and stealing then would only send chunks twice over shared links.)
    fn nothing_to_hand_out(&self) -> bool {
        self.queue.is_empty() || self.providers.iter().all(|p| p.dropped.is_some())
    }

    /// Queued chunks no active provider offers (they wait for someone to get them).
    pub fn unavailable(&self) -> u32 {
        self.queue
            .iter()
            .filter(|&&index| self.availability(index) == 0)
            .count() as u32
    }

    /// Whether provider `p` offers chunk `index`.
    fn holds(&self, p: usize, index: u32) -> bool {
        self.providers[p]
            .has
            .as_ref()
            .is_none_or(|bits| bits.get(index as usize).copied().unwrap_or(false))
    }

    /// Active providers offering chunk `index`.
    fn availability(&self, index: u32) -> usize {
        (0..self.providers.len())
            .filter(|&p| self.providers[p].dropped.is_none() && self.holds(p, index))
            .count()
    }

    /// The tie-break rank of chunk `index` (lower first).
    fn rank(&self, index: u32) -> u64 {
        match self.spread {
            None => 0,
            Some((seed, block)) => splitmix64(seed ^ u64::from(index / block)),
        }
    }

    /// The queue position of the chunk to ask `p` for next: the rarest it offers, ties
    /// by rank then queue order. `None` if it offers nothing queued.
    fn pick(&self, p: usize) -> Option<usize> {
        if self.providers[p].has.is_none() && self.spread.is_none() {
            // Fast path (a provider with everything, no spreading): the queue's front
            // unless a chunk is rarer elsewhere.
            let all = self.providers.iter().all(|q| q.has.is_none());
            if all {
                return (!self.queue.is_empty()).then_some(0);
            }
        }
        self.queue
            .iter()
            .enumerate()
            .filter(|&(_, &index)| self.holds(p, index))
            .min_by_key(|&(position, &index)| {
                (self.availability(index), self.rank(index), position)
            })
            .map(|(position, _)| position)
    }

    /// Chunks provider `p` may have outstanding: [`Limits::per_provider`] for one that
    /// offers everything; for a swarm peer what it delivers in [`QUEUE_TIME`] (see there).
    fn cap(&self, p: usize) -> usize {
        let provider = &self.providers[p];
        let max = self.limits.per_provider;
        let least = START_WINDOW.min(max);
        match (&provider.has, provider.gap) {
            (None, _) => max,
            (Some(_), None) => least,
            (Some(_), Some(gap)) => {
                let rate = QUEUE_TIME.as_secs_f64() / gap.max(1e-6);
                (rate.ceil().min(max as f64) as usize + 1).clamp(least, max)
            }
        }
    }

    /// Provider `p` gets work at `now`: if it had none, its next chunk's wait counts from
    /// now (the time it sat idle is not its rate); the same for the download as a whole.
    fn busy(&mut self, p: usize, now: Instant) {
        if self.providers[p].in_flight == 0 {
            self.providers[p].last = Some(now);
        }
        if self.in_flight == 0 {
            self.last = Some(now);
        }
    }

    /// Chunks outstanding overall: [`Limits::total`], or, while swarm peers are in play,
    /// what this node receives in [`QUEUE_TIME`] (at least [`SWARM_TOTAL`]). A node pulling
    /// from every peer that will serve it splits its own link so many ways that no chunk
    /// arrives for seconds and it has nothing to pass on; the seeder's chunks, which
    /// only it has, crawl too.
    fn total_cap(&self) -> usize {
        let max = self.limits.total;
        if self.providers.iter().all(|p| p.has.is_none()) {
            return max;
        }
        let least = SWARM_TOTAL.min(max);
        match self.gap {
            None => least,
            Some(gap) => {
                let rate = QUEUE_TIME.as_secs_f64() / gap.max(1e-6);
                (rate.ceil().min(max as f64) as usize + 2).clamp(least, max)
            }
        }
    }

    /// The least-loaded provider with room that offers something queued, and what.
    fn next_pick(&self) -> Option<(usize, usize)> {
        let n = self.providers.len();
        let mut candidates: Vec<usize> = (0..n)
            .map(|k| (self.cursor + k) % n)
            .filter(|&p| {
                let provider = &self.providers[p];
                provider.dropped.is_none() && provider.in_flight < self.cap(p)
            })
            .collect();
        candidates.sort_by_key(|&p| self.providers[p].in_flight);
        candidates
            .into_iter()
            .find_map(|p| self.pick(p).map(|position| (p, position)))
    }

    /// Drops a provider for a reason found outside chunk requests (e.g. a wrong chunk
    /// list). Its outstanding chunks are re-queued; returns them so the caller can cancel
    /// those requests.
    pub fn drop_provider(&mut self, id: &P, why: impl Into<String>) -> Vec<u32> {
        match self.by_id.get(id) {
            Some(&p) => self.drop_index(p, why.into()),
            None => Vec::new(),
        }
    }

    /// New requests to send now, within the caps, spread over the least-loaded providers.
    pub fn next_assignments(&mut self, now: Instant) -> Vec<(P, u32)> {
        let mut out = Vec::new();
        while self.counted() < self.total_cap() && !self.queue.is_empty() {
            let Some((p, position)) = self.next_pick() else {
                break;
            };
            let Some(index) = self.queue.remove(position) else {
                break;
            };
            self.outstanding.insert(index, (p, now));
            self.busy(p, now);
            self.providers[p].in_flight += 1;
            self.in_flight += 1;
            self.cursor = (p + 1) % self.providers.len();
            out.push((self.providers[p].id.clone(), index));
        }
        out
    }

    /// New work as runs of consecutive chunks: `(provider, first, count)`, each at most
    /// `max_run` long and within the caps, spread over the least-loaded providers.
    pub fn next_ranges(&mut self, now: Instant, max_run: u32) -> Vec<(P, u32, u32)> {
        let max_run = max_run.max(1);
        let mut out = Vec::new();
        for p in 0..self.providers.len() {
            if std::mem::take(&mut self.providers[p].window) && self.providers[p].dropped.is_none()
            {
                self.ask_window(p, now, max_run, &mut out);
            }
        }
        while self.counted() < self.total_cap() && !self.queue.is_empty() {
            let Some((p, position)) = self.next_pick() else {
                break;
            };
            let room = (self.cap(p).saturating_sub(self.providers[p].in_flight))
                .min(self.total_cap() - self.counted());
            let limit = (room.max(1) as u32).min(max_run);
            let Some(range) = self.take_run(p, position, limit, now) else {
                break;
            };
            self.cursor = (p + 1) % self.providers.len();
            out.push(range);
        }
        out
    }

    /// Asks provider `p` for the queued chunk at `position` and the ones queued right
    /// behind it that `p` offers too, at most `limit` in all: `(p, first, count)`.
    fn take_run(
        &mut self,
        p: usize,
        position: usize,
        limit: u32,
        now: Instant,
    ) -> Option<(P, u32, u32)> {
        let first = self.queue.remove(position)?;
        let mut count = 1u32;
        while count < limit
            && self.queue.get(position) == Some(&(first + count))
            && self.holds(p, first + count)
        {
            self.queue.remove(position);
            count += 1;
        }
        for index in first..first + count {
            self.outstanding.insert(index, (p, now));
        }
        self.busy(p, now);
        self.providers[p].in_flight += count as usize;
        self.in_flight += count as usize;
        Some((self.providers[p].id.clone(), first, count))
    }

    /// Asks provider `p` for every queued chunk it offers, in runs of consecutive ones.
    fn ask_window(&mut self, p: usize, now: Instant, max_run: u32, out: &mut Vec<(P, u32, u32)>) {
        let mut position = 0;
        while position < self.queue.len() {
            if !self.holds(p, self.queue[position]) {
                position += 1;
                continue;
            }
            if let Some(range) = self.take_run(p, position, max_run, now) {
                self.windowed.extend(range.1..range.1 + range.2);
                out.push(range);
            }
        }
    }

    /// Work stealing (end game): with nothing left to hand out, providers with room take
    /// over the chunks of the provider whose oldest request has waited at least
    /// [`Limits::steal_after`], its last chunk first. The slow provider's late answer is
    /// then stale. A chunk is stolen at most once, so a slow thief is left to the stall
    /// deadline. Returns the new requests `(thief, index)`.
    pub fn steal(&mut self, now: Instant) -> Vec<(P, u32)> {
        let mut out = Vec::new();
        if !self.nothing_to_hand_out() {
            return out;
        }
        // Chunks nobody else offers now: skipped in this pass only. Offers change (a
        // provider told of the end game offers what it held back), so they are looked at
        // again at the next pass; marking them stolen left them with a stalled provider
        // until its chunk deadline.
        let mut skipped = std::collections::HashSet::new();
        loop {
            if self.counted() >= self.total_cap() {
                break;
            }
            // The victim: the slowest provider (oldest unstolen request) past the threshold.
            let victim = self
                .outstanding
                .iter()
                .filter(|(index, &(owner, since))| {
                    !self.stolen.contains(index)
                        && !skipped.contains(*index)
                        && now.saturating_duration_since(since) >= self.steal_wait(owner)
                })
                .min_by_key(|(_, &(owner, since))| (since, owner))
                .map(|(_, &(owner, _))| owner);
            let Some(victim) = victim else { break };
            let index = self
                .outstanding
                .iter()
                .rev()
                .find(|(index, &(owner, _))| {
                    owner == victim && !self.stolen.contains(index) && !skipped.contains(*index)
                })
                .map(|(&index, _)| index);
            let Some(index) = index else { break };
            let Some(thief) = self.least_loaded_holder(victim, index) else {
                let offered = (0..self.providers.len()).any(|p| {
                    p != victim && self.providers[p].dropped.is_none() && self.holds(p, index)
                });
                if offered {
                    break; // the others are busy: later
                }
                // Nobody else offers it now: it stays with the victim for this pass.
                skipped.insert(index);
                continue;
            };
            self.stolen.insert(index);
            self.windowed.remove(&index);
            self.outstanding.insert(index, (thief, now));
            self.providers[victim].in_flight -= 1;
            self.busy(thief, now);
            self.providers[thief].in_flight += 1;
            out.push((self.providers[thief].id.clone(), index));
        }
        out
    }

    /// Several requests of one provider failed together (a streamed range broke off):
    /// one strike, or the provider dropped for corrupt bytes; the chunks still
    /// outstanding with it are re-queued. Returns what to cancel, as
    /// [`Schedule::on_chunk_failed`] does; `None` if none of them was its any more.
    pub fn on_chunks_failed(
        &mut self,
        id: &P,
        indices: &[u32],
        failure: Failure,
    ) -> Option<Vec<u32>> {
        let owned: Vec<u32> = indices
            .iter()
            .copied()
            .filter(|&index| self.take_outstanding(id, index).is_some())
            .collect();
        if owned.is_empty() {
            return None;
        }
        let p = *self.by_id.get(id)?;
        for &index in owned.iter().rev() {
            self.queue.push_front(index);
        }
        Some(self.fail(p, failure))
    }

    /// A verified chunk arrived. Returns true if it is the answer to an outstanding
    /// request (then the caller keeps the bytes); false for a stale answer (ignore it).
    pub fn on_chunk_ok(&mut self, id: &P, index: u32) -> bool {
        let Some(p) = self.take_outstanding(id, index) else {
            return false;
        };
        self.providers[p].strikes = 0;
        self.verified[index as usize] = true;
        self.missing -= 1;
        true
    }

    /// A request failed. Corrupt bytes drop the provider; a transport error is a strike
    /// and drops it after `max_strikes` in a row. The chunk is re-queued. Returns false
    /// for a stale answer (nothing changed). When the provider is dropped, its other
    /// outstanding chunks are re-queued too and returned in `cancel`.
    pub fn on_chunk_failed(&mut self, id: &P, index: u32, failure: Failure) -> Option<Vec<u32>> {
        let p = self.take_outstanding(id, index)?;
        self.queue.push_front(index);
        Some(self.fail(p, failure))
    }

    /// One failure of provider `p`: corrupt bytes drop it, a transport error is a strike.
    /// Returns the chunks re-queued by a drop.
    fn fail(&mut self, p: usize, failure: Failure) -> Vec<u32> {
        match failure {
            Failure::Corrupt(why) => self.drop_index(p, format!("sent bad bytes: {why}")),
            Failure::Transport(why) => {
                let provider = &mut self.providers[p];
                provider.strikes += 1;
                if provider.strikes >= self.limits.max_strikes {
                    let strikes = provider.strikes;
                    self.drop_index(p, format!("{strikes} failed requests, last: {why}"))
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// A chunk of `id`'s arrived at `now` (before verification): its other outstanding
    /// requests count from now, so a provider that keeps sending over a slow link is not
    /// taken for stalled because it has many chunks queued. The deadline is on silence.
    pub fn on_progress(&mut self, id: &P, now: Instant) {
        let Some(&p) = self.by_id.get(id) else { return };
        let provider = &mut self.providers[p];
        if let Some(last) = provider.last {
            let sample = now.saturating_duration_since(last).as_secs_f64();
            provider.gap = Some(provider.gap.map_or(sample, |g| 0.7 * g + 0.3 * sample));
        }
        provider.last = Some(now);
        if let Some(last) = self.last {
            let sample = now.saturating_duration_since(last).as_secs_f64();
            self.gap = Some(self.gap.map_or(sample, |g| 0.8 * g + 0.2 * sample));
        }
        self.last = Some(now);
        for (owner, since) in self.outstanding.values_mut() {
            if *owner == p && *since < now {
                *since = now;
            }
        }
    }

    /// Drops every provider with a request outstanding past the deadline and re-queues
    /// all their chunks. Returns the cancelled requests.
    pub fn on_stalls(&mut self, now: Instant) -> Vec<(P, u32)> {
        let deadline = self.limits.chunk_deadline;
        let mut stalled: Vec<usize> = self
            .outstanding
            .values()
            .filter(|(_, since)| now.saturating_duration_since(*since) >= deadline)
            .map(|&(p, _)| p)
            .collect();
        stalled.sort_unstable();
        stalled.dedup();
        let mut cancelled = Vec::new();
        for p in stalled {
            let why = format!("stalled: no answer within {deadline:?}");
            for index in self.drop_index(p, why) {
                cancelled.push((self.providers[p].id.clone(), index));
            }
        }
        cancelled
    }

    /// The earliest instant at which `on_stalls` would drop someone.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.outstanding
            .values()
            .map(|&(_, since)| since + self.limits.chunk_deadline)
            .min()
    }

    /// True while chunk `index` is asked of `id` (its answer would count).
    pub fn is_outstanding_with(&self, id: &P, index: u32) -> bool {
        match (self.by_id.get(id), self.outstanding.get(&index)) {
            (Some(&p), Some(&(owner, _))) => p == owner,
            _ => false,
        }
    }

    /// When [`Schedule::steal`] may find work next: nothing is queued and a request
    /// will have waited [`Limits::steal_after`].
    pub fn next_steal(&self) -> Option<Instant> {
        if !self.nothing_to_hand_out() {
            return None;
        }
        self.outstanding
            .iter()
            .filter(|(index, _)| !self.stolen.contains(index))
            .map(|(_, &(owner, since))| since + self.steal_wait(owner))
            .min()
    }

    /// How long provider `p` may be silent before its chunks may be stolen.
    fn steal_wait(&self, p: usize) -> Duration {
        let own_pace = self.providers[p].gap.map_or(Duration::ZERO, |gap| {
            Duration::from_secs_f64(gap * STEAL_GAPS)
        });
        self.limits.steal_after.max(own_pace)
    }

    pub fn is_complete(&self) -> bool {
        self.missing == 0
    }

    /// `Some` when chunks are missing and no provider is left to ask.
    pub fn stuck(&self) -> Option<Stuck<P>> {
        if self.missing == 0 || self.providers.iter().any(|p| p.dropped.is_none()) {
            return None;
        }
        Some(Stuck {
            missing: self.missing,
            total: self.verified.len() as u32,
            failures: self
                .providers
                .iter()
                .map(|p| (p.id.clone(), p.dropped.clone().unwrap_or_default()))
                .collect(),
        })
    }

    pub fn is_stuck(&self) -> bool {
        self.stuck().is_some()
    }

    pub fn chunk_count(&self) -> u32 {
        self.verified.len() as u32
    }

    pub fn missing(&self) -> u32 {
        self.missing
    }

    pub fn is_verified(&self, index: u32) -> bool {
        self.verified.get(index as usize).copied().unwrap_or(false)
    }

    /// Requests outstanding that count against the overall cap: all but a seeder's
    /// window.
    fn counted(&self) -> usize {
        self.in_flight - self.windowed.len()
    }

    /// Requests outstanding overall.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Requests outstanding to `id`.
    pub fn in_flight_to(&self, id: &P) -> usize {
        self.by_id
            .get(id)
            .map_or(0, |&p| self.providers[p].in_flight)
    }

    /// A request to `id` outside the chunk requests failed (e.g. asking what it offers):
    /// one strike, as a failed chunk request. Returns the chunks re-queued if that drops it.
    pub fn strike(&mut self, id: &P, why: impl Into<String>) -> Vec<u32> {
        match self.by_id.get(id) {
            Some(&p) if self.providers[p].dropped.is_none() => {
                self.fail(p, Failure::Transport(why.into()))
            }
            _ => Vec::new(),
        }
    }

    /// What this download does not need from `id`: chunks verified or asked of another
    /// provider (an offers request tells a peer this, so that it spends an upload slot
    /// only on a peer that will fetch from it).
    /// In the end game only verified chunks: then any chunk may be stolen from a slow
    /// provider, so every peer should keep offering it.
    pub fn needless_from(&self, id: &P) -> Vec<bool> {
        let p = self.by_id.get(id).copied();
        let mut bits = self.verified.clone();
        if self.nothing_to_hand_out() {
            return bits;
        }
        for (&index, &(owner, _)) in &self.outstanding {
            if Some(owner) != p {
                if let Some(bit) = bits.get_mut(index as usize) {
                    *bit = true;
                }
            }
        }
        bits
    }

    /// Queued chunks provider `id` offers.
    pub fn offered_queued(&self, id: &P) -> usize {
        let Some(&p) = self.by_id.get(id) else {
            return 0;
        };
        self.queue
            .iter()
            .filter(|&&index| self.holds(p, index))
            .count()
    }

    /// Whether `id` was ever a provider of this download (dropped ones included).
    pub fn knows(&self, id: &P) -> bool {
        self.by_id.contains_key(id)
    }

    /// Providers still in use.
    pub fn active_providers(&self) -> Vec<P> {
        self.providers
            .iter()
            .filter(|p| p.dropped.is_none())
            .map(|p| p.id.clone())
            .collect()
    }

    /// What limits asking more now (debug logs of the swarm lab's timelines).
    pub fn pressure(&self) -> Pressure {
        let active: Vec<usize> = (0..self.providers.len())
            .filter(|&p| self.providers[p].dropped.is_none())
            .collect();
        let room = |p: usize| self.providers[p].in_flight < self.cap(p);
        let offering = |p: usize| self.queue.iter().any(|&index| self.holds(p, index));
        Pressure {
            in_flight: self.counted(),
            cap: self.total_cap(),
            queued: self.queue.len(),
            providers: active.len(),
            with_room: active.iter().filter(|&&p| room(p)).count(),
            offering: active.iter().filter(|&&p| offering(p)).count(),
            askable: active.iter().filter(|&&p| room(p) && offering(p)).count(),
        }
    }

    /// Dropped providers with the reason.
    pub fn dropped_providers(&self) -> Vec<(P, String)> {
        self.providers
            .iter()
            .filter_map(|p| p.dropped.clone().map(|why| (p.id.clone(), why)))
            .collect()
    }

    /// The least-loaded provider with room, other than `skip`, that offers `index`.
    fn least_loaded_holder(&self, skip: usize, index: u32) -> Option<usize> {
        let n = self.providers.len();
        (0..n)
            .map(|k| (self.cursor + k) % n)
            .filter(|&p| p != skip && self.holds(p, index))
            .filter(|&p| {
                let provider = &self.providers[p];
                provider.dropped.is_none() && provider.in_flight < self.cap(p)
            })
            .min_by_key(|&p| self.providers[p].in_flight)
    }

    /// Clears chunk `index`'s request if `id` is the one asked for it.
    fn take_outstanding(&mut self, id: &P, index: u32) -> Option<usize> {
        let &p = self.by_id.get(id)?;
        match self.outstanding.get(&index) {
            Some(&(owner, _)) if owner == p => {
                self.outstanding.remove(&index);
                self.windowed.remove(&index);
                self.providers[p].in_flight -= 1;
                self.in_flight -= 1;
                Some(p)
            }
            _ => None,
        }
    }

    fn drop_index(&mut self, p: usize, why: String) -> Vec<u32> {
        let provider = &mut self.providers[p];
        if provider.dropped.is_none() {
            provider.dropped = Some(why);
        }
        let requeued: Vec<u32> = self
            .outstanding
            .iter()
            .filter(|(_, &(owner, _))| owner == p)
            .map(|(&index, _)| index)
            .collect();
        for index in &requeued {
            self.outstanding.remove(index);
            self.windowed.remove(index);
        }
        self.providers[p].in_flight = 0;
        self.in_flight -= requeued.len();
        for &index in requeued.iter().rev() {
            self.queue.push_front(index);
        }
        requeued
    }
}

/// A 64-bit mixer (SplitMix64's finaliser): a fixed pseudo-random order from a seed.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits(per_provider: usize, total: usize) -> Limits {
        Limits {
            per_provider,
            total,
            chunk_deadline: Duration::from_secs(10),
            max_strikes: 2,
            steal_after: Duration::from_secs(2),
        }
    }

    #[test]
    fn ranges_are_consecutive_runs_within_the_caps() {
        let now = Instant::now();
        let mut s = Schedule::new(40, [3], ["a", "b"], limits(8, 12));
        let got = s.next_ranges(now, 4);
        assert_eq!(
            got,
            vec![("a", 0, 3), ("b", 4, 4), ("a", 8, 4), ("b", 12, 1)],
            "runs stop at a verified chunk, at max_run and at the overall cap"
        );
        assert_eq!(s.in_flight(), 12);
        assert!(s.next_ranges(now, 4).is_empty());
        // A broken range: one strike for all of it, its chunks back at the front in order.
        assert_eq!(
            s.on_chunks_failed(&"b", &[4, 5, 6, 7], Failure::Transport("reset".into())),
            Some(vec![])
        );
        assert_eq!(s.active_providers(), vec!["a", "b"]);
        assert_eq!(s.next_ranges(now, 8), vec![("b", 4, 4)]);
        // Stale: none of them is b's any more.
        assert_eq!(
            s.on_chunks_failed(&"b", &[0, 1], Failure::Transport("late".into())),
            None
        );
        // Corrupt bytes drop the provider and hand back all it still held.
        let cancel = s.on_chunks_failed(&"a", &[0], Failure::Corrupt("bad".into()));
        assert_eq!(cancel, Some(vec![1, 2, 8, 9, 10, 11]));
    }

    #[test]
    fn an_idle_provider_steals_from_a_slow_one_once_per_chunk() {
        let start = Instant::now();
        let mut s = Schedule::new(6, [], ["slow", "fast"], limits(4, 8));
        assert_eq!(
            s.next_ranges(start, 3),
            vec![("slow", 0, 3), ("fast", 3, 3)]
        );
        for index in 3..6 {
            assert!(s.on_chunk_ok(&"fast", index));
        }
        // Nothing queued, but the slow provider is not slow yet.
        assert!(s.steal(start + Duration::from_secs(1)).is_empty());
        let later = start + Duration::from_secs(2);
        assert_eq!(s.steal(later), vec![("fast", 2), ("fast", 1), ("fast", 0)]);
        assert_eq!(s.in_flight_to(&"slow"), 0);
        assert!(
            s.steal(later + Duration::from_secs(5)).is_empty(),
            "once per chunk"
        );
        // The thief's answers count; the slow provider's late ones are stale.
        assert!(s.on_chunk_ok(&"fast", 2));
        assert!(!s.on_chunk_ok(&"slow", 2));
        assert!(!s.on_chunk_ok(&"slow", 0));
        assert!(s.on_chunk_ok(&"fast", 0));
        assert!(s.on_chunk_ok(&"fast", 1));
        assert!(s.is_complete());
        // Stealing waits until nothing is left to hand out.
        let mut s = Schedule::new(8, [], ["slow", "fast"], limits(2, 8));
        s.next_ranges(start, 2);
        assert!(s.steal(start + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn a_chunk_nobody_else_offers_yet_is_stolen_once_someone_does() {
        let start = Instant::now();
        let mut s = Schedule::new(5, [], ["slow", "fast"], limits(3, 8));
        // The fast peer first offers only the last two (as a seeder told that the others
        // are on their way from the slow one).
        s.set_have(&"fast", Some(vec![false, false, false, true, true]));
        assert_eq!(
            s.next_ranges(start, 3),
            vec![("slow", 0, 3), ("fast", 3, 2)]
        );
        for index in 3..5 {
            assert!(s.on_chunk_ok(&"fast", index));
        }
        let later = start + Duration::from_secs(2);
        assert!(s.steal(later).is_empty(), "nobody else offers 0..3 yet");
        // Its next offers answer, sent in the end game, includes them: they are stolen
        // now, not left with the slow peer until its chunk deadline.
        s.set_have(&"fast", Some(vec![true; 5]));
        assert_eq!(
            s.steal(later + Duration::from_millis(300)),
            vec![("fast", 2), ("fast", 1)]
        );
    }

    #[test]
    fn spreads_work_within_caps() {
        let now = Instant::now();
        let mut s = Schedule::new(20, [], [1, 2, 3], limits(2, 5));
        let got = s.next_assignments(now);
        assert_eq!(got.len(), 5);
        for p in [1, 2, 3] {
            assert!(s.in_flight_to(&p) <= 2);
            assert!(s.in_flight_to(&p) >= 1, "provider {p} got no work");
        }
        assert!(s.next_assignments(now).is_empty(), "overall cap reached");
        let (peer, index) = got[0];
        assert!(s.on_chunk_ok(&peer, index));
        assert_eq!(s.next_assignments(now).len(), 1);
        assert_eq!(s.missing(), 19);
    }

    #[test]
    fn resume_skips_verified_chunks() {
        let now = Instant::now();
        let mut s = Schedule::new(4, [0, 2, 9], [7], limits(4, 4));
        let got: Vec<u32> = s.next_assignments(now).into_iter().map(|a| a.1).collect();
        assert_eq!(got, vec![1, 3]);
        assert_eq!(s.missing(), 2);
        assert!(s.on_chunk_ok(&7, 1) && s.on_chunk_ok(&7, 3));
        assert!(s.is_complete());
        assert!(s.stuck().is_none());
    }

    #[test]
    fn corrupt_bytes_drop_the_provider_and_requeue_its_chunks() {
        let now = Instant::now();
        let mut s = Schedule::new(4, [], ["bad", "good"], limits(2, 4));
        let got = s.next_assignments(now);
        let bad: Vec<u32> = got.iter().filter(|a| a.0 == "bad").map(|a| a.1).collect();
        assert_eq!(bad.len(), 2);
        let cancel = s
            .on_chunk_failed(&"bad", bad[0], Failure::Corrupt("hash mismatch".into()))
            .unwrap();
        assert_eq!(cancel, vec![bad[1]]);
        assert_eq!(s.active_providers(), vec!["good"]);
        // The other outstanding answer of the dropped provider is now stale.
        assert!(!s.on_chunk_ok(&"bad", bad[1]));
        let mut done = 0;
        while !s.is_complete() {
            for (peer, index) in s.next_assignments(now) {
                assert_eq!(peer, "good");
                assert!(s.on_chunk_ok(&peer, index));
                done += 1;
            }
            for (_, index) in got.iter().filter(|a| a.0 == "good") {
                s.on_chunk_ok(&"good", *index);
            }
        }
        assert_eq!(done, 2);
    }

    #[test]
    fn transport_errors_drop_after_strikes_and_success_resets() {
        let now = Instant::now();
        let mut s = Schedule::new(10, [], [1], limits(1, 1));
        let fail = |s: &mut Schedule<i32>| {
            let (p, i) = s.next_assignments(now)[0];
            s.on_chunk_failed(&p, i, Failure::Transport("reset".into()))
                .unwrap();
        };
        fail(&mut s);
        let (p, i) = s.next_assignments(now)[0];
        assert!(s.on_chunk_ok(&p, i));
        fail(&mut s);
        assert_eq!(
            s.active_providers(),
            vec![1],
            "strikes were reset by a success"
        );
        fail(&mut s);
        let stuck = s.stuck().unwrap();
        assert_eq!(stuck.missing, 9);
        assert!(stuck.to_string().contains("9 of 10 chunks missing"));
        assert!(stuck.to_string().contains("2 failed requests, last: reset"));
    }

    #[test]
    fn stalls_drop_the_provider_after_the_deadline() {
        let start = Instant::now();
        let mut s = Schedule::new(3, [], ["slow", "fast"], limits(2, 4));
        let got = s.next_assignments(start);
        assert_eq!(got.len(), 3);
        assert_eq!(s.next_deadline(), Some(start + Duration::from_secs(10)));
        for (peer, index) in &got {
            if *peer == "fast" {
                s.on_chunk_ok(peer, *index);
            }
        }
        assert!(s.on_stalls(start + Duration::from_secs(9)).is_empty());
        let cancelled = s.on_stalls(start + Duration::from_secs(10));
        assert!(!cancelled.is_empty());
        assert!(cancelled.iter().all(|c| c.0 == "slow"));
        assert_eq!(s.in_flight(), 0);
        assert_eq!(s.dropped_providers()[0].0, "slow");
        assert!(s.dropped_providers()[0].1.starts_with("stalled"));
        let retry = s.next_assignments(start + Duration::from_secs(10));
        assert_eq!(retry.len(), cancelled.len());
        assert!(retry.iter().all(|a| a.0 == "fast"));
    }

    #[test]
    fn no_providers_is_stuck_at_once_and_says_so() {
        let s: Schedule<u8> = Schedule::new(2, [], [], Limits::default());
        assert_eq!(
            s.stuck().unwrap().to_string(),
            "2 of 2 chunks missing and no provider left (no providers were given)"
        );
        let done: Schedule<u8> = Schedule::new(2, [0, 1], [], Limits::default());
        assert!(done.is_complete() && !done.is_stuck());
    }

    #[test]
    fn explicit_drop_requeues() {
        let now = Instant::now();
        let mut s = Schedule::new(2, [], [1, 2], limits(1, 2));
        let got = s.next_assignments(now);
        let on_one: Vec<u32> = got.iter().filter(|a| a.0 == 1).map(|a| a.1).collect();
        assert_eq!(s.drop_provider(&1, "wrong chunk list"), on_one);
        assert_eq!(s.dropped_providers(), vec![(1, "wrong chunk list".into())]);
        assert!(s.drop_provider(&99, "unknown").is_empty());
    }

    #[derive(Debug, Clone, Copy)]
    enum Act {
        Ok,
        Corrupt,
        Transport,
        Stall,
    }

    fn act() -> impl Strategy<Value = Act> {
        prop_oneof![
            3 => Just(Act::Ok),
            1 => Just(Act::Corrupt),
            2 => Just(Act::Transport),
            1 => Just(Act::Stall),
        ]
    }

    proptest! {
        /// Any failure pattern of the others completes as long as one provider is honest,
        /// never asks for a verified chunk, and never exceeds a cap.
        #[test]
        fn one_honest_provider_suffices(
            chunks in 1u32..40,
            have in proptest::collection::vec(any::<bool>(), 40),
            per_provider in 1usize..5,
            total in 1usize..12,
            honest in 0usize..5,
            behaviour in proptest::collection::vec(proptest::collection::vec(act(), 64), 5),
        ) {
            let lim = limits(per_provider, total);
            let have_idx: Vec<u32> = (0..chunks).filter(|&i| have[i as usize]).collect();
            let mut s = Schedule::new(chunks, have_idx.clone(), 0..5usize, lim);
            let mut verified: Vec<bool> = have[..chunks as usize].to_vec();
            let mut calls = [0usize; 5];
            let mut now = Instant::now();
            let mut stalled: Vec<(usize, u32)> = Vec::new();
            let mut steps = 0;
            while !s.is_complete() {
                steps += 1;
                prop_assert!(steps < 10_000, "no progress");
                prop_assert!(!s.is_stuck(), "stuck with an honest provider");
                let work = s.next_assignments(now);
                prop_assert!(s.in_flight() <= lim.total);
                for p in 0..5 {
                    prop_assert!(s.in_flight_to(&p) <= lim.per_provider);
                }
                for (p, index) in work {
                    prop_assert!(!verified[index as usize], "assigned verified chunk {}", index);
                    let act = if p == honest { Act::Ok } else {
                        behaviour[p][calls[p] % 64]
                    };
                    calls[p] += 1;
                    match act {
                        Act::Ok => {
                            if s.on_chunk_ok(&p, index) {
                                verified[index as usize] = true;
                            } else {
                                // Stale only because an earlier answer in this batch
                                // got the provider dropped.
                                prop_assert!(!s.active_providers().contains(&p));
                            }
                        }
                        Act::Corrupt => {
                            s.on_chunk_failed(&p, index, Failure::Corrupt("x".into()));
                        }
                        Act::Transport => {
                            s.on_chunk_failed(&p, index, Failure::Transport("x".into()));
                        }
                        Act::Stall => stalled.push((p, index)),
                    }
                }
                if s.in_flight() > 0 {
                    // Only stalled requests can remain: time passes, they are dropped,
                    // and their late answers are stale.
                    now += lim.chunk_deadline;
                    s.on_stalls(now);
                    prop_assert_eq!(s.in_flight(), 0);
                    for (p, index) in stalled.drain(..) {
                        prop_assert!(!s.on_chunk_ok(&p, index));
                    }
                }
            }
            prop_assert!(verified.iter().all(|&v| v));
            prop_assert!(s.active_providers().contains(&honest));
        }

        /// With no honest provider the schedule always ends stuck (never loops forever),
        /// and the report names every provider.
        #[test]
        fn all_bad_providers_end_stuck(
            chunks in 1u32..20,
            behaviour in proptest::collection::vec(
                proptest::collection::vec(prop_oneof![Just(Act::Corrupt), Just(Act::Transport), Just(Act::Stall)], 64), 3),
        ) {
            let mut s = Schedule::new(chunks, [], 0..3usize, limits(2, 4));
            let mut now = Instant::now();
            let mut calls = [0usize; 3];
            let mut steps = 0;
            while !s.is_stuck() {
                steps += 1;
                prop_assert!(steps < 10_000);
                for (p, index) in s.next_assignments(now) {
                    let act = behaviour[p][calls[p] % 64];
                    calls[p] += 1;
                    match act {
                        Act::Corrupt => { s.on_chunk_failed(&p, index, Failure::Corrupt("x".into())); }
                        Act::Transport => { s.on_chunk_failed(&p, index, Failure::Transport("x".into())); }
                        _ => {}
                    }
                }
                now += lim_deadline();
                s.on_stalls(now);
            }
            let stuck = s.stuck().unwrap();
            prop_assert_eq!(stuck.missing, chunks);
            prop_assert_eq!(stuck.failures.len(), 3);
        }
    }

    proptest! {
        /// Ranges and stealing keep the promises of single requests: with one honest
        /// provider everything completes, caps hold, no verified chunk is asked for, a
        /// chunk is stolen at most once, and every range is consecutive.
        #[test]
        fn ranges_and_stealing_complete_with_one_honest_provider(
            chunks in 1u32..60,
            have in proptest::collection::vec(any::<bool>(), 60),
            per_provider in 1usize..9,
            total in 1usize..20,
            max_run in 1u32..9,
            honest in 0usize..4,
            behaviour in proptest::collection::vec(proptest::collection::vec(act(), 64), 4),
            slow in proptest::collection::vec(any::<bool>(), 64),
        ) {
            let lim = limits(per_provider, total);
            let have_idx: Vec<u32> = (0..chunks).filter(|&i| have[i as usize]).collect();
            let mut s = Schedule::new(chunks, have_idx, 0..4usize, lim);
            let mut verified: Vec<bool> = have[..chunks as usize].to_vec();
            let mut calls = [0usize; 4];
            let mut now = Instant::now();
            let mut held: Vec<(usize, u32)> = Vec::new();
            let mut stolen = std::collections::HashSet::new();
            let mut steps = 0;
            while !s.is_complete() {
                steps += 1;
                prop_assert!(steps < 10_000, "no progress");
                prop_assert!(!s.is_stuck(), "stuck with an honest provider");
                let mut work = Vec::new();
                for (p, first, count) in s.next_ranges(now, max_run) {
                    prop_assert!(count >= 1 && count <= max_run);
                    work.extend((first..first + count).map(|i| (p, i)));
                }
                for (p, index) in s.steal(now) {
                    prop_assert!(stolen.insert(index), "chunk {} stolen twice", index);
                    work.push((p, index));
                }
                prop_assert!(s.in_flight() <= lim.total);
                for p in 0..4 {
                    prop_assert!(s.in_flight_to(&p) <= lim.per_provider);
                }
                for (p, index) in work {
                    prop_assert!(!verified[index as usize], "asked for verified chunk {}", index);
                    let act = if p == honest { Act::Ok } else { behaviour[p][calls[p] % 64] };
                    let late = slow[calls[p] % 64];
                    calls[p] += 1;
                    match act {
                        // A slow answer arrives only after time has passed (maybe stale).
                        Act::Ok if late && p != honest => held.push((p, index)),
                        Act::Ok => {
                            if s.on_chunk_ok(&p, index) {
                                verified[index as usize] = true;
                            }
                        }
                        Act::Corrupt => {
                            s.on_chunks_failed(&p, &[index], Failure::Corrupt("x".into()));
                        }
                        Act::Transport => {
                            s.on_chunks_failed(&p, &[index], Failure::Transport("x".into()));
                        }
                        Act::Stall => {}
                    }
                }
                now += lim.steal_after;
                for (p, index) in held.drain(..) {
                    if s.on_chunk_ok(&p, index) {
                        verified[index as usize] = true;
                    }
                }
                if s.in_flight() > 0 {
                    // Only stalled requests remain: their providers are dropped.
                    now += lim.chunk_deadline;
                    s.on_stalls(now);
                    prop_assert_eq!(s.in_flight(), 0);
                }
            }
            prop_assert!(verified.iter().all(|&v| v));
            prop_assert!(s.active_providers().contains(&honest));
        }
    }

    fn lim_deadline() -> Duration {
        limits(1, 1).chunk_deadline
    }

    #[test]
    fn partial_holders_get_only_what_they_offer_rarest_first() {
        let now = Instant::now();
        let mut s = Schedule::new(6, [], [1u32, 2], limits(8, 16));
        // 1 offers chunks 0..4, 2 offers 2..6: 0, 1 only at 1; 4, 5 only at 2; 2, 3 at both.
        s.set_have(&1, Some(vec![true, true, true, true, false, false]));
        s.set_have(&2, Some(vec![false, false, true, true, true, true]));
        let ranges = s.next_ranges(now, 1);
        for (peer, first, _) in &ranges {
            let offered = if *peer == 1 { 0..4 } else { 2..6 };
            assert!(offered.contains(first), "{peer} asked for {first}");
        }
        // The rare chunks go out before the common ones.
        let first_two: Vec<u32> = ranges.iter().take(2).map(|r| r.1).collect();
        assert!(
            first_two.iter().all(|i| [0, 1, 4, 5].contains(i)),
            "{ranges:?}"
        );
        // Swarm peers whose rate is not known yet get START_WINDOW chunks each.
        assert_eq!(ranges.len(), 2 * START_WINDOW);
    }

    #[test]
    fn a_swarm_download_asks_at_once_what_its_link_brings_in_a_second() {
        let t0 = Instant::now();
        let peers: Vec<u32> = (0..16).collect();
        let mut s = Schedule::new(256, [], peers.clone(), limits(16, 48));
        for p in &peers {
            s.set_have(p, Some(vec![true; 256]));
        }
        s.next_ranges(t0, 8);
        assert_eq!(s.in_flight(), SWARM_TOTAL, "before the rate is known");
        // Chunks arrive every 200 ms (5 a second, a 40 Mbit/s link at 1 MiB chunks).
        let mut t = t0;
        for _ in 0..20 {
            t += Duration::from_millis(200);
            let (&index, &(owner, _)) = s.outstanding.iter().next().expect("outstanding");
            let peer = peers[owner];
            s.on_progress(&peer, t);
            s.on_chunk_ok(&peer, index);
            s.next_ranges(t, 8);
        }
        assert!((6..=8).contains(&s.in_flight()), "{}", s.in_flight());
    }

    #[test]
    fn a_swarm_peer_is_asked_what_it_delivers_in_a_second() {
        let t0 = Instant::now();
        let mut s = Schedule::new(64, [], [1u32, 2], limits(16, 48));
        s.set_have(&1, Some(vec![true; 64]));
        s.set_have(&2, Some(vec![true; 64]));
        let asked = |s: &mut Schedule<u32>, at| -> Vec<(u32, u32, u32)> { s.next_ranges(at, 8) };
        let first = asked(&mut s, t0);
        assert_eq!(s.in_flight_to(&1), START_WINDOW);
        assert_eq!(s.in_flight_to(&2), START_WINDOW);
        // 1 sends a chunk every 10 ms (100 a second: the full per-provider cap); 2 one
        // every 800 ms (about a chunk per second: stays near the start window).
        let mut t = t0;
        for step in 1..=8u32 {
            t = t0 + Duration::from_millis(10 * u64::from(step));
            for &(peer, from, count) in &first {
                if peer == 1 {
                    if let Some(index) =
                        (from..from + count).find(|&i| s.is_outstanding_with(&1, i))
                    {
                        s.on_progress(&1, t);
                        s.on_chunk_ok(&1, index);
                    }
                }
            }
            let more: Vec<_> = asked(&mut s, t).into_iter().filter(|r| r.0 == 1).collect();
            for (_, from, count) in more {
                if let Some(index) = (from..from + count).find(|&i| s.is_outstanding_with(&1, i)) {
                    s.on_progress(&1, t);
                    s.on_chunk_ok(&1, index);
                }
            }
        }
        asked(&mut s, t);
        assert_eq!(s.in_flight_to(&1), 16, "a fast peer gets the full cap");
        let slow_at = t0 + Duration::from_millis(800);
        s.on_progress(&2, slow_at);
        let index = (0..64)
            .find(|&i| s.is_outstanding_with(&2, i))
            .expect("asked");
        s.on_chunk_ok(&2, index);
        asked(&mut s, t.max(slow_at));
        assert!(
            s.in_flight_to(&2) <= 3,
            "a slow one what it sends in a second"
        );
    }

    #[test]
    fn a_seeders_window_is_asked_whole_past_the_caps() {
        let now = Instant::now();
        let peers = ["p1", "p2", "p3", "seeder"];
        let mut s = Schedule::new(16, [], peers, limits(16, 48));
        let mut partial = vec![false; 16];
        partial[..8].fill(true);
        for peer in &peers[..3] {
            s.set_have(peer, Some(partial.clone()));
        }
        s.set_have(&"seeder", Some(vec![false; 16]));
        // Three partial holders at their start window fill the swarm's total cap.
        let first = s.next_ranges(now, 8);
        assert_eq!(first.iter().map(|r| r.2).sum::<u32>(), 6, "{first:?}");
        let mut window = vec![false; 16];
        window[10..14].fill(true);
        s.set_have(&"seeder", Some(window.clone()));
        assert!(
            s.next_ranges(now, 8).is_empty(),
            "capped without the window rule"
        );
        s.set_have(&"seeder", Some(window));
        s.take_window(&"seeder");
        assert_eq!(s.next_ranges(now, 8), vec![("seeder", 10, 4)]);
        // Asked once: the flag does not stay.
        assert!(s.next_ranges(now, 8).is_empty());
    }

    #[test]
    fn a_seeders_window_leaves_the_total_cap_to_the_other_peers() {
        let now = Instant::now();
        let peers = ["p1", "p2", "p3", "seeder"];
        let mut s = Schedule::new(32, [], peers, limits(16, 48));
        let mut window = vec![false; 32];
        window[..8].fill(true);
        for peer in &peers[..3] {
            s.set_have(peer, Some(vec![false; 32]));
        }
        s.set_have(&"seeder", Some(window));
        s.take_window(&"seeder");
        assert_eq!(s.next_ranges(now, 8), vec![("seeder", 0, 8)]);
        // The window is past the swarm's total cap (6 before a rate is known), yet
        // chunks the partial holders offer are still asked, up to that cap: a node whose
        // cap a seeder's window filled fetched from nobody else while the seeder's link,
        // shared by every asker, sent it the window slowly (swarm lab, 20 Mbit/s).
        let mut partial = vec![false; 32];
        partial[8..32].fill(true);
        for peer in &peers[..3] {
            s.set_have(peer, Some(partial.clone()));
        }
        let more = s.next_ranges(now, 8);
        assert_eq!(more.iter().map(|r| r.2).sum::<u32>(), 6, "{more:?}");
        assert!(more.iter().all(|r| r.0 != "seeder"), "{more:?}");
        assert_eq!(s.in_flight(), 14);
        // A window chunk that arrives frees no room in the cap; another's chunk does.
        s.on_chunk_ok(&"seeder", 0);
        assert!(s.next_ranges(now, 8).is_empty());
        let (peer, first, _) = more[0];
        s.on_chunk_ok(&peer, first);
        assert_eq!(s.next_ranges(now, 8).iter().map(|r| r.2).sum::<u32>(), 1);
    }

    #[test]
    fn chunks_nobody_offers_wait_and_are_counted() {
        let now = Instant::now();
        let mut s = Schedule::new(4, [], [1u32], limits(8, 16));
        s.set_have(&1, Some(vec![true, false, true, false]));
        let ranges = s.next_ranges(now, 8);
        assert_eq!(ranges, vec![(1, 0, 1), (1, 2, 1)]);
        assert_eq!(s.unavailable(), 2);
        assert!(s.steal(now + Duration::from_secs(60)).is_empty());
        assert!(
            s.stuck().is_none(),
            "a provider is still there: wait, not stuck"
        );
        s.set_have(&1, None);
        assert_eq!(s.next_ranges(now, 8), vec![(1, 1, 1), (1, 3, 1)]);
    }

    #[test]
    fn spreading_orders_blocks_differently_per_seed() {
        let now = Instant::now();
        let order = |seed| {
            let mut s = Schedule::new(64, [], [1u32], limits(64, 64));
            s.set_spread(seed, 4);
            s.next_ranges(now, 4)
                .into_iter()
                .map(|r| r.1)
                .collect::<Vec<u32>>()
        };
        let (a, b) = (order(1), order(2));
        assert_eq!(a.len(), 16, "runs of one block each");
        assert!(a.iter().all(|first| first % 4 == 0));
        assert_ne!(a, b);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..16).map(|k| k * 4).collect::<Vec<u32>>());
    }

    proptest! {
        /// With providers offering random subsets (changing as the download runs), a
        /// provider is only ever asked for chunks it offers, and every chunk someone
        /// offers ends up verified.
        #[test]
        fn only_offered_chunks_are_asked_for(
            count in 1u32..40,
            offers in proptest::collection::vec(proptest::collection::vec(any::<bool>(), 40), 1..5),
            seed in any::<u64>(),
            run in 1u32..6,
        ) {
            let now = Instant::now();
            let ids: Vec<u32> = (0..offers.len() as u32).collect();
            let mut s = Schedule::new(count, [], ids.clone(), limits(4, 8));
            s.set_spread(seed, run);
            let bits = |p: usize| offers[p][..count as usize].to_vec();
            for (p, id) in ids.iter().enumerate() {
                s.set_have(id, Some(bits(p)));
            }
            let offered = |index: u32| (0..offers.len()).any(|p| offers[p][index as usize]);
            for _ in 0..(count * 2 + 2) {
                let ranges = s.next_ranges(now, run);
                if ranges.is_empty() {
                    break;
                }
                for (id, first, n) in ranges {
                    for index in first..first + n {
                        prop_assert!(offers[id as usize][index as usize], "{id} asked for {index}");
                        prop_assert!(s.on_chunk_ok(&id, index));
                    }
                }
            }
            for index in 0..count {
                prop_assert_eq!(s.is_verified(index), offered(index), "chunk {}", index);
            }
            prop_assert_eq!(s.unavailable(), (0..count).filter(|&i| !offered(i)).count() as u32);
        }
    }

    #[test]
    fn a_provider_that_keeps_sending_is_not_stalled() {
        let start = Instant::now();
        let mut s = Schedule::new(4, [], [1u32], limits(4, 4));
        assert_eq!(s.next_ranges(start, 4), vec![(1, 0, 4)]);
        // One chunk every 8 s over a slow link: never 10 s of silence.
        for (k, index) in (0..4).enumerate() {
            let at = start + Duration::from_secs(8 * (k as u64 + 1));
            assert!(s.on_stalls(at).is_empty(), "dropped at chunk {index}");
            s.on_progress(&1, at);
            assert!(s.on_chunk_ok(&1, index));
        }
        assert!(s.is_complete());
    }
}
