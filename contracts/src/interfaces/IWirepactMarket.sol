// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

/// @title IWirepactMarket
/// @notice Types, events and errors of the wirepact bandwidth-SLA market. The market's
/// behaviour is documented in `WirepactMarket.sol`; this file is what off-chain code binds to.
interface IWirepactMarket {
    // ------------------------------------------------------------------ types

    /// @notice Deployment parameters. Fixed at construction; readable through `params()`.
    struct Params {
        /// Settlement token (any ERC20; a transfer that delivers less than asked, as
        /// fee-on-transfer tokens do, is refused).
        address token;
        /// Epoch length in seconds. Epoch `e` covers `[genesis + e*len, genesis + (e+1)*len)`.
        uint64 epochLength;
        /// Probability, in basis points, that a given provider is audited in a given epoch.
        uint16 auditProbabilityBps;
        /// Provider stake required per declared Mbit/s of capacity.
        uint128 minStakePerMbps;
        /// Stake an oracle must lock to sign reports.
        uint128 minOracleStake;
        /// Seconds between an unstake request and the moment the tokens can be withdrawn.
        uint64 unbondingDelay;
        /// Seconds after a client-initiated close during which the provider may still claim.
        uint64 claimGrace;
        /// Congestion pricing: quote = base * (1 + alpha * u^2), alpha in basis points.
        uint32 alphaBps;
        /// Protocol fee on every claim, in basis points of the claimed amount.
        uint16 protocolFeeBps;
        /// Paid from the reward pool to each signer of an accepted report (if the pool allows).
        uint128 oracleRewardPerReport;
        /// A median throughput below `sla * (1 - tol)` is a violation.
        uint16 throughputToleranceBps;
        /// A median latency above `maxLatency + tol` is a violation.
        uint32 latencyToleranceMs;
        /// `k`: violations within the last `w` audits that trigger a slash.
        uint8 violationsToSlash;
        /// `w`: number of most recent audits considered (<= 64).
        uint8 violationWindow;
        /// Fraction of (stake + unbonding) taken by a slash, in basis points.
        uint16 slashBps;
        /// Share of a slash paid to the report's signers, in basis points; the rest feeds the pool.
        uint16 slashOracleShareBps;
        /// Epochs a slashed provider stays jailed (no new sessions).
        uint32 jailEpochs;
        /// Reduction of a session's payout per violation recorded while it was open, in bps.
        uint16 sessionPenaltyBps;
        /// Epochs per reward period (reliability bonus).
        uint32 rewardPeriodEpochs;
        /// Minimum audits in a period to qualify for the bonus.
        uint16 bonusMinAudits;
        /// Required share of available audits in a period, in basis points (9990 = 99.9%).
        uint16 bonusAvailabilityBps;
        /// Share of the reward pool set aside as a period's bonus pot, in basis points.
        uint16 bonusPoolShareBps;
        /// A session's deposit must pay for at least this many seconds at its SLA rate and
        /// price: holding capacity costs in proportion to what it blocks.
        uint32 minDepositSeconds;
        /// Audits that follow demand: 24 weights, one byte per UTC hour (byte `h` = bits
        /// `8h..8h+7`), each at least 1. An epoch starting in hour `h` audits with probability
        /// `auditProbabilityBps * w_h * 24 / sum(w)` (at most 100 %): the same audits a day,
        /// more of them when providers are busiest. 0 = every hour alike.
        uint256 auditHourWeights;
    }

    /// @notice Fields a provider declares at registration.
    struct ProviderTerms {
        /// Declared capacity of the pipe in Mbit/s (the sum of open sessions' SLA rates may not exceed it).
        uint32 capacityMbps;
        /// Guaranteed rate of each session in Mbit/s.
        uint32 sessionMbps;
        /// Maximum round-trip latency each session is promised, in ms.
        uint32 maxLatencyMs;
        /// Price per GiB (2^30 bytes) at zero utilisation, in token base units.
        uint96 basePricePerGiB;
    }

