//! Test support only (feature `test-support`): lets a node built from this crate answer
//! inbound requests as an attacker would, with forged, oversize or never-ending
//! responses, so `tests/hostile.rs` can aim a real libp2p peer at honest nodes. Never
//! compiled into the binary.

use std::fmt;
use std::sync::Arc;

use super::protocol::{Request, Response};

/// What the hostile node does with one inbound request.
pub enum HostileAnswer {
    /// Answer it as an honest node would.
    Honest,
    /// Send this response instead (forged records, oversize bytes, anything).
    Respond(Response),
    /// Never answer: the channel is held open until the node stops, so the asker waits
    /// for its timeout.
    Hold,
    /// Answer honestly after this long (streamed chunks only: a slow provider; on
    /// `/ggen/rr` the answer is honest and immediate).
    Delay(std::time::Duration),
}

/// The hostile node's answering rule.
#[derive(Clone)]
pub struct Hostile(pub Arc<dyn Fn(&Request) -> HostileAnswer + Send + Sync>);

impl fmt::Debug for Hostile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hostile(..)")
    }
}

impl Hostile {
    pub fn new(answer: impl Fn(&Request) -> HostileAnswer + Send + Sync + 'static) -> Self {
        Self(Arc::new(answer))
    }
}

/// The environment variable that makes a daemon process built with `test-support` hostile
/// (the swarm lab's bad node); a normal build never reads it. Its one value,
/// [`CORRUPT_CHUNKS`], answers every chunk with corrupted bytes.
pub const HOSTILE_ENV: &str = "GGEN_P2P_TEST_HOSTILE";
/// [`HOSTILE_ENV`]'s value for [`corrupt_chunks`].
pub const CORRUPT_CHUNKS: &str = "corrupt-chunks";

/// The rule [`HOSTILE_ENV`] asks for: `None` when it is unset; an unknown value is an
/// error, so a typo never leaves a lab's bad node honest.
pub fn from_env() -> Result<Option<Hostile>, String> {
    match std::env::var(HOSTILE_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Ok(value) => mode(&value).map(Some),
        Err(e) => Err(format!(
            "{HOSTILE_ENV}: {e}; set it to {CORRUPT_CHUNKS} or unset it"
        )),
    }
}

/// The rule named by one value of [`HOSTILE_ENV`].
fn mode(value: &str) -> Result<Hostile, String> {
    if value != CORRUPT_CHUNKS {
        return Err(format!(
            "{HOSTILE_ENV}={value:?} is not a hostile mode; the one mode is {CORRUPT_CHUNKS}, or unset it"
        ));
    }
    tracing::warn!(
        "{HOSTILE_ENV}={CORRUPT_CHUNKS}: this node serves corrupted bytes for every chunk (test-support build)"
    );
    Ok(corrupt_chunks())
}

/// Answers every chunk request (streamed or `/ggen/rr`) with a full chunk's length of
/// bytes that are not the chunk: a full chunk fails its hash check, the archive's short
/// last chunk its length check. Everything else is answered honestly, so the node still
/// offers what it holds and downloads like any other.
pub fn corrupt_chunks() -> Hostile {
    Hostile::new(|request| match request {
        Request::Chunk { index, .. } => {
            let fill = 0xA5 ^ (*index as u8);
            HostileAnswer::Respond(Response::Chunk {
                bytes: serde_bytes::ByteBuf::from(vec![
                    fill;
                    crate::package::digest::CHUNK_SIZE as usize
                ]),
            })
        }
        _ => HostileAnswer::Honest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::digest::CHUNK_SIZE;
    use crate::package::Blake3Hash;

    #[test]
    fn corrupt_chunks_answers_every_chunk_with_other_bytes_and_nothing_else() {
        let rule = mode(CORRUPT_CHUNKS).expect("the one mode");
        for index in [0, 1, 255, 256] {
            let request = Request::Chunk {
                archive: Blake3Hash::of(b"archive"),
                index,
            };
            match (rule.0)(&request) {
                HostileAnswer::Respond(Response::Chunk { bytes }) => {
                    assert_eq!(bytes.len(), CHUNK_SIZE as usize);
                    assert_ne!(
                        Blake3Hash::of(&bytes),
                        Blake3Hash::of(&vec![0; bytes.len()])
                    );
                }
                _ => panic!("chunk {index} was not answered with corrupted bytes"),
            }
        }
        let other = Request::SyncOwners { names: vec![] };
        assert!(matches!((rule.0)(&other), HostileAnswer::Honest));
    }

    #[test]
    fn an_unknown_mode_is_refused_with_the_one_known() {
        let err = mode("corupt").map(|_| ()).unwrap_err();
        assert!(
            err.contains(HOSTILE_ENV) && err.contains(CORRUPT_CHUNKS),
            "{err}"
        );
    }
}
