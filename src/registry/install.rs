//! Install: resolve a name and requirement, make sure the archive is here (fetching it
//! from peers when a node runs), check it byte for byte, then unpack it atomically.
//!
//! Dependencies are resolved (`resolve.rs`), every missing archive is fetched in
//! parallel, and the whole tree — the pack at the target, each dependency in
//! `TARGET/.ggen-p2p/deps/NAME`, the lockfile at `TARGET/ggen-p2p.lock` — is built in a
//! staging directory and renamed into place at once; the installs are recorded after that.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::StreamExt;

use super::lifecycle;
use super::lockfile::{self, LockRoot, LockedPack, Lockfile};
use super::query::{lookup_missed, missed};
use super::reports::{DependencyInstall, InstallReport, FORMAT_VERSION};
use super::requests::{InstallRequest, Progress};
use super::resolve::{self, Candidate, Pins, Universe};
use super::{P2PRegistry, RegistryError, Result};
use crate::package::archive::{unpack, UnpackLimits, UnpackReport};
use crate::package::fields::normalize_name;
use crate::package::Blake3Hash;
use crate::store::{IndexedVersion, InstallRow, Store};

/// Reads `1.2.0` as exactly that version (as `cargo install foo@1.2.0` does) and anything
/// else as a semver requirement; empty means the latest.
pub fn parse_requirement(req: &str) -> Result<semver::VersionReq> {
    let req = req.trim();
    if req.is_empty() || req == "latest" {
        return Ok(semver::VersionReq::STAR);
    }
    if let Ok(version) = semver::Version::parse(req) {
        return Ok(semver::VersionReq {
            comparators: vec![semver::Comparator {
                op: semver::Op::Exact,
                major: version.major,
                minor: Some(version.minor),
                patch: Some(version.patch),
                pre: version.pre,
            }],
        });
    }
    semver::VersionReq::parse(req).map_err(|e| {
        RegistryError::Refused(format!(
            "{req:?} is not a version requirement ({e}); examples: 1.2.0, ^1.2, >=1.0, <2"
        ))
    })
}

/// Where a pack is installed when no `--to` is given.
pub(super) fn default_install_dir(
    data_dir: &Path,
    name: &str,
    version: &semver::Version,
) -> PathBuf {
    data_dir.join("packs").join(format!("{name}@{version}"))
}

/// Directory, inside an install target, that holds the target's dependencies (one
/// directory per pack, by name: resolution picks one version per pack).
pub const DEPS_DIR: &str = ".ggen-p2p";

/// Where dependency `name` of the pack installed at `target` lives.
pub fn dependency_dir(target: &Path, name: &str) -> PathBuf {
    target.join(DEPS_DIR).join("deps").join(name)
}

/// Archives fetched at once while installing a tree.
const PARALLEL_FETCHES: usize = 4;

