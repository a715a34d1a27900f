//! The chain's clock, as both sides of a session read it: receipts are dated, and judged, by
//! the chain's time, not by this machine's.

use std::sync::Arc;

/// Now on tokio's clock (paused in tests), as a std instant for the sans-IO cores.
pub(crate) fn instant_now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// A tokio sleep until a std instant from a sans-IO core's `poll_timeout`.
pub(crate) fn sleep_until(at: std::time::Instant) -> tokio::time::Sleep {
    tokio::time::sleep_until(tokio::time::Instant::from_std(at))
}

/// Clock differences below this are this machine's clock being right (a block is a few
/// seconds old when its receipt arrives); above it the local clock is off and is logged.
const CLOCK_OFF_WARN_SECS: u64 = 30;

/// A clock reading the chain's time: `opened_at` (a block's timestamp, just mined) plus the
/// time elapsed here since `local_then` (this machine's unix time when that block was seen).
/// Monotonic: a local clock stepped while connected does not move it.
pub fn chain_clock(opened_at: u64, local_then: u64) -> Arc<dyn Fn() -> u64 + Send + Sync> {
    let off = local_then.abs_diff(opened_at);
    if off > CLOCK_OFF_WARN_SECS {
        tracing::warn!(
            seconds = off,
            ahead = local_then > opened_at,
            "this machine's clock is off from the chain's; receipts are dated by the chain's clock"
        );
    }
    let start = std::time::Instant::now();
    // Never before the block (the chain refuses receipts dated before `openedAt`); the local
    // clock where it agrees with the chain, the block's time where it does not.
    let base = if off > CLOCK_OFF_WARN_SECS { opened_at } else { local_then.max(opened_at) };
    Arc::new(move || base + start.elapsed().as_secs())
}

/// The offset that makes [`unix_now_with`] read `target` now (a chain's clock, a test's).
#[must_use]
pub fn offset_to(target: u64) -> i64 {
    let local = unix_now_with(0);
    i64::try_from(i128::from(target) - i128::from(local)).unwrap_or(0)
}

/// Unix time now, shifted by `offset` seconds (the chain's clock minus this machine's).
#[must_use]
pub fn unix_now_with(offset: i64) -> u64 {
    let local = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    local.saturating_add_signed(offset)
}

#[cfg(test)]
mod clock_tests {
    use super::chain_clock;

    /// A client whose clock runs a day ahead signs on the chain's clock, not its own (its
    /// receipts were unclaimable and it rode free); one a little off is not second-guessed.
    #[test]
    fn receipts_are_dated_on_the_chains_clock() {
        let block = 1_700_000_000;
        assert_eq!(chain_clock(block, block + 86_400)(), block, "a day ahead: the block's time");
        assert_eq!(chain_clock(block, block - 86_400)(), block, "a day behind: the block's time");
        assert_eq!(chain_clock(block, block + 5)(), block + 5, "the block a few seconds old: the local clock");
        assert_eq!(chain_clock(block, block - 10)(), block, "never before the block");
    }
}
