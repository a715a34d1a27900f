//! The provider's data path: a session's shared credit, and the relay of one stream to its
//! target under the egress policy, forwarding only what the credit allows.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::control::ProviderControl;
use crate::egress::EgressPolicy;
use crate::error::SessionError;
use crate::impair::Impairment;
use crate::socks::{self, SocksError, Target};
use crate::wire::HEADER_TIMEOUT;

pub(crate) const CHUNK: usize = 64 * 1024;

/// A session's credit on the provider, shared by its multiplexed streams and its lanes.
pub(crate) struct Credit {
    control: Mutex<ProviderControl>,
    more: Notify,
    /// The session ended: nothing more is forwarded.
    closed: AtomicBool,
}

impl Credit {
    pub(crate) fn new(control: ProviderControl) -> Self {
        Self { control: Mutex::new(control), more: Notify::new(), closed: AtomicBool::new(false) }
    }

    /// The session's control core (its meter).
    pub(crate) fn control(&self) -> Result<std::sync::MutexGuard<'_, ProviderControl>, SessionError> {
        self.control.lock().map_err(|_| SessionError::Poisoned)
    }

    /// More credit was granted: streams waiting for it look again.
    pub(crate) fn granted(&self) {
        self.more.notify_waiters();
    }

    /// The session ended: nothing more is forwarded, and every waiting stream is told.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.more.notify_waiters();
    }

    /// Credit for `window` bytes and no receipt yet (tests of a single stream kind).
    #[cfg(test)]
    pub(crate) fn for_test(window: u64) -> Self {
        use alloy::primitives::{Address, B256};
        let meter = crate::meter::ProviderMeter::new(window).expect("window");
        let domain = wirepact_proto::domain(0, Address::ZERO);
        Self {
            control: Mutex::new(ProviderControl::new(
                domain,
                B256::ZERO,
                Address::ZERO,
                meter,
                std::time::Instant::now(),
                0,
            )),
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
pub(crate) async fn read_target_header<S>(s: &mut S) -> Result<Option<(Target, Vec<u8>)>, SessionError>
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
pub(crate) async fn pump<R, W, F, Fut>(r: &mut R, w: &mut W, gate: F) -> std::io::Result<()>
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
