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
    /// Current price per GiB (the congestion-priced quote), token base units (in JSON: tokens,
    /// an exact decimal string).
    #[serde(with = "wirepact_proto::units::token_string")]
    pub quote: U256,
    /// Violations recorded against it so far.
    pub violations: u32,
    /// The key its tunnel certificate must have (registered on chain).
    pub tunnel_key: alloy::primitives::B256,
    /// TCP connect + pinned TLS handshake as this client measured it, microseconds; `None`
    /// until measured. A candidate that was tried and did not answer is [`Excluded::Unreachable`].
    pub handshake_us: Option<u64>,
    /// Measured, and did not complete the handshake in time (or failed the key pin).
    pub unreachable: bool,
    /// Where it serves veil, the random-looking transport, if its endpoint says so (in JSON:
    /// the advert, `veil:PORT:KEY`).
    #[serde(serialize_with = "veil_advert")]
    pub veil: Option<wirepact_tunnel::veil::VeilAddr>,
}

fn veil_advert<S: serde::Serializer>(v: &Option<wirepact_tunnel::veil::VeilAddr>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(a) => s.serialize_some(&a.advert()),
        None => s.serialize_none(),
    }
}

/// The user's requirements.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    pub min_mbps: u32,
    pub max_latency_ms: Option<u32>,
    pub max_price: Option<U256>,
    pub region: Option<String>,
    /// Only providers that serve veil (the client's `transport = "veil"`).
    pub veil: bool,
    /// Veil where TLS does not get through (`transport = "auto"`).
    pub veil_fallback: bool,
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
    /// No handshake with the registered tunnel key within the deadline.
    Unreachable,
    /// The client uses veil; this provider does not serve it.
    NoVeil,
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
    if c.unreachable {
        return Err(Excluded::Unreachable);
    }
    if req.veil && c.veil.is_none() {
        return Err(Excluded::NoVeil);
    }
    Ok(())
}

/// How much a provider 100 ms of handshake further away must undercut to tie: the cost
/// doubles per `LATENCY_SCALE_US` of measured handshake.
pub const LATENCY_SCALE_US: u64 = 100_000;

/// A candidate's cost in the ranking (lower is better), relative to `cheapest` quote among
/// the eligible:
///
/// `cost = (quote / cheapest) x (1 + violations) x (1 + handshake / 100 ms)`
///
/// - *price*: a provider twice as expensive as the cheapest costs twice as much;
/// - *SLA history*: every violation the chain recorded against it counts as a doubling of the
///   price (a violation is an oracle-confirmed broken promise; a clean record is worth paying for);
/// - *latency*: every 100 ms of measured handshake (one TCP and one TLS round trip) counts as
///   one more price; an unmeasured candidate is ranked as if its handshake took 100 ms.
///
/// Computed in fixed point (1e6 = 1.0) so the ranking is exact and reproducible.
#[must_use]
pub fn cost(c: &Candidate, cheapest: alloy::primitives::U256) -> u128 {
    const ONE: u128 = 1_000_000;
    let price = if cheapest.is_zero() || c.quote.is_zero() {
        ONE
    } else {
        // quote / cheapest in 1e6 units, saturating for absurd quotes.
        let r = c.quote.saturating_mul(alloy::primitives::U256::from(ONE)) / cheapest;
        u128::try_from(r).unwrap_or(u128::MAX / 4)
    };
    let history = u128::from(c.violations) + 1;
    let lat_us = u128::from(c.handshake_us.unwrap_or(LATENCY_SCALE_US));
    let latency = ONE + lat_us * ONE / u128::from(LATENCY_SCALE_US);
    // price (<= 2^126) x history (<= 2^32) x latency (1e6..): saturating keeps absurd inputs last.
    price.saturating_mul(history).saturating_mul(latency) / ONE
}

/// Eligible providers, best first by [`cost`]; ties go to the most promised rate, then the
/// lowest id (a stable order).
#[must_use]
pub fn rank(candidates: &[Candidate], req: &Requirements) -> Vec<Candidate> {
    let ok: Vec<Candidate> = candidates.iter().filter(|c| eligible(c, req).is_ok()).cloned().collect();
    let cheapest = ok.iter().map(|c| c.quote).min().unwrap_or_default();
    let mut scored: Vec<(u128, Candidate)> = ok.into_iter().map(|c| (cost(&c, cheapest), c)).collect();
    scored.sort_by(|(ca, a), (cb, b)| ca.cmp(cb).then(b.session_mbps.cmp(&a.session_mbps)).then(a.id.cmp(&b.id)));
    scored.into_iter().map(|(_, c)| c).collect()
}