    enum ProviderStatus {
        None,
        Active,
        Jailed,
        Left
    }

    /// @notice A provider as returned by `provider(id)`.
    struct ProviderView {
        address owner;
        ProviderStatus status;
        uint32 capacityMbps;
        uint32 committedMbps;
        uint32 sessionMbps;
        uint32 maxLatencyMs;
        uint96 basePricePerGiB;
        uint32 sessionNonce;
        uint32 jailedUntilEpoch;
        uint32 violationCount;
        uint128 stake;
        uint128 unbonding;
        uint64 unbondingReadyAt;
        /// Recent violations: bit i set = a violation in epoch `lastViolationEpoch - i`.
        uint256 violationBits;
        uint32 lastViolationEpoch;
        bytes32 tunnelKey;
        string endpoint;
        string region;
        /// Takes no new client sessions (oracles still probe it).
        bool paused;
        /// Epoch of registration (bonus credit starts after it).
        uint32 registeredEpoch;
        /// Epoch it left in, if it left (reports judge it up to that epoch).
        uint32 leftEpoch;
        /// Claimed for its sessions and not yet collected (gross of the protocol fee).
        uint256 earned;
    }

    /// @notice Immutable terms of a session. `sessionId = keccak256(abi.encode(terms))`; the
    /// caller of `claim`/`close`/`settle` passes them back (they are in `SessionOpened`).
    struct SessionTerms {
        address client;
        address sessionKey;
        uint32 providerId;
        uint32 nonce;
        uint32 sessionMbps;
        uint32 violationsAtOpen;
        uint40 openedAt;
        uint96 deposit;
        uint96 pricePerGiB;
    }

    enum SessionStatus {
        None,
        Open,
        Closing
    }

    /// @notice Mutable state of a session (one storage slot).
    struct SessionState {
        uint64 claimedBytes;
        uint96 paid;
        uint32 lastReceiptAt;
        uint32 closedAt;
        /// While open: unused (violations are read live). After close: violations frozen at close.
        uint16 violations;
        SessionStatus status;
    }

    /// @notice EIP-712 `Receipt(bytes32 sessionId,uint64 cumulativeBytes,uint64 timestamp)`.
    struct Receipt {
        bytes32 sessionId;
        uint64 cumulativeBytes;
        uint64 timestamp;
    }

    enum OracleStatus {
        None,
        Active,
        Leaving,
        /// Proven to have signed two different observations for one epoch; its stake is gone.
        Slashed
    }

    /// @notice An oracle signs for epochs `[fromEpoch, untilEpoch)` (`untilEpoch` 0: no end yet):
    /// the set of an epoch is fixed when the epoch starts.
    struct OracleView {
        OracleStatus status;
        uint128 stake;
        uint64 unbondingReadyAt;
        string endpoint;
        uint32 fromEpoch;
        uint32 untilEpoch;
    }

    /// @notice What a reward period recorded against a provider (unavailable and "not
    /// measured" verdicts, a slash), and the last period it claimed a bonus for (plus one; 0 =
    /// never).
    struct BonusRecord {
        uint16 unavailable;
        bool slashed;
        uint32 claimedPeriodPlusOne;
    }

    /// @notice What a quorum signs for an epoch, with the violators list given by its hash
    /// (EIP-712 `Report(uint64 epoch,bytes32 root,uint32 available,bytes violations,bytes32 seedCommit)`).
    struct ReportHeader {
        bytes32 root;
        uint32 available;
        bytes32 violationsHash;
        bytes32 seedCommit;
    }

    /// @notice A provider's leaf in an epoch's verdict tree, with its proof: `base` is the
    /// provider's available verdicts in the period's reported epochs up to `epoch - 2`.
    struct BonusLeaf {
        uint64 epoch;
        uint32 base;
        bytes32[] proof;
    }

    /// @notice A reward period's bonus pot (set by the period's first `claimBonus`).
    struct BonusPot {
        uint128 pot;
        uint128 remaining;
        uint128 totalAvailable;
        bool finalized;
    }

