// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Test} from "forge-std/Test.sol";
import {Pricing} from "../src/libraries/Pricing.sol";
import {Median} from "../src/libraries/Median.sol";

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
}
