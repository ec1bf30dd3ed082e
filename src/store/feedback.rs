//! Query expansion by pseudo-relevance feedback over package names, for search: the
//! first hits of a query are read back from the local text index, and the names of
//! other packages they mention unusually often ("ESLint wrapper", "winston transport")
//! become expansion terms with a weight. It owns only that derivation (deterministic,
//! from the local replica alone); how expansions are scored is `search.rs`'s business.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{params, Connection, OptionalExtension};

/// First hits read back as feedback documents.
pub(super) const FEEDBACK_DOCS: usize = 50;
/// Expansion terms kept per query.
const FEEDBACK_TERMS: usize = 4;
/// A term must occur in at least this many (distinct) feedback documents.
const MIN_DOCS: usize = 3;

/// One feedback document: its words (name words, keywords, description) and weight.
struct Doc {
    words: BTreeSet<String>,
    weight: f64,
}

/// Expansion terms for a query: `(package norm, weight)`, best first, at most
/// [`FEEDBACK_TERMS`]. `hits` are the query's first hits (package ids), best first;
/// `tokens` the query's words, which are never expansions.
///
/// A feedback document weighs `1 + lift` (its popularity prior, so what popular
/// packages say counts more); documents whose description repeats an earlier one's
/// count once (families of generated packages). A word's weight is its share `p` of the
/// feedback weight times `ln(p / q)`, `q` its share of all packages (the KL divergence
/// term of relevance models): frequent in the feedback, rare elsewhere. Only words that
/// are the exact name of a package, and found in at most `max_df` of all packages
/// (more common words, "path", "url", say nothing about a query), become expansions.
pub(super) fn expansions(
    conn: &Connection,
    tokens: &[String],
    hits: &[i64],
    max_df: f64,
) -> rusqlite::Result<Vec<(String, f64)>> {
    let mut docs: Vec<Doc> = Vec::new();
    let mut seen_descriptions = BTreeSet::new();
    let mut read = conn.prepare_cached(
        "SELECT f.words, f.keywords, f.description, COALESCE(pop.lift, 0.0)
         FROM packages_fts f JOIN packages p ON p.pid = f.rowid
         LEFT JOIN popularity pop ON pop.norm = p.norm
         WHERE f.rowid = ?1",
    )?;
    for pid in hits.iter().take(FEEDBACK_DOCS) {
        let Some((name, keywords, description, lift)) = read
            .query_row([pid], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, f64>(3)?,
                ))
            })
            .optional()?
        else {
            continue;
        };
        if !description.is_empty() && !seen_descriptions.insert(description.to_lowercase()) {
            continue;
        }
        let words = [name, keywords, description]
            .iter()
            .flat_map(|text| text.split(|c: char| !c.is_alphanumeric()))
            .map(str::to_lowercase)
            .filter(|w| w.chars().count() >= 2 && !variant_of_any(w, tokens))
            .collect();
        docs.push(Doc {
            words,
            weight: 1.0 + lift,
        });
    }
    let total: f64 = docs.iter().map(|d| d.weight).sum();
    if docs.len() < MIN_DOCS || total <= 0.0 {
        return Ok(Vec::new());
    }
    let mut share: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for doc in &docs {
        for word in &doc.words {
            let entry = share.entry(word).or_default();
            entry.0 += 1;
            entry.1 += doc.weight;
        }
    }
    let candidates: Vec<(&str, f64)> = share
        .into_iter()
        .filter(|(_, (n, _))| *n >= MIN_DOCS)
        .map(|(word, (_, w))| (word, w / total))
        .collect();
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let packages: f64 = conn
        .query_row("SELECT COALESCE(MAX(rid), 0) FROM records", [], |row| {
            row.get::<_, i64>(0)
        })?
        .max(1) as f64;
    let cap = ((packages * max_df) as i64).max(1);
    let mut is_name = conn.prepare_cached("SELECT 1 FROM packages WHERE norm = ?1")?;
    let mut df = conn.prepare_cached(
        "SELECT count(*) FROM (SELECT rowid FROM packages_fts WHERE packages_fts MATCH ?1
                               LIMIT ?2)",
    )?;
    let mut out: Vec<(String, f64)> = Vec::new();
    for (word, p) in candidates {
        if !is_name.exists([word])? {
            continue;
        }
        let n: i64 = df.query_row(params![format!("\"{word}\""), cap + 1], |row| row.get(0))?;
        if n == 0 || n > cap {
            continue;
        }
        let q = n as f64 / packages;
        let weight = p * (p / q).ln();
        if weight > 0.0 {
            out.push((word.to_string(), weight));
        }
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out.truncate(FEEDBACK_TERMS);
    Ok(out)
}

/// `word` is a query word or a variant of one (one is a prefix of the other:
/// "debouncing" for "debounce", "chart" for "charts"); the stemmed match already covers
/// those, so they are no expansion.
fn variant_of_any(word: &str, tokens: &[String]) -> bool {
    tokens.iter().any(|t| {
        let (short, long) = if t.len() <= word.len() {
            (t.as_str(), word)
        } else {
            (word, t.as_str())
        };
        if long == short {
            return true;
        }
        // `short` without its last character (a char boundary, whatever the script)
        match short.char_indices().last() {
            Some((end, _)) if short.chars().count() >= 4 => long.starts_with(&short[..end]),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::variant_of_any;

    #[test]
    fn variants_are_prefix_relatives_in_any_script() {
        let tokens = vec![
            "debounce".to_string(),
            "для".to_string(),
            "данных".to_string(),
        ];
        assert!(variant_of_any("debouncing", &tokens));
        assert!(variant_of_any("debounce", &tokens));
        assert!(variant_of_any("данные", &tokens));
        assert!(variant_of_any("для", &tokens));
        assert!(!variant_of_any("throttle", &tokens));
        assert!(!variant_of_any("дляx", &["дл".to_string()]));
    }
}
