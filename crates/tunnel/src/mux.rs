//! Stream multiplexing over the authenticated TLS connection, with yamux.
//!
//! A driver task owns the yamux connection: it opens outbound streams on request and hands
//! inbound ones to a bounded channel. Streams come back as tokio `AsyncRead + AsyncWrite`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};
use tokio_util::sync::CancellationToken;

/// A multiplexed stream.
pub type MuxStream = Compat<yamux::Stream>;

/// Most streams one tunnel carries at once (apps' connections + the control stream).
pub const MAX_STREAMS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    #[error("the tunnel is closed")]
    Closed,
    #[error("multiplexer: {0}")]
    Yamux(#[from] yamux::ConnectionError),
}

/// Opens streams on a running multiplexer. The connection is closed once every handle is
/// dropped, or when [`MuxHandle::close_after`] says so.
#[derive(Debug, Clone)]
pub struct MuxHandle {
    open: mpsc::Sender<oneshot::Sender<Result<yamux::Stream, yamux::ConnectionError>>>,
    close: CancellationToken,
}

/// How long closing a connection may take (a peer that stops reading cannot hold it open).
const CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl MuxHandle {
    /// Closes the connection (every stream on it ends) after `linger`, so that what was
    /// just written (a control stream's end) can reach the peer first.
    pub fn close_after(&self, linger: std::time::Duration) {
        let token = self.close.clone();
        if linger.is_zero() {
            token.cancel();
            return;
        }
        tokio::spawn(async move {
            tokio::time::sleep(linger).await;
            token.cancel();
        });
    }

    /// Whether the multiplexer (and so the connection under it) is still running.
    #[must_use]
    pub fn is_alive(&self) -> bool {
        !self.open.is_closed()
    }

    pub async fn open(&self) -> Result<MuxStream, MuxError> {
        let (tx, rx) = oneshot::channel();
        self.open.send(tx).await.map_err(|_| MuxError::Closed)?;
        let s = rx.await.map_err(|_| MuxError::Closed)??;
        Ok(s.compat())
    }
}

/// Bytes already read from the connection (after the auth exchange) replayed before it.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self { prefix, pos: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.pos < self.prefix.len() {
            let n = (self.prefix.len() - self.pos).min(buf.remaining());
            let start = self.pos;
            buf.put_slice(&self.prefix[start..start + n]);
            self.pos += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, b)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

enum Event {
    Inbound(yamux::Stream),
    Opened(Result<yamux::Stream, yamux::ConnectionError>),
    Request(oneshot::Sender<Result<yamux::Stream, yamux::ConnectionError>>),
    HandlesGone,
    Closed,
}

/// Starts the multiplexer over `io`; returns a handle to open streams and the inbound ones.
pub fn spawn<T>(io: T, client: bool) -> (MuxHandle, mpsc::Receiver<MuxStream>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut cfg = yamux::Config::default();
    cfg.set_max_num_streams(MAX_STREAMS);
    // Fewer, larger yamux frames: TLS splits records at 16 KiB anyway.
    cfg.set_split_send_size(64 * 1024);
    let mode = if client { yamux::Mode::Client } else { yamux::Mode::Server };
    let mut conn = yamux::Connection::new(io.compat(), cfg, mode);
    let (open_tx, mut open_rx) = mpsc::channel(16);
    let (in_tx, in_rx) = mpsc::channel(MAX_STREAMS);
    let close = CancellationToken::new();
    let closed = close.clone().cancelled_owned();
    tokio::spawn(async move {
        let mut pending: Option<oneshot::Sender<_>> = None;
        tokio::pin!(closed);
        loop {
            let ev = std::future::poll_fn(|cx| {
                if closed.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Event::Closed);
                }
                if pending.is_some() {
                    if let Poll::Ready(r) = conn.poll_new_outbound(cx) {
                        return Poll::Ready(Event::Opened(r));
                    }
                } else if let Poll::Ready(req) = open_rx.poll_recv(cx) {
                    return Poll::Ready(req.map_or(Event::HandlesGone, Event::Request));
                }
                match conn.poll_next_inbound(cx) {
                    Poll::Ready(Some(Ok(s))) => Poll::Ready(Event::Inbound(s)),
                    Poll::Ready(Some(Err(_)) | None) => Poll::Ready(Event::Closed),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            match ev {
                Event::Inbound(s) => {
                    // A full inbound queue means the peer opens streams faster than we serve
                    // them: drop the stream (it is reset) rather than grow without bound.
                    if in_tx.try_send(s.compat()).is_err() {
                        tracing::warn!("inbound stream queue full; stream dropped");
                    }
                }
                Event::Request(tx) => pending = Some(tx),
                // Nobody can use this connection any more: close it rather than hold a socket
                // (and the peer's) until the peer gives up.
                Event::HandlesGone => break,
                Event::Opened(r) => {
                    if let Some(tx) = pending.take() {
                        let _ = tx.send(r);
                    }
                }
                Event::Closed => break,
            }
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, std::future::poll_fn(|cx| conn.poll_close(cx))).await;
    });
    (MuxHandle { open: open_tx, close }, in_rx)
}
