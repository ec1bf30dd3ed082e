//! Who owns a name, and resolution on top of that: the SQLite side of the owner rule
//! (whose pure form is `owner.rs`: the pinned key if configured, else the owner this node
//! first accepted, kept in `name_owners`; a claim's own date never decides). Rotated keys
//! count as their oldest key.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection, OptionalExtension};
use semver::{Version, VersionReq};

use super::owner::{self, VersionSeen};
use super::search::IndexedVersion;
use super::{attest, equivocation, pins, records, Error, NameClaim, Store, StoreError};
use crate::package::fields::normalize_name;
use crate::package::{PublisherId, PublisherRef};

/// Follows key rotations back to the oldest key of a chain, with a cache per operation.
pub(super) struct Chains<'c> {
    conn: &'c Connection,
    cache: HashMap<PublisherId, PublisherId>,
}

impl<'c> Chains<'c> {
    pub fn new(conn: &'c Connection) -> Self {
        Self {
            conn,
            cache: HashMap::new(),
        }
    }

    pub fn conn(&self) -> &'c Connection {
        self.conn
    }

    /// The oldest key `key` acts for. When a key was rotated into from several old keys,
    /// the earliest rotation (then the smallest old key) wins, so the answer is stable.
    pub fn canonical(&mut self, key: PublisherId) -> Result<PublisherId, rusqlite::Error> {
        if let Some(root) = self.cache.get(&key) {
            return Ok(*root);
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT old FROM rotations WHERE new = ?1 ORDER BY rotated_at, old LIMIT 1",
        )?;
        let mut current = key;
        let mut path = vec![key];
        loop {
            let old: Option<Vec<u8>> = stmt
                .query_row([current.as_bytes().as_slice()], |row| row.get(0))
                .map(Some)
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(None),
                    e => Err(e),
                })?;
            let Some(old) = old.and_then(|bytes| <[u8; 32]>::try_from(bytes).ok()) else {
                break;
            };
            let old = PublisherId::from_bytes(old);
            if let Some(start) = path.iter().position(|k| *k == old) {
                // A rotation cycle: every key on it stands for the smallest one, so all
                // of them agree whichever they start from.
                current = path[start..].iter().min().copied().unwrap_or(old);
                break;
            }
            path.push(old);
            current = old;
        }
        self.cache.insert(key, current);
        Ok(current)
    }
}

/// The owner this node accepted for `norm`, as stored (not mapped to its oldest key), and
/// whether it met the name with competing claims.
pub(super) fn accepted(
    conn: &Connection,
    norm: &str,
) -> Result<Option<(PublisherId, bool)>, rusqlite::Error> {
    let row: Option<(Vec<u8>, bool)> = conn
        .prepare_cached("SELECT owner, contested FROM name_owners WHERE norm = ?1")?
        .query_row([norm], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(key, contested)| {
        <[u8; 32]>::try_from(key)
            .ok()
            .map(|key| (PublisherId::from_bytes(key), contested))
    }))
}

/// Trust on first use: the first publisher a version of `norm` is accepted from becomes
/// its owner here, unless the name has one already. True when this call set it.
pub(super) fn accept_owner(
    conn: &Connection,
    norm: &str,
    publisher: &PublisherId,
    now: u64,
) -> Result<bool, rusqlite::Error> {
    let changed = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO name_owners (norm, owner, accepted_at) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![norm, publisher.as_bytes().as_slice(), now as i64])?;
    Ok(changed > 0)
}

/// Marks `norm` contested: this node met it with competing claims at once, so it has no
/// owner of its own to trust and installs need `--publisher` (or a pin).
pub(super) fn mark_contested(conn: &Connection, norm: &str) -> Result<(), rusqlite::Error> {
    conn.prepare_cached("UPDATE name_owners SET contested = 1 WHERE norm = ?1")?
        .execute([norm])?;
    Ok(())
}

