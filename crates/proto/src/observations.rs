//! The byte layout of an oracle's observations, as `submitReport` decodes it.
//!
//! `providers`: 4 bytes per provider id, big-endian, strictly ascending.
//! `measurements`: 8 bytes per provider, in the same order: throughput kbit/s (u32 BE),
//! latency ms (u24 BE, at most 16,777,215), flags (bit 0 = reachable, bit 1 = not measured).
//!
//! "Not measured" is what an oracle signs when it could not run the probe for a reason that
//! is not the provider's fault (the provider was full, or the oracle's own funds, RPC or sink
//! failed): the market gives no verdict unless a strict majority of the signers measured.

use crate::units::{Kbps, Millis, ProviderId};

/// What an oracle saw of one provider in one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation {
    pub provider: ProviderId,
    pub throughput: Kbps,
    pub latency: Millis,
    pub reachable: bool,
    /// False: the oracle could not probe, for a reason that is not the provider's fault.
    pub measured: bool,
}

impl Observation {
    /// "Not measured" for `provider` (no throughput, latency or reachability claimed).
    #[must_use]
    pub fn not_measured(provider: ProviderId) -> Self {
        Self { provider, throughput: Kbps(0), latency: Millis(0), reachable: false, measured: false }
    }
}

/// Flag bits of a measurement.
pub const FLAG_REACHABLE: u8 = 1;
pub const FLAG_NOT_MEASURED: u8 = 2;

/// Largest latency the encoding carries (u24).
pub const MAX_LATENCY_MS: u32 = (1 << 24) - 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ObservationError {
    #[error("provider ids must be strictly ascending ({prev} then {next})")]
    NotAscending { prev: u32, next: u32 },
    #[error("latency {0} ms does not fit 24 bits; clamp to {MAX_LATENCY_MS}")]
    LatencyTooLarge(u32),
    #[error("providers ({providers} bytes) and measurements ({measurements} bytes) do not describe the same list")]
    LengthMismatch { providers: usize, measurements: usize },
}

/// Encodes observations (sorted by provider id) into the two byte strings a report carries.
pub fn encode_observations(obs: &[Observation]) -> Result<(Vec<u8>, Vec<u8>), ObservationError> {
    let mut providers = Vec::with_capacity(obs.len() * 4);
    let mut measurements = Vec::with_capacity(obs.len() * 8);
    let mut prev: Option<u32> = None;
    for o in obs {
        if let Some(p) = prev {
            if o.provider.0 <= p {
                return Err(ObservationError::NotAscending { prev: p, next: o.provider.0 });
            }
        }
        prev = Some(o.provider.0);
        if o.latency.0 > MAX_LATENCY_MS {
            return Err(ObservationError::LatencyTooLarge(o.latency.0));
        }
        providers.extend_from_slice(&o.provider.0.to_be_bytes());
        measurements.extend_from_slice(&o.throughput.0.to_be_bytes());
        measurements.extend_from_slice(&o.latency.0.to_be_bytes()[1..]);
        let flags = if o.measured {
            if o.reachable {
                FLAG_REACHABLE
            } else {
                0
            }
        } else {
            FLAG_NOT_MEASURED
        };
        measurements.push(flags);
    }
    Ok((providers, measurements))
}

/// Decodes what `encode_observations` produced; refuses anything the contract would refuse.
pub fn decode_observations(providers: &[u8], measurements: &[u8]) -> Result<Vec<Observation>, ObservationError> {
    if providers.len() % 4 != 0 || measurements.len() != providers.len() * 2 {
        return Err(ObservationError::LengthMismatch { providers: providers.len(), measurements: measurements.len() });
    }
    let mut out = Vec::with_capacity(providers.len() / 4);
    let mut prev: Option<u32> = None;
    for (id, m) in providers.chunks_exact(4).zip(measurements.chunks_exact(8)) {
        let id = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
        if let Some(p) = prev {
            if id <= p {
                return Err(ObservationError::NotAscending { prev: p, next: id });
            }
        }
        prev = Some(id);
        out.push(Observation {
            provider: ProviderId(id),
            throughput: Kbps(u32::from_be_bytes([m[0], m[1], m[2], m[3]])),
            latency: Millis(u32::from_be_bytes([0, m[4], m[5], m[6]])),
            reachable: m[7] & FLAG_REACHABLE != 0 && m[7] & FLAG_NOT_MEASURED == 0,
            measured: m[7] & FLAG_NOT_MEASURED == 0,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_obs() -> impl Strategy<Value = Vec<Observation>> {
        proptest::collection::btree_map(1u32.., (any::<u32>(), 0..=MAX_LATENCY_MS, any::<bool>(), any::<bool>()), 0..40)
            .prop_map(|m| {
                m.into_iter()
                    .map(|(id, (t, l, r, measured))| {
                        if measured {
                            Observation {
                                provider: ProviderId(id),
                                throughput: Kbps(t),
                                latency: Millis(l),
                                reachable: r,
                                measured,
                            }
                        } else {
                            Observation::not_measured(ProviderId(id))
                        }
                    })
                    .collect()
            })
    }

    proptest! {
        #[test]
        fn round_trips(obs in arb_obs()) {
            let (p, m) = encode_observations(&obs).expect("encode");
            prop_assert_eq!(decode_observations(&p, &m).expect("decode"), obs);
        }

        #[test]
        fn random_bytes_never_panic(p in proptest::collection::vec(any::<u8>(), 0..64), m in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_observations(&p, &m);
        }
    }

    #[test]
    fn unsorted_and_oversized_are_refused() {
        let o = |id, lat| Observation {
            provider: ProviderId(id),
            throughput: Kbps(1),
            latency: Millis(lat),
            reachable: true,
            measured: true,
        };
        assert_eq!(encode_observations(&[o(2, 1), o(2, 1)]), Err(ObservationError::NotAscending { prev: 2, next: 2 }));
        assert_eq!(
            encode_observations(&[o(1, MAX_LATENCY_MS + 1)]),
            Err(ObservationError::LatencyTooLarge(MAX_LATENCY_MS + 1))
        );
        let layout = encode_observations(&[o(7, 300)]).expect("encode");
        assert_eq!(layout.0, vec![0, 0, 0, 7]);
        assert_eq!(layout.1, vec![0, 0, 0, 1, 0, 1, 44, 1]);
        // "not measured" is flag bit 1 and claims nothing else (the market's test
        // `test_Attack_FullProviderNotMeasured_NoViolation` signs the same byte)
        let layout = encode_observations(&[Observation::not_measured(ProviderId(7))]).expect("encode");
        assert_eq!(layout.1, vec![0, 0, 0, 0, 0, 0, 0, 2]);
    }
}
