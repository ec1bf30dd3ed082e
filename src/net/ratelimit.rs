//! Per-peer rate limits on the requests this node answers: one token bucket per peer and
//! request kind, limits from `config.toml` ([`RateLimits`]). Socket-free, time passed
//! in; the event loop answers a refused request with [`refusal`] and lowers the peer's
//! reputation. Requests we send are not limited here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use super::protocol::Request;
use crate::config::{Rate, RateLimits};

/// What a request costs a bucket of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    Sync,
    Records,
    Search,
    ChunkList,
    Chunk,
    /// A DHT record or provider record to store.
    Dht,
}

impl RequestKind {
    pub fn of(request: &Request) -> Self {
        match request {
            Request::SyncSummary | Request::SyncBucket { .. } | Request::SyncOwners { .. } => {
                Self::Sync
            }
            Request::GetRecords { .. } => Self::Records,
            Request::Search { .. } => Self::Search,
            Request::ChunkList { .. } => Self::ChunkList,
            Request::Chunk { .. } => Self::Chunk,
        }
    }

    fn rate(self, limits: &RateLimits) -> Rate {
        match self {
            Self::Sync => limits.sync,
            Self::Records => limits.records,
            Self::Search => limits.search,
            Self::ChunkList => limits.chunk_list,
            Self::Chunk => limits.chunk,
            Self::Dht => limits.dht,
        }
    }
}

/// What one token of the chunk limit buys: a MiB of chunks. The limit was set in chunks
/// when every chunk was 1 MiB; counted in chunks, 128 KiB chunks would get an eighth of
/// the bytes (1000 a second is 125 MiB/s, under what one provider sends on a LAN, and
/// a downloader asking for more was refused and lost reputation).
pub const CHUNK_UNIT: u64 = 1 << 20;

/// The error answered to a request over its limit.
pub fn refusal(wait: Duration) -> String {
    format!(
        "rate limited: retry in {} ms (this node limits requests per peer)",
        wait.as_millis().max(1)
    )
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Every connected peer's buckets.
#[derive(Debug)]
pub struct Limiter {
    limits: RateLimits,
    buckets: HashMap<(PeerId, RequestKind), Bucket>,
}

impl Limiter {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            buckets: HashMap::new(),
        }
    }

    /// Takes a token for one `kind` request from `peer` at `now`; over the limit, how
    /// long until a token is back.
    pub fn check(&mut self, peer: PeerId, kind: RequestKind, now: Instant) -> Result<(), Duration> {
        self.charge(peer, kind, 1.0, now)
    }

    /// A streamed range of chunks, `bytes` long in all: [`RequestKind::Chunk`] tokens
    /// are [`CHUNK_UNIT`] each, so the limit is the same in bytes whatever the archive's
    /// chunk size. A range above the burst costs the whole burst, so it is never refused
    /// forever.
    pub fn check_chunks(&mut self, peer: PeerId, bytes: u64, now: Instant) -> Result<(), Duration> {
        let cost = (bytes as f64 / CHUNK_UNIT as f64).max(1.0 / 64.0);
        self.charge(peer, RequestKind::Chunk, cost, now)
    }

    /// Takes `cost` tokens (at most the burst) of `peer`'s `kind` bucket.
    fn charge(
        &mut self,
        peer: PeerId,
        kind: RequestKind,
        cost: f64,
        now: Instant,
    ) -> Result<(), Duration> {
        let rate = kind.rate(&self.limits);
        if rate.per_sec == 0 {
            return Ok(());
        }
        let burst = f64::from(rate.burst.max(1));
        let per_sec = f64::from(rate.per_sec);
        let bucket = self.buckets.entry((peer, kind)).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(burst);
        bucket.at = now;
        let cost = cost.min(burst);
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((cost - bucket.tokens) / per_sec))
        }
    }

    /// `peer` disconnected: its buckets go (a reconnect starts full, which a flood
    /// cannot exploit for long: each refusal costs reputation, and a ban ends it).
    pub fn forget(&mut self, peer: &PeerId) {
        self.buckets.retain(|(p, _), _| p != peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(burst: u32, per_sec: u32) -> RateLimits {
        let rate = Rate { burst, per_sec };
        RateLimits {
            search: rate,
            ..RateLimits::default()
        }
    }

    #[test]
    fn a_burst_passes_then_requests_wait_for_the_refill() {
        let mut limiter = Limiter::new(limits(3, 10));
        let (peer, other) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.check(peer, RequestKind::Search, t0).unwrap();
        }
        let wait = limiter.check(peer, RequestKind::Search, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(refusal(wait).starts_with("rate limited: retry in 100 ms"));
        // Other peers and other kinds have buckets of their own.
        limiter.check(other, RequestKind::Search, t0).unwrap();
        limiter.check(peer, RequestKind::Chunk, t0).unwrap();
        // A token is back after 100 ms, and only one.
        let t1 = t0 + Duration::from_millis(100);
        limiter.check(peer, RequestKind::Search, t1).unwrap();
        assert!(limiter.check(peer, RequestKind::Search, t1).is_err());
        // Refills never exceed the burst.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            limiter.check(peer, RequestKind::Search, later).unwrap();
        }
        assert!(limiter.check(peer, RequestKind::Search, later).is_err());
        limiter.forget(&peer);
        limiter.check(peer, RequestKind::Search, later).unwrap();
        // A range of chunks costs a token per MiB, whatever the chunk size; more than
        // the burst costs the burst.
        let mut limiter = Limiter::new(RateLimits {
            chunk: Rate {
                burst: 10,
                per_sec: 10,
            },
            ..RateLimits::default()
        });
        limiter.check_chunks(peer, 8 << 20, t0).unwrap();
        let wait = limiter.check_chunks(peer, 8 << 20, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(600));
        for _ in 0..10 {
            // Eight chunks of 128 KiB: one token.
            limiter.check_chunks(other, 8 * (128 << 10), t0).unwrap();
        }
        assert!(limiter.check_chunks(other, 128 << 10, t0).is_err());
        let full = t0 + Duration::from_secs(10);
        limiter.check_chunks(peer, 64 << 20, full).unwrap();
        assert!(limiter.check_chunks(peer, 1 << 20, full).is_err());
    }

    #[test]
    fn zero_per_sec_is_no_limit_and_defaults_allow_a_fresh_sync() {
        let mut limiter = Limiter::new(limits(0, 0));
        let peer = PeerId::random();
        let now = Instant::now();
        for _ in 0..10_000 {
            limiter.check(peer, RequestKind::Search, now).unwrap();
        }
        // A fresh sync: one summary and 256 bucket listings at once.
        for _ in 0..257 {
            limiter.check(peer, RequestKind::Sync, now).unwrap();
        }
        assert_eq!(
            RequestKind::of(&Request::SyncBucket { bucket: 1 }),
            RequestKind::Sync
        );
    }
}
