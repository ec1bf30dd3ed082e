//! Owner attestations, the SQLite side: which owner this node attests to peers for a
//! name, the attestations peers sent for the names this node met contested (one per
//! name and peer, in `owner_attestations`), and the majority it adopts from them. The
//! majority rule itself is `owner.rs`'s; attestations never touch a name this node
//! accepted uncontested, and a pin overrides them (`trust.rs`).

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::owner::{attested_owner, AttestedOwner};
use super::trust::{self, Chains};
use super::{now_ms, records, Error, Store, StoreError};
use crate::package::fields::normalize_name;
use crate::package::PublisherId;

/// How this node stands on a name's owner (`info`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameStanding {
    /// This node met the name with competing claims at once, so it had no owner of its
    /// own to trust.
    pub contested: bool,
    /// For a contested name: the owner a majority of the attesting peers agree on.
    pub attested: Option<AttestedOwner>,
}

/// The attested majority for `norm` if it is contested here (keys mapped to their
/// chain's oldest key), else `None`.
pub(super) fn majority(
    chains: &mut Chains<'_>,
    norm: &str,
) -> Result<Option<AttestedOwner>, rusqlite::Error> {
    let votes: Vec<(String, Vec<u8>)> = chains
        .conn()
        .prepare_cached("SELECT peer, owner FROM owner_attestations WHERE norm = ?1")?
        .query_map([norm], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut roots = Vec::with_capacity(votes.len());
    for (peer, key) in votes {
        if let Ok(key) = <[u8; 32]>::try_from(key) {
            roots.push((peer, chains.canonical(PublisherId::from_bytes(key))?));
        }
    }
    Ok(attested_owner(roots))
}

fn is_contested(conn: &Connection, norm: &str) -> Result<bool, rusqlite::Error> {
    Ok(trust::accepted(conn, norm)?.is_some_and(|(_, contested)| contested))
}

impl Store {
    /// Names (normalized) this node met contested, at most `limit`: the ones it asks its
    /// peers to attest an owner for.
    pub fn contested_names(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let names = conn
                .prepare_cached(
                    "SELECT norm FROM name_owners WHERE contested = 1 ORDER BY norm LIMIT ?1",
                )?
                .query_map([limit as i64], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(names)
        })
    }

    /// The owner this node attests for each of `names` it can vouch for: a pinned key,
    /// else the owner it accepted uncontested. Names it met contested itself are left
    /// out (it would only echo what others told it).
    pub fn owners_to_attest(
        &self,
        names: &[String],
    ) -> Result<Vec<(String, PublisherId)>, StoreError> {
        self.read(|conn| {
            let mut out = Vec::new();
            for name in names {
                let norm = normalize_name(name);
                let pin = self.pin(&norm);
                let claims = trust::claims(conn, &norm, pin)?;
                let pinned = claims.iter().find(|c| c.pinned).map(|c| c.publisher);
                let owner = match pinned.or(pin) {
                    Some(key) => Some(key),
                    None => match trust::accepted(conn, &norm)? {
                        Some((key, false)) => Some(key),
                        _ => None,
                    },
                };
                if let Some(owner) = owner {
                    out.push((name.clone(), owner));
                }
            }
            Ok(out)
        })
    }

    /// Keeps what `peer` attests for names this node met contested (others are ignored:
    /// an owner accepted here is never displaced) and recomputes those names' rows.
    /// Returns how many attestations were kept.
    pub fn record_attestations(
        &self,
        peer: &str,
        owners: &[(String, PublisherId)],
    ) -> Result<usize, StoreError> {
        let now = now_ms();
        self.write(|tx, store| {
            let mut kept = 0;
            for (name, owner) in owners {
                let norm = normalize_name(name);
                if !is_contested(tx, &norm)? {
                    continue;
                }
                let before: Option<Vec<u8>> = tx
                    .prepare_cached(
                        "SELECT owner FROM owner_attestations WHERE norm = ?1 AND peer = ?2",
                    )?
                    .query_row(params![norm, peer], |row| row.get(0))
                    .optional()?;
                kept += 1;
                if before.as_deref() == Some(owner.as_bytes().as_slice()) {
                    continue;
                }
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO owner_attestations (norm, peer, owner, attested_at)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![
                    norm,
                    peer,
                    owner.as_bytes().as_slice(),
                    now as i64
                ])?;
                records::refresh_name(tx, store, &norm, None)?;
            }
            Ok::<_, Error>(kept)
        })
    }

    /// Whether this node met `name` contested, and the owner its peers attest.
    pub fn name_standing(&self, name: &str) -> Result<NameStanding, StoreError> {
        let norm = normalize_name(name);
        self.read(|conn| {
            if !is_contested(conn, &norm)? {
                return Ok(NameStanding::default());
            }
            let mut chains = Chains::new(conn);
            Ok(NameStanding {
                contested: true,
                attested: majority(&mut chains, &norm)?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use semver::{Version, VersionReq};

    use super::*;
    use crate::package::PublisherKey;
    use crate::store::test_util::version;

    #[test]
    fn a_contested_name_adopts_the_attested_majority_and_an_accepted_one_ignores_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let x = PublisherKey::generate();
        let y = PublisherKey::generate();
        // Met with competing claims at once: contested, no default owner.
        store
            .ingest_many(&[
                version(&y, "tool", "2.0.0", 1),
                version(&x, "tool", "1.0.0", 2),
            ])
            .unwrap();
        assert_eq!(store.contested_names(10).unwrap(), vec!["tool".to_string()]);
        assert!(store.resolve("tool", &VersionReq::STAR, None).is_err());
        assert_eq!(
            store.owners_to_attest(&["tool".into()]).unwrap(),
            vec![],
            "a contested node does not echo"
        );

        let attest = |peer: &str, key: &PublisherKey| {
            store
                .record_attestations(peer, &[("tool".into(), key.id())])
                .unwrap()
        };
        assert_eq!(attest("d", &y), 1);
        assert_eq!(attest("a", &x), 1);
        let standing = store.name_standing("tool").unwrap();
        assert!(standing.contested);
        assert_eq!(standing.attested, None, "1 against 1 decides nothing");
        assert_eq!(attest("b", &x), 1);
        let standing = store.name_standing("tool").unwrap();
        assert_eq!(
            standing.attested,
            Some(AttestedOwner {
                owner: x.id(),
                peers: 2,
                of: 3
            })
        );
        let got = store.resolve("tool", &VersionReq::STAR, None).unwrap();
        assert_eq!(
            (got.publisher, got.version.clone()),
            (x.id(), Version::new(1, 0, 0))
        );
        assert_eq!(store.claims("tool").unwrap()[0].publisher, x.id());
        let hits = store
            .search(&crate::store::Query::new(vec!["tool".into()]))
            .unwrap();
        assert_eq!(hits[0].package.publisher, x.id());

        // A pin still overrides the peers.
        store.set_pins([("tool".to_string(), y.id())].into());
        let got = store.resolve("tool", &VersionReq::STAR, None).unwrap();
        assert_eq!(got.publisher, y.id());
        store.set_pins(Default::default());

        // A name accepted uncontested is never displaced, whatever peers say.
        store.ingest(&version(&x, "mine", "1.0.0", 1)).unwrap();
        store.ingest(&version(&y, "mine", "9.0.0", 1)).unwrap();
        for peer in ["a", "b", "c"] {
            assert_eq!(
                store
                    .record_attestations(peer, &[("mine".into(), y.id())])
                    .unwrap(),
                0
            );
        }
        let got = store.resolve("mine", &VersionReq::STAR, None).unwrap();
        assert_eq!(got.publisher, x.id());
        assert_eq!(
            store.name_standing("mine").unwrap(),
            NameStanding::default()
        );
        assert_eq!(
            store
                .owners_to_attest(&["mine".into(), "unknown".into()])
                .unwrap(),
            vec![("mine".to_string(), x.id())]
        );
    }
}
