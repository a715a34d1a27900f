//! The session's control logic, sans-IO: receipts, acknowledgements, credit grants and pings.
//!
//! [`ProviderControl`] and [`ClientControl`] take the control frames that arrive, the bytes
//! counted and the time (`now` for timers, `unix` for receipt dates), and say what to do: send
//! a frame, persist a receipt, wake the uploads waiting for credit. They read no socket and no
//! clock, so every rule here is tested with time passed in (and randomness from a seed). The
//! drivers in [`crate::session`] and [`crate::provider`] only move frames and sleep until
//! `poll_timeout`.
//!
//! **Shape on the wire.** An observer of record sizes and timing should not find a metronome:
//! pings go at jittered intervals (uniform between half and one and a half [`PING_EVERY`]),
//! and every batch of control frames either side sends ends with a [`Frame::Padding`] of a
//! random length in [`PAD_BYTES`], so pings, pongs, receipts and grants have no fixed sizes.
//! (The drivers write a batch in one write: one record.) The provider ends a session whose
//! client has sent nothing on its control stream for [`CONTROL_SILENCE`], which is how a
//! client that vanished is noticed, without the TCP keepalive cadence that would mark the
//! connection.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wirepact_proto::frames::ERR_BAD_RECEIPT;
use wirepact_proto::{recover_receipt, sign_receipt, Frame, Receipt};

use crate::meter::{ClientMeter, MeterError, ProviderMeter, ReceiptDue};

/// How often, on average, the client pings the provider on the control stream (each interval
/// is drawn between half and one and a half of it).
pub const PING_EVERY: Duration = Duration::from_secs(1);
/// Lengths of the padding that ends each batch of control frames.
pub const PAD_BYTES: std::ops::Range<u16> = 24..480;
/// A client silent this long on its control stream is gone: the provider ends its session
/// (the client pings at least every 1.5 s).
pub const CONTROL_SILENCE: Duration = Duration::from_secs(15);
/// Round trips the client remembers.
const PING_HISTORY: usize = 64;
/// After this long without new bytes counted, the client signs a receipt for whatever is
/// unsigned, even below half a window (so a quiet session is paid up to its last byte).
pub const QUIET_RECEIPT: Duration = Duration::from_secs(1);

/// Bytes received from the provider while a ping was in flight above which its round trip
/// measured the client's own queue more than the provider: such a sample is marked `loaded`.
pub const LOADED_BYTES: u64 = 64 * 1024;

/// A receipt the provider must make durable before it acknowledges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptToStore {
    pub cumulative: u64,
    pub timestamp: u64,
    pub signature: [u8; 65],
}

/// What the provider does with one control frame from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderStep {
    /// Send these frames back (one write): a pong (held back by the latency test knob, as data
    /// is), or an error saying why a frame was refused (the session goes on); padded.
    Reply(Vec<Frame>),
    /// Persist this receipt durably, then call [`ProviderControl::persisted`].
    Persist(ReceiptToStore),
}

/// The provider's side of a session's control: the meter of what it forwarded, and what it
/// answers to the client's receipts and pings.
#[derive(Debug)]
pub struct ProviderControl {
    domain: Eip712Domain,
    session_id: B256,
    session_key: Address,
    meter: ProviderMeter,
    rng: StdRng,
    /// When the client last sent anything on its control stream.
    last_heard: Instant,
}

impl ProviderControl {
    /// A session's control from `now`; `seed` draws the padding.
    #[must_use]
    pub fn new(
        domain: Eip712Domain,
        session_id: B256,
        session_key: Address,
        meter: ProviderMeter,
        now: Instant,
        seed: u64,
    ) -> Self {
        Self { domain, session_id, session_key, meter, rng: StdRng::seed_from_u64(seed), last_heard: now }
    }

    fn padded(&mut self, frames: impl IntoIterator<Item = Frame>) -> Vec<Frame> {
        let mut v: Vec<Frame> = frames.into_iter().collect();
        v.push(Frame::Padding { len: self.rng.random_range(PAD_BYTES) });
        v
    }

