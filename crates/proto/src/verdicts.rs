//! An epoch's aggregate, as every oracle computes it off chain from the same signed rows and
//! the market takes it (`submitReport`): the same rows give the same bytes on every oracle, so
//! the quorum signs one digest.
//!
//! Per audited provider, over the rows that measured it (flag bit 1 clear): the
//! stake-weighted lower median of throughput and of latency, and the stake majority of
//! `reachable`. No verdict unless oracles holding more than two thirds of the epoch's stake
//! measured it. A provider judged reachable gets a leaf in the verdict tree (its bonus
//! credit); one that violates its SLA is listed as a violator, 12 bytes: id (u32 BE),
//! throughput kbit/s (u32 BE), latency ms (u24 BE), flags (bit 0 = reachable).
//!
//! The tree: leaf `keccak256(keccak256(abi.encode(uint64 epoch, uint32 id, uint32 base)))`,
//! leaves in ascending id order, each level pairs neighbours hashed in sorted order
//! (`keccak256(min || max)`), an odd last node goes up unchanged — what OpenZeppelin's
//! `MerkleProof` verifies. `base` is the provider's available verdicts in the reward period's
//! reported epochs up to `epoch - 2` (after its registration epoch and any jail): those
//! reports are final when epoch `epoch` is aggregated, so every oracle counts the same, and a
//! bonus claim proves the last leaf of the period (plus the one of the epoch before, if any).

use alloy::primitives::{keccak256, Bytes, B256};

use crate::eip712::Report;
use crate::observations::{Observation, MAX_LATENCY_MS};

/// Basis points.
const BPS: u64 = 10_000;

/// Bytes per violator in a report.
pub const VIOLATION_LEN: usize = 12;

/// A provider's SLA as the market judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sla {
    pub session_mbps: u32,
    pub max_latency_ms: u32,
}

/// The market's tolerances (`Params`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerances {
    pub throughput_bps: u16,
    pub latency_ms: u32,
}

impl Tolerances {
    /// The market's violation rule.
    #[must_use]
    pub fn violates(&self, sla: Sla, reachable: bool, throughput_kbps: u32, latency_ms: u32) -> bool {
        !reachable
            || u64::from(throughput_kbps) * BPS
                < u64::from(sla.session_mbps) * 1000 * (BPS - u64::from(self.throughput_bps.min(10_000)))
            || u64::from(latency_ms) > u64::from(sla.max_latency_ms) + u64::from(self.latency_ms)
    }
}

/// One signer's row: its stake for the epoch and what it observed, in the audited order.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub stake: u128,
    pub observations: &'a [Observation],
}

/// What the aggregate says about one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Oracles holding two thirds or less of the epoch's stake measured it.
    NotMeasured,
    Judged {
        throughput_kbps: u32,
        latency_ms: u32,
        reachable: bool,
        violation: bool,
    },
}

/// Why rows cannot be aggregated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AggregateError {
    #[error("row {row} lists {got} providers where {want} were audited")]
    RowLength { row: usize, got: usize, want: usize },
    #[error("row {row} observes provider {got} where provider {want} was audited")]
    RowOrder { row: usize, got: u32, want: u32 },
    #[error("no rows to aggregate")]
    NoRows,
}

/// An epoch's aggregate: the verdicts, the report the quorum signs, and the verdict tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    pub epoch: u64,
    /// `(provider, verdict)` in the audited (ascending) order.
    pub verdicts: Vec<(u32, Verdict)>,
    pub tree: VerdictTree,
    /// The violators, encoded as the market takes them.
    pub violations: Vec<u8>,
}

impl Aggregate {
    /// The message every signer signs, with the proposer's commitment to the secret of
    /// `epoch + 2` (see `audit::seed_commit`; zero: none).
    #[must_use]
    pub fn report(&self, seed_commit: B256) -> Report {
        Report {
            epoch: self.epoch,
            root: self.tree.root(),
            available: u32::try_from(self.tree.ids.len()).unwrap_or(u32::MAX),
            violations: Bytes::from(self.violations.clone()),
            seedCommit: seed_commit,
        }
    }

    /// Providers listed as violators.
    #[must_use]
    pub fn violators(&self) -> Vec<u32> {
        self.verdicts
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Judged { violation: true, .. }))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Whether the market would refuse the report as judging nobody.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tree.ids.is_empty() && self.violations.is_empty()
    }
}

