//! The client's own SLA watch: a pure judgement over the round trips of its control-stream
//! pings (time passed in). Oracles decide slashing; this only decides when the client stops
//! waiting and moves to the next provider.
//!
//! - **Latency**: over the last `window`, at least `min_samples` round trips and at least 80 %
//!   of them above the limit. Round trips during which the client's own downloads moved more
//!   than 64 KiB are left out: they time the client's queue behind its own data, not the provider. The limit is the provider's promised latency, or the handshake
//!   round trip this client measured to it if that is longer (the provider cannot be blamed for
//!   the distance to the client), plus the market's latency tolerance. The window must have
//!   passed since the link started: a few slow pings at connect time are not a breach.
//! - **Stall**: a ping unanswered, and no payload byte received, for `stall_after` while the
//!   tunnel is nominally up (a provider that hangs, or a path that black-holes packets, never
//!   resets the connection; a busy one keeps delivering data even if its pong is queued).

use std::time::{Duration, Instant};

use serde::Serialize;
use wirepact_tunnel::control::PingSample;

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

    /// Judges a link started at `started` from its pings: `recent` answered ones, oldest
    /// first, the ping still waiting since `unanswered_since`, and the last payload byte
    /// received at `last_received`.
    #[must_use]
    pub fn judge(
        &self,
        started: Instant,
        recent: &[PingSample],
        unanswered_since: Option<Instant>,
        last_received: Option<Instant>,
        now: Instant,
    ) -> Option<Breach> {
        if let Some(t) = unanswered_since {
            let waited = now.saturating_duration_since(t);
            let quiet = now.saturating_duration_since(last_received.unwrap_or(started).max(started));
            let stalled = waited.min(quiet);
            if stalled >= self.stall_after {
                return Some(Breach::Stalled { for_ms: ms(stalled) });
            }
        }
        if now.saturating_duration_since(started) < self.window {
            return None;
        }
        let from = now.checked_sub(self.window).unwrap_or(started);
        let mut in_window: Vec<Duration> = recent.iter().filter(|p| p.at >= from && !p.loaded).map(|p| p.rtt).collect();
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

    /// One ping a second from `t0`, with round trips `rtts` (ms), none loaded.
    fn pings(t0: Instant, rtts: &[u64]) -> Vec<PingSample> {
        (1u32..)
            .zip(rtts)
            .map(|(i, r)| PingSample { at: t0 + S * i, rtt: Duration::from_millis(*r), loaded: false })
            .collect()
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
        assert_eq!(w.judge(t0, &slow[..9], None, None, t0 + 9 * S), None, "window not yet passed");
        let b = w.judge(t0, &slow, None, None, t0 + 12 * S);
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
        assert_eq!(w.judge(t0, &pings(t0, &rtts), None, None, t0 + 12 * S), None);
        // 70 ms exactly is within the limit.
        assert_eq!(w.judge(t0, &pings(t0, &[70; 12]), None, None, t0 + 12 * S), None);
        // Slow long ago, healthy in the window: fine.
        let mut old_then_good = vec![300u64; 10];
        old_then_good.extend([5u64; 10]);
        assert_eq!(w.judge(t0, &pings(t0, &old_then_good), None, None, t0 + 20 * S), None);
    }

    #[test]
    fn too_few_samples_judge_nothing() {
        let t0 = Instant::now();
        let two = pings(t0 + 10 * S, &[1000, 1000]);
        assert_eq!(watch().judge(t0, &two, None, None, t0 + 12 * S), None);
    }

    #[test]
    fn an_unanswered_ping_is_a_stall_after_the_deadline_even_early() {
        let t0 = Instant::now();
        let w = watch();
        let sent = t0 + S;
        assert_eq!(w.judge(t0, &[], Some(sent), None, t0 + 3 * S), None);
        assert_eq!(w.judge(t0, &[], Some(sent), None, t0 + 4 * S), Some(Breach::Stalled { for_ms: 3000 }));
        // Data still arriving: a busy provider whose pong is queued is not stalled ...
        assert_eq!(w.judge(t0, &[], Some(sent), Some(t0 + 5 * S), t0 + 6 * S), None);
        // ... until the data stops too.
        assert_eq!(w.judge(t0, &[], Some(sent), Some(t0 + 5 * S), t0 + 8 * S), Some(Breach::Stalled { for_ms: 3000 }));
    }

    #[test]
    fn round_trips_behind_the_clients_own_downloads_are_not_judged() {
        let t0 = Instant::now();
        let loaded: Vec<PingSample> =
            pings(t0, &[400; 12]).into_iter().map(|p| PingSample { loaded: true, ..p }).collect();
        assert_eq!(watch().judge(t0, &loaded, None, None, t0 + 12 * S), None);
        // Idle round trips in the same window still count.
        let mut mixed = loaded;
        for p in mixed.iter_mut().skip(6) {
            p.loaded = false;
        }
        assert!(matches!(watch().judge(t0, &mixed, None, None, t0 + 12 * S), Some(Breach::Latency { samples: 6, .. })));
    }
}
