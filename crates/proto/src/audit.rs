//! Which providers an epoch audits, derived off chain exactly as the market's `AuditSet`
//! library does, so oracles (and the simulator) know whom to probe without one view call per
//! provider. The market re-checks every listed id (`Market_ProviderNotAudited`), so a drift
//! between this function and the contract shows as a refused report, never as a silent miss;
//! the simulator's tests compare the two on the real bytecode.
//!
//! The seed an epoch draws from mixes the chain's seed (`beginEpoch`) with a secret of the
//! oracles, committed two epochs ahead by a report and revealed by the epoch's own report
//! ([`audit_seed`], [`seed_commit`]): providers cannot tell they are audited before then.

use alloy::primitives::{keccak256, B256, U256};

/// Basis points: the audit probability is `bps / 10_000`.
pub const BPS: u16 = 10_000;

/// The commitment a report makes to the secret of a later epoch:
/// `keccak256(abi.encode(secret))`.
#[must_use]
pub fn seed_commit(secret: B256) -> B256 {
    keccak256(secret)
}

/// The seed `epoch`'s audits are drawn from: `keccak256(abi.encode(chain_seed, secret))` when a
/// secret was committed for it, else the chain seed alone (and zero while the epoch is unseeded).
#[must_use]
pub fn audit_seed(chain_seed: B256, secret: Option<B256>) -> B256 {
    match secret {
        Some(s) if chain_seed != B256::ZERO => {
            let mut word = [0u8; 64];
            word[..32].copy_from_slice(chain_seed.as_slice());
            word[32..].copy_from_slice(s.as_slice());
            keccak256(word)
        }
        _ => chain_seed,
    }
}

/// `uint256(keccak256(abi.encode(seed, id))) % 10_000 < probability_bps`; a zero seed (an
/// epoch nobody began) audits nobody.
#[must_use]
pub fn is_audited(seed: B256, provider_id: u32, probability_bps: u16) -> bool {
    if seed == B256::ZERO {
        return false;
    }
    let mut word = [0u8; 64];
    word[..32].copy_from_slice(seed.as_slice());
    word[60..].copy_from_slice(&provider_id.to_be_bytes());
    let h = U256::from_be_bytes(keccak256(word).0);
    h % U256::from(BPS) < U256::from(probability_bps)
}

/// The audit probability of `epoch` in basis points, as the market's `auditProbabilityAt`:
/// `base` weighted by the UTC hour the epoch starts in (`hour_weights`: one byte per hour, byte
/// `h` = bits `8h..8h+7`; zero = every hour alike), at most 100 %.
#[must_use]
pub fn audit_bps_at(base: u16, hour_weights: U256, genesis: u64, epoch_len: u64, epoch: u64) -> u16 {
    if hour_weights.is_zero() {
        return base;
    }
    let weight = |h: usize| -> u64 { ((hour_weights >> (8 * h)) & U256::from(0xff)).to::<u64>() };
    let sum: u64 = (0..24).map(weight).sum();
    if sum == 0 {
        return base;
    }
    let start = u128::from(genesis) + u128::from(epoch) * u128::from(epoch_len);
    let hour = usize::try_from((start / 3600) % 24).unwrap_or(0);
    let bps = u64::from(base) * weight(hour) * 24 / sum;
    u16::try_from(bps.min(u64::from(BPS))).unwrap_or(BPS)
}

/// The audited ids among `1..=provider_count`, ascending (the order a report lists them in).
#[must_use]
pub fn audited_ids(seed: B256, provider_count: u32, probability_bps: u16) -> Vec<u32> {
    (1..=provider_count).filter(|&id| is_audited(seed, id, probability_bps)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weight 3 for hour 20 UTC and 1 for the others (sum 26): the hour's epochs audit at
    /// 1,000 * 3 * 24 / 26 bps, the others at 1,000 * 24 / 26, and without weights at 1,000.
    #[test]
    fn the_hour_weights_the_audit_probability() {
        let mut w = U256::ZERO;
        for h in 0..24usize {
            w |= U256::from(if h == 20 { 3u8 } else { 1 }) << (8 * h);
        }
        let (genesis, len) = (1_767_225_600u64, 600u64); // midnight UTC
        assert_eq!(audit_bps_at(1_000, w, genesis, len, 20 * 6), 2_769);
        assert_eq!(audit_bps_at(1_000, w, genesis, len, 20 * 6 + 5), 2_769);
        assert_eq!(audit_bps_at(1_000, w, genesis, len, 21 * 6), 923);
        assert_eq!(audit_bps_at(1_000, U256::ZERO, genesis, len, 20 * 6), 1_000);
        // Never above 100 %.
        assert_eq!(audit_bps_at(9_000, w, genesis, len, 20 * 6), BPS);
    }

    #[test]
    fn zero_seed_audits_nobody_and_full_probability_audits_everyone() {
        assert!(audited_ids(B256::ZERO, 100, BPS).is_empty());
        assert_eq!(audited_ids(B256::repeat_byte(7), 100, BPS).len(), 100);
        assert!(audited_ids(B256::repeat_byte(7), 100, 0).is_empty());
    }

    /// The market hashes `abi.encode(chainSeed, secret)` and `abi.encode(secret)`: the same
    /// bytes here, and no secret (or no chain seed yet) leaves the chain seed as it is.
    #[test]
    fn the_audit_seed_and_commitment_hash_what_the_market_hashes() {
        use alloy::sol_types::SolValue;
        let (chain, secret) = (keccak256(b"chain"), keccak256(b"secret"));
        assert_eq!(audit_seed(chain, Some(secret)), keccak256((chain, secret).abi_encode()));
        assert_eq!(seed_commit(secret), keccak256(secret.abi_encode()));
        assert_eq!(audit_seed(chain, None), chain);
        assert_eq!(audit_seed(B256::ZERO, Some(secret)), B256::ZERO, "an unseeded epoch audits nobody");
        // the secret changes the draw
        let a = audited_ids(chain, 1_000, 5_000);
        let b = audited_ids(audit_seed(chain, Some(secret)), 1_000, 5_000);
        assert_ne!(a, b);
    }

    #[test]
    fn the_audited_share_follows_the_probability() {
        let seed = keccak256(b"some epoch");
        let n = audited_ids(seed, 20_000, 1_000).len();
        // 10% of 20,000 = 2,000, sd ~42: well inside 1,850..2,150.
        assert!((1_850..=2_150).contains(&n), "{n} audited");
    }
}
