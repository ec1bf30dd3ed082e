//! Dependency resolution, pure: given every known version of every pack a request may
//! touch (the [`Universe`]), pubgrub picks one version per pack — the newest usable one
//! that satisfies every requirement — or explains in plain words why none exists.
//!
//! It knows nothing of the store, the network or the file system: `install.rs` gathers
//! the universe (local replica, then peers and the DHT) and installs what comes out.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::fmt;

use pubgrub::{
    DependencyProvider, DerivationTree, External, PackageResolutionStatistics, PubGrubError, Ranges,
};
use semver::{Version, VersionReq};

use crate::package::fields::normalize_name;

/// One known version of a pack, as its signed record describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub version: Version,
    /// Dependency name → semver requirement, as the manifest wrote them.
    pub dependencies: BTreeMap<String, String>,
    pub yanked: bool,
    /// Marked compromised (its publisher signed two archives for it).
    pub compromised: bool,
}

/// Every version known of each pack, keyed by normalized name. A name without an entry
/// (or with no versions) is a pack nobody here or among the peers has heard of.
pub type Universe = BTreeMap<String, Vec<Candidate>>;

/// Versions a lockfile (or an exact request) pins: preferred when they fit, and usable
/// even when yanked, as a lockfile needs.
pub type Pins = BTreeMap<String, Version>;

/// Whether a resolution may pick `candidate`. The one place that says which versions
/// are fit for new resolutions: a yanked version only when pinned (a lockfile), a
/// compromised one never (a pin by archive hash clears the mark before resolution).
pub fn usable(candidate: &Candidate, pinned: Option<&Version>) -> bool {
    !candidate.compromised && (pinned == Some(&candidate.version) || !candidate.yanked)
}

/// Why no set of versions fits: one sentence a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Packs that are required but known to nobody.
    #[error("{}; check the names, or publish the missing packs first", missing_sentence(.missing))]
    Missing {
        /// (missing pack, who requires it with which requirement)
        missing: Vec<(String, Vec<String>)>,
    },
    #[error("cannot resolve the dependencies of {root}: {}; no choice of versions satisfies every requirement", .reasons.join("; "))]
    Conflict { root: String, reasons: Vec<String> },
}

fn missing_sentence(missing: &[(String, Vec<String>)]) -> String {
    let parts: Vec<String> = missing
        .iter()
        .map(|(name, by)| format!("{name} (required by {})", by.join(", ")))
        .collect();
    format!(
        "dependencies not found here or on peers: {}",
        parts.join(", ")
    )
}

/// Resolves `root_name` at a version matching `root_req` and, transitively, its
/// dependencies. Returns normalized name → chosen version (the root included).
pub fn resolve(
    root_name: &str,
    root_req: &VersionReq,
    universe: &Universe,
    pins: &Pins,
) -> Result<BTreeMap<String, Version>, ResolveError> {
    let root = normalize_name(root_name);
    let provider = Provider {
        universe,
        pins,
        root: (root.clone(), root_req.clone()),
    };
    match pubgrub::resolve(&provider, Node::Root, Version::new(0, 0, 0)) {
        Ok(solution) => Ok(solution
            .into_iter()
            .filter_map(|(node, version)| match node {
                Node::Root => None,
                Node::Pack(name) => Some((name, version)),
            })
            .collect()),
        Err(PubGrubError::NoSolution(tree)) => Err(explain(&provider, root_name, &tree)),
        Err(other) => Err(ResolveError::Conflict {
            root: root_name.to_string(),
            reasons: vec![other.to_string()],
        }),
    }
}

/// A resolver node: the request itself, or a pack by normalized name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Node {
    Root,
    Pack(String),
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Root => f.write_str("the request"),
            Node::Pack(name) => f.write_str(name),
        }
    }
}

type Set = Ranges<Version>;

struct Provider<'a> {
    universe: &'a Universe,
    pins: &'a Pins,
    /// The requested pack (normalized) and requirement.
    root: (String, VersionReq),
}

