//! UDP through a session: the framing both sides use, and the provider's relay socket (the
//! client's SOCKS5 UDP ASSOCIATE is `wirepact-client`'s front end).
//!
//! Each destination an app sends to (a flow) is one multiplexed stream of kind
//! [`STREAM_UDP`](crate::wire::STREAM_UDP): the target header and a status byte as for TCP, then datagrams both ways,
//! each framed as `len u16 BE | payload` so their boundaries survive the byte stream. Every
//! frame byte is metered and receipted like TCP bytes (the provider takes credit for a whole
//! frame before it sends it on). A flow with no datagram either way for [`UDP_IDLE`] ends, at
//! both ends; an association ends with its SOCKS TCP connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::UdpSocket;

use crate::egress::EgressPolicy;
use crate::error::SessionError;
use crate::relay::{read_target_header, Credit};
use crate::socks::{self, Target};

/// A flow with no datagram either way for this long ends.
pub const UDP_IDLE: Duration = Duration::from_secs(60);

/// Flows one association may hold at once (each is a stream and, at the provider, a socket).
pub const MAX_FLOWS: usize = 256;

/// The largest datagram carried (a UDP payload over IPv4 is at most 65,507 bytes).
pub const MAX_DATAGRAM: usize = 65_535;

/// Receive buffer asked for the relay sockets: a burst waiting for the session's writer is
/// held by the kernel instead of dropped (the default ~200 KiB is ~1 ms at 1 Gbit/s).
const SOCKET_BUFFER: usize = 4 << 20;

pub fn roomy(u: &UdpSocket) {
    let s = socket2::SockRef::from(u);
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
}

/// `len u16 BE | payload`.
#[must_use]
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len().min(MAX_DATAGRAM)).unwrap_or(u16::MAX);
    let mut v = Vec::with_capacity(2 + payload.len());
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&payload[..usize::from(len)]);
    v
}

