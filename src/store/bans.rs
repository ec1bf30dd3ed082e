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
    /// When it ends (ms since the Unix epoch); `None`: until lifted.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

impl Store {
    /// Records a ban until lifted; true when the peer was not banned before (an
    /// existing ban keeps its reason and time, and an operator block makes it permanent).
    pub fn ban_peer(&self, peer: &str, reason: &str, banned_at: u64) -> Result<bool, StoreError> {
        self.ban_peer_until(peer, reason, banned_at, None)
    }

    /// Records a ban ending at `expires_at` (`None`: until lifted); true when the peer
    /// was not banned before. Banning an already banned peer until lifted makes its ban
    /// permanent; it never shortens one.
    pub fn ban_peer_until(
        &self,
        peer: &str,
        reason: &str,
        banned_at: u64,
        expires_at: Option<u64>,
    ) -> Result<bool, StoreError> {
        self.write(|tx, _| {
            let existed = tx
                .prepare_cached("SELECT 1 FROM banned_peers WHERE peer = ?1")?
                .exists([peer])?;
            tx.prepare_cached(
                "INSERT INTO banned_peers (peer, reason, banned_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (peer) DO UPDATE SET expires_at = CASE
                     WHEN banned_peers.expires_at IS NULL OR excluded.expires_at IS NULL THEN NULL
                     ELSE MAX(banned_peers.expires_at, excluded.expires_at) END",
            )?
            .execute(params![
                peer,
                reason,
                banned_at as i64,
                expires_at.map(|t| t as i64)
            ])?;
            Ok(!existed)
        })
    }

    /// Removes the bans that ended by `now`; returns the peers they held.
    pub fn lift_expired_bans(&self, now: u64) -> Result<Vec<String>, StoreError> {
        self.write(|tx, _| {
            let peers = tx
                .prepare_cached(
                    "DELETE FROM banned_peers WHERE expires_at IS NOT NULL AND expires_at <= ?1
                     RETURNING peer",
                )?
                .query_map([now as i64], |row| row.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            Ok(peers)
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
                "SELECT peer, reason, banned_at, expires_at FROM banned_peers
                 ORDER BY banned_at, peer",
            )?;
            let rows = stmt
                .query_map([], |row| {
                    Ok(BannedPeer {
                        peer: row.get(0)?,
                        reason: row.get(1)?,
                        banned_at: row.get::<_, i64>(2)? as u64,
                        expires_at: row.get::<_, Option<i64>>(3)?.map(|t| t as u64),
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
                    banned_at: 5,
                    expires_at: None,
                },
                BannedPeer {
                    peer: "12D3KooWB".into(),
                    reason: "invalid records".into(),
                    banned_at: 7,
                    expires_at: None,
                },
            ]
        );
        assert!(store.unban_peer("12D3KooWA").unwrap());
        assert!(!store.unban_peer("12D3KooWA").unwrap());
        assert_eq!(store.banned_peers().unwrap().len(), 1);
    }

    #[test]
    fn earned_bans_expire_and_blocks_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store
            .ban_peer_until("12D3KooWC", "score fell to -50", 10, Some(100))
            .unwrap());
        assert!(!store
            .ban_peer_until("12D3KooWC", "again", 20, Some(50))
            .unwrap());
        store
            .ban_peer_until("12D3KooWD", "score", 10, Some(100))
            .unwrap();
        store
            .ban_peer("12D3KooWD", "blocked by the operator", 30)
            .unwrap();
        let bans = store.banned_peers().unwrap();
        assert_eq!(bans[0].expires_at, Some(100), "never shortened");
        assert_eq!(bans[0].reason, "score fell to -50");
        assert_eq!(bans[1].expires_at, None, "a block makes it permanent");
        assert!(store.lift_expired_bans(99).unwrap().is_empty());
        assert_eq!(store.lift_expired_bans(100).unwrap(), vec!["12D3KooWC"]);
        let left: Vec<String> = store
            .banned_peers()
            .unwrap()
            .into_iter()
            .map(|b| b.peer)
            .collect();
        assert_eq!(left, vec!["12D3KooWD"]);
    }
}
