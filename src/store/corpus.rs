//! Turns the npm metadata corpus (`name\tversion\tmonthly_downloads\tdescription`) into
//! signed version records, for the search ranking test and the search benchmark. npm
//! names are mapped onto ggen names (`@scope/a.b` -> `scope-a-b`); the category and
//! keywords are derived from description words, since the corpus has none.
//!
//! A test fixture: compiled only for tests and with the `test-support` feature.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use semver::Version;

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
            let id = format!("{}@{}", entry.name, entry.version);
            let body = VersionRecord {
                publisher: key.id(),
                name: entry.name.clone(),
                version: entry.version.clone(),
                archive: ArchiveInfo {
                    blake3: Blake3Hash::of(id.as_bytes()),
                    sha256: Sha256Hash(*Blake3Hash::of(id.as_bytes()).as_bytes()),
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

fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::store::{Query, Store};

    #[test]
    fn maps_npm_names() {
        assert_eq!(map_name("@types/node").as_deref(), Some("types-node"));
        assert_eq!(map_name("lodash.merge").as_deref(), Some("lodash-merge"));
        assert_eq!(map_name("React_DOM").as_deref(), Some("react_dom"));
        assert_eq!(map_name("@@"), None);
        assert_eq!(truncate("héllo", 2), "h");
    }

    /// Ranking quality on 100,000 real npm packages. The corpus is part of the test:
    /// when it is missing the test fails rather than passing without checking anything.
    #[test]
    fn ranking_on_the_npm_corpus() {
        let path = corpus_path();
        assert!(
            path.is_file(),
            "npm corpus not found at {}: it is looked for in ../shared/data/ beside the \
             repository; set {CORPUS_ENV} to point at npm-corpus-100k.tsv elsewhere",
            path.display()
        );
        let entries = load(&path).unwrap();
        assert!(entries.len() > 90_000, "{} entries", entries.len());
        let key = PublisherKey::generate();
        let records = records(&entries, &key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let start = Instant::now();
        store.ingest_many(&records).unwrap();
        eprintln!(
            "ingested {} records in {:.2?}",
            records.len(),
            start.elapsed()
        );
        let top = |terms: &str, n: usize| -> Vec<String> {
            let query = Query::new(terms.split(' ').map(String::from).collect()).with_limit(n);
            store
                .search(&query)
                .unwrap()
                .into_iter()
                .map(|hit| hit.package.record.name)
                .collect()
        };
        assert_eq!(top("express web framework", 5)[0], "express");
        let react_router = top("react router", 3);
        assert!(
            react_router.contains(&"react-router".to_string()),
            "{react_router:?}"
        );
        assert_eq!(top("react", 1), ["react"]);
        assert_eq!(top("lodash", 1), ["lodash"]);
        let scoped = top("types node", 3);
        assert!(scoped.contains(&"types-node".to_string()), "{scoped:?}");
        let web = store
            .search(&Query::new(vec!["server".into()]).with_category("web".into()))
            .unwrap();
        assert_eq!(web.len(), 20);
        assert!(web
            .iter()
            .all(|hit| hit.package.category.as_deref() == Some("web")));
    }
}
