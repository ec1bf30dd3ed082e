//! The owner rule (docs/decisions.md, "Owner of a name") as pure functions: from what a
//! node holds about a name's version records, the ranked claims and the owner. A pinned
//! key wins; otherwise the owner this node first accepted (trust on first use); a
//! claim's own `published_at` never decides. Reading the records, the accepted owner and
//! following key rotations to each chain's oldest key is the SQLite side's job
//! (`trust.rs`), not this file's.

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

/// One claim per publisher (chain), in owner order: the pinned one first, then the
/// accepted owner, then by `(first seen here, publisher id)`. `pin` and `accepted` are
/// oldest keys of their chains. `published_at` is reported, never ranked on: a claimant
/// signs it itself, so a record dated 1970 would otherwise win.
pub(super) fn rank_claims(
    versions: impl IntoIterator<Item = VersionSeen>,
    pin: Option<PublisherId>,
    accepted: Option<PublisherId>,
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
    claims.sort_by_key(|c| {
        (
            !c.pinned,
            Some(c.publisher) != accepted,
            c.first_seen_at,
            c.publisher,
        )
    });
    claims
}

/// The owner of a name: the pinned key (even with no version of the name yet), else the
/// accepted owner while it still has a claim, else the first of [`rank_claims`]' claims,
/// else nobody.
pub(super) fn owner(
    claims: &[NameClaim],
    pin: Option<PublisherId>,
    accepted: Option<PublisherId>,
) -> Option<PublisherId> {
    pin.or(accepted.filter(|a| claims.iter().any(|c| c.publisher == *a)))
        .or_else(|| claims.first().map(|c| c.publisher))
}

/// The owner a name's peers attest, adopted by a node that met the name with competing
/// claims at once: the key a strict majority of the distinct peers that attested agree
/// on, with the tally `info` shows ("attested by `peers` of `of` peers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttestedOwner {
    pub owner: PublisherId,
    /// Distinct peers attesting `owner`.
    pub peers: usize,
    /// Distinct peers that attested any owner for the name.
    pub of: usize,
}

/// The strict majority of `votes` (one per peer: a later vote of the same peer replaces
/// its earlier one; keys already mapped to their chain's oldest key), or `None` when no
/// key has more than half of the peers (a tie leaves the name contested). The order of
/// the votes never matters.
pub(super) fn attested_owner<P: Ord>(
    votes: impl IntoIterator<Item = (P, PublisherId)>,
) -> Option<AttestedOwner> {
    let by_peer: BTreeMap<P, PublisherId> = votes.into_iter().collect();
    let mut tally: BTreeMap<PublisherId, usize> = BTreeMap::new();
    for owner in by_peer.values() {
        *tally.entry(*owner).or_default() += 1;
    }
    let of = by_peer.len();
    tally
        .into_iter()
        .find(|(_, peers)| peers * 2 > of)
        .map(|(owner, peers)| AttestedOwner { owner, peers, of })
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
    fn the_accepted_owner_wins_whatever_the_dates() {
        // Key 2 was accepted; key 1 claims a version dated long before (backdating).
        let claims = rank_claims([seen(2, 10, 500), seen(1, 90, 0)], None, Some(key(2)));
        assert_eq!(claims[0].publisher, key(2));
        assert_eq!(claims[1].publisher, key(1));
        assert_eq!(claims[1].earliest_published_at, 0, "reported, not ranked");
        assert_eq!(owner(&claims, None, Some(key(2))), Some(key(2)));
    }

    #[test]
    fn without_an_accepted_owner_first_seen_ranks_not_published_at() {
        let claims = rank_claims(
            [seen(2, 10, 500), seen(1, 90, 100), seen(2, 95, 50)],
            None,
            None,
        );
        assert_eq!(claims[0].publisher, key(2));
        assert_eq!(claims[0].first_seen_at, 10);
        assert_eq!(claims[0].earliest_published_at, 50);
        assert_eq!(owner(&claims, None, None), Some(key(2)));
        let claims = rank_claims([seen(2, 10, 500), seen(1, 90, 1)], None, None);
        assert_eq!(
            owner(&claims, None, None),
            Some(key(2)),
            "dates never decide"
        );
    }

    #[test]
    fn ties_go_to_the_smaller_key_whatever_the_input_order() {
        let forward = rank_claims([seen(7, 1, 100), seen(3, 1, 100)], None, None);
        let backward = rank_claims([seen(3, 1, 100), seen(7, 1, 100)], None, None);
        assert_eq!(forward, backward);
        assert_eq!(owner(&forward, None, None), Some(key(3)));
    }

    #[test]
    fn a_pin_wins_even_without_versions() {
        let claims = rank_claims([seen(1, 1, 1), seen(9, 2, 999)], Some(key(9)), Some(key(1)));
        assert_eq!(claims[0].publisher, key(9));
        assert!(claims[0].pinned && !claims[1].pinned);
        assert_eq!(owner(&claims, Some(key(9)), Some(key(1))), Some(key(9)));

        let claims = rank_claims([seen(1, 1, 1)], Some(key(5)), None);
        assert_eq!(claims.len(), 1);
        assert!(!claims[0].pinned);
        assert_eq!(owner(&claims, Some(key(5)), None), Some(key(5)));
    }

    #[test]
    fn the_majority_of_distinct_peers_is_adopted() {
        let votes = [("a", key(1)), ("b", key(1)), ("d", key(2))];
        let adopted = attested_owner(votes).unwrap();
        assert_eq!(
            adopted,
            AttestedOwner {
                owner: key(1),
                peers: 2,
                of: 3
            }
        );
        // Any order, the same answer.
        let mut reversed = votes;
        reversed.reverse();
        assert_eq!(attested_owner(reversed), Some(adopted));
        // One peer repeating itself is one vote: its latest.
        let repeated = [("d", key(2)), ("d", key(2)), ("a", key(1)), ("d", key(1))];
        assert_eq!(
            attested_owner(repeated),
            Some(AttestedOwner {
                owner: key(1),
                peers: 2,
                of: 2
            })
        );
        // A tie, or a plurality short of half, decides nothing.
        assert_eq!(attested_owner([("a", key(1)), ("d", key(2))]), None);
        assert_eq!(
            attested_owner([("a", key(1)), ("b", key(2)), ("c", key(3))]),
            None
        );
        assert_eq!(attested_owner(Vec::<(&str, PublisherId)>::new()), None);
    }

    #[test]
    fn no_versions_no_owner() {
        assert!(rank_claims([], None, Some(key(1))).is_empty());
        assert_eq!(owner(&[], None, Some(key(1))), None);
    }
}
