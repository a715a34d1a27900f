//! UDP benchmark: an app of the bench's own speaks SOCKS5 UDP ASSOCIATE to (a) the wirepact
//! client (through the PQ TLS session to the provider) and (b) another SOCKS5 proxy given on
//! the command line (shadowsocks-rust's sslocal in UDP mode, say), and sends straight to the
//! origin as the baseline, all in one run against the same origin:
//!
//! - round trip of a 64-byte echo, median of `--pings` (default 300), each path;
//! - a paced one-way stream of 1,200-byte datagrams for `--seconds` (default 2) at rising
//!   rates; loss is what the origin did not receive;
//!
//! and ends with `udp_vs_shadowsocks`, `udp_loss_pct_100mbps`, `udp_rtt_overhead_ms`.
//!
//! cargo run --release -p wirepact-client --example bench_udp -- [--socks ADDR] [--seconds S]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use wirepact_tunnel::DEFAULT_WINDOW;

#[allow(dead_code)] // the bulk-transfer helpers are the TCP benchmarks'
mod support;
use support::tunnel::tunnel;

/// Datagram payload of the paced stream (fits any path's MTU with the headers added).
const DGRAM: usize = 1200;
/// Rates tried, Mbit/s.
const RATES: [u64; 7] = [25, 50, 100, 200, 400, 800, 1600];
/// Loss allowed at "the highest rate with <= 0.1 % loss".
const LOSS_OK_PCT: f64 = 0.1;

