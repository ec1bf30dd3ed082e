//! Idle daemon: how soon `ggen-p2p start` (this build's binary, empty data directory,
//! loopback TCP only, no mDNS) prints its API line and answers `/api/v1/health`, and its
//! RSS after 5 s idle — against the baseline of spawning `ggen-p2p --version` (the bare
//! process start cost), measured side by side.
//!
//! Run: `cargo bench --bench daemon` (`DAEMON_RUNS`, default 7).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ggen-p2p");
const IDLE: Duration = Duration::from_secs(5);

struct Start {
    api_line: Duration,
    health: Duration,
    rss_idle_kib: u64,
    hwm_kib: u64,
}

fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::var("DAEMON_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let work = tempfile::tempdir()?;
    let mut version = Vec::new();
    let mut starts = Vec::new();
    for run in 0..runs {
        version.push(spawn_version()?);
        starts.push(spawn_start(&work.path().join(format!("node-{run}")))?);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let med = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let max = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
    let base = med(version.clone());
    let api = med(starts.iter().map(|s| s.api_line).collect());
    let health = med(starts.iter().map(|s| s.health).collect());
    let mut rss: Vec<u64> = starts.iter().map(|s| s.rss_idle_kib).collect();
    rss.sort();
    let hwm = starts.iter().map(|s| s.hwm_kib).max().unwrap_or(0);
    println!("idle daemon, {runs} runs each (median; max in brackets)");
    println!("| what | median | max | ratio to baseline |");
    println!("|---|---|---|---|");
    println!(
        "| baseline: spawn `ggen-p2p --version` to exit | {:.1} ms | {:.1} ms | 1.0× |",
        ms(base),
        ms(max(&version))
    );
    let api_all: Vec<Duration> = starts.iter().map(|s| s.api_line).collect();
    let health_all: Vec<Duration> = starts.iter().map(|s| s.health).collect();
    println!(
        "| spawn `start` to the `api` line on stdout | {:.1} ms | {:.1} ms | {:.1}× |",
        ms(api),
        ms(max(&api_all)),
        ms(api) / ms(base)
    );
    println!(
        "| spawn `start` to `/api/v1/health` answering | {:.1} ms | {:.1} ms | {:.1}× |",
        ms(health),
        ms(max(&health_all)),
        ms(health) / ms(base)
    );
    println!(
        "| VmRSS after {}s idle | {:.1} MiB | {:.1} MiB | (peak VmHWM {:.1} MiB) |",
        IDLE.as_secs(),
        rss[rss.len() / 2] as f64 / 1024.0,
        rss[rss.len() - 1] as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    Ok(())
}

fn spawn_version() -> anyhow::Result<Duration> {
    let begun = Instant::now();
    let status = Command::new(BIN)
        .arg("--version")
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "ggen-p2p --version failed");
    Ok(begun.elapsed())
}

fn spawn_start(dir: &Path) -> anyhow::Result<Start> {
    std::fs::create_dir_all(dir)?;
    let begun = Instant::now();
    let child = Command::new(BIN)
        .args(["start", "--listen", "/ip4/127.0.0.1/tcp/0", "--no-mdns"])
        .arg("--data-dir")
        .arg(dir)
        .env_remove("GGEN_P2P_HOME")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut child = Guard(child);
    let stdout = child
        .0
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let (api_line, addr) = loop {
        let Some(line) = lines.next() else {
            anyhow::bail!("daemon exited before printing its api line");
        };
        let line = line?;
        if let Some(rest) = line.strip_prefix("api") {
            let url = rest.split_whitespace().next().unwrap_or_default();
            let addr = url.trim_start_matches("http://").to_string();
            break (begun.elapsed(), addr);
        }
    };
    let health = loop {
        if healthy(&addr) {
            break begun.elapsed();
        }
        anyhow::ensure!(begun.elapsed() < Duration::from_secs(10), "never healthy");
        std::thread::sleep(Duration::from_millis(1));
    };
    // Keep draining stdout so the daemon never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    std::thread::sleep(IDLE.saturating_sub(begun.elapsed()));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.0.id()))?;
    Ok(Start {
        api_line,
        health,
        rss_idle_kib: field_kib(&status, "VmRSS:"),
        hwm_kib: field_kib(&status, "VmHWM:"),
    })
}

/// One plain HTTP/1.0 GET of the health route.
fn healthy(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let request = format!("GET /api/v1/health HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.") && answer.contains(" 200 ")
}

fn field_kib(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Stops the daemon (SIGTERM, then kill) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
