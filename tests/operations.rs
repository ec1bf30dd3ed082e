//! The operations endpoints on real registries (temp data directories, real SQLite, real
//! libp2p swarms on 127.0.0.1) behind the real API server: `/health` and `/ready` run
//! their checks and fail with 503 naming the broken one, `/metrics` carries libp2p's
//! series and our counters move with what the node does, and `/api/v1/events` streams
//! accepted records.

use std::time::Duration;

use ggen_p2p::api;
use ggen_p2p::registry::{
    InstallRequest, P2PRegistry, PackageSpec, PublishRequest, Registry, StatusRequest,
};
use serde_json::Value;

mod support;
use support::registry::{address, line, loopback, node, wait_connected, wait_for, with_key};
use support::{eventually, pack};

async fn get(server: &api::ApiServer, path: &str) -> (u16, Value) {
    let response = reqwest::get(format!("http://{}{path}", server.addr))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check in {report}"))
}

async fn metrics(server: &api::ApiServer) -> String {
    reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the sample `series` (name with labels, as rendered), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
        .unwrap_or(0.0)
}

/// Sum of every sample whose line starts with `prefix`.
fn total(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_ready_fail_with_503_naming_the_broken_check() {
    let root = tempfile::tempdir().unwrap();
    // A standalone node (no bootstrap peers): healthy and ready with no peer.
    let alone = node(root.path(), "alone", vec![]).await;
    let server = api::serve(alone.clone(), "127.0.0.1:0").await.unwrap();
    let (status, report) = get(&server, "/health").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["ok"], true);
    for name in ["store", "event_loop", "peers"] {
        assert_eq!(check(&report, name)["ok"], true, "{report}");
    }
    let (status, report) = get(&server, "/ready").await;
    assert_eq!(
        status, 200,
        "a node with no bootstrap peers awaits none: {report}"
    );
    // The CLI's liveness probe is unchanged.
    let legacy = reqwest::get(format!("http://{}/api/v1/health", server.addr))
        .await
        .unwrap();
    assert_eq!(legacy.status(), 200);
    assert_eq!(legacy.text().await.unwrap(), "ok");

    // A store that refuses writes: unhealthy, and the store check says why.
    alone.store().set_read_only(true).unwrap();
    let (status, report) = get(&server, "/health").await;
    assert_eq!(status, 503, "{report}");
    assert_eq!(report["ok"], false);
    let store = check(&report, "store");
    assert_eq!(store["ok"], false, "{report}");
    assert!(
        store["detail"].as_str().unwrap().contains("cannot write"),
        "{report}"
    );
    assert_eq!(check(&report, "event_loop")["ok"], true, "{report}");
    alone.store().set_read_only(false).unwrap();
    assert_eq!(get(&server, "/health").await.0, 200);

    // The event loop gone: unhealthy and not ready, the event loop check says so.
    alone.client().unwrap().halt().await;
    for path in ["/health", "/ready"] {
        let (status, report) = get(&server, path).await;
        assert_eq!(status, 503, "{path}: {report}");
        let event_loop = check(&report, "event_loop");
        assert_eq!(event_loop["ok"], false, "{report}");
        assert!(
            event_loop["detail"].as_str().unwrap().contains("restart"),
            "{report}"
        );
        assert_eq!(check(&report, "store")["ok"], true, "{report}");
    }
    alone.stop().await.unwrap();

    // A node whose bootstrap peer never answers: healthy (alive) but not ready.
    let gone = node(root.path(), "gone", vec![]).await;
    let gone_addr = address(&gone).await;
    gone.stop().await.unwrap();
    let waiting = node(root.path(), "waiting", vec![gone_addr]).await;
    let server = api::serve(waiting.clone(), "127.0.0.1:0").await.unwrap();
    let (status, report) = get(&server, "/health").await;
    assert_eq!(status, 200, "{report}");
    let (status, report) = get(&server, "/ready").await;
    assert_eq!(status, 503, "{report}");
    let peers = check(&report, "peers");
    assert_eq!(peers["ok"], false, "{report}");
    assert!(
        peers["detail"].as_str().unwrap().contains("bootstrap"),
        "{report}"
    );
    waiting.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_libp2p_series_and_our_counters_move() {
    let root = tempfile::tempdir().unwrap();
    let nodes = line(root.path(), 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    wait_connected(b, 1).await;
    let server_a = api::serve(a.clone(), "127.0.0.1:0").await.unwrap();
    let server_b = api::serve(b.clone(), "127.0.0.1:0").await.unwrap();
    let (status, ready) = get(&server_b, "/ready").await;
    assert_eq!(status, 200, "b has its bootstrap peer: {ready}");

    // libp2p's own series, after two nodes connected (identify and ping run at once).
    let libp2p_seen = |text: &str| {
        total(text, "libp2p_swarm_connections_established_total") >= 1.0
            && total(text, "libp2p_identify_") > 0.0
            && total(text, "libp2p_ping_") > 0.0
            && total(text, "libp2p_bandwidth_bytes_total") > 0.0
    };
    eventually("libp2p series on b", || async {
        libp2p_seen(&metrics(&server_b).await)
    })
    .await;
    let text = metrics(&server_b).await;
    for family in [
        "# TYPE libp2p_gossipsub_",
        "# TYPE libp2p_kad_",
        "# TYPE ggen_p2p_records_received counter",
        "# TYPE ggen_p2p_fetch_duration_seconds histogram",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    assert_eq!(sample(&text, "ggen_p2p_connected_peers"), 1.0, "{text}");

    // A publish on a reaches b (by gossip or sync) and b counts it as received.
    with_key(a);
    let published = a
        .publish(PublishRequest::new(
            support::packs().join("rust-tracing-setup"),
        ))
        .await
        .unwrap();
    wait_for(b, &published.name, &published.version).await;
    let received = |text: &str| {
        total(
            text,
            "ggen_p2p_records_received_total{path=\"gossip\",outcome=\"added\"}",
        ) + total(
            text,
            "ggen_p2p_records_received_total{path=\"sync\",outcome=\"added\"}",
        )
    };
    eventually("b counts the record", || async {
        received(&metrics(&server_b).await) >= 1.0
    })
    .await;

    // A sync round is counted.
    let before = sample(
        &metrics(&server_b).await,
        "ggen_p2p_sync_rounds_total{outcome=\"ok\"}",
    );
    b.client().unwrap().sync_now().await.unwrap();
    let after = sample(
        &metrics(&server_b).await,
        "ggen_p2p_sync_rounds_total{outcome=\"ok\"}",
    );
    assert!(after >= before + 1.0, "sync rounds {before} -> {after}");

    // An install on b fetches from a: b counts bytes fetched and one duration, a bytes
    // served.
    let target = root.path().join("installed");
    let mut install = InstallRequest::new(PackageSpec::new(&published.name, ""));
    install.to = Some(target.clone());
    b.install(install, None).await.unwrap();
    let text = metrics(&server_b).await;
    assert_eq!(
        sample(&text, "ggen_p2p_fetched_bytes_total"),
        published.archive.size as f64,
        "{text}"
    );
    assert_eq!(
        sample(&text, "ggen_p2p_fetch_duration_seconds_count"),
        1.0,
        "{text}"
    );
    let served = sample(&metrics(&server_a).await, "ggen_p2p_served_bytes_total");
    assert_eq!(served, published.archive.size as f64, "bytes a served");

    // A connection that closes and a dial that fails are counted by libp2p's series.
    let b_client = b.client().unwrap();
    b_client
        .disconnect(a.client().unwrap().peer_id())
        .await
        .unwrap();
    let nobody = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let dead: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/9/p2p/{nobody}")
        .parse()
        .unwrap();
    assert!(
        b_client.dial(dead).await.is_err(),
        "nothing listens on port 9"
    );
    eventually("the closed connection and the failed dial on b", || async {
        let text = metrics(&server_b).await;
        total(&text, "libp2p_swarm_connections_duration_seconds_count") >= 1.0
            && total(&text, "libp2p_swarm_outgoing_connection_error_total") >= 1.0
    })
    .await;

    // Every series the Grafana dashboard plots exists on a node that has done all this.
    let text = metrics(&server_b).await;
    for series in grafana_series() {
        let family = ["_total", "_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| series.strip_suffix(suffix))
            .unwrap_or(&series);
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "docs/grafana-dashboard.json plots {series}, which /metrics does not have:\n{text}"
        );
    }

    for node in &nodes {
        node.stop().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_sends_each_accepted_record() {
    let root = tempfile::tempdir().unwrap();
    let registry: P2PRegistry = loopback(&root.path().join("n"), vec![]);
    with_key(&registry);
    let server = api::serve(registry.clone(), "127.0.0.1:0").await.unwrap();
    let response = reqwest::get(format!("http://{}/api/v1/events", server.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut response = response;
    let mut text = String::new();
    let mut published = false;
    let found = tokio::time::timeout(support::DEADLINE, async {
        while let Some(chunk) = response.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            // Subscribed: publish now, so the record is sure to be after the hello.
            if !published && text.contains("event: hello") {
                published = true;
                registry
                    .publish(PublishRequest::new(pack("rust-tracing-setup")))
                    .await
                    .unwrap();
            }
            if let Some(at) = text.find("event: record\ndata: ") {
                let line = text[at + 20..].lines().next().unwrap().to_string();
                if text[at..].contains("\n\n") {
                    return serde_json::from_str::<Value>(&line).unwrap();
                }
            }
        }
        panic!("the stream ended: {text}");
    })
    .await
    .expect("a record event within the deadline");
    assert_eq!(found["kind"], "version", "{found}");
    assert_eq!(found["name"], "rust-tracing-setup", "{found}");
    assert_eq!(found["format_version"], 1, "{found}");
    assert!(
        found["publisher"].is_string() && found["received_at"].is_u64(),
        "{found}"
    );
    // Stopping the node ends the stream (a browser tab never holds shutdown up).
    tokio::time::timeout(Duration::from_secs(10), registry.stop())
        .await
        .expect("stop does not wait for the open event stream")
        .unwrap();

    let status = registry.status(StatusRequest::default()).await.unwrap();
    assert_eq!(status.store.records, 1);
}

/// The metric names the Grafana dashboard's queries use.
fn grafana_series() -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana-dashboard.json");
    let dashboard: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut names = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find(|c: char| c.is_ascii_lowercase()) {
                rest = &rest[at..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                let word = &rest[..end];
                if (word.starts_with("ggen_p2p_") || word.starts_with("libp2p_"))
                    && !names.iter().any(|n| n == word)
                {
                    names.push(word.to_string());
                }
                rest = &rest[end..];
            }
        }
    }
    assert!(
        names.len() >= 10,
        "few series found in the dashboard: {names:?}"
    );
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_in_progress_is_listed_with_its_progress_then_gone() {
    let root = tempfile::tempdir().unwrap();
    let nodes = line(root.path(), 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    wait_connected(b, 1).await;
    with_key(a);
    let dir = support::big_pack(root.path(), "big-pack", 32);
    let published = a.publish(PublishRequest::new(dir)).await.unwrap();
    wait_for(b, &published.name, &published.version).await;
    let server = api::serve(b.clone(), "127.0.0.1:0").await.unwrap();
    let (_, idle) = get(&server, "/api/v1/activity").await;
    assert_eq!(idle["transfers"], serde_json::json!([]), "{idle}");
    assert!(idle["traffic"]["bytes_in"].as_u64().unwrap() > 0, "{idle}");

    let mut install = InstallRequest::new(PackageSpec::new(&published.name, ""));
    install.to = Some(root.path().join("installed"));
    let installing = tokio::spawn({
        let b = b.clone();
        async move { b.install(install, None).await.unwrap() }
    });
    // Polled while the download runs: the row shows the pack and its progress.
    let mut seen: Vec<Value> = Vec::new();
    while !installing.is_finished() {
        let (_, activity) = get(&server, "/api/v1/activity").await;
        seen.extend(activity["transfers"].as_array().unwrap().iter().cloned());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    installing.await.unwrap();
    assert!(
        !seen.is_empty(),
        "no transfer was listed during a 32 MiB download"
    );
    assert!(
        seen.iter().any(|row| row["done"].as_u64().unwrap() > 0),
        "the progress never moved: {seen:?}"
    );
    for row in &seen {
        assert_eq!(row["name"], "big-pack", "{row}");
        assert_eq!(row["total"], published.archive.size, "{row}");
        assert!(
            row["done"].as_u64().unwrap() <= published.archive.size,
            "{row}"
        );
    }
    let (_, after) = get(&server, "/api/v1/activity").await;
    assert_eq!(
        after["transfers"],
        serde_json::json!([]),
        "the row is gone: {after}"
    );
    for node in &nodes {
        node.stop().await.unwrap();
    }
}