impl Provider<'_> {
    fn candidates(&self, name: &str) -> &[Candidate] {
        self.universe.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The versions of `name` that `req` accepts, as a version set (a union of the known
    /// matching versions, so semver's pre-release rules apply exactly).
    fn matching(&self, name: &str, req: &VersionReq) -> Set {
        self.candidates(name)
            .iter()
            .filter(|c| req.matches(&c.version))
            .fold(Set::empty(), |set, c| {
                set.union(&Set::singleton(c.version.clone()))
            })
    }

    fn usable<'c>(&'c self, name: &str, range: &'c Set) -> impl Iterator<Item = &'c Candidate> {
        let pinned = self.pins.get(name);
        self.candidates(name)
            .iter()
            .filter(move |c| range.contains(&c.version) && usable(c, pinned))
    }
}

impl DependencyProvider for Provider<'_> {
    type P = Node;
    type V = Version;
    type VS = Set;
    type Priority = Reverse<usize>;
    type M = String;
    type Err = Infallible;

    fn prioritize(
        &self,
        package: &Node,
        range: &Set,
        _stats: &PackageResolutionStatistics,
    ) -> Reverse<usize> {
        // Fewest usable versions first: conflicts surface early.
        match package {
            Node::Root => Reverse(0),
            Node::Pack(name) => Reverse(self.usable(name, range).count()),
        }
    }

    fn choose_version(&self, package: &Node, range: &Set) -> Result<Option<Version>, Infallible> {
        let Node::Pack(name) = package else {
            return Ok(Some(Version::new(0, 0, 0)));
        };
        if let Some(pinned) = self.pins.get(name) {
            if range.contains(pinned) && self.usable(name, range).any(|c| &c.version == pinned) {
                return Ok(Some(pinned.clone()));
            }
        }
        Ok(self.usable(name, range).map(|c| &c.version).max().cloned())
    }

    fn get_dependencies(
        &self,
        package: &Node,
        version: &Version,
    ) -> Result<pubgrub::Dependencies<Node, Set, String>, Infallible> {
        let name = match package {
            Node::Root => {
                let (name, req) = &self.root;
                let deps = [(Node::Pack(name.clone()), self.matching(name, req))];
                return Ok(pubgrub::Dependencies::Available(deps.into_iter().collect()));
            }
            Node::Pack(name) => name,
        };
        let Some(candidate) = self.candidates(name).iter().find(|c| &c.version == version) else {
            return Ok(pubgrub::Dependencies::Unavailable(format!(
                "{name} {version} is not known here"
            )));
        };
        let mut deps = pubgrub::DependencyConstraints::default();
        for (dep, text) in &candidate.dependencies {
            let Ok(req) = VersionReq::parse(text) else {
                return Ok(pubgrub::Dependencies::Unavailable(format!(
                    "{name} {version} has an invalid requirement {dep} = {text:?}"
                )));
            };
            let dep = normalize_name(dep);
            deps.insert(Node::Pack(dep.clone()), self.matching(&dep, &req));
        }
        Ok(pubgrub::Dependencies::Available(deps))
    }
}

/// Turns pubgrub's derivation tree into plain sentences: who requires what, which packs
/// are missing, which versions exist.
fn explain(
    provider: &Provider<'_>,
    root_name: &str,
    tree: &DerivationTree<Node, Set, String>,
) -> ResolveError {
    let mut externals = Vec::new();
    collect(tree, &mut externals);
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut requires: Vec<String> = Vec::new();
    let mut exhausted: BTreeSet<String> = BTreeSet::new();
    let mut custom: Vec<String> = Vec::new();
    for external in externals {
        match external {
            External::FromDependencyOf(parent, parent_set, Node::Pack(dep), _) => {
                let line = requirement_line(provider, root_name, parent, parent_set, dep);
                if provider.candidates(dep).is_empty() {
                    let by = missing.entry(dep.clone()).or_default();
                    if !by.contains(&line.1) {
                        by.push(line.1);
                    }
                } else if matches!(parent, Node::Root) && provider.root.1 == VersionReq::STAR {
                    // "the request asks for NAME *" adds nothing to the explanation.
                } else if !requires.contains(&line.0) {
                    requires.push(line.0);
                }
            }
            External::NoVersions(Node::Pack(name), _) if !provider.candidates(name).is_empty() => {
                exhausted.insert(name.clone());
            }
            External::Custom(_, _, message) if !custom.contains(message) => {
                custom.push(message.clone())
            }
            _ => {}
        }
    }
    if !missing.is_empty() {
        return ResolveError::Missing {
            missing: missing.into_iter().collect(),
        };
    }
    let mut reasons = requires;
    for name in exhausted {
        reasons.push(format!(
            "{name} has {}",
            list_versions(provider.candidates(&name), provider.pins.get(&name))
        ));
    }
    reasons.extend(custom);
    if reasons.is_empty() {
        use pubgrub::Reporter;
        reasons.push(pubgrub::DefaultStringReporter::report(tree).replace('\n', " "));
    }
    ResolveError::Conflict {
        root: root_name.to_string(),
        reasons,
    }
}

