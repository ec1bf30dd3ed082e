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

impl Args {
    /// These flags as configuration keys and values (what `config show` reports as
    /// coming from a flag); `run` applies the same through the builder.
    pub fn overrides(&self) -> Vec<(&'static str, toml::Value)> {
        let list = |items: &[String]| {
            toml::Value::Array(items.iter().cloned().map(toml::Value::String).collect())
        };
        let mut flags = Vec::new();
        if !self.listen.is_empty() {
            flags.push(("listen", list(&self.listen)));
        }
        if !self.bootstrap.is_empty() {
            flags.push(("bootstrap", list(&self.bootstrap)));
        }
        if self.no_mdns {
            flags.push(("mdns", toml::Value::Boolean(false)));
        }
        if self.no_autonat {
            flags.push(("autonat", toml::Value::Boolean(false)));
        }
        if let Some(api) = &self.api {
            flags.push(("api", toml::Value::String(api.clone())));
        }
        if let Some(mirror) = &self.mirror {
            flags.push(("mirror_listen", toml::Value::String(mirror.clone())));
        }
        flags
    }
}

pub async fn run(data_dir: &Path, args: Args, out: &Output) -> Result<()> {
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
    // Removed when this function ends, whichever way: a clean stop, an error on the way
    // (`?` below), or a panic unwinding through it.
    let _api_file = RemoveOnDrop(api::write_endpoint(data_dir, &server)?);

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
        let catch_up = super::output::progress_allowed(out)
            .then(|| tokio::spawn(show_catch_up(registry.clone(), *out)));
        signals.wait().await;
        if let Some(task) = catch_up {
            task.abort();
        }
        out.note("stopping…");
    }
    // One root stops the network, the API and everything they spawned.
    registry.stop().await?;
    shown?;
    out.note("stopped");
    Ok(())
}

/// Catch-up sync as it happens, on a terminal: a spinner counting the records arriving
/// from peers, ended once none has arrived for a few seconds. The count is the index's
/// own, so the spinner shows what was really stored (verified), whichever path brought it.
/// Watches the first two minutes after start (the catch-up after being offline).
async fn show_catch_up(registry: crate::registry::P2PRegistry, out: Output) {
    const QUIET_FOR: std::time::Duration = std::time::Duration::from_secs(5);
    let records = |registry: crate::registry::P2PRegistry| async move {
        registry
            .status(StatusRequest::default())
            .await
            .map(|s| s.store.records)
            .ok()
    };
    let Some(before) = records(registry.clone()).await else {
        return;
    };
    let mut spinner = None;
    let mut last = before;
    let mut last_change = std::time::Instant::now();
    let begun = std::time::Instant::now();
    loop {
        // Nothing to catch up with (no peers yet, or nothing new): stop watching.
        if spinner.is_none() && begun.elapsed() > std::time::Duration::from_secs(120) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let Some(now) = records(registry.clone()).await else {
            return;
        };
        if now != last {
            last = now;
            last_change = std::time::Instant::now();
            let bar = spinner.get_or_insert_with(|| super::output::spinner(&out, String::new()));
            if let Some(bar) = bar {
                bar.set_message(format!(
                    "catching up with peers: {} records received, verified and stored",
                    now.saturating_sub(before)
                ));
            }
        } else if spinner.is_some() && last_change.elapsed() >= QUIET_FOR {
            if let Some(Some(bar)) = spinner.take() {
                bar.finish_and_clear();
            }
            out.note(format!(
                "caught up: {} records from peers ({} in the index)",
                last.saturating_sub(before),
                last
            ));
            return;
        }
    }
}

/// A file deleted when the guard is dropped (the API endpoint file: a stale one would
/// send other commands to a node that is gone).
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
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

/// Ctrl-C, SIGTERM and SIGHUP (the terminal closed), listened for from the moment the command begins: a signal that
/// arrives right after the node printed its addresses (a supervisor, a test) must stop
/// it cleanly, not kill it with the default action.
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
                hup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        if let (Some(term), Some(int), Some(hup)) =
            (self.term.as_mut(), self.int.as_mut(), self.hup.as_mut())
        {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = hup.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}
