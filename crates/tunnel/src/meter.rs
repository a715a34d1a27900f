//! Sans-IO metering of one session: what may be forwarded, what must be receipted.

/// Default credit window: how far the provider forwards beyond the last receipt.
pub const DEFAULT_WINDOW: u64 = 8 << 20;

/// How far ahead of the provider's clock a receipt may be dated. The market refuses receipts
/// more than 5 minutes ahead of the block's time; a provider taking one further ahead would
/// serve bytes it cannot claim until the client's clock is right, i.e. for free. One minute
/// leaves the rest of the chain's 5 for the provider's own clock error.
pub const MAX_RECEIPT_AHEAD_SECS: u64 = 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MeterError {
    /// A receipt that does not move forward (a replay or an older one).
    #[error("receipt for {cumulative} bytes does not exceed the last one ({last})")]
    NotNewer { cumulative: u64, last: u64 },
    /// A receipt whose timestamp does not increase.
    #[error("receipt timestamp {timestamp} is not after the last one ({last})")]
    Stale { timestamp: u64, last: u64 },
    /// The client signing for more bytes than it counted: a bug on the client's own side.
    #[error("receipt for {cumulative} bytes exceeds the {forwarded} bytes counted")]
    Overclaim { cumulative: u64, forwarded: u64 },
    /// Dated further ahead than the chain will take: serving against it would be serving free.
    #[error("receipt dated {timestamp}, more than {MAX_RECEIPT_AHEAD_SECS} s after this provider's clock ({now}): the client's clock is wrong")]
    FromFuture { timestamp: u64, now: u64 },
    /// Dated before the session was opened on chain: the chain refuses to pay it.
    #[error("receipt dated {timestamp}, before the session was opened ({opened_at}): the client's clock is wrong")]
    BeforeOpen { timestamp: u64, opened_at: u64 },
    /// A credit grant that moves backwards.
    #[error("credit grant {credit_until} is below the previous one ({previous})")]
    GrantBackwards { credit_until: u64, previous: u64 },
    #[error("credit window must be at least 2 bytes")]
    BadWindow,
}

/// The provider's side.
///
/// Both directions share one count. Downloads are counted by the provider as it forwards
/// them and by the client as they arrive; uploads are counted by the client as it sends them
/// and by the provider as it forwards them to the origin. Upload bytes in flight (sent by the
/// client, not yet forwarded here) are therefore in the client's receipts before they are in
/// `forwarded`: a receipt above `forwarded` is a prepayment for them and is taken, never
/// refused — refusing it would withhold the credit those very bytes wait for, and the session
/// would stop for good. The client bounds its prepayment itself: it sends upload bytes only
/// within the credit granted ([`ClientMeter::upload_allowance`]), so its receipts keep pace.
/// (What the provider does with upload bytes it has read cannot be checked by the client in
/// any design; what it pays for is what it handed to the tunnel.)
#[derive(Debug, Clone)]
pub struct ProviderMeter {
    window: u64,
    /// Never forward beyond this cumulative count (what the session's deposit pays for).
    limit: u64,
    forwarded: u64,
    receipted: u64,
    last_receipt_ts: u64,
    /// The session's `openedAt` on chain: receipts dated before it cannot be claimed.
    opened_at: u64,
}

impl ProviderMeter {
    /// # Errors
    /// `BadWindow` for a window below 2 bytes.
    pub fn new(window: u64) -> Result<Self, MeterError> {
        if window < 2 {
            return Err(MeterError::BadWindow);
        }
        Ok(Self { window, limit: u64::MAX, forwarded: 0, receipted: 0, last_receipt_ts: 0, opened_at: 0 })
    }

