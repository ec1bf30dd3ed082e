//! The pack lifecycle after `install`: `init` (start a pack), `uninstall`, `outdated`,
//! `update`, and the digests `list` compares installed trees against.
//!
//! Resolution and the tree install itself live in `install.rs`; this file decides which
//! trees to look at and what to do with them.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::install::{self, Plan, Resolved, DEPS_DIR};
use super::lockfile::{self, Lockfile};
use super::reports::{
    InitReport, OutdatedPack, OutdatedReport, TreeUpdate, UninstallReport, UpdateReport,
    VersionChange, FORMAT_VERSION,
};
use super::requests::{InitRequest, OutdatedRequest, UninstallRequest, UpdateRequest};
use super::resolve::{self, Pins};
use super::{P2PRegistry, RegistryError, Result};
use crate::package::fields::normalize_name;
use crate::package::Blake3Hash;
use crate::store::Install;

/// BLAKE3 over a directory tree: every entry's relative path, kind and (for files) size,
/// executable bit and content, in sorted order. For a pack installed by name (`root`),
/// the lockfile and the dependencies directory are left out: they are not its files.
pub fn tree_digest(dir: &Path, root: bool) -> io::Result<Blake3Hash> {
    let mut hasher = blake3::Hasher::new();
    let mut buffer = vec![0u8; 64 * 1024];
    walk(dir, "", root, &mut hasher, &mut buffer)?;
    Ok(Blake3Hash(*hasher.finalize().as_bytes()))
}

fn walk(
    dir: &Path,
    prefix: &str,
    root: bool,
    hasher: &mut blake3::Hasher,
    buffer: &mut [u8],
) -> io::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if root && prefix.is_empty() && (name == lockfile::LOCKFILE || name == DEPS_DIR) {
            continue;
        }
        let rel = format!("{prefix}{name}");
        let meta = fs::symlink_metadata(entry.path())?;
        hasher.update(rel.as_bytes());
        hasher.update(&[0]);
        if meta.is_dir() {
            hasher.update(b"d");
            walk(&entry.path(), &format!("{rel}/"), root, hasher, buffer)?;
        } else if meta.is_file() {
            hasher.update(b"f");
            hasher.update(&meta.len().to_le_bytes());
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                hasher.update(&[u8::from(meta.permissions().mode() & 0o111 != 0)]);
            }
            let mut file = fs::File::open(entry.path())?;
            loop {
                let n = file.read(buffer)?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
            }
        } else {
            // Unpacking never makes links or devices: their presence is a change.
            hasher.update(b"o");
            if let Ok(target) = fs::read_link(entry.path()) {
                hasher.update(target.to_string_lossy().as_bytes());
            }
        }
    }
    Ok(())
}

/// `ok`, `missing`, `changed` or `unknown` for one recorded install.
pub fn install_status(install: &Install) -> &'static str {
    if fs::symlink_metadata(&install.path).is_err() {
        return "missing";
    }
    let Some(recorded) = install.tree_hash else {
        return "unknown";
    };
    match tree_digest(&install.path, install.root.is_none()) {
        Ok(now) if now == recorded => "ok",
        _ => "changed",
    }
}

const TEMPLATE: &str = "---
to: \"hello.txt\"
---
Hello from {{ name }}!
";

pub(super) async fn init(_registry: &P2PRegistry, request: InitRequest) -> Result<InitReport> {
    let dir = request.dir.clone();
    tokio::task::spawn_blocking(move || init_dir(&request))
        .await
        .map_err(|e| RegistryError::Task(e.to_string()))?
        .map(|(name, files)| InitReport {
            format_version: FORMAT_VERSION,
            name,
            dir,
            files,
        })
}

