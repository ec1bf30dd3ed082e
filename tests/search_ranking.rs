//! Search ranking on the 100,000-package npm corpus: the ranking suite
//! (`tests/ranking-suite.toml`, issue 9) must pass at 90 % or better, plus a few pinned
//! rankings. The corpus is part of the test: when it is missing the test fails rather
//! than passing without checking anything.

use std::time::Instant;

use ggen_p2p::package::PublisherKey;
use ggen_p2p::store::corpus::{self, RankingSuite, CORPUS_ENV, RANKING_SUITE_PATH};
use ggen_p2p::store::{Query, Store};

/// The pass fraction below which the suite fails (issue 9: target ≥ 90 %).
const PASS_TARGET: f64 = 0.90;

#[test]
fn ranking_on_the_npm_corpus() {
    let path = corpus::corpus_path();
    assert!(
        path.is_file(),
        "npm corpus not found at {}: it is looked for in ../shared/data/ beside the \
         repository; set {CORPUS_ENV} to point at npm-corpus-100k.tsv elsewhere",
        path.display()
    );
    let suite = RankingSuite::load(RANKING_SUITE_PATH.as_ref()).unwrap();
    assert!(suite.query.len() >= 40, "{} queries", suite.query.len());
    let entries = corpus::load(&path).unwrap();
    assert!(entries.len() > 90_000, "{} entries", entries.len());
    for query in &suite.query {
        for name in &query.expect {
            assert!(
                entries.iter().any(|e| &e.name == name),
                "ranking suite: {name:?} (expected for {:?}) is not in the corpus",
                query.q
            );
        }
    }
    let key = PublisherKey::generate();
    let records = corpus::records(&entries, &key).unwrap();
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

    let start = Instant::now();
    let score = corpus::score_suite(&suite, |q| Ok::<_, ()>(top(q, 20))).unwrap();
    eprintln!(
        "ranking suite: {}/{} pass ({:.1} %), MRR {:.3}, in {:.2?}",
        score.passed,
        score.total,
        100.0 * score.pass_fraction(),
        score.mrr,
        start.elapsed()
    );
    for (q, hits) in &score.failures {
        eprintln!("  fails: {q:<36} -> {}", hits.join(", "));
    }

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
    assert!(
        score.pass_fraction() >= PASS_TARGET,
        "ranking suite: {}/{} queries put an expected package in the top 5, below the \
         {:.0} % target; the failures are listed above",
        score.passed,
        score.total,
        100.0 * PASS_TARGET
    );
}
