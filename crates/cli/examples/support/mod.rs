//! What the CLI's benchmarks share.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A SOCKS5 CONNECT through `proxy` to the IPv4 `origin`; `None` if any step fails or the
/// proxy refuses.
pub async fn socks_connect(proxy: SocketAddr, origin: SocketAddr) -> Option<TcpStream> {
    let mut s = TcpStream::connect(proxy).await.ok()?;
    let IpAddr::V4(ip) = origin.ip() else { return None };
    s.write_all(&[5, 1, 0]).await.ok()?;
    let mut r = [0u8; 2];
    s.read_exact(&mut r).await.ok()?;
    let mut req = vec![5, 1, 0, 1];
    req.extend_from_slice(&ip.octets());
    req.extend_from_slice(&origin.port().to_be_bytes());
    s.write_all(&req).await.ok()?;
    let mut rep = [0u8; 10];
    s.read_exact(&mut rep).await.ok()?;
    (rep[1] == 0).then_some(s)
}
