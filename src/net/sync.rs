//! Anti-entropy without sockets: bucket digests of record ids (bucketed by first id
//! byte), which buckets differ, which ids a peer has that we lack, and the exchange
//! itself ([`run`]) against any [`SyncSource`]. The ids are accepted records and
//! evidence of equivocation alike, so both sides of a conflict reach every node; a sync
//! ends by asking the peer which owner it attests for the names met contested here. The
//! libp2p client is one source (over request-response); tests use in-memory peers.

use std::collections::HashSet;
use std::future::Future;

use futures::StreamExt;
use libp2p::PeerId;

use super::metrics::RecordPath;
use super::protocol::{parse_record, MAX_IDS_PER_REQUEST, MAX_OWNER_NAMES};
use super::NetError;
use crate::package::{Blake3Hash, PublisherId, RecordId};
use crate::store::{IngestOutcome, Store};

/// Concurrent bucket listings asked of one peer.
const BUCKETS_IN_FLIGHT: usize = 8;

/// The peer side of anti-entropy: `SyncSummary`, `SyncBucket` and `GetRecords`, plus a
/// way to count an invalid record against the peer that sent it.
pub(crate) trait SyncSource: Send + Sync {
    /// The peer's bucket digests.
    fn summary(&self, peer: PeerId)
        -> impl Future<Output = Result<Vec<[u8; 32]>, NetError>> + Send;

    /// The ids the peer has in `bucket`.
    fn bucket(
        &self,
        peer: PeerId,
        bucket: u8,
    ) -> impl Future<Output = Result<Vec<RecordId>, NetError>> + Send;

    /// The records (raw bytes, unverified) of `ids` the peer has.
    fn records(
        &self,
        peer: PeerId,
        ids: Vec<RecordId>,
    ) -> impl Future<Output = Result<Vec<Vec<u8>>, NetError>> + Send;

    /// The owner the peer attests for each of `names` it vouches for (`SyncOwners`).
    fn owners(
        &self,
        peer: PeerId,
        names: Vec<String>,
    ) -> impl Future<Output = Result<Vec<(String, PublisherId)>, NetError>> + Send;

    /// `peer` sent something invalid.
    fn penalize(&self, peer: PeerId) -> impl Future<Output = ()> + Send;

    /// Where received records are counted, if anywhere.
    fn metrics(&self) -> Option<&super::Metrics> {
        None
    }
}

/// Anti-entropy with one peer: compare bucket digests, list differing buckets, fetch
/// the records we lack in batches. Returns records added to the store.
pub(crate) async fn run<S: SyncSource>(
    source: &S,
    store: &Store,
    peer: PeerId,
) -> Result<usize, NetError> {
    let theirs = source.summary(peer).await?;
    let ours = store.call(|store| store.sync_ids()).await?;
    let differing = differing_buckets(&bucket_digests(&ours), &theirs);
    // A few bucket listings in flight at once: a fresh node differs in all 256.
    let mut listings = futures::stream::iter(differing)
        .map(|bucket| async move { (bucket, source.bucket(peer, bucket).await) })
        .buffer_unordered(BUCKETS_IN_FLIGHT);
    let mut wanted: Vec<RecordId> = Vec::new();
    while let Some((bucket, ids)) = listings.next().await {
        wanted.extend(missing(&ours, bucket, &ids?));
    }
    drop(listings);
    let mut gained = 0;
    while !wanted.is_empty() {
        let batch: Vec<RecordId> = wanted.iter().take(MAX_IDS_PER_REQUEST).copied().collect();
        let bytes = source.records(peer, batch).await?;
        if bytes.is_empty() {
            break;
        }
        let received: HashSet<RecordId> = bytes.iter().map(|b| Blake3Hash::of(b)).collect();
        gained += ingest(source, store, peer, bytes, RecordPath::sync).await?;
        let before = wanted.len();
        wanted.retain(|id| !received.contains(id));
        if wanted.len() == before {
            break; // the peer sent nothing we asked for: stop rather than loop
        }
    }
    exchange_owners(source, store, peer).await?;
    Ok(gained)
}

