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

    function test_Gas_Report50Providers3of4() external {
        address[] memory owners = new address[](PROVIDERS);
        bytes memory ids;
        for (uint256 i; i < PROVIDERS; ++i) {
            owners[i] = address(uint160(0xA0000 + i));
            _fund(owners[i], 10_000 * ONE);
            uint32 id = _register(owners[i]);
            ids = abi.encodePacked(ids, id);
        }
        uint64 e = _nextEpoch();
        // Warm-up report in the previous epoch so the providers' audit slots are non-zero,
        // as they are in steady state.
        bytes[] memory ms = new bytes[](4);
        for (uint256 i; i < 4; ++i) {
            bytes memory row;
            for (uint256 j; j < PROVIDERS; ++j) {
                row = abi.encodePacked(row, uint32(30_000 + i * 100 + j), uint24(20 + i), uint8(1));
            }
            ms[i] = row;
        }
        (bytes memory m, bytes[] memory s) = _report(e, ids, ms, 3);
        market.submitReport(e, ids, m, s);

        uint64 e2 = _nextEpoch();
        (m, s) = _report(e2, ids, ms, 3);
        market.submitReport(e2, ids, m, s);
        uint256 g = vm.snapshotGasLastCall("submitReport_50x3");
        uint256 total = g;
        vm.snapshotValue("report_gas_total_50_providers", total);
        vm.snapshotValue("report_gas_per_provider", total / PROVIDERS);
        console.log("  report tx gas (50 providers, 3 of 4 signatures):", total);
        console.log("  report_gas_per_provider:", total / PROVIDERS);
    }
}