pub(super) async fn install(
    registry: &P2PRegistry,
    request: InstallRequest,
    progress: Option<Progress>,
) -> Result<InstallReport> {
    let InstallRequest {
        spec,
        to,
        publisher,
        archive,
        locked,
    } = request;
    let exact = semver::Version::parse(spec.req.trim()).ok();
    let req = parse_requirement(&spec.req)?;
    let early_lock = match &to {
        Some(to) => Lockfile::read(to)?,
        None => None,
    };
    let locked_root = early_lock
        .as_ref()
        .and_then(|lock| lock.get(&spec.name))
        .map(|p| p.blake3);
    let local = || {
        let (name, req, exact, publisher) = (
            spec.name.clone(),
            req.clone(),
            exact.clone(),
            publisher.clone(),
        );
        registry.store().call(move |store| {
            let publisher = publisher
                .map(|p| store.find_publisher(&name, &p))
                .transpose()?;
            // An exact version installs even when yanked, as a lockfile needs.
            let found = match exact {
                Some(version) => store.version(&name, &version, publisher.as_ref())?,
                None => None,
            };
            let meta = match (archive, found) {
                // Pinned by hash: exactly that archive, even for a compromised version.
                (Some(archive), _) => {
                    store.version_with_archive(&name, &req, publisher.as_ref(), &archive)?
                }
                (None, Some(meta)) => meta,
                (None, None) => store.resolve(&name, &req, publisher.as_ref())?,
            };
            // A compromised version installs only when its archive is pinned (by
            // `--archive`, or by the target's lockfile).
            if archive.is_none() && locked_root != Some(meta.archive.blake3) {
                store.ensure_not_compromised(&meta)?;
            }
            let mut versions = store.owned_versions(&name, Some(&meta.publisher))?;
            if archive.is_some() {
                // The pinned record may be the other side of an equivocation: it stands
                // for its version in the resolution.
                versions.retain(|v| v.version != meta.version);
                versions.push(meta.clone());
            }
            Ok::<_, RegistryError>((meta, versions))
        })
    };
    // A name or version missing here is looked up in the DHT before giving up.
    let (meta, root_versions) = match local().await {
        Err(e) if missed(&e) && lookup_missed(registry, &spec.name, exact.as_ref()).await? => {
            local().await?
        }
        other => other?,
    };
    let lock_target = to
        .clone()
        .unwrap_or_else(|| default_install_dir(registry.data_dir(), &meta.name, &meta.version));
    let existing = Lockfile::read(&lock_target)?;
    if locked && existing.is_none() {
        return Err(RegistryError::Refused(format!(
            "--locked: {} does not exist; install once without --locked to write it, or copy the lockfile into {}",
            lockfile::path_in(&lock_target).display(),
            lock_target.display()
        )));
    }
    let mut pins: Pins = existing.as_ref().map(Lockfile::pins).unwrap_or_default();
    if let Some(version) = &exact {
        pins.insert(normalize_name(&meta.name), version.clone());
    }
    if archive.is_some() {
        pins.insert(normalize_name(&meta.name), meta.version.clone());
    }
    let hash_pins: BTreeSet<Blake3Hash> = existing
        .iter()
        .flat_map(|lock| &lock.packages)
        .map(|p| p.blake3)
        .chain(archive)
        .collect();
    let plan = Plan {
        root: meta.name.clone(),
        req,
        root_versions,
        pins,
        hash_pins,
        target: to,
        existing,
        locked,
        replace: false,
    };
    install_tree(registry, plan, progress).await
}

/// One tree install: what to resolve, where, and against which lock.
pub(super) struct Plan {
    pub root: String,
    pub req: semver::VersionReq,
    /// Every version of the root from the chosen publisher.
    pub root_versions: Vec<IndexedVersion>,
    pub pins: Pins,
    /// Archives pinned by hash (lockfile, `--archive`): usable even when compromised.
    pub hash_pins: BTreeSet<Blake3Hash>,
    /// `None`: the default directory of the resolved root version.
    pub target: Option<PathBuf>,
    /// The lockfile found at the target.
    pub existing: Option<Lockfile>,
    /// Fail unless the resolution reproduces `existing` exactly.
    pub locked: bool,
    /// Replace an installed tree at the target (update) instead of refusing it.
    pub replace: bool,
}

