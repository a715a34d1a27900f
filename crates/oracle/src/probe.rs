//! Probing a provider through its tunnel, as a paying client would: latency is the median
//! round trip of small messages to the oracle's own echo sink; throughput is the goodput of a
//! few parallel streams from the oracle's own source, paced a little above the SLA rate (no
//! need to saturate the link to verify a promise) and measured after a short ramp.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use wirepact_tunnel::session::{ClientSession, SessionError};
use wirepact_tunnel::socks::Target;

const MODE_ECHO: u8 = b'E';
const MODE_SOURCE: u8 = b'S';
/// Longest a source stream may be asked to run.
const MAX_SOURCE: Duration = Duration::from_secs(10);

/// How a probe is run.
#[derive(Debug, Clone)]
pub struct ProbePlan {
    /// Round trips timed for latency (the median is reported).
    pub pings: usize,
    /// Parallel streams for throughput.
    pub streams: usize,
    /// Not counted: the streams ramp up.
    pub ramp: Duration,
    /// Counted.
    pub window: Duration,
    /// The source is paced at `sla * cap_pct / 100`.
    pub cap_pct: u64,
}

impl Default for ProbePlan {
    fn default() -> Self {
        Self {
            pings: 12,
            streams: 4,
            ramp: Duration::from_millis(250),
            window: Duration::from_millis(1500),
            cap_pct: 110,
        }
    }
}

/// What one probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub reachable: bool,
    /// Median round trip, microseconds.
    pub latency_us: u64,
    /// Goodput, kbit/s (10^3 bit/s).
    pub throughput_kbps: u64,
    /// Payload bytes this probe moved (both directions).
    pub bytes: u64,
    /// Wall time of the throughput phase.
    pub seconds: f64,
}

impl Measurement {
    #[must_use]
    pub fn unreachable() -> Self {
        Self { reachable: false, latency_us: 0, throughput_kbps: 0, bytes: 0, seconds: 0.0 }
    }

    /// Unreachable, or under the SLA rate (no tolerance: an oracle is careful on its own).
    #[must_use]
    pub fn looks_like_violation(&self, sla_kbps: u64) -> bool {
        !self.reachable || self.throughput_kbps < sla_kbps
    }

    /// The better of two probes of the same provider: a reachable one over an unreachable
    /// one, else the higher throughput and the lower latency.
    #[must_use]
    pub fn better(self, other: Self) -> Self {
        match (self.reachable, other.reachable) {
            (false, _) => other,
            (_, false) => self,
            _ => Self {
                reachable: true,
                latency_us: self.latency_us.min(other.latency_us),
                throughput_kbps: self.throughput_kbps.max(other.throughput_kbps),
                bytes: self.bytes + other.bytes,
                seconds: self.seconds + other.seconds,
            },
        }
    }
}

#[cfg(test)]
mod confirm_tests {
    use super::Measurement;

    fn m(kbps: u64, lat: u64) -> Measurement {
        Measurement { reachable: true, latency_us: lat, throughput_kbps: kbps, bytes: 10, seconds: 1.0 }
    }

    #[test]
    fn only_unreachable_or_slow_probes_are_confirmed() {
        assert!(Measurement::unreachable().looks_like_violation(20_000));
        assert!(m(19_999, 5_000).looks_like_violation(20_000));
        assert!(!m(20_000, 5_000).looks_like_violation(20_000));
    }

    #[test]
    fn the_better_reading_wins_and_a_dead_provider_stays_dead() {
        let b = m(10_000, 9_000).better(m(21_000, 7_000));
        assert_eq!((b.throughput_kbps, b.latency_us, b.reachable), (21_000, 7_000, true));
        assert_eq!(Measurement::unreachable().better(m(21_000, 7_000)).throughput_kbps, 21_000);
        assert_eq!(m(21_000, 7_000).better(Measurement::unreachable()).throughput_kbps, 21_000);
        assert!(!Measurement::unreachable().better(Measurement::unreachable()).reachable);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("tunnel: {0}")]
    Tunnel(#[from] wirepact_tunnel::TransportError),
    #[error("cannot sign the session auth: {0}")]
    Sign(#[from] wirepact_proto::SignatureError),
    #[error("probe stream: {0}")]
    Io(#[from] std::io::Error),
    #[error("the probe timed out")]
    Timeout,
}

/// The oracle's sink: echoes (`E`), or sends paced bytes (`S` + u64 rate in kbit/s + u64 ms).
#[derive(Debug, Clone, Copy)]
pub struct Sink {
    pub addr: SocketAddr,
}

impl Sink {
    /// Starts the sink on `listener` (runs until the runtime stops).
    #[must_use]
    pub fn spawn(listener: TcpListener) -> Option<Self> {
        let addr = listener.local_addr().ok()?;
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = serve_sink(s).await;
                });
            }
        });
        Some(Self { addr })
    }
}

async fn serve_sink(mut s: TcpStream) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut mode = [0u8; 1];
    s.read_exact(&mut mode).await?;
    match mode[0] {
        MODE_ECHO => {
            let mut buf = [0u8; 256];
            loop {
                let n = s.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                s.write_all(&buf[..n]).await?;
            }
        }
        MODE_SOURCE => {
            let mut hdr = [0u8; 16];
            s.read_exact(&mut hdr).await?;
            let kbps = u64::from_be_bytes(hdr[..8].try_into().unwrap_or_default()).max(1);
            let ms = u64::from_be_bytes(hdr[8..].try_into().unwrap_or_default());
            let run = Duration::from_millis(ms).min(MAX_SOURCE);
            let block = vec![0x5au8; 16 * 1024];
            let start = Instant::now();
            let mut sent: u64 = 0;
            while start.elapsed() < run {
                // Byte `sent` is due at sent * 8 / rate: 8e6 / kbps ns per byte.
                let due = start + Duration::from_nanos(sent.saturating_mul(8_000_000) / kbps);
                tokio::time::sleep_until(due).await;
                s.write_all(&block).await?;
                sent += block.len() as u64;
            }
            s.shutdown().await
        }
        _ => Ok(()),
    }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0)
}

