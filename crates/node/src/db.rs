//! Durable receipts, one redb file per provider.

use std::path::Path;

use alloy::primitives::B256;
use alloy::sol_types::SolValue;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use wirepact_proto::SessionTerms;

const RECEIPTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("receipts");
const TERMS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("terms");
const CLAIMED: TableDefinition<&[u8], u64> = TableDefinition::new("claimed");
/// Sessions whose claim the market refuses for good (settled before the provider claimed,
/// say): the receipted bytes the provider gave up on, kept as a record, never retried.
const LOST: TableDefinition<&[u8], u64> = TableDefinition::new("lost");
/// Per session, the newest receipt dated before the latest one's second. The market takes a
/// claim only if its timestamp is after the last claimed one, and clients sign many receipts
/// within one second: claiming the latest receipt of a live session could leave every later
/// receipt of that second unclaimable. A live session is claimed up to this one instead.
const PRIOR: TableDefinition<&[u8], &[u8]> = TableDefinition::new("prior");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("receipt database: {0}")]
    Redb(#[from] redb::Error),
    #[error("a session key in the receipt database is not 32 bytes: the file is corrupt")]
    BadKey,
    #[error("corrupt record for session {0}")]
    Corrupt(B256),
}

fn e(err: impl Into<redb::Error>) -> DbError {
    DbError::Redb(err.into())
}

/// The latest receipt of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredReceipt {
    pub cumulative_bytes: u64,
    pub timestamp: u64,
    pub signature: [u8; 65],
}

impl StoredReceipt {
    fn encode(&self) -> [u8; 81] {
        let mut v = [0u8; 81];
        v[..8].copy_from_slice(&self.cumulative_bytes.to_be_bytes());
        v[8..16].copy_from_slice(&self.timestamp.to_be_bytes());
        v[16..].copy_from_slice(&self.signature);
        v
    }

    fn decode(b: &[u8], id: B256) -> Result<Self, DbError> {
        if b.len() != 81 {
            return Err(DbError::Corrupt(id));
        }
        let mut c = [0u8; 8];
        c.copy_from_slice(&b[..8]);
        let mut t = [0u8; 8];
        t.copy_from_slice(&b[8..16]);
        let mut signature = [0u8; 65];
        signature.copy_from_slice(&b[16..]);
        Ok(Self { cumulative_bytes: u64::from_be_bytes(c), timestamp: u64::from_be_bytes(t), signature })
    }
}

/// A provider's receipts, terms and claims.
#[derive(Debug)]
pub struct ReceiptDb {
    db: Database,
}