/// ("PARENT VERSIONS requires DEP REQ", "PARENT VERSIONS") for one dependency edge.
fn requirement_line(
    provider: &Provider<'_>,
    root_name: &str,
    parent: &Node,
    parent_set: &Set,
    dep: &str,
) -> (String, String) {
    match parent {
        Node::Root => {
            let req = &provider.root.1;
            (
                format!("the request asks for {root_name} {req}"),
                "the request".to_string(),
            )
        }
        Node::Pack(name) => {
            let mut versions = Vec::new();
            let mut reqs = BTreeSet::new();
            for c in provider.candidates(name) {
                if parent_set.contains(&c.version) {
                    versions.push(c.version.to_string());
                    if let Some(text) = c
                        .dependencies
                        .iter()
                        .find(|(d, _)| normalize_name(d) == dep)
                        .map(|(_, r)| r.clone())
                    {
                        reqs.insert(text);
                    }
                }
            }
            versions.reverse();
            let who = format!("{name} {}", versions.join(" or "));
            let reqs: Vec<String> = reqs.into_iter().collect();
            (format!("{who} requires {dep} {}", reqs.join(" or ")), who)
        }
    }
}

fn list_versions(candidates: &[Candidate], pinned: Option<&Version>) -> String {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| a.version.cmp(&b.version));
    let names: Vec<String> = sorted
        .iter()
        .map(|c| {
            if usable(c, pinned) {
                c.version.to_string()
            } else if c.compromised {
                format!("{} (compromised)", c.version)
            } else {
                format!("{} (yanked)", c.version)
            }
        })
        .collect();
    format!("only {}", names.join(", "))
}