/// Asks `peer` which owner it attests for the names met contested here, and keeps the
/// answer (it counts towards the majority those names adopt). A peer that cannot answer
/// (an older revision, or busy) just attests nothing this time.
pub(crate) async fn exchange_owners<S: SyncSource>(
    source: &S,
    store: &Store,
    peer: PeerId,
) -> Result<(), NetError> {
    let names = store
        .call(|store| store.contested_names(MAX_OWNER_NAMES))
        .await?;
    if names.is_empty() {
        return Ok(());
    }
    let owners = match source.owners(peer, names.clone()).await {
        Ok(owners) => owners,
        Err(e) => {
            tracing::debug!("owner attestations from {peer}: {e}");
            return Ok(());
        }
    };
    // Only answers to what was asked count: a peer cannot vote on other names.
    let owners: Vec<(String, PublisherId)> = owners
        .into_iter()
        .filter(|(name, _)| names.contains(name))
        .take(MAX_OWNER_NAMES)
        .collect();
    let from = peer.to_string();
    let kept = store
        .call(move |store| store.record_attestations(&from, &owners))
        .await?;
    tracing::debug!("owner attestations from {peer}: {kept} kept");
    Ok(())
}

/// Verifies and ingests records `peer` sent; each invalid one counts against it.
/// Returns how many were new.
pub(crate) async fn ingest<S: SyncSource>(
    source: &S,
    store: &Store,
    peer: PeerId,
    bytes: Vec<Vec<u8>>,
    path: RecordPath,
) -> Result<usize, NetError> {
    let mut valid = Vec::with_capacity(bytes.len());
    for item in bytes {
        match parse_record(item) {
            Ok(record) => valid.push(record),
            Err(reason) => {
                tracing::debug!("invalid record from {peer}: {reason}");
                if let Some(metrics) = source.metrics() {
                    metrics.invalid(path);
                }
                source.penalize(peer).await;
            }
        }
    }
    if valid.is_empty() {
        return Ok(0);
    }
    let count = valid.len();
    let outcomes = store.call(move |store| store.ingest_many(&valid)).await;
    if let Some(metrics) = source.metrics() {
        match &outcomes {
            Ok(outcomes) => outcomes.iter().for_each(|o| metrics.ingested(path, o)),
            Err(_) => metrics.store_failed(path, count),
        }
    }
    let outcomes = outcomes?;
    Ok(outcomes
        .iter()
        .filter(|o| matches!(o, IngestOutcome::Added))
        .count())
}

/// Number of buckets: one per value of an id's first byte.
pub const BUCKETS: usize = 256;

/// Digest of one bucket: BLAKE3 over its sorted ids; all zeros for an empty bucket so
/// empty buckets compare equal without hashing.
pub fn bucket_digests(ids: &[RecordId]) -> Vec<[u8; 32]> {
    let mut sorted: Vec<&RecordId> = ids.iter().collect();
    sorted.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    sorted.dedup();
    let mut hashers: Vec<Option<blake3::Hasher>> = (0..BUCKETS).map(|_| None).collect();
    for id in sorted {
        hashers[usize::from(id.as_bytes()[0])]
            .get_or_insert_with(blake3::Hasher::new)
            .update(id.as_bytes());
    }
    hashers
        .into_iter()
        .map(|h| h.map(|h| *h.finalize().as_bytes()).unwrap_or([0; 32]))
        .collect()
}

/// Buckets worth asking about: the peer's digest differs from ours and is not empty
/// (entries past a short summary are skipped, not guessed).
pub fn differing_buckets(ours: &[[u8; 32]], theirs: &[[u8; 32]]) -> Vec<u8> {
    (0..BUCKETS)
        .filter(|&b| ours.get(b) != theirs.get(b) && theirs.get(b).is_some_and(|d| *d != [0; 32]))
        .map(|b| b as u8)
        .collect()
}