/// The accepted owner of `norm` mapped to its oldest key, and whether it is contested
/// (still undecided). A name met contested takes the owner a majority of its attesting
/// peers agree on (`attest.rs`), which then counts as accepted and decided.
fn accepted_root(
    chains: &mut Chains<'_>,
    norm: &str,
) -> Result<(Option<PublisherId>, bool), rusqlite::Error> {
    match accepted(chains.conn, norm)? {
        Some((key, true)) => match attest::majority(chains, norm)? {
            Some(adopted) => Ok((Some(adopted.owner), false)),
            None => Ok((Some(chains.canonical(key)?), true)),
        },
        Some((key, false)) => Ok((Some(chains.canonical(key)?), false)),
        None => Ok((None, false)),
    }
}

/// Claims on `norm`, one per rotation chain, in owner order: pinned first, then the
/// accepted owner, then by `(first seen, publisher)`.
pub(super) fn claims(
    conn: &Connection,
    norm: &str,
    pin: Option<PublisherId>,
) -> Result<Vec<NameClaim>, Error> {
    let mut chains = Chains::new(conn);
    let pin = pin.map(|key| chains.canonical(key)).transpose()?;
    let (accepted, _) = accepted_root(&mut chains, norm)?;
    let mut stmt = conn.prepare_cached(
        "SELECT v.publisher, MIN(r.received_at), MIN(v.published_at)
         FROM versions v JOIN records r ON r.rid = v.rid
         WHERE v.norm = ?1 GROUP BY v.publisher",
    )?;
    let rows = stmt.query_map([norm], |row| {
        Ok((
            row.get::<_, Vec<u8>>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, i64>(2)?,
        ))
    })?;
    let mut versions = Vec::new();
    for row in rows {
        let (key, seen, published) = row?;
        let Ok(key) = <[u8; 32]>::try_from(key) else {
            continue;
        };
        versions.push(VersionSeen {
            publisher: chains.canonical(PublisherId::from_bytes(key))?,
            received_at: seen as u64,
            published_at: published as u64,
        });
    }
    let pin = match pin {
        Some(pin) => Some(pin),
        None => {
            let roots: Vec<PublisherId> = versions.iter().map(|v| v.publisher).collect();
            pins::persisted_pin(&mut chains, norm, &roots)?
        }
    };
    Ok(owner::rank_claims(versions, pin, accepted))
}

/// The pin in force: the configured one (oldest key), else a `trust` pin that ranked
/// first in `claims`.
fn pinned_root(
    chains: &mut Chains<'_>,
    claims: &[NameClaim],
    pin: Option<PublisherId>,
) -> Result<Option<PublisherId>, rusqlite::Error> {
    match pin {
        Some(pin) => Ok(Some(chains.canonical(pin)?)),
        None => Ok(claims.iter().find(|c| c.pinned).map(|c| c.publisher)),
    }
}

/// The chain that owns `norm` ([`owner::owner`] with the pin and the accepted owner
/// mapped to their oldest keys).
pub(super) fn owner(
    conn: &Connection,
    norm: &str,
    claims: &[NameClaim],
    pin: Option<PublisherId>,
) -> Result<Option<PublisherId>, rusqlite::Error> {
    let mut chains = Chains::new(conn);
    let pin = pinned_root(&mut chains, claims, pin)?;
    let (accepted, _) = accepted_root(&mut chains, norm)?;
    Ok(owner::owner(claims, pin, accepted))
}

/// The chain installs of `norm` use without `--publisher`: the pin, else the accepted
/// owner unless the name is contested here; `None` when the claims leave it open.
fn default_chain(
    chains: &mut Chains<'_>,
    norm: &str,
    claims: &[NameClaim],
    pin: Option<PublisherId>,
) -> Result<Option<PublisherId>, rusqlite::Error> {
    if let Some(pin) = pinned_root(chains, claims, pin)? {
        return Ok(Some(pin));
    }
    let (accepted, contested) = accepted_root(chains, norm)?;
    if claims.len() <= 1 {
        return Ok(owner::owner(claims, None, accepted));
    }
    Ok(accepted.filter(|a| !contested && claims.iter().any(|c| c.publisher == *a)))
}

