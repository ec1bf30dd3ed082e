//! What the node does with what peers send it, off the event loop: answers to inbound
//! `/ggen/rr/1.0.0` requests (limits from `protocol.rs` applied here: id counts, search
//! result counts and the records byte budget), gossip checks and DHT records kept. The
//! event loop only ships the results back; verdicts are the policy's.

use serde_bytes::ByteBuf;

use super::policy::GossipCheck;
use super::protocol::parse_record;
use super::protocol::{
    Request, Response, MAX_IDS_PER_REQUEST, MAX_OWNER_NAMES, MAX_SEARCH_RESULTS,
    RECORDS_RESPONSE_BUDGET, RR_REVISION,
};
use super::sync;
use crate::package::{Blake3Hash, Record, RecordId};
use crate::store::{IngestOutcome, Store, StoreError};
use libp2p::PeerId;

/// [`answer`] on the store's blocking pool; a failed store task is an error response.
pub(crate) async fn respond(store: &Store, request: Request) -> Response {
    let answer = move |store: &Store| Ok::<_, StoreError>(answer(store, request));
    store
        .call(answer)
        .await
        .unwrap_or_else(|e| Response::Error {
            message: remote_message(&e),
        })
}

/// A store error as told to a remote peer: the same sentence when it names no local
/// path, a path-free one otherwise (the full error is logged here at debug level).
pub(crate) fn remote_message(e: &StoreError) -> String {
    match e {
        StoreError::Sqlite { .. } | StoreError::Io { .. } | StoreError::SchemaTooNew { .. } => {
            tracing::debug!("answering a peer: {e}");
            "this node's store failed to answer; try another provider".into()
        }
        StoreError::Corrupt { .. } | StoreError::ArchiveMismatch { .. } => {
            tracing::debug!("answering a peer: {e}");
            "this node's copy of the archive is damaged; try another provider".into()
        }
        StoreError::Task(_) => {
            tracing::debug!("answering a peer: {e}");
            "this node's store task failed; try again later".into()
        }
        _ => e.to_string(),
    }
}

/// Checks a gossip message from `source` (size, signature) and ingests it.
pub(crate) async fn check_gossip(store: &Store, source: PeerId, data: Vec<u8>) -> GossipCheck {
    let record = match parse_record(data) {
        Ok(record) => record,
        Err(reason) => {
            tracing::debug!("gossip from {source}: {reason}");
            return GossipCheck::Invalid;
        }
    };
    match store.call(move |store| store.ingest(&record)).await {
        Ok(outcome) => {
            if !matches!(outcome, IngestOutcome::Added | IngestOutcome::Duplicate) {
                tracing::debug!("gossip from {source}: not forwarded: {outcome:?}");
            }
            GossipCheck::Ingested(outcome)
        }
        Err(e) => {
            tracing::warn!("gossip from {source}: store: {e}");
            GossipCheck::StoreFailed
        }
    }
}

