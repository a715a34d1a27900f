// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {BaseTest} from "./Base.t.sol";
import {IWirepactMarket} from "../src/interfaces/IWirepactMarket.sol";

contract AccountsTest is BaseTest {
    function test_RevertWhen_DepositZero() external {
        vm.expectRevert(IWirepactMarket.Market_ZeroAmount.selector);
        market.deposit(0);
    }

    function test_RevertWhen_WithdrawMoreThanBalance() external {
        vm.prank(client);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_InsufficientBalance.selector, 500 * ONE, 501 * ONE));
        market.withdraw(501 * ONE);
    }

    function test_RevertWhen_WithdrawZero() external {
        vm.prank(client);
        vm.expectRevert(IWirepactMarket.Market_ZeroAmount.selector);
        market.withdraw(0);
    }

    function test_When_DepositWithdraw_TokensMoveExactly() external {
        uint256 before = token.balanceOf(client);
        vm.startPrank(client);
        market.deposit(7);
        market.withdraw(500 * ONE + 7);
        vm.stopPrank();
        assertEq(market.balanceOf(client), 0);
        assertEq(token.balanceOf(client), before + 500 * ONE);
    }
}

contract ProviderLifecycleTest is BaseTest {
    function test_RevertWhen_RegisterTwice() external {
        _register(prov);
        vm.prank(prov);
        vm.expectRevert(IWirepactMarket.Market_AlreadyRegistered.selector);
        market.registerProvider(_terms(), bytes32(uint256(1)), "e:1", "", 1_000 * ONE);
    }

    function test_RevertWhen_RegisterBadTerms() external {
        IWirepactMarket.ProviderTerms memory t = _terms();
        t.sessionMbps = t.capacityMbps + 1;
        vm.prank(prov);
        vm.expectRevert(IWirepactMarket.Market_InvalidTerms.selector);
        market.registerProvider(t, bytes32(uint256(1)), "e:1", "", 1_000 * ONE);
        vm.prank(prov);
        vm.expectRevert(IWirepactMarket.Market_InvalidTerms.selector);
        market.registerProvider(_terms(), bytes32(0), "e:1", "", 1_000 * ONE);
        vm.prank(prov);
        vm.expectRevert(IWirepactMarket.Market_InvalidTerms.selector);
        market.registerProvider(_terms(), bytes32(uint256(1)), "", "", 1_000 * ONE);
    }

    function test_RevertWhen_StakeBelowCapacityMinimum() external {
        // 100 Mbit/s at 10 tokens per Mbit/s
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_StakeBelowMinimum.selector, 999 * ONE, 1_000 * ONE));
        market.registerProvider(_terms(), bytes32(uint256(1)), "e:1", "", 999 * ONE);
    }

    function test_When_Register_StakePulledAndViewable() external {
        uint256 before = token.balanceOf(prov);
        uint32 id = _register(prov);
        assertEq(id, 1);
        assertEq(token.balanceOf(prov), before - 1_000 * ONE);
        IWirepactMarket.ProviderView memory v = market.provider(id);
        assertEq(v.owner, prov);
        assertEq(v.stake, 1_000 * ONE);
        assertEq(v.capacityMbps, 100);
        assertEq(v.endpoint, "203.0.113.7:443");
        assertEq(v.region, "eu");
        assertEq(market.providerIdOf(prov), 1);
        assertEq(market.providerCount(), 1);
    }

    function test_When_Update_NewPriceForNewSessionsOnly() external {
        uint32 id = _register(prov);
        (IWirepactMarket.SessionTerms memory t,) = _open(id, ONE);
        vm.prank(prov);
        market.updateProvider(id, uint96(ONE), bytes32(uint256(9)), "198.51.100.1:443");
        IWirepactMarket.ProviderView memory v = market.provider(id);
        assertEq(v.basePricePerGiB, ONE);
        assertEq(v.tunnelKey, bytes32(uint256(9)));
        assertEq(v.endpoint, "198.51.100.1:443");
        assertLt(t.pricePerGiB, ONE);
    }

    function test_RevertWhen_UpdateByStranger() external {
        uint32 id = _register(prov);
        vm.prank(prov2);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_NotProviderOwner.selector, id));
        market.updateProvider(id, 1, bytes32(uint256(1)), "x");
    }

    function test_When_AddStake() external {
        uint32 id = _register(prov);
        vm.prank(prov);
        market.addStake(id, 5 * ONE);
        assertEq(market.provider(id).stake, 1_005 * ONE);
    }

    function test_RevertWhen_UnstakeBelowMinimum() external {
        uint32 id = _register(prov);
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_StakeBelowMinimum.selector, 999 * ONE, 1_000 * ONE));
        market.requestUnstake(id, ONE);
    }

    function test_When_Unstake_WaitsUnbondingDelay() external {
        uint32 id = _register(prov);
        vm.startPrank(prov);
        market.addStake(id, 50 * ONE);
        market.requestUnstake(id, 50 * ONE);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_UnbondingNotReady.selector, _now() + 7 days));
        market.withdrawUnbonded(id);
        vm.warp(_now() + 7 days);
        market.withdrawUnbonded(id);
        assertEq(market.balanceOf(prov), 50 * ONE);
        vm.expectRevert(IWirepactMarket.Market_NothingUnbonding.selector);
        market.withdrawUnbonded(id);
    }

    function test_When_Unbonding_StillSlashable() external {
        uint32 id = _register(prov);
        vm.startPrank(prov);
        market.addStake(id, 1_000 * ONE);
        market.requestUnstake(id, 1_000 * ONE);
        vm.stopPrank();
        uint64 e = _nextEpoch();
        _reportOne(e, id, 1, 20, true);
        _reportOne(_nextEpoch(), id, 1, 20, true);
        IWirepactMarket.ProviderView memory v = market.provider(id);
        // 10% of 2000 = 200 taken from stake first
        assertEq(v.stake, 800 * ONE);
        assertEq(v.unbonding, 1_000 * ONE);
    }

    function test_RevertWhen_LeaveWithSessions() external {
        uint32 id = _register(prov);
        _open(id, ONE);
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_ProviderHasSessions.selector, id, 25));
        market.leave(id);
    }

    function test_When_Leave_AllStakeUnbonds() external {
        uint32 id = _register(prov);
        vm.prank(prov);
        market.leave(id);
        IWirepactMarket.ProviderView memory v = market.provider(id);
        assertEq(uint8(v.status), uint8(IWirepactMarket.ProviderStatus.Left));
        assertEq(v.stake, 0);
        assertEq(v.unbonding, 1_000 * ONE);
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_ProviderNotActive.selector, id));
        market.leave(id);
    }

    function test_Unjail_Branches() external {
        uint32 id = _register(prov);
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_ProviderNotActive.selector, id));
        market.unjail(id);
        uint64 e = _nextEpoch();
        _reportOne(e, id, 1, 20, true);
        uint64 e2 = _nextEpoch();
        _reportOne(e2, id, 1, 20, true);
        uint32 until = market.provider(id).jailedUntilEpoch;
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_StillJailed.selector, until));
        market.unjail(id);
        vm.warp(market.epochStart(until));
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_StakeBelowMinimum.selector, 900 * ONE, 1_000 * ONE));
        market.unjail(id);
        vm.startPrank(prov);
        market.addStake(id, 100 * ONE);
        market.unjail(id);
        vm.stopPrank();
        assertEq(uint8(market.provider(id).status), uint8(IWirepactMarket.ProviderStatus.Active));
    }
}

