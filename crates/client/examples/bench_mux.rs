//! yamux vs HTTP/2 as the tunnel's multiplexer, measured on the same transport: loopback TCP
//! with the tunnel's TLS 1.3 (X25519MLKEM768, pinned key), the provider side sending bulk data
//! to the client on 1 and 8 parallel streams. yamux runs as the tunnel configures it
//! (`mux::spawn`); h2 with windows large enough not to throttle (16 MiB connection, 4 MiB
//! stream) and 64 KiB frames. Same process, same 2 worker threads, rounds interleaved.
//!
//! cargo run --release -p wirepact-client --example bench_mux -- [--bytes N] [--rounds N]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rustls::pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use wirepact_tunnel::{client_config, mux, TunnelIdentity};

mod support;
use support::{answer_size, ask_size, rate};

const BLOCK: usize = 64 * 1024;

async fn tls_pair(
    listener: &TcpListener,
    acceptor: &TlsAcceptor,
    connector: &TlsConnector,
) -> (tokio_rustls::server::TlsStream<TcpStream>, tokio_rustls::client::TlsStream<TcpStream>) {
    let addr = listener.local_addr().expect("addr");
    let (server, client) = tokio::join!(
        async {
            let (tcp, _) = listener.accept().await.expect("accept");
            tcp.set_nodelay(true).expect("nodelay");
            acceptor.accept(tcp).await.expect("server tls")
        },
        async {
            let tcp = TcpStream::connect(addr).await.expect("connect");
            tcp.set_nodelay(true).expect("nodelay");
            connector.connect(ServerName::try_from("bench.example").expect("name"), tcp).await.expect("client tls")
        }
    );
    (server, client)
}

/// yamux: the provider answers each inbound stream's 8-byte size with that many bytes.
async fn yamux_round(
    listener: &TcpListener,
    acceptor: &TlsAcceptor,
    connector: &TlsConnector,
    bytes: u64,
    streams: u64,
) -> f64 {
    let (server, client) = tls_pair(listener, acceptor, connector).await;
    let (_server_handle, mut inbound) = mux::spawn(server, false);
    tokio::spawn(async move {
        let block = Arc::new(vec![0x5au8; BLOCK]);
        while let Some(mut s) = inbound.recv().await {
            let block = block.clone();
            tokio::spawn(async move { answer_size(&mut s, &block).await });
        }
    });
    let (handle, _client_inbound) = mux::spawn(client, true);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let h = handle.clone();
        let each = bytes / streams;
        tasks.push(tokio::spawn(async move {
            let mut s = h.open().await.expect("open");
            ask_size(&mut s, each).await;
        }));
    }
    rate(start, tasks, bytes).await
}

