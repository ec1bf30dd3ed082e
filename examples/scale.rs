//! A model of the network at sizes one machine cannot run as real swarms (issue 8, point
//! 6): gossipsub (flood publish, mesh_n/low/high, d_lazy IHAVE gossip every heartbeat,
//! IWANT pulls) and Kademlia (k-buckets, alpha-parallel iterative provider lookups that
//! stop at the first provider, as `policy::lookup_done` does) with this crate's
//! parameters, simulated as discrete events over a latency model. It owns no part of the
//! node; the real-swarm figures are `benches/propagation.rs`, and docs/scale.md reads
//! this table.
//!
//! Run: `cargo run --release --example scale` (N = 100, 300, 1000, 3000, 10000);
//! `-- --quick` (100, 300, 1000, fewer trials); `NODES=...`, `SEED=...`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use ggen_p2p::config::Config;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Kademlia's parallelism (libp2p's default `ALPHA_VALUE`).
const ALPHA: usize = 3;
/// gossipsub defaults left as they are by `behaviour::gossip_config`.
const D_LAZY: usize = 6;
const GOSSIP_FACTOR: f64 = 0.25;
/// Heartbeats a message id is advertised in IHAVE (`history_gossip`).
const HISTORY_GOSSIP: u64 = 3;
/// Connections a node opens itself (bootstrap peers, Kademlia queries, identify): the
/// rest are inbound. Capped by the prune target, 2 × mesh_n.
const DIALS_PER_NODE: usize = 6;
/// Bytes on the wire: a gossiped version record with its gossipsub envelope (signature,
/// source, sequence number, topic; a record of the example packs is 700–900 bytes), an
/// IHAVE or IWANT entry (a 32-byte message id and framing).
const MESSAGE_BYTES: u64 = 1_100;
const ID_BYTES: u64 = 40;

/// Latency model, in microseconds: one-way link delay uniform in `link` (a wide-area
/// spread: same city to another continent) plus `process` per message handled (the
/// real node checks the signature and writes SQLite before it forwards).
struct Latency {
    link: (u64, u64),
    process: u64,
}

impl Latency {
    fn one_way(&self, rng: &mut StdRng) -> u64 {
        rng.gen_range(self.link.0..=self.link.1) + self.process
    }
}

struct Params {
    mesh_n: usize,
    mesh_low: usize,
    mesh_high: usize,
    heartbeat_us: u64,
    k: usize,
    max_conns: usize,
}

impl Params {
    fn from_config(config: &Config) -> Self {
        let g = &config.gossip;
        Self {
            mesh_n: g.mesh_n,
            mesh_low: g.mesh_n_low,
            mesh_high: g.mesh_n_high,
            heartbeat_us: g.heartbeat_ms * 1000,
            k: config.replication_factor,
            // The prune target (`policy::prune_target`) with the default limit.
            max_conns: (2 * g.mesh_n).max(8),
        }
    }
}

/// One simulated network: connections, the gossip mesh and the Kademlia routing tables.
struct Net {
    ids: Vec<u128>,
    conns: Vec<Vec<usize>>,
    mesh: Vec<Vec<usize>>,
    /// Node indices sorted by id (each k-bucket is a contiguous range of it).
    by_id: Vec<usize>,
    table: Vec<Vec<usize>>,
}

