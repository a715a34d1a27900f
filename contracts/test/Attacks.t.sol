// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {BaseTest} from "./Base.t.sol";
import {IWirepactMarket} from "../src/interfaces/IWirepactMarket.sol";
import {FeeToken} from "./mocks/FeeToken.sol";

/// The attacks the market v2 review found, each played as the attacker would, against the
/// real market. Every test here failed on the market before the fix it names.
contract AttacksTest is BaseTest {
    uint32 internal id;

    function setUp() public override {
        super.setUp();
        id = _register(prov);
    }

    function _stakeAndUnbonding(uint32 pid) internal view returns (uint256) {
        IWirepactMarket.ProviderView memory v = market.provider(pid);
        return uint256(v.stake) + v.unbonding;
    }

    // ---------------------------------------------------- slashing dodged by leaving

    /// k = 2: one violation on record; the next signed observations (published before they
    /// are submitted) show the second. The provider leaves first: it is judged anyway.
    function test_Attack_LeaveBeforeTheKthVerdict_StillSlashed() external {
        uint64 e1 = _nextEpoch();
        _reportOne(e1, id, 0, 20, true);
        uint64 e2 = _nextEpoch();
        vm.prank(prov);
        market.leave(id);
        _reportOne(e2, id, 0, 20, true);
        assertEq(_stakeAndUnbonding(id), 900 * ONE, "10 % of stake + unbonding slashed");
        // and the slashed stake is not withdrawable early: the unbonding delay still runs
        vm.warp(_now() + 7 days);
        vm.prank(prov);
        market.withdrawUnbonded(id);
        assertEq(market.balanceOf(prov), 900 * ONE);
    }

    /// A provider that left cleanly is not judged for epochs after it left (its node is off).
    function test_When_LeftInAnEarlierEpoch_NotJudgedAfterwards() external {
        uint64 e1 = _nextEpoch();
        vm.prank(prov);
        market.leave(id);
        _nextEpoch();
        _reportOne(e1 + 1, id, 0, 0, false);
        _reportOne(_nextEpoch(), id, 0, 0, false);
        assertEq(_stakeAndUnbonding(id), 1_000 * ONE);
        assertEq(market.provider(id).violationCount, 0);
    }

    /// The unbonding delay must outlast the report window (an epoch and the next), or a
    /// leaver could withdraw before the verdict lands.
    function test_RevertWhen_UnbondingShorterThanTheReportWindow() external {
        IWirepactMarket.Params memory p = defaultParams(address(token));
        p.unbondingDelay = 2 * EPOCH - 1;
        assertFalse(_deploys(p));
        p.unbondingDelay = 2 * EPOCH;
        assertTrue(_deploys(p));
    }

    /// Jailed providers keep serving their open sessions: their violations still count
    /// against those sessions (and the history), instead of vanishing.
    function test_Attack_ViolationsWhileJailed_StillRecorded() external {
        (IWirepactMarket.SessionTerms memory t,) = _open(id, 10 * ONE);
        _reportOne(_nextEpoch(), id, 0, 20, true);
        _reportOne(_nextEpoch(), id, 0, 20, true);
        assertEq(uint8(market.provider(id).status), uint8(IWirepactMarket.ProviderStatus.Jailed));
        _reportOne(_nextEpoch(), id, 0, 20, true);
        assertEq(market.provider(id).violationCount, 3);
        vm.prank(client);
        market.close(t);
        assertEq(market.session(keccak256(abi.encode(t))).violations, 3);
    }

    // ---------------------------------------------------------- smaller ones

    /// A huge jail length overflowed in the slash and made every report naming the provider
    /// revert (no verdict could ever land again). Refused at deployment now.
    function test_Attack_HugeJailEpochs_RefusedAtDeployment() external {
        IWirepactMarket.Params memory p = defaultParams(address(token));
        p.jailEpochs = type(uint32).max;
        assertFalse(_deploys(p));
    }

    /// A fee-on-transfer token credits more than arrives: the books would exceed the tokens.
    function test_Attack_FeeOnTransferToken_Refused() external {
        FeeToken fee = new FeeToken();
        IWirepactMarket m = _deployMarket(defaultParams(address(fee)));
        fee.mint(client, 100 * ONE);
        vm.startPrank(client);
        fee.approve(address(m), type(uint256).max);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_TokenTransferShort.selector, 100 * ONE, 99 * ONE));
        m.deposit(100 * ONE);
        vm.stopPrank();
        assertEq(fee.balanceOf(address(m)), 0);
    }

    // -------------------------------------------------------- capacity griefing

    /// Four 1-wei sessions used to fill a 100 Mbit/s provider for free.
    function test_Attack_DustSessionsFillAProvider_Refused() external {
        uint256 floor = market.minDeposit(id);
        assertGt(floor, 0);
        vm.startPrank(client);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_DepositTooSmall.selector, 1, floor));
        market.openSession(id, 1, type(uint256).max, sessionKey);
        vm.stopPrank();
    }

    /// The floor is what the session's rate costs for `minDepositSeconds` at the quote.
    function test_When_DepositAtTheFloor_Opens() external {
        uint256 price = market.quote(id);
        uint256 floor = market.minDeposit(id);
        // 25 Mbit/s = 3,125,000 B/s; 60 s at `price` per GiB, rounded up
        assertEq(floor, (price * 3_125_000 * 60 + (1 << 30) - 1) >> 30);
        _open(id, floor);
        assertEq(market.provider(id).committedMbps, 25);
    }

    /// A griefer fills the provider with sessions at the floor that never carry a byte; the
    /// provider's node closes them once idle. On the first market the close refunded the
    /// griefer in full, so keeping a provider full cost it only gas (and its victim the gas of
    /// every close). Now a session that held capacity for an epoch without paying for a byte
    /// pays the provider the deposit floor, to the wei.
    function test_Attack_IdleSessionsFillAProvider_TheGrieferPaysItsVictim() external {
        uint256 floor = market.minDeposit(id);
        IWirepactMarket.SessionTerms[4] memory ts;
        bytes32[4] memory ids;
        for (uint256 i; i < 4; ++i) {
            (ts[i], ids[i]) = _open(id, floor * 3);
        }
        assertEq(market.provider(id).committedMbps, 100, "full");
        uint256 clientBefore = market.balanceOf(client);
        vm.warp(_now() + EPOCH);
        uint256 owed;
        for (uint256 i; i < 4; ++i) {
            uint256 due = market.payoutFor(ts[i], 0, 0);
            assertEq(due, 0);
            uint256 fee = _floorOf(ts[i]);
            vm.expectEmit(address(market));
            emit IWirepactMarket.SessionNoShow(ids[i], fee);
            vm.prank(prov);
            market.close(ts[i]);
            owed += fee;
            assertEq(market.balanceOf(client), clientBefore + (i + 1) * floor * 3 - owed, "the rest is refunded");
        }
        assertEq(market.provider(id).committedMbps, 0);
        assertEq(market.provider(id).earned, owed, "the victim is paid the floors");
        assertGt(owed, 0);
    }

    /// A session closed by its provider before a whole epoch, or one that paid for bytes, or
    /// one whose provider violated its SLA since it opened, is refunded as before.
    function test_When_NotANoShow_RefundedInFull() external {
        uint256 floor = market.minDeposit(id);
        // Closed early.
        (IWirepactMarket.SessionTerms memory early,) = _open(id, floor);
        uint256 before = market.balanceOf(client);
        vm.warp(_now() + EPOCH - 1);
        vm.prank(prov);
        market.close(early);
        assertEq(market.balanceOf(client), before + floor);
        assertEq(market.provider(id).earned, 0);
        // Used: pays its bytes only.
        (IWirepactMarket.SessionTerms memory used, bytes32 sid) = _open(id, floor * 2);
        _claim(used, sid, 1 << 20);
        uint256 paid = market.payoutFor(used, 1 << 20, 0);
        before = market.balanceOf(client);
        vm.warp(_now() + EPOCH);
        vm.prank(prov);
        market.close(used);
        assertEq(market.balanceOf(client), before + floor * 2 - paid);
        assertEq(market.provider(id).earned, paid);
    }

    /// The client's own close of an idle session owes nothing (it gave the capacity back).
    function test_When_TheClientClosesAnIdleSession_NoFee() external {
        uint256 floor = market.minDeposit(id);
        (IWirepactMarket.SessionTerms memory t,) = _open(id, floor);
        vm.warp(_now() + EPOCH * 3);
        uint256 before = market.balanceOf(client);
        vm.prank(client);
        market.close(t);
        vm.warp(_now() + 3600);
        market.settle(t);
        assertEq(market.balanceOf(client), before + floor);
    }

    function _floorOf(IWirepactMarket.SessionTerms memory t) internal pure returns (uint256) {
        uint256 f = (uint256(t.pricePerGiB) * t.sessionMbps * 125_000 * 60 + (1 << 30) - 1) >> 30;
        return f > t.deposit ? t.deposit : f;
    }

    /// When the oracles could not open a probe session (the provider is full), they say "not
    /// measured": that is never a violation.
    function test_Attack_FullProviderNotMeasured_NoViolation() external {
        for (uint256 i; i < 4; ++i) {
            _open(id, 10 * ONE);
        }
        uint64 e = _nextEpoch();
        // the aggregate judges nobody: the report only carries the next commitment
        bytes[] memory ms = new bytes[](4);
        for (uint256 i; i < 4; ++i) {
            ms[i] = abi.encodePacked(uint32(0), uint24(0), uint8(2));
        }
        (bytes memory m, bytes[] memory s) = _report(e, _ids1(id), ms, 4);
        (bytes32 root, uint32 available, bytes memory violations,,) = abi.decode(m, (bytes32, uint32, bytes, uint32[], uint32[]));
        assertEq(root, bytes32(0));
        assertEq(available, 0);
        assertEq(violations.length, 0);
        _submitReport(e, _ids1(id), m, s);
        assertEq(market.provider(id).violationCount, 0);
        assertEq(market.provider(id).violationBits, 0);
    }

    /// One oracle's "not measured" cannot shield a provider the three others saw down.
    function test_When_OneOracleSaysNotMeasured_TheOthersDecide() external {
        uint64 e = _nextEpoch();
        _reportFlags4(e, id, [uint8(2), 0, 0, 0]);
        assertEq(market.provider(id).violationCount, 1);
    }

    /// With a liar among only two oracles that measured, the lower median would be the liar's:
    /// a verdict needs more than two thirds of the epoch's stake to have measured.
    function test_When_TooFewMeasured_NoVerdict() external {
        uint64 e = _nextEpoch();
        bytes[] memory ms = new bytes[](4);
        ms[0] = abi.encodePacked(uint32(0), uint24(0), uint8(2)); // not measured
        ms[1] = _measurement(0, 20, true); // the liar
        ms[2] = _measurement(30_000, 20, true);
        ms[3] = _measurement(30_000, 20, true);
        (bytes memory m, bytes[] memory s) = _report(e, _ids1(id), ms, 3);
        (, uint32 available, bytes memory violations,,) = abi.decode(m, (bytes32, uint32, bytes, uint32[], uint32[]));
        assertEq(available, 0);
        assertEq(violations.length, 0);
        _submitReport(e, _ids1(id), m, s); // carries only the next commitment
        assertEq(market.provider(id).violationCount, 0);
    }

    /// A paused provider takes no new client sessions, but oracles still probe it: pausing is
    /// no way to hide from an audit.
    function test_When_Paused_ClientsRefusedOraclesProbe() external {
        vm.prank(prov);
        market.setPaused(id, true);
        assertTrue(market.provider(id).paused);
        vm.prank(client);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_ProviderPaused.selector, id));
        market.openSession(id, 10 * ONE, type(uint256).max, sessionKey);
        vm.prank(oracles[0]);
        market.deposit(10 * ONE);
        vm.prank(oracles[0]);
        market.openSession(id, 10 * ONE, type(uint256).max, sessionKey);
        vm.prank(prov);
        market.setPaused(id, false);
        _open(id, 10 * ONE);
        vm.prank(prov2);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_NotProviderOwner.selector, id));
        market.setPaused(id, true);
    }

    /// The 24-bit session nonce used to run out and brick the provider (every later open
    /// reverted). It wraps now; the session id still differs (it hashes the open time and
    /// the client's key too), and an id that is taken is refused.
    function test_Attack_NonceExhausted_ProviderStillSells() external {
        // _providers is slot 5 of the market's layout; the nonce sits at bits 96..119 of the
        // provider's first slot.
        bytes32 slot = keccak256(abi.encode(uint256(id), uint256(5)));
        uint256 word = uint256(vm.load(address(market), slot));
        word |= uint256(type(uint24).max) << 96;
        vm.store(address(market), slot, bytes32(word));
        assertEq(market.provider(id).sessionNonce, type(uint24).max);
        (IWirepactMarket.SessionTerms memory t,) = _open(id, 10 * ONE);
        assertEq(t.nonce, type(uint24).max);
        assertEq(market.provider(id).sessionNonce, 0);
        (t,) = _open(id, 10 * ONE);
        assertEq(t.nonce, 0);
    }

    // ------------------------------------------------------------- bonus theft

    /// Fills the reward pool and reports `n` epochs of period 0 with `id` up.
    function _periodWithFees(uint256 n) internal {
        for (uint256 i; i < 2; ++i) {
            (IWirepactMarket.SessionTerms memory t, bytes32 sid) = _open(id, 100 * ONE);
            _claim(t, sid, uint64(100_000 * GIB));
            vm.prank(prov);
            market.close(t);
        }
        market.collectEarnings(id); // the fees reach the pool
        for (uint256 i; i < n; ++i) {
            _reportOne(_nextEpoch(), id, 30_000, 20, true);
        }
    }

    /// Epochs 1..n (the provider registered in epoch 0).
    function _epochs(uint64 n) internal pure returns (uint64[] memory es) {
        es = new uint64[](n);
        for (uint64 i; i < n; ++i) {
            es[i] = i + 1;
        }
    }

    /// A provider registered after the period ended listed the period's audited epochs.
    function test_Attack_BonusClaimedForEpochsBeforeRegistration_Refused() external {
        _periodWithFees(5);
        vm.warp(market.epochStart(11));
        uint32 late = _register(prov2);
        // a leaf of the period (epoch 5, even one it could prove) is before its registration
        vm.prank(prov2);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_BadAuditProof.selector, 5));
        _claimBonus(late, 0, _epochs(5));
    }

    /// One outage early in period 1 used to erase the outage of period 0 before its claim.
    function test_Attack_NextPeriodOutageErasesTheRecord_Refused() external {
        _periodWithFees(4); // epochs 1..4 up
        _reportOne(_nextEpoch(), id, 0, 0, false); // epoch 5: down
        for (uint256 i; i < 3; ++i) {
            _reportOne(_nextEpoch(), id, 30_000, 20, true); // 6..8 up: the violation leaves the window
        }
        vm.warp(market.epochStart(11));
        market.beginEpoch();
        _reportOne(11, id, 0, 0, false); // epoch 11 (period 1): down again, outside the window
        vm.warp(market.epochStart(12));
        // the epochs it can prove available: 1..4 and 6..8; the outage of epoch 5 stays on record
        uint64[] memory es = new uint64[](7);
        (es[0], es[1], es[2], es[3], es[4], es[5], es[6]) = (1, 2, 3, 4, 6, 7, 8);
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_NotEligibleForBonus.selector, 8, 7));
        _claimBonus(id, 0, es);
    }

    /// The first claim fixed the pot while the period's last epoch could still be reported:
    /// claims open only once that report window has closed.
    function test_Attack_ClaimBeforeTheLastReportWindowCloses_Refused() external {
        _periodWithFees(5);
        vm.warp(market.epochStart(10));
        vm.prank(prov);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_PeriodNotOver.selector, 0));
        _claimBonus(id, 0, _epochs(5));
        vm.warp(market.epochStart(11));
        vm.prank(prov);
        _claimBonus(id, 0, _epochs(5));
    }

    // ------------------------------------------------------------------ helpers

    function _deploys(IWirepactMarket.Params memory p) internal returns (bool) {
        bytes memory code = abi.encodePacked(vm.getCode("AuditModule.sol:AuditModule"), abi.encode(p));
        address a;
        assembly {
            a := create(0, add(code, 0x20), mload(code))
        }
        return a != address(0);
    }

    /// All 4 oracles sign flags `f[i]` (bit 0 reachable, bit 1 not measured) at full speed.
    function _reportFlags4(uint64 e, uint32 pid, uint8[4] memory f) internal {
        bytes[] memory ms = new bytes[](4);
        for (uint256 i; i < 4; ++i) {
            ms[i] = abi.encodePacked(uint32(f[i] & 2 != 0 ? 0 : 30_000), uint24(20), f[i]);
        }
        (bytes memory m, bytes[] memory s) = _report(e, _ids1(pid), ms, 4);
        _submitReport(e, _ids1(pid), m, s);
    }

    /// Oracles 0..2 sign flags `f[i]` (bit 0 reachable, bit 1 not measured) at full speed.
    function _reportFlags(uint64 e, uint32 pid, uint8[3] memory f) internal {
        bytes[] memory ms = new bytes[](4);
        for (uint256 i; i < 4; ++i) {
            uint8 flags = i < 3 ? f[i] : 0;
            ms[i] = abi.encodePacked(uint32(flags & 2 != 0 ? 0 : 30_000), uint24(20), flags);
        }
        (bytes memory m, bytes[] memory s) = _report(e, _ids1(pid), ms, 3);
        _submitReport(e, _ids1(pid), m, s);
    }
}
