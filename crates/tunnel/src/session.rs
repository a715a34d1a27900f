//! A metered session over an authenticated tunnel: the provider forwards only within its
//! credit window and acknowledges receipts only after persisting them; the client counts the
//! bytes of the streams it opens, signs receipts every half window, and exposes a local
//! SOCKS5 proxy.
//!
//! Every client-opened stream starts with a type byte. Type 0 is the control stream (one per
//! session): `Receipt` and `Ping` frames go up, `ReceiptAck`, `CreditGrant` and `Pong` come
//! down (the client times pings to watch its SLA). Type 1 is a
//! data stream: a target header (`socks::Target::encode`) follows; the provider answers one
//! status byte (a SOCKS5 reply code) and then relays. Payload bytes after header and status are what both sides
//! count. Streams the provider opens towards the client are refused and never counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use wirepact_proto::{Frame, FrameError};

use crate::control::{ClientControl, ClientEvent, ProviderControl, ProviderStep};

use crate::egress::EgressPolicy;
use crate::impair::Impairment;
use crate::lane::{
    read_opening, LaneDialer, LaneTarget, Opening, ProviderLanes, TunnelStream, CONN_LANE, CONN_SESSION, LANE_IDLE,
};
use crate::meter::{MeterError, ProviderMeter};
use crate::mux::{self, MuxError, MuxHandle, MuxStream};
use crate::socks::{self, SocksError, Target};

