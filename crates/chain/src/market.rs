//! The market as node, client and oracle see it.

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, TransactionReceipt};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolEventInterface, SolValue};
use wirepact_proto::{ProviderId, SessionId, SessionTerms};

use crate::bindings::{audit_module_deploy_code, IWirepactMarket, TestToken, WirepactMarket};
use crate::error::ChainError;
use crate::sender::{SendPolicy, TxSender};

/// A provider as the market stores it.
pub type ProviderInfo = IWirepactMarket::ProviderView;

/// A session just opened: its terms (needed to claim/close) and id.
#[derive(Debug, Clone)]
pub struct OpenedSession {
    pub id: SessionId,
    pub terms: SessionTerms,
    pub receipt: TransactionReceipt,
}

/// One epoch's report: the aggregate the quorum signed (`wirepact_proto::Report`) and the
/// signatures over it, in ascending signer order.
#[derive(Debug, Clone)]
pub struct ReportSubmission {
    pub report: wirepact_proto::Report,
    /// The secret committed for the report's epoch by the report of `epoch - 2` (zero if none
    /// was: the market checks it against the commitment).
    pub seed_reveal: B256,
    pub signatures: Vec<Bytes>,
}

/// What node, client and oracle need from the market.
#[allow(async_fn_in_trait)]
pub trait Market {
    fn address(&self) -> Address;
    fn chain_id(&self) -> u64;
    /// The account this handle sends from.
    fn account(&self) -> Address;

    async fn params(&self) -> Result<IWirepactMarket::Params, ChainError>;
    async fn current_epoch(&self) -> Result<u64, ChainError>;
    async fn balance_of(&self, who: Address) -> Result<U256, ChainError>;
    async fn provider(&self, id: ProviderId) -> Result<ProviderInfo, ChainError>;
    async fn provider_count(&self) -> Result<u32, ChainError>;
    /// The id of the provider `owner` registered, if any.
    async fn provider_id_of(&self, owner: Address) -> Result<Option<ProviderId>, ChainError>;
    async fn quote(&self, id: ProviderId) -> Result<U256, ChainError>;
    async fn session(&self, id: SessionId) -> Result<IWirepactMarket::SessionState, ChainError>;
    /// The terms a session was opened with (from its `SessionOpened` event), if it exists.
    async fn session_terms(&self, id: SessionId) -> Result<Option<SessionTerms>, ChainError>;
    async fn is_audited(&self, epoch: u64, id: ProviderId) -> Result<bool, ChainError>;
    /// The stake `signers` hold for `epoch` and the epoch's eligible total: a report they
    /// sign is accepted iff `3 * signing > 2 * eligible` (and at least 3 sign).
    async fn signing_stake(&self, epoch: u64, signers: &[Address]) -> Result<(U256, U256), ChainError>;

    /// Pulls `amount` tokens into the account's market balance (approving first if needed).
    async fn deposit(&self, amount: U256) -> Result<TransactionReceipt, ChainError>;
    async fn withdraw(&self, amount: U256) -> Result<TransactionReceipt, ChainError>;
    /// Moves provider `id`'s claimed earnings to its owner's balance, less the protocol fee
    /// (anyone may send it).
    async fn collect_earnings(&self, id: ProviderId) -> Result<TransactionReceipt, ChainError>;
    async fn register_provider(
        &self,
        terms: IWirepactMarket::ProviderTerms,
        tunnel_key: B256,
        endpoint: &str,
        region: &str,
        stake: U256,
    ) -> Result<ProviderId, ChainError>;
    /// Changes the price, tunnel key and endpoint of a provider this account owns.
    async fn update_provider(
        &self,
        id: ProviderId,
        base_price_per_gib: U256,
        tunnel_key: B256,
        endpoint: &str,
    ) -> Result<TransactionReceipt, ChainError>;
    async fn open_session(
        &self,
        provider: ProviderId,
        deposit: U256,
        max_price_per_gib: U256,
        session_key: Address,
    ) -> Result<OpenedSession, ChainError>;
    async fn claim(
        &self,
        terms: &SessionTerms,
        cumulative_bytes: u64,
        timestamp: u64,
        signature: Bytes,
    ) -> Result<TransactionReceipt, ChainError>;
    async fn close(&self, terms: &SessionTerms) -> Result<TransactionReceipt, ChainError>;
    async fn settle(&self, terms: &SessionTerms) -> Result<TransactionReceipt, ChainError>;
    async fn register_oracle(&self, endpoint: &str, stake: U256) -> Result<TransactionReceipt, ChainError>;
    async fn begin_epoch(&self) -> Result<TransactionReceipt, ChainError>;
    async fn submit_report(&self, report: &ReportSubmission) -> Result<TransactionReceipt, ChainError>;

