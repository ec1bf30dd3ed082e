//! The node's Prometheus registry: libp2p's own series (swarm, gossipsub, Kademlia,
//! identify, ping, relay, DCUtR, transport bandwidth) and ours (records received and
//! rejected by path, bytes served — in total and per archive — and fetched, fetch
//! durations, sync rounds, store and peer gauges). The net side counts; rendering (`/metrics`) is the API's, through
//! [`Metrics::render`]. It decides nothing and holds no network state.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libp2p::metrics::Recorder;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::behaviour::BehaviourEvent;
use super::policy::GossipCheck;
use crate::package::Blake3Hash;
use crate::store::IngestOutcome;

/// Archives that have their own `served_by_archive` series at most: when one more is
/// served, the series least recently served goes (Prometheus sees it end).
pub const SERVED_ARCHIVES_KEPT: usize = 32;
/// A per-archive series not served for this long is dropped at the next serve or scrape.
pub const SERVED_ARCHIVE_IDLE: Duration = Duration::from_secs(3600);
/// Hex digits of the archive hash in the `archive` label (as `info` shortens hashes).
const ARCHIVE_LABEL_LEN: usize = 16;

/// Where a record arrived from.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RecordPath {
    gossip,
    sync,
    dht,
    search,
    mirror,
}

impl RecordPath {
    const ALL: [RecordPath; 5] = [
        RecordPath::gossip,
        RecordPath::sync,
        RecordPath::dht,
        RecordPath::search,
        RecordPath::mirror,
    ];
}

/// Why a record was not accepted.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum RejectReason {
    /// Oversize, malformed or badly signed: refused before it reached the store.
    invalid,
    /// A second archive for a version its publisher already signed (kept as evidence).
    equivocation,
    /// Valid, but the store's rules refused it (a name owned by another key, a yank
    /// without its version...).
    refused,
    /// The store failed while ingesting it.
    store_failed,
}

