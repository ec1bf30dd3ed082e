//! What the node is doing right now, for the dashboard: the archive downloads in
//! progress (a small table the install path fills and empties) and the transport's
//! traffic; and the `/metrics` text. It owns that table only; the counters live in
//! `net::Metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::reports::{ActivityReport, StatusReport, Traffic, TransferLine, FORMAT_VERSION};
use super::P2PRegistry;
use crate::net::metrics::Snapshot;
use crate::package::ArchiveInfo;

/// Downloads in progress, by id. Shared with each [`Transfer`] guard, which removes its
/// row when dropped (finished, failed or cancelled alike).
#[derive(Default, Clone)]
pub(crate) struct Transfers {
    next: Arc<AtomicU64>,
    /// Locked only to add, remove or copy rows; never across an await.
    active: Arc<Mutex<BTreeMap<u64, Row>>>,
}

struct Row {
    name: String,
    version: semver::Version,
    archive: ArchiveInfo,
    started_at: u64,
    done: Arc<AtomicU64>,
}

/// One download's row in the table while it lives.
pub(crate) struct Transfer {
    id: u64,
    done: Arc<AtomicU64>,
    table: Transfers,
}

impl Transfers {
    /// Adds a row for `name@version`'s archive; it goes when the guard is dropped.
    pub(crate) fn begin(
        &self,
        name: &str,
        version: &semver::Version,
        archive: &ArchiveInfo,
    ) -> Transfer {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let done = Arc::new(AtomicU64::new(0));
        let row = Row {
            name: name.to_string(),
            version: version.clone(),
            archive: archive.clone(),
            started_at: crate::store::now_ms(),
            done: done.clone(),
        };
        self.lock().insert(id, row);
        Transfer {
            id,
            done,
            table: self.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Row>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lines(&self) -> Vec<TransferLine> {
        self.lock()
            .values()
            .map(|row| TransferLine {
                name: row.name.clone(),
                version: row.version.clone(),
                archive: row.archive.blake3,
                done: row.done.load(Ordering::Relaxed),
                total: row.archive.size,
                started_at: row.started_at,
            })
            .collect()
    }
}

impl Transfer {
    /// Bytes verified and stored so far.
    pub(crate) fn progress(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        self.table.lock().remove(&self.id);
    }
}

impl P2PRegistry {
    /// Every metric series in the OpenMetrics text format (`/metrics`), the store and
    /// peer gauges set from `status` (a report taken just before).
    pub fn render_metrics(&self, status: &StatusReport) -> String {
        let store = &status.store;
        let net = status.net.as_ref();
        self.metrics().render(&Snapshot {
            records: store.records,
            packages: store.packages,
            versions: store.versions,
            archives: store.archives,
            archive_bytes: store.archive_bytes,
            equivocations: store.equivocations,
            connected_peers: net.map(|n| n.connected_peers as u64),
            routing_table_peers: net.map(|n| n.routing_table_size as u64),
            gossip_mesh_peers: net.map(|n| n.gossip_mesh_peers as u64),
        })
    }

    /// Downloads in progress and the traffic since start (`null` when no node runs).
    pub fn activity(&self) -> ActivityReport {
        let traffic = self.client().map(|client| {
            let (bytes_in, bytes_out) = client.metrics().traffic();
            Traffic {
                bytes_in,
                bytes_out,
            }
        });
        ActivityReport {
            format_version: FORMAT_VERSION,
            traffic,
            transfers: self.inner.transfers.lines(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::Blake3Hash;

    #[test]
    fn a_row_lives_as_long_as_its_guard() {
        let table = Transfers::default();
        let archive = ArchiveInfo {
            blake3: Blake3Hash::of(b"a"),
            sha256: crate::package::Sha256Hash([7; 32]),
            size: 100,
            chunk_size: 10,
            chunks_root: Blake3Hash::of(b"r"),
        };
        let first = table.begin("web-kit", &semver::Version::new(1, 0, 0), &archive);
        let second = table.begin("cli-kit", &semver::Version::new(2, 0, 0), &archive);
        first.progress(40);
        let lines = table.lines();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (lines[0].name.as_str(), lines[0].done, lines[0].total),
            ("web-kit", 40, 100)
        );
        drop(first);
        let lines = table.lines();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].name, "cli-kit");
        drop(second);
        assert!(table.lines().is_empty());
    }
}
