// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {BaseTest} from "./Base.t.sol";
import {IWirepactMarket} from "../src/interfaces/IWirepactMarket.sol";

/// Branches follow test/trees/openSession.tree, claim.tree, close.tree.
contract OpenSessionTest is BaseTest {
    uint32 internal id;

    function setUp() public override {
        super.setUp();
        id = _register(prov);
    }

    function test_RevertWhen_ProviderUnknown() external {
        vm.prank(client);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_UnknownProvider.selector, 99));
        market.openSession(99, ONE, type(uint256).max, sessionKey);
    }

    function test_RevertWhen_ProviderLeft() external {
        vm.prank(prov);
        market.leave(id);
        vm.prank(client);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_ProviderNotActive.selector, id));
        market.openSession(id, ONE, type(uint256).max, sessionKey);
    }

    function test_RevertWhen_SessionKeyZero() external {
        vm.prank(client);
        vm.expectRevert(IWirepactMarket.Market_InvalidSessionKey.selector);
        market.openSession(id, ONE, type(uint256).max, address(0));
    }

    function test_RevertWhen_DepositZero() external {
        vm.prank(client);
        vm.expectRevert(
            abi.encodeWithSelector(IWirepactMarket.Market_DepositTooSmall.selector, 0, market.minDeposit(id))
        );
        market.openSession(id, 0, type(uint256).max, sessionKey);
    }

    function test_RevertWhen_BalanceInsufficient() external {
        vm.prank(client);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_InsufficientBalance.selector, 500 * ONE, 501 * ONE));
        market.openSession(id, 501 * ONE, type(uint256).max, sessionKey);
    }

    function test_RevertWhen_WouldOversell() external {
        // capacity 100, 25 per session: the fifth session oversells.
        for (uint256 i; i < 4; ++i) {
            vm.prank(client);
            market.openSession(id, ONE, type(uint256).max, sessionKey);
        }
        vm.prank(client);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_WouldOversell.selector, 100, 25, 100));
        market.openSession(id, ONE, type(uint256).max, sessionKey);
        assertEq(market.provider(id).committedMbps, 100);
    }

    function test_RevertWhen_PriceAboveMax() external {
        uint256 q = market.quote(id);
        vm.prank(client);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_PriceAboveMax.selector, q, q - 1));
        market.openSession(id, ONE, q - 1, sessionKey);
    }

    function test_When_Valid_LocksDepositReservesRateFixesPrice() external {
        uint256 q = market.quote(id);
        // u = 25/100 after the session: base * (1 + 1.0 * 0.0625)
        assertEq(q, ONE / 10 + (ONE / 10) / 16);
        (IWirepactMarket.SessionTerms memory t, bytes32 sid) = _open(id, 10 * ONE);
        assertEq(market.balanceOf(client), 490 * ONE);
        assertEq(market.provider(id).committedMbps, 25);
        assertEq(t.pricePerGiB, q);
        assertEq(t.deposit, 10 * ONE);
        assertEq(t.sessionKey, sessionKey);
        assertEq(t.nonce, 0);
        assertEq(market.sessionIdOf(t), sid);
        assertEq(uint8(market.session(sid).status), uint8(IWirepactMarket.SessionStatus.Open));
        // The next session sees higher utilisation and a higher price.
        assertGt(market.quote(id), q);
    }

    function test_When_SameTermsTwice_IdsDiffer() external {
        (, bytes32 a) = _open(id, ONE);
        (, bytes32 b) = _open(id, ONE);
        assertTrue(a != b);
    }
}

