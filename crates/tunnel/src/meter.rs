//! Sans-IO metering of one session: what may be forwarded, what must be receipted.

/// Default credit window: how far the provider forwards beyond the last receipt.
pub const DEFAULT_WINDOW: u64 = 8 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MeterError {
    /// A receipt that does not move forward (a replay or an older one).
    #[error("receipt for {cumulative} bytes does not exceed the last one ({last})")]
    NotNewer { cumulative: u64, last: u64 },
    /// A receipt whose timestamp does not increase.
    #[error("receipt timestamp {timestamp} is not after the last one ({last})")]
    Stale { timestamp: u64, last: u64 },
    /// A receipt for more bytes than were forwarded: a broken client; refuse, do not bill it.
    #[error("receipt for {cumulative} bytes exceeds the {forwarded} bytes forwarded")]
    Overclaim { cumulative: u64, forwarded: u64 },
    /// A credit grant that moves backwards.
    #[error("credit grant {credit_until} is below the previous one ({previous})")]
    GrantBackwards { credit_until: u64, previous: u64 },
    #[error("credit window must be at least 2 bytes")]
    BadWindow,
}

/// The provider's side.
#[derive(Debug, Clone)]
pub struct ProviderMeter {
    window: u64,
    /// Never forward beyond this cumulative count (what the session's deposit pays for).
    limit: u64,
    forwarded: u64,
    receipted: u64,
    last_receipt_ts: u64,
}

impl ProviderMeter {
    /// # Errors
    /// `BadWindow` for a window below 2 bytes.
    pub fn new(window: u64) -> Result<Self, MeterError> {
        if window < 2 {
            return Err(MeterError::BadWindow);
        }
        Ok(Self { window, limit: u64::MAX, forwarded: 0, receipted: 0, last_receipt_ts: 0 })
    }

    /// Caps forwarding at `limit` cumulative bytes in all, receipts or not: a session's
    /// deposit pays for `deposit * 2^30 / price` bytes and not one more.
    #[must_use]
    pub fn with_limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }

    /// Forwarding is allowed up to this many cumulative bytes.
    #[must_use]
    pub fn credit_until(&self) -> u64 {
        self.receipted.saturating_add(self.window).min(self.limit)
    }

    /// Bytes that may still be forwarded before the next receipt.
    #[must_use]
    pub fn allowance(&self) -> u64 {
        self.credit_until().saturating_sub(self.forwarded)
    }

    #[must_use]
    pub fn is_paused(&self) -> bool {
        self.allowance() == 0
    }

    /// Takes up to `n` bytes of allowance for forwarding; returns how many may go now.
    pub fn take(&mut self, n: u64) -> u64 {
        let k = n.min(self.allowance());
        self.forwarded += k;
        k
    }

    /// Forwarded bytes not yet covered by a receipt (at most one window).
    #[must_use]
    pub fn unreceipted(&self) -> u64 {
        self.forwarded - self.receipted
    }

    #[must_use]
    pub fn forwarded(&self) -> u64 {
        self.forwarded
    }

    /// The latest receipted cumulative byte count (what the provider can claim).
    #[must_use]
    pub fn receipted(&self) -> u64 {
        self.receipted
    }

    /// Accepts a receipt whose signature the caller has verified. Returns the new credit line
    /// to grant. The caller persists the receipt before acknowledging it.
    ///
    /// # Errors
    /// `NotNewer`, `Stale` or `Overclaim`; the meter is unchanged.
    pub fn on_receipt(&mut self, cumulative: u64, timestamp: u64) -> Result<u64, MeterError> {
        self.check_receipt(cumulative, timestamp)?;
        self.receipted = cumulative;
        self.last_receipt_ts = timestamp;
        Ok(self.credit_until())
    }

    /// Whether `on_receipt` would accept this receipt (the caller persists it in between).
    ///
    /// # Errors
    /// As `on_receipt`.
    pub fn check_receipt(&self, cumulative: u64, timestamp: u64) -> Result<(), MeterError> {
        if cumulative <= self.receipted {
            return Err(MeterError::NotNewer { cumulative, last: self.receipted });
        }
        // Timestamps may repeat within a second (many receipts per second at speed); cumulative
        // bytes, strictly increasing, are what makes each receipt new.
        if timestamp < self.last_receipt_ts {
            return Err(MeterError::Stale { timestamp, last: self.last_receipt_ts });
        }
        if cumulative > self.forwarded {
            return Err(MeterError::Overclaim { cumulative, forwarded: self.forwarded });
        }
        Ok(())
    }
}

