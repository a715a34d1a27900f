//! Lanes: app streams carried on TLS connections of their own, beside the session's
//! multiplexed connection, behind the same meter.
//!
//! One TLS connection per session serialises every stream's encryption on one task at each
//! end and pays the multiplexer's framing and copies on every byte. A lane is a further
//! connection authenticated with the same session key (a fresh `SessionAuth`); its first byte
//! after `AuthOk` says what it is:
//!
//! - [`CONN_SESSION`](crate::wire::CONN_SESSION): the session itself — control stream and yamux follow (one per session);
//! - [`CONN_LANE`](crate::wire::CONN_LANE): one data stream, no multiplexer — a target header, one status byte back,
//!   then payload, counted and gated by the session's credit exactly as a multiplexed stream.
//!
//! The client keeps a few authenticated lanes ready ([`LANE_POOL`]) so taking one costs the
//! same round trip as opening a multiplexed stream; beyond [`MAX_LANES`] in use, or when none is
//! ready, streams go over the multiplexer. To a censor this looks like a browser: a handful of
//! TLS connections to one site. A lane whose session is not being served is closed at once.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::mux::{MuxStream, Prefixed};
use crate::transport::{ClientTunnel, TransportError};
use crate::wire::{CONN_LANE, CONN_SESSION};

/// Authenticated lanes a client keeps ready.
pub const LANE_POOL: usize = 2;
/// Most lanes a client has in use at once; further streams share the multiplexer.
pub const MAX_LANES: usize = 8;
/// How long a provider keeps an unused lane open; clients retire ready lanes well before.
pub const LANE_IDLE: Duration = Duration::from_secs(30);
/// A ready lane older than this is closed, not used (the provider drops it at [`LANE_IDLE`]).
const LANE_FRESH: Duration = Duration::from_secs(20);
/// After this long without a stream, the pool is not refilled (lanes cost the provider a socket).
const LANE_KEEP: Duration = Duration::from_secs(60);

/// What a connection carries once authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    Session,
    Lane,
}

#[derive(Debug, thiserror::Error)]
pub enum OpeningError {
    #[error("the connection closed before saying what it carries")]
    Closed,
    #[error("unknown connection kind {0}")]
    Unknown(u8),
    #[error("no connection kind within {0:?}")]
    Idle(Duration),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Provider side: reads the byte after `AuthOk` (a ready lane may wait up to `idle` for it).
pub async fn read_opening<S: AsyncRead + Unpin>(io: &mut S, idle: Duration) -> Result<Opening, OpeningError> {
    let mut kind = [0u8; 1];
    match tokio::time::timeout(idle, io.read(&mut kind)).await {
        Err(_) => Err(OpeningError::Idle(idle)),
        Ok(Ok(0)) => Err(OpeningError::Closed),
        Ok(Ok(_)) => match kind[0] {
            CONN_SESSION => Ok(Opening::Session),
            CONN_LANE => Ok(Opening::Lane),
            k => Err(OpeningError::Unknown(k)),
        },
        Ok(Err(e)) => Err(e.into()),
    }
}

/// A lane as the provider serves it: the session's meter and policy.
pub(crate) struct LaneTarget {
    pub(crate) credit: Arc<crate::relay::Credit>,
    pub(crate) egress: crate::egress::EgressPolicy,
    pub(crate) impair: crate::impair::Impairment,
    pub(crate) dial_timeout: Duration,
    /// Lanes of this session carrying a stream now.
    pub(crate) open: Arc<AtomicUsize>,
}

/// Most lanes a provider serves at once for one session (a client uses at most
/// [`MAX_LANES`]; a pool refilling behind them may briefly add as many again).
pub const PROVIDER_MAX_LANES: usize = 2 * MAX_LANES;

/// Provider side: the sessions being served now, so a lane joins its session's meter. Cheap
/// to clone; one per provider.
#[derive(Clone, Default)]
pub struct ProviderLanes {
    live: Arc<Mutex<HashMap<B256, Weak<LaneTarget>>>>,
}

impl std::fmt::Debug for ProviderLanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.live.lock().map(|l| l.len()).unwrap_or(0);
        f.debug_struct("ProviderLanes").field("sessions", &n).finish()
    }
}