    /// All market events in `[from_block, to_block]`, decoded.
    async fn events(
        &self,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<WirepactMarket::WirepactMarketEvents>, ChainError>;
}

/// [`Market`] over an alloy JSON-RPC provider.
#[derive(Debug)]
pub struct AlloyMarket {
    address: Address,
    token: Address,
    chain_id: u64,
    sender: TxSender,
}

// The binding's `SessionTerms` and proto's are the same Solidity struct; convert through its
// ABI encoding so the two can never disagree field by field.
fn to_binding(t: &SessionTerms) -> IWirepactMarket::SessionTerms {
    IWirepactMarket::SessionTerms::abi_decode(&t.abi_encode()).unwrap_or_else(|_| unreachable!("identical layouts"))
}

fn from_binding(t: &IWirepactMarket::SessionTerms) -> SessionTerms {
    SessionTerms::abi_decode(&t.abi_encode()).unwrap_or_else(|_| unreachable!("identical layouts"))
}

/// `v` as the contract's `uint96` (prices, deposits), if it fits.
#[must_use]
pub fn to_u96(v: U256) -> Option<alloy::primitives::Uint<96, 2>> {
    alloy::primitives::Uint::<96, 2>::checked_from_limbs_slice(&v.as_limbs()[..2]).filter(|_| v.bit_len() <= 96)
}

/// A provider's violations the market still counts towards a slash at `epoch`, and the window
/// in epochs they are counted over (`ceil(2 * w * 10_000 / auditProbabilityBps)`, at most 192,
/// as the market computes it).
#[must_use]
pub fn violations_in_window(p: &ProviderInfo, params: &IWirepactMarket::Params, epoch: u64) -> (usize, u64) {
    let window = (2 * u64::from(params.violationWindow) * 10_000)
        .div_ceil(u64::from(params.auditProbabilityBps.max(1)))
        .min(192);
    let last = u64::from(p.lastViolationEpoch);
    let recent = (0..usize::try_from(window).unwrap_or(192))
        .filter(|&i| p.violationBits.bit(i) && last >= i as u64 && last - i as u64 + window > epoch)
        .count();
    (recent, window)
}

/// Devnet parameters: one-hour epochs, every provider audited, small stakes (tests, demo).
#[must_use]
pub fn devnet_params() -> IWirepactMarket::Params {
    const ONE: u128 = 1_000_000_000_000_000_000;
    IWirepactMarket::Params {
        token: Address::ZERO,
        epochLength: 3600,
        auditProbabilityBps: 10_000,
        minStakePerMbps: ONE,
        minOracleStake: 10 * ONE,
        // at least two epochs: a provider that leaves stays slashable through its last report window
        unbondingDelay: 7200,
        claimGrace: 600,
        alphaBps: 10_000,
        protocolFeeBps: 200,
        oracleRewardPerReport: 0,
        throughputToleranceBps: 1_000,
        latencyToleranceMs: 20,
        violationsToSlash: 2,
        violationWindow: 4,
        slashBps: 1_000,
        slashOracleShareBps: 2_000,
        jailEpochs: 2,
        sessionPenaltyBps: 2_500,
        rewardPeriodEpochs: 10,
        bonusMinAudits: 1,
        bonusAvailabilityBps: 9_990,
        bonusPoolShareBps: 5_000,
        minDepositSeconds: 60,
        auditHourWeights: U256::ZERO,
    }
}

/// Deploy defaults for a public chain, tuned with the simulator (`make sim`, see the README):
/// 10-minute epochs, each provider audited in 10% of them (about 14 audits a day), and a slash
/// on 3 violations within its last 6 audits. 3-of-6 catches a provider delivering 80% of its
/// SLA at its third audit, while an honest provider's rare bad audits (a latency spike, an
/// oracle's own trouble) must coincide three times within six audits, which the simulator puts
/// far below 1e-6 per provider-month (2-of-4 is not: one heavy-tailed latency spike in a few
/// thousand audits makes pairs too likely).
#[must_use]
pub fn default_params() -> IWirepactMarket::Params {
    const ONE: u128 = 1_000_000_000_000_000_000;
    IWirepactMarket::Params {
        token: Address::ZERO,
        epochLength: 600,
        auditProbabilityBps: 1_000,
        minStakePerMbps: ONE,
        minOracleStake: 1_000 * ONE,
        unbondingDelay: 7 * 24 * 3600,
        claimGrace: 3600,
        alphaBps: 10_000,
        protocolFeeBps: 200,
        oracleRewardPerReport: ONE / 100,
        throughputToleranceBps: 1_000,
        latencyToleranceMs: 20,
        violationsToSlash: 3,
        violationWindow: 6,
        slashBps: 1_000,
        slashOracleShareBps: 2_000,
        jailEpochs: 144,
        sessionPenaltyBps: 2_500,
        rewardPeriodEpochs: 144,
        bonusMinAudits: 5,
        bonusAvailabilityBps: 9_990,
        bonusPoolShareBps: 5_000,
        minDepositSeconds: 60,
        auditHourWeights: U256::ZERO,
    }
}

/// The longest one JSON-RPC request may take. A stalled endpoint must not freeze whoever
/// waits on it: past this the call fails as a transport error (retryable) and the caller moves
/// on. Confirmation waits poll with many short requests, each under this deadline.
pub const RPC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A read-only provider for `url`; every request has [`RPC_TIMEOUT`].
pub fn connect(url: &str) -> Result<DynProvider, ChainError> {
    let parsed: alloy::transports::http::reqwest::Url =
        url.parse().map_err(|_| ChainError::Unexpected("RPC URL does not parse"))?;
    let client = alloy::transports::http::reqwest::Client::builder()
        .timeout(RPC_TIMEOUT)
        .connect_timeout(RPC_TIMEOUT)
        .build()
        .map_err(|_| ChainError::Unexpected("cannot build the HTTP client"))?;
    let is_local = parsed.host_str().is_some_and(|h| h == "localhost" || h.starts_with("127.") || h == "[::1]");
    let http = alloy::transports::http::Http::with_client(client, parsed);
    let rpc = alloy::rpc::client::RpcClient::new(http, is_local);
    Ok(ProviderBuilder::new().disable_recommended_fillers().connect_client(rpc).erased())
}

impl AlloyMarket {
    /// The latest block number.
    ///
    /// # Errors
    /// RPC failures.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.rpc().get_block_number().await.map_err(|e| ChainError::from_rpc("reading the block number", e))
    }

