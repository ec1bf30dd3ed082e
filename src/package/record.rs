//! Signed records: what a publisher signs and every node stores, forwards and verifies.
//!
//! A record on disk and on the wire is `signature (64 bytes) || body`, where the body is
//! the JSON of a [`RecordBody`] and the signature is Ed25519 over
//! [`SIGNATURE_DOMAIN`]` || body`. Those exact bytes are kept and forwarded; a record is
//! never re-encoded to be verified. A [`Record`] value only exists once its size, shape,
//! fields and signature have been checked, so holding one means it is genuine.

use std::collections::BTreeMap;
use std::fmt;

use semver::Version;
use serde::{Deserialize, Serialize};

use super::digest::{chunk_size_allowed, chunk_size_for, CHUNK_SIZE, LEGACY_SMALL_CHUNK_SIZE};
use super::fields;
use super::hash::{Blake3Hash, Sha256Hash};
use super::keys::{PublisherId, PublisherKey};
use super::manifest::Manifest;

/// Prefix of every signed message, so a record signature can never be replayed as a
/// signature over anything else (or the reverse).
pub const SIGNATURE_DOMAIN: &[u8] = b"ggen-p2p record v1\0";
/// Prefix of the new key's signature inside a key rotation.
pub const ROTATION_DOMAIN: &[u8] = b"ggen-p2p key rotation v1\0";
/// Largest record accepted from anywhere, checked before parsing.
pub const MAX_RECORD_SIZE: usize = 64 * 1024;
const SIGNATURE_LEN: usize = 64;

/// Facts about an archive that let anyone check it, whole or chunk by chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveInfo {
    pub blake3: Blake3Hash,
    pub sha256: Sha256Hash,
    pub size: u64,
    /// Every chunk but the last is exactly this long.
    pub chunk_size: u32,
    /// BLAKE3 of the concatenated 32-byte BLAKE3 hashes of the chunks, in order: a
    /// provider sends the chunk list, the receiver checks it against this root.
    pub chunks_root: Blake3Hash,
}

/// "This publisher released this exact archive as `name@version`."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub publisher: PublisherId,
    pub name: String,
    pub version: Version,
    pub archive: ArchiveInfo,
    pub description: String,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub license: Option<String>,
    #[serde(default)]
    pub repository: Option<String>,
    /// Dependency name → semver requirement, as the manifest wrote them.
    #[serde(default)]
    pub dependencies: BTreeMap<String, String>,
    /// Milliseconds since the Unix epoch, as the publisher's clock saw it.
    pub published_at: u64,
    /// Bytes of file content the archive unpacks to. Absent in records from older
    /// publishers (they still verify); when present, install requires exactly this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpacked_size: Option<u64>,
}

/// "Hide `name@version` from new resolutions" (lockfiles can still fetch it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct YankRecord {
    pub publisher: PublisherId,
    pub name: String,
    pub version: Version,
    pub yanked_at: u64,
}

/// "Key `old` hands its names to key `new`": signed by `old` (the record signature) and
/// by `new` (`new_signature`, over [`ROTATION_DOMAIN`]` || old || new || rotated_at`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRotation {
    pub old: PublisherId,
    pub new: PublisherId,
    pub rotated_at: u64,
    pub new_signature: String,
}

// Version records dominate and are read far more than built; boxing them would only add
// a pointer chase to every match.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordBody {
    Version(VersionRecord),
    Yank(YankRecord),
    Rotation(KeyRotation),
}

impl RecordBody {
    /// The key whose signature makes this record valid.
    pub fn signer(&self) -> PublisherId {
        match self {
            RecordBody::Version(v) => v.publisher,
            RecordBody::Yank(y) => y.publisher,
            RecordBody::Rotation(r) => r.old,
        }
    }

    /// The package name the record is about, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            RecordBody::Version(v) => Some(&v.name),
            RecordBody::Yank(y) => Some(&y.name),
            RecordBody::Rotation(_) => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record is {size} bytes, over the {MAX_RECORD_SIZE}-byte limit")]
    TooLarge { size: usize },
    #[error("record is {size} bytes, too short to hold a signature")]
    TooShort { size: usize },
    #[error("record body is not valid: {0}")]
    Malformed(String),
    #[error("record signature does not verify against publisher {0}")]
    BadSignature(PublisherId),
    #[error("record field is not valid: {0}")]
    InvalidField(String),
}