impl ProviderLanes {
    pub(crate) fn register(&self, session: B256, target: &Arc<LaneTarget>) {
        if let Ok(mut l) = self.live.lock() {
            l.retain(|_, w| w.strong_count() > 0);
            l.insert(session, Arc::downgrade(target));
        }
    }

    pub(crate) fn unregister(&self, session: B256) {
        if let Ok(mut l) = self.live.lock() {
            l.remove(&session);
        }
    }

    /// Whether `session` is being served (its control stream is up).
    #[must_use]
    pub fn is_live(&self, session: B256) -> bool {
        self.live.lock().is_ok_and(|l| l.get(&session).is_some_and(|w| w.strong_count() > 0))
    }

    /// Serves one lane of `session` (after [`read_opening`] said [`Opening::Lane`]): the
    /// stream is metered with the session's credit and ends when the session does. A lane of
    /// a session not being served is closed without a byte.
    pub async fn serve<S>(&self, io: S, session: B256) -> Result<(), crate::error::SessionError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let target = self.live.lock().ok().and_then(|l| l.get(&session).and_then(Weak::upgrade));
        let Some(t) = target else {
            tracing::debug!(%session, "lane for a session not being served; closed");
            return Err(crate::error::SessionError::NoSession);
        };
        let (credit, egress, impair, dial) = (t.credit.clone(), t.egress.clone(), t.impair.clone(), t.dial_timeout);
        let open = t.open.clone();
        drop(t);
        // A client cannot make the provider hold sockets beyond what its pool would use.
        if open.fetch_add(1, Ordering::AcqRel) >= PROVIDER_MAX_LANES {
            open.fetch_sub(1, Ordering::AcqRel);
            tracing::debug!(%session, "too many lanes for one session; closed");
            return Err(crate::error::SessionError::TooManyLanes(PROVIDER_MAX_LANES));
        }
        let _count = LaneGuard { active: Some(open), in_use: None };
        crate::relay::serve_stream(io, credit, &egress, dial, impair).await
    }
}

/// The client's connection under a lane.
pub type LaneIo = Prefixed<crate::transport::BoxIo>;

/// How a client dials lanes for its session: the provider, its pinned key, the session key.
#[derive(Clone)]
pub struct LaneDialer {
    pub addr: SocketAddr,
    /// What carries the lane (the session's own transport).
    pub transport: Arc<dyn crate::transport::Transport>,
    /// The provider's tunnel key, which the session auth is bound to.
    pub tunnel_key: B256,
    pub session_key: PrivateKeySigner,
    pub domain: Eip712Domain,
    pub session_id: B256,
    /// Unix time for the auth's timestamp.
    pub now: Arc<dyn Fn() -> u64 + Send + Sync>,
    pub deadline: Duration,
}

impl std::fmt::Debug for LaneDialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneDialer").field("addr", &self.addr).field("session_id", &self.session_id).finish()
    }
}

impl LaneDialer {
    /// A fresh authenticated connection to the provider (not yet said to be a lane).
    pub async fn dial(&self) -> Result<LaneIo, TransportError> {
        let mut nonce = [0u8; 16];
        rustls::crypto::aws_lc_rs::default_provider()
            .secure_random
            .fill(&mut nonce)
            .map_err(|_| TransportError::NoRandomness)?;
        let auth = crate::auth::session_auth_frame(
            &self.session_key,
            &self.domain,
            self.session_id,
            self.tunnel_key,
            (self.now)(),
            nonce,
        )?;
        let ClientTunnel { stream, pending, .. } = self.transport.dial(self.addr, &auth, self.deadline).await?;
        Ok(Prefixed::new(pending, stream))
    }
}

