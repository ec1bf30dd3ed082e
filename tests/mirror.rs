//! The hybrid registry with real processes and real HTTP: a `start --mirror` node serves
//! its store, a node with no peers installs from it and then provides the packs over
//! P2P, `mirror sync` imports a mirror, and tampered mirrors (altered archive bytes,
//! broken signatures, a forged owner) are refused with nothing wrong stored.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

mod support;
use support::process::{self, Daemon};
use support::{pack, wait_until};

const NAME: &str = "rust-axum-service";
const DEPENDENCY: &str = "rust-tracing-setup";

/// Writes `config.toml` into a new data directory.
fn data_dir(root: &Path, name: &str, config: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), config).unwrap();
    dir
}

/// A response as the test needs it.
struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

/// `GET url` with extra headers, on a runtime of its own (the process tests have none).
fn get(url: &str, headers: &[(&str, &str)]) -> Got {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut request = reqwest::Client::new().get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        Got {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.bytes().await.unwrap().to_vec(),
        }
    })
}

fn header<'a>(got: &'a Got, name: &str) -> &'a str {
    got.headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

/// The record bytes of an index body, line by line.
fn records_of(index: &[u8]) -> Vec<Vec<u8>> {
    String::from_utf8(index.to_vec())
        .unwrap()
        .lines()
        .map(|line| {
            let line: Value = serde_json::from_str(line).unwrap();
            base64::engine::general_purpose::STANDARD
                .decode(line["record"].as_str().unwrap())
                .unwrap()
        })
        .collect()
}

fn index_line(kind: &str, bytes: &[u8]) -> String {
    let line = serde_json::json!({
        "kind": kind,
        "id": blake3::hash(bytes).to_hex().to_string(),
        "record": base64::engine::general_purpose::STANDARD.encode(bytes),
    });
    format!("{line}\n")
}

/// A mirror node (`mirror_listen` in its config) with the pack and its dependency
/// published; returns it with its mirror URL and the pack's publish report.
fn mirror_node(root: &Path) -> (Daemon, String, Value) {
    let dir = data_dir(root, "mirror", "mirror_listen = \"127.0.0.1:0\"\n");
    let node = Daemon::start_json(dir, None);
    let url = node.start.as_ref().unwrap()["mirror"]
        .as_str()
        .expect("start --json names the mirror it serves")
        .to_string();
    node.cli(&["key", "generate"]);
    node.cli(&["publish", &pack(DEPENDENCY)]);
    let published = node.cli(&["publish", &pack(NAME)]);
    (node, url, published)
}

