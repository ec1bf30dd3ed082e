//! Drives the real `ggen-p2p` binary in temporary data directories, offline: every
//! command, its `--json` shape, and its error paths (exit codes, one-line messages,
//! nothing half-done left behind).

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

mod support;
use support::packs;

struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, args: &[&str]) -> Output {
        support::process::run(&self.data(), args)
    }

    /// Runs a command that must succeed and returns its parsed `--json` output.
    fn json(&self, args: &[&str]) -> Value {
        support::process::json(&self.data(), args)
    }

    /// Runs a command that must fail with `code`; returns its stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert!(!stderr.contains("RUST_BACKTRACE"), "{args:?}: {stderr}");
        stderr
    }

    fn publish_sample(&self, name: &str) -> Value {
        let dir = packs().join(name);
        self.json(&["publish", dir.to_str().unwrap()])
    }
}

#[test]
fn key_generate_refuses_to_overwrite_and_show_prints_the_id() {
    let node = Node::new();
    let created = node.json(&["key", "generate"]);
    let id = created["publisher"].as_str().unwrap().to_string();
    assert!(id.starts_with("gp"), "{id}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(node.data().join("publisher.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let err = node.fails(&["key", "generate"], 1);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(node.json(&["key", "show"])["publisher"], id.as_str());
    let replaced = node.run(&["key", "generate", "--force"]);
    assert!(replaced.status.success());
    let warning = String::from_utf8_lossy(&replaced.stderr);
    assert!(
        warning.contains(&id) && warning.contains("key rotate"),
        "{warning}"
    );
    assert_ne!(node.json(&["key", "show"])["publisher"], id.as_str());
}

#[test]
fn key_rotate_keeps_names_with_the_new_key_and_the_old_key_file() {
    let node = Node::new();
    let old = node.json(&["key", "generate"])["publisher"]
        .as_str()
        .unwrap()
        .to_string();
    node.publish_sample("rust-axum-service");
    let rotated = node.json(&["key", "rotate"]);
    assert_eq!(rotated["old"], old.as_str());
    let new = rotated["new"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(node.json(&["key", "show"])["publisher"], new.as_str());
    let kept = PathBuf::from(rotated["old_key_path"].as_str().unwrap());
    assert!(kept.starts_with(node.data()), "{kept:?}");
    assert!(kept
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("publisher.key.old-"));
    assert!(!node.data().join("publisher.key.new").exists());
    // One claimant (the chain), and the new key may act on the old key's version.
    let info = node.json(&["info", "rust-axum-service"]);
    assert_eq!(info["claims"].as_array().unwrap().len(), 1, "{info}");
    node.json(&["yank", "rust-axum-service@1.2.0"]);
    // The old key file still signs as the old key.
    std::fs::copy(&kept, node.data().join("publisher.key")).unwrap();
    assert_eq!(node.json(&["key", "show"])["publisher"], old.as_str());
}

#[test]
fn publish_search_info_install_list_yank_round_trip() {
    let node = Node::new();
    node.json(&["key", "generate"]);
    let published = node.publish_sample("rust-axum-service");
    assert_eq!(published["name"], "rust-axum-service");
    assert_eq!(published["already_published"], false);
    assert!(
        published["receipt"].is_null(),
        "offline publish has no receipt"
    );
    node.publish_sample("rust-tracing-setup");
    node.publish_sample("python-fastapi-service");

    let again = node.publish_sample("rust-axum-service");
    assert_eq!(again["already_published"], true);

    let found = node.json(&["search", "axum"]);
    let results = found["results"].as_array().unwrap();
    assert_eq!(
        results[0]["package"]["name"], "rust-axum-service",
        "{found}"
    );
    assert_eq!(results[0]["providers"], 1);

    let exact = node.json(&["search", "rust-tracing-setup"]);
    assert_eq!(exact["results"][0]["package"]["name"], "rust-tracing-setup");

    let info = node.json(&["info", "rust-axum-service"]);
    assert_eq!(
        info["package"]["archive"]["blake3"],
        published["archive"]["blake3"]
    );
    assert_eq!(info["local"], true);
    // '-' and '_' name the same pack.
    let underscored = node.json(&["info", "rust_axum_service"]);
    assert_eq!(underscored["package"]["name"], "rust-axum-service");

    let target = node.dir.path().join("installed");
    let installed = node.json(&[
        "install",
        "rust-axum-service",
        "--to",
        target.to_str().unwrap(),
    ]);
    assert_eq!(installed["path"], target.to_str().unwrap());
    assert!(target.join("package.toml").is_file());
    assert!(installed["files"].as_u64().unwrap() >= 2);

    let list = node.json(&["list"]);
    assert_eq!(list["installed"][0]["name"], "rust-axum-service");
    assert_eq!(list["published"].as_array().unwrap().len(), 3);

    let version = published["version"].as_str().unwrap();
    let spec = format!("rust-axum-service@{version}");
    let yanked = node.json(&["yank", &spec]);
    assert_eq!(yanked["name"], "rust-axum-service");
    // Yanked: gone from new resolutions, still installable by exact version.
    let err = node.fails(&["install", "rust-axum-service"], 1);
    assert!(
        err.contains("yanked") || err.contains("no version"),
        "{err}"
    );
    let pinned = node.dir.path().join("pinned");
    node.json(&["install", &spec, "--to", pinned.to_str().unwrap()]);
    assert!(pinned.join("package.toml").is_file());

    let status = node.json(&["status"]);
    assert_eq!(status["online"], false);
    assert!(status["store"]["records"].as_u64().unwrap() >= 4);
}

#[test]
fn trust_add_list_remove_pins_a_key_and_persists_it() {
    let node = Node::new();
    let id = node.json(&["key", "generate"])["publisher"]
        .as_str()
        .unwrap()
        .to_string();
    node.publish_sample("rust-axum-service");
    let empty = node.json(&["trust", "list"]);
    assert_eq!(empty["trusted"], serde_json::json!([]));

    let added = node.json(&["trust", "add", &id, "--name", "rust_axum_service"]);
    assert_eq!(added["changed"], true);
    assert_eq!(added["trusted"][0]["key"], id.as_str());
    assert_eq!(added["trusted"][0]["name"], "rust-axum-service");
    assert_eq!(added["trusted"][0]["source"], "trust");
    let again = node.json(&["trust", "add", &id, "--name", "rust-axum-service"]);
    assert_eq!(again["changed"], false);
    node.json(&["trust", "add", &id]);
    // A later process sees both pins, and `info` marks the claim as pinned.
    let listed = node.json(&["trust", "list"]);
    assert_eq!(listed["trusted"].as_array().unwrap().len(), 2, "{listed}");
    let info = node.json(&["info", "rust-axum-service"]);
    assert_eq!(info["claims"][0]["pinned"], true, "{info}");
    let text = node.run(&["trust", "list"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&id) && text.contains("rust-axum-service"),
        "{text}"
    );

    let removed = node.json(&["trust", "remove", &id, "--name", "rust-axum-service"]);
    assert_eq!(removed["changed"], true);
    let removed = node.json(&["trust", "remove", &id]);
    assert_eq!(removed["changed"], true);
    assert_eq!(removed["trusted"], serde_json::json!([]));
    let info = node.json(&["info", "rust-axum-service"]);
    assert_eq!(info["claims"][0]["pinned"], false, "{info}");

    node.fails(&["trust", "add", "not-a-key"], 2);
    let err = node.fails(&["trust", "add", &id, "--name", "Bad Name"], 1);
    assert!(err.contains("not a package name"), "{err}");
}

#[test]
fn human_output_is_a_table() {
    let node = Node::new();
    node.json(&["key", "generate"]);
    node.publish_sample("github-actions-ci");
    let output = node.run(&["search", "ci"]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("NAME"), "{text}");
    assert!(
        lines.next().unwrap().starts_with("github-actions-ci"),
        "{text}"
    );
}

#[test]
fn invalid_manifest_names_file_field_and_rule() {
    let node = Node::new();
    node.json(&["key", "generate"]);
    let pack = node.dir.path().join("bad-pack");
    std::fs::create_dir_all(&pack).unwrap();
    std::fs::write(
        pack.join("package.toml"),
        "[package]\nname = \"Bad Name\"\nversion = \"1.0.0\"\ndescription = \"x\"\n",
    )
    .unwrap();
    let err = node.fails(&["publish", pack.to_str().unwrap()], 1);
    assert!(
        err.contains("package.toml") && err.contains("name"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    std::fs::write(
        pack.join("package.toml"),
        "[package]\nname = \"ok\"\nversion = \"one\"\ndescription = \"x\"\n",
    )
    .unwrap();
    let err = node.fails(&["publish", pack.to_str().unwrap()], 1);
    assert!(err.contains("version"), "{err}");

    // Build metadata would let two archives share one version: refused, naming the
    // field and the rule, and nothing is published.
    std::fs::write(
        pack.join("package.toml"),
        "[package]\nname = \"ok\"\nversion = \"1.0.7+build\"\ndescription = \"x\"\n",
    )
    .unwrap();
    let err = node.fails(&["publish", pack.to_str().unwrap()], 1);
    assert!(
        err.contains("package.toml")
            && err.contains("version")
            && err.contains("build metadata")
            && err.contains("major.minor.patch[-pre]"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(node.json(&["list"])["published"], serde_json::json!([]));

    let empty = node.dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = node.fails(&["publish", empty.to_str().unwrap()], 1);
    assert!(err.contains("package.toml"), "{err}");
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    let node = Node::new();
    node.fails(&["search", "--limit", "many"], 2);
    node.fails(&["no-such-command"], 2);
    let err = node.fails(&["publish", "examples/packs/rust-axum-service"], 1);
    assert!(err.contains("key generate"), "publish without a key: {err}");
    let err = node.fails(&["info", "nothing-here"], 1);
    assert!(err.contains("nothing-here"), "{err}");
    // A usage error since issue 10: it exits 2 like clap's own.
    let err = node.fails(&["yank", "no-version"], 2);
    assert!(err.contains("@"), "{err}");
    node.fails(&["search"], 2);
    let err = node.fails(&["peers"], 1);
    assert!(err.contains("ggen-p2p start"), "{err}");
}

#[test]
fn tampered_archive_is_refused_and_nothing_is_installed() {
    let node = Node::new();
    node.json(&["key", "generate"]);
    let published = node.publish_sample("rust-cli-subcommand");
    let hash = published["archive"]["blake3"].as_str().unwrap();
    let blob = node.data().join("blobs").join(&hash[..2]).join(hash);
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();

    let target = node.dir.path().join("out");
    let err = node.fails(
        &[
            "install",
            "rust-cli-subcommand",
            "--to",
            target.to_str().unwrap(),
        ],
        1,
    );
    assert!(err.contains(hash) || err.contains("hash"), "{err}");
    assert!(
        !target.exists(),
        "nothing may be installed from a tampered archive"
    );
}

#[test]
fn tampered_record_fails_verification() {
    let node = Node::new();
    node.json(&["key", "generate"]);
    let published = node.publish_sample("rust-tracing-setup");
    let id = published["record_id"].as_str().unwrap();

    // Change one byte of the stored record's body (its description) behind the
    // store's back, as a damaged disk or a meddling process would.
    let db = rusqlite::Connection::open(node.data().join("index.sqlite")).unwrap();
    let table = ggen_p2p::store::RECORDS_TABLE;
    let sql = format!("SELECT bytes FROM {table} WHERE id = ?1");
    let mut bytes: Vec<u8> = db
        .query_row(&sql, [hex_blob(id)], |row| row.get(0))
        .unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x01;
    let sql = format!("UPDATE {table} SET bytes = ?1 WHERE id = ?2");
    db.execute(&sql, rusqlite::params![bytes, hex_blob(id)])
        .unwrap();
    drop(db);

    let report = node.run(&["verify", "--json"]);
    assert_eq!(report.status.code(), Some(1));
    let value: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(value["bad_records"].as_array().unwrap().len(), 1, "{value}");

    let target = node.dir.path().join("out");
    node.fails(
        &[
            "install",
            "rust-tracing-setup",
            "--to",
            target.to_str().unwrap(),
        ],
        1,
    );
    assert!(!target.exists());
}

fn hex_blob(id: &str) -> Vec<u8> {
    (0..id.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&id[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn malicious_archives_are_refused_without_a_trace() {
    use ggen_p2p::package::{
        archive::malicious_corpus, Manifest, PublisherKey, Record, RecordBody, VersionRecord,
    };
    let node = Node::new();
    node.json(&["key", "generate"]);
    let key = PublisherKey::load(&node.data().join("publisher.key")).unwrap();
    let store = ggen_p2p::store::Store::open(&node.data()).unwrap();
    let outside = node.dir.path().join("outside");
    for (index, (what, bytes)) in malicious_corpus().into_iter().enumerate() {
        let name = format!("evil-{index}");
        let mut writer = store.blob_writer().unwrap();
        std::io::Write::write_all(&mut writer, &bytes).unwrap();
        let digest = writer.commit().unwrap();
        let manifest = Manifest {
            name: name.clone(),
            version: semver::Version::new(1, 0, 0),
            description: format!("malicious archive: {what}"),
            category: None,
            keywords: vec![],
            authors: vec![],
            license: None,
            repository: None,
            dependencies: Default::default(),
        };
        let body = VersionRecord::new(key.id(), &manifest, digest.info, 1);
        let record = Record::sign(RecordBody::Version(body), &key).unwrap();
        store.ingest(&record).unwrap();

        let target = node.dir.path().join("targets").join(&name);
        let err = node.fails(&["install", &name, "--to", target.to_str().unwrap()], 1);
        assert!(
            !target.exists(),
            "{what}: partial install left at target ({err})"
        );
        assert!(!outside.exists(), "{what}: wrote outside the target");
        let leftovers: Vec<_> = std::fs::read_dir(target.parent().unwrap())
            .map(|dir| dir.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(
            leftovers.is_empty(),
            "{what}: temporary files left: {leftovers:?}"
        );
    }
}

#[test]
fn start_refuses_a_port_another_process_listens_on() {
    let node = Node::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let err = node.fails(&["start", "--listen", &listen, "--no-mdns"], 1);
    assert!(err.contains("already in use"), "{err}");
    assert!(!node.data().join("api.json").exists());
}