const CHUNK: usize = 64 * 1024;
const STREAM_CONTROL: u8 = 0;
const STREAM_DATA: u8 = 1;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Mux(#[from] MuxError),
    #[error("bad control frame: {0}")]
    Frame(#[from] FrameError),
    #[error("the peer did not open the control stream in time")]
    NoControl,
    #[error("the provider refused the stream (SOCKS reply {0})")]
    StreamRefused(u8),
    #[error("timed out")]
    Timeout,
    #[error("metering: {0}")]
    Meter(#[from] MeterError),
    #[error("could not persist a receipt: {0}")]
    Store(String),
    #[error("no such session is being served")]
    NoSession,
    #[error("the session already has {0} lanes open")]
    TooManyLanes(usize),
    #[error("a session lock was poisoned by a panic (a bug)")]
    Poisoned,
}

/// Where the provider keeps receipts; `store` must be durable when it returns.
pub trait ReceiptStore: Send + Sync + 'static {
    fn store(&self, session: B256, cumulative: u64, timestamp: u64, signature: [u8; 65]) -> Result<(), String>;
}

/// What the provider needs to serve one session.
#[derive(Debug, Clone)]
pub struct ProviderSession {
    pub domain: Eip712Domain,
    pub session_id: B256,
    pub session_key: Address,
    pub window: u64,
    /// Most bytes forwarded in all: what the deposit pays for (`u64::MAX`: no cap).
    pub max_bytes: u64,
    pub egress: EgressPolicy,
    /// Test knobs (shaping, extra latency); off unless a test or the devnet turns them on.
    pub impair: Impairment,
    pub dial_timeout: Duration,
    /// Where lanes of this session find its meter (`None`: the session takes no lanes).
    pub lanes: Option<ProviderLanes>,
    /// The session's `openedAt` on chain: receipts dated earlier are refused (unclaimable).
    pub opened_at: u64,
    /// The chain's clock minus this machine's, seconds: receipts are judged by the chain's
    /// time, as the market will judge them.
    pub clock_offset_secs: i64,
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

/// What the provider saw of a session once it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderStats {
    pub forwarded: u64,
    pub receipted: u64,
}

/// A session's credit on the provider, shared by its multiplexed streams and its lanes.
pub(crate) struct Credit {
    control: Mutex<ProviderControl>,
    more: Notify,
    /// The session ended: nothing more is forwarded.
    closed: AtomicBool,
}

impl Credit {
    /// Credit for `window` bytes and no receipt yet (tests of a single stream kind).
    #[cfg(test)]
    pub(crate) fn for_test(window: u64) -> Self {
        let meter = ProviderMeter::new(window).expect("window");
        let domain = wirepact_proto::domain(0, Address::ZERO);
        Self {
            control: Mutex::new(ProviderControl::new(domain, B256::ZERO, Address::ZERO, meter)),
            more: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Waits until some of `n` bytes may be forwarded; returns how many (0: the session ended).
    pub(crate) async fn acquire(&self, n: u64) -> u64 {
        // Fast path, the usual case: credit is there; no waiter is registered.
        if !self.closed.load(Ordering::Acquire) {
            let k = self.control.lock().map(|mut c| c.take(n)).unwrap_or(0);
            if k > 0 {
                return k;
            }
        }
        loop {
            let notified = self.more.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.closed.load(Ordering::Acquire) {
                return 0;
            }
            let k = self.control.lock().map(|mut c| c.take(n)).unwrap_or(0);
            if k > 0 {
                return k;
            }
            notified.await;
        }
    }
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> Result<Option<Frame>, SessionError> {
    let mut chunk = [0u8; 512];
    loop {
        match Frame::decode(buf) {
            Ok((f, used)) => {
                buf.drain(..used);
                return Ok(Some(f));
            }
            Err(FrameError::Incomplete { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Serves one authenticated connection, whatever it carries: the session itself (until the
/// client closes its control stream; its stats come back) or one of its lanes (`None`).
/// A provider that must vet a session before serving it reads [`read_opening`] itself.
pub async fn serve_connection<S>(
    mut io: S,
    cfg: ProviderSession,
    store: Arc<dyn ReceiptStore>,
) -> Result<Option<ProviderStats>, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match read_opening(&mut io, LANE_IDLE).await {
        Ok(Opening::Session) => serve_provider(io, cfg, store).await.map(Some),
        Ok(Opening::Lane) => match &cfg.lanes {
            Some(lanes) => lanes.serve(io, cfg.session_id).await.map(|()| None),
            None => Err(SessionError::NoSession),
        },
        Err(e) => Err(SessionError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
    }
}

/// Serves one authenticated session (after [`read_opening`] said [`Opening::Session`]) until
/// the client closes its control stream.
pub async fn serve_provider<S>(
    io: S,
    cfg: ProviderSession,
    store: Arc<dyn ReceiptStore>,
) -> Result<ProviderStats, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (_handle, mut inbound) = mux::spawn(io, false);
    let meter = ProviderMeter::new(cfg.window)?.with_limit(cfg.max_bytes).opened_at(cfg.opened_at);
    let credit = Arc::new(Credit {
        control: Mutex::new(ProviderControl::new(cfg.domain.clone(), cfg.session_id, cfg.session_key, meter)),
        more: Notify::new(),
        closed: AtomicBool::new(false),
    });
    let lane_target = Arc::new(LaneTarget {
        credit: credit.clone(),
        egress: cfg.egress.clone(),
        impair: cfg.impair.clone(),
        dial_timeout: cfg.dial_timeout,
        open: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
    });
    if let Some(lanes) = &cfg.lanes {
        lanes.register(cfg.session_id, &lane_target);
    }

    let data_credit = credit.clone();
    let egress = cfg.egress.clone();
    let dial_timeout = cfg.dial_timeout;
    let impair = cfg.impair.clone();
    let (control_tx, control_rx) = tokio::sync::oneshot::channel::<MuxStream>();
    let acceptor = tokio::spawn(async move {
        let mut control_tx = Some(control_tx);
        while let Some(mut stream) = inbound.recv().await {
            let mut kind = [0u8; 1];
            match tokio::time::timeout(HEADER_TIMEOUT, stream.read_exact(&mut kind)).await {
                Ok(Ok(_)) if kind[0] == STREAM_CONTROL => {
                    // Only the first control stream counts; others are dropped.
                    if let Some(tx) = control_tx.take() {
                        let _ = tx.send(stream);
                    }
                }
                Ok(Ok(_)) if kind[0] == STREAM_DATA => {
                    let c = data_credit.clone();
                    let e = egress.clone();
                    let i = impair.clone();
                    tokio::spawn(async move {
                        if let Err(err) = serve_stream(stream, c, &e, dial_timeout, i).await {
                            tracing::debug!(error = %err, "stream ended");
                        }
                    });
                }
                Ok(Ok(_)) if kind[0] == crate::udp::STREAM_UDP => {
                    let c = data_credit.clone();
                    let e = egress.clone();
                    tokio::spawn(async move {
                        if let Err(err) = serve_udp_stream(stream, c, &e).await {
                            tracing::debug!(error = %err, "UDP flow ended");
                        }
                    });
                }
                _ => tracing::debug!("stream with an unknown type or no header dropped"),
            }
        }
    });
    let control = tokio::time::timeout(HEADER_TIMEOUT, control_rx).await;
    let Ok(Ok(mut control)) = control else {
        acceptor.abort();
        return Err(SessionError::NoControl);
    };

    let result = drive_provider(&mut control, &credit, &cfg, store.as_ref()).await;
    acceptor.abort();
    if let Some(lanes) = &cfg.lanes {
        lanes.unregister(cfg.session_id);
    }
    drop(lane_target);
    // Lanes still open stop forwarding: no more receipts can pay for them.
    credit.closed.store(true, Ordering::Release);
    credit.more.notify_waiters();
    let c = credit.control.lock().map_err(|_| SessionError::Poisoned)?;
    result.map(|()| ProviderStats { forwarded: c.meter().forwarded(), receipted: c.meter().receipted() })
}

/// The provider's control driver: frames in, [`ProviderControl`]'s steps out, receipts made
/// durable before they are acknowledged. Returns when the client closes its control stream.
async fn drive_provider(
    control: &mut MuxStream,
    credit: &Credit,
    cfg: &ProviderSession,
    store: &dyn ReceiptStore,
) -> Result<(), SessionError> {
    let mut buf = Vec::new();
    while let Some(frame) = read_frame(control, &mut buf).await? {
        let now = unix_now_with(cfg.clock_offset_secs);
        let step = credit.control.lock().map_err(|_| SessionError::Poisoned)?.on_frame(frame, now);
        match step {
            ProviderStep::Reply(reply) => {
                // The latency test knob holds pongs back too, as it does data, so a client sees it.
                if matches!(reply, Frame::Pong { .. }) && !cfg.impair.extra_latency.is_zero() {
                    tokio::time::sleep(cfg.impair.extra_latency).await;
                }
                control.write_all(&reply.to_bytes()).await?;
            }
            ProviderStep::Persist(r) => {
                store.store(cfg.session_id, r.cumulative, r.timestamp, r.signature).map_err(SessionError::Store)?;
                let [ack, grant] = credit.control.lock().map_err(|_| SessionError::Poisoned)?.persisted(&r, now)?;
                credit.more.notify_waiters();
                let mut out = ack.to_bytes();
                out.extend_from_slice(&grant.to_bytes());
                control.write_all(&out).await?;
            }
        }
    }
    Ok(())
}

pub(crate) async fn resolve(target: &Target, egress: &EgressPolicy) -> Result<std::net::SocketAddr, u8> {
    let candidates: Vec<std::net::SocketAddr> = match target {
        Target::Ip(ip, port) => vec![(*ip, *port).into()],
        Target::Domain(d, port) => {
            tokio::net::lookup_host((d.as_str(), *port)).await.map_err(|_| socks::REP_HOST_UNREACHABLE)?.collect()
        }
    };
    candidates.into_iter().find(|a| egress.permits(a.ip())).ok_or(socks::REP_NOT_ALLOWED)
}

/// Reads a stream's target header; returns the target and any bytes read past it, or `None`
/// when the stream ended first or the header was refused (the refusal already answered).
async fn read_target_header<S>(s: &mut S) -> Result<Option<(Target, Vec<u8>)>, SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = Vec::with_capacity(64);
    let mut b = [0u8; 64];
    let (target, used) = loop {
        match socks::parse_address(&head) {
            Ok(t) => break t,
            Err(SocksError::Incomplete) if head.len() < 262 => {}
            Err(_) => {
                s.write_all(&[socks::REP_ADDRESS_NOT_SUPPORTED]).await?;
                return Ok(None);
            }
        }
        let n = tokio::time::timeout(HEADER_TIMEOUT, s.read(&mut b)).await.map_err(|_| SessionError::Timeout)??;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&b[..n]);
    };
    let early = head.split_off(used);
    Ok(Some((target, early)))
}

/// Serves one UDP flow stream: its target header, then [`crate::udp::serve_udp`].
async fn serve_udp_stream<S>(mut s: S, credit: Arc<Credit>, egress: &EgressPolicy) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some((target, early)) = read_target_header(&mut s).await? else { return Ok(()) };
    crate::udp::serve_udp(crate::mux::Prefixed::new(early, s), target, credit, egress).await
}

/// Serves one data stream (multiplexed or a lane): target header, status byte, relay.
pub(crate) async fn serve_stream<S>(
    mut s: S,
    credit: Arc<Credit>,
    egress: &EgressPolicy,
    dial: Duration,
    impair: Impairment,
) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some((target, early)) = read_target_header(&mut s).await? else { return Ok(()) };
    let addr = match resolve(&target, egress).await {
        Ok(a) => a,
        Err(code) => {
            s.write_all(&[code]).await?;
            return Ok(());
        }
    };
    let origin = match tokio::time::timeout(dial, TcpStream::connect(addr)).await {
        Ok(Ok(o)) => o,
        _ => {
            s.write_all(&[socks::REP_CONNECTION_REFUSED]).await?;
            return Ok(());
        }
    };
    origin.set_nodelay(true)?;
    s.write_all(&[socks::REP_SUCCEEDED]).await?;
    let (mut or, mut ow) = origin.into_split();
    let (mut sr, mut sw) = tokio::io::split(s);
    let up_credit = credit.clone();
    let up = async move {
        if !early.is_empty() {
            let mut off = 0;
            while off < early.len() {
                let k = usize::try_from(up_credit.acquire((early.len() - off) as u64).await).unwrap_or(0);
                if k == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the session ended"));
                }
                ow.write_all(&early[off..off + k]).await?;
                off += k;
            }
        }
        pump(&mut sr, &mut ow, |n| up_credit.acquire(n)).await?;
        ow.shutdown().await
    };
    let down = async move {
        if impair.is_off() {
            pump(&mut or, &mut sw, |n| credit.acquire(n)).await?;
        } else {
            pump_impaired(&mut or, &mut sw, &credit, &impair).await?;
        }
        sw.shutdown().await
    };
    // A clean end of one direction is a half close; an error in either (the session ended,
    // a reset) drops both, which closes the stream for the client too.
    let _ = tokio::try_join!(up, down);
    Ok(())
}

/// Copies `r` to `w` chunk by chunk; `gate(n)` says how many of `n` bytes may go now.
async fn pump<R, W, F, Fut>(r: &mut R, w: &mut W, gate: F) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let mut off = 0;
        while off < n {
            let k = usize::try_from(gate((n - off) as u64).await).unwrap_or(0).min(n - off);
            if k == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the session ended"));
            }
            w.write_all(&buf[off..off + k]).await?;
            off += k;
        }
    }
}

/// The downstream pump with the test knobs on: chunks are metered when read, paced by the
/// shared bucket, and held back `extra_latency` (a delay line, so latency does not cost rate).
async fn pump_impaired<R, W>(r: &mut R, w: &mut W, credit: &Credit, impair: &Impairment) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(256);
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            let mut off = 0;
            while off < n {
                let k = usize::try_from(credit.acquire((n - off) as u64).await).unwrap_or(0).min(n - off);
                if k == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the session ended"));
                }
                impair.pace(k as u64).await;
                let due = tokio::time::Instant::now() + impair.extra_latency;
                if tx.send((due, buf[off..off + k].to_vec())).await.is_err() {
                    return Ok(());
                }
                off += k;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            w.write_all(&chunk).await?;
        }
        Ok::<_, std::io::Error>(())
    };
    tokio::try_join!(reader, writer).map(|_| ())
}

