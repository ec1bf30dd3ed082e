//! Banned peers (offenders and peers the operator blocked), kept in SQLite so a ban
//! survives a restart; the event loop loads them at start. Deciding who to ban is
//! `net/policy.rs`'s job, not this file's.

use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// One banned peer, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BannedPeer {
    /// The peer id (base58), as `ggen-p2p peers` lists it.
    pub peer: String,
    /// Why: "blocked by the operator" or the offence.
    pub reason: String,
    /// When the ban began (ms since the Unix epoch).
    pub banned_at: u64,
}

impl Store {
    /// Records a ban; true when the peer was not banned before (an existing ban keeps
    /// its reason and time).
    pub fn ban_peer(&self, peer: &str, reason: &str, banned_at: u64) -> Result<bool, StoreError> {
        self.write(|tx, _| {
            let added = tx
                .prepare_cached(
                    "INSERT INTO banned_peers (peer, reason, banned_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (peer) DO NOTHING",
                )?
                .execute(params![peer, reason, banned_at as i64])?;
            Ok(added > 0)
        })
    }

    /// Lifts a ban; true when the peer was banned.
    pub fn unban_peer(&self, peer: &str) -> Result<bool, StoreError> {
        self.write(|tx, _| {
            Ok(tx
                .prepare_cached("DELETE FROM banned_peers WHERE peer = ?1")?
                .execute([peer])?
                > 0)
        })
    }

    /// Every banned peer, oldest ban first.
    pub fn banned_peers(&self) -> Result<Vec<BannedPeer>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT peer, reason, banned_at FROM banned_peers ORDER BY banned_at, peer",
            )?;
            let rows = stmt
                .query_map([], |row| {
                    Ok(BannedPeer {
                        peer: row.get(0)?,
                        reason: row.get(1)?,
                        banned_at: row.get::<_, i64>(2)? as u64,
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
    fn bans_persist_across_opens_and_can_be_lifted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert!(store
                .ban_peer("12D3KooWA", "blocked by the operator", 5)
                .unwrap());
            assert!(!store.ban_peer("12D3KooWA", "again", 6).unwrap());
            assert!(store.ban_peer("12D3KooWB", "invalid records", 7).unwrap());
        }
        let store = Store::open(dir.path()).unwrap();
        let bans = store.banned_peers().unwrap();
        assert_eq!(
            bans,
            [
                BannedPeer {
                    peer: "12D3KooWA".into(),
                    reason: "blocked by the operator".into(),
                    banned_at: 5
                },
                BannedPeer {
                    peer: "12D3KooWB".into(),
                    reason: "invalid records".into(),
                    banned_at: 7
                },
            ]
        );
        assert!(store.unban_peer("12D3KooWA").unwrap());
        assert!(!store.unban_peer("12D3KooWA").unwrap());
        assert_eq!(store.banned_peers().unwrap().len(), 1);
    }
}