/// Resolves the plan's dependencies, fetches every missing archive (in parallel,
/// verified), unpacks the tree in a staging directory and moves it into place whole,
/// then writes the lockfile and records the installs.
pub(super) async fn install_tree(
    registry: &P2PRegistry,
    plan: Plan,
    progress: Option<Progress>,
) -> Result<InstallReport> {
    let Resolved { root, deps, .. } = resolve_tree(
        registry,
        &plan.root,
        &plan.req,
        plan.root_versions.clone(),
        &plan.pins,
        &plan.hash_pins,
    )
    .await?;
    let target = plan
        .target
        .clone()
        .unwrap_or_else(|| default_install_dir(registry.data_dir(), &root.name, &root.version));
    let lock = Lockfile::new(
        LockRoot {
            name: plan.root.clone(),
            requirement: plan.req.to_string(),
        },
        std::iter::once(&root)
            .chain(&deps)
            .map(locked_pack)
            .collect(),
    );
    if plan.locked {
        let existing = plan.existing.as_ref().expect("checked by the caller");
        let differences = existing.differences(&lock);
        if !differences.is_empty() {
            return Err(RegistryError::Refused(format!(
                "--locked: {} cannot be reproduced: {}; run `ggen-p2p update` to accept the change",
                lockfile::path_in(&target).display(),
                differences.join("; ")
            )));
        }
    }
    let mut warnings = Vec::new();
    for meta in std::iter::once(&root).chain(&deps) {
        if meta.yanked {
            warnings.push(format!(
                "{}@{} is yanked by its publisher; installing it because it was asked for exactly or is locked",
                meta.name, meta.version
            ));
        }
    }

    // Already there: the same root version at the target, and the same lock (or no
    // lock and nothing but the root, as installs made before lockfiles).
    let (check_target, check_root) = (target.clone(), root.clone());
    let same_lock = plan.existing.as_ref() == Some(&lock);
    let alone = deps.is_empty() && plan.existing.is_none();
    let already = registry
        .store()
        .call(move |store| {
            if !check_target.exists() {
                return Ok::<_, RegistryError>(false);
            }
            let recorded = store.installs()?.into_iter().any(|install| {
                install.path == check_target
                    && install.version == check_root.version
                    && normalize_name(&install.name) == normalize_name(&check_root.name)
            });
            Ok(recorded && (same_lock || alone))
        })
        .await?;
    if already && !plan.replace {
        return Ok(report(
            root,
            deps,
            target,
            Default::default(),
            true,
            warnings,
        ));
    }
    if !plan.replace && target.exists() && !only_a_lockfile(&target) {
        return Err(crate::package::archive::ArchiveError::TargetExists { path: target }.into());
    }

    let began = std::time::Instant::now();
    let fetched = fetch_all(registry, std::iter::once(&root).chain(&deps), progress).await?;
    tracing::debug!(ms = began.elapsed().as_millis() as u64, "archives fetched");
    let began = std::time::Instant::now();
    let config = registry.config();
    let (ratio, min_size) = (config.unpack_ratio, config.unpack_min_size);
    let (stage_root, stage_deps, stage_target, stage_lock) =
        (root.clone(), deps.clone(), target.clone(), lock.to_toml());
    let stage_fetched = fetched.clone();
    let unpacked = registry
        .store()
        .call(move |store| {
            let limits = |meta: &IndexedVersion| {
                UnpackLimits::for_archive(
                    meta.archive.size,
                    meta.record.unpacked_size,
                    ratio,
                    min_size,
                )
            };
            let rehash = |meta: &IndexedVersion| !stage_fetched.contains_key(&meta.archive.blake3);
            stage_tree(
                store,
                &stage_root,
                &stage_deps,
                &stage_target,
                &stage_lock,
                &rehash,
                &limits,
            )
        })
        .await?;
    tracing::debug!(
        ms = began.elapsed().as_millis() as u64,
        "tree unpacked and recorded"
    );
    Ok(report(
        root,
        deps,
        target,
        Fetched { fetched, unpacked },
        false,
        warnings,
    ))
}

/// A resolved tree: the root's version, its dependencies' versions, and every version
/// that was considered (for `outdated`).
pub(super) struct Resolved {
    pub root: IndexedVersion,
    pub deps: Vec<IndexedVersion>,
    pub known: BTreeMap<String, Vec<IndexedVersion>>,
    /// Archives of known versions that are compromised (and not pinned by hash).
    pub compromised: BTreeSet<Blake3Hash>,
}

/// Gathers every version reachable from `root_versions` and resolves `root`@`req`.
pub(super) async fn resolve_tree(
    registry: &P2PRegistry,
    root: &str,
    req: &semver::VersionReq,
    root_versions: Vec<IndexedVersion>,
    pins: &Pins,
    hash_pins: &BTreeSet<Blake3Hash>,
) -> Result<Resolved> {
    let root_norm = normalize_name(root);
    let mut known: BTreeMap<String, Vec<IndexedVersion>> = BTreeMap::new();
    known.insert(root_norm.clone(), root_versions);
    gather(registry, &mut known).await?;
    let compromised = compromised_archives(registry, &known, hash_pins).await?;
    let universe: Universe = known
        .iter()
        .map(|(name, versions)| {
            let candidates = versions.iter().map(|m| candidate(m, &compromised));
            (name.clone(), candidates.collect())
        })
        .collect();
    let chosen = resolve::resolve(root, req, &universe, pins)
        .map_err(|e| RegistryError::Refused(e.to_string()))?;
    let pick = |name: &String, version: &semver::Version| {
        known[name]
            .iter()
            .find(|m| &m.version == version)
            .cloned()
            .expect("the resolver picks known versions")
    };
    let root = pick(&root_norm, &chosen[&root_norm]);
    let deps: Vec<IndexedVersion> = chosen
        .iter()
        .filter(|(name, _)| **name != root_norm)
        .map(|(name, version)| pick(name, version))
        .collect();
    Ok(Resolved {
        root,
        deps,
        known,
        compromised,
    })
}

