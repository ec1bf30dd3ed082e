//! One request type per registry operation, defined once: the CLI parses its arguments
//! straight into them (they derive `clap::Args`, so a field's doc comment is its `--help`
//! line), the HTTP API carries them as its JSON body or query string, and both
//! [`super::Registry`] implementations (in-process and API client) take them. Adding an
//! option to an operation is one field here plus its logic.
//!
//! Requests are parsed, not validated: rules (a name, a version requirement, a multiaddr)
//! are checked by the registry, so the CLI, the API and library callers get the same
//! one-sentence errors.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::package::{Blake3Hash, PublisherId, PublisherRef};

/// Called with (bytes done, bytes total) while an archive downloads.
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// `NAME` or `NAME@REQ` as users type it; `REQ` is empty for "the latest". A bare version
/// (`name@1.2.0`) means exactly that version, as in `cargo install foo@1.2.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSpec {
    pub name: String,
    pub req: String,
}

impl PackageSpec {
    pub fn new(name: impl Into<String>, req: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            req: req.into(),
        }
    }
}

impl FromStr for PackageSpec {
    type Err = std::convert::Infallible;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        Ok(match spec.split_once('@') {
            Some((name, req)) => Self::new(name, req),
            None => Self::new(spec, ""),
        })
    }
}

impl fmt::Display for PackageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.req.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}@{}", self.name, self.req)
        }
    }
}

impl Serialize for PackageSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PackageSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(text.parse().unwrap_or_else(|never| match never {}))
    }
}

/// `publish`: pack, sign and store the pack in `dir`, then announce it when a node runs.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct PublishRequest {
    /// Pack directory holding package.toml (or gpack.toml)
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

impl PublishRequest {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

impl From<super::Package> for PublishRequest {
    fn from(package: super::Package) -> Self {
        Self::new(package.dir)
    }
}

/// `search`: ranked search over the local replica (and connected peers with `network`).
/// On the HTTP API it is the query string of `GET /api/v1/search`, with the words in `q`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Args)]
pub struct SearchRequest {
    /// Words to look for in names, keywords and descriptions
    #[serde(rename = "q", default, with = "words")]
    pub terms: Vec<String>,
    /// Only packs of this category
    #[arg(long)]
    pub category: Option<String>,
    /// Only packs with this keyword
    #[arg(long)]
    pub keyword: Option<String>,
    /// Most results to show
    #[arg(long, default_value_t = 20)]
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Results to skip (for paging)
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub offset: usize,
    /// Also ask connected peers, and merge what they know
    #[arg(long)]
    #[serde(default)]
    pub network: bool,
}

fn default_limit() -> usize {
    20
}

impl SearchRequest {
    pub fn new(terms: Vec<String>) -> Self {
        Self {
            terms,
            category: None,
            keyword: None,
            limit: default_limit(),
            offset: 0,
            network: false,
        }
    }

    pub fn with_category(mut self, category: String) -> Self {
        self.category = Some(category);
        self
    }

    pub fn with_keyword(mut self, keyword: String) -> Self {
        self.keyword = Some(keyword);
        self
    }

    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    pub fn with_offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }

    /// Asks connected peers too before searching the local replica.
    pub fn with_network(mut self, network: bool) -> Self {
        self.network = network;
        self
    }

    /// The store's (and the wire protocol's) form of the query.
    pub fn query(&self) -> crate::store::Query {
        let mut query = crate::store::Query::new(self.terms.clone())
            .with_limit(self.limit)
            .with_offset(self.offset);
        if let Some(category) = &self.category {
            query = query.with_category(category.clone());
        }
        if let Some(keyword) = &self.keyword {
            query = query.with_keyword(keyword.clone());
        }
        query
    }
}

/// Search words travel as one space-separated string (`q=rust+web`).
mod words {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(terms: &[String], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&terms.join(" "))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<String>, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(text.split_whitespace().map(String::from).collect())
    }
}