/// Probes through `session` (already connected and authenticated) against `sink`, for an SLA
/// of `sla_kbps`.
///
/// # Errors
/// Stream failures; the caller reports the provider as reachable but with what was measured,
/// or unreachable if nothing worked.
pub async fn probe(
    session: &Arc<ClientSession>,
    sink: Sink,
    sla_kbps: u64,
    plan: &ProbePlan,
) -> Result<Measurement, ProbeError> {
    let target = Target::Ip(sink.addr.ip(), sink.addr.port());
    let budget = plan.ramp + plan.window + Duration::from_secs(5);
    let work = async {
        // Latency.
        let mut echo = session.open(&target).await?;
        echo.write_all(&[MODE_ECHO]).await?;
        session.count(1);
        let msg = [0x42u8; 32];
        let mut back = [0u8; 32];
        let mut rtts = Vec::with_capacity(plan.pings);
        for _ in 0..plan.pings {
            let t = Instant::now();
            echo.write_all(&msg).await?;
            echo.read_exact(&mut back).await?;
            rtts.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
            session.count(64);
        }
        drop(echo);

        // Throughput: `streams` paced sources, together `sla * cap`.
        let streams = plan.streams.max(1) as u64;
        let per_stream = (sla_kbps * plan.cap_pct / 100).div_ceil(streams);
        let run = plan.ramp + plan.window;
        let run_ms = u64::try_from(run.as_millis()).unwrap_or(u64::MAX);
        let start = Instant::now();
        let count_from = start + plan.ramp;
        let count_until = count_from + plan.window;
        let mut tasks = Vec::new();
        for _ in 0..streams {
            let mut s = session.open(&target).await?;
            let s2 = session.clone();
            let mut hdr = vec![MODE_SOURCE];
            hdr.extend_from_slice(&per_stream.to_be_bytes());
            hdr.extend_from_slice(&run_ms.to_be_bytes());
            s.write_all(&hdr).await?;
            s2.count(hdr.len() as u64);
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let (mut counted, mut total) = (0u64, 0u64);
                loop {
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n as u64,
                    };
                    s2.count(n);
                    total += n;
                    let now = Instant::now();
                    if now >= count_from && now <= count_until {
                        counted += n;
                    }
                    if now > count_until {
                        break;
                    }
                }
                (counted, total)
            }));
        }
        let (mut counted, mut total) = (0u64, 0u64);
        for t in tasks {
            let (c, a) = t.await.unwrap_or((0, 0));
            counted += c;
            total += a;
        }
        let secs = plan.window.as_secs_f64();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let kbps = ((counted * 8) as f64 / secs / 1000.0) as u64;
        Ok::<_, ProbeError>(Measurement {
            reachable: true,
            latency_us: median(rtts),
            throughput_kbps: kbps,
            bytes: total + 64 * plan.pings as u64,
            seconds: start.elapsed().as_secs_f64(),
        })
    };
    tokio::time::timeout(budget, work).await.map_err(|_| ProbeError::Timeout)?
}

/// Where and how to reach a provider for one probe session already open on chain.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    pub addr: SocketAddr,
    /// The provider's registered endpoint (its host name is the SNI, as for a customer).
    pub endpoint: String,
    pub tunnel_key: alloy::primitives::B256,
    pub session_id: alloy::primitives::B256,
    /// The session's `openedAt`: receipts and auth are dated on the chain's clock from it.
    pub opened_at: u64,
    pub sla_kbps: u64,
}

/// The whole probe of one provider once its session is open: tunnel, session, probe, final
/// receipt, and the tunnel closed again at both ends (every probe used to leave its
/// connection open on the provider and here until the provider shut down).
///
/// # Errors
/// The tunnel or the session could not be set up; the probe itself failed.
pub async fn probe_through_tunnel(
    t: &ProbeTarget,
    key: &alloy::signers::local::PrivateKeySigner,
    dom: &alloy::sol_types::Eip712Domain,
    sink: Sink,
    plan: &ProbePlan,
) -> Result<Measurement, ProbeError> {
    let clock = wirepact_tunnel::clock::chain_clock(t.opened_at, unix_now());
    let auth = wirepact_tunnel::session_auth_frame(key, dom, t.session_id, t.tunnel_key, clock(), rand::random())?;
    // The probe reaches the provider the way a customer's session does: the same transport
    // and the same server-name rule.
    let sni = wirepact_tunnel::transport::server_name_for(&t.endpoint, wirepact_tunnel::transport::DEFAULT_SERVER_NAME);
    let transport = wirepact_tunnel::TlsTransport::new(&sni, t.tunnel_key).with_hello_key(key.clone());
    let tun = wirepact_tunnel::Transport::dial(&transport, t.addr, &auth, Duration::from_secs(5)).await?;
    let cs = ClientSession::start(
        wirepact_tunnel::mux::Prefixed::new(tun.pending, tun.stream),
        key.clone(),
        dom.clone(),
        t.session_id,
        tun.credit_until.clamp(2, wirepact_tunnel::DEFAULT_WINDOW),
        clock,
    )
    .await?;
    let m = probe(&cs, sink, t.sla_kbps, plan).await;
    let _ = cs.finish(Duration::from_secs(3)).await;
    // The provider stops serving the probe session now, and the connection closes.
    cs.close();
    m
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
