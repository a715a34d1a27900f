// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {BaseTest} from "./Base.t.sol";
import {IWirepactMarket} from "../src/interfaces/IWirepactMarket.sol";

/// Branches follow test/trees/submitReport.tree.
contract SubmitReportTest is BaseTest {
    uint32 internal id;
    uint64 internal e;

    function setUp() public override {
        super.setUp();
        id = _register(prov);
        e = _nextEpoch();
    }

    function _same(uint32 kbps, uint32 lat, bool up) internal pure returns (bytes[] memory ms) {
        ms = new bytes[](4);
        for (uint256 i; i < 4; ++i) {
            ms[i] = abi.encodePacked(kbps, uint24(lat), uint8(up ? 1 : 0));
        }
    }

    function test_RevertWhen_EpochInFuture() external {
        (bytes memory m, bytes[] memory s) = _report(e + 1, _ids1(id), _same(30_000, 20, true), 3);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_EpochNotStarted.selector, e + 1));
        _submitReport(e + 1, _ids1(id), m, s);
    }

    function test_RevertWhen_WindowClosed() external {
        (bytes memory m, bytes[] memory s) = _report(e, _ids1(id), _same(30_000, 20, true), 3);
        vm.warp(_now() + 2 * EPOCH);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_ReportWindowClosed.selector, e));
        _submitReport(e, _ids1(id), m, s);
    }

    function test_When_NextEpoch_StillAccepted() external {
        (bytes memory m, bytes[] memory s) = _report(e, _ids1(id), _same(30_000, 20, true), 3);
        vm.warp(_now() + EPOCH);
        _submitReport(e, _ids1(id), m, s);
        assertTrue(market.isReported(e));
    }

    function test_RevertWhen_NotSeeded() external {
        vm.warp(_now() + EPOCH);
        uint64 e2 = market.currentEpoch();
        (bytes memory m, bytes[] memory s) = _report(e2, _ids1(id), _same(30_000, 20, true), 3);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_EpochNotSeeded.selector, e2));
        _submitReport(e2, _ids1(id), m, s);
    }

    function test_RevertWhen_AlreadyReported() external {
        (bytes memory m, bytes[] memory s) = _report(e, _ids1(id), _same(30_000, 20, true), 3);
        _submitReport(e, _ids1(id), m, s);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_AlreadyReported.selector, e));
        _submitReport(e, _ids1(id), m, s);
    }

    function test_RevertWhen_TwoSignatures() external {
        (bytes memory m, bytes[] memory s) = _report(e, _ids1(id), _same(30_000, 20, true), 2);
        // (below MIN_SIGNERS; the stake quorum is played in OracleAttacks.t.sol)
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_TooFewOracles.selector, 2));
        _submitReport(e, _ids1(id), m, s);
    }

    function test_RevertWhen_DuplicateSigner() external {
        (bytes memory m, bytes[] memory s) = _report(e, _ids1(id), _same(30_000, 20, true), 3);
        s[1] = s[0]; // the same signer twice (rows are identical)
        vm.expectRevert(IWirepactMarket.Market_SignersNotSorted.selector);
        _submitReport(e, _ids1(id), m, s);
    }

    function test_RevertWhen_SignerNotOracle() external {
        (bytes memory m, bytes[] memory s) = _report(e, _ids1(id), _same(30_000, 20, true), 3);
        // Replace the last signer by a key that is not an oracle (but sorts last).
        uint256 pk = uint256(keccak256("stranger"));
        address stranger = vm.addr(pk);
        vm.assume(stranger > oracles[1]);
        (bytes32 root, uint32 available, bytes memory violations,,) = abi.decode(m, (bytes32, uint32, bytes, uint32[], uint32[]));
        (uint8 v, bytes32 r, bytes32 ss) = vm.sign(pk, market.reportDigest(e, root, available, violations, _seedCommitOf(e + 2)));
        s[2] = abi.encodePacked(r, ss, v);
        if (stranger > oracles[1]) {
            vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_NotOracle.selector, stranger));
        } else {
            vm.expectRevert(IWirepactMarket.Market_SignersNotSorted.selector);
        }
        _submitReport(e, _ids1(id), m, s);
    }

    function test_RevertWhen_MeasurementTampered() external {
        (bytes memory m, bytes[] memory s) = _report(e, _ids1(id), _same(30_000, 20, true), 3);
        m[3] = 0x01; // the root changed: the signatures no longer match
        vm.expectRevert(); // recovers some other address: not an oracle or out of order
        _submitReport(e, _ids1(id), m, s);
    }

    function test_RevertWhen_MalformedLengths() external {
        (bytes memory m, bytes[] memory s) = _report(e, _ids1(id), _same(0, 20, true), 3);
        (bytes32 root, uint32 available, bytes memory violations,,) = abi.decode(m, (bytes32, uint32, bytes, uint32[], uint32[]));
        assertEq(violations.length, 12);
        // a violations list that is not whole 12-byte entries
        vm.expectRevert(IWirepactMarket.Market_MalformedReport.selector);
        _submitRaw(e, root, available, bytes.concat(violations, hex"00"), s);
        // a root without a count, or a count without a root
        vm.expectRevert(IWirepactMarket.Market_MalformedReport.selector);
        _submitRaw(e, root, 0, violations, s);
        vm.expectRevert(IWirepactMarket.Market_MalformedReport.selector);
        _submitRaw(e, bytes32(0), 1, violations, s);
    }

    /// A report needs at least MIN_SIGNERS distinct signers, even when one oracle holds more
    /// than two thirds of the stake.
    function test_RevertWhen_TooFewSigners() external {
        (address whale, uint256 key) = makeAddrAndKey("whale");
        _fund(whale, 10_000 * ONE);
        vm.prank(whale);
        market.registerOracle("https://whale.example", 10_000 * ONE);
        uint64 e2 = _nextEpoch();
        (, bytes memory sig) = _signHeader(key, e2, keccak256("leaf"), 1, "");
        bytes[] memory s = new bytes[](1);
        s[0] = sig;
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_TooFewOracles.selector, 1));
        _submitRaw(e2, keccak256("leaf"), 1, "", s);
    }

    function test_RevertWhen_ProviderNotAudited() external {
        // A market where nobody is audited in practice (1 bps), provider 1 is very likely not.
        IWirepactMarket.Params memory p = defaultParams(address(token));
        p.auditProbabilityBps = 1;
        market = _marketWithOracles(p);
        vm.startPrank(prov);
        token.approve(address(market), type(uint256).max);
        uint32 pid = market.registerProvider(_terms(), bytes32(uint256(1)), "x:1", "", 1_000 * ONE);
        vm.stopPrank();
        uint64 e0 = _nextEpoch(); // the oracles sign from the epoch after they joined
        vm.assume(!market.isAudited(e0, pid));
        // listed as a violator (0 kbit/s) in an epoch that did not audit it
        (bytes memory m, bytes[] memory s) = _report(e0, _ids1(pid), _same(0, 20, true), 3);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_ProviderNotAudited.selector, e0, pid));
        _submitReport(e0, _ids1(pid), m, s);
    }

    function test_RevertWhen_ProvidersNotSorted() external {
        uint32 id2 = _register(prov2);
        bytes memory ids = abi.encodePacked(id2, id);
        bytes[] memory ms = new bytes[](4);
        for (uint256 i; i < 4; ++i) {
            ms[i] = abi.encodePacked(_measurement(0, 20, true), _measurement(0, 20, true));
        }
        (bytes memory m, bytes[] memory s) = _report(e, ids, ms, 3);
        vm.expectRevert(IWirepactMarket.Market_ProvidersNotSorted.selector);
        _submitReport(e, ids, m, s);
    }

    function test_When_Healthy_NoViolationAndOraclesPaid() external {
        // Fill the pool a little so oracle rewards can be paid.
        (IWirepactMarket.SessionTerms memory t, bytes32 sid) = _open(id, 10 * ONE);
        _claim(t, sid, uint64(1_000 * GIB)); // pays the whole deposit: fee 0.2
        market.collectEarnings(id);
        uint256 pool = market.rewardPool();
        _reportOne(e, id, 30_000, 20, true);
        assertEq(market.provider(id).violationCount, 0);
        assertEq(market.provider(id).violationBits, 0);
        assertEq(market.rewardPool(), pool - 3 * (ONE / 100));
        for (uint256 i; i < 3; ++i) {
            assertEq(market.balanceOf(oracles[i]), ONE / 100);
        }
        assertEq(market.balanceOf(oracles[3]), 0);
    }

    function test_When_ThroughputAtTolerance_NoViolation() external {
        // SLA 25 Mbit/s, 10% tolerance: 22,500 kbit/s passes, 22,499 fails.
        _reportOne(e, id, 22_500, 20, true);
        assertEq(market.provider(id).violationCount, 0);
        uint64 e2 = _nextEpoch();
        _reportOne(e2, id, 22_499, 20, true);
        assertEq(market.provider(id).violationCount, 1);
    }

    function test_When_LatencyOverTolerance_Violation() external {
        _reportOne(e, id, 30_000, 100, true); // 80 + 20 passes
        assertEq(market.provider(id).violationCount, 0);
        uint64 e2 = _nextEpoch();
        _reportOne(e2, id, 30_000, 101, true);
        assertEq(market.provider(id).violationCount, 1);
    }

    function test_When_Unreachable_Violation() external {
        _reportOne(e, id, 0, 0, false);
        assertEq(market.provider(id).violationCount, 1);
    }

    function test_When_KViolationsInWindow_SlashedAndJailed() external {
        uint256 stakeBefore = market.provider(id).stake;
        _reportOne(e, id, 5_000, 20, true);
        uint64 e2 = _nextEpoch();
        _reportOne(e2, id, 5_000, 20, true);
        IWirepactMarket.ProviderView memory v = market.provider(id);
        uint256 slash = stakeBefore / 10;
        assertEq(v.stake, stakeBefore - slash);
        assertEq(uint8(v.status), uint8(IWirepactMarket.ProviderStatus.Jailed));
        assertEq(v.jailedUntilEpoch, e2 + 1 + 6);
        assertEq(v.violationBits, 0);
        uint256 each = (slash * 2_000 / 10_000) / 3;
        // signers got their share of the slash, then the per-report reward out of the refilled pool
        assertEq(market.balanceOf(oracles[0]), each + ONE / 100);
        assertEq(market.rewardPool(), slash - 3 * each - 3 * (ONE / 100));
        // jailed: no new sessions
        vm.prank(client);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_ProviderNotActive.selector, id));
        market.openSession(id, ONE, type(uint256).max, sessionKey);
    }

    function test_When_ViolationsOutsideWindow_NotSlashed() external {
        // k = 2 within w = 3 audits at 100 % audits: a window of 6 epochs. Violation, five
        // passes, violation -> not slashed.
        _reportOne(e, id, 5_000, 20, true);
        for (uint256 i; i < 5; ++i) {
            _reportOne(_nextEpoch(), id, 30_000, 20, true);
        }
        _reportOne(_nextEpoch(), id, 5_000, 20, true);
        assertEq(uint8(market.provider(id).status), uint8(IWirepactMarket.ProviderStatus.Active));
        assertEq(market.provider(id).violationCount, 2);
    }

    function test_When_PassBetweenViolationsInWindow_StillSlashed() external {
        // k = 2 within w = 3 (3 epochs at 100 % audits): violation, ok, violation -> slashed.
        // The pass in between writes nothing: the window counts epochs.
        _reportOne(e, id, 5_000, 20, true);
        _reportOne(_nextEpoch(), id, 30_000, 20, true);
        assertEq(market.provider(id).violationBits, 1);
        assertEq(market.provider(id).lastViolationEpoch, e);
        _reportOne(_nextEpoch(), id, 5_000, 20, true);
        assertEq(uint8(market.provider(id).status), uint8(IWirepactMarket.ProviderStatus.Jailed));
    }

    /// One lying oracle (0 for the honest provider, full speed for the cheater) changes no verdict.
    function test_When_OneOracleLies_VerdictsUnchanged() external {
        uint32 cheat = _register(prov2);
        bytes memory ids = abi.encodePacked(id, cheat);
        for (uint256 round; round < 2; ++round) {
            uint64 ep = round == 0 ? e : _nextEpoch();
            for (uint256 liar; liar < 3; ++liar) {
                bytes[] memory ms = new bytes[](4);
                for (uint256 i; i < 4; ++i) {
                    ms[i] = i == liar
                        ? abi.encodePacked(_measurement(0, 9_999, false), _measurement(100_000, 5, true))
                        : abi.encodePacked(_measurement(26_000, 30, true), _measurement(10_000, 30, true));
                }
                if (liar != round) continue; // one report per epoch; vary the liar's position
                (bytes memory m, bytes[] memory s) = _report(ep, ids, ms, 3);
                _submitReport(ep, ids, m, s);
            }
        }
        assertEq(market.provider(id).violationCount, 0);
        assertEq(uint8(market.provider(id).status), uint8(IWirepactMarket.ProviderStatus.Active));
        assertEq(uint8(market.provider(cheat).status), uint8(IWirepactMarket.ProviderStatus.Jailed));
    }

    function test_When_JailedProviderListed_StillJudged() external {
        _reportOne(e, id, 5_000, 20, true);
        _reportOne(_nextEpoch(), id, 5_000, 20, true);
        uint32 before = market.provider(id).violationCount;
        _reportOne(_nextEpoch(), id, 5_000, 20, true);
        assertEq(market.provider(id).violationCount, before + 1);
    }

    /// The quorum is more than two thirds of the stake eligible for the epoch; oracles that
    /// join count from the next epoch on.
    function testFuzz_QuorumIsTwoThirdsOfTheEpochsStake(uint8 extra, uint96 stake) external {
        uint256 add = bound(extra, 0, 20);
        uint256 st = bound(stake, 100 * ONE, 10_000 * ONE);
        address[] memory signers = new address[](3);
        for (uint256 i; i < 3; ++i) {
            signers[i] = oracles[i];
        }
        for (uint256 i; i < add; ++i) {
            address o = address(uint160(0x10000 + i));
            _fund(o, st);
            vm.prank(o);
            market.registerOracle("https://o", st);
        }
        uint64 now_ = market.currentEpoch();
        (uint256 signing, uint256 eligible) = market.signingStake(now_, signers);
        assertEq(eligible, 400 * ONE, "joiners do not count in the epoch they join");
        assertEq(signing, 300 * ONE);
        (signing, eligible) = market.signingStake(now_ + 1, signers);
        assertEq(eligible, 400 * ONE + add * st);
        assertEq(market.oracleStakeAt(now_ + 5), eligible);
        bool enough = signing * 3 > eligible * 2;
        assertEq(enough, add == 0);
    }

    /// The window counts epochs (twice the epochs of `violationWindow` audits at the audit
    /// probability): two violations further apart than that do not slash, even with no report
    /// in between.
    function test_When_ViolationsFurtherApartThanTheWindow_NotSlashed() external {
        _reportOne(e, id, 5_000, 20, true);
        for (uint256 i; i < 4; ++i) {
            _nextEpoch(); // unreported epochs
        }
        // e + 5: still inside the 6-epoch window; e + 6 would not be
        uint64 last = _nextEpoch();
        assertEq(last, e + 5);
        vm.warp(_now() + EPOCH);
        vm.roll(block.number + 1);
        market.beginEpoch();
        _reportOne(e + 6, id, 5_000, 20, true);
        assertEq(uint8(market.provider(id).status), uint8(IWirepactMarket.ProviderStatus.Active));
        assertEq(market.provider(id).violationCount, 2);
    }

    /// Reports of two epochs may land in either order (epoch e is accepted during e + 1): a
    /// late report still counts toward the window.
    function test_When_EarlierEpochReportedLate_StillCounts() external {
        uint64 e2 = _nextEpoch();
        _reportOne(e2, id, 5_000, 20, true);
        _reportOne(e, id, 5_000, 20, true); // epoch e, reported during e + 1
        assertEq(uint8(market.provider(id).status), uint8(IWirepactMarket.ProviderStatus.Jailed));
    }
}

