// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";

import {IWirepactMarket as M} from "./interfaces/IWirepactMarket.sol";
import {Pricing} from "./libraries/Pricing.sol";
import {AuditSet} from "./libraries/AuditSet.sol";
import {MarketBase} from "./MarketBase.sol";
import {AuditModule} from "./AuditModule.sol";

/// @title WirepactMarket
/// @notice Bandwidth sold under a service-level agreement, paid from escrow against
/// client-signed receipts, audited by staked oracles, enforced by slashing.
///
/// ## Layout
/// Two deployed contracts behind one address. `WirepactMarket` (this entry point) holds every
/// token and all state, and runs the hot paths itself: accounts, providers, sessions. Every
/// other function of `IWirepactMarket` (the oracle set, epochs, reports, equivocation proofs,
/// the bonus, and their views) reaches `AuditModule` through the fallback, by DELEGATECALL, on
/// this contract's storage. Both inherit one storage layout (`MarketBase`) and nothing else
/// with storage; the module is immutable, built from the same parameters (checked here at
/// construction) and refuses direct calls. Why not linked libraries: a deploy would then need
/// link-time address patching in every deployer (forge, `wirepact deploy`, the simulator);
/// a module address passed to the constructor keeps one plain deploy path, and a session's
/// lifecycle pays no extra call. Both contracts keep >= 20 % headroom under 24,576 B.
///
/// ## Accounts
/// Every party has an internal balance (`balanceOf`). `deposit` pulls tokens in, `withdraw`
/// sends them out; sessions, earnings, refunds, rewards and unbonded stake move between
/// internal balances, so a session's lifecycle costs no token transfer (gas is O(1) and small).
/// A token transfer that delivers less than asked (fee-on-transfer tokens) is refused.
/// Invariant: `token.balanceOf(market) == sum(balances) + sum(provider stake + unbonding)
///   + sum(oracle stake) + sum(open sessions' deposit - paid) + rewardPool + sum(bonus pots left)`.
/// There is no admin: parameters are immutable and nothing can move user funds except the rules.
///
/// ## Providers
///     None --register--> Active --slash--> Jailed --unjail (after jail, stake >= min)--> Active
///     Active/Jailed --leave (no committed sessions)--> Left
/// Minimum stake = `minStakePerMbps * capacityMbps`. Unstaked tokens wait `unbondingDelay`
/// (at least two epochs, checked at deployment) and stay slashable meanwhile. Reports judge
/// Active and Jailed providers, and a provider that left for every epoch up to the one it left
/// in: leaving does not dodge a verdict whose observations are already signed. `setPaused`
/// stops new client sessions; oracles can still open probe sessions with a paused provider.
///
/// ## Sessions
///     (none) --openSession--> Open --close by client--> Closing --settle after claimGrace--> (deleted)
///                              |  \--close by provider-----------------------------------> (deleted)
///                              \--claim (provider, any number of times; also while Closing)
/// `openSession` reserves `sessionMbps` of the provider's capacity and refuses to oversell;
/// it fixes the price (`Pricing.quote` at the utilisation after the session) and checks the
/// client's `maxPricePerGiB` (clients and oracles pass the quote they saw plus a tolerance).
/// The deposit must pay for `minDepositSeconds` at the session's rate and price
/// (`minDeposit(id)`): holding capacity costs in proportion to what it blocks, and the provider
/// may close a session that does not use it. The session id is `keccak256(abi.encode(terms))`:
/// the terms are emitted in `SessionOpened` and passed back by callers, so a session costs one
/// storage slot. A provider closing a session gives up further claims, so its close settles at
/// once.
///
/// ## Payout rule
///     gross    = min(floor(cumulativeBytes * pricePerGiB / 2^30), deposit)
///     v        = violations recorded for the provider since the session opened
///                (frozen when the session is closed)
///     entitled = floor(gross * (10_000 - min(10_000, v * sessionPenaltyBps)) / 10_000)
///     claim adds entitled - paid (if positive) to the provider's `earned` (in the slot that
///     holds its owner, so a claim writes two slots: the session's and that one);
///     `collectEarnings` (anyone) moves `earned` to the owner's balance less
///     fee = floor(earned * protocolFeeBps / 10_000), which goes to the reward pool. At
///     settlement the client gets deposit - paid back. Paid amounts are never clawed back: a
///     violation recorded after a claim only reduces what is still unpaid.
///
/// ## Oracle set
/// An oracle signs for epochs `[fromEpoch, untilEpoch)`: from the epoch after it registers
/// until the epoch after it asks to leave, so each epoch's set (and its total stake,
/// `oracleStakeAt`) is fixed when the epoch starts, and a signer that leaves after signing
/// still counts. There is no cap on the number of oracles: everything counts stake. An oracle
/// proven to have signed two different observations for one epoch (`proveEquivocation`) loses
/// its whole stake, half to the prover.
///
/// ## Epochs, audits, reports
/// `epoch = (block.timestamp - genesis) / epochLength`. Anyone (oracles do) calls
/// `beginEpoch` during an epoch; the first call fixes the chain's part of the seed,
///     chainSeed_e = keccak256(abi.encode(block.prevrandao, blockhash(block.number - 1), e, address(this)))
/// The audits are drawn from a secret of the oracles mixed with it: the report of epoch e-2
/// (signed by the quorum, and accepted only until e-1 ends) commits `keccak256(abi.encode(s_e))`,
/// and the report of e reveals `s_e`, checked against the commitment:
///     auditSeed_e = keccak256(abi.encode(chainSeed_e, s_e)),  AuditSet.isAudited(auditSeed_e, id, p)
/// The oracles that signed e-2's report hold `s_e` (each fetched it from the proposer, encrypted
/// to its key, before signing), so they know whom to probe during e; a provider learns whether
/// it was audited only when e's report reveals it, after the measurements (`auditSeed` and
/// `isAudited` revert with `Market_AuditSetSecret` until then). Nobody can grind: the secret is
/// fixed before the chain seed exists, and whoever influences the chain seed (a block proposer,
/// the caller choosing the block of the first `beginEpoch`) does not know the secret. What is
/// left: an oracle that knows `s_e` and also seeds the epoch can choose among the blocks in
/// which it wins the first `beginEpoch` call, and an oracle can leak `s_e` to a provider (one
/// leaking oracle suffices; collusion with the oracles is outside what the audit draw can
/// stop). An epoch for which no secret was committed (the first two, or after a missed report)
/// falls back to the chain seed alone, known from its start.
///
/// Oracles probe the audited providers and sign their own rows (`Observations`, off chain);
/// the epoch's leader collects the rows, proposes a set holding more than two thirds of the
/// epoch's stake, and every oracle recomputes the same aggregate from it: per provider, over
/// the rows that measured it, the stake-weighted lower median of each metric and the stake
/// majority of `reachable`, and no verdict unless oracles holding more than two thirds of the
/// stake measured it (liars hold less than a third, so less than half of what was measured).
/// `submitReport(epoch, root, available, violations, seedCommit, seedReveal, signatures)`
/// carries that aggregate, and the oracles sign ONE digest, EIP-712 `Report(uint64 epoch,
/// bytes32 root,uint32 available,bytes violations,bytes32 seedCommit)`: whoever submits cannot pick rows, signers or verdicts. The signers
/// (recovered addresses strictly ascending, at least `MIN_SIGNERS`) must be eligible for the
/// epoch and hold more than two thirds of its oracle stake.
/// - `root`: a Merkle root (sorted-pair keccak, OpenZeppelin `MerkleProof`) over one leaf per
///   provider judged available, `keccak256(bytes.concat(keccak256(abi.encode(epoch, id, base))))`
///   (`base`: see the bonus below); `available` is their number. Healthy providers cost nothing here: the report's gas does
///   not grow with them (about 200k gas for 10,000 providers and 15 of 21 signers).
/// - `violations`: the violators, 12 bytes each (id, median kbit/s, median latency ms,
///   reachable), ids strictly ascending. Each must be audited in the epoch and is re-checked
///   against its SLA on chain (`Market_NotAViolation` otherwise); each is judged on chain.
/// - `seedCommit` / `seedReveal`: the secret of epoch + 2 committed, this epoch's revealed
///   (above).
/// One report per epoch, accepted during the epoch and the next; a report that judges nobody
/// is refused unless it carries a commitment (then it pays no reward). An oracle that signs two different reports for one epoch loses its stake.
///
/// Violation: unreachable, or median throughput < sessionMbps * 1000 * (1 - tol), or median
/// latency > maxLatencyMs + latencyToleranceMs. `k` violations within a window of
/// `ceil(2 * w * 10_000 / auditProbabilityBps)` epochs (at most 192: twice the epochs in which
/// `w` audits are expected, so late audits still fall in it) slash `slashBps` of (stake +
/// unbonding), pay `slashOracleShareBps` of it to the signers, put the rest in the reward
/// pool, jail the provider for `jailEpochs` (at most 1,000,000) and clear its window. The window counts epochs, not audits, so a pass
/// writes nothing.
///
/// ## Reward pool and bonus
/// Fees and slashes feed `rewardPool`. Each signer of an accepted report earns
/// `oracleRewardPerReport` (less if the pool is short). Reward period `p` spans
/// `rewardPeriodEpochs` (>= 2) epochs. Unavailable verdicts and slashes are recorded per
/// provider and per period (so nothing in `p+1` erases `p`'s record); `available` of each
/// report adds to the period's total. Claims for `p` open once the report window of `p`'s last
/// epoch has closed (the second epoch of `p+1`) and close with `p+1`. A leaf of an epoch's
/// verdict tree carries `base`: the provider's available verdicts in `p`'s reported epochs up
/// to two epochs before (after its registration epoch and any jail) — reports that are final
/// when the oracles aggregate the epoch, so every oracle counts the same. A claim proves the
/// provider's last leaf of `p` and, if it has one, the leaf of the epoch before:
/// available = base + leaves proven (at most two proofs, whatever the period's length),
/// judged = available + unavailable verdicts on record. It qualifies if judged >=
/// `bonusMinAudits`, available / judged >= `bonusAvailabilityBps` and it was not slashed in
/// `p`. The first claim sets the pot to `bonusPoolShareBps` of the pool (one slot); each share
/// is `floor(pot * available / totalAvailable_p)` (capped at what is left). From `p+2` on,
/// `sweepBonus` returns the rest.
contract WirepactMarket is MarketBase {
    using SafeERC20 for IERC20;

    /// The module oracles, reports and the bonus run in (see `AuditModule`).
    address private immutable _auditModule;

    /// @param p the market's parameters; `module` (an `AuditModule`) must have been deployed with the same.
    constructor(M.Params memory p, address module) MarketBase(p, AuditModule(module).genesis()) {
        if (AuditModule(module).paramsHash() != _paramsHash()) revert M.Market_ModuleMismatch();
        _auditModule = module;
    }

    /// @notice The module oracles, reports and the bonus run in.
    function auditModule() external view returns (address) {
        return _auditModule;
    }

    // ================================================================ accounts

    /// @notice Pulls `amount` tokens from the caller into its internal balance.
    function deposit(uint256 amount) external nonReentrant {
        if (amount == 0) revert M.Market_ZeroAmount();
        _pull(msg.sender, amount);
        _balances[msg.sender] += amount;
        emit M.Deposited(msg.sender, amount);
    }

    /// @notice Sends `amount` of the caller's internal balance to the caller.
    function withdraw(uint256 amount) external nonReentrant {
        if (amount == 0) revert M.Market_ZeroAmount();
        uint256 bal = _balances[msg.sender];
        if (bal < amount) revert M.Market_InsufficientBalance(bal, amount);
        _balances[msg.sender] = bal - amount;
        _token.safeTransfer(msg.sender, amount);
        emit M.Withdrawn(msg.sender, amount);
    }

    // =============================================================== providers

    /// @notice Registers the caller as a provider, pulling `stake` tokens from it.
    function registerProvider(
        M.ProviderTerms calldata terms,
        bytes32 tunnelKey,
        string calldata endpoint,
        string calldata region,
        uint256 stake
    ) external nonReentrant returns (uint32 providerId) {
        if (_providerIdOf[msg.sender] != 0) revert M.Market_AlreadyRegistered();
        if (
            terms.capacityMbps == 0 || terms.sessionMbps == 0 || terms.sessionMbps > terms.capacityMbps
                || terms.maxLatencyMs == 0 || terms.maxLatencyMs > type(uint16).max || terms.basePricePerGiB == 0
                || terms.basePricePerGiB > type(uint88).max
                || tunnelKey == bytes32(0)
                || bytes(endpoint).length == 0 || bytes(endpoint).length > 256 || bytes(region).length > 64
        ) revert M.Market_InvalidTerms();
        uint256 minimum = minProviderStake(terms.capacityMbps);
        if (stake < minimum) revert M.Market_StakeBelowMinimum(stake, minimum);
        if (stake > type(uint96).max) revert M.Market_AmountTooLarge();

        _pull(msg.sender, stake);

        providerId = ++_providerCount;
        _providerIdOf[msg.sender] = providerId;
        Provider storage p = _providers[providerId];
        p.core = ProviderCore({
            capacityMbps: terms.capacityMbps,
            committedMbps: 0,
            sessionMbps: terms.sessionMbps,
            sessionNonce: 0,
            violationCount: 0,
            status: M.ProviderStatus.Active,
            flags: 0,
            maxLatencyMs: uint16(terms.maxLatencyMs),
            basePricePerGiB: uint88(terms.basePricePerGiB)
        });
        p.own.owner = msg.sender;
        p.ep.registeredEpoch = uint32(_epochNow());
        p.stk.stake = uint96(stake);
        p.tunnelKey = tunnelKey;
        p.endpoint = endpoint;
        p.region = region;
        emit M.ProviderRegistered(providerId, msg.sender, terms, stake);
    }

    /// @notice Changes price, tunnel key and endpoint. Open sessions keep their price.
    function updateProvider(uint32 providerId, uint96 basePricePerGiB, bytes32 tunnelKey, string calldata endpoint)
        external
    {
        Provider storage p = _ownedProvider(providerId);
        if (p.core.status == M.ProviderStatus.Left) revert M.Market_ProviderNotActive(providerId);
        if (
            basePricePerGiB == 0 || basePricePerGiB > type(uint88).max || tunnelKey == bytes32(0)
                || bytes(endpoint).length == 0 || bytes(endpoint).length > 256
        ) revert M.Market_InvalidTerms();
        p.core.basePricePerGiB = uint88(basePricePerGiB);
        p.tunnelKey = tunnelKey;
        p.endpoint = endpoint;
        emit M.ProviderUpdated(providerId, basePricePerGiB, endpoint, tunnelKey);
    }

    /// @notice Adds `amount` tokens (pulled from the caller) to the provider's stake.
    function addStake(uint32 providerId, uint256 amount) external nonReentrant {
        Provider storage p = _ownedProvider(providerId);
        if (p.core.status == M.ProviderStatus.Left) revert M.Market_ProviderNotActive(providerId);
        if (amount == 0) revert M.Market_ZeroAmount();
        uint256 newStake = uint256(p.stk.stake) + amount;
        if (newStake > type(uint96).max) revert M.Market_AmountTooLarge();
        _pull(msg.sender, amount);
        p.stk.stake = uint96(newStake);
        emit M.ProviderStaked(providerId, amount);
    }

    /// @notice Moves `amount` of stake to unbonding; the remaining stake must cover the minimum.
    /// A new request restarts the unbonding delay for everything unbonding.
    function requestUnstake(uint32 providerId, uint256 amount) external {
        Provider storage p = _ownedProvider(providerId);
        if (p.core.status == M.ProviderStatus.Left) revert M.Market_ProviderNotActive(providerId);
        if (amount == 0) revert M.Market_ZeroAmount();
        uint256 stake = p.stk.stake;
        if (amount > stake) revert M.Market_InsufficientBalance(stake, amount);
        uint256 minimum = minProviderStake(p.core.capacityMbps);
        if (stake - amount < minimum) revert M.Market_StakeBelowMinimum(stake - amount, minimum);
        _startUnbonding(p, amount);
        emit M.ProviderUnstakeRequested(providerId, amount, p.stk.unbondingReadyAt);
    }

    /// @notice Credits unbonded stake to the owner's balance once the delay has passed.
    function withdrawUnbonded(uint32 providerId) external {
        Provider storage p = _ownedProvider(providerId);
        uint256 amount = p.stk.unbonding;
        if (amount == 0) revert M.Market_NothingUnbonding();
        if (block.timestamp < p.stk.unbondingReadyAt) revert M.Market_UnbondingNotReady(p.stk.unbondingReadyAt);
        p.stk.unbonding = 0;
        _balances[msg.sender] += amount;
        emit M.ProviderUnbonded(providerId, amount);
    }

    /// @notice Leaves the market: no committed sessions allowed; all stake starts unbonding.
    function leave(uint32 providerId) external {
        Provider storage p = _ownedProvider(providerId);
        ProviderCore memory c = p.core;
        if (c.status == M.ProviderStatus.Left) revert M.Market_ProviderNotActive(providerId);
        if (c.committedMbps != 0) revert M.Market_ProviderHasSessions(providerId, c.committedMbps);
        p.core.status = M.ProviderStatus.Left;
        // Reports still judge (and slash) it for this epoch and every earlier one; the
        // unbonding delay outlasts their report window (checked at construction).
        p.ep.leftEpoch = uint32(_epochNow());
        _startUnbonding(p, p.stk.stake);
        emit M.ProviderLeft(providerId);
    }

    /// @notice Ends a jail once its epochs have passed and the stake covers the minimum again.
    function unjail(uint32 providerId) external {
        Provider storage p = _ownedProvider(providerId);
        ProviderCore memory c = p.core;
        if (c.status != M.ProviderStatus.Jailed) revert M.Market_ProviderNotActive(providerId);
        uint32 until = p.ep.jailedUntilEpoch;
        if (currentEpoch() < until) revert M.Market_StillJailed(until);
        uint256 minimum = minProviderStake(c.capacityMbps);
        if (p.stk.stake < minimum) revert M.Market_StakeBelowMinimum(p.stk.stake, minimum);
        p.core.status = M.ProviderStatus.Active;
        emit M.ProviderUnjailed(providerId);
    }

    /// @notice Stops (or resumes) taking new client sessions. Open sessions carry on; oracles
    /// can still open probe sessions, so a paused provider is audited as usual.
    function setPaused(uint32 providerId, bool paused) external {
        Provider storage p = _ownedProvider(providerId);
        if (p.core.status == M.ProviderStatus.Left) revert M.Market_ProviderNotActive(providerId);
        uint8 flags = p.core.flags;
        p.core.flags = paused ? flags | FLAG_PAUSED : flags & ~FLAG_PAUSED;
        emit M.ProviderPaused(providerId, paused);
    }

    // ================================================================ sessions

    /// @notice Opens a session with `providerId`, locking `depositAmount` of the caller's balance.
    /// @param maxPricePerGiB Slippage guard: reverts if the quote is above it.
    /// @param sessionKey Ephemeral key of the client that signs this session's receipts.
    function openSession(uint32 providerId, uint256 depositAmount, uint256 maxPricePerGiB, address sessionKey)
        external
        returns (bytes32 sessionId)
    {
        Provider storage p = _providers[providerId];
        ProviderCore memory c = p.core;
        if (c.status != M.ProviderStatus.Active) {
            if (c.status == M.ProviderStatus.None) revert M.Market_UnknownProvider(providerId);
            revert M.Market_ProviderNotActive(providerId);
        }
        if (sessionKey == address(0)) revert M.Market_InvalidSessionKey();
        // A paused provider takes no client sessions; an oracle's probe still opens.
        if (c.flags & FLAG_PAUSED != 0 && _oracles[msg.sender].status != M.OracleStatus.Active) {
            revert M.Market_ProviderPaused(providerId);
        }
        if (depositAmount > type(uint96).max) revert M.Market_AmountTooLarge();
        uint32 committedAfter = c.committedMbps + c.sessionMbps;
        if (committedAfter > c.capacityMbps) {
            revert M.Market_WouldOversell(c.committedMbps, c.sessionMbps, c.capacityMbps);
        }
        uint256 price = Pricing.quote(c.basePricePerGiB, committedAfter, c.capacityMbps, _alphaBps);
        if (price > maxPricePerGiB) revert M.Market_PriceAboveMax(price, maxPricePerGiB);
        // A price above 2^96 can only come from a huge alpha; refuse rather than truncate.
        if (price > type(uint96).max) revert M.Market_AmountTooLarge();
        uint256 floor = _depositFloor(price, c.sessionMbps);
        if (depositAmount < floor) revert M.Market_DepositTooSmall(depositAmount, floor);

        uint256 bal = _balances[msg.sender];
        if (bal < depositAmount) revert M.Market_InsufficientBalance(bal, depositAmount);
        _balances[msg.sender] = bal - depositAmount;

        M.SessionTerms memory t = M.SessionTerms({
            client: msg.sender,
            sessionKey: sessionKey,
            providerId: providerId,
            nonce: c.sessionNonce,
            sessionMbps: c.sessionMbps,
            violationsAtOpen: c.violationCount,
            openedAt: uint40(block.timestamp),
            deposit: uint96(depositAmount),
            pricePerGiB: uint96(price)
        });
        p.core.committedMbps = committedAfter;
        // The nonce wraps (it only keeps ids apart; the terms hash the open time and the
        // client's key too); an id that is taken is refused below.
        unchecked {
            p.core.sessionNonce = c.sessionNonce + 1;
        }

        sessionId = keccak256(abi.encode(t));
        if (_sessions[sessionId].status != M.SessionStatus.None) revert M.Market_SessionExists(sessionId);
        _sessions[sessionId].status = M.SessionStatus.Open;
        emit M.SessionOpened(sessionId, providerId, msg.sender, t);
    }

    /// @notice Pays the provider for the bytes of a newer receipt signed by the session key.
    function claim(M.SessionTerms calldata t, uint64 cumulativeBytes, uint64 timestamp, bytes calldata signature)
        external
    {
        bytes32 sessionId = _idOf(t);
        M.SessionState memory s = _sessions[sessionId];
        if (s.status == M.SessionStatus.None) revert M.Market_UnknownSession(sessionId);
        Provider storage p = _providers[t.providerId];
        ProviderOwner memory own = p.own;
        if (msg.sender != own.owner) revert M.Market_NotProviderOwner(t.providerId);

        if (cumulativeBytes <= s.claimedBytes) revert M.Market_ReceiptNotNewer(cumulativeBytes, s.claimedBytes);
        if (timestamp <= s.lastReceiptAt) revert M.Market_ReceiptStale(timestamp, s.lastReceiptAt);
        if (timestamp < t.openedAt) revert M.Market_ReceiptBeforeOpen(timestamp, t.openedAt);
        if (timestamp > block.timestamp + MAX_RECEIPT_DRIFT) revert M.Market_ReceiptFromFuture(timestamp);
        (address signer, ECDSA.RecoverError err,) =
            ECDSA.tryRecover(_hashTypedDataV4(_receiptStructHash(sessionId, cumulativeBytes, timestamp)), signature);
        if (err != ECDSA.RecoverError.NoError || signer != t.sessionKey) revert M.Market_BadReceiptSignature();

        uint256 violations = s.status == M.SessionStatus.Open ? p.core.violationCount - t.violationsAtOpen : s.violations;
        uint256 entitled = payoutFor(t, cumulativeBytes, violations);
        uint256 delta;
        if (entitled > s.paid) {
            delta = entitled - s.paid;
            s.paid = uint96(entitled); // entitled <= deposit < 2^96
            uint256 earned = own.earned + delta;
            if (earned > type(uint96).max) {
                // ~79 billion tokens uncollected: collect them first (never reached in practice)
                _collect(t.providerId, own.owner, own.earned);
                earned = delta;
            }
            p.own = ProviderOwner({owner: own.owner, earned: uint96(earned)});
        }
        s.claimedBytes = cumulativeBytes;
        s.lastReceiptAt = uint32(timestamp); // timestamp <= block.timestamp + drift < 2^32 until 2106
        _sessions[sessionId] = s;
        emit M.SessionClaimed(sessionId, cumulativeBytes, delta);
    }

    /// @notice Moves a provider's claimed earnings to its owner's balance, less the protocol
    /// fee (to the reward pool). Anyone may call: the money only goes where it belongs.
    function collectEarnings(uint32 providerId) external {
        Provider storage p = _providers[providerId];
        ProviderOwner memory own = p.own;
        if (own.earned == 0) revert M.Market_NothingToCollect(providerId);
        p.own.earned = 0;
        _collect(providerId, own.owner, own.earned);
    }

    function _collect(uint32 providerId, address owner, uint256 gross) private {
        uint256 fee = (gross * _protocolFeeBps) / BPS;
        _balances[owner] += gross - fee;
        if (fee != 0) _rewardPool += fee;
        emit M.EarningsCollected(providerId, owner, gross - fee, fee);
    }

    /// @notice Closes a session. The client's close starts the claim grace; the provider's
    /// close (which gives up further claims) settles at once. A session the provider closes
    /// after a whole epoch open without paying for a byte (and without a violation of the
    /// provider's since it opened) is a no-show: the provider keeps the deposit floor.
    function close(M.SessionTerms calldata t) external {
        bytes32 sessionId = _idOf(t);
        M.SessionState memory s = _sessions[sessionId];
        if (s.status == M.SessionStatus.None) revert M.Market_UnknownSession(sessionId);
        Provider storage p = _providers[t.providerId];
        bool byProvider = msg.sender != t.client;
        if (byProvider && msg.sender != p.own.owner) revert M.Market_NotSessionParty(sessionId);

        uint256 paid = s.paid;
        if (s.status == M.SessionStatus.Open) {
            ProviderCore memory c = p.core;
            p.core.committedMbps = c.committedMbps - t.sessionMbps;
            uint256 v = c.violationCount - t.violationsAtOpen;
            s.violations = v > type(uint16).max ? type(uint16).max : uint16(v);
            if (!byProvider) {
                emit M.SessionClosed(sessionId, msg.sender, s.violations);
            } else if (paid == 0 && v == 0 && block.timestamp >= uint256(t.openedAt) + _epochLength) {
                // A no-show: the session held capacity for a whole epoch and never paid for a
                // byte. The client pays the deposit floor (a minute at the full rate) for the
                // capacity it kept from others, so filling a provider with idle sessions costs
                // the griefer and compensates its victim.
                paid = _depositFloor(t.pricePerGiB, t.sessionMbps);
                if (paid > t.deposit) paid = t.deposit;
                ProviderOwner memory own = p.own;
                uint256 earned = own.earned + paid;
                if (earned > type(uint96).max) {
                    _collect(t.providerId, own.owner, own.earned);
                    earned = paid;
                }
                p.own.earned = uint96(earned);
                emit M.SessionNoShow(sessionId, paid);
            }
        } else if (!byProvider) {
            revert M.Market_SessionNotOpen(sessionId);
        }

        if (byProvider) {
            _settle(sessionId, t, paid);
        } else {
            s.status = M.SessionStatus.Closing;
            s.closedAt = uint32(block.timestamp);
            _sessions[sessionId] = s;
        }
    }

    /// @notice Refunds a client-closed session once the claim grace is over. Anyone may call.
    function settle(M.SessionTerms calldata t) external {
        bytes32 sessionId = _idOf(t);
        M.SessionState memory s = _sessions[sessionId];
        if (s.status == M.SessionStatus.None) revert M.Market_UnknownSession(sessionId);
        if (s.status != M.SessionStatus.Closing) revert M.Market_SessionNotOpen(sessionId);
        uint256 settleableAt = uint256(s.closedAt) + _claimGrace;
        if (block.timestamp < settleableAt) revert M.Market_GraceNotOver(settleableAt);
        _settle(sessionId, t, s.paid);
    }


    // ============================================ oracles, reports, bonus (AuditModule)

    /// Every function this contract does not define (oracles, epochs, reports, equivocation,
    /// the bonus and their views) runs in `AuditModule` on this contract's storage; the full
    /// API is `IWirepactMarket`. The module refuses direct calls and sends no ether: this entry
    /// point has no payable path.
    fallback() external {
        _delegate();
    }

    /// Runs the call in `AuditModule` on this contract's storage and returns (or reverts with)
    /// exactly what it did. The module address is immutable: there is no upgrade path.
    function _delegate() private {
        address module = _auditModule;
        // Memory-safe: it only uses memory past the free memory pointer, and ends the call.
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, 0, calldatasize())
            let ok := delegatecall(gas(), module, ptr, calldatasize(), 0, 0)
            returndatacopy(ptr, 0, returndatasize())
            if iszero(ok) { revert(ptr, returndatasize()) }
            return(ptr, returndatasize())
        }
    }

    // ================================================================== views
    // (the views of oracles, epochs, reports and the bonus live in AuditModule)

    function params() external view returns (M.Params memory) {
        return M.Params({
            token: address(_token),
            epochLength: _epochLength,
            auditProbabilityBps: _auditProbabilityBps,
            minStakePerMbps: _minStakePerMbps,
            minOracleStake: _minOracleStake,
            unbondingDelay: _unbondingDelay,
            claimGrace: _claimGrace,
            alphaBps: _alphaBps,
            protocolFeeBps: _protocolFeeBps,
            oracleRewardPerReport: _oracleRewardPerReport,
            throughputToleranceBps: _throughputToleranceBps,
            latencyToleranceMs: _latencyToleranceMs,
            violationsToSlash: _violationsToSlash,
            violationWindow: _violationWindow,
            slashBps: _slashBps,
            slashOracleShareBps: _slashOracleShareBps,
            jailEpochs: _jailEpochs,
            sessionPenaltyBps: _sessionPenaltyBps,
            rewardPeriodEpochs: _rewardPeriodEpochs,
            bonusMinAudits: _bonusMinAudits,
            bonusAvailabilityBps: _bonusAvailabilityBps,
            bonusPoolShareBps: _bonusPoolShareBps,
            minDepositSeconds: _minDepositSeconds,
            auditHourWeights: _auditHourWeights
        });
    }

    function token() external view returns (address) {
        return address(_token);
    }

    function genesis() external view returns (uint256) {
        return _genesis;
    }

    function currentEpoch() public view returns (uint64) {
        return _epochNow();
    }

    function balanceOf(address account) external view returns (uint256) {
        return _balances[account];
    }

    function rewardPool() external view returns (uint256) {
        return _rewardPool;
    }

    function minProviderStake(uint32 capacityMbps) public view returns (uint256) {
        return _minProviderStake(capacityMbps);
    }

    function providerCount() external view returns (uint32) {
        return _providerCount;
    }

    function providerIdOf(address owner) external view returns (uint32) {
        return _providerIdOf[owner];
    }

    function provider(uint32 providerId) external view returns (M.ProviderView memory v) {
        Provider storage p = _providers[providerId];
        ProviderCore memory c = p.core;
        v.owner = p.own.owner;
        v.status = c.status;
        v.capacityMbps = c.capacityMbps;
        v.committedMbps = c.committedMbps;
        v.sessionMbps = c.sessionMbps;
        v.maxLatencyMs = c.maxLatencyMs;
        v.basePricePerGiB = c.basePricePerGiB;
        v.sessionNonce = c.sessionNonce;
        v.jailedUntilEpoch = p.ep.jailedUntilEpoch;
        v.violationCount = c.violationCount;
        v.stake = p.stk.stake;
        v.unbonding = p.stk.unbonding;
        v.unbondingReadyAt = p.stk.unbondingReadyAt;
        v.violationBits = p.audit.violationBits;
        v.lastViolationEpoch = p.audit.lastViolationEpoch;
        v.tunnelKey = p.tunnelKey;
        v.endpoint = p.endpoint;
        v.region = p.region;
        v.paused = c.flags & FLAG_PAUSED != 0;
        v.registeredEpoch = p.ep.registeredEpoch;
        v.leftEpoch = p.ep.leftEpoch;
        v.earned = p.own.earned;
    }

    /// @notice Price per GiB a session opened now would get (0 if it could not open).
    function quote(uint32 providerId) external view returns (uint256) {
        return _quote(providerId);
    }

    function _quote(uint32 providerId) private view returns (uint256) {
        Provider storage p = _providers[providerId];
        ProviderCore memory c = p.core;
        uint256 committedAfter = uint256(c.committedMbps) + c.sessionMbps;
        // (A paused provider still quotes: oracles can open probes with it; clients see `paused`.)
        if (c.status != M.ProviderStatus.Active || committedAfter > c.capacityMbps) return 0;
        return Pricing.quote(c.basePricePerGiB, committedAfter, c.capacityMbps, _alphaBps);
    }

    /// @notice The smallest deposit a session opened now would take (0 if it could not open).
    function minDeposit(uint32 providerId) external view returns (uint256) {
        uint256 price = _quote(providerId);
        return price == 0 ? 0 : _depositFloor(price, _providers[providerId].core.sessionMbps);
    }

    function session(bytes32 sessionId) external view returns (M.SessionState memory) {
        return _sessions[sessionId];
    }

    function sessionIdOf(M.SessionTerms calldata t) external pure returns (bytes32) {
        return _idOf(t);
    }

    /// @notice What the provider is entitled to in total for `cumulativeBytes` with `violations`.
    function payoutFor(M.SessionTerms calldata t, uint64 cumulativeBytes, uint256 violations)
        public
        view
        returns (uint256)
    {
        uint256 gross = (uint256(cumulativeBytes) * t.pricePerGiB) >> 30;
        if (gross > t.deposit) gross = t.deposit;
        uint256 penalty = violations * _sessionPenaltyBps;
        if (penalty >= BPS) return 0;
        return (gross * (BPS - penalty)) / BPS;
    }

    function receiptDigest(bytes32 sessionId, uint64 cumulativeBytes, uint64 timestamp) external view returns (bytes32) {
        return _hashTypedDataV4(_receiptStructHash(sessionId, cumulativeBytes, timestamp));
    }

    // =============================================================== internal

    /// `keccak256(abi.encode(t))`, hashed straight from calldata: terms are nine static words,
    /// so their ABI encoding is their calldata. Terms with dirty padding hash to an id no
    /// session has (and every field read later is still checked).
    function _idOf(M.SessionTerms calldata t) private pure returns (bytes32 id) {
        assembly ("memory-safe") {
            let ptr := mload(0x40)
            calldatacopy(ptr, t, 288)
            id := keccak256(ptr, 288)
        }
    }

    function _settle(bytes32 sessionId, M.SessionTerms calldata t, uint256 paid) private {
        uint256 refund = uint256(t.deposit) - paid;
        delete _sessions[sessionId];
        if (refund != 0) _balances[t.client] += refund;
        emit M.SessionSettled(sessionId, paid, refund);
    }

    function _receiptStructHash(bytes32 sessionId, uint64 cumulativeBytes, uint64 timestamp)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(RECEIPT_TYPEHASH, sessionId, cumulativeBytes, timestamp));
    }

    /// The deposit that pays `minDepositSeconds` at `sessionMbps` and `price` per GiB, rounded
    /// up, and at least 1 (Mbit/s -> bytes/s: x 125,000).
    function _depositFloor(uint256 price, uint32 sessionMbps) private view returns (uint256) {
        uint256 floor = (price * sessionMbps * 125_000 * _minDepositSeconds + (1 << 30) - 1) >> 30;
        return floor == 0 ? 1 : floor;
    }
}
