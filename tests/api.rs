//! The daemon's local HTTP API on a real registry (temp data directory, real SQLite) and
//! a real axum server on 127.0.0.1: changing routes refuse a missing or wrong token,
//! `/metrics` renders OpenMetrics, and every operation gives through the API client the
//! same report as in-process.

use std::path::Path;

use ggen_p2p::api::{self, client::ApiClient};
use ggen_p2p::package::PublisherKey;
use ggen_p2p::registry::{
    InfoRequest, InstallRequest, ListRequest, P2PRegistry, P2PRegistryBuilder, PackageSpec,
    PeersRequest, PublishRequest, Registry, RegistryError, SearchRequest, StatusRequest,
    VerifyRequest, YankRequest,
};
use serde_json::Value;

mod support;

fn pack(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/packs")
        .join(name)
}

/// An offline registry with a key, serving the API; returns it with its API client.
async fn serve(dir: &Path) -> (P2PRegistry, api::ApiServer, ApiClient) {
    let registry = P2PRegistryBuilder::new()
        .with_data_dir(dir)
        .build()
        .unwrap();
    PublisherKey::generate()
        .save(&registry.publisher_key_path(), false)
        .unwrap();
    let server = api::serve(registry.clone(), "127.0.0.1:0").await.unwrap();
    api::write_endpoint(dir, &server).unwrap();
    let client = ApiClient::discover(dir).await.expect("the API answers");
    (registry, server, client)
}

