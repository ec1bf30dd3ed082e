//! Packages with dependencies, end to end through the real `ggen-p2p` binary: a
//! two-level tree published on one daemon installs complete on another, its lockfile
//! reproduces it with `--locked`, conflicts and missing packs fail in plain words, and
//! the README walkthrough (`init` → `publish` → `install` → `outdated` → `update` →
//! `uninstall`) works as written.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

mod support;
use support::process::{self, Daemon};
use support::wait_until;

/// Writes a pack directory `root/name-version` with a manifest and one template.
fn pack(root: &Path, name: &str, version: &str, deps: &[(&str, &str)]) -> PathBuf {
    let dir = root.join(format!("{name}-{version}"));
    fs::create_dir_all(dir.join("templates")).unwrap();
    let mut manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"{version}\"\ndescription = \"{name} test pack\"\n\n[dependencies]\n"
    );
    for (dep, req) in deps {
        manifest += &format!("{dep} = \"{req}\"\n");
    }
    fs::write(dir.join("package.toml"), manifest).unwrap();
    fs::write(
        dir.join("templates/main.tmpl"),
        format!("{name} {version}\n"),
    )
    .unwrap();
    dir
}

/// Runs a command that must fail with `code`; returns its stderr.
fn fails(data: &Path, args: &[&str], code: i32) -> String {
    let output: Output = process::run(data, args);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    stderr
}

