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