    /// A control frame from the client at `now`, the chain's time being `unix`.
    pub fn on_frame(&mut self, frame: Frame, unix: u64, now: Instant) -> ProviderStep {
        self.last_heard = self.last_heard.max(now);
        let (cumulative, timestamp, signature) = match frame {
            Frame::Ping { nonce } => return ProviderStep::Reply(self.padded([Frame::Pong { nonce }])),
            Frame::Padding { .. } => return ProviderStep::Reply(Vec::new()),
            Frame::Receipt { cumulative_bytes, timestamp, signature } => (cumulative_bytes, timestamp, signature),
            _ => {
                let e = Frame::error(ERR_BAD_RECEIPT, "expected a receipt or a ping");
                return ProviderStep::Reply(self.padded([e]));
            }
        };
        let r = Receipt { sessionId: self.session_id, cumulativeBytes: cumulative, timestamp };
        if let Err(e) = recover_receipt(&self.domain, &r, &signature, self.session_key) {
            tracing::warn!(error = %e, "badly signed receipt refused");
            return ProviderStep::Reply(self.padded([Frame::error(ERR_BAD_RECEIPT, "bad signature")]));
        }
        // Checked against the meter before it is persisted; committed only once it is.
        if let Err(e) = self.meter.check_receipt(cumulative, timestamp, unix) {
            tracing::warn!(error = %e, "receipt refused");
            return ProviderStep::Reply(self.padded([Frame::error(ERR_BAD_RECEIPT, &e.to_string())]));
        }
        ProviderStep::Persist(ReceiptToStore { cumulative, timestamp, signature })
    }

    /// `r` is durable: commits it and returns what to send, in this order: the
    /// acknowledgement, the new credit grant, padding.
    ///
    /// # Errors
    /// The receipt no longer moves the meter forward (another was committed meanwhile).
    pub fn persisted(&mut self, r: &ReceiptToStore, unix: u64) -> Result<Vec<Frame>, MeterError> {
        let credit_until = self.meter.on_receipt(r.cumulative, r.timestamp, unix)?;
        Ok(self.padded([Frame::ReceiptAck { cumulative_bytes: r.cumulative }, Frame::CreditGrant { credit_until }]))
    }

    /// When the client's silence would end the session, unless it sends something first.
    #[must_use]
    pub fn poll_timeout(&self) -> Instant {
        self.last_heard + CONTROL_SILENCE
    }

    /// The client has sent nothing for [`CONTROL_SILENCE`]: it is gone.
    #[must_use]
    pub fn is_silent(&self, now: Instant) -> bool {
        now >= self.poll_timeout()
    }

    /// Takes up to `n` bytes of credit to forward now (0: wait for a receipt).
    pub fn take(&mut self, n: u64) -> u64 {
        self.meter.take(n)
    }

    #[must_use]
    pub fn meter(&self) -> &ProviderMeter {
        &self.meter
    }
}

/// The client's pings: at most one in flight; the recent round trips, newest last.
#[derive(Debug, Default)]
struct PingLog {
    next_nonce: u64,
    /// (nonce, sent at, bytes received by then)
    in_flight: Option<(u64, Instant, u64)>,
    recent: VecDeque<PingSample>,
}

impl PingLog {
    /// A nonce to send now, unless a ping is still unanswered.
    fn start(&mut self, now: Instant, received: u64) -> Option<u64> {
        if self.in_flight.is_some() {
            return None;
        }
        self.next_nonce += 1;
        self.in_flight = Some((self.next_nonce, now, received));
        Some(self.next_nonce)
    }

    fn on_pong(&mut self, nonce: u64, now: Instant, received: u64) {
        let Some((n, sent, rx)) = self.in_flight else { return };
        if n != nonce {
            return;
        }
        self.in_flight = None;
        if self.recent.len() == PING_HISTORY {
            self.recent.pop_front();
        }
        self.recent.push_back(PingSample {
            at: now,
            rtt: now.saturating_duration_since(sent),
            loaded: received.saturating_sub(rx) > LOADED_BYTES,
        });
    }
}

