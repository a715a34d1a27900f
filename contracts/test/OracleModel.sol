// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {CommonBase} from "forge-std/Base.sol";
import {IWirepactMarket} from "../src/interfaces/IWirepactMarket.sol";
import {Median} from "./lib/Median.sol";
import {AuditSet} from "../src/libraries/AuditSet.sol";

/// The oracles' off-chain side (exchange rows, aggregate, build the verdict tree, sign one
/// digest), written again in Solidity as the tests' reference: the Rust daemons implement
/// the same rules (`wirepact_proto::verdicts`), and the market checks what it can of them.
abstract contract OracleModel is CommonBase {
    function _market() internal view virtual returns (IWirepactMarket);

    /// Oracle `i` in ascending address order, and its key.
    function _oracle(uint256 i) internal view virtual returns (address, uint256);

    function _signer(uint256 i) internal view returns (address a) {
        (a,) = _oracle(i);
    }

    /// What the oracles' daemons do off chain, written again here as the tests' reference:
    /// oracle i observed `ms[i]` (8 bytes per provider of `ids`); the first `nSigners`
    /// oracles (sorted) exchange their rows, aggregate them and all sign the one digest.
    /// Returns the report as `abi.encode(root, available, violations, availableIds)` for
    /// `_submitReport`.
    function _report(uint64 epoch, bytes memory ids, bytes[] memory ms, uint256 nSigners)
        internal
        view
        returns (bytes memory rep, bytes[] memory sigs)
    {
        address[] memory who = new address[](nSigners);
        uint256[] memory keys = new uint256[](nSigners);
        for (uint256 i; i < nSigners; ++i) {
            (who[i], keys[i]) = _oracle(i);
        }
        return _reportBy(epoch, ids, who, keys, ms);
    }

    /// The report signers `who` (ascending, keys `keys`) make of their rows `ms`: per provider,
    /// stake-weighted lower medians over the rows that measured it, no verdict unless more
    /// than two thirds of the epoch's stake measured it, reachable by stake majority; the
    /// providers judged reachable make the verdict tree, the violators are listed.
    function _reportBy(
        uint64 epoch,
        bytes memory ids,
        address[] memory who,
        uint256[] memory keys,
        bytes[] memory ms
    ) internal view returns (bytes memory rep, bytes[] memory sigs) {
        rep = _aggregateReport(epoch, ids, ms, who);
        sigs = _signAllKeys(keys, _digestOf(epoch, rep));
    }

    /// `abi.encode(root, available, violations, availableIds, bases, seedCommit)`.
    function _aggregateReport(uint64 epoch, bytes memory ids, bytes[] memory ms, address[] memory who)
        internal
        view
        returns (bytes memory)
    {
        (, uint32 available, bytes memory violations, uint32[] memory availableIds) = _aggregateAll(epoch, ids, ms, who);
        uint32[] memory bases = new uint32[](availableIds.length);
        for (uint256 i; i < bases.length; ++i) {
            bases[i] = _base(epoch, availableIds[i]);
        }
        bytes32 root = _verdictRoot(epoch, availableIds, bases);
        return abi.encode(root, available, violations, availableIds, bases, _seedCommitOf(epoch + 2));
    }

    function _digestOf(uint64 epoch, bytes memory rep) internal view returns (bytes32) {
        (bytes32 root, uint32 available, bytes memory violations,,, bytes32 commit) =
            abi.decode(rep, (bytes32, uint32, bytes, uint32[], uint32[], bytes32));
        return _market().reportDigest(epoch, root, available, violations, commit);
    }

    function _signAllKeys(uint256[] memory keys, bytes32 digest) internal pure returns (bytes[] memory sigs) {
        sigs = new bytes[](keys.length);
        for (uint256 i; i < keys.length; ++i) {
            (uint8 v, bytes32 r, bytes32 s_) = vm.sign(keys[i], digest);
            sigs[i] = abi.encodePacked(r, s_, v);
        }
    }

    /// The secret the model's oracles draw for `epoch` (deterministic, so tests can name it).
    function _secretOf(uint64 epoch) internal pure returns (bytes32) {
        return keccak256(abi.encode("wirepact test oracles' secret", epoch));
    }

    function _seedCommitOf(uint64 epoch) internal pure returns (bytes32) {
        return keccak256(abi.encode(_secretOf(epoch)));
    }

    /// Epochs whose secret an accepted report committed.
    mapping(uint64 epoch => bool) internal _committed;

    /// What a report of `epoch` reveals: the secret committed for it, else 0.
    function _revealOf(uint64 epoch) internal view returns (bytes32) {
        return _committed[epoch] ? _secretOf(epoch) : bytes32(0);
    }

    /// Provider `id` audited in `epoch`, as the oracles (who hold the secret) know it during the
    /// epoch; the chain tells only after the epoch's report.
    function _auditedOffChain(uint64 epoch, uint32 id) internal view returns (bool) {
        bytes32 seed = _market().epochSeed(epoch);
        if (_committed[epoch]) seed = keccak256(abi.encode(seed, _secretOf(epoch)));
        return AuditSet.isAudited(seed, id, _market().auditProbabilityAt(epoch));
    }

    /// `submitReport` with no commitment and this epoch's reveal (for reports the tests build by
    /// hand).
    function _submitRaw(uint64 epoch, bytes32 root, uint32 available, bytes memory violations, bytes[] memory sigs)
        internal
    {
        _market().submitReport(epoch, root, available, violations, bytes32(0), _revealOf(epoch), sigs);
    }

    /// Provider `id`'s available verdicts in the accepted reports of `epoch`'s period up to
    /// `epoch - 2`, after its registration epoch and any jail (the leaf's `base`).
    function _base(uint64 epoch, uint32 id) internal view returns (uint32 n) {
        uint64 len = _market().params().rewardPeriodEpochs;
        uint64 first = (epoch / len) * len;
        IWirepactMarket.ProviderView memory v = _market().provider(id);
        if (first <= v.registeredEpoch) first = v.registeredEpoch + 1;
        if (first < v.jailedUntilEpoch) first = v.jailedUntilEpoch;
        for (uint64 e = first; e + 2 <= epoch; ++e) {
            uint32[] storage a = _availableIds[e];
            for (uint256 i; i < a.length; ++i) {
                if (a[i] == id) ++n;
            }
        }
    }

    function _aggregateAll(uint64 epoch, bytes memory ids, bytes[] memory ms, address[] memory who)
        internal
        view
        returns (bytes32 root, uint32 available, bytes memory violations, uint32[] memory availableIds)
    {
        uint256 count = ids.length / 4;
        uint32[] memory avail = new uint32[](count);
        for (uint256 j; j < count; ++j) {
            uint32 id = uint32(bytes4(_slice(ids, j * 4, 4)));
            (bool available_, bytes memory violation) = _verdict(epoch, id, ms, j, who);
            if (available_) avail[available++] = id;
            violations = bytes.concat(violations, violation);
        }
        availableIds = new uint32[](available);
        for (uint256 j; j < available; ++j) {
            availableIds[j] = avail[j];
        }
        root = bytes32(0); // the caller builds the tree (it needs the leaves' bases)
    }

    /// A report header signed with `key` (what `proveEquivocation` takes).
    function _signHeader(uint256 key, uint64 epoch, bytes32 root, uint32 available, bytes memory violations)
        internal
        view
        returns (IWirepactMarket.ReportHeader memory h, bytes memory sig)
    {
        h = IWirepactMarket.ReportHeader({
            root: root,
            available: available,
            violationsHash: keccak256(violations),
            seedCommit: bytes32(0)
        });
        (uint8 v, bytes32 r, bytes32 s_) = vm.sign(key, _market().reportDigest(epoch, root, available, violations, 0));
        sig = abi.encodePacked(r, s_, v);
    }

    /// Provider `id` (column `j` of the rows): judged available, and its violations entry
    /// (empty unless it violates).
    function _verdict(uint64 epoch, uint32 id, bytes[] memory ms, uint256 j, address[] memory who)
        internal
        view
        returns (bool available, bytes memory violation)
    {
        (bool measured, bool reachable, uint32 thr, uint32 lat) = _aggregate(epoch, ms, j, who);
        if (!measured) return (false, "");
        available = reachable;
        if (_violates(id, reachable, thr, lat)) {
            violation = abi.encodePacked(id, thr, uint24(lat), uint8(reachable ? 1 : 0));
        }
    }

    /// Epoch => the ids its accepted report judged available, and their leaves' bases.
    mapping(uint64 epoch => uint32[]) internal _availableIds;
    mapping(uint64 epoch => uint32[]) internal _availableBases;

    /// Submits a report built by `_report` (`ids`, what it was built from, is not needed), with
    /// its commitment to the secret of `epoch + 2` and the reveal of this epoch's.
    function _submitReport(uint64 epoch, bytes memory, bytes memory rep, bytes[] memory sigs) internal {
        (bytes32 root, uint32 available, bytes memory violations,,, bytes32 commit) =
            abi.decode(rep, (bytes32, uint32, bytes, uint32[], uint32[], bytes32));
        _market().submitReport(epoch, root, available, violations, commit, _revealOf(epoch), sigs);
        _committed[epoch + 2] = true;
        _recordVerdicts(epoch, rep);
    }

    function _recordVerdicts(uint64 epoch, bytes memory rep) internal {
        (,,, uint32[] memory availableIds, uint32[] memory bases,) =
            abi.decode(rep, (bytes32, uint32, bytes, uint32[], uint32[], bytes32));
        _availableIds[epoch] = availableIds;
        _availableBases[epoch] = bases;
    }

    /// `claimBonus` as a provider makes it from the accepted reports: its leaf in the last of
    /// `epochs` and, if the one before is listed too and is the epoch before, that leaf (an
    /// epoch whose report did not judge the provider available gets an empty proof).
    function _claimBonus(uint32 id, uint32 period, uint64[] memory epochs) internal {
        _market().claimBonus(id, period, _bonusLeaves(id, epochs));
    }

    function _bonusLeaves(uint32 id, uint64[] memory epochs) internal view returns (IWirepactMarket.BonusLeaf[] memory l) {
        uint256 n = epochs.length;
        if (n == 0) return new IWirepactMarket.BonusLeaf[](0);
        bool two = n >= 2 && epochs[n - 2] + 1 == epochs[n - 1];
        l = new IWirepactMarket.BonusLeaf[](two ? 2 : 1);
        l[0] = _leafOf(epochs[n - 1], id);
        if (two) l[1] = _leafOf(epochs[n - 2], id);
    }

    function _judgedAvailable(uint64 epoch, uint32 id) internal view returns (bool) {
        uint32[] storage a = _availableIds[epoch];
        for (uint256 i; i < a.length; ++i) {
            if (a[i] == id) return true;
        }
        return false;
    }

    function _leafOf(uint64 epoch, uint32 id) internal view returns (IWirepactMarket.BonusLeaf memory l) {
        l.epoch = epoch;
        (l.base, l.proof) = _proofFor(epoch, id);
    }

    function _proofFor(uint64 epoch, uint32 id) internal view returns (uint32 base, bytes32[] memory proof) {
        uint32[] memory ids = _availableIds[epoch];
        uint32[] memory bases = _availableBases[epoch];
        bytes32[] memory level = _leaves(epoch, ids, bases);
        uint256 at = type(uint256).max;
        for (uint256 i; i < ids.length; ++i) {
            if (ids[i] == id) at = i;
        }
        if (at == type(uint256).max) return (0, new bytes32[](0));
        base = bases[at];
        bytes32[] memory buf = new bytes32[](64);
        uint256 n;
        while (level.length > 1) {
            uint256 sib = at ^ 1;
            if (sib < level.length) buf[n++] = level[sib];
            level = _up(level);
            at /= 2;
        }
        proof = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            proof[i] = buf[i];
        }
    }

    function _leaves(uint64 epoch, uint32[] memory ids, uint32[] memory bases)
        internal
        pure
        returns (bytes32[] memory level)
    {
        level = new bytes32[](ids.length);
        for (uint256 i; i < ids.length; ++i) {
            level[i] = keccak256(bytes.concat(keccak256(abi.encode(epoch, ids[i], bases[i]))));
        }
    }

    /// One level up: pairs hashed in sorted order, an odd last node carried up unchanged.
    function _up(bytes32[] memory level) internal pure returns (bytes32[] memory next) {
        next = new bytes32[]((level.length + 1) / 2);
        for (uint256 i; i < next.length; ++i) {
            if (2 * i + 1 < level.length) {
                (bytes32 a, bytes32 b) = (level[2 * i], level[2 * i + 1]);
                next[i] = a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
            } else {
                next[i] = level[2 * i];
            }
        }
    }

    function _verdictRoot(uint64 epoch, uint32[] memory ids, uint32[] memory bases) internal pure returns (bytes32) {
        if (ids.length == 0) return bytes32(0);
        bytes32[] memory level = _leaves(epoch, ids, bases);
        while (level.length > 1) {
            level = _up(level);
        }
        return level[0];
    }

    function _aggregate(uint64 epoch, bytes[] memory ms, uint256 j, address[] memory who)
        internal
        view
        returns (bool measured, bool reachable, uint32 thr, uint32 lat)
    {
        Cols memory c = Cols(new uint32[](who.length), new uint32[](who.length), new uint256[](who.length), new uint256[](who.length));
        uint256 k;
        uint256 measuredStake;
        uint256 reachableStake;
        for (uint256 i; i < who.length; ++i) {
            uint64 rec = uint64(bytes8(_slice(ms[i], j * 8, 8)));
            if (rec & 2 != 0) continue;
            uint256 stake = _market().oracle(who[i]).stake;
            c.thr[k] = uint32(rec >> 32);
            c.lat[k] = uint32(rec >> 8) & 0xffffff;
            c.w[k] = stake;
            c.w2[k] = stake;
            ++k;
            measuredStake += stake;
            if (rec & 1 == 1) reachableStake += stake;
        }
        measured = measuredStake * 3 > _market().oracleStakeAt(epoch) * 2;
        if (!measured) return (false, false, 0, 0);
        reachable = reachableStake * 2 > measuredStake;
        thr = Median.weightedLowerMedian(c.thr, c.w, k, measuredStake);
        lat = Median.weightedLowerMedian(c.lat, c.w2, k, measuredStake);
    }

    struct Cols {
        uint32[] thr;
        uint32[] lat;
        uint256[] w;
        uint256[] w2;
    }

    function _violates(uint32 id, bool reachable, uint32 thr, uint32 lat) internal view returns (bool) {
        IWirepactMarket.ProviderView memory p = _market().provider(id);
        IWirepactMarket.Params memory q = _market().params();
        return !reachable
            || uint256(thr) * 10_000 < uint256(p.sessionMbps) * 1000 * (10_000 - q.throughputToleranceBps)
            || lat > p.maxLatencyMs + q.latencyToleranceMs;
    }

    function _slice(bytes memory b, uint256 from, uint256 len) internal pure returns (bytes memory out) {
        out = new bytes(len);
        for (uint256 i; i < len; ++i) {
            out[i] = b[from + i];
        }
    }

}
