// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Median
/// @notice Lower median of a small array: element `(n-1)/2` of the sorted values. The market
/// does not compute medians (the oracles agree on them off chain, `wirepact_proto::verdicts`);
/// this is the tests' reference oracle's (`OracleModel.sol`).
///
/// With `n >= 2f+1` values of which at most `f` are arbitrary (lying oracles), the lower
/// median lies between the smallest and the largest honest value: at least `f` sorted
/// positions sit on each side of index `(n-1)/2`. Insertion sort: `n` is the number of
/// report signers (a few dozen at most).
library Median {
    function lowerMedian(uint32[] memory values) internal pure returns (uint32) {
        uint256 n = values.length;
        if (n == 3) {
            // The common case (3 signers of 4 oracles) without a sort.
            (uint32 a, uint32 b, uint32 c) = (values[0], values[1], values[2]);
            if (a > b) (a, b) = (b, a);
            if (b > c) b = c;
            return a > b ? a : b;
        }
        for (uint256 i = 1; i < n; ++i) {
            uint32 v = values[i];
            uint256 j = i;
            while (j > 0 && values[j - 1] > v) {
                values[j] = values[j - 1];
                --j;
            }
            values[j] = v;
        }
        return values[(n - 1) / 2];
    }

    /// Stake-weighted lower median of the first `k` values: the smallest value `v` such that
    /// the values <= `v` carry at least half of `total` (the sum of the first `k` weights).
    /// Sorts the first `k` (value, weight) pairs in place. With equal weights it is
    /// `lowerMedian`. Values held by less than half the weight cannot move it outside the
    /// range of the others' values.
    function weightedLowerMedian(uint32[] memory values, uint256[] memory weights, uint256 k, uint256 total)
        internal
        pure
        returns (uint32)
    {
        for (uint256 i = 1; i < k; ++i) {
            (uint32 v, uint256 w) = (values[i], weights[i]);
            uint256 j = i;
            while (j > 0 && values[j - 1] > v) {
                values[j] = values[j - 1];
                weights[j] = weights[j - 1];
                --j;
            }
            values[j] = v;
            weights[j] = w;
        }
        uint256 cum;
        for (uint256 i; i < k; ++i) {
            cum += weights[i];
            if (cum * 2 >= total) return values[i];
        }
        return values[k - 1];
    }
}
