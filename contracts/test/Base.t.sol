// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Test, Vm} from "forge-std/Test.sol";
import {IWirepactMarket} from "../src/interfaces/IWirepactMarket.sol";
import {TestToken} from "../src/devnet/TestToken.sol";
import {OracleModel} from "./OracleModel.sol";

/// Shared fixture: a market with 4 oracles, helpers to register providers, open sessions,
/// sign receipts and build oracle reports.
abstract contract BaseTest is Test, OracleModel {
    IWirepactMarket internal market;
    TestToken internal token;

    uint256 internal constant ONE = 1e18;
    uint64 internal constant EPOCH = 600;
    uint256 internal constant GIB = 1 << 30;

    address internal client;
    uint256 internal clientKey;
    address internal sessionKey;
    uint256 internal sessionPk;
    address internal prov;
    address internal prov2;
    address[] internal oracles;
    uint256[] internal oracleKeys;

    function defaultParams(address tokenAddr) internal pure returns (IWirepactMarket.Params memory p) {
        p = IWirepactMarket.Params({
            token: tokenAddr,
            epochLength: EPOCH,
            auditProbabilityBps: 10_000,
            minStakePerMbps: uint128(10 * ONE),
            minOracleStake: uint128(100 * ONE),
            unbondingDelay: 7 days,
            claimGrace: 1 hours,
            alphaBps: 10_000,
            protocolFeeBps: 200,
            oracleRewardPerReport: uint128(ONE / 100),
            throughputToleranceBps: 1_000,
            latencyToleranceMs: 20,
            violationsToSlash: 2,
            violationWindow: 3,
            slashBps: 1_000,
            slashOracleShareBps: 2_000,
            jailEpochs: 6,
            sessionPenaltyBps: 2_500,
            rewardPeriodEpochs: 10,
            bonusMinAudits: 3,
            bonusAvailabilityBps: 9_990,
            bonusPoolShareBps: 5_000,
            minDepositSeconds: 60,
            auditHourWeights: 0
        });
    }

    function _market() internal view override returns (IWirepactMarket) {
        return market;
    }

    function _oracle(uint256 i) internal view override returns (address, uint256) {
        return (oracles[i], oracleKeys[i]);
    }

    function setUp() public virtual {
        vm.warp(1_700_000_000);
        token = new TestToken();
        market = _deployMarket(defaultParams(address(token)));
        (client, clientKey) = makeAddrAndKey("client");
        (sessionKey, sessionPk) = makeAddrAndKey("sessionKey");
        prov = makeAddr("provider");
        prov2 = makeAddr("provider2");
        _fund(client, 1_000 * ONE);
        _fund(prov, 10_000 * ONE);
        _fund(prov2, 10_000 * ONE);
        vm.prank(client);
        market.deposit(500 * ONE);
        for (uint256 i; i < 4; ++i) {
            (address o, uint256 k) = makeAddrAndKey(string(abi.encodePacked("oracle", vm.toString(i))));
            oracles.push(o);
            oracleKeys.push(k);
        }
        _sortOracles();
        for (uint256 i; i < 4; ++i) {
            _fund(oracles[i], 1_000 * ONE);
            vm.prank(oracles[i]);
            market.registerOracle("https://oracle.example:8443", 100 * ONE);
        }
    }

    // --------------------------------------------------------------- helpers

    /// The market is compiled via IR on its own; tests deploy its artifact.
    function _deployMarket(IWirepactMarket.Params memory p) internal returns (IWirepactMarket) {
        address module = deployCode("AuditModule.sol:AuditModule", abi.encode(p));
        return IWirepactMarket(deployCode("WirepactMarket.sol:WirepactMarket", abi.encode(p, module)));
    }

    /// A market on `p` whose four oracles (already funded) stake 100 tokens each.
    function _marketWithOracles(IWirepactMarket.Params memory p) internal returns (IWirepactMarket m) {
        m = _deployMarket(p);
        for (uint256 i; i < 4; ++i) {
            vm.startPrank(oracles[i]);
            token.approve(address(m), type(uint256).max);
            m.registerOracle("https://o.example", 100 * ONE);
            vm.stopPrank();
        }
    }

    function _fund(address who, uint256 amount) internal {
        token.mint(who, amount);
        vm.prank(who);
        token.approve(address(market), type(uint256).max);
    }

    function _sortOracles() internal {
        for (uint256 i = 1; i < oracles.length; ++i) {
            for (uint256 j = i; j > 0 && oracles[j - 1] > oracles[j]; --j) {
                (oracles[j - 1], oracles[j]) = (oracles[j], oracles[j - 1]);
                (oracleKeys[j - 1], oracleKeys[j]) = (oracleKeys[j], oracleKeys[j - 1]);
            }
        }
    }

    function _terms() internal pure returns (IWirepactMarket.ProviderTerms memory) {
        return IWirepactMarket.ProviderTerms({
            capacityMbps: 100, sessionMbps: 25, maxLatencyMs: 80, basePricePerGiB: uint96(ONE / 10)
        });
    }

    function _register(address who) internal returns (uint32 id) {
        vm.prank(who);
        id = market.registerProvider(_terms(), keccak256(abi.encode(who)), "203.0.113.7:443", "eu", 1_000 * ONE);
    }

    function _open(uint32 id, uint256 dep) internal returns (IWirepactMarket.SessionTerms memory t, bytes32 sid) {
        vm.recordLogs();
        vm.prank(client);
        sid = market.openSession(id, dep, type(uint256).max, sessionKey);
        t = _termsFromLogs();
    }

    function _termsFromLogs() internal returns (IWirepactMarket.SessionTerms memory t) {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bytes32 sig = IWirepactMarket.SessionOpened.selector;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == sig) {
                t = abi.decode(logs[i].data, (IWirepactMarket.SessionTerms));
                return t;
            }
        }
        revert("no SessionOpened");
    }

    function _signReceipt(uint256 pk, bytes32 sid, uint64 bytes_, uint64 ts) internal view returns (bytes memory) {
        bytes32 digest = market.receiptDigest(sid, bytes_, ts);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, digest);
        return abi.encodePacked(r, s, v);
    }

    function _claim(IWirepactMarket.SessionTerms memory t, bytes32 sid, uint64 bytes_) internal {
        uint64 ts = uint64(_now());
        bytes memory sig = _signReceipt(sessionPk, sid, bytes_, ts);
        vm.prank(market.provider(t.providerId).owner);
        market.claim(t, bytes_, ts, sig);
    }

    function _measurement(uint32 kbps, uint32 latMs, bool reachable) internal pure returns (bytes memory) {
        return abi.encodePacked(kbps, uint24(latMs), uint8(reachable ? 1 : 0));
    }

    function _ids1(uint32 id) internal pure returns (bytes memory) {
        return abi.encodePacked(id);
    }

    /// All 4 oracles report the same measurement for one provider; 3 sign.
    function _reportOne(uint64 epoch, uint32 id, uint32 kbps, uint32 latMs, bool reachable) internal {
        bytes[] memory ms = new bytes[](4);
        for (uint256 i; i < 4; ++i) {
            ms[i] = _measurement(kbps, latMs, reachable);
        }
        (bytes memory m, bytes[] memory s) = _report(epoch, _ids1(id), ms, 3);
        _submitReport(epoch, _ids1(id), m, s);
    }

    /// The block timestamp as the VM sees it (robust to the optimizer caching `block.timestamp`).
    function _now() internal view returns (uint256) {
        return vm.getBlockTimestamp();
    }

    function _nextEpoch() internal returns (uint64 e) {
        vm.warp(_now() + EPOCH);
        vm.roll(block.number + 1);
        market.beginEpoch();
        e = market.currentEpoch();
    }
}


