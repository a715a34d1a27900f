// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {IWirepactMarket as M} from "./interfaces/IWirepactMarket.sol";
import {MarketBase} from "./MarketBase.sol";
import {AuditSet} from "./libraries/AuditSet.sol";
import {Median} from "./libraries/Median.sol";

/// @title AuditModule
/// @notice The market's oracle set, epochs, reports, verdicts, slashing and reliability bonus.
/// It holds no state and no tokens of its own: `WirepactMarket` forwards these calls to it by
/// DELEGATECALL, so it runs on the market's storage and balance (see `MarketBase`). Called
/// directly it refuses everything (`Market_NotDelegated`), so nobody can lose tokens to it.
/// The rules it enforces are documented in `WirepactMarket.sol`.
contract AuditModule is MarketBase {
    using SafeERC20 for IERC20;

    address internal immutable _self;

    constructor(M.Params memory p) MarketBase(p, block.timestamp) {
        _self = address(this);
    }

    /// Only through the market: a direct call would act on this contract's empty storage.
    modifier onlyDelegated() {
        if (address(this) == _self) revert M.Market_NotDelegated();
        _;
    }

    /// @notice Hash of the parameters this module was built with (the market checks it).
    function paramsHash() external view returns (bytes32) {
        return _paramsHash();
    }

    /// @notice The genesis the market adopts (this module's deployment time).
    function genesis() external view returns (uint256) {
        return _genesis;
    }

    // ================================================================= oracles

    /// @notice Registers the caller as an oracle reachable at `endpoint`, pulling `stake`. It
    /// signs from the next epoch on (an epoch's oracle set is fixed when the epoch starts). There
    /// is no cap on the number of oracles: reports count stake, so sybils buy nothing but weight.
    function registerOracle(string calldata endpoint, uint256 stake) external nonReentrant onlyDelegated {
        Oracle storage o = _oracles[msg.sender];
        if (o.status != M.OracleStatus.None || o.stake != 0) revert M.Market_OracleAlreadyRegistered();
        if (stake < _minOracleStake) revert M.Market_StakeBelowMinimum(stake, _minOracleStake);
        if (stake > type(uint96).max) revert M.Market_AmountTooLarge();
        if (bytes(endpoint).length == 0 || bytes(endpoint).length > 256) revert M.Market_InvalidTerms();
        _pull(msg.sender, stake);
        o.status = M.OracleStatus.Active;
        o.stake = uint96(stake);
        o.fromEpoch = uint32(_epochNow() + 1);
        o.untilEpoch = 0;
        o.endpoint = endpoint;
        _shiftOracleStake(int256(stake));
        if (o.unbondingReadyAt == 0) _oracleList.push(msg.sender);
        _activeOracles += 1;
        emit M.OracleRegistered(msg.sender, stake, endpoint);
    }

    /// @notice Stops signing after this epoch (its signatures for this and earlier epochs still
    /// count); the stake can be withdrawn after the unbonding delay, which outlasts their report
    /// window, and stays slashable for equivocation until then.
    function requestOracleLeave() external onlyDelegated {
        Oracle storage o = _oracles[msg.sender];
        if (o.status != M.OracleStatus.Active) revert M.Market_NotOracle(msg.sender);
        o.status = M.OracleStatus.Leaving;
        o.untilEpoch = uint32(_epochNow() + 1);
        _shiftOracleStake(-int256(uint256(o.stake)));
        o.unbondingReadyAt = uint64(block.timestamp + _unbondingDelay);
        _activeOracles -= 1;
        emit M.OracleLeaveRequested(msg.sender, o.unbondingReadyAt);
    }

    /// @notice Credits a leaving oracle's stake to its balance after the unbonding delay.
    function withdrawOracleStake() external onlyDelegated {
        Oracle storage o = _oracles[msg.sender];
        if (o.status != M.OracleStatus.Leaving) revert M.Market_NotOracle(msg.sender);
        if (block.timestamp < o.unbondingReadyAt) revert M.Market_UnbondingNotReady(o.unbondingReadyAt);
        uint256 stake = o.stake;
        o.stake = 0;
        o.status = M.OracleStatus.None;
        _balances[msg.sender] += stake;
        emit M.OracleLeft(msg.sender, stake);
    }

    /// @notice Slashes an oracle that signed two different observations for one epoch: its
    /// whole stake, half to the caller (who proved it), half to the reward pool. Honest oracles
    /// sign one observation per epoch (the daemon keeps what it signed across restarts).
    function proveEquivocation(
        uint64 epoch,
        bytes calldata providersA,
        bytes calldata rowA,
        bytes calldata sigA,
        bytes calldata providersB,
        bytes calldata rowB,
        bytes calldata sigB
    ) external onlyDelegated {
        bytes32 a = _hashTypedDataV4(_observationsStructHash(epoch, providersA, rowA));
        bytes32 b = _hashTypedDataV4(_observationsStructHash(epoch, providersB, rowB));
        if (a == b) revert M.Market_NotEquivocation();
        (address sa, ECDSA.RecoverError ea,) = ECDSA.tryRecover(a, sigA);
        (address sb, ECDSA.RecoverError eb,) = ECDSA.tryRecover(b, sigB);
        if (ea != ECDSA.RecoverError.NoError || eb != ECDSA.RecoverError.NoError || sa != sb) {
            revert M.Market_NotEquivocation();
        }
        Oracle storage o = _oracles[sa];
        uint256 stake = o.stake;
        if (stake == 0) revert M.Market_NotOracle(sa);
        M.OracleStatus status = o.status;
        if (status == M.OracleStatus.Active) {
            _activeOracles -= 1;
            _shiftOracleStake(-int256(stake));
        }
        o.status = M.OracleStatus.Slashed;
        o.stake = 0;
        uint256 toProver = stake / 2;
        _balances[msg.sender] += toProver;
        _rewardPool += stake - toProver;
        emit M.OracleSlashed(sa, epoch, stake, msg.sender);
    }

    /// @notice Fixes the current epoch's audit seed (first call wins). Returns the seed.
    function beginEpoch() external onlyDelegated returns (bytes32 seed) {
        uint64 epoch = _epochNow();
        seed = _seeds[epoch];
        if (seed != bytes32(0)) return seed;
        seed = keccak256(abi.encode(block.prevrandao, blockhash(block.number - 1), epoch, address(this)));
        _seeds[epoch] = seed;
        emit M.EpochSeeded(epoch, seed);
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
    ) external onlyDelegated {
        bytes32 seed = _markReported(epoch);
        uint256 m = signatures.length;
        if (m < MIN_SIGNERS) revert M.Market_TooFewOracles(m);
        // An empty report judges nobody and would only pay its signers.
        if (
            providerIds.length == 0 || providerIds.length % 4 != 0
                || measurements.length != m * (providerIds.length * 2)
        ) {
            revert M.Market_MalformedReport();
        }
        (address[] memory signers, uint256[] memory weights, uint256 eligible) =
            _verifySigners(epoch, providerIds, measurements, signatures);
        uint32 period = uint32(epoch / _rewardPeriodEpochs);
        (uint256 available, uint256[] memory verdicts) =
            _recordVerdicts(epoch, seed, period, providerIds, measurements, signers, weights, eligible);
        if (available != 0) _periodAvailable[period] += available;
        _rewardOracles(signers);
        emit M.ReportAccepted(epoch, msg.sender, providerIds, verdicts);
    }

    // ================================================================== bonus

    /// @notice Pays the provider's reliability bonus for a finished reward period.
    /// @param epochs epochs of `period` (strictly ascending) in which the provider was audited
    /// and the epoch was reported, after its registration epoch and any jail; the provider
    /// proves at least `bonusMinAudits` judged audits. Judged = listed - "not measured" verdicts
    /// of the period; available = judged - unavailable verdicts of the period (both recorded
    /// per period, whether listed or not, so listing fewer epochs only lowers its own share).
    /// Claims open once the report window of the period's last epoch has closed (the second
    /// epoch of `period + 1`), so the pot's denominator is final, and close with `period + 1`.
    function claimBonus(uint32 providerId, uint32 period, uint64[] calldata epochs) external onlyDelegated {
        Provider storage p = _ownedProvider(providerId);
        if (_epochNow() < (uint256(period) + 1) * _rewardPeriodEpochs + 1) revert M.Market_PeriodNotOver(period);
        if (uint256(period) + 1 < _periodNow()) revert M.Market_BonusWindowClosed(period);
        if (p.core.status != M.ProviderStatus.Active) revert M.Market_ProviderNotActive(providerId);
        if (p.audit.claimedPeriodPlusOne > period) revert M.Market_BonusAlreadyClaimed(period);
        PeriodRecord memory r = _periodRecords[providerId][period];
        if (r.slashed) revert M.Market_NotEligibleForBonus(uint32(epochs.length), 0);

        uint256 listed = _countAudits(providerId, period, p.own, epochs);
        uint256 judged = listed > r.notMeasured ? listed - r.notMeasured : 0;
        uint256 available = judged > r.unavailable ? judged - r.unavailable : 0;
        if (judged < _bonusMinAudits || judged == 0 || available * BPS < judged * _bonusAvailabilityBps) {
            revert M.Market_NotEligibleForBonus(uint32(judged), uint32(available));
        }
        M.BonusPot storage pot = _bonusPots[period];
        if (!pot.finalized) {
            uint256 amount = (_rewardPool * _bonusPoolShareBps) / BPS;
            _rewardPool -= amount;
            pot.pot = uint128(amount);
            pot.remaining = uint128(amount);
            pot.totalAvailable = uint128(_periodAvailable[period]);
            pot.finalized = true;
            emit M.BonusPotFinalized(period, amount, pot.totalAvailable);
        }
        // Every listed epoch carried an available verdict counted in totalAvailable, unless it
        // was one of the unavailable or unmeasured ones subtracted above: available <=
        // totalAvailable. The cap keeps the pot whole even if a report omitted an audited
        // provider (then the verdict-root reports of the next step make it exact).
        uint256 share = (uint256(pot.pot) * available) / pot.totalAvailable;
        if (share > pot.remaining) share = pot.remaining;
        pot.remaining -= uint128(share);
        p.audit.claimedPeriodPlusOne = period + 1;
        _balances[p.own.owner] += share;
        emit M.BonusClaimed(providerId, period, share);
    }

    /// Checks each epoch is in `period`, after the registration epoch and `jailedUntil`,
    /// reported, and audited `id`.
    function _countAudits(uint32 id, uint32 period, ProviderOwner memory own, uint64[] calldata epochs)
        internal
        view
        returns (uint256)
    {
        uint32 jailedUntil = own.jailedUntilEpoch;
        uint32 registered = own.registeredEpoch;
        uint256 first = uint256(period) * _rewardPeriodEpochs;
        uint256 last = first + _rewardPeriodEpochs;
        uint64 prev;
        for (uint256 i; i < epochs.length; ++i) {
            uint64 e = epochs[i];
            if ((i != 0 && e <= prev) || e < first || e >= last || e < jailedUntil || e <= registered) {
                revert M.Market_BadAuditProof(e);
            }
            if (_reportedBitmap[e >> 8] & (1 << (e & 0xff)) == 0) revert M.Market_BadAuditProof(e);
            if (!AuditSet.isAudited(_seeds[e], id, _auditProbabilityBps)) revert M.Market_BadAuditProof(e);
            prev = e;
        }
        return epochs.length;
    }

    /// @notice Returns a period's unclaimed bonus to the reward pool once its claim window closed.
    function sweepBonus(uint32 period) external onlyDelegated {
        if (uint256(period) + 2 > _periodNow()) revert M.Market_SweepTooEarly(period);
        M.BonusPot storage pot = _bonusPots[period];
        uint256 amount = pot.remaining;
        pot.remaining = 0;
        pot.finalized = true;
        _rewardPool += amount;
        emit M.BonusSwept(period, amount);
    }

    // =============================================================== internal

    /// Checks the report window and seed and marks the epoch reported (reverts undo the mark).
    function _markReported(uint64 epoch) internal returns (bytes32 seed) {
        uint64 nowEpoch = _epochNow();
        if (epoch > nowEpoch) revert M.Market_EpochNotStarted(epoch);
        if (epoch + 1 < nowEpoch) revert M.Market_ReportWindowClosed(epoch);
        seed = _seeds[epoch];
        if (seed == bytes32(0)) revert M.Market_EpochNotSeeded(epoch);
        uint256 word = epoch >> 8;
        uint256 bit = 1 << (epoch & 0xff);
        uint256 reportedWord = _reportedBitmap[word];
        if (reportedWord & bit != 0) revert M.Market_AlreadyReported(epoch);
        _reportedBitmap[word] = reportedWord | bit;
    }

    function _verifySigners(
        uint64 epoch,
        bytes calldata providerIds,
        bytes calldata measurements,
        bytes[] calldata signatures
    ) internal view returns (address[] memory signers, uint256[] memory weights, uint256 eligible) {
        uint256 m = signatures.length;
        uint256 count = providerIds.length / 4;
        signers = new address[](m);
        weights = new uint256[](m);
        address last;
        uint256 signing;
        for (uint256 i; i < m; ++i) {
            bytes calldata row = measurements[i * count * 8:(i + 1) * count * 8];
            bytes32 digest = _hashTypedDataV4(_observationsStructHash(epoch, providerIds, row));
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signatures[i]);
            if (err != ECDSA.RecoverError.NoError) revert M.Market_NotOracle(address(0));
            if (signer <= last) revert M.Market_SignersNotSorted();
            // Eligibility is by epoch, not by current status: a signer that asked to leave
            // after signing still counts, one that joined during the epoch does not.
            uint256 w = _signerWeight(signer, epoch);
            if (w == 0) revert M.Market_NotOracle(signer);
            signers[i] = signer;
            weights[i] = w;
            signing += w;
            last = signer;
        }
        eligible = _eligibleStake(epoch);
        if (signing * 3 <= eligible * 2) revert M.Market_QuorumNotReached(signing, eligible);
    }

    /// Per-report context, kept in memory to keep the stack shallow.
    struct ReportCtx {
        uint64 epoch;
        uint32 period;
        address[] signers;
        /// each signer's stake for the epoch, and scratch arrays for the weighted medians
        uint256[] weights;
        /// the epoch's eligible oracle stake
        uint256 eligible;
        /// every signer holds the same stake (the plain lower median is the weighted one)
        bool equalStakes;
        uint32[] thr;
        uint32[] lat;
        uint256[] wThr;
        uint256[] wLat;
        uint256[] verdicts;
    }

    function _recordVerdicts(
        uint64 epoch,
        bytes32 seed,
        uint32 period,
        bytes calldata providerIds,
        bytes calldata measurements,
        address[] memory signers,
        uint256[] memory weights,
        uint256 eligible
    ) internal returns (uint256 availableCount, uint256[] memory verdicts) {
        uint256 count = providerIds.length / 4;
        uint256 m = signers.length;
        ReportCtx memory ctx = ReportCtx({
            epoch: epoch,
            period: period,
            signers: signers,
            weights: weights,
            eligible: eligible,
            equalStakes: false,
            thr: new uint32[](m),
            lat: new uint32[](m),
            wThr: new uint256[](m),
            wLat: new uint256[](m),
            verdicts: new uint256[](count)
        });
        ctx.equalStakes = _allEqual(weights);
        uint32 lastId;
        for (uint256 j; j < count; ++j) {
            uint256 at;
            unchecked {
                at = j * 4; // j < providerIds.length / 4
            }
            uint32 id = uint32(bytes4(providerIds[at:at + 4]));
            if (id <= lastId) revert M.Market_ProvidersNotSorted();
            lastId = id;
            if (!AuditSet.isAudited(seed, id, _auditProbabilityBps)) revert M.Market_ProviderNotAudited(epoch, id);
            if (_judge(ctx, measurements, j, id)) ++availableCount;
        }
        verdicts = ctx.verdicts;
    }

    /// Aggregates provider `id`'s observations, records the verdict; returns whether it was reachable.
    /// A healthy provider with a clean history costs one storage read and no write.
    function _judge(ReportCtx memory ctx, bytes calldata measurements, uint256 j, uint32 id)
        internal
        returns (bool reachable)
    {
        Provider storage p = _providers[id];
        // Only the fields needed to judge (one cold slot); the full struct only if something changes.
        ProviderCore storage core = p.core;
        // Active and jailed providers are judged; one that left is judged for the epochs up to
        // the one it left in (it stays slashable while its stake unbonds); ids nobody
        // registered are skipped.
        M.ProviderStatus status = core.status;
        if (status == M.ProviderStatus.None) return false;
        if (status == M.ProviderStatus.Left && p.own.leftEpoch < ctx.epoch) return false;
        uint32 medThr;
        uint32 medLat;
        bool measured;
        (medThr, medLat, reachable, measured) = _aggregate(measurements, ctx.verdicts.length * 8, j, ctx);
        if (!measured) {
            // Most signers could not measure (the provider was full, or their own side failed):
            // no verdict, and no bonus credit for this audit.
            ctx.verdicts[j] = 4;
            PeriodRecord storage r = _periodRecords[id][ctx.period];
            if (r.notMeasured < type(uint16).max) r.notMeasured += 1;
            return false;
        }
        bool violation = !reachable
            || uint256(medThr) * BPS < uint256(core.sessionMbps) * 1000 * (BPS - _throughputToleranceBps)
            || uint256(medLat) > uint256(core.maxLatencyMs) + _latencyToleranceMs;
        if (medLat > 0xffffff) medLat = 0xffffff;
        ctx.verdicts[j] = (uint256(medThr) << 32) | (uint256(medLat) << 8) | (reachable ? 1 : 0) | (violation ? 2 : 0);
        if (violation || core.flags & FLAG_HISTORY != 0) {
            _recordAudit(p, p.core, id, ctx, reachable, violation);
        }
    }

    /// Stake-weighted lower medians of throughput and latency and the stake majority of
    /// `reachable` over the rows that measured provider `j` (flags bit 1 = "not measured");
    /// `measured` is false unless oracles holding more than two thirds of the epoch's stake
    /// measured it. Weighting by stake (not by head count) means oracles holding less than
    /// half the measured stake cannot move a median outside the range of the others' values,
    /// however many addresses they use.
    function _aggregate(bytes calldata measurements, uint256 rowLen, uint256 j, ReportCtx memory ctx)
        internal
        pure
        returns (uint32 medThr, uint32 medLat, bool reachable, bool measured)
    {
        uint256 m = ctx.weights.length;
        uint256 k;
        uint256 measuredStake;
        uint256 reachableStake;
        bool equalStakes = ctx.equalStakes;
        // unchecked: j < providers, i < signers, off < measurements.length (all bounded by the
        // calldata size, far below 2^256); stakes are uint96, their sum fits easily.
        unchecked {
            uint256 off = j * 8;
            for (uint256 i; i < m; ++i) {
                uint64 rec = uint64(bytes8(measurements[off:off + 8]));
                off += rowLen;
                uint256 w = ctx.weights[i];
                if (rec & 2 != 0) continue;
                ctx.thr[k] = uint32(rec >> 32);
                ctx.lat[k] = uint32(rec >> 8) & 0xffffff;
                if (!equalStakes) {
                    ctx.wThr[k] = w;
                    ctx.wLat[k] = w;
                }
                ++k;
                measuredStake += w;
                if (rec & 1 == 1) reachableStake += w;
            }
        }
        // Oracles lying together hold less than a third of the epoch's stake: with more than
        // two thirds measuring, they hold less than half of the measured stake, so neither
        // weighted median nor the reachable majority can leave the honest values.
        measured = measuredStake * 3 > ctx.eligible * 2;
        if (!measured) return (0, 0, false, false);
        reachable = reachableStake * 2 > measuredStake;
        if (equalStakes) {
            // Equal stakes (the common case): the weighted median is the plain lower median,
            // taken over the first k entries without the weights.
            uint32[] memory thr = ctx.thr;
            uint32[] memory lat = ctx.lat;
            assembly ("memory-safe") {
                mstore(thr, k)
                mstore(lat, k)
            }
            medThr = Median.lowerMedian(thr);
            medLat = Median.lowerMedian(lat);
            assembly ("memory-safe") {
                mstore(thr, m)
                mstore(lat, m)
            }
        } else {
            medThr = Median.weightedLowerMedian(ctx.thr, ctx.wThr, k, measuredStake);
            medLat = Median.weightedLowerMedian(ctx.lat, ctx.wLat, k, measuredStake);
        }
    }

    function _allEqual(uint256[] memory w) internal pure returns (bool) {
        for (uint256 i = 1; i < w.length; ++i) {
            if (w[i] != w[0]) return false;
        }
        return true;
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
    ) internal {
        ProviderAudit memory a = p.audit;
        if (!reachable) {
            PeriodRecord storage r = _periodRecords[id][ctx.period];
            if (r.unavailable < type(uint16).max) r.unavailable += 1;
        }
        uint64 mask = _violationWindow == 64 ? type(uint64).max : (uint64(1) << _violationWindow) - 1;
        a.history = ((a.history << 1) | (violation ? 1 : 0)) & mask;
        if (violation) {
            if (c.violationCount < type(uint16).max) c.violationCount += 1;
            emit M.ProviderViolated(ctx.epoch, id, reachable);
            if (_popcount(a.history) >= _violationsToSlash) {
                a.history = 0;
                _periodRecords[id][ctx.period].slashed = true;
                // A provider that left stays Left (its stake is unbonding); others are jailed.
                if (c.status != M.ProviderStatus.Left) c.status = M.ProviderStatus.Jailed;
                _slash(p, id, ctx.epoch, ctx.signers);
            }
        }
        c.flags = a.history == 0 ? c.flags & ~FLAG_HISTORY : c.flags | FLAG_HISTORY;
        p.core = c;
        p.audit = a;
    }

    function _slash(Provider storage p, uint32 id, uint64 epoch, address[] memory signers) internal {
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
        emit M.ProviderSlashed(id, epoch, amount, each * signers.length, until);
    }

    function _rewardOracles(address[] memory signers) internal {
        uint256 m = signers.length;
        uint256 each = _oracleRewardPerReport;
        uint256 pool = _rewardPool;
        if (each * m > pool) each = pool / m;
        if (each == 0) return;
        _rewardPool = pool - each * m;
        for (uint256 i; i < m; ++i) {
            _balances[signers[i]] += each;
            emit M.OracleRewarded(signers[i], each);
        }
    }

    function _popcount(uint64 x) internal pure returns (uint256 n) {
        while (x != 0) {
            x &= x - 1;
            ++n;
        }
    }

    // ================================================================== views
    // (reached through the market's fallback; they read the market's storage)

    function currentPeriod() external view returns (uint32) {
        return uint32(_epochNow() / _rewardPeriodEpochs);
    }

    function epochStart(uint64 epoch) external view returns (uint256) {
        return _genesis + uint256(epoch) * _epochLength;
    }

    function bonusPot(uint32 period) external view returns (M.BonusPot memory) {
        return _bonusPots[period];
    }

    function periodAvailable(uint32 period) external view returns (uint256) {
        return _periodAvailable[period];
    }

    function bonusRecord(uint32 providerId, uint32 period) external view returns (M.BonusRecord memory) {
        PeriodRecord memory r = _periodRecords[providerId][period];
        return M.BonusRecord({
            unavailable: r.unavailable,
            notMeasured: r.notMeasured,
            slashed: r.slashed,
            claimedPeriodPlusOne: _providers[providerId].audit.claimedPeriodPlusOne
        });
    }

    function oracle(address account) external view returns (M.OracleView memory) {
        Oracle storage o = _oracles[account];
        return M.OracleView({
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

    function observationsDigest(uint64 epoch, bytes calldata providerIds, bytes calldata measurements)
        external
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(_observationsStructHash(epoch, providerIds, measurements));
    }
}
