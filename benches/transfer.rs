//! Transfer: downloading packs of 128 MiB and 1 GiB (random bytes, so the archive is as
//! large) over loopback with the real library — `net::transfer::download_to_store` from
//! 1 and from 3 providers, over TCP and over QUIC — against two baselines run alternately
//! in the same run: `curl` fetching the same stored archive file over plain HTTP from a
//! sendfile server (a thread of this bench: `std::io::copy` from the file to the socket,
//! which Linux std does with `sendfile(2)`), and a raw TCP copy of the file between two
//! processes (this process `sendfile`s it to a child that `splice`s it to a file: the
//! limit of the machine). Then the downloader's memory: a separate `ggen-p2p start`
//! daemon installs each pack (CLI `install` through its API) while its
//! /proc/<pid>/status VmRSS is sampled every 2 ms; the providers' peak is this process's
//! VmHWM, reset before each install.
//!
//! Run: `cargo bench --bench transfer` (`TRANSFER_MIB`, default `128,1024`;
//! `TRANSFER_RUNS`, default 2; `TRANSFER_QUICK=1` for one 16 MiB round, for CI;
//! `BENCH_DIR` for the scratch directory, default the system temp dir).

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::{load, ms, random_pack, MIB};
use ggen_p2p::net::transfer::download_to_store;
use ggen_p2p::net::PeerId;
use ggen_p2p::registry::{
    InstallRequest, P2PRegistry, P2PRegistryBuilder, PackageSpec, PublishRequest, Registry,
};
use support::registry::{wait_connected, wait_for, with_key};

const BIN: &str = env!("CARGO_BIN_EXE_ggen-p2p");
const RAW_RECEIVER: &str = "TRANSFER_RAW_RECEIVER";