/// Reads one framed datagram into `buf`; `None` at a clean end of the stream.
///
/// # Errors
/// The stream failed or ended inside a frame.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, buf: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    let mut len = [0u8; 2];
    match r.read_exact(&mut len[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    r.read_exact(&mut len[1..]).await?;
    let n = usize::from(u16::from_be_bytes(len));
    buf.resize(n, 0);
    r.read_exact(&mut buf[..n]).await?;
    Ok(Some(n))
}

/// Milliseconds since `start`, for idle tracking without a lock.
fn ms_since(start: tokio::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Resolves when nothing was `touch`ed for [`UDP_IDLE`].
async fn idle_out(start: tokio::time::Instant, last: &AtomicU64) {
    loop {
        let quiet = Duration::from_millis(ms_since(start).saturating_sub(last.load(Ordering::Relaxed)));
        if quiet >= UDP_IDLE {
            return;
        }
        tokio::time::sleep(UDP_IDLE - quiet).await;
    }
}

/// Takes credit for `n` bytes, all of them (a datagram is not split); false if the session
/// ended.
async fn acquire_all(credit: &Credit, n: u64) -> bool {
    let mut left = n;
    while left > 0 {
        let k = credit.acquire(left).await;
        if k == 0 {
            return false;
        }
        left = left.saturating_sub(k);
    }
    true
}

/// The provider's side of a flow: a UDP socket connected to the target (under the egress
/// policy), datagrams relayed both ways within the session's credit, until the client closes
/// the stream, the session ends, or the flow idles out.
pub(crate) async fn serve_udp<S>(
    mut s: S,
    target: Target,
    credit: Arc<Credit>,
    egress: &crate::egress::EgressPolicy,
) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let addr = match crate::relay::resolve(&target, egress).await {
        Ok(a) => a,
        Err(code) => {
            s.write_all(&[code]).await?;
            return Ok(());
        }
    };
    let local: SocketAddr =
        if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { (std::net::Ipv6Addr::UNSPECIFIED, 0).into() };
    let sock = match UdpSocket::bind(local).await {
        Ok(u) if u.connect(addr).await.is_ok() => {
            roomy(&u);
            u
        }
        _ => {
            s.write_all(&[socks::REP_GENERAL_FAILURE]).await?;
            return Ok(());
        }
    };
    s.write_all(&[socks::REP_SUCCEEDED]).await?;
    let (mut sr, mut sw) = tokio::io::split(s);
    let start = tokio::time::Instant::now();
    let last = AtomicU64::new(0);
    let up = async {
        let mut buf = Vec::with_capacity(2048);
        while let Some(n) = read_frame(&mut sr, &mut buf).await? {
            if !acquire_all(&credit, 2 + n as u64).await {
                break;
            }
            last.store(ms_since(start), Ordering::Relaxed);
            // A destination that refuses (ICMP unreachable) fails this send: the flow goes on,
            // as UDP does.
            let _ = sock.send(&buf[..n]).await;
        }
        Ok::<_, std::io::Error>(())
    };
    let down = async {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let n = match sock.recv(&mut buf).await {
                Ok(n) => n,
                // An ICMP error for an earlier datagram: not the end of the flow.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            };
            if !acquire_all(&credit, 2 + n as u64).await {
                return Ok(());
            }
            last.store(ms_since(start), Ordering::Relaxed);
            sw.write_all(&frame(&buf[..n])).await?;
        }
    };
    tokio::select! {
        r = up => r?,
        r = down => r?,
        () = idle_out(start, &last) => tracing::debug!(%addr, "UDP flow idle; closed"),
    }
    Ok(())
}

/// Serves one UDP flow stream: its target header, then [`crate::udp::serve_udp`].
pub(crate) async fn serve_udp_stream<S>(
    mut s: S,
    credit: Arc<Credit>,
    egress: &EgressPolicy,
) -> Result<(), SessionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some((target, early)) = read_target_header(&mut s).await? else { return Ok(()) };
    serve_udp(crate::mux::Prefixed::new(early, s), target, credit, egress).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datagram_boundaries_survive_the_byte_stream() {
        let (mut a, mut b) = tokio::io::duplex(1 << 12);
        let sent: Vec<Vec<u8>> = vec![b"one".to_vec(), Vec::new(), vec![7u8; 1400], vec![9u8; MAX_DATAGRAM]];
        let frames: Vec<Vec<u8>> = sent.iter().map(|d| frame(d)).collect();
        // The writer runs beside the reader: the pipe holds less than the largest frame.
        tokio::spawn(async move {
            for f in frames {
                a.write_all(&f).await.expect("write");
            }
        });
        let mut buf = Vec::new();
        for d in &sent {
            let n = read_frame(&mut b, &mut buf).await.expect("read").expect("a frame");
            assert_eq!(&buf[..n], &d[..]);
        }
        assert_eq!(read_frame(&mut b, &mut buf).await.expect("end"), None, "a clean end");
    }

    /// A flow nobody uses any more ends at the provider after [`UDP_IDLE`] (its socket with
    /// it); one in use does not. Paused clock: the minute passes without waiting for it.
    #[tokio::test(start_paused = true)]
    async fn the_providers_flow_ends_after_a_quiet_minute_not_before() {
        let echo = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let target = Target::Ip(echo.local_addr().expect("addr").ip(), echo.local_addr().expect("addr").port());
        let (mut client, provider) = tokio::io::duplex(1 << 16);
        let credit = Arc::new(Credit::for_test(1 << 20));
        let egress = crate::egress::EgressPolicy::new(vec!["127.0.0.0/8".parse().expect("cidr")]);
        let served = tokio::spawn(async move { serve_udp(provider, target, credit, &egress).await });
        let mut status = [0u8; 1];
        client.read_exact(&mut status).await.expect("status");
        assert_eq!(status[0], socks::REP_SUCCEEDED);
        // Active for two idle periods: a datagram every half period keeps it open.
        let mut buf = vec![0u8; 64];
        for i in 0..4u8 {
            client.write_all(&frame(&[i])).await.expect("send");
            let (n, _) = echo.recv_from(&mut buf).await.expect("arrives");
            assert_eq!(&buf[..n], &[i]);
            tokio::time::sleep(UDP_IDLE / 2).await;
            assert!(!served.is_finished(), "closed while in use ({i})");
        }
        // Then quiet: it ends within the next idle period.
        tokio::time::sleep(UDP_IDLE).await;
        let ended = tokio::time::timeout(Duration::from_secs(1), served).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "the idle flow ended cleanly");
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_frame_is_an_error_not_a_short_datagram() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&[0, 10, 1, 2, 3]).await.expect("write");
        drop(a);
        let mut buf = Vec::new();
        assert!(read_frame(&mut b, &mut buf).await.is_err());
    }
}