/// Branches follow test/trees/beginEpoch.tree.
contract EpochTest is BaseTest {
    function test_When_FirstCall_FixesSeed() external {
        bytes32 s = market.beginEpoch();
        assertTrue(s != bytes32(0));
        assertEq(market.epochSeed(market.currentEpoch()), s);
        vm.roll(block.number + 5);
        vm.prevrandao(bytes32(uint256(42)));
        assertEq(market.beginEpoch(), s, "second call in the epoch keeps the seed");
    }

    function test_When_NewEpoch_NewSeed() external {
        bytes32 s0 = market.beginEpoch();
        vm.warp(_now() + EPOCH);
        vm.roll(block.number + 1);
        bytes32 s1 = market.beginEpoch();
        assertTrue(s0 != s1);
    }

    function test_AuditProbabilityRoughlyHonoured() external {
        IWirepactMarket.Params memory p = defaultParams(address(token));
        p.auditProbabilityBps = 2_500;
        market = _deployMarket(p);
        uint256 hits;
        for (uint64 ep; ep < 20; ++ep) {
            market.beginEpoch();
            for (uint32 pid = 1; pid <= 50; ++pid) {
                if (market.isAudited(market.currentEpoch(), pid)) ++hits;
            }
            vm.warp(_now() + EPOCH);
            vm.roll(block.number + 1);
        }
        // 1000 draws at p = 0.25: mean 250, sd ~13.7; +-5 sd
        assertGt(hits, 181);
        assertLt(hits, 319);
    }
}
