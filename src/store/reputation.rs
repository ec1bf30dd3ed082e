//! Peer reputation scores as last saved, so a peer's record survives a restart. The
//! scores themselves (events, weights, decay) are `net/reputation.rs`'s; this file only
//! stores and loads them.

use rusqlite::params;

use super::{Store, StoreError};

/// One peer's score as saved at `updated_at` (ms since the Unix epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredScore {
    pub peer: String,
    pub score: f64,
    pub updated_at: u64,
}

impl Store {
    /// Saves `scores` as of `now` and deletes the `forgotten` ones, in one transaction.
    pub fn save_peer_scores(
        &self,
        scores: &[(String, f64)],
        forgotten: &[String],
        now: u64,
    ) -> Result<(), StoreError> {
        self.write(|tx, _| {
            let mut put = tx.prepare_cached(
                "INSERT INTO peer_scores (peer, score, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (peer) DO UPDATE SET score = excluded.score,
                     updated_at = excluded.updated_at",
            )?;
            for (peer, score) in scores {
                put.execute(params![peer, score, now as i64])?;
            }
            let mut delete = tx.prepare_cached("DELETE FROM peer_scores WHERE peer = ?1")?;
            for peer in forgotten {
                delete.execute([peer])?;
            }
            Ok(())
        })
    }

    /// Every saved score.
    pub fn peer_scores(&self) -> Result<Vec<StoredScore>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT peer, score, updated_at FROM peer_scores ORDER BY peer")?;
            let rows = stmt
                .query_map([], |row| {
                    Ok(StoredScore {
                        peer: row.get(0)?,
                        score: row.get(1)?,
                        updated_at: row.get::<_, i64>(2)? as u64,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_survive_a_reopen_and_forgotten_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            let scores = [
                ("12D3KooWA".to_string(), -42.5),
                ("12D3KooWB".to_string(), 3.0),
            ];
            store.save_peer_scores(&scores, &[], 7).unwrap();
            store
                .save_peer_scores(&[("12D3KooWA".into(), -40.0)], &["12D3KooWB".into()], 9)
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.peer_scores().unwrap(),
            vec![StoredScore {
                peer: "12D3KooWA".into(),
                score: -40.0,
                updated_at: 9
            }]
        );
    }
}