/// Aggregates the signers' rows of `epoch` (each listing `providers` in order). `eligible` is
/// the epoch's oracle stake; `sla` gives each provider's SLA (`None`: not registered, never a
/// violator); `base` each available provider's leaf base (see the module doc).
///
/// # Errors
/// A row that does not observe exactly `providers`, in order.
pub fn aggregate(
    epoch: u64,
    providers: &[u32],
    rows: &[Row<'_>],
    eligible: u128,
    sla: impl Fn(u32) -> Option<Sla>,
    base: impl Fn(u32) -> u32,
    tol: Tolerances,
) -> Result<Aggregate, AggregateError> {
    if rows.is_empty() {
        return Err(AggregateError::NoRows);
    }
    for (i, r) in rows.iter().enumerate() {
        if r.observations.len() != providers.len() {
            return Err(AggregateError::RowLength { row: i, got: r.observations.len(), want: providers.len() });
        }
        for (o, &id) in r.observations.iter().zip(providers) {
            if o.provider.0 != id {
                return Err(AggregateError::RowOrder { row: i, got: o.provider.0, want: id });
            }
        }
    }
    let mut verdicts = Vec::with_capacity(providers.len());
    let mut available = Vec::new();
    let mut violations = Vec::new();
    let mut thr: Vec<(u32, u128)> = Vec::with_capacity(rows.len());
    let mut lat: Vec<(u32, u128)> = Vec::with_capacity(rows.len());
    for (j, &id) in providers.iter().enumerate() {
        thr.clear();
        lat.clear();
        let (mut measured, mut reachable) = (0u128, 0u128);
        for r in rows {
            let o = r.observations[j];
            if !o.measured {
                continue;
            }
            thr.push((o.throughput.0, r.stake));
            lat.push((o.latency.0.min(MAX_LATENCY_MS), r.stake));
            measured += r.stake;
            if o.reachable {
                reachable += r.stake;
            }
        }
        if measured * 3 <= eligible * 2 {
            verdicts.push((id, Verdict::NotMeasured));
            continue;
        }
        let is_reachable = reachable * 2 > measured;
        let t = weighted_lower_median(&mut thr, measured);
        let l = weighted_lower_median(&mut lat, measured);
        let violation = sla(id).is_some_and(|s| tol.violates(s, is_reachable, t, l));
        if is_reachable {
            available.push((id, base(id)));
        }
        if violation {
            violations.extend_from_slice(&id.to_be_bytes());
            violations.extend_from_slice(&t.to_be_bytes());
            violations.extend_from_slice(&l.to_be_bytes()[1..]);
            violations.push(u8::from(is_reachable));
        }
        verdicts.push((id, Verdict::Judged { throughput_kbps: t, latency_ms: l, reachable: is_reachable, violation }));
    }
    Ok(Aggregate { epoch, verdicts, tree: VerdictTree::new(epoch, available), violations })
}

/// The smallest value whose cumulative weight (values sorted ascending) reaches half of
/// `total`; the tests' reference oracle's `Median.weightedLowerMedian` (contracts/test/lib).
fn weighted_lower_median(values: &mut [(u32, u128)], total: u128) -> u32 {
    values.sort_by_key(|&(v, _)| v);
    let mut cum = 0u128;
    for &(v, w) in values.iter() {
        cum += w;
        if cum * 2 >= total {
            return v;
        }
    }
    values.last().map_or(0, |&(v, _)| v)
}

/// The leaf of provider `id` (with `base`) in epoch `epoch`'s tree.
#[must_use]
pub fn leaf(epoch: u64, id: u32, base: u32) -> B256 {
    let mut word = [0u8; 96];
    word[24..32].copy_from_slice(&epoch.to_be_bytes());
    word[60..64].copy_from_slice(&id.to_be_bytes());
    word[92..96].copy_from_slice(&base.to_be_bytes());
    keccak256(keccak256(word))
}

fn hash_pair(a: B256, b: B256) -> B256 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(lo.as_slice());
    buf[32..].copy_from_slice(hi.as_slice());
    keccak256(buf)
}

/// The providers judged available in an epoch, as a Merkle tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictTree {
    pub epoch: u64,
    /// Ascending.
    pub ids: Vec<u32>,
    /// `bases[i]` is the base of `ids[i]`.
    pub bases: Vec<u32>,
    levels: Vec<Vec<B256>>,
}

