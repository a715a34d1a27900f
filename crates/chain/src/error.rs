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
    #[error("the market refused {during}: {}", explain(revert))]
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

fn tokens(v: alloy::primitives::U256) -> String {
    wirepact_proto::token_text(v)
}

/// A market revert as a sentence: the error's name (to search for), what it means and the
/// numbers, amounts in tokens.
#[must_use]
#[allow(clippy::too_many_lines)]
pub fn explain(revert: &MarketRevert) -> String {
    use crate::bindings::WirepactMarket::WirepactMarketErrors as E;
    let (name, text): (&str, String) = match revert {
        E::Market_InvalidParams(_) => ("Market_InvalidParams", "the market's parameters are inconsistent".into()),
        E::Market_ZeroAmount(_) => ("Market_ZeroAmount", "the amount must be more than 0".into()),
        E::Market_InsufficientBalance(e) => (
            "Market_InsufficientBalance",
            format!("it needs {} but only {} are there", tokens(e.needed), tokens(e.available)),
        ),
        E::Market_AmountTooLarge(_) => ("Market_AmountTooLarge", "the amount is too large for the market".into()),
        E::Market_AlreadyRegistered(_) => ("Market_AlreadyRegistered", "this account already owns a provider".into()),
        E::Market_InvalidTerms(_) => (
            "Market_InvalidTerms",
            "the provider's terms are invalid (session rate 1..=capacity, a latency and a price)".into(),
        ),
        E::Market_StakeBelowMinimum(e) => (
            "Market_StakeBelowMinimum",
            format!("the stake would be {}, under the minimum of {}", tokens(e.stake), tokens(e.minimum)),
        ),
        E::Market_UnknownProvider(e) => ("Market_UnknownProvider", format!("there is no provider {}", e.providerId)),
        E::Market_NotProviderOwner(e) => {
            ("Market_NotProviderOwner", format!("this key does not own provider {}", e.providerId))
        }
        E::Market_ProviderNotActive(e) => {
            ("Market_ProviderNotActive", format!("provider {} is not active (jailed, or it left)", e.providerId))
        }
        E::Market_ProviderHasSessions(e) => (
            "Market_ProviderHasSessions",
            format!("provider {} still has {} Mbit/s of sessions open", e.providerId, e.committedMbps),
        ),
        E::Market_StillJailed(e) => ("Market_StillJailed", format!("jailed until epoch {}", e.jailedUntilEpoch)),
        E::Market_UnbondingNotReady(e) => {
            ("Market_UnbondingNotReady", format!("the stake unbonds at unix time {}", e.readyAt))
        }
        E::Market_NothingUnbonding(_) => ("Market_NothingUnbonding", "nothing is unbonding".into()),
        E::Market_WouldOversell(e) => (
            "Market_WouldOversell",
            format!(
                "the provider is full ({} of {} Mbit/s committed; a session takes {})",
                e.committedMbps, e.capacityMbps, e.sessionMbps
            ),
        ),
        E::Market_PriceAboveMax(e) => (
            "Market_PriceAboveMax",
            format!("the price is {} per GiB, above the {} allowed", tokens(e.price), tokens(e.maxPrice)),
        ),
        E::Market_InvalidSessionKey(_) => ("Market_InvalidSessionKey", "the session key is the zero address".into()),
        E::Market_DepositTooSmall(e) => (
            "Market_DepositTooSmall",
            format!("a deposit of {} is under this provider's minimum of {}", tokens(e.deposit), tokens(e.minimum)),
        ),
        E::Market_ProviderPaused(e) => {
            ("Market_ProviderPaused", format!("provider {} takes no new sessions (paused)", e.providerId))
        }
        E::Market_TokenTransferShort(e) => (
            "Market_TokenTransferShort",
            format!(
                "the token delivered {} of {} (fee-on-transfer tokens are refused)",
                tokens(e.received),
                tokens(e.expected)
            ),
        ),
        E::Market_UnknownSession(e) => ("Market_UnknownSession", format!("there is no session {}", e.sessionId)),
        E::Market_NotSessionParty(e) => {
            ("Market_NotSessionParty", format!("this key is neither client nor provider of session {}", e.sessionId))
        }
        E::Market_SessionNotOpen(e) => ("Market_SessionNotOpen", format!("session {} is not open", e.sessionId)),
        E::Market_BadReceiptSignature(_) => {
            ("Market_BadReceiptSignature", "the receipt is not signed by the session key".into())
        }
        E::Market_ReceiptNotNewer(e) => (
            "Market_ReceiptNotNewer",
            format!(
                "a receipt for {} bytes is not newer than the {} already claimed",
                e.cumulativeBytes, e.claimedBytes
            ),
        ),
        E::Market_ReceiptStale(e) => (
            "Market_ReceiptStale",
            format!("the receipt's time {} is not after the last claimed one ({})", e.timestamp, e.lastReceiptAt),
        ),
        E::Market_ReceiptFromFuture(e) => {
            ("Market_ReceiptFromFuture", format!("the receipt's time {} is ahead of the chain's clock", e.timestamp))
        }
        E::Market_ReceiptBeforeOpen(e) => (
            "Market_ReceiptBeforeOpen",
            format!("the receipt's time {} is before the session opened ({})", e.timestamp, e.openedAt),
        ),
        E::Market_GraceNotOver(e) => {
            ("Market_GraceNotOver", format!("the claim grace ends at unix time {}", e.settleableAt))
        }
        E::Market_OracleAlreadyRegistered(_) => {
            ("Market_OracleAlreadyRegistered", "this account is already an oracle".into())
        }
        E::Market_NotOracle(e) => ("Market_NotOracle", format!("{} is not an active oracle", e.account)),
        E::Market_NotEquivocation(_) => ("Market_NotEquivocation", "the two signed reports are the same".into()),
        E::Market_EpochNotStarted(e) => ("Market_EpochNotStarted", format!("epoch {} has not started", e.epoch)),
        E::Market_EpochNotSeeded(e) => {
            ("Market_EpochNotSeeded", format!("epoch {} was never begun (no audit seed)", e.epoch))
        }
        E::Market_ReportWindowClosed(e) => {
            ("Market_ReportWindowClosed", format!("the report window of epoch {} has closed", e.epoch))
        }
        E::Market_AlreadyReported(e) => ("Market_AlreadyReported", format!("epoch {} is already reported", e.epoch)),
        E::Market_TooFewOracles(e) => ("Market_TooFewOracles", format!("only {} signatures", e.signers)),
        E::Market_QuorumNotReached(e) => (
            "Market_QuorumNotReached",
            format!(
                "the signers hold {} of {} of oracle stake, not more than two thirds",
                tokens(e.signingStake),
                tokens(e.eligibleStake)
            ),
        ),
        E::Market_SignersNotSorted(_) => ("Market_SignersNotSorted", "signers must be in ascending order".into()),
        E::Market_MalformedReport(_) => ("Market_MalformedReport", "the report is malformed".into()),
        E::Market_ProvidersNotSorted(_) => {
            ("Market_ProvidersNotSorted", "the violators must be in ascending order".into())
        }
        E::Market_ProviderNotAudited(e) => {
            ("Market_ProviderNotAudited", format!("provider {} was not audited in epoch {}", e.providerId, e.epoch))
        }
        E::Market_NotAViolation(e) => {
            ("Market_NotAViolation", format!("the figures given for provider {} meet its SLA", e.providerId))
        }
        E::Market_EmptyReport(_) => ("Market_EmptyReport", "a report must judge someone or commit a secret".into()),
        E::Market_NothingToCollect(e) => {
            ("Market_NothingToCollect", format!("provider {} has no earnings to collect", e.providerId))
        }
        E::Market_BadSeedReveal(e) => {
            ("Market_BadSeedReveal", format!("the revealed secret of epoch {} does not open its commitment", e.epoch))
        }
        E::Market_AuditSetSecret(e) => {
            ("Market_AuditSetSecret", format!("epoch {}'s audit set stays secret until its report", e.epoch))
        }
        E::Market_PeriodNotOver(e) => (
            "Market_PeriodNotOver",
            format!("reward period {} is not over (claims open after its last report window)", e.period),
        ),
        E::Market_NotEligibleForBonus(e) => (
            "Market_NotEligibleForBonus",
            format!("{} audits, {} of them available: not enough for the bonus", e.audits, e.available),
        ),
        E::Market_BonusAlreadyClaimed(e) => {
            ("Market_BonusAlreadyClaimed", format!("the bonus of period {} was already claimed", e.period))
        }
        E::Market_NoBonusRecord(e) => ("Market_NoBonusRecord", format!("no bonus pot for period {}", e.period)),
        E::Market_SweepTooEarly(e) => {
            ("Market_SweepTooEarly", format!("period {}'s bonus can be swept only after its claim window", e.period))
        }
        E::Market_BonusWindowClosed(e) => {
            ("Market_BonusWindowClosed", format!("the claim window of period {} has closed", e.period))
        }
        E::Market_BadAuditProof(e) => {
            ("Market_BadAuditProof", format!("a leaf of epoch {} is not in that epoch's verdict tree", e.epoch))
        }
        E::Market_SessionExists(e) => ("Market_SessionExists", format!("session {} exists already", e.sessionId)),
        E::Market_ModuleMismatch(_) => {
            ("Market_ModuleMismatch", "the audit module was deployed with other parameters".into())
        }
        E::Market_NotDelegated(_) => ("Market_NotDelegated", "call the market, not its audit module".into()),
        #[allow(unreachable_patterns)]
        other => return format!("{other:?}"),
    };
    format!("{text} ({name})")
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
    /// What to do next: retry (the RPC is down, a confirmation is late), add funds (a balance,
    /// stake or gas is short), use another provider (it is not active, full or dearer than
    /// allowed), or fix what was asked.
    #[must_use]
    pub fn kind(&self) -> wirepact_proto::ErrorKind {
        use crate::bindings::WirepactMarket::WirepactMarketErrors as R;
        use wirepact_proto::ErrorKind as K;
        match self {
            ChainError::Transport { .. } | ChainError::ConfirmationTimeout { .. } => K::Retry,
            ChainError::Reverted { revert, .. } => match revert {
                R::Market_InsufficientBalance(_) | R::Market_StakeBelowMinimum(_) => K::NeedFunds,
                R::Market_ProviderNotActive(_) | R::Market_WouldOversell(_) | R::Market_PriceAboveMax(_) => K::Failover,
                _ => K::FixConfig,
            },
            ChainError::Rejected { message, .. } | ChainError::RevertedOther { message, .. }
                if message.to_ascii_lowercase().contains("insufficient") =>
            {
                K::NeedFunds
            }
            ChainError::Rejected { .. } | ChainError::RevertedOther { .. } => K::FixConfig,
            ChainError::Unexpected(_) => K::PeerMisbehaved,
            ChainError::Signing => K::Bug,
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::WirepactMarket::{Market_PriceAboveMax, Market_StakeBelowMinimum, WirepactMarketErrors as E};
    use alloy::primitives::U256;

    const ONE: u128 = 1_000_000_000_000_000_000;

    /// A refusal reads as a sentence with the amounts in tokens, and keeps the error's name.
    #[test]
    fn a_refusal_names_the_amounts_in_tokens() {
        let e = ChainError::Reverted {
            during: "registering the provider",
            revert: E::Market_StakeBelowMinimum(Market_StakeBelowMinimum {
                stake: U256::from(5 * ONE),
                minimum: U256::from(40 * ONE),
            }),
        };
        assert_eq!(
            e.to_string(),
            "the market refused registering the provider: the stake would be 5 tokens, under the minimum of 40 tokens (Market_StakeBelowMinimum)"
        );
        let p =
            E::Market_PriceAboveMax(Market_PriceAboveMax { price: U256::from(ONE / 4), maxPrice: U256::from(ONE / 5) });
        assert_eq!(
            explain(&p),
            "the price is 0.25 tokens per GiB, above the 0.2 tokens allowed (Market_PriceAboveMax)"
        );
    }
}
