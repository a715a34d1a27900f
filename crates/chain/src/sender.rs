//! The one place that sends transactions.
//!
//! For each transaction, under a lock (so nonces are assigned in order):
//! 1. estimate gas with a margin — a revert here is decoded and returned before anything is signed;
//! 2. assign the nonce: the larger of the node's pending count and the last one used here;
//! 3. sign locally and send the raw bytes; on a transport error re-send the *same bytes* with
//!    exponential backoff (an already-known transaction is not an error), so a retry can never
//!    produce a second transaction;
//! 4. wait for the receipt and `confirmations` blocks on top; a failed receipt is replayed with
//!    `eth_call` at its block to decode the revert.

use std::time::Duration;

use alloy::eips::{BlockId, Encodable2718};
use alloy::network::{Ethereum, EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, Bytes, B256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use tokio::sync::Mutex;

use crate::error::ChainError;

/// How often a long confirmation wait is reported.
const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// How hard to try.
#[derive(Debug, Clone)]
pub struct SendPolicy {
    /// Blocks on top of the inclusion block before a transaction counts as confirmed (1 = included).
    pub confirmations: u64,
    /// Give up waiting for confirmation after this long.
    pub confirm_timeout: Duration,
    /// How often to poll for the receipt.
    pub poll_interval: Duration,
    /// Attempts to send the signed bytes over a failing transport.
    pub send_attempts: u32,
    /// First backoff delay; doubles per attempt.
    pub backoff: Duration,
    /// Gas limit = estimate * (100 + margin) / 100.
    pub gas_margin_pct: u64,
}

impl Default for SendPolicy {
    fn default() -> Self {
        Self {
            confirmations: 1,
            confirm_timeout: Duration::from_secs(120),
            poll_interval: Duration::from_millis(200),
            send_attempts: 5,
            backoff: Duration::from_millis(250),
            gas_margin_pct: 25,
        }
    }
}

/// Sends transactions from one account.
#[derive(Debug)]
pub struct TxSender {
    provider: DynProvider,
    wallet: EthereumWallet,
    from: Address,
    chain_id: u64,
    policy: SendPolicy,
    next_nonce: Mutex<Option<u64>>,
}

impl TxSender {
    pub fn new(provider: DynProvider, signer: PrivateKeySigner, chain_id: u64, policy: SendPolicy) -> Self {
        let from = signer.address();
        Self { provider, wallet: EthereumWallet::from(signer), from, chain_id, policy, next_nonce: Mutex::new(None) }
    }

    #[must_use]
    pub fn from(&self) -> Address {
        self.from
    }

    #[must_use]
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// Sends `tx` (only `to`, `input`, `value` are taken from it) and waits for confirmation.
    pub async fn send(
        &self,
        mut tx: TransactionRequest,
        during: &'static str,
    ) -> Result<TransactionReceipt, ChainError> {
        let mut nonce_slot = self.next_nonce.lock().await;
        tx.from = Some(self.from);
        let estimate = self.provider.estimate_gas(tx.clone()).await.map_err(|e| ChainError::from_rpc(during, e))?;
        let gas = estimate.saturating_mul(100 + self.policy.gas_margin_pct) / 100;
        let pending = self
            .provider
            .get_transaction_count(self.from)
            .pending()
            .await
            .map_err(|e| ChainError::from_rpc(during, e))?;
        let nonce = nonce_slot.map_or(pending, |n| n.max(pending));
        let fees = self.provider.estimate_eip1559_fees().await.map_err(|e| ChainError::from_rpc(during, e))?;
        let tx = tx
            .with_nonce(nonce)
            .with_chain_id(self.chain_id)
            .with_gas_limit(gas)
            .with_max_fee_per_gas(fees.max_fee_per_gas)
            .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
        let envelope = <TransactionRequest as NetworkTransactionBuilder<Ethereum>>::build(tx, &self.wallet)
            .await
            .map_err(|_| ChainError::Signing)?;
        let hash = *envelope.tx_hash();
        let raw = Bytes::from(envelope.encoded_2718());
        tracing::debug!(%hash, nonce, gas, during, "sending transaction");

        self.send_raw_with_retry(&raw, hash, during).await?;
        // The signed transaction is out: its nonce is spent whatever happens next.
        *nonce_slot = Some(nonce + 1);
        drop(nonce_slot);
        self.confirm(hash, during).await
    }

    async fn send_raw_with_retry(&self, raw: &Bytes, hash: B256, during: &'static str) -> Result<(), ChainError> {
        let mut delay = self.policy.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.provider.send_raw_transaction(raw).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    if let Some(resp) = e.as_error_resp() {
                        let msg = resp.message.to_lowercase();
                        // A previous attempt got through: same bytes, same hash, one transaction.
                        if msg.contains("already known") || msg.contains("already imported") {
                            return Ok(());
                        }
                        if msg.contains("nonce too low") {
                            if let Ok(Some(_)) = self.provider.get_transaction_receipt(hash).await {
                                return Ok(());
                            }
                        }
                    }
                    let err = ChainError::from_rpc(during, e);
                    if !err.is_retryable() || attempt >= self.policy.send_attempts {
                        return Err(err);
                    }
                    tracing::warn!(attempt, during, error = %err, "send failed; re-sending the same signed transaction");
                    tokio::time::sleep(delay).await;
                    delay = delay.saturating_mul(2);
                }
            }
        }
    }

    async fn confirm(&self, hash: B256, during: &'static str) -> Result<TransactionReceipt, ChainError> {
        let start = tokio::time::Instant::now();
        let deadline = start + self.policy.confirm_timeout;
        // Long waits (real chains, several confirmations) are reported every few seconds.
        let mut report_at = start + PROGRESS_EVERY;
        let mut seen = 0u64;
        loop {
            match self.provider.get_transaction_receipt(hash).await {
                Ok(Some(receipt)) => {
                    let included =
                        receipt.block_number.ok_or(ChainError::Unexpected("receipt without block number"))?;
                    let head = self.provider.get_block_number().await.map_err(|e| ChainError::from_rpc(during, e))?;
                    seen = (head + 1).saturating_sub(included);
                    if head + 1 >= included + self.policy.confirmations {
                        if !receipt.status() {
                            return Err(self.explain_failure(hash, included, during).await);
                        }
                        if start.elapsed() >= PROGRESS_EVERY {
                            tracing::info!(%hash, during, block = included, "confirmed");
                        }
                        return Ok(receipt);
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    let err = ChainError::from_rpc(during, e);
                    if !err.is_retryable() {
                        return Err(err);
                    }
                }
            }
            let now = tokio::time::Instant::now();
            if now >= report_at {
                report_at = now + PROGRESS_EVERY;
                tracing::info!(
                    %hash,
                    during,
                    confirmations = format!("{seen}/{}", self.policy.confirmations),
                    waited_s = start.elapsed().as_secs(),
                    "waiting for confirmation"
                );
            }
            if now >= deadline {
                return Err(ChainError::ConfirmationTimeout {
                    hash,
                    waited_secs: self.policy.confirm_timeout.as_secs(),
                });
            }
            tokio::time::sleep(self.policy.poll_interval).await;
        }
    }

    async fn explain_failure(&self, hash: B256, block: u64, during: &'static str) -> ChainError {
        let Ok(Some(tx)) = self.provider.get_transaction_by_hash(hash).await else {
            return ChainError::RevertedOther { during, message: format!("transaction {hash} failed") };
        };
        let req: TransactionRequest = tx.into_request();
        match self.provider.call(req).block(BlockId::number(block.saturating_sub(1))).await {
            Err(e) => ChainError::from_rpc(during, e),
            Ok(_) => ChainError::RevertedOther { during, message: format!("transaction {hash} failed (out of gas?)") },
        }
    }
}
