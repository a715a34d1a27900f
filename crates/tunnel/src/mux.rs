//! Stream multiplexing over the authenticated TLS connection, with yamux.
//!
//! A driver task owns the yamux connection: it opens outbound streams on request and hands
//! inbound ones to a bounded channel. Streams come back as tokio `AsyncRead + AsyncWrite`.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt, TokioAsyncReadCompatExt};

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

/// Opens streams on a running multiplexer.
#[derive(Debug, Clone)]
pub struct MuxHandle {
    open: mpsc::Sender<oneshot::Sender<Result<yamux::Stream, yamux::ConnectionError>>>,
}

impl MuxHandle {
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
    tokio::spawn(async move {
        let mut pending: Option<oneshot::Sender<_>> = None;
        // Once every handle is dropped, no more outbound streams; inbound ones keep flowing.
        let mut handles_alive = true;
        loop {
            let ev = std::future::poll_fn(|cx| {
                if pending.is_some() {
                    if let Poll::Ready(r) = conn.poll_new_outbound(cx) {
                        return Poll::Ready(Event::Opened(r));
                    }
                } else if handles_alive {
                    if let Poll::Ready(req) = open_rx.poll_recv(cx) {
                        return Poll::Ready(req.map_or(Event::HandlesGone, Event::Request));
                    }
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
                Event::HandlesGone => handles_alive = false,
                Event::Opened(r) => {
                    if let Some(tx) = pending.take() {
                        let _ = tx.send(r);
                    }
                }
                Event::Closed => break,
            }
        }
        let _ = std::future::poll_fn(|cx| conn.poll_close(cx)).await;
    });
    (MuxHandle { open: open_tx }, in_rx)
}
