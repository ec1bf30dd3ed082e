//! Search benchmark: loads the 100,000-package npm corpus as signed version records into
//! a fresh store, then times `Store::search` for one-word, three-word and filtered
//! queries drawn from corpus descriptions, each next to two baselines on the same
//! queries in the same process:
//! - `pk`: a primary-key lookup (`SELECT .. FROM plain WHERE norm = ?`), the floor of any
//!   indexed read through the same SQLite build;
//! - `like`: the naive way to search without FTS, a `LIKE '%word%'` scan over every
//!   name and description (first 200 queries of each class: it is slow).
//!
//! Popularity enters as it does from the network: monthly downloads mapped onto provider
//! counts (`corpus::providers_for_downloads`) through `Store::observe_providers`. The
//! ranking suite (`tests/ranking-suite.toml`) is scored with and without that prior.
//!
//! Run: `cargo bench --bench search` (release build; corpus path as argument, else
//! `$GGEN_P2P_CORPUS`, else `../shared/data/` beside the repository).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ggen_p2p::package::PublisherKey;
use ggen_p2p::store::corpus::RankingSuite;
use ggen_p2p::store::corpus::{self, CorpusEntry};
use ggen_p2p::store::{Query, Ranking, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{params, Connection};

const QUERIES: usize = 2000;
const LIKE_QUERIES: usize = 200;
const WARMUP: usize = 200;

#[derive(Clone)]
struct Case {
    terms: Vec<String>,
    category: Option<String>,
    keyword: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(corpus::corpus_path);
    if !path.exists() {
        println!(
            "search bench: {} not found, nothing to measure",
            path.display()
        );
        return Ok(());
    }
    let entries = corpus::load(&path)?;
    let key = PublisherKey::generate();
    let start = Instant::now();
    let records = corpus::records(&entries, &key)?;
    let signing = start.elapsed();
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path())?;
    let start = Instant::now();
    store.ingest_many(&records)?;
    let ingest = start.elapsed();
    let start = Instant::now();
    let sightings = corpus::observe_providers(&store, &entries, 1_000)?;
    println!(
        "observe_providers: {sightings} provider sightings in {:.2?}",
        start.elapsed()
    );
    println!(
        "corpus: {} packages from {}\nsigning: {:.2?} ({:.0} records/s)\ningest_many (one transaction, FTS5 + derived tables): {:.2?} ({:.0} records/s)",
        entries.len(),
        path.display(),
        signing,
        entries.len() as f64 / signing.as_secs_f64(),
        ingest,
        entries.len() as f64 / ingest.as_secs_f64()
    );

    // Baseline table in the same database file, with the same text.
    let conn = Connection::open(dir.path().join("index.sqlite"))?;
    conn.execute_batch("PRAGMA cache_size = -65536; PRAGMA mmap_size = 1073741824;")?;
    conn.execute_batch(
        "CREATE TABLE plain (norm TEXT PRIMARY KEY, description TEXT NOT NULL) WITHOUT ROWID",
    )?;
    {
        let tx = conn.unchecked_transaction()?;
        let mut insert = tx.prepare("INSERT OR IGNORE INTO plain VALUES (?1, ?2)")?;
        for entry in &entries {
            insert.execute(params![entry.name.replace('_', "-"), entry.description])?;
        }
        drop(insert);
        tx.commit()?;
    }

    let records_by_entry: Vec<Option<String>> = records
        .iter()
        .map(|r| match r.body() {
            ggen_p2p::package::RecordBody::Version(v) => v.category.clone(),
            _ => None,
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(7);
    let one = cases(&entries, &records_by_entry, &mut rng, 1, false);
    let three = cases(&entries, &records_by_entry, &mut rng, 3, false);
    let filtered = cases(&entries, &records_by_entry, &mut rng, 1, true);

    for case in one.iter().take(WARMUP) {
        store.search(&query(case))?;
    }
    println!("\n{QUERIES} queries per class (like: first {LIKE_QUERIES}); latency p50 / p99 / max");
    println!(
        "{:<10} {:>28} {:>28} {:>28} {:>12} {:>12}",
        "class", "search", "pk baseline", "like baseline", "search/pk", "like/search"
    );
    for (label, set) in [
        ("one-word", &one),
        ("three-word", &three),
        ("filtered", &filtered),
    ] {
        let mut search = Vec::new();
        let mut pk = Vec::new();
        let mut like = Vec::new();
        let mut no_feedback = Vec::new();
        let mut hits = 0usize;
        for (index, case) in set.iter().enumerate() {
            let q = query(case);
            let start = Instant::now();
            hits += store.search(&q)?.len();
            search.push(start.elapsed());

            // The same query without pseudo-relevance feedback, side by side.
            let start = Instant::now();
            store.search_ranked(&q, &Ranking::BM25_PRIOR)?;
            no_feedback.push(start.elapsed());

            let start = Instant::now();
            let _found: Option<String> = conn
                .prepare_cached("SELECT description FROM plain WHERE norm = ?1")?
                .query_row([&case.terms[0]], |row| row.get(0))
                .ok();
            pk.push(start.elapsed());

            if index < LIKE_QUERIES {
                let start = Instant::now();
                like_scan(&conn, case)?;
                like.push(start.elapsed());
            }
        }
        let (s, p, l) = (stats(&mut search), stats(&mut pk), stats(&mut like));
        let n = stats(&mut no_feedback);
        println!(
            "{label:<10} without feedback (Ranking::BM25_PRIOR): {}",
            n.show()
        );
        println!(
            "{:<10} {:>28} {:>28} {:>28} {:>12} {:>12}",
            label,
            s.show(),
            p.show(),
            l.show(),
            format!("{:.0}x p50", s.p50.as_secs_f64() / p.p50.as_secs_f64()),
            format!("{:.0}x p50", l.p50.as_secs_f64() / s.p50.as_secs_f64()),
        );
        println!(
            "{:<10} mean hits/query {:.1}; search p99 {} the 10 ms target",
            "",
            hits as f64 / set.len() as f64,
            if s.p99 <= Duration::from_millis(10) {
                "meets"
            } else {
                "MISSES"
            }
        );
    }

    let suite = RankingSuite::load(corpus::RANKING_SUITE_PATH.as_ref())?;
    println!(
        "\nranking suite ({} queries): top-5 pass fraction, MRR",
        suite.query.len()
    );
    for (label, ranking) in [
        ("bm25 without prior", Ranking::PLAIN_BM25),
        ("bm25 with prior", Ranking::BM25_PRIOR),
        ("previous ranker", Ranking::PREVIOUS),
        ("with feedback (search)", Ranking::DEFAULT),
    ] {
        let score = corpus::score_suite(&suite, |q| {
            let query = Query::new(q.split(' ').map(String::from).collect()).with_limit(20);
            store.search_ranked(&query, &ranking).map(|hits| {
                hits.into_iter()
                    .map(|h| h.package.record.name)
                    .collect::<Vec<_>>()
            })
        })?;
        println!(
            "  {label:<26} {}/{} = {:.1} %, MRR {:.3}",
            score.passed,
            score.total,
            100.0 * score.pass_fraction(),
            score.mrr
        );
    }

    println!("\nsample rankings:");
    for terms in [
        "express web framework",
        "react router",
        "yaml parser",
        "date format",
    ] {
        let q = Query::new(terms.split(' ').map(String::from).collect()).with_limit(5);
        let names: Vec<String> = store
            .search(&q)?
            .into_iter()
            .map(|h| h.package.record.name)
            .collect();
        println!("  {terms:<24} -> {}", names.join(", "));
    }
    Ok(())
}

/// Queries drawn from random corpus descriptions: `words` consecutive distinct words of
/// one description (so multi-word queries are plausible), optionally with that
/// package's category or first keyword as a filter.
fn cases(
    entries: &[CorpusEntry],
    categories: &[Option<String>],
    rng: &mut StdRng,
    words: usize,
    filtered: bool,
) -> Vec<Case> {
    let mut out = Vec::with_capacity(QUERIES);
    while out.len() < QUERIES {
        let index = rng.gen_range(0..entries.len());
        let all = corpus::description_words(&entries[index].description);
        if all.len() < words {
            continue;
        }
        let first = rng.gen_range(0..=all.len() - words);
        let terms: Vec<String> = all[first..first + words].to_vec();
        let (mut category, mut keyword) = (None, None);
        if filtered {
            if out.len() % 2 == 0 {
                let Some(c) = categories[index].clone() else {
                    continue;
                };
                category = Some(c);
            } else {
                keyword = terms.first().filter(|w| w.len() >= 4).cloned();
                if keyword.is_none() {
                    continue;
                }
            }
        }
        out.push(Case {
            terms,
            category,
            keyword,
        });
    }
    out
}

fn query(case: &Case) -> Query {
    let mut q = Query::new(case.terms.clone());
    q.category = case.category.clone();
    q.keyword = case.keyword.clone();
    q
}

/// The no-FTS way: every word must appear in the name or description, best-effort
/// ordering by shorter description, first 20.
fn like_scan(conn: &Connection, case: &Case) -> rusqlite::Result<usize> {
    let mut sql = String::from("SELECT norm FROM plain WHERE 1");
    let mut args = Vec::new();
    for term in &case.terms {
        args.push(format!("%{term}%"));
        let n = args.len();
        sql.push_str(&format!(" AND (norm LIKE ?{n} OR description LIKE ?{n})"));
    }
    sql.push_str(" ORDER BY length(description) LIMIT 20");
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), |row| {
        row.get::<_, String>(0)
    })?;
    Ok(rows.count())
}

struct Stats {
    p50: Duration,
    p99: Duration,
    max: Duration,
}

impl Stats {
    fn show(&self) -> String {
        format!(
            "{:.2} / {:.2} / {:.2} ms",
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.max.as_secs_f64() * 1e3
        )
    }
}

fn stats(samples: &mut [Duration]) -> Stats {
    samples.sort();
    let at = |pct: usize| samples[(samples.len() * pct / 100).min(samples.len() - 1)];
    Stats {
        p50: at(50),
        p99: at(99),
        max: samples[samples.len() - 1],
    }
}
