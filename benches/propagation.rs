//! Propagation and provider lookup in one process: N real registry nodes on loopback TCP
//! (node i bootstraps from up to 3 random earlier nodes), for each N in `NODES`
//! (default 20,50,100):
//! publish → record in the index of every node, over `PUBLISHES` publishes from random
//! nodes (times are each node's own `records.received_at` in its SQLite index, minus the
//! moment `publish` was called); cold `Client::find_providers` from nodes with no
//! local provider entry for the archive, with the DHT requests each took; connections
//! per node (`Client::status`) once the mesh formed and pruning brought every node
//! within 2 × mesh_n, sampled again while measuring and at the end. All against a baseline measured in the same network: one request-response round trip
//! (`GetRecords` with no ids) from a node to a connected peer — the cost of one hop
//! through both event loops and the store thread pool.
//!
//! Run: `cargo bench --bench propagation` (`NODES=20,50`, `PUBLISHES`, `LOOKUPS`).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use common::{load, ms, percentile};
use ggen_p2p::net::Request;
use ggen_p2p::package::Blake3Hash;
use ggen_p2p::registry::{P2PRegistry, PublishRequest, Registry};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use support::registry::{address, node, with_key};

const BOOTSTRAP_PEERS: usize = 3;
const MESH_WAIT: Duration = Duration::from_secs(90);
const ARRIVAL_WAIT: Duration = Duration::from_secs(30);
const SPARSE_WAIT: Duration = Duration::from_secs(120);