    // ----------------------------------------------------------------- events

    event Deposited(address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);

    event ProviderRegistered(uint32 indexed providerId, address indexed owner, ProviderTerms terms, uint256 stake);
    event ProviderUpdated(uint32 indexed providerId, uint96 basePricePerGiB, string endpoint, bytes32 tunnelKey);
    event ProviderStaked(uint32 indexed providerId, uint256 amount);
    event ProviderUnstakeRequested(uint32 indexed providerId, uint256 amount, uint64 readyAt);
    event ProviderUnbonded(uint32 indexed providerId, uint256 amount);
    event ProviderLeft(uint32 indexed providerId);
    event ProviderUnjailed(uint32 indexed providerId);
    event ProviderPaused(uint32 indexed providerId, bool paused);

    event SessionOpened(bytes32 indexed sessionId, uint32 indexed providerId, address indexed client, SessionTerms terms);
    /// @notice `amount`: added to the provider's earnings (the fee is taken when they are collected).
    event SessionClaimed(bytes32 indexed sessionId, uint64 cumulativeBytes, uint256 amount);
    event EarningsCollected(uint32 indexed providerId, address indexed owner, uint256 amount, uint256 fee);
    event SessionClosed(bytes32 indexed sessionId, address indexed by, uint32 violations);
    event SessionSettled(bytes32 indexed sessionId, uint256 paid, uint256 refund);
    /// The provider closed a session that held capacity for an epoch and never paid for a
    /// byte: `amount` (the deposit floor) goes to its earnings.
    event SessionNoShow(bytes32 indexed sessionId, uint256 amount);

    event OracleRegistered(address indexed oracle, uint256 stake, string endpoint);
    event OracleLeaveRequested(address indexed oracle, uint64 readyAt);
    event OracleLeft(address indexed oracle, uint256 stake);
    event OracleSlashed(address indexed oracle, uint64 indexed epoch, uint256 amount, address prover);

    event EpochSeeded(uint64 indexed epoch, bytes32 seed);
    /// @notice `root`: Merkle root of the providers judged available in `epoch` (the oracles
    /// serve the leaves); `violators`: how many violations the report listed (each also emits
    /// `ProviderViolated`).
    event ReportAccepted(
        uint64 indexed epoch, address indexed submitter, bytes32 root, uint32 available, uint256 violators
    );
    /// The report's median figures for the violator (what its operator needs to see).
    event ProviderViolated(
        uint64 indexed epoch, uint32 indexed providerId, bool reachable, uint32 throughputKbps, uint32 latencyMs
    );
    event ProviderSlashed(uint32 indexed providerId, uint64 indexed epoch, uint256 amount, uint256 toOracles, uint32 jailedUntilEpoch);
    event OracleRewarded(address indexed oracle, uint256 amount);
    event BonusPotFinalized(uint32 indexed period, uint256 pot, uint256 totalAvailable);
    event BonusClaimed(uint32 indexed providerId, uint32 indexed period, uint256 amount);
    event BonusSwept(uint32 indexed period, uint256 amount);

    // ----------------------------------------------------------------- errors

    error Market_InvalidParams();
    error Market_ZeroAmount();
    error Market_InsufficientBalance(uint256 available, uint256 needed);
    error Market_AmountTooLarge();

    error Market_AlreadyRegistered();
    error Market_InvalidTerms();
    error Market_StakeBelowMinimum(uint256 stake, uint256 minimum);
    error Market_UnknownProvider(uint32 providerId);
    error Market_NotProviderOwner(uint32 providerId);
    error Market_ProviderNotActive(uint32 providerId);
    error Market_ProviderHasSessions(uint32 providerId, uint32 committedMbps);
    error Market_StillJailed(uint32 jailedUntilEpoch);
    error Market_UnbondingNotReady(uint64 readyAt);
    error Market_NothingUnbonding();