contract ClaimTest is BaseTest {
    uint32 internal id;
    IWirepactMarket.SessionTerms internal t;
    bytes32 internal sid;

    function setUp() public override {
        super.setUp();
        id = _register(prov);
        (t, sid) = _open(id, 10 * ONE);
        vm.warp(_now() + 60);
    }

    function test_When_ValidReceipt_EarnsIncrease_CollectedLessFee() external {
        uint64 b = uint64(3 * GIB);
        _claim(t, sid, b);
        uint256 gross = (uint256(b) * t.pricePerGiB) >> 30;
        assertEq(market.provider(id).earned, gross, "claimed gross into the provider's earnings");
        assertEq(market.balanceOf(prov), 0);
        assertEq(market.rewardPool(), 0);
        IWirepactMarket.SessionState memory s = market.session(sid);
        assertEq(s.paid, gross);
        assertEq(s.claimedBytes, b);

        vm.warp(_now() + 1);
        _claim(t, sid, uint64(5 * GIB));
        uint256 gross2 = (uint256(5 * GIB) * t.pricePerGiB) >> 30;
        assertEq(market.provider(id).earned, gross2);
        // anyone may collect: the owner gets the earnings less the fee, the pool the fee
        vm.prank(client);
        market.collectEarnings(id);
        uint256 fee = gross2 * 200 / 10_000;
        assertEq(market.balanceOf(prov), gross2 - fee);
        assertEq(market.rewardPool(), fee);
        assertEq(market.balanceOf(client), 490 * ONE, "the caller gets nothing");
        assertEq(market.provider(id).earned, 0);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_NothingToCollect.selector, id));
        market.collectEarnings(id);
    }

    /// Earnings are kept in 96 bits next to the owner: a claim that would overflow them first
    /// collects what is there, so nothing is lost and the books stay exact.
    function test_When_EarningsWouldOverflow_CollectedFirst() external {
        IWirepactMarket.ProviderTerms memory terms = _terms();
        terms.basePricePerGiB = uint96(type(uint88).max);
        vm.prank(prov2);
        uint32 rich = market.registerProvider(terms, bytes32(uint256(2)), "203.0.113.8:443", "eu", 1_000 * ONE);
        uint256 dep = type(uint96).max;
        _fund(client, 2 * dep);
        vm.prank(client);
        market.deposit(2 * dep);
        (IWirepactMarket.SessionTerms memory a, bytes32 ida) = _open(rich, dep);
        (IWirepactMarket.SessionTerms memory b, bytes32 idb) = _open(rich, dep);
        vm.warp(_now() + 1);
        _claim(a, ida, uint64(1 << 40)); // far more than the deposit buys: pays the whole deposit
        assertEq(market.provider(rich).earned, dep);
        _claim(b, idb, uint64(1 << 40));
        assertEq(market.provider(rich).earned, dep, "the first deposit was collected, the second earned");
        uint256 fee = dep * 200 / 10_000;
        assertEq(market.balanceOf(prov2), dep - fee);
        assertEq(market.rewardPool(), fee);
    }

    /// Terms whose padding is dirty hash to an id no session has: refused, nothing moves.
    function test_RevertWhen_TermsHaveDirtyPadding() external {
        bytes memory data = abi.encodeCall(market.close, (t));
        data[4 + 2 * 32] = 0x01; // the high byte of providerId's word
        vm.prank(prov);
        (bool ok,) = address(market).call(data);
        assertFalse(ok);
        assertEq(uint8(market.session(sid).status), uint8(IWirepactMarket.SessionStatus.Open));
    }

    function test_When_BytesExceedDeposit_PaysAtMostDeposit() external {
        _claim(t, sid, uint64(1_000 * GIB));
        assertEq(market.session(sid).paid, t.deposit);
        vm.warp(_now() + 1);
        _claim(t, sid, uint64(2_000 * GIB));
        assertEq(market.session(sid).paid, t.deposit);
    }

    function test_RevertWhen_Replayed() external {
        uint64 ts = uint64(_now());
        bytes memory sig = _signReceipt(sessionPk, sid, 1000, ts);
        vm.startPrank(prov);
        market.claim(t, 1000, ts, sig);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_ReceiptNotNewer.selector, 1000, 1000));
        market.claim(t, 1000, ts, sig);
    }

    function test_RevertWhen_Decreasing() external {
        _claim(t, sid, 5000);
        vm.warp(_now() + 1);
        uint64 ts = uint64(_now());
        bytes memory sig = _signReceipt(sessionPk, sid, 4000, ts);
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_ReceiptNotNewer.selector, 4000, 5000));
        market.claim(t, 4000, ts, sig);
    }

    function test_RevertWhen_Stale() external {
        _claim(t, sid, 5000);
        uint64 ts = uint64(_now() - 10);
        bytes memory sig = _signReceipt(sessionPk, sid, 6000, ts);
        vm.prank(prov);
        vm.expectRevert(
            abi.encodeWithSelector(IWirepactMarket.Market_ReceiptStale.selector, ts, uint32(_now()))
        );
        market.claim(t, 6000, ts, sig);
    }

    function test_RevertWhen_BeforeOpen() external {
        uint64 ts = uint64(t.openedAt - 1);
        bytes memory sig = _signReceipt(sessionPk, sid, 6000, ts);
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_ReceiptBeforeOpen.selector, ts, t.openedAt));
        market.claim(t, 6000, ts, sig);
    }

    function test_RevertWhen_FromFuture() external {
        uint64 ts = uint64(_now() + 301);
        bytes memory sig = _signReceipt(sessionPk, sid, 6000, ts);
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_ReceiptFromFuture.selector, ts));
        market.claim(t, 6000, ts, sig);
    }

    function test_RevertWhen_SignedByOtherKey() external {
        uint64 ts = uint64(_now());
        bytes memory sig = _signReceipt(clientKey, sid, 6000, ts);
        vm.prank(prov);
        vm.expectRevert(IWirepactMarket.Market_BadReceiptSignature.selector);
        market.claim(t, 6000, ts, sig);
    }

    function test_RevertWhen_ForeignSession() external {
        (IWirepactMarket.SessionTerms memory t2, bytes32 sid2) = _open(id, ONE);
        uint64 ts = uint64(_now());
        // A receipt for session 2 (same session key) presented for session 1.
        bytes memory sig = _signReceipt(sessionPk, sid2, 6000, ts);
        vm.prank(prov);
        vm.expectRevert(IWirepactMarket.Market_BadReceiptSignature.selector);
        market.claim(t, 6000, ts, sig);
        t2; // silence
    }

    function test_RevertWhen_ForeignChain() external {
        uint64 ts = uint64(_now());
        bytes memory sig = _signReceipt(sessionPk, sid, 6000, ts);
        vm.chainId(999);
        vm.prank(prov);
        vm.expectRevert(IWirepactMarket.Market_BadReceiptSignature.selector);
        market.claim(t, 6000, ts, sig);
    }

    function test_RevertWhen_ForeignMarket() external {
        // Same session signed for another deployment of the market.
        IWirepactMarket other = _deployMarket(defaultParams(address(token)));
        assertEq(other.sessionIdOf(t), sid);
        bytes32 digest = other.receiptDigest(sid, 6000, uint64(_now()));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(sessionPk, digest);
        vm.prank(prov);
        vm.expectRevert(IWirepactMarket.Market_BadReceiptSignature.selector);
        market.claim(t, 6000, uint64(_now()), abi.encodePacked(r, s, v));
    }

    function test_RevertWhen_MalformedSignature() external {
        vm.prank(prov);
        vm.expectRevert(IWirepactMarket.Market_BadReceiptSignature.selector);
        market.claim(t, 6000, uint64(_now()), hex"1234");
    }

    function test_RevertWhen_TermsTampered() external {
        IWirepactMarket.SessionTerms memory bad = t;
        bad.pricePerGiB = t.pricePerGiB * 2;
        bytes32 badId = market.sessionIdOf(bad);
        bytes memory sig = _signReceipt(sessionPk, badId, 6000, uint64(_now()));
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_UnknownSession.selector, badId));
        market.claim(bad, 6000, uint64(_now()), sig);
    }

    function test_RevertWhen_CallerNotProvider() external {
        bytes memory sig = _signReceipt(sessionPk, sid, 6000, uint64(_now()));
        vm.prank(client);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_NotProviderOwner.selector, id));
        market.claim(t, 6000, uint64(_now()), sig);
    }

    function test_When_ViolationsWhileOpen_PayoutReduced() external {
        uint64 e = _nextEpoch();
        _reportOne(e, id, 1_000, 30, true); // 1 Mbit/s against a 25 Mbit/s SLA: violation
        assertEq(market.provider(id).violationCount, 1);
        uint64 b = uint64(4 * GIB);
        _claim(t, sid, b);
        uint256 gross = (uint256(b) * t.pricePerGiB) >> 30;
        uint256 entitled = gross * 7_500 / 10_000; // one violation, 25% penalty
        assertEq(market.session(sid).paid, entitled);
        assertEq(market.provider(id).earned, entitled);
        // The client gets the reduction back at settlement.
        vm.prank(prov);
        market.close(t);
        assertEq(market.balanceOf(client), 490 * ONE + (10 * ONE - entitled));
    }

    function test_When_ViolationBeforeOpen_NotCounted() external {
        uint64 e = _nextEpoch();
        _reportOne(e, id, 1_000, 30, true);
        (IWirepactMarket.SessionTerms memory t2, bytes32 sid2) = _open(id, ONE);
        uint64 b = uint64(GIB);
        _claim(t2, sid2, b);
        assertEq(market.session(sid2).paid, (uint256(b) * t2.pricePerGiB) >> 30);
    }
}