/// "gpA (pinned), gpB" or "gpA (accepted here), gpB" for error messages.
fn list_claimants(claims: &[NameClaim], accepted: Option<PublisherId>) -> String {
    claims
        .iter()
        .map(|c| {
            let mut text = c.publisher.to_string();
            if c.pinned {
                text.push_str(" (pinned)");
            } else if Some(c.publisher) == accepted {
                text.push_str(" (accepted here)");
            }
            text
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn list_versions(versions: &[IndexedVersion]) -> String {
    if versions.is_empty() {
        return "none".into();
    }
    versions
        .iter()
        .map(|m| {
            if m.yanked {
                format!("{} (yanked)", m.version)
            } else {
                m.version.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Publishers claiming a name, owner first (see the module doc for the rule).
    pub fn claims(&self, name: &str) -> Result<Vec<NameClaim>, StoreError> {
        let norm = normalize_name(name);
        let pin = self.pin(&norm);
        self.read(|conn| claims(conn, &norm, pin))
    }

    /// The key `publisher` names among those that published `name`: a full id as is, a
    /// prefix when exactly one key (or rotation chain) of the name starts with it.
    pub fn find_publisher(
        &self,
        name: &str,
        publisher: &PublisherRef,
    ) -> Result<PublisherId, StoreError> {
        if let Some(id) = publisher.exact() {
            return Ok(id);
        }
        let norm = normalize_name(name);
        let pin = self.pin(&norm);
        self.read(|conn| {
            let mut chains = Chains::new(conn);
            let mut found: BTreeMap<PublisherId, PublisherId> = BTreeMap::new();
            for meta in records::name_versions(conn, &norm)? {
                if publisher.matches(&meta.publisher) {
                    found.insert(chains.canonical(meta.publisher)?, meta.publisher);
                }
            }
            let claims = claims(conn, &norm, pin)?;
            for c in &claims {
                if publisher.matches(&c.publisher) {
                    found.insert(c.publisher, c.publisher);
                }
            }
            match found.len() {
                1 => Ok(found.into_values().next().expect("one match")),
                0 => {
                    let (accepted, _) = accepted_root(&mut chains, &norm)?;
                    Err(StoreError::NoPublisherPrefix {
                        name: name.to_string(),
                        prefix: publisher.to_string(),
                        claimants: list_claimants(&claims, accepted),
                    }
                    .into())
                }
                _ => Err(StoreError::AmbiguousPublisherPrefix {
                    name: name.to_string(),
                    prefix: publisher.to_string(),
                    matches: found
                        .values()
                        .map(|k| k.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                }
                .into()),
            }
        })
    }

    /// Every version of a name (normalized compare) from every publisher, newest first,
    /// yanked included (flagged).
    pub fn versions(&self, name: &str) -> Result<Vec<IndexedVersion>, StoreError> {
        let norm = normalize_name(name);
        self.read(|conn| records::name_versions(conn, &norm))
    }

    /// Highest non-yanked version matching `req` from the name's owner, or from
    /// `publisher` (or a key it rotated to or from) when given.
    pub fn resolve(
        &self,
        name: &str,
        req: &VersionReq,
        publisher: Option<&PublisherId>,
    ) -> Result<IndexedVersion, StoreError> {
        let (candidates, from) = self.chain_versions(name, publisher)?;
        let norm = normalize_name(name);
        let compromised = self.read(|conn| equivocation::name_compromised(conn, &norm))?;
        let matching = || {
            candidates
                .iter()
                .filter(|m| !m.yanked && req.matches(&m.version))
        };
        // Compromised versions are skipped; one is returned only when nothing else
        // matches, for `info` to show and `install` to refuse with its explanation.
        matching()
            .filter(|m| {
                !compromised
                    .iter()
                    .any(|c| c.publisher == m.publisher && c.version == m.version)
            })
            .max_by(|a, b| a.version.cmp(&b.version))
            .or_else(|| matching().max_by(|a, b| a.version.cmp(&b.version)))
            .cloned()
            .ok_or_else(|| StoreError::NoMatch {
                name: name.to_string(),
                req: req.to_string(),
                publisher: from.map(|p| format!(" from {p}")).unwrap_or_default(),
                available: list_versions(&candidates),
            })
    }

    /// Exact version (yanked allowed: lockfiles still fetch it).
    pub fn version(
        &self,
        name: &str,
        version: &Version,
        publisher: Option<&PublisherId>,
    ) -> Result<Option<IndexedVersion>, StoreError> {
        let norm = normalize_name(name);
        let pin = self.pin(&norm);
        self.read(|conn| {
            let all: Vec<IndexedVersion> = records::name_versions(conn, &norm)?
                .into_iter()
                .filter(|m| &m.version == version)
                .collect();
            let mut chains = Chains::new(conn);
            let wanted = match publisher.copied() {
                Some(key) => Some(chains.canonical(key)?),
                None => {
                    let claims = claims(conn, &norm, pin)?;
                    default_chain(&mut chains, &norm, &claims, pin)?
                }
            };
            let mut by_chain: BTreeMap<PublisherId, IndexedVersion> = BTreeMap::new();
            for meta in all {
                let root = chains.canonical(meta.publisher)?;
                if wanted.is_none_or(|w| w == root) {
                    by_chain.entry(root).or_insert(meta);
                }
            }
            if by_chain.len() > 1 {
                let claims: Vec<NameClaim> = claims(conn, &norm, pin)?
                    .into_iter()
                    .filter(|c| by_chain.contains_key(&c.publisher))
                    .collect();
                let (accepted, _) = accepted_root(&mut chains, &norm)?;
                return Err(StoreError::Ambiguous {
                    name: name.to_string(),
                    claimants: list_claimants(&claims, accepted),
                }
                .into());
            }
            Ok(by_chain.into_values().next())
        })
    }

    /// Every version of `name` (yanked included, flagged) from its owner's rotation chain,
    /// or from `publisher`'s: the candidates a dependency resolution chooses among.
    pub fn owned_versions(
        &self,
        name: &str,
        publisher: Option<&PublisherId>,
    ) -> Result<Vec<IndexedVersion>, StoreError> {
        Ok(self.chain_versions(name, publisher)?.0)
    }

    /// Versions of `name` from the chosen rotation chain, and the key named in errors.
    fn chain_versions(
        &self,
        name: &str,
        publisher: Option<&PublisherId>,
    ) -> Result<(Vec<IndexedVersion>, Option<PublisherId>), StoreError> {
        let norm = normalize_name(name);
        let pin = self.pin(&norm);
        self.read(|conn| {
            let all = records::name_versions(conn, &norm)?;
            if all.is_empty() {
                return Err(StoreError::UnknownName {
                    name: name.to_string(),
                }
                .into());
            }
            let claims = claims(conn, &norm, pin)?;
            let mut chains = Chains::new(conn);
            let (accepted, _) = accepted_root(&mut chains, &norm)?;
            let chain = match publisher {
                Some(key) => {
                    let root = chains.canonical(*key)?;
                    if !claims.iter().any(|c| c.publisher == root) {
                        return Err(StoreError::NotPublishedBy {
                            name: name.to_string(),
                            publisher: *key,
                            claimants: list_claimants(&claims, accepted),
                        }
                        .into());
                    }
                    root
                }
                None => match default_chain(&mut chains, &norm, &claims, pin)? {
                    Some(chain) => chain,
                    None if claims.len() > 1 => {
                        return Err(StoreError::Ambiguous {
                            name: name.to_string(),
                            claimants: list_claimants(&claims, accepted),
                        }
                        .into());
                    }
                    None => {
                        return Err(StoreError::UnknownName {
                            name: name.to_string(),
                        }
                        .into())
                    }
                },
            };
            let mut mine = Vec::new();
            for meta in all {
                if chains.canonical(meta.publisher)? == chain {
                    mine.push(meta);
                }
            }
            Ok((mine, publisher.copied().or(pin)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::package::{KeyRotation, PublisherKey, PublisherRef, Record, RecordBody};
    use crate::store::test_util::{version, yank};
    use crate::store::{now_ms, IngestOutcome};

    fn req(text: &str) -> VersionReq {
        VersionReq::parse(text).unwrap()
    }

    #[test]
    fn resolve_picks_highest_unyanked_and_explains_failures() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = PublisherKey::generate();
        for v in ["1.0.0", "1.2.0", "1.3.0", "2.0.0"] {
            store.ingest(&version(&key, "web_kit", v, 10)).unwrap();
        }
        store.ingest(&yank(&key, "web-kit", "1.3.0")).unwrap();
        let got = store.resolve("web-kit", &req("^1"), None).unwrap();
        assert_eq!(got.version, Version::new(1, 2, 0));
        assert_eq!(got.name, "web_kit");
        let err = store.resolve("web-kit", &req("^3"), None).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("2.0.0, 1.3.0 (yanked), 1.2.0, 1.0.0"),
            "{text}"
        );
        let err = store.resolve("nope", &req("*"), None).unwrap_err();
        assert!(matches!(err, StoreError::UnknownName { .. }), "{err}");
        // exact version: yanked still returned
        let exact = store
            .version("web-kit", &Version::new(1, 3, 0), None)
            .unwrap()
            .unwrap();
        assert!(exact.yanked);
        assert!(store
            .version("web-kit", &Version::new(9, 0, 0), None)
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_later_claim_never_displaces_the_accepted_owner() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let owner = PublisherKey::generate();
        let squatter = PublisherKey::generate();
        store
            .ingest(&version(&owner, "tool", "1.0.0", now_ms()))
            .unwrap();
        // The backdating attack: a second key dates its claim 1970 and bumps the version.
        assert_eq!(
            store
                .ingest(&version(&squatter, "tool", "9.0.0", 0))
                .unwrap(),
            IngestOutcome::Added
        );
        let claims = store.claims("tool").unwrap();
        assert_eq!(claims.len(), 2);
        assert_eq!(claims[0].publisher, owner.id(), "first accepted owns");
        assert_eq!(claims[1].earliest_published_at, 0);
        let got = store.resolve("tool", &req("*"), None).unwrap();
        assert_eq!(
            (got.publisher, got.version.clone()),
            (owner.id(), Version::new(1, 0, 0))
        );
        let exact = store.version("tool", &Version::new(9, 0, 0), None).unwrap();
        assert!(exact.is_none(), "the squatter's version is not the name's");
        let hits = store
            .search(&crate::store::Query::new(vec!["tool".into()]))
            .unwrap();
        assert_eq!(hits[0].package.publisher, owner.id());
        assert!(hits[0].conflict, "the competing claim stays visible");
        // Survives a reopen: the owner is persisted, not recomputed from dates.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.claims("tool").unwrap()[0].publisher, owner.id());
        let chosen = store
            .resolve("tool", &req("*"), Some(&squatter.id()))
            .unwrap();
        assert_eq!(chosen.version, Version::new(9, 0, 0));
        let stranger = PublisherKey::generate();
        let err = store
            .resolve("tool", &req("*"), Some(&stranger.id()))
            .unwrap_err();
        assert!(matches!(err, StoreError::NotPublishedBy { .. }), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("{} (accepted here)", owner.id())),
            "{err}"
        );
        store.set_pins(BTreeMap::from([("tool".to_string(), squatter.id())]));
        let pinned = store.resolve("tool", &req("*"), None).unwrap();
        assert_eq!(pinned.publisher, squatter.id());
        assert!(store.claims("tool").unwrap()[0].pinned);
    }

    #[test]
    fn competing_claims_met_at_once_are_contested_until_chosen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = PublisherKey::generate();
        let second = PublisherKey::generate();
        store
            .ingest_many(&[
                version(&second, "tool", "1.0.0", 20),
                version(&first, "tool", "1.1.0", 10),
            ])
            .unwrap();
        let err = store.resolve("tool", &req("*"), None).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::Ambiguous { .. }), "{text}");
        assert!(text.contains("--publisher"), "{text}");
        assert!(text.contains(&first.id().to_string()), "{text}");
        assert!(text.contains(&second.id().to_string()), "{text}");
        let chosen = store
            .resolve("tool", &req("*"), Some(&second.id()))
            .unwrap();
        assert_eq!(chosen.version, Version::new(1, 0, 0));
        // One claimant per batch is not contested.
        store
            .ingest_many(&[
                version(&first, "solo", "1.0.0", 10),
                version(&first, "solo", "1.1.0", 11),
            ])
            .unwrap();
        assert!(store.resolve("solo", &req("*"), None).is_ok());
    }

    #[test]
    fn publishers_are_found_by_any_unambiguous_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Two keys sharing their first character after "gp", so a prefix can be ambiguous.
        let first = PublisherKey::generate();
        let second = std::iter::repeat_with(PublisherKey::generate)
            .find(|k| k.id().to_string()[..3] == first.id().to_string()[..3])
            .unwrap();
        store
            .ingest_many(&[
                version(&first, "tool", "1.0.0", 10),
                version(&second, "tool", "2.0.0", 20),
            ])
            .unwrap();
        let prefix = |text: &str| text.parse::<PublisherRef>().unwrap();
        let short = prefix(&first.id().short());
        assert_eq!(store.find_publisher("tool", &short).unwrap(), first.id());
        let full = PublisherRef::from(second.id());
        assert_eq!(store.find_publisher("tool", &full).unwrap(), second.id());
        let common = prefix(&first.id().to_string()[..3]);
        let err = store.find_publisher("tool", &common).unwrap_err();
        assert!(
            matches!(err, StoreError::AmbiguousPublisherPrefix { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("type more"), "{err}");
        let stranger = std::iter::repeat_with(PublisherKey::generate)
            .find(|k| k.id().to_string()[..3] != first.id().to_string()[..3])
            .unwrap();
        let err = store
            .find_publisher("tool", &prefix(&stranger.id().short()))
            .unwrap_err();
        assert!(matches!(err, StoreError::NoPublisherPrefix { .. }), "{err}");
        assert!("gp".parse::<PublisherRef>().is_err());
        assert!("xx12".parse::<PublisherRef>().is_err());
    }

    #[test]
    fn records_dated_in_the_future_are_refused() {
        use crate::package::fields::MAX_CLOCK_SKEW_MS;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = PublisherKey::generate();
        let far = now_ms() + MAX_CLOCK_SKEW_MS + 60_000;
        let outcome = store.ingest(&version(&key, "later", "1.0.0", far)).unwrap();
        let IngestOutcome::Rejected { reason } = outcome else {
            panic!("accepted a record dated in the future: {outcome:?}");
        };
        assert!(reason.contains("future"), "{reason}");
        assert!(store.claims("later").unwrap().is_empty());
        let near = now_ms() + 60_000;
        assert_eq!(
            store
                .ingest(&version(&key, "later", "1.0.0", near))
                .unwrap(),
            IngestOutcome::Added,
            "small skew is tolerated"
        );
    }

    #[test]
    fn rotation_lets_the_new_key_act_for_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let old = PublisherKey::generate();
        let new = PublisherKey::generate();
        store.ingest(&version(&old, "lib", "1.0.0", 10)).unwrap();
        let rotation = Record::sign(
            RecordBody::Rotation(KeyRotation::new(old.id(), &new, 50)),
            &old,
        )
        .unwrap();
        assert_eq!(store.ingest(&rotation).unwrap(), IngestOutcome::Added);
        assert_eq!(store.ingest(&rotation).unwrap(), IngestOutcome::Duplicate);
        store.ingest(&version(&new, "lib", "2.0.0", 60)).unwrap();
        assert_eq!(store.claims("lib").unwrap().len(), 1, "not a conflict");
        let got = store.resolve("lib", &req("*"), None).unwrap();
        assert_eq!(got.version, Version::new(2, 0, 0));
        assert_eq!(got.publisher, new.id());
        // the new key may yank the old key's version
        assert_eq!(
            store.ingest(&yank(&new, "lib", "1.0.0")).unwrap(),
            IngestOutcome::Added
        );
        let err = store.resolve("lib", &req("^1"), None).unwrap_err();
        assert!(err.to_string().contains("1.0.0 (yanked)"), "{err}");
        let hits = store
            .search(&crate::store::Query::new(vec!["lib".into()]))
            .unwrap();
        assert!(!hits[0].conflict);
    }

    #[test]
    fn rotation_cycle_is_one_publisher() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = PublisherKey::generate();
        let b = PublisherKey::generate();
        let there = Record::sign(RecordBody::Rotation(KeyRotation::new(a.id(), &b, 1)), &a);
        let back = Record::sign(RecordBody::Rotation(KeyRotation::new(b.id(), &a, 2)), &b);
        store
            .ingest_many(&[
                there.unwrap(),
                back.unwrap(),
                version(&a, "cyc", "1.0.0", 1),
                version(&b, "cyc", "1.1.0", 2),
            ])
            .unwrap();
        let claims = store.claims("cyc").unwrap();
        assert_eq!(claims.len(), 1, "{claims:?}");
        assert_eq!(claims[0].publisher, a.id().min(b.id()));
    }
}
