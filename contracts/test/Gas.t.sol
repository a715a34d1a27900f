// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {BaseTest} from "./Base.t.sol";
import {IWirepactMarket} from "../src/interfaces/IWirepactMarket.sol";
import {console} from "forge-std/console.sol";

/// Gas benchmarks (not timed tests). `make gas` runs them with `--isolate`, so every call
/// to the market is its own transaction: cold storage, the 21k base and calldata included,
/// exactly what a user pays. Figures land in `snapshots/GasTest.json` (committed) and the run
/// prints `session_lifecycle_gas` and `report_gas_per_provider`.
contract GasTest is BaseTest {
    uint256 internal constant PROVIDERS = 50;

    function test_Gas_SessionLifecycle() external {
        uint32 id = _register(prov);
        // The provider has been paid before (its balance slot is warm-nonzero in steady state).
        (IWirepactMarket.SessionTerms memory t0, bytes32 s0) = _open(id, ONE);
        _claim(t0, s0, 1000);
        vm.prank(prov);
        market.close(t0);

        vm.recordLogs();
        vm.prank(client);
        bytes32 sid = market.openSession(id, 10 * ONE, type(uint256).max, sessionKey);
        uint256 gOpen = vm.snapshotGasLastCall("openSession");
        IWirepactMarket.SessionTerms memory t = _termsFromLogs();

        vm.warp(_now() + 600);
        uint64 ts = uint64(_now());
        bytes memory sig = _signReceipt(sessionPk, sid, uint64(3 * GIB), ts);
        vm.prank(prov);
        market.claim(t, uint64(3 * GIB), ts, sig);
        uint256 gClaim = vm.snapshotGasLastCall("claim");

        vm.prank(prov);
        market.close(t);
        uint256 gClose = vm.snapshotGasLastCall("close_by_provider");

        uint256 total = gOpen + gClaim + gClose;
        vm.snapshotValue("session_lifecycle_gas", total);
        console.log("  openSession tx gas:", gOpen);
        console.log("  claim tx gas:", gClaim);
        console.log("  close (by provider, settles) tx gas:", gClose);
        console.log("  session_lifecycle_gas:", total);
    }

    /// 21 oracles of equal stake; returns them (ascending) with their keys.
    function _twentyOneOracles() internal returns (address[] memory who, uint256[] memory keys) {
        who = new address[](21);
        keys = new uint256[](21);
        for (uint256 i; i < 4; ++i) {
            (who[i], keys[i]) = (oracles[i], oracleKeys[i]);
        }
        for (uint256 i = 4; i < 21; ++i) {
            (who[i], keys[i]) = makeAddrAndKey(string(abi.encodePacked("gas-oracle", vm.toString(i))));
            _fund(who[i], 1_000 * ONE);
            vm.prank(who[i]);
            market.registerOracle("https://oracle.example:8443", 100 * ONE);
        }
        for (uint256 i = 1; i < 21; ++i) {
            for (uint256 j = i; j > 0 && who[j - 1] > who[j]; --j) {
                (who[j - 1], who[j]) = (who[j], who[j - 1]);
                (keys[j - 1], keys[j]) = (keys[j], keys[j - 1]);
            }
        }
    }

    /// One epoch of 10,000 audited providers, all healthy, signed by 15 of 21 oracles (just
    /// over two thirds of the stake): the report carries a root and signatures, nothing per
    /// provider. Then the same with `VIOLATORS` violators, for the extra gas per violator.
    function test_Gas_Report10kHealthy21Oracles() external {
        (, uint256[] memory keys) = _twentyOneOracles();
        uint256 violators = 20;
        bytes memory v;
        for (uint256 i; i < violators; ++i) {
            address owner = address(uint160(0xB0000 + i));
            _fund(owner, 10_000 * ONE);
            uint32 id = _register(owner);
            v = abi.encodePacked(v, id, uint32(1_000), uint24(20), uint8(1)); // 1 Mbit/s of a 25 Mbit/s SLA
        }
        // a report in an earlier epoch, so the signers' balances are warm as in steady state
        uint64 e0 = _nextEpoch();
        e0 = _nextEpoch();
        bytes32 root = keccak256("10k leaves");
        _submitCommitting(keys, e0, root, 10_000, "");
        _submitCommitting(keys, _nextEpoch(), root, 10_000, "");

        // as every report in steady state: it reveals this epoch's secret and commits e + 2's
        uint64 e = _nextEpoch();
        _submitCommitting(keys, e, root, 10_000, "");
        uint256 healthy = vm.snapshotGasLastCall("submitReport_10k_healthy_15of21");

        uint256 perViolator = (_reportViolators(keys, root, v) - healthy) / violators;
        vm.snapshotValue("report_gas_10k_healthy", healthy);
        vm.snapshotValue("report_gas_per_violator", perViolator);
        console.log("  report_gas_10k_healthy:", healthy);
        console.log("  report_gas_per_violator:", perViolator);
    }

    function _reportViolators(uint256[] memory keys, bytes32 root, bytes memory v) internal returns (uint256) {
        uint64 e = _nextEpoch();
        _submitCommitting(keys, e, root, 9_980, v);
        return vm.snapshotGasLastCall("submitReport_10k_20_violators_15of21");
    }

    /// A report signed by the first 15 of `keys` that reveals `e`'s secret and commits e + 2's.
    function _submitCommitting(uint256[] memory keys, uint64 e, bytes32 root, uint32 available, bytes memory v)
        internal
    {
        uint256[] memory quorum = new uint256[](15);
        for (uint256 i; i < 15; ++i) {
            quorum[i] = keys[i];
        }
        bytes32 commit = _seedCommitOf(e + 2);
        bytes[] memory sigs = _signAllKeys(quorum, market.reportDigest(e, root, available, v, commit));
        market.submitReport(e, root, available, v, commit, _revealOf(e), sigs);
        _committed[e + 2] = true;
    }

    /// A provider among 1,000 audited per epoch (10,000 providers at 10 %), available in 14
    /// audits of a 144-epoch period, proves its last leaf (which counts the 13 before).
    function test_Gas_BonusClaim14Audits() external {
        uint32 id = _bonusMarket();
        uint64[] memory es = _reportFourteen();
        vm.warp(market.epochStart(145));
        uint256 before = market.balanceOf(prov);
        vm.prank(prov);
        _claimBonus(id, 0, es);
        uint256 g = vm.snapshotGasLastCall("claimBonus_14_audits");
        assertGt(market.balanceOf(prov), before);
        vm.snapshotValue("bonus_claim_gas", g);
        console.log("  bonus_claim_gas:", g);
    }

    /// A market with 144-epoch periods, one provider whose traffic paid fees into the pool.
    function _bonusMarket() internal returns (uint32 id) {
        IWirepactMarket.Params memory p = defaultParams(address(token));
        p.rewardPeriodEpochs = 144;
        market = _deployMarket(p);
        for (uint256 i; i < 4; ++i) {
            _fund(oracles[i], 1_000 * ONE);
            vm.prank(oracles[i]);
            market.registerOracle("https://oracle.example:8443", 100 * ONE);
        }
        _fund(client, 1_000 * ONE);
        vm.prank(client);
        market.deposit(500 * ONE);
        _fund(prov, 10_000 * ONE);
        id = _register(prov);
        (IWirepactMarket.SessionTerms memory t, bytes32 sid) = _open(id, 400 * ONE);
        _claim(t, sid, uint64(3_000 * GIB));
        market.collectEarnings(id);
    }

    /// Reports 14 epochs of period 0, each judging providers 1..1,000 available.
    function _reportFourteen() internal returns (uint64[] memory es) {
        uint32[] memory ids = new uint32[](1_000);
        for (uint256 i; i < 1_000; ++i) {
            ids[i] = uint32(i + 1);
        }
        es = new uint64[](14);
        uint256 n;
        for (uint64 e = _nextEpoch(); e < 144; e = _nextEpoch()) {
            if (e % 10 != 5 || n == 14) continue;
            // every provider was available in each report before: its base is the count of them
            // up to e - 2 (all reported epochs here are 10 apart)
            uint32[] memory bases = new uint32[](1_000);
            for (uint256 i; i < 1_000; ++i) {
                bases[i] = uint32(n);
            }
            bytes32 root = _verdictRoot(e, ids, bases);
            bytes[] memory sigs = new bytes[](3);
            for (uint256 i; i < 3; ++i) {
                (, sigs[i]) = _signHeader(oracleKeys[i], e, root, 1_000, "");
            }
            _submitRaw(e, root, 1_000, "", sigs);
            _availableIds[e] = ids;
            _availableBases[e] = bases;
            es[n++] = e;
        }
    }
}
