//! Upload pacing: with `upload_limit` set (bytes a second, about what the node's upload
//! link carries), chunks leave this node one after another at that rate, the rarest
//! first, instead of all at once into the sockets.
//!
//! Why pace: a node serving several peers writes into one socket per peer, and the
//! kernel and the router's queue (often hundreds of milliseconds deep at home)
//! interleave them. Every chunk then completes only after several chunks' time, and the
//! small messages that steer a swarm (offers, range requests) wait behind chunk data.
//! Paced at the link's rate, those queues stay short: a chunk is on the wire as soon as
//! it is its turn, it reaches its receiver (who can pass it on) in one chunk's time, and
//! control messages overtake the chunks still waiting here. BitTorrent clients ask for an
//! upload limit below the link's rate for the same reason (and uTP/LEDBAT does it by
//! measuring delay). In the swarm lab, pacing at 95 % of the link took N = 16 from 1.58
//! to 1.50 × the bound (BENCHMARKS.md "Swarm (issue 12)").
//!
//! Why the rarest first: the queue is here, so the order in which waiting chunks go
//! decides how soon each reaches its receiver. In booking order every range being served
//! gets one chunk per round, so with ten ranges in progress a chunk only this node
//! holds waits half a second behind chunks its receivers could get from many others; its
//! receiver passes it on that much later, and in a swarm where every node must pass on
//! nearly all it receives, that delay is what keeps links idle. Each chunk comes with a
//! rank, the number of peers known to hold it already (`swarm::Swarms::holders`), capped
//! at [`RANK_CAP`]; the lowest goes first, equal ranks in arrival order, and a chunk's
//! rank falls by one for every [`RANK_AGE`] it waits, so a common chunk is delayed, never
//! starved. The cap matters: uncapped, a node that has fallen behind needs only chunks
//! many hold, is served last everywhere and falls further behind (BENCHMARKS.md "Stop
//! 27").
//!
//! Pure: [`Link::take_turn`] takes the time and decides which chunk goes when.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A waiting chunk's rank falls by one per this much waiting. Measured in the swarm lab
/// (N = 16, uncapped ranks): 1 s was faster than booking order in 9 of 11 pairs and
/// slower in none; 0.2 s no better than booking order; 3 s, and no ageing at all, worse
/// than 1 s (BENCHMARKS.md "Stop 27").
const RANK_AGE: Duration = Duration::from_secs(1);

/// Ranks above this count as this: a chunk only this node holds (0) or one other peer
/// holds (1) goes before the rest, which go in arrival order. Measured in the swarm lab
/// (N = 16): uncapped, the median node finished earlier but the slowest 0.02–0.08 × the
/// bound after it; capped at 2 the slowest stayed within 0.02 of the median; 4 was no
/// better than uncapped (BENCHMARKS.md "Stop 27").
const RANK_CAP: u32 = 2;

/// How late a chunk may take a freed link and still be booked from when it freed. A task
/// wakes a little after its timer; booked from its waking, every chunk would add that
/// delay to the link's schedule (2 % of the rate in the swarm lab, with 128 KiB chunks
/// 52 ms apart: N = 1 took 1.08 × the bound instead of 1.06). Longer pauses are not
/// saved up.
const LATE: Duration = Duration::from_millis(5);

/// The upload link as a sequence of turns: each chunk books the link for its length at
/// the limit once it is the best of those waiting and the link is free.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pacer {
    /// Bytes a second; `None`: unpaced.
    rate: Option<f64>,
    link: Arc<Mutex<Link>>,
    /// Wakes the waiting chunks when one of them leaves the queue.
    changed: Arc<tokio::sync::Notify>,
}

/// The link's state: when it is free of the chunks booked so far, and who waits.
#[derive(Debug, Default)]
struct Link {
    free_at: Option<Instant>,
    next_ticket: u64,
    /// (ticket, rank, waiting since), in arrival order.
    waiting: Vec<(u64, u32, Instant)>,
}

