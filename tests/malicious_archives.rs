//! Every archive in the malicious corpus is refused by the public unpacking API, leaves
//! no target and no staging directory, and writes nothing outside the target's parent;
//! a genuine archive unpacked next to the same parent still works afterwards.

use std::fs;
use std::path::Path;

use ggen_p2p::package::archive::{
    list_entries, malicious_corpus, pack_dir, unpack, ArchiveError, UnpackLimits,
    CORPUS_ESCAPE_DIR as ESCAPE_DIR,
};

fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn corpus_is_refused_and_leaves_nothing() {
    let corpus = malicious_corpus();
    assert!(corpus.len() >= 20, "corpus shrank to {}", corpus.len());
    // One shared parent, as an install directory would be.
    let root = tempfile::tempdir().unwrap();
    let installs = root.path().join("installs");
    for (name, bytes) in &corpus {
        let target = installs.join(name);
        let error = unpack(&bytes[..], &target, &UnpackLimits::default())
            .expect_err(&format!("{name}: accepted"));
        let message = error.to_string();
        assert!(
            !message.contains('\n'),
            "{name}: multi-line error {message}"
        );
        assert!(
            matches!(
                error,
                ArchiveError::Refused { .. }
                    | ArchiveError::Limit { .. }
                    | ArchiveError::Corrupt(_)
            ),
            "{name}: unexpected error kind: {message}"
        );
        assert!(!target.exists(), "{name}: target left behind");
        assert_eq!(tree(root.path()), ["installs"], "{name}: wrote something");
        assert!(
            !Path::new(ESCAPE_DIR).exists(),
            "{name}: escaped to {ESCAPE_DIR}"
        );
        assert!(
            list_entries(&bytes[..], &UnpackLimits::default()).is_err(),
            "{name}"
        );
    }

    let pack = tempfile::tempdir().unwrap();
    fs::write(
        pack.path().join("package.toml"),
        "[package]\nname = \"ok\"\nversion = \"1.0.0\"\ndescription = \"fine\"\n",
    )
    .unwrap();
    let bytes = pack_dir(pack.path(), Vec::new()).unwrap();
    unpack(&bytes[..], &installs.join("ok"), &UnpackLimits::default()).unwrap();
    assert_eq!(
        tree(root.path()),
        ["installs", "installs/ok", "installs/ok/package.toml"]
    );
}

#[test]
fn refusals_name_the_entry_and_the_rule() {
    let corpus = malicious_corpus();
    let find = |wanted: &str| {
        corpus
            .iter()
            .find(|(name, _)| *name == wanted)
            .map(|(_, bytes)| bytes.clone())
            .unwrap()
    };
    let cases = [
        ("dotdot", "\"../escaped.txt\": path component \"..\""),
        ("absolute-path", "absolute path"),
        ("symlink-absolute", "symbolic link entries are not allowed"),
        ("hardlink", "hard link entries are not allowed"),
        ("fifo", "fifo entries are not allowed"),
        ("case-collision", "case-insensitive"),
        ("pax-path-dotdot", "../escaped-pax.txt"),
        ("gnu-longname-dotdot", "../../escaped-long.txt"),
        ("bomb-header-64gib", "file size limit"),
        ("too-many-entries", "entry count limit"),
        ("truncated", "corrupt or truncated"),
    ];
    for (name, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let error = unpack(
            &find(name)[..],
            &dir.path().join("t"),
            &UnpackLimits::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains(expected), "{name}: {error}");
    }
}
