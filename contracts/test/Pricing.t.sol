// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Test} from "forge-std/Test.sol";
import {Pricing} from "../src/libraries/Pricing.sol";
import {Median} from "./lib/Median.sol";

contract PricingTest is Test {
    function testFuzz_MonotoneInUtilisation(uint96 base, uint32 cap, uint32 c1, uint32 c2, uint32 alpha) external pure {
        cap = uint32(bound(cap, 1, type(uint32).max));
        c1 = uint32(bound(c1, 0, cap));
        c2 = uint32(bound(c2, c1, cap));
        assertLe(Pricing.quote(base, c1, cap, alpha), Pricing.quote(base, c2, cap, alpha));
    }

    function testFuzz_Bounded(uint96 base, uint32 cap, uint32 c, uint32 alpha) external pure {
        cap = uint32(bound(cap, 1, type(uint32).max));
        c = uint32(bound(c, 0, cap));
        uint256 q = Pricing.quote(base, c, cap, alpha);
        assertGe(q, base);
        assertLe(q, uint256(base) + uint256(base) * alpha / 10_000);
    }

    function test_Examples() external pure {
        // u = 0.5, alpha = 1: 1 + 0.25
        assertEq(Pricing.quote(1000, 50, 100, 10_000), 1250);
        // full: 1 + alpha
        assertEq(Pricing.quote(1000, 100, 100, 20_000), 3000);
        // rounding down in the client's favour: 7 * 1 * 1/9 = 0.77 -> 0
        assertEq(Pricing.quote(7, 1, 3, 10_000), 7);
    }

    function testFuzz_MedianBetweenHonestValues(uint32[7] memory honest, uint32[3] memory liars, uint8 nLiars)
        external
        pure
    {
        uint256 f = bound(nLiars, 0, 3);
        // n = 2f+1 values, f of them arbitrary
        uint256 n = 2 * f + 1;
        uint32[] memory v = new uint32[](n);
        uint32 lo = type(uint32).max;
        uint32 hi;
        for (uint256 i; i < n - f; ++i) {
            v[i] = honest[i];
            if (honest[i] < lo) lo = honest[i];
            if (honest[i] > hi) hi = honest[i];
        }
        for (uint256 i; i < f; ++i) {
            v[n - f + i] = liars[i];
        }
        uint32 m = Median.lowerMedian(v);
        assertGe(m, lo);
        assertLe(m, hi);
    }

    /// Liars holding less than half of the weight cannot move the weighted median outside the
    /// honest values, however many of them there are.
    function testFuzz_WeightedMedianBetweenHonestValues(
        uint32[4] memory honest,
        uint64[4] memory honestStake,
        uint32[8] memory liars,
        uint64[8] memory liarStake
    ) external pure {
        uint32[] memory v = new uint32[](12);
        uint256[] memory w = new uint256[](12);
        uint256 hw;
        uint32 lo = type(uint32).max;
        uint32 hi;
        for (uint256 i; i < 4; ++i) {
            v[i] = honest[i];
            w[i] = bound(honestStake[i], 1, type(uint64).max);
            hw += w[i];
            if (honest[i] < lo) lo = honest[i];
            if (honest[i] > hi) hi = honest[i];
        }
        uint256 lw;
        for (uint256 i; i < 8; ++i) {
            v[4 + i] = liars[i];
            // the liars together hold strictly less than the honest weight
            w[4 + i] = bound(liarStake[i], 1, (hw - 1) / 8 + 1);
            lw += w[4 + i];
        }
        if (lw >= hw) return;
        uint32 m = Median.weightedLowerMedian(v, w, 12, hw + lw);
        assertGe(m, lo);
        assertLe(m, hi);
    }

    /// With equal weights the weighted median is the plain lower median.
    function testFuzz_WeightedMedianWithEqualWeightsIsTheLowerMedian(uint32[9] memory vals, uint8 n, uint64 weight)
        external
        pure
    {
        uint256 k = bound(n, 1, 9);
        uint256 wt = bound(weight, 1, type(uint64).max);
        uint32[] memory a = new uint32[](k);
        uint32[] memory b = new uint32[](k);
        uint256[] memory w = new uint256[](k);
        for (uint256 i; i < k; ++i) {
            (a[i], b[i], w[i]) = (vals[i], vals[i], wt);
        }
        assertEq(Median.weightedLowerMedian(a, w, k, wt * k), Median.lowerMedian(b));
    }
}