    /// The terms of the sessions opened with `provider` in blocks `[from_block, to_block]`
    /// (from `SessionOpened`, filtered by the indexed provider id; terms that do not hash to
    /// their id are dropped).
    ///
    /// # Errors
    /// RPC failures.
    pub async fn sessions_opened_with(
        &self,
        provider: ProviderId,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<SessionTerms>, ChainError> {
        self.sessions_opened(Filter::new().topic2(B256::from(U256::from(provider.0))), from_block, to_block).await
    }

    /// The terms of the sessions `client` opened in blocks `[from_block, to_block]` (from
    /// `SessionOpened`, filtered by the indexed client).
    ///
    /// # Errors
    /// RPC failures.
    pub async fn sessions_opened_by(
        &self,
        client: Address,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<SessionTerms>, ChainError> {
        self.sessions_opened(Filter::new().topic3(client.into_word()), from_block, to_block).await
    }

    async fn sessions_opened(
        &self,
        filter: Filter,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<SessionTerms>, ChainError> {
        use alloy::sol_types::SolEvent;
        let filter = filter
            .address(self.address)
            .event_signature(WirepactMarket::SessionOpened::SIGNATURE_HASH)
            .from_block(from_block)
            .to_block(to_block);
        let logs = self.rpc().get_logs(&filter).await.map_err(|e| ChainError::from_rpc("reading sessions", e))?;
        let mut out = Vec::new();
        for log in logs {
            if let Ok(ev) = WirepactMarket::SessionOpened::decode_log(&log.inner) {
                let terms = from_binding(&ev.data.terms);
                if terms.session_id().0 == ev.data.sessionId {
                    out.push(terms);
                }
            }
        }
        Ok(out)
    }

    /// A handle on the market at `address`, sending from `signer`.
    pub async fn connect(
        url: &str,
        address: Address,
        signer: PrivateKeySigner,
        policy: SendPolicy,
    ) -> Result<Self, ChainError> {
        let provider = connect(url)?;
        let chain_id = provider.get_chain_id().await.map_err(|e| ChainError::from_rpc("reading the chain id", e))?;
        let token = WirepactMarket::new(address, &provider)
            .token()
            .call()
            .await
            .map_err(|e| ChainError::from_contract("reading the market's token", e))?;
        Ok(Self { address, token, chain_id, sender: TxSender::new(provider, signer, chain_id, policy) })
    }

    /// Deploys a market (and, if `token` is `None`, a devnet test token) from `signer`.
    pub async fn deploy(
        url: &str,
        signer: PrivateKeySigner,
        token: Option<Address>,
        mut params: IWirepactMarket::Params,
        policy: SendPolicy,
    ) -> Result<Self, ChainError> {
        let provider = connect(url)?;
        let chain_id = provider.get_chain_id().await.map_err(|e| ChainError::from_rpc("reading the chain id", e))?;
        let sender = TxSender::new(provider.clone(), signer, chain_id, policy);
        let token = match token {
            Some(t) => t,
            None => {
                let tx = TestToken::deploy_builder(&provider).into_transaction_request();
                let r = sender.send(tx, "deploying the test token").await?;
                r.contract_address.ok_or(ChainError::Unexpected("token deployment without address"))?
            }
        };
        params.token = token;
        // The market runs its oracle, report and bonus rules in a module built from the same
        // parameters (it checks so at construction): the module first, then the market.
        let tx = alloy::rpc::types::TransactionRequest::default().with_deploy_code(audit_module_deploy_code(&params));
        let r = sender.send(tx, "deploying the market's audit module").await?;
        let module = r.contract_address.ok_or(ChainError::Unexpected("audit module deployment without address"))?;
        let tx = WirepactMarket::deploy_builder(&provider, params, module).into_transaction_request();
        let r = sender.send(tx, "deploying the market").await?;
        let address = r.contract_address.ok_or(ChainError::Unexpected("market deployment without address"))?;
        Ok(Self { address, token, chain_id, sender })
    }

    /// The same market, sending from another account.
    pub fn with_signer(&self, signer: PrivateKeySigner, policy: SendPolicy) -> Self {
        Self {
            address: self.address,
            token: self.token,
            chain_id: self.chain_id,
            sender: TxSender::new(self.sender.provider().clone(), signer, self.chain_id, policy),
        }
    }

    #[must_use]
    pub fn token(&self) -> Address {
        self.token
    }

    #[must_use]
    pub fn rpc(&self) -> &DynProvider {
        self.sender.provider()
    }

    #[must_use]
    pub fn sender(&self) -> &TxSender {
        &self.sender
    }

    fn contract(&self) -> WirepactMarket::WirepactMarketInstance<&DynProvider> {
        WirepactMarket::new(self.address, self.sender.provider())
    }

    fn token_contract(&self) -> TestToken::TestTokenInstance<&DynProvider> {
        TestToken::new(self.token, self.sender.provider())
    }

    /// Claims the reliability bonus of `period` for provider `id` (owned by this account) with
    /// its leaf in the last epoch of the period whose report judged it available, and the
    /// leaf of the epoch before if there is one.
    pub async fn claim_bonus(
        &self,
        id: ProviderId,
        period: u32,
        leaves: Vec<IWirepactMarket::BonusLeaf>,
    ) -> Result<TransactionReceipt, ChainError> {
        let tx = self.contract().claimBonus(id.0, period, leaves).into_transaction_request();
        self.sender.send(tx, "claiming the reliability bonus").await
    }

    /// The root of the providers `epoch`'s report judged available (zero: none or unreported).
    pub async fn verdict_root(&self, epoch: u64) -> Result<B256, ChainError> {
        self.contract()
            .verdictRoot(epoch)
            .call()
            .await
            .map_err(|e| ChainError::from_contract("reading a verdict root", e))
    }

    /// Whether `epoch` has an accepted report.
    pub async fn is_reported(&self, epoch: u64) -> Result<bool, ChainError> {
        self.contract().isReported(epoch).call().await.map_err(|e| ChainError::from_contract("reading report state", e))
    }

    /// Unix time the market's epoch 0 started.
    pub async fn genesis(&self) -> Result<u64, ChainError> {
        let g = self.contract().genesis().call().await.map_err(|e| ChainError::from_contract("reading genesis", e))?;
        u64::try_from(g).map_err(|_| ChainError::Unexpected("genesis out of range"))
    }

    /// The least stake a provider of `capacity_mbps` must bond.
    pub async fn min_provider_stake(&self, capacity_mbps: u32) -> Result<U256, ChainError> {
        self.contract()
            .minProviderStake(capacity_mbps)
            .call()
            .await
            .map_err(|e| ChainError::from_contract("reading the minimum stake", e))
    }

    /// Devnet only: mints test tokens to `to`.
    pub async fn mint_test_tokens(&self, to: Address, amount: U256) -> Result<TransactionReceipt, ChainError> {
        let tx = self.token_contract().mint(to, amount).into_transaction_request();
        self.sender.send(tx, "minting test tokens").await
    }

    /// Adds `amount` tokens from the wallet to provider `id`'s stake (approving the market first
    /// if needed).
    pub async fn add_stake(&self, id: ProviderId, amount: U256) -> Result<TransactionReceipt, ChainError> {
        self.ensure_allowance(amount).await?;
        self.sender.send(self.contract().addStake(id.0, amount).into_transaction_request(), "adding stake").await
    }

    /// Moves `amount` of provider `id`'s stake to unbonding (it restarts the unbonding delay).
    pub async fn request_unstake(&self, id: ProviderId, amount: U256) -> Result<TransactionReceipt, ChainError> {
        self.sender
            .send(self.contract().requestUnstake(id.0, amount).into_transaction_request(), "requesting an unstake")
            .await
    }

    /// Credits provider `id`'s unbonded stake to the owner's market balance.
    pub async fn withdraw_unbonded(&self, id: ProviderId) -> Result<TransactionReceipt, ChainError> {
        self.sender
            .send(self.contract().withdrawUnbonded(id.0).into_transaction_request(), "withdrawing unbonded stake")
            .await
    }

    /// Ends provider `id`'s jail (its stake must cover the minimum again).
    pub async fn unjail(&self, id: ProviderId) -> Result<TransactionReceipt, ChainError> {
        self.sender.send(self.contract().unjail(id.0).into_transaction_request(), "unjailing").await
    }

    /// Leaves the market: provider `id`'s whole stake starts unbonding.
    pub async fn leave(&self, id: ProviderId) -> Result<TransactionReceipt, ChainError> {
        self.sender.send(self.contract().leave(id.0).into_transaction_request(), "leaving the market").await
    }

    /// Stops (or resumes) taking new client sessions.
    pub async fn set_paused(&self, id: ProviderId, paused: bool) -> Result<TransactionReceipt, ChainError> {
        let what = if paused { "pausing" } else { "resuming" };
        self.sender.send(self.contract().setPaused(id.0, paused).into_transaction_request(), what).await
    }

    /// Starts this oracle's exit (its stake unbonds).
    pub async fn request_oracle_leave(&self) -> Result<TransactionReceipt, ChainError> {
        self.sender
            .send(self.contract().requestOracleLeave().into_transaction_request(), "leaving the oracle set")
            .await
    }

    /// Credits this oracle's unbonded stake to its market balance.
    pub async fn withdraw_oracle_stake(&self) -> Result<TransactionReceipt, ChainError> {
        self.sender
            .send(self.contract().withdrawOracleStake().into_transaction_request(), "withdrawing oracle stake")
            .await
    }

    /// An oracle's record (status, stake, unbonding, the epochs it signs for).
    pub async fn oracle(&self, who: Address) -> Result<IWirepactMarket::OracleView, ChainError> {
        self.contract().oracle(who).call().await.map_err(|e| ChainError::from_contract("reading an oracle", e))
    }

    /// The timestamp of the chain's latest block (what the market compares deadlines with).
    pub async fn block_timestamp(&self) -> Result<u64, ChainError> {
        let block = self
            .rpc()
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await
            .map_err(|e| ChainError::from_rpc("reading the latest block", e))?
            .ok_or(ChainError::Unexpected("the node has no latest block"))?;
        Ok(block.header.timestamp)
    }

    /// The smallest deposit a session with provider `id` may have now (at its current quote).
    pub async fn min_deposit(&self, id: ProviderId) -> Result<U256, ChainError> {
        self.contract()
            .minDeposit(id.0)
            .call()
            .await
            .map_err(|e| ChainError::from_contract("reading the minimum deposit", e))
    }

    /// What a settled session paid (from its `SessionSettled` event), if it settled.
    pub async fn settled_paid(&self, id: SessionId) -> Result<Option<U256>, ChainError> {
        use alloy::sol_types::SolEvent;
        let filter = Filter::new()
            .address(self.address)
            .event_signature(WirepactMarket::SessionSettled::SIGNATURE_HASH)
            .topic1(id.0)
            .from_block(0);
        let logs = self.rpc().get_logs(&filter).await.map_err(|e| ChainError::from_rpc("reading a settlement", e))?;
        Ok(logs.iter().find_map(|l| WirepactMarket::SessionSettled::decode_log(&l.inner).ok().map(|e| e.data.paid)))
    }

    pub async fn token_balance(&self, who: Address) -> Result<U256, ChainError> {
        self.token_contract()
            .balanceOf(who)
            .call()
            .await
            .map_err(|e| ChainError::from_contract("reading a token balance", e))
    }

    async fn ensure_allowance(&self, amount: U256) -> Result<(), ChainError> {
        let t = self.token_contract();
        let allowance = t
            .allowance(self.sender.from(), self.address)
            .call()
            .await
            .map_err(|e| ChainError::from_contract("reading the token allowance", e))?;
        if allowance < amount {
            let tx = t.approve(self.address, U256::MAX).into_transaction_request();
            self.sender.send(tx, "approving the market").await?;
        }
        Ok(())
    }

    /// The EIP-712 digest the contract computes for a receipt (for cross-checks).
    pub async fn receipt_digest(
        &self,
        session: B256,
        cumulative_bytes: u64,
        timestamp: u64,
    ) -> Result<B256, ChainError> {
        self.contract()
            .receiptDigest(session, cumulative_bytes, timestamp)
            .call()
            .await
            .map_err(|e| ChainError::from_contract("computing a receipt digest", e))
    }

    /// The digest the market expects oracles to sign for `report`.
    pub async fn report_digest(&self, report: &wirepact_proto::Report) -> Result<B256, ChainError> {
        self.contract()
            .reportDigest(report.epoch, report.root, report.available, report.violations.clone(), report.seedCommit)
            .call()
            .await
            .map_err(|e| ChainError::from_contract("computing a report digest", e))
    }
}

impl Market for AlloyMarket {
    fn address(&self) -> Address {
        self.address
    }

    fn chain_id(&self) -> u64 {
        self.chain_id
    }

    fn account(&self) -> Address {
        self.sender.from()
    }

    async fn params(&self) -> Result<IWirepactMarket::Params, ChainError> {
        self.contract().params().call().await.map_err(|e| ChainError::from_contract("reading parameters", e))
    }

    async fn current_epoch(&self) -> Result<u64, ChainError> {
        self.contract().currentEpoch().call().await.map_err(|e| ChainError::from_contract("reading the epoch", e))
    }

    async fn balance_of(&self, who: Address) -> Result<U256, ChainError> {
        self.contract().balanceOf(who).call().await.map_err(|e| ChainError::from_contract("reading a balance", e))
    }

    async fn provider(&self, id: ProviderId) -> Result<ProviderInfo, ChainError> {
        // `provider` collides with the instance's accessor; call through the typed call struct.
        self.contract()
            .call_builder(&WirepactMarket::providerCall { providerId: id.0 })
            .call()
            .await
            .map_err(|e| ChainError::from_contract("reading a provider", e))
    }

    async fn provider_count(&self) -> Result<u32, ChainError> {
        self.contract().providerCount().call().await.map_err(|e| ChainError::from_contract("counting providers", e))
    }

    async fn provider_id_of(&self, owner: Address) -> Result<Option<ProviderId>, ChainError> {
        let id = self
            .contract()
            .providerIdOf(owner)
            .call()
            .await
            .map_err(|e| ChainError::from_contract("reading a provider id", e))?;
        Ok((id != 0).then_some(ProviderId(id)))
    }

    async fn quote(&self, id: ProviderId) -> Result<U256, ChainError> {
        self.contract().quote(id.0).call().await.map_err(|e| ChainError::from_contract("reading a quote", e))
    }

    async fn session(&self, id: SessionId) -> Result<IWirepactMarket::SessionState, ChainError> {
        self.contract().session(id.0).call().await.map_err(|e| ChainError::from_contract("reading a session", e))
    }

    async fn session_terms(&self, id: SessionId) -> Result<Option<SessionTerms>, ChainError> {
        use alloy::sol_types::SolEvent;
        let filter = Filter::new()
            .address(self.address)
            .event_signature(WirepactMarket::SessionOpened::SIGNATURE_HASH)
            .topic1(id.0)
            .from_block(0);
        let logs = self.rpc().get_logs(&filter).await.map_err(|e| ChainError::from_rpc("reading a session", e))?;
        for log in logs {
            if let Ok(ev) = WirepactMarket::SessionOpened::decode_log(&log.inner) {
                let terms = from_binding(&ev.data.terms);
                // Trust the terms only if they hash to the id asked for.
                if terms.session_id() == id {
                    return Ok(Some(terms));
                }
            }
        }
        Ok(None)
    }

    async fn is_audited(&self, epoch: u64, id: ProviderId) -> Result<bool, ChainError> {
        self.contract()
            .isAudited(epoch, id.0)
            .call()
            .await
            .map_err(|e| ChainError::from_contract("reading the audit set", e))
    }

    async fn signing_stake(&self, epoch: u64, signers: &[Address]) -> Result<(U256, U256), ChainError> {
        let r = self
            .contract()
            .signingStake(epoch, signers.to_vec())
            .call()
            .await
            .map_err(|e| ChainError::from_contract("reading the signing stake", e))?;
        Ok((r.signing, r.eligible))
    }

    async fn deposit(&self, amount: U256) -> Result<TransactionReceipt, ChainError> {
        self.ensure_allowance(amount).await?;
        self.sender.send(self.contract().deposit(amount).into_transaction_request(), "depositing").await
    }

    async fn withdraw(&self, amount: U256) -> Result<TransactionReceipt, ChainError> {
        self.sender.send(self.contract().withdraw(amount).into_transaction_request(), "withdrawing").await
    }

    async fn collect_earnings(&self, id: ProviderId) -> Result<TransactionReceipt, ChainError> {
        self.sender.send(self.contract().collectEarnings(id.0).into_transaction_request(), "collecting earnings").await
    }

    async fn register_provider(
        &self,
        terms: IWirepactMarket::ProviderTerms,
        tunnel_key: B256,
        endpoint: &str,
        region: &str,
        stake: U256,
    ) -> Result<ProviderId, ChainError> {
        self.ensure_allowance(stake).await?;
        let tx = self
            .contract()
            .registerProvider(terms, tunnel_key, endpoint.to_owned(), region.to_owned(), stake)
            .into_transaction_request();
        let r = self.sender.send(tx, "registering the provider").await?;
        r.decoded_log::<WirepactMarket::ProviderRegistered>()
            .map(|l| ProviderId(l.data.providerId))
            .ok_or(ChainError::Unexpected("registration without ProviderRegistered event"))
    }

    async fn update_provider(
        &self,
        id: ProviderId,
        base_price_per_gib: U256,
        tunnel_key: B256,
        endpoint: &str,
    ) -> Result<TransactionReceipt, ChainError> {
        let price = to_u96(base_price_per_gib).ok_or(ChainError::Unexpected("price above 2^96"))?;
        let tx =
            self.contract().updateProvider(id.0, price, tunnel_key, endpoint.to_owned()).into_transaction_request();
        self.sender.send(tx, "updating the provider").await
    }

    async fn open_session(
        &self,
        provider: ProviderId,
        deposit: U256,
        max_price_per_gib: U256,
        session_key: Address,
    ) -> Result<OpenedSession, ChainError> {
        let tx =
            self.contract().openSession(provider.0, deposit, max_price_per_gib, session_key).into_transaction_request();
        let receipt = self.sender.send(tx, "opening a session").await?;
        let ev = receipt
            .decoded_log::<WirepactMarket::SessionOpened>()
            .ok_or(ChainError::Unexpected("open without SessionOpened event"))?;
        let terms = from_binding(&ev.data.terms);
        let id = terms.session_id();
        if id.0 != ev.data.sessionId {
            return Err(ChainError::Unexpected("session id differs from the contract's"));
        }
        Ok(OpenedSession { id, terms, receipt })
    }

    async fn claim(
        &self,
        terms: &SessionTerms,
        cumulative_bytes: u64,
        timestamp: u64,
        signature: Bytes,
    ) -> Result<TransactionReceipt, ChainError> {
        let tx =
            self.contract().claim(to_binding(terms), cumulative_bytes, timestamp, signature).into_transaction_request();
        self.sender.send(tx, "claiming a receipt").await
    }

    async fn close(&self, terms: &SessionTerms) -> Result<TransactionReceipt, ChainError> {
        self.sender.send(self.contract().close(to_binding(terms)).into_transaction_request(), "closing a session").await
    }

    async fn settle(&self, terms: &SessionTerms) -> Result<TransactionReceipt, ChainError> {
        self.sender
            .send(self.contract().settle(to_binding(terms)).into_transaction_request(), "settling a session")
            .await
    }

    async fn register_oracle(&self, endpoint: &str, stake: U256) -> Result<TransactionReceipt, ChainError> {
        self.ensure_allowance(stake).await?;
        let tx = self.contract().registerOracle(endpoint.to_owned(), stake).into_transaction_request();
        self.sender.send(tx, "registering the oracle").await
    }

    async fn begin_epoch(&self) -> Result<TransactionReceipt, ChainError> {
        self.sender.send(self.contract().beginEpoch().into_transaction_request(), "seeding the epoch").await
    }

    async fn submit_report(&self, report: &ReportSubmission) -> Result<TransactionReceipt, ChainError> {
        let r = &report.report;
        let tx = self
            .contract()
            .submitReport(
                r.epoch,
                r.root,
                r.available,
                r.violations.clone(),
                r.seedCommit,
                report.seed_reveal,
                report.signatures.clone(),
            )
            .into_transaction_request();
        self.sender.send(tx, "submitting a report").await
    }

    async fn events(
        &self,
        from_block: u64,
        to_block: u64,
    ) -> Result<Vec<WirepactMarket::WirepactMarketEvents>, ChainError> {
        let filter = Filter::new().address(self.address).from_block(from_block).to_block(to_block);
        let logs = self.rpc().get_logs(&filter).await.map_err(|e| ChainError::from_rpc("reading events", e))?;
        let mut out = Vec::with_capacity(logs.len());
        for log in logs {
            if let Ok(ev) = WirepactMarket::WirepactMarketEvents::decode_log(&log.inner) {
                out.push(ev.data);
            }
        }
        Ok(out)
    }
}
