//! `/metrics` in the OpenMetrics text format: the node's store and network figures,
//! read fresh at each scrape.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::registry::StatusReport;

pub fn render(status: &StatusReport) -> String {
    let mut registry = Registry::with_prefix("ggen_p2p");
    let mut gauge = |name: &str, help: &str, value: u64| {
        let metric: Gauge = Gauge::default();
        metric.set(value as i64);
        registry.register(name, help, metric);
    };
    let store = &status.store;
    gauge(
        "records",
        "Signed records in the local replica",
        store.records,
    );
    gauge("packages", "Package names known", store.packages);
    gauge("versions", "Package versions known", store.versions);
    gauge("archives", "Archives stored locally", store.archives);
    gauge(
        "archive_bytes",
        "Bytes of archives stored locally",
        store.archive_bytes,
    );
    gauge(
        "equivocations",
        "Conflicting records refused and kept as evidence",
        store.equivocations,
    );
    if let Some(net) = &status.net {
        gauge(
            "connected_peers",
            "Peers connected now",
            net.connected_peers as u64,
        );
        gauge(
            "routing_table_peers",
            "Peers in the Kademlia routing table",
            net.routing_table_size as u64,
        );
    }
    let mut text = String::new();
    if encode(&mut text, &registry).is_err() {
        text.clear();
    }
    text
}