impl VerdictTree {
    /// The tree over `(id, base)` leaves (sorted by id here; a repeated id keeps its first base).
    #[must_use]
    pub fn new(epoch: u64, mut leaves: Vec<(u32, u32)>) -> Self {
        leaves.sort_by_key(|&(id, _)| id);
        leaves.dedup_by_key(|&mut (id, _)| id);
        let (ids, bases): (Vec<u32>, Vec<u32>) = leaves.into_iter().unzip();
        let mut levels = vec![ids.iter().zip(&bases).map(|(&id, &base)| leaf(epoch, id, base)).collect::<Vec<_>>()];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let prev = levels.last().map(Vec::as_slice).unwrap_or_default();
            let next = prev.chunks(2).map(|c| if c.len() == 2 { hash_pair(c[0], c[1]) } else { c[0] }).collect();
            levels.push(next);
        }
        Self { epoch, ids, bases, levels }
    }

    /// Whether `id` was judged available.
    #[must_use]
    pub fn contains(&self, id: u32) -> bool {
        self.ids.binary_search(&id).is_ok()
    }

    /// The `(id, base)` leaves, ascending.
    #[must_use]
    pub fn leaves(&self) -> Vec<(u32, u32)> {
        self.ids.iter().copied().zip(self.bases.iter().copied()).collect()
    }

    /// The root (zero for an empty tree, as the market expects).
    #[must_use]
    pub fn root(&self) -> B256 {
        self.levels.last().and_then(|l| l.first().copied()).unwrap_or(B256::ZERO)
    }

    /// `id`'s base and the proof of its leaf (`None` if it is not a leaf).
    #[must_use]
    pub fn proof(&self, id: u32) -> Option<(u32, Vec<B256>)> {
        let mut at = self.ids.binary_search(&id).ok()?;
        let base = self.bases[at];
        let mut proof = Vec::new();
        for level in &self.levels[..self.levels.len().saturating_sub(1)] {
            if let Some(&sib) = level.get(at ^ 1) {
                proof.push(sib);
            }
            at /= 2;
        }
        Some((base, proof))
    }
}

/// Whether `proof` shows `id` (with `base`) judged available under `root` in `epoch` (what the
/// market checks).
#[must_use]
pub fn verify(root: B256, epoch: u64, id: u32, base: u32, proof: &[B256]) -> bool {
    proof.iter().fold(leaf(epoch, id, base), |acc, &p| hash_pair(acc, p)) == root
}

/// The first epoch a leaf's base may count for a provider in the period starting at `first`:
/// after its registration epoch and not before its jail ends.
#[must_use]
pub fn first_creditable(first: u64, registered_epoch: u64, jailed_until: u64) -> u64 {
    first.max(registered_epoch + 1).max(jailed_until)
}