/// Files under `blobs/` other than its (possibly empty) `tmp/` directory.
fn stored_blobs(data: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![data.join("blobs")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn a_node_with_no_peers_installs_from_a_mirror_then_provides_the_pack() {
    let root = tempfile::tempdir().unwrap();
    let (mirror, url, published) = mirror_node(root.path());
    let archive = published["archive"]["blake3"].as_str().unwrap().to_string();

    // The layout: names, a sparse index per name with ETag revalidation, archives by
    // hash, immutable.
    let names = get(&format!("{url}/names"), &[]);
    assert_eq!(names.status, 200);
    let listed = String::from_utf8(names.body.clone()).unwrap();
    assert_eq!(listed, format!("{NAME}\n{DEPENDENCY}\n"));
    let index = get(&format!("{url}/index/{NAME}"), &[]);
    assert_eq!(index.status, 200);
    assert_eq!(header(&index, "content-type"), "application/x-ndjson");
    let etag = header(&index, "etag").to_string();
    let records = records_of(&index.body);
    assert_eq!(records.len(), 1, "one version record");
    assert_eq!(
        blake3::hash(&records[0]).to_hex().as_str(),
        published["record_id"].as_str().unwrap(),
        "the signed bytes exactly as published"
    );
    let again = get(&format!("{url}/index/{NAME}"), &[("if-none-match", &etag)]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let bytes = get(&format!("{url}/archives/{archive}"), &[]);
    assert_eq!(bytes.status, 200);
    assert_eq!(
        header(&bytes, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert_eq!(blake3::hash(&bytes.body).to_hex().as_str(), archive);
    assert_eq!(
        bytes.body.len() as u64,
        published["archive"]["size"].as_u64().unwrap()
    );
    assert_eq!(get(&format!("{url}/index/nobody"), &[]).status, 404);
    let zeros = "0".repeat(64);
    assert_eq!(get(&format!("{url}/archives/{zeros}"), &[]).status, 404);
    assert_eq!(get(&format!("{url}/archives/nothex"), &[]).status, 400);

    // A node with the mirror configured and no peers at all.
    let user = Daemon::start_json(
        data_dir(root.path(), "user", &format!("mirrors = [\"{url}\"]\n")),
        None,
    );
    let info = user.cli(&["info", NAME]);
    assert_eq!(info["package"]["name"], NAME, "{info}");
    let target = root.path().join("installed");
    let installed = user.cli(&[
        "install",
        &format!("{NAME}@1.2.0"),
        "--to",
        target.to_str().unwrap(),
    ]);
    assert_eq!(installed["archive"], archive.as_str());
    assert_eq!(installed["fetched_from"][0], format!("mirror {url}"));
    assert!(target.join("package.toml").is_file());
    assert!(target
        .join(".ggen-p2p/deps/rust-tracing-setup/package.toml")
        .is_file());

    // A third node, joined to the user's node only, gets the pack from it over P2P.
    let user_id = user.addr.rsplit('/').next().unwrap().to_string();
    let third = Daemon::start_json(root.path().join("third"), Some(&user.addr));
    wait_until("the records to reach the third node", || {
        let output = process::run(&third.data, &["info", NAME, "--json"]);
        output.status.success()
    });
    let elsewhere = root.path().join("elsewhere");
    let fetched = third.cli(&[
        "install",
        &format!("{NAME}@1.2.0"),
        "--to",
        elsewhere.to_str().unwrap(),
    ]);
    assert_eq!(fetched["archive"], archive.as_str());
    assert_eq!(
        fetched["fetched_from"],
        serde_json::json!([user_id]),
        "{fetched}"
    );
    assert!(elsewhere.join("package.toml").is_file());

    third.stop();
    user.stop();
    mirror.stop();
}

#[test]
fn mirror_sync_imports_every_record_of_a_real_mirror() {
    let root = tempfile::tempdir().unwrap();
    let (mirror, url, _) = mirror_node(root.path());
    // A yank changes its name's index, and so its ETag; other names keep theirs.
    let dep_url = format!("{url}/index/{DEPENDENCY}");
    let before = get(&dep_url, &[]);
    let pack_etag = header(&get(&format!("{url}/index/{NAME}"), &[]), "etag").to_string();
    mirror.cli(&["yank", &format!("{DEPENDENCY}@0.3.2")]);
    let after = get(&dep_url, &[("if-none-match", header(&before, "etag"))]);
    assert_eq!(after.status, 200, "the yank changed the index");
    assert_ne!(header(&after, "etag"), header(&before, "etag"));
    assert_eq!(records_of(&after.body).len(), 2, "version and yank");
    let pack = get(
        &format!("{url}/index/{NAME}"),
        &[("if-none-match", &pack_etag)],
    );
    assert_eq!(pack.status, 304);
    let empty = data_dir(root.path(), "empty", "");
    let first = process::json(&empty, &["mirror", "sync", &url]);
    assert_eq!(first["mirror"], url.as_str());
    assert_eq!(first["names"], 2);
    assert_eq!(first["imported"], 3, "two versions and a yank: {first}");
    assert_eq!(first["already_known"], 0);
    assert_eq!(first["rejected"], serde_json::json!([]));
    let second = process::json(&empty, &["mirror", "sync", &url]);
    assert_eq!(second["imported"], 0);
    assert_eq!(second["already_known"], 3);
    // The records are here now, with no mirror configured: search and info are local.
    let info = process::json(&empty, &["info", &format!("{DEPENDENCY}@0.3.2")]);
    assert_eq!(info["package"]["yanked"], true, "{info}");
    let human = process::run(&empty, &["mirror", "sync", &url]);
    assert!(human.status.success());
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("3 already known"), "{text}");
    // Through a running node's API, the same.
    let node = Daemon::start_json(root.path().join("node"), None);
    let through = node.cli(&["mirror", "sync", &url]);
    assert_eq!(through["imported"], 3, "{through}");
    assert_eq!(node.cli(&["status"])["store"]["records"], 3);
    node.stop();
    mirror.stop();
}

/// A mirror under the attacker's control, in this process: fixed answers per path.
struct FakeMirror {
    url: String,
    _runtime: tokio::runtime::Runtime,
}

fn fake_mirror(routes: Vec<(String, Vec<u8>)>) -> FakeMirror {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mut app = axum::Router::new();
    for (path, body) in routes {
        app = app.route(
            &path,
            axum::routing::get(move || {
                let body = body.clone();
                async move { body }
            }),
        );
    }
    runtime.spawn(async move { axum::serve(listener, app).await });
    FakeMirror {
        url,
        _runtime: runtime,
    }
}

/// The genuine index files and archive of the pack, taken from a real mirror.
struct Genuine {
    pack_index: Vec<u8>,
    dep_index: Vec<u8>,
    archive: String,
    archive_bytes: Vec<u8>,
}

fn genuine(root: &Path) -> Genuine {
    let (mirror, url, published) = mirror_node(root);
    let archive = published["archive"]["blake3"].as_str().unwrap().to_string();
    let genuine = Genuine {
        pack_index: get(&format!("{url}/index/{NAME}"), &[]).body,
        dep_index: get(&format!("{url}/index/{DEPENDENCY}"), &[]).body,
        archive_bytes: get(&format!("{url}/archives/{archive}"), &[]).body,
        archive,
    };
    mirror.stop();
    genuine
}

#[test]
fn a_mirror_serving_altered_archive_bytes_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let genuine = genuine(root.path());
    let mut altered = genuine.archive_bytes.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 0x01;
    let dep_records = records_of(&genuine.dep_index);
    let dep_archive = match ggen_p2p::package::Record::verify(dep_records[0].clone())
        .unwrap()
        .body()
    {
        ggen_p2p::package::RecordBody::Version(v) => v.archive.blake3.to_hex(),
        other => panic!("not a version record: {other:?}"),
    };
    let fake = fake_mirror(vec![
        (format!("/index/{NAME}"), genuine.pack_index.clone()),
        (format!("/index/{DEPENDENCY}"), genuine.dep_index.clone()),
        (format!("/archives/{}", genuine.archive), altered),
        // The dependency's archive is altered too: whichever fails first, nothing stays.
        (
            format!("/archives/{dep_archive}"),
            b"not an archive".to_vec(),
        ),
    ]);
    // A running node with no peers: it finds no provider and falls back to the mirror.
    let user = Daemon::start_json(
        data_dir(
            root.path(),
            "user",
            &format!("mirrors = [\"{}\"]\n", fake.url),
        ),
        None,
    );
    let target = root.path().join("installed");
    let output = process::run(
        &user.data,
        &["install", NAME, "--to", target.to_str().unwrap()],
    );
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains(&format!("mirror {} refused", fake.url))
            && error.contains("does not match its signed record")
            && error.contains("nothing was stored"),
        "{error}"
    );
    assert!(!target.exists(), "nothing is installed");
    assert_eq!(
        stored_blobs(&user.data),
        Vec::<PathBuf>::new(),
        "no archive (and no temp file) stays in the store"
    );
    user.stop();
}

#[test]
fn a_mirror_serving_broken_signatures_or_a_forged_owner_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let genuine = genuine(root.path());
    let record = records_of(&genuine.pack_index).remove(0);
    // One bit of the signature flipped.
    let mut broken = record.clone();
    broken[3] ^= 0x80;
    // A record naming the genuine publisher as its signer, signed by another key.
    let verified = ggen_p2p::package::Record::verify(record.clone()).unwrap();
    let ggen_p2p::package::RecordBody::Version(mut body) = verified.body().clone() else {
        panic!("not a version record");
    };
    let owner = body.publisher.to_string();
    let attacker = ggen_p2p::PublisherKey::generate();
    body.publisher = attacker.id();
    let signed =
        ggen_p2p::package::Record::sign(ggen_p2p::package::RecordBody::Version(body), &attacker)
            .unwrap();
    let forged_text = String::from_utf8_lossy(signed.as_bytes()).into_owned();
    let forged = {
        let bytes = signed.as_bytes();
        let (signature, json) = bytes.split_at(64);
        let json = String::from_utf8(json.to_vec())
            .unwrap()
            .replace(&attacker.id().to_string(), &owner);
        assert!(json.contains(&owner), "{forged_text}");
        [signature, json.as_bytes()].concat()
    };
    let index = index_line("version", &broken) + &index_line("version", &forged);
    let fake = fake_mirror(vec![
        ("/names".to_string(), format!("{NAME}\n").into_bytes()),
        (format!("/index/{NAME}"), index.into_bytes()),
        (
            format!("/archives/{}", genuine.archive),
            genuine.archive_bytes.clone(),
        ),
    ]);

    // Offline (no node running): the mirror is asked, and refused.
    let user = data_dir(
        root.path(),
        "user",
        &format!("mirrors = [\"{}\"]\n", fake.url),
    );
    let target = root.path().join("installed");
    let output = process::run(&user, &["install", NAME, "--to", target.to_str().unwrap()]);
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains(&format!("mirror {} refused: 2 of its records", fake.url))
            && error.contains("record signature does not verify")
            && error.contains("nothing from it was stored"),
        "{error}"
    );
    assert!(!target.exists());
    assert_eq!(stored_blobs(&user), Vec::<PathBuf>::new());

    // `mirror sync` reports both refusals (and fails), and stores nothing.
    let synced = process::run(&user, &["mirror", "sync", &fake.url, "--json"]);
    assert_eq!(synced.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&synced.stdout).unwrap();
    assert_eq!(report["imported"], 0, "{report}");
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{report}");
    for item in rejected {
        assert_eq!(item["name"], NAME);
        assert!(
            item["reason"]
                .as_str()
                .unwrap()
                .contains("signature does not verify"),
            "{item}"
        );
    }
    let status = process::json(&user, &["status"]);
    assert_eq!(status["store"]["records"], 0, "{status}");
}