/// The archives of known versions marked compromised (their publisher signed two
/// archives for them), except those pinned by hash.
async fn compromised_archives(
    registry: &P2PRegistry,
    known: &BTreeMap<String, Vec<IndexedVersion>>,
    hash_pins: &BTreeSet<Blake3Hash>,
) -> Result<BTreeSet<Blake3Hash>> {
    let versions: Vec<IndexedVersion> = known.values().flatten().cloned().collect();
    let hash_pins = hash_pins.clone();
    registry
        .store()
        .call(move |store| {
            let mut out = BTreeSet::new();
            for meta in &versions {
                if !hash_pins.contains(&meta.archive.blake3) && store.compromise_of(meta)?.is_some()
                {
                    out.insert(meta.archive.blake3);
                }
            }
            Ok::<_, RegistryError>(out)
        })
        .await
}

/// Provider lists per fetched archive, and what each pack unpacked to.
#[derive(Default)]
struct Fetched {
    fetched: BTreeMap<Blake3Hash, Vec<String>>,
    unpacked: BTreeMap<Blake3Hash, UnpackReport>,
}

fn report(
    root: IndexedVersion,
    deps: Vec<IndexedVersion>,
    target: PathBuf,
    done: Fetched,
    already: bool,
    warnings: Vec<String>,
) -> InstallReport {
    let unpacked = |meta: &IndexedVersion| {
        done.unpacked
            .get(&meta.archive.blake3)
            .copied()
            .unwrap_or_default()
    };
    let from = |meta: &IndexedVersion| {
        done.fetched
            .get(&meta.archive.blake3)
            .cloned()
            .unwrap_or_default()
    };
    let dependencies = deps
        .iter()
        .map(|meta| DependencyInstall {
            name: meta.name.clone(),
            version: meta.version.clone(),
            publisher: meta.publisher,
            archive: meta.archive.blake3,
            size: meta.archive.size,
            path: dependency_dir(&target, &meta.name),
            files: unpacked(meta).files,
            fetched_from: from(meta),
            yanked: meta.yanked,
        })
        .collect();
    let root_unpacked = unpacked(&root);
    InstallReport {
        format_version: FORMAT_VERSION,
        fetched_from: from(&root),
        name: root.record.name,
        version: root.record.version,
        publisher: root.record.publisher,
        archive: root.record.archive.blake3,
        size: root.record.archive.size,
        lockfile: Some(lockfile::path_in(&target)),
        path: target,
        files: root_unpacked.files,
        unpacked_size: root_unpacked.bytes,
        already_installed: already,
        dependencies,
        warnings,
    }
}

/// A target that holds nothing but a lockfile (copied there to reproduce an install).
fn only_a_lockfile(target: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(target) else {
        return false;
    };
    let names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
    names.len() == 1 && names[0] == lockfile::LOCKFILE
}

/// Adds to `known` every version of every pack reachable through the dependencies of
/// any version already in it: from the local replica, then (for a name missing here)
/// from the DHT. A pack nobody knows stays with no versions; the resolver names it.
async fn gather(
    registry: &P2PRegistry,
    known: &mut BTreeMap<String, Vec<IndexedVersion>>,
) -> Result<()> {
    let mut queue: Vec<String> = known
        .values()
        .flatten()
        .flat_map(|m| m.dependencies.keys().cloned())
        .collect();
    while let Some(name) = queue.pop() {
        let norm = normalize_name(&name);
        if known.contains_key(&norm) {
            continue;
        }
        let local = || {
            let name = name.clone();
            registry
                .store()
                .call(move |store| Ok::<_, RegistryError>(store.owned_versions(&name, None)?))
        };
        let versions = match local().await {
            Err(e) if missed(&e) => {
                if lookup_missed(registry, &name, None).await? {
                    match local().await {
                        Err(e) if missed(&e) => Vec::new(),
                        other => other?,
                    }
                } else {
                    Vec::new()
                }
            }
            Err(e) => return Err(RegistryError::Refused(format!("dependency {name}: {e}"))),
            Ok(versions) => versions,
        };
        queue.extend(versions.iter().flat_map(|m| m.dependencies.keys().cloned()));
        known.insert(norm, versions);
    }
    Ok(())
}

