//! Which providers an epoch audits, derived off chain exactly as the market's `AuditSet`
//! library does, so oracles (and the simulator) know whom to probe without one view call per
//! provider. The market re-checks every listed id (`Market_ProviderNotAudited`), so a drift
//! between this function and the contract shows as a refused report, never as a silent miss;
//! the simulator's tests compare the two on the real bytecode.

use alloy::primitives::{keccak256, B256, U256};

/// Basis points: the audit probability is `bps / 10_000`.
pub const BPS: u16 = 10_000;

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

/// The audited ids among `1..=provider_count`, ascending (the order a report lists them in).
#[must_use]
pub fn audited_ids(seed: B256, provider_count: u32, probability_bps: u16) -> Vec<u32> {
    (1..=provider_count).filter(|&id| is_audited(seed, id, probability_bps)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_seed_audits_nobody_and_full_probability_audits_everyone() {
        assert!(audited_ids(B256::ZERO, 100, BPS).is_empty());
        assert_eq!(audited_ids(B256::repeat_byte(7), 100, BPS).len(), 100);
        assert!(audited_ids(B256::repeat_byte(7), 100, 0).is_empty());
    }

    #[test]
    fn the_audited_share_follows_the_probability() {
        let seed = keccak256(b"some epoch");
        let n = audited_ids(seed, 20_000, 1_000).len();
        // 10% of 20,000 = 2,000, sd ~42: well inside 1,850..2,150.
        assert!((1_850..=2_150).contains(&n), "{n} audited");
    }
}
