//! The session's async drivers on tokio's paused clock: a client session and the provider's
//! serving code over an in-memory pipe, so every timer (pings, the quiet receipt, the held-back
//! pong) fires on virtual time and the figures are exact, not wall-clock guesses.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use wirepact_proto::{domain, recover_receipt, Receipt};
use wirepact_tunnel::egress::EgressPolicy;
use wirepact_tunnel::error::StoreError;
use wirepact_tunnel::impair::Impairment;
use wirepact_tunnel::provider::{serve_connection, ProviderSession, ReceiptStore};
use wirepact_tunnel::session::ClientSession;

const SESSION: B256 = B256::repeat_byte(0x42);
const WINDOW: u64 = 1 << 20;

/// Receipts as persisted, and whether the store is failing (a full disk).
#[derive(Default)]
struct Store {
    kept: Mutex<Vec<(u64, u64, [u8; 65])>>,
    failing: std::sync::atomic::AtomicBool,
}

impl ReceiptStore for Store {
    fn store(&self, _: B256, cumulative: u64, ts: u64, sig: [u8; 65]) -> Result<(), StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::io(std::io::Error::other("no space left on device")));
        }
        self.kept.lock().expect("store").push((cumulative, ts, sig));
        Ok(())
    }
}

struct Pair {
    client: Arc<ClientSession>,
    store: Arc<Store>,
    provider: tokio::task::JoinHandle<
        Result<Option<wirepact_tunnel::provider::ProviderStats>, wirepact_tunnel::error::SessionError>,
    >,
    key: Address,
    t0: u64,
}

/// A session whose provider holds every pong back `latency`.
async fn pair(latency: Duration) -> Pair {
    let d = domain(31337, Address::repeat_byte(1));
    let key = PrivateKeySigner::random();
    let t0 = wirepact_tunnel::clock::unix_now_with(0);
    let (c, p) = tokio::io::duplex(1 << 20);
    let store = Arc::new(Store::default());
    let cfg = ProviderSession {
        domain: d.clone(),
        session_id: SESSION,
        session_key: key.address(),
        window: WINDOW,
        max_bytes: u64::MAX,
        egress: EgressPolicy::new(vec![]),
        impair: Impairment::new(None, latency),
        dial_timeout: Duration::from_secs(5),
        lanes: None,
        opened_at: t0 - 10,
        clock_offset_secs: 0,
    };
    let provider = tokio::spawn(serve_connection(p, cfg, store.clone()));
    // The client's chain clock: the start plus virtual time elapsed.
    let start = tokio::time::Instant::now();
    let now = Arc::new(move || t0 + start.elapsed().as_secs());
    let address = key.address();
    let client = ClientSession::start(c, key, d, SESSION, WINDOW, now).await.expect("session");
    Pair { client, store, provider, key: address, t0 }
}

/// Bytes below half a window are receipted after a quiet second, on virtual time; the
/// provider persisted the receipt before the client saw it acknowledged, and it is signed by
/// the session key for exactly what was counted.
#[tokio::test(start_paused = true)]
async fn a_quiet_second_brings_the_receipt_and_the_ack_follows_persistence() {
    let p = pair(Duration::ZERO).await;
    p.client.count(12_345);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(p.store.kept.lock().expect("store").is_empty(), "not before a quiet second");
    assert_eq!(p.client.acknowledged(), 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let kept = p.store.kept.lock().expect("store").clone();
    assert_eq!(kept.len(), 1, "one receipt after the quiet second");
    let (cumulative, ts, sig) = kept[0];
    assert_eq!(cumulative, 12_345);
    assert!(ts >= p.t0 && ts <= p.t0 + 2, "dated by the session's clock: {ts}");
    let r = Receipt { sessionId: SESSION, cumulativeBytes: cumulative, timestamp: ts };
    recover_receipt(&domain(31337, Address::repeat_byte(1)), &r, &sig, p.key).expect("signed by the session key");
    assert_eq!(p.client.acknowledged(), 12_345, "the ack came back");
    assert_eq!(p.client.finish(Duration::from_secs(5)).await.expect("finished"), 12_345);
    p.client.close();
    let stats = p.provider.await.expect("join").expect("served").expect("a session");
    assert_eq!(stats.receipted, 12_345);
}

/// A provider that holds its pongs back 150 ms shows exactly 150 ms in every round trip; the
/// pings come at jittered intervals of half to one and a half seconds.
#[tokio::test(start_paused = true)]
async fn pings_measure_the_providers_latency_exactly_on_virtual_time() {
    let p = pair(Duration::from_millis(150)).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let seen = p.client.latency();
    assert!((7..=20).contains(&seen.recent.len()), "about one ping a second: {seen:?}");
    assert!(seen.recent.iter().all(|s| s.rtt == Duration::from_millis(150)), "{seen:?}");
    let gaps: Vec<Duration> = seen.recent.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps.iter().all(|g| *g >= Duration::from_millis(500) && *g < Duration::from_millis(1500)), "{gaps:?}");
    assert!(gaps.windows(2).any(|w| w[0] != w[1]), "not a metronome: {gaps:?}");
}

