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
    provider_gated(cover, session_key, conns, false).await
}

/// [`provider`], with the ClientHello gate on or off.
async fn provider_gated(cover: String, session_key: Address, conns: usize, gate: bool) -> Provider {
    let id = TunnelIdentity::generate(SNI).expect("identity");
    let tunnel_key = id.tunnel_key();
    let acceptor = TlsServer::new(&id).expect("config").with_cover(Some(cover)).with_hello_gate(gate);
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

/// A real HTTPS cover site: a certificate for `cdn.example.com` from a test CA made here, an
/// HTTP answer of its own. Returns its address and the CA to trust.
async fn tls_cover_site() -> (SocketAddr, rustls::pki_types::CertificateDer<'static>, String) {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "wirepact test CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf = rcgen::CertificateParams::new(vec![SNI.to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf");
    let cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    tokio::spawn(async move {
        for _ in 0..32 {
            let Ok((s, _)) = l.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(Ok(mut tls)) = tokio::time::timeout(Duration::from_secs(5), acceptor.accept(s)).await else {
                    return;
                };
                let mut b = [0u8; 1024];
                let _ = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut b)).await;
                let body = "the cover site's own page";
                let _ = tls
                    .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes())
                    .await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (a, ca_cert.der().clone(), ca_cert.pem())
}

/// Fetches `/` over TLS from `addr`, trusting only `ca`; returns the certificate the server
/// showed and the answer.
async fn browse(addr: SocketAddr, ca: &rustls::pki_types::CertificateDer<'static>) -> (Vec<u8>, String) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("ca");
    let cfg = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.expect("tcp");
    let name = rustls::pki_types::ServerName::try_from(SNI.to_owned()).expect("name");
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
        .connect(name, tcp)
        .await
        .expect("a handshake the test CA vouches for");
    let cert = tls.get_ref().1.peer_certificates().expect("certs")[0].to_vec();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: cdn.example.com\r\n\r\n").await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out)).await;
    (cert, String::from_utf8_lossy(&out).into_owned())
}

/// With the ClientHello gate, a TLS prober through the provider's port completes a genuine
/// handshake with the cover site (its certificate, verified by the test CA) and gets its page,
/// exactly as when it connects to the site directly; a customer whose hello carries its
/// session key's proof gets the post-quantum tunnel.
#[tokio::test]
async fn a_tls_prober_meets_the_cover_sites_certificate_and_a_customer_its_tunnel() {
    let (cover, ca, _) = tls_cover_site().await;
    let key = PrivateKeySigner::random();
    let mut p = provider_gated(cover.to_string(), key.address(), 2, true).await;
    let direct = browse(cover, &ca).await;
    let relayed = browse(p.addr, &ca).await;
    assert_eq!(relayed.0, direct.0, "the cover site's certificate");
    assert!(relayed.1.ends_with("the cover site's own page"), "{}", relayed.1);
    assert_eq!(p.results.recv().await, Some("cover"));

    let auth = session_auth_frame(&key, &domain(31337, Address::repeat_byte(1)), SESSION, p.tunnel_key, NOW, [8; 16])
        .expect("auth");
    let mut t =
        wirepact_tunnel::transport::connect_with(p.addr, SNI, p.tunnel_key, Some(&key), &auth, Duration::from_secs(5))
            .await
            .expect("the customer's tunnel");
    assert_eq!(t.key_exchange, Some(NamedGroup::X25519MLKEM768), "post-quantum stays on");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), t.stream.read_to_end(&mut rest)).await;
    assert_eq!(format!("{}{}", String::from_utf8_lossy(&t.pending), String::from_utf8_lossy(&rest)), "pong");
    assert_eq!(p.results.recv().await, Some("session"));
}

/// Captures the first flight a customer sends (its ClientHello with the proof) on a listener
/// of our own.
async fn customer_first_flight(key: &PrivateKeySigner, tunnel_key: B256) -> Vec<u8> {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let (key, auth) = (
        key.clone(),
        session_auth_frame(key, &domain(31337, Address::repeat_byte(1)), SESSION, tunnel_key, NOW, [9; 16])
            .expect("auth"),
    );
    let dial = tokio::spawn(async move {
        let _ =
            wirepact_tunnel::transport::connect_with(addr, SNI, tunnel_key, Some(&key), &auth, Duration::from_secs(3))
                .await;
    });
    let (mut s, _) = l.accept().await.expect("accept");
    let mut flight = Vec::new();
    let read = wirepact_tunnel::transport::read_client_hello(&mut s, &mut flight);
    let got = tokio::time::timeout(Duration::from_secs(5), read).await.expect("in time").expect("read");
    assert_eq!(got, wirepact_tunnel::hello::Flight::Hello, "the hello ended early");
    dial.abort();
    flight
}