/// Writes `package.toml`, `README.md` and `templates/hello.tmpl` into `request.dir`,
/// refusing to overwrite a manifest, and checks the manifest reads back.
fn init_dir(request: &InitRequest) -> Result<(String, Vec<PathBuf>)> {
    let dir = &request.dir;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: io::Error| RegistryError::Refused(format!("{}: {e}", path.display()))
    };
    for manifest in ["package.toml", "gpack.toml"] {
        if dir.join(manifest).exists() {
            return Err(RegistryError::Refused(format!(
                "{}: a pack is already there ({manifest}); edit it, or init another directory",
                dir.display()
            )));
        }
    }
    let name = match &request.name {
        Some(name) => name.clone(),
        None => default_name(dir)?,
    };
    crate::package::fields::validate_name(&name)
        .map_err(|e| RegistryError::Refused(format!("{e}; pass --name with a valid pack name")))?;
    let description = request
        .description
        .clone()
        .unwrap_or_else(|| format!("{name}: a ggen pack"));
    let license = request.license.clone().unwrap_or_else(|| "MIT".into());
    let mut manifest = String::from("[package]\n");
    manifest += &format!("name = {}\n", toml_string(&name));
    manifest += "version = \"0.1.0\"\n";
    manifest += &format!("description = {}\n", toml_string(&description));
    if let Some(category) = &request.category {
        manifest += &format!("category = {}\n", toml_string(category));
    }
    manifest += "keywords = []\n";
    manifest += &format!("license = {}\n", toml_string(&license));
    manifest += "\n[dependencies]\n# other-pack = \"^1.0\"\n";
    let readme = format!("# {name}\n\n{description}\n\nPublish it with `ggen-p2p publish`.\n");
    fs::create_dir_all(dir.join("templates")).map_err(io(dir))?;
    let files = [
        ("package.toml", manifest.as_str()),
        ("README.md", readme.as_str()),
        ("templates/hello.tmpl", TEMPLATE),
    ];
    let mut written = Vec::new();
    for (rel, text) in files {
        let path = dir.join(rel);
        if rel != "package.toml" && path.exists() {
            continue;
        }
        fs::write(&path, text).map_err(io(&path))?;
        written.push(PathBuf::from(rel));
    }
    crate::package::Manifest::from_dir(dir)?;
    Ok((name, written))
}

