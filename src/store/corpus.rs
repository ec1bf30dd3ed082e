//! Turns the npm metadata corpus (`name\tversion\tmonthly_downloads\tdescription`) into
//! signed version records, for the search ranking test and the search benchmark. npm
//! names are mapped onto ggen names (`@scope/a.b` -> `scope-a-b`); the category and
//! keywords are derived from description words, since the corpus has none.
//!
//! It also reads the search ranking suite (`tests/ranking-suite.toml`) and scores a
//! store against it. A test fixture: compiled only for tests and with the
//! `test-support` feature.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use semver::Version;

use serde::Deserialize;

use crate::package::fields::{normalize_name, MAX_DESCRIPTION_LEN, MAX_NAME_LEN};
use crate::package::{
    ArchiveInfo, Blake3Hash, PublisherKey, Record, RecordBody, RecordError, Sha256Hash,
    VersionRecord,
};

/// Where the shared corpus lives: beside the repository, in `../shared/data/`.
pub const NPM_CORPUS_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/npm-corpus-100k.tsv"
);
/// Environment variable that points at the corpus when it lives elsewhere.
pub const CORPUS_ENV: &str = "GGEN_P2P_CORPUS";

/// The corpus file to read: `$GGEN_P2P_CORPUS` when set, else [`NPM_CORPUS_PATH`].
pub fn corpus_path() -> PathBuf {
    std::env::var_os(CORPUS_ENV).map_or_else(|| PathBuf::from(NPM_CORPUS_PATH), PathBuf::from)
}

/// One corpus row, already mapped to a valid ggen name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusEntry {
    pub name: String,
    pub version: Version,
    pub monthly_downloads: u64,
    pub description: String,
}

/// Description words that decide a category (first match wins).
const CATEGORIES: &[(&str, &str)] = &[
    ("react", "frontend"),
    ("vue", "frontend"),
    ("angular", "frontend"),
    ("css", "frontend"),
    ("eslint", "lint"),
    ("lint", "lint"),
    ("test", "testing"),
    ("testing", "testing"),
    ("http", "web"),
    ("server", "web"),
    ("express", "web"),
    ("cli", "cli"),
    ("command", "cli"),
    ("parser", "parsing"),
    ("types", "types"),
    ("typescript", "types"),
    ("plugin", "plugins"),
    ("aws", "cloud"),
    ("crypto", "crypto"),
];

const STOPWORDS: &[&str] = &[
    "the", "and", "for", "with", "that", "this", "from", "your", "into", "are", "you", "use",
    "using", "which", "based", "will", "can", "not", "all", "its",
];

/// Reads and maps the corpus; rows whose name collides after mapping are skipped.
pub fn load(path: &Path) -> std::io::Result<Vec<CorpusEntry>> {
    let text = std::fs::read_to_string(path)?;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let mut fields = line.splitn(4, '\t');
        let (Some(name), Some(version), Some(downloads)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Some(name) = map_name(name) else {
            continue;
        };
        if !seen.insert(normalize_name(&name)) {
            continue;
        }
        out.push(CorpusEntry {
            name,
            version: Version::parse(version).unwrap_or_else(|_| Version::new(0, 0, 1)),
            monthly_downloads: downloads.parse().unwrap_or(0),
            description: truncate(fields.next().unwrap_or(""), MAX_DESCRIPTION_LEN),
        });
    }
    Ok(out)
}

/// Signs one version record per entry with `key`; `published_at` is the row index.
pub fn records(entries: &[CorpusEntry], key: &PublisherKey) -> Result<Vec<Record>, RecordError> {
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let words = description_words(&entry.description);
            let category = words.iter().find_map(|w| {
                CATEGORIES
                    .iter()
                    .find(|(word, _)| word == w)
                    .map(|(_, c)| c.to_string())
            });
            let keywords: Vec<String> = words
                .into_iter()
                .filter(|w| w.len() >= 4 && !STOPWORDS.contains(&w.as_str()))
                .take(3)
                .collect();
            let archive = archive_of(entry);
            let body = VersionRecord {
                publisher: key.id(),
                name: entry.name.clone(),
                version: entry.version.clone(),
                archive: ArchiveInfo {
                    blake3: archive,
                    sha256: Sha256Hash(*archive.as_bytes()),
                    size: entry.monthly_downloads,
                    chunk_size: crate::package::digest::CHUNK_SIZE,
                    chunks_root: Blake3Hash::of(b""),
                },
                description: entry.description.clone(),
                category,
                keywords,
                authors: vec![],
                license: None,
                repository: None,
                dependencies: BTreeMap::new(),
                published_at: index as u64,
                unpacked_size: None,
            };
            Record::sign(RecordBody::Version(body), key)
        })
        .collect()
}

/// Distinct lowercase alphanumeric words of a description, in order.
pub fn description_words(description: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in description.split(|c: char| !c.is_ascii_alphanumeric()) {
        let word = word.to_ascii_lowercase();
        if word.len() >= 3 && !out.contains(&word) {
            out.push(word);
        }
    }
    out
}

/// `@scope/a.b_C` -> `scope-a-b_c`; `None` if nothing valid is left.
fn map_name(npm: &str) -> Option<String> {
    let mapped: String = npm
        .trim_start_matches('@')
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mapped = mapped.trim_start_matches(['-', '_']);
    let mapped: String = mapped.chars().take(MAX_NAME_LEN).collect();
    crate::package::fields::validate_name(&mapped)
        .ok()
        .map(|_| mapped)
}