/// A leaf's base: how many of the period's final trees (epochs `from..=epoch - 2`) hold `id`.
#[must_use]
pub fn base_of<'a>(trees: impl IntoIterator<Item = &'a VerdictTree>, id: u32, from: u64, epoch: u64) -> u32 {
    let n = trees.into_iter().filter(|t| t.epoch >= from && t.epoch + 2 <= epoch && t.contains(id)).count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::{Kbps, Millis, ProviderId};
    use proptest::prelude::*;

    const TOL: Tolerances = Tolerances { throughput_bps: 1_000, latency_ms: 20 };
    const SLA: Sla = Sla { session_mbps: 25, max_latency_ms: 80 };

    fn obs(id: u32, kbps: u32, reachable: bool) -> Observation {
        Observation { provider: ProviderId(id), throughput: Kbps(kbps), latency: Millis(20), reachable, measured: true }
    }

    fn agg(rows: &[(u128, Vec<Observation>)], eligible: u128) -> Aggregate {
        let providers: Vec<u32> = rows[0].1.iter().map(|o| o.provider.0).collect();
        let rows: Vec<Row<'_>> = rows.iter().map(|(s, o)| Row { stake: *s, observations: o }).collect();
        aggregate(7, &providers, &rows, eligible, |_| Some(SLA), |_| 0, TOL).expect("aggregate")
    }

    #[test]
    fn borderline_provider_is_judged_by_all_rows_the_same_way_on_every_oracle() {
        // two oracles saw 20 Mbit/s (a violation of 25 - 10 %), two saw 30: lower median 20
        let rows = vec![
            (100, vec![obs(1, 20_000, true)]),
            (100, vec![obs(1, 20_000, true)]),
            (100, vec![obs(1, 30_000, true)]),
            (100, vec![obs(1, 30_000, true)]),
        ];
        let a = agg(&rows, 400);
        assert_eq!(a.violators(), vec![1]);
        assert_eq!(a.violations, vec![0, 0, 0, 1, 0, 0, 0x4e, 0x20, 0, 0, 20, 1]);
        // reachable but slow: still credited available (as the market counts it)
        assert_eq!(a.tree.ids, vec![1]);
        let mut reversed = rows.clone();
        reversed.reverse();
        assert_eq!(agg(&reversed, 400), a, "row order must not matter");
    }

    #[test]
    fn a_minority_of_stake_cannot_move_the_verdict_however_many_rows_it_signs() {
        // seven sybils of 100 say 0 kbit/s and down; four honest of 1,000 say full speed
        let mut rows: Vec<(u128, Vec<Observation>)> = (0..7).map(|_| (100, vec![obs(1, 0, false)])).collect();
        rows.extend((0..4).map(|_| (1_000, vec![obs(1, 30_000, true)])));
        let a = agg(&rows, 4_700);
        assert_eq!(
            a.verdicts,
            vec![(1, Verdict::Judged { throughput_kbps: 30_000, latency_ms: 20, reachable: true, violation: false })]
        );
    }

    #[test]
    fn not_measured_by_two_thirds_of_the_stake_gives_no_verdict() {
        let nm = Observation::not_measured(ProviderId(1));
        let rows = vec![
            (100, vec![nm]),
            (100, vec![obs(1, 0, true)]),
            (100, vec![obs(1, 30_000, true)]),
            (100, vec![obs(1, 30_000, true)]),
        ];
        // 300 of 400 measured: a verdict
        assert!(matches!(agg(&rows, 400).verdicts[0].1, Verdict::Judged { .. }));
        // only 200 of the 400 the epoch counts measured (the rows of 3 signers): none, and an empty report
        let a = agg(&rows[..3], 400);
        assert_eq!(a.verdicts, vec![(1, Verdict::NotMeasured)]);
        assert!(a.is_empty());
    }

    #[test]
    fn rows_that_do_not_observe_the_audited_list_are_refused() {
        let a = vec![obs(1, 1, true), obs(2, 1, true)];
        let b = vec![obs(1, 1, true), obs(3, 1, true)];
        let rows = [Row { stake: 1, observations: &a }, Row { stake: 1, observations: &b }];
        assert_eq!(
            aggregate(1, &[1, 2], &rows, 2, |_| Some(SLA), |_| 0, TOL),
            Err(AggregateError::RowOrder { row: 1, got: 3, want: 2 })
        );
        assert_eq!(
            aggregate(1, &[1], &rows, 2, |_| Some(SLA), |_| 0, TOL),
            Err(AggregateError::RowLength { row: 0, got: 2, want: 1 })
        );
    }

    #[test]
    fn tree_layout_matches_openzeppelin_for_three_leaves() {
        let t = VerdictTree::new(5, vec![(3, 7), (1, 0), (2, 1)]);
        let (a, b, c) = (leaf(5, 1, 0), leaf(5, 2, 1), leaf(5, 3, 7));
        assert_eq!(t.root(), hash_pair(hash_pair(a, b), c));
        assert_eq!(t.proof(3), Some((7, vec![hash_pair(a, b)])));
        assert_eq!(t.proof(4), None);
        assert_eq!(VerdictTree::new(5, vec![]).root(), B256::ZERO);
        assert_eq!(VerdictTree::new(5, vec![(9, 2)]).root(), leaf(5, 9, 2));
    }

    /// A leaf counts the final trees (two epochs back and more) of the period after the
    /// registration epoch and any jail; the claim adds the leaves it proves.
    #[test]
    fn a_base_counts_only_final_creditable_epochs() {
        let trees: Vec<VerdictTree> =
            (10..20).map(|e| VerdictTree::new(e, if e == 14 { vec![(2, 0)] } else { vec![(1, 0), (2, 0)] })).collect();
        // epoch 15's leaf: epochs 10..=13 are final
        assert_eq!(base_of(&trees, 1, first_creditable(10, 0, 0), 15), 4);
        assert_eq!(base_of(&trees, 1, first_creditable(10, 0, 0), 16), 4, "epoch 14 did not hold it");
        // registered in epoch 11: 12 and 13 count; jailed until 13: only 13
        assert_eq!(base_of(&trees, 1, first_creditable(10, 11, 0), 15), 2);
        assert_eq!(base_of(&trees, 1, first_creditable(10, 11, 13), 15), 1);
    }

    proptest! {
        #[test]
        fn every_leaf_proves_and_nothing_else_does(ids in proptest::collection::btree_set(1u32..100_000, 1..300), other in 100_000u32..) {
            let t = VerdictTree::new(11, ids.iter().map(|&id| (id, id % 7)).collect());
            for &id in &ids {
                let (base, p) = t.proof(id).expect("a leaf");
                prop_assert_eq!(base, id % 7);
                prop_assert!(verify(t.root(), 11, id, base, &p));
                prop_assert!(!verify(t.root(), 12, id, base, &p), "another epoch's leaf");
                prop_assert!(!verify(t.root(), 11, id, base + 1, &p), "a larger base");
            }
            let (base, any) = t.proof(*ids.iter().next().expect("one")).expect("proof");
            prop_assert!(!verify(t.root(), 11, other, base, &any));
        }
    }
}