impl RejectReason {
    const ALL: [RejectReason; 4] = [
        RejectReason::invalid,
        RejectReason::equivocation,
        RejectReason::refused,
        RejectReason::store_failed,
    ];
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Received {
    path: RecordPath,
    /// `added` (new here) or `duplicate`.
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Rejected {
    path: RecordPath,
    reason: RejectReason,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ArchiveLabel {
    /// The first [`ARCHIVE_LABEL_LEN`] hex digits of the archive's BLAKE3 hash.
    archive: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

/// Store and network figures read at each scrape (set from a status report).
#[derive(Default)]
pub struct Snapshot {
    pub records: u64,
    pub packages: u64,
    pub versions: u64,
    pub archives: u64,
    pub archive_bytes: u64,
    pub equivocations: u64,
    /// `None` when no node runs (the gauges then read 0).
    pub connected_peers: Option<u64>,
    pub routing_table_peers: Option<u64>,
    pub gossip_mesh_peers: Option<u64>,
}

/// Shared by the event loop, the network client, the registry and the API (an `Arc`).
pub struct Metrics {
    /// Locked only to register the transport's bandwidth counters when the swarm is
    /// built and to encode at a scrape; never across an await.
    registry: Mutex<Registry>,
    libp2p: libp2p::metrics::Metrics,
    received: Family<Received, Counter>,
    rejected: Family<Rejected, Counter>,
    bytes_served: Counter,
    served_by_archive: Family<ArchiveLabel, Counter>,
    /// When each archive with a series in `served_by_archive` was last served: what
    /// keeps that label set bounded. Locked only to count or prune, never across an
    /// await; the counter is bumped under it so a pruned series is not brought back
    /// half-counted.
    served_recently: Mutex<HashMap<ArchiveLabel, Instant>>,
    bytes_fetched: Counter,
    fetch_seconds: Histogram,
    sync_rounds: Family<Outcome, Counter>,
    gauges: Gauges,
}

struct Gauges {
    records: Gauge,
    packages: Gauge,
    versions: Gauge,
    archives: Gauge,
    archive_bytes: Gauge,
    equivocations: Gauge,
    connected_peers: Gauge,
    routing_table_peers: Gauge,
    gossip_mesh_peers: Gauge,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let libp2p = libp2p::metrics::Metrics::new(&mut registry);
        let ours = registry.sub_registry_with_prefix("ggen_p2p");
        let received = Family::<Received, Counter>::default();
        ours.register(
            "records_received",
            "Valid records received, by path (gossip, sync, dht, search, mirror) and outcome (added, duplicate)",
            received.clone(),
        );
        let rejected = Family::<Rejected, Counter>::default();
        ours.register(
            "records_rejected",
            "Records refused, by path and reason (invalid, equivocation, refused, store_failed)",
            rejected.clone(),
        );
        let bytes_served = Counter::default();
        ours.register_with_unit(
            "served",
            "Archive bytes sent to peers",
            Unit::Bytes,
            bytes_served.clone(),
        );
        let served_by_archive = Family::<ArchiveLabel, Counter>::default();
        ours.register_with_unit(
            "served_by_archive",
            "Archive bytes sent to peers, by archive (short hash); only the archives served in the last hour, at most 32",
            Unit::Bytes,
            served_by_archive.clone(),
        );
        let bytes_fetched = Counter::default();
        ours.register_with_unit(
            "fetched",
            "Archive bytes downloaded from peers, verified",
            Unit::Bytes,
            bytes_fetched.clone(),
        );
        let fetch_seconds = Histogram::new([0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]);
        ours.register_with_unit(
            "fetch_duration",
            "Time to download one archive from peers",
            Unit::Seconds,
            fetch_seconds.clone(),
        );
        let sync_rounds = Family::<Outcome, Counter>::default();
        ours.register(
            "sync_rounds",
            "Anti-entropy rounds with one peer, by outcome (ok, failed)",
            sync_rounds.clone(),
        );
        let mut gauge = |name: &str, help: &str| {
            let gauge = Gauge::default();
            ours.register(name, help, gauge.clone());
            gauge
        };
        let gauges = Gauges {
            records: gauge("records", "Signed records in the local replica"),
            packages: gauge("packages", "Package names known"),
            versions: gauge("versions", "Package versions known"),
            archives: gauge("archives", "Archives stored locally"),
            archive_bytes: gauge("archive_bytes", "Bytes of archives stored locally"),
            equivocations: gauge(
                "equivocations",
                "Conflicting records refused and kept as evidence",
            ),
            connected_peers: gauge("connected_peers", "Peers connected now"),
            routing_table_peers: gauge(
                "routing_table_peers",
                "Peers in the Kademlia routing table",
            ),
            gossip_mesh_peers: gauge("gossip_mesh_peers", "Peers in the gossipsub mesh"),
        };
        // Every label set exists from the start (at 0), so rates and alerts see a
        // series before its first event.
        for path in RecordPath::ALL {
            for outcome in ["added", "duplicate"] {
                let _ = received.get_or_create(&Received { path, outcome });
            }
            for reason in RejectReason::ALL {
                let _ = rejected.get_or_create(&Rejected { path, reason });
            }
        }
        for outcome in ["ok", "failed"] {
            let _ = sync_rounds.get_or_create(&Outcome { outcome });
        }
        Self {
            registry: Mutex::new(registry),
            libp2p,
            received,
            rejected,
            bytes_served,
            served_by_archive,
            served_recently: Mutex::new(HashMap::new()),
            bytes_fetched,
            fetch_seconds,
            sync_rounds,
            gauges,
        }
    }

    /// The registry, to register more series in (the transport's bandwidth counters
    /// when the swarm is built).
    pub(crate) fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One swarm event, for libp2p's swarm series (connections, dials, listeners).
    pub(crate) fn record_swarm<E>(&self, event: &libp2p::swarm::SwarmEvent<E>) {
        self.libp2p.record(event);
    }

    /// One behaviour event, for libp2p's protocol series.
    pub(crate) fn record_behaviour(&self, event: &BehaviourEvent) {
        match event {
            BehaviourEvent::Identify(e) => self.libp2p.record(e),
            BehaviourEvent::Ping(e) => self.libp2p.record(e),
            BehaviourEvent::Kad(e) => self.libp2p.record(e),
            BehaviourEvent::Gossipsub(e) => self.libp2p.record(e),
            BehaviourEvent::RelayServer(e) => self.libp2p.record(e),
            BehaviourEvent::Dcutr(e) => self.libp2p.record(e),
            _ => {}
        }
    }

    /// A record that failed its checks before reaching the store.
    pub fn invalid(&self, path: RecordPath) {
        self.reject(path, RejectReason::invalid);
    }

    fn reject(&self, path: RecordPath, reason: RejectReason) {
        self.rejected
            .get_or_create(&Rejected { path, reason })
            .inc();
    }

    /// What the store did with a valid record that arrived by `path`.
    pub fn ingested(&self, path: RecordPath, outcome: &IngestOutcome) {
        let received = |outcome| {
            self.received
                .get_or_create(&Received { path, outcome })
                .inc();
        };
        match outcome {
            IngestOutcome::Added => received("added"),
            IngestOutcome::Duplicate => received("duplicate"),
            IngestOutcome::Equivocation { .. } => self.reject(path, RejectReason::equivocation),
            IngestOutcome::Rejected { .. } => self.reject(path, RejectReason::refused),
        }
    }

    /// A store failure while ingesting `count` records that arrived by `path`.
    pub fn store_failed(&self, path: RecordPath, count: usize) {
        self.rejected
            .get_or_create(&Rejected {
                path,
                reason: RejectReason::store_failed,
            })
            .inc_by(count as u64);
    }

    pub(crate) fn gossip_checked(&self, check: &GossipCheck) {
        match check {
            GossipCheck::Invalid => self.invalid(RecordPath::gossip),
            GossipCheck::StoreFailed => self.store_failed(RecordPath::gossip, 1),
            GossipCheck::Ingested(outcome) => self.ingested(RecordPath::gossip, outcome),
        }
    }

    pub fn served(&self, bytes: u64) {
        self.bytes_served.inc_by(bytes);
    }

    /// `bytes` of `archive` sent to a peer: counted in the total and in the archive's
    /// own series (see [`SERVED_ARCHIVES_KEPT`] for which archives keep one).
    pub fn served_archive(&self, archive: &Blake3Hash, bytes: u64) {
        self.served_archive_at(archive, bytes, Instant::now());
    }

    fn served_archive_at(&self, archive: &Blake3Hash, bytes: u64, now: Instant) {
        self.served(bytes);
        let label = ArchiveLabel {
            archive: archive.to_hex()[..ARCHIVE_LABEL_LEN].to_string(),
        };
        let mut recent = self
            .served_recently
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !recent.contains_key(&label) {
            self.prune_served(&mut recent, now);
            while recent.len() >= SERVED_ARCHIVES_KEPT {
                let Some(oldest) = recent
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(l, _)| l.clone())
                else {
                    break;
                };
                recent.remove(&oldest);
                self.served_by_archive.remove(&oldest);
            }
        }
        self.served_by_archive.get_or_create(&label).inc_by(bytes);
        recent.insert(label, now);
    }

    /// Drops the per-archive series idle longer than [`SERVED_ARCHIVE_IDLE`].
    fn prune_served(&self, recent: &mut HashMap<ArchiveLabel, Instant>, now: Instant) {
        recent.retain(|label, at| {
            let keep = now.saturating_duration_since(*at) < SERVED_ARCHIVE_IDLE;
            if !keep {
                self.served_by_archive.remove(label);
            }
            keep
        });
    }

    /// One archive downloaded and verified: its size and how long it took.
    pub fn fetched(&self, bytes: u64, took: std::time::Duration) {
        self.bytes_fetched.inc_by(bytes);
        self.fetch_seconds.observe(took.as_secs_f64());
    }

    pub fn sync_round(&self, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.sync_rounds.get_or_create(&Outcome { outcome }).inc();
    }

    /// Bytes received and sent over every transport since start (libp2p's bandwidth
    /// counters, summed over protocols).
    pub fn traffic(&self) -> (u64, u64) {
        let (mut inbound, mut outbound) = (0u64, 0u64);
        for line in self.encode().lines() {
            let Some(rest) = line.strip_prefix("libp2p_bandwidth_bytes_total{") else {
                continue;
            };
            let Some(value) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
                continue;
            };
            if rest.contains("direction=\"Inbound\"") {
                inbound += value as u64;
            } else if rest.contains("direction=\"Outbound\"") {
                outbound += value as u64;
            }
        }
        (inbound, outbound)
    }

    /// The OpenMetrics text of every series, the gauges set from `snapshot` first.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let g = &self.gauges;
        let set = |gauge: &Gauge, value: u64| {
            gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        };
        set(&g.records, snapshot.records);
        set(&g.packages, snapshot.packages);
        set(&g.versions, snapshot.versions);
        set(&g.archives, snapshot.archives);
        set(&g.archive_bytes, snapshot.archive_bytes);
        set(&g.equivocations, snapshot.equivocations);
        set(&g.connected_peers, snapshot.connected_peers.unwrap_or(0));
        set(
            &g.routing_table_peers,
            snapshot.routing_table_peers.unwrap_or(0),
        );
        set(
            &g.gossip_mesh_peers,
            snapshot.gossip_mesh_peers.unwrap_or(0),
        );
        {
            let mut recent = self
                .served_recently
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.prune_served(&mut recent, Instant::now());
        }
        self.encode()
    }