/// One answered ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingSample {
    /// When the answer came.
    pub at: Instant,
    /// The round trip.
    pub rtt: Duration,
    /// More than [`LOADED_BYTES`] of the client's own downloads came in meanwhile: the round
    /// trip includes the client's queue, not only the provider's.
    pub loaded: bool,
}

/// What the client's pings saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyView {
    /// Answered pings, oldest first, at most 64.
    pub recent: Vec<PingSample>,
    /// When the ping still waiting for its answer was sent.
    pub unanswered_since: Option<Instant>,
    /// When the provider last delivered payload bytes to this client.
    pub last_received: Option<Instant>,
}

/// What a control frame from the provider changed for the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEvent {
    /// More credit: uploads waiting for it may go on.
    Granted,
    /// The provider persisted receipts up to this count.
    Acked(u64),
    /// Nothing anyone waits on (a pong, padding, an error the provider reported, a frame out
    /// of place).
    None,
}

/// The client's side of a session's control: its meter, the receipts it signs, the pings that
/// time the provider, and what the provider acknowledged.
#[derive(Debug)]
pub struct ClientControl {
    key: PrivateKeySigner,
    domain: Eip712Domain,
    session_id: B256,
    meter: ClientMeter,
    pings: PingLog,
    next_ping: Instant,
    acked: u64,
    /// Downstream payload bytes so far, and when the last arrived.
    received: u64,
    last_received: Option<Instant>,
    /// When bytes were last counted (either direction).
    last_count: Option<Instant>,
    rng: StdRng,
    /// A ping or receipt went out: the batch ends with padding.
    pad_pending: bool,
}

impl ClientControl {
    /// A session's control starting at `now` (its first ping is due at once); `seed` draws the
    /// ping intervals and the padding.
    ///
    /// # Errors
    /// `BadWindow` for a window below 2 bytes.
    pub fn new(
        key: PrivateKeySigner,
        domain: Eip712Domain,
        session_id: B256,
        window: u64,
        now: Instant,
        seed: u64,
    ) -> Result<Self, MeterError> {
        Ok(Self {
            key,
            domain,
            session_id,
            meter: ClientMeter::new(window)?,
            pings: PingLog::default(),
            next_ping: now,
            acked: 0,
            received: 0,
            last_received: None,
            last_count: None,
            rng: StdRng::seed_from_u64(seed),
            pad_pending: false,
        })
    }

    /// Counts up to `n` upload bytes within the credit granted; returns how many may be sent
    /// now (0: wait for a grant, after the receipt [`Self::poll_transmit`] then has due).
    pub fn take_upload(&mut self, n: u64, now: Instant) -> u64 {
        let k = self.meter.take_upload(n);
        if k > 0 {
            self.last_count = Some(now);
        }
        k
    }

    /// `n` payload bytes arrived from the provider on a stream this client opened: counted
    /// for the next receipt and timed for the SLA watch.
    pub fn on_received(&mut self, n: u64, now: Instant) {
        self.meter.on_requested(n);
        self.received = self.received.saturating_add(n);
        self.last_received = Some(now);
        self.last_count = Some(now);
    }

    /// Counts `n` billable bytes that are not downstream payload (a probe's own accounting).
    pub fn count(&mut self, n: u64, now: Instant) {
        self.meter.on_requested(n);
        self.last_count = Some(now);
    }

    /// Whether half a window is unsigned: the driver should call [`Self::poll_transmit`] now
    /// rather than at [`Self::poll_timeout`].
    #[must_use]
    pub fn receipt_ready(&self) -> bool {
        self.meter.receipt_ready()
    }