fn collect<'t>(
    tree: &'t DerivationTree<Node, Set, String>,
    out: &mut Vec<&'t External<Node, Set, String>>,
) {
    match tree {
        DerivationTree::External(external) => out.push(external),
        DerivationTree::Derived(derived) => {
            collect(&derived.cause1, out);
            collect(&derived.cause2, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(text: &str) -> Version {
        Version::parse(text).unwrap()
    }

    fn req(text: &str) -> VersionReq {
        VersionReq::parse(text).unwrap()
    }

    fn cand(version: &str, deps: &[(&str, &str)]) -> Candidate {
        Candidate {
            version: v(version),
            dependencies: deps
                .iter()
                .map(|(n, r)| (n.to_string(), r.to_string()))
                .collect(),
            yanked: false,
            compromised: false,
        }
    }

    fn universe(entries: Vec<(&str, Vec<Candidate>)>) -> Universe {
        entries
            .into_iter()
            .map(|(n, c)| (n.to_string(), c))
            .collect()
    }

    #[test]
    fn picks_the_newest_versions_that_satisfy_every_requirement() {
        let u = universe(vec![
            (
                "app",
                vec![cand("1.0.0", &[("lib", "^1"), ("util", "^0.3")])],
            ),
            (
                "lib",
                vec![
                    cand("1.0.0", &[("util", "^0.3")]),
                    cand("1.4.0", &[("util", ">=0.3.1, <0.4")]),
                    cand("2.0.0", &[]),
                ],
            ),
            (
                "util",
                vec![cand("0.3.0", &[]), cand("0.3.2", &[]), cand("0.4.0", &[])],
            ),
        ]);
        let got = resolve("app", &VersionReq::STAR, &u, &Pins::new()).unwrap();
        assert_eq!(got["app"], v("1.0.0"));
        assert_eq!(got["lib"], v("1.4.0"));
        assert_eq!(got["util"], v("0.3.2"));
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn yanked_versions_are_skipped_unless_pinned_and_compromised_ones_always() {
        let mut newest = cand("1.1.0", &[]);
        newest.yanked = true;
        let mut bad = cand("1.2.0", &[]);
        bad.compromised = true;
        let u = universe(vec![
            ("app", vec![cand("1.0.0", &[("lib", "^1")])]),
            ("lib", vec![cand("1.0.0", &[]), newest, bad]),
        ]);
        let got = resolve("app", &VersionReq::STAR, &u, &Pins::new()).unwrap();
        assert_eq!(got["lib"], v("1.0.0"));
        let pins = Pins::from([("lib".to_string(), v("1.1.0"))]);
        let got = resolve("app", &VersionReq::STAR, &u, &pins).unwrap();
        assert_eq!(got["lib"], v("1.1.0"), "a lockfile pins a yanked version");
        let pins = Pins::from([("lib".to_string(), v("1.2.0"))]);
        let got = resolve("app", &VersionReq::STAR, &u, &pins).unwrap();
        assert_eq!(
            got["lib"],
            v("1.0.0"),
            "a version pin does not clear a compromise"
        );
    }

    #[test]
    fn pins_are_preferred_over_newer_versions() {
        let u = universe(vec![
            ("app", vec![cand("1.0.0", &[("lib", "^1")])]),
            ("lib", vec![cand("1.0.0", &[]), cand("1.3.0", &[])]),
        ]);
        let pins = Pins::from([("lib".to_string(), v("1.0.0"))]);
        let got = resolve("app", &VersionReq::STAR, &u, &pins).unwrap();
        assert_eq!(got["lib"], v("1.0.0"));
    }

    #[test]
    fn names_compare_with_dashes_and_underscores_equal() {
        let u = universe(vec![
            ("my-app", vec![cand("1.0.0", &[("tracing_setup", "^0.3")])]),
            ("tracing-setup", vec![cand("0.3.1", &[])]),
        ]);
        let got = resolve("my_app", &VersionReq::STAR, &u, &Pins::new()).unwrap();
        assert_eq!(got["tracing-setup"], v("0.3.1"));
    }

    #[test]
    fn a_conflict_names_who_requires_what() {
        let u = universe(vec![
            (
                "app",
                vec![cand("1.0.0", &[("left", "^1"), ("right", "^1")])],
            ),
            ("left", vec![cand("1.0.0", &[("shared", "^1")])]),
            ("right", vec![cand("1.0.0", &[("shared", "^2")])]),
            ("shared", vec![cand("1.0.0", &[]), cand("2.0.0", &[])]),
        ]);
        let err = resolve("app", &VersionReq::STAR, &u, &Pins::new()).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ResolveError::Conflict { .. }), "{text}");
        assert!(text.contains("left 1.0.0 requires shared ^1"), "{text}");
        assert!(text.contains("right 1.0.0 requires shared ^2"), "{text}");
        assert!(
            text.starts_with("cannot resolve the dependencies of app"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_pack_is_named_with_who_needs_it() {
        let u = universe(vec![
            ("app", vec![cand("1.0.0", &[("lib", "^1")])]),
            ("lib", vec![cand("1.0.0", &[("does-not-exist", "^1")])]),
        ]);
        let err = resolve("app", &VersionReq::STAR, &u, &Pins::new()).unwrap_err();
        assert_eq!(
            err,
            ResolveError::Missing {
                missing: vec![("does-not-exist".into(), vec!["lib 1.0.0".into()])]
            }
        );
        assert!(err
            .to_string()
            .contains("does-not-exist (required by lib 1.0.0)"));
    }

    #[test]
    fn only_yanked_versions_say_so() {
        let mut only = cand("1.0.0", &[]);
        only.yanked = true;
        let u = universe(vec![
            ("app", vec![cand("1.0.0", &[("lib", "^1")])]),
            ("lib", vec![only]),
        ]);
        let err = resolve("app", &VersionReq::STAR, &u, &Pins::new()).unwrap_err();
        assert!(
            err.to_string().contains("lib has only 1.0.0 (yanked)"),
            "{err}"
        );
    }

    #[test]
    fn an_older_parent_avoids_a_missing_dependency() {
        let u = universe(vec![(
            "app",
            vec![cand("1.0.0", &[]), cand("1.1.0", &[("ghost", "^1")])],
        )]);
        let got = resolve("app", &req("^1"), &u, &Pins::new()).unwrap();
        assert_eq!(got["app"], v("1.0.0"));
    }

    /// Every assignment of one version (or none) per pack, checked by brute force.
    fn brute_force(u: &Universe, root_req: &VersionReq) -> bool {
        let names: Vec<&String> = u.keys().collect();
        fn go(
            u: &Universe,
            names: &[&String],
            i: usize,
            chosen: &mut BTreeMap<String, Version>,
            root_req: &VersionReq,
        ) -> bool {
            if i == names.len() {
                return chosen.get("p0").is_some_and(|v| root_req.matches(v))
                    && satisfies(u, chosen);
            }
            if go(u, names, i + 1, chosen, root_req) {
                return true;
            }
            for c in &u[names[i]] {
                if usable(c, None) {
                    chosen.insert(names[i].clone(), c.version.clone());
                    if go(u, names, i + 1, chosen, root_req) {
                        return true;
                    }
                    chosen.remove(names[i]);
                }
            }
            false
        }
        go(u, &names, 0, &mut BTreeMap::new(), root_req)
    }

    /// Every chosen pack's dependencies are chosen too, at versions they accept.
    fn satisfies(u: &Universe, chosen: &BTreeMap<String, Version>) -> bool {
        chosen.iter().all(|(name, version)| {
            let Some(c) = u[name].iter().find(|c| &c.version == version) else {
                return false;
            };
            c.dependencies.iter().all(|(dep, text)| {
                chosen
                    .get(dep)
                    .is_some_and(|v| VersionReq::parse(text).unwrap().matches(v))
            })
        })
    }

    const REQS: &[&str] = &["^0.1", "^0.2", "^1", "^2", ">=0.2", "<1", "*", "=1.1.0"];
    const VERSIONS: &[&str] = &["0.1.0", "0.2.0", "0.2.5", "1.0.0", "1.1.0", "2.0.0"];

    fn universes() -> impl Strategy<Value = Universe> {
        let candidate = (
            0..VERSIONS.len(),
            proptest::collection::btree_map(0usize..5, 0..REQS.len(), 0..3),
            proptest::bool::weighted(0.15),
        );
        proptest::collection::vec(proptest::collection::vec(candidate, 0..4), 5).prop_map(|packs| {
            packs
                .into_iter()
                .enumerate()
                .map(|(i, versions)| {
                    let mut cands: Vec<Candidate> = Vec::new();
                    for (vi, deps, yanked) in versions {
                        let version = v(VERSIONS[vi]);
                        if cands.iter().any(|c| c.version == version) {
                            continue;
                        }
                        cands.push(Candidate {
                            version,
                            dependencies: deps
                                .into_iter()
                                .filter(|(d, _)| *d != i)
                                .map(|(d, r)| (format!("p{d}"), REQS[r].to_string()))
                                .collect(),
                            yanked,
                            compromised: false,
                        });
                    }
                    (format!("p{i}"), cands)
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Any solution satisfies every requirement and uses no yanked version; and a
        /// solution is found whenever one exists (checked by brute force).
        #[test]
        fn solutions_satisfy_every_requirement(u in universes(), r in 0..REQS.len()) {
            let root_req = req(REQS[r]);
            match resolve("p0", &root_req, &u, &Pins::new()) {
                Ok(chosen) => {
                    prop_assert!(root_req.matches(&chosen["p0"]));
                    prop_assert!(satisfies(&u, &chosen), "{chosen:?}");
                    for (name, version) in &chosen {
                        let c = u[name].iter().find(|c| &c.version == version).unwrap();
                        prop_assert!(!c.yanked, "{name} {version} is yanked");
                    }
                }
                Err(e) => prop_assert!(!brute_force(&u, &root_req), "missed a solution: {e}"),
            }
        }
    }
}