/// Provider count standing in for a package's popularity in a network that has none
/// yet: one provider for 1,000–9,999 monthly npm downloads, doubling with each factor
/// of ten (2 for 10k, 4 for 100k, 8 for 1M, 16 for 10M, 32 for 100M, 64 for 1B and
/// more); none below 1,000. Log-scaled buckets: npm downloads span six orders of
/// magnitude, and a provider count (installs that re-provide) grows with the number of
/// users, not with the number of CI downloads each of them makes.
pub fn providers_for_downloads(monthly_downloads: u64) -> usize {
    let mut providers = 0;
    let mut threshold = 1_000u64;
    while monthly_downloads >= threshold && providers < 64 {
        providers = if providers == 0 { 1 } else { providers * 2 };
        threshold = threshold.saturating_mul(10);
    }
    providers
}

/// Feeds [`providers_for_downloads`] providers per entry into `store` through
/// [`Store::observe_providers`], the way the network reports them, as seen at `at` (ms
/// since the epoch). Peer ids are shared across packages (`corpus-peer-0`, ...), as
/// real peers hold many archives. Returns how many sightings went in.
pub fn observe_providers(
    store: &crate::store::Store,
    entries: &[CorpusEntry],
    at: u64,
) -> Result<usize, crate::store::StoreError> {
    let peers: Vec<String> = (0..64).map(|i| format!("corpus-peer-{i}")).collect();
    let archives: Vec<Blake3Hash> = entries.iter().map(archive_of).collect();
    let sightings: Vec<(&Blake3Hash, &str)> = entries
        .iter()
        .zip(&archives)
        .flat_map(|(entry, archive)| {
            peers
                .iter()
                .take(providers_for_downloads(entry.monthly_downloads))
                .map(move |peer| (archive, peer.as_str()))
        })
        .collect();
    store.observe_providers(sightings.iter().copied(), at)?;
    Ok(sightings.len())
}

/// The (stand-in) archive hash [`records`] gives an entry.
fn archive_of(entry: &CorpusEntry) -> Blake3Hash {
    Blake3Hash::of(format!("{}@{}", entry.name, entry.version).as_bytes())
}

/// Where the ranking suite lives in the repository.
pub const RANKING_SUITE_PATH: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ranking-suite.toml");

/// The ranking suite: queries with the packages a user would accept in the top 5.
#[derive(Debug, Clone, Deserialize)]
pub struct RankingSuite {
    pub query: Vec<RankingQuery>,
}

/// One query of the suite; `kind` is `"name"` for an exact-name query, else absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankingQuery {
    pub q: String,
    pub expect: Vec<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

impl RankingSuite {
    /// Reads the suite file; a malformed file is an error naming the file.
    pub fn load(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        toml::from_str(&text).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }
}

/// How a ranker did on the suite.
#[derive(Debug, Clone, Default)]
pub struct SuiteScore {
    /// Queries with an expected package in the first 5 hits.
    pub passed: usize,
    pub total: usize,
    /// Mean over all queries of 1/rank of the best expected package within the first
    /// 20 hits (0 when none is there).
    pub mrr: f64,
    /// Failing queries with their first 5 hits, for the report.
    pub failures: Vec<(String, Vec<String>)>,
}

impl SuiteScore {
    pub fn pass_fraction(&self) -> f64 {
        self.passed as f64 / self.total.max(1) as f64
    }
}

/// Scores `search` (terms -> names, best first, at least 20 when there are) on `suite`.
pub fn score_suite<E>(
    suite: &RankingSuite,
    mut search: impl FnMut(&str) -> Result<Vec<String>, E>,
) -> Result<SuiteScore, E> {
    let mut score = SuiteScore {
        total: suite.query.len(),
        ..SuiteScore::default()
    };
    let mut reciprocal = 0.0;
    for query in &suite.query {
        let names = search(&query.q)?;
        let rank = names
            .iter()
            .take(20)
            .position(|n| query.expect.contains(n))
            .map(|i| i + 1);
        if let Some(rank) = rank {
            reciprocal += 1.0 / rank as f64;
        }
        if rank.is_some_and(|r| r <= 5) {
            score.passed += 1;
        } else {
            score
                .failures
                .push((query.q.clone(), names.into_iter().take(5).collect()));
        }
    }
    score.mrr = reciprocal / score.total.max(1) as f64;
    Ok(score)
}

fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_npm_names() {
        assert_eq!(map_name("@types/node").as_deref(), Some("types-node"));
        assert_eq!(map_name("lodash.merge").as_deref(), Some("lodash-merge"));
        assert_eq!(map_name("React_DOM").as_deref(), Some("react_dom"));
        assert_eq!(map_name("@@"), None);
        assert_eq!(truncate("héllo", 2), "h");
    }

    #[test]
    fn downloads_map_onto_log_scaled_provider_buckets() {
        let cases = [
            (0, 0),
            (999, 0),
            (1_000, 1),
            (9_999, 1),
            (10_000, 2),
            (1_000_000, 8),
            (150_000_000, 32),
            (2_400_000_000, 64),
            (u64::MAX, 64),
        ];
        for (downloads, providers) in cases {
            assert_eq!(providers_for_downloads(downloads), providers, "{downloads}");
        }
    }
}
