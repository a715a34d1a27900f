//! Claims receipted earnings on chain.

use alloy::primitives::{Bytes, B256, U256};
use wirepact_chain::bindings::WirepactMarket::WirepactMarketErrors as Revert;
use wirepact_chain::{ChainError, Market};
use wirepact_proto::ProviderId;

use crate::db::{DbError, ReceiptDb};

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(transparent)]
    Db(#[from] DbError),
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimOutcome {
    /// (session, cumulative bytes) claimed in this pass.
    pub claimed: Vec<(B256, u64)>,
    /// Sessions skipped because their unclaimed value is below the threshold, or their
    /// receipt is not claimable yet.
    pub deferred: usize,
    /// Sessions the market refuses to pay for good (settled before the provider claimed, a
    /// receipt it will never take): (session, receipted bytes given up, their value at the
    /// session's price, wei). Recorded, logged, never retried.
    pub lost: Vec<(B256, u64, U256)>,
    /// Sessions whose claim failed for now (RPC, fees); the next pass tries again.
    pub retry: usize,
}

/// Claims what the receipt database holds.
#[derive(Debug)]
pub struct Claimer<'a, M: Market> {
    pub db: &'a ReceiptDb,
    pub market: &'a M,
    /// Claim a session once its unclaimed value reaches this many token units.
    pub threshold: U256,
    /// Sessions being served right now. Their receipts keep coming, many within one second,
    /// and the market pays a receipt only if it is dated after the last one claimed: a live
    /// session is claimed up to its newest receipt of an earlier second (`ReceiptDb::prior`),
    /// so the receipts still to come stay claimable; an ended one up to its latest.
    pub live: std::collections::HashSet<B256>,
}

impl<M: Market> Claimer<'_, M> {
    /// Claims every session whose unclaimed value passes the threshold, or all when `force`.
    /// Each session's claim stands alone: one the market refuses is recorded as lost and
    /// skipped, one that fails for now is retried next pass; neither stops the others. An RPC
    /// endpoint that cannot be reached ends the pass (every other claim would fail the same way).
    ///
    /// # Errors
    /// Only the receipt database's.
    pub async fn run(&self, force: bool) -> Result<ClaimOutcome, ClaimError> {
        let mut out = ClaimOutcome::default();
        let todo = self.db.unclaimed()?;
        let total = todo.len();
        for (i, (id, latest, done)) in todo.into_iter().enumerate() {
            let rec = if self.live.contains(&id) {
                match self.db.prior(id)? {
                    Some(p) if p.cumulative_bytes > done => p,
                    _ => {
                        out.deferred += 1;
                        continue;
                    }
                }
            } else {
                latest
            };
            let Some(terms) = self.db.terms(id)? else {
                tracing::error!(session = %id, bytes = rec.cumulative_bytes, "no terms stored for this session; it cannot be claimed");
                out.retry += 1;
                continue;
            };
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
                // The market refuses this claim for good (the session was settled first, the
                // receipt can never pass): record the loss, skip it from now on.
                Err(e) if e.revert().is_some() => {
                    tracing::warn!(
                        session = %id,
                        bytes = rec.cumulative_bytes - done,
                        lost = %wirepact_proto::token_text(unclaimed),
                        error = %e,
                        "this session's receipts can no longer be claimed; skipped for good"
                    );
                    self.db.set_lost(id, rec.cumulative_bytes)?;
                    out.lost.push((id, rec.cumulative_bytes - done, unclaimed));
                    continue;
                }
                Err(e) if matches!(e, ChainError::Transport { .. }) => {
                    out.retry += total - i;
                    tracing::warn!(error = %e, sessions = total - i, "cannot reach the chain; the rest is claimed next pass");
                    break;
                }
                Err(e) => {
                    tracing::warn!(session = %id, error = %e, "claim failed; retried next pass");
                    out.retry += 1;
                    continue;
                }
            }
            self.db.set_claimed(id, rec.cumulative_bytes)?;
            tracing::info!(session = %id, bytes = rec.cumulative_bytes, "claimed");
            out.claimed.push((id, rec.cumulative_bytes));
        }
        Ok(out)
    }

    /// Claims move money into the provider's earnings on chain; this moves them to the
    /// owner's balance (less the protocol fee) once they reach `at`, or whatever there is when
    /// `all`. Returns what was collected (gross), if anything. A failure is logged and left
    /// for the next pass: the earnings stay on chain, nothing is lost.
    pub async fn collect(&self, provider: ProviderId, at: U256, all: bool) -> Option<U256> {
        let earned = match self.market.provider(provider).await {
            Ok(p) => p.earned,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the provider's earnings; collected next pass");
                return None;
            }
        };
        if earned.is_zero() || (!all && earned < at) {
            return None;
        }
        match self.market.collect_earnings(provider).await {
            Ok(_) => {
                tracing::info!(earned = %wirepact_proto::token_text(earned), "earnings collected into the market balance (less the protocol fee)");
                Some(earned)
            }
            Err(e) => {
                tracing::warn!(error = %e, "collecting earnings failed; tried again next pass");
                None
            }
        }
    }
}
