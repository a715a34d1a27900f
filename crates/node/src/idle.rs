//! Frees capacity held by sessions nobody uses.
//!
//! Reserving capacity takes only the session's deposit floor (a minute of its rate), so a
//! griefer could open sessions and never use them, and a client that crashed before connecting
//! leaves one behind. The market lets a provider close any session at once (it gives up further
//! claims). Closed before it has been open a whole epoch, the client gets its whole deposit
//! back; after, a session that never paid for a byte is a no-show and the provider keeps the
//! deposit floor (`SessionNoShow`), which is what filling a provider costs a griefer. This
//! closes the sessions that never carried a byte (no receipt stored, no tunnel up) `idle_secs`
//! after they opened, and only while the provider is at least three quarters committed: when
//! capacity is free, nobody is kept out and nothing is closed.

use std::collections::{HashMap, HashSet};

use alloy::primitives::B256;
use wirepact_chain::bindings::session_status;
use wirepact_chain::{AlloyMarket, ChainError, Market};
use wirepact_proto::{ProviderId, SessionTerms};

use crate::db::ReceiptDb;

/// Blocks looked back on the first pass (sessions opened before the node started).
const LOOKBACK_BLOCKS: u64 = 100_000;

#[derive(Debug)]
pub struct IdleCloser<'a> {
    pub market: &'a AlloyMarket,
    pub provider: ProviderId,
    pub db: &'a ReceiptDb,
    /// Seconds after opening an unused session may be closed.
    pub idle_secs: u64,
    scanned_to: Option<u64>,
    tracked: HashMap<B256, SessionTerms>,
}

impl<'a> IdleCloser<'a> {
    #[must_use]
    pub fn new(market: &'a AlloyMarket, provider: ProviderId, db: &'a ReceiptDb, idle_secs: u64) -> Self {
        Self { market, provider, db, idle_secs, scanned_to: None, tracked: HashMap::new() }
    }

    /// Learns the sessions opened since the last pass and closes the unused ones that are due
    /// while the provider is nearly full; `live` are the sessions with a tunnel up, `now` unix
    /// seconds. Returns how many it closed.
    ///
    /// # Errors
    /// RPC failures (the pass is retried later; nothing is lost).
    pub async fn pass(&mut self, live: &HashSet<B256>, now: u64) -> Result<usize, ChainError> {
        let latest = self.market.block_number().await?;
        let from = self.scanned_to.map_or(latest.saturating_sub(LOOKBACK_BLOCKS), |s| s + 1);
        if from <= latest {
            for t in self.market.sessions_opened_with(self.provider, from, latest).await? {
                self.tracked.insert(t.session_id().0, t);
            }
        }
        self.scanned_to = Some(latest);

        let p = self.market.provider(self.provider).await?;
        if u64::from(p.committedMbps) * 4 < u64::from(p.capacityMbps) * 3 {
            return Ok(0);
        }
        let mut closed = 0;
        let ids: Vec<B256> = self.tracked.keys().copied().collect();
        for id in ids {
            let Some(t) = self.tracked.get(&id).cloned() else { continue };
            let used = live.contains(&id) || self.db.receipt(id).ok().flatten().is_some();
            if used {
                // It carried bytes: never closed here (its receipts are claimed as usual).
                self.tracked.remove(&id);
                continue;
            }
            if t.openedAt.to::<u64>().saturating_add(self.idle_secs) > now {
                continue;
            }
            let state = self.market.session(wirepact_proto::SessionId(id)).await?;
            if state.status != session_status::OPEN {
                self.tracked.remove(&id);
                continue;
            }
            match self.market.close(&t).await {
                Ok(_) => {
                    tracing::info!(session = %id, idle_secs = self.idle_secs, "closed a session that was never used, to free its capacity (the client gets its deposit back, less the deposit floor once it held the capacity a whole epoch)");
                    self.tracked.remove(&id);
                    closed += 1;
                }
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    tracing::warn!(session = %id, error = %e, "could not close an unused session");
                    self.tracked.remove(&id);
                }
            }
        }
        Ok(closed)
    }
}
