// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {IWirepactMarket} from "./interfaces/IWirepactMarket.sol";
import {Pricing} from "./libraries/Pricing.sol";
import {AuditSet} from "./libraries/AuditSet.sol";
import {MarketBase} from "./MarketBase.sol";
import {AuditModule} from "./AuditModule.sol";

/// @title WirepactMarket
/// @notice Bandwidth sold under a service-level agreement, paid from escrow against
/// client-signed receipts, audited by staked oracles, enforced by slashing.
///
/// ## Accounts
/// Every party has an internal balance (`balanceOf`). `deposit` pulls tokens in, `withdraw`
/// sends them out; sessions, earnings, refunds, rewards and unbonded stake move between
/// internal balances, so a session's lifecycle costs no token transfer (gas is O(1) and small).
/// Invariant: `token.balanceOf(market) == sum(balances) + sum(provider stake + unbonding)
///   + sum(oracle stake) + sum(open sessions' deposit - paid) + rewardPool + sum(bonus pots left)`.
/// There is no admin: parameters are immutable and nothing can move user funds except the rules.
///
/// ## Providers
///     None --register--> Active --slash--> Jailed --unjail (after jail, stake >= min)--> Active
///     Active/Jailed --leave (no committed sessions)--> Left
/// Minimum stake = `minStakePerMbps * capacityMbps`. Unstaked tokens wait `unbondingDelay`
/// and stay slashable meanwhile.
///
/// ## Sessions
///     (none) --openSession--> Open --close by client--> Closing --settle after claimGrace--> (deleted)
///                              |  \--close by provider-----------------------------------> (deleted)
///                              \--claim (provider, any number of times; also while Closing)
/// `openSession` reserves `sessionMbps` of the provider's capacity and refuses to oversell;
/// it fixes the price (`Pricing.quote` at the utilisation after the session) and checks the
/// client's `maxPricePerGiB`. The session id is `keccak256(abi.encode(terms))`: the terms are
/// emitted in `SessionOpened` and passed back by callers, so a session costs one storage slot.
/// A provider closing a session gives up further claims, so its close settles at once.
///
/// ## Payout rule
///     gross    = min(floor(cumulativeBytes * pricePerGiB / 2^30), deposit)
///     v        = violations recorded for the provider since the session opened
///                (frozen when the session is closed)
///     entitled = floor(gross * (10_000 - min(10_000, v * sessionPenaltyBps)) / 10_000)
///     claim pays entitled - paid (if positive); fee = floor(delta * protocolFeeBps / 10_000)
///     goes to the reward pool, the rest to the provider. At settlement the client gets
///     deposit - paid back. Paid amounts are never clawed back: a violation recorded after a
///     claim only reduces what is still unpaid.
///
/// ## Epochs, audits, reports
/// `epoch = (block.timestamp - genesis) / epochLength`. Anyone (oracles do) calls
/// `beginEpoch` during an epoch; the first call fixes
///     seed_e = keccak256(abi.encode(block.prevrandao, blockhash(block.number - 1), e, address(this)))
/// and `AuditSet.isAudited(seed_e, id, auditProbabilityBps)` selects the providers.
/// Bias: the proposer of the block with the first `beginEpoch` call knows `prevrandao` and the
/// previous block hash, and a caller can choose in which block of the epoch to make the first
/// call; a colluding proposer/caller can thus choose among the seeds of the blocks it controls
/// (a few bits of bias, and only by withholding or timing, at the cost of its own block reward
/// or of racing every oracle). Slashing needs `k` violations over `w` audits, so skipping one
/// audit does not save a cheater; a VRF or commit-reveal beacon would remove the bias.
///
/// `submitReport(epoch, ...)` carries, for each signing oracle, its EIP-712 signed
/// `Observations(uint64 epoch,bytes providers,bytes measurements)`: `providers` is the list of
/// audited provider ids (uint32 big-endian, strictly ascending) shared by all signers, and
/// `measurements` holds 8 bytes per provider: throughput kbit/s (uint32 BE), latency ms
/// (uint24 BE), flags (bit 0 = reachable). With `n >= 4` active oracles and `f = (n-1)/3`,
/// at least `2f+1` distinct active signers (addresses strictly ascending) are required; the
/// market takes the lower median of each metric, the majority of `reachable`, and records one
/// verdict per provider, once per epoch. Reports are accepted during the epoch and the next.
///
/// Violation: unreachable, or median throughput < sessionMbps * 1000 * (1 - tol), or median
/// latency > maxLatencyMs + latencyToleranceMs. `k` violations among the last `w` audits slash
/// `slashBps` of (stake + unbonding), pay `slashOracleShareBps` of it to the signers, put the
/// rest in the reward pool, jail the provider for `jailEpochs` and reset its history.
///
/// ## Reward pool and bonus
/// Fees and slashes feed `rewardPool`. Each signer of an accepted report earns
/// `oracleRewardPerReport` (less if the pool is short). Reward period `p` spans
/// `rewardPeriodEpochs` epochs. A report writes nothing for a healthy provider with a clean
/// history (gas per audited provider stays small); unavailable verdicts are counted per
/// provider. After `p` ends, a provider claims its bonus by listing the epochs of `p` in which
/// it was audited (the contract re-derives each from the epoch seed and checks the epoch was
/// reported): with `audits` listed, `available = audits - unavailable_p`, it qualifies if
/// `audits >= bonusMinAudits`, `available / audits >= bonusAvailabilityBps` and it was not
/// slashed in `p`. The first claim sets the period's pot to `bonusPoolShareBps` of the pool;
/// each share is `floor(pot * available / totalAvailable_p)`, where `totalAvailable_p`
/// counts every available verdict of every provider in `p` (so shares never exceed the pot).
/// Claims are open during period `p+1`; from `p+2` on, `sweepBonus` returns the rest.
contract WirepactMarket is IWirepactMarket, MarketBase {
    using SafeERC20 for IERC20;

    /// The module oracles, reports and the bonus run in (see `AuditModule`).
    address private immutable _auditModule;

    /// @param p the market's parameters; `module` (an `AuditModule`) must have been deployed with the same.
    constructor(Params memory p, address module) MarketBase(p, AuditModule(module).genesis()) {
        if (AuditModule(module).paramsHash() != _paramsHash()) revert Market_ModuleMismatch();
        _auditModule = module;
    }

    /// @notice The module oracles, reports and the bonus run in.
    function auditModule() external view returns (address) {
        return _auditModule;
    }

    // ================================================================ accounts

    /// @notice Pulls `amount` tokens from the caller into its internal balance.
    function deposit(uint256 amount) external nonReentrant {
        if (amount == 0) revert Market_ZeroAmount();
        _pull(msg.sender, amount);
        _balances[msg.sender] += amount;
        emit Deposited(msg.sender, amount);
    }

    /// @notice Sends `amount` of the caller's internal balance to the caller.
    function withdraw(uint256 amount) external nonReentrant {
        if (amount == 0) revert Market_ZeroAmount();
        uint256 bal = _balances[msg.sender];
        if (bal < amount) revert Market_InsufficientBalance(bal, amount);
        _balances[msg.sender] = bal - amount;
        _token.safeTransfer(msg.sender, amount);
        emit Withdrawn(msg.sender, amount);
    }

    // =============================================================== providers

    /// @notice Registers the caller as a provider, pulling `stake` tokens from it.
    function registerProvider(
        ProviderTerms calldata terms,
        bytes32 tunnelKey,
        string calldata endpoint,
        string calldata region,
        uint256 stake
    ) external nonReentrant returns (uint32 providerId) {
        if (_providerIdOf[msg.sender] != 0) revert Market_AlreadyRegistered();
        if (
            terms.capacityMbps == 0 || terms.sessionMbps == 0 || terms.sessionMbps > terms.capacityMbps
                || terms.maxLatencyMs == 0 || terms.maxLatencyMs > type(uint16).max || terms.basePricePerGiB == 0
                || terms.basePricePerGiB > type(uint88).max
                || tunnelKey == bytes32(0)
                || bytes(endpoint).length == 0 || bytes(endpoint).length > 256 || bytes(region).length > 64
        ) revert Market_InvalidTerms();
        uint256 minimum = minProviderStake(terms.capacityMbps);
        if (stake < minimum) revert Market_StakeBelowMinimum(stake, minimum);
        if (stake > type(uint96).max) revert Market_AmountTooLarge();

        _pull(msg.sender, stake);

        providerId = ++_providerCount;
        _providerIdOf[msg.sender] = providerId;
        Provider storage p = _providers[providerId];
        p.core = ProviderCore({
            capacityMbps: terms.capacityMbps,
            committedMbps: 0,
            sessionMbps: terms.sessionMbps,
            sessionNonce: 0,
            violationCount: 0,
            status: ProviderStatus.Active,
            flags: 0,
            maxLatencyMs: uint16(terms.maxLatencyMs),
            basePricePerGiB: uint88(terms.basePricePerGiB)
        });
        p.own.owner = msg.sender;
        p.own.registeredEpoch = uint32(_epochNow());
        p.stk.stake = uint96(stake);
        p.tunnelKey = tunnelKey;
        p.endpoint = endpoint;
        p.region = region;
        emit ProviderRegistered(providerId, msg.sender, terms, stake);
    }

    /// @notice Changes price, tunnel key and endpoint. Open sessions keep their price.
    function updateProvider(uint32 providerId, uint96 basePricePerGiB, bytes32 tunnelKey, string calldata endpoint)
        external
    {
        Provider storage p = _ownedProvider(providerId);
        if (p.core.status == ProviderStatus.Left) revert Market_ProviderNotActive(providerId);
        if (
            basePricePerGiB == 0 || basePricePerGiB > type(uint88).max || tunnelKey == bytes32(0)
                || bytes(endpoint).length == 0 || bytes(endpoint).length > 256
        ) revert Market_InvalidTerms();
        p.core.basePricePerGiB = uint88(basePricePerGiB);
        p.tunnelKey = tunnelKey;
        p.endpoint = endpoint;
        emit ProviderUpdated(providerId, basePricePerGiB, endpoint, tunnelKey);
    }

    /// @notice Adds `amount` tokens (pulled from the caller) to the provider's stake.
    function addStake(uint32 providerId, uint256 amount) external nonReentrant {
        Provider storage p = _ownedProvider(providerId);
        if (p.core.status == ProviderStatus.Left) revert Market_ProviderNotActive(providerId);
        if (amount == 0) revert Market_ZeroAmount();
        uint256 newStake = uint256(p.stk.stake) + amount;
        if (newStake > type(uint96).max) revert Market_AmountTooLarge();
        _pull(msg.sender, amount);
        p.stk.stake = uint96(newStake);
        emit ProviderStaked(providerId, amount);
    }

    /// @notice Moves `amount` of stake to unbonding; the remaining stake must cover the minimum.
    /// A new request restarts the unbonding delay for everything unbonding.
    function requestUnstake(uint32 providerId, uint256 amount) external {
        Provider storage p = _ownedProvider(providerId);
        if (p.core.status == ProviderStatus.Left) revert Market_ProviderNotActive(providerId);
        if (amount == 0) revert Market_ZeroAmount();
        uint256 stake = p.stk.stake;
        if (amount > stake) revert Market_InsufficientBalance(stake, amount);
        uint256 minimum = minProviderStake(p.core.capacityMbps);
        if (stake - amount < minimum) revert Market_StakeBelowMinimum(stake - amount, minimum);
        _startUnbonding(p, amount);
        emit ProviderUnstakeRequested(providerId, amount, p.stk.unbondingReadyAt);
    }

    /// @notice Credits unbonded stake to the owner's balance once the delay has passed.
    function withdrawUnbonded(uint32 providerId) external {
        Provider storage p = _ownedProvider(providerId);
        uint256 amount = p.stk.unbonding;
        if (amount == 0) revert Market_NothingUnbonding();
        if (block.timestamp < p.stk.unbondingReadyAt) revert Market_UnbondingNotReady(p.stk.unbondingReadyAt);
        p.stk.unbonding = 0;
        _balances[msg.sender] += amount;
        emit ProviderUnbonded(providerId, amount);
    }

    /// @notice Leaves the market: no committed sessions allowed; all stake starts unbonding.
    function leave(uint32 providerId) external {
        Provider storage p = _ownedProvider(providerId);
        ProviderCore memory c = p.core;
        if (c.status == ProviderStatus.Left) revert Market_ProviderNotActive(providerId);
        if (c.committedMbps != 0) revert Market_ProviderHasSessions(providerId, c.committedMbps);
        p.core.status = ProviderStatus.Left;
        // Reports still judge (and slash) it for this epoch and every earlier one; the
        // unbonding delay outlasts their report window (checked at construction).
        p.own.leftEpoch = uint32(_epochNow());
        _startUnbonding(p, p.stk.stake);
        emit ProviderLeft(providerId);
    }

    /// @notice Ends a jail once its epochs have passed and the stake covers the minimum again.
    function unjail(uint32 providerId) external {
        Provider storage p = _ownedProvider(providerId);
        ProviderCore memory c = p.core;
        if (c.status != ProviderStatus.Jailed) revert Market_ProviderNotActive(providerId);
        uint32 until = p.own.jailedUntilEpoch;
        if (currentEpoch() < until) revert Market_StillJailed(until);
        uint256 minimum = minProviderStake(c.capacityMbps);
        if (p.stk.stake < minimum) revert Market_StakeBelowMinimum(p.stk.stake, minimum);
        p.core.status = ProviderStatus.Active;
        emit ProviderUnjailed(providerId);
    }

    /// @notice Stops (or resumes) taking new client sessions. Open sessions carry on; oracles
    /// can still open probe sessions, so a paused provider is audited as usual.
    function setPaused(uint32 providerId, bool paused) external {
        Provider storage p = _ownedProvider(providerId);
        if (p.core.status == ProviderStatus.Left) revert Market_ProviderNotActive(providerId);
        uint8 flags = p.core.flags;
        p.core.flags = paused ? flags | FLAG_PAUSED : flags & ~FLAG_PAUSED;
        emit ProviderPaused(providerId, paused);
    }

    // ================================================================ sessions

    /// @notice Opens a session with `providerId`, locking `depositAmount` of the caller's balance.
    /// @param maxPricePerGiB Slippage guard: reverts if the quote is above it.
    /// @param sessionKey Ephemeral key of the client that signs this session's receipts.
    function openSession(uint32 providerId, uint256 depositAmount, uint256 maxPricePerGiB, address sessionKey)
        external
        returns (bytes32 sessionId)
    {
        Provider storage p = _providers[providerId];
        ProviderCore memory c = p.core;
        if (c.status != ProviderStatus.Active) {
            if (c.status == ProviderStatus.None) revert Market_UnknownProvider(providerId);
            revert Market_ProviderNotActive(providerId);
        }
        if (sessionKey == address(0)) revert Market_InvalidSessionKey();
        // A paused provider takes no client sessions; an oracle's probe still opens.
        if (c.flags & FLAG_PAUSED != 0 && _oracles[msg.sender].status != OracleStatus.Active) {
            revert Market_ProviderPaused(providerId);
        }
        if (depositAmount > type(uint96).max) revert Market_AmountTooLarge();
        if (c.sessionNonce == type(uint24).max) revert Market_NonceExhausted(providerId);
        uint32 committedAfter = c.committedMbps + c.sessionMbps;
        if (committedAfter > c.capacityMbps) {
            revert Market_WouldOversell(c.committedMbps, c.sessionMbps, c.capacityMbps);
        }
        uint256 price = Pricing.quote(c.basePricePerGiB, committedAfter, c.capacityMbps, _alphaBps);
        if (price > maxPricePerGiB) revert Market_PriceAboveMax(price, maxPricePerGiB);
        // A price above 2^96 can only come from a huge alpha; refuse rather than truncate.
        if (price > type(uint96).max) revert Market_AmountTooLarge();
        uint256 floor = _depositFloor(price, c.sessionMbps);
        if (depositAmount < floor) revert Market_DepositTooSmall(depositAmount, floor);

        uint256 bal = _balances[msg.sender];
        if (bal < depositAmount) revert Market_InsufficientBalance(bal, depositAmount);
        _balances[msg.sender] = bal - depositAmount;

        SessionTerms memory t = SessionTerms({
            client: msg.sender,
            sessionKey: sessionKey,
            providerId: providerId,
            nonce: c.sessionNonce,
            sessionMbps: c.sessionMbps,
            violationsAtOpen: c.violationCount,
            openedAt: uint40(block.timestamp),
            deposit: uint96(depositAmount),
            pricePerGiB: uint96(price)
        });
        p.core.committedMbps = committedAfter;
        p.core.sessionNonce = c.sessionNonce + 1;

        sessionId = keccak256(abi.encode(t));
        _sessions[sessionId].status = SessionStatus.Open;
        emit SessionOpened(sessionId, providerId, msg.sender, t);
    }

    /// @notice Pays the provider for the bytes of a newer receipt signed by the session key.
    function claim(SessionTerms calldata t, uint64 cumulativeBytes, uint64 timestamp, bytes calldata signature)
        external
    {
        bytes32 sessionId = keccak256(abi.encode(t));
        SessionState memory s = _sessions[sessionId];
        if (s.status == SessionStatus.None) revert Market_UnknownSession(sessionId);
        Provider storage p = _providers[t.providerId];
        address owner = p.own.owner;
        if (msg.sender != owner) revert Market_NotProviderOwner(t.providerId);

        if (cumulativeBytes <= s.claimedBytes) revert Market_ReceiptNotNewer(cumulativeBytes, s.claimedBytes);
        if (timestamp <= s.lastReceiptAt) revert Market_ReceiptStale(timestamp, s.lastReceiptAt);
        if (timestamp < t.openedAt) revert Market_ReceiptBeforeOpen(timestamp, t.openedAt);
        if (timestamp > block.timestamp + MAX_RECEIPT_DRIFT) revert Market_ReceiptFromFuture(timestamp);
        (address signer, ECDSA.RecoverError err,) =
            ECDSA.tryRecover(_hashTypedDataV4(_receiptStructHash(sessionId, cumulativeBytes, timestamp)), signature);
        if (err != ECDSA.RecoverError.NoError || signer != t.sessionKey) revert Market_BadReceiptSignature();

        uint256 violations = s.status == SessionStatus.Open ? p.core.violationCount - t.violationsAtOpen : s.violations;
        uint256 entitled = payoutFor(t, cumulativeBytes, violations);
        uint256 delta;
        uint256 fee;
        if (entitled > s.paid) {
            delta = entitled - s.paid;
            fee = (delta * _protocolFeeBps) / BPS;
            s.paid = uint96(entitled); // entitled <= deposit < 2^96
            _balances[owner] += delta - fee;
            if (fee != 0) _rewardPool += fee;
        }
        s.claimedBytes = cumulativeBytes;
        s.lastReceiptAt = uint32(timestamp); // timestamp <= block.timestamp + drift < 2^32 until 2106
        _sessions[sessionId] = s;
        emit SessionClaimed(sessionId, cumulativeBytes, delta - fee, fee);
    }

    /// @notice Closes a session. The client's close starts the claim grace; the provider's
    /// close (which gives up further claims) settles at once.
    function close(SessionTerms calldata t) external {
        bytes32 sessionId = keccak256(abi.encode(t));
        SessionState memory s = _sessions[sessionId];
        if (s.status == SessionStatus.None) revert Market_UnknownSession(sessionId);
        Provider storage p = _providers[t.providerId];
        bool byProvider = msg.sender != t.client;
        if (byProvider && msg.sender != p.own.owner) revert Market_NotSessionParty(sessionId);

        if (s.status == SessionStatus.Open) {
            ProviderCore memory c = p.core;
            p.core.committedMbps = c.committedMbps - t.sessionMbps;
            uint256 v = c.violationCount - t.violationsAtOpen;
            s.violations = v > type(uint16).max ? type(uint16).max : uint16(v);
            if (!byProvider) emit SessionClosed(sessionId, msg.sender, s.violations);
        } else if (!byProvider) {
            revert Market_SessionNotOpen(sessionId);
        }

        if (byProvider) {
            _settle(sessionId, t, s.paid);
        } else {
            s.status = SessionStatus.Closing;
            s.closedAt = uint32(block.timestamp);
            _sessions[sessionId] = s;
        }
    }

    /// @notice Refunds a client-closed session once the claim grace is over. Anyone may call.
    function settle(SessionTerms calldata t) external {
        bytes32 sessionId = keccak256(abi.encode(t));
        SessionState memory s = _sessions[sessionId];
        if (s.status == SessionStatus.None) revert Market_UnknownSession(sessionId);
        if (s.status != SessionStatus.Closing) revert Market_SessionNotOpen(sessionId);
        uint256 settleableAt = uint256(s.closedAt) + _claimGrace;
        if (block.timestamp < settleableAt) revert Market_GraceNotOver(settleableAt);
        _settle(sessionId, t, s.paid);
    }


    // ============================================ oracles, reports, bonus (AuditModule)
    // These forward their calldata unchanged to the module; the parameters are named only so the
    // ABI carries their names.

    function registerOracle(string calldata endpoint, uint256 stake) external {
        _delegate();
    }

    function requestOracleLeave() external {
        _delegate();
    }

    function withdrawOracleStake() external {
        _delegate();
    }

    function proveEquivocation(
        uint64 epoch,
        bytes calldata providersA,
        bytes calldata rowA,
        bytes calldata sigA,
        bytes calldata providersB,
        bytes calldata rowB,
        bytes calldata sigB
    ) external {
        _delegate();
    }

    function beginEpoch() external returns (bytes32 seed) {
        _delegate();
    }

    function submitReport(
        uint64 epoch,
        bytes calldata providerIds,
        bytes calldata measurements,
        bytes[] calldata signatures
    ) external {
        _delegate();
    }

    function claimBonus(uint32 providerId, uint32 period, uint64[] calldata epochs) external {
        _delegate();
    }

    function sweepBonus(uint32 period) external {
        _delegate();
    }

    /// Runs the call in `AuditModule` on this contract's storage and returns (or reverts with)
    /// exactly what it did. The module address is immutable: there is no upgrade path.
    function _delegate() private {
        address module = _auditModule;
        assembly ("memory-safe") {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), module, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    // ================================================================== views

    function params() external view returns (Params memory) {
        return Params({
            token: address(_token),
            epochLength: _epochLength,
            auditProbabilityBps: _auditProbabilityBps,
            minStakePerMbps: _minStakePerMbps,
            minOracleStake: _minOracleStake,
            unbondingDelay: _unbondingDelay,
            claimGrace: _claimGrace,
            alphaBps: _alphaBps,
            protocolFeeBps: _protocolFeeBps,
            oracleRewardPerReport: _oracleRewardPerReport,
            throughputToleranceBps: _throughputToleranceBps,
            latencyToleranceMs: _latencyToleranceMs,
            violationsToSlash: _violationsToSlash,
            violationWindow: _violationWindow,
            slashBps: _slashBps,
            slashOracleShareBps: _slashOracleShareBps,
            jailEpochs: _jailEpochs,
            sessionPenaltyBps: _sessionPenaltyBps,
            rewardPeriodEpochs: _rewardPeriodEpochs,
            bonusMinAudits: _bonusMinAudits,
            bonusAvailabilityBps: _bonusAvailabilityBps,
            bonusPoolShareBps: _bonusPoolShareBps,
            minDepositSeconds: _minDepositSeconds
        });
    }

    function token() external view returns (address) {
        return address(_token);
    }

    function genesis() external view returns (uint256) {
        return _genesis;
    }

    function currentEpoch() public view override returns (uint64) {
        return _epochNow();
    }

    function currentPeriod() public view returns (uint32) {
        return uint32(currentEpoch() / _rewardPeriodEpochs);
    }

    function epochStart(uint64 epoch) external view returns (uint256) {
        return _genesis + uint256(epoch) * _epochLength;
    }

    function balanceOf(address account) external view returns (uint256) {
        return _balances[account];
    }

    function rewardPool() external view returns (uint256) {
        return _rewardPool;
    }

    function bonusPot(uint32 period) external view returns (BonusPot memory) {
        return _bonusPots[period];
    }

    function periodAvailable(uint32 period) external view returns (uint256) {
        return _periodAvailable[period];
    }

    function minProviderStake(uint32 capacityMbps) public view returns (uint256) {
        return _minProviderStake(capacityMbps);
    }

    function providerCount() external view returns (uint32) {
        return _providerCount;
    }

    function providerIdOf(address owner) external view returns (uint32) {
        return _providerIdOf[owner];
    }

    function provider(uint32 providerId) external view returns (ProviderView memory v) {
        Provider storage p = _providers[providerId];
        ProviderCore memory c = p.core;
        v.owner = p.own.owner;
        v.status = c.status;
        v.capacityMbps = c.capacityMbps;
        v.committedMbps = c.committedMbps;
        v.sessionMbps = c.sessionMbps;
        v.maxLatencyMs = c.maxLatencyMs;
        v.basePricePerGiB = c.basePricePerGiB;
        v.sessionNonce = c.sessionNonce;
        v.jailedUntilEpoch = p.own.jailedUntilEpoch;
        v.violationCount = c.violationCount;
        v.stake = p.stk.stake;
        v.unbonding = p.stk.unbonding;
        v.unbondingReadyAt = p.stk.unbondingReadyAt;
        v.auditHistory = p.audit.history;
        v.tunnelKey = p.tunnelKey;
        v.endpoint = p.endpoint;
        v.region = p.region;
        v.paused = c.flags & FLAG_PAUSED != 0;
        v.registeredEpoch = p.own.registeredEpoch;
        v.leftEpoch = p.own.leftEpoch;
    }

    function bonusRecord(uint32 providerId, uint32 period) external view returns (BonusRecord memory) {
        PeriodRecord memory r = _periodRecords[providerId][period];
        return BonusRecord({
            unavailable: r.unavailable,
            notMeasured: r.notMeasured,
            slashed: r.slashed,
            claimedPeriodPlusOne: _providers[providerId].audit.claimedPeriodPlusOne
        });
    }

    /// @notice Price per GiB a session opened now would get (0 if it could not open).
    function quote(uint32 providerId) external view returns (uint256) {
        return _quote(providerId);
    }

    function _quote(uint32 providerId) private view returns (uint256) {
        Provider storage p = _providers[providerId];
        ProviderCore memory c = p.core;
        uint256 committedAfter = uint256(c.committedMbps) + c.sessionMbps;
        // (A paused provider still quotes: oracles can open probes with it; clients see `paused`.)
        if (c.status != ProviderStatus.Active || committedAfter > c.capacityMbps) return 0;
        return Pricing.quote(c.basePricePerGiB, committedAfter, c.capacityMbps, _alphaBps);
    }

    /// @notice The smallest deposit a session opened now would take (0 if it could not open).
    function minDeposit(uint32 providerId) external view returns (uint256) {
        uint256 price = _quote(providerId);
        return price == 0 ? 0 : _depositFloor(price, _providers[providerId].core.sessionMbps);
    }

    function session(bytes32 sessionId) external view returns (SessionState memory) {
        return _sessions[sessionId];
    }

    function sessionIdOf(SessionTerms calldata t) external pure returns (bytes32) {
        return keccak256(abi.encode(t));
    }

    /// @notice What the provider is entitled to in total for `cumulativeBytes` with `violations`.
    function payoutFor(SessionTerms calldata t, uint64 cumulativeBytes, uint256 violations)
        public
        view
        returns (uint256)
    {
        uint256 gross = (uint256(cumulativeBytes) * t.pricePerGiB) >> 30;
        if (gross > t.deposit) gross = t.deposit;
        uint256 penalty = violations * _sessionPenaltyBps;
        if (penalty >= BPS) return 0;
        return (gross * (BPS - penalty)) / BPS;
    }

    function oracle(address account) external view returns (OracleView memory) {
        Oracle storage o = _oracles[account];
        return OracleView({
            status: o.status,
            stake: o.stake,
            unbondingReadyAt: o.unbondingReadyAt,
            endpoint: o.endpoint,
            fromEpoch: o.fromEpoch,
            untilEpoch: o.untilEpoch
        });
    }

    function oracleCount() external view returns (uint256) {
        return _oracleList.length;
    }

    function oracleAt(uint256 index) external view returns (address) {
        return _oracleList[index];
    }

    function activeOracles() external view returns (uint256) {
        return _activeOracles;
    }

    /// @notice Total stake of the oracles that sign for `epoch` (a report needs signers holding
    /// more than two thirds of it).
    function oracleStakeAt(uint64 epoch) external view returns (uint256) {
        return _eligibleStake(epoch);
    }

    /// @notice The stake `signers` hold for `epoch` (ineligible ones count 0) and the epoch's
    /// eligible total: a report with these signers is accepted iff `3 * signing > 2 * eligible`.
    function signingStake(uint64 epoch, address[] calldata signers)
        external
        view
        returns (uint256 signing, uint256 eligible)
    {
        for (uint256 i; i < signers.length; ++i) {
            signing += _signerWeight(signers[i], epoch);
        }
        eligible = _eligibleStake(epoch);
    }

    function epochSeed(uint64 epoch) external view returns (bytes32) {
        return _seeds[epoch];
    }

    function isReported(uint64 epoch) external view returns (bool) {
        return _reportedBitmap[epoch >> 8] & (1 << (epoch & 0xff)) != 0;
    }

    function isAudited(uint64 epoch, uint32 providerId) external view returns (bool) {
        return AuditSet.isAudited(_seeds[epoch], providerId, _auditProbabilityBps);
    }

    function receiptDigest(bytes32 sessionId, uint64 cumulativeBytes, uint64 timestamp) external view returns (bytes32) {
        return _hashTypedDataV4(_receiptStructHash(sessionId, cumulativeBytes, timestamp));
    }

    function observationsDigest(uint64 epoch, bytes calldata providerIds, bytes calldata measurements)
        external
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(_observationsStructHash(epoch, providerIds, measurements));
    }

    // =============================================================== internal

    function _settle(bytes32 sessionId, SessionTerms calldata t, uint256 paid) private {
        uint256 refund = uint256(t.deposit) - paid;
        delete _sessions[sessionId];
        if (refund != 0) _balances[t.client] += refund;
        emit SessionSettled(sessionId, paid, refund);
    }

    function _receiptStructHash(bytes32 sessionId, uint64 cumulativeBytes, uint64 timestamp)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(RECEIPT_TYPEHASH, sessionId, cumulativeBytes, timestamp));
    }

    /// The deposit that pays `minDepositSeconds` at `sessionMbps` and `price` per GiB, rounded
    /// up, and at least 1 (Mbit/s -> bytes/s: x 125,000).
    function _depositFloor(uint256 price, uint32 sessionMbps) private view returns (uint256) {
        uint256 floor = (price * sessionMbps * 125_000 * _minDepositSeconds + (1 << 30) - 1) >> 30;
        return floor == 0 ? 1 : floor;
    }
}
