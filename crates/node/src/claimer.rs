//! Claims receipted earnings on chain.

use alloy::primitives::{Bytes, B256, U256};
use wirepact_chain::bindings::WirepactMarket::WirepactMarketErrors as Revert;
use wirepact_chain::{ChainError, Market};

use crate::db::{DbError, ReceiptDb};

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("no terms stored for session {0}; cannot claim it")]
    NoTerms(B256),
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimOutcome {
    /// (session, cumulative bytes) claimed in this pass.
    pub claimed: Vec<(B256, u64)>,
    /// Sessions skipped because their unclaimed value is below the threshold.
    pub deferred: usize,
}

/// Claims what the receipt database holds.
#[derive(Debug)]
pub struct Claimer<'a, M: Market> {
    pub db: &'a ReceiptDb,
    pub market: &'a M,
    /// Claim a session once its unclaimed value reaches this many token units.
    pub threshold: U256,
}

impl<M: Market> Claimer<'_, M> {
    /// Claims every session whose unclaimed value passes the threshold, or all when `force`.
    pub async fn run(&self, force: bool) -> Result<ClaimOutcome, ClaimError> {
        let mut out = ClaimOutcome::default();
        for (id, rec, done) in self.db.unclaimed()? {
            let terms = self.db.terms(id)?.ok_or(ClaimError::NoTerms(id))?;
            let unclaimed = (U256::from(rec.cumulative_bytes - done) * U256::from(terms.pricePerGiB)) >> 30;
            if !force && unclaimed < self.threshold {
                out.deferred += 1;
                continue;
            }
            match self
                .market
                .claim(&terms, rec.cumulative_bytes, rec.timestamp, Bytes::from(rec.signature.to_vec()))
                .await
            {
                Ok(_) => {}
                // Already on chain (a previous run claimed it before crashing): record and move on.
                Err(e) if matches!(e.revert(), Some(Revert::Market_ReceiptNotNewer(_))) => {}
                // Signed in the same second as the receipt claimed last, or ahead of the chain's
                // clock: not claimable yet; a later receipt (the final one moves a second on) is.
                Err(e)
                    if matches!(
                        e.revert(),
                        Some(Revert::Market_ReceiptStale(_) | Revert::Market_ReceiptFromFuture(_))
                    ) =>
                {
                    tracing::debug!(session = %id, error = %e, "receipt not claimable yet; deferred");
                    out.deferred += 1;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            self.db.set_claimed(id, rec.cumulative_bytes)?;
            tracing::info!(session = %id, bytes = rec.cumulative_bytes, "claimed");
            out.claimed.push((id, rec.cumulative_bytes));
        }
        Ok(out)
    }
}