impl Link {
    /// A chunk of `rank` (capped at [`RANK_CAP`]) starts waiting at `now`: its ticket.
    fn enqueue(&mut self, rank: u32, now: Instant) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiting.push((ticket, rank.min(RANK_CAP), now));
        ticket
    }

    /// Chunk `ticket` stops waiting without a turn (its range ended).
    fn leave(&mut self, ticket: u64) {
        self.waiting.retain(|w| w.0 != ticket);
    }

    /// Whether chunk `ticket` (`bytes` long, at `rate` bytes a second) goes at `now`: if
    /// the link is free and it is the best waiting, it books the link and leaves the
    /// queue (`Ok`); else `Err(when)`, when to look again (the link frees then, or,
    /// when it is free already, `now`: wait until another chunk leaves).
    fn take_turn(
        &mut self,
        ticket: u64,
        bytes: usize,
        rate: f64,
        now: Instant,
    ) -> Result<(), Instant> {
        let free = self.free_at.map_or(now, |at| at.max(now));
        if free > now {
            return Err(free);
        }
        if self.best(now) != Some(ticket) {
            return Err(now);
        }
        self.leave(ticket);
        let start = match self.free_at {
            Some(at) if now.saturating_duration_since(at) <= LATE => at,
            _ => now,
        };
        self.free_at = Some(start + Duration::from_secs_f64(bytes as f64 / rate));
        Ok(())
    }

    /// The waiting chunk that goes next: lowest rank less its age in [`RANK_AGE`]s,
    /// then the earliest.
    fn best(&self, now: Instant) -> Option<u64> {
        let age = RANK_AGE.as_secs_f64();
        let key = |&(ticket, rank, since): &(u64, u32, Instant)| {
            let waited = now.saturating_duration_since(since).as_secs_f64();
            (f64::from(rank) - waited / age, ticket)
        };
        (self.waiting.iter())
            .map(key)
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
            .map(|(_, ticket)| ticket)
    }
}

/// A chunk's place in the queue, given up however its wait ends (a range can be dropped
/// mid-wait when its stream fails).
struct Waiting<'a> {
    pacer: &'a Pacer,
    ticket: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pacer.link().leave(self.ticket);
        self.pacer.changed.notify_waiters();
    }
}

