//! Hand-built hostile archives (zstd-compressed tars) that unpacking must refuse: path
//! escapes, links, devices, name collisions, bombs and corrupt streams. Headers are
//! written byte by byte where the `tar` builder would refuse the name.
//!
//! A test fixture: compiled only for tests and with the `test-support` feature (the
//! integration tests use it through the crate's dev-dependency on itself).

use tar::{EntryType, Header};

/// Absolute directory some corpus entries aim at; tests check it never appears.
pub const CORPUS_ESCAPE_DIR: &str = "/tmp/ggen-p2p-corpus-escape";

/// A GNU header whose name and link name are copied in raw, bypassing every check.
fn raw(name: &[u8], kind: EntryType, size: u64, link: &[u8]) -> Header {
    let mut header = Header::new_gnu();
    {
        let old = header.as_old_mut();
        let n = name.len().min(old.name.len());
        old.name[..n].copy_from_slice(&name[..n]);
        let l = link.len().min(old.linkname.len());
        old.linkname[..l].copy_from_slice(&link[..l]);
    }
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header.set_entry_type(kind);
    header.set_cksum();
    header
}

fn file(name: &[u8], data: &[u8]) -> (Header, Vec<u8>) {
    (
        raw(name, EntryType::Regular, data.len() as u64, b""),
        data.to_vec(),
    )
}

fn special(name: &[u8], kind: EntryType, link: &[u8]) -> (Header, Vec<u8>) {
    (raw(name, kind, 0, link), Vec::new())
}

fn tar_bytes(entries: Vec<(Header, Vec<u8>)>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (header, data) in entries {
        builder
            .append(&header, &data[..])
            .expect("writing to a Vec cannot fail");
    }
    builder.into_inner().expect("writing to a Vec cannot fail")
}

fn compress(tar: &[u8]) -> Vec<u8> {
    zstd::encode_all(tar, 1).expect("compressing in memory cannot fail")
}

fn archive(entries: Vec<(Header, Vec<u8>)>) -> Vec<u8> {
    compress(&tar_bytes(entries))
}

/// A PAX extended-header record: "<len> key=value\n" where len counts itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body_len = 1 + key.len() + 1 + value.len() + 1;
    let mut len = body_len + 1;
    while len.to_string().len() + body_len != len {
        len = len.to_string().len() + body_len;
    }
    let mut out = format!("{len} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

/// Every hostile archive, named by what it tries.
#[doc(hidden)]
pub fn malicious_corpus() -> Vec<(&'static str, Vec<u8>)> {
    let escape_abs = format!("{CORPUS_ESCAPE_DIR}/absolute.txt");
    let pax = pax_record("path", b"../escaped-pax.txt");
    let mut long_name = b"../../escaped-long.txt".to_vec();
    long_name.push(0);
    let valid = archive(vec![
        file(b"package.toml", b"[package]\n"),
        file(b"templates/a.txt", &[b'a'; 4096]),
    ]);
    let mut truncated = valid.clone();
    truncated.truncate(valid.len() / 2);
    let mut with_trailer = tar_bytes(vec![file(b"package.toml", b"[package]\n")]);
    with_trailer.extend_from_slice(b"hidden payload after the end marker");
    let mut bomb = tar_bytes(vec![(
        raw(b"bomb.bin", EntryType::Regular, 64 << 30, b""),
        Vec::new(),
    )]);
    bomb.truncate(512);
    bomb.resize(512 + (1 << 20), 0);
    let many: Vec<(Header, Vec<u8>)> = (0..=super::UnpackLimits::default().max_entries)
        .map(|i| file(format!("f/{i}").as_bytes(), b""))
        .collect();

    vec![
        (
            "absolute-path",
            archive(vec![file(escape_abs.as_bytes(), b"owned")]),
        ),
        ("dotdot", archive(vec![file(b"../escaped.txt", b"owned")])),
        (
            "nested-dotdot",
            archive(vec![file(b"a/b/../../../escaped.txt", b"owned")]),
        ),
        (
            "backslash-dotdot",
            archive(vec![file(b"..\\escaped.txt", b"owned")]),
        ),
        (
            "drive-letter",
            archive(vec![file(b"c:/escaped.txt", b"owned")]),
        ),
        ("empty-name", archive(vec![file(b"", b"owned")])),
        (
            "non-utf8-name",
            archive(vec![file(b"bad\xff.txt", b"owned")]),
        ),
        (
            "symlink-absolute",
            archive(vec![
                special(b"link", EntryType::Symlink, CORPUS_ESCAPE_DIR.as_bytes()),
                file(b"link/owned.txt", b"owned"),
            ]),
        ),
        (
            "symlink-relative",
            archive(vec![
                special(b"up", EntryType::Symlink, b"../.."),
                file(b"up/owned.txt", b"owned"),
            ]),
        ),
        (
            "hardlink",
            archive(vec![special(b"passwd", EntryType::Link, b"/etc/passwd")]),
        ),
        (
            "char-device",
            archive(vec![special(b"null", EntryType::Char, b"")]),
        ),
        (
            "block-device",
            archive(vec![special(b"sda", EntryType::Block, b"")]),
        ),
        (
            "fifo",
            archive(vec![special(b"pipe", EntryType::Fifo, b"")]),
        ),
        (
            "gnu-longname-dotdot",
            archive(vec![
                (
                    raw(
                        b"././@LongLink",
                        EntryType::GNULongName,
                        long_name.len() as u64,
                        b"",
                    ),
                    long_name,
                ),
                file(b"innocent.txt", b"owned"),
            ]),
        ),
        (
            "pax-path-dotdot",
            archive(vec![
                (raw(b"pax", EntryType::XHeader, pax.len() as u64, b""), pax),
                file(b"innocent.txt", b"owned"),
            ]),
        ),
        (
            "pax-global-header",
            archive(vec![
                (raw(b"global", EntryType::XGlobalHeader, 0, b""), Vec::new()),
                file(b"a.txt", b"a"),
            ]),
        ),
        (
            "case-collision",
            archive(vec![file(b"README.md", b"one"), file(b"readme.md", b"two")]),
        ),
        (
            "file-then-dir",
            archive(vec![file(b"a", b"file"), file(b"a/b.txt", b"under a file")]),
        ),
        (
            "duplicate-file",
            archive(vec![file(b"a.txt", b"one"), file(b"a.txt", b"two")]),
        ),
        ("bomb-header-64gib", compress(&bomb)),
        ("too-many-entries", archive(many)),
        ("truncated", truncated),
        ("data-after-end", compress(&with_trailer)),
        ("not-zstd", tar_bytes(vec![file(b"a.txt", b"plain tar")])),
    ]
}
