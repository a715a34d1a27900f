//! The client's side of a metered session over an authenticated tunnel: it counts the bytes
//! of the streams it opens, signs receipts every half window, times the provider with pings
//! ([`ClientControl`], sans-IO), and opens streams on lanes or the multiplexer.
//!
//! Every client-opened stream starts with a type byte. Type 0 is the control stream (one per
//! session): `Receipt` and `Ping` frames go up, `ReceiptAck`, `CreditGrant` and `Pong` come
//! down (the client times pings to watch its SLA). Type 1 is a
//! data stream: a target header (`socks::Target::encode`) follows; the provider answers one
//! status byte (a SOCKS5 reply code) and then relays. Payload bytes after header and status are what both sides
//! count. Streams the provider opens towards the client are refused and never counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::clock::instant_now;
use crate::control::{ClientControl, ClientEvent};
pub use crate::error::SessionError;
use crate::lane::{LaneDialer, TunnelStream};
use crate::mux::{self, MuxHandle, MuxStream};
use crate::relay::pump;
use crate::socks::{self, Target};
use crate::wire::{read_frame, CONN_LANE, CONN_SESSION, HEADER_TIMEOUT, STREAM_CONTROL, STREAM_DATA, STREAM_UDP};

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
            control: Mutex::new(ClientControl::new(
                session_key,
                domain,
                session_id,
                window,
                instant_now(),
                rand::random(),
            )?),
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
                // Everything due goes in one write: one record on the wire, ending in padding.
                let mut batch = Vec::new();
                if let Ok(mut c) = s.control.lock() {
                    let (at, unix) = (instant_now(), now());
                    while let Some(frame) = c.poll_transmit(at, unix) {
                        frame.encode(&mut batch);
                    }
                }
                if !batch.is_empty() && cw.write_all(&batch).await.is_err() {
                    return;
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
                    () = crate::clock::sleep_until(deadline) => {}
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
    /// [`STREAM_UDP`], never a lane.
    ///
    /// # Errors
    /// The session is gone, or the provider refused the target (its SOCKS reply code).
    pub async fn open_udp(&self, target: &Target) -> Result<TunnelStream, SessionError> {
        let s = self.open_mux(STREAM_UDP, target).await?;
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
    pub fn relay_started(&self) {
        self.relaying.fetch_add(1, Ordering::Relaxed);
    }

    pub fn relay_ended(&self) {
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
