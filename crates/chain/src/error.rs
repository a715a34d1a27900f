//! Errors of the chain client, with what the caller should do next.

use alloy::primitives::B256;
use alloy::transports::TransportError;

/// A revert of the market, decoded into the contract's custom error.
pub type MarketRevert = crate::bindings::WirepactMarket::WirepactMarketErrors;

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The RPC endpoint could not be reached or answered garbage. Retry later; no
    /// transaction was lost (a sent transaction is re-sent byte for byte).
    /// (`cause` is not chained as a `source`: alloy nests the same failure three deep, so the
    /// message carries its innermost cause once.)
    #[error("cannot reach the chain's RPC endpoint ({during}): {}; is the node running and the RPC URL right? Nothing was lost, retry when it answers", root_cause(cause))]
    Transport { during: &'static str, cause: TransportError },
    /// The market refused the call; the decoded reason says why. Do not retry unchanged.
    #[error("the market refused {during}: {revert:?}")]
    Reverted { during: &'static str, revert: MarketRevert },
    /// A revert whose data is not one of the market's errors (e.g. a token's).
    #[error("{during} reverted: {message}")]
    RevertedOther { during: &'static str, message: String },
    /// The transaction is known but not confirmed in time. It may still land: check `hash`.
    #[error("transaction {hash} not confirmed within {waited_secs} s")]
    ConfirmationTimeout { hash: B256, waited_secs: u64 },
    /// The node refused the signed transaction (fee too low, nonce gap...).
    #[error("the node refused the transaction during {during}: {message}")]
    Rejected { during: &'static str, message: String },
    #[error("the transaction could not be signed")]
    Signing,
    #[error("unexpected chain data: {0}")]
    Unexpected(&'static str),
}

/// The innermost cause of `e` (alloy nests the same transport failure three deep).
fn root_cause(e: &TransportError) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

impl ChainError {
    /// Whether retrying the same operation later can succeed.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        matches!(self, ChainError::Transport { .. } | ChainError::ConfirmationTimeout { .. })
    }

    /// The decoded market revert, if that is what this is.
    #[must_use]
    pub fn revert(&self) -> Option<&MarketRevert> {
        match self {
            ChainError::Reverted { revert, .. } => Some(revert),
            _ => None,
        }
    }

    /// Classifies an RPC error: a revert (decoded if it is the market's), or a transport failure.
    pub(crate) fn from_rpc(during: &'static str, err: TransportError) -> Self {
        if let Some(resp) = err.as_error_resp() {
            if let Some(revert) = resp.as_decoded_interface_error::<MarketRevert>() {
                return ChainError::Reverted { during, revert };
            }
            if resp.as_revert_data().is_some() || resp.message.contains("revert") {
                return ChainError::RevertedOther { during, message: resp.message.to_string() };
            }
            return ChainError::Rejected { during, message: resp.message.to_string() };
        }
        ChainError::Transport { during, cause: err }
    }

    /// Classifies a failed contract call (decoding the market's revert if it is one).
    pub fn from_contract(during: &'static str, err: alloy::contract::Error) -> Self {
        if let Some(revert) = err.as_decoded_interface_error::<MarketRevert>() {
            return ChainError::Reverted { during, revert };
        }
        match err {
            alloy::contract::Error::TransportError(t) => ChainError::from_rpc(during, t),
            other => ChainError::RevertedOther { during, message: other.to_string() },
        }
    }
}