    error Market_WouldOversell(uint32 committedMbps, uint32 sessionMbps, uint32 capacityMbps);
    error Market_PriceAboveMax(uint256 price, uint256 maxPrice);
    error Market_InvalidSessionKey();
    error Market_DepositTooSmall(uint256 deposit, uint256 minimum);
    error Market_ProviderPaused(uint32 providerId);
    /// The token delivered less than was transferred (fee-on-transfer tokens are refused).
    error Market_TokenTransferShort(uint256 expected, uint256 received);
    error Market_UnknownSession(bytes32 sessionId);
    error Market_NotSessionParty(bytes32 sessionId);
    error Market_SessionNotOpen(bytes32 sessionId);
    error Market_BadReceiptSignature();
    error Market_ReceiptNotNewer(uint64 cumulativeBytes, uint64 claimedBytes);
    error Market_ReceiptStale(uint64 timestamp, uint32 lastReceiptAt);
    error Market_ReceiptFromFuture(uint64 timestamp);
    error Market_ReceiptBeforeOpen(uint64 timestamp, uint40 openedAt);
    error Market_GraceNotOver(uint256 settleableAt);

    error Market_OracleAlreadyRegistered();
    error Market_NotOracle(address account);
    /// The two signed observations are not a conflicting pair of one oracle for one epoch.
    error Market_NotEquivocation();
    error Market_EpochNotStarted(uint64 epoch);
    error Market_EpochNotSeeded(uint64 epoch);
    error Market_ReportWindowClosed(uint64 epoch);
    error Market_AlreadyReported(uint64 epoch);
    /// Fewer than MIN_SIGNERS distinct oracles signed the report.
    error Market_TooFewOracles(uint256 signers);
    /// The signers' stake is not more than two thirds of the stake eligible for the epoch.
    error Market_QuorumNotReached(uint256 signingStake, uint256 eligibleStake);
    error Market_SignersNotSorted();
    error Market_MalformedReport();
    error Market_ProvidersNotSorted();
    error Market_ProviderNotAudited(uint64 epoch, uint32 providerId);
    /// A listed violator's measurements meet its SLA: the report is inconsistent.
    error Market_NotAViolation(uint32 providerId);
    /// The report judges nobody (no available provider and no violator).
    error Market_EmptyReport();
    /// The provider has no claimed earnings to collect.
    error Market_NothingToCollect(uint32 providerId);
    /// The report's `seedReveal` is not the secret committed for its epoch (or is not zero
    /// when nothing was committed).
    error Market_BadSeedReveal(uint64 epoch);
    /// The epoch's audit set depends on the oracles' secret, revealed only by its report.
    error Market_AuditSetSecret(uint64 epoch);

    error Market_PeriodNotOver(uint32 period);
    error Market_NotEligibleForBonus(uint32 audits, uint32 available);
    error Market_BonusAlreadyClaimed(uint32 period);
    error Market_NoBonusRecord(uint32 period);
    error Market_SweepTooEarly(uint32 period);
    error Market_BonusWindowClosed(uint32 period);
    error Market_BadAuditProof(uint64 epoch);
    /// A session with these exact terms is already open (only after the nonce wrapped).
    error Market_SessionExists(bytes32 sessionId);
    /// The audit module was built with other parameters than the market.
    error Market_ModuleMismatch();
    /// A module function was called directly instead of through the market.
    error Market_NotDelegated();

    // -------------------------------------------------------------- functions

    function deposit(uint256 amount) external;
    function withdraw(uint256 amount) external;

    function registerProvider(
        ProviderTerms calldata terms,
        bytes32 tunnelKey,
        string calldata endpoint,
        string calldata region,
        uint256 stake
    ) external returns (uint32 providerId);
    function updateProvider(uint32 providerId, uint96 basePricePerGiB, bytes32 tunnelKey, string calldata endpoint)
        external;
    function addStake(uint32 providerId, uint256 amount) external;
    function requestUnstake(uint32 providerId, uint256 amount) external;
    function withdrawUnbonded(uint32 providerId) external;
    function leave(uint32 providerId) external;
    function unjail(uint32 providerId) external;
    function setPaused(uint32 providerId, bool paused) external;

