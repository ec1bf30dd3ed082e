//! Fuzz target bodies: what the parsers facing untrusted bytes must survive (record
//! decode/verify, the wire messages and DHT records, manifests, archive unpacking).
//! `fuzz/` (cargo-fuzz, nightly) calls these on generated input and
//! `tests/fuzz_corpus.rs` replays the seed corpora in `fuzz/corpus/` through the same
//! functions on stable, so CI checks every seed. Each function may return an error for
//! bad input; it must never panic, hang or allocate without bound.

use std::path::Path;

use futures::io::Cursor;
use libp2p::kad::RecordKey;
use libp2p::request_response::{self, Codec as _};
use libp2p::StreamProtocol;

use crate::net::protocol::{
    check_dht_record, parse_record, Request, Response, MAX_REQUEST_SIZE, MAX_RESPONSE_SIZE,
    RR_PROTOCOL,
};
use crate::package::archive::{list_entries, unpack, UnpackLimits};
use crate::package::manifest::{Manifest, ManifestFormat};
use crate::package::record::{Record, RecordBody};

/// One fuzz target body: bytes in, a panic on a broken invariant.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/`.
pub const TARGETS: [(&str, Target); 4] = [
    ("record", record),
    ("wire", wire),
    ("manifest", manifest),
    ("unpack", archive),
];

/// Record bytes from a peer: verification, and the body parser on its own (with a zero
/// signature, so field validation runs). A record that verifies keeps its exact bytes.
pub fn record(data: &[u8]) {
    if let Ok(record) = Record::verify(data.to_vec()) {
        assert_eq!(record.as_bytes(), data, "verified records keep their bytes");
        let again = Record::verify(record.as_bytes().to_vec()).expect("verifies twice");
        assert_eq!(again.body(), record.body());
    }
    let _ = parse_record(data.to_vec());
    let _ = Record::parse_unverified(data);
    if let Ok(body) = serde_json::from_slice::<RecordBody>(data) {
        let json = serde_json::to_vec(&body).expect("a parsed body serializes");
        let back: RecordBody = serde_json::from_slice(&json).expect("and parses back");
        assert_eq!(back, body, "record bodies round-trip through JSON");
        let mut unsigned = vec![0u8; 64];
        unsigned.extend_from_slice(data);
        assert!(
            Record::verify(unsigned).is_err(),
            "a zero signature never verifies"
        );
    }
}

/// Bytes on `/ggen/rr/1.0.0` (read as a request and as a response through the codec
/// and limits the behaviour uses) and a DHT record offered under a key: the first byte
/// chooses the key kind, the rest is the value.
pub fn wire(data: &[u8]) {
    let mut codec = request_response::cbor::codec::Codec::<Request, Response>::default()
        .set_request_size_maximum(MAX_REQUEST_SIZE)
        .set_response_size_maximum(MAX_RESPONSE_SIZE);
    let protocol = StreamProtocol::new(RR_PROTOCOL);
    futures::executor::block_on(async {
        let _ = codec
            .read_request(&protocol, &mut Cursor::new(data.to_vec()))
            .await;
        let _ = codec
            .read_response(&protocol, &mut Cursor::new(data.to_vec()))
            .await;
    });
    if let Some((&kind, value)) = data.split_first() {
        let key = match kind % 3 {
            0 => RecordKey::new(&value.get(..32).unwrap_or(value)),
            1 => RecordKey::new(&format!("/ggen/n/{}", String::from_utf8_lossy(value))),
            _ => RecordKey::new(&"/ggen/v/x/1.0.0/gp"),
        };
        if let Ok(record) = check_dht_record(&key, value.to_vec()) {
            assert_eq!(record.as_bytes(), value);
        }
    }
}

/// A manifest file's text, read as `package.toml` and as `gpack.toml`.
pub fn manifest(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for format in [ManifestFormat::Package, ManifestFormat::Gpack] {
        if let Ok(parsed) = Manifest::parse_as(&text, Path::new("package.toml"), format) {
            let _ = parsed;
        }
    }
}

/// An archive from a peer: listed, and when the listing accepts it, unpacked into a fresh
/// directory under the same small caps (both go through one entry walk; listing first
/// keeps the fuzzer fast, since unpacking fsyncs). An archive the listing accepted must
/// unpack, and nothing is ever left beside the target.
pub fn archive(data: &[u8]) {
    let limits = UnpackLimits {
        max_entries: 256,
        max_file_size: 1 << 20,
        max_total_size: 4 << 20,
        exact_total: None,
    };
    if list_entries(data, &limits).is_err() {
        return;
    }
    let scratch = tempfile::tempdir().expect("a temp dir for unpacking");
    let target = scratch.path().join("out");
    let unpacked = unpack(data, &target, &limits);
    assert_eq!(
        unpacked.is_ok(),
        target.exists(),
        "all or nothing: {unpacked:?}"
    );
    let outside: Vec<_> = std::fs::read_dir(scratch.path())
        .expect("scratch dir readable")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|name| name != "out")
        .collect();
    assert!(
        outside.is_empty(),
        "unpacking left {outside:?} beside the target"
    );
}

