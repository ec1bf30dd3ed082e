//! The owner rule (docs/decisions.md, "Owner of a name") as pure functions: from what a
//! node holds about a name's version records, the ranked claims and the owner. A pinned
//! key wins; otherwise the claimant whose earliest version has the smallest
//! `(published_at, publisher id)`. Reading the records and following key rotations to
//! each chain's oldest key is the SQLite side's job (`trust.rs`), not this file's.

use std::collections::BTreeMap;

use super::NameClaim;
use crate::package::PublisherId;

/// One stored version record of the name, its publisher already mapped to the oldest
/// key of its rotation chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct VersionSeen {
    pub publisher: PublisherId,
    /// When this node stored the record (ms): informs users, never decides ownership.
    pub received_at: u64,
    /// The publisher's own timestamp (ms): the same on every node.
    pub published_at: u64,
}

/// One claim per publisher (chain), in owner order: the pinned one first, then by
/// `(earliest published_at, publisher id)`. `pin` is the pinned key's oldest key.
pub(super) fn rank_claims(
    versions: impl IntoIterator<Item = VersionSeen>,
    pin: Option<PublisherId>,
) -> Vec<NameClaim> {
    let mut groups: BTreeMap<PublisherId, (u64, u64)> = BTreeMap::new();
    for seen in versions {
        let entry = groups.entry(seen.publisher).or_insert((u64::MAX, u64::MAX));
        entry.0 = entry.0.min(seen.received_at);
        entry.1 = entry.1.min(seen.published_at);
    }
    let mut claims: Vec<NameClaim> = groups
        .into_iter()
        .map(
            |(publisher, (first_seen_at, earliest_published_at))| NameClaim {
                publisher,
                first_seen_at,
                earliest_published_at,
                pinned: Some(publisher) == pin,
            },
        )
        .collect();
    claims.sort_by_key(|c| (!c.pinned, c.earliest_published_at, c.publisher));
    claims
}

/// The owner of a name: the pinned key (even with no version of the name yet), else the
/// first of [`rank_claims`]' claims, else nobody.
pub(super) fn owner(claims: &[NameClaim], pin: Option<PublisherId>) -> Option<PublisherId> {
    pin.or_else(|| claims.first().map(|c| c.publisher))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> PublisherId {
        PublisherId::from_bytes([byte; 32])
    }

    fn seen(publisher: u8, received_at: u64, published_at: u64) -> VersionSeen {
        VersionSeen {
            publisher: key(publisher),
            received_at,
            published_at,
        }
    }

    #[test]
    fn earliest_publication_wins_not_arrival_order() {
        // Key 2 reached this node first, but key 1 published first.
        let claims = rank_claims([seen(2, 10, 500), seen(1, 90, 100), seen(2, 95, 50)], None);
        // Key 2's earliest publication is 50 (its second record): it wins.
        assert_eq!(claims[0].publisher, key(2));
        assert_eq!(claims[0].first_seen_at, 10);
        assert_eq!(claims[0].earliest_published_at, 50);
        assert_eq!(claims[1].publisher, key(1));
        assert_eq!(owner(&claims, None), Some(key(2)));

        let claims = rank_claims([seen(2, 10, 500), seen(1, 90, 100)], None);
        assert_eq!(
            owner(&claims, None),
            Some(key(1)),
            "first seen does not decide"
        );
    }

    #[test]
    fn ties_go_to_the_smaller_key_whatever_the_input_order() {
        let forward = rank_claims([seen(7, 1, 100), seen(3, 2, 100)], None);
        let backward = rank_claims([seen(3, 2, 100), seen(7, 1, 100)], None);
        assert_eq!(forward, backward);
        assert_eq!(owner(&forward, None), Some(key(3)));
    }

    #[test]
    fn a_pin_wins_even_without_versions() {
        let claims = rank_claims([seen(1, 1, 1), seen(9, 2, 999)], Some(key(9)));
        assert_eq!(claims[0].publisher, key(9));
        assert!(claims[0].pinned && !claims[1].pinned);
        assert_eq!(owner(&claims, Some(key(9))), Some(key(9)));

        let claims = rank_claims([seen(1, 1, 1)], Some(key(5)));
        assert_eq!(claims.len(), 1);
        assert!(!claims[0].pinned);
        assert_eq!(owner(&claims, Some(key(5))), Some(key(5)));
    }

    #[test]
    fn no_versions_no_owner() {
        assert!(rank_claims([], None).is_empty());
        assert_eq!(owner(&[], None), None);
    }
}
