// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {BaseTest} from "./Base.t.sol";
import {IWirepactMarket} from "../src/interfaces/IWirepactMarket.sol";

contract ClaimFuzzTest is BaseTest {
    uint32 internal id;

    function setUp() public override {
        super.setUp();
        id = _register(prov);
    }

    /// Any sequence of increasing receipts pays exactly min(bytes*price/2^30, deposit) in
    /// total into the provider's earnings; collected, they split fee/provider to the wei, and
    /// the client gets exactly the rest back.
    function testFuzz_ClaimArithmeticExact(uint96 dep, uint64[4] memory steps) external {
        dep = uint96(bound(dep, market.minDeposit(id), 500 * ONE));
        (IWirepactMarket.SessionTerms memory t, bytes32 sid) = _open(id, dep);
        uint64 b;
        uint256 paid;
        for (uint256 i; i < 4; ++i) {
            b += uint64(bound(steps[i], 1, 1 << 40));
            vm.warp(_now() + 1);
            _claim(t, sid, b);
            uint256 gross = (uint256(b) * t.pricePerGiB) >> 30;
            if (gross > dep) gross = dep;
            paid = gross;
            assertEq(market.session(sid).paid, paid);
            assertEq(market.provider(id).earned, paid);
            assertEq(market.balanceOf(prov), 0);
        }
        vm.prank(prov);
        market.close(t);
        assertEq(market.balanceOf(client), 500 * ONE - paid);
        if (paid != 0) market.collectEarnings(id);
        uint256 fee = paid * 200 / 10_000;
        assertEq(market.balanceOf(prov), paid - fee);
        assertEq(market.rewardPool(), fee);
        assertEq(market.provider(id).earned, 0);
    }

    /// A receipt can be used once: the same or any lower byte count is refused afterwards.
    function testFuzz_ReceiptReplayRefused(uint64 b1, uint64 b2) external {
        b1 = uint64(bound(b1, 1, type(uint64).max));
        b2 = uint64(bound(b2, 0, b1));
        (IWirepactMarket.SessionTerms memory t, bytes32 sid) = _open(id, ONE);
        _claim(t, sid, b1);
        uint256 paid = market.session(sid).paid;
        vm.warp(_now() + 1);
        uint64 ts = uint64(_now());
        bytes memory sig = _signReceipt(sessionPk, sid, b2, ts);
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_ReceiptNotNewer.selector, b2, b1));
        market.claim(t, b2, ts, sig);
        assertEq(market.session(sid).paid, paid);
    }

    /// Violations only ever reduce what is still unpaid, never below zero, never above deposit.
    function testFuzz_PenaltyNeverOverpays(uint64 b, uint8 v) external view {
        IWirepactMarket.SessionTerms memory t;
        t.deposit = uint96(ONE);
        t.pricePerGiB = uint96(ONE / 10);
        uint256 p0 = market.payoutFor(t, b, 0);
        uint256 pv = market.payoutFor(t, b, v);
        assertLe(pv, p0);
        assertLe(p0, t.deposit);
        if (uint256(v) * 2_500 >= 10_000) assertEq(pv, 0);
    }
}
