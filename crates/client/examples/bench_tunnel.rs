//! Bulk-transfer benchmark: an app fetching from a local origin through (a) direct loopback,
//! (b) a SOCKS5 proxy given on the command line (shadowsocks-rust's sslocal, say) and (c) the
//! wirepact tunnel (client SOCKS5 -> PQ TLS -> provider -> origin), with 1 and 8 parallel
//! streams, all in one run on the same origin and discarding sink. Also receipts on vs off
//! (metering with a normal credit window vs one so large no receipt is ever needed) and the
//! connect overhead of the tunnel (TLS handshake + session auth) over a plain TCP connect.
//! Camouflage (issue 21): the same session over veil, the random-looking transport, against
//! shadowsocks; and TLS to a provider with a cover site and the ClientHello gate against plain
//! TLS, in throughput and in connect time.
//!
//! cargo run --release -p wirepact-client --example bench_tunnel -- [--bytes N] [--socks ADDR]
//!     [--rounds N] [--streams N] [--window BYTES] [--no-lanes] [--only tunnel|socks|relay|veil|covered|direct]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::B256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wirepact_tunnel::{session_auth_frame, DEFAULT_WINDOW};

mod support;
use support::tunnel::{rand_nonce, tunnel, tunnel_over, Over};
use support::{answer_size, ask_size, rate};

/// Medians over the rounds of one stream count: throughputs (bytes/s) and, less noisy on a
/// shared machine, ratios taken within each round (the paths run back to back).
struct Row {
    tunnel_vs_direct: f64,
    tunnel_vs_off: f64,
    tunnel_vs_socks: Option<f64>,
    tunnel_vs_relay: f64,
    veil_vs_socks: Option<f64>,
    covered_vs_tunnel: f64,
}

/// A stand-in for a cover site's port: accepts and holds connections (the customers never
/// reach it; only its dial shows in the provider's accept).
async fn cover_site() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
            if held.len() > 256 {
                held.remove(0);
            }
        }
    });
    a
}

/// A bare SOCKS5 relay without encryption or multiplexing (one task per connection, kernel
/// copies only): the most any proxy adding the same two loopback hops could reach here.
async fn plain_relay() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = c.set_nodelay(true);
                let mut hello = [0u8; 3];
                let mut req = [0u8; 10];
                if c.read_exact(&mut hello).await.is_err() || c.write_all(&[5, 0]).await.is_err() {
                    return;
                }
                if c.read_exact(&mut req).await.is_err() {
                    return;
                }
                let ip = std::net::Ipv4Addr::new(req[4], req[5], req[6], req[7]);
                let port = u16::from_be_bytes([req[8], req[9]]);
                let Ok(mut o) = TcpStream::connect((ip, port)).await else { return };
                let _ = o.set_nodelay(true);
                if c.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional_with_sizes(&mut c, &mut o, 64 * 1024, 64 * 1024).await;
                }
            });
        }
    });
    a
}

/// Origin: reads 8 bytes (the size wanted, u64 BE), sends that many bytes.
async fn origin() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let block = Arc::new(vec![0x5au8; 256 * 1024]);
        while let Ok((mut s, _)) = l.accept().await {
            let block = block.clone();
            tokio::spawn(async move {
                let _ = s.set_nodelay(true);
                answer_size(&mut s, &block).await;
            });
        }
    });
    a
}

async fn socks_open(proxy: SocketAddr, target: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(proxy).await.expect("proxy");
    s.set_nodelay(true).expect("nodelay");
    let std::net::IpAddr::V4(ip) = target.ip() else { panic!("v4") };
    let mut req = vec![5, 1, 0];
    s.write_all(&req).await.expect("greet");
    let mut r = [0u8; 2];
    s.read_exact(&mut r).await.expect("method");
    req = vec![5, 1, 0, 1];
    req.extend_from_slice(&ip.octets());
    req.extend_from_slice(&target.port().to_be_bytes());
    s.write_all(&req).await.expect("request");
    let mut rep = [0u8; 10];
    s.read_exact(&mut rep).await.expect("reply");
    assert_eq!(rep[1], 0, "proxy refused");
    s
}

