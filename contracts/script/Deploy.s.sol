// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {Script, console} from "forge-std/Script.sol";
import {IWirepactMarket} from "../src/interfaces/IWirepactMarket.sol";
import {TestToken} from "../src/devnet/TestToken.sol";

/// Deploys the market on anvil or any EVM chain.
///
///     forge script script/Deploy.s.sol --rpc-url $RPC --broadcast --private-key $KEY --sender $ADDR
///
/// (any forge wallet option works, e.g. `--keystore`). Environment: `WIREPACT_TOKEN` (settlement ERC20; if unset a devnet TestToken is deployed),
/// `WIREPACT_EPOCH_SECONDS` and `WIREPACT_AUDIT_BPS` override the two parameters that differ
/// most between a devnet and a production chain. All other parameters are the defaults below;
/// they are immutable once deployed and readable through `params()`.
contract Deploy is Script {
    /// The deploy defaults. They are `wirepact_chain::default_params()` (tuned with the
    /// simulator), value for value: the Rust test `deploy_script_defaults_match_default_params`
    /// reads this function and fails on any difference, so write each value as a plain integer
    /// (`_` separators and an `eN` exponent allowed).
    function defaults(address token) public pure returns (IWirepactMarket.Params memory p) {
        p = IWirepactMarket.Params({
            token: token,
            epochLength: 600, // 10 minutes
            auditProbabilityBps: 1_000, // each provider audited in ~1 of 10 epochs (~14 a day)
            minStakePerMbps: 1e18, // 1 token per declared Mbit/s
            minOracleStake: 1_000e18,
            unbondingDelay: 604_800, // 7 days
            claimGrace: 3_600, // 1 hour
            alphaBps: 10_000, // price doubles at full utilisation
            protocolFeeBps: 200, // 2 %
            oracleRewardPerReport: 1e16,
            throughputToleranceBps: 1_000, // 10 % below the SLA rate is tolerated
            latencyToleranceMs: 20,
            violationsToSlash: 3, // k
            violationWindow: 6, // w
            slashBps: 1_000, // 10 % of stake
            slashOracleShareBps: 2_000, // 20 % of a slash to the signers
            jailEpochs: 144, // one day
            sessionPenaltyBps: 2_500, // each violation during a session: -25 % payout
            rewardPeriodEpochs: 144, // one day
            bonusMinAudits: 5,
            bonusAvailabilityBps: 9_990, // 99.9 %
            bonusPoolShareBps: 5_000,
            minDepositSeconds: 60, // a session's deposit pays at least a minute at its rate
            auditHourWeights: 0 // every hour of the day audited alike
        });
    }

    function run() external returns (address market, address token) {
        token = vm.envOr("WIREPACT_TOKEN", address(0));
        vm.startBroadcast();
        if (token == address(0)) {
            token = address(new TestToken());
            console.log("TestToken (devnet only):", token);
        }
        IWirepactMarket.Params memory p = defaults(token);
        p.epochLength = uint64(vm.envOr("WIREPACT_EPOCH_SECONDS", uint256(p.epochLength)));
        p.auditProbabilityBps = uint16(vm.envOr("WIREPACT_AUDIT_BPS", uint256(p.auditProbabilityBps)));
        // 24 bytes, byte h = the weight of UTC hour h (see `Params.auditHourWeights`).
        p.auditHourWeights = vm.envOr("WIREPACT_AUDIT_HOUR_WEIGHTS", p.auditHourWeights);
        address module = deployCode("AuditModule.sol:AuditModule", abi.encode(p));
        market = deployCode("WirepactMarket.sol:WirepactMarket", abi.encode(p, module));
        vm.stopBroadcast();
        console.log("WirepactMarket:", market);
    }
}