contract OracleLifecycleTest is BaseTest {
    function test_RevertWhen_RegisterTwice() external {
        vm.prank(oracles[0]);
        vm.expectRevert(IWirepactMarket.Market_OracleAlreadyRegistered.selector);
        market.registerOracle("x", 100 * ONE);
    }

    function test_RevertWhen_StakeTooLow() external {
        _fund(address(7), 1_000 * ONE);
        vm.prank(address(7));
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_StakeBelowMinimum.selector, ONE, 100 * ONE));
        market.registerOracle("x", ONE);
    }

    function test_RevertWhen_EmptyEndpoint() external {
        _fund(address(7), 1_000 * ONE);
        vm.prank(address(7));
        vm.expectRevert(IWirepactMarket.Market_InvalidTerms.selector);
        market.registerOracle("", 100 * ONE);
    }

    function test_When_Leave_StakeReturnsAfterDelay() external {
        vm.startPrank(oracles[0]);
        market.requestOracleLeave();
        assertEq(market.activeOracles(), 3);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_UnbondingNotReady.selector, _now() + 7 days));
        market.withdrawOracleStake();
        vm.warp(_now() + 7 days);
        market.withdrawOracleStake();
        assertEq(market.balanceOf(oracles[0]), 100 * ONE);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_NotOracle.selector, oracles[0]));
        market.withdrawOracleStake();
        // can come back; listed once
        market.registerOracle("https://again", 100 * ONE);
        assertEq(market.oracleCount(), 4);
        assertEq(market.activeOracles(), 4);
    }

    function test_RevertWhen_LeaveNotOracle() external {
        vm.prank(client);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_NotOracle.selector, client));
        market.requestOracleLeave();
    }
}