/// The resolver's view of a version. Every mark that keeps a version out of new
/// resolutions is set here (see [`resolve::usable`]).
pub(super) fn candidate(meta: &IndexedVersion, compromised: &BTreeSet<Blake3Hash>) -> Candidate {
    Candidate {
        version: meta.version.clone(),
        dependencies: meta.dependencies.clone(),
        yanked: meta.yanked,
        compromised: compromised.contains(&meta.archive.blake3),
    }
}

fn locked_pack(meta: &IndexedVersion) -> LockedPack {
    LockedPack {
        name: meta.name.clone(),
        version: meta.version.clone(),
        publisher: meta.publisher,
        blake3: meta.archive.blake3,
        sha256: meta.archive.sha256,
        size: meta.archive.size,
    }
}

/// Fetches every archive that is not stored yet, at most [`PARALLEL_FETCHES`] at once,
/// each verified chunk by chunk. Returns the providers each fetched archive came from.
async fn fetch_all<'a>(
    registry: &P2PRegistry,
    metas: impl Iterator<Item = &'a IndexedVersion>,
    progress: Option<Progress>,
) -> Result<BTreeMap<Blake3Hash, Vec<String>>> {
    let metas: Vec<IndexedVersion> = metas.cloned().collect();
    let hashes: Vec<Blake3Hash> = metas.iter().map(|m| m.archive.blake3).collect();
    let stored = registry
        .store()
        .call(move |store| {
            Ok::<_, RegistryError>(
                hashes
                    .iter()
                    .map(|h| store.has_archive(h))
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
    let missing: Vec<IndexedVersion> = metas
        .into_iter()
        .zip(stored)
        .filter(|(_, stored)| !stored)
        .map(|(meta, _)| meta)
        .collect();
    let total: u64 = missing.iter().map(|m| m.archive.size).sum();
    let done: Arc<Vec<AtomicU64>> = Arc::new(missing.iter().map(|_| AtomicU64::new(0)).collect());
    let fetches = missing.into_iter().enumerate().map(|(i, meta)| {
        let done = done.clone();
        let progress = progress.clone();
        let each: Progress = Arc::new(move |bytes, _| {
            done[i].store(bytes, Ordering::Relaxed);
            if let Some(progress) = &progress {
                progress(done.iter().map(|d| d.load(Ordering::Relaxed)).sum(), total);
            }
        });
        async move {
            let from = fetch_archive(registry, &meta, Some(each)).await?;
            Ok::<_, RegistryError>((meta.archive.blake3, from))
        }
    });
    let results: Vec<Result<(Blake3Hash, Vec<String>)>> = futures::stream::iter(fetches)
        .buffer_unordered(PARALLEL_FETCHES)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Unpacks the root and its dependencies into a staging directory beside `target`,
/// writes the lockfile, then moves the whole tree into place (replacing an older tree
/// at `target`, if any) and records every install with the digest of its tree.
fn stage_tree(
    store: &Store,
    root: &IndexedVersion,
    deps: &[IndexedVersion],
    target: &Path,
    lock_text: &str,
    rehash: &dyn Fn(&IndexedVersion) -> bool,
    limits: &dyn Fn(&IndexedVersion) -> UnpackLimits,
) -> Result<BTreeMap<Blake3Hash, UnpackReport>> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| RegistryError::Refused(format!("{}: {e}", path.display()))
    };
    let parent = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let stage = tempfile::Builder::new()
        .prefix(crate::package::archive::STAGING_PREFIX)
        .tempdir_in(&parent)
        .map_err(io(&parent))?;
    let tree = stage.path().join("tree");
    let mut unpacked = BTreeMap::new();
    unpacked.insert(
        root.archive.blake3,
        unpack_one(store, root, &tree, rehash(root), &limits(root))?,
    );
    for dep in deps {
        let dir = dependency_dir(&tree, &dep.name);
        unpacked.insert(
            dep.archive.blake3,
            unpack_one(store, dep, &dir, rehash(dep), &limits(dep))?,
        );
    }
    let lock_path = lockfile::path_in(&tree);
    // Written inside the staging tree: the rename below makes it appear with the rest.
    std::fs::File::create(&lock_path)
        .and_then(|mut file| {
            std::io::Write::write_all(&mut file, lock_text.as_bytes())?;
            file.sync_all()
        })
        .map_err(io(&lock_path))?;
    let mut digests = vec![(
        root,
        target.to_path_buf(),
        lifecycle::tree_digest(&tree, true).map_err(io(&tree))?,
    )];
    for dep in deps {
        let dir = dependency_dir(&tree, &dep.name);
        let digest = lifecycle::tree_digest(&dir, false).map_err(io(&dir))?;
        digests.push((dep, dependency_dir(target, &dep.name), digest));
    }
    // The swap: an older tree (update, or a directory holding only a lockfile) moves
    // aside into the staging directory, which is removed with it afterwards.
    if std::fs::symlink_metadata(target).is_ok() {
        std::fs::rename(target, stage.path().join("old")).map_err(io(target))?;
    }
    std::fs::rename(&tree, target).map_err(io(target))?;
    drop(stage);
    store.forget_installs_under(target)?;
    let rows: Vec<InstallRow<'_>> = digests
        .iter()
        .map(|(meta, path, digest)| InstallRow {
            name: &meta.name,
            version: &meta.version,
            path,
            tree_hash: Some(*digest),
            root: (path != target).then_some(target),
        })
        .collect();
    store.record_installs(&rows)?;
    Ok(unpacked)
}

/// Checks one stored archive against its record and unpacks it into `dir`.
fn unpack_one(
    store: &Store,
    meta: &IndexedVersion,
    dir: &Path,
    rehash: bool,
    limits: &UnpackLimits,
) -> Result<UnpackReport> {
    // The index row came from a record; re-check that record's signature so damage to
    // the database cannot smuggle in another archive.
    if store.signed_record(&meta.record_id)?.is_none() {
        return Err(RegistryError::Refused(format!(
            "{}@{}: its signed record is missing from the store; run `ggen-p2p verify`",
            meta.name, meta.version
        )));
    }
    if rehash {
        store.verify_archive(&meta.archive)?;
    }
    let path = store.archive_path(&meta.archive.blake3).ok_or_else(|| {
        RegistryError::Refused(format!(
            "archive {} vanished from the store; run the install again",
            meta.archive.blake3
        ))
    })?;
    let file = std::fs::File::open(&path).map_err(|e| {
        RegistryError::Refused(format!("{}: cannot open archive: {e}", path.display()))
    })?;
    Ok(unpack(file, dir, limits)?)
}

/// Downloads the archive from the peers that provide it, verified chunk by chunk; when
/// no peer provides it or the download fails, from the configured HTTP mirrors
/// (verified against the signed digest). Either way it is then provided to peers.
async fn fetch_archive(
    registry: &P2PRegistry,
    meta: &IndexedVersion,
    progress: Option<Progress>,
) -> Result<Vec<String>> {
    let progress = progress.unwrap_or_else(|| Arc::new(|_, _| {}));
    let mirrors = !registry.config().mirrors.is_empty();
    let Some(client) = registry.client() else {
        if mirrors {
            let why = "no node is running to ask peers";
            let from = super::mirror::fetch_archive(registry, meta, &progress, why).await?;
            cache_fetched(registry, None, meta.archive.blake3).await?;
            return Ok(from);
        }
        return Err(RegistryError::Refused(format!(
            "{}@{}: the archive is not stored here and no node is running; start one with `ggen-p2p start` (with --bootstrap to reach a peer that has it)",
            meta.name, meta.version
        )));
    };
    let mut providers = match client.find_providers(meta.archive.blake3).await {
        Ok(providers) => providers,
        // With mirrors to ask, a DHT that cannot answer (no peers) is not the end.
        Err(e) if mirrors => {
            tracing::debug!("provider lookup failed ({e}); asking the mirrors");
            Vec::new()
        }
        Err(e) => return Err(e.into()),
    };
    if providers.is_empty() {
        // A DHT lookup can come back empty while routing tables settle; connected peers
        // are asked directly (those without the archive answer "not found" and the
        // download drops them).
        providers = client.connected_peers().await?;
    }
    let from = if providers.is_empty() {
        if !mirrors {
            return Err(RegistryError::Refused(format!(
                "{}@{}: no peer provides archive {}; check `ggen-p2p peers` or try again once the publisher is online",
                meta.name, meta.version, meta.archive.blake3
            )));
        }
        let why = format!("no peer provides archive {}", meta.archive.blake3);
        super::mirror::fetch_archive(registry, meta, &progress, &why).await?
    } else {
        let each = progress.clone();
        // A row in the dashboard's transfers while the download runs.
        let transfer = (registry.inner.transfers).begin(&meta.name, &meta.version, &meta.archive);
        let started = std::time::Instant::now();
        let downloaded = crate::net::transfer::download_to_store(
            &client,
            registry.store(),
            &meta.archive,
            providers.clone(),
            move |done, total| {
                transfer.progress(done);
                each(done, total)
            },
        )
        .await;
        match downloaded {
            Ok(_) => {
                (registry.metrics()).fetched(meta.archive.size, started.elapsed());
                providers.into_iter().map(|peer| peer.to_string()).collect()
            }
            Err(e) if mirrors => {
                let why = format!(
                    "the download from peers failed ({})",
                    plain_transfer_error(e)
                );
                super::mirror::fetch_archive(registry, meta, &progress, &why).await?
            }
            Err(e) => return Err(plain_transfer_error(e)),
        }
    };
    cache_fetched(registry, Some(&client), meta.archive.blake3).await?;
    Ok(from)
}

/// A fetched archive joins the cache: marked used, provided to peers (when a node
/// runs), and the least recently used beyond `cache_size` evicted and withdrawn.
async fn cache_fetched(
    registry: &P2PRegistry,
    client: Option<&crate::net::Client>,
    archive: Blake3Hash,
) -> Result<()> {
    let cache_size = registry.config().cache_size;
    let store = registry.store();
    store
        .call(move |store| store.touch_archive(&archive, false))
        .await?;
    if let Some(client) = client {
        // Not waited for: the install is done when its files are in place (see
        // `Client::provide_in_background`).
        client.provide_in_background(archive).await?;
    }
    let evicted = store
        .call(move |store| store.evict_archives(cache_size))
        .await?;
    tracing::debug!(count = evicted.len(), "evicted cached archives");
    if let Some(client) = client {
        for archive in evicted {
            client.stop_providing(archive).await?;
        }
    }
    Ok(())
}

/// A transfer error as users read it: provider failures name peers by their short id,
/// not libp2p's debug form `PeerId("12D3KooW…")`.
fn plain_transfer_error(error: crate::net::transfer::TransferError) -> RegistryError {
    use crate::net::explain::shorten_peer_ids;
    use crate::net::transfer::TransferError;
    RegistryError::Transfer(match error {
        TransferError::NoChunkList { archive, tried } => TransferError::NoChunkList {
            archive,
            tried: shorten_peer_ids(&tried),
        },
        TransferError::Stuck {
            archive,
            stuck,
            missing,
            done,
        } => TransferError::Stuck {
            archive,
            stuck: shorten_peer_ids(&stuck),
            missing,
            done,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_versions_are_exact_and_requirements_pass_through() {
        let exact = parse_requirement("1.2.0").unwrap();
        assert!(exact.matches(&semver::Version::new(1, 2, 0)));
        assert!(!exact.matches(&semver::Version::new(1, 3, 0)));
        let caret = parse_requirement("^1.2").unwrap();
        assert!(caret.matches(&semver::Version::new(1, 3, 0)));
        assert_eq!(parse_requirement("").unwrap(), semver::VersionReq::STAR);
        assert!(parse_requirement("one.two").is_err());
    }
}