#[tokio::test]
async fn changing_routes_need_the_token_and_reading_routes_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, server, _client) = serve(dir.path()).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", server.addr);
    let body = serde_json::json!({ "dir": pack("rust-axum-service") });

    let missing = http
        .post(url("/api/v1/publish"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    let message: Value = missing.json().await.unwrap();
    assert!(
        message["error"].as_str().unwrap().contains("api.json"),
        "the refusal says where the token is: {message}"
    );
    let wrong = http
        .post(url("/api/v1/publish"))
        .bearer_auth("0".repeat(server.token.len()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    for path in [
        "/api/v1/yank",
        "/api/v1/install",
        "/api/v1/peers/add",
        "/api/v1/peers/remove",
    ] {
        let refused = http.post(url(path)).json(&body).send().await.unwrap();
        assert_eq!(refused.status(), 401, "{path} without a token");
    }
    // Nothing was published by the refused calls.
    let status = http.get(url("/api/v1/status")).send().await.unwrap();
    assert_eq!(status.status(), 200, "reading needs no token");
    let status: Value = status.json().await.unwrap();
    assert_eq!(status["store"]["records"], 0);

    let right = http
        .post(url("/api/v1/publish"))
        .bearer_auth(&server.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    registry.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_render_openmetrics_with_the_store_figures() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, server, client) = serve(dir.path()).await;
    client
        .publish(PublishRequest::new(pack("rust-axum-service")))
        .await
        .unwrap();
    let response = reqwest::get(format!("http://{}/metrics", server.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    assert!(text.contains("# TYPE ggen_p2p_records gauge"), "{text}");
    assert!(text.contains("ggen_p2p_records 1\n"), "{text}");
    assert!(text.contains("ggen_p2p_versions 1\n"), "{text}");
    assert!(text.contains("ggen_p2p_archives 1\n"), "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    registry.stop().await.unwrap();
}

#[tokio::test]
async fn every_operation_answers_the_same_through_the_api_as_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let (registry, _server, client) = serve(dir.path()).await;

    let published = client
        .publish(PublishRequest::new(pack("rust-axum-service")))
        .await
        .unwrap();
    assert_eq!(published.name, "rust-axum-service");
    assert!(!published.already_published);
    // Its dependency, which install now resolves and installs with it.
    client
        .publish(PublishRequest::new(pack("rust-tracing-setup")))
        .await
        .unwrap();

    let spec = || PackageSpec::new("rust-axum-service", "^1");
    let info = InfoRequest::new(spec());
    assert_eq!(
        json(&client.info(info.clone()).await.unwrap()),
        json(&registry.info(info).await.unwrap())
    );
    let search = SearchRequest::new(vec!["axum".into()]);
    let found = client.search(search.clone()).await.unwrap();
    assert_eq!(found.results[0].package.name, "rust-axum-service");
    assert_eq!(json(&found), json(&registry.search(search).await.unwrap()));

    let target = dir.path().join("installed");
    let installed = client
        .install(InstallRequest::new(spec()).with_target(&target), None)
        .await
        .unwrap();
    assert!(target.join("package.toml").is_file());
    assert_eq!(installed.path, target);
    assert_eq!(installed.dependencies[0].name, "rust-tracing-setup");

    let list = client.list(ListRequest::default()).await.unwrap();
    assert_eq!(list.installed.len(), 2, "the pack and its dependency");
    assert_eq!(list.published.len(), 2);
    assert_eq!(
        json(&list),
        json(&registry.list(ListRequest::default()).await.unwrap())
    );

    // The lifecycle operations answer the same through the API too.
    let outdated = client
        .outdated(ggen_p2p::registry::OutdatedRequest::default())
        .await
        .unwrap();
    assert_eq!(outdated.packs.len(), 2, "the pack and its dependency");
    assert_eq!(
        json(&outdated),
        json(
            &registry
                .outdated(ggen_p2p::registry::OutdatedRequest::default())
                .await
                .unwrap()
        )
    );
    let updated = client
        .update(ggen_p2p::registry::UpdateRequest::default())
        .await
        .unwrap();
    assert_eq!(updated.trees.len(), 1);
    assert!(updated.trees[0].changes.is_empty(), "{updated:?}");
    let new_pack = dir.path().join("new-pack");
    let init = client
        .init(ggen_p2p::registry::InitRequest {
            dir: new_pack.clone(),
            yes: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(init.name, "new-pack");
    assert!(new_pack.join("package.toml").is_file());

    let yank = YankRequest {
        spec: PackageSpec::new("rust-axum-service", "1.2.0"),
    };
    let yanked = client.yank(yank).await.unwrap();
    assert_eq!(yanked.version.to_string(), "1.2.0");
    let info = client.info(InfoRequest::new(spec())).await;
    assert!(
        info.is_err(),
        "a yanked version no longer resolves: {info:?}"
    );

    let verified = client.verify(VerifyRequest::default()).await.unwrap();
    assert_eq!(verified.records_checked, 3, "the two versions and the yank");
    assert_eq!(verified.archives_checked, 2);
    assert!(verified.bad_records.is_empty() && verified.bad_archives.is_empty());
    assert_eq!(
        json(&verified),
        json(&registry.verify(VerifyRequest::default()).await.unwrap())
    );

    let status = client.status(StatusRequest::default()).await.unwrap();
    assert_eq!(status.api.as_deref(), Some(client.addr().as_str()));
    assert_eq!(status.store.records, 3);
    let removed = client
        .uninstall(ggen_p2p::registry::UninstallRequest {
            name: "rust-axum-service".into(),
            path: None,
        })
        .await
        .unwrap();
    assert_eq!(removed.path, target);
    assert!(!target.exists());
    assert!(client
        .list(ListRequest::default())
        .await
        .unwrap()
        .installed
        .is_empty());

    // Errors keep their sentence; an offline node says what to do.
    match client.peers(PeersRequest::default()).await {
        Err(RegistryError::Remote { status, message }) => {
            assert_eq!(status, 503);
            assert!(message.contains("ggen-p2p start"), "{message}");
        }
        other => panic!("peers on an offline node: {other:?}"),
    }
    let bad = client
        .yank(YankRequest {
            spec: PackageSpec::new("rust-axum-service", ""),
        })
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("exact version"), "{bad}");
    registry.stop().await.unwrap();
}

/// Reports compared as JSON: they are the API's bodies.
fn json<T: serde::Serialize>(report: &T) -> Value {
    serde_json::to_value(report).unwrap()
}

/// One shutdown root: `stop` cancels the network, the API and everything they spawned
/// (sync with a peer, an open API connection) and returns only when all have ended, so
/// the ports are free at once.
#[tokio::test]
async fn stop_ends_every_task_and_frees_every_port() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let node = support::registry::loopback;
    let first = node(dirs[0].path(), vec![]);
    first.start().await.unwrap();
    let client = first.client().unwrap();
    let listen = client.listen_addrs().await.unwrap()[0].clone();
    let peer_id = client.peer_id();
    let server = api::serve(first.clone(), "127.0.0.1:0").await.unwrap();

    let second = node(dirs[1].path(), vec![format!("{listen}/p2p/{peer_id}")]);
    second.start().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while client.connected_peers().await.unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the peers never connected"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // An idle keep-alive connection to the API must not hold the server up.
    let http = reqwest::Client::new();
    let health = http
        .get(format!("http://{}/api/v1/health", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert!(first.tasks().alive() >= 2, "the event loop and the API run");

    tokio::time::timeout(std::time::Duration::from_secs(20), first.stop())
        .await
        .expect("stop returns")
        .unwrap();
    assert_eq!(first.tasks().alive(), 0, "a task outlived stop");
    assert!(first.client().is_none());
    let tcp_port = listen
        .iter()
        .find_map(|part| match part {
            libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();
    std::net::TcpListener::bind(("127.0.0.1", tcp_port)).expect("the libp2p port is free");
    std::net::TcpListener::bind(server.addr).expect("the API port is free");
    let restart = first.start().await.unwrap_err();
    assert!(restart.to_string().contains("stopped"), "{restart}");
    second.stop().await.unwrap();
    assert_eq!(second.tasks().alive(), 0);
}

/// DNS rebinding: a page on another origin (or reaching the port under another name)
/// can neither read nor act. The dashboard's own origin and the CLI (no Origin) pass.
#[tokio::test]
async fn foreign_host_and_origin_are_refused_and_the_dashboards_pass() {
    let dir = tempfile::tempdir().unwrap();
    let (_registry, server, _client) = serve(dir.path()).await;
    let http = reqwest::Client::new();
    let port = server.addr.port();
    let url = |path: &str| format!("http://{}{path}", server.addr);
    let ours = server.addr.to_string();
    let localhost = format!("localhost:{port}");

    for path in [
        "/",
        "/api/v1/status",
        "/api/v1/list",
        "/api/v1/verify",
        "/metrics",
    ] {
        let plain = http.get(url(path)).send().await.unwrap();
        assert_eq!(plain.status(), 200, "{path} from the CLI");
        for host in [&ours, &localhost] {
            let same = http
                .get(url(path))
                .header("host", host.as_str())
                .header("origin", format!("http://{host}"))
                .send()
                .await
                .unwrap();
            assert_eq!(same.status(), 200, "{path} from the dashboard at {host}");
        }
        for host in [
            format!("evil.example:{port}"),
            "127.0.0.1".into(),
            format!("127.0.0.1:{}", port + 1),
        ] {
            let wrong = http
                .get(url(path))
                .header("host", host.as_str())
                .send()
                .await
                .unwrap();
            assert_eq!(wrong.status(), 421, "{path} with Host {host}");
            let message: Value = wrong.json().await.unwrap();
            assert!(
                message["error"].as_str().unwrap().contains(&ours),
                "the refusal names the right address: {message}"
            );
        }
        for origin in [
            "http://evil.example",
            "null",
            &format!("https://{ours}"),
            &format!("http://{ours}.evil.example"),
        ] {
            let foreign = http
                .get(url(path))
                .header("origin", origin)
                .send()
                .await
                .unwrap();
            assert_eq!(foreign.status(), 403, "{path} from origin {origin}");
        }
    }

    // Changing routes too, even with the token: nothing is published.
    let body = serde_json::json!({ "dir": pack("rust-axum-service") });
    let foreign = http
        .post(url("/api/v1/publish"))
        .bearer_auth(&server.token)
        .header("origin", "http://evil.example")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    let rebound = http
        .post(url("/api/v1/publish"))
        .bearer_auth(&server.token)
        .header("host", format!("evil.example:{port}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 421);
    let list: Value = http
        .get(url("/api/v1/list"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["published"], serde_json::json!([]), "{list}");
    let same = http
        .post(url("/api/v1/publish"))
        .bearer_auth(&server.token)
        .header("origin", format!("http://{ours}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 200, "the dashboard's origin may act");
}

/// Sockets opened and left silent cannot lock callers out: at the connection cap the
/// oldest idle one is closed to make room, and the rest are closed once the header read
/// timeout passes.
#[tokio::test]
async fn thousands_of_idle_sockets_do_not_stop_a_request() {
    const IDLE: usize = 2_000;
    let dir = tempfile::tempdir().unwrap();
    let (_registry, server, _client) = serve(dir.path()).await;
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }

    let begun = std::time::Instant::now();
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        reqwest::Client::new()
            .get(format!("http://{}/api/v1/status", server.addr))
            .send(),
    )
    .await
    .expect("a normal request is answered while idle sockets are open")
    .unwrap();
    assert_eq!(answered.status(), 200);
    assert!(begun.elapsed() < std::time::Duration::from_secs(5));

    // Every idle socket is closed by the server: most at once for room, the last ones
    // (at most the cap) when the header read timeout passes.
    let closed = futures::future::join_all(idle.iter_mut().map(|socket| async move {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(
                std::time::Duration::from_secs(15),
                tokio::io::AsyncReadExt::read(socket, &mut byte),
            )
            .await,
            Ok(Ok(0) | Err(_))
        )
    }))
    .await;
    assert_eq!(closed.iter().filter(|c| **c).count(), IDLE);
}