    function openSession(uint32 providerId, uint256 depositAmount, uint256 maxPricePerGiB, address sessionKey)
        external
        returns (bytes32 sessionId);
    function claim(SessionTerms calldata t, uint64 cumulativeBytes, uint64 timestamp, bytes calldata signature)
        external;
    function close(SessionTerms calldata t) external;
    function settle(SessionTerms calldata t) external;
    function collectEarnings(uint32 providerId) external;

    function registerOracle(string calldata endpoint, uint256 stake) external;
    function requestOracleLeave() external;
    function withdrawOracleStake() external;
    function proveEquivocation(
        uint64 epoch,
        ReportHeader calldata a,
        bytes calldata sigA,
        ReportHeader calldata b,
        bytes calldata sigB
    ) external;
    function beginEpoch() external returns (bytes32 seed);
    function submitReport(
        uint64 epoch,
        bytes32 root,
        uint32 available,
        bytes calldata violations,
        bytes32 seedCommit,
        bytes32 seedReveal,
        bytes[] calldata signatures
    ) external;

    function claimBonus(uint32 providerId, uint32 period, BonusLeaf[] calldata leaves) external;
    function sweepBonus(uint32 period) external;

    function params() external view returns (Params memory);
    function token() external view returns (address);
    function genesis() external view returns (uint256);
    function currentEpoch() external view returns (uint64);
    function currentPeriod() external view returns (uint32);
    function epochStart(uint64 epoch) external view returns (uint256);
    function balanceOf(address account) external view returns (uint256);
    function rewardPool() external view returns (uint256);
    function bonusPot(uint32 period) external view returns (BonusPot memory);
    function periodAvailable(uint32 period) external view returns (uint256);
    function minProviderStake(uint32 capacityMbps) external view returns (uint256);
    function providerCount() external view returns (uint32);
    function providerIdOf(address owner) external view returns (uint32);
    function provider(uint32 providerId) external view returns (ProviderView memory);
    function bonusRecord(uint32 providerId, uint32 period) external view returns (BonusRecord memory);
    function quote(uint32 providerId) external view returns (uint256);
    function minDeposit(uint32 providerId) external view returns (uint256);
    function session(bytes32 sessionId) external view returns (SessionState memory);
    function sessionIdOf(SessionTerms calldata t) external pure returns (bytes32);
    function payoutFor(SessionTerms calldata t, uint64 cumulativeBytes, uint256 violations)
        external
        view
        returns (uint256);
    function oracle(address account) external view returns (OracleView memory);
    function oracleCount() external view returns (uint256);
    function oracleAt(uint256 index) external view returns (address);
    function activeOracles() external view returns (uint256);
    function oracleStakeAt(uint64 epoch) external view returns (uint256);
    function signingStake(uint64 epoch, address[] calldata signers)
        external
        view
        returns (uint256 signing, uint256 eligible);
    function epochSeed(uint64 epoch) external view returns (bytes32);
    function seedCommitment(uint64 epoch) external view returns (bytes32 commit, bytes32 reveal);
    function auditSeed(uint64 epoch) external view returns (bytes32);
    function isReported(uint64 epoch) external view returns (bool);
    function isAudited(uint64 epoch, uint32 providerId) external view returns (bool);

    /// @notice The probability, in basis points, that a provider is audited in `epoch` (the
    /// base one, weighted by the epoch's UTC hour when `auditHourWeights` is set).
    function auditProbabilityAt(uint64 epoch) external view returns (uint16);
    function receiptDigest(bytes32 sessionId, uint64 cumulativeBytes, uint64 timestamp)
        external
        view
        returns (bytes32);
    function reportDigest(uint64 epoch, bytes32 root, uint32 available, bytes calldata violations, bytes32 seedCommit)
        external
        view
        returns (bytes32);
    function verdictRoot(uint64 epoch) external view returns (bytes32);
}
