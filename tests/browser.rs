//! The web dashboard in a real headless Chromium (driven through chromedriver by
//! fantoccini) against two real `ggen-p2p start` daemons on 127.0.0.1: search with
//! instant results, a pack page, the network page, and a record published on the other
//! node appearing in the live feed without a reload. Chromium and chromedriver must be
//! installed (Debian: `apt-get install chromium chromium-driver`, as `.ci/run` does);
//! without them this test fails saying so, it never skips.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

mod support;
use support::process::Daemon;
use support::{pack, wait_until, DEADLINE};

/// The first of `names` found on `PATH` (or as an absolute path).
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names.iter().find_map(|name| {
        let direct = Path::new(name);
        if direct.is_absolute() && direct.is_file() {
            return Some(direct.to_path_buf());
        }
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Runs chromedriver on a free loopback port until dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start(chromedriver: &Path) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", chromedriver.display()));
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        wait_until("chromedriver to listen", || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        driver
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The API address a daemon wrote into its data directory.
fn api_addr(data: &Path) -> String {
    let endpoint: Value =
        serde_json::from_slice(&std::fs::read(data.join("api.json")).unwrap()).unwrap();
    endpoint["addr"].as_str().unwrap().to_string()
}

/// Runs blocking test-harness work (CLI calls, waits) off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.unwrap()
}

/// With `GGEN_P2P_SCREENSHOTS=DIR`, saves the page as `DIR/NAME.png` (to look at the
/// dashboard as the test saw it); otherwise does nothing.
async fn screenshot(browser: &Client, name: &str) {
    let Some(dir) = std::env::var_os("GGEN_P2P_SCREENSHOTS") else {
        return;
    };
    let png = browser.screenshot().await.unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
}

/// Polls the text of the element at `css` until `wanted` holds, failing with what was
/// last seen once the deadline passes.
async fn wait_text(
    browser: &Client,
    css: &str,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) -> String {
    let begun = Instant::now();
    loop {
        let text = match browser.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if wanted(&text) {
            return text;
        }
        assert!(
            begun.elapsed() < DEADLINE,
            "timed out waiting for {what}; {css} shows {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_searches_shows_a_pack_and_a_record_arriving_live() {
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
    let chromedriver = find_program(&["chromedriver", "/usr/lib/chromium/chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        panic!(
            "the browser test needs Chromium and chromedriver on PATH; on Debian: \
             `apt-get install chromium chromium-driver` (.ci/run installs them)"
        );
    };

    let root = tempfile::tempdir().unwrap();
    let (a, b) = blocking({
        let root = root.path().to_path_buf();
        move || {
            let a = Daemon::start(root.join("a"), None);
            let b = Daemon::start(root.join("b"), Some(&a.addr));
            a.cli(&["key", "generate"]);
            a.cli(&["publish", &pack("rust-tracing-setup")]);
            a.cli(&["publish", &pack("rust-axum-service")]);
            wait_until("both packs to reach node b", || {
                ["axum", "tracing"].iter().all(|word| {
                    b.cli(&["search", word])["results"]
                        .as_array()
                        .is_some_and(|r| !r.is_empty())
                })
            });
            (a, b)
        }
    })
    .await;
    let dashboard = format!("http://{}/", api_addr(&b.data));

    let profile = tempfile::tempdir().unwrap();
    let driver = blocking(move || Driver::start(&chromedriver)).await;
    let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    builder.capabilities(capabilities);
    let browser = builder
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("chromedriver at {} refused a session: {e}", driver.url));

    browser.goto(&dashboard).await.unwrap();
    // The live feed is subscribed before anything is published on the other node.
    wait_text(&browser, "#feed-state", "the live feed to connect", |t| {
        t == "live"
    })
    .await;
    // Human units in the header: sizes in KiB, not raw bytes.
    wait_text(&browser, "#summary", "the node summary", |t| {
        t.contains("2 packs") && t.contains("B of archives")
    })
    .await;

    // Search: results appear while typing, with no button pressed.
    let input = browser.find(Locator::Css("#q")).await.unwrap();
    input.send_keys("axum").await.unwrap();
    wait_text(&browser, "#results", "instant search results", |t| {
        t.contains("rust-axum-service")
    })
    .await;
    screenshot(&browser, "search").await;

    // The pack page: description, versions, dependencies, install command.
    browser
        .find(Locator::Css("#results a.title"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&browser, "#pack-name", "the pack page", |t| {
        t.starts_with("rust-axum-service")
    })
    .await;
    let command = wait_text(&browser, "#install-command", "the install command", |t| {
        !t.is_empty()
    })
    .await;
    assert!(
        command.starts_with("ggen-p2p install rust-axum-service@"),
        "{command}"
    );
    wait_text(&browser, "#dependencies", "the dependency list", |t| {
        t.contains("rust-tracing-setup")
    })
    .await;
    wait_text(&browser, "#versions", "the version list", |t| {
        t.contains("ago") || t.contains("just now")
    })
    .await;
    wait_text(&browser, "#pack-providers", "the provider count", |t| {
        t.contains("peer") || t.contains("unknown")
    })
    .await;
    screenshot(&browser, "pack").await;

    // A pack published on b and installed by a: b seeds it, and its network page lists
    // the swarm (shown for a minute after its last chunk went out).
    let (a, b) = blocking(move || {
        b.cli(&["key", "generate"]);
        b.cli(&["publish", &pack("rust-cli-subcommand")]);
        wait_until("the pack published on b to reach node a", || {
            a.cli(&["search", "subcommand"])["results"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        });
        let target = a.data.with_extension("installed");
        a.cli(&[
            "install",
            "rust-cli-subcommand",
            "--to",
            target.to_str().unwrap(),
        ]);
        (a, b)
    })
    .await;

    // The network page: node a connected directly, DHT size, traffic in human units.
    browser
        .find(Locator::Css("header nav a[data-page=network]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let a_id = a.addr.rsplit('/').next().unwrap().to_string();
    wait_text(&browser, "#peers", "node a among the peers", |t| {
        t.contains(&a_id[..16]) && t.contains("direct")
    })
    .await;
    wait_text(&browser, "#dht-size", "the DHT size", |t| {
        t.ends_with("peer") || t.ends_with("peers")
    })
    .await;
    wait_text(&browser, "#traffic", "the traffic figures", |t| {
        t.contains("iB in") && t.contains("out")
    })
    .await;
    wait_text(&browser, "#swarms", "the swarm b seeded to a", |t| {
        t.contains("seeding") && t.contains("in all") && !t.contains("No swarm")
    })
    .await;
    screenshot(&browser, "network").await;

    // A record published on node a appears on b's page, live: the page is not reloaded
    // (a marker set in this page's JavaScript survives).
    browser
        .execute("window.__sameLoad = 'yes'; return null;", vec![])
        .await
        .unwrap();
    let a = blocking(move || {
        a.cli(&["publish", &pack("python-fastapi-service")]);
        a
    })
    .await;
    wait_text(&browser, "#feed", "the record published on node a", |t| {
        t.contains("python-fastapi-service") && t.contains("published")
    })
    .await;
    let marker = browser
        .execute("return window.__sameLoad || null;", vec![])
        .await
        .unwrap();
    assert_eq!(marker, json!("yes"), "the page was reloaded");
    screenshot(&browser, "feed").await;

    browser.close().await.unwrap();
    drop(driver);
    blocking(move || {
        b.stop();
        a.stop();
    })
    .await;
}
