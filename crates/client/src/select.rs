//! Choosing a provider: a pure function over what the chain says about each one.

use alloy::primitives::U256;
use serde::Serialize;

/// What the client knows about one provider when choosing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    pub id: u32,
    pub endpoint: String,
    pub region: String,
    pub active: bool,
    pub session_mbps: u32,
    pub max_latency_ms: u32,
    /// Capacity minus committed, Mbit/s.
    pub headroom_mbps: u32,
    /// Current price per GiB (the congestion-priced quote), token base units.
    pub quote: U256,
    /// Violations recorded against it so far.
    pub violations: u32,
}

/// The user's requirements.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    pub min_mbps: u32,
    pub max_latency_ms: Option<u32>,
    pub max_price: Option<U256>,
    pub region: Option<String>,
}

/// Why a provider was left out (shown by `wirepact providers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Excluded {
    NotActive,
    NoHeadroom,
    TooSlow,
    TooFarLatency,
    TooExpensive,
    OtherRegion,
}

/// Whether `c` meets `req`.
///
/// # Errors
/// The first requirement it fails.
pub fn eligible(c: &Candidate, req: &Requirements) -> Result<(), Excluded> {
    if !c.active {
        return Err(Excluded::NotActive);
    }
    if c.headroom_mbps < c.session_mbps {
        return Err(Excluded::NoHeadroom);
    }
    if c.session_mbps < req.min_mbps {
        return Err(Excluded::TooSlow);
    }
    if req.max_latency_ms.is_some_and(|m| c.max_latency_ms > m) {
        return Err(Excluded::TooFarLatency);
    }
    if req.max_price.is_some_and(|m| c.quote > m) {
        return Err(Excluded::TooExpensive);
    }
    if req.region.as_ref().is_some_and(|r| !r.eq_ignore_ascii_case(&c.region)) {
        return Err(Excluded::OtherRegion);
    }
    Ok(())
}

/// Eligible providers, best first: fewest recorded violations, then lowest price, then the
/// most promised rate, then the lowest id (a stable order).
#[must_use]
pub fn rank(candidates: &[Candidate], req: &Requirements) -> Vec<Candidate> {
    let mut ok: Vec<Candidate> = candidates.iter().filter(|c| eligible(c, req).is_ok()).cloned().collect();
    ok.sort_by(|a, b| {
        a.violations
            .cmp(&b.violations)
            .then(a.quote.cmp(&b.quote))
            .then(b.session_mbps.cmp(&a.session_mbps))
            .then(a.id.cmp(&b.id))
    });
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: u32, quote: u64, violations: u32) -> Candidate {
        Candidate {
            id,
            endpoint: format!("127.0.0.1:{id}"),
            region: "eu".into(),
            active: true,
            session_mbps: 20,
            max_latency_ms: 50,
            headroom_mbps: 100,
            quote: U256::from(quote),
            violations,
        }
    }

    #[test]
    fn a_clean_record_beats_a_lower_price_and_price_breaks_ties() {
        let list = [c(1, 5, 1), c(2, 9, 0), c(3, 7, 0)];
        let ids: Vec<u32> = rank(&list, &Requirements::default()).iter().map(|c| c.id).collect();
        assert_eq!(ids, [3, 2, 1]);
    }

    #[test]
    fn requirements_exclude_with_the_reason() {
        let req = Requirements {
            min_mbps: 10,
            max_latency_ms: Some(60),
            max_price: Some(U256::from(8)),
            region: Some("EU".into()),
        };
        assert_eq!(eligible(&c(1, 8, 0), &req), Ok(()));
        assert_eq!(eligible(&c(1, 9, 0), &req), Err(Excluded::TooExpensive));
        assert_eq!(eligible(&Candidate { active: false, ..c(1, 1, 0) }, &req), Err(Excluded::NotActive));
        assert_eq!(eligible(&Candidate { headroom_mbps: 19, ..c(1, 1, 0) }, &req), Err(Excluded::NoHeadroom));
        assert_eq!(
            eligible(&Candidate { session_mbps: 5, headroom_mbps: 5, ..c(1, 1, 0) }, &req),
            Err(Excluded::TooSlow)
        );
        assert_eq!(eligible(&Candidate { max_latency_ms: 61, ..c(1, 1, 0) }, &req), Err(Excluded::TooFarLatency));
        assert_eq!(eligible(&Candidate { region: "us".into(), ..c(1, 1, 0) }, &req), Err(Excluded::OtherRegion));
        assert!(rank(&[c(1, 9, 0)], &req).is_empty());
    }
}
