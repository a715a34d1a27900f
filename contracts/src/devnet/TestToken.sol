// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestToken
/// @notice DEVNET ONLY: an ERC20 anyone can mint. Never deploy it on a chain with value;
/// the market itself works with any ERC20.
contract TestToken is ERC20 {
    constructor() ERC20("wirepact test token", "tWPT") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