/// How long a closed session's connection stays up for the control stream's end to reach the
/// provider before the client closes the connection itself.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

pub use crate::control::{LatencyView, PingSample, LOADED_BYTES, PING_EVERY};

/// The client's side of a session.
#[derive(Debug)]
pub struct ClientSession {
    mux: MuxHandle,
    /// Receipts, pings, credit and acks, sans-IO ([`ClientControl`]); the data path counts
    /// through it and the control driver polls it.
    control: Mutex<ClientControl>,
    /// A receipt is due now (half a window unsigned, or uploads out of credit).
    wake: Notify,
    /// The provider acknowledged receipts.
    acked_notify: Notify,
    lanes: Option<Arc<crate::lane::LanePool>>,
    lane_streams: AtomicU64,
    /// App connections being relayed through this session right now.
    relaying: AtomicU64,
    /// Set by [`ClientSession::close`]; the control driver then closes the control stream.
    closing: Notify,
    /// A credit grant came in (uploads waiting for credit look again).
    granted: Notify,
    /// The session is over (closed here, or the provider's control stream ended): nothing
    /// waits for credit any more.
    ended: AtomicBool,
}

/// Now, on tokio's clock (paused in tests) as a std instant for the sans-IO cores.
fn instant_now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl ClientSession {
    /// Starts the session over an authenticated tunnel (`io` replays any pending bytes).
    /// `now` gives the unix time for receipt timestamps.
    pub async fn start<S>(
        io: S,
        session_key: PrivateKeySigner,
        domain: Eip712Domain,
        session_id: B256,
        window: u64,
        now: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) -> Result<Arc<Self>, SessionError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        Self::start_with_lanes(io, session_key, domain, session_id, window, now, None).await
    }

    /// As [`start`](Self::start), and with `lanes` streams get TLS connections of their own
    /// while a few are ready (see [`crate::lane`]); the rest share the multiplexer.
    pub async fn start_with_lanes<S>(
        mut io: S,
        session_key: PrivateKeySigner,
        domain: Eip712Domain,
        session_id: B256,
        window: u64,
        now: Arc<dyn Fn() -> u64 + Send + Sync>,
        lanes: Option<LaneDialer>,
    ) -> Result<Arc<Self>, SessionError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        io.write_all(&[CONN_SESSION]).await?;
        let (mux, mut inbound) = mux::spawn(io, true);
        // Streams the provider opens are never asked for: drop them unread, bill nothing.
        tokio::spawn(async move { while inbound.recv().await.is_some() {} });
        let mut control = mux.open().await?;
        control.write_all(&[STREAM_CONTROL]).await?;
        let (mut cr, mut cw) = tokio::io::split(control);
        let session = Arc::new(Self {
            mux,
            control: Mutex::new(ClientControl::new(session_key, domain, session_id, window, instant_now())?),
            wake: Notify::new(),
            acked_notify: Notify::new(),
            lanes: lanes.map(crate::lane::LanePool::spawn),
            lane_streams: AtomicU64::new(0),
            relaying: AtomicU64::new(0),
            closing: Notify::new(),
            granted: Notify::new(),
            ended: AtomicBool::new(false),
        });
        // The control driver: sends what the core has due, sleeps until its next timer, a
        // wake-up from the data path, or the close.
        let s = session.clone();
        tokio::spawn(async move {
            loop {
                loop {
                    let frame = s.control.lock().ok().and_then(|mut c| c.poll_transmit(instant_now(), now()));
                    let Some(frame) = frame else { break };
                    if cw.write_all(&frame.to_bytes()).await.is_err() {
                        return;
                    }
                }
                let Ok(deadline) = s.control.lock().map(|c| c.poll_timeout()) else { return };
                tokio::select! {
                    () = s.closing.notified() => {
                        // The provider sees its control stream end and ends the session
                        // with its lanes; the multiplexed connection follows.
                        let _ = cw.shutdown().await;
                        return;
                    }
                    () = s.wake.notified() => {}
                    () = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {}
                }
            }
        });
        // Control frames from the provider.
        let s = session.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Ok(Some(f)) = read_frame(&mut cr, &mut buf).await {
                let event = s.control.lock().map_or(ClientEvent::None, |mut c| c.on_frame(f, instant_now()));
                match event {
                    ClientEvent::Granted => s.granted.notify_waiters(),
                    ClientEvent::Acked(_) => s.acked_notify.notify_waiters(),
                    ClientEvent::None => {}
                }
            }
            // No more grants can come: uploads waiting for one give up.
            s.end();
        });
        Ok(session)
    }

    fn end(&self) {
        self.ended.store(true, Ordering::Release);
        self.granted.notify_waiters();
    }

    /// Waits until some of `n` upload bytes fit in the credit granted; counts and returns how
    /// many may be sent now (0: the session is over).
    async fn take_upload(&self, n: u64) -> u64 {
        let try_take = || {
            let (k, ready) = self.control.lock().map_or((0, false), |mut c| {
                let k = c.take_upload(n, instant_now());
                (k, c.receipt_ready())
            });
            if ready {
                self.wake.notify_one();
            }
            k
        };
        // Fast path, the usual case in the copy loop: credit is there; no waiter is registered.
        if !self.ended.load(Ordering::Acquire) {
            let k = try_take();
            if k > 0 {
                return k;
            }
        }
        loop {
            let notified = self.granted.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.ended.load(Ordering::Acquire) {
                return 0;
            }
            let k = try_take();
            if k > 0 {
                return k;
            }
            // Out of credit: whatever is unsigned must be receipted for more to come.
            self.wake.notify_one();
            notified.await;
        }
    }

    /// Opens a stream to `target` through the provider: on a ready lane if there is one,
    /// else on the multiplexer.
    pub async fn open(&self, target: &Target) -> Result<TunnelStream, SessionError> {
        let mut guard = self.lanes.as_ref().map(|p| p.enter()).unwrap_or_default();
        if let Some(mut lane) = self.lanes.as_ref().and_then(|p| p.take(&mut guard)) {
            let mut head = vec![CONN_LANE];
            head.extend_from_slice(&target.encode());
            // A lane the provider has meanwhile dropped fails here or at the status byte: the
            // multiplexer takes the stream instead (the target header is idempotent: nothing
            // was dialled for a lane that never got it).
            if lane.write_all(&head).await.is_ok() {
                let mut status = [0u8; 1];
                match tokio::time::timeout(HEADER_TIMEOUT, lane.read_exact(&mut status)).await {
                    Ok(Ok(_)) if status[0] == socks::REP_SUCCEEDED => {
                        self.lane_streams.fetch_add(1, Ordering::Relaxed);
                        return Ok(TunnelStream::Lane(lane, guard));
                    }
                    Ok(Ok(_)) => return Err(SessionError::StreamRefused(status[0])),
                    Ok(Err(e)) => tracing::debug!(error = %e, "lane closed before use; using the multiplexer"),
                    Err(_) => return Err(SessionError::Timeout),
                }
            }
            crate::lane::LanePool::release(&mut guard);
        }
        Ok(TunnelStream::Mux(self.open_mux(STREAM_DATA, target).await?, guard))
    }

    /// A multiplexed stream of `kind` to `target`: the header out, the provider's status byte
    /// back.
    async fn open_mux(&self, kind: u8, target: &Target) -> Result<MuxStream, SessionError> {
        let mut s = self.mux.open().await?;
        let mut head = vec![kind];
        head.extend_from_slice(&target.encode());
        s.write_all(&head).await?;
        let mut status = [0u8; 1];
        tokio::time::timeout(HEADER_TIMEOUT, s.read_exact(&mut status)).await.map_err(|_| SessionError::Timeout)??;
        if status[0] != socks::REP_SUCCEEDED {
            return Err(SessionError::StreamRefused(status[0]));
        }
        Ok(s)
    }

    /// Streams opened on a lane of their own so far (the rest went over the multiplexer).
    #[must_use]
    pub fn lane_streams(&self) -> u64 {
        self.lane_streams.load(Ordering::Relaxed)
    }

    /// App connections being relayed through this session right now (a session being retired
    /// is closed once this reaches 0).
    #[must_use]
    pub fn relaying(&self) -> u64 {
        self.relaying.load(Ordering::Relaxed)
    }

    /// Authenticated lanes waiting to be used.
    #[must_use]
    pub fn ready_lanes(&self) -> usize {
        self.lanes.as_ref().map_or(0, |p| p.ready_len())
    }

    /// Whether the tunnel under this session is still up.
    #[must_use]
    pub fn is_alive(&self) -> bool {
        self.mux.is_alive()
    }

    /// Round trips of the control-stream pings (every [`PING_EVERY`]) and the ping still
    /// unanswered, if any: what the client's SLA watch judges.
    #[must_use]
    pub fn latency(&self) -> LatencyView {
        self.control.lock().map(|c| c.latency()).unwrap_or_default()
    }

    /// Counts `n` billable bytes of a stream this client opened (a probe's own accounting;
    /// the relay counts what it carries itself).
    pub fn count(&self, n: u64) {
        let ready = self.control.lock().is_ok_and(|mut c| {
            c.count(n, instant_now());
            c.receipt_ready()
        });
        if ready {
            self.wake.notify_one();
        }
    }

    /// `n` payload bytes arrived from the provider: counted, timed, and the receipt driver
    /// woken when one is due (not for every chunk).
    fn received(&self, n: u64) {
        let ready = self.control.lock().is_ok_and(|mut c| {
            c.on_received(n, instant_now());
            c.receipt_ready()
        });
        if ready {
            self.wake.notify_one();
        }
    }

    /// The highest cumulative byte count the provider acknowledged (persisted) so far.
    #[must_use]
    pub fn acknowledged(&self) -> u64 {
        self.control.lock().map(|c| c.acknowledged()).unwrap_or(0)
    }

    /// Bytes counted so far.
    #[must_use]
    pub fn counted(&self) -> u64 {
        self.control.lock().map(|c| c.counted()).unwrap_or(0)
    }

    /// Signs a final receipt for everything counted and waits (up to `deadline`) for the ack.
    pub async fn finish(&self, deadline: Duration) -> Result<u64, SessionError> {
        let target = self.counted();
        let wait = async {
            loop {
                let notified = self.acked_notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if self.acknowledged() >= target {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(deadline, wait).await.map_err(|_| SessionError::Timeout)?;
        Ok(target)
    }

    /// Ends the session's tunnel: the control stream is closed, so the provider stops serving
    /// the session and its lanes. Bytes not yet receipted are not paid: call
    /// [`ClientSession::finish`] first.
    pub fn close(&self) {
        if let Some(p) = &self.lanes {
            p.close();
        }
        self.end();
        self.closing.notify_one();
        // The connection itself ends once the provider has seen the control stream close.
        self.mux.close_after(CLOSE_LINGER);
    }

    /// Opens a UDP flow to `target` (see [`crate::udp`]): a multiplexed stream of kind
    /// [`crate::udp::STREAM_UDP`], never a lane.
    ///
    /// # Errors
    /// The session is gone, or the provider refused the target (its SOCKS reply code).
    pub async fn open_udp(&self, target: &Target) -> Result<TunnelStream, SessionError> {
        let s = self.open_mux(crate::udp::STREAM_UDP, target).await?;
        Ok(TunnelStream::Mux(s, crate::lane::LaneGuard::default()))
    }

    /// Sends one datagram on a UDP flow, framed, within the upload credit (all of the frame
    /// or nothing: a datagram is not split).
    ///
    /// # Errors
    /// The session ended, or the stream failed.
    pub async fn send_datagram<W: AsyncWrite + Unpin>(&self, w: &mut W, payload: &[u8]) -> std::io::Result<()> {
        let frame = crate::udp::frame(payload);
        let mut left = frame.len() as u64;
        while left > 0 {
            let k = self.take_upload(left).await;
            if k == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the session ended"));
            }
            left = left.saturating_sub(k);
        }
        w.write_all(&frame).await
    }

    /// Counts `n` bytes of a datagram frame that arrived (receipted like TCP bytes).
    pub fn datagram_received(&self, n: u64) {
        self.received(n);
    }

    /// A UDP flow (or another relay) began or ended on this session: [`Self::relaying`]
    /// counts it, so a renewed session stays open for it.
    pub(crate) fn relay_started(&self) {
        self.relaying.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn relay_ended(&self) {
        self.relaying.fetch_sub(1, Ordering::Relaxed);
    }

    /// Relays between an app's connection and a tunnel stream, counting both directions.
    pub async fn relay(&self, app: TcpStream, stream: TunnelStream) {
        struct Relaying<'a>(&'a AtomicU64);
        impl Drop for Relaying<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.relaying.fetch_add(1, Ordering::Relaxed);
        let _relaying = Relaying(&self.relaying);
        let (mut ar, mut aw) = app.into_split();
        let (mut sr, mut sw) = tokio::io::split(stream);
        let up = async {
            // Upload bytes are counted as they are sent, and sent only within the credit
            // granted: a receipt never prepays more than the provider agreed to carry.
            let r = pump(&mut ar, &mut sw, |n| self.take_upload(n)).await;
            let _ = sw.shutdown().await;
            r
        };
        let down = async {
            let r = pump(&mut sr, &mut aw, |n| {
                self.received(n);
                std::future::ready(n)
            })
            .await;
            let _ = aw.shutdown().await;
            r
        };
        let _ = tokio::join!(up, down);
    }
}

/// Serves a local proxy on `listener` through the route's current session: SOCKS5 (CONNECT, no auth) and HTTP
/// CONNECT, told apart by the first byte.
pub async fn serve_proxy<R: Route>(listener: TcpListener, route: R) {
    loop {
        let Ok((app, _)) = listener.accept().await else { return };
        let r = route.clone();
        tokio::spawn(async move {
            if let Err(e) = proxy_one(app, r).await {
                tracing::debug!(error = %e, "proxy connection ended");
            }
        });
    }
}

/// Where the local proxy sends each new app connection: the session to open it on now, and
/// what to do when that session turns out to be dead (a failover picks another).
pub trait Route: Clone + Send + Sync + 'static {
    fn current(&self) -> Option<Arc<ClientSession>>;
    fn failed(&self, dead: &Arc<ClientSession>);
}

