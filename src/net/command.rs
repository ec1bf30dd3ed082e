//! What the event loop is asked to do: the [`Client`](super::Client)'s calls, each with
//! its oneshot reply, and reports from the tasks the loop spawned. Only the type; the
//! loop decides and answers.

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::kad::RecordKey;
use libp2p::request_response::ResponseChannel;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::oneshot;

use super::protocol::{Request, Response};
use super::reputation::PeerEvent;
use super::{NetError, NetStatus, PeerInfo};
use crate::package::{Blake3Hash, Record};

/// Work for the event loop: public calls (each with its reply) and reports from tasks the
/// loop spawned.
// Commands are short-lived and sent one by one; boxing the big variants would only add
// an allocation per request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Command {
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    /// Gossip raw record bytes (the client only sends verified records, or test input).
    Publish {
        bytes: Vec<u8>,
        reply: oneshot::Sender<usize>,
    },
    /// Put `record` in the DHT under `key` (one of [`super::protocol::dht_keys`]).
    PutRecord {
        key: RecordKey,
        record: Record,
        reply: oneshot::Sender<Result<usize, NetError>>,
    },
    /// Every record the DHT holds under `key`, as raw bytes (the caller verifies them).
    GetRecord {
        key: RecordKey,
        reply: oneshot::Sender<Result<Vec<Vec<u8>>, NetError>>,
    },
    StartProviding {
        archive: Blake3Hash,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    /// Stop announcing this node as a provider of `archive` (it was evicted). Records
    /// already spread expire with their TTL.
    StopProviding {
        archive: Blake3Hash,
        reply: oneshot::Sender<()>,
    },
    GetProviders {
        archive: Blake3Hash,
        reply: oneshot::Sender<Result<super::pending::ProvidersFound, NetError>>,
    },
    Request {
        peer: PeerId,
        request: Request,
        reply: oneshot::Sender<Result<Response, NetError>>,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    Status {
        reply: oneshot::Sender<NetStatus>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId, NetError>>,
    },
    Disconnect {
        peer: PeerId,
        reply: oneshot::Sender<()>,
    },
    /// Ban `peer` now (operator block): refuse and disconnect it.
    Block {
        peer: PeerId,
        reply: oneshot::Sender<()>,
    },
    /// Lift `peer`'s ban.
    Unblock {
        peer: PeerId,
        reply: oneshot::Sender<()>,
    },
    /// A peer sent something invalid.
    Penalize {
        peer: PeerId,
    },
    /// Something a peer did that changes its reputation (from transfers and syncs).
    Judge {
        peer: PeerId,
        event: PeerEvent,
    },
    /// The reputation score of each of `peers`, in order.
    Scores {
        peers: Vec<PeerId>,
        reply: oneshot::Sender<Vec<f64>>,
    },
    /// Why a transfer from `peer` may have failed, when only a relay connected us.
    LinkHint {
        peer: PeerId,
        reply: oneshot::Sender<Option<String>>,
    },
    /// Verdict on a gossip message, from its validation task.
    GossipVerdict {
        message_id: MessageId,
        source: PeerId,
        acceptance: MessageAcceptance,
    },
    /// Answer to an inbound request, computed off the loop.
    Respond {
        channel: ResponseChannel<Response>,
        response: Response,
    },
    /// Charge `bytes` of chunks to `peer`'s chunk rate limit (a streamed range).
    AdmitChunks {
        peer: PeerId,
        bytes: u64,
        reply: oneshot::Sender<Result<(), std::time::Duration>>,
    },
    /// A sync task with `peer` ended.
    SyncDone {
        peer: PeerId,
    },
    /// Test hook: the loop ends at once, as if it had crashed (health checks).
    #[cfg(feature = "test-support")]
    Halt,
}
