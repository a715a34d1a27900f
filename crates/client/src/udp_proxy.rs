//! SOCKS5 UDP ASSOCIATE at the client: a relay socket on the proxy's address; each
//! destination an app sends to (a flow) is one UDP stream of the route's session (see
//! [`wirepact_tunnel::udp`] for the framing and the provider's side).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use wirepact_tunnel::session::{ClientSession, SessionError};
use wirepact_tunnel::socks::{self, Target};
use wirepact_tunnel::udp::{read_frame, roomy, MAX_DATAGRAM, MAX_FLOWS, UDP_IDLE};

use crate::proxy::{open_routed, Route};

/// Milliseconds since `start`, for idle tracking without a lock.
fn ms_since(start: tokio::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One destination of an association: its stream's writing half, and the task reading its
/// replies.
struct Flow {
    session: Arc<ClientSession>,
    w: tokio::io::WriteHalf<wirepact_tunnel::lane::TunnelStream>,
    last: Arc<AtomicU64>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.reader.abort();
        self.session.relay_ended();
    }
}

/// Serves a SOCKS5 UDP ASSOCIATE on `app` (whose request was already read): a relay socket on
/// the proxy's own address, told to the app; datagrams from the app's address only, each sent
/// through the route's session on the flow to its destination; replies back with the SOCKS
/// header naming their source. Ends when the app closes the TCP connection.
pub(crate) async fn associate<R: Route>(mut app: TcpStream, route: R) -> Result<(), SessionError> {
    let local_ip = app.local_addr()?.ip();
    let peer_ip = app.peer_addr()?.ip();
    let relay = match UdpSocket::bind((local_ip, 0)).await {
        Ok(u) => {
            roomy(&u);
            Arc::new(u)
        }
        Err(e) => {
            app.write_all(&socks::reply(socks::REP_GENERAL_FAILURE)).await?;
            return Err(e.into());
        }
    };
    app.write_all(&socks::reply_bound(relay.local_addr()?)).await?;
    let start = tokio::time::Instant::now();
    let mut flows: HashMap<Target, Flow> = HashMap::new();
    let mut app_addr: Option<SocketAddr> = None;
    let mut buf = vec![0u8; MAX_DATAGRAM + 300];
    let mut tcp_byte = [0u8; 64];
    let mut sweep = tokio::time::interval(UDP_IDLE / 4);
    sweep.tick().await;
    loop {
        tokio::select! {
            // The association lives as long as the TCP connection (RFC 1928 section 7).
            r = app.read(&mut tcp_byte) => {
                if matches!(r, Ok(0) | Err(_)) {
                    return Ok(());
                }
            }
            _ = sweep.tick() => {
                let now = ms_since(start);
                let idle = u64::try_from(UDP_IDLE.as_millis()).unwrap_or(u64::MAX);
                flows.retain(|_, f| now.saturating_sub(f.last.load(Ordering::Relaxed)) < idle);
            }
            r = relay.recv_from(&mut buf) => {
                let (n, from) = r?;
                // Only the app that asked, and once it has sent, only from that port.
                if from.ip() != peer_ip || app_addr.is_some_and(|a| a != from) {
                    continue;
                }
                app_addr = Some(from);
                let Ok((target, at)) = socks::parse_udp_request(&buf[..n]) else { continue };
                if !flows.contains_key(&target) {
                    if flows.len() >= MAX_FLOWS {
                        tracing::debug!("UDP association at its flow limit; datagram dropped");
                        continue;
                    }
                    match open_flow(&route, &target, relay.clone(), from, start).await {
                        Ok(f) => {
                            flows.insert(target.clone(), f);
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "UDP flow refused; datagram dropped");
                            continue;
                        }
                    }
                }
                let Some(f) = flows.get_mut(&target) else { continue };
                f.last.store(ms_since(start), Ordering::Relaxed);
                if f.session.send_datagram(&mut f.w, &buf[at..n]).await.is_err() {
                    flows.remove(&target);
                }
            }
        }
    }
}

/// Opens a flow to `target` on the route's session and starts relaying its replies to `app`.
async fn open_flow<R: Route>(
    route: &R,
    target: &Target,
    relay: Arc<UdpSocket>,
    app: SocketAddr,
    start: tokio::time::Instant,
) -> Result<Flow, SessionError> {
    let (session, stream) = open_routed(route, target, true).await?;
    session.relay_started();
    let (mut r, w) = tokio::io::split(stream);
    let last = Arc::new(AtomicU64::new(ms_since(start)));
    let (s, l, header) = (session.clone(), last.clone(), socks::udp_header(target));
    let reader = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(2048);
        let mut out = Vec::with_capacity(2048);
        while let Ok(Some(n)) = read_frame(&mut r, &mut buf).await {
            s.datagram_received(2 + n as u64);
            l.store(ms_since(start), Ordering::Relaxed);
            out.clear();
            out.extend_from_slice(&header);
            out.extend_from_slice(&buf[..n]);
            let _ = relay.send_to(&out, app).await;
        }
    });
    Ok(Flow { session, w, last, reader })
}
