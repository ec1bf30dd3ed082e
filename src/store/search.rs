//! Local search over the `packages` rows. One relevance score: an FTS5 match (Porter
//! stemmed) on the name (joined and split into words), keywords and description, ranked
//! by bm25 with column weights name > keywords > description; documents matching all the
//! query words get a bonus larger than any bm25 gap, so they beat documents matching some.
//! Added to it: a popularity prior (distinct live providers, log-scaled and capped; see
//! `local.rs`), a boost that puts an exact name first, and a small name-prefix boost.
//! Then pseudo-relevance feedback (`feedback.rs`): packages named by the first hits
//! join the all-words tier and the page is re-ranked. In queries of two or more words
//! an agent noun also matches its verb ("server" also "serve": `agent_verb`), since
//! the stemmer conflates only inflections and descriptions say what a package does
//! with verbs.
//! Broad queries score bounded candidate pools (shortest names first) instead of every
//! match.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{feedback, records, Store, StoreError};
use crate::package::fields::normalize_name;
use crate::package::{RecordId, VersionRecord};

/// Default number of hits per page.
pub const DEFAULT_LIMIT: usize = 20;
/// Largest page a query may ask for.
pub const MAX_LIMIT: usize = 1000;

/// The whole query, normalized, is the name.
const EXACT_BOOST: f64 = 1000.0;

/// The ranking's weights. [`Store::search`] uses [`Ranking::DEFAULT`]; the ranking
/// suite and the benchmark also score [`Ranking::PLAIN_BM25`] (no prior) beside it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranking {
    /// bm25 column weights: joined name, name words, keywords, description.
    pub columns: [f64; 4],
    /// Added when a document matches every query word (stemmed).
    pub all_words: f64,
    /// Weight of the popularity prior `log2(1 + providers)`, providers capped.
    pub prior: f64,
    /// Added when the name starts with the whole query (a half-typed name).
    pub prefix: f64,
    /// Added when the name is one of the query words.
    pub word_name: f64,
    /// Weight of pseudo-relevance feedback (0 turns it off): packages named by the
    /// query's first hits (`feedback.rs`) count as matching every query word, with this
    /// times the expansion weight as relevance (see `feedback_adds`).
    pub feedback: f64,
    /// Words in more than this fraction of all packages are no expansion.
    pub feedback_df: f64,
    /// How an expansion that is also a literal match combines the two: `true` adds the
    /// feedback relevance to its bm25 (two independent pieces of evidence: the text
    /// matches, and the other hits name it), `false` keeps the larger (the ranker
    /// before 2026-11-28, [`Ranking::PREVIOUS`]).
    pub feedback_adds: bool,
    /// Queries of two or more words also match an agent noun's verb ("server" →
    /// "serve"; see `agent_verb`).
    pub agent_verbs: bool,
}

impl Ranking {
    /// Column weights 1 / 1 / 0.75 / 0.5: the order and ratios of the earlier
    /// 2 / 2 / 1.5 / 1, halved, so text relevance weighs about half as much against the
    /// prior and feedback (FTS5 applies the weights to term frequencies before its
    /// k1 = 1.2 saturation, so it is close to, not exactly, halving bm25). Feedback is
    /// added to a literal match's bm25; agent nouns also match their verb. See
    /// docs/decisions.md "Search ranking".
    pub const DEFAULT: Ranking = Ranking {
        columns: [1.0, 1.0, 0.75, 0.5],
        all_words: 500.0,
        prior: 20.0,
        prefix: 2.0,
        word_name: 10.0,
        feedback: 15.0,
        feedback_df: 0.003,
        feedback_adds: true,
        agent_verbs: true,
    };
    /// The ranker before 2026-11-28 (weights 2 / 2 / 1.5 / 1, feedback 20 taken as the
    /// larger of it and bm25, no agent-noun verbs), kept so the suites can report it
    /// side by side.
    pub const PREVIOUS: Ranking = Ranking {
        columns: [2.0, 2.0, 1.5, 1.0],
        feedback: 20.0,
        feedback_adds: false,
        agent_verbs: false,
        ..Ranking::DEFAULT
    };
    /// [`Ranking::PREVIOUS`] without feedback: bm25 and the prior only (the ranker before
    /// feedback, kept for comparison).
    pub const BM25_PRIOR: Ranking = Ranking {
        feedback: 0.0,
        ..Ranking::PREVIOUS
    };
    /// The same relevance score without the popularity prior and without feedback.
    pub const PLAIN_BM25: Ranking = Ranking {
        prior: 0.0,
        feedback: 0.0,
        ..Ranking::PREVIOUS
    };
}
/// Matches of any word scored, in FTS rowid order, which puts
/// shorter names first (see `records::package_id`). bm25 costs about a microsecond per
/// scored row, so this bounds a query over common words; a query matching fewer rows
/// than this is scored exhaustively.
const POOL: usize = 700;
/// Matches of all the words scored (multi-word queries only).
const ALL_POOL: usize = 500;
/// "Any word" candidates for queries of two or more words.
const MULTI_WORD_POOL: usize = 700;
/// Name matches (from `names_fts`, last word as a prefix) scored, so name hits are not
/// crowded out by description hits.
const NAME_POOL: usize = 500;

