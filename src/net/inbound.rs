//! Answers to inbound `/ggen/rr/1.0.0` requests, computed from the store on a blocking
//! thread (the event loop only ships them back). Limits from `protocol.rs` are applied
//! here: id counts, search result counts and the records byte budget.

use serde_bytes::ByteBuf;

use super::protocol::{
    Request, Response, MAX_IDS_PER_REQUEST, MAX_SEARCH_RESULTS, RECORDS_RESPONSE_BUDGET,
};
use super::sync;
use crate::package::Record;
use crate::store::Store;

/// Computes the answer to an inbound request from the store (runs on a blocking thread).
pub fn answer(store: &Store, request: Request) -> Response {
    let error = |e: crate::store::StoreError| Response::Error {
        message: e.to_string(),
    };
    match request {
        Request::SyncSummary => match store.record_ids() {
            Ok(ids) => Response::Summary {
                buckets: sync::bucket_digests(&ids),
            },
            Err(e) => error(e),
        },
        Request::SyncBucket { bucket } => match store.record_ids() {
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
            match store.records(&ids) {
                Ok(records) => records_response(records),
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
            Ok(None) => Response::NotFound,
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
}
