//! Behaviour and measurement models: what a provider really delivers in an epoch, and what
//! an oracle's probe reads of it. Pure functions of their inputs and a random source; the
//! market's rules are not here (they run in the EVM).

use rand::Rng;
use rand_distr::{Distribution, LogNormal, Normal, Pareto};

use crate::scenario::{Behaviour, LieStrategy, OracleSection};

/// The probe paces its sources at this share of the SLA rate (the oracle's `cap_pct` of 110).
pub const PROBE_CAP: f64 = 1.10;
/// Latency a probe reports for a provider it could not reach (the oracle's `unreachable()`).
pub const UNREACHABLE_LATENCY_MS: u32 = 0;

/// What a provider really offers a new session during one epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrueState {
    pub reachable: bool,
    /// Rate a new session (or a probe) gets, kbit/s.
    pub rate_kbps: f64,
    /// Round trip through the provider, ms, before the oracle's own path.
    pub latency_ms: f64,
}

/// A provider's fixed traits, drawn once.
#[derive(Debug, Clone, Copy)]
pub struct Traits {
    /// Median round trip of its own, ms.
    pub base_latency_ms: f64,
}

impl Traits {
    pub fn draw<R: Rng>(rng: &mut R) -> Self {
        Self { base_latency_ms: rng.random_range(15.0..45.0) }
    }
}

/// Demand at `hour` (0-24) as a share of the daily peak: a cosine between `trough` and 1.
#[must_use]
pub fn activity(hour: f64, peak_hour: f64, trough: f64) -> f64 {
    let phase = (hour - peak_hour) / 24.0 * std::f64::consts::TAU;
    trough + (1.0 - trough) * (0.5 + 0.5 * phase.cos())
}

/// What a probe sees of a provider whose clients get `t`: the same, except for a provider that
/// recognises probes and serves them its full SLA (with an honest pipe's headroom).
#[must_use]
pub fn as_probed(b: Behaviour, t: &TrueState, sla_kbps: f64) -> TrueState {
    match b {
        Behaviour::ProbeAware { .. } => TrueState { rate_kbps: sla_kbps * 1.3, ..*t },
        _ => *t,
    }
}

/// The provider's real state in an epoch with the market's demand at `activity` of its peak.
pub fn true_state<R: Rng>(
    b: Behaviour,
    sla_kbps: f64,
    capacity_kbps: f64,
    traits: Traits,
    activity: f64,
    rng: &mut R,
) -> TrueState {
    // An honest pipe: sized with headroom over the SLA (median 1.3x, 8% log-sd: the rate a new
    // session gets dips under the SLA in about 5 epochs in 10^4, under 90% of it about twice in
    // 10^6); its latency drifts with routing from epoch to epoch (15% log-sd). Queueing spikes
    // are per probe (see `probe`).
    let headroom = LogNormal::new(1.3f64.ln(), 0.08).map_or(1.3, |d| d.sample(rng));
    let route = LogNormal::new(0.0, 0.15).map_or(1.0, |d| d.sample(rng));
    let honest =
        TrueState { reachable: true, rate_kbps: sla_kbps * headroom, latency_ms: traits.base_latency_ms * route };
    match b {
        Behaviour::Honest => honest,
        Behaviour::Underdeliver { fraction } | Behaviour::Leaver { fraction } => {
            let wobble = LogNormal::new(0.0, 0.03).map_or(1.0, |d| d.sample(rng));
            TrueState { rate_kbps: sla_kbps * fraction * wobble, ..honest }
        }
        Behaviour::Oversold { peak_free } => {
            let free = capacity_kbps * (1.0 - (1.0 - peak_free) * activity);
            TrueState { rate_kbps: honest.rate_kbps.min(free), ..honest }
        }
        Behaviour::Throttling { probability, fraction } => {
            if rng.random_bool(probability) {
                TrueState { rate_kbps: sla_kbps * fraction, ..honest }
            } else {
                honest
            }
        }
        Behaviour::Flaky { availability } => {
            if rng.random_bool(availability) {
                honest
            } else {
                TrueState { reachable: false, ..honest }
            }
        }
        Behaviour::Offline => TrueState { reachable: false, ..honest },
        Behaviour::ProbeAware { fraction } => {
            let wobble = LogNormal::new(0.0, 0.03).map_or(1.0, |d| d.sample(rng));
            TrueState { rate_kbps: sla_kbps * fraction * wobble, ..honest }
        }
    }
}