    fn encode(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            tracing::warn!("encoding metrics: {e}");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_up_with_their_labels() {
        let metrics = Metrics::new();
        metrics.ingested(RecordPath::gossip, &IngestOutcome::Added);
        metrics.invalid(RecordPath::sync);
        metrics.fetched(2048, std::time::Duration::from_millis(300));
        metrics.sync_round(true);
        let text = metrics.render(&Snapshot {
            records: 3,
            ..Snapshot::default()
        });
        assert!(
            text.contains("ggen_p2p_records_received_total{path=\"gossip\",outcome=\"added\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ggen_p2p_records_rejected_total{path=\"sync\",reason=\"invalid\"} 1"),
            "{text}"
        );
        assert!(text.contains("ggen_p2p_fetched_bytes_total 2048"), "{text}");
        assert!(
            text.contains("ggen_p2p_fetch_duration_seconds_bucket{le=\"0.5\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("ggen_p2p_sync_rounds_total{outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("ggen_p2p_records 3\n"), "{text}");
        assert!(
            text.contains("# TYPE libp2p_kad_query_result_get_record_ok counter"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }

    fn served_series(metrics: &Metrics) -> Vec<String> {
        metrics
            .encode()
            .lines()
            .filter(|line| line.starts_with("ggen_p2p_served_by_archive_bytes_total{"))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn bytes_served_are_counted_per_archive_in_a_bounded_label_set() {
        let metrics = Metrics::new();
        let start = Instant::now();
        let archive = |i: u32| Blake3Hash::of(&i.to_be_bytes());
        metrics.served_archive_at(&archive(0), 1000, start);
        metrics.served_archive_at(&archive(0), 24, start);
        metrics.served_archive_at(&archive(1), 5, start);
        let text = metrics.encode();
        let short = &archive(0).to_hex()[..16];
        assert!(
            text.contains(&format!(
                "ggen_p2p_served_by_archive_bytes_total{{archive=\"{short}\"}} 1024"
            )),
            "{text}"
        );
        assert!(text.contains("ggen_p2p_served_bytes_total 1029"), "{text}");

        // One more archive than are kept: the least recently served (archive 1, as 0 is
        // served again) loses its series; the total still counts everything.
        let later = start + Duration::from_secs(1);
        metrics.served_archive_at(&archive(0), 1, later);
        for i in 2..=SERVED_ARCHIVES_KEPT as u32 {
            metrics.served_archive_at(&archive(i), 1, later + Duration::from_millis(i.into()));
        }
        let series = served_series(&metrics);
        assert_eq!(series.len(), SERVED_ARCHIVES_KEPT, "{series:?}");
        let gone = &archive(1).to_hex()[..16];
        assert!(!series.iter().any(|s| s.contains(gone)), "{series:?}");
        assert!(series.iter().any(|s| s.contains(short)), "{series:?}");
        let text = metrics.encode();
        let total = 1029 + 1 + (SERVED_ARCHIVES_KEPT as u64 - 1);
        assert!(
            text.contains(&format!("ggen_p2p_served_bytes_total {total}\n")),
            "{text}"
        );

        // An hour idle: every series goes when the next archive is served.
        let idle = later + SERVED_ARCHIVE_IDLE + Duration::from_secs(1);
        metrics.served_archive_at(&archive(999), 7, idle);
        let series = served_series(&metrics);
        assert_eq!(series.len(), 1, "{series:?}");
        assert!(series[0].ends_with(" 7"), "{series:?}");
    }
}
