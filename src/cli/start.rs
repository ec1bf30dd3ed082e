//! `ggen-p2p start`: run a node until Ctrl-C or SIGTERM — the libp2p network, the local
//! API and dashboard — then shut everything down in order and remove the API file. The
//! data directory's daemon lock is held from before the store opens until after it closes.

use std::path::Path;

use anyhow::{Context, Result};

use super::Output;
use crate::api::{self, client::ApiClient};
use crate::registry::{P2PRegistryBuilder, Registry, StartReport, StatusRequest, FORMAT_VERSION};
use crate::store::lock::DaemonLock;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (repeatable) [default: /ip4/0.0.0.0/tcp/4001 and udp/4001/quic-v1]
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<String>,
    /// Peer to join through (repeatable): /ip4/1.2.3.4/tcp/4001/p2p/12D3Koo...
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<String>,
    /// Do not discover peers on the local network with mDNS
    #[arg(long)]
    pub no_mdns: bool,
    /// Do not run AutoNAT probes (useful on loopback-only test networks)
    #[arg(long)]
    pub no_autonat: bool,
    /// Address of the local HTTP API and dashboard [default: 127.0.0.1:0, a free port]
    #[arg(long, value_name = "ADDR")]
    pub api: Option<String>,
    /// Also serve this node's records and archives read-only over HTTP on ADDR, as a
    /// mirror for other nodes and tools (e.g. 0.0.0.0:8080) [config: mirror_listen]
    #[arg(long, value_name = "ADDR")]
    pub mirror: Option<String>,
}

pub async fn run(data_dir: &Path, args: Args, out: &Output) -> Result<()> {
    init_tracing();
    let signals = StopSignals::install();
    // Held until this function returns (after the registry has stopped): one daemon per
    // data directory, and offline commands see it is there.
    let _lock = DaemonLock::acquire(data_dir)?;
    if let Some(running) = ApiClient::discover(data_dir).await {
        anyhow::bail!(
            "a node already runs on {} (API {}); stop it first or pass another --data-dir",
            data_dir.display(),
            running.addr()
        );
    }
    let mut builder = P2PRegistryBuilder::new().with_data_dir(data_dir);
    if !args.listen.is_empty() {
        builder = builder.with_listen_addresses(args.listen);
    }
    if !args.bootstrap.is_empty() {
        builder = builder.with_bootstrap_peers(args.bootstrap);
    }
    if args.no_mdns {
        builder = builder.with_mdns(false);
    }
    if args.no_autonat {
        builder = builder.with_autonat(false);
    }
    let registry = builder.build()?;
    registry.start().await?;

    let api_addr = args.api.unwrap_or_else(|| registry.config().api.clone());
    let server = api::serve(registry.clone(), &api_addr).await?;
    let mirror_addr = args
        .mirror
        .or_else(|| registry.config().mirror_listen.clone());
    let mirror = match mirror_addr {
        Some(addr) => Some(
            crate::mirror::serve(registry.store().clone(), &addr, registry.tasks())
                .await?
                .addr,
        ),
        None => None,
    };
    let api_file = api::write_endpoint(data_dir, &server)?;

    // `start` returns once every listener is bound, so the addresses are known.
    let net = registry
        .status(StatusRequest::default())
        .await?
        .net
        .context("the network did not start; see the log above")?;
    let report = StartReport {
        format_version: FORMAT_VERSION,
        peer_id: net.peer_id,
        listen_addrs: net.listen_addrs,
        api: server.addr.to_string(),
        mirror: mirror.map(|addr| format!("http://{addr}")),
    };
    // Output that cannot be written (stdout closed) ends the node, but cleanly.
    let shown = show(&report, out);
    if shown.is_ok() {
        signals.wait().await;
        out.note("stopping…");
    }
    // One root stops the network, the API and everything they spawned.
    registry.stop().await?;
    let _ = std::fs::remove_file(&api_file);
    shown?;
    out.note("stopped");
    Ok(())
}

fn show(report: &StartReport, out: &Output) -> std::io::Result<()> {
    if out.json {
        return out.json(report);
    }
    out.line(format!("peer id   {}", report.peer_id))?;
    for addr in &report.listen_addrs {
        out.line(format!("listening {addr}/p2p/{}", report.peer_id))?;
    }
    if let Some(mirror) = &report.mirror {
        out.line(format!("mirror    {mirror} (read-only HTTP mirror)"))?;
    }
    out.line(format!(
        "api       http://{} (dashboard, /metrics)",
        report.api
    ))?;
    out.note("node running; press Ctrl-C to stop");
    Ok(())
}

/// Ctrl-C and SIGTERM, listened for from the moment the command begins: a signal that
/// arrives right after the node printed its addresses (a supervisor, a test) must stop
/// it cleanly, not kill it with the default action.
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        if let (Some(term), Some(int)) = (self.term.as_mut(), self.int.as_mut()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,libp2p_kad=error,libp2p_swarm=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
