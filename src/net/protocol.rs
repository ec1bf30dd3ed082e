//! The wire spec of ggen-p2p: protocol ids, the request-response messages of
//! `/ggen/rr/1.0.0` and their limits, the gossip topic and the DHT key of each record.
//!
//! Participants are equal peers. Requests are at most [`MAX_REQUEST_SIZE`] bytes, responses
//! at most [`MAX_RESPONSE_SIZE`], both enforced by the CBOR codec on read. Record bytes
//! always travel verbatim (`signature || body`) and are verified on arrival; nothing
//! here carries trust. Out of scope: authentication beyond libp2p's noise peer ids.
//!
//! Revisions of `/ggen/rr/1.0.0` (variants are only ever added, so the id stays):
//! - 1: the original requests.
//! - 2 ([`RR_REVISION`]): sync ids and `GetRecords` cover evidence of equivocation as
//!   well as accepted records; `SyncOwners` asks a peer which owner it accepted for a
//!   list of names (owner attestation). A revision-1 peer cannot decode `SyncOwners`
//!   and fails that one request, which sync treats as "no attestation".

use libp2p::kad::RecordKey;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::package::fields::normalize_name;
use crate::package::record::MAX_RECORD_SIZE;
use crate::package::{Blake3Hash, PublisherId, Record, RecordBody, RecordId};
use crate::store::Query;

/// Request-response protocol (CBOR codec).
pub const RR_PROTOCOL: &str = "/ggen/rr/1.0.0";
/// Revision of the request-response messages this build speaks (see the module doc).
pub const RR_REVISION: u32 = 2;
/// Kademlia protocol: our own DHT, never the public IPFS one.
pub const KAD_PROTOCOL: &str = "/ggen/kad/1.0.0";
/// Identify protocol version string.
pub const IDENTIFY_PROTOCOL: &str = "/ggen/id/1.0.0";
/// Gossipsub topic carrying record bytes.
pub const RECORDS_TOPIC: &str = "ggen/records/v1";

/// Largest request read from a peer.
pub const MAX_REQUEST_SIZE: u64 = 64 * 1024;
/// Largest response read from a peer (a 1 MiB chunk fits with room to spare).
pub const MAX_RESPONSE_SIZE: u64 = 4 * 1024 * 1024;
/// Record bytes put into one `Records` response at most, leaving room for framing.
pub const RECORDS_RESPONSE_BUDGET: usize = 3 * 1024 * 1024 + 512 * 1024;
/// Ids per `GetRecords` request at most (512 hex ids stay well under 64 KiB).
pub const MAX_IDS_PER_REQUEST: usize = 512;
/// Names per `SyncOwners` request at most (256 names of at most 64 bytes stay well
/// under [`MAX_REQUEST_SIZE`]).
pub const MAX_OWNER_NAMES: usize = 256;
/// Search hits a peer returns at most.
pub const MAX_SEARCH_RESULTS: usize = 100;
/// Largest gossip message: one record plus slack for gossipsub framing.
pub const MAX_GOSSIP_SIZE: usize = 128 * 1024;
/// Largest Kademlia packet (a record with its envelope).
pub const MAX_KAD_PACKET_SIZE: usize = 256 * 1024;

/// One request of `/ggen/rr/1.0.0`. Tags are stable: add variants, never reorder meaning.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// -> `Summary`: 256 bucket digests of record ids, bucketed by first id byte.
    SyncSummary,
    /// -> `Ids`: every record id in that bucket.
    SyncBucket { bucket: u8 },
    /// -> `Records` (at most [`MAX_IDS_PER_REQUEST`] ids; the answer may hold a prefix
    /// when the bytes would pass [`RECORDS_RESPONSE_BUDGET`]).
    GetRecords { ids: Vec<RecordId> },
    /// -> `Records`: version records of the local hits.
    Search { query: Query },
    /// -> `ChunkList` or `NotFound`.
    ChunkList { archive: Blake3Hash },
    /// -> `Chunk` or `NotFound`.
    Chunk { archive: Blake3Hash, index: u32 },
    /// -> `Owners` (revision 2): the owner the peer vouches for, for each of at most
    /// [`MAX_OWNER_NAMES`] names it can (pinned, or accepted uncontested).
    SyncOwners { names: Vec<String> },
}