/// Ids of `bucket` in `ids`.
pub fn ids_in_bucket(ids: &[RecordId], bucket: u8) -> Vec<RecordId> {
    ids.iter()
        .filter(|id| id.as_bytes()[0] == bucket)
        .copied()
        .collect()
}

/// Ids the peer listed for `bucket` that we do not have (ids outside the bucket, which
/// an honest peer never sends, are ignored).
pub fn missing(ours: &[RecordId], bucket: u8, theirs: &[RecordId]) -> Vec<RecordId> {
    let have: std::collections::HashSet<&Blake3Hash> = ours.iter().collect();
    let mut out: Vec<RecordId> = theirs
        .iter()
        .filter(|id| id.as_bytes()[0] == bucket && !have.contains(id))
        .copied()
        .collect();
    out.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;
    use crate::package::PublisherKey;
    use crate::store::test_util::version;

    /// A peer in memory: answers from its records (raw bytes keyed by id), and can be
    /// told to withhold records or to list ids it cannot serve.
    #[derive(Default)]
    struct MemPeer {
        records: HashMap<RecordId, Vec<u8>>,
        withhold: bool,
        /// What it attests when asked for owners.
        owners: Vec<(String, PublisherId)>,
        asked: Mutex<usize>,
        penalties: Mutex<u32>,
    }

    impl MemPeer {
        fn with(records: &[Vec<u8>]) -> Self {
            Self {
                records: records
                    .iter()
                    .map(|b| (Blake3Hash::of(b), b.clone()))
                    .collect(),
                ..Self::default()
            }
        }

        fn ids(&self) -> Vec<RecordId> {
            self.records.keys().copied().collect()
        }
    }

    impl SyncSource for MemPeer {
        async fn summary(&self, _: PeerId) -> Result<Vec<[u8; 32]>, NetError> {
            Ok(bucket_digests(&self.ids()))
        }

        async fn bucket(&self, _: PeerId, bucket: u8) -> Result<Vec<RecordId>, NetError> {
            Ok(ids_in_bucket(&self.ids(), bucket))
        }

        async fn records(&self, _: PeerId, ids: Vec<RecordId>) -> Result<Vec<Vec<u8>>, NetError> {
            assert!(
                ids.len() <= MAX_IDS_PER_REQUEST,
                "batches respect the limit"
            );
            *self.asked.lock().unwrap() += 1;
            if self.withhold {
                return Ok(Vec::new());
            }
            Ok(ids
                .iter()
                .filter_map(|id| self.records.get(id).cloned())
                .collect())
        }

        async fn owners(
            &self,
            _: PeerId,
            names: Vec<String>,
        ) -> Result<Vec<(String, PublisherId)>, NetError> {
            Ok(self
                .owners
                .iter()
                .filter(|(name, _)| names.contains(name))
                .cloned()
                .collect())
        }

        async fn penalize(&self, _: PeerId) {
            *self.penalties.lock().unwrap() += 1;
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    fn records(key: &PublisherKey, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                version(key, "pkg", &format!("1.0.{i}"), i as u64)
                    .as_bytes()
                    .to_vec()
            })
            .collect()
    }

    #[tokio::test]
    async fn a_fresh_node_gains_everything_and_a_second_run_nothing() {
        let key = PublisherKey::generate();
        let peer = MemPeer::with(&records(&key, 40));
        let (_dir, store) = store();
        let id = PeerId::random();
        assert_eq!(run(&peer, &store, id).await.unwrap(), 40);
        let mut ours = store.record_ids().unwrap();
        let mut theirs = peer.ids();
        ours.sort_unstable_by_key(|id| *id.as_bytes());
        theirs.sort_unstable_by_key(|id| *id.as_bytes());
        assert_eq!(ours, theirs);
        let asked = *peer.asked.lock().unwrap();
        assert_eq!(run(&peer, &store, id).await.unwrap(), 0);
        assert_eq!(
            *peer.asked.lock().unwrap(),
            asked,
            "nothing asked when in sync"
        );
        assert_eq!(*peer.penalties.lock().unwrap(), 0);
    }

    #[tokio::test]
    async fn only_the_missing_records_are_fetched() {
        let key = PublisherKey::generate();
        let all = records(&key, 10);
        let (_dir, store) = store();
        for bytes in &all[..7] {
            store.ingest(&parse_record(bytes.clone()).unwrap()).unwrap();
        }
        let peer = MemPeer::with(&all);
        assert_eq!(run(&peer, &store, PeerId::random()).await.unwrap(), 3);
        assert_eq!(store.record_ids().unwrap().len(), 10);
    }

    #[tokio::test]
    async fn a_peer_that_sends_nothing_asked_for_ends_the_sync() {
        let key = PublisherKey::generate();
        let peer = MemPeer {
            withhold: true,
            ..MemPeer::with(&records(&key, 5))
        };
        let (_dir, store) = store();
        assert_eq!(run(&peer, &store, PeerId::random()).await.unwrap(), 0);
        assert_eq!(*peer.asked.lock().unwrap(), 1, "asked once, then stopped");
        assert!(store.record_ids().unwrap().is_empty());
    }

    #[tokio::test]
    async fn invalid_records_are_penalised_and_valid_ones_kept() {
        let key = PublisherKey::generate();
        let mut all = records(&key, 3);
        let mut forged = all[0].clone();
        let last = forged.len() - 1;
        forged[last] ^= 1; // breaks the signature
        all.push(forged);
        all.push(b"not a record".to_vec());
        let peer = MemPeer::with(&all);
        let (_dir, store) = store();
        assert_eq!(run(&peer, &store, PeerId::random()).await.unwrap(), 3);
        assert_eq!(*peer.penalties.lock().unwrap(), 2);
        assert_eq!(store.record_ids().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_peer_error_is_the_sync_error() {
        struct Broken;
        impl SyncSource for Broken {
            async fn summary(&self, peer: PeerId) -> Result<Vec<[u8; 32]>, NetError> {
                Err(NetError::Request {
                    peer,
                    reason: "sync summary: peer error: busy".into(),
                })
            }
            async fn bucket(&self, _: PeerId, _: u8) -> Result<Vec<RecordId>, NetError> {
                unreachable!("no summary, no buckets")
            }
            async fn records(&self, _: PeerId, _: Vec<RecordId>) -> Result<Vec<Vec<u8>>, NetError> {
                unreachable!("no summary, no records")
            }
            async fn owners(
                &self,
                _: PeerId,
                _: Vec<String>,
            ) -> Result<Vec<(String, PublisherId)>, NetError> {
                unreachable!("no summary, no owners")
            }
            async fn penalize(&self, _: PeerId) {}
        }
        let (_dir, store) = store();
        let err = run(&Broken, &store, PeerId::random()).await.unwrap_err();
        assert!(err.to_string().contains("busy"), "{err}");
    }

    /// Two nodes each holding one side of an equivocation (as a peer in memory sees it,
    /// any of its ids): after one sync each way both hold both records and agree the
    /// version is compromised, and a further sync finds nothing to fetch.
    #[tokio::test]
    async fn both_sides_of_an_equivocation_reach_both_nodes() {
        use crate::package::{Record, RecordBody};
        use crate::store::test_util::{archive, version_body};
        let key = PublisherKey::generate();
        let side = |seed: &str| {
            let mut body = version_body(&key, "pkg", "1.0.0", 5);
            body.archive = archive(seed);
            Record::sign(RecordBody::Version(body), &key).unwrap()
        };
        let (left, right) = (side("left"), side("right"));
        let (_a_dir, a) = store();
        let (_b_dir, b) = store();
        a.ingest(&left).unwrap();
        b.ingest(&right).unwrap();
        let id = PeerId::random();
        // b as a's peer, then a as b's peer, each serving its accepted record and evidence.
        let serve = |s: &Store| {
            let ids = s.sync_ids().unwrap();
            let bytes: Vec<Vec<u8>> = s
                .sync_records(&ids)
                .unwrap()
                .into_iter()
                .map(|r| r.as_bytes().to_vec())
                .collect();
            MemPeer::with(&bytes)
        };
        run(&serve(&b), &a, id).await.unwrap();
        assert_eq!(a.compromised("pkg").unwrap().len(), 1);
        run(&serve(&a), &b, id).await.unwrap();
        assert_eq!(b.compromised("pkg").unwrap(), a.compromised("pkg").unwrap());
        assert_eq!(a.sync_ids().unwrap(), b.sync_ids().unwrap());
        let peer = serve(&a);
        run(&peer, &b, id).await.unwrap();
        assert_eq!(*peer.asked.lock().unwrap(), 0, "in sync: nothing fetched");
    }

    /// A node that met a name with two claims at once asks each peer it syncs with for
    /// the owner it accepted; the majority of distinct peers decides.
    #[tokio::test]
    async fn contested_names_take_the_owner_most_peers_attest() {
        let (x, y) = (PublisherKey::generate(), PublisherKey::generate());
        let both = vec![
            version(&x, "tool", "1.0.0", 1).as_bytes().to_vec(),
            version(&y, "tool", "2.0.0", 2).as_bytes().to_vec(),
        ];
        let peer = |owner: &PublisherKey| MemPeer {
            owners: vec![("tool".into(), owner.id()), ("other".into(), y.id())],
            ..MemPeer::with(&both)
        };
        let (_dir, c) = store();
        // D first (attests Y): fetched both claims in one batch, so contested.
        run(&peer(&y), &c, PeerId::random()).await.unwrap();
        let standing = c.name_standing("tool").unwrap();
        assert!(standing.contested);
        assert_eq!(standing.attested.map(|a| a.owner), Some(y.id()));
        run(&peer(&x), &c, PeerId::random()).await.unwrap();
        assert_eq!(c.name_standing("tool").unwrap().attested, None, "a tie");
        run(&peer(&x), &c, PeerId::random()).await.unwrap();
        let attested = c.name_standing("tool").unwrap().attested.unwrap();
        assert_eq!(
            (attested.owner, attested.peers, attested.of),
            (x.id(), 2, 3)
        );
        let got = c.resolve("tool", &semver::VersionReq::STAR, None).unwrap();
        assert_eq!(got.publisher, x.id());
    }

    fn ids(n: u32) -> Vec<RecordId> {
        (0..n).map(|i| Blake3Hash::of(&i.to_le_bytes())).collect()
    }

    #[test]
    fn equal_sets_have_equal_digests_in_any_order() {
        let a = ids(1000);
        let mut b = a.clone();
        b.reverse();
        assert_eq!(bucket_digests(&a), bucket_digests(&b));
        assert!(differing_buckets(&bucket_digests(&a), &bucket_digests(&b)).is_empty());
    }

    #[test]
    fn one_extra_id_differs_in_exactly_its_bucket() {
        let ours = ids(1000);
        let mut theirs = ours.clone();
        let extra = Blake3Hash::of(b"extra");
        theirs.push(extra);
        let diff = differing_buckets(&bucket_digests(&ours), &bucket_digests(&theirs));
        assert_eq!(diff, vec![extra.as_bytes()[0]]);
        let listed = ids_in_bucket(&theirs, diff[0]);
        assert_eq!(missing(&ours, diff[0], &listed), vec![extra]);
    }

    #[test]
    fn buckets_only_we_have_are_not_requested() {
        let ours = ids(50);
        let diff = differing_buckets(&bucket_digests(&ours), &bucket_digests(&[]));
        assert!(diff.is_empty());
        let diff = differing_buckets(&bucket_digests(&ours), &[[1; 32]; 3]);
        assert_eq!(diff, vec![0, 1, 2]);
    }

    #[test]
    fn foreign_bucket_ids_are_ignored() {
        let theirs = ids(100);
        let bucket = theirs[0].as_bytes()[0];
        let got = missing(&[], bucket, &theirs);
        assert!(got.iter().all(|id| id.as_bytes()[0] == bucket));
        assert!(got.contains(&theirs[0]));
    }
}
