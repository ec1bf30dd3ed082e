//! Search ranking on the 100,000-package npm corpus: the ranking suite
//! (`tests/ranking-suite.toml`, issue 9; target 90 %, floor below) and the hold-out
//! suite (`tests/ranking-holdout.toml`, never tuned on), plus a few pinned rankings. Popularity enters as the network's would: monthly downloads mapped onto
//! provider counts (`corpus::providers_for_downloads`) through `Store::observe_providers`. The corpus is part of the test: when it is missing the test fails rather
//! than passing without checking anything.

use std::time::Instant;

use ggen_p2p::package::PublisherKey;
use ggen_p2p::store::corpus::{self, RankingSuite, CORPUS_ENV, RANKING_SUITE_PATH};
use ggen_p2p::store::{Query, Ranking, Store};

/// Issue 9's target for the pass fraction; reported by this test, not yet met (see
/// BENCHMARKS.md "Search ranking").
const PASS_TARGET: f64 = 0.90;
/// The pass fraction below which this test fails: what the ranking reaches (66 of 75),
/// so a change that ranks worse is caught. Raise it towards [`PASS_TARGET`] as the
/// ranking improves.
const PASS_FLOOR: f64 = 0.88;
/// The same for the hold-out suite (30 of 42 with feedback); it guards against
/// regressions only, nothing is tuned on it.
const HOLDOUT_FLOOR: f64 = 0.71;
/// The hold-out suite: queries never used to tune the ranking, reported as they come.
const HOLDOUT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ranking-holdout.toml");

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
    let holdout = RankingSuite::load(HOLDOUT_PATH.as_ref()).unwrap();
    assert!(holdout.query.len() >= 30, "{} queries", holdout.query.len());
    let entries = corpus::load(&path).unwrap();
    assert!(entries.len() > 90_000, "{} entries", entries.len());
    for query in suite.query.iter().chain(&holdout.query) {
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
    let start = Instant::now();
    let sightings = corpus::observe_providers(&store, &entries, 1_000).unwrap();
    eprintln!("observed {sightings} providers in {:.2?}", start.elapsed());
    let ranked = |terms: &str, n: usize, ranking: &Ranking| -> Vec<String> {
        let query = Query::new(terms.split(' ').map(String::from).collect()).with_limit(n);
        store
            .search_ranked(&query, ranking)
            .unwrap()
            .into_iter()
            .map(|hit| hit.package.record.name)
            .collect()
    };
    let top = |terms: &str, n: usize| ranked(terms, n, &Ranking::DEFAULT);
    let run = |suite: &RankingSuite, label: &str, ranking: &Ranking| {
        let start = Instant::now();
        let score = corpus::score_suite(suite, |q| Ok::<_, ()>(ranked(q, 20, ranking))).unwrap();
        eprintln!(
            "{label}: {}/{} pass ({:.1} %), MRR {:.3}, in {:.2?}",
            score.passed,
            score.total,
            100.0 * score.pass_fraction(),
            score.mrr,
            start.elapsed()
        );
        for (q, hits) in &score.failures {
            let deep = ranked(q, 1000, ranking);
            let expect = &suite.query.iter().find(|x| &x.q == q).unwrap().expect;
            let at = deep.iter().position(|n| expect.contains(n));
            eprintln!(
                "  fails: {q:<36} -> {} [expected at {at:?} of {}]",
                hits.join(", "),
                deep.len()
            );
        }
        score
    };
    let plain = run(
        &suite,
        "ranking suite, bm25 without prior",
        &Ranking::PLAIN_BM25,
    );
    let prior = run(
        &suite,
        "ranking suite, bm25 with prior",
        &Ranking::BM25_PRIOR,
    );
    let previous = run(
        &suite,
        "ranking suite, previous ranker (feedback, weights 2/2/1.5/1)",
        &Ranking::PREVIOUS,
    );
    let score = run(
        &suite,
        "ranking suite, with feedback (default)",
        &Ranking::DEFAULT,
    );
    run(
        &holdout,
        "hold-out, bm25 without prior",
        &Ranking::PLAIN_BM25,
    );
    run(&holdout, "hold-out, bm25 with prior", &Ranking::BM25_PRIOR);
    run(
        &holdout,
        "hold-out, previous ranker (feedback, weights 2/2/1.5/1)",
        &Ranking::PREVIOUS,
    );
    let held = run(
        &holdout,
        "hold-out, with feedback (default)",
        &Ranking::DEFAULT,
    );
    assert!(
        score.pass_fraction() >= prior.pass_fraction(),
        "feedback made the ranking worse on the tuning suite"
    );
    assert!(
        score.pass_fraction() >= previous.pass_fraction(),
        "the current ranker is worse than the previous one on the tuning suite"
    );
    assert!(
        score.pass_fraction() >= plain.pass_fraction(),
        "the popularity prior made the ranking worse"
    );

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
    eprintln!(
        "ranking suite: target {:.0} % {}",
        100.0 * PASS_TARGET,
        if score.pass_fraction() >= PASS_TARGET {
            "met"
        } else {
            "NOT met"
        }
    );
    assert!(
        held.pass_fraction() >= HOLDOUT_FLOOR,
        "hold-out suite: {}/{} queries put an expected package in the top 5, below the \
         {:.0} % floor this test keeps; the failures are listed above",
        held.passed,
        held.total,
        100.0 * HOLDOUT_FLOOR
    );
    assert!(
        score.pass_fraction() >= PASS_FLOOR,
        "ranking suite: {}/{} queries put an expected package in the top 5, below the \
         {:.0} % floor this test keeps; the failures are listed above",
        score.passed,
        score.total,
        100.0 * PASS_FLOOR
    );
}