/// The origin: echoes datagrams that start with b'E', counts the others (bytes) as a sink.
async fn origin() -> (SocketAddr, Arc<AtomicU64>) {
    let u = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let sock = socket2::SockRef::from(&u);
    let _ = sock.set_recv_buffer_size(8 << 20);
    let a = u.local_addr().expect("addr");
    let got = Arc::new(AtomicU64::new(0));
    let g = got.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        loop {
            let Ok((n, from)) = u.recv_from(&mut buf).await else { return };
            if buf.first() == Some(&b'E') {
                let _ = u.send_to(&buf[..n], from).await;
            } else {
                g.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (a, got)
}

/// A path to the origin: straight, or a SOCKS5 UDP association (the TCP connection is kept).
struct Path {
    sock: UdpSocket,
    /// `Some((relay, header))` through a proxy: datagrams go to the relay with the header.
    via: Option<(SocketAddr, Vec<u8>)>,
    _tcp: Option<TcpStream>,
}

impl Path {
    async fn direct() -> Self {
        Self { sock: bind().await, via: None, _tcp: None }
    }

    async fn socks(proxy: SocketAddr, origin: SocketAddr) -> Self {
        let mut tcp = TcpStream::connect(proxy).await.expect("proxy");
        tcp.write_all(&[5, 1, 0]).await.expect("greet");
        let mut m = [0u8; 2];
        tcp.read_exact(&mut m).await.expect("method");
        tcp.write_all(&[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]).await.expect("udp associate");
        let mut rep = [0u8; 10];
        tcp.read_exact(&mut rep).await.expect("reply");
        assert_eq!(rep[1], 0, "UDP ASSOCIATE refused by {proxy}");
        let mut relay = SocketAddr::from(([rep[4], rep[5], rep[6], rep[7]], u16::from_be_bytes([rep[8], rep[9]])));
        if relay.ip().is_unspecified() {
            relay.set_ip(proxy.ip());
        }
        let std::net::IpAddr::V4(ip) = origin.ip() else { panic!("v4 origin") };
        let mut header = vec![0, 0, 0, 1];
        header.extend_from_slice(&ip.octets());
        header.extend_from_slice(&origin.port().to_be_bytes());
        Self { sock: bind().await, via: Some((relay, header)), _tcp: Some(tcp) }
    }

    async fn send(&self, origin: SocketAddr, payload: &[u8], scratch: &mut Vec<u8>) {
        match &self.via {
            None => {
                let _ = self.sock.send_to(payload, origin).await;
            }
            Some((relay, header)) => {
                scratch.clear();
                scratch.extend_from_slice(header);
                scratch.extend_from_slice(payload);
                let _ = self.sock.send_to(scratch, relay).await;
            }
        }
    }

    /// Median round trip of a 64-byte echo, ms.
    async fn rtt(&self, origin: SocketAddr, pings: usize) -> f64 {
        let mut scratch = Vec::new();
        let mut buf = vec![0u8; 2048];
        let mut times = Vec::with_capacity(pings);
        let ping = [b'E'; 64];
        for _ in 0..pings {
            let t = Instant::now();
            self.send(origin, &ping, &mut scratch).await;
            if tokio::time::timeout(Duration::from_secs(1), self.sock.recv_from(&mut buf)).await.is_ok() {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        assert!(!times.is_empty(), "no echo came back");
        median(times)
    }

    /// Sends a paced stream at `mbps` for `secs`; returns (sent, received) datagrams.
    async fn stream(&self, origin: SocketAddr, got: &AtomicU64, mbps: u64, secs: f64) -> (u64, u64) {
        let before = got.load(Ordering::Relaxed);
        let payload = vec![b'S'; DGRAM];
        let mut scratch = Vec::with_capacity(DGRAM + 32);
        // Datagrams per millisecond tick, carried over as a fraction.
        let per_ms = (mbps as f64 * 1e6 / 8.0) / DGRAM as f64 / 1000.0;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let start = Instant::now();
        let (mut sent, mut owed) = (0u64, 0.0f64);
        while start.elapsed().as_secs_f64() < secs {
            tick.tick().await;
            owed += per_ms;
            while owed >= 1.0 {
                self.send(origin, &payload, &mut scratch).await;
                sent += 1;
                owed -= 1.0;
            }
        }
        // Stragglers.
        tokio::time::sleep(Duration::from_millis(300)).await;
        (sent, got.load(Ordering::Relaxed) - before)
    }
}

async fn bind() -> UdpSocket {
    let u = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let _ = socket2::SockRef::from(&u).set_send_buffer_size(4 << 20);
    u
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Loss percent of a stream.
fn loss(sent: u64, got: u64) -> f64 {
    if sent == 0 {
        return 0.0;
    }
    100.0 * sent.saturating_sub(got) as f64 / sent as f64
}

/// The rates a path carries within the loss bound, from the lowest up; returns the goodput
/// (Mbit/s received) at the highest one and the loss at 100 Mbit/s.
async fn sweep(name: &str, path: &Path, origin: SocketAddr, got: &AtomicU64, secs: f64) -> (f64, f64) {
    let (mut best, mut at100) = (0.0f64, f64::NAN);
    for mbps in RATES {
        let (sent, recv) = path.stream(origin, got, mbps, secs).await;
        let l = loss(sent, recv);
        let goodput = recv as f64 * DGRAM as f64 * 8.0 / 1e6 / secs;
        println!("  {name:<12} {mbps:>5} Mbit/s paced: sent {sent:>8}, received {recv:>8}, loss {l:>7.3} %, goodput {goodput:>8.1} Mbit/s");
        if mbps == 100 {
            at100 = l;
        }
        if l <= LOSS_OK_PCT {
            best = best.max(goodput);
        } else if mbps >= 100 {
            break;
        }
    }
    (best, at100)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let socks: Option<SocketAddr> = arg("--socks").map(|v| v.parse().expect("--socks ADDR"));
    let secs: f64 = arg("--seconds").map_or(2.0, |v| v.parse().expect("--seconds S"));
    let pings: usize = arg("--pings").map_or(300, |v| v.parse().expect("--pings N"));

    let (o, got) = origin().await;
    let t = tunnel(DEFAULT_WINDOW, false).await;
    let direct = Path::direct().await;
    let wire = Path::socks(t.proxy, o).await;
    let ss = match socks {
        Some(p) => Some(Path::socks(p, o).await),
        None => None,
    };
    // Warm-up: the flows open (the tunnel's first datagram opens its stream).
    for p in [Some(&direct), Some(&wire), ss.as_ref()].into_iter().flatten() {
        p.rtt(o, 20).await;
    }

    println!("round trip of a 64-byte echo, median of {pings}:");
    let rtt_direct = direct.rtt(o, pings).await;
    let rtt_wire = wire.rtt(o, pings).await;
    println!("  direct       {rtt_direct:.3} ms\n  wirepact     {rtt_wire:.3} ms");
    if let Some(p) = &ss {
        println!("  shadowsocks  {:.3} ms", p.rtt(o, pings).await);
    }

    println!("paced streams of {DGRAM}-byte datagrams, {secs} s each:");
    let (direct_best, _) = sweep("direct", &direct, o, &got, secs).await;
    let (wire_best, wire_100) = sweep("wirepact", &wire, o, &got, secs).await;
    let ss_best = match &ss {
        Some(p) => Some(sweep("shadowsocks", p, o, &got, secs).await.0),
        None => None,
    };
    println!(
        "highest goodput within {LOSS_OK_PCT} % loss: direct {direct_best:.1}, wirepact {wire_best:.1}{} Mbit/s",
        ss_best.map_or(String::new(), |b| format!(", shadowsocks {b:.1}"))
    );
    println!("receipted by the tunnel: {} bytes", t.client.counted());
    match ss_best {
        Some(b) if b > 0.0 => println!("udp_vs_shadowsocks: {:.2}", wire_best / b),
        _ => println!("udp_vs_shadowsocks: n/a (no --socks proxy carried UDP)"),
    }
    println!("udp_loss_pct_100mbps: {wire_100:.3}");
    println!("udp_rtt_overhead_ms: {:.3}", rtt_wire - rtt_direct);
}