/// A search: free-text terms plus exact filters. `limit` 0 means [`DEFAULT_LIMIT`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Query {
    pub terms: Vec<String>,
    pub category: Option<String>,
    pub keyword: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

impl Default for Query {
    fn default() -> Self {
        Self {
            terms: Vec::new(),
            category: None,
            keyword: None,
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

impl Query {
    pub fn new(terms: Vec<String>) -> Self {
        Self {
            terms,
            ..Self::default()
        }
    }

    pub fn with_category(self, category: String) -> Self {
        Self {
            category: Some(category),
            ..self
        }
    }

    pub fn with_keyword(self, keyword: String) -> Self {
        Self {
            keyword: Some(keyword),
            ..self
        }
    }

    pub fn with_limit(self, limit: usize) -> Self {
        Self { limit, ..self }
    }

    pub fn with_offset(self, offset: usize) -> Self {
        Self { offset, ..self }
    }

    /// Lowercase alphanumeric words of the terms, in order, without repeats.
    fn tokens(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for term in &self.terms {
            for word in term.split(|c: char| !c.is_alphanumeric()) {
                let word = word.to_lowercase();
                if !word.is_empty() && !out.contains(&word) {
                    out.push(word);
                }
            }
        }
        out
    }
}

/// One version of one package, as the index knows it: the signed version record (the
/// one model of a package's fields) plus what the index adds. Reads of the record's
/// fields go through `Deref` (`meta.name`, `meta.archive.blake3`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedVersion {
    #[serde(flatten)]
    pub record: VersionRecord,
    pub yanked: bool,
    pub record_id: RecordId,
}

impl IndexedVersion {
    pub fn from_record(v: &VersionRecord, yanked: bool, record_id: RecordId) -> Self {
        Self {
            record: v.clone(),
            yanked,
            record_id,
        }
    }
}

impl std::ops::Deref for IndexedVersion {
    type Target = VersionRecord;

    fn deref(&self) -> &VersionRecord {
        &self.record
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchHit {
    /// The owner's latest non-yanked version.
    pub package: IndexedVersion,
    pub score: f64,
    /// More than one publisher claims the name.
    pub conflict: bool,
}

impl Store {
    /// One hit per name, best first; see the module doc for the ranking.
    pub fn search(&self, query: &Query) -> Result<Vec<SearchHit>, StoreError> {
        self.search_ranked(query, &Ranking::DEFAULT)
    }

    /// [`Store::search`] with other weights, for comparing rankers (the ranking suite,
    /// the search benchmark).
    pub fn search_ranked(
        &self,
        query: &Query,
        ranking: &Ranking,
    ) -> Result<Vec<SearchHit>, StoreError> {
        let tokens = query.tokens();
        let limit = match query.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        } as i64;
        let offset = query.offset.min(i64::MAX as usize) as i64;
        let category = query.category.as_ref().map(|c| c.to_lowercase());
        let keyword = query.keyword.as_ref().map(|k| k.to_lowercase());
        self.read(|conn| {
            let mut found: Vec<(i64, bool, f64)> = Vec::new();
            let use_feedback = ranking.feedback > 0.0 && !tokens.is_empty();
            // With feedback the first page is re-ranked, so it is fetched from the top.
            let (sql_limit, sql_offset) = if use_feedback {
                ((offset + limit).max(feedback::FEEDBACK_DOCS as i64), 0)
            } else {
                (limit, offset)
            };
            if tokens.is_empty() {
                if category.is_none() && keyword.is_none() {
                    return Ok(Vec::new());
                }
                let mut stmt = conn.prepare_cached(
                    "SELECT p.rid, p.conflict FROM packages p
                     WHERE (?1 IS NULL OR p.category = ?1)
                       AND (?2 IS NULL OR EXISTS (SELECT 1 FROM package_keywords k
                                                  WHERE k.keyword = ?2 AND k.pid = p.pid))
                     ORDER BY p.norm LIMIT ?3 OFFSET ?4",
                )?;
                let rows = stmt.query_map(params![category, keyword, limit, offset], |row| {
                    Ok((row.get(0)?, row.get(1)?, 0.0))
                })?;
                for row in rows {
                    found.push(row?);
                }
            } else {
                let verbs = ranking.agent_verbs && tokens.len() > 1;
                let any = fts_expression(&tokens, " OR ", false, verbs);
                let all = fts_expression(&tokens, " AND ", false, verbs);
                let in_name = fts_expression(&tokens, " OR ", true, false);
                let whole = normalize_name(&tokens.join("-"));
                // "qr code" also names `qrcode`, "json web token" `jsonwebtoken`.
                let joined = normalize_name(&tokens.concat());
                let words = format!(" {} ", tokens.join(" "));
                let mut names: Vec<&str> = tokens.iter().map(String::as_str).collect();
                names.push(&whole);
                names.push(&joined);
                let names = serde_json::to_string(&names).unwrap_or_default();
                let [w0, w1, w2, w3] = ranking.columns;
                let weights = format!("{w0:?}, {w1:?}, {w2:?}, {w3:?}");
                let pool = |expr: &str, cap: usize, all: bool| {
                    format!(
                        "SELECT *, {} FROM (SELECT rowid AS pid, bm25(packages_fts, {weights}) AS bm
                         FROM packages_fts WHERE packages_fts MATCH {expr}
                         ORDER BY rowid LIMIT {cap})",
                        i32::from(all)
                    )
                };
                // With several words the "all words" pool already holds the precise
                // matches, so the "any word" pool can be smaller (it is the costliest).
                let any_cap = if tokens.len() > 1 {
                    MULTI_WORD_POOL
                } else {
                    POOL
                };
                let any_pool = pool("?1", any_cap, tokens.len() == 1);
                // With one word "all" is "any": skip the second pool (the stand-in still
                // mentions ?8 so both shapes take the same parameters).
                let all_pool = if tokens.len() > 1 {
                    format!("UNION ALL {}", pool("?8", ALL_POOL, true))
                } else {
                    "UNION ALL SELECT NULL, NULL, NULL WHERE ?8 IS NULL".to_string()
                };
                let name_pool = format!(
                    "SELECT *, 0 FROM (SELECT rowid, bm25(names_fts) * {w1:?}
                     FROM names_fts WHERE names_fts MATCH ?9 ORDER BY rowid LIMIT {NAME_POOL})"
                );
                let Ranking {
                    all_words,
                    prior,
                    prefix,
                    word_name,
                    ..
                } = *ranking;
                let sql = format!(
                    "WITH c(pid, bm, every) AS (
                        {any_pool} UNION ALL {name_pool} {all_pool}
                        UNION ALL SELECT pid, 0.0, 0 FROM packages
                            WHERE norm IN (SELECT value FROM json_each(?10))
                     )
                     SELECT p.rid, p.conflict,
                        -MIN(c.bm)
                        + CASE WHEN MAX(c.every) = 1 THEN {all_words:?} ELSE 0.0 END
                        + {prior:?} * COALESCE((SELECT lift FROM popularity pop
                                                WHERE pop.norm = p.norm), 0.0)
                        + CASE WHEN p.norm IN (?4, ?11) THEN {EXACT_BOOST:?} ELSE 0.0 END
                        + CASE WHEN instr(?5, ' ' || p.norm || ' ') > 0
                               THEN {word_name:?} ELSE 0.0 END
                        + CASE WHEN p.norm NOT IN (?4, ?11) AND substr(p.norm, 1, length(?4)) = ?4
                               THEN {prefix:?} ELSE 0.0 END AS score,
                        p.pid, -MIN(c.bm), MAX(c.every)
                     FROM c JOIN packages p ON p.pid = c.pid
                     WHERE (?2 IS NULL OR p.category = ?2)
                       AND (?3 IS NULL OR EXISTS (SELECT 1 FROM package_keywords k
                                                  WHERE k.keyword = ?3 AND k.pid = p.pid))
                     GROUP BY p.pid
                     ORDER BY score DESC, p.norm LIMIT ?6 OFFSET ?7"
                );
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = stmt.query_map(
                    params![
                        any, category, keyword, whole, words, sql_limit, sql_offset, all, in_name,
                        names, joined
                    ],
                    |row| {
                        Ok(Scored {
                            rid: row.get(0)?,
                            conflict: row.get(1)?,
                            score: row.get(2)?,
                            pid: row.get(3)?,
                            relevance: row.get(4)?,
                            every: row.get::<_, i64>(5)? == 1,
                        })
                    },
                )?;
                let mut scored = rows.collect::<Result<Vec<_>, _>>()?;
                if use_feedback {
                    expand(conn, ranking, &tokens, &category, &keyword, &mut scored)?;
                    scored = scored
                        .into_iter()
                        .skip(offset as usize)
                        .take(limit as usize)
                        .collect();
                }
                found.extend(scored.into_iter().map(|s| (s.rid, s.conflict, s.score)));
            }
            found
                .into_iter()
                .map(|(rid, conflict, score)| {
                    Ok(SearchHit {
                        package: records::display_metadata(conn, rid)?,
                        score,
                        conflict,
                    })
                })
                .collect()
        })
    }
}