/// One response of `/ggen/rr/1.0.0`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    Summary {
        buckets: Vec<[u8; 32]>,
    },
    Ids {
        ids: Vec<RecordId>,
    },
    Records {
        records: Vec<ByteBuf>,
    },
    ChunkList {
        chunks: Vec<Blake3Hash>,
    },
    Chunk {
        bytes: ByteBuf,
    },
    NotFound,
    Error {
        message: String,
    },
    /// Revision 2: `(name, owner)` pairs, names as asked.
    Owners {
        revision: u32,
        owners: Vec<(String, PublisherId)>,
    },
}

impl Response {
    /// Short name for error messages ("peer answered X to Y").
    pub fn kind(&self) -> &'static str {
        match self {
            Response::Summary { .. } => "summary",
            Response::Ids { .. } => "ids",
            Response::Records { .. } => "records",
            Response::ChunkList { .. } => "chunk list",
            Response::Chunk { .. } => "chunk",
            Response::NotFound => "not found",
            Response::Error { .. } => "error",
            Response::Owners { .. } => "owners",
        }
    }
}

/// DHT key of a record: `/ggen/v/<name>/<version>/<publisher>` for versions,
/// `/ggen/y/<name>/<version>/<publisher>` for yanks, `/ggen/r/<old key>` for rotations.
/// Names are normalized so `a_b` and `a-b` share a key.
pub fn dht_key(record: &Record) -> RecordKey {
    let text = match record.body() {
        RecordBody::Version(v) => format!(
            "/ggen/v/{}/{}/{}",
            normalize_name(&v.name),
            v.version,
            v.publisher
        ),
        RecordBody::Yank(y) => format!(
            "/ggen/y/{}/{}/{}",
            normalize_name(&y.name),
            y.version,
            y.publisher
        ),
        RecordBody::Rotation(r) => format!("/ggen/r/{}", r.old),
    };
    RecordKey::new(&text)
}

/// DHT key naming a package, whoever publishes it: `/ggen/n/<name>`. It holds one
/// version record of that name, the newest of its publisher as each storing node judges
/// it ([`super::policy::replaces_held_record`]), so a node that knows only a name can
/// find it.
pub fn name_key(name: &str) -> RecordKey {
    RecordKey::new(&format!("/ggen/n/{}", normalize_name(name)))
}

/// DHT key of one version of a package, whoever publishes it: `/ggen/nv/<name>/<version>`
/// (exact versions, as lockfiles and `info name@1.2.0` ask for them).
pub fn name_version_key(name: &str, version: &semver::Version) -> RecordKey {
    RecordKey::new(&format!("/ggen/nv/{}/{version}", normalize_name(name)))
}

/// Every DHT key a record may be stored under: its own [`dht_key`] and, for a version
/// record, also its [`name_key`] and [`name_version_key`].
pub fn dht_keys(record: &Record) -> Vec<RecordKey> {
    let mut keys = vec![dht_key(record)];
    if let RecordBody::Version(v) = record.body() {
        keys.push(name_key(&v.name));
        keys.push(name_version_key(&v.name, &v.version));
    }
    keys
}

/// DHT provider key of an archive: its raw 32-byte BLAKE3.
pub fn provider_key(archive: &Blake3Hash) -> RecordKey {
    RecordKey::new(archive.as_bytes())
}

/// The archive a provider key names, if it is one.
pub fn archive_of_key(key: &RecordKey) -> Option<Blake3Hash> {
    let bytes: [u8; 32] = key.as_ref().try_into().ok()?;
    Some(Blake3Hash(bytes))
}

/// Size-checks then verifies bytes from the network; the error says why they are refused.
pub fn parse_record(bytes: Vec<u8>) -> Result<Record, String> {
    if bytes.len() > MAX_RECORD_SIZE {
        return Err(format!(
            "record is {} bytes, over the {MAX_RECORD_SIZE}-byte limit",
            bytes.len()
        ));
    }
    Record::verify(bytes).map_err(|e| e.to_string())
}