/// `info`: the version a requirement resolves to, every known version, who claims the name.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct InfoRequest {
    /// Pack name, optionally with a version or requirement: name@1.2.0, name@^1
    #[arg(value_name = "SPEC")]
    pub spec: PackageSpec,
    /// Show the pack as published by this key (when several claim the name); any
    /// unambiguous prefix of its id, such as the short form `info` prints
    #[arg(long)]
    pub publisher: Option<PublisherRef>,
}

impl InfoRequest {
    pub fn new(spec: PackageSpec) -> Self {
        Self {
            spec,
            publisher: None,
        }
    }
}

/// `install`: resolve, fetch from peers if needed, verify, unpack.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct InstallRequest {
    /// Pack name, optionally with a version or requirement: name@1.2.0, name@^1
    #[arg(value_name = "SPEC")]
    pub spec: PackageSpec,
    /// Directory to install into (must not exist) [default: DATA_DIR/packs/NAME@VERSION]
    #[arg(long)]
    pub to: Option<PathBuf>,
    /// Install the pack published by this key (needed when several claim the name); any
    /// unambiguous prefix of its id, such as the short form `info` prints
    #[arg(long)]
    pub publisher: Option<PublisherRef>,
    /// Install exactly this archive (BLAKE3 hex, as a lockfile pins it): the newest
    /// matching version whose signed record names it; allowed for a compromised version
    #[arg(long, value_name = "HASH")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<Blake3Hash>,
    /// Install exactly what the target's ggen-p2p.lock says, or fail naming the difference
    #[arg(long)]
    #[serde(default, skip_serializing_if = "is_false")]
    pub locked: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl InstallRequest {
    pub fn new(spec: PackageSpec) -> Self {
        Self {
            spec,
            to: None,
            publisher: None,
            archive: None,
            locked: false,
        }
    }

    /// Reproduce the target's lockfile exactly (`--locked`).
    pub fn with_locked(mut self, locked: bool) -> Self {
        self.locked = locked;
        self
    }

    /// Pins the archive by its BLAKE3 hash (see [`InstallRequest::archive`]).
    pub fn with_archive(mut self, archive: Blake3Hash) -> Self {
        self.archive = Some(archive);
        self
    }

    pub fn with_target(mut self, to: impl Into<PathBuf>) -> Self {
        self.to = Some(to.into());
        self
    }
}

/// `yank`: sign a yank of one of your versions (hidden from new resolutions).
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct YankRequest {
    /// The exact version to yank: name@1.2.0
    #[arg(value_name = "SPEC")]
    pub spec: PackageSpec,
}

/// `list`: installed packs and packs published with this node's key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
pub struct ListRequest {}

/// `verify`: re-check every stored record signature and archive hash.
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
pub struct VerifyRequest {
    /// Also remove orphans (leftover temp files, blobs without an index row) and forget
    /// archive rows whose blob is missing or damaged, so they are fetched again
    #[arg(long)]
    #[serde(default)]
    pub repair: bool,
}

/// `status`: identity, network and store at a glance.
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
pub struct StatusRequest {}

/// `peers`: the running node's connected peers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
pub struct PeersRequest {}

/// `peers add`: connect to a peer now.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct AddPeerRequest {
    /// The peer's address: /ip4/1.2.3.4/tcp/4001/p2p/12D3Koo...
    pub addr: String,
}

/// `peers remove`: disconnect from a peer and forget its addresses.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct RemovePeerRequest {
    /// The peer id, as `ggen-p2p peers` lists it
    pub peer: String,
}

/// `trust add`: pin a publisher key so it owns a name (or every name it claims) here,
/// whoever was accepted first.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct TrustAddRequest {
    /// The publisher id to trust, as `info` prints it
    pub key: PublisherId,
    /// Trust it for this name only [default: every name the key claims]
    #[arg(long)]
    pub name: Option<String>,
}

