//! The local proxy, the client's front end: SOCKS5 (CONNECT and UDP ASSOCIATE) and HTTP
//! CONNECT, told apart by the first byte, each app connection opened on the route's current
//! session and handed to the next one when that session's tunnel is gone.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wirepact_tunnel::lane::TunnelStream;
use wirepact_tunnel::mux::MuxError;
use wirepact_tunnel::session::{ClientSession, SessionError};
use wirepact_tunnel::socks::{self, SocksError, Target};
use wirepact_tunnel::wire::HEADER_TIMEOUT;

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
pub async fn open_routed<R: Route>(
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
                Err(e) if e.kind() == wirepact_proto::ErrorKind::Failover && start.elapsed() < ROUTE_WAIT => {
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
            Ok((socks::CMD_UDP_ASSOCIATE, _, _)) => return crate::udp_proxy::associate(app, route).await,
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