/// Checks a record a peer asks us to keep in the DHT: a valid record stored under one of
/// the keys derived from it ([`dht_keys`], so nobody can squat another record's key).
pub fn check_dht_record(key: &RecordKey, value: Vec<u8>) -> Result<Record, String> {
    let record = parse_record(value)?;
    if !dht_keys(&record).contains(key) {
        return Err("record stored under a key that is not its own".into());
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::{ArchiveInfo, PublisherKey, VersionRecord};

    fn record(key: &PublisherKey, name: &str) -> Record {
        let body =
            VersionRecord::fixture(key, name, "1.0.0", ArchiveInfo::fixture(name.as_bytes()));
        Record::sign(RecordBody::Version(body), key).unwrap()
    }

    #[test]
    fn dht_records_must_sit_under_their_own_key() {
        let key = PublisherKey::generate();
        let a = record(&key, "pack-a");
        let b = record(&key, "pack-b");
        assert!(check_dht_record(&dht_key(&a), a.as_bytes().to_vec()).is_ok());
        assert!(check_dht_record(&dht_key(&b), a.as_bytes().to_vec()).is_err());
        let mut forged = a.as_bytes().to_vec();
        forged[5] ^= 1;
        assert!(check_dht_record(&dht_key(&a), forged).is_err());
        // The name keys of its own name and version hold it too; another name's do not.
        let v1 = semver::Version::new(1, 0, 0);
        assert!(check_dht_record(&name_key("pack_a"), a.as_bytes().to_vec()).is_ok());
        assert!(check_dht_record(&name_version_key("pack-a", &v1), a.as_bytes().to_vec()).is_ok());
        assert!(check_dht_record(&name_key("pack-b"), a.as_bytes().to_vec()).is_err());
        let v2 = semver::Version::new(2, 0, 0);
        assert!(check_dht_record(&name_version_key("pack-a", &v2), a.as_bytes().to_vec()).is_err());
    }

    #[test]
    fn dht_keys_normalize_names() {
        let key = PublisherKey::generate();
        let text = String::from_utf8(dht_key(&record(&key, "my_pack")).to_vec()).unwrap();
        assert_eq!(text, format!("/ggen/v/my-pack/1.0.0/{}", key.id()));
    }

    #[test]
    fn provider_keys_round_trip() {
        let hash = Blake3Hash::of(b"archive");
        assert_eq!(archive_of_key(&provider_key(&hash)), Some(hash));
        assert_eq!(archive_of_key(&RecordKey::new(&"/ggen/v/x")), None);
    }

    #[test]
    fn oversize_bytes_are_refused_before_parsing() {
        let error = parse_record(vec![0; MAX_RECORD_SIZE + 1]).unwrap_err();
        assert!(error.contains("limit"), "{error}");
    }

    /// The largest `GetRecords` request and a full chunk response go through the same
    /// CBOR codec (and limits) the behaviour uses, and come back unchanged.
    #[test]
    fn largest_messages_round_trip_through_the_cbor_codec() {
        use futures::io::Cursor;
        use libp2p::request_response::{self, Codec as _};
        use libp2p::StreamProtocol;

        let mut codec = request_response::cbor::codec::Codec::<Request, Response>::default()
            .set_request_size_maximum(MAX_REQUEST_SIZE)
            .set_response_size_maximum(MAX_RESPONSE_SIZE);
        let protocol = StreamProtocol::new(RR_PROTOCOL);
        futures::executor::block_on(async {
            let ids: Vec<RecordId> = (0..MAX_IDS_PER_REQUEST as u32)
                .map(|i| Blake3Hash::of(&i.to_be_bytes()))
                .collect();
            let mut wire = Cursor::new(Vec::new());
            codec
                .write_request(
                    &protocol,
                    &mut wire,
                    Request::GetRecords { ids: ids.clone() },
                )
                .await
                .unwrap();
            let wire = wire.into_inner();
            assert!(
                (wire.len() as u64) < MAX_REQUEST_SIZE,
                "{} bytes",
                wire.len()
            );
            match codec
                .read_request(&protocol, &mut Cursor::new(wire))
                .await
                .unwrap()
            {
                Request::GetRecords { ids: back } => assert_eq!(back, ids),
                other => panic!("came back as {other:?}"),
            }

            let chunk: Vec<u8> = (0..crate::package::digest::CHUNK_SIZE)
                .map(|i| i as u8)
                .collect();
            let mut wire = Cursor::new(Vec::new());
            codec
                .write_response(
                    &protocol,
                    &mut wire,
                    Response::Chunk {
                        bytes: ByteBuf::from(chunk.clone()),
                    },
                )
                .await
                .unwrap();
            let wire = wire.into_inner();
            assert!(
                (wire.len() as u64) < MAX_RESPONSE_SIZE,
                "{} bytes",
                wire.len()
            );
            match codec
                .read_response(&protocol, &mut Cursor::new(wire))
                .await
                .unwrap()
            {
                Response::Chunk { bytes } => assert!(bytes.as_ref() == chunk.as_slice()),
                other => panic!("came back as {:?}", other.kind()),
            }
        });
    }
}
