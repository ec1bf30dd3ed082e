//! The one test harness, shared by the integration tests (`mod support;`) and the
//! benches (`#[path = "../tests/support/mod.rs"] mod support;`): network nodes and full
//! registries on 127.0.0.1, waits with a deadline, and the real binary run as a command
//! or as a `start` daemon. Fixtures of one test file stay in that file.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long any wait in a test may take before it fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Polls `check` until it holds, or fails with `what` once [`DEADLINE`] has passed.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let begun = Instant::now();
    while !check().await {
        assert!(
            begun.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// [`eventually`] for synchronous checks (the process tests have no runtime).
pub fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let begun = Instant::now();
    while !check() {
        assert!(
            begun.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The example packs shipped with the repository.
pub fn packs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/packs")
}

/// One example pack's directory, as a string for command lines.
pub fn pack(name: &str) -> String {
    packs().join(name).to_string_lossy().into_owned()
}

/// Writes `root/name`, a pack of `mib` MiB of pseudo-random bytes (they do not compress,
/// so the archive spans that many chunks and every phase takes measurable time), in
/// files of at most 4 MiB under `templates/`.
pub fn big_pack(root: &Path, name: &str, mib: usize) -> PathBuf {
    use std::io::Write;

    let pack = root.join(name);
    std::fs::create_dir_all(pack.join("templates")).unwrap();
    std::fs::write(
        pack.join("package.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"1.0.0\"\ndescription = \"a big pack\"\n"
        ),
    )
    .unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut chunk = vec![0u8; 1 << 20];
    for index in 0..mib.div_ceil(4) {
        let mut file =
            std::fs::File::create(pack.join(format!("templates/blob{index}.bin"))).unwrap();
        for _ in 0..4.min(mib - index * 4) {
            for word in chunk.chunks_exact_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes());
            }
            file.write_all(&chunk).unwrap();
        }
    }
    pack
}

/// Bare network nodes (`net::spawn` over a store), the loopback recipe written once.
pub mod net {
    use std::time::Duration;

    use ggen_p2p::net::{self, Client, Multiaddr, NetConfig, PeerId};
    use ggen_p2p::store::Store;
    use ggen_p2p::tasks::Tasks;
    use libp2p::multiaddr::Protocol;
    use tempfile::TempDir;
    use tokio_util::sync::CancellationToken;

    use super::eventually;

    pub struct Node {
        pub client: Client,
        pub store: Store,
        pub _dir: TempDir,
        /// Its first listen address, with `/p2p/<peer id>`.
        pub addr: Multiaddr,
    }

    /// The loopback node config: 127.0.0.1 TCP on a free port, no mDNS or AutoNAT,
    /// a short gossip heartbeat and timeouts; tests change fields from here.
    pub fn config(bootstrap: Vec<Multiaddr>, sync_interval: Duration) -> NetConfig {
        let mut config = NetConfig::new(libp2p::identity::Keypair::generate_ed25519());
        config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
        config.bootstrap = bootstrap;
        config.mdns = false;
        config.autonat = false;
        config.heartbeat = Duration::from_millis(200);
        config.query_timeout = Duration::from_secs(10);
        config.connection_timeout = Duration::from_secs(10);
        config.sync_interval = sync_interval;
        config
    }

    /// Starts a node on a fresh store, its tasks under a child of `shutdown`.
    pub async fn start(config: NetConfig, shutdown: &CancellationToken) -> Node {
        let dir = TempDir::new().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let client = net::spawn(
            config,
            store.clone(),
            &Tasks::with_token(shutdown.child_token()),
        )
        .await
        .unwrap();
        let listen = client.listen_addrs().await.unwrap();
        let addr = listen[0].clone().with(Protocol::P2p(client.peer_id()));
        Node {
            client,
            store,
            _dir: dir,
            addr,
        }
    }

    pub async fn connected(client: &Client, peer: PeerId) -> bool {
        client.connected_peers().await.unwrap().contains(&peer)
    }

    /// Starts `n` nodes in a line, each bootstrapping only to its predecessor, and waits
    /// until every link is up.
    pub async fn line(
        n: usize,
        sync_interval: Duration,
        shutdown: &CancellationToken,
    ) -> Vec<Node> {
        line_with(n, sync_interval, false, shutdown).await
    }

    /// `strict`: connection limits (1 at the ends, 2 inside) keep Kademlia from opening
    /// shortcuts, so the line stays a line.
    pub async fn line_with(
        n: usize,
        sync_interval: Duration,
        strict: bool,
        shutdown: &CancellationToken,
    ) -> Vec<Node> {
        let mut nodes: Vec<Node> = Vec::new();
        for i in 0..n {
            let bootstrap = nodes
                .last()
                .map(|p| vec![p.addr.clone()])
                .unwrap_or_default();
            let mut config = config(bootstrap, sync_interval);
            if strict {
                config.max_connections = if i == 0 || i == n - 1 { 1 } else { 2 };
            }
            nodes.push(start(config, shutdown).await);
            if i > 0 {
                let (prev, this) = (&nodes[i - 1], &nodes[i]);
                let peer = prev.client.peer_id();
                eventually("line link", || connected(&this.client, peer)).await;
            }
        }
        nodes
    }
}

/// Full registries (store + network) built and started on loopback.
pub mod registry {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use ggen_p2p::package::PublisherKey;
    use ggen_p2p::registry::{P2PRegistry, P2PRegistryBuilder};

    use super::DEADLINE;

    /// A registry in `data_dir`, built but not started, on 127.0.0.1 TCP, no mDNS or
    /// AutoNAT, knowing only `bootstrap`.
    pub fn loopback(data_dir: &Path, bootstrap: Vec<String>) -> P2PRegistry {
        P2PRegistryBuilder::new()
            .with_data_dir(data_dir)
            .with_listen_addresses(vec!["/ip4/127.0.0.1/tcp/0".into()])
            .with_bootstrap_peers(bootstrap)
            .with_mdns(false)
            .with_autonat(false)
            .build()
            .unwrap()
    }

    /// A [`loopback`] registry in `root/name`, started.
    pub async fn node(root: &Path, name: &str, bootstrap: Vec<String>) -> P2PRegistry {
        let registry = loopback(&root.join(name), bootstrap);
        registry.start().await.unwrap();
        registry
    }

    /// `/ip4/127.0.0.1/tcp/<port>/p2p/<peer id>` of a started node.
    pub async fn address(node: &P2PRegistry) -> String {
        let client = node.client().expect("the node is started");
        let begun = Instant::now();
        loop {
            if let Some(addr) = client.listen_addrs().await.unwrap().first() {
                return format!("{addr}/p2p/{}", client.peer_id());
            }
            assert!(
                begun.elapsed() < DEADLINE,
                "node never reported a listen address"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Nodes 0..count in `root/n<i>`, node i bootstrapping from node i-1 only.
    pub async fn line(root: &Path, count: usize) -> Vec<P2PRegistry> {
        let mut nodes: Vec<P2PRegistry> = Vec::new();
        for index in 0..count {
            let bootstrap = match nodes.last() {
                Some(previous) => vec![address(previous).await],
                None => vec![],
            };
            nodes.push(node(root, &format!("n{index}"), bootstrap).await);
        }
        nodes
    }

    /// Gives the node a fresh publisher key.
    pub fn with_key(node: &P2PRegistry) {
        PublisherKey::generate()
            .save(&node.publisher_key_path(), false)
            .unwrap();
    }

    /// Waits until the node holds `name@version`.
    pub async fn wait_for(node: &P2PRegistry, name: &str, version: &semver::Version) {
        let begun = Instant::now();
        while node.store().version(name, version, None).unwrap().is_none() {
            assert!(
                begun.elapsed() < DEADLINE,
                "{name}@{version} never reached {}",
                node.data_dir().display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the node is connected to at least `count` peers.
    pub async fn wait_connected(node: &P2PRegistry, count: usize) {
        let client = node.client().expect("the node is started");
        let begun = Instant::now();
        while client.connected_peers().await.unwrap().len() < count {
            assert!(
                begun.elapsed() < DEADLINE,
                "{} never reached {count} peers",
                node.data_dir().display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The real `ggen-p2p` binary: one command at a time, or `start` as a daemon process.
pub mod process {
    use std::io::{BufRead, BufReader};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Output, Stdio};
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use super::DEADLINE;

    pub const BIN: &str = env!("CARGO_BIN_EXE_ggen-p2p");

    /// Runs `ggen-p2p --data-dir DATA ARGS` isolated from the user's environment.
    pub fn run(data: &Path, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(data)
            .args(args)
            .env_remove("GGEN_P2P_HOME")
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    /// Runs a command with `--json` that must succeed; returns its output, checked to
    /// be JSON with `format_version: 1`.
    pub fn json(data: &Path, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let output = run(data, &all);
        assert!(
            output.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let value: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
        assert_eq!(value["format_version"], 1, "{args:?}: {value}");
        value
    }

    /// A `ggen-p2p start` process on 127.0.0.1 TCP (no mDNS or AutoNAT). Dropping it
    /// sends SIGTERM and, failing a clean exit within the deadline, kills it.
    pub struct Daemon {
        pub data: PathBuf,
        child: Child,
        /// `/ip4/127.0.0.1/tcp/<port>/p2p/<peer id>`.
        pub addr: String,
        /// What `start --json` printed (`None` for a daemon started with human output).
        pub start: Option<Value>,
    }

    /// The daemon recipe: `ggen-p2p [--json] start` on 127.0.0.1 TCP, no mDNS or AutoNAT,
    /// isolated from the user's environment, stdout piped. Benches that time or measure
    /// the process build on this and read stdout themselves.
    pub fn start_command(data: &Path, json: bool, bootstrap: Option<&str>) -> Command {
        let mut command = Command::new(BIN);
        command.arg("--data-dir").arg(data);
        if json {
            command.arg("--json");
        }
        command
            .args(["start", "--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(["--no-mdns", "--no-autonat"])
            .env_remove("GGEN_P2P_HOME")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // To look into a failing test: GGEN_P2P_TEST_DAEMON_LOG=debug keeps each daemon's
        // log at that level in `<data dir>.log`.
        if let Ok(level) = std::env::var("GGEN_P2P_TEST_DAEMON_LOG") {
            let log = data.with_extension("log");
            if let Ok(file) = std::fs::File::create(&log) {
                command.env("RUST_LOG", level).stderr(file);
            }
        }
        if let Some(addr) = bootstrap {
            command.args(["--bootstrap", addr]);
        }
        command
    }

    impl Daemon {
        /// Starts a daemon with human output and reads its address from the
        /// `listening ADDR` line (the output ends its start-up with the `api` line).
        pub fn start(data: PathBuf, bootstrap: Option<&str>) -> Daemon {
            let mut child = start_command(&data, false, bootstrap).spawn().unwrap();
            let stdout = child.stdout.take().unwrap();
            let mut addr = None;
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                if let Some(rest) = line.strip_prefix("listening ") {
                    addr = Some(rest.trim().to_string());
                }
                if line.starts_with("api ") {
                    break;
                }
            }
            let addr = addr.expect("the daemon printed its listen address");
            Daemon {
                data,
                child,
                addr,
                start: None,
            }
        }

        /// Starts a daemon with `--json`, which prints one pretty-printed object, then runs.
        pub fn start_json(data: PathBuf, bootstrap: Option<&str>) -> Daemon {
            let mut child = start_command(&data, true, bootstrap).spawn().unwrap();
            let mut text = String::new();
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            while let Some(Ok(line)) = lines.next() {
                let end = line == "}";
                text.push_str(&line);
                if end {
                    break;
                }
            }
            let start: Value = serde_json::from_str(&text).expect("start --json prints an object");
            let addr = format!(
                "{}/p2p/{}",
                start["listen_addrs"][0].as_str().unwrap(),
                start["peer_id"].as_str().unwrap()
            );
            Daemon {
                data,
                child,
                addr,
                start: Some(start),
            }
        }

        /// The daemon's process id.
        pub fn pid(&self) -> u32 {
            self.child.id()
        }

        /// Runs a `--json` command against this daemon's data directory (so through it).
        pub fn cli(&self, args: &[&str]) -> Value {
            json(&self.data, args)
        }

        /// Stops the daemon the way Ctrl-C would (SIGTERM) and checks it exits cleanly
        /// and removes its `api.json`.
        pub fn stop(mut self) {
            let status = self.terminate().expect("the daemon stops on SIGTERM");
            assert!(status.success(), "daemon exited with {status}");
            assert!(
                !self.data.join("api.json").exists(),
                "a clean stop removes api.json"
            );
        }

        /// Kills the daemon with SIGKILL (no clean-up runs) and waits for it to be gone.
        pub fn kill(mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }

        fn terminate(&mut self) -> Option<std::process::ExitStatus> {
            let pid = self.child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let begun = Instant::now();
            while begun.elapsed() < DEADLINE {
                if let Some(status) = self.child.try_wait().unwrap() {
                    return Some(status);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            None
        }
    }

    impl Drop for Daemon {
        fn drop(&mut self) {
            if self.child.try_wait().ok().flatten().is_none() && self.terminate().is_none() {
                let _ = self.child.kill();
            }
        }
    }
}