/// One scored candidate of the first pass.
struct Scored {
    rid: i64,
    conflict: bool,
    score: f64,
    pid: i64,
    /// The bm25 part of `score` (negated, larger is better).
    relevance: f64,
    /// Matches every query word (the all-words bonus is in `score`).
    every: bool,
}

/// Pseudo-relevance feedback (`feedback.rs`): the packages named by the first hits join
/// the all-words tier with `ranking.feedback × weight` as relevance, added to their own
/// bm25 (or, `feedback_adds` false, when it beats it); then `scored` is sorted again
/// (score, then name).
fn expand(
    conn: &rusqlite::Connection,
    ranking: &Ranking,
    tokens: &[String],
    category: &Option<String>,
    keyword: &Option<String>,
    scored: &mut Vec<Scored>,
) -> rusqlite::Result<()> {
    let hits: Vec<i64> = scored.iter().map(|s| s.pid).collect();
    let expansions = feedback::expansions(conn, tokens, &hits, ranking.feedback_df)?;
    if expansions.is_empty() {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT p.pid, p.rid, p.conflict, COALESCE(pop.lift, 0.0) FROM packages p
         LEFT JOIN popularity pop ON pop.norm = p.norm
         WHERE p.norm = ?1
           AND (?2 IS NULL OR p.category = ?2)
           AND (?3 IS NULL OR EXISTS (SELECT 1 FROM package_keywords k
                                      WHERE k.keyword = ?3 AND k.pid = p.pid))",
    )?;
    for (norm, weight) in expansions {
        let relevance = ranking.feedback * weight;
        let row = stmt
            .query_row(params![norm, category, keyword], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, bool>(2)?,
                    row.get::<_, f64>(3)?,
                ))
            })
            .optional()?;
        let Some((pid, rid, conflict, lift)) = row else {
            continue;
        };
        match scored.iter_mut().find(|s| s.pid == pid) {
            Some(s) => {
                if !s.every {
                    s.score += ranking.all_words;
                    s.every = true;
                }
                if ranking.feedback_adds {
                    s.score += relevance;
                    s.relevance += relevance;
                } else if relevance > s.relevance {
                    s.score += relevance - s.relevance;
                    s.relevance = relevance;
                }
            }
            None => scored.push(Scored {
                rid,
                conflict,
                score: ranking.all_words + ranking.prior * lift + relevance,
                pid,
                relevance,
                every: true,
            }),
        }
    }
    let mut norms = conn.prepare_cached("SELECT norm FROM packages WHERE pid = ?1")?;
    let mut keyed = Vec::with_capacity(scored.len());
    for s in scored.drain(..) {
        let norm: String = norms.query_row([s.pid], |row| row.get(0))?;
        keyed.push((norm, s));
    }
    keyed.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then_with(|| a.0.cmp(&b.0)));
    scored.extend(keyed.into_iter().map(|(_, s)| s));
    Ok(())
}