/// A pack name from a directory name: lowercased, other characters turned into `-`.
fn default_name(dir: &Path) -> Result<String> {
    let absolute = std::path::absolute(dir)
        .map_err(|e| RegistryError::Refused(format!("{}: {e}", dir.display())))?;
    let base = absolute
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = base
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches('-').to_string();
    if name.is_empty() {
        return Err(RegistryError::Refused(format!(
            "{}: no pack name can be made from this directory's name; pass --name",
            dir.display()
        )));
    }
    Ok(name)
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

/// Installs made by name (not as a dependency), matching `name` and `path` if given.
fn roots(installs: &[Install], name: Option<&str>, path: Option<&Path>) -> Vec<Install> {
    installs
        .iter()
        .filter(|i| i.root.is_none())
        .filter(|i| name.is_none_or(|n| normalize_name(n) == normalize_name(&i.name)))
        .filter(|i| path.is_none_or(|p| p == i.path))
        .cloned()
        .collect()
}

pub(super) async fn uninstall(
    registry: &P2PRegistry,
    request: UninstallRequest,
) -> Result<UninstallReport> {
    let UninstallRequest { name, path } = request;
    registry
        .store()
        .call(move |store| {
            let installs = store.installs()?;
            let found = roots(&installs, Some(&name), path.as_deref());
            let install = match found.as_slice() {
                [one] => one.clone(),
                [] => {
                    let as_dep = installs.iter().find(|i| {
                        i.root.is_some() && normalize_name(&i.name) == normalize_name(&name)
                    });
                    return Err(RegistryError::Refused(match as_dep {
                        Some(dep) => format!(
                            "{name} is installed only as a dependency of the pack in {}; uninstall that pack instead",
                            dep.root.as_deref().unwrap_or(Path::new("?")).display()
                        ),
                        None => format!(
                            "{name} is not installed{}; `ggen-p2p list` shows what is",
                            path.map(|p| format!(" in {}", p.display())).unwrap_or_default()
                        ),
                    }));
                }
                many => {
                    let paths: Vec<String> =
                        many.iter().map(|i| i.path.display().to_string()).collect();
                    return Err(RegistryError::Refused(format!(
                        "{name} is installed in several directories ({}); pass --path to choose one",
                        paths.join(", ")
                    )));
                }
            };
            let dependencies: Vec<String> = installs
                .iter()
                .filter(|i| i.root.as_deref() == Some(install.path.as_path()))
                .map(|i| format!("{}@{}", i.name, i.version))
                .collect();
            let was_missing = fs::symlink_metadata(&install.path).is_err();
            if !was_missing {
                fs::remove_dir_all(&install.path).map_err(|e| {
                    RegistryError::Refused(format!(
                        "{}: cannot remove it: {e}",
                        install.path.display()
                    ))
                })?;
            }
            store.forget_installs_under(&install.path)?;
            Ok(UninstallReport {
                format_version: FORMAT_VERSION,
                name: install.name,
                version: install.version,
                path: install.path,
                dependencies,
                was_missing,
            })
        })
        .await
}

/// A tree installed by name, with its lockfile.
struct Tree {
    install: Install,
    lock: Lockfile,
}

async fn trees(
    registry: &P2PRegistry,
    name: Option<&str>,
    path: Option<&Path>,
) -> Result<Vec<Tree>> {
    let installs = registry.store().call(|store| store.installs()).await?;
    let mut out = Vec::new();
    for install in roots(&installs, None, path) {
        let Some(lock) = Lockfile::read(&install.path)? else {
            continue;
        };
        let wanted = name.is_none_or(|n| {
            lock.get(n).is_some() || normalize_name(n) == normalize_name(&install.name)
        });
        if wanted {
            out.push(Tree { install, lock });
        }
    }
    Ok(out)
}

/// Re-resolves a tree with `pins` (its root from the lock's publisher).
async fn reresolve(registry: &P2PRegistry, tree: &Tree, pins: &Pins) -> Result<Resolved> {
    let root = tree.lock.root.name.clone();
    let req = install::parse_requirement(&tree.lock.root.requirement)?;
    let publisher = tree.lock.get(&root).map(|p| p.publisher);
    let versions = {
        let root = root.clone();
        registry
            .store()
            .call(move |store| {
                Ok::<_, RegistryError>(store.owned_versions(&root, publisher.as_ref())?)
            })
            .await?
    };
    let hash_pins = tree.lock.packages.iter().map(|p| p.blake3).collect();
    install::resolve_tree(registry, &root, &req, versions, pins, &hash_pins).await
}

pub(super) async fn outdated(
    registry: &P2PRegistry,
    _request: OutdatedRequest,
) -> Result<OutdatedReport> {
    let mut packs = Vec::new();
    let mut problems = Vec::new();
    for tree in trees(registry, None, None).await? {
        let (compatible, known, compromised) =
            match reresolve_or_keep(registry, &tree, &Pins::new()).await {
                Ok((r, kept)) => {
                    problems.extend(kept);
                    let compatible: BTreeMap<String, semver::Version> = std::iter::once(&r.root)
                        .chain(&r.deps)
                        .map(|m| (normalize_name(&m.name), m.version.clone()))
                        .collect();
                    (compatible, r.known, r.compromised)
                }
                Err(e) => {
                    problems.push(format!("{}: {e}", tree.install.path.display()));
                    Default::default()
                }
            };
        let root_norm = normalize_name(&tree.lock.root.name);
        for locked in &tree.lock.packages {
            let norm = normalize_name(&locked.name);
            let latest = known.get(&norm).and_then(|versions| {
                versions
                    .iter()
                    .map(|m| install::candidate(m, &compromised))
                    .filter(|c| resolve::usable(c, None))
                    .map(|c| c.version)
                    .max()
            });
            packs.push(OutdatedPack {
                name: locked.name.clone(),
                installed: locked.version.clone(),
                compatible: compatible.get(&norm).cloned(),
                latest,
                tree: tree.install.path.clone(),
                dependency: norm != root_norm,
            });
        }
    }
    Ok(OutdatedReport {
        format_version: FORMAT_VERSION,
        packs,
        problems,
    })
}

/// [`reresolve`]; when that fails, perhaps only because versions the lock pins were
/// yanked since, the tree resolved with all of them pinned: it stands as it is, and the
/// second value says so (see [`yanked_but_locked`]).
async fn reresolve_or_keep(
    registry: &P2PRegistry,
    tree: &Tree,
    pins: &Pins,
) -> Result<(Resolved, Option<String>)> {
    let unpinned = match reresolve(registry, tree, pins).await {
        Ok(resolved) => return Ok((resolved, None)),
        Err(e) => e,
    };
    match reresolve(registry, tree, &tree.lock.pins()).await {
        Ok(pinned) => {
            let kept = yanked_but_locked(tree, &pinned);
            Ok((pinned, Some(kept)))
        }
        Err(_) => Err(unpinned),
    }
}

/// What `outdated` and `update` say of a tree that resolves only with its lock's versions
/// pinned: the pinned versions that are yanked, and that nothing newer fits.
fn yanked_but_locked(tree: &Tree, pinned: &Resolved) -> String {
    let yanked: Vec<String> = std::iter::once(&pinned.root)
        .chain(&pinned.deps)
        .filter(|m| {
            let norm = normalize_name(&m.name);
            (pinned.known.get(&norm)).is_some_and(|versions| {
                versions.iter().any(|v| {
                    v.version == m.version && install::candidate(v, &pinned.compromised).yanked
                })
            })
        })
        .map(|m| format!("{} {}", m.name, m.version))
        .collect();
    format!(
        "{}: installed {} {} yanked and no other version fits the requirements; the lock \
         keeps {} (`install --locked` reproduces the tree), `update` cannot move {}",
        tree.install.path.display(),
        yanked.join(", "),
        if yanked.len() == 1 { "is" } else { "are" },
        if yanked.len() == 1 { "it" } else { "them" },
        if yanked.len() == 1 { "it" } else { "them" },
    )
}

pub(super) async fn update(registry: &P2PRegistry, request: UpdateRequest) -> Result<UpdateReport> {
    let UpdateRequest { name, path } = request;
    let trees = trees(registry, name.as_deref(), path.as_deref()).await?;
    if trees.is_empty() {
        return Err(RegistryError::Refused(match &name {
            Some(name) => format!(
                "{name} is not part of any installed tree with a lockfile; `ggen-p2p list` shows what is installed"
            ),
            None => "nothing installed has a lockfile to update; install a pack first".into(),
        }));
    }
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for tree in trees {
        // Everything stays where the lock has it, except what is being updated.
        let pins: Pins = match &name {
            None => Pins::new(),
            Some(name) => {
                let mut pins = tree.lock.pins();
                pins.remove(&normalize_name(name));
                pins
            }
        };
        let (resolved, kept) = reresolve_or_keep(registry, &tree, &pins).await?;
        problems.extend(kept);
        let new: BTreeMap<String, (String, semver::Version)> = std::iter::once(&resolved.root)
            .chain(&resolved.deps)
            .map(|m| (normalize_name(&m.name), (m.name.clone(), m.version.clone())))
            .collect();
        let old: BTreeMap<String, (String, semver::Version)> = tree
            .lock
            .packages
            .iter()
            .map(|p| (normalize_name(&p.name), (p.name.clone(), p.version.clone())))
            .collect();
        let mut changes = Vec::new();
        for (norm, (name, version)) in &old {
            match new.get(norm) {
                Some((_, now)) if now == version => {}
                now => changes.push(VersionChange {
                    name: name.clone(),
                    from: Some(version.clone()),
                    to: now.map(|(_, v)| v.clone()),
                }),
            }
        }
        for (norm, (name, version)) in &new {
            if !old.contains_key(norm) {
                changes.push(VersionChange {
                    name: name.clone(),
                    from: None,
                    to: Some(version.clone()),
                });
            }
        }
        if !changes.is_empty() {
            let plan = Plan {
                root: tree.lock.root.name.clone(),
                req: install::parse_requirement(&tree.lock.root.requirement)?,
                root_versions: resolved.known[&normalize_name(&tree.lock.root.name)].clone(),
                pins: new
                    .iter()
                    .map(|(n, (_, v))| (n.clone(), v.clone()))
                    .collect(),
                hash_pins: tree.lock.packages.iter().map(|p| p.blake3).collect(),
                target: Some(tree.install.path.clone()),
                existing: Some(tree.lock.clone()),
                locked: false,
                replace: true,
            };
            install::install_tree(registry, plan, None).await?;
        }
        out.push(TreeUpdate {
            path: tree.install.path,
            changes,
        });
    }
    Ok(UpdateReport {
        format_version: FORMAT_VERSION,
        trees: out,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_notice_changes_and_skip_the_lock_and_dependencies_of_a_root() {
        let dir = tempfile::tempdir().unwrap();
        let pack = dir.path().join("pack");
        fs::create_dir_all(pack.join("templates")).unwrap();
        fs::write(pack.join("package.toml"), "x").unwrap();
        fs::write(pack.join("templates/a.tmpl"), "hello").unwrap();
        let first = tree_digest(&pack, true).unwrap();
        fs::write(pack.join(lockfile::LOCKFILE), "lock").unwrap();
        fs::create_dir_all(pack.join(DEPS_DIR).join("deps/x")).unwrap();
        assert_eq!(tree_digest(&pack, true).unwrap(), first);
        assert_ne!(tree_digest(&pack, false).unwrap(), first);
        fs::write(pack.join("templates/a.tmpl"), "hellO").unwrap();
        assert_ne!(tree_digest(&pack, true).unwrap(), first);
        fs::write(pack.join("templates/a.tmpl"), "hello").unwrap();
        assert_eq!(tree_digest(&pack, true).unwrap(), first);
        fs::remove_file(pack.join("package.toml")).unwrap();
        assert_ne!(tree_digest(&pack, true).unwrap(), first);
    }

    #[test]
    fn init_writes_a_manifest_that_reads_back_and_refuses_a_second_time() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("My Pack");
        let request = InitRequest {
            dir: target.clone(),
            yes: true,
            ..Default::default()
        };
        let (name, files) = init_dir(&request).unwrap();
        assert_eq!(name, "my-pack");
        assert_eq!(files.len(), 3);
        let manifest = crate::package::Manifest::from_dir(&target).unwrap();
        assert_eq!(manifest.name, "my-pack");
        assert_eq!(manifest.version, semver::Version::new(0, 1, 0));
        let err = init_dir(&request).unwrap_err();
        assert!(err.to_string().contains("already there"), "{err}");
    }
}