contract CloseTest is BaseTest {
    uint32 internal id;
    IWirepactMarket.SessionTerms internal t;
    bytes32 internal sid;

    function setUp() public override {
        super.setUp();
        id = _register(prov);
        (t, sid) = _open(id, 10 * ONE);
        vm.warp(_now() + 60);
    }

    function test_RevertWhen_Stranger() external {
        vm.prank(prov2);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_NotSessionParty.selector, sid));
        market.close(t);
    }

    function test_RevertWhen_Unknown() external {
        IWirepactMarket.SessionTerms memory bad = t;
        bad.nonce = 77;
        vm.prank(client);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_UnknownSession.selector, market.sessionIdOf(bad)));
        market.close(bad);
    }

    function test_When_ProviderCloses_SettlesAtOnce() external {
        _claim(t, sid, uint64(GIB));
        uint256 paid = market.session(sid).paid;
        vm.prank(prov);
        market.close(t);
        assertEq(market.balanceOf(client), 500 * ONE - paid);
        assertEq(market.provider(id).committedMbps, 0);
        assertEq(uint8(market.session(sid).status), 0);
        // Nothing can be claimed after settlement.
        bytes memory sig = _signReceipt(sessionPk, sid, uint64(2 * GIB), uint64(_now()));
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_UnknownSession.selector, sid));
        market.claim(t, uint64(2 * GIB), uint64(_now()), sig);
    }

    function test_When_ClientCloses_ProviderCanClaimDuringGrace() external {
        vm.prank(client);
        market.close(t);
        assertEq(market.provider(id).committedMbps, 0);
        assertEq(market.balanceOf(client), 490 * ONE);
        _claim(t, sid, uint64(GIB));
        uint256 paid = market.session(sid).paid;
        assertGt(paid, 0);

        vm.expectRevert(
            abi.encodeWithSelector(IWirepactMarket.Market_GraceNotOver.selector, _now() + 1 hours)
        );
        market.settle(t);
        vm.warp(_now() + 1 hours);
        market.settle(t);
        assertEq(market.balanceOf(client), 500 * ONE - paid);
    }

    function test_RevertWhen_ClientClosesTwice() external {
        vm.startPrank(client);
        market.close(t);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_SessionNotOpen.selector, sid));
        market.close(t);
    }

    function test_When_ProviderClosesAClosingSession_SettlesEarly() external {
        vm.prank(client);
        market.close(t);
        vm.prank(prov);
        market.close(t);
        assertEq(market.balanceOf(client), 500 * ONE);
        assertEq(market.provider(id).committedMbps, 0);
    }

    function test_RevertWhen_SettleOpenSession() external {
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_SessionNotOpen.selector, sid));
        market.settle(t);
    }

    function test_When_ViolationAfterClose_NotCounted() external {
        vm.prank(client);
        market.close(t);
        uint64 e = _nextEpoch();
        _reportOne(e, id, 1_000, 30, true);
        _claim(t, sid, uint64(GIB));
        assertEq(market.session(sid).paid, (uint256(GIB) * t.pricePerGiB) >> 30);
    }
}