/// Fetches `bytes` split over `streams` parallel connections; returns bytes/s.
async fn fetch(proxy: Option<SocketAddr>, origin: SocketAddr, bytes: u64, streams: u64) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let each = bytes / streams;
        tasks.push(tokio::spawn(async move {
            let mut s = match proxy {
                Some(p) => socks_open(p, origin).await,
                None => TcpStream::connect(origin).await.expect("origin"),
            };
            ask_size(&mut s, each).await;
        }));
    }
    rate(start, tasks, bytes).await
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let bytes: u64 = arg("--bytes").map_or(512 << 20, |v| v.parse().expect("--bytes N"));
    let socks: Option<SocketAddr> = arg("--socks").map(|v| v.parse().expect("--socks ADDR"));
    let rounds: usize = arg("--rounds").map_or(5, |v| v.parse().expect("--rounds N"));

    let o = origin().await;
    let window: u64 = arg("--window").map_or(DEFAULT_WINDOW, |v| v.parse().expect("--window BYTES"));
    // Lanes on unless --no-lanes (every stream over the one multiplexed connection).
    let lanes = !args.iter().any(|a| a == "--no-lanes");
    let on = tunnel(window, lanes).await;
    let off = tunnel(u64::MAX / 4, lanes).await;
    let relay = plain_relay().await;
    let veil = tunnel_over(window, lanes, Over::Veil).await;
    let covered = tunnel_over(window, lanes, Over::Covered(cover_site().await)).await;
    // warm up
    fetch(Some(veil.proxy), o, 8 << 20, 1).await;
    fetch(Some(covered.proxy), o, 8 << 20, 1).await;
    fetch(Some(on.proxy), o, 8 << 20, 1).await;
    fetch(Some(off.proxy), o, 8 << 20, 1).await;
    fetch(Some(relay), o, 8 << 20, 1).await;
    if let Some(p) = socks {
        fetch(Some(p), o, 8 << 20, 1).await;
    }

    // --only PATH (tunnel, socks, relay or direct): that path alone, for a profiler
    // (`perf record -a`) to see its CPU cost per byte without the others.
    if let Some(only) = arg("--only") {
        let streams: u64 = arg("--streams").map_or(8, |v| v.parse().expect("--streams N"));
        let proxy = match only.as_str() {
            "tunnel" => Some(on.proxy),
            "socks" => Some(socks.expect("--only socks needs --socks ADDR")),
            "relay" => Some(relay),
            "veil" => Some(veil.proxy),
            "covered" => Some(covered.proxy),
            "direct" => None,
            other => panic!("--only {other}: expected tunnel, socks, relay, veil, covered or direct"),
        };
        for _ in 0..rounds {
            let v = fetch(proxy, o, bytes, streams).await;
            println!("streams={streams}: {only} {:.0} MB/s", v / 1e6);
        }
        return;
    }

    let mut table = Vec::new();
    let mut relay_vs_direct = f64::INFINITY;
    let counts: Vec<u64> = arg("--streams").map_or(vec![1, 8], |v| vec![v.parse().expect("--streams N")]);
    for streams in counts {
        let (mut d, mut t, mut n, mut s, mut r) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut td, mut tn, mut ts, mut rd, mut tr) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut vs, mut ct, mut vv, mut cv) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate which tunnel goes first so a drift in the machine's load favours neither.
            let direct = fetch(None, o, bytes, streams).await;
            // The gated TLS tunnel runs right beside the plain one, in alternating order too.
            let (tun, no_receipts, over_cover) = if round % 2 == 0 {
                let a = fetch(Some(on.proxy), o, bytes, streams).await;
                let c = fetch(Some(covered.proxy), o, bytes, streams).await;
                (a, fetch(Some(off.proxy), o, bytes, streams).await, c)
            } else {
                let b = fetch(Some(off.proxy), o, bytes, streams).await;
                let c = fetch(Some(covered.proxy), o, bytes, streams).await;
                (fetch(Some(on.proxy), o, bytes, streams).await, b, c)
            };
            let bare = fetch(Some(relay), o, bytes, streams).await;
            let over_veil = fetch(Some(veil.proxy), o, bytes, streams).await;
            vv.push(over_veil);
            cv.push(over_cover);
            ct.push(over_cover / tun);
            if let Some(p) = socks {
                let v = fetch(Some(p), o, bytes, streams).await;
                s.push(v);
                ts.push(tun / v);
                vs.push(over_veil / v);
            }
            d.push(direct);
            t.push(tun);
            n.push(no_receipts);
            r.push(bare);
            td.push(tun / direct);
            tn.push(tun / no_receipts);
            rd.push(bare / direct);
            tr.push(tun / bare);
        }
        let s = if s.is_empty() { None } else { Some(median(s)) };
        eprintln!("(streams={streams}: {} of the tunnel's streams so far had a lane)", on.client.lane_streams());
        println!(
            "streams={streams}: direct {:.0} MB/s, wirepact {:.0} MB/s, wirepact receipts off {:.0} MB/s, plain relay {:.0} MB/s{}",
            median(d) / 1e6,
            median(t) / 1e6,
            median(n) / 1e6,
            median(r) / 1e6,
            s.map(|v| format!(", socks proxy {:.0} MB/s", v / 1e6)).unwrap_or_default()
        );
        println!(
            "streams={streams}: veil {:.0} MB/s, TLS behind a cover (gated) {:.0} MB/s",
            median(vv) / 1e6,
            median(cv) / 1e6
        );
        relay_vs_direct = relay_vs_direct.min(median(rd));
        table.push(Row {
            tunnel_vs_direct: median(td),
            tunnel_vs_off: median(tn),
            tunnel_vs_socks: if ts.is_empty() { None } else { Some(median(ts)) },
            tunnel_vs_relay: median(tr),
            veil_vs_socks: if vs.is_empty() { None } else { Some(median(vs)) },
            covered_vs_tunnel: median(ct),
        });
    }

    // Connect overhead: a customer's connect — TCP, TLS (X25519MLKEM768), the session auth and
    // its answer — over a plain TCP connect; and the same through a cover with the hello gate
    // (signed hello, gate check) over the plain one: the camouflage's own cost per connect.
    let (mut tcp, mut plain_c, mut gated_c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..30 {
        let s = Instant::now();
        let c = TcpStream::connect(on.provider).await.expect("tcp");
        tcp.push(s.elapsed().as_secs_f64() * 1e3);
        drop(c);
        for (t, out) in [(&on, &mut plain_c), (&covered, &mut gated_c)] {
            let auth = session_auth_frame(
                &t.key,
                &t.domain,
                B256::repeat_byte(1),
                t.tunnel_key,
                wirepact_tunnel::clock::unix_now_with(0),
                rand_nonce(),
            )
            .expect("auth");
            let s = Instant::now();
            let c = t.transport.dial(t.provider, &auth, Duration::from_secs(5)).await.expect("a customer's connect");
            out.push(s.elapsed().as_secs_f64() * 1e3);
            drop(c);
        }
    }
    let rtt = median(tcp.clone());
    let overhead = median(plain_c.clone()) - median(tcp);
    let camouflage_overhead = median(gated_c) - median(plain_c);

    // The worst case over 1 and 8 streams.
    let ratio = |f: fn(&Row) -> f64| table.iter().map(f).fold(f64::INFINITY, f64::min);
    println!("plain_relay_vs_direct: {relay_vs_direct:.3} (two more loopback hops, no crypto: the ceiling)");
    println!("tunnel_vs_direct: {:.3}", ratio(|r| r.tunnel_vs_direct));
    match socks {
        Some(_) => println!("tunnel_vs_shadowsocks: {:.3}", ratio(|r| r.tunnel_vs_socks.unwrap_or(f64::NAN))),
        None => println!("tunnel_vs_shadowsocks: n/a (no --socks given)"),
    }
    println!("receipts_on_vs_off: {:.3}", ratio(|r| r.tunnel_vs_off));
    println!(
        "tunnel_vs_plain_relay: {:.3} (the same hops without crypto or metering: this machine's limit for the data path)",
        ratio(|r| r.tunnel_vs_relay)
    );
    println!("connect_overhead_ms: {overhead:.2}");
    println!(
        "camouflage_throughput_ratio: {:.3} (TLS behind a cover with the hello gate vs plain TLS)",
        ratio(|r| r.covered_vs_tunnel)
    );
    println!(
        "camouflage_connect_overhead_ms: {camouflage_overhead:.2} (a signed hello through the gate vs a plain TLS connect, both authenticated; loopback RTT {:.2} ms)",
        rtt
    );
    match socks {
        Some(_) => println!("random_transport_vs_shadowsocks: {:.3}", ratio(|r| r.veil_vs_socks.unwrap_or(f64::NAN))),
        None => println!("random_transport_vs_shadowsocks: n/a (no --socks given)"),
    }
}
