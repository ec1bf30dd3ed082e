//! Transfer: downloading a 128 MiB pack (random bytes, so the archive is ≈128 MiB) over
//! loopback TCP with the real library — `net::transfer::download_to_store` from 1, 2 and
//! 3 providers, and one end-to-end `install` — against a baseline of `curl`
//! fetching the same stored archive file from `python3 -m http.server`, run alternately
//! in the same bench run. Then the downloader's memory: a separate `ggen-p2p start`
//! daemon installs a 32 MiB and a 128 MiB pack (CLI `install` through its API) while its
//! /proc/<pid>/status VmRSS is sampled every 2 ms.
//!
//! Run: `cargo bench --bench transfer` (`TRANSFER_RUNS`, default 3; `BENCH_DIR` for the
//! scratch directory, default the system temp dir).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::{address, load, ms, node, random_pack, wait_connected, wait_for, with_key, MIB};
use ggen_p2p::net::transfer::download_to_store;
use ggen_p2p::net::PeerId;
use ggen_p2p::registry::{InstallRequest, PackageSpec, PublishRequest, Registry};

const BIN: &str = env!("CARGO_BIN_EXE_ggen-p2p");
const BIG: usize = 128 << 20;
const SMALL: usize = 32 << 20;

#[tokio::main]
async fn main() -> Result<()> {
    let runs: usize = std::env::var("TRANSFER_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let scratch = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let work = tempfile::tempdir_in(scratch)?;
    let root = work.path();
    println!("load before: {}", load());

    // Three providers: p0 publishes, p1 and p2 install (and so provide) both packs.
    let p0 = node(root, "p0", vec![]).await?;
    with_key(&p0)?;
    let p0_addr = address(&p0).await?;
    let big = p0
        .publish(PublishRequest::new(random_pack(root, "bench-big", BIG, 1)?))
        .await?;
    let small = p0
        .publish(PublishRequest::new(random_pack(
            root,
            "bench-small",
            SMALL,
            2,
        )?))
        .await?;
    let info = big.archive.clone();
    println!(
        "archive: {:.1} MiB, {} chunks of {} KiB",
        info.size as f64 / MIB as f64,
        info.size.div_ceil(info.chunk_size as u64),
        info.chunk_size / 1024
    );
    let mut providers = vec![p0.clone()];
    for name in ["p1", "p2"] {
        let p = node(root, name, vec![p0_addr.clone()]).await?;
        for report in [&big, &small] {
            wait_for(&p, &report.name, &report.version).await?;
            let spec = PackageSpec::new(&report.name, "");
            let target = root.join(format!("{name}-{}", report.name));
            p.install(InstallRequest::new(spec).with_target(target), None)
                .await?;
        }
        providers.push(p);
    }
    let mut provider_addrs = Vec::new();
    let mut provider_ids: Vec<PeerId> = Vec::new();
    for p in &providers {
        provider_addrs.push(address(p).await?);
        provider_ids.push(p.client().context("started")?.peer_id());
    }

    let archive_path = p0
        .store()
        .archive_path(&info.blake3)
        .context("published archive is stored")?;
    let server = HttpServer::start(archive_path.parent().context("blob dir")?)?;
    let file_name = archive_path
        .file_name()
        .and_then(|n| n.to_str())
        .context("archive file name")?
        .to_string();

    let mut http = Vec::new();
    let mut p2p: [Vec<Duration>; 3] = Default::default();
    // Time from the last verified chunk to the archive being in the store.
    let mut tails: [Vec<Duration>; 3] = Default::default();
    for run in 0..runs {
        for k in 1..=3 {
            http.push(server.curl(&file_name, &root.join("curl.out"), info.size)?);
            let dir = format!("d{run}-{k}");
            let d = node(root, &dir, provider_addrs[..k].to_vec()).await?;
            wait_connected(&d, k).await?;
            let client = d.client().context("started")?;
            let last_chunk = std::sync::Mutex::new(None);
            let begun = Instant::now();
            download_to_store(
                &client,
                d.store(),
                &info,
                provider_ids[..k].to_vec(),
                |done, total| {
                    if done == total {
                        *last_chunk.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(Instant::now());
                    }
                },
            )
            .await?;
            let took = begun.elapsed();
            let chunks_done = last_chunk
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .map(|at| at - begun)
                .unwrap_or(took);
            p2p[k - 1].push(took);
            tails[k - 1].push(took - chunks_done);
            anyhow::ensure!(d.store().has_archive(&info.blake3), "archive not stored");
            d.stop().await?;
            std::fs::remove_dir_all(root.join(&dir))?;
        }
    }

    // End to end: a fresh node that knows only p0 finds the providers, downloads,
    // verifies and unpacks.
    http.push(server.curl(&file_name, &root.join("curl.out"), info.size)?);
    let e2e = node(root, "e2e", vec![p0_addr.clone()]).await?;
    wait_for(&e2e, &big.name, &big.version).await?;
    let begun = Instant::now();
    let report = e2e
        .install(
            InstallRequest::new(PackageSpec::new(&big.name, ""))
                .with_target(root.join("e2e-installed")),
            None,
        )
        .await?;
    let install = begun.elapsed();
    e2e.stop().await?;

    let rate = |d: Duration| info.size as f64 / MIB as f64 / d.as_secs_f64();
    let best = |v: &[Duration]| v.iter().min().copied().unwrap_or_default();
    let median = |v: &[Duration]| common::percentile(v, 50.0);
    let http_med = rate(median(&http));
    println!("\ntransfer of a {:.0} MiB archive over loopback TCP, {runs} runs each (median MiB/s; best in brackets)", info.size as f64 / MIB as f64);
    println!("| what | MiB/s (median) | MiB/s (best) | ratio to HTTP (median) |");
    println!("|---|---|---|---|");
    println!(
        "| baseline: curl from python3 -m http.server ({} runs) | {:.0} | {:.0} | 1.00× |",
        http.len(),
        http_med,
        rate(best(&http))
    );
    for (k, times) in p2p.iter().enumerate() {
        println!(
            "| download_to_store, {} provider{} | {:.0} | {:.0} | {:.2}× |",
            k + 1,
            if k == 0 { "" } else { "s" },
            rate(median(times)),
            rate(best(times)),
            rate(median(times)) / http_med
        );
    }
    for (k, tail) in tails.iter().enumerate() {
        println!(
            "| of which after the last chunk (finish + store), {} provider{} | {:.0} ms median | | |",
            k + 1,
            if k == 0 { "" } else { "s" },
            ms(median(tail))
        );
    }
    println!(
        "| install end to end ({} providers found; + unpack), 1 run | {:.0} | – | {:.2}× |",
        report.fetched_from.len(),
        rate(install),
        rate(install) / http_med
    );

    // Memory of a separate downloader process, per pack size.
    println!("\ndownloader daemon memory (`ggen-p2p start` + CLI install through its API)");
    println!("| pack | VmRSS before | peak VmRSS during install | growth | RssAnon growth | peak at | install time |");
    println!("|---|---|---|---|---|---|---|");
    for report in [&small, &big] {
        let m = daemon_install(root, &p0_addr, &report.name)?;
        println!(
            "| {:.0} MiB | {:.1} MiB | {:.1} MiB | {:+.1} MiB | {:+.1} MiB | {:.0} ms | {:.0} ms |",
            report.archive.size as f64 / MIB as f64,
            m.before_kib as f64 / 1024.0,
            m.peak_kib as f64 / 1024.0,
            (m.peak_kib as f64 - m.before_kib as f64) / 1024.0,
            (m.peak_anon_kib as f64 - m.before_anon_kib as f64) / 1024.0,
            ms(m.peak_at),
            ms(m.took)
        );
    }
    println!("load after: {}", load());
    for p in &providers {
        p.stop().await?;
    }
    Ok(())
}

/// `python3 -m http.server` serving one directory on a free loopback port.
struct HttpServer {
    child: Child,
    port: u16,
}

impl HttpServer {
    fn start(dir: &Path) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg("--directory")
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("python3 -m http.server")?;
        let begun = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if begun.elapsed() > Duration::from_secs(10) {
                bail!("http.server never listened");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { child, port })
    }

    /// One `curl` download to `out`; returns curl's own total time.
    fn curl(&self, file: &str, out: &Path, size: u64) -> Result<Duration> {
        let output = Command::new("curl")
            .args([
                "-sS",
                "--fail",
                "-w",
                "%{size_download} %{time_total}",
                "-o",
            ])
            .arg(out)
            .arg(format!("http://127.0.0.1:{}/{file}", self.port))
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let mut fields = text.split_whitespace();
        let got: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let secs: f64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        anyhow::ensure!(got == size, "curl got {got} bytes, expected {size}");
        std::fs::remove_file(out)?;
        Ok(Duration::from_secs_f64(secs))
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Memory {
    before_kib: u64,
    peak_kib: u64,
    before_anon_kib: u64,
    peak_anon_kib: u64,
    /// When VmRSS peaked, from the start of the install.
    peak_at: Duration,
    took: Duration,
}

/// Starts a daemon on a fresh data dir that knows only `bootstrap`, waits until it has
/// `name`'s record and settles, then installs it with the CLI while sampling VmRSS.
fn daemon_install(root: &Path, bootstrap: &str, name: &str) -> Result<Memory> {
    let dir = root.join(format!("daemon-{name}"));
    std::fs::create_dir_all(&dir)?;
    let mut child = Command::new(BIN)
        .args([
            "--json",
            "start",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--no-mdns",
        ])
        .args(["--no-autonat", "--bootstrap", bootstrap, "--data-dir"])
        .arg(&dir)
        .env_remove("GGEN_P2P_HOME")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let result = (|| {
        let stdout = child.stdout.take().context("daemon stdout")?;
        // `--json` pretty-prints one object: read lines until it parses.
        let mut reader = BufReader::new(stdout);
        let mut text = String::new();
        let started: serde_json::Value = loop {
            if reader.read_line(&mut text)? == 0 {
                bail!("daemon exited before printing its start object: {text:?}");
            }
            if let Ok(value) = serde_json::from_str(&text) {
                break value;
            }
        };
        // Keep draining stdout so the daemon never blocks on a full pipe.
        std::thread::spawn(move || for _ in reader.lines() {});
        let api = started["api"].as_str().context("api address")?.to_string();
        let begun = Instant::now();
        while http_status(&api, &format!("/api/v1/packages/{name}")) != Some(200) {
            if begun.elapsed() > Duration::from_secs(60) {
                bail!("daemon never learned {name}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_secs(2));
        let pid = child.id();
        let before_kib = vm_rss(pid);
        let before_anon_kib = status_kib(pid, "RssAnon:");
        let peak = Arc::new(AtomicU64::new(before_kib));
        let peak_anon = Arc::new(AtomicU64::new(before_anon_kib));
        let peak_at = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            let (peak_anon, peak_at) = (peak_anon.clone(), peak_at.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let rss = vm_rss(pid);
                    if rss > peak.fetch_max(rss, Ordering::Relaxed) {
                        peak_at.store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                    }
                    peak_anon.fetch_max(status_kib(pid, "RssAnon:"), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        let begun = Instant::now();
        let output = Command::new(BIN)
            .args(["--quiet", "--json", "install", name, "--data-dir"])
            .arg(&dir)
            .env_remove("GGEN_P2P_HOME")
            .output()?;
        let took = begun.elapsed();
        stop.store(true, Ordering::Relaxed);
        let _ = sampler.join();
        anyhow::ensure!(
            output.status.success(),
            "install: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        anyhow::ensure!(
            report["fetched_from"]
                .as_array()
                .is_some_and(|a| !a.is_empty()),
            "the daemon did not fetch from a peer: {report}"
        );
        Ok(Memory {
            before_kib,
            peak_kib: peak.load(Ordering::Relaxed),
            before_anon_kib,
            peak_anon_kib: peak_anon.load(Ordering::Relaxed),
            peak_at: Duration::from_micros(peak_at.load(Ordering::Relaxed)),
            took,
        })
    })();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    result
}

fn vm_rss(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// One kB field of /proc/<pid>/status.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Status code of one plain HTTP/1.0 GET.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