fn env_or<T: std::str::FromStr>(var: &str, default: T) -> T {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<()> {
    let sizes: Vec<usize> = std::env::var("NODES")
        .unwrap_or_else(|_| "20,50,100".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let publishes: usize = env_or("PUBLISHES", 10);
    let lookups: usize = env_or("LOOKUPS", 30);
    let mut rows = Vec::new();
    for n in sizes {
        println!("== {n} nodes (load {})", load());
        rows.push(run(n, publishes, lookups).await?);
    }
    println!("\n| nodes | mesh formed after | peers/node max (mean): settled | at each publish | after its DHT puts | at each lookup | sparse again after p50 / max | end | gossip mesh mean | process CPU (cores) | baseline RR p50 | publish→all p50 | publish→all max | ratio p50/RR | publish call p50 | cold lookup p50 | p99 | lookups | ratio p50/RR | missed | DHT requests per lookup p50 / p99 (log2 N) |");
    println!(
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in &rows {
        println!("{r}");
    }
    Ok(())
}

struct Row(String);

impl std::fmt::Display for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

async fn run(n: usize, publishes: usize, lookups: usize) -> Result<Row> {
    let work = tempfile::tempdir()?;
    let root = work.path();
    let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
    let mut nodes: Vec<P2PRegistry> = Vec::new();
    let mut addrs: Vec<String> = Vec::new();
    let begun = Instant::now();
    for i in 0..n {
        let bootstrap: Vec<String> = addrs
            .choose_multiple(&mut rng, BOOTSTRAP_PEERS)
            .cloned()
            .collect();
        let node = node(root, &format!("n{i}"), bootstrap).await;
        addrs.push(address(&node).await);
        nodes.push(node);
    }
    println!(
        "started {n} nodes in {:.1} s",
        begun.elapsed().as_secs_f64()
    );

    // The mesh has formed when every node has its gossip mesh filled (at least
    // mesh_n_low peers, or all its connections if fewer).
    let begun = Instant::now();
    let low = nodes[0].config().gossip.mesh_n_low;
    let formed = loop {
        let stats = statuses(&nodes).await?;
        let ready = stats
            .iter()
            .filter(|(peers, mesh)| *peers > 0 && *mesh >= low.min(*peers))
            .count();
        if ready == n {
            break Some(begun.elapsed());
        }
        if begun.elapsed() > MESH_WAIT {
            println!(
                "mesh incomplete after {MESH_WAIT:?}: {ready}/{n} nodes ready; measuring anyway"
            );
            break None;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Let the connection count settle (DHT bootstrap keeps dialing after the mesh forms):
    // stable over 2 s, or 60 s at most.
    let settle = Instant::now();
    let mut last = 0;
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let total: usize = statuses(&nodes).await?.iter().map(|s| s.0).sum();
        if total == last || settle.elapsed() > Duration::from_secs(60) {
            break;
        }
        last = total;
    }
    println!(
        "connections settled after {:.1} s more",
        settle.elapsed().as_secs_f64()
    );
    // Then until pruning has brought every node within the sparse bound (2 × mesh_n):
    // young connections are spared for the grace period, so this takes a few rounds.
    let bound = 2 * nodes[0].config().gossip.mesh_n;
    let sparse_wait = Instant::now();
    loop {
        let (max, _, _) = connection_stats(&statuses(&nodes).await?);
        if max <= bound || sparse_wait.elapsed() > SPARSE_WAIT {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "within {bound} connections per node after {:.1} s more (or gave up)",
        sparse_wait.elapsed().as_secs_f64()
    );
    let (peers_max, peers_mean, mesh_mean) = connection_stats(&statuses(&nodes).await?);
    println!("mesh formed: {formed:?}; peers/node max {peers_max} mean {peers_mean:.1}; gossip mesh mean {mesh_mean:.1}");
    // Connections per node while measuring, by phase: when each publish starts (the
    // topology gossip travels over; the previous publish's DHT connections are first
    // given time to be pruned, and that time is reported), right after each publish's
    // DHT puts and provider lookup (the transient peak), and before each lookup.
    let mut at_publish: Vec<(usize, f64)> = Vec::new();
    let mut after_dht: Vec<(usize, f64)> = Vec::new();
    let mut at_lookup: Vec<(usize, f64)> = Vec::new();
    let mut back_within: Vec<Duration> = Vec::new();

    let cpu_start = (cpu_seconds(), Instant::now());
    let mut rtt = Vec::new();

    // Publishes from random nodes, one at a time.
    let mut to_all = Vec::new();
    let mut calls = Vec::new();
    let mut archives: Vec<(Blake3Hash, usize)> = Vec::new();
    for k in 0..publishes {
        let from = rng.gen_range(0..n);
        let publisher = &nodes[from];
        if !publisher.publisher_key_path().exists() {
            with_key(publisher);
        }
        // The baseline, side by side: round trips from this publisher just before.
        rtt.extend(round_trips(&nodes[from..=from], &mut rng, 5).await?);
        let (waited, max, mean) = wait_sparse(&nodes, bound).await?;
        back_within.push(waited);
        at_publish.push((max, mean));
        let pack = tiny_pack(root, &format!("prop-{n}-{k}"))?;
        let t0 = epoch_ms();
        let begun = Instant::now();
        let report = publisher.publish(PublishRequest::new(&pack)).await?;
        calls.push(begun.elapsed());
        archives.push((report.archive.blake3, from));
        let arrivals = arrivals(&nodes, &report.record_id, ARRIVAL_WAIT).await?;
        let missing = arrivals.iter().filter(|a| a.is_none()).count();
        let last = arrivals.iter().flatten().max().copied().unwrap_or(0);
        let all = Duration::from_millis(last.saturating_sub(t0));
        if missing > 0 {
            println!("publish {k}: {missing}/{n} nodes missed it within {ARRIVAL_WAIT:?}");
            to_all.push(ARRIVAL_WAIT);
        } else {
            to_all.push(all);
        }
        let mut per_node: Vec<Duration> = arrivals
            .iter()
            .flatten()
            .map(|a| Duration::from_millis(a.saturating_sub(t0)))
            .collect();
        per_node.sort();
        let stats = statuses(&nodes).await?;
        let (peak, peak_mean, _) = connection_stats(&stats);
        let busiest = stats.iter().position(|s| s.0 == peak).unwrap_or(0);
        after_dht.push((peak, peak_mean));
        println!(
            "publish {k} from n{from}: publish call {:.0} ms; in every index after {:.0} ms (median node {:.0} ms); peers/node at publish max {max} mean {mean:.1} (sparse again after {:.1} s), after its DHT puts max {peak} (n{busiest}) mean {peak_mean:.1}",
            ms(calls[k]),
            ms(all),
            ms(percentile(&per_node, 50.0)),
            waited.as_secs_f64()
        );
    }

    // Cold lookups: a random archive asked by a random node that holds no provider entry
    // for it (so neither its store nor, by construction, its DHT store knows one).
    let mut lookup_times = Vec::new();
    let mut lookup_requests: Vec<Duration> = Vec::new();
    let mut missed = 0;
    let mut skipped = 0;
    for i in 0..lookups {
        if i % 10 == 0 {
            let (waited, _, _) = wait_sparse(&nodes, bound).await?;
            back_within.push(waited);
        }
        let (max, mean, _) = connection_stats(&statuses(&nodes).await?);
        at_lookup.push((max, mean));
        let (archive, provider) = archives[rng.gen_range(0..archives.len())];
        let cold: Vec<usize> = (0..n)
            .filter(|i| *i != provider)
            .filter(|i| {
                nodes[*i]
                    .store()
                    .providers(&archive)
                    .map(|p| p.is_empty())
                    .unwrap_or(false)
            })
            .collect();
        let Some(&asker) = cold.choose(&mut rng) else {
            skipped += 1;
            continue;
        };
        let client = nodes[asker].client().context("started")?;
        let begun = Instant::now();
        let found = client.find_providers_counted(archive).await;
        lookup_times.push(begun.elapsed());
        match found {
            Ok(found) if !found.providers.is_empty() => {
                // Kept as a Duration of "requests" ms so `percentile` applies.
                lookup_requests.push(Duration::from_millis(u64::from(found.dht_requests)));
            }
            Ok(found) => {
                missed += 1;
                println!(
                    "lookup from n{asker}: no provider found ({} DHT requests)",
                    found.dht_requests
                );
            }
            Err(e) => {
                missed += 1;
                println!("lookup from n{asker} failed: {e}");
            }
        }
    }
    if skipped > 0 {
        println!("{skipped} lookups skipped: no node without a provider entry (every node is among the closest to the key)");
    }
    let cores = (cpu_seconds() - cpu_start.0) / cpu_start.1.elapsed().as_secs_f64();
    println!(
        "baseline RR round trip p50 {:.2} ms p99 {:.2} ms; this process used {cores:.2} cores while measuring",
        ms(percentile(&rtt, 50.0)),
        ms(percentile(&rtt, 99.0))
    );
    let (end_max, end_mean, end_mesh) = connection_stats(&statuses(&nodes).await?);
    println!("end: peers/node max {end_max} mean {end_mean:.1}; gossip mesh mean {end_mesh:.1}");
    let summary = |samples: &[(usize, f64)]| {
        let max = samples.iter().map(|s| s.0).max().unwrap_or(0);
        let mean = samples.iter().map(|s| s.1).sum::<f64>() / samples.len().max(1) as f64;
        format!("{max} ({mean:.1})")
    };
    let (publish_conns, dht_conns, lookup_conns) = (
        summary(&at_publish),
        summary(&after_dht),
        summary(&at_lookup),
    );
    let prune_wait = format!(
        "{:.1} / {:.1} s",
        percentile(&back_within, 50.0).as_secs_f64(),
        percentile(&back_within, 100.0).as_secs_f64()
    );
    let requests = |p| {
        if lookup_requests.is_empty() {
            "n/a".to_string()
        } else {
            format!("{:.0}", ms(percentile(&lookup_requests, p)))
        }
    };
    println!(
        "peers/node max (mean) at publish {publish_conns}, after DHT puts {dht_conns}, at lookup {lookup_conns} (bound {bound}; sparse again after p50/max {prune_wait}); lookups: {missed} missed; DHT requests p50 {} p99 {} (log2 N = {:.1}, alpha 3)",
        requests(50.0),
        requests(99.0),
        (n as f64).log2()
    );

    for node in &nodes {
        node.stop().await?;
    }
    let rr = percentile(&rtt, 50.0);
    let p50 = percentile(&to_all, 50.0);
    let lookup = |p| {
        if lookup_times.is_empty() {
            "n/a".to_string()
        } else {
            format!("{:.1} ms", ms(percentile(&lookup_times, p)))
        }
    };
    Ok(Row(format!(
        "| {n} | {} | {peers_max} ({peers_mean:.1}) | {publish_conns} | {dht_conns} | {lookup_conns} | {prune_wait} | {end_max} ({end_mean:.1}) | {mesh_mean:.1} | {cores:.2} | {:.2} ms | {:.0} ms | {:.0} ms | {:.0}× | {:.0} ms | {} | {} | {} | {} | {missed} | {} / {} ({:.1}) |",
        formed.map(|d| format!("{:.1} s", d.as_secs_f64())).unwrap_or_else(|| "incomplete".into()),
        ms(rr),
        ms(p50),
        ms(percentile(&to_all, 100.0)),
        ms(p50) / ms(rr),
        ms(percentile(&calls, 50.0)),
        lookup(50.0),
        lookup(99.0),
        lookup_times.len(),
        if lookup_times.is_empty() { "–".to_string() } else { format!("{:.0}×", ms(percentile(&lookup_times, 50.0)) / ms(rr)) },
        requests(50.0),
        requests(99.0),
        (n as f64).log2(),
    )))
}

/// CPU time (user + system) this process has used, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name (which may hold spaces) start at the state.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime (fields 14 and 15 of stat(5)), in clock ticks of 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn tiny_pack(root: &Path, name: &str) -> Result<std::path::PathBuf> {
    let pack = root.join("packs").join(name);
    std::fs::create_dir_all(&pack)?;
    std::fs::write(
        pack.join("package.toml"),
        format!("[package]\nname = \"{name}\"\nversion = \"1.0.0\"\ndescription = \"propagation benchmark\"\n"),
    )?;
    std::fs::write(pack.join("README.md"), format!("# {name}\n"))?;
    Ok(pack)
}

/// Waits (15 s at most) until every node is within `bound` connections again, as
/// pruning closes the connections DHT queries opened; how long that took, and the
/// connections per node then (max, mean).
async fn wait_sparse(nodes: &[P2PRegistry], bound: usize) -> Result<(Duration, usize, f64)> {
    let begun = Instant::now();
    loop {
        let (max, mean, _) = connection_stats(&statuses(nodes).await?);
        if max <= bound || begun.elapsed() > Duration::from_secs(15) {
            return Ok((begun.elapsed(), max, mean));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (connected peers, gossip mesh peers) of every node.
async fn statuses(nodes: &[P2PRegistry]) -> Result<Vec<(usize, usize)>> {
    let mut out = Vec::with_capacity(nodes.len());
    for node in nodes {
        let status = node.client().context("started")?.status().await?;
        out.push((status.connected_peers, status.gossip_mesh_peers));
    }
    Ok(out)
}

fn connection_stats(stats: &[(usize, usize)]) -> (usize, f64, f64) {
    let max = stats.iter().map(|s| s.0).max().unwrap_or(0);
    let mean = stats.iter().map(|s| s.0).sum::<usize>() as f64 / stats.len().max(1) as f64;
    let mesh = stats.iter().map(|s| s.1).sum::<usize>() as f64 / stats.len().max(1) as f64;
    (max, mean, mesh)
}

/// One `GetRecords { ids: [] }` exchange from random nodes to one of their peers.
async fn round_trips(
    nodes: &[P2PRegistry],
    rng: &mut rand::rngs::StdRng,
    count: usize,
) -> Result<Vec<Duration>> {
    let mut times = Vec::new();
    while times.len() < count {
        let client = nodes[rng.gen_range(0..nodes.len())]
            .client()
            .context("started")?;
        let peers = client.connected_peers().await?;
        let Some(&peer) = peers.choose(rng) else {
            continue;
        };
        let begun = Instant::now();
        // A peer may prune the connection between the listing and the request (it only
        // spares connections with a request in flight): try another peer then.
        if let Err(e) = client
            .request(peer, Request::GetRecords { ids: vec![] })
            .await
        {
            println!("baseline round trip to {peer}: {e}; trying another peer");
            continue;
        }
        times.push(begun.elapsed());
    }
    Ok(times)
}

/// Each node's `received_at` (ms since the epoch) for `record`, polled until every node
/// has it or `wait` passes.
async fn arrivals(
    nodes: &[P2PRegistry],
    record: &Blake3Hash,
    wait: Duration,
) -> Result<Vec<Option<u64>>> {
    let dbs: Vec<std::path::PathBuf> = nodes
        .iter()
        .map(|n| n.data_dir().join("index.sqlite"))
        .collect();
    let id = record.as_bytes().to_vec();
    let begun = Instant::now();
    let mut seen: Vec<Option<u64>> = vec![None; nodes.len()];
    let mut pending: HashSet<usize> = (0..nodes.len()).collect();
    while !pending.is_empty() && begun.elapsed() < wait {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (dbs, id, todo) = (dbs.clone(), id.clone(), pending.clone());
        let found = tokio::task::spawn_blocking(move || -> Result<Vec<(usize, u64)>> {
            let mut found = Vec::new();
            for i in todo {
                let conn = rusqlite::Connection::open_with_flags(
                    &dbs[i],
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
                )?;
                let at: Option<i64> = conn
                    .query_row(
                        "SELECT received_at FROM records WHERE id = ?1",
                        [&id],
                        |row| row.get(0),
                    )
                    .ok();
                if let Some(at) = at {
                    found.push((i, at as u64));
                }
            }
            Ok(found)
        })
        .await??;
        for (i, at) in found {
            seen[i] = Some(at);
            pending.remove(&i);
        }
    }
    Ok(seen)
}