fn build(n: usize, p: &Params, rng: &mut StdRng) -> Net {
    let ids: Vec<u128> = (0..n).map(|_| rng.gen()).collect();
    // Connections: each node dials a few random peers while both sides have room.
    let mut conns: Vec<HashSet<usize>> = vec![HashSet::new(); n];
    for a in 0..n {
        let mut tries = 0;
        while conns[a].len() < DIALS_PER_NODE.min(n - 1) && tries < 20 * DIALS_PER_NODE {
            tries += 1;
            let b = rng.gen_range(0..n);
            if b != a && conns[b].len() < p.max_conns && !conns[a].contains(&b) {
                conns[a].insert(b);
                conns[b].insert(a);
            }
        }
    }
    let conns: Vec<Vec<usize>> = conns
        .into_iter()
        .map(|c| {
            let mut v: Vec<usize> = c.into_iter().collect();
            v.sort_unstable();
            v
        })
        .collect();
    // Mesh: every node grafts connected peers up to mesh_n; a graft is refused by a peer
    // already at mesh_n_high (gossipsub's heartbeat, run until stable).
    let mut mesh: Vec<HashSet<usize>> = vec![HashSet::new(); n];
    for _round in 0..3 {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        for &a in &order {
            if mesh[a].len() >= p.mesh_n {
                continue;
            }
            let mut candidates: Vec<usize> = conns[a]
                .iter()
                .copied()
                .filter(|b| !mesh[a].contains(b) && mesh[*b].len() < p.mesh_high)
                .collect();
            candidates.shuffle(rng);
            for b in candidates {
                if mesh[a].len() >= p.mesh_n {
                    break;
                }
                mesh[a].insert(b);
                mesh[b].insert(a);
            }
        }
    }
    let mesh = mesh.into_iter().map(|m| m.into_iter().collect()).collect();
    // Routing tables: bucket i of node a holds up to k random peers whose id differs
    // from a's first at bit i (a contiguous range of the sorted ids).
    let mut by_id: Vec<usize> = (0..n).collect();
    by_id.sort_by_key(|&i| ids[i]);
    let sorted: Vec<u128> = by_id.iter().map(|&i| ids[i]).collect();
    let mut table = Vec::with_capacity(n);
    for &id in &ids {
        let mut peers = Vec::new();
        for bit in 0..128u32 {
            let mask_hi = if bit == 127 { 0 } else { !0u128 << (bit + 1) };
            let lo = ((id & mask_hi) | ((!id) & (1u128 << bit))) & !((1u128 << bit) - 1);
            let hi = lo | ((1u128 << bit) - 1);
            let start = sorted.partition_point(|x| *x < lo);
            let end = sorted.partition_point(|x| *x <= hi);
            let range: Vec<usize> = (start..end).collect();
            peers.extend(range.choose_multiple(rng, p.k).map(|&j| by_id[j]));
        }
        table.push(peers);
    }
    Net {
        ids,
        conns,
        mesh,
        by_id,
        table,
    }
}

/// What one announcement cost: when each node had it, duplicates and bytes per node.
struct Spread {
    arrival: Vec<Option<u64>>,
    hops: Vec<u32>,
    duplicates: Vec<u32>,
    bytes: Vec<u64>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// `to` receives the full message from `from`, `hops` from the publisher.
    Message { to: usize, from: usize, hops: u32 },
    /// `node`'s heartbeat: IHAVE to a few non-mesh peers while the id is in its history.
    Heartbeat { node: usize },
    /// `to` learns from `from` that it has the message (an IHAVE).
    Ihave { to: usize, from: usize },
}

fn gossip(net: &Net, p: &Params, lat: &Latency, source: usize, rng: &mut StdRng) -> Spread {
    let n = net.ids.len();
    let mut s = Spread {
        arrival: vec![None; n],
        hops: vec![0; n],
        duplicates: vec![0; n],
        bytes: vec![0; n],
    };
    let mut queue: BinaryHeap<Reverse<(u64, Event)>> = BinaryHeap::new();
    let mut asked: HashSet<usize> = HashSet::new();
    s.arrival[source] = Some(0);
    // Flood publish: the publisher sends to every connected peer.
    for &b in &net.conns[source] {
        s.bytes[source] += MESSAGE_BYTES;
        let at = lat.one_way(rng);
        queue.push(Reverse((
            at,
            Event::Message {
                to: b,
                from: source,
                hops: 1,
            },
        )));
    }
    // Heartbeats run at a random phase per node.
    let phase: Vec<u64> = (0..n).map(|_| rng.gen_range(0..p.heartbeat_us)).collect();
    while let Some(Reverse((now, event))) = queue.pop() {
        match event {
            Event::Message { to, from, hops } => {
                s.bytes[to] += MESSAGE_BYTES;
                if s.arrival[to].is_some() {
                    s.duplicates[to] += 1;
                    continue;
                }
                s.arrival[to] = Some(now);
                s.hops[to] = hops;
                for &b in &net.mesh[to] {
                    if b != from && b != source {
                        s.bytes[to] += MESSAGE_BYTES;
                        let at = now + lat.one_way(rng);
                        queue.push(Reverse((
                            at,
                            Event::Message {
                                to: b,
                                from: to,
                                hops: hops + 1,
                            },
                        )));
                    }
                }
                let next =
                    now + (phase[to] + p.heartbeat_us - now % p.heartbeat_us) % p.heartbeat_us;
                queue.push(Reverse((next.max(now + 1), Event::Heartbeat { node: to })));
            }
            Event::Heartbeat { node } => {
                let since = s.arrival[node].unwrap_or(now);
                if now >= since + HISTORY_GOSSIP * p.heartbeat_us {
                    continue;
                }
                let others: Vec<usize> = net.conns[node]
                    .iter()
                    .copied()
                    .filter(|b| !net.mesh[node].contains(b))
                    .collect();
                let count = D_LAZY.max((GOSSIP_FACTOR * others.len() as f64) as usize);
                for &b in others.choose_multiple(rng, count) {
                    s.bytes[node] += ID_BYTES;
                    let at = now + lat.one_way(rng);
                    queue.push(Reverse((at, Event::Ihave { to: b, from: node })));
                }
                queue.push(Reverse((now + p.heartbeat_us, Event::Heartbeat { node })));
            }
            Event::Ihave { to, from } => {
                s.bytes[to] += ID_BYTES;
                if s.arrival[to].is_some() || !asked.insert(to) {
                    continue;
                }
                // IWANT back, the message forward: one round trip after the IHAVE.
                s.bytes[to] += ID_BYTES;
                s.bytes[from] += ID_BYTES + MESSAGE_BYTES;
                let at = now + lat.one_way(rng) + lat.one_way(rng);
                let hops = s.hops[from] + 1;
                queue.push(Reverse((at, Event::Message { to, from, hops })));
            }
        }
    }
    s
}