    /// A control frame from the provider, arriving at `now`.
    pub fn on_frame(&mut self, frame: Frame, now: Instant) -> ClientEvent {
        match frame {
            Frame::CreditGrant { credit_until } => {
                if let Err(e) = self.meter.on_grant(credit_until) {
                    tracing::warn!(error = %e, "provider sent a backwards grant");
                    return ClientEvent::None;
                }
                ClientEvent::Granted
            }
            Frame::ReceiptAck { cumulative_bytes } => {
                // Never past what was signed: an ack for more is the provider's mistake.
                let acked = cumulative_bytes.min(self.meter.signed());
                if acked > self.acked {
                    self.acked = acked;
                    return ClientEvent::Acked(acked);
                }
                ClientEvent::None
            }
            Frame::Pong { nonce } => {
                self.pings.on_pong(nonce, now, self.received);
                ClientEvent::None
            }
            Frame::Padding { .. } => ClientEvent::None,
            Frame::Error { code, message } => {
                tracing::warn!(code, %message, "provider reported an error");
                ClientEvent::None
            }
            _ => {
                tracing::warn!("unexpected control frame from the provider");
                ClientEvent::None
            }
        }
    }

    /// The next frame to send at `now` (the chain's time `unix`), if any: a ping when one is
    /// due and none is in flight; a receipt when half a window is unsigned, or when bytes are
    /// unsigned and none were counted for [`QUIET_RECEIPT`]; then padding to end the batch.
    /// Call until it returns `None`, and send the batch in one write.
    pub fn poll_transmit(&mut self, now: Instant, unix: u64) -> Option<Frame> {
        if now >= self.next_ping {
            // Jittered: half to one and a half of the mean interval.
            let ms = u64::try_from(PING_EVERY.as_millis()).unwrap_or(1000);
            self.next_ping = now + Duration::from_millis(self.rng.random_range(ms / 2..ms + ms / 2));
            if let Some(nonce) = self.pings.start(now, self.received) {
                self.pad_pending = true;
                return Some(Frame::Ping { nonce });
            }
        }
        let quiet = self.last_count.is_none_or(|t| now.saturating_duration_since(t) >= QUIET_RECEIPT);
        if let Some(receipt) = self.meter.receipt_due(unix, quiet).and_then(|due| self.sign(due)) {
            self.pad_pending = true;
            return Some(receipt);
        }
        if std::mem::take(&mut self.pad_pending) {
            return Some(Frame::Padding { len: self.rng.random_range(PAD_BYTES) });
        }
        None
    }