/// The seed inputs of every target, made from real values (signed records, encoded
/// messages, the example manifests, packed and malicious archives): `(target, name,
/// bytes)`. `tests/fuzz_corpus.rs` writes them to `fuzz/corpus/` when blessing and
/// replays them always.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    use crate::package::archive::{malicious_corpus, pack_dir};
    use crate::package::record::{KeyRotation, YankRecord};
    use crate::package::{ArchiveInfo, Blake3Hash, PublisherKey, VersionRecord};
    use crate::store::Query;
    use serde_bytes::ByteBuf;

    let mut out = Vec::new();
    let key = PublisherKey::from_secret([7; 32]);
    let next = PublisherKey::from_secret([8; 32]);
    let version = VersionRecord::fixture(&key, "fuzz-seed", "1.2.3", ArchiveInfo::fixture(b"s"));
    let records = [
        ("version", RecordBody::Version(version.clone())),
        (
            "yank",
            RecordBody::Yank(YankRecord {
                publisher: key.id(),
                name: "fuzz-seed".into(),
                version: version.version.clone(),
                yanked_at: 1_700_000_000_000,
            }),
        ),
        (
            "rotation",
            RecordBody::Rotation(KeyRotation::new(key.id(), &next, 1_700_000_000_000)),
        ),
    ];
    let mut signed = Vec::new();
    for (name, body) in records {
        let record = Record::sign(body.clone(), &key).expect("seed records sign");
        let bytes = record.into_bytes();
        out.push(("record", format!("{name}-signed"), bytes.clone()));
        out.push(("record", format!("{name}-body"), bytes[64..].to_vec()));
        let mut flipped = bytes.clone();
        flipped[70] ^= 1;
        out.push(("record", format!("{name}-flipped"), flipped));
        out.push((
            "record",
            format!("{name}-truncated"),
            bytes[..bytes.len() / 2].to_vec(),
        ));
        signed.push(bytes);
    }

    let mut codec = request_response::cbor::codec::Codec::<Request, Response>::default()
        .set_request_size_maximum(MAX_REQUEST_SIZE)
        .set_response_size_maximum(MAX_RESPONSE_SIZE);
    let protocol = StreamProtocol::new(RR_PROTOCOL);
    let archive = Blake3Hash::of(b"archive");
    let requests = [
        ("req-summary", Request::SyncSummary),
        ("req-bucket", Request::SyncBucket { bucket: 7 }),
        (
            "req-get-records",
            Request::GetRecords {
                ids: vec![Blake3Hash::of(b"a"), Blake3Hash::of(b"b")],
            },
        ),
        (
            "req-search",
            Request::Search {
                query: Query {
                    terms: vec!["web".into(), "server".into()],
                    category: Some("web".into()),
                    ..Query::default()
                },
            },
        ),
        ("req-chunk-list", Request::ChunkList { archive }),
        ("req-chunk", Request::Chunk { archive, index: 3 }),
    ];
    let responses = [
        (
            "resp-summary",
            Response::Summary {
                buckets: vec![[1; 32]; 4],
            },
        ),
        (
            "resp-ids",
            Response::Ids {
                ids: vec![Blake3Hash::of(b"c")],
            },
        ),
        (
            "resp-records",
            Response::Records {
                records: signed.iter().cloned().map(ByteBuf::from).collect(),
            },
        ),
        (
            "resp-chunk-list",
            Response::ChunkList {
                chunks: vec![archive, archive],
            },
        ),
        (
            "resp-chunk",
            Response::Chunk {
                bytes: ByteBuf::from(vec![9; 300]),
            },
        ),
        ("resp-not-found", Response::NotFound),
        (
            "resp-error",
            Response::Error {
                message: "rate limited".into(),
            },
        ),
    ];
    futures::executor::block_on(async {
        for (name, request) in requests {
            let mut wire = Cursor::new(Vec::new());
            codec
                .write_request(&protocol, &mut wire, request)
                .await
                .expect("seed requests encode");
            out.push(("wire", name.to_string(), wire.into_inner()));
        }
        for (name, response) in responses {
            let mut wire = Cursor::new(Vec::new());
            codec
                .write_response(&protocol, &mut wire, response)
                .await
                .expect("seed responses encode");
            out.push(("wire", name.to_string(), wire.into_inner()));
        }
    });
    for (i, bytes) in signed.iter().enumerate() {
        for kind in 0u8..3 {
            let mut data = vec![kind];
            data.extend_from_slice(bytes);
            out.push(("wire", format!("dht-{i}-{kind}"), data));
        }
    }

    let packs = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/packs");
    let mut dirs: Vec<_> = std::fs::read_dir(&packs)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    for dir in dirs {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for file in ["package.toml", "gpack.toml"] {
            if let Ok(text) = std::fs::read(dir.join(file)) {
                out.push(("manifest", format!("{name}-{file}"), text));
            }
        }
        if let Ok(bytes) = pack_dir(&dir, Vec::new()) {
            out.push(("unpack", format!("pack-{name}"), bytes));
        }
    }
    for (name, bytes) in malicious_corpus() {
        out.push(("unpack", format!("malicious-{name}"), bytes));
    }
    out
}