/// One provider lookup: hops (request depth) to the first provider, time, requests.
struct Lookup {
    found: bool,
    hops: u32,
    time_us: u64,
    requests: u32,
}

fn closest(net: &Net, candidates: &[usize], target: u128, k: usize) -> Vec<usize> {
    let mut v: Vec<usize> = candidates.to_vec();
    v.sort_by_key(|&i| net.ids[i] ^ target);
    v.dedup();
    v.truncate(k);
    v
}

fn lookup(
    net: &Net,
    p: &Params,
    lat: &Latency,
    asker: usize,
    target: u128,
    holders: &HashSet<usize>,
    rng: &mut StdRng,
) -> Lookup {
    let mut depth: HashMap<usize, u32> = HashMap::new();
    let mut seen: Vec<usize> = closest(net, &net.table[asker], target, p.k);
    for &c in &seen {
        depth.insert(c, 1);
    }
    let mut queried: HashSet<usize> = HashSet::from([asker]);
    let mut inflight: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let (mut now, mut requests) = (0u64, 0u32);
    loop {
        // Keep ALPHA requests in flight to the closest peers not asked yet; stop when the
        // k closest seen were all asked and nothing is in flight.
        let best = closest(net, &seen, target, p.k);
        for &c in &best {
            if inflight.len() >= ALPHA {
                break;
            }
            if !queried.insert(c) {
                continue;
            }
            requests += 1;
            let rtt = lat.one_way(rng) + lat.one_way(rng);
            inflight.push(Reverse((now + rtt, c)));
        }
        let Some(Reverse((at, peer))) = inflight.pop() else {
            return Lookup {
                found: false,
                hops: 0,
                time_us: now,
                requests,
            };
        };
        now = at;
        let d = depth[&peer];
        if holders.contains(&peer) {
            return Lookup {
                found: true,
                hops: d,
                time_us: now,
                requests,
            };
        }
        for c in closest(net, &net.table[peer], target, p.k) {
            if let std::collections::hash_map::Entry::Vacant(entry) = depth.entry(c) {
                entry.insert(d + 1);
                seen.push(c);
            }
        }
    }
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((q / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[i]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes: Vec<usize> = std::env::var("NODES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| {
            if quick {
                vec![100, 300, 1000]
            } else {
                vec![100, 300, 1000, 3000, 10000]
            }
        });
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let (announcements, lookups) = if quick { (10, 100) } else { (30, 400) };
    let p = Params::from_config(&Config::default());
    let lat = Latency {
        link: (10_000, 100_000),
        process: 2_000,
    };
    println!(
        "model: mesh_n {} ({}..{}), d_lazy {D_LAZY}, heartbeat {} ms, flood publish; kad k {} alpha {ALPHA}; \
         connections ≤ {}; one-way link {}–{} ms + {} ms processing; {announcements} announcements and {lookups} lookups per N; seed {seed}",
        p.mesh_n, p.mesh_low, p.mesh_high, p.heartbeat_us / 1000, p.k, p.max_conns,
        lat.link.0 / 1000, lat.link.1 / 1000, lat.process / 1000
    );
    println!("\n| nodes | connections/node max (mean) | mesh mean | gossip hops to all: max (mean of per-announcement max) | publish → all p50 / max | duplicates per node per announcement | bytes per node per announcement: mean (max) | lookup hops p50 / p99 / max (log2 N) | lookup time p50 / p99 | requests per lookup | missed lookups |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let mut rng = StdRng::seed_from_u64(seed ^ n as u64);
        let net = build(n, &p, &mut rng);
        let degrees: Vec<f64> = net.conns.iter().map(|c| c.len() as f64).collect();
        let max_conn = net.conns.iter().map(Vec::len).max().unwrap_or(0);
        let mesh_mean = mean(&net.mesh.iter().map(|m| m.len() as f64).collect::<Vec<_>>());
        let (mut all_ms, mut dups, mut bytes, mut max_hops) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut missed_nodes = 0;
        let mut max_bytes = 0u64;
        for _ in 0..announcements {
            let source = rng.gen_range(0..n);
            let s = gossip(&net, &p, &lat, source, &mut rng);
            missed_nodes += s.arrival.iter().filter(|a| a.is_none()).count();
            all_ms.push(s.arrival.iter().flatten().max().copied().unwrap_or(0) as f64 / 1000.0);
            max_hops.push(f64::from(*s.hops.iter().max().unwrap_or(&0)));
            let others: Vec<usize> = (0..n).filter(|i| *i != source).collect();
            dups.push(mean(
                &others
                    .iter()
                    .map(|&i| f64::from(s.duplicates[i]))
                    .collect::<Vec<_>>(),
            ));
            bytes.push(mean(&s.bytes.iter().map(|&b| b as f64).collect::<Vec<_>>()));
            max_bytes = max_bytes.max(*s.bytes.iter().max().unwrap_or(&0));
        }
        let (mut hops, mut times, mut reqs) = (Vec::new(), Vec::new(), Vec::new());
        let mut missed = 0;
        for _ in 0..lookups {
            let target: u128 = rng.gen();
            let provider = rng.gen_range(0..n);
            // The provider stored its record at the k nodes closest to the key.
            let all: Vec<usize> = net.by_id.clone();
            let mut holders: HashSet<usize> =
                closest(&net, &all, target, p.k).into_iter().collect();
            holders.insert(provider);
            let asker = loop {
                let a = rng.gen_range(0..n);
                if !holders.contains(&a) {
                    break a;
                }
            };
            let l = lookup(&net, &p, &lat, asker, target, &holders, &mut rng);
            if !l.found {
                missed += 1;
                continue;
            }
            hops.push(f64::from(l.hops));
            times.push(l.time_us as f64 / 1000.0);
            reqs.push(f64::from(l.requests));
        }
        let hop_max = hops.iter().copied().fold(0.0, f64::max);
        println!(
            "| {n} | {max_conn} ({:.1}) | {mesh_mean:.1} | {:.0} ({:.1}) | {:.0} / {:.0} ms | {:.2} | {:.1} KiB ({:.1} KiB) | {:.0} / {:.0} / {hop_max:.0} ({:.1}) | {:.0} / {:.0} ms | {:.1} | {missed} of {lookups}{} |",
            mean(&degrees),
            max_hops.iter().copied().fold(0.0, f64::max),
            mean(&max_hops),
            percentile(&mut all_ms.clone(), 50.0),
            percentile(&mut all_ms, 100.0),
            mean(&dups),
            mean(&bytes) / 1024.0,
            max_bytes as f64 / 1024.0,
            percentile(&mut hops.clone(), 50.0),
            percentile(&mut hops, 99.0),
            (n as f64).log2(),
            percentile(&mut times.clone(), 50.0),
            percentile(&mut times, 99.0),
            mean(&reqs),
            if missed_nodes > 0 { format!("; {missed_nodes} node-announcements never reached") } else { String::new() },
        );
    }
}
