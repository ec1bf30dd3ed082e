//! Replays the fuzz seed corpora (`fuzz/corpus/<target>/`) and the generated seeds
//! through the fuzz target bodies on stable, so every input a fuzz run found
//! interesting stays a regression test in CI. `GGEN_P2P_BLESS=1` rewrites the seeds.

use std::path::Path;

use ggen_p2p::fuzzing::{seeds, TARGETS};

fn target(name: &str) -> fn(&[u8]) {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
}

#[test]
fn seeds_are_in_the_repository_and_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let bless = std::env::var_os("GGEN_P2P_BLESS").is_some();
    for (name, file, bytes) in seeds() {
        let path = root.join(name).join(format!("seed-{file}"));
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        } else {
            assert!(
                path.exists(),
                "{} is missing: run GGEN_P2P_BLESS=1 cargo test --test fuzz_corpus",
                path.display()
            );
        }
        target(name)(&bytes);
    }
}

#[test]
fn every_corpus_file_replays_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut replayed = 0;
    for (name, run) in TARGETS {
        let dir = root.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} has no seeds", dir.display());
        for file in files {
            run(&std::fs::read(&file).unwrap());
            replayed += 1;
        }
    }
    assert!(replayed >= 40, "only {replayed} corpus files");
}
