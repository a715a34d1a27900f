// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {BaseTest} from "./Base.t.sol";
import {IWirepactMarket} from "../src/interfaces/IWirepactMarket.sol";

/// The oracle set under attack: sybils, squatters, leavers and equivocators, played against the
/// real market. Honest oracles hold most of the stake here (1,000 tokens each); sybils join at
/// the 100-token minimum. Every test here failed on the count-quorum market.
contract OracleAttacksTest is BaseTest {
    uint32 internal id;
    address[] internal sybils;
    uint256[] internal sybilKeys;

    function setUp() public override {
        super.setUp();
        // A market whose 4 honest oracles stake 1,000 tokens each.
        market = _deployMarket(defaultParams(address(token)));
        _fund(client, 0);
        vm.prank(client);
        market.deposit(500 * ONE);
        _fund(prov, 0);
        _fund(prov2, 0);
        for (uint256 i; i < 4; ++i) {
            _fund(oracles[i], 1_000 * ONE);
            vm.prank(oracles[i]);
            market.registerOracle("https://oracle.example:8443", 1_000 * ONE);
        }
        id = _register(prov);
    }

    function _addSybils(uint256 n) internal {
        for (uint256 i; i < n; ++i) {
            (address a, uint256 k) = makeAddrAndKey(string(abi.encodePacked("sybil", vm.toString(i))));
            _fund(a, 100 * ONE);
            vm.prank(a);
            market.registerOracle("https://sybil.example", 100 * ONE);
            sybils.push(a);
            sybilKeys.push(k);
        }
    }

    /// The report the signers `who` make of their `rows` for provider `id` in `e`, sorted by signer.
    function _sign(uint64 e, address[] memory who, uint256[] memory keys, bytes[] memory rows)
        internal
        view
        returns (bytes memory measurements, bytes[] memory sigs)
    {
        uint256 n = who.length;
        // sort by address (insertion sort)
        for (uint256 i = 1; i < n; ++i) {
            for (uint256 j = i; j > 0 && who[j - 1] > who[j]; --j) {
                (who[j - 1], who[j]) = (who[j], who[j - 1]);
                (keys[j - 1], keys[j]) = (keys[j], keys[j - 1]);
                (rows[j - 1], rows[j]) = (rows[j], rows[j - 1]);
            }
        }
        // they exchange their rows, aggregate them and all sign the one digest
        return _reportBy(e, _ids1(id), who, keys, rows);
    }

    /// Sybils report 0 kbit/s (a violation); honest oracles, if `withHonest`, full speed.
    function _sybilReport(uint64 e, bool withHonest) internal {
        uint256 n = sybils.length + (withHonest ? 4 : 0);
        address[] memory who = new address[](n);
        uint256[] memory keys = new uint256[](n);
        bytes[] memory rows = new bytes[](n);
        for (uint256 i; i < sybils.length; ++i) {
            (who[i], keys[i], rows[i]) = (sybils[i], sybilKeys[i], _measurement(0, 20, true));
        }
        if (withHonest) {
            for (uint256 i; i < 4; ++i) {
                uint256 k = sybils.length + i;
                (who[k], keys[k], rows[k]) = (oracles[i], oracleKeys[i], _measurement(30_000, 20, true));
            }
        }
        if (withHonest) {
            // everyone exchanges rows and signs the aggregate
            (bytes memory m, bytes[] memory s) = _sign(e, who, keys, rows);
            _submitReport(e, _ids1(id), m, s);
        } else {
            // the sybils alone sign what they like: the provider listed as a violator
            bytes memory violations = abi.encodePacked(id, uint32(0), uint24(20), uint8(1));
            (address[] memory sorted, uint256[] memory sortedKeys) = _sorted(who, keys);
            bytes[] memory s = new bytes[](n);
            for (uint256 i; i < n; ++i) {
                (, s[i]) = _signHeader(sortedKeys[i], e, bytes32(0), 0, violations);
            }
            sorted;
            _submitRaw(e, bytes32(0), 0, violations, s);
        }
    }

    function _sorted(address[] memory who, uint256[] memory keys)
        internal
        pure
        returns (address[] memory, uint256[] memory)
    {
        for (uint256 i = 1; i < who.length; ++i) {
            for (uint256 j = i; j > 0 && who[j - 1] > who[j]; --j) {
                (who[j - 1], who[j]) = (who[j], who[j - 1]);
                (keys[j - 1], keys[j]) = (keys[j], keys[j - 1]);
            }
        }
        return (who, keys);
    }

    /// 7 sybils (700 of 4,700 staked) used to be a count quorum of 11 on their own and slashed
    /// an honest provider with two reports.
    function test_Attack_SybilsAloneAreNoQuorum() external {
        _addSybils(7);
        uint64 e = _nextEpoch();
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_QuorumNotReached.selector, 700 * ONE, 4_700 * ONE));
        this.sybilReportExt(e, false);
    }

    /// With every oracle signing, the sybils are a majority by count but not by stake: the
    /// stake-weighted medians follow the honest stake and the provider is not touched.
    function test_Attack_SybilsOutnumberingTheHonest_DoNotDecideTheVerdict() external {
        _addSybils(7);
        _sybilReport(_nextEpoch(), true);
        _sybilReport(_nextEpoch(), true);
        assertEq(market.provider(id).violationCount, 0);
        assertEq(market.provider(id).stake, 1_000 * ONE);
    }

    function sybilReportExt(uint64 e, bool withHonest) external {
        _sybilReport(e, withHonest);
    }

    /// An oracle that joins during an epoch does not count for that epoch: the set of an epoch
    /// is fixed when it starts.
    function test_Attack_JoinAndSignInTheSameEpoch_Refused() external {
        uint64 e = _nextEpoch();
        _addSybils(1);
        address[] memory who = new address[](4);
        uint256[] memory keys = new uint256[](4);
        bytes[] memory rows = new bytes[](4);
        for (uint256 i; i < 3; ++i) {
            (who[i], keys[i], rows[i]) = (oracles[i], oracleKeys[i], _measurement(30_000, 20, true));
        }
        (who[3], keys[3], rows[3]) = (sybils[0], sybilKeys[0], _measurement(30_000, 20, true));
        (bytes memory m, bytes[] memory s) = _sign(e, who, keys, rows);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_NotOracle.selector, sybils[0]));
        _submitReport(e, _ids1(id), m, s);
    }

    /// 124 sybils used to fill MAX_ORACLES so no honest oracle could join.
    function test_Attack_SquattersCannotLockOutAnHonestOracle() external {
        _addSybils(130);
        (address late,) = makeAddrAndKey("late honest oracle");
        _fund(late, 1_000 * ONE);
        vm.prank(late);
        market.registerOracle("https://late.example", 1_000 * ONE);
        assertEq(uint8(market.oracle(late).status), uint8(IWirepactMarket.OracleStatus.Active));
    }

    /// A signer that asks to leave after signing no longer voids the collected report: the
    /// epoch's set was fixed when it started.
    function test_Attack_SignerLeavesBeforeSubmission_ReportStands() external {
        uint64 e = _nextEpoch();
        bytes[] memory ms = new bytes[](4);
        for (uint256 i; i < 4; ++i) {
            ms[i] = _measurement(30_000, 20, true);
        }
        (bytes memory m, bytes[] memory s) = _report(e, _ids1(id), ms, 3);
        vm.prank(oracles[0]);
        market.requestOracleLeave();
        _submitReport(e, _ids1(id), m, s);
        assertTrue(market.isReported(e));
    }

    /// An empty report paid every signer its reward for nothing.
    function test_Attack_EmptyReport_Refused() external {
        uint64 e = _nextEpoch();
        uint256[] memory keys = new uint256[](3);
        for (uint256 i; i < 3; ++i) {
            (, keys[i]) = _oracle(i);
        }
        bytes[] memory s = _signAllKeys(keys, market.reportDigest(e, 0, 0, "", 0));
        vm.expectRevert(IWirepactMarket.Market_EmptyReport.selector);
        _submitRaw(e, 0, 0, "", s);
        // judging nobody, a report may still commit the secret of epoch e + 2, for no reward
        uint256 pool = market.rewardPool();
        uint256 paid = market.balanceOf(_signer(0));
        s = _signAllKeys(keys, market.reportDigest(e, 0, 0, "", _seedCommitOf(e + 2)));
        market.submitReport(e, 0, 0, "", _seedCommitOf(e + 2), 0, s);
        assertEq(market.rewardPool(), pool, "nothing paid from the pool");
        assertEq(market.balanceOf(_signer(0)), paid, "nothing paid to the signers");
        (bytes32 commit,) = market.seedCommitment(e + 2);
        assertEq(commit, _seedCommitOf(e + 2));
    }

    /// Signing two different reports for one epoch (equivocation) costs the whole stake;
    /// half goes to whoever proves it.
    function test_Attack_Equivocation_Slashed() external {
        uint64 e = _nextEpoch();
        bytes memory violation = abi.encodePacked(id, uint32(0), uint24(20), uint8(1));
        (IWirepactMarket.ReportHeader memory a, bytes memory sigA) = _signHeader(oracleKeys[1], e, keccak256("a"), 1, "");
        (IWirepactMarket.ReportHeader memory b, bytes memory sigB) =
            _signHeader(oracleKeys[1], e, keccak256("a"), 1, violation);
        uint256 pool = market.rewardPool();
        // the same report twice is no proof, nor two reports of two signers
        vm.expectRevert(IWirepactMarket.Market_NotEquivocation.selector);
        market.proveEquivocation(e, a, sigA, a, sigA);
        (, bytes memory sigOther) = _signHeader(oracleKeys[2], e, keccak256("a"), 1, violation);
        vm.expectRevert(IWirepactMarket.Market_NotEquivocation.selector);
        market.proveEquivocation(e, a, sigA, b, sigOther);
        vm.prank(client);
        market.proveEquivocation(e, a, sigA, b, sigB);
        assertEq(market.oracle(oracles[1]).stake, 0);
        assertEq(uint8(market.oracle(oracles[1]).status), uint8(IWirepactMarket.OracleStatus.Slashed));
        assertEq(market.balanceOf(client), 500 * ONE + 500 * ONE);
        assertEq(market.rewardPool(), pool + 500 * ONE);
        // and its signatures no longer count
        bytes[] memory ms = new bytes[](4);
        for (uint256 i; i < 4; ++i) {
            ms[i] = _measurement(30_000, 20, true);
        }
        (bytes memory m, bytes[] memory sigs) = _report(e, _ids1(id), ms, 4);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_NotOracle.selector, oracles[1]));
        _submitReport(e, _ids1(id), m, sigs);
    }

    /// The submitter used to pick which published rows count: with a borderline provider (two
    /// oracles saw it slow, two fast), dropping one slow row flipped the lower median to a pass
    /// and shielded the cheater. Now each oracle signs one aggregate over the set the leader proposed, and no
    /// subset of those signatures signs anything else.
    function test_Attack_SubmitterPicksTheRows_CannotFlipTheVerdict() external {
        uint64 e = _nextEpoch();
        bytes[] memory ms = new bytes[](4);
        ms[0] = _measurement(20_000, 20, true); // below 90 % of 25 Mbit/s
        ms[1] = _measurement(20_000, 20, true);
        ms[2] = _measurement(30_000, 20, true);
        ms[3] = _measurement(30_000, 20, true);
        // the aggregate over all four rows: lower median 20,000, a violation
        (bytes memory all4, bytes[] memory sigs) = _report(e, _ids1(id), ms, 4);
        // the submitter's pick: rows 0, 2, 3 (median 30,000: a pass), with the signatures it holds
        (bytes32 root, uint32 available, bytes memory violations) = _picked(e, ms);
        assertTrue(
            keccak256(abi.encode(root, available, violations)) != keccak256(_header(all4)),
            "the pick must change the aggregate for this test to mean anything"
        );
        bytes[] memory theirs = new bytes[](3);
        (theirs[0], theirs[1], theirs[2]) = (sigs[0], sigs[2], sigs[3]);
        vm.expectRevert(); // the signatures recover to strangers: not oracles, or out of order
        _submitRaw(e, root, available, violations, theirs);
        // the aggregate they signed goes through: the violation stands
        _submitReport(e, _ids1(id), all4, sigs);
        assertEq(market.provider(id).violationCount, 1);
    }

    function _picked(uint64 e, bytes[] memory ms) internal view returns (bytes32, uint32, bytes memory) {
        bytes[] memory picked = new bytes[](3);
        (picked[0], picked[1], picked[2]) = (ms[0], ms[2], ms[3]);
        address[] memory who = new address[](3);
        uint256[] memory keys = new uint256[](3);
        (who[0], who[1], who[2]) = (oracles[0], oracles[2], oracles[3]);
        (keys[0], keys[1], keys[2]) = (oracleKeys[0], oracleKeys[2], oracleKeys[3]);
        (bytes memory mine,) = _reportBy(e, _ids1(id), who, keys, picked);
        (bytes32 root, uint32 available, bytes memory violations,,) = abi.decode(mine, (bytes32, uint32, bytes, uint32[], uint32[]));
        return (root, available, violations);
    }

    function _header(bytes memory rep) internal pure returns (bytes memory) {
        (bytes32 root, uint32 available, bytes memory violations,,) = abi.decode(rep, (bytes32, uint32, bytes, uint32[], uint32[]));
        return abi.encode(root, available, violations);
    }

    /// A quorum's report that lists a provider as a violator on figures that meet its SLA is
    /// inconsistent and refused: the listed figures are checked on chain.
    function test_RevertWhen_ListedViolatorMeetsItsSla() external {
        uint64 e = _nextEpoch();
        bytes memory violations = abi.encodePacked(id, uint32(30_000), uint24(20), uint8(1));
        bytes[] memory s = new bytes[](4);
        for (uint256 i; i < 4; ++i) {
            (, s[i]) = _signHeader(oracleKeys[i], e, bytes32(0), 0, violations);
        }
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_NotAViolation.selector, id));
        _submitRaw(e, bytes32(0), 0, violations, s);
    }
}
