//! What a package is, independent of any network or disk layout: manifests, archives,
//! digests, publisher keys and signed records.

pub mod archive;
pub mod digest;
pub mod fields;
pub mod hash;
pub mod keys;
pub mod manifest;
pub mod record;

pub use hash::{Blake3Hash, Sha256Hash};
pub use keys::{KeyError, PublisherId, PublisherKey, PublisherRef};
pub use manifest::{Manifest, ManifestError};
pub use record::{
    ArchiveInfo, KeyRotation, Record, RecordBody, RecordError, RecordId, VersionRecord, YankRecord,
};