/// The `--json` answer of a command, or `None` when it fails (not there yet).
fn answer(data: &Path, args: &[&str]) -> Option<Value> {
    let mut all = args.to_vec();
    all.push("--json");
    let output = process::run(data, &all);
    output
        .status
        .success()
        .then(|| serde_json::from_slice(&output.stdout).unwrap())
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_two_level_tree_installs_complete_on_another_node_and_the_lock_reproduces_it() {
    let root = tempfile::tempdir().unwrap();
    let packs = root.path().join("packs");
    let a = Daemon::start(root.path().join("a"), None);
    let b = Daemon::start(root.path().join("b"), Some(&a.addr));
    a.cli(&["key", "generate"]);
    // app -> mid ^1 -> leaf ^0.2 (0.2.1 yanked, 0.3.0 out of range: 0.2.0 is chosen).
    for dir in [
        pack(&packs, "leaf", "0.2.0", &[]),
        pack(&packs, "leaf", "0.2.1", &[]),
        pack(&packs, "leaf", "0.3.0", &[]),
        pack(&packs, "mid", "1.0.0", &[("leaf", "^0.2")]),
        pack(&packs, "app", "1.0.0", &[("mid", "^1")]),
    ] {
        a.cli(&["publish", s(&dir)]);
    }
    a.cli(&["yank", "leaf@0.2.1"]);
    wait_until("every record to reach node b", || {
        let leaf = answer(&b.data, &["info", "leaf"]);
        leaf.is_some_and(|info| {
            info["versions"]
                .as_array()
                .is_some_and(|v| v.len() == 3 && v.iter().any(|v| v["yanked"] == true))
        }) && answer(&b.data, &["info", "app"]).is_some()
            && answer(&b.data, &["info", "mid"]).is_some()
    });

    let target = root.path().join("installed");
    let installed = b.cli(&["install", "app", "--to", s(&target)]);
    assert_eq!(installed["version"], "1.0.0");
    assert!(!installed["fetched_from"].as_array().unwrap().is_empty());
    let deps: Vec<(String, String)> = installed["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_string(),
                d["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        deps,
        [
            ("leaf".into(), "0.2.0".into()),
            ("mid".into(), "1.0.0".into())
        ]
    );
    assert_eq!(
        fs::read_to_string(target.join("templates/main.tmpl")).unwrap(),
        "app 1.0.0\n"
    );
    let mid = target.join(".ggen-p2p/deps/mid");
    let leaf = target.join(".ggen-p2p/deps/leaf");
    assert_eq!(
        fs::read_to_string(mid.join("templates/main.tmpl")).unwrap(),
        "mid 1.0.0\n"
    );
    assert_eq!(
        fs::read_to_string(leaf.join("templates/main.tmpl")).unwrap(),
        "leaf 0.2.0\n"
    );
    let lock_path = target.join("ggen-p2p.lock");
    assert_eq!(installed["lockfile"], s(&lock_path));
    let lock = fs::read_to_string(&lock_path).unwrap();
    let parsed: toml::Value = toml::from_str(&lock).unwrap();
    let locked = parsed["package"].as_array().unwrap();
    let names: Vec<&str> = locked.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["app", "leaf", "mid"], "sorted by name");
    for p in locked {
        assert_eq!(p["blake3"].as_str().unwrap().len(), 64);
        assert_eq!(p["sha256"].as_str().unwrap().len(), 64);
        assert!(p["publisher"].as_str().unwrap().starts_with("gp"));
    }

    // A newer leaf appears; the lock still reproduces the old tree, byte for byte, in a
    // directory holding nothing but the copied lockfile.
    a.cli(&["publish", s(&pack(&packs, "leaf", "0.2.5", &[]))]);
    wait_until("leaf 0.2.5 to reach node b", || {
        answer(&b.data, &["info", "leaf@0.2.5"]).is_some()
    });
    let again = root.path().join("again");
    fs::create_dir_all(&again).unwrap();
    fs::copy(&lock_path, again.join("ggen-p2p.lock")).unwrap();
    let reproduced = b.cli(&["install", "app", "--to", s(&again), "--locked"]);
    assert_eq!(reproduced["dependencies"][0]["version"], "0.2.0");
    assert_eq!(
        fs::read_to_string(again.join("ggen-p2p.lock")).unwrap(),
        lock
    );
    assert!(again
        .join(".ggen-p2p/deps/leaf/templates/main.tmpl")
        .is_file());

    // A lock that pins the yanked 0.2.1 installs it (with a warning).
    let pinned = root.path().join("pinned");
    fs::create_dir_all(&pinned).unwrap();
    let yanked_hash = b.cli(&["info", "leaf@0.2.1"])["package"]["archive"].clone();
    assert_eq!(
        b.cli(&["info", "leaf@0.2.1"])["package"]["yanked"],
        true,
        "info shows a yanked version"
    );
    let edited = edit_leaf(&lock, "0.2.1", &yanked_hash);
    fs::write(pinned.join("ggen-p2p.lock"), &edited).unwrap();
    let output = process::run(
        &b.data,
        &["install", "app", "--to", s(&pinned), "--locked", "--json"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("leaf@0.2.1 is yanked"), "{stderr}");
    assert_eq!(
        fs::read_to_string(pinned.join("ggen-p2p.lock")).unwrap(),
        edited
    );

    // A lock naming a version that cannot be had fails and names the difference.
    let wrong = root.path().join("wrong");
    fs::create_dir_all(&wrong).unwrap();
    fs::write(
        wrong.join("ggen-p2p.lock"),
        lock.replace("\"1.0.0\"", "\"1.0.7\""),
    )
    .unwrap();
    let err = fails(
        &b.data,
        &["install", "app", "--to", s(&wrong), "--locked"],
        1,
    );
    assert!(err.contains("cannot be reproduced"), "{err}");
    assert!(
        err.contains("app would change from 1.0.7 to 1.0.0"),
        "{err}"
    );
    // Without a lockfile at all, --locked refuses.
    let err = fails(
        &b.data,
        &[
            "install",
            "app",
            "--to",
            s(&root.path().join("none")),
            "--locked",
        ],
        1,
    );
    assert!(err.contains("does not exist"), "{err}");

    // `list` notices a changed dependency and a vanished tree.
    fs::write(leaf.join("templates/main.tmpl"), "edited\n").unwrap();
    fs::remove_dir_all(&again).unwrap();
    let list = b.cli(&["list"]);
    let state = |path: &Path| {
        list["installed"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["path"] == s(path))
            .map(|i| i["status"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("{} not listed: {list}", path.display()))
    };
    assert_eq!(state(&target), "ok");
    assert_eq!(state(&mid), "ok");
    assert_eq!(state(&leaf), "changed");
    assert_eq!(state(&again), "missing");
    assert_eq!(state(&again.join(".ggen-p2p/deps/mid")), "missing");

    b.stop();
    a.stop();
}

/// The lock text with leaf's version and archive hashes replaced.
fn edit_leaf(lock: &str, version: &str, archive: &Value) -> String {
    let mut out = Vec::new();
    let mut in_leaf = false;
    for line in lock.lines() {
        if line.starts_with("name = ") {
            in_leaf = line == "name = \"leaf\"";
        }
        let line = match line.split_once(" = ") {
            Some(("version", _)) if in_leaf => format!("version = \"{version}\""),
            Some(("blake3", _)) if in_leaf => format!("blake3 = {}", archive["blake3"]),
            Some(("sha256", _)) if in_leaf => format!("sha256 = {}", archive["sha256"]),
            Some(("size", _)) if in_leaf => format!("size = {}", archive["size"]),
            _ => line.to_string(),
        };
        out.push(line);
    }
    out.join("\n") + "\n"
}

#[test]
fn conflicts_and_missing_packs_fail_in_plain_words() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let packs = root.path().join("packs");
    process::json(&data, &["key", "generate"]);
    for dir in [
        pack(&packs, "shared", "1.0.0", &[]),
        pack(&packs, "shared", "2.0.0", &[]),
        pack(&packs, "left", "1.0.0", &[("shared", "^1")]),
        pack(&packs, "right", "1.0.0", &[("shared", "^2")]),
        pack(&packs, "both", "1.0.0", &[("left", "^1"), ("right", "^1")]),
        pack(&packs, "broken", "1.0.0", &[("does-not-exist", "^1")]),
    ] {
        process::json(&data, &["publish", s(&dir)]);
    }
    let target = root.path().join("both");
    let err = fails(&data, &["install", "both", "--to", s(&target)], 1);
    assert!(
        err.contains("cannot resolve the dependencies of both"),
        "{err}"
    );
    assert!(err.contains("left 1.0.0 requires shared ^1"), "{err}");
    assert!(err.contains("right 1.0.0 requires shared ^2"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    assert!(!target.exists(), "nothing half-installed");

    let err = fails(
        &data,
        &["install", "broken", "--to", s(&root.path().join("broken"))],
        1,
    );
    assert!(
        err.contains("does-not-exist (required by broken 1.0.0)"),
        "{err}"
    );
}

#[test]
fn the_readme_walkthrough_init_publish_install_outdated_update_uninstall() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let cli = |args: &[&str]| process::json(&data, args);
    cli(&["key", "generate"]);

    let lib = root.path().join("my-lib");
    let init = cli(&["init", s(&lib), "--yes"]);
    assert_eq!(init["name"], "my-lib");
    assert!(lib.join("templates/hello.tmpl").is_file());
    cli(&["publish", s(&lib)]);

    let app = root.path().join("my-app");
    cli(&["init", s(&app), "--description", "An app that uses my-lib"]);
    let manifest = fs::read_to_string(app.join("package.toml")).unwrap();
    fs::write(
        app.join("package.toml"),
        manifest.replace("[dependencies]\n", "[dependencies]\nmy-lib = \"^0.1\"\n"),
    )
    .unwrap();
    cli(&["publish", s(&app)]);

    let target = root.path().join("work");
    let installed = cli(&["install", "my-app", "--to", s(&target)]);
    assert_eq!(installed["dependencies"][0]["name"], "my-lib");
    assert_eq!(installed["dependencies"][0]["version"], "0.1.0");

    // A typo in a manifest is refused with the closest valid key.
    let typo = root.path().join("typo");
    cli(&["init", s(&typo), "--yes"]);
    let manifest = fs::read_to_string(typo.join("package.toml")).unwrap();
    fs::write(
        typo.join("package.toml"),
        manifest.replace("[package]\n", "[package]\ncatgory = \"web\"\n"),
    )
    .unwrap();
    let err = fails(&data, &["publish", s(&typo)], 1);
    assert!(err.contains("did you mean `package.category`?"), "{err}");

    // my-lib 0.1.1 is published: outdated sees it, update installs it.
    let manifest = fs::read_to_string(lib.join("package.toml")).unwrap();
    fs::write(
        lib.join("package.toml"),
        manifest.replace("version = \"0.1.0\"", "version = \"0.1.1\""),
    )
    .unwrap();
    cli(&["publish", s(&lib)]);
    let outdated = cli(&["outdated"]);
    let row = outdated["packs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "my-lib")
        .cloned()
        .unwrap();
    assert_eq!(row["installed"], "0.1.0");
    assert_eq!(row["compatible"], "0.1.1");
    assert_eq!(row["latest"], "0.1.1");
    assert_eq!(row["dependency"], true);

    let updated = cli(&["update"]);
    let change = &updated["trees"][0]["changes"][0];
    assert_eq!(change["name"], "my-lib");
    assert_eq!(change["from"], "0.1.0");
    assert_eq!(change["to"], "0.1.1");
    let lock = fs::read_to_string(target.join("ggen-p2p.lock")).unwrap();
    assert!(lock.contains("version = \"0.1.1\""), "{lock}");
    let outdated = cli(&["outdated"]);
    assert!(outdated["packs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["installed"] == p["compatible"]));
    let list = cli(&["list"]);
    assert!(
        list["installed"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["status"] == "ok"),
        "{list}"
    );

    let err = fails(&data, &["uninstall", "my-lib"], 1);
    assert!(err.contains("only as a dependency of the pack in"), "{err}");

    // Installing a yanked version by its exact number warns.
    cli(&["yank", "my-lib@0.1.1"]);
    let output = process::run(
        &data,
        &[
            "install",
            "my-lib@0.1.1",
            "--to",
            s(&root.path().join("old")),
        ],
    );
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("warning: my-lib@0.1.1 is yanked"));
    // outdated says so of the tree that can only keep the yanked version.
    let outdated = cli(&["outdated"]);
    let problems = outdated["problems"].to_string();
    assert!(
        problems.contains("installed my-lib 0.1.1 is yanked and no other version fits"),
        "{outdated}"
    );
    // update keeps that tree as it is and says why, instead of failing.
    let old = root.path().join("old");
    let updated = cli(&["update", "--path", s(&old)]);
    assert_eq!(updated["trees"][0]["changes"], serde_json::json!([]));
    assert!(
        updated["problems"]
            .to_string()
            .contains("installed my-lib 0.1.1 is yanked and no other version fits"),
        "{updated}"
    );

    let removed = cli(&["uninstall", "my-app"]);
    assert_eq!(removed["dependencies"][0], "my-lib@0.1.1");
    assert!(!target.exists());
    let list = cli(&["list"]);
    assert!(list["installed"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["name"] != "my-app"));
    cli(&["uninstall", "my-lib"]);
    assert!(cli(&["list"])["installed"].as_array().unwrap().is_empty());
}