/// `trust remove`: drop a pin made with `trust add` (config pins stay).
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct TrustRemoveRequest {
    /// The publisher id to stop trusting
    pub key: PublisherId,
    /// The name it was trusted for [default: its every-name pin]
    #[arg(long)]
    pub name: Option<String>,
}

/// `key rotate`: replace your publisher key by a new one that keeps your names.
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
pub struct RotateKeyRequest {}

/// `trust list`: every pinned key, from `trust add` and from config.
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
pub struct TrustListRequest {}

/// `peers block`: ban a peer (refused and disconnected, kept across restarts).
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct BlockPeerRequest {
    /// The peer id, as `ggen-p2p peers` lists it
    pub peer: String,
}

/// `peers unblock`: lift a peer's ban (a block or a ban for invalid records).
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct UnblockPeerRequest {
    /// The peer id, as `ggen-p2p peers block` took it
    pub peer: String,
}

/// `init`: start a new pack: a valid package.toml and a template layout in `dir`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
pub struct InitRequest {
    /// Directory to create the pack in (created if missing; must not hold a manifest)
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Pack name [default: the directory's name]
    #[arg(long)]
    pub name: Option<String>,
    /// One-line description
    #[arg(long)]
    pub description: Option<String>,
    /// Category, such as web, cli or ci
    #[arg(long)]
    pub category: Option<String>,
    /// License (SPDX) [default: MIT]
    #[arg(long)]
    pub license: Option<String>,
    /// Ask nothing: take the defaults for what the flags leave out (implied without a
    /// terminal)
    #[arg(long, short)]
    #[serde(default)]
    pub yes: bool,
}

/// `uninstall`: remove an installed pack (and the dependencies installed with it).
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct UninstallRequest {
    /// Name of the installed pack
    pub name: String,
    /// Which install, when the pack is installed in several directories
    #[arg(long)]
    pub path: Option<PathBuf>,
}

/// `outdated`: for every installed pack, the version installed, the newest one its
/// requirements allow, and the newest one published.
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
pub struct OutdatedRequest {}

/// `update`: re-resolve installed trees to the newest versions their requirements
/// allow, reinstall what changed and rewrite their lockfiles.
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
pub struct UpdateRequest {
    /// Update only this pack (a pack installed by name, or a dependency) [default: all]
    pub name: Option<String>,
    /// Only the tree installed in this directory
    #[arg(long)]
    pub path: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_split_at_the_first_at_sign_and_print_back() {
        let spec: PackageSpec = "web-kit@^1.2".parse().unwrap();
        assert_eq!(spec, PackageSpec::new("web-kit", "^1.2"));
        assert_eq!(spec.to_string(), "web-kit@^1.2");
        let bare: PackageSpec = "web-kit".parse().unwrap();
        assert_eq!(bare.req, "");
        assert_eq!(bare.to_string(), "web-kit");
        let json = serde_json::to_string(&InstallRequest::new(spec)).unwrap();
        assert_eq!(
            json,
            r#"{"spec":"web-kit@^1.2","to":null,"publisher":null}"#
        );
    }

    #[test]
    fn search_requests_round_trip_through_a_query_string() {
        let request = SearchRequest::new(vec!["rust".into(), "web".into()])
            .with_category("web".into())
            .with_limit(5)
            .with_network(true);
        let encoded = serde_urlencoded::to_string(&request).unwrap();
        assert_eq!(
            encoded,
            "q=rust+web&category=web&limit=5&offset=0&network=true"
        );
        let decoded: SearchRequest = serde_urlencoded::from_str(&encoded).unwrap();
        assert_eq!(decoded, request);
        let sparse: SearchRequest = serde_urlencoded::from_str("q=axum").unwrap();
        assert_eq!(sparse, SearchRequest::new(vec!["axum".into()]));
    }
}

/// `mirror sync URL`: import every record an HTTP mirror serves, each verified as a
/// record from a peer is.
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub struct MirrorSyncRequest {
    /// The mirror's base URL, e.g. http://mirror.example:8080 (as `start --mirror` serves)
    pub url: String,
}