    /// Refuses receipts dated before `opened_at` (the session's `openedAt` on chain).
    #[must_use]
    pub fn opened_at(mut self, opened_at: u64) -> Self {
        self.opened_at = opened_at;
        self
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
        self.forwarded.saturating_sub(self.receipted)
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

    /// Accepts a receipt whose signature the caller has verified, at unix time `now` (the
    /// provider's clock). Returns the new credit line to grant. The caller persists the receipt
    /// before acknowledging it.
    ///
    /// # Errors
    /// `NotNewer`, `Stale`, `FromFuture` or `BeforeOpen`; the meter is unchanged.
    pub fn on_receipt(&mut self, cumulative: u64, timestamp: u64, now: u64) -> Result<u64, MeterError> {
        self.check_receipt(cumulative, timestamp, now)?;
        self.receipted = cumulative;
        self.last_receipt_ts = timestamp;
        Ok(self.credit_until())
    }

    /// Whether `on_receipt` would accept this receipt (the caller persists it in between).
    ///
    /// # Errors
    /// As `on_receipt`.
    pub fn check_receipt(&self, cumulative: u64, timestamp: u64, now: u64) -> Result<(), MeterError> {
        if cumulative <= self.receipted {
            return Err(MeterError::NotNewer { cumulative, last: self.receipted });
        }
        // Timestamps may repeat within a second (many receipts per second at speed); cumulative
        // bytes, strictly increasing, are what makes each receipt new.
        if timestamp < self.last_receipt_ts {
            return Err(MeterError::Stale { timestamp, last: self.last_receipt_ts });
        }
        // What the chain would refuse to pay is refused here, before more is forwarded on it.
        if timestamp > now.saturating_add(MAX_RECEIPT_AHEAD_SECS) {
            return Err(MeterError::FromFuture { timestamp, now });
        }
        if timestamp < self.opened_at {
            return Err(MeterError::BeforeOpen { timestamp, opened_at: self.opened_at });
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

    /// Bytes received on a stream this client opened (the provider forwarded them within its
    /// credit): billable.
    pub fn on_requested(&mut self, n: u64) {
        self.counted = self.counted.saturating_add(n);
    }

    /// Upload bytes the client may still send before the next grant: the count stays within
    /// the credit granted, so a receipt never prepays more than the provider agreed to carry.
    #[must_use]
    pub fn upload_allowance(&self) -> u64 {
        self.credit_until.saturating_sub(self.counted)
    }

    /// Counts up to `n` upload bytes within [`Self::upload_allowance`]; returns how many may
    /// be sent now (0: wait for a grant).
    pub fn take_upload(&mut self, n: u64) -> u64 {
        let k = n.min(self.upload_allowance());
        self.counted += k;
        k
    }

    /// The credit line granted so far.
    #[must_use]
    pub fn credit_until(&self) -> u64 {
        self.credit_until
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
        /// The app hands the client n upload bytes; it sends what its credit allows.
        Send(u64),
        /// The provider reads up to n upload bytes off the tunnel (not yet forwarded).
        ReadUp(u64),
        /// The provider forwards the upload bytes it holds to the origin, as credit allows.
        ForwardUp,
        /// The origin has n bytes for the client; the provider forwards what credit allows.
        Down(u64),
        /// The client reads up to n download bytes off the tunnel.
        ReadDown(u64),
        /// The provider pushes n bytes on a stream the client never opened.
        Flood(u64),
        /// Time passes; the client signs if a receipt is due (forced: a quiet second).
        Tick(u64, bool),
        /// The provider reads the next receipt off the control stream.
        ReadReceipt,
        /// The client reads the next grant off the control stream.
        ReadGrant,
        /// A replay of the last receipt reaches the provider.
        Replay,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u64..3 << 20).prop_map(Op::Send),
            (0u64..3 << 20).prop_map(Op::ReadUp),
            Just(Op::ForwardUp),
            (0u64..3 << 20).prop_map(Op::Down),
            (0u64..3 << 20).prop_map(Op::ReadDown),
            (0u64..1 << 20).prop_map(Op::Flood),
            (0u64..1 << 20).prop_map(|_| Op::ForwardUp),
            ((0u64..3), any::<bool>()).prop_map(|(dt, f)| Op::Tick(dt, f)),
            Just(Op::ReadReceipt),
            Just(Op::ReadGrant),
            Just(Op::Replay),
        ]
    }

    /// Both ends of one session with the tunnel between them: bytes and control frames in
    /// flight in each direction, every interleaving of reads, forwards, receipts and grants.
    struct Model {
        p: ProviderMeter,
        c: ClientMeter,
        now: u64,
        /// Upload bytes sent by the client, not yet read by the provider.
        up_flight: u64,
        /// Upload bytes the provider read and has not forwarded yet (waiting for credit).
        up_held: u64,
        /// Download bytes forwarded by the provider, not yet read by the client.
        down_flight: u64,
        /// Flooded bytes in flight (the client's side drops them, counted apart).
        flood_flight: u64,
        flooded: u64,
        receipts: std::collections::VecDeque<ReceiptDue>,
        grants: std::collections::VecDeque<u64>,
        last: Option<ReceiptDue>,
    }

    impl Model {
        fn new(p_window: u64, c_window: u64) -> Self {
            Self {
                p: ProviderMeter::new(p_window).expect("window").opened_at(1_700_000_000),
                c: ClientMeter::new(c_window).expect("window"),
                now: 1_700_000_000,
                up_flight: 0,
                up_held: 0,
                down_flight: 0,
                flood_flight: 0,
                flooded: 0,
                receipts: std::collections::VecDeque::new(),
                grants: std::collections::VecDeque::new(),
                last: None,
            }
        }

        fn step(&mut self, o: &Op) -> Result<(), TestCaseError> {
            match *o {
                Op::Send(n) => self.up_flight += self.c.take_upload(n),
                Op::ReadUp(n) => {
                    let k = n.min(self.up_flight);
                    self.up_flight -= k;
                    self.up_held += k;
                }
                Op::ForwardUp => self.up_held -= self.p.take(self.up_held),
                Op::Down(n) => self.down_flight += self.p.take(n),
                Op::ReadDown(n) => {
                    let k = n.min(self.down_flight);
                    self.down_flight -= k;
                    self.c.on_requested(k);
                    let f = self.flood_flight;
                    self.flood_flight = 0;
                    self.c.on_unrequested(f);
                }
                Op::Flood(n) => {
                    let k = self.p.take(n);
                    self.flood_flight += k;
                    self.flooded += k;
                }
                Op::Tick(dt, force) => {
                    self.now += dt;
                    if let Some(due) = self.c.receipt_due(self.now, force) {
                        self.c.on_signed(due).expect("the client accepts its own receipt");
                        self.receipts.push_back(due);
                    }
                }
                Op::ReadReceipt => {
                    if let Some(due) = self.receipts.pop_front() {
                        // An honest client's receipt is never refused, whatever is in flight.
                        let grant = self.p.on_receipt(due.cumulative, due.timestamp, self.now);
                        prop_assert!(grant.is_ok(), "honest receipt refused: {:?}", grant);
                        self.grants.push_back(grant.unwrap_or_default());
                        self.last = Some(due);
                    }
                }
                Op::ReadGrant => {
                    if let Some(g) = self.grants.pop_front() {
                        self.c.on_grant(g).expect("grants move forward");
                    }
                }
                Op::Replay => {
                    if let Some(d) = self.last {
                        prop_assert!(self.p.on_receipt(d.cumulative, d.timestamp, self.now).is_err());
                    }
                }
            }
            Ok(())
        }

        fn check(&self, p_window: u64) -> Result<(), TestCaseError> {
            // The provider's exposure: forwarded but unreceipted, never above its window.
            prop_assert!(self.p.unreceipted() <= p_window);
            // The client never signs more than it counted.
            prop_assert!(self.c.signed() <= self.c.counted());
            // What the provider can bill never includes flooded bytes.
            prop_assert!(
                self.c.counted() + self.down_flight + self.flooded
                    <= self.p.forwarded() + self.up_flight + self.up_held
            );
            Ok(())
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Neither side is ever owed more than a window, flooded bytes are never billed, an honest
        /// receipt is never refused — and the session never deadlocks: once the app stops, the
        /// tunnel drains, every held upload byte is forwarded and the provider has credit again.
        #[test]
        fn both_directions_never_deadlock_and_never_overpay(
            p_window in 2u64..(16 << 20),
            c_frac in 1u64..=4,
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let c_window = (p_window * c_frac / 4).max(2);
            let mut m = Model::new(p_window, c_window);
            for o in &ops {
                m.step(o)?;
                m.check(p_window)?;
            }
            // Drain: nothing new from the app or the origin; the peers keep reading and the
            // client's quiet-second receipt is forced. Bounded: each round either moves bytes
            // or the loop ends.
            for _ in 0..64 {
                let before = (m.up_flight, m.up_held, m.down_flight, m.p.forwarded(), m.c.signed(), m.receipts.len(), m.grants.len());
                for o in [Op::ReadUp(u64::MAX), Op::ForwardUp, Op::ReadDown(u64::MAX), Op::Tick(1, true), Op::ReadReceipt, Op::ReadGrant] {
                    m.step(&o)?;
                    m.check(p_window)?;
                }
                if before == (m.up_flight, m.up_held, m.down_flight, m.p.forwarded(), m.c.signed(), m.receipts.len(), m.grants.len()) {
                    break;
                }
            }
            prop_assert_eq!(m.c.unrequested(), m.flooded);
            prop_assert_eq!(m.c.signed(), m.c.counted(), "everything counted is receipted");
            // A provider that pushes bytes nobody asked for spends its own window on them; an
            // honest one never stalls.
            if m.flooded == 0 {
                prop_assert_eq!(m.up_flight + m.up_held + m.down_flight, 0, "bytes stuck in the tunnel");
                prop_assert!(m.p.allowance() > 0, "the provider has no credit left: the session is frozen");
                prop_assert!(m.c.upload_allowance() > 0, "the client may send nothing more: the session is frozen");
            }
        }
    }

    /// The finding: with the window spent on downloads, the client's receipt already counts
    /// upload bytes the provider holds waiting for credit. Refusing it as an overclaim froze
    /// the session for good; taking it as a prepayment releases them.
    #[test]
    fn a_receipt_covering_held_upload_bytes_is_taken_and_releases_them() {
        let mut p = ProviderMeter::new(100).expect("window");
        let mut c = ClientMeter::new(100).expect("window");
        // The client sends a 40-byte request (counted now); the provider reads it but the
        // window is spent on 100 download bytes first.
        assert_eq!(c.take_upload(40), 40);
        assert_eq!(p.take(100), 100);
        c.on_requested(100);
        assert_eq!(p.take(40), 0, "the request waits inside the provider");
        let due = c.receipt_due(10, false).expect("due");
        assert_eq!(due.cumulative, 140, "the receipt includes the held request");
        c.on_signed(due).expect("signed");
        let grant = p.on_receipt(due.cumulative, due.timestamp, 10).expect("a prepayment is taken");
        assert_eq!(grant, 240);
        assert_eq!(p.take(40), 40, "the held request goes out");
        assert_eq!(p.unreceipted(), 0);
    }

    #[test]
    fn future_dated_and_pre_open_receipts_are_refused_before_anything_more_is_forwarded() {
        let mut p = ProviderMeter::new(100).expect("window").opened_at(1_000);
        assert_eq!(p.take(100), 100);
        let now = 2_000;
        // A client whose clock runs a day ahead.
        assert_eq!(p.on_receipt(100, now + 86_400, now), Err(MeterError::FromFuture { timestamp: now + 86_400, now }));
        assert_eq!(p.on_receipt(100, 999, now), Err(MeterError::BeforeOpen { timestamp: 999, opened_at: 1_000 }));
        assert_eq!(p.take(1), 0, "no credit was granted on either");
        assert_eq!(p.on_receipt(100, now + MAX_RECEIPT_AHEAD_SECS, now), Ok(200), "a minute ahead is fine");
    }

    #[test]
    fn the_client_sends_upload_only_within_its_credit() {
        let mut c = ClientMeter::new(100).expect("window");
        assert_eq!(c.take_upload(150), 100);
        assert_eq!(c.take_upload(1), 0, "wait for a grant");
        c.on_grant(180).expect("grant");
        assert_eq!(c.upload_allowance(), 80);
    }

    #[test]
    fn forwarding_stops_at_what_the_deposit_pays_for() {
        let mut p = ProviderMeter::new(100).expect("window").with_limit(250);
        assert_eq!(p.take(100), 100);
        assert_eq!(p.on_receipt(100, 1, 1), Ok(200));
        assert_eq!(p.take(100), 100);
        assert_eq!(p.on_receipt(200, 2, 2), Ok(250), "the grant stops at the limit");
        assert_eq!(p.take(100), 50);
        assert_eq!(p.on_receipt(250, 3, 3), Ok(250));
        assert!(p.is_paused(), "paid in full: nothing more is forwarded");
        assert_eq!(p.take(1), 0);
    }

    #[test]
    fn provider_pauses_at_the_window_and_resumes_on_receipt() {
        let mut p = ProviderMeter::new(100).expect("window");
        assert_eq!(p.take(150), 100);
        assert!(p.is_paused());
        assert_eq!(p.take(1), 0);
        assert_eq!(p.on_receipt(60, 1, 1), Ok(160));
        assert_eq!(p.take(100), 60);
        assert_eq!(p.on_receipt(60, 2, 2), Err(MeterError::NotNewer { cumulative: 60, last: 60 }));
        assert_eq!(p.on_receipt(70, 0, 2), Err(MeterError::Stale { timestamp: 0, last: 1 }));
        assert_eq!(p.on_receipt(70, 1, 2), Ok(170), "the same second again is fine: bytes moved forward");
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
