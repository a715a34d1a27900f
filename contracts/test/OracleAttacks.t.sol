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

    /// Signs `row` for provider `id` in `e` with each key; returns the report sorted by signer.
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
        sigs = new bytes[](n);
        for (uint256 i; i < n; ++i) {
            measurements = bytes.concat(measurements, rows[i]);
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[i], market.observationsDigest(e, _ids1(id), rows[i]));
            sigs[i] = abi.encodePacked(r, s, v);
        }
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
        (bytes memory m, bytes[] memory s) = _sign(e, who, keys, rows);
        market.submitReport(e, _ids1(id), m, s);
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
        market.submitReport(e, _ids1(id), m, s);
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
        market.submitReport(e, _ids1(id), m, s);
        assertTrue(market.isReported(e));
    }

    /// An empty report paid every signer its reward for nothing.
    function test_Attack_EmptyReport_Refused() external {
        uint64 e = _nextEpoch();
        bytes[] memory ms = new bytes[](4);
        (bytes memory m, bytes[] memory s) = _report(e, "", ms, 3);
        vm.expectRevert(IWirepactMarket.Market_MalformedReport.selector);
        market.submitReport(e, "", m, s);
    }

    /// Signing two different observations for one epoch (equivocation) costs the whole stake;
    /// half goes to whoever proves it.
    function test_Attack_Equivocation_Slashed() external {
        uint64 e = _nextEpoch();
        bytes memory rowA = _measurement(30_000, 20, true);
        bytes memory rowB = _measurement(0, 20, true);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(oracleKeys[1], market.observationsDigest(e, _ids1(id), rowA));
        bytes memory sigA = abi.encodePacked(r, s, v);
        (v, r, s) = vm.sign(oracleKeys[1], market.observationsDigest(e, _ids1(id), rowB));
        bytes memory sigB = abi.encodePacked(r, s, v);
        uint256 pool = market.rewardPool();
        // the same observation twice is no proof
        vm.expectRevert(IWirepactMarket.Market_NotEquivocation.selector);
        market.proveEquivocation(e, _ids1(id), rowA, sigA, _ids1(id), rowA, sigA);
        vm.prank(client);
        market.proveEquivocation(e, _ids1(id), rowA, sigA, _ids1(id), rowB, sigB);
        assertEq(market.oracle(oracles[1]).stake, 0);
        assertEq(uint8(market.oracle(oracles[1]).status), uint8(IWirepactMarket.OracleStatus.Slashed));
        assertEq(market.balanceOf(client), 500 * ONE + 500 * ONE);
        assertEq(market.rewardPool(), pool + 500 * ONE);
        // and its signatures no longer count
        bytes[] memory ms = new bytes[](4);
        for (uint256 i; i < 4; ++i) {
            ms[i] = _measurement(30_000, 20, true);
        }
        (bytes memory m, bytes[] memory sigs) = _report(e, _ids1(id), ms, 3);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_NotOracle.selector, oracles[1]));
        market.submitReport(e, _ids1(id), m, sigs);
    }
}
