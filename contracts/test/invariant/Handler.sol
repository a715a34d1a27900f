// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {CommonBase} from "forge-std/Base.sol";
import {StdCheats} from "forge-std/StdCheats.sol";
import {StdUtils} from "forge-std/StdUtils.sol";
import {IWirepactMarket} from "../../src/interfaces/IWirepactMarket.sol";
import {TestToken} from "../../src/devnet/TestToken.sol";
import {OracleModel} from "../OracleModel.sol";

/// Drives the market with bounded random actions and keeps ghost books the invariants check.
contract Handler is CommonBase, StdCheats, StdUtils, OracleModel {
    IWirepactMarket public market;
    TestToken public token;
    uint64 public immutable epochLength;

    address[] public clients;
    address[] public providers;
    address[] public oracles;
    uint256[] internal oracleKeys;

    struct Open {
        IWirepactMarket.SessionTerms t;
        bytes32 id;
        uint256 keyPk;
        uint64 bytesSigned;
    }

    Open[] internal sessions; // open or closing
    uint256 internal keyCounter = 1_000;

    // ghost books
    uint256 public ghostStaked; // provider stake ever added
    uint256 public ghostUnbondedOut; // provider stake moved to balances after unbonding
    uint256 public ghostSlashed;
    uint256 public ghostReportsBelowQuorum;
    uint256 public ghostReportsAccepted;
    uint256 public ghostOverpaid;
    mapping(bytes32 => bool) public everSettled;
    /// bonus paid per period, claims that failed on arithmetic (an eligible provider locked
    /// out), slashes that took anything but exactly slashBps of stake + unbonding
    mapping(uint32 => uint256) public ghostBonusPaid;
    uint256 public ghostBonusPanics;
    uint256 public ghostWrongSlashes;
    uint256 public ghostEquivocationsProven;
    uint256 internal extraOracles;

    constructor(IWirepactMarket m, TestToken tk, address[] memory os, uint256[] memory keys) {
        market = m;
        token = tk;
        epochLength = m.params().epochLength;
        oracles = os;
        oracleKeys = keys;
        for (uint256 i; i < 3; ++i) {
            address c = address(uint160(0xC000 + i));
            clients.push(c);
            address p = address(uint160(0xB000 + i));
            providers.push(p);
            tk.mint(c, 1e30);
            tk.mint(p, 1e30);
            vm.prank(c);
            tk.approve(address(m), type(uint256).max);
            vm.prank(p);
            tk.approve(address(m), type(uint256).max);
        }
    }

    function sessionCount() external view returns (uint256) {
        return sessions.length;
    }

    function sessionAt(uint256 i) external view returns (IWirepactMarket.SessionTerms memory, bytes32) {
        return (sessions[i].t, sessions[i].id);
    }

    function allAccounts() external view returns (address[] memory a) {
        a = new address[](clients.length + providers.length + oracles.length);
        uint256 k;
        for (uint256 i; i < clients.length; ++i) a[k++] = clients[i];
        for (uint256 i; i < providers.length; ++i) a[k++] = providers[i];
        for (uint256 i; i < oracles.length; ++i) a[k++] = oracles[i];
    }

    // ---------------------------------------------------------------- actions

    function deposit(uint256 who, uint256 amount) external {
        address c = clients[who % clients.length];
        amount = bound(amount, 1, 1e24);
        vm.prank(c);
        market.deposit(amount);
    }

    function withdraw(uint256 who, uint256 amount) external {
        address[] memory a = this.allAccounts();
        address c = a[who % a.length];
        uint256 bal = market.balanceOf(c);
        if (bal == 0) return;
        amount = bound(amount, 1, bal);
        vm.prank(c);
        market.withdraw(amount);
    }

    function register(uint256 who, uint32 cap, uint32 per) external {
        address p = providers[who % providers.length];
        if (market.providerIdOf(p) != 0) return;
        cap = uint32(bound(cap, 1, 1_000));
        per = uint32(bound(per, 1, cap));
        uint256 stake = market.minProviderStake(cap) + 1e18;
        vm.prank(p);
        market.registerProvider(
            IWirepactMarket.ProviderTerms({capacityMbps: cap, sessionMbps: per, maxLatencyMs: 80, basePricePerGiB: 1e17}),
            bytes32(uint256(uint160(p))),
            "h:1",
            "",
            stake
        );
        ghostStaked += stake;
    }

    function open(uint256 who, uint256 prov, uint256 dep) external {
        uint32 n = market.providerCount();
        if (n == 0) return;
        uint32 id = uint32(bound(prov, 1, n));
        IWirepactMarket.ProviderView memory v = market.provider(id);
        if (
            v.status != IWirepactMarket.ProviderStatus.Active || v.paused
                || v.committedMbps + v.sessionMbps > v.capacityMbps
        ) {
            return;
        }
        address c = clients[who % clients.length];
        uint256 bal = market.balanceOf(c);
        uint256 floor = market.minDeposit(id);
        if (bal < floor || floor == 0) return;
        dep = bound(dep, floor, bal < 1e22 ? bal : 1e22);
        uint256 pk = ++keyCounter;
        vm.recordLogs();
        vm.prank(c);
        bytes32 sid = market.openSession(id, dep, type(uint256).max, vm.addr(pk));
        IWirepactMarket.SessionTerms memory t = _lastTerms();
        sessions.push(Open({t: t, id: sid, keyPk: pk, bytesSigned: 0}));
    }

    function claim(uint256 idx, uint64 more) external {
        if (sessions.length == 0) return;
        Open storage s = sessions[idx % sessions.length];
        more = uint64(bound(more, 1, 64 * 2 ** 30));
        uint64 b = s.bytesSigned + more;
        uint64 ts = uint64(vm.getBlockTimestamp());
        if (ts <= market.session(s.id).lastReceiptAt) {
            vm.warp(ts + 1);
            ts += 1;
        }
        bytes32 digest = market.receiptDigest(s.id, b, ts);
        (uint8 v, bytes32 r, bytes32 ss) = vm.sign(s.keyPk, digest);
        vm.prank(market.provider(s.t.providerId).owner);
        market.claim(s.t, b, ts, abi.encodePacked(r, ss, v));
        s.bytesSigned = b;
        if (market.session(s.id).paid > s.t.deposit) ++ghostOverpaid;
    }

    /// Anyone collects a provider's earnings (the fee feeds the pool that pays oracles and bonus).
    function collectEarnings(uint256 who) external {
        uint32 n = market.providerCount();
        if (n == 0) return;
        uint32 id = uint32(bound(who, 1, n));
        if (market.provider(id).earned == 0) return;
        market.collectEarnings(id);
    }

    function closeByClient(uint256 idx) external {
        if (sessions.length == 0) return;
        Open storage s = sessions[idx % sessions.length];
        if (market.session(s.id).status != IWirepactMarket.SessionStatus.Open) return;
        vm.prank(s.t.client);
        market.close(s.t);
    }

    function closeByProvider(uint256 idx) external {
        if (sessions.length == 0) return;
        uint256 i = idx % sessions.length;
        Open memory s = sessions[i];
        vm.prank(market.provider(s.t.providerId).owner);
        market.close(s.t);
        _drop(i, s.id);
    }

    function settle(uint256 idx) external {
        if (sessions.length == 0) return;
        uint256 i = idx % sessions.length;
        Open memory s = sessions[i];
        IWirepactMarket.SessionState memory st = market.session(s.id);
        if (st.status != IWirepactMarket.SessionStatus.Closing) return;
        uint256 at = uint256(st.closedAt) + market.params().claimGrace;
        if (vm.getBlockTimestamp() < at) vm.warp(at);
        market.settle(s.t);
        _drop(i, s.id);
    }

    function warp(uint256 secs) external {
        secs = bound(secs, 1, 3 * epochLength);
        vm.warp(vm.getBlockTimestamp() + secs);
        vm.roll(block.number + 1);
    }

    function unstake(uint256 who, uint256 amount) external {
        address p = providers[who % providers.length];
        uint32 id = market.providerIdOf(p);
        if (id == 0) return;
        IWirepactMarket.ProviderView memory v = market.provider(id);
        uint256 minimum = market.minProviderStake(v.capacityMbps);
        if (v.status == IWirepactMarket.ProviderStatus.Left || v.stake <= minimum) return;
        amount = bound(amount, 1, v.stake - minimum);
        vm.prank(p);
        market.requestUnstake(id, amount);
    }

    function withdrawUnbonded(uint256 who) external {
        address p = providers[who % providers.length];
        uint32 id = market.providerIdOf(p);
        if (id == 0) return;
        IWirepactMarket.ProviderView memory v = market.provider(id);
        if (v.unbonding == 0) return;
        if (vm.getBlockTimestamp() < v.unbondingReadyAt) vm.warp(v.unbondingReadyAt);
        vm.prank(p);
        market.withdrawUnbonded(id);
        ghostUnbondedOut += v.unbonding;
    }

    /// A report for the current epoch: every audited active provider, random rates;
    /// `nSigners` in 1..4 (below quorum must be refused).
    function report(uint256 seed, uint8 nSigners) external {
        market.beginEpoch();
        uint64 e = market.currentEpoch();
        if (market.isReported(e)) return;
        uint256 m = bound(nSigners, 1, 4);
        bytes memory ids;
        uint32 n = market.providerCount();
        uint256 count;
        for (uint32 id = 1; id <= n; ++id) {
            if (_auditedOffChain(e, id)) {
                ids = abi.encodePacked(ids, id);
                ++count;
            }
        }
        (bytes memory rep, bytes[] memory sigs) = _report(e, ids, _rows(seed, m, count), m);
        _submitAndCheck(e, m, rep, sigs);
    }

    /// Each oracle's observations: a quarter far below any SLA, the rest far above.
    function _rows(uint256 seed, uint256 m, uint256 count) internal pure returns (bytes[] memory rows) {
        rows = new bytes[](m);
        for (uint256 i; i < m; ++i) {
            bytes memory row;
            for (uint256 j; j < count; ++j) {
                uint256 r = uint256(keccak256(abi.encode(seed, i, j)));
                uint32 kbps = r % 4 == 0 ? uint32((r >> 8) % 1_000) : uint32(1_000_000 + (r >> 8) % 1_000_000);
                bool up = (r >> 64) % 8 != 0;
                row = abi.encodePacked(row, kbps, uint24(20), uint8(up ? 1 : 0));
            }
            rows[i] = row;
        }
    }

    function _submitAndCheck(uint64 e, uint256 m, bytes memory rep, bytes[] memory sigs) internal {
        uint256 stakeBefore = _totalProviderStake();
        uint256[] memory before = _stakes();
        vm.recordLogs();
        try this.submitAsOracles(e, rep, sigs) {
            _committed[e + 2] = true;
            _recordVerdicts(e, rep);
            _checkSlashes(before);
            ++ghostReportsAccepted;
            address[] memory who = new address[](m);
            for (uint256 i; i < m; ++i) {
                who[i] = oracles[i];
            }
            (uint256 signing, uint256 eligible) = market.signingStake(e, who);
            if (signing * 3 <= eligible * 2) ++ghostReportsBelowQuorum;
            ghostSlashed += stakeBefore - _totalProviderStake();
        } catch {}
    }

    /// The submission itself (external, so a refused report can be caught). Not a fuzz target:
    /// only this handler calls it.
    function submitAsOracles(uint64 e, bytes memory rep, bytes[] memory sigs) external {
        require(msg.sender == address(this), "handler only");
        (bytes32 root, uint32 available, bytes memory violations,,, bytes32 commit) =
            abi.decode(rep, (bytes32, uint32, bytes, uint32[], uint32[], bytes32));
        market.submitReport(e, root, available, violations, commit, _revealOf(e), sigs);
    }

    // ---------------------------------------------------------------- helpers

    function _market() internal view override returns (IWirepactMarket) {
        return market;
    }

    function _oracle(uint256 i) internal view override returns (address, uint256) {
        return (oracles[i], oracleKeys[i]);
    }

    // ------------------------------------------------ lifecycle, bonus, oracle set

    /// A provider claims the bonus of the period that ended, proving every epoch it may.
    function claimBonus(uint256 who) external {
        address p = providers[who % providers.length];
        uint32 id = market.providerIdOf(p);
        uint32 nowPeriod = market.currentPeriod();
        if (id == 0 || nowPeriod == 0) return;
        uint32 period = nowPeriod - 1;
        IWirepactMarket.ProviderView memory v = market.provider(id);
        uint64 len = market.params().rewardPeriodEpochs;
        uint64[] memory es = new uint64[](len);
        uint256 n;
        for (uint64 e = uint64(period) * len; e < uint64(period + 1) * len; ++e) {
            if (
                e > v.registeredEpoch && e >= v.jailedUntilEpoch && market.verdictRoot(e) != bytes32(0)
                    && _judgedAvailable(e, id)
            ) es[n++] = e;
        }
        assembly {
            mstore(es, n)
        }
        uint256 bal = market.balanceOf(p);
        IWirepactMarket.BonusLeaf[] memory leaves = _bonusLeaves(id, es);
        vm.prank(p);
        try market.claimBonus(id, period, leaves) {
            ghostBonusPaid[period] += market.balanceOf(p) - bal;
        } catch (bytes memory err) {
            // a Panic (arithmetic) would lock an eligible provider out of its share
            if (err.length >= 4 && bytes4(err) == bytes4(0x4e487b71)) ++ghostBonusPanics;
        }
    }

    function sweepBonus() external {
        uint32 nowPeriod = market.currentPeriod();
        if (nowPeriod < 2) return;
        market.sweepBonus(nowPeriod - 2);
    }

    function leave(uint256 who) external {
        address p = providers[who % providers.length];
        uint32 id = market.providerIdOf(p);
        if (id == 0) return;
        vm.prank(p);
        market.leave(id);
    }

    function unjail(uint256 who) external {
        address p = providers[who % providers.length];
        uint32 id = market.providerIdOf(p);
        if (id == 0) return;
        vm.prank(p);
        market.unjail(id);
    }

    function setPrice(uint256 who, uint96 price) external {
        address p = providers[who % providers.length];
        uint32 id = market.providerIdOf(p);
        if (id == 0) return;
        price = uint96(bound(price, 1, 1e20));
        vm.prank(p);
        market.updateProvider(id, price, bytes32(uint256(uint160(p))), "h:2");
    }

    function setPaused(uint256 who, bool paused) external {
        address p = providers[who % providers.length];
        uint32 id = market.providerIdOf(p);
        if (id == 0) return;
        vm.prank(p);
        market.setPaused(id, paused);
    }

    /// A new oracle joins (it signs from the next epoch; the report action signs with the
    /// first four only).
    function oracleJoin(uint256 stake) external {
        if (extraOracles >= 6) return;
        uint256 pk = 0xABC000 + ++extraOracles;
        address o = vm.addr(pk);
        stake = bound(stake, market.params().minOracleStake, 1e24);
        token.mint(o, stake);
        vm.prank(o);
        token.approve(address(market), type(uint256).max);
        vm.prank(o);
        market.registerOracle("https://o", stake);
        oracles.push(o);
        oracleKeys.push(pk);
    }

    function oracleLeave(uint256 i) external {
        if (oracles.length <= 4) return;
        address o = oracles[4 + i % (oracles.length - 4)];
        vm.prank(o);
        market.requestOracleLeave();
    }

    function oracleWithdraw(uint256 i) external {
        if (oracles.length <= 4) return;
        address o = oracles[4 + i % (oracles.length - 4)];
        IWirepactMarket.OracleView memory v = market.oracle(o);
        if (v.status != IWirepactMarket.OracleStatus.Leaving) return;
        if (vm.getBlockTimestamp() < v.unbondingReadyAt) vm.warp(v.unbondingReadyAt);
        vm.prank(o);
        market.withdrawOracleStake();
    }

    /// One of the extra oracles signs two different observations for the epoch; a client
    /// proves it.
    function equivocate(uint256 i, uint256 who) external {
        if (oracles.length <= 4) return;
        uint256 k = 4 + i % (oracles.length - 4);
        uint64 e = market.currentEpoch();
        (IWirepactMarket.ReportHeader memory a, bytes memory sigA) = _signHeader(oracleKeys[k], e, keccak256("a"), 1, "");
        (IWirepactMarket.ReportHeader memory b, bytes memory sigB) = _signHeader(oracleKeys[k], e, keccak256("b"), 1, "");
        vm.prank(clients[who % clients.length]);
        market.proveEquivocation(e, a, sigA, b, sigB);
        ++ghostEquivocationsProven;
    }

    function _stakes() internal view returns (uint256[] memory s) {
        uint32 n = market.providerCount();
        s = new uint256[](n + 1);
        for (uint32 id = 1; id <= n; ++id) {
            IWirepactMarket.ProviderView memory v = market.provider(id);
            s[id] = uint256(v.stake) + v.unbonding;
        }
    }

    /// Every slash of the last report took exactly slashBps of stake + unbonding, whatever the
    /// provider's status.
    function _checkSlashes(uint256[] memory before) internal {
        VmSafe.Log[] memory logs = vm.getRecordedLogs();
        uint256 bps = market.params().slashBps;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] != IWirepactMarket.ProviderSlashed.selector) continue;
            uint32 id = uint32(uint256(logs[i].topics[1]));
            (uint256 amount,,) = abi.decode(logs[i].data, (uint256, uint256, uint32));
            if (amount != before[id] * bps / 10_000) ++ghostWrongSlashes;
        }
    }

    function _totalProviderStake() internal view returns (uint256 s) {
        uint32 n = market.providerCount();
        for (uint32 id = 1; id <= n; ++id) {
            IWirepactMarket.ProviderView memory v = market.provider(id);
            s += uint256(v.stake) + v.unbonding;
        }
    }

    function _drop(uint256 i, bytes32 id) internal {
        everSettled[id] = true;
        sessions[i] = sessions[sessions.length - 1];
        sessions.pop();
    }

    function _lastTerms() internal returns (IWirepactMarket.SessionTerms memory) {
        VmSafe.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == IWirepactMarket.SessionOpened.selector) {
                return abi.decode(logs[i].data, (IWirepactMarket.SessionTerms));
            }
        }
        revert("no SessionOpened");
    }
}

import {VmSafe} from "forge-std/Vm.sol";