/// A single session: no failover.
impl Route for Arc<ClientSession> {
    fn current(&self) -> Option<Arc<ClientSession>> {
        Some(self.clone())
    }
    fn failed(&self, _dead: &Arc<ClientSession>) {}
}

/// How long a new connection waits for a live session (during a failover) before failing.
const ROUTE_WAIT: Duration = Duration::from_secs(5);

/// Opens `target` on the route's current session; if that session's tunnel is gone, reports it
/// and tries the next one the route offers.
pub(crate) async fn open_routed<R: Route>(
    route: &R,
    target: &Target,
    udp: bool,
) -> Result<(Arc<ClientSession>, TunnelStream), SessionError> {
    let start = tokio::time::Instant::now();
    loop {
        match route.current() {
            Some(s) if s.is_alive() => match if udp { s.open_udp(target).await } else { s.open(target).await } {
                Ok(stream) => return Ok((s, stream)),
                // Decided by kind: a session whose tunnel is gone hands over to the next one.
                Err(e) if e.kind() == crate::ErrorKind::Failover && start.elapsed() < ROUTE_WAIT => {
                    route.failed(&s);
                    continue; // the route may have a standby ready right now
                }
                Err(e) => return Err(e),
            },
            Some(s) => {
                route.failed(&s);
                if route.current().is_some_and(|n| !Arc::ptr_eq(&n, &s)) {
                    continue;
                }
            }
            None => {}
        }
        if start.elapsed() >= ROUTE_WAIT {
            return Err(SessionError::Mux(MuxError::Closed));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn read_more(app: &mut TcpStream, buf: &mut Vec<u8>, limit: usize) -> Result<bool, SessionError> {
    if buf.len() >= limit {
        return Ok(false);
    }
    let mut b = [0u8; 512];
    let n = tokio::time::timeout(HEADER_TIMEOUT, app.read(&mut b)).await.map_err(|_| SessionError::Timeout)??;
    buf.extend_from_slice(&b[..n]);
    Ok(n > 0)
}

async fn proxy_one<R: Route>(mut app: TcpStream, route: R) -> Result<(), SessionError> {
    app.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(512);
    if !read_more(&mut app, &mut buf, 8192).await? {
        return Ok(());
    }
    match buf[0] {
        5 => socks_one(app, buf, route).await,
        // SOCKS4/4a: refused at once in its own reply format ("request rejected"), so the app
        // can say why instead of waiting.
        4 => {
            app.write_all(&[0, 0x5b, 0, 0, 0, 0, 0, 0]).await?;
            Ok(())
        }
        // An HTTP method starts with a letter.
        b if b.is_ascii_uppercase() => http_connect_one(app, buf, route).await,
        // Anything else (version 0, binary noise) is answered at once, not after a timeout.
        _ => {
            app.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await?;
            Ok(())
        }
    }
}

async fn http_connect_one<R: Route>(mut app: TcpStream, mut buf: Vec<u8>, route: R) -> Result<(), SessionError> {
    let target = loop {
        match socks::parse_http_connect(&buf) {
            Ok((t, _)) => break t,
            Err(SocksError::Incomplete) => {
                if !read_more(&mut app, &mut buf, 8192).await? {
                    app.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await?;
                    return Ok(());
                }
            }
            // Another method: this proxy only tunnels.
            Err(SocksError::Command(_)) => {
                app.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nAllow: CONNECT\r\nContent-Length: 0\r\n\r\n")
                    .await?;
                return Ok(());
            }
            // A CONNECT whose host, port or version is malformed: the request is bad.
            Err(_) => {
                app.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await?;
                return Ok(());
            }
        }
    };
    match open_routed(&route, &target, false).await {
        Ok((session, stream)) => {
            app.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await?;
            session.relay(app, stream).await;
        }
        Err(SessionError::StreamRefused(code)) => {
            let status = if code == socks::REP_NOT_ALLOWED { "403 Forbidden" } else { "502 Bad Gateway" };
            app.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes()).await?;
        }
        Err(e) => {
            app.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n").await?;
            return Err(e);
        }
    }
    Ok(())
}

async fn socks_one<R: Route>(mut app: TcpStream, mut buf: Vec<u8>, route: R) -> Result<(), SessionError> {
    let used = loop {
        match socks::parse_greeting(&buf) {
            Ok(n) => break n,
            Err(SocksError::Incomplete) if read_more(&mut app, &mut buf, 258).await? => {}
            Err(_) => {
                app.write_all(&[5, 0xff]).await?;
                return Ok(());
            }
        }
    };
    buf.drain(..used);
    app.write_all(&[5, 0]).await?;
    let target = loop {
        match socks::parse_command(&buf) {
            Ok((socks::CMD_UDP_ASSOCIATE, _, _)) => return crate::udp::associate(app, route).await,
            Ok((_, t, _)) => break t,
            Err(SocksError::Incomplete) if read_more(&mut app, &mut buf, 262).await? => {}
            Err(SocksError::Command(_)) => {
                app.write_all(&socks::reply(socks::REP_COMMAND_NOT_SUPPORTED)).await?;
                return Ok(());
            }
            Err(_) => {
                app.write_all(&socks::reply(socks::REP_ADDRESS_NOT_SUPPORTED)).await?;
                return Ok(());
            }
        }
    };
    match open_routed(&route, &target, false).await {
        Ok((session, stream)) => {
            app.write_all(&socks::reply(socks::REP_SUCCEEDED)).await?;
            session.relay(app, stream).await;
        }
        Err(SessionError::StreamRefused(code)) => app.write_all(&socks::reply(code)).await?,
        Err(e) => {
            app.write_all(&socks::reply(socks::REP_GENERAL_FAILURE)).await?;
            return Err(e);
        }
    }
    Ok(())
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