fn main() -> Result<()> {
    // Child mode: the receiving side of the raw TCP copy.
    if let Ok(spec) = std::env::var(RAW_RECEIVER) {
        return raw_receive(&spec);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Transport {
    Tcp,
    Quic,
}

impl Transport {
    fn listen(self) -> &'static str {
        match self {
            Transport::Tcp => "/ip4/127.0.0.1/tcp/0",
            Transport::Quic => "/ip4/127.0.0.1/udp/0/quic-v1",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "TCP",
            Transport::Quic => "QUIC",
        }
    }
}

/// A started registry in `root/name` listening on the given transports.
async fn node(
    root: &Path,
    name: &str,
    listen: &[Transport],
    bootstrap: Vec<String>,
) -> P2PRegistry {
    let registry = P2PRegistryBuilder::new()
        .with_data_dir(root.join(name))
        .with_listen_addresses(listen.iter().map(|t| t.listen().to_string()).collect())
        .with_bootstrap_peers(bootstrap)
        .with_mdns(false)
        .with_autonat(false)
        .build()
        .expect("registry builds");
    registry.start().await.expect("registry starts");
    registry
}

/// The node's listen address on `transport`, with `/p2p/<peer id>`.
async fn address(node: &P2PRegistry, transport: Transport) -> Result<String> {
    let client = node.client().context("started")?;
    let want = match transport {
        Transport::Tcp => "/tcp/",
        Transport::Quic => "/quic-v1",
    };
    let begun = Instant::now();
    loop {
        let addrs = client.listen_addrs().await?;
        if let Some(addr) = addrs.iter().find(|a| a.to_string().contains(want)) {
            return Ok(format!("{addr}/p2p/{}", client.peer_id()));
        }
        anyhow::ensure!(
            begun.elapsed() < Duration::from_secs(10),
            "no {want} address"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn bench() -> Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        // The library's own logs (providers and downloaders are in this process).
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let quick = std::env::var_os("TRANSFER_QUICK").is_some();
    let sizes: Vec<usize> = match std::env::var("TRANSFER_MIB") {
        Ok(list) => list
            .split(',')
            .map(|v| {
                v.trim()
                    .parse()
                    .context("TRANSFER_MIB: sizes in MiB, comma-separated")
            })
            .collect::<Result<_>>()?,
        Err(_) if quick => vec![16],
        Err(_) => vec![128, 1024],
    };
    let runs: usize = std::env::var("TRANSFER_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 1 } else { 2 });
    let scratch = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let mut tables = Vec::new();
    for mib in sizes {
        let work = tempfile::tempdir_in(&scratch)?;
        tables.push(bench_size(work.path(), mib, runs).await?);
    }
    println!("\n{}", tables.join("\n"));
    Ok(())
}

async fn bench_size(root: &Path, mib: usize, runs: usize) -> Result<String> {
    let load_before = load();
    let both = [Transport::Tcp, Transport::Quic];
    // Three providers: p0 publishes, p1 and p2 install (and so provide) the pack.
    let p0 = node(root, "p0", &both, vec![]).await;
    with_key(&p0);
    let p0_addr = address(&p0, Transport::Tcp).await?;
    let name = format!("bench-{mib}");
    let pack = random_pack(root, &name, mib << 20, mib as u64)?;
    let published = p0.publish(PublishRequest::new(pack.clone())).await?;
    std::fs::remove_dir_all(&pack)?;
    let info = published.archive.clone();
    eprintln!(
        "{mib} MiB: archive {:.1} MiB, {} chunks of {} KiB",
        info.size as f64 / MIB as f64,
        info.size.div_ceil(info.chunk_size as u64),
        info.chunk_size / 1024
    );
    let mut providers = vec![p0.clone()];
    for pname in ["p1", "p2"] {
        let p = node(root, pname, &both, vec![p0_addr.clone()]).await;
        wait_for(&p, &published.name, &published.version).await;
        let target = root.join(format!("{pname}-unpacked"));
        p.install(
            InstallRequest::new(PackageSpec::new(&published.name, "")).with_target(&target),
            None,
        )
        .await?;
        std::fs::remove_dir_all(&target)?;
        providers.push(p);
    }
    let mut ids: Vec<PeerId> = Vec::new();
    for p in &providers {
        ids.push(p.client().context("started")?.peer_id());
    }
    let archive_path = p0
        .store()
        .archive_path(&info.blake3)
        .context("published archive is stored")?;
    let server = SendfileServer::start(archive_path.parent().context("blob dir")?)?;
    let file_name = archive_path
        .file_name()
        .and_then(|n| n.to_str())
        .context("archive file name")?
        .to_string();

    let mut http = Vec::new();
    let mut raw = Vec::new();
    let cases: Vec<(Transport, usize)> = vec![
        (Transport::Tcp, 1),
        (Transport::Tcp, 3),
        (Transport::Quic, 1),
        (Transport::Quic, 3),
    ];
    let mut p2p: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut tails: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut hwm: Vec<u64> = vec![0; cases.len()];
    for run in 0..runs {
        http.push(server.curl(&file_name, &root.join("curl.out"), info.size)?);
        raw.push(raw_copy(&archive_path, &root.join("raw.out"), info.size)?);
        for (case, &(transport, k)) in cases.iter().enumerate() {
            let mut addrs = Vec::new();
            for p in &providers[..k] {
                addrs.push(address(p, transport).await?);
            }
            let dir = format!("d{run}-{case}");
            let d = node(root, &dir, &[transport], addrs).await;
            wait_connected(&d, k).await;
            let client = d.client().context("started")?;
            let last_chunk = std::sync::Mutex::new(None);
            reset_peak();
            let begun = Instant::now();
            tracing::info!(run, case, "download begins");
            download_to_store(
                &client,
                d.store(),
                &info,
                ids[..k].to_vec(),
                |done, total| {
                    if done == total {
                        *last_chunk.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(Instant::now());
                    }
                },
            )
            .await?;
            let took = begun.elapsed();
            eprintln!(
                "run {run} case {case} ({transport:?}, {k} providers): {:.0} MiB/s",
                info.size as f64 / MIB as f64 / took.as_secs_f64()
            );
            hwm[case] = hwm[case].max(status_kib(std::process::id(), "VmHWM:"));
            let chunks_done = last_chunk
                .into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .map(|at| at - begun)
                .unwrap_or(took);
            p2p[case].push(took);
            tails[case].push(took - chunks_done);
            anyhow::ensure!(d.store().has_archive(&info.blake3), "archive not stored");
            d.stop().await?;
            std::fs::remove_dir_all(root.join(&dir))?;
        }
    }
    http.push(server.curl(&file_name, &root.join("curl.out"), info.size)?);
    raw.push(raw_copy(&archive_path, &root.join("raw.out"), info.size)?);

    // Memory: a separate downloader process installing from the providers here.
    reset_peak();
    let m = daemon_install(root, &p0_addr, &published.name);
    let providers_hwm = status_kib(std::process::id(), "VmHWM:");
    for p in &providers {
        p.stop().await?;
    }
    drop(server);

    let size_mib = info.size as f64 / MIB as f64;
    let rate = |d: Duration| size_mib / d.as_secs_f64();
    let median = |v: &[Duration]| common::percentile(v, 50.0);
    let best = |v: &[Duration]| v.iter().min().copied().unwrap_or_default();
    let http_med = rate(median(&http));
    let raw_med = rate(median(&raw));
    let mut out = String::new();
    use std::fmt::Write as _;
    writeln!(
        out,
        "### {size_mib:.0} MiB archive, loopback, {runs} runs per row (baselines {} runs), load {load_before} → {}\n",
        http.len(),
        load()
    )?;
    writeln!(out, "| what | MiB/s (median) | best | ratio to curl | ratio to raw TCP | after the last chunk | peak RSS, bench process (providers + downloader) |")?;
    writeln!(out, "|---|---|---|---|---|---|---|")?;
    writeln!(
        out,
        "| raw TCP copy, sendfile → splice, two processes | {raw_med:.0} | {:.0} | {:.2}× | 1.00× | | |",
        rate(best(&raw)),
        raw_med / http_med
    )?;
    writeln!(
        out,
        "| curl ← HTTP sendfile server | {http_med:.0} | {:.0} | 1.00× | {:.2}× | | |",
        rate(best(&http)),
        http_med / raw_med
    )?;
    for (case, &(transport, k)) in cases.iter().enumerate() {
        let med = rate(median(&p2p[case]));
        writeln!(
            out,
            "| download_to_store, {k} provider{}, {} | {med:.0} | {:.0} | **{:.2}×** | {:.2}× | {:.0} ms | {:.0} MiB |",
            if k == 1 { "" } else { "s" },
            transport.name(),
            rate(best(&p2p[case])),
            med / http_med,
            med / raw_med,
            ms(median(&tails[case])),
            hwm[case] as f64 / 1024.0
        )?;
    }
    match m {
        Ok(m) => writeln!(
            out,
            "\ndownloader daemon (`ggen-p2p start`, CLI install through its API, TCP): VmRSS {:.1} MiB before, peak {:.1} MiB ({:+.1} MiB, RssAnon {:+.1} MiB) at {:.0} ms, install {:.0} ms; providers' process VmHWM during it {:.0} MiB",
            m.before_kib as f64 / 1024.0,
            m.peak_kib as f64 / 1024.0,
            (m.peak_kib as f64 - m.before_kib as f64) / 1024.0,
            (m.peak_anon_kib as f64 - m.before_anon_kib as f64) / 1024.0,
            ms(m.peak_at),
            ms(m.took),
            providers_hwm as f64 / 1024.0
        )?,
        Err(e) => writeln!(out, "\ndownloader daemon memory: not measured: {e:#}")?,
    }
    eprintln!("{out}");
    Ok(out)
}

/// Resets this process's VmHWM to its current RSS (`/proc/self/clear_refs`, value 5).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Raw TCP copy of `file` into `out` by a child process; returns the time from accept
/// until the child has written every byte.
fn raw_copy(file: &Path, out: &Path, size: u64) -> Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut child = Command::new(std::env::current_exe()?)
        .env(RAW_RECEIVER, format!("{addr} {}", out.display()))
        .stdout(Stdio::piped())
        .spawn()?;
    let (mut socket, _) = listener.accept()?;
    let begun = Instant::now();
    let mut source = std::fs::File::open(file)?;
    let sent = std::io::copy(&mut source, &mut socket)?;
    socket.shutdown(std::net::Shutdown::Write)?;
    let mut text = String::new();
    child
        .stdout
        .take()
        .context("receiver stdout")?
        .read_to_string(&mut text)?;
    let took = begun.elapsed();
    anyhow::ensure!(child.wait()?.success(), "raw receiver failed");
    let got: u64 = text.trim().parse().unwrap_or(0);
    anyhow::ensure!(
        sent == size && got == size,
        "raw copy: sent {sent}, got {got}, size {size}"
    );
    std::fs::remove_file(out)?;
    Ok(took)
}

/// The child side of [`raw_copy`]: `<addr> <out path>`; prints the bytes received.
fn raw_receive(spec: &str) -> Result<()> {
    let (addr, out) = spec.split_once(' ').context("raw receiver spec")?;
    let mut socket = TcpStream::connect(addr)?;
    let mut file = std::fs::File::create(out)?;
    let got = std::io::copy(&mut socket, &mut file)?;
    println!("{got}");
    Ok(())
}

/// A minimal HTTP/1.1 file server on a free loopback port: one thread per connection,
/// the body sent with `std::io::copy` from the file to the socket (`sendfile(2)`).
struct SendfileServer {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl SendfileServer {
    fn start(dir: &Path) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let (dir, flag) = (dir.to_path_buf(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let dir = dir.clone();
                std::thread::spawn(move || {
                    if let Err(e) = serve_file(conn, &dir) {
                        eprintln!("sendfile server: {e}");
                    }
                });
            }
        });
        Ok(Self { port, stop })
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

impl Drop for SendfileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn serve_file(mut conn: TcpStream, dir: &Path) -> Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 || head.len() > 8192 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head);
    let path = text
        .split_whitespace()
        .nth(1)
        .context("request line")?
        .trim_start_matches('/');
    anyhow::ensure!(
        !path.contains('/') && !path.contains(".."),
        "bad path {path}"
    );
    let mut file = std::fs::File::open(dir.join(path))?;
    let len = file.metadata()?.len();
    write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    )?;
    std::io::copy(&mut file, &mut conn)?;
    Ok(())
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
    let mut child = support::process::start_command(&dir, true, Some(bootstrap))
        .env("RUST_LOG", "error")
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
        while http_status(&api, &format!("/api/v1/info?spec={name}")) != Some(200) {
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
