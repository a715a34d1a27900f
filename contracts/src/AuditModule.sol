// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {IWirepactMarket as M} from "./interfaces/IWirepactMarket.sol";
import {MarketBase} from "./MarketBase.sol";
import {AuditSet} from "./libraries/AuditSet.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

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

    /// @notice Slashes an oracle that signed two different reports for one epoch: its whole
    /// stake, half to the caller (who proved it), half to the reward pool. Honest oracles sign
    /// one report per epoch (the daemon keeps what it signed across restarts).
    function proveEquivocation(
        uint64 epoch,
        M.ReportHeader calldata a,
        bytes calldata sigA,
        M.ReportHeader calldata b,
        bytes calldata sigB
    ) external onlyDelegated {
        bytes32 da = _reportDigest(epoch, a);
        bytes32 db = _reportDigest(epoch, b);
        if (da == db) revert M.Market_NotEquivocation();
        (address sa, ECDSA.RecoverError ea,) = ECDSA.tryRecover(da, sigA);
        (address sb, ECDSA.RecoverError eb,) = ECDSA.tryRecover(db, sigB);
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

    /// @notice Records the epoch's aggregate, signed by a quorum over one digest.
    /// @param root Merkle root (sorted-pair keccak, OpenZeppelin `MerkleProof`) over one leaf
    /// per provider judged available:
    /// `keccak256(bytes.concat(keccak256(abi.encode(epoch, id, base))))`, `base` = the
    /// provider's available verdicts in the period's reported epochs up to `epoch - 2` (final
    /// when the oracles aggregate `epoch`), so a bonus claim proves one or two leaves.
    /// @param available the number of those leaves (it adds to the period's bonus denominator).
    /// @param violations the violators, ids strictly ascending, 12 bytes each: id (uint32),
    /// median throughput kbit/s (uint32), median latency ms (uint24), flags (bit 0 = reachable).
    /// Each must be audited this epoch and must violate its SLA on these figures.
    /// @param seedCommit `keccak256(abi.encode(secret))` of the oracles' secret for epoch
    /// `epoch + 2` (0: none; that epoch's audit set then follows the chain's seed alone).
    /// @param seedReveal the secret committed for this epoch by the report of `epoch - 2` (0 if
    /// none was): the audit seed is `keccak256(abi.encode(epochSeed, secret))`.
    /// @param signatures EIP-712 `Report(epoch, root, available, violations, seedCommit)` by
    /// distinct oracles eligible for the epoch, recovered addresses strictly ascending, at least
    /// `MIN_SIGNERS`, holding more than two thirds of the epoch's oracle stake. A report that
    /// judges nobody is accepted only to carry a commitment, and pays no reward.
    function submitReport(
        uint64 epoch,
        bytes32 root,
        uint32 available,
        bytes calldata violations,
        bytes32 seedCommit,
        bytes32 seedReveal,
        bytes[] calldata signatures
    ) external onlyDelegated {
        bytes32 seed = _revealSeed(epoch, _markReported(epoch), seedReveal);
        uint256 m = signatures.length;
        if (m < MIN_SIGNERS) revert M.Market_TooFewOracles(m);
        if (violations.length % VIOLATION_LEN != 0 || (root == bytes32(0)) != (available == 0)) {
            revert M.Market_MalformedReport();
        }
        // A report that judges nobody would only pay its signers: it may only carry the
        // commitment of a later epoch's secret, for no reward.
        bool judges = available != 0 || violations.length != 0;
        if (!judges && seedCommit == bytes32(0)) revert M.Market_EmptyReport();
        address[] memory signers =
            _verifySigners(epoch, _digestOf(epoch, root, available, violations, seedCommit), signatures);
        // The report of `epoch` closes before `epoch + 2` starts: the commitment is on record
        // before anyone can know that epoch's chain seed.
        if (seedCommit != bytes32(0)) _seedCommits[epoch + 2] = seedCommit;
        if (root != bytes32(0)) _verdictRoots[epoch] = root;
        uint32 period = uint32(epoch / _rewardPeriodEpochs);
        if (available != 0) _periodAvailable[period] += available;
        uint256 count = violations.length / VIOLATION_LEN;
        uint256 bps = _auditBpsAt(epoch);
        uint32 lastId;
        for (uint256 j; j < count; ++j) {
            bytes calldata v = violations[j * VIOLATION_LEN:(j + 1) * VIOLATION_LEN];
            uint32 id = uint32(bytes4(v[0:4]));
            if (id <= lastId) revert M.Market_ProvidersNotSorted();
            lastId = id;
            if (!AuditSet.isAudited(seed, id, bps)) revert M.Market_ProviderNotAudited(epoch, id);
            _judgeViolator(epoch, period, id, v, signers);
        }
        if (judges) _rewardOracles(signers);
        emit M.ReportAccepted(epoch, msg.sender, root, available, count);
    }

    /// `keccak256(abi.encode(chainSeed, secret))`: the seed an epoch with a committed secret
    /// draws its audits from.
    function _mixSeed(bytes32 chainSeed, bytes32 secret) internal pure returns (bytes32) {
        return keccak256(abi.encode(chainSeed, secret));
    }

    /// The epoch's audit seed: the chain's seed alone if no secret was committed for it, else
    /// mixed with the revealed secret (checked against the commitment, then kept in its place).
    function _revealSeed(uint64 epoch, bytes32 chainSeed, bytes32 reveal) internal returns (bytes32) {
        bytes32 commit = _seedCommits[epoch];
        if (commit == bytes32(0)) {
            if (reveal != bytes32(0)) revert M.Market_BadSeedReveal(epoch);
            return chainSeed;
        }
        if (keccak256(abi.encode(reveal)) != commit) revert M.Market_BadSeedReveal(epoch);
        _seedCommits[epoch] = reveal;
        return _mixSeed(chainSeed, reveal);
    }

    // ================================================================== bonus

    /// @notice Pays the provider's reliability bonus for a finished reward period.
    /// @param leaves the provider's leaf in the verdict tree of the last epoch of `period` whose
    /// report judged it available and, if the report of the epoch before also did, that leaf
    /// second (its `base` then is not counted again). A leaf carries `base`, the provider's
    /// available verdicts in the period's reported epochs up to two epochs before its own (the
    /// epochs whose reports were final when it was aggregated): so available = base + the
    /// leaves proven, at most two proofs whatever the period's length. judged = available +
    /// the unavailable verdicts recorded on chain for the period; proving an older leaf only
    /// lowers the provider's own share. Leaves must be after the registration epoch and any
    /// jail (oracles count `base` over those epochs only). It qualifies if it was not slashed
    /// in the period, judged >= `bonusMinAudits` and available / judged >= `bonusAvailabilityBps`. Claims open once the report window of the
    /// period's last epoch has closed (the second epoch of `period + 1`), so the pot's
    /// denominator is final, and close with `period + 1`.
    function claimBonus(uint32 providerId, uint32 period, M.BonusLeaf[] calldata leaves) external onlyDelegated {
        Provider storage p = _ownedProvider(providerId);
        uint256 first = uint256(period) * _rewardPeriodEpochs;
        if (_epochNow() < first + _rewardPeriodEpochs + 1) revert M.Market_PeriodNotOver(period);
        if (uint256(period) + 1 < _periodNow()) revert M.Market_BonusWindowClosed(period);
        if (p.core.status != M.ProviderStatus.Active) revert M.Market_ProviderNotActive(providerId);
        if (p.audit.claimedPeriodPlusOne > period) revert M.Market_BonusAlreadyClaimed(period);
        if (leaves.length == 0 || leaves.length > 2) revert M.Market_MalformedReport();
        PeriodRecord memory r = _periodRecords[providerId][period];
        if (r.slashed) revert M.Market_NotEligibleForBonus(0, 0);
        uint256 available = _proveLeaves(providerId, first, p.ep, leaves);
        uint256 judged = available + r.unavailable;
        if (judged < _bonusMinAudits || available * BPS < judged * _bonusAvailabilityBps) {
            revert M.Market_NotEligibleForBonus(uint32(judged), uint32(available));
        }
        Pot memory pot = _bonusPots[period];
        if (!pot.finalized) {
            uint256 amount = (_rewardPool * _bonusPoolShareBps) / BPS;
            if (amount > type(uint96).max) amount = type(uint96).max;
            _rewardPool -= amount;
            uint256 total = _periodAvailable[period];
            pot = Pot({
                pot: uint96(amount),
                remaining: uint96(amount),
                totalAvailable: uint56(total > type(uint56).max ? type(uint56).max : total),
                finalized: true
            });
            emit M.BonusPotFinalized(period, amount, pot.totalAvailable);
        }
        // An honest quorum's leaves count each available verdict of the provider once, and
        // every one of them is in totalAvailable: the shares add up to at most the pot; the cap
        // keeps it whole whatever a report said.
        uint256 share = (uint256(pot.pot) * available) / pot.totalAvailable;
        if (share > pot.remaining) share = pot.remaining;
        pot.remaining -= uint96(share);
        _bonusPots[period] = pot;
        p.audit.claimedPeriodPlusOne = period + 1;
        _balances[p.own.owner] += share;
        emit M.BonusClaimed(providerId, period, share);
    }

    /// Verifies the leaves (in `[first, first + period)`, after the registration epoch and any
    /// jail, the second one epoch before the first) and returns the available verdicts they
    /// prove.
    function _proveLeaves(uint32 id, uint256 first, ProviderEpochs memory ep, M.BonusLeaf[] calldata leaves)
        internal
        view
        returns (uint256)
    {
        for (uint256 i; i < leaves.length; ++i) {
            M.BonusLeaf calldata l = leaves[i];
            uint64 e = l.epoch;
            if (
                e < first || e >= first + _rewardPeriodEpochs || (i == 1 && e + 1 != leaves[0].epoch)
                    || e <= ep.registeredEpoch || e < ep.jailedUntilEpoch
            ) revert M.Market_BadAuditProof(e);
            bytes32 root = _verdictRoots[e];
            bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(e, id, l.base))));
            if (root == bytes32(0) || !MerkleProof.verifyCalldata(l.proof, root, leaf)) revert M.Market_BadAuditProof(e);
        }
        return uint256(leaves[0].base) + leaves.length;
    }

    /// @notice Returns a period's unclaimed bonus to the reward pool once its claim window closed.
    function sweepBonus(uint32 period) external onlyDelegated {
        if (uint256(period) + 2 > _periodNow()) revert M.Market_SweepTooEarly(period);
        Pot storage pot = _bonusPots[period];
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

    /// Recovers the signers of `digest` (strictly ascending, each eligible for the epoch) and
    /// checks they hold more than two thirds of the epoch's oracle stake.
    function _verifySigners(uint64 epoch, bytes32 digest, bytes[] calldata signatures)
        internal
        view
        returns (address[] memory signers)
    {
        uint256 m = signatures.length;
        signers = new address[](m);
        address last;
        uint256 signing;
        for (uint256 i; i < m; ++i) {
            (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signatures[i]);
            if (err != ECDSA.RecoverError.NoError) revert M.Market_NotOracle(address(0));
            if (signer <= last) revert M.Market_SignersNotSorted();
            // Eligibility is by epoch, not by current status: a signer that asked to leave
            // after signing still counts, one that joined during the epoch does not.
            uint256 w = _signerWeight(signer, epoch);
            if (w == 0) revert M.Market_NotOracle(signer);
            signers[i] = signer;
            signing += w;
            last = signer;
        }
        uint256 eligible = _eligibleStake(epoch);
        if (signing * 3 <= eligible * 2) revert M.Market_QuorumNotReached(signing, eligible);
    }

    /// Records a listed violation: re-checks it against the provider's SLA, counts it, and
    /// slashes on `k` violations within the window.
    function _judgeViolator(uint64 epoch, uint32 period, uint32 id, bytes calldata v, address[] memory signers)
        internal
    {
        Provider storage p = _providers[id];
        ProviderCore memory c = p.core;
        // Active and jailed providers are judged; one that left is judged for the epochs up to
        // the one it left in (it stays slashable while its stake unbonds); ids nobody
        // registered are skipped.
        if (c.status == M.ProviderStatus.None) return;
        if (c.status == M.ProviderStatus.Left && p.ep.leftEpoch < epoch) return;
        uint256 thr = uint32(bytes4(v[4:8]));
        uint256 lat = uint24(bytes3(v[8:11]));
        bool reachable = uint8(v[11]) & 1 != 0;
        bool violation = !reachable || thr * BPS < uint256(c.sessionMbps) * 1000 * (BPS - _throughputToleranceBps)
            || lat > uint256(c.maxLatencyMs) + _latencyToleranceMs;
        if (!violation) revert M.Market_NotAViolation(id);
        if (!reachable) {
            PeriodRecord storage r = _periodRecords[id][period];
            if (r.unavailable < type(uint16).max) r.unavailable += 1;
        }
        if (c.violationCount < type(uint16).max) c.violationCount += 1;
        emit M.ProviderViolated(epoch, id, reachable, uint32(thr), uint32(lat));

        // The window: violations by epoch, anchored at the latest one seen (reports of two
        // epochs may land in either order).
        ProviderAudit memory a = p.audit;
        uint256 windowEpochs = _windowEpochs;
        uint256 bits = a.violationBits;
        uint32 e = uint32(epoch);
        if (bits == 0 || e >= a.lastViolationEpoch) {
            uint256 shift = bits == 0 ? 0 : e - a.lastViolationEpoch;
            bits = shift >= windowEpochs ? 1 : (bits << shift) | 1;
            a.lastViolationEpoch = e;
        } else if (a.lastViolationEpoch - e < windowEpochs) {
            bits |= uint256(1) << (a.lastViolationEpoch - e);
        }
        bits &= (uint256(1) << windowEpochs) - 1;
        if (_popcount(bits) >= _violationsToSlash) {
            bits = 0;
            _periodRecords[id][period].slashed = true;
            // A provider that left stays Left (its stake is unbonding); others are jailed.
            if (c.status != M.ProviderStatus.Left) c.status = M.ProviderStatus.Jailed;
            p.core = c;
            a.violationBits = 0;
            p.audit = a;
            _slash(p, id, epoch, signers);
            return;
        }
        a.violationBits = uint192(bits);
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
        p.ep.jailedUntilEpoch = until;
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

    function _popcount(uint256 x) internal pure returns (uint256 n) {
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
        Pot memory p = _bonusPots[period];
        return M.BonusPot({pot: p.pot, remaining: p.remaining, totalAvailable: p.totalAvailable, finalized: p.finalized});
    }

    function periodAvailable(uint32 period) external view returns (uint256) {
        return _periodAvailable[period];
    }

    function bonusRecord(uint32 providerId, uint32 period) external view returns (M.BonusRecord memory) {
        PeriodRecord memory r = _periodRecords[providerId][period];
        return M.BonusRecord({
            unavailable: r.unavailable,
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
        return _isReported(epoch);
    }

    function _isReported(uint64 epoch) internal view returns (bool) {
        return _reportedBitmap[epoch >> 8] & (1 << (epoch & 0xff)) != 0;
    }

    /// @notice The commitment to the oracles' secret for `epoch` and, once the epoch's report
    /// revealed it, the secret (both 0: none was committed).
    function seedCommitment(uint64 epoch) external view returns (bytes32 commit, bytes32 reveal) {
        bytes32 stored = _seedCommits[epoch];
        if (stored == bytes32(0) || !_isReported(epoch)) return (stored, bytes32(0));
        return (keccak256(abi.encode(stored)), stored);
    }

    /// @notice The seed that selects `epoch`'s audits (0: not seeded yet). Reverts with
    /// `Market_AuditSetSecret` while it depends on a secret the epoch's report has not revealed.
    function auditSeed(uint64 epoch) public view returns (bytes32) {
        bytes32 chainSeed = _seeds[epoch];
        bytes32 stored = _seedCommits[epoch];
        if (chainSeed == bytes32(0) || stored == bytes32(0)) return chainSeed;
        if (!_isReported(epoch)) revert M.Market_AuditSetSecret(epoch);
        return _mixSeed(chainSeed, stored);
    }

    /// @notice The probability, in basis points, that a provider is audited in `epoch`.
    function auditProbabilityAt(uint64 epoch) external view returns (uint16) {
        return uint16(_auditBpsAt(epoch));
    }

    function isAudited(uint64 epoch, uint32 providerId) external view returns (bool) {
        return AuditSet.isAudited(auditSeed(epoch), providerId, _auditBpsAt(epoch));
    }

    /// @notice The digest oracles sign for an epoch's report.
    function reportDigest(uint64 epoch, bytes32 root, uint32 available, bytes calldata violations, bytes32 seedCommit)
        external
        view
        returns (bytes32)
    {
        return _digestOf(epoch, root, available, violations, seedCommit);
    }

    function _digestOf(uint64 epoch, bytes32 root, uint32 available, bytes calldata violations, bytes32 seedCommit)
        internal
        view
        returns (bytes32)
    {
        return _reportDigest(
            epoch,
            M.ReportHeader({
                root: root,
                available: available,
                violationsHash: keccak256(violations),
                seedCommit: seedCommit
            })
        );
    }

    /// @notice The Merkle root of the providers judged available in `epoch` (0: none, or not reported).
    function verdictRoot(uint64 epoch) external view returns (bytes32) {
        return _verdictRoots[epoch];
    }
}
