// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {BaseTest} from "../Base.t.sol";
import {IWirepactMarket} from "../../src/interfaces/IWirepactMarket.sol";
import {Handler} from "./Handler.sol";

/// Invariants (see test/invariant/README.md):
///  1. solvency: the market's token balance equals everything it owes;
///  2. no overselling: committed <= capacity, and committed equals the open sessions' rates;
///  3. no session pays more than its deposit;
///  4. stake conservation: stake added = stake held + unbonded out + slashed;
///  5. every accepted report had a quorum of signatures.
contract InvariantsTest is BaseTest {
    Handler internal handler;

    function setUp() public override {
        super.setUp();
        IWirepactMarket.Params memory p = defaultParams(address(token));
        p.auditProbabilityBps = 5_000;
        market = _marketWithOracles(p);
        handler = new Handler(market, token, oracles, oracleKeys);
        targetContract(address(handler));
    }

    function invariant_Solvency() external view {
        uint256 owed = market.rewardPool();
        address[] memory a = handler.allAccounts();
        for (uint256 i; i < a.length; ++i) {
            owed += market.balanceOf(a[i]);
            owed += market.oracle(a[i]).stake;
        }
        uint32 n = market.providerCount();
        for (uint32 id = 1; id <= n; ++id) {
            IWirepactMarket.ProviderView memory v = market.provider(id);
            owed += uint256(v.stake) + v.unbonding + v.earned;
        }
        for (uint256 i; i < handler.sessionCount(); ++i) {
            (IWirepactMarket.SessionTerms memory t, bytes32 sid) = handler.sessionAt(i);
            owed += t.deposit - market.session(sid).paid;
        }
        uint32 period = market.currentPeriod();
        for (uint32 q; q <= period; ++q) {
            owed += market.bonusPot(q).remaining;
        }
        assertEq(token.balanceOf(address(market)), owed);
    }

    function invariant_NoOverselling() external view {
        uint32 n = market.providerCount();
        for (uint32 id = 1; id <= n; ++id) {
            IWirepactMarket.ProviderView memory v = market.provider(id);
            assertLe(v.committedMbps, v.capacityMbps);
            uint256 open;
            for (uint256 i; i < handler.sessionCount(); ++i) {
                (IWirepactMarket.SessionTerms memory t, bytes32 sid) = handler.sessionAt(i);
                if (t.providerId == id && market.session(sid).status == IWirepactMarket.SessionStatus.Open) {
                    open += t.sessionMbps;
                }
            }
            assertEq(v.committedMbps, open);
        }
    }

    function invariant_NoSessionPaysMoreThanDeposit() external view {
        assertEq(handler.ghostOverpaid(), 0);
        for (uint256 i; i < handler.sessionCount(); ++i) {
            (IWirepactMarket.SessionTerms memory t, bytes32 sid) = handler.sessionAt(i);
            assertLe(market.session(sid).paid, t.deposit);
        }
    }

    function invariant_StakeConserved() external view {
        uint256 held;
        uint32 n = market.providerCount();
        for (uint32 id = 1; id <= n; ++id) {
            IWirepactMarket.ProviderView memory v = market.provider(id);
            held += uint256(v.stake) + v.unbonding;
        }
        assertEq(handler.ghostStaked(), held + handler.ghostUnbondedOut() + handler.ghostSlashed());
    }

    function invariant_VerdictsHaveQuorum() external view {
        assertEq(handler.ghostReportsBelowQuorum(), 0);
    }

    /// The bonus never pays beyond a period's pot, and no eligible claim fails on arithmetic.
    function invariant_BonusWithinItsPot() external view {
        uint32 period = market.currentPeriod();
        for (uint32 q; q <= period; ++q) {
            IWirepactMarket.BonusPot memory pot = market.bonusPot(q);
            assertLe(handler.ghostBonusPaid(q), pot.pot);
            assertLe(handler.ghostBonusPaid(q) + pot.remaining, pot.pot);
        }
        assertEq(handler.ghostBonusPanics(), 0);
    }

    /// k violations in w audits cost exactly slashBps of stake + unbonding, whatever the status.
    function invariant_SlashesAreExact() external view {
        assertEq(handler.ghostWrongSlashes(), 0);
    }

    /// The handler reaches the paths the invariants are about (slashing, claims, settlement).
    function test_HandlerReachesSlashClaimAndSettle() external {
        handler.register(0, 100, 10);
        handler.deposit(0, 1e21);
        handler.open(0, 1, 1e20);
        handler.claim(0, 1 << 30);
        for (uint256 i; i < 40 && handler.ghostSlashed() == 0; ++i) {
            handler.warp(600);
            handler.report(i, 4);
        }
        assertGt(handler.ghostReportsAccepted(), 0);
        assertGt(handler.ghostSlashed(), 0);
        handler.closeByClient(0);
        handler.settle(0);
        assertEq(handler.sessionCount(), 0);
        this.invariant_Solvency();
        this.invariant_StakeConserved();
    }
}
