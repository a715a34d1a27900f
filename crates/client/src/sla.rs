//! The client's own SLA watch: a pure judgement over the round trips of its control-stream
//! pings (time passed in). Oracles decide slashing; this only decides when the client stops
//! waiting and moves to the next provider.
//!
//! - **Latency**: over the last `window`, at least `min_samples` round trips and at least 80 %
//!   of them above the limit. The limit is the provider's promised latency, or the handshake
//!   round trip this client measured to it if that is longer (the provider cannot be blamed for
//!   the distance to the client), plus the market's latency tolerance. The window must have
//!   passed since the link started: a few slow pings at connect time are not a breach.
//! - **Stall**: a ping unanswered for `stall_after` while the tunnel is nominally up (a
//!   provider that hangs, or a path that black-holes packets, never resets the connection).

use std::time::{Duration, Instant};

use serde::Serialize;

/// When a link is judged broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaWatch {
    /// Round trips above this are over the SLA.
    pub limit: Duration,
    /// How long the breach must be sustained.
    pub window: Duration,
    /// Fewest round trips in the window to judge latency at all.
    pub min_samples: usize,
    /// A ping unanswered this long is a stall.
    pub stall_after: Duration,
}

/// Share of the window's round trips that must be over the limit, percent.
pub const OVER_PCT: usize = 80;

/// Why the client gave up on a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Breach {
    /// `over` of `samples` round trips in the window exceeded `limit_ms`; `median_ms` of them.
    Latency { median_ms: u64, limit_ms: u64, over: usize, samples: usize },
    /// A ping has waited `for_ms` without an answer.
    Stalled { for_ms: u64 },
}

impl std::fmt::Display for Breach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Breach::Latency { median_ms, limit_ms, over, samples } => {
                write!(f, "round trips over the SLA: {over} of {samples} above {limit_ms} ms (median {median_ms} ms)")
            }
            Breach::Stalled { for_ms } => write!(f, "the provider has not answered a ping for {for_ms} ms"),
        }
    }
}

impl SlaWatch {
    /// A watch for a provider promising `max_latency_ms`, with the market's
    /// `tolerance_ms`, for a client whose measured handshake to it took `handshake`.
    #[must_use]
    pub fn for_terms(
        max_latency_ms: u32,
        tolerance_ms: u32,
        handshake: Option<Duration>,
        window: Duration,
        stall_after: Duration,
    ) -> Self {
        let promised = Duration::from_millis(u64::from(max_latency_ms));
        let base = handshake.map_or(promised, |h| h.max(promised));
        Self { limit: base + Duration::from_millis(u64::from(tolerance_ms)), window, min_samples: 3, stall_after }
    }

    /// Judges a link started at `started` from its pings: `recent` (answered at, round trip),
    /// oldest first, and the ping still waiting since `unanswered_since`.
    #[must_use]
    pub fn judge(
        &self,
        started: Instant,
        recent: &[(Instant, Duration)],
        unanswered_since: Option<Instant>,
        now: Instant,
    ) -> Option<Breach> {
        if let Some(t) = unanswered_since {
            let waited = now.saturating_duration_since(t);
            if waited >= self.stall_after {
                return Some(Breach::Stalled { for_ms: ms(waited) });
            }
        }
        if now.saturating_duration_since(started) < self.window {
            return None;
        }
        let from = now.checked_sub(self.window).unwrap_or(started);
        let mut in_window: Vec<Duration> = recent.iter().filter(|(at, _)| *at >= from).map(|(_, rtt)| *rtt).collect();
        let samples = in_window.len();
        if samples < self.min_samples.max(1) {
            return None;
        }
        let over = in_window.iter().filter(|rtt| **rtt > self.limit).count();
        if over * 100 < samples * OVER_PCT {
            return None;
        }
        in_window.sort_unstable();
        Some(Breach::Latency { median_ms: ms(in_window[samples / 2]), limit_ms: ms(self.limit), over, samples })
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn watch() -> SlaWatch {
        SlaWatch::for_terms(50, 20, Some(Duration::from_millis(2)), 10 * S, 3 * S)
    }

    /// One ping a second from `t0`, with round trips `rtts` (ms).
    fn pings(t0: Instant, rtts: &[u64]) -> Vec<(Instant, Duration)> {
        (1u32..).zip(rtts).map(|(i, r)| (t0 + S * i, Duration::from_millis(*r))).collect()
    }

    #[test]
    fn limit_is_the_promise_or_the_measured_distance_plus_tolerance() {
        assert_eq!(watch().limit, Duration::from_millis(70));
        let far = SlaWatch::for_terms(50, 20, Some(Duration::from_millis(120)), 10 * S, 3 * S);
        assert_eq!(far.limit, Duration::from_millis(140));
        assert_eq!(SlaWatch::for_terms(50, 20, None, 10 * S, 3 * S).limit, Duration::from_millis(70));
    }

    #[test]
    fn sustained_slow_round_trips_are_a_breach_once_the_window_has_passed() {
        let t0 = Instant::now();
        let slow = pings(t0, &[300; 12]);
        let w = watch();
        assert_eq!(w.judge(t0, &slow[..9], None, t0 + 9 * S), None, "window not yet passed");
        let b = w.judge(t0, &slow, None, t0 + 12 * S);
        assert_eq!(b, Some(Breach::Latency { median_ms: 300, limit_ms: 70, over: 11, samples: 11 }));
    }

    #[test]
    fn a_few_spikes_or_a_healthy_link_are_not() {
        let t0 = Instant::now();
        let w = watch();
        let mut rtts = [5u64; 12];
        rtts[3] = 400;
        rtts[7] = 400;
        rtts[10] = 400;
        assert_eq!(w.judge(t0, &pings(t0, &rtts), None, t0 + 12 * S), None);
        // 70 ms exactly is within the limit.
        assert_eq!(w.judge(t0, &pings(t0, &[70; 12]), None, t0 + 12 * S), None);
        // Slow long ago, healthy in the window: fine.
        let mut old_then_good = vec![300u64; 10];
        old_then_good.extend([5u64; 10]);
        assert_eq!(w.judge(t0, &pings(t0, &old_then_good), None, t0 + 20 * S), None);
    }

    #[test]
    fn too_few_samples_judge_nothing() {
        let t0 = Instant::now();
        let two = vec![(t0 + 11 * S, Duration::from_secs(1)), (t0 + 12 * S, Duration::from_secs(1))];
        assert_eq!(watch().judge(t0, &two, None, t0 + 12 * S), None);
    }

    #[test]
    fn an_unanswered_ping_is_a_stall_after_the_deadline_even_early() {
        let t0 = Instant::now();
        let w = watch();
        let sent = t0 + S;
        assert_eq!(w.judge(t0, &[], Some(sent), t0 + 3 * S), None);
        assert_eq!(w.judge(t0, &[], Some(sent), t0 + 4 * S), Some(Breach::Stalled { for_ms: 3000 }));
    }
}
