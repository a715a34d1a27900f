// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {BaseTest} from "./Base.t.sol";
import {IWirepactMarket} from "../src/interfaces/IWirepactMarket.sol";
import {AuditSet} from "../src/libraries/AuditSet.sol";

/// Audits that follow demand (issue 18): with `auditHourWeights` an epoch's audit probability
/// is the base one weighted by the UTC hour it starts in, so an oversold provider, which fails
/// only when its pipe is busiest, meets more of its audits then; a day still costs the same
/// audits. The market holds reports to the hour's probability.
contract AuditHoursTest is BaseTest {
    uint16 internal constant BASE_BPS = 1_000;

    /// Weight 4 for 18:00-21:59 UTC, 1 for every other hour: sum 4*4 + 20 = 36.
    function _eveningWeights() internal pure returns (uint256 w) {
        for (uint256 h; h < 24; ++h) {
            w |= (h >= 18 && h < 22 ? uint256(4) : uint256(1)) << (8 * h);
        }
    }

    function _params(uint256 weights) internal view returns (IWirepactMarket.Params memory p) {
        p = defaultParams(address(token));
        p.auditProbabilityBps = BASE_BPS;
        p.auditHourWeights = weights;
    }

    /// The first epoch that starts in UTC hour `h` at or after `from`.
    function _epochAtHour(IWirepactMarket m, uint64 from, uint256 h) internal view returns (uint64 e) {
        for (e = from; ((m.epochStart(e)) / 3600) % 24 != h; ++e) {}
    }

    function test_TheHourWeightsTheProbability_AndADayKeepsItsAudits() external {
        IWirepactMarket m = _deployMarket(_params(_eveningWeights()));
        assertEq(m.params().auditHourWeights, _eveningWeights());
        // 1,000 bps * 4 * 24 / 36 at the evening peak, 1,000 * 24 / 36 otherwise (rounded down).
        assertEq(m.auditProbabilityAt(_epochAtHour(m, 0, 20)), 2_666);
        assertEq(m.auditProbabilityAt(_epochAtHour(m, 0, 8)), 666);
        // Over a day of epochs the expected audits are the flat market's, to rounding.
        uint64 first = _epochAtHour(m, 0, 0);
        uint256 epochsPerDay = 86_400 / EPOCH;
        uint256 sum;
        for (uint64 e = first; e < first + epochsPerDay; ++e) {
            sum += m.auditProbabilityAt(e);
        }
        assertApproxEqAbs(sum, uint256(BASE_BPS) * epochsPerDay, epochsPerDay);
        // Flat when no weights are set.
        IWirepactMarket flat = _deployMarket(_params(0));
        assertEq(flat.auditProbabilityAt(_epochAtHour(flat, 0, 20)), BASE_BPS);
    }

    /// No hour may go unaudited, and only 24 bytes of weights exist.
    function test_RevertWhen_AnHourHasNoWeight() external {
        uint256 w = _eveningWeights() & ~(uint256(0xff) << (8 * 3));
        vm.expectRevert(IWirepactMarket.Market_InvalidParams.selector);
        deployCode("AuditModule.sol:AuditModule", abi.encode(_params(w)));
        vm.expectRevert(IWirepactMarket.Market_InvalidParams.selector);
        deployCode("AuditModule.sol:AuditModule", abi.encode(_params(_eveningWeights() | (uint256(1) << 200))));
    }

    /// The submitter names, at a quiet hour, a violator the flat probability would draw but the
    /// hour's does not: refused.
    function test_Attack_ViolatorOutsideTheHoursDraw_Refused() external {
        market = _marketWithOracles(_params(_eveningWeights()));
        uint32 n;
        for (uint256 i; i < 40; ++i) {
            address who = address(uint160(0xB000 + i));
            _fund(who, 10_000 * ONE);
            n = _register(who);
        }
        // Two epochs for the oracle set to take over, then a quiet hour with a drawn provider
        // that the flat 10 % would have audited and the quiet hour's 6.66 % does not.
        uint64 e = _nextEpoch();
        e = _nextEpoch();
        uint32 victim;
        for (uint256 tries; victim == 0 && tries < 400; ++tries) {
            e = _nextEpoch();
            if ((market.epochStart(e) / 3600) % 24 >= 18 && (market.epochStart(e) / 3600) % 24 < 22) continue;
            bytes32 seed = market.epochSeed(e);
            for (uint32 id = 1; id <= n; ++id) {
                if (AuditSet.isAudited(seed, id, BASE_BPS) && !AuditSet.isAudited(seed, id, market.auditProbabilityAt(e)))
                {
                    victim = id;
                    break;
                }
            }
        }
        assertGt(victim, 0, "found a provider only the flat draw audits");
        bytes[] memory ms = new bytes[](4);
        for (uint256 i; i < 4; ++i) {
            ms[i] = _measurement(1_000, 40, true);
        }
        (bytes memory rep, bytes[] memory sigs) = _report(e, _ids1(victim), ms, 3);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_ProviderNotAudited.selector, e, victim));
        _submitReport(e, _ids1(victim), rep, sigs);
    }
}
