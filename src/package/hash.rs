//! Digests that name content: a BLAKE3 hash (how ggen-p2p addresses archives) and a
//! SHA-256 hash (recorded for lockfiles and tools that only speak SHA-256).
//!
//! Both print and parse as lowercase hex and serialize as hex strings, so records and
//! JSON output show the same text a user can paste back into a command.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Error for a digest string that is not 64 hex digits.
#[derive(Debug, thiserror::Error)]
#[error("{input:?} is not a digest: expected 64 lowercase hex digits")]
pub struct ParseDigestError {
    input: String,
}

macro_rules! digest_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = ParseDigestError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; 32];
                if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
                    return Err(ParseDigestError { input: s.to_string() });
                }
                hex::decode_to_slice(s, &mut out)
                    .map_err(|_| ParseDigestError { input: s.to_string() })?;
                Ok(Self(out))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

digest_type!(
    /// BLAKE3 hash: the address of an archive, a chunk or a record.
    Blake3Hash
);
digest_type!(
    /// SHA-256 hash of an archive, for interoperability.
    Sha256Hash
);

impl Blake3Hash {
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

impl From<blake3::Hash> for Blake3Hash {
    fn from(hash: blake3::Hash) -> Self {
        Self(*hash.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let hash = Blake3Hash::of(b"ggen");
        let text = hash.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<Blake3Hash>().unwrap(), hash);
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(json, format!("\"{text}\""));
    }

    #[test]
    fn rejects_bad_text() {
        assert!("abc".parse::<Blake3Hash>().is_err());
        assert!("zz".repeat(32).parse::<Sha256Hash>().is_err());
        assert!("AB".repeat(32).parse::<Sha256Hash>().is_err());
    }
}