/// A client that goes silent (its process frozen, its link cut: no FIN, no RST) is noticed by
/// the provider's control-silence rule on virtual time, and the session ends with what was
/// receipted, ready to be claimed.
#[tokio::test(start_paused = true)]
async fn the_provider_ends_the_session_of_a_client_that_went_silent() {
    let (c, p) = tokio::io::duplex(1 << 20);
    let d = domain(31337, Address::repeat_byte(1));
    let key = PrivateKeySigner::random();
    let store = Arc::new(Store::default());
    let t0 = wirepact_tunnel::clock::unix_now_with(0);
    let cfg = ProviderSession {
        domain: d.clone(),
        session_id: SESSION,
        session_key: key.address(),
        window: WINDOW,
        max_bytes: u64::MAX,
        egress: EgressPolicy::new(vec![]),
        impair: Impairment::new(None, Duration::ZERO),
        dial_timeout: Duration::from_secs(5),
        lanes: None,
        opened_at: t0 - 10,
        clock_offset_secs: 0,
    };
    let provider = tokio::spawn(serve_connection(p, cfg, store.clone()));
    // The client side runs in its own runtime task and is then frozen: its half of the pipe
    // stays open (no end of stream), it just sends nothing more.
    let start = tokio::time::Instant::now();
    let now = Arc::new(move || t0 + start.elapsed().as_secs());
    let (c, hold) = split_keep(c);
    let client = ClientSession::start(c, key, d, SESSION, WINDOW, now).await.expect("session");
    client.count(5_000);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(client.acknowledged(), 5_000, "receipted before it froze");
    let frozen_at = tokio::time::Instant::now();
    hold.freeze();
    let err = provider.await.expect("join").expect_err("the session ends");
    assert!(matches!(err, wirepact_tunnel::error::SessionError::Silent), "{err}");
    let silent_for = tokio::time::Instant::now() - frozen_at;
    // Virtual time, so exact: 15 s after the last frame heard, which came at most 1.5 s (the
    // longest ping interval) before the freeze.
    let silence = wirepact_tunnel::control::CONTROL_SILENCE;
    assert!(
        silent_for > silence - Duration::from_millis(1500) && silent_for <= silence,
        "ended 15 s after the last frame heard: {silent_for:?} after the freeze"
    );
    assert_eq!(store.kept.lock().expect("store").last().map(|r| r.0), Some(5_000));
}

/// A pipe end whose writes can be frozen: after `freeze`, writes are accepted and dropped
/// (a frozen peer's bytes never arrive), reads go on.
fn split_keep(io: tokio::io::DuplexStream) -> (Freezable, Freezer) {
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
    (Freezable { io, frozen: flag.clone() }, Freezer(flag))
}

struct Freezer(Arc<std::sync::atomic::AtomicBool>);
impl Freezer {
    fn freeze(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct Freezable {
    io: tokio::io::DuplexStream,
    frozen: Arc<std::sync::atomic::AtomicBool>,
}

impl tokio::io::AsyncRead for Freezable {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Freezable {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if self.frozen.load(std::sync::atomic::Ordering::SeqCst) {
            return std::task::Poll::Ready(Ok(buf.len()));
        }
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.frozen.load(std::sync::atomic::Ordering::SeqCst) {
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A provider whose disk fails cannot persist the receipt: it never acknowledges it and the
/// session ends with a storage error, so nothing it cannot claim is ever acked.
#[tokio::test(start_paused = true)]
async fn a_receipt_that_cannot_be_persisted_is_never_acknowledged() {
    let p = pair(Duration::ZERO).await;
    p.store.failing.store(true, std::sync::atomic::Ordering::SeqCst);
    p.client.count(WINDOW / 2);
    let err = p.provider.await.expect("join").expect_err("the session ends");
    assert_eq!(err.kind(), wirepact_tunnel::ErrorKind::Storage, "{err}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(p.client.acknowledged(), 0);
    assert!(p.client.finish(Duration::from_secs(3)).await.is_err(), "the final receipt is never acknowledged");
}
