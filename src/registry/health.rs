//! The node's health and readiness (`/health`, `/ready`): real checks, each bounded in
//! time: the store takes a write and reads it back, the event loop answers a status
//! command, and (for readiness) the node has a peer or was configured to need none.
//! It reports; what an HTTP status means is the API's.

use std::time::Duration;

use super::reports::{HealthCheck, HealthReport, FORMAT_VERSION};
use super::P2PRegistry;

/// Longest a check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

impl P2PRegistry {
    /// Liveness (`ready = false`: store writable, event loop answering) or readiness
    /// (`ready = true`: also at least one peer, unless no bootstrap peer is configured).
    pub async fn health(&self, ready: bool) -> HealthReport {
        let mut checks = vec![self.check_store().await];
        let (event_loop, peers) = self.check_event_loop().await;
        checks.push(event_loop);
        if let Some(peers) = peers {
            let standalone = self.config().bootstrap.is_empty();
            checks.push(HealthCheck {
                name: "peers".into(),
                ok: !ready || peers > 0 || standalone,
                detail: match (peers, standalone) {
                    (0, true) => "0 connected; no bootstrap peers configured, so none are awaited".into(),
                    (0, false) => "0 connected; waiting for a bootstrap peer (check `ggen-p2p status` and the bootstrap addresses)".into(),
                    (n, _) => format!("{n} connected"),
                },
            });
        }
        HealthReport {
            format_version: FORMAT_VERSION,
            ok: checks.iter().all(|c| c.ok),
            checks,
        }
    }

    async fn check_store(&self) -> HealthCheck {
        let probe = self.store().call(|store| store.probe());
        let (ok, detail) = match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
            Ok(Ok(())) => (true, "a probe row was written and read back".to_string()),
            Ok(Err(e)) => (false, format!("cannot write the store: {e}")),
            Err(_) => (
                false,
                format!(
                    "the store did not answer within {CHECK_TIMEOUT:?} (a long write holds it?)"
                ),
            ),
        };
        HealthCheck {
            name: "store".into(),
            ok,
            detail,
        }
    }

    /// The event loop's check, and the peer count it reported.
    async fn check_event_loop(&self) -> (HealthCheck, Option<usize>) {
        let check = |ok, detail: String| HealthCheck {
            name: "event_loop".into(),
            ok,
            detail,
        };
        let Some(client) = self.client() else {
            return (
                check(
                    false,
                    "no node is running; start one with `ggen-p2p start`".into(),
                ),
                None,
            );
        };
        match tokio::time::timeout(CHECK_TIMEOUT, client.status()).await {
            Ok(Ok(status)) => (
                check(true, "answered a status command".into()),
                Some(status.connected_peers),
            ),
            Ok(Err(e)) => (
                check(false, format!("{e}; restart the node")),
                None,
            ),
            Err(_) => (
                check(
                    false,
                    format!("no answer to a status command within {CHECK_TIMEOUT:?}; the network task is stuck, restart the node"),
                ),
                None,
            ),
        }
    }
}