contract BonusTest is BaseTest {
    uint32 internal id;
    uint32 internal id2;

    function setUp() public override {
        super.setUp();
        id = _register(prov);
        id2 = _register(prov2);
        // Fill the pool with fees: 2% of 400 tokens = 8.
        for (uint256 i; i < 4; ++i) {
            (IWirepactMarket.SessionTerms memory t, bytes32 sid) = _open(id, 100 * ONE);
            _claim(t, sid, uint64(100_000 * GIB));
            vm.prank(prov);
            market.close(t);
        }
        market.collectEarnings(id); // the fees reach the pool
    }

    /// Reports `e`: provider 1 up with `up1`, provider 2 always up.
    function _reportBoth(uint64 e, bool up1) internal {
        bytes memory ids = abi.encodePacked(id, id2);
        bytes[] memory ms = new bytes[](4);
        for (uint256 i; i < 4; ++i) {
            ms[i] = abi.encodePacked(_measurement(up1 ? 30_000 : 0, 20, up1), _measurement(30_000, 20, true));
        }
        (bytes memory m, bytes[] memory s) = _report(e, ids, ms, 3);
        _submitReport(e, ids, m, s);
    }

    /// Epochs 1..n (the providers registered in epoch 0, which earns no credit).
    function _epochs(uint64 n) internal pure returns (uint64[] memory es) {
        es = new uint64[](n);
        for (uint64 i; i < n; ++i) {
            es[i] = i + 1;
        }
    }

    /// Reports epochs 1..n; provider 1 is down in the `downAt`-th of them (0-based).
    function _run(uint256 n, uint256 downAt) internal {
        for (uint256 i; i < n; ++i) {
            _reportBoth(_nextEpoch(), i != downAt);
        }
    }

    function test_When_AvailableEveryAudit_GetsProRataShare() external {
        _run(5, type(uint256).max);
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_PeriodNotOver.selector, 0));
        _claimBonus(id, 0, _epochs(5));
        vm.warp(market.epochStart(11));
        uint256 pool = market.rewardPool();
        assertEq(market.periodAvailable(0), 10);
        vm.prank(prov);
        _claimBonus(id, 0, _epochs(5));
        uint256 pot = pool / 2;
        assertEq(market.bonusPot(0).pot, pot);
        assertEq(market.balanceOf(prov) - 392 * ONE, pot * 5 / 10);
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_BonusAlreadyClaimed.selector, 0));
        _claimBonus(id, 0, _epochs(5));
        vm.prank(prov2);
        _claimBonus(id2, 0, _epochs(5));
        assertEq(market.balanceOf(prov2), pot * 5 / 10);
        assertEq(market.bonusPot(0).remaining, pot - 2 * (pot * 5 / 10));
    }

    function test_When_FewerEpochsListed_SmallerShare() external {
        _run(5, type(uint256).max);
        vm.warp(market.epochStart(11));
        uint256 pot = market.rewardPool() / 2;
        vm.prank(prov2);
        _claimBonus(id2, 0, _epochs(3));
        assertEq(market.balanceOf(prov2), pot * 3 / 10);
    }

    function test_RevertWhen_BelowAvailability() external {
        _run(5, 2);
        assertEq(market.bonusRecord(id, 0).unavailable, 1);
        vm.warp(market.epochStart(11));
        vm.prank(prov);
        // epoch 3 (down) has no leaf: it is no proof
        uint64[] memory es = new uint64[](1);
        es[0] = 3;
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_BadAuditProof.selector, 3));
        _claimBonus(id, 0, es);
        // the leaves of epochs 5 and 4 prove 4 available (epoch 5's base counts 1 and 2);
        // with the 1 unavailable on record, 5 judged: 80 % < 99.9 %
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_NotEligibleForBonus.selector, 5, 4));
        _claimBonus(id, 0, _epochs(5));
    }

    function test_RevertWhen_TooFewAudits() external {
        _run(1, type(uint256).max);
        vm.warp(market.epochStart(11));
        vm.prank(prov2);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_NotEligibleForBonus.selector, 1, 1));
        _claimBonus(id2, 0, _epochs(1));
    }

    function test_RevertWhen_ProofListsUnreportedOrRepeatedEpoch() external {
        _run(4, type(uint256).max);
        vm.warp(market.epochStart(11));
        uint64[] memory es = _epochs(5); // epoch 5 was never reported
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_BadAuditProof.selector, 5));
        _claimBonus(id, 0, es);
        // the same leaf twice (to count it twice), or a second leaf that is not the epoch before
        IWirepactMarket.BonusLeaf[] memory twice = new IWirepactMarket.BonusLeaf[](2);
        (twice[0], twice[1]) = (_leafOf(4, id), _leafOf(4, id));
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_BadAuditProof.selector, 4));
        market.claimBonus(id, 0, twice);
        twice[1] = _leafOf(2, id);
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_BadAuditProof.selector, 2));
        market.claimBonus(id, 0, twice);
        // three leaves
        IWirepactMarket.BonusLeaf[] memory three = new IWirepactMarket.BonusLeaf[](3);
        (three[0], three[1], three[2]) = (_leafOf(4, id), _leafOf(3, id), _leafOf(2, id));
        vm.prank(prov);
        vm.expectRevert(IWirepactMarket.Market_MalformedReport.selector);
        market.claimBonus(id, 0, three);
    }

    function test_RevertWhen_SlashedInPeriod() external {
        // two unreachable verdicts in a row: slashed (k = 2); jail ends after the period
        _reportBoth(_nextEpoch(), false);
        _reportBoth(_nextEpoch(), false);
        assertEq(uint8(market.provider(id).status), uint8(IWirepactMarket.ProviderStatus.Jailed));
        vm.warp(market.epochStart(11));
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_ProviderNotActive.selector, id));
        _claimBonus(id, 0, _epochs(2));
    }

    function test_When_WindowOver_SweepReturnsRemainder() external {
        _run(4, type(uint256).max);
        vm.warp(market.epochStart(11));
        vm.prank(prov2);
        _claimBonus(id2, 0, _epochs(4));
        uint256 remaining = market.bonusPot(0).remaining;
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_SweepTooEarly.selector, 0));
        market.sweepBonus(0);
        vm.warp(market.epochStart(20));
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_BonusWindowClosed.selector, 0));
        _claimBonus(id, 0, _epochs(4));
        uint256 pool = market.rewardPool();
        market.sweepBonus(0);
        assertEq(market.rewardPool(), pool + remaining);
        assertEq(market.bonusPot(0).remaining, 0);
    }
}
