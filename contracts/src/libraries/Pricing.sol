// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title Pricing
/// @notice Congestion pricing of a provider's capacity.
///
///     quote = base + floor(base * alphaBps * c^2 / (10_000 * cap^2))
///
/// where `c` is the committed bandwidth *including* the session being priced and `cap` the
/// declared capacity, i.e. `base * (1 + alpha * u^2)` with `u = c / cap` after the session
/// opens. The surcharge rounds down (in the client's favour).
///
/// Assumptions: `c <= cap` (the market refuses to oversell, so `u <= 1`), `cap > 0`.
/// Properties (fuzzed in `test/Pricing.t.sol`):
///  - monotone: `c1 <= c2` implies `quote(c1) <= quote(c2)`;
///  - bounded:  `base <= quote <= base + floor(base * alphaBps / 10_000)`.
/// Overflow: base < 2^96, alphaBps < 2^32, c^2 < 2^64, so the product is < 2^192.
library Pricing {
    uint256 internal constant BPS = 10_000;

    function quote(uint256 base, uint256 committedAfter, uint256 capacity, uint256 alphaBps)
        internal
        pure
        returns (uint256)
    {
        return base + (base * alphaBps * committedAfter * committedAfter) / (BPS * capacity * capacity);
    }
}
