// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {BaseTest} from "./Base.t.sol";
import {IWirepactMarket} from "../src/interfaces/IWirepactMarket.sol";
import {AuditSet} from "../src/libraries/AuditSet.sol";

/// Class 7: the audit set must stay unknown to providers until the epoch's measurements are
/// done, and nobody may grind it. The audit seed mixes the chain's seed with the oracles'
/// secret, committed by the report of e-2 and revealed by the report of e. On the previous
/// market every test here failed: `isAudited(e, id)` answered as soon as `beginEpoch` ran.
contract AuditSecretTest is BaseTest {
    uint256 internal constant IDS = 64;

    function setUp() public override {
        super.setUp();
        IWirepactMarket.Params memory p = defaultParams(address(token));
        p.auditProbabilityBps = 5_000;
        market = _marketWithOracles(p);
    }

    /// Keys of the first three oracles (ascending): a quorum of the four equal stakes.
    function _keys3() internal view returns (uint256[] memory keys) {
        keys = new uint256[](3);
        for (uint256 i; i < 3; ++i) {
            (, keys[i]) = _oracle(i);
        }
    }

    /// A report of `e` that judges nobody and commits the secret of `e + 2`.
    function _commitOnly(uint64 e) internal {
        bytes32 commit = _seedCommitOf(e + 2);
        bytes[] memory s = _signAllKeys(_keys3(), market.reportDigest(e, 0, 0, "", commit));
        market.submitReport(e, 0, 0, "", commit, _revealOf(e), s);
        _committed[e + 2] = true;
    }

    /// Seeds epochs from `_nextEpoch()` on; returns an epoch whose secret was committed two
    /// epochs before (by then the oracles' third epoch).
    function _epochWithSecret() internal returns (uint64 e) {
        uint64 e0 = _nextEpoch();
        _commitOnly(e0);
        _nextEpoch();
        e = _nextEpoch();
        assertEq(e, e0 + 2);
    }

    function _ids(uint64 e, bytes32 seed) internal view returns (uint256 n, bool[] memory audited) {
        audited = new bool[](IDS + 1);
        for (uint32 id = 1; id <= IDS; ++id) {
            audited[id] = AuditSet.isAudited(seed, id, market.params().auditProbabilityBps);
            if (audited[id]) ++n;
        }
        e; // the epoch only names what is drawn
    }

    /// A provider that reads the chain as soon as the epoch is seeded learns nothing: the
    /// market refuses to say, and the chain seed alone draws a different set.
    function test_Attack_ProviderReadsItsAuditAtEpochStart_Refused() external {
        uint64 e = _epochWithSecret();
        bytes32 chainSeed = market.epochSeed(e);
        assertTrue(chainSeed != bytes32(0), "seeded");
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_AuditSetSecret.selector, e));
        market.isAudited(e, 1);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_AuditSetSecret.selector, e));
        market.auditSeed(e);
        // what a provider would compute from the chain seed is not what the oracles probe
        bytes32 real = keccak256(abi.encode(chainSeed, _secretOf(e)));
        (, bool[] memory guessed) = _ids(e, chainSeed);
        (, bool[] memory truth) = _ids(e, real);
        uint256 wrong;
        for (uint256 id = 1; id <= IDS; ++id) {
            if (guessed[id] != truth[id]) ++wrong;
        }
        assertGt(wrong, 0, "the chain seed alone gives the audits away");
        // the report reveals the secret: from then on anyone can check the draw
        _commitOnly(e);
        assertEq(market.auditSeed(e), real);
        (bytes32 commit, bytes32 reveal) = market.seedCommitment(e);
        assertEq(commit, _seedCommitOf(e));
        assertEq(reveal, _secretOf(e));
        for (uint32 id = 1; id <= 8; ++id) {
            assertEq(market.isAudited(e, id), truth[id]);
        }
    }

    /// The report must reveal exactly the committed secret: the submitter cannot swap in a
    /// secret that suits it, nor reveal one where none was committed.
    function test_Attack_SubmitterRevealsAnotherSecret_Refused() external {
        uint64 e = _epochWithSecret();
        bytes32 commit = _seedCommitOf(e + 2);
        bytes[] memory s = _signAllKeys(_keys3(), market.reportDigest(e, 0, 0, "", commit));
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_BadSeedReveal.selector, e));
        market.submitReport(e, 0, 0, "", commit, keccak256("my favourite secret"), s);
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_BadSeedReveal.selector, e));
        market.submitReport(e, 0, 0, "", commit, bytes32(0), s);
        // an epoch without a commitment takes no reveal
        uint64 e1 = _nextEpoch();
        _commitOnly(e); // (reported late, in its window)
        assertEq(market.currentEpoch(), e1);
        (bytes32 c1,) = market.seedCommitment(e1);
        assertEq(c1, bytes32(0), "the report of e1 - 2 committed nothing");
        s = _signAllKeys(_keys3(), market.reportDigest(e1, 0, 0, "", commit));
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_BadSeedReveal.selector, e1));
        market.submitReport(e1, 0, 0, "", commit, keccak256("anything"), s);
    }

    /// A provider that is audited under the chain seed alone but not under the real seed cannot
    /// be listed as a violator: the market checks the list against the revealed draw.
    function test_Attack_ViolatorOutsideTheRevealedDraw_Refused() external {
        uint64 e = _epochWithSecret();
        bytes32 chainSeed = market.epochSeed(e);
        bytes32 real = keccak256(abi.encode(chainSeed, _secretOf(e)));
        uint16 prob = market.params().auditProbabilityBps;
        uint32 victim;
        for (uint32 id = 1; id <= IDS && victim == 0; ++id) {
            if (AuditSet.isAudited(chainSeed, id, prob) && !AuditSet.isAudited(real, id, prob)) victim = id;
        }
        assertTrue(victim != 0, "some provider is drawn by the chain seed alone but not by the real one");
        bytes memory v = abi.encodePacked(victim, uint32(0), uint24(20), uint8(1));
        bytes[] memory s = _signAllKeys(_keys3(), market.reportDigest(e, 0, 0, v, 0));
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_ProviderNotAudited.selector, e, victim));
        market.submitReport(e, 0, 0, v, 0, _secretOf(e), s);
    }

    /// Nobody can grind: the commitment of epoch e is on record before e's chain seed exists
    /// (only the report of e-2 sets it, and that report's window closes when e starts), it
    /// cannot be replaced, and whoever calls `beginEpoch` first, in whatever block, fixes a chain
    /// seed without knowing the secret it is mixed with.
    function test_Attack_SeedGrinding_CommitmentFixedBeforeTheChainSeed() external {
        uint64 e0 = _nextEpoch();
        _commitOnly(e0);
        // a second report of e0 (another commitment) is refused
        bytes32 other = keccak256(abi.encode(keccak256("ground secret")));
        bytes[] memory s = _signAllKeys(_keys3(), market.reportDigest(e0, 0, 0, "", other));
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_AlreadyReported.selector, e0));
        market.submitReport(e0, 0, 0, "", other, 0, s);
        _nextEpoch();
        uint64 e = _nextEpoch();
        // once e has started, nothing can commit for it any more: e - 2's window is closed
        vm.expectRevert(abi.encodeWithSelector(IWirepactMarket.Market_ReportWindowClosed.selector, e - 2));
        market.submitReport(e - 2, 0, 0, "", other, 0, s);
        // the chain seed is fixed by the first call; later calls (other blocks) change nothing
        bytes32 first = market.epochSeed(e);
        vm.prevrandao(bytes32(uint256(12345)));
        vm.roll(block.number + 7);
        assertEq(market.beginEpoch(), first);
        (bytes32 commit,) = market.seedCommitment(e);
        assertEq(commit, _seedCommitOf(e));
    }

    /// Without a commitment (the first epochs, or after a missed report), the draw falls back
    /// to the chain seed, known from the epoch's start; the report then reveals nothing.
    function test_When_NoCommitment_TheChainSeedDraws() external {
        uint64 e = _nextEpoch();
        bytes32 chainSeed = market.epochSeed(e);
        assertEq(market.auditSeed(e), chainSeed);
        assertEq(market.isAudited(e, 1), AuditSet.isAudited(chainSeed, 1, 5_000));
        _commitOnly(e);
        assertEq(market.auditSeed(e), chainSeed);
        (bytes32 commit, bytes32 reveal) = market.seedCommitment(e);
        assertEq(commit, bytes32(0));
        assertEq(reveal, bytes32(0));
    }
}