/// A receipt the client should sign now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptDue {
    pub cumulative: u64,
    pub timestamp: u64,
}

/// The client's side.
#[derive(Debug, Clone)]
pub struct ClientMeter {
    window: u64,
    counted: u64,
    signed: u64,
    last_ts: u64,
    credit_until: u64,
    unrequested: u64,
}

impl ClientMeter {
    /// # Errors
    /// `BadWindow` for a window below 2 bytes.
    pub fn new(window: u64) -> Result<Self, MeterError> {
        if window < 2 {
            return Err(MeterError::BadWindow);
        }
        Ok(Self { window, counted: 0, signed: 0, last_ts: 0, credit_until: window, unrequested: 0 })
    }

    /// Bytes sent or received on a stream this client opened: billable.
    pub fn on_requested(&mut self, n: u64) {
        self.counted = self.counted.saturating_add(n);
    }

    /// Whether half a window is counted but unsigned: a receipt is due without forcing.
    #[must_use]
    pub fn receipt_ready(&self) -> bool {
        self.counted - self.signed >= self.window / 2
    }

    /// Bytes the client never asked for (unknown stream): counted apart, never billed.
    pub fn on_unrequested(&mut self, n: u64) {
        self.unrequested = self.unrequested.saturating_add(n);
    }

    /// A receipt is due once half a window of requested bytes is unsigned (or `force`, at close).
    #[must_use]
    pub fn receipt_due(&self, now: u64, force: bool) -> Option<ReceiptDue> {
        let unsigned = self.counted - self.signed;
        if unsigned == 0 || (!force && unsigned < self.window / 2) {
            return None;
        }
        // Never backwards, and never ahead of the clock except the final (forced) receipt, which
        // moves one second past the previous one so the chain, which wants each claimed receipt
        // strictly newer than the last claimed, can always take it.
        let timestamp = if force { now.max(self.last_ts + 1) } else { now.max(self.last_ts) };
        Some(ReceiptDue { cumulative: self.counted, timestamp })
    }

    /// Records that `due` was signed and sent.
    ///
    /// # Errors
    /// `NotNewer`/`Stale` if `due` does not move forward, `Overclaim` if it exceeds what was counted.
    pub fn on_signed(&mut self, due: ReceiptDue) -> Result<(), MeterError> {
        if due.cumulative <= self.signed {
            return Err(MeterError::NotNewer { cumulative: due.cumulative, last: self.signed });
        }
        if due.timestamp < self.last_ts {
            return Err(MeterError::Stale { timestamp: due.timestamp, last: self.last_ts });
        }
        if due.cumulative > self.counted {
            return Err(MeterError::Overclaim { cumulative: due.cumulative, forwarded: self.counted });
        }
        self.signed = due.cumulative;
        self.last_ts = due.timestamp;
        Ok(())
    }

    /// A credit grant from the provider.
    ///
    /// # Errors
    /// `GrantBackwards` if it is below the previous one (a confused or hostile provider).
    pub fn on_grant(&mut self, credit_until: u64) -> Result<(), MeterError> {
        if credit_until < self.credit_until {
            return Err(MeterError::GrantBackwards { credit_until, previous: self.credit_until });
        }
        self.credit_until = credit_until;
        Ok(())
    }

    #[must_use]
    pub fn signed(&self) -> u64 {
        self.signed
    }

    #[must_use]
    pub fn counted(&self) -> u64 {
        self.counted
    }

