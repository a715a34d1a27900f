// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title AuditSet
/// @notice Which providers are audited in an epoch.
///
/// Provider `id` is audited in epoch `e` iff
///
///     uint256(keccak256(abi.encode(seed_e, id))) % 10_000 < auditProbabilityBps
///
/// where `seed_e` is the epoch's seed recorded by `beginEpoch` (see `WirepactMarket`).
/// Each provider is drawn independently, so a provider cannot tell from the set size
/// whether it is in it, and off-chain code (oracles, simulator) derives the same set by
/// hashing every registered id.
library AuditSet {
    function isAudited(bytes32 seed, uint32 providerId, uint256 probabilityBps) internal pure returns (bool) {
        if (seed == bytes32(0)) return false;
        return uint256(keccak256(abi.encode(seed, providerId))) % 10_000 < probabilityBps;
    }
}