/// Lanes dialled at once when the pool is short (a burst of streams wants several).
const DIAL_AT_ONCE: usize = 4;

/// The client's ready lanes, refilled in the background while streams are being opened.
///
/// The pool learns the app's parallelism: it keeps as many lanes ready as streams were open
/// at once lately (at least [`LANE_POOL`], at most [`MAX_LANES`] with those in use), so a
/// browser's or a download manager's next burst finds a lane for each stream.
pub(crate) struct LanePool {
    dialer: LaneDialer,
    ready: Mutex<VecDeque<(Instant, LaneIo)>>,
    /// Lanes carrying a stream now.
    in_use: Arc<AtomicUsize>,
    /// Streams open now, on lanes or on the multiplexer.
    active: Arc<AtomicUsize>,
    /// Most streams open at once since the pool was last idle.
    peak: AtomicUsize,
    last_wanted: Mutex<Instant>,
    refill: Arc<Notify>,
    /// The session ended: no more lanes are dialled or handed out.
    closed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for LanePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LanePool")
            .field("ready", &self.ready_len())
            .field("in_use", &self.in_use.load(Ordering::Relaxed))
            .field("peak", &self.peak.load(Ordering::Relaxed))
            .finish()
    }
}

impl LanePool {
    pub(crate) fn spawn(dialer: LaneDialer) -> Arc<Self> {
        let pool = Arc::new(Self {
            dialer,
            ready: Mutex::new(VecDeque::new()),
            in_use: Arc::new(AtomicUsize::new(0)),
            active: Arc::new(AtomicUsize::new(0)),
            peak: AtomicUsize::new(LANE_POOL),
            last_wanted: Mutex::new(Instant::now()),
            refill: Arc::new(Notify::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&pool);
        let refill = pool.refill.clone();
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let Some(pool) = weak.upgrade() else { return };
                if pool.closed.load(Ordering::Acquire) {
                    return;
                }
                let short = pool.shortfall();
                if short > 0 {
                    let dialer = pool.dialer.clone();
                    drop(pool);
                    let dials = (0..short.min(DIAL_AT_ONCE)).map(|_| dialer.dial());
                    let lanes = futures::future::join_all(dials).await;
                    let Some(pool) = weak.upgrade() else { return };
                    if pool.closed.load(Ordering::Acquire) {
                        return;
                    }
                    let mut failed = None;
                    if let Ok(mut r) = pool.ready.lock() {
                        for lane in lanes {
                            match lane {
                                Ok(l) => r.push_back((Instant::now(), l)),
                                Err(e) => failed = Some(e),
                            }
                        }
                    }
                    if let Some(e) = failed {
                        // The multiplexer still carries every stream; back off and retry.
                        failures = failures.saturating_add(1);
                        tracing::debug!(error = %e, "could not dial a lane");
                        drop(pool);
                        tokio::time::sleep(Duration::from_millis(200u64 << failures.min(6))).await;
                    } else {
                        failures = 0;
                    }
                    continue;
                }
                drop(pool);
                // Wake up now and then to retire stale lanes even when nothing is opened.
                let _ = tokio::time::timeout(LANE_FRESH / 2, refill.notified()).await;
                if let Some(pool) = weak.upgrade() {
                    pool.retire_stale();
                }
            }
        });
        pool.refill.notify_one();
        pool
    }

    /// Lanes to dial now: up to the recent peak of open streams, counting those in use.
    fn shortfall(&self) -> usize {
        let wanted_recently = self.last_wanted.lock().map(|t| t.elapsed() < LANE_KEEP).unwrap_or(false);
        if !wanted_recently {
            // Idle: forget the last burst; ready lanes age out.
            self.peak.store(LANE_POOL, Ordering::Relaxed);
            return 0;
        }
        // Ready for a whole burst even while the last one's lanes are still busy (they are
        // usually about to end), within twice the in-use cap in all.
        let want = self.peak.load(Ordering::Relaxed).clamp(LANE_POOL, MAX_LANES);
        let in_use = self.in_use.load(Ordering::Relaxed);
        let ready = self.ready_len();
        want.min((2 * MAX_LANES).saturating_sub(in_use)).saturating_sub(ready)
    }

    /// Closes the ready lanes and stops dialling (the session is over).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Ok(mut r) = self.ready.lock() {
            r.clear();
        }
        self.refill.notify_one();
    }

    fn retire_stale(&self) {
        if let Ok(mut r) = self.ready.lock() {
            r.retain(|(born, _)| born.elapsed() < LANE_FRESH);
        }
    }

    /// Counts a stream being opened (lane or not) until its guard drops; the pool refills.
    pub(crate) fn enter(&self) -> LaneGuard {
        if let Ok(mut t) = self.last_wanted.lock() {
            *t = Instant::now();
        }
        let now_open = self.active.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now_open, Ordering::Relaxed);
        self.refill.notify_one();
        LaneGuard { active: Some(self.active.clone()), in_use: None }
    }

    /// A ready lane, if one is fresh and fewer than [`MAX_LANES`] are in use; `guard` then
    /// counts it as in use.
    pub(crate) fn take(&self, guard: &mut LaneGuard) -> Option<LaneIo> {
        if self.closed.load(Ordering::Acquire) || self.in_use.load(Ordering::Relaxed) >= MAX_LANES {
            return None;
        }
        let mut r = self.ready.lock().ok()?;
        while let Some((born, lane)) = r.pop_front() {
            if born.elapsed() < LANE_FRESH {
                self.in_use.fetch_add(1, Ordering::Relaxed);
                guard.in_use = Some(self.in_use.clone());
                return Some(lane);
            }
        }
        None
    }

    /// Gives back the lane count of a stream that did not keep its lane.
    pub(crate) fn release(guard: &mut LaneGuard) {
        if let Some(c) = guard.in_use.take() {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn ready_len(&self) -> usize {
        self.ready.lock().map(|r| r.len()).unwrap_or(0)
    }
}

/// Counts a stream as open (and its lane as in use) until dropped.
#[derive(Debug, Default)]
pub struct LaneGuard {
    active: Option<Arc<AtomicUsize>>,
    in_use: Option<Arc<AtomicUsize>>,
}

impl Drop for LaneGuard {
    fn drop(&mut self) {
        for c in [self.active.take(), self.in_use.take()].into_iter().flatten() {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// A stream through the provider: multiplexed, or on a lane of its own.
#[derive(Debug)]
pub enum TunnelStream {
    /// The guard counts the stream as open while it lives (the lane pool sizes itself by it).
    Mux(MuxStream, LaneGuard),
    /// The guard also keeps the lane counted as in use.
    Lane(LaneIo, LaneGuard),
}

impl TunnelStream {
    /// Whether this stream has a TLS connection of its own.
    #[must_use]
    pub fn is_lane(&self) -> bool {
        matches!(self, Self::Lane(..))
    }
}

impl AsyncRead for TunnelStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Mux(s, _) => Pin::new(s).poll_read(cx, buf),
            Self::Lane(s, _) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TunnelStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Mux(s, _) => Pin::new(s).poll_write(cx, b),
            Self::Lane(s, _) => Pin::new(s).poll_write(cx, b),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Mux(s, _) => Pin::new(s).poll_flush(cx),
            Self::Lane(s, _) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Mux(s, _) => Pin::new(s).poll_shutdown(cx),
            Self::Lane(s, _) => Pin::new(s).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Mux(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Lane(s, _) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            Self::Mux(s, _) => s.is_write_vectored(),
            Self::Lane(s, _) => s.is_write_vectored(),
        }
    }
}