    #[must_use]
    pub fn unrequested(&self) -> u64 {
        self.unrequested
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        /// The provider forwards up to n requested bytes (client counts what arrives).
        Forward(u64),
        /// The provider pushes n bytes on a stream the client never opened.
        Flood(u64),
        /// Time passes; the client signs if due and the provider processes the receipt.
        Tick(u64),
        /// A replay of the last receipt reaches the provider.
        Replay,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..3 << 20).prop_map(Op::Forward),
            (0u64..3 << 20).prop_map(Op::Flood),
            (0u64..5).prop_map(Op::Tick),
            Just(Op::Replay),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Neither side is ever owed more than one window; unrequested bytes are never billed.
        #[test]
        fn neither_side_owed_more_than_a_window(window in 2u64..(16 << 20), ops in proptest::collection::vec(op(), 1..200)) {
            let mut p = ProviderMeter::new(window).expect("window");
            let mut c = ClientMeter::new(window).expect("window");
            let mut now = 1_700_000_000u64;
            let mut last: Option<ReceiptDue> = None;
            let mut flooded = 0u64;
            for o in ops {
                match o {
                    Op::Forward(n) => {
                        let k = p.take(n);
                        c.on_requested(k);
                    }
                    Op::Flood(n) => {
                        let k = p.take(n);
                        c.on_unrequested(k);
                        flooded += k;
                    }
                    Op::Tick(dt) => {
                        now += dt;
                        if let Some(due) = c.receipt_due(now, false) {
                            c.on_signed(due).expect("client accepts its own receipt");
                            let grant = p.on_receipt(due.cumulative, due.timestamp).expect("provider accepts");
                            c.on_grant(grant).expect("grants move forward");
                            last = Some(due);
                        }
                    }
                    Op::Replay => {
                        if let Some(d) = last {
                            prop_assert!(p.on_receipt(d.cumulative, d.timestamp).is_err());
                        }
                    }
                }
                // The provider's exposure: forwarded but unreceipted, never above one window.
                prop_assert!(p.unreceipted() <= window);
                // The client never signs more than it asked for.
                prop_assert!(c.signed() <= c.counted());
                // What the provider can bill never includes flooded bytes.
                prop_assert!(p.receipted() <= p.forwarded() - flooded);
                prop_assert_eq!(c.unrequested(), flooded);
            }
        }
    }

    #[test]
    fn forwarding_stops_at_what_the_deposit_pays_for() {
        let mut p = ProviderMeter::new(100).expect("window").with_limit(250);
        assert_eq!(p.take(100), 100);
        assert_eq!(p.on_receipt(100, 1), Ok(200));
        assert_eq!(p.take(100), 100);
        assert_eq!(p.on_receipt(200, 2), Ok(250), "the grant stops at the limit");
        assert_eq!(p.take(100), 50);
        assert_eq!(p.on_receipt(250, 3), Ok(250));
        assert!(p.is_paused(), "paid in full: nothing more is forwarded");
        assert_eq!(p.take(1), 0);
    }

    #[test]
    fn provider_pauses_at_the_window_and_resumes_on_receipt() {
        let mut p = ProviderMeter::new(100).expect("window");
        assert_eq!(p.take(150), 100);
        assert!(p.is_paused());
        assert_eq!(p.take(1), 0);
        assert_eq!(p.on_receipt(60, 1), Ok(160));
        assert_eq!(p.take(100), 60);
        assert_eq!(p.on_receipt(60, 2), Err(MeterError::NotNewer { cumulative: 60, last: 60 }));
        assert_eq!(p.on_receipt(70, 0), Err(MeterError::Stale { timestamp: 0, last: 1 }));
        assert_eq!(p.on_receipt(70, 1), Ok(170), "the same second again is fine: bytes moved forward");
        assert_eq!(p.on_receipt(500, 3), Err(MeterError::Overclaim { cumulative: 500, forwarded: 160 }));
    }

    #[test]
    fn client_signs_every_half_window_with_increasing_timestamps() {
        let mut c = ClientMeter::new(100).expect("window");
        c.on_requested(49);
        assert_eq!(c.receipt_due(10, false), None);
        assert!(!c.receipt_ready(), "the session task is not woken below half a window");
        c.on_requested(1);
        assert!(c.receipt_ready());
        let d = c.receipt_due(10, false).expect("due");
        assert_eq!(d, ReceiptDue { cumulative: 50, timestamp: 10 });
        c.on_signed(d).expect("signed");
        assert!(!c.receipt_ready());
        c.on_requested(50);
        // same second: the timestamp stays with the clock; a forced (final) receipt moves past it
        assert_eq!(c.receipt_due(10, false), Some(ReceiptDue { cumulative: 100, timestamp: 10 }));
        assert_eq!(c.receipt_due(10, true), Some(ReceiptDue { cumulative: 100, timestamp: 11 }));
        c.on_unrequested(1_000_000);
        assert_eq!(c.receipt_due(12, false).map(|d| d.cumulative), Some(100));
        assert_eq!(c.on_grant(40), Err(MeterError::GrantBackwards { credit_until: 40, previous: 100 }));
        assert_eq!(ClientMeter::new(1).err(), Some(MeterError::BadWindow));
    }
}