/// `"a" OR "b" OR "c"` (or with `" AND "`: all of them). With `prefix` the last word is
/// also a prefix so a half-typed name is found (only used on the name columns, which
/// are not stemmed: prefix expansion over descriptions is the costliest part of a
/// query). Without it (the stemmed text index) an agent noun also matches the verb it
/// is made from, `("server" OR "serv")` (see [`agent_verb`]).
fn fts_expression(tokens: &[String], joiner: &str, prefix: bool, verbs: bool) -> String {
    let mut parts: Vec<String> = tokens
        .iter()
        .map(|t| match agent_verb(t).filter(|_| verbs) {
            Some(verb) => format!("(\"{t}\" OR \"{verb}\")"),
            None => format!("\"{t}\""),
        })
        .collect();
    if let Some(last) = parts.last_mut() {
        if prefix && tokens.last().is_some_and(|t| t.chars().count() >= 2) {
            last.push('*');
        }
    }
    parts.join(joiner)
}

/// The verb an English agent noun is made from: "server" → "serv", "linter" → "lint",
/// "emitter" → "emit", "logger" → "log", "parsers" → "pars" (a doubled final consonant
/// is undone). The Porter stemmer conflates inflections only ("servers", "server"), so
/// "static file server" missed "Serve static files" and "test runner" "run tests";
/// this is the one derivational step added (agent noun → verb, as derivational
/// stemmers such as Krovetz's do), matched as an alternative of the word. The result
/// goes through the same Porter stemmer as the index, so "serv" meets "serve",
/// "serving", "served". Words of five letters or more only, leaving a stem of three or
/// more ASCII letters; `None` otherwise.
fn agent_verb(word: &str) -> Option<String> {
    if !word.is_ascii() || word.len() < 5 {
        return None;
    }
    let stem = word
        .strip_suffix("ers")
        .or_else(|| word.strip_suffix("er"))?;
    let bytes = stem.as_bytes();
    let stem = match bytes {
        [.., a, b] if a == b && !b"aeiou".contains(b) => &stem[..stem.len() - 1],
        _ => stem,
    };
    (stem.len() >= 3 && stem.bytes().all(|b| b.is_ascii_lowercase())).then(|| stem.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::package::{PublisherKey, Record, RecordBody};
    use crate::store::test_util::version_body;

    fn package(
        key: &PublisherKey,
        name: &str,
        description: &str,
        category: Option<&str>,
        keywords: &[&str],
    ) -> Record {
        let mut body = version_body(key, name, "1.0.0", 1);
        body.description = description.into();
        body.category = category.map(String::from);
        body.keywords = keywords.iter().map(|k| k.to_string()).collect();
        Record::sign(RecordBody::Version(body), key).unwrap()
    }

    fn names(hits: &[SearchHit]) -> Vec<&str> {
        hits.iter().map(|h| h.package.name.as_str()).collect()
    }

    fn sample_store(dir: &std::path::Path) -> Store {
        let store = Store::open(dir).unwrap();
        let key = PublisherKey::generate();
        store
            .ingest_many(&[
                package(
                    &key,
                    "async-runtime",
                    "an executor",
                    Some("Runtime"),
                    &["tokio"],
                ),
                package(
                    &key,
                    "tokio",
                    "the async runtime",
                    Some("runtime"),
                    &["async"],
                ),
                package(
                    &key,
                    "net-helpers",
                    "helpers for tokio sockets",
                    Some("net"),
                    &[],
                ),
                package(&key, "tokio-util", "utilities", Some("runtime"), &["async"]),
                package(&key, "unrelated", "nothing to see", None, &["misc"]),
            ])
            .unwrap();
        store
    }

    #[test]
    fn ranking_exact_then_prefix_then_keyword_then_description() {
        let dir = tempfile::tempdir().unwrap();
        let store = sample_store(dir.path());
        let hits = store.search(&Query::new(vec!["tokio".into()])).unwrap();
        assert_eq!(
            names(&hits),
            ["tokio", "tokio-util", "async-runtime", "net-helpers"]
        );
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        // normalized exact name: '_' and '-' are the same
        let hits = store
            .search(&Query::new(vec!["tokio_util".into()]))
            .unwrap();
        assert_eq!(hits[0].package.name, "tokio-util");
    }

    #[test]
    fn filters_limit_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let store = sample_store(dir.path());
        let runtime = store
            .search(&Query::new(vec!["tokio".into()]).with_category("RUNTIME".into()))
            .unwrap();
        assert_eq!(names(&runtime), ["tokio", "tokio-util", "async-runtime"]);
        let keyword = store
            .search(&Query::new(vec!["tokio".into()]).with_keyword("Async".into()))
            .unwrap();
        assert_eq!(names(&keyword), ["tokio", "tokio-util"]);
        let only_filter = store
            .search(&Query::default().with_keyword("misc".into()))
            .unwrap();
        assert_eq!(names(&only_filter), ["unrelated"]);
        let page = store
            .search(
                &Query::new(vec!["tokio".into()])
                    .with_limit(2)
                    .with_offset(1),
            )
            .unwrap();
        assert_eq!(names(&page), ["tokio-util", "async-runtime"]);
        assert!(store
            .search(&Query::new(vec!["zzz".into()]))
            .unwrap()
            .is_empty());
        // punctuation and FTS syntax in the query are plain words, not errors
        let odd = store
            .search(&Query::new(vec!["\"tokio\" OR (*".into()]))
            .unwrap();
        assert_eq!(odd[0].package.name, "tokio");
    }

    #[test]
    fn one_hit_per_name_with_latest_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = PublisherKey::generate();
        for (v, description) in [
            ("1.0.0", "old words"),
            ("1.10.0", "new words"),
            ("1.9.0", "mid"),
        ] {
            let mut body = version_body(&key, "multi", v, 1);
            body.description = description.into();
            store
                .ingest(&Record::sign(RecordBody::Version(body), &key).unwrap())
                .unwrap();
        }
        let hits = store.search(&Query::new(vec!["multi".into()])).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].package.version, semver::Version::new(1, 10, 0));
        // the FTS text follows the latest version
        assert_eq!(
            store.search(&Query::new(vec!["new".into()])).unwrap().len(),
            1
        );
        assert!(store
            .search(&Query::new(vec!["old".into()]))
            .unwrap()
            .is_empty());
    }

    /// Pseudo-relevance feedback: the first hits for "linter" mention `eslint`, which
    /// never says "linter"; it joins the all-words tier and, popular, ranks first among
    /// them. Without feedback it is not found at all.
    #[test]
    fn feedback_finds_the_package_the_first_hits_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = PublisherKey::generate();
        let mut records = vec![package(
            &key,
            "eslint",
            "an ast based pattern checker",
            None,
            &[],
        )];
        for (name, text) in [
            ("xo", "linter with great defaults, an eslint wrapper"),
            ("standard", "style guide and linter built on eslint"),
            ("lint-staged", "run a linter such as eslint on staged files"),
            ("lintly", "a small linter"),
        ] {
            records.push(package(&key, name, text, None, &[]));
        }
        // unrelated filler, so "eslint" (in 4 packages) is a rare word of the index: below
        // `feedback_df` (0.3 %) of them
        for i in 0..1500 {
            records.push(package(
                &key,
                &format!("filler-{i}"),
                "nothing here",
                None,
                &[],
            ));
        }
        store.ingest_many(&records).unwrap();
        let query = Query::new(vec!["linter".into()]);
        let plain = store.search_ranked(&query, &Ranking::BM25_PRIOR).unwrap();
        assert!(!names(&plain).contains(&"eslint"), "{:?}", names(&plain));
        let hits = store.search(&query).unwrap();
        assert!(names(&hits).contains(&"eslint"), "{:?}", names(&hits));
        // the literal matches keep their places; the expansion joins them
        for name in ["xo", "standard", "lint-staged", "lintly"] {
            assert!(names(&hits).contains(&name), "{:?}", names(&hits));
        }
        // pages of the re-ranked list do not overlap
        let first = store.search(&query.clone().with_limit(2)).unwrap();
        let second = store
            .search(&query.clone().with_limit(2).with_offset(2))
            .unwrap();
        assert_eq!(
            [names(&first), names(&second)].concat(),
            names(&hits)[..4].to_vec()
        );
    }

    #[test]
    fn agent_nouns_also_match_their_verb() {
        for (noun, verb) in [
            ("server", "serv"),
            ("servers", "serv"),
            ("linter", "lint"),
            ("emitter", "emit"),
            ("logger", "log"),
            ("runner", "run"),
            ("parser", "pars"),
            ("formatter", "format"),
        ] {
            assert_eq!(agent_verb(noun).as_deref(), Some(verb), "{noun}");
        }
        for word in ["user", "json", "parse", "rner", "über-er", "xer"] {
            assert_eq!(agent_verb(word), None, "{word}");
        }
        let tokens = ["static".to_string(), "server".to_string()];
        assert_eq!(
            fts_expression(&tokens, " AND ", false, true),
            "\"static\" AND (\"server\" OR \"serv\")"
        );
        assert_eq!(
            fts_expression(&tokens, " OR ", true, false),
            "\"static\" OR \"server\"*"
        );
    }

    /// A multi-word query matches an agent noun's verb: "static file server" finds a
    /// package that says "serve static files" among the documents matching every word.
    #[test]
    fn multi_word_queries_match_the_verb_of_an_agent_noun() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let key = PublisherKey::generate();
        store
            .ingest_many(&[
                package(&key, "serve-static", "Serve static files", None, &[]),
                package(&key, "other", "a server", None, &[]),
            ])
            .unwrap();
        let query = Query::new(vec!["static".into(), "file".into(), "server".into()]);
        let hits = store.search(&query).unwrap();
        assert_eq!(names(&hits)[0], "serve-static");
        assert!(
            hits[0].score >= Ranking::DEFAULT.all_words,
            "{}",
            hits[0].score
        );
    }

    /// Trust on first use (issue 7): each node keeps the owner it accepted first; an
    /// earlier `published_at` (here 0, "1970") on a later claim changes nothing. Nodes
    /// that met the claims in other orders disagree until peers attest (not yet built).
    #[test]
    fn owner_is_the_first_accepted_whatever_the_dates() {
        let a = PublisherKey::generate();
        let b = PublisherKey::generate();
        let mut records = vec![
            package(&a, "shared", "by a", None, &[]),
            package(&b, "shared", "by b", None, &[]),
        ];
        records.push(package(&a, "other", "shared by a", None, &[]));
        let mut early = version_body(&b, "other", "1.0.0", 0);
        early.description = "shared other backdated".into();
        records.push(Record::sign(RecordBody::Version(early), &b).unwrap());
        let one = tempfile::tempdir().unwrap();
        let two = tempfile::tempdir().unwrap();
        let first = Store::open(one.path()).unwrap();
        let second = Store::open(two.path()).unwrap();
        for record in &records {
            first.ingest(record).unwrap();
        }
        for record in records.iter().rev() {
            second.ingest(record).unwrap();
        }
        assert_eq!(first.claims("shared").unwrap()[0].publisher, a.id());
        assert_eq!(second.claims("shared").unwrap()[0].publisher, b.id());
        // "other": a was accepted first on `first`; b's record dated 1970 does not win
        assert_eq!(first.claims("other").unwrap()[0].publisher, a.id());
        assert_eq!(second.claims("other").unwrap()[0].publisher, b.id());
        let query = Query::new(vec!["shared".into()]);
        let hits = first.search(&query).unwrap();
        let summary: Vec<(String, crate::package::PublisherId, bool)> = hits
            .iter()
            .map(|h| (h.package.name.clone(), h.package.publisher, h.conflict))
            .collect();
        assert_eq!(summary.len(), 2, "{summary:?}");
        assert!(
            summary.iter().all(|(_, p, c)| *p == a.id() && *c),
            "{summary:?}"
        );
    }
}
