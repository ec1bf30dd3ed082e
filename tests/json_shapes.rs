//! Pins the `--json` shape of every command (which is also the HTTP API's body): key
//! names, their order and their JSON types, compared with `tests/json-shapes.json`.
//! Internal types may be renamed or restructured freely; this file fails if that changes
//! what `format_version: 1` promises. Runs the real binary: offline commands, then two
//! real daemons on 127.0.0.1 for the online shapes (receipt, net status, peers).
//!
//! After an intended, additive change: `GGEN_P2P_BLESS=1 cargo test --test json_shapes`
//! rewrites the file; review the diff (a field may be added, never renamed or retyped).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

mod support;
use support::process::{json as run, Daemon};
use support::{pack, wait_until};

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/json-shapes.json")
}

/// The shape of a value: objects keep their keys in order, arrays the shape of their
/// first element, leaves become their JSON type name.
fn shape(value: &Value) -> Value {
    match value {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(items) => Value::Array(items.first().map(shape).into_iter().collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
    }
}

/// Does `actual` (a shape) fit `pinned`? A pinned leaf may list alternatives ("number|null")
/// for fields that are legitimately absent in some runs; key order must match exactly.
fn check(path: &str, pinned: &Value, actual: &Value, problems: &mut Vec<String>) {
    match (pinned, actual) {
        (Value::String(want), Value::String(got)) => {
            if !want.split('|').any(|w| w == got) {
                problems.push(format!("{path}: pinned {want}, got {got}"));
            }
        }
        (Value::String(want), got) if want.split('|').any(|w| w == "null") && got.is_object() => {
            problems.push(format!("{path}: pinned {want}, got an object"));
        }
        (Value::Array(want), Value::Array(got)) => match (want.first(), got.first()) {
            (Some(w), Some(g)) => check(&format!("{path}[]"), w, g, problems),
            (None, None) => {}
            (Some(_), None) => problems.push(format!("{path}: pinned non-empty, got empty")),
            (None, Some(_)) => problems.push(format!("{path}: pinned empty, got elements")),
        },
        (Value::Object(want), Value::Object(got)) => {
            let want_keys: Vec<&String> = want.keys().collect();
            let got_keys: Vec<&String> = got.keys().collect();
            if want_keys != got_keys {
                problems.push(format!("{path}: keys {want_keys:?}, got {got_keys:?}"));
            }
            for (key, w) in want {
                if let Some(g) = got.get(key) {
                    check(&format!("{path}.{key}"), w, g, problems);
                }
            }
        }
        (Value::String(want), got) if want.split('|').any(|w| w == "object") && got.is_object() => {
        }
        (want, got) => problems.push(format!("{path}: pinned {want}, got {got}")),
    }
}

#[test]
fn every_json_output_keeps_its_pinned_shape() {
    let root = tempfile::tempdir().unwrap();
    let mut shapes = Map::new();
    let mut put = |name: &str, value: &Value| {
        shapes.insert(name.to_string(), shape(value));
    };

    // Offline: the data directory directly, no daemon.
    let offline = root.path().join("offline");
    put("key generate", &run(&offline, &["key", "generate"]));
    put("key show", &run(&offline, &["key", "show"]));
    put(
        "publish (offline)",
        &run(&offline, &["publish", &pack("rust-axum-service")]),
    );
    // Its dependency, which install resolves and installs with it.
    run(&offline, &["publish", &pack("rust-tracing-setup")]);
    put("search", &run(&offline, &["search", "axum"]));
    put("info", &run(&offline, &["info", "rust-axum-service"]));
    let target = root.path().join("installed-offline");
    put(
        "install (offline)",
        &run(
            &offline,
            &[
                "install",
                "rust-axum-service",
                "--to",
                target.to_str().unwrap(),
            ],
        ),
    );
    put("list", &run(&offline, &["list"]));
    put("outdated", &run(&offline, &["outdated"]));
    put("update", &run(&offline, &["update"]));
    let new_pack = root.path().join("new-pack");
    put(
        "init",
        &run(&offline, &["init", new_pack.to_str().unwrap(), "--yes"]),
    );
    put("verify", &run(&offline, &["verify"]));
    put("status (offline)", &run(&offline, &["status"]));
    put(
        "yank (offline)",
        &run(&offline, &["yank", "rust-axum-service@1.2.0"]),
    );
    let me = run(&offline, &["key", "show"])["publisher"]
        .as_str()
        .unwrap()
        .to_string();
    let pin = ["--name", "rust-axum-service"];
    put(
        "trust add",
        &run(&offline, &[&["trust", "add", &me][..], &pin].concat()),
    );
    put("trust list", &run(&offline, &["trust", "list"]));
    put(
        "trust remove",
        &run(&offline, &[&["trust", "remove", &me][..], &pin].concat()),
    );
    put("key rotate", &run(&offline, &["key", "rotate"]));
    put(
        "uninstall",
        &run(&offline, &["uninstall", "rust-axum-service"]),
    );

    // Online: two daemons, b joined to a; a also serves an HTTP mirror.
    let a_dir = root.path().join("a");
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::write(
        a_dir.join("config.toml"),
        "mirror_listen = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let a = Daemon::start_json(a_dir, None);
    let b = Daemon::start_json(root.path().join("b"), Some(&a.addr));
    // b's: `mirror` is absent when no mirror is served.
    put("start", b.start.as_ref().unwrap());
    a.cli(&["key", "generate"]);
    put(
        "publish (online)",
        &a.cli(&["publish", &pack("rust-tracing-setup")]),
    );
    wait_until("b to learn the record", || {
        b.cli(&["search", "tracing"])["results"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    });
    put(
        "search --network",
        &b.cli(&["search", "tracing", "--network"]),
    );
    let target = root.path().join("installed-online");
    put(
        "install (online)",
        &b.cli(&[
            "install",
            "rust-tracing-setup",
            "--to",
            target.to_str().unwrap(),
        ]),
    );
    put("status (online)", &b.cli(&["status"]));
    put("peers", &b.cli(&["peers"]));
    put("peers add", &b.cli(&["peers", "add", &a.addr]));
    let stranger = libp2p::PeerId::random().to_string();
    put("peers block", &b.cli(&["peers", "block", &stranger]));
    put("peers unblock", &b.cli(&["peers", "unblock", &stranger]));
    let mirror = a.start.as_ref().unwrap()["mirror"].as_str().unwrap();
    put(
        "mirror sync",
        &run(&root.path().join("synced"), &["mirror", "sync", mirror]),
    );
    put(
        "yank (online)",
        &a.cli(&["yank", "rust-tracing-setup@0.3.2"]),
    );
    drop(b);
    drop(a);

    let actual = Value::Object(shapes);
    if std::env::var_os("GGEN_P2P_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&actual).unwrap() + "\n";
        std::fs::write(golden_path(), text).unwrap();
        return;
    }
    let pinned: Value = serde_json::from_str(
        &std::fs::read_to_string(golden_path()).expect("tests/json-shapes.json is committed"),
    )
    .unwrap();
    let mut problems = Vec::new();
    check("$", &pinned, &actual, &mut problems);
    assert!(
        problems.is_empty(),
        "JSON output no longer matches tests/json-shapes.json:\n{}",
        problems.join("\n")
    );
}