/// One oracle's reading of a provider: throughput kbit/s, latency ms, reachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub throughput_kbps: u32,
    pub latency_ms: u32,
    pub reachable: bool,
}

impl Reading {
    #[must_use]
    pub const fn unreachable() -> Self {
        Self { throughput_kbps: 0, latency_ms: UNREACHABLE_LATENCY_MS, reachable: false }
    }

    /// Whether this reading would look like a violation of `sla_kbps`/`max_latency_ms` on its own
    /// (no tolerance: the oracle does not need the market's parameters to be careful).
    #[must_use]
    pub fn suspect(&self, sla_kbps: f64, max_latency_ms: f64) -> bool {
        !self.reachable || f64::from(self.throughput_kbps) < sla_kbps || f64::from(self.latency_ms) > max_latency_ms
    }

    /// The better of two readings (a confirmation probe overrules a bad first one).
    #[must_use]
    pub fn better(self, other: Self) -> Self {
        match (self.reachable, other.reachable) {
            (false, _) => other,
            (_, false) => self,
            _ => Self {
                throughput_kbps: self.throughput_kbps.max(other.throughput_kbps),
                latency_ms: self.latency_ms.min(other.latency_ms),
                reachable: true,
            },
        }
    }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn to_u32(x: f64) -> u32 {
    x.clamp(0.0, f64::from(u32::MAX)).round() as u32
}

/// One honest probe of `s` from an oracle whose own path adds `path_ms`.
pub fn probe<R: Rng>(s: &TrueState, sla_kbps: f64, path_ms: f64, o: &OracleSection, rng: &mut R) -> Reading {
    if !s.reachable || rng.random_bool(o.probe_failure) {
        return Reading::unreachable();
    }
    let sd = o.throughput_error;
    let err = Normal::new(0.0f64, sd).map_or(0.0, |d| d.sample(rng)).clamp(-4.0 * sd, 4.0 * sd);
    let mut thr = s.rate_kbps.min(sla_kbps * PROBE_CAP) * (1.0 + err).min(1.0);
    if rng.random_bool(o.path_trouble) {
        thr *= rng.random_range(0.3..1.0);
    }
    // Latency: the provider's state, the oracle's own path, a heavy-tailed queueing spike at the
    // moment of the probe (Pareto, alpha 2.5: over 20 ms in one probe in 400) and a millisecond
    // or two of timer noise (bench-probe: 1.2-1.6 ms).
    let spike = Pareto::new(2.0, 2.5).map_or(2.0, |d| d.sample(rng)) - 2.0;
    let lat = s.latency_ms + path_ms + spike + Normal::new(0.0f64, 1.5).map_or(0.0, |d| d.sample(rng)).abs();
    Reading { throughput_kbps: to_u32(thr), latency_ms: to_u32(lat.max(1.0)), reachable: true }
}

/// What an honest oracle reports: a probe, confirmed by a second one when it looks bad and
/// the scenario says honest oracles confirm.
pub fn honest_reading<R: Rng>(
    s: &TrueState,
    sla_kbps: f64,
    max_latency_ms: f64,
    path_ms: f64,
    o: &OracleSection,
    rng: &mut R,
) -> Reading {
    let first = probe(s, sla_kbps, path_ms, o, rng);
    if o.confirm_suspects && first.suspect(sla_kbps, max_latency_ms) {
        first.better(probe(s, sla_kbps, path_ms, o, rng))
    } else {
        first
    }
}

/// What a lying oracle reports about a provider that does (`cheater`) or does not cheat.
#[must_use]
pub fn lie(strategy: LieStrategy, cheater: bool, sla_kbps: f64) -> Reading {
    let perfect = Reading { throughput_kbps: to_u32(sla_kbps * PROBE_CAP), latency_ms: 1, reachable: true };
    let dead = Reading { throughput_kbps: 0, latency_ms: 0x00ff_ffff, reachable: false };
    match strategy {
        LieStrategy::Collude if cheater => perfect,
        LieStrategy::Collude | LieStrategy::Slander => dead,
        LieStrategy::Shill => perfect,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const SLA: f64 = 50_000.0;

    #[test]
    fn demand_peaks_at_the_peak_hour_and_bottoms_at_the_trough() {
        assert!((activity(20.0, 20.0, 0.3) - 1.0).abs() < 1e-9);
        assert!((activity(8.0, 20.0, 0.3) - 0.3).abs() < 1e-9);
    }

    #[test]
    fn an_honest_provider_reads_above_its_sla_and_an_80pct_one_below() {
        let mut rng = StdRng::seed_from_u64(7);
        let o = OracleSection::default();
        let t = Traits { base_latency_ms: 30.0 };
        let mut honest_low = 0;
        let mut cheat_high = 0;
        for _ in 0..10_000 {
            let h = true_state(Behaviour::Honest, SLA, 10.0 * SLA, t, 1.0, &mut rng);
            if f64::from(honest_reading(&h, SLA, 80.0, 5.0, &o, &mut rng).throughput_kbps) < 0.9 * SLA {
                honest_low += 1;
            }
            let c = true_state(Behaviour::Underdeliver { fraction: 0.8 }, SLA, 10.0 * SLA, t, 1.0, &mut rng);
            if f64::from(honest_reading(&c, SLA, 80.0, 5.0, &o, &mut rng).throughput_kbps) >= 0.9 * SLA {
                cheat_high += 1;
            }
        }
        assert!(honest_low <= 2, "{honest_low} honest readings under 90% of the SLA");
        assert!(cheat_high <= 2, "{cheat_high} readings of an 80% provider at 90% of the SLA or more");
    }

    /// The probe-aware cheater gives its clients half the SLA and its probes the full one;
    /// every other behaviour looks the same to a probe as to a client.
    #[test]
    fn a_probe_aware_cheater_serves_probes_in_full_and_clients_at_its_fraction() {
        let mut rng = StdRng::seed_from_u64(9);
        let t = Traits { base_latency_ms: 30.0 };
        let b = Behaviour::ProbeAware { fraction: 0.5 };
        let clients = true_state(b, SLA, 10.0 * SLA, t, 1.0, &mut rng);
        assert!(clients.rate_kbps < 0.6 * SLA, "{clients:?}");
        assert!(as_probed(b, &clients, SLA).rate_kbps >= SLA);
        let u = true_state(Behaviour::Underdeliver { fraction: 0.5 }, SLA, 10.0 * SLA, t, 1.0, &mut rng);
        assert_eq!(as_probed(Behaviour::Underdeliver { fraction: 0.5 }, &u, SLA), u);
    }

    #[test]
    fn an_oversold_provider_fails_at_the_peak_only() {
        let mut rng = StdRng::seed_from_u64(1);
        let t = Traits { base_latency_ms: 30.0 };
        let b = Behaviour::Oversold { peak_free: 0.06 };
        let peak = true_state(b, SLA, 10.0 * SLA, t, 1.0, &mut rng);
        let night = true_state(b, SLA, 10.0 * SLA, t, 0.3, &mut rng);
        assert!(peak.rate_kbps < 0.9 * SLA, "{peak:?}");
        assert!(night.rate_kbps > SLA, "{night:?}");
    }

    #[test]
    fn a_confirmation_overrules_a_bad_first_reading_but_not_a_dead_provider() {
        let good = Reading { throughput_kbps: 55_000, latency_ms: 40, reachable: true };
        assert_eq!(Reading::unreachable().better(good), good);
        assert_eq!(good.better(Reading::unreachable()), good);
        let dead = TrueState { reachable: false, rate_kbps: SLA, latency_ms: 30.0 };
        let mut rng = StdRng::seed_from_u64(3);
        let r = honest_reading(&dead, SLA, 80.0, 5.0, &OracleSection::default(), &mut rng);
        assert!(!r.reachable);
    }

    #[test]
    fn liars_follow_their_strategy() {
        assert!(lie(LieStrategy::Collude, true, SLA).reachable);
        assert!(!lie(LieStrategy::Collude, false, SLA).reachable);
        assert!(!lie(LieStrategy::Slander, true, SLA).reachable);
        assert!(lie(LieStrategy::Shill, false, SLA).reachable);
    }
}