    fn sign(&mut self, due: ReceiptDue) -> Option<Frame> {
        let r = Receipt { sessionId: self.session_id, cumulativeBytes: due.cumulative, timestamp: due.timestamp };
        let sig = match sign_receipt(&self.key, &self.domain, &r) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "could not sign a receipt");
                return None;
            }
        };
        let mut signature = [0u8; 65];
        signature.copy_from_slice(&sig);
        // `due` came from the meter just now: it moves forward by construction.
        self.meter.on_signed(due).ok()?;
        Some(Frame::Receipt { cumulative_bytes: due.cumulative, timestamp: due.timestamp, signature })
    }

    /// When [`Self::poll_transmit`] next has something to send unless bytes are counted first:
    /// the next ping, or the quiet receipt for bytes still unsigned.
    #[must_use]
    pub fn poll_timeout(&self) -> Instant {
        let unsigned = self.meter.counted() > self.meter.signed();
        // Every count sets `last_count`, so unsigned bytes always have one.
        match (unsigned, self.last_count) {
            (true, Some(t)) => self.next_ping.min(t + QUIET_RECEIPT),
            _ => self.next_ping,
        }
    }

    /// The pings' round trips, the one in flight, and when bytes last came.
    #[must_use]
    pub fn latency(&self) -> LatencyView {
        LatencyView {
            recent: self.pings.recent.iter().copied().collect(),
            unanswered_since: self.pings.in_flight.map(|(_, t, _)| t),
            last_received: self.last_received,
        }
    }

    /// The highest cumulative count the provider acknowledged (persisted).
    #[must_use]
    pub fn acknowledged(&self) -> u64 {
        self.acked
    }

    /// Bytes counted so far.
    #[must_use]
    pub fn counted(&self) -> u64 {
        self.meter.counted()
    }

    /// Bytes signed for so far.
    #[must_use]
    pub fn signed(&self) -> u64 {
        self.meter.signed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wirepact_proto::domain;

    const WINDOW: u64 = 1 << 20;
    const T0: u64 = 1_700_000_000;

    struct Pair {
        client: ClientControl,
        provider: ProviderControl,
        t0: Instant,
    }

    fn pair_seeded(seed: u64) -> Pair {
        let d = domain(31337, Address::repeat_byte(1));
        let key = PrivateKeySigner::random();
        let id = B256::repeat_byte(7);
        let t0 = Instant::now();
        let meter = ProviderMeter::new(WINDOW).expect("window").opened_at(T0);
        Pair {
            provider: ProviderControl::new(d.clone(), id, key.address(), meter, t0, seed),
            client: ClientControl::new(key, d, id, WINDOW, t0, seed).expect("window"),
            t0,
        }
    }

    fn pair() -> Pair {
        pair_seeded(7)
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    /// Everything the client has to send at `now`, padding included.
    fn batch(c: &mut ClientControl, now: Instant, unix: u64) -> Vec<Frame> {
        std::iter::from_fn(|| c.poll_transmit(now, unix)).take(16).collect()
    }

    /// The frames that mean something in the batch at `now` (padding left out).
    fn drain(c: &mut ClientControl, now: Instant, unix: u64) -> Vec<Frame> {
        batch(c, now, unix).into_iter().filter(|f| !matches!(f, Frame::Padding { .. })).collect()
    }

    fn no_padding(frames: Vec<Frame>) -> Vec<Frame> {
        frames.into_iter().filter(|f| !matches!(f, Frame::Padding { .. })).collect()
    }

    /// Pings go about once a second, never two in flight, and each answered one records the
    /// round trip to the millisecond: a provider that holds pongs back 150 ms shows 150 ms.
    #[test]
    fn pings_time_the_round_trip_one_at_a_time() {
        let Pair { mut client, t0, .. } = pair();
        assert_eq!(drain(&mut client, t0, T0), vec![Frame::Ping { nonce: 1 }], "the first ping goes at once");
        let next = client.poll_timeout();
        assert!(next >= ms(t0, 500) && next < ms(t0, 1500), "the next one within half to 1.5 s");
        assert_eq!(drain(&mut client, next, T0 + 1), vec![], "not while one is unanswered");
        assert_eq!(client.latency().unanswered_since, Some(t0), "the unanswered ping is visible to the SLA watch");
        client.on_frame(Frame::Pong { nonce: 1 }, ms(t0, 1150));
        let seen = client.latency();
        assert_eq!(seen.recent.len(), 1);
        assert_eq!(seen.recent[0].rtt, Duration::from_millis(1150));
        assert_eq!(seen.unanswered_since, None);
        let at = client.poll_timeout();
        assert_eq!(drain(&mut client, at, T0 + 2), vec![Frame::Ping { nonce: 2 }]);
        client.on_frame(Frame::Pong { nonce: 2 }, at + Duration::from_millis(150));
        assert_eq!(client.latency().recent[1].rtt, Duration::from_millis(150), "the provider's 150 ms");
        // A pong for another nonce (late, forged) times nothing.
        let at = client.poll_timeout();
        drain(&mut client, at, T0 + 3);
        client.on_frame(Frame::Pong { nonce: 99 }, at + Duration::from_millis(1));
        assert_eq!(client.latency().recent.len(), 2);
        assert_eq!(client.latency().unanswered_since, Some(at));
    }

    /// No metronome, no fixed sizes: over 200 pings the intervals spread over half to one and
    /// a half seconds (a mean of one), every batch ends with padding of varied length, and the
    /// provider pads its pongs and grants too. The same seed gives the same shape.
    #[test]
    fn pings_are_jittered_and_every_batch_is_padded() {
        let Pair { mut client, mut provider, t0 } = pair_seeded(42);
        let mut now = t0;
        let (mut gaps, mut pads, mut sent_at) = (Vec::new(), Vec::new(), None::<Instant>);
        for _ in 0..200 {
            let b = batch(&mut client, now, T0);
            let [Frame::Ping { nonce }, Frame::Padding { len }] = b[..] else {
                panic!("a ping and its padding: {b:?}")
            };
            pads.push(len);
            if let Some(prev) = sent_at {
                gaps.push(now - prev);
            }
            sent_at = Some(now);
            let ProviderStep::Reply(reply) = provider.on_frame(Frame::Ping { nonce }, T0, now) else { panic!("pong") };
            assert!(matches!(reply[..], [Frame::Pong { .. }, Frame::Padding { .. }]), "{reply:?}");
            client.on_frame(reply[0].clone(), now + Duration::from_millis(5));
            now = client.poll_timeout();
        }
        assert!(gaps.iter().all(|g| *g >= Duration::from_millis(500) && *g < Duration::from_millis(1500)), "{gaps:?}");
        let mean = gaps.iter().sum::<Duration>() / u32::try_from(gaps.len()).expect("len");
        assert!(mean > Duration::from_millis(900) && mean < Duration::from_millis(1100), "mean {mean:?}");
        let distinct: std::collections::BTreeSet<_> = gaps.iter().map(Duration::as_millis).collect();
        assert!(distinct.len() > 100, "intervals vary: {} distinct of {}", distinct.len(), gaps.len());
        assert!(pads.iter().all(|p| PAD_BYTES.contains(p)));
        let sizes: std::collections::BTreeSet<_> = pads.iter().collect();
        assert!(sizes.len() > 100, "padding lengths vary: {}", sizes.len());
        // Deterministic from the seed (what makes this test repeatable).
        let Pair { client: mut twin, t0: t1, .. } = pair_seeded(42);
        assert_eq!(batch(&mut twin, t1, T0)[1], Frame::Padding { len: pads[0] });
    }

    /// A client silent on its control stream for 15 s is gone; any frame, padding included,
    /// keeps it alive.
    #[test]
    fn the_provider_notices_a_silent_client() {
        let Pair { mut provider, t0, .. } = pair();
        assert_eq!(provider.poll_timeout(), t0 + CONTROL_SILENCE);
        assert!(!provider.is_silent(ms(t0, 14_999)));
        let _ = provider.on_frame(Frame::Padding { len: 30 }, T0, ms(t0, 10_000));
        assert!(!provider.is_silent(ms(t0, 24_999)), "padding counts as a sign of life");
        assert!(provider.is_silent(ms(t0, 25_000)));
    }

    /// A round trip measured while the client's own downloads poured in measures its queue:
    /// it is marked loaded, and the SLA watch does not judge it.
    #[test]
    fn a_ping_behind_the_clients_own_downloads_is_marked_loaded() {
        let Pair { mut client, t0, .. } = pair();
        drain(&mut client, t0, T0);
        client.on_received(LOADED_BYTES + 1, ms(t0, 10));
        client.on_frame(Frame::Pong { nonce: 1 }, ms(t0, 400));
        assert!(client.latency().recent[0].loaded);
        assert_eq!(client.latency().last_received, Some(ms(t0, 10)));
        let at = client.poll_timeout().max(ms(t0, 1001));
        drain(&mut client, at, T0 + 1);
        client.on_received(100, at + Duration::from_millis(1));
        client.on_frame(Frame::Pong { nonce: 2 }, at + Duration::from_millis(20));
        assert!(!client.latency().recent[1].loaded);
    }

    /// Half a window unsigned is receipted at once; less waits for a quiet second, and
    /// `poll_timeout` says exactly when. Bytes counted meanwhile push the quiet receipt back.
    #[test]
    fn receipts_come_every_half_window_and_after_a_quiet_second() {
        let Pair { mut client, t0, .. } = pair();
        drain(&mut client, t0, T0); // the first ping
        client.on_frame(Frame::Pong { nonce: 1 }, ms(t0, 2));
        client.on_received(WINDOW / 2, ms(t0, 5));
        assert!(client.receipt_ready());
        let out = drain(&mut client, ms(t0, 5), T0);
        assert!(
            matches!(out[..], [Frame::Receipt { cumulative_bytes, timestamp: T0, .. }] if cumulative_bytes == WINDOW / 2)
        );

        client.on_received(10, ms(t0, 100));
        let ping = client.poll_timeout();
        assert!(ping < ms(t0, 1100), "the next ping comes before the quiet receipt at 1.1 s");
        assert!(
            no_padding(batch(&mut client, ping, T0)).iter().all(|f| matches!(f, Frame::Ping { .. })),
            "10 bytes wait for a quiet second"
        );
        client.on_received(10, ms(t0, 900));
        // The quiet receipt moved to 1.9 s; a ping may come first.
        let mut now = ping;
        while client.signed() < client.counted() {
            now = client.poll_timeout();
            assert!(now <= ms(t0, 1900), "the quiet receipt is due at 1.9 s at the latest");
            let out = drain(&mut client, now, T0 + 1);
            if let Some(Frame::Receipt { cumulative_bytes, timestamp, .. }) =
                out.iter().find(|f| matches!(f, Frame::Receipt { .. }))
            {
                assert_eq!(now, ms(t0, 1900), "not before a quiet second after the last byte");
                assert_eq!(*cumulative_bytes, WINDOW / 2 + 20);
                assert_eq!(*timestamp, T0 + 1);
            }
        }
        assert!(client.poll_timeout() > now, "nothing unsigned: only the next ping is ahead");
    }

    /// Uploads stop at the credit granted; the receipt that is then due earns a grant, and
    /// the grant lets them go on. An ack never counts more than the client signed.
    #[test]
    fn uploads_wait_for_credit_that_the_receipt_earns() {
        let Pair { mut client, mut provider, t0 } = pair();
        drain(&mut client, t0, T0);
        assert_eq!(client.take_upload(WINDOW + 5, ms(t0, 1)), WINDOW, "the first window");
        assert_eq!(client.take_upload(1, ms(t0, 1)), 0, "then nothing until a grant");
        let out = drain(&mut client, ms(t0, 1), T0);
        let [receipt @ Frame::Receipt { .. }] = &out[..] else { panic!("a receipt is due: {out:?}") };
        let ProviderStep::Persist(r) = provider.on_frame(receipt.clone(), T0, ms(t0, 2)) else { panic!("taken") };
        let back = no_padding(provider.persisted(&r, T0).expect("commit"));
        let [ack, grant] = &back[..] else { panic!("ack and grant: {back:?}") };
        assert_eq!(client.on_frame(ack.clone(), ms(t0, 2)), ClientEvent::Acked(WINDOW));
        assert_eq!(client.on_frame(grant.clone(), ms(t0, 2)), ClientEvent::Granted);
        assert_eq!(client.take_upload(5, ms(t0, 3)), 5);
        assert_eq!(client.on_frame(Frame::ReceiptAck { cumulative_bytes: 10 * WINDOW }, ms(t0, 3)), ClientEvent::None);
        assert_eq!(client.acknowledged(), WINDOW, "an ack past what was signed is not believed");
        assert_eq!(
            client.on_frame(Frame::CreditGrant { credit_until: 1 }, ms(t0, 4)),
            ClientEvent::None,
            "a backwards grant changes nothing"
        );
    }

    /// The provider acknowledges a receipt only once it is persisted: the step is "persist",
    /// and the ack comes from `persisted`. Badly signed, replayed and future-dated receipts
    /// get an error frame and no credit.
    #[test]
    fn the_provider_acks_only_persisted_receipts_and_refuses_bad_ones() {
        let Pair { mut client, mut provider, t0 } = pair();
        drain(&mut client, t0, T0);
        let ProviderStep::Reply(pong) = provider.on_frame(Frame::Ping { nonce: 4 }, T0, t0) else { panic!() };
        assert_eq!(no_padding(pong), vec![Frame::Pong { nonce: 4 }]);
        assert_eq!(provider.take(WINDOW + 1), WINDOW, "forwards one window on credit");
        client.on_received(WINDOW, ms(t0, 1));
        let receipt = drain(&mut client, ms(t0, 1), T0).remove(0);
        let Frame::Receipt { cumulative_bytes, timestamp, mut signature } = receipt.clone() else { panic!() };
        let refused = |step: ProviderStep| match step {
            ProviderStep::Reply(r) => r.into_iter().find_map(|f| match f {
                Frame::Error { code: ERR_BAD_RECEIPT, message } => Some(message),
                _ => None,
            }),
            ProviderStep::Persist(_) => None,
        };

        signature[10] ^= 1;
        let forged = Frame::Receipt { cumulative_bytes, timestamp, signature };
        assert!(refused(provider.on_frame(forged, T0, ms(t0, 2))).is_some(), "a forged receipt is refused");

        let ProviderStep::Persist(r) = provider.on_frame(receipt.clone(), T0, ms(t0, 2)) else { panic!("good") };
        assert_eq!(provider.take(1), 0, "no credit before the receipt is persisted");
        let back = no_padding(provider.persisted(&r, T0).expect("commit"));
        assert_eq!(
            back,
            vec![Frame::ReceiptAck { cumulative_bytes: WINDOW }, Frame::CreditGrant { credit_until: 2 * WINDOW }]
        );
        assert_eq!(provider.meter().receipted(), WINDOW);

        assert!(refused(provider.on_frame(receipt, T0, ms(t0, 3))).is_some(), "a replay is refused");
        assert_eq!(provider.meter().receipted(), WINDOW);

        // A client whose clock runs ahead signs receipts the chain would not pay yet.
        let Pair { client: mut fast, provider: mut p2, t0 } = pair();
        drain(&mut fast, t0, T0);
        assert_eq!(p2.take(WINDOW), WINDOW);
        fast.on_received(WINDOW, ms(t0, 1));
        let ahead = drain(&mut fast, ms(t0, 1), T0 + 3600).remove(0);
        let message = refused(p2.on_frame(ahead, T0, ms(t0, 2))).expect("refused");
        assert!(message.contains("clock is wrong"), "{message}");
        assert_eq!(p2.take(1), 0, "and it earns no credit");
    }

    /// Frames the client should never send on the control stream are answered, not obeyed.
    #[test]
    fn the_provider_answers_a_frame_out_of_place_with_an_error() {
        let Pair { mut provider, t0, .. } = pair();
        let ProviderStep::Reply(r) = provider.on_frame(Frame::CreditGrant { credit_until: u64::MAX }, T0, t0) else {
            panic!("answered")
        };
        assert!(matches!(r[0], Frame::Error { code: ERR_BAD_RECEIPT, .. }), "{r:?}");
        assert_eq!(provider.meter().credit_until(), WINDOW, "no credit granted by the client's say-so");
    }

    /// A long download driven through both cores with time passed in: every window is
    /// receipted, acknowledged and granted, and the session never stalls.
    #[test]
    fn a_download_of_many_windows_never_stalls_and_is_receipted_to_the_byte() {
        let Pair { mut client, mut provider, t0 } = pair();
        let total = 40 * WINDOW + 12_345;
        let (mut sent, mut now, mut unix) = (0u64, t0, T0);
        for step in 0..10_000 {
            let k = provider.take((total - sent).min(256 << 10));
            sent += k;
            if k > 0 {
                client.on_received(k, now);
            }
            if k == 0 && !client.receipt_ready() {
                // Out of credit, or done, with less than half a window unsigned: time passes.
                now = client.poll_timeout().max(now);
                unix = T0 + (now - t0).as_secs();
            }
            for f in batch(&mut client, now, unix) {
                match provider.on_frame(f, unix, now) {
                    ProviderStep::Reply(r) => r.into_iter().for_each(|f| {
                        client.on_frame(f, now);
                    }),
                    ProviderStep::Persist(r) => {
                        for back in provider.persisted(&r, unix).expect("commit") {
                            client.on_frame(back, now);
                        }
                    }
                }
            }
            if sent == total && client.acknowledged() == total {
                assert!(step < 1000, "took {step} steps");
                break;
            }
            now += Duration::from_millis(1);
        }
        assert_eq!(sent, total);
        assert_eq!(client.acknowledged(), total, "every byte receipted and acknowledged");
        assert_eq!(provider.meter().receipted(), total);
        assert!(!provider.is_silent(now), "the client's pings kept the session alive");
    }
}
