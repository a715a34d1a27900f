// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Test} from "forge-std/Test.sol";

/// Every deployed contract keeps at least 20 % headroom under the 24,576-byte code limit, so
/// the next fix still fits (the single-contract market had 108 bytes left).
contract SizesTest is Test {
    uint256 internal constant LIMIT = 24_576;

    function test_EveryDeployedContractKeeps20PercentHeadroom() external view {
        string[2] memory names = ["WirepactMarket.sol:WirepactMarket", "AuditModule.sol:AuditModule"];
        for (uint256 i; i < names.length; ++i) {
            uint256 size = vm.getDeployedCode(names[i]).length;
            assertGt(size, 0, names[i]);
            assertLe(size * 100, LIMIT * 80, names[i]);
        }
    }
}