/// Gossips the stored record `id` again (the accepted side of an equivocation just
/// met), so peers that hold only the other side learn of the conflict without waiting
/// for anti-entropy. Failures are logged: sync delivers it later anyway.
pub(crate) async fn regossip(client: &super::Client, store: &Store, id: RecordId) {
    let record = store.call(move |store| store.signed_record(&id)).await;
    match record {
        Ok(Some(record)) => {
            if let Err(e) = client.gossip_raw(record.into_bytes()).await {
                tracing::debug!("gossip of equivocated record {id}: {e}");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::warn!("equivocated record {id}: store: {e}"),
    }
}

/// Keeps a checked DHT record a peer put (runs on a blocking thread).
pub(crate) fn keep_dht_record(store: &Store, record: &Record, metrics: &super::Metrics) {
    match store.ingest(record) {
        Ok(outcome) => metrics.ingested(super::metrics::RecordPath::dht, &outcome),
        Err(e) => {
            metrics.store_failed(super::metrics::RecordPath::dht, 1);
            tracing::warn!("dht record: store: {e}");
        }
    }
}

/// Keeps a provider record a peer announced (runs on a blocking thread).
pub(crate) fn keep_provider(store: &Store, archive: &Blake3Hash, peer: &str) {
    if let Err(e) = store.observe_providers([(archive, peer)], crate::store::now_ms()) {
        tracing::warn!("store provider {archive}: {e}");
    }
}

/// Computes the answer to an inbound request from the store (runs on a blocking thread).
pub(crate) fn answer(store: &Store, request: Request) -> Response {
    let error = |e: crate::store::StoreError| Response::Error {
        message: remote_message(&e),
    };
    match request {
        Request::SyncSummary => match store.sync_ids() {
            Ok(ids) => Response::Summary {
                buckets: sync::bucket_digests(&ids),
            },
            Err(e) => error(e),
        },
        Request::SyncBucket { bucket } => match store.sync_ids() {
            Ok(ids) => Response::Ids {
                ids: sync::ids_in_bucket(&ids, bucket),
            },
            Err(e) => error(e),
        },
        Request::GetRecords { ids } => {
            if ids.len() > MAX_IDS_PER_REQUEST {
                return Response::Error {
                    message: format!(
                        "{} ids requested, at most {MAX_IDS_PER_REQUEST} per request",
                        ids.len()
                    ),
                };
            }
            match store.sync_records(&ids) {
                Ok(records) => records_response(records),
                Err(e) => error(e),
            }
        }
        Request::SyncOwners { names } => {
            if names.len() > MAX_OWNER_NAMES {
                return Response::Error {
                    message: format!(
                        "owners of {} names requested, at most {MAX_OWNER_NAMES} per request",
                        names.len()
                    ),
                };
            }
            match store.owners_to_attest(&names) {
                Ok(owners) => Response::Owners {
                    revision: RR_REVISION,
                    owners,
                },
                Err(e) => error(e),
            }
        }
        Request::Search { mut query } => {
            query.limit = query.limit.clamp(1, MAX_SEARCH_RESULTS);
            let hits = match store.search(&query) {
                Ok(hits) => hits,
                Err(e) => return error(e),
            };
            let ids: Vec<_> = hits.iter().map(|h| h.package.record_id).collect();
            match store.records(&ids) {
                Ok(records) => records_response(records),
                Err(e) => error(e),
            }
        }
        Request::ChunkList { archive } => match store.chunk_hashes(&archive) {
            Ok(Some(chunks)) => Response::ChunkList { chunks },
            // Still downloading it: partial holders serve chunks, so they serve the list
            // too (a swarm whose publisher left must still be able to start).
            Ok(None) => store
                .partial_chunk_list(&archive)
                .map_or(Response::NotFound, |chunks| Response::ChunkList { chunks }),
            Err(e) => error(e),
        },
        Request::Chunk { archive, index } => {
            if !store.has_archive(&archive) {
                return Response::NotFound;
            }
            match store.read_chunk(&archive, index) {
                Ok(bytes) => Response::Chunk {
                    bytes: ByteBuf::from(bytes),
                },
                Err(e) => error(e),
            }
        }
    }
}

/// Record bytes up to the response budget (the requester asks again for the rest).
fn records_response(records: Vec<Record>) -> Response {
    let mut total = 0;
    let mut out = Vec::new();
    for record in records {
        total += record.as_bytes().len() + 8;
        if total > RECORDS_RESPONSE_BUDGET {
            break;
        }
        out.push(ByteBuf::from(record.into_bytes()));
    }
    Response::Records { records: out }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::Blake3Hash;

    #[test]
    fn answers_come_from_the_store_and_limits_hold() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let missing = Blake3Hash::of(b"missing");
        assert!(matches!(
            answer(&store, Request::ChunkList { archive: missing }),
            Response::NotFound
        ));
        assert!(matches!(
            answer(
                &store,
                Request::Chunk {
                    archive: missing,
                    index: 0
                }
            ),
            Response::NotFound
        ));
        let too_many = vec![missing; MAX_IDS_PER_REQUEST + 1];
        assert!(matches!(
            answer(&store, Request::GetRecords { ids: too_many }),
            Response::Error { .. }
        ));
        match answer(&store, Request::SyncSummary) {
            Response::Summary { buckets } => {
                assert_eq!(buckets.len(), sync::BUCKETS);
                assert!(buckets.iter().all(|b| *b == [0; 32]));
            }
            other => panic!("expected a summary, got {other:?}"),
        }
    }

    #[test]
    fn a_node_still_downloading_an_archive_serves_its_chunk_list() {
        let dir = tempfile::TempDir::new().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (_, digest) = crate::store::partial::tests::sample(5000, 1024);
        let archive = digest.info.blake3;
        assert!(matches!(
            answer(&store, Request::ChunkList { archive }),
            Response::NotFound
        ));
        let _partial = store.partial(&digest.info, &digest.chunks).unwrap();
        match answer(&store, Request::ChunkList { archive }) {
            Response::ChunkList { chunks } => assert_eq!(chunks, digest.chunks),
            other => panic!("expected the chunk list, got {other:?}"),
        }
    }

    #[test]
    fn errors_sent_to_peers_name_no_local_path() {
        use std::io::Write;
        let dir = tempfile::TempDir::new().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut writer = store.blob_writer().unwrap();
        writer.write_all(&[7u8; 4096]).unwrap();
        let archive = writer.commit().unwrap().info.blake3;
        let path = store.archive_path(&archive).unwrap();
        std::fs::write(&path, [8u8; 4096]).unwrap();
        let local = store.read_chunk(&archive, 0).unwrap_err().to_string();
        assert!(local.contains(&dir.path().display().to_string()), "{local}");
        match answer(&store, Request::Chunk { archive, index: 0 }) {
            Response::Error { message } => {
                assert!(!message.contains('/'), "a path reached a peer: {message}");
                assert!(message.contains("try another provider"), "{message}");
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }
}