impl Pacer {
    /// A pacer at `bytes_per_sec`; 0 leaves uploads unpaced.
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        Self {
            rate: (bytes_per_sec > 0).then_some(bytes_per_sec as f64),
            ..Self::default()
        }
    }

    fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for the turn of a chunk of `bytes` held by `rank()` known peers (at once when
    /// unpaced, without asking for the rank: it costs a look at the swarm table).
    pub(crate) async fn wait(&self, bytes: usize, rank: impl FnOnce() -> u32) {
        let Some(rate) = self.rate else { return };
        let ticket = self.link().enqueue(rank(), Instant::now());
        let _waiting = Waiting {
            pacer: self,
            ticket,
        };
        loop {
            // Registered before the state is read, so a change in between is not missed.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = Instant::now();
            let Err(again) = self.link().take_turn(ticket, bytes, rate, now) else {
                return; // dropping `_waiting` wakes the others
            };
            if again > now {
                tokio::select! {
                    () = tokio::time::sleep_until(again.into()) => {}
                    () = &mut changed => {}
                }
            } else {
                changed.await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: f64 = 1_000_000.0;

    #[test]
    fn chunks_take_turns_at_the_rate() {
        let mut link = Link::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let a = link.enqueue(0, t0);
        assert_eq!(link.take_turn(a, 100_000, RATE, t0), Ok(()));
        // Queued while the first is on the wire: it goes when the link frees, 100 ms on.
        let b = link.enqueue(0, t0 + ms(10));
        assert_eq!(
            link.take_turn(b, 50_000, RATE, t0 + ms(10)),
            Err(t0 + ms(100))
        );
        assert_eq!(link.take_turn(b, 50_000, RATE, t0 + ms(100)), Ok(()));
        // Taken 2 ms late (its task woke after its timer): booked from when the link
        // freed, so the lateness does not add up over chunks.
        let c = link.enqueue(0, t0 + ms(100));
        assert_eq!(link.take_turn(c, 100_000, RATE, t0 + ms(152)), Ok(()));
        let d = link.enqueue(0, t0 + ms(160));
        assert_eq!(link.take_turn(d, 1, RATE, t0 + ms(160)), Err(t0 + ms(250)));
        assert_eq!(link.take_turn(d, 1, RATE, t0 + ms(250)), Ok(()));
        // An idle link is not saved up: a chunk after a pause goes at once, and the link
        // is booked from then.
        let e = link.enqueue(0, t0 + ms(900));
        assert_eq!(link.take_turn(e, 100_000, RATE, t0 + ms(900)), Ok(()));
        let f = link.enqueue(0, t0 + ms(901));
        assert_eq!(link.take_turn(f, 1, RATE, t0 + ms(901)), Err(t0 + ms(1000)));
    }

    #[test]
    fn the_rarest_waiting_chunk_goes_first_then_arrival_order() {
        let mut link = Link::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let busy = link.enqueue(0, t0);
        assert_eq!(link.take_turn(busy, 100_000, RATE, t0), Ok(()));
        let common = link.enqueue(5, t0);
        let common_too = link.enqueue(5, t0 + ms(1));
        let rare = link.enqueue(1, t0 + ms(2));
        let free = t0 + ms(100);
        assert_eq!(link.take_turn(common, 1000, RATE, free), Err(free));
        assert_eq!(link.take_turn(rare, 1000, RATE, free), Ok(()));
        let next = free + ms(1);
        assert_eq!(link.take_turn(common_too, 1000, RATE, next), Err(next));
        assert_eq!(link.take_turn(common, 1000, RATE, next), Ok(()));
    }

    #[test]
    fn ranks_above_the_cap_go_in_arrival_order() {
        let mut link = Link::default();
        let t0 = Instant::now();
        let many = link.enqueue(RANK_CAP + 10, t0);
        let fewer = link.enqueue(RANK_CAP, t0);
        assert_eq!(link.take_turn(fewer, 1000, RATE, t0), Err(t0));
        assert_eq!(link.take_turn(many, 1000, RATE, t0), Ok(()));
    }

    #[test]
    fn a_waiting_chunk_ages_past_fresh_rarer_ones() {
        let mut link = Link::default();
        let t0 = Instant::now();
        let common = link.enqueue(RANK_CAP, t0);
        // Later a chunk of rank 1 arrives: the common one has waited its rank away
        // (2 - 1.5 < 1) and goes first.
        let later = t0 + RANK_AGE.mul_f64(1.5);
        let rare = link.enqueue(1, later);
        assert_eq!(link.take_turn(rare, 1000, RATE, later), Err(later));
        assert_eq!(link.take_turn(common, 1000, RATE, later), Ok(()));
    }

    #[test]
    fn a_chunk_that_leaves_the_queue_holds_nobody_up() {
        let mut link = Link::default();
        let t0 = Instant::now();
        let gone = link.enqueue(0, t0);
        let next = link.enqueue(4, t0);
        assert_eq!(link.take_turn(next, 1000, RATE, t0), Err(t0));
        link.leave(gone);
        assert_eq!(link.take_turn(next, 1000, RATE, t0), Ok(()));
    }

    /// Real tasks on a real clock: a rare chunk queued behind common ones overtakes them,
    /// and a waiter dropped mid-wait (its range failed) blocks nobody.
    #[tokio::test]
    async fn waiting_tasks_go_rarest_first_and_a_dropped_one_is_skipped() {
        // 10 kB at 100 kB/s: 100 ms a chunk.
        let pacer = Pacer::new(100_000);
        let order = Arc::new(Mutex::new(Vec::new()));
        // The link is busy for a second from here: time enough to queue the others on a
        // loaded machine.
        pacer.wait(100_000, || 0).await;
        let mut tasks = Vec::new();
        for (name, rank) in [("common", 6), ("dropped", 0), ("rare", 1)] {
            let (pacer, order) = (pacer.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                pacer.wait(10_000, || rank).await;
                order.lock().unwrap().push(name);
            }));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tasks[1].abort();
        for task in tasks {
            let _ = task.await;
        }
        assert_eq!(*order.lock().unwrap(), ["rare", "common"]);
    }

    #[tokio::test]
    async fn no_limit_means_no_wait() {
        let pacer = Pacer::new(0);
        let start = Instant::now();
        for _ in 0..100 {
            pacer.wait(1 << 20, || 0).await;
        }
        assert!(start.elapsed() < Duration::from_millis(50));
    }
}
