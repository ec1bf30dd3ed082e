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

/// The bomb: a genuinely signed archive of a few dozen KiB that inflates to 1 GiB. Install stops at
/// the cap derived from the record's archive size (64 MiB here, the floor), leaves
/// nothing at the target, and records no install; a genuine pack still installs and
/// reports its unpacked size.
#[tokio::test]
async fn a_signed_bomb_is_refused_at_install_and_leaves_nothing() {
    use std::io::{Read, Write};

    use ggen_p2p::package::{Record, RecordBody, VersionRecord};
    use ggen_p2p::registry::{InstallRequest, P2PRegistryBuilder, PackageSpec, Registry};

    const INFLATED: u64 = 1 << 30;
    const PART: u64 = 32 << 20;
    let root = tempfile::tempdir().unwrap();
    let registry = P2PRegistryBuilder::new()
        .with_data_dir(root.path().join("data"))
        .build()
        .unwrap();
    let key = ggen_p2p::PublisherKey::generate();

    // 1 GiB of zeros in tar entries, zstd-compressed as publish would.
    let mut writer = registry.store().blob_writer().unwrap();
    {
        let mut encoder = zstd::Encoder::new(&mut writer, 3).unwrap();
        encoder
            .set_parameter(zstd::zstd_safe::CParameter::WindowLog(
                ggen_p2p::package::archive::ZSTD_WINDOW_LOG,
            ))
            .unwrap();
        let mut tar = tar::Builder::new(encoder);
        // Files each under the per-file cap: only the total cap can stop them.
        for index in 0..INFLATED / PART {
            let mut header = tar::Header::new_gnu();
            header.set_size(PART);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(
                &mut header,
                format!("zeros-{index}.bin"),
                std::io::repeat(0).take(PART),
            )
            .unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
    }
    writer.flush().unwrap();
    let info = writer.commit().unwrap().info;
    assert!(
        info.size < 64 * 1024,
        "the bomb is small: {} bytes",
        info.size
    );

    let sign = |name: &str, archive, unpacked_size| {
        let body = VersionRecord {
            description: "bomb".into(),
            unpacked_size,
            ..VersionRecord::fixture(&key, name, "1.0.0", archive)
        };
        Record::sign(RecordBody::Version(body), &key).unwrap()
    };
    // Declaring the true inflated size does not raise the cap.
    registry
        .store()
        .ingest(&sign("bomb", info, Some(INFLATED)))
        .unwrap();

    let target = root.path().join("installs/bomb");
    let refused = registry
        .install(
            InstallRequest::new(PackageSpec::new("bomb", "")).with_target(&target),
            None,
        )
        .await
        .expect_err("the bomb was installed");
    let message = refused.to_string();
    assert!(
        message.contains("unpacked size") && message.contains(&(64u64 << 20).to_string()),
        "{message}"
    );
    assert!(!target.exists(), "target left behind");
    assert_eq!(tree(&root.path().join("installs")), Vec::<String>::new());
    assert!(registry.store().installs().unwrap().is_empty());

    // A genuine pack installs and reports what it unpacked.
    let writer = registry.store().blob_writer().unwrap();
    let pack = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/packs/rust-axum-service");
    let (writer, unpacked) = ggen_p2p::package::archive::pack_dir_counted(&pack, writer).unwrap();
    let info = writer.commit().unwrap().info;
    registry
        .store()
        .ingest(&sign("genuine", info, Some(unpacked)))
        .unwrap();
    let target = root.path().join("installs/genuine");
    let report = registry
        .install(
            InstallRequest::new(PackageSpec::new("genuine", "")).with_target(&target),
            None,
        )
        .await
        .unwrap();
    // The pack's own files: the lockfile install writes beside them is not one.
    let on_disk: u64 = tree(&target)
        .iter()
        .filter(|p| p.as_str() != "ggen-p2p.lock")
        .map(|p| target.join(p))
        .filter(|p| p.is_file())
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert!(report.unpacked_size > 0);
    assert_eq!(report.unpacked_size, on_disk);
    assert_eq!(report.unpacked_size, unpacked);
}
