//! Anti-entropy without sockets: bucket digests of record ids (bucketed by first id
//! byte), which buckets differ, and which ids a peer has that we lack. The event loop and
//! the client only carry these values over request-response.

use crate::package::{Blake3Hash, RecordId};

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
    use super::*;

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
