//! Building a registry (data directory, configuration layers, store) and starting or
//! stopping its network side.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use libp2p::identity::Keypair;
use tokio_util::sync::CancellationToken;

use super::{Inner, P2PRegistry, RegistryError, Result, NODE_KEY_FILE};
use crate::config::{self, Config};
use crate::net::{self, Multiaddr, NetConfig};
use crate::package::keys::write_private;
use crate::store::Store;
use crate::tasks::Tasks;

/// Configures a [`P2PRegistry`]: anything not set comes from `config.toml` in the data
/// directory, then the environment, then the defaults.
#[derive(Debug, Default, Clone)]
pub struct P2PRegistryBuilder {
    data_dir: Option<PathBuf>,
    config: Option<Config>,
    listen: Option<Vec<String>>,
    bootstrap: Option<Vec<String>>,
    mdns: Option<bool>,
    autonat: Option<bool>,
    shutdown: Option<CancellationToken>,
}

impl P2PRegistryBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Uses this configuration instead of reading `config.toml` and the environment.
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    pub fn with_listen_addresses(mut self, addrs: Vec<String>) -> Self {
        self.listen = Some(addrs);
        self
    }

    pub fn with_bootstrap_peers(mut self, addrs: Vec<String>) -> Self {
        self.bootstrap = Some(addrs);
        self
    }

    pub fn with_mdns(mut self, enabled: bool) -> Self {
        self.mdns = Some(enabled);
        self
    }

    pub fn with_autonat(mut self, enabled: bool) -> Self {
        self.autonat = Some(enabled);
        self
    }

    /// Uses `token` as the registry's shutdown root: cancelling it stops the network, the
    /// API and every task they spawned (as [`crate::Registry::stop`] does, which also
    /// waits for them). Without it the registry makes its own.
    pub fn with_shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = Some(token);
        self
    }

    /// Opens the data directory and store. Nothing touches the network until `start`.
    pub fn build(self) -> Result<P2PRegistry> {
        let data_dir = config::data_dir(self.data_dir.as_deref())?;
        std::fs::create_dir_all(&data_dir).map_err(|e| {
            RegistryError::Refused(format!(
                "{}: cannot create the data directory: {e}; pass --data-dir to use another",
                data_dir.display()
            ))
        })?;
        let mut config = match self.config {
            Some(config) => config,
            None => Config::load(&data_dir)?,
        };
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(bootstrap) = self.bootstrap {
            config.bootstrap = bootstrap;
        }
        if let Some(mdns) = self.mdns {
            config.mdns = mdns;
        }
        if let Some(autonat) = self.autonat {
            config.autonat = autonat;
        }
        let store = Store::open(&data_dir)?;
        store.set_pins(config.trusted_publishers.clone());
        for removed in store.sweep() {
            tracing::debug!("swept leftover {} {}", removed.kind, removed.id);
        }
        Ok(P2PRegistry {
            inner: Arc::new(Inner {
                data_dir,
                config,
                store,
                tasks: Tasks::with_token(self.shutdown.unwrap_or_default()),
                running: Mutex::new(None),
                metrics: Default::default(),
                transfers: Default::default(),
            }),
        })
    }
}

impl P2PRegistry {
    /// Starts the libp2p node. Calling it twice is harmless; after `stop` it is refused
    /// (the shutdown root is spent: build a new registry).
    pub async fn start(&self) -> Result<()> {
        if self.client().is_some() {
            return Ok(());
        }
        if self.inner.tasks.is_cancelled() {
            return Err(RegistryError::Refused(
                "this registry was stopped; build a new one to start again".into(),
            ));
        }
        let keypair = load_or_create_node_key(&self.inner.data_dir.join(NODE_KEY_FILE))?;
        let mut net_config = NetConfig::from_config(&self.inner.config, keypair)?;
        net_config.metrics = self.inner.metrics.clone();
        check_tcp_ports_free(&net_config.listen)?;
        let client = net::spawn(net_config, self.inner.store.clone(), &self.inner.tasks).await?;
        // Provides the stored archives once the DHT has a peer, without holding up start.
        let upkeep = net::providing::upkeep(
            client.clone(),
            self.inner.store.clone(),
            self.inner.tasks.clone(),
        );
        self.inner.tasks.spawn(upkeep);
        let mut running = self.inner.running.lock().unwrap_or_else(|e| e.into_inner());
        *running = Some(client);
        Ok(())
    }

    /// This node's libp2p peer id: from the running network, else from `node.key` (absent
    /// until the node has been started once).
    pub fn node_peer_id(&self) -> Option<String> {
        if let Some(client) = self.client() {
            return Some(client.peer_id().to_string());
        }
        let bytes = std::fs::read(self.inner.data_dir.join(NODE_KEY_FILE)).ok()?;
        let keypair = Keypair::from_protobuf_encoding(&bytes).ok()?;
        Some(keypair.public().to_peer_id().to_string())
    }

    /// Cancels the shutdown root and waits until every task spawned on it (event loop,
    /// API server, their helpers) has finished.
    pub async fn stop(&self) -> Result<()> {
        self.inner
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.inner.tasks.shutdown().await;
        Ok(())
    }
}

/// libp2p sets SO_REUSEPORT on its TCP listeners (to dial out from the listen port), so a
/// second node on the same port would start "successfully" and the kernel would split
/// connections between the two. A plain bind first turns that into a clear error.
fn check_tcp_ports_free(addrs: &[Multiaddr]) -> Result<()> {
    use libp2p::multiaddr::Protocol;
    for addr in addrs {
        let mut ip = None;
        let mut port = None;
        for part in addr.iter() {
            match part {
                Protocol::Ip4(v4) => ip = Some(std::net::IpAddr::V4(v4)),
                Protocol::Ip6(v6) => ip = Some(std::net::IpAddr::V6(v6)),
                Protocol::Tcp(p) => port = Some(p),
                _ => {}
            }
        }
        let (Some(ip), Some(port)) = (ip, port) else {
            continue;
        };
        if port == 0 {
            continue;
        }
        if let Err(e) = std::net::TcpListener::bind((ip, port)) {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                return Err(RegistryError::Refused(format!(
                    "{addr}: port {port} is already in use (another ggen-p2p node?); pass --listen with another port"
                )));
            }
        }
    }
    Ok(())
}

/// The node's libp2p identity persists in `node.key` so its peer id survives restarts.
fn load_or_create_node_key(path: &std::path::Path) -> Result<Keypair> {
    match std::fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
            RegistryError::Refused(format!(
                "{}: not a node key ({e}); move it away to create a new identity",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let bytes = keypair
                .to_protobuf_encoding()
                .map_err(|e| RegistryError::Refused(format!("cannot encode node key: {e}")))?;
            write_private(path, &bytes).map_err(|e| {
                RegistryError::Refused(format!("{}: cannot write node key: {e}", path.display()))
            })?;
            Ok(keypair)
        }
        Err(e) => Err(RegistryError::Refused(format!(
            "{}: cannot read node key: {e}",
            path.display()
        ))),
    }
}
