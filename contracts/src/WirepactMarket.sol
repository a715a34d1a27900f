// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IWirepactMarket} from "./interfaces/IWirepactMarket.sol";
import {Pricing} from "./libraries/Pricing.sol";
import {AuditSet} from "./libraries/AuditSet.sol";
import {Median} from "./libraries/Median.sol";

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
contract WirepactMarket is IWirepactMarket, EIP712, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    // ------------------------------------------------------------- constants

    uint256 private constant BPS = 10_000;
    /// @notice Receipts dated further in the future than this are refused.
    uint256 public constant MAX_RECEIPT_DRIFT = 5 minutes;
    uint256 public constant MIN_ORACLES = 4;
    uint256 public constant MAX_ORACLES = 128;

    bytes32 public constant RECEIPT_TYPEHASH =
        keccak256("Receipt(bytes32 sessionId,uint64 cumulativeBytes,uint64 timestamp)");
    bytes32 public constant OBSERVATIONS_TYPEHASH =
        keccak256("Observations(uint64 epoch,bytes providers,bytes measurements)");

    // ------------------------------------------------------------ immutables

    IERC20 private immutable _token;
    uint256 private immutable _genesis;
    uint64 private immutable _epochLength;
    uint16 private immutable _auditProbabilityBps;
    uint128 private immutable _minStakePerMbps;
    uint128 private immutable _minOracleStake;
    uint64 private immutable _unbondingDelay;
    uint64 private immutable _claimGrace;
    uint32 private immutable _alphaBps;
    uint16 private immutable _protocolFeeBps;
    uint128 private immutable _oracleRewardPerReport;
    uint16 private immutable _throughputToleranceBps;
    uint32 private immutable _latencyToleranceMs;
    uint8 private immutable _violationsToSlash;
    uint8 private immutable _violationWindow;
    uint16 private immutable _slashBps;
    uint16 private immutable _slashOracleShareBps;
    uint32 private immutable _jailEpochs;
    uint16 private immutable _sessionPenaltyBps;
    uint32 private immutable _rewardPeriodEpochs;
    uint16 private immutable _bonusMinAudits;
    uint16 private immutable _bonusAvailabilityBps;
    uint16 private immutable _bonusPoolShareBps;

    // ---------------------------------------------------------------- storage

    /// Hot slot: everything openSession needs and everything a report needs to judge a
    /// provider, so each touches one provider slot. Prices are stored in 88 bits, latency in 16
    /// (registration refuses larger values); the violation count saturates at 2^16 - 1.
    struct ProviderCore {
        uint32 capacityMbps;
        uint32 committedMbps;
        uint32 sessionMbps;
        uint24 sessionNonce;
        uint16 violationCount;
        ProviderStatus status;
        /// bit 0: the audit history holds a recent violation (the audit slot must be read).
        uint8 flags;
        uint16 maxLatencyMs;
        uint88 basePricePerGiB;
    }

    struct ProviderOwner {
        address owner;
        uint32 jailedUntilEpoch;
    }

    struct ProviderStake {
        uint96 stake;
        uint96 unbonding;
        uint64 unbondingReadyAt;
    }

    /// Audit history (bit 0 = latest audit, 1 = violation) and the bonus bookkeeping. Only
    /// touched by a report when something is wrong (a violation, an unavailable verdict, or a
    /// violation still inside the window), so auditing a healthy provider writes nothing.
    struct ProviderAudit {
        uint64 history;
        uint32 unavailablePeriod;
        uint16 unavailable;
        uint32 slashedPeriodPlusOne;
        uint32 claimedPeriodPlusOne;
    }

    struct Provider {
        ProviderCore core;
        ProviderOwner own;
        ProviderStake stk;
        ProviderAudit audit;
        bytes32 tunnelKey;
        string endpoint;
        string region;
    }

    struct Oracle {
        OracleStatus status;
        uint96 stake;
        uint64 unbondingReadyAt;
        string endpoint;
    }

    mapping(address account => uint256) private _balances;
    uint256 private _rewardPool;

    uint32 private _providerCount;
    mapping(uint32 id => Provider) private _providers;
    mapping(address owner => uint32 id) private _providerIdOf;

    mapping(bytes32 sessionId => SessionState) private _sessions;

    mapping(address oracle => Oracle) private _oracles;
    address[] private _oracleList;
    uint256 private _activeOracles;

    mapping(uint64 epoch => bytes32) private _seeds;
    mapping(uint256 word => uint256) private _reportedBitmap;
    mapping(uint32 period => uint256) private _periodAvailable;
    uint8 private constant FLAG_HISTORY = 1;
    mapping(uint32 period => BonusPot) private _bonusPots;

    // ------------------------------------------------------------ constructor

    constructor(Params memory p) EIP712("wirepact", "1") {
        if (
            p.token == address(0) || p.epochLength == 0 || p.auditProbabilityBps == 0 || p.auditProbabilityBps > BPS
                || p.minOracleStake == 0 || p.protocolFeeBps > BPS || p.throughputToleranceBps > BPS
                || p.violationsToSlash == 0 || p.violationWindow == 0 || p.violationWindow > 64
                || p.violationsToSlash > p.violationWindow || p.slashBps > BPS || p.slashOracleShareBps > BPS
                || p.sessionPenaltyBps > BPS || p.rewardPeriodEpochs == 0 || p.bonusAvailabilityBps > BPS
                || p.bonusPoolShareBps > BPS
        ) revert Market_InvalidParams();
        _token = IERC20(p.token);
        _genesis = block.timestamp;
        _epochLength = p.epochLength;
        _auditProbabilityBps = p.auditProbabilityBps;
        _minStakePerMbps = p.minStakePerMbps;
        _minOracleStake = p.minOracleStake;
        _unbondingDelay = p.unbondingDelay;
        _claimGrace = p.claimGrace;
        _alphaBps = p.alphaBps;
        _protocolFeeBps = p.protocolFeeBps;
        _oracleRewardPerReport = p.oracleRewardPerReport;
        _throughputToleranceBps = p.throughputToleranceBps;
        _latencyToleranceMs = p.latencyToleranceMs;
        _violationsToSlash = p.violationsToSlash;
        _violationWindow = p.violationWindow;
        _slashBps = p.slashBps;
        _slashOracleShareBps = p.slashOracleShareBps;
        _jailEpochs = p.jailEpochs;
        _sessionPenaltyBps = p.sessionPenaltyBps;
        _rewardPeriodEpochs = p.rewardPeriodEpochs;
        _bonusMinAudits = p.bonusMinAudits;
        _bonusAvailabilityBps = p.bonusAvailabilityBps;
        _bonusPoolShareBps = p.bonusPoolShareBps;
    }

    // ================================================================ accounts

    /// @notice Pulls `amount` tokens from the caller into its internal balance.
    function deposit(uint256 amount) external nonReentrant {
        if (amount == 0) revert Market_ZeroAmount();
        _token.safeTransferFrom(msg.sender, address(this), amount);
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

        _token.safeTransferFrom(msg.sender, address(this), stake);

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
        _token.safeTransferFrom(msg.sender, address(this), amount);
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
        if (depositAmount == 0) revert Market_DepositTooSmall();
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

    // ================================================================= oracles

    /// @notice Registers the caller as an oracle reachable at `endpoint`, pulling `stake`.
    function registerOracle(string calldata endpoint, uint256 stake) external nonReentrant {
        Oracle storage o = _oracles[msg.sender];
        if (o.status != OracleStatus.None || o.stake != 0) revert Market_OracleAlreadyRegistered();
        if (stake < _minOracleStake) revert Market_StakeBelowMinimum(stake, _minOracleStake);
        if (stake > type(uint96).max) revert Market_AmountTooLarge();
        if (bytes(endpoint).length == 0 || bytes(endpoint).length > 256) revert Market_InvalidTerms();
        if (_activeOracles >= MAX_ORACLES) revert Market_TooManyOracles();
        _token.safeTransferFrom(msg.sender, address(this), stake);
        o.status = OracleStatus.Active;
        o.stake = uint96(stake);
        o.endpoint = endpoint;
        if (o.unbondingReadyAt == 0) _oracleList.push(msg.sender);
        _activeOracles += 1;
        emit OracleRegistered(msg.sender, stake, endpoint);
    }

    /// @notice Stops signing; the stake can be withdrawn after the unbonding delay.
    function requestOracleLeave() external {
        Oracle storage o = _oracles[msg.sender];
        if (o.status != OracleStatus.Active) revert Market_NotOracle(msg.sender);
        o.status = OracleStatus.Leaving;
        o.unbondingReadyAt = uint64(block.timestamp + _unbondingDelay);
        _activeOracles -= 1;
        emit OracleLeaveRequested(msg.sender, o.unbondingReadyAt);
    }

    /// @notice Credits a leaving oracle's stake to its balance after the unbonding delay.
    function withdrawOracleStake() external {
        Oracle storage o = _oracles[msg.sender];
        if (o.status != OracleStatus.Leaving) revert Market_NotOracle(msg.sender);
        if (block.timestamp < o.unbondingReadyAt) revert Market_UnbondingNotReady(o.unbondingReadyAt);
        uint256 stake = o.stake;
        o.stake = 0;
        o.status = OracleStatus.None;
        _balances[msg.sender] += stake;
        emit OracleLeft(msg.sender, stake);
    }

    /// @notice Fixes the current epoch's audit seed (first call wins). Returns the seed.
    function beginEpoch() external returns (bytes32 seed) {
        uint64 epoch = currentEpoch();
        seed = _seeds[epoch];
        if (seed != bytes32(0)) return seed;
        seed = keccak256(abi.encode(block.prevrandao, blockhash(block.number - 1), epoch, address(this)));
        _seeds[epoch] = seed;
        emit EpochSeeded(epoch, seed);
    }

    /// @notice Records the epoch's verdicts from a quorum of oracle-signed observations.
    /// @param providerIds audited provider ids, uint32 big-endian each, strictly ascending.
    /// @param measurements the signers' rows concatenated: row `i` is 8 bytes per provider (see
    /// contract doc), `providers * 8` bytes long, and is what signer `i` signed.
    /// @param signatures per signer, over `Observations(epoch, providerIds, row i)`;
    /// signers must be distinct active oracles in strictly ascending address order.
    function submitReport(
        uint64 epoch,
        bytes calldata providerIds,
        bytes calldata measurements,
        bytes[] calldata signatures
    ) external {
        bytes32 seed = _markReported(epoch);
        uint256 m = signatures.length;
        {
            uint256 n = _activeOracles;
            if (n < MIN_ORACLES) revert Market_TooFewOracles(n);
            uint256 q = quorum();
            if (m < q) revert Market_QuorumNotReached(m, q);
        }
        if (providerIds.length % 4 != 0 || measurements.length != m * (providerIds.length * 2)) {
            revert Market_MalformedReport();
        }
        address[] memory signers = _verifySigners(epoch, providerIds, measurements, signatures);
        uint32 period = uint32(epoch / _rewardPeriodEpochs);
        (uint256 available, uint256[] memory verdicts) =
            _recordVerdicts(epoch, seed, period, providerIds, measurements, signers);
        if (available != 0) _periodAvailable[period] += available;
        _rewardOracles(signers);
        emit ReportAccepted(epoch, msg.sender, providerIds, verdicts);
    }

    // ================================================================== bonus

    /// @notice Pays the provider's reliability bonus for a finished reward period.
    /// @param epochs epochs of `period` (strictly ascending) in which the provider was audited
    /// and the epoch was reported, after any jail; the provider proves at least `bonusMinAudits`.
    /// Its available audits are taken as `epochs.length - unavailable verdicts recorded in the
    /// period` (listing fewer epochs only lowers its own share).
    function claimBonus(uint32 providerId, uint32 period, uint64[] calldata epochs) external {
        Provider storage p = _ownedProvider(providerId);
        uint32 nowPeriod = currentPeriod();
        if (period >= nowPeriod) revert Market_PeriodNotOver(period);
        if (uint256(period) + 1 < nowPeriod) revert Market_BonusWindowClosed(period);
        if (p.core.status != ProviderStatus.Active) revert Market_ProviderNotActive(providerId);
        ProviderAudit memory a = p.audit;
        if (a.claimedPeriodPlusOne > period) revert Market_BonusAlreadyClaimed(period);
        if (a.slashedPeriodPlusOne == period + 1) revert Market_NotEligibleForBonus(uint32(epochs.length), 0);

        uint256 audits = _countAudits(providerId, period, p.own.jailedUntilEpoch, epochs);
        uint256 unavailable = a.unavailablePeriod == period ? a.unavailable : 0;
        uint256 available = audits > unavailable ? audits - unavailable : 0;
        if (audits < _bonusMinAudits || audits == 0 || available * BPS < audits * _bonusAvailabilityBps) {
            revert Market_NotEligibleForBonus(uint32(audits), uint32(available));
        }
        BonusPot storage pot = _bonusPots[period];
        if (!pot.finalized) {
            uint256 amount = (_rewardPool * _bonusPoolShareBps) / BPS;
            _rewardPool -= amount;
            pot.pot = uint128(amount);
            pot.remaining = uint128(amount);
            pot.totalAvailable = uint128(_periodAvailable[period]);
            pot.finalized = true;
            emit BonusPotFinalized(period, amount, pot.totalAvailable);
        }
        // Every proven epoch carried an available verdict counted in totalAvailable, unless it
        // was one of the `unavailable` ones subtracted above: available <= totalAvailable.
        uint256 share = (uint256(pot.pot) * available) / pot.totalAvailable;
        pot.remaining -= uint128(share);
        p.audit.claimedPeriodPlusOne = period + 1;
        _balances[p.own.owner] += share;
        emit BonusClaimed(providerId, period, share);
    }

    /// Checks each epoch is in `period`, after `jailedUntil`, reported, and audited `id`.
    function _countAudits(uint32 id, uint32 period, uint32 jailedUntil, uint64[] calldata epochs)
        private
        view
        returns (uint256)
    {
        uint256 first = uint256(period) * _rewardPeriodEpochs;
        uint256 last = first + _rewardPeriodEpochs;
        uint64 prev;
        for (uint256 i; i < epochs.length; ++i) {
            uint64 e = epochs[i];
            if ((i != 0 && e <= prev) || e < first || e >= last || e < jailedUntil) revert Market_BadAuditProof(e);
            if (_reportedBitmap[e >> 8] & (1 << (e & 0xff)) == 0) revert Market_BadAuditProof(e);
            if (!AuditSet.isAudited(_seeds[e], id, _auditProbabilityBps)) revert Market_BadAuditProof(e);
            prev = e;
        }
        return epochs.length;
    }

    /// @notice Returns a period's unclaimed bonus to the reward pool once its claim window closed.
    function sweepBonus(uint32 period) external {
        if (uint256(period) + 2 > currentPeriod()) revert Market_SweepTooEarly(period);
        BonusPot storage pot = _bonusPots[period];
        uint256 amount = pot.remaining;
        pot.remaining = 0;
        pot.finalized = true;
        _rewardPool += amount;
        emit BonusSwept(period, amount);
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
            bonusPoolShareBps: _bonusPoolShareBps
        });
    }

    function token() external view returns (address) {
        return address(_token);
    }

    function genesis() external view returns (uint256) {
        return _genesis;
    }

    function currentEpoch() public view override returns (uint64) {
        return uint64((block.timestamp - _genesis) / _epochLength);
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
        return uint256(_minStakePerMbps) * capacityMbps;
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
    }

    function bonusRecord(uint32 providerId) external view returns (BonusRecord memory) {
        ProviderAudit memory a = _providers[providerId].audit;
        return BonusRecord({
            unavailablePeriod: a.unavailablePeriod,
            unavailable: a.unavailable,
            slashedPeriodPlusOne: a.slashedPeriodPlusOne,
            claimedPeriodPlusOne: a.claimedPeriodPlusOne
        });
    }

    /// @notice Price per GiB a session opened now would get (0 if it could not open).
    function quote(uint32 providerId) external view returns (uint256) {
        Provider storage p = _providers[providerId];
        ProviderCore memory c = p.core;
        uint256 committedAfter = uint256(c.committedMbps) + c.sessionMbps;
        if (c.status != ProviderStatus.Active || committedAfter > c.capacityMbps) return 0;
        return Pricing.quote(c.basePricePerGiB, committedAfter, c.capacityMbps, _alphaBps);
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
        return OracleView({status: o.status, stake: o.stake, unbondingReadyAt: o.unbondingReadyAt, endpoint: o.endpoint});
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

    /// @notice Signatures needed for a report: 2f+1 with f = (n-1)/3 active oracles.
    function quorum() public view returns (uint256) {
        uint256 n = _activeOracles;
        if (n == 0) return 1;
        return 2 * ((n - 1) / 3) + 1;
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

    function _ownedProvider(uint32 providerId) private view returns (Provider storage p) {
        p = _providers[providerId];
        if (p.core.status == ProviderStatus.None) revert Market_UnknownProvider(providerId);
        if (p.own.owner != msg.sender) revert Market_NotProviderOwner(providerId);
    }

    function _startUnbonding(Provider storage p, uint256 amount) private {
        p.stk.stake -= uint96(amount);
        p.stk.unbonding += uint96(amount);
        p.stk.unbondingReadyAt = uint64(block.timestamp + _unbondingDelay);
    }

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

    function _observationsStructHash(uint64 epoch, bytes calldata providerIds, bytes calldata measurements)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(OBSERVATIONS_TYPEHASH, epoch, keccak256(providerIds), keccak256(measurements)));
    }

    /// Checks the report window and seed and marks the epoch reported (reverts undo the mark).
    function _markReported(uint64 epoch) private returns (bytes32 seed) {
        uint64 nowEpoch = currentEpoch();
        if (epoch > nowEpoch) revert Market_EpochNotStarted(epoch);
        if (epoch + 1 < nowEpoch) revert Market_ReportWindowClosed(epoch);
        seed = _seeds[epoch];
        if (seed == bytes32(0)) revert Market_EpochNotSeeded(epoch);
        uint256 word = epoch >> 8;
        uint256 bit = 1 << (epoch & 0xff);
        uint256 reportedWord = _reportedBitmap[word];
        if (reportedWord & bit != 0) revert Market_AlreadyReported(epoch);
        _reportedBitmap[word] = reportedWord | bit;
    }

    function _verifySigners(
        uint64 epoch,
        bytes calldata providerIds,
        bytes calldata measurements,
        bytes[] calldata signatures
    ) private view returns (address[] memory signers) {
        uint256 m = signatures.length;
        uint256 count = providerIds.length / 4;
        signers = new address[](m);
        address last;
        for (uint256 i; i < m; ++i) {
            bytes calldata row = measurements[i * count * 8:(i + 1) * count * 8];
            bytes32 digest = _hashTypedDataV4(_observationsStructHash(epoch, providerIds, row));
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signatures[i]);
            if (err != ECDSA.RecoverError.NoError) revert Market_NotOracle(address(0));
            if (signer <= last) revert Market_SignersNotSorted();
            if (_oracles[signer].status != OracleStatus.Active) revert Market_NotOracle(signer);
            signers[i] = signer;
            last = signer;
        }
    }

    /// Per-report context, kept in memory to keep the stack shallow.
    struct ReportCtx {
        uint64 epoch;
        uint32 period;
        address[] signers;
        uint32[] thr;
        uint32[] lat;
        uint256[] verdicts;
    }

    function _recordVerdicts(
        uint64 epoch,
        bytes32 seed,
        uint32 period,
        bytes calldata providerIds,
        bytes calldata measurements,
        address[] memory signers
    ) private returns (uint256 availableCount, uint256[] memory verdicts) {
        uint256 count = providerIds.length / 4;
        ReportCtx memory ctx = ReportCtx({
            epoch: epoch,
            period: period,
            signers: signers,
            thr: new uint32[](signers.length),
            lat: new uint32[](signers.length),
            verdicts: new uint256[](count)
        });
        uint32 lastId;
        for (uint256 j; j < count; ++j) {
            uint256 at;
            unchecked {
                at = j * 4; // j < providerIds.length / 4
            }
            uint32 id = uint32(bytes4(providerIds[at:at + 4]));
            if (id <= lastId) revert Market_ProvidersNotSorted();
            lastId = id;
            if (!AuditSet.isAudited(seed, id, _auditProbabilityBps)) revert Market_ProviderNotAudited(epoch, id);
            if (_judge(ctx, measurements, j, id)) ++availableCount;
        }
        verdicts = ctx.verdicts;
    }

    /// Aggregates provider `id`'s observations, records the verdict; returns whether it was reachable.
    /// A healthy provider with a clean history costs one storage read and no write.
    function _judge(ReportCtx memory ctx, bytes calldata measurements, uint256 j, uint32 id)
        private
        returns (bool reachable)
    {
        Provider storage p = _providers[id];
        // Only the fields needed to judge (one cold slot); the full struct only if something changes.
        ProviderCore storage core = p.core;
        // Providers that left or were jailed since the audit set was drawn are skipped.
        if (core.status != ProviderStatus.Active) return false;
        uint32 medThr;
        uint32 medLat;
        (medThr, medLat, reachable) = _aggregate(measurements, ctx.verdicts.length * 8, j, ctx.thr, ctx.lat);
        bool violation = !reachable
            || uint256(medThr) * BPS < uint256(core.sessionMbps) * 1000 * (BPS - _throughputToleranceBps)
            || uint256(medLat) > uint256(core.maxLatencyMs) + _latencyToleranceMs;
        if (medLat > 0xffffff) medLat = 0xffffff;
        ctx.verdicts[j] = (uint256(medThr) << 32) | (uint256(medLat) << 8) | (reachable ? 1 : 0) | (violation ? 2 : 0);
        if (violation || core.flags & FLAG_HISTORY != 0) {
            _recordAudit(p, p.core, id, ctx, reachable, violation);
        }
    }

    /// Lower medians of throughput and latency and the majority of `reachable` for provider `j`.
    function _aggregate(
        bytes calldata measurements,
        uint256 rowLen,
        uint256 j,
        uint32[] memory thr,
        uint32[] memory lat
    ) private pure returns (uint32 medThr, uint32 medLat, bool reachable) {
        uint256 m = thr.length;
        uint256 reachableVotes;
        // unchecked: j < providers, i < signers, off < measurements.length (all bounded by the
        // calldata size, far below 2^256); the slice below is still bounds-checked.
        unchecked {
            uint256 off = j * 8;
            for (uint256 i; i < m; ++i) {
                uint64 rec = uint64(bytes8(measurements[off:off + 8]));
                off += rowLen;
                thr[i] = uint32(rec >> 32);
                lat[i] = uint32(rec >> 8) & 0xffffff;
                if (rec & 1 == 1) ++reachableVotes;
            }
        }
        medThr = Median.lowerMedian(thr);
        medLat = Median.lowerMedian(lat);
        reachable = reachableVotes * 2 > m;
    }

    /// Shifts the verdict into the audit history, counts violations and unavailability, slashes
    /// on `k` violations within the last `w` audits.
    function _recordAudit(
        Provider storage p,
        ProviderCore memory c,
        uint32 id,
        ReportCtx memory ctx,
        bool reachable,
        bool violation
    ) private {
        ProviderAudit memory a = p.audit;
        if (!reachable) {
            if (a.unavailablePeriod != ctx.period) {
                a.unavailablePeriod = ctx.period;
                a.unavailable = 0;
            }
            if (a.unavailable < type(uint16).max) a.unavailable += 1;
        }
        uint64 mask = _violationWindow == 64 ? type(uint64).max : (uint64(1) << _violationWindow) - 1;
        a.history = ((a.history << 1) | (violation ? 1 : 0)) & mask;
        if (violation) {
            if (c.violationCount < type(uint16).max) c.violationCount += 1;
            emit ProviderViolated(ctx.epoch, id, reachable);
            if (_popcount(a.history) >= _violationsToSlash) {
                a.history = 0;
                a.slashedPeriodPlusOne = ctx.period + 1;
                c.status = ProviderStatus.Jailed;
                _slash(p, id, ctx.epoch, ctx.signers);
            }
        }
        c.flags = a.history == 0 ? c.flags & ~FLAG_HISTORY : c.flags | FLAG_HISTORY;
        p.core = c;
        p.audit = a;
    }

    function _slash(Provider storage p, uint32 id, uint64 epoch, address[] memory signers) private {
        ProviderStake memory s = p.stk;
        uint256 amount = ((uint256(s.stake) + s.unbonding) * _slashBps) / BPS;
        if (amount <= s.stake) {
            s.stake -= uint96(amount);
        } else {
            s.unbonding -= uint96(amount - s.stake);
            s.stake = 0;
        }
        p.stk = s;
        uint256 toOracles = (amount * _slashOracleShareBps) / BPS;
        uint256 each = toOracles / signers.length;
        for (uint256 i; i < signers.length; ++i) {
            _balances[signers[i]] += each;
        }
        _rewardPool += amount - each * signers.length;
        uint32 until = uint32(epoch) + 1 + _jailEpochs;
        p.own.jailedUntilEpoch = until;
        emit ProviderSlashed(id, epoch, amount, each * signers.length, until);
    }

    function _rewardOracles(address[] memory signers) private {
        uint256 m = signers.length;
        uint256 each = _oracleRewardPerReport;
        uint256 pool = _rewardPool;
        if (each * m > pool) each = pool / m;
        if (each == 0) return;
        _rewardPool = pool - each * m;
        for (uint256 i; i < m; ++i) {
            _balances[signers[i]] += each;
            emit OracleRewarded(signers[i], each);
        }
    }

    function _popcount(uint64 x) private pure returns (uint256 n) {
        while (x != 0) {
            x &= x - 1;
            ++n;
        }
    }
}