/// The most the client agrees to pay per GiB when it opens a session with a provider it saw
/// quoting `quote`: the quote plus `tolerance_pct`, and never above the configured maximum.
/// `None` when the quote is unknown (it could not be read): the client does not open blind,
/// since a provider raising its price in front of the open would take the whole deposit.
#[must_use]
pub fn open_price_cap(configured_max: U256, quote: U256, tolerance_pct: u32) -> Option<U256> {
    if quote == U256::MAX || quote.is_zero() {
        return None;
    }
    Some(configured_max.min(wirepact_proto::price_ceiling(quote, tolerance_pct.saturating_mul(100))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_at_most_at_the_seen_quote_plus_the_tolerance() {
        let q = U256::from(1_000_000u64);
        // a provider raising its price by more than 5 % in front of the open makes it fail
        assert_eq!(open_price_cap(U256::MAX, q, 5), Some(U256::from(1_050_000u64)));
        assert_eq!(open_price_cap(U256::from(1_020_000u64), q, 5), Some(U256::from(1_020_000u64)));
        assert_eq!(open_price_cap(U256::MAX, q, 0), Some(q));
        // an unknown quote (read failed) or a full provider: no blind open
        assert_eq!(open_price_cap(U256::MAX, U256::MAX, 5), None);
        assert_eq!(open_price_cap(U256::MAX, U256::ZERO, 5), None);
    }

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
            tunnel_key: alloy::primitives::B256::ZERO,
            handshake_us: Some(1_000),
            unreachable: false,
            veil: None,
        }
    }

    #[test]
    fn a_clean_record_beats_a_lower_price_and_price_breaks_ties() {
        let list = [c(1, 5, 1), c(2, 9, 0), c(3, 7, 0)];
        let ids: Vec<u32> = rank(&list, &Requirements::default()).iter().map(|c| c.id).collect();
        assert_eq!(ids, [3, 2, 1]);
    }

    #[test]
    fn latency_counts_a_price_per_hundred_ms() {
        let near = Candidate { handshake_us: Some(0), ..c(1, 10, 0) };
        let far = Candidate { handshake_us: Some(100_000), ..c(2, 5, 0) };
        // Half the price and 100 ms further: exactly a tie, broken by id.
        assert_eq!(cost(&near, U256::from(5)), cost(&far, U256::from(5)));
        let ids: Vec<u32> = rank(&[far.clone(), near.clone()], &Requirements::default()).iter().map(|c| c.id).collect();
        assert_eq!(ids, [1, 2]);
        // A little closer wins.
        let nearer = Candidate { handshake_us: Some(90_000), ..far };
        assert_eq!(rank(&[near, nearer], &Requirements::default())[0].id, 2);
        // Unmeasured counts as 100 ms.
        let unmeasured = Candidate { handshake_us: None, ..c(3, 5, 0) };
        assert_eq!(cost(&unmeasured, U256::from(5)), 2_000_000);
    }

    #[test]
    fn one_violation_weighs_like_double_the_price() {
        let clean = c(1, 10, 0);
        let flagged = c(2, 5, 1);
        assert_eq!(cost(&clean, U256::from(5)), cost(&flagged, U256::from(5)));
        assert!(cost(&c(3, 5, 2), U256::from(5)) > cost(&clean, U256::from(5)));
    }

    #[test]
    fn absurd_quotes_and_counts_rank_last_without_overflow() {
        let huge = Candidate { quote: U256::MAX, violations: u32::MAX, handshake_us: Some(u64::MAX), ..c(1, 1, 0) };
        let ids: Vec<u32> = rank(&[huge, c(2, 1, 0)], &Requirements::default()).iter().map(|c| c.id).collect();
        assert_eq!(ids, [2, 1]);
    }

    #[test]
    fn an_unreachable_provider_is_never_chosen() {
        let dead = Candidate { unreachable: true, ..c(1, 1, 0) };
        assert_eq!(eligible(&dead, &Requirements::default()), Err(Excluded::Unreachable));
        assert_eq!(rank(&[dead, c(2, 9, 3)], &Requirements::default())[0].id, 2);
    }

    #[test]
    fn requirements_exclude_with_the_reason() {
        let req = Requirements {
            min_mbps: 10,
            max_latency_ms: Some(60),
            max_price: Some(U256::from(8)),
            region: Some("EU".into()),
            veil: false,
            veil_fallback: false,
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
        let veil_only = Requirements { veil: true, ..req.clone() };
        assert_eq!(eligible(&c(1, 1, 0), &veil_only), Err(Excluded::NoVeil));
        let serves = wirepact_tunnel::veil::VeilAddr { port: 8443, public: [7; 32] };
        assert_eq!(eligible(&Candidate { veil: Some(serves), ..c(1, 1, 0) }, &veil_only), Ok(()));
        assert!(rank(&[c(1, 9, 0)], &req).is_empty());
    }
}