/// No multiplexer: one TLS connection per stream (what a lane per stream would cost).
async fn raw_round(
    listener: &TcpListener,
    acceptor: &TlsAcceptor,
    connector: &TlsConnector,
    bytes: u64,
    streams: u64,
) -> f64 {
    let mut pairs = Vec::new();
    for _ in 0..streams {
        pairs.push(tls_pair(listener, acceptor, connector).await);
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    let each = bytes / streams;
    for (mut server, mut client) in pairs {
        tokio::spawn(async move { answer_size(&mut server, &vec![0x5au8; BLOCK]).await });
        tasks.push(tokio::spawn(async move { ask_size(&mut client, each).await }));
    }
    rate(start, tasks, bytes).await
}

/// HTTP/2: `GET /<size>` answered with that many bytes of body.
async fn h2_round(
    listener: &TcpListener,
    acceptor: &TlsAcceptor,
    connector: &TlsConnector,
    bytes: u64,
    streams: u64,
) -> f64 {
    let (server, client) = tls_pair(listener, acceptor, connector).await;
    tokio::spawn(async move {
        let mut conn = h2::server::Builder::new()
            .initial_window_size(4 << 20)
            .initial_connection_window_size(16 << 20)
            .max_frame_size(64 * 1024)
            .handshake::<_, Bytes>(server)
            .await
            .expect("h2 server");
        let block = Bytes::from(vec![0x5au8; BLOCK]);
        while let Some(Ok((req, mut respond))) = conn.accept().await {
            let block = block.clone();
            tokio::spawn(async move {
                let mut left: u64 = req.uri().path().trim_start_matches('/').parse().unwrap_or(0);
                let Ok(mut body) = respond.send_response(http::Response::new(()), false) else { return };
                while left > 0 {
                    let want = usize::try_from(left.min(BLOCK as u64)).unwrap_or(BLOCK);
                    body.reserve_capacity(want);
                    let cap = match std::future::poll_fn(|cx| body.poll_capacity(cx)).await {
                        Some(Ok(c)) => c.min(want),
                        _ => return,
                    };
                    if body.send_data(block.slice(..cap), false).is_err() {
                        return;
                    }
                    left -= cap as u64;
                }
                let _ = body.send_data(Bytes::new(), true);
            });
        }
    });
    let (send, conn) = h2::client::Builder::new()
        .initial_window_size(4 << 20)
        .initial_connection_window_size(16 << 20)
        .max_frame_size(64 * 1024)
        .handshake::<_, Bytes>(client)
        .await
        .expect("h2 client");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let mut send = send.clone().ready().await.expect("ready");
        let each = bytes / streams;
        tasks.push(tokio::spawn(async move {
            let req = http::Request::get(format!("https://bench.example/{each}")).body(()).expect("request");
            let (resp, _) = send.send_request(req, true).expect("send");
            let mut body = resp.await.expect("response").into_body();
            let mut got = 0u64;
            while let Some(chunk) = body.data().await {
                let chunk = chunk.expect("data");
                got += chunk.len() as u64;
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            assert_eq!(got, each, "short stream");
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
    let bytes: u64 = arg("--bytes").map_or(256 << 20, |v| v.parse().expect("--bytes N"));
    let rounds: usize = arg("--rounds").map_or(5, |v| v.parse().expect("--rounds N"));
    let id = TunnelIdentity::generate("bench.example").expect("identity");
    let acceptor = TlsAcceptor::from(id.server_config().expect("server config"));
    let connector = TlsConnector::from(client_config(id.tunnel_key()).expect("client config"));
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind");
    if let Some(mode) = arg("--only") {
        let streams: u64 = arg("--streams").map_or(1, |v| v.parse().expect("--streams N"));
        for _ in 0..rounds {
            let v = match mode.as_str() {
                "raw" => raw_round(&listener, &acceptor, &connector, bytes, streams).await,
                "h2" => h2_round(&listener, &acceptor, &connector, bytes, streams).await,
                _ => yamux_round(&listener, &acceptor, &connector, bytes, streams).await,
            };
            println!("{mode} streams={streams}: {:.0} MB/s", v / 1e6);
        }
        return;
    }
    // warm up
    yamux_round(&listener, &acceptor, &connector, 16 << 20, 1).await;
    h2_round(&listener, &acceptor, &connector, 16 << 20, 1).await;
    let mut worst = f64::INFINITY;
    for streams in [1u64, 8] {
        let (mut y, mut h, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let (a, b) = if round % 2 == 0 {
                let a = yamux_round(&listener, &acceptor, &connector, bytes, streams).await;
                (a, h2_round(&listener, &acceptor, &connector, bytes, streams).await)
            } else {
                let b = h2_round(&listener, &acceptor, &connector, bytes, streams).await;
                (yamux_round(&listener, &acceptor, &connector, bytes, streams).await, b)
            };
            y.push(a);
            h.push(b);
            ratio.push(b / a);
        }
        if std::env::var_os("BENCH_RAW").is_some() {
            let mut rr = Vec::new();
            for _ in 0..rounds {
                let y = yamux_round(&listener, &acceptor, &connector, bytes, streams).await;
                let r = raw_round(&listener, &acceptor, &connector, bytes, streams).await;
                rr.push(r / y);
            }
            println!("streams={streams}: raw TLS per stream / yamux {:.3}", median(rr));
        }
        let r = median(ratio);
        worst = worst.min(r);
        println!(
            "streams={streams}: yamux {:.0} MB/s, h2 {:.0} MB/s, h2/yamux {r:.3}",
            median(y) / 1e6,
            median(h) / 1e6
        );
    }
    println!("h2_vs_yamux: {worst:.3}");
}
