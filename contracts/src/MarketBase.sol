// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Checkpoints} from "@openzeppelin/contracts/utils/structs/Checkpoints.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IWirepactMarket as M} from "./interfaces/IWirepactMarket.sol";

/// @title MarketBase
/// @notice The market's storage, parameters and shared helpers. The entry point
/// (`WirepactMarket`) and its modules (`AuditModule`) both inherit exactly this and nothing
/// else with storage, so the module, running by DELEGATECALL in the market's context, sees the
/// same layout. Parameters are immutables built from the same `Params` in each contract; the
/// market checks at construction that its module was built from identical ones.
abstract contract MarketBase is EIP712, ReentrancyGuardTransient {
    // ------------------------------------------------------------- constants

    uint256 internal constant BPS = 10_000;
    /// @notice Receipts dated further in the future than this are refused.
    uint256 public constant MAX_RECEIPT_DRIFT = 5 minutes;
    /// A report needs signatures from at least this many distinct oracles (and more than two
    /// thirds of the epoch's oracle stake).
    uint256 public constant MIN_SIGNERS = 3;

    bytes32 public constant RECEIPT_TYPEHASH =
        keccak256("Receipt(bytes32 sessionId,uint64 cumulativeBytes,uint64 timestamp)");
    /// What the quorum signs: one aggregate per epoch (see `submitReport`).
    bytes32 public constant REPORT_TYPEHASH =
        keccak256("Report(uint64 epoch,bytes32 root,uint32 available,bytes violations,bytes32 seedCommit)");
    /// Bytes per violator in a report: id (uint32), throughput kbit/s (uint32), latency ms
    /// (uint24), flags (uint8, bit 0 = reachable).
    uint256 internal constant VIOLATION_LEN = 12;
    /// Longest violation window, in epochs (a 192-bit map, packed with the provider's other
    /// audit fields in one slot).
    uint256 internal constant MAX_WINDOW_EPOCHS = 192;

    // ------------------------------------------------------------ immutables

    IERC20 internal immutable _token;
    uint256 internal immutable _genesis;
    bytes32 private immutable _paramsHashAtDeploy;
    uint64 internal immutable _epochLength;
    uint16 internal immutable _auditProbabilityBps;
    uint128 internal immutable _minStakePerMbps;
    uint128 internal immutable _minOracleStake;
    uint64 internal immutable _unbondingDelay;
    uint64 internal immutable _claimGrace;
    uint32 internal immutable _alphaBps;
    uint16 internal immutable _protocolFeeBps;
    uint128 internal immutable _oracleRewardPerReport;
    uint16 internal immutable _throughputToleranceBps;
    uint32 internal immutable _latencyToleranceMs;
    uint8 internal immutable _violationsToSlash;
    uint8 internal immutable _violationWindow;
    uint16 internal immutable _slashBps;
    uint16 internal immutable _slashOracleShareBps;
    uint32 internal immutable _jailEpochs;
    uint16 internal immutable _sessionPenaltyBps;
    uint32 internal immutable _rewardPeriodEpochs;
    uint16 internal immutable _bonusMinAudits;
    uint16 internal immutable _bonusAvailabilityBps;
    uint16 internal immutable _bonusPoolShareBps;
    uint32 internal immutable _minDepositSeconds;
    uint256 internal immutable _auditHourWeights;
    /// The 24 hour weights' sum (0 when audits do not follow the hour).
    uint256 internal immutable _auditWeightSum;
    /// `violationWindow` audits expressed in epochs: twice the epochs in which a provider is
    /// expected to be audited that many times, `ceil(2 * w * 10_000 / auditProbabilityBps)`, at
    /// most 192 (twice, so that audits that happen to come late still fall in the window).
    uint256 internal immutable _windowEpochs;

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
        M.ProviderStatus status;
        /// bit 1: paused (no new client sessions; oracles still probe).
        uint8 flags;
        uint16 maxLatencyMs;
        uint88 basePricePerGiB;
    }

    /// What a claim touches besides the session: the owner (who may claim) and the earnings
    /// claimed for it, gross of the protocol fee, until `collectEarnings` moves them to the
    /// owner's balance (and the fee to the reward pool). One slot, so a claim writes two.
    struct ProviderOwner {
        address owner;
        uint96 earned;
    }

    /// `leftEpoch`: the epoch `leave` was called in (reports still judge the provider for
    /// epochs up to it); `registeredEpoch`: the epoch of registration (no bonus credit for it
    /// or before).
    struct ProviderEpochs {
        uint32 jailedUntilEpoch;
        uint32 leftEpoch;
        uint32 registeredEpoch;
    }

    struct ProviderStake {
        uint96 stake;
        uint96 unbonding;
        uint64 unbondingReadyAt;
    }

    /// Recent violations by epoch (bit i = a violation in epoch `lastViolationEpoch - i`) and
    /// the last bonus claim. Only a violation touches it: a report costs nothing for a healthy
    /// provider, and a violation writes one slot.
    struct ProviderAudit {
        uint192 violationBits;
        uint32 lastViolationEpoch;
        uint32 claimedPeriodPlusOne;
    }

    /// What a reward period recorded against a provider, kept per period so that nothing in
    /// period p+1 can erase period p's record before p's bonus is claimed. Written only when
    /// something is wrong.
    struct PeriodRecord {
        uint16 unavailable;
        bool slashed;
    }

    struct Provider {
        ProviderCore core;
        ProviderOwner own;
        ProviderStake stk;
        ProviderAudit audit;
        ProviderEpochs ep;
        bytes32 tunnelKey;
        string endpoint;
        string region;
    }

    /// Signs for epochs `[fromEpoch, untilEpoch)` (`untilEpoch` 0: until it leaves).
    struct Oracle {
        M.OracleStatus status;
        uint96 stake;
        uint64 unbondingReadyAt;
        uint32 fromEpoch;
        uint32 untilEpoch;
        string endpoint;
    }

    mapping(address account => uint256) internal _balances;
    uint256 internal _rewardPool;

    uint32 internal _providerCount;
    mapping(uint32 id => Provider) internal _providers;
    mapping(address owner => uint32 id) internal _providerIdOf;

    mapping(bytes32 sessionId => M.SessionState) internal _sessions;

    mapping(address oracle => Oracle) internal _oracles;
    address[] internal _oracleList;
    uint256 internal _activeOracles;

    mapping(uint64 epoch => bytes32) internal _seeds;
    /// Epoch => `keccak256(abi.encode(secret))`, set by the report of `epoch - 2`; replaced by
    /// the secret itself once the epoch's report reveals it (the reported bit tells which).
    mapping(uint64 epoch => bytes32) internal _seedCommits;
    mapping(uint256 word => uint256) internal _reportedBitmap;
    mapping(uint32 period => uint256) internal _periodAvailable;
    uint8 internal constant FLAG_PAUSED = 2;
    /// Total stake of the oracles eligible for each epoch (key: first epoch a value holds for).
    Checkpoints.Trace208 internal _oracleStakeAt;
    /// Longest jail a deployment may set (about 19 years of 10-minute epochs): the jail's end
    /// must fit the uint32 epoch field for any epoch the market will see.
    uint256 internal constant MAX_JAIL_EPOCHS = 1_000_000;
    mapping(uint32 id => mapping(uint32 period => PeriodRecord)) internal _periodRecords;
    /// A period's bonus pot in one slot (set by the period's first claim; the first claimant
    /// pays one slot write). Token amounts fit 96 bits as stakes do; the pot takes at most
    /// 2^96 - 1 wei from the pool.
    struct Pot {
        uint96 pot;
        uint96 remaining;
        uint56 totalAvailable;
        bool finalized;
    }

    mapping(uint32 period => Pot) internal _bonusPots;
    /// Per reported epoch: the Merkle root of the providers judged available (see `submitReport`).
    mapping(uint64 epoch => bytes32) internal _verdictRoots;

    // ------------------------------------------------------------ constructor

    constructor(M.Params memory p, uint256 genesis_) EIP712("wirepact", "1") {
        if (
            p.token == address(0) || p.epochLength == 0 || p.auditProbabilityBps == 0 || p.auditProbabilityBps > BPS
                || p.minOracleStake == 0 || p.protocolFeeBps > BPS || p.throughputToleranceBps > BPS
                || p.violationsToSlash == 0 || p.violationWindow == 0 || p.violationWindow > 64
                || p.violationsToSlash > p.violationWindow || p.slashBps > BPS || p.slashOracleShareBps > BPS
                || p.sessionPenaltyBps > BPS || p.rewardPeriodEpochs < 2 || p.bonusAvailabilityBps > BPS
                || p.bonusPoolShareBps > BPS || p.jailEpochs > MAX_JAIL_EPOCHS
                // a leaver must stay slashable until its last epoch's report window (that epoch and
                // the next) has closed
                || p.unbondingDelay < 2 * uint256(p.epochLength)
        ) revert M.Market_InvalidParams();
        uint256 weightSum;
        if (p.auditHourWeights != 0) {
            // 24 bytes, none of them zero: no hour of the day goes unaudited.
            if (p.auditHourWeights >> 192 != 0) revert M.Market_InvalidParams();
            for (uint256 h; h < 24; ++h) {
                uint256 w = (p.auditHourWeights >> (8 * h)) & 0xff;
                if (w == 0) revert M.Market_InvalidParams();
                weightSum += w;
            }
        }
        _auditHourWeights = p.auditHourWeights;
        _auditWeightSum = weightSum;
        _token = IERC20(p.token);
        _genesis = genesis_;
        _paramsHashAtDeploy = keccak256(abi.encode(p));
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
        _minDepositSeconds = p.minDepositSeconds;
        uint256 windowEpochs =
            (2 * uint256(p.violationWindow) * BPS + p.auditProbabilityBps - 1) / p.auditProbabilityBps;
        _windowEpochs = windowEpochs > MAX_WINDOW_EPOCHS ? MAX_WINDOW_EPOCHS : windowEpochs;
    }


    // ================================================================ shared

    /// The audit probability of `epoch`, in basis points: the base one, weighted by the UTC
    /// hour the epoch starts in when the market follows the hour.
    function _auditBpsAt(uint64 epoch) internal view returns (uint256) {
        uint256 sum = _auditWeightSum;
        if (sum == 0) return _auditProbabilityBps;
        uint256 hour = ((_genesis + uint256(epoch) * _epochLength) / 3600) % 24;
        uint256 bps = (uint256(_auditProbabilityBps) * ((_auditHourWeights >> (8 * hour)) & 0xff) * 24) / sum;
        return bps > BPS ? BPS : bps;
    }

    function _epochNow() internal view returns (uint64) {
        return uint64((block.timestamp - _genesis) / _epochLength);
    }

    function _periodNow() internal view returns (uint32) {
        return uint32(_epochNow() / _rewardPeriodEpochs);
    }

    function _minProviderStake(uint32 capacityMbps) internal view returns (uint256) {
        return uint256(_minStakePerMbps) * capacityMbps;
    }

    function _ownedProvider(uint32 providerId) internal view returns (Provider storage p) {
        p = _providers[providerId];
        if (p.core.status == M.ProviderStatus.None) revert M.Market_UnknownProvider(providerId);
        if (p.own.owner != msg.sender) revert M.Market_NotProviderOwner(providerId);
    }

    function _startUnbonding(Provider storage p, uint256 amount) internal {
        p.stk.stake -= uint96(amount);
        p.stk.unbonding += uint96(amount);
        p.stk.unbondingReadyAt = uint64(block.timestamp + _unbondingDelay);
    }

    function _reportDigest(uint64 epoch, M.ReportHeader memory h) internal view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(REPORT_TYPEHASH, epoch, h.root, h.available, h.violationsHash, h.seedCommit))
        );
    }

    /// Total stake of the oracles that sign for `epoch`.
    function _eligibleStake(uint64 epoch) internal view returns (uint256) {
        return Checkpoints.upperLookup(_oracleStakeAt, uint48(epoch));
    }

    /// `a`'s stake if it signs for `epoch` (joined before the epoch, not gone by then, not
    /// slashed), else 0.
    function _signerWeight(address a, uint64 epoch) internal view returns (uint256) {
        Oracle storage o = _oracles[a];
        uint256 stake = o.stake;
        uint32 until = o.untilEpoch;
        if (stake == 0 || epoch < o.fromEpoch || (until != 0 && epoch >= until)) return 0;
        return stake;
    }

    /// Moves the eligible total by `delta` from the next epoch on (the current epoch's set is
    /// fixed).
    function _shiftOracleStake(int256 delta) internal {
        uint256 latest = Checkpoints.latest(_oracleStakeAt);
        uint256 next = delta >= 0 ? latest + uint256(delta) : latest - uint256(-delta);
        Checkpoints.push(_oracleStakeAt, uint48(_epochNow() + 1), uint208(next));
    }

    function _paramsHash() internal view returns (bytes32) {
        return _paramsHashAtDeploy;
    }

    /// Pulls exactly `amount` tokens from `from`; a token that delivers less (a fee on
    /// transfer) is refused, so the books never exceed the tokens held.
    function _pull(address from, uint256 amount) internal {
        uint256 before = _token.balanceOf(address(this));
        SafeERC20.safeTransferFrom(_token, from, address(this), amount);
        uint256 received = _token.balanceOf(address(this)) - before;
        if (received != amount) revert M.Market_TokenTransferShort(amount, received);
    }
}