/// Stable id of a record: BLAKE3 of its exact bytes.
pub type RecordId = Blake3Hash;

/// A verified record: its exact bytes and their parsed body.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    bytes: Vec<u8>,
    body: RecordBody,
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("id", &self.id())
            .field("body", &self.body)
            .finish()
    }
}

impl Record {
    /// Signs `body` with `key`. Fails if the body is invalid or `key` is not its signer.
    pub fn sign(body: RecordBody, key: &PublisherKey) -> Result<Self, RecordError> {
        if body.signer() != key.id() {
            return Err(RecordError::InvalidField(format!(
                "record names signer {} but the key is {}",
                body.signer(),
                key.id()
            )));
        }
        validate_body(&body)?;
        let json = serde_json::to_vec(&body).map_err(|e| RecordError::Malformed(e.to_string()))?;
        let signature = key.sign(&signed_message(&json));
        let mut bytes = Vec::with_capacity(SIGNATURE_LEN + json.len());
        bytes.extend_from_slice(&signature);
        bytes.extend_from_slice(&json);
        if bytes.len() > MAX_RECORD_SIZE {
            return Err(RecordError::TooLarge { size: bytes.len() });
        }
        Ok(Self { bytes, body })
    }

    /// Checks bytes that arrived from anywhere: size first, then shape, fields and
    /// signature. Only this and [`Record::sign`] make a `Record`.
    pub fn verify(bytes: Vec<u8>) -> Result<Self, RecordError> {
        if bytes.len() > MAX_RECORD_SIZE {
            return Err(RecordError::TooLarge { size: bytes.len() });
        }
        if bytes.len() <= SIGNATURE_LEN {
            return Err(RecordError::TooShort { size: bytes.len() });
        }
        let (signature, json) = bytes.split_at(SIGNATURE_LEN);
        let body: RecordBody =
            serde_json::from_slice(json).map_err(|e| RecordError::Malformed(e.to_string()))?;
        validate_body(&body)?;
        let signature: &[u8; 64] = signature.try_into().expect("split at 64");
        if !body.signer().verify(&signed_message(json), signature) {
            return Err(RecordError::BadSignature(body.signer()));
        }
        Ok(Self { bytes, body })
    }

    pub fn id(&self) -> RecordId {
        Blake3Hash::of(&self.bytes)
    }

