//! Veil, the random-looking transport: a customer gets its authenticated, post-quantum
//! stream and moves bulk data both ways through it; everyone else — garbage, silence, a
//! prober holding the provider's advertised key, a replay of a customer's first flight — is
//! read and never answered a single byte, then closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wirepact_proto::domain;
use wirepact_tunnel::clock::unix_now_with;
use wirepact_tunnel::transport::{Transport, TransportError};
use wirepact_tunnel::veil::{VeilKey, VeilServer, VeilTransport};
use wirepact_tunnel::{session_auth_frame, AcceptContext, Accepted, Acceptor, AuthChecker, DEFAULT_WINDOW};

const SESSION: B256 = B256::repeat_byte(0x56);
const TUNNEL_KEY: B256 = B256::repeat_byte(0x11);
/// How long the test provider reads a stranger before closing (a real one: 30-90 s).
const DRAIN: Duration = Duration::from_millis(400);

struct Provider {
    addr: SocketAddr,
    veil: wirepact_tunnel::veil::VeilAddr,
    results: tokio::sync::mpsc::Receiver<&'static str>,
}

/// A veil provider for `session_key`'s session, for up to `conns` connections; a session's
/// stream echoes everything back.
async fn provider(session_key: Address, conns: usize) -> Provider {
    let server = Arc::new(VeilServer::new(VeilKey::generate()).with_drain(DRAIN));
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let veil = server.addr(addr.port());
    let checker = Arc::new(Mutex::new(AuthChecker::new(domain(31337, Address::repeat_byte(1)), TUNNEL_KEY, 60, 64)));
    let sessions: Arc<HashMap<B256, Address>> = Arc::new([(SESSION, session_key)].into_iter().collect());
    let (tx, results) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        for _ in 0..conns {
            let Ok((tcp, _)) = l.accept().await else { return };
            let (server, checker, sessions, tx) = (server.clone(), checker.clone(), sessions.clone(), tx.clone());
            tokio::spawn(async move {
                let ctx = AcceptContext {
                    checker: &checker,
                    lookup: &*sessions,
                    now: unix_now_with(0),
                    deadline: Duration::from_secs(5),
                    credit_until: DEFAULT_WINDOW,
                };
                let label = match server.accept(tcp, ctx, Box::new(|| {})).await {
                    Ok(Accepted::Session { mut stream, pending, .. }) => {
                        let _ = stream.write_all(&pending).await;
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            match stream.read(&mut buf).await {
                                Ok(n) if n > 0 => {
                                    if stream.write_all(&buf[..n]).await.is_err() {
                                        break;
                                    }
                                }
                                _ => break,
                            }
                        }
                        let _ = stream.shutdown().await;
                        "session"
                    }
                    Ok(Accepted::Decoy | Accepted::Cover) => "refused",
                    Err(_) => "error",
                };
                let _ = tx.send(label).await;
            });
        }
    });
    Provider { addr, veil, results }
}

fn auth(key: &PrivateKeySigner, nonce: u8) -> wirepact_proto::Frame {
    session_auth_frame(key, &domain(31337, Address::repeat_byte(1)), SESSION, TUNNEL_KEY, unix_now_with(0), [nonce; 16])
        .expect("auth")
}

/// Sends `bytes` and reads until the provider closes (at most 10 s): what came back.
async fn probe(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    if !bytes.is_empty() {
        s.write_all(bytes).await.expect("write");
    }
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the provider closes a stranger's connection")
        .map_or(out.clone(), |_| out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_moves_bulk_data_both_ways_through_veil() {
    let key = PrivateKeySigner::random();
    let mut p = provider(key.address(), 1).await;
    let t = VeilTransport { server: p.veil, session_key: key.clone() };
    let mut tunnel = t.dial(p.addr, &auth(&key, 1), Duration::from_secs(10)).await.expect("veil tunnel");
    assert_eq!(tunnel.credit_until, DEFAULT_WINDOW);
    // 4 MiB of a pattern, written and echoed concurrently (records of every size on the way).
    let data: Vec<u8> = (0..4u32 * 1024 * 1024).map(|i| i.wrapping_mul(2_654_435_761).to_be_bytes()[1]).collect();
    let (mut r, mut w) = tokio::io::split(tunnel.stream);
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        for chunk in sent.chunks(7_001) {
            w.write_all(chunk).await.expect("write");
        }
        w.flush().await.expect("flush");
        w
    });
    let mut back = tunnel.pending.split_off(0);
    let mut buf = vec![0u8; 50_000];
    while back.len() < data.len() {
        let n = tokio::time::timeout(Duration::from_secs(20), r.read(&mut buf)).await.expect("in time").expect("read");
        assert!(n > 0, "the stream ended after {} bytes", back.len());
        back.extend_from_slice(&buf[..n]);
    }
    assert!(back == data, "the echo differs from what was sent");
    drop(writer.await.expect("writer"));
    drop(r);
    assert_eq!(p.results.recv().await, Some("session"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_get_not_one_byte_back() {
    let key = PrivateKeySigner::random();
    let mut p = provider(key.address(), 5).await;
    // A customer's first flight, captured on the way (a relay records what the client sent).
    let relay = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let relay_addr = relay.local_addr().expect("addr");
    let upstream = p.addr;
    let captured = tokio::spawn(async move {
        let (mut c, _) = relay.accept().await.expect("accept");
        let mut s = TcpStream::connect(upstream).await.expect("upstream");
        let mut first = vec![0u8; 8192];
        let n = c.read(&mut first).await.expect("read");
        first.truncate(n);
        s.write_all(&first).await.expect("forward");
        let _ = tokio::io::copy_bidirectional(&mut c, &mut s).await;
        first
    });
    let t = VeilTransport { server: p.veil, session_key: key.clone() };
    let tunnel = t.dial(relay_addr, &auth(&key, 2), Duration::from_secs(10)).await.expect("the customer");
    drop(tunnel);
    let first_flight = captured.await.expect("relay");
    assert_eq!(p.results.recv().await, Some("session"));

    let mut garbage = vec![0u8; 2_000];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut garbage);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", garbage),
        ("silence", Vec::new()),
        ("a replayed first flight", first_flight),
        ("HTTP", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
    ];
    for (what, bytes) in cases.drain(..) {
        let back = probe(p.addr, &bytes).await;
        assert!(back.is_empty(), "{what}: the provider answered {} bytes", back.len());
        assert_eq!(p.results.recv().await, Some("refused"), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prober_with_the_advertised_key_but_no_session_gets_nothing() {
    let customer = PrivateKeySigner::random();
    let mut p = provider(customer.address(), 1).await;
    let prober = PrivateKeySigner::random();
    let t = VeilTransport { server: p.veil, session_key: prober.clone() };
    let r = t.dial(p.addr, &auth(&prober, 3), Duration::from_secs(10)).await;
    assert!(matches!(r, Err(TransportError::NotATunnel)), "{r:?}");
    assert_eq!(p.results.recv().await, Some("refused"));
}