impl ReceiptDb {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let db = Database::create(path).map_err(e)?;
        let w = db.begin_write().map_err(e)?;
        w.open_table(RECEIPTS).map_err(e)?;
        w.open_table(TERMS).map_err(e)?;
        w.open_table(CLAIMED).map_err(e)?;
        w.open_table(LOST).map_err(e)?;
        w.open_table(PRIOR).map_err(e)?;
        w.commit().map_err(e)?;
        Ok(Self { db })
    }

    /// Remembers a session's terms (needed to claim it).
    pub fn add_session(&self, terms: &SessionTerms) -> Result<B256, DbError> {
        let id = terms.session_id().0;
        let w = self.db.begin_write().map_err(e)?;
        w.open_table(TERMS).map_err(e)?.insert(id.as_slice(), terms.abi_encode().as_slice()).map_err(e)?;
        w.commit().map_err(e)?;
        Ok(id)
    }

    /// Stores `r` if it is newer than what is stored; durable when this returns.
    /// Returns whether it was stored.
    pub fn store(&self, session: B256, r: StoredReceipt) -> Result<bool, DbError> {
        let w = self.db.begin_write().map_err(e)?;
        let stored = {
            let mut t = w.open_table(RECEIPTS).map_err(e)?;
            let old =
                t.get(session.as_slice()).map_err(e)?.map(|v| StoredReceipt::decode(v.value(), session)).transpose()?;
            let newer = old.is_none_or(|o| o.cumulative_bytes < r.cumulative_bytes);
            if newer {
                t.insert(session.as_slice(), r.encode().as_slice()).map_err(e)?;
                // The old latest becomes the prior one when this one opens a new second.
                if let Some(o) = old.filter(|o| o.timestamp < r.timestamp) {
                    w.open_table(PRIOR).map_err(e)?.insert(session.as_slice(), o.encode().as_slice()).map_err(e)?;
                }
            }
            newer
        };
        w.commit().map_err(e)?;
        Ok(stored)
    }

    pub fn receipt(&self, session: B256) -> Result<Option<StoredReceipt>, DbError> {
        let r = self.db.begin_read().map_err(e)?;
        let t = r.open_table(RECEIPTS).map_err(e)?;
        t.get(session.as_slice()).map_err(e)?.map(|v| StoredReceipt::decode(v.value(), session)).transpose()
    }

    /// The newest receipt of `session` dated before its latest receipt's timestamp, if any.
    pub fn prior(&self, session: B256) -> Result<Option<StoredReceipt>, DbError> {
        let r = self.db.begin_read().map_err(e)?;
        let t = r.open_table(PRIOR).map_err(e)?;
        t.get(session.as_slice()).map_err(e)?.map(|v| StoredReceipt::decode(v.value(), session)).transpose()
    }

    pub fn terms(&self, session: B256) -> Result<Option<SessionTerms>, DbError> {
        let r = self.db.begin_read().map_err(e)?;
        let t = r.open_table(TERMS).map_err(e)?;
        t.get(session.as_slice())
            .map_err(e)?
            .map(|v| SessionTerms::abi_decode(v.value()).map_err(|_| DbError::Corrupt(session)))
            .transpose()
    }

    /// Bytes already claimed on chain for `session`.
    pub fn claimed(&self, session: B256) -> Result<u64, DbError> {
        let r = self.db.begin_read().map_err(e)?;
        let t = r.open_table(CLAIMED).map_err(e)?;
        Ok(t.get(session.as_slice()).map_err(e)?.map_or(0, |v| v.value()))
    }

    pub fn set_claimed(&self, session: B256, bytes: u64) -> Result<(), DbError> {
        let w = self.db.begin_write().map_err(e)?;
        w.open_table(CLAIMED).map_err(e)?.insert(session.as_slice(), bytes).map_err(e)?;
        w.commit().map_err(e)?;
        Ok(())
    }

    /// Records that `session`'s receipts up to `bytes` can never be claimed; it is skipped
    /// from now on.
    pub fn set_lost(&self, session: B256, bytes: u64) -> Result<(), DbError> {
        let w = self.db.begin_write().map_err(e)?;
        w.open_table(LOST).map_err(e)?.insert(session.as_slice(), bytes).map_err(e)?;
        w.commit().map_err(e)?;
        Ok(())
    }

    /// Receipted bytes given up on for `session` (0: none).
    pub fn lost(&self, session: B256) -> Result<u64, DbError> {
        let r = self.db.begin_read().map_err(e)?;
        let t = r.open_table(LOST).map_err(e)?;
        Ok(t.get(session.as_slice()).map_err(e)?.map_or(0, |v| v.value()))
    }

    /// Sessions with a receipt newer than their last claim (and not given up on).
    pub fn unclaimed(&self) -> Result<Vec<(B256, StoredReceipt, u64)>, DbError> {
        let r = self.db.begin_read().map_err(e)?;
        let receipts = r.open_table(RECEIPTS).map_err(e)?;
        let claimed = r.open_table(CLAIMED).map_err(e)?;
        let lost = r.open_table(LOST).map_err(e)?;
        let mut out = Vec::new();
        for row in receipts.iter().map_err(e)? {
            let (k, v) = row.map_err(e)?;
            let id = B256::try_from(k.value()).map_err(|_| DbError::BadKey)?;
            let rec = StoredReceipt::decode(v.value(), id)?;
            let done = claimed.get(k.value()).map_err(e)?.map_or(0, |c| c.value());
            if lost.get(k.value()).map_err(e)?.is_some() {
                continue;
            }
            if rec.cumulative_bytes > done {
                out.push((id, rec, done));
            }
        }
        Ok(out)
    }
}

impl wirepact_tunnel::provider::ReceiptStore for ReceiptDb {
    fn store(
        &self,
        session: B256,
        cumulative: u64,
        timestamp: u64,
        signature: [u8; 65],
    ) -> Result<(), wirepact_tunnel::error::StoreError> {
        ReceiptDb::store(self, session, StoredReceipt { cumulative_bytes: cumulative, timestamp, signature })
            .map(|_| ())
            .map_err(wirepact_tunnel::error::StoreError::io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_newer_receipts_replace_and_survive_reopen() {
        let dir = std::env::temp_dir().join(format!("wirepact-db-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("r.redb");
        let id = B256::repeat_byte(1);
        {
            let db = ReceiptDb::open(&path).expect("open");
            let r = |c| StoredReceipt { cumulative_bytes: c, timestamp: c, signature: [7; 65] };
            assert!(db.store(id, r(10)).expect("store"));
            assert!(!db.store(id, r(5)).expect("store older"));
            assert!(db.store(id, r(20)).expect("store"));
            db.set_claimed(id, 10).expect("claimed");
        }
        let db = ReceiptDb::open(&path).expect("reopen");
        assert_eq!(db.receipt(id).expect("read").map(|r| r.cumulative_bytes), Some(20));
        assert_eq!(db.unclaimed().expect("unclaimed").len(), 1);
        db.set_claimed(id, 20).expect("claimed");
        assert!(db.unclaimed().expect("unclaimed").is_empty());
        // Receipts in one second leave the prior alone; the first of a later second moves it.
        let at = |c, ts| StoredReceipt { cumulative_bytes: c, timestamp: ts, signature: [7; 65] };
        assert!(db.store(id, at(30, 20)).expect("store"));
        assert_eq!(db.prior(id).expect("prior").map(|r| r.cumulative_bytes), Some(10), "20 and 30 share second 20");
        assert!(db.store(id, at(40, 21)).expect("store"));
        assert_eq!(db.prior(id).expect("prior"), Some(at(30, 20)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