    /// Parses the body of record bytes *without* checking the signature. Only for
    /// showing records this node verified when it stored them (search results); anything
    /// that acts on a record (install, forwarding) goes through [`Record::verify`].
    pub fn parse_unverified(bytes: &[u8]) -> Result<RecordBody, RecordError> {
        if bytes.len() > MAX_RECORD_SIZE {
            return Err(RecordError::TooLarge { size: bytes.len() });
        }
        if bytes.len() <= SIGNATURE_LEN {
            return Err(RecordError::TooShort { size: bytes.len() });
        }
        serde_json::from_slice(&bytes[SIGNATURE_LEN..])
            .map_err(|e| RecordError::Malformed(e.to_string()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn body(&self) -> &RecordBody {
        &self.body
    }
}

impl VersionRecord {
    /// The record a publisher signs for `manifest` packed into `archive`.
    pub fn new(
        publisher: PublisherId,
        manifest: &Manifest,
        archive: ArchiveInfo,
        published_at: u64,
    ) -> Self {
        Self {
            publisher,
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            archive,
            description: manifest.description.clone(),
            category: manifest.category.clone(),
            keywords: manifest.keywords.clone(),
            authors: manifest.authors.clone(),
            license: manifest.license.clone(),
            repository: manifest.repository.clone(),
            dependencies: manifest
                .dependencies
                .iter()
                .map(|(name, req)| (name.clone(), req.to_string()))
                .collect(),
            published_at,
            unpacked_size: None,
        }
    }
}

impl KeyRotation {
    /// A rotation from `old` to `new`, carrying `new`'s half of the double signature.
    pub fn new(old: PublisherId, new: &PublisherKey, rotated_at: u64) -> Self {
        let new_id = new.id();
        let signature = new.sign(&rotation_message(&old, &new_id, rotated_at));
        Self {
            old,
            new: new_id,
            rotated_at,
            new_signature: hex::encode(signature),
        }
    }
}

fn signed_message(json: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNATURE_DOMAIN.len() + json.len());
    message.extend_from_slice(SIGNATURE_DOMAIN);
    message.extend_from_slice(json);
    message
}

fn rotation_message(old: &PublisherId, new: &PublisherId, rotated_at: u64) -> Vec<u8> {
    let mut message = ROTATION_DOMAIN.to_vec();
    message.extend_from_slice(old.as_bytes());
    message.extend_from_slice(new.as_bytes());
    message.extend_from_slice(&rotated_at.to_be_bytes());
    message
}

fn validate_body(body: &RecordBody) -> Result<(), RecordError> {
    let invalid = RecordError::InvalidField;
    match body {
        RecordBody::Version(v) => {
            validate_version_fields(v)?;
            // The chunk size is a function of the size (plus the older 1 MiB), so the
            // same archive has the same chunk list on every node that publishes it now.
            if !chunk_size_allowed(v.archive.size, v.archive.chunk_size) {
                // The sizes the rule accepts here, named from the rule itself.
                let mut sizes = vec![chunk_size_for(v.archive.size)];
                for other in [LEGACY_SMALL_CHUNK_SIZE, CHUNK_SIZE] {
                    if !sizes.contains(&other) && chunk_size_allowed(v.archive.size, other) {
                        sizes.push(other);
                    }
                }
                let names: Vec<String> = sizes.iter().map(u32::to_string).collect();
                let accepted = match names.split_last() {
                    Some((last, [])) => last.clone(),
                    Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                    None => String::new(),
                };
                return Err(invalid(format!(
                    "archive chunk_size is {} for {} bytes; this version accepts {accepted}",
                    v.archive.chunk_size, v.archive.size,
                )));
            }
        }
        RecordBody::Yank(y) => {
            fields::validate_name(&y.name).map_err(invalid)?;
            fields::check_version(&y.version).map_err(|rule| invalid(format!("version {rule}")))?;
        }
        RecordBody::Rotation(r) => {
            let mut signature = [0u8; 64];
            hex::decode_to_slice(&r.new_signature, &mut signature)
                .map_err(|_| invalid("rotation new_signature is not 128 hex digits".into()))?;
            if r.old == r.new {
                return Err(invalid("rotation to the same key".into()));
            }
            if !r
                .new
                .verify(&rotation_message(&r.old, &r.new, r.rotated_at), &signature)
            {
                return Err(RecordError::BadSignature(r.new));
            }
        }
    }
    Ok(())
}

/// The manifest's field rules ([`fields`]), applied to what a record carries. A record
/// may have an empty description (imported metadata has some); the rest is as strict
/// as `publish`.
fn validate_version_fields(v: &VersionRecord) -> Result<(), RecordError> {
    fn named(field: &str) -> impl Fn(String) -> RecordError + '_ {
        move |rule| RecordError::InvalidField(format!("{field} {rule}"))
    }
    fields::validate_name(&v.name).map_err(RecordError::InvalidField)?;
    fields::check_version(&v.version).map_err(named("version"))?;
    fields::check_text(&v.description, fields::MAX_DESCRIPTION_LEN)
        .map_err(named("description"))?;
    for (field, value) in [
        ("category", &v.category),
        ("license", &v.license),
        ("repository", &v.repository),
    ] {
        if let Some(value) = value {
            fields::check_text(value, fields::MAX_FIELD_LEN).map_err(named(field))?;
        }
    }
    for (field, values) in [("keywords", &v.keywords), ("authors", &v.authors)] {
        fields::check_list_len(values.len()).map_err(named(field))?;
        for value in values {
            fields::check_text(value, fields::MAX_FIELD_LEN).map_err(named(field))?;
        }
    }
    fields::check_list_len(v.dependencies.len()).map_err(named("dependencies"))?;
    for (name, req) in &v.dependencies {
        let dependency = format!("dependency {name}:");
        fields::check_dependency_name(name, &v.name).map_err(named(&dependency))?;
        fields::parse_requirement(req).map_err(named(&dependency))?;
    }
    Ok(())
}

/// Test fixtures (tests and the `test-support` feature only): a version record whose
/// optional fields are empty, so a test sets just what it checks with struct update
/// syntax: `VersionRecord { description, ..VersionRecord::fixture(&key, "p", "1.0.0", a) }`.
#[cfg(any(test, feature = "test-support"))]
impl VersionRecord {
    pub fn fixture(key: &PublisherKey, name: &str, version: &str, archive: ArchiveInfo) -> Self {
        VersionRecord {
            publisher: key.id(),
            name: name.into(),
            version: version.parse().expect("a fixture version parses"),
            archive,
            description: String::new(),
            category: None,
            keywords: vec![],
            authors: vec![],
            license: None,
            repository: None,
            dependencies: BTreeMap::new(),
            published_at: 1,
            unpacked_size: None,
        }
    }
}

#[cfg(any(test, feature = "test-support"))]
impl ArchiveInfo {
    /// A one-byte archive named by `seed` (enough for records that are never downloaded).
    pub fn fixture(seed: &[u8]) -> Self {
        ArchiveInfo {
            blake3: Blake3Hash::of(seed),
            sha256: Sha256Hash([0; 32]),
            size: 1,
            chunk_size: 1 << 20,
            chunks_root: Blake3Hash::of(b"root"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_version(key: &PublisherKey) -> VersionRecord {
        VersionRecord {
            publisher: key.id(),
            name: "rust-axum-service".into(),
            version: Version::new(1, 2, 0),
            archive: ArchiveInfo {
                blake3: Blake3Hash::of(b"archive"),
                sha256: Sha256Hash([7; 32]),
                size: 7,
                chunk_size: 1 << 20,
                chunks_root: Blake3Hash::of(b"root"),
            },
            description: "Axum service skeleton".into(),
            category: Some("web".into()),
            keywords: vec!["rust".into(), "axum".into()],
            authors: vec![],
            license: Some("MIT".into()),
            repository: None,
            dependencies: BTreeMap::from([("rust-tracing-setup".into(), "^0.3".into())]),
            published_at: 1,
            unpacked_size: None,
        }
    }

    #[test]
    fn sign_then_verify_keeps_exact_bytes() {
        let key = PublisherKey::generate();
        let record = Record::sign(RecordBody::Version(sample_version(&key)), &key).unwrap();
        let again = Record::verify(record.as_bytes().to_vec()).unwrap();
        assert_eq!(again, record);
        assert_eq!(again.id(), record.id());
    }

    #[test]
    fn any_flipped_byte_is_refused() {
        let key = PublisherKey::generate();
        let record = Record::sign(RecordBody::Version(sample_version(&key)), &key).unwrap();
        for index in [0, 63, 64, 100, record.as_bytes().len() - 2] {
            let mut bytes = record.as_bytes().to_vec();
            bytes[index] ^= 1;
            assert!(Record::verify(bytes).is_err(), "byte {index}");
        }
    }

    #[test]
    fn wrong_signer_and_oversize_are_refused() {
        let key = PublisherKey::generate();
        let other = PublisherKey::generate();
        let body = RecordBody::Version(sample_version(&key));
        assert!(Record::sign(body, &other).is_err());
        assert_eq!(
            Record::verify(vec![0; MAX_RECORD_SIZE + 1]),
            Err(RecordError::TooLarge {
                size: MAX_RECORD_SIZE + 1
            })
        );
        assert!(matches!(
            Record::verify(vec![0; 10]),
            Err(RecordError::TooShort { .. })
        ));
    }

    #[test]
    fn rotation_needs_both_keys() {
        let old = PublisherKey::generate();
        let new = PublisherKey::generate();
        let rotation = KeyRotation::new(old.id(), &new, 5);
        let record = Record::sign(RecordBody::Rotation(rotation.clone()), &old).unwrap();
        assert!(Record::verify(record.into_bytes()).is_ok());
        let forged = KeyRotation {
            new: PublisherKey::generate().id(),
            ..rotation
        };
        assert!(Record::sign(RecordBody::Rotation(forged), &old).is_err());
    }

    #[test]
    fn record_fields_follow_the_manifest_rules() {
        let key = PublisherKey::generate();
        let refused = |edit: fn(&mut VersionRecord)| {
            let mut version = sample_version(&key);
            edit(&mut version);
            match Record::sign(RecordBody::Version(version), &key) {
                Err(RecordError::InvalidField(message)) => message,
                other => panic!("expected an invalid field, got {other:?}"),
            }
        };
        assert!(refused(|v| v.name = "Bad Name".into()).contains("lowercase letters"));
        assert_eq!(
            refused(|v| v.description = "x".repeat(fields::MAX_DESCRIPTION_LEN + 1)),
            "description is 1025 bytes, over the 1024-byte limit"
        );
        assert!(refused(|v| v.license = Some("MIT\u{1b}[31m".into())).contains("control"));
        assert!(refused(|v| v.keywords = vec!["k".into(); 33]).contains("over the limit of 32"));
        assert!(refused(|v| {
            v.dependencies
                .insert("rust_axum_service".into(), "1".into());
        })
        .contains("cannot depend on itself"));
        assert!(refused(|v| {
            v.dependencies.insert("other".into(), "not a req".into());
        })
        .starts_with("dependency other: \"not a req\" is not a semver requirement"));
        assert!(
            refused(|v| v.version = Version::parse("1.0.7+build").unwrap())
                .starts_with("version \"1.0.7+build\" carries build metadata")
        );
        // Chunk sizes: the size's own or the older 256 KiB (up to 64 MiB) and 1 MiB,
        // nothing else.
        assert_eq!(
            refused(|v| v.archive.chunk_size = 1 << 16),
            "archive chunk_size is 65536 for 7 bytes; this version accepts 131072, 262144 or 1048576"
        );
        assert!(refused(|v| {
            v.archive.size = 100 << 20;
            v.archive.chunk_size = 1 << 18;
        })
        .ends_with("this version accepts 131072 or 1048576"));
        assert!(refused(|v| {
            v.archive.size = (1 << 30) + 1;
            v.archive.chunk_size = 1 << 17;
        })
        .ends_with("this version accepts 1048576"));
        for chunk_size in [1 << 17, 1 << 18] {
            let mut small = sample_version(&key);
            small.archive.chunk_size = chunk_size;
            assert!(Record::sign(RecordBody::Version(small), &key).is_ok());
        }
    }

    /// A peer signing a record with build metadata itself (bypassing `sign`'s checks)
    /// is refused by verification, so ingest never stores it.
    #[test]
    fn signed_record_with_build_metadata_is_refused_by_verify() {
        let key = PublisherKey::generate();
        let mut version = sample_version(&key);
        version.version = Version::parse("1.0.7+build").unwrap();
        let json = serde_json::to_vec(&RecordBody::Version(version)).unwrap();
        let mut bytes = key.sign(&signed_message(&json)).to_vec();
        bytes.extend_from_slice(&json);
        match Record::verify(bytes) {
            Err(RecordError::InvalidField(message)) => {
                assert!(message.contains("build metadata"), "{message}")
            }
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }
}

/// Properties over generated records: signing then verifying keeps every byte and the
/// body, and any change to the bytes (a flipped bit anywhere, a cut) is refused.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn body(secret: u8) -> impl Strategy<Value = VersionRecord> {
        (
            "[a-z0-9][a-z0-9_-]{0,30}",
            (0u64..1000, 0u64..1000, 0u64..1000),
            proptest::option::of("[a-z]{1,8}(\\.[1-9][0-9]{0,2})?"),
            "\\PC{0,200}",
            proptest::collection::vec("[a-z]{1,12}", 0..5),
            0u64..4_000_000_000_000,
        )
            .prop_filter("not a reserved device name", |(name, ..)| {
                !fields::is_reserved_device_name(name)
            })
            .prop_map(
                move |(name, (ma, mi, pa), pre, description, keywords, at)| {
                    let mut version = Version::new(ma, mi, pa);
                    if let Some(pre) = pre {
                        version.pre = semver::Prerelease::new(&pre).unwrap();
                    }
                    let key = PublisherKey::from_secret([secret; 32]);
                    VersionRecord {
                        version,
                        description,
                        keywords,
                        published_at: at,
                        ..VersionRecord::fixture(&key, &name, "0.0.0", ArchiveInfo::fixture(b"p"))
                    }
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn sign_then_verify_round_trips(record in body(3)) {
            let key = PublisherKey::from_secret([3; 32]);
            let signed = Record::sign(RecordBody::Version(record.clone()), &key).unwrap();
            let back = Record::verify(signed.as_bytes().to_vec()).unwrap();
            prop_assert_eq!(back.as_bytes(), signed.as_bytes());
            prop_assert_eq!(back.body(), &RecordBody::Version(record));
            prop_assert_eq!(back.id(), signed.id());
        }

        #[test]
        fn any_flipped_bit_or_cut_is_refused(
            record in body(4),
            position in any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            let key = PublisherKey::from_secret([4; 32]);
            let bytes = Record::sign(RecordBody::Version(record), &key).unwrap().into_bytes();
            let at = position.index(bytes.len());
            let mut flipped = bytes.clone();
            flipped[at] ^= 1 << bit;
            prop_assert!(Record::verify(flipped).is_err());
            prop_assert!(Record::verify(bytes[..at].to_vec()).is_err());
        }
    }
}