/// A customer's first flight replayed, or with one byte of its key share changed, is not a
/// customer: both go to the cover site, which answers with its own handshake.
#[tokio::test]
async fn a_replayed_or_modified_hello_goes_to_the_cover() {
    let (cover, _ca, _) = tls_cover_site().await;
    let key = PrivateKeySigner::random();
    let mut p = provider_gated(cover.to_string(), key.address(), 3, true).await;
    let flight = customer_first_flight(&key, p.tunnel_key).await;
    let (hello, _) = wirepact_tunnel::hello::ClientHello::parse(&flight).expect("hello");
    let first_real = hello.key_share_groups().into_iter().find(|g| !wirepact_tunnel::hello::is_grease(*g));
    assert_eq!(first_real, Some(0x11ec), "the proof covers the X25519MLKEM768 share");

    // First use: the gate lets it in (the raw bytes cannot finish the handshake: not a session).
    let _ = exchange(p.addr, &flight).await;
    assert_ne!(p.results.recv().await, Some("cover"), "the customer's own hello passes the gate");
    // The same bytes again: a replay.
    let _ = exchange(p.addr, &flight).await;
    assert_eq!(p.results.recv().await, Some("cover"), "a replayed hello meets the cover");
    // A fresh hello with its key share altered: the proof no longer holds.
    let mut altered = customer_first_flight(&key, p.tunnel_key).await;
    let (fresh, _) = wirepact_tunnel::hello::ClientHello::parse(&altered).expect("hello");
    let share = &fresh.key_shares().into_iter().find(|(g, _)| *g == 0x11ec).expect("the hybrid share").1;
    let at = altered.windows(64).position(|w| w == &share[..64]).expect("the share in the bytes");
    altered[at + 10] ^= 0x01;
    let _ = exchange(p.addr, &altered).await;
    assert_eq!(p.results.recv().await, Some("cover"), "a modified hello meets the cover");
}

/// Runs `program` with `args` (at most 10 s): what it printed.
async fn run(program: &str, args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(program).args(args).stdin(std::process::Stdio::null()).output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{program} did not finish"))
    .unwrap_or_else(|e| panic!("this test drives {program} (`make test` installs it): {e}"));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The PEM certificates in `text`, in order.
fn pem_blocks(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(j) = rest[i..].find("-----END CERTIFICATE-----") else { break };
        out.push(rest[i..i + j].to_owned());
        rest = &rest[i + j..];
    }
    out
}

/// The prober's own tools through the provider's port, with the ClientHello gate: `curl
/// --cacert` gets exactly the bytes it gets from the cover site directly, and `openssl
/// s_client` sees the cover's chain, verified by the test CA.
#[tokio::test]
async fn curl_and_openssl_see_the_cover_sites_chain_and_bytes_through_the_provider() {
    let (cover, _, ca_pem) = tls_cover_site().await;
    let mut p = provider_gated(cover.to_string(), PrivateKeySigner::random().address(), 2, true).await;
    let dir = std::env::temp_dir().join(format!("wirepact-cover-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_pem).expect("ca");
    let ca = ca.to_str().expect("path");

    let curl = |addr: SocketAddr| {
        let resolve = format!("{SNI}:{}:127.0.0.1", addr.port());
        let url = format!("https://{SNI}:{}/", addr.port());
        async move { run("curl", &["-sS", "--max-time", "5", "--cacert", ca, "--resolve", &resolve, &url]).await }
    };
    let direct = curl(cover).await;
    assert_eq!(direct, "the cover site's own page", "curl to the cover directly");
    assert_eq!(curl(p.addr).await, direct, "curl through the provider's port");
    assert_eq!(p.results.recv().await, Some("cover"));

    let s_client = |addr: SocketAddr| {
        let connect = format!("127.0.0.1:{}", addr.port());
        async move {
            run("openssl", &["s_client", "-connect", &connect, "-servername", SNI, "-CAfile", ca, "-showcerts"]).await
        }
    };
    let direct = s_client(cover).await;
    let relayed = s_client(p.addr).await;
    assert!(relayed.contains("Verify return code: 0 (ok)"), "openssl did not verify the chain: {relayed}");
    assert!(!pem_blocks(&direct).is_empty(), "openssl showed no certificate: {direct}");
    assert_eq!(pem_blocks(&relayed), pem_blocks(&direct), "the same chain as the cover site's own");
    assert_eq!(p.results.recv().await, Some("cover"));
    let _ = std::fs::remove_dir_all(&dir);
}
