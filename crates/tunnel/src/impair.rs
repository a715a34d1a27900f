//! Test knobs that make a provider under-deliver on purpose, so oracles, tests, benchmarks and
//! the devnet can show what happens to one that does: a shared token bucket (an oversold pipe)
//! and extra latency on the way back to the client. Never enabled by default.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket without burst, in integer nanoseconds: each chunk of `n` bytes may leave
/// `n * 8 / rate` after the previous one. Time is passed in (sans-IO).
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Nanoseconds per byte * 1000 (milli-ns), so low and high rates both stay exact enough.
    mns_per_byte: u64,
    /// When the last reserved chunk may leave ("theoretical arrival time").
    tat: Option<Instant>,
}

impl Pacer {
    /// A pacer for `mbps` Mbit/s (10^6 bit/s); `None` for a rate of zero.
    #[must_use]
    pub fn new(mbps: u32) -> Option<Self> {
        // 8 bits * 1e9 ns / (mbps * 1e6) = 8000 / mbps ns per byte = 8_000_000 / mbps mns.
        (mbps > 0).then(|| Self { mns_per_byte: 8_000_000 / u64::from(mbps), tat: None })
    }

    /// Reserves `n` bytes at `now`; returns when they may leave.
    pub fn reserve(&mut self, n: u64, now: Instant) -> Instant {
        let start = self.tat.map_or(now, |t| t.max(now));
        let cost = Duration::from_nanos(n.saturating_mul(self.mns_per_byte) / 1000);
        let at = start + cost;
        self.tat = Some(at);
        at
    }
}

/// How a provider misbehaves (all off by default).
#[derive(Debug, Clone, Default)]
pub struct Impairment {
    /// Every session's downstream shares this rate (`--shape-mbps`).
    pub shape: Option<Arc<Mutex<Pacer>>>,
    /// Added to every chunk on its way to the client (`--extra-latency-ms`).
    pub extra_latency: Duration,
}

impl Impairment {
    #[must_use]
    pub fn new(shape_mbps: Option<u32>, extra_latency: Duration) -> Self {
        Self { shape: shape_mbps.and_then(Pacer::new).map(|p| Arc::new(Mutex::new(p))), extra_latency }
    }

    #[must_use]
    pub fn is_off(&self) -> bool {
        self.shape.is_none() && self.extra_latency.is_zero()
    }

    /// Waits until `n` bytes may leave under the shaped rate.
    pub async fn pace(&self, n: u64) {
        if let Some(p) = &self.shape {
            let at = p.lock().map(|mut p| p.reserve(n, Instant::now())).ok();
            if let Some(at) = at {
                tokio::time::sleep_until(at).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_spaces_chunks_at_the_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new(8).expect("rate"); // 1 byte per microsecond
        assert_eq!(p.reserve(1000, t0), t0 + Duration::from_millis(1));
        assert_eq!(p.reserve(1000, t0), t0 + Duration::from_millis(2), "back to back: queued");
        let later = t0 + Duration::from_millis(10);
        assert_eq!(p.reserve(500, later), later + Duration::from_micros(500), "idle time is not banked");
        assert!(Pacer::new(0).is_none());
    }

    #[test]
    fn one_second_of_traffic_at_200_mbps_takes_one_second() {
        let t0 = Instant::now();
        let mut p = Pacer::new(200).expect("rate");
        let mut at = t0;
        for _ in 0..(25_000_000 / 65_536) {
            at = p.reserve(65_536, t0);
        }
        let sent = (25_000_000 / 65_536) * 65_536u64;
        let expect = Duration::from_nanos(sent * 40); // 40 ns per byte at 200 Mbit/s
        assert_eq!(at - t0, expect);
    }
}
