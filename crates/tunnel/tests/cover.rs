//! A provider with a cover site: whatever does not start with a TLS ClientHello is relayed to
//! that site byte for byte, so a prober sending plain HTTP, garbage or nothing at all gets
//! exactly what the site would have said (and when), while a real client still gets its
//! post-quantum tunnel.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use rustls::NamedGroup;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wirepact_proto::domain;
use wirepact_tunnel::{
    connect, session_auth_frame, AcceptContext, Accepted, Acceptor, AuthChecker, TlsServer, TunnelIdentity,
    DEFAULT_WINDOW,
};

const SNI: &str = "cdn.example.com";
const NOW: u64 = 1_800_000_000;
const SESSION: B256 = B256::repeat_byte(0x52);

/// A stand-in for a real site's port: it answers a line with what it saw, and a visitor
/// silent for 300 ms with "timeout", then closes. Its answers are its own, so a test can tell
/// them from anything the provider would say.
async fn cover_site() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    tokio::spawn(async move {
        for _ in 0..64 {
            let Ok((mut s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut b = [0u8; 1024];
                loop {
                    match tokio::time::timeout(Duration::from_millis(300), s.read(&mut b)).await {
                        Ok(Ok(n)) if n > 0 => {
                            seen.extend_from_slice(&b[..n]);
                            if seen.contains(&b'\n') {
                                let hex: String = seen.iter().take(16).map(|x| format!("{x:02x}")).collect();
                                let _ =
                                    s.write_all(format!("COVER saw {} bytes: {hex}\n", seen.len()).as_bytes()).await;
                                break;
                            }
                        }
                        Ok(_) => break,
                        Err(_) => {
                            let _ = s.write_all(format!("COVER timeout after {} bytes\n", seen.len()).as_bytes()).await;
                            break;
                        }
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    a
}

struct Provider {
    addr: SocketAddr,
    tunnel_key: B256,
    results: tokio::sync::mpsc::Receiver<&'static str>,
}

/// A provider relaying to `cover`, for up to `conns` connections.
async fn provider(cover: String, session_key: Address, conns: usize) -> Provider {
    let id = TunnelIdentity::generate(SNI).expect("identity");
    let tunnel_key = id.tunnel_key();
    let acceptor = TlsServer::new(&id).expect("config").with_cover(Some(cover));
    let checker = Mutex::new(AuthChecker::new(domain(31337, Address::repeat_byte(1)), tunnel_key, 60, 64));
    let sessions: HashMap<B256, Address> = [(SESSION, session_key)].into_iter().collect();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, results) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        for _ in 0..conns {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let ctx = AcceptContext {
                checker: &checker,
                lookup: &sessions,
                now: NOW,
                deadline: Duration::from_secs(2),
                credit_until: DEFAULT_WINDOW,
            };
            let label = match acceptor.accept(tcp, ctx, Box::new(|| {})).await {
                Ok(Accepted::Session { mut stream, .. }) => {
                    let _ = stream.write_all(b"pong").await;
                    let _ = stream.shutdown().await;
                    "session"
                }
                Ok(Accepted::Decoy) => "decoy",
                Ok(Accepted::Cover) => "cover",
                Err(_) => "error",
            };
            let _ = tx.send(label).await;
        }
    });
    Provider { addr, tunnel_key, results }
}

/// Sends `bytes` to `addr` and reads until the other side closes (at most 10 s).
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    if !bytes.is_empty() {
        s.write_all(bytes).await.expect("write");
    }
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("closed in time")
        .expect("read");
    out
}

/// Plain HTTP, a lone frame-version byte, binary garbage and silence: through the provider's
/// port each gets exactly the bytes the cover site gives it directly.
#[tokio::test]
async fn whatever_is_not_a_client_hello_gets_exactly_the_cover_sites_answer() {
    let cover = cover_site().await;
    let mut p = provider(cover.to_string(), PrivateKeySigner::random().address(), 4).await;
    let probes: [&[u8]; 4] =
        [b"GET / HTTP/1.1\r\nHost: cdn.example.com\r\n\r\n", &[0x01], &[0x02, 0xff, 0x00, 0x10, b'\n'], &[]];
    for probe in probes {
        let direct = exchange(cover, probe).await;
        let relayed = exchange(p.addr, probe).await;
        assert!(String::from_utf8_lossy(&direct).starts_with("COVER "), "{direct:?}");
        assert_eq!(relayed, direct, "probe {probe:02x?}: the provider's port answered like the cover");
        assert_eq!(p.results.recv().await, Some("cover"));
    }
}

/// A real client with a cover configured still gets its tunnel, post-quantum, with no detour
/// through the cover site.
#[tokio::test]
async fn a_real_client_still_gets_its_tunnel() {
    let cover = cover_site().await;
    let key = PrivateKeySigner::random();
    let mut p = provider(cover.to_string(), key.address(), 1).await;
    let auth = session_auth_frame(&key, &domain(31337, Address::repeat_byte(1)), SESSION, p.tunnel_key, NOW, [7; 16])
        .expect("auth");
    let mut t = connect(p.addr, SNI, p.tunnel_key, &auth, Duration::from_secs(5)).await.expect("tunnel");
    assert_eq!(t.key_exchange, Some(NamedGroup::X25519MLKEM768));
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), t.stream.read_to_end(&mut rest)).await;
    assert_eq!(format!("{}{}", String::from_utf8_lossy(&t.pending), String::from_utf8_lossy(&rest)), "pong");
    assert_eq!(p.results.recv().await, Some("session"));
}

/// A cover site that cannot be reached does not lose the connection: the decoy page answers.
#[tokio::test]
async fn an_unreachable_cover_falls_back_to_the_decoy() {
    let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gone = dead.local_addr().expect("addr");
    drop(dead);
    let mut p = provider(gone.to_string(), PrivateKeySigner::random().address(), 1).await;
    let tls = wirepact_tunnel::client_config(p.tunnel_key).expect("cfg");
    let tcp = TcpStream::connect(p.addr).await.expect("tcp");
    let name = rustls::pki_types::ServerName::try_from(SNI.to_owned()).expect("name");
    let mut s = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.expect("tls");
    s.write_all(b"GET / HTTP/1.1\r\nHost: cdn.example.com\r\n\r\n").await.expect("write");
    let mut page = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut page)).await;
    assert!(String::from_utf8_lossy(&page).contains("It works"));
    assert_eq!(p.results.recv().await, Some("decoy"));
}
