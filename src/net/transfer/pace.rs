//! Upload pacing: with `upload_limit` set (bytes a second, about what the node's upload
//! link carries), chunks leave this node one after another at that rate, in the order
//! their ranges asked for them, instead of all at once into the sockets.
//!
//! Why: a node serving several peers writes into one socket per peer, and the kernel
//! and the router's queue (often hundreds of milliseconds deep at home) interleave them.
//! Every chunk then completes only after several chunks' time, and the small messages
//! that steer a swarm (offers, range requests) wait behind chunk data. Paced at the
//! link's rate, those queues stay short: a chunk is on the wire as soon as it is its
//! turn, it reaches its receiver (who can pass it on) in one chunk's time, and control
//! messages overtake the chunks still waiting here. BitTorrent clients ask for an upload
//! limit below the link's rate for the same reason (and uTP/LEDBAT does it by measuring
//! delay). In the swarm lab, pacing at 95 % of the link took N = 16 from 1.58 to 1.50 ×
//! the bound (BENCHMARKS.md "Swarm (issue 12)").
//!
//! Pure: [`Pacer::turn`] takes the time and answers when a chunk may go.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The upload link as a sequence of turns: each chunk books the link for its length at
/// the limit, after the chunks booked before it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pacer {
    /// Bytes a second; `None`: unpaced.
    rate: Option<f64>,
    /// When the link is free of the chunks booked so far.
    free_at: Arc<Mutex<Option<Instant>>>,
}

impl Pacer {
    /// A pacer at `bytes_per_sec`; 0 leaves uploads unpaced.
    pub(crate) fn new(bytes_per_sec: u64) -> Self {
        Self {
            rate: (bytes_per_sec > 0).then_some(bytes_per_sec as f64),
            free_at: Arc::default(),
        }
    }

    /// Books `bytes` at `now`: when they may be written (`now` itself if the link is
    /// free; `None` when unpaced).
    pub(crate) fn turn(&self, bytes: usize, now: Instant) -> Option<Instant> {
        let rate = self.rate?;
        let mut free_at = self.free_at.lock().unwrap_or_else(|e| e.into_inner());
        let start = free_at.map_or(now, |at| at.max(now));
        *free_at = Some(start + Duration::from_secs_f64(bytes as f64 / rate));
        Some(start)
    }

    /// Waits for the turn of `bytes` (at once when unpaced).
    pub(crate) async fn wait(&self, bytes: usize) {
        if let Some(at) = self.turn(bytes, Instant::now()) {
            tokio::time::sleep_until(at.into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_take_turns_at_the_rate_in_booking_order() {
        let pacer = Pacer::new(1_000_000);
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(pacer.turn(100_000, t0), Some(t0));
        // Booked while the first is on the wire: after it, 100 ms later.
        assert_eq!(pacer.turn(50_000, t0 + ms(10)), Some(t0 + ms(100)));
        assert_eq!(pacer.turn(100_000, t0 + ms(20)), Some(t0 + ms(150)));
        // An idle link is not saved up: a chunk after a pause goes at once.
        assert_eq!(pacer.turn(1, t0 + ms(900)), Some(t0 + ms(900)));
    }

    #[test]
    fn no_limit_means_no_wait() {
        let pacer = Pacer::new(0);
        assert_eq!(pacer.turn(1 << 20, Instant::now()), None);
    }
}
