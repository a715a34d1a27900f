//! The camouflaged transport on loopback: PQ key exchange, pinning, session auth, decoy site.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use rustls::pki_types::ServerName;
use rustls::NamedGroup;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use wirepact_proto::{domain, Frame};
use wirepact_tunnel::{
    client_config, connect, session_auth_frame, AcceptContext, Accepted, Acceptor, AuthChecker, TlsServer,
    TransportError, TunnelIdentity, DEFAULT_WINDOW,
};

const SNI: &str = "cdn.example.com";
const NOW: u64 = 1_800_000_000;
const SESSION: B256 = B256::repeat_byte(0x51);

struct Server {
    addr: SocketAddr,
    tunnel_key: B256,
    results: tokio::sync::mpsc::Receiver<&'static str>,
}

/// A provider listener handling up to `conns` connections; reports "session"/"decoy"/"error".
async fn server(session_key: Address, conns: usize) -> Server {
    let id = TunnelIdentity::generate(SNI).expect("identity");
    let tunnel_key = id.tunnel_key();
    let acceptor = TlsServer::new(&id).expect("config");
    let checker = Arc::new(Mutex::new(AuthChecker::new(domain(31337, Address::repeat_byte(1)), tunnel_key, 60, 1024)));
    let mut sessions = HashMap::new();
    sessions.insert(SESSION, session_key);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, results) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        for _ in 0..conns {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let r = acceptor
                .accept(
                    tcp,
                    AcceptContext {
                        checker: &checker,
                        lookup: &sessions,
                        now: NOW,
                        deadline: Duration::from_millis(300),
                        credit_until: DEFAULT_WINDOW,
                    },
                    Box::new(|| {}),
                )
                .await;
            let label = match r {
                Ok(Accepted::Session { mut stream, session_id, .. }) => {
                    assert_eq!(session_id, SESSION);
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
    Server { addr, tunnel_key, results }
}

fn auth(key: &PrivateKeySigner, tunnel_key: B256, nonce: u8) -> Frame {
    session_auth_frame(key, &domain(31337, Address::repeat_byte(1)), SESSION, tunnel_key, NOW, [nonce; 16])
        .expect("sign")
}

async fn raw_tls(addr: SocketAddr, pin: B256) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("tcp");
    let name = ServerName::try_from(SNI.to_owned()).expect("name");
    TlsConnector::from(client_config(pin).expect("cfg")).connect(name, tcp).await.expect("tls")
}

async fn read_all(s: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn session_authenticates_over_post_quantum_tls() {
    let key = PrivateKeySigner::random();
    let mut srv = server(key.address(), 1).await;
    let mut t = connect(srv.addr, SNI, srv.tunnel_key, &auth(&key, srv.tunnel_key, 1), Duration::from_secs(5))
        .await
        .expect("connect");
    assert_eq!(t.key_exchange, Some(NamedGroup::X25519MLKEM768));
    // The suite a browser leads with (and the cheapest with AES-NI).
    let suite = t.cipher_suite;
    assert_eq!(suite, Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256));
    assert_eq!(t.credit_until, DEFAULT_WINDOW);
    // A silently dead provider is noticed in seconds while data is unacknowledged (the user
    // timeout); keepalive has a browser's 45 s cadence (idle sessions are watched by pings).
    let sock = socket2::SockRef::from(t.stream.get_ref());
    assert!(sock.keepalive().expect("keepalive"), "keepalive on");
    assert_eq!(sock.tcp_keepalive_time().expect("idle"), wirepact_tunnel::transport::KEEPALIVE_IDLE);
    #[cfg(target_os = "linux")]
    assert_eq!(sock.tcp_user_timeout().expect("user timeout"), Some(wirepact_tunnel::transport::USER_TIMEOUT));
    let rest = read_all(&mut t.stream).await;
    assert_eq!(format!("{}{rest}", String::from_utf8_lossy(&t.pending)), "pong");
    assert_eq!(srv.results.recv().await, Some("session"));
}

#[tokio::test]
async fn a_browser_gets_the_decoy_page() {
    let key = PrivateKeySigner::random();
    let mut srv = server(key.address(), 1).await;
    let mut s = raw_tls(srv.addr, srv.tunnel_key).await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    s.write_all(b"GET / HTTP/1.1\r\nHost: cdn.example.com\r\nUser-Agent: curl/8\r\n\r\n").await.expect("write");
    let page = read_all(&mut s).await;
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("It works"));
    assert_eq!(srv.results.recv().await, Some("decoy"));
}

/// The decoy answers like a web server, not like a one-page stub: a `Date` header, HEAD
/// without a body, 404 for a path it does not have, 405 for a method it does not take.
#[tokio::test]
async fn the_decoy_answers_paths_methods_and_head_like_a_web_server() {
    let key = PrivateKeySigner::random();
    let mut srv = server(key.address(), 4).await;
    let mut ask = async |req: &str| {
        let mut s = raw_tls(srv.addr, srv.tunnel_key).await;
        s.write_all(req.as_bytes()).await.expect("write");
        let r = read_all(&mut s).await;
        assert_eq!(srv.results.recv().await, Some("decoy"));
        r
    };
    let head = ask("HEAD / HTTP/1.1\r\nHost: a.example\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nDate: ") && head.contains(" GMT\r\n"), "a Date header: {head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD gets no body: {head:?}");
    assert!(head.contains(&format!("Content-Length: {}\r\n", wirepact_tunnel::transport::DECOY_PAGE.len())));
    let missing = ask("GET /wp-login.php HTTP/1.1\r\nHost: a.example\r\n\r\n").await;
    assert!(missing.starts_with("HTTP/1.1 404 Not Found\r\n"), "{missing}");
    assert!(!missing.contains("It works"));
    let post = ask("POST / HTTP/1.1\r\nHost: a.example\r\nContent-Length: 0\r\n\r\n").await;
    assert!(post.starts_with("HTTP/1.1 405 Not Allowed\r\n"), "{post}");
    let page = ask("GET /?q=1 HTTP/1.1\r\nHost: a.example\r\n\r\n").await;
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n") && page.contains("It works"), "{page}");
}

/// The finding: one byte 0x01 (the frame version) waited the whole deadline for its 400 while
/// 0x02 got it at once, which gave the protocol away to a prober. Now every non-HTTP first
/// byte waits for the end of a line or the deadline, and gets the same answer. (Real time: a
/// paused clock would jump ahead while the test waits on the sockets. The bound is a floor
/// the server itself sets, so a loaded machine cannot make it fail.)
#[tokio::test]
async fn any_single_byte_waits_the_same_and_gets_the_same_400() {
    let key = PrivateKeySigner::random();
    let mut srv = server(key.address(), 3).await;
    let mut answers = Vec::new();
    for byte in [0x01u8, 0x02, 0xff] {
        let mut s = raw_tls(srv.addr, srv.tunnel_key).await;
        let start = std::time::Instant::now();
        s.write_all(&[byte]).await.expect("write");
        let r = read_all(&mut s).await;
        let took = start.elapsed();
        // The test server's deadline is 300 ms, drawn between 85 and 115 % per connection.
        assert!(took >= Duration::from_millis(255), "byte {byte:#04x} answered after {took:?}");
        assert_eq!(srv.results.recv().await, Some("decoy"));
        let without_date: Vec<&str> = r.split("\r\n").filter(|l| !l.starts_with("Date: ")).collect();
        answers.push(without_date.join("\r\n"));
    }
    assert!(answers[0].starts_with("HTTP/1.1 400 Bad Request\r\n"), "{}", answers[0]);
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
}

#[tokio::test]
async fn a_replayed_auth_gets_the_decoy_not_a_session() {
    let key = PrivateKeySigner::random();
    let mut srv = server(key.address(), 2).await;
    let a = auth(&key, srv.tunnel_key, 2);
    connect(srv.addr, SNI, srv.tunnel_key, &a, Duration::from_secs(5)).await.expect("first use");
    assert_eq!(srv.results.recv().await, Some("session"));
    let e = connect(srv.addr, SNI, srv.tunnel_key, &a, Duration::from_secs(5)).await.expect_err("replay");
    assert!(matches!(e, TransportError::NotATunnel), "{e:?}");
    assert_eq!(srv.results.recv().await, Some("decoy"));
}

#[tokio::test]
async fn an_auth_signed_by_another_key_gets_the_decoy() {
    let key = PrivateKeySigner::random();
    let mut srv = server(key.address(), 1).await;
    let e = connect(
        srv.addr,
        SNI,
        srv.tunnel_key,
        &auth(&PrivateKeySigner::random(), srv.tunnel_key, 3),
        Duration::from_secs(5),
    )
    .await
    .expect_err("wrong key");
    assert!(matches!(e, TransportError::NotATunnel), "{e:?}");
    assert_eq!(srv.results.recv().await, Some("decoy"));
}

#[tokio::test]
async fn a_different_server_key_fails_the_pin() {
    let key = PrivateKeySigner::random();
    let srv = server(key.address(), 1).await;
    let wrong = B256::repeat_byte(0xee);
    let e = connect(srv.addr, SNI, wrong, &auth(&key, wrong, 4), Duration::from_secs(5)).await.expect_err("pin");
    assert!(matches!(e, TransportError::OtherCertificate), "{e:?}");
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_deadline() {
    let key = PrivateKeySigner::random();
    let mut srv = server(key.address(), 1).await;
    let mut s = raw_tls(srv.addr, srv.tunnel_key).await;
    // Say nothing; the server gives up after 300 ms and closes without revealing anything.
    assert_eq!(read_all(&mut s).await, "");
    assert_eq!(srv.results.recv().await, Some("decoy"));
}

/// The finding: nothing timed out the TLS handshake, so a TCP connection that never sent a
/// ClientHello held a socket forever (~500 of them exhausted the provider's files). With the
/// clock paused, the server closes it exactly at the deadline and not before.
#[tokio::test(start_paused = true)]
async fn a_connection_that_never_sends_a_client_hello_is_closed_at_the_deadline() {
    let key = PrivateKeySigner::random();
    let mut srv = server(key.address(), 1).await;
    let start = tokio::time::Instant::now();
    let mut tcp = TcpStream::connect(srv.addr).await.expect("tcp");
    let mut b = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(299), tcp.read(&mut b)).await;
    assert!(early.is_err(), "closed before the deadline: {early:?}");
    let n = tokio::time::timeout(Duration::from_secs(3600), tcp.read(&mut b)).await.expect("closed within the hour");
    assert!(matches!(n, Ok(0) | Err(_)), "the server closes the connection, sending nothing: {n:?}");
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(srv.results.recv().await, Some("error"), "a handshake that never began is a timeout");
}

/// Half a handshake (a ClientHello, then silence) is closed at the same deadline.
#[tokio::test(start_paused = true)]
async fn a_stalled_handshake_is_closed_at_the_deadline() {
    let key = PrivateKeySigner::random();
    let mut srv = server(key.address(), 1).await;
    let mut tcp = TcpStream::connect(srv.addr).await.expect("tcp");
    // A TLS record header of a ClientHello that never arrives in full.
    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]).await.expect("write");
    let mut b = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(3600), tcp.read(&mut b)).await.expect("closed within the hour");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    assert_eq!(srv.results.recv().await, Some("error"));
}

#[tokio::test]
async fn curl_k_gets_the_decoy_page() {
    assert!(
        std::process::Command::new("curl").arg("--version").output().is_ok(),
        "this test drives curl: `apt-get install curl` (make test installs it)"
    );
    let key = PrivateKeySigner::random();
    let mut srv = server(key.address(), 1).await;
    let url = format!("https://{SNI}:{}/", srv.addr.port());
    let resolve = format!("{SNI}:{}:127.0.0.1", srv.addr.port());
    let out = tokio::process::Command::new("curl")
        .args(["-sk", "--max-time", "5", "--resolve", &resolve, &url])
        .output()
        .await
        .expect("run curl");
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains("It works"), "curl got: {page:?} (stderr {:?})", String::from_utf8_lossy(&out.stderr));
    assert_eq!(srv.results.recv().await, Some("decoy"));
}

#[tokio::test]
async fn handshake_time_measures_the_pinned_provider_and_tells_another_key_apart() {
    let mut s = server(PrivateKeySigner::random().address(), 3).await;
    let r = wirepact_tunnel::handshake_time(s.addr, SNI, s.tunnel_key, Duration::from_secs(5))
        .await
        .expect("the pinned provider answers");
    assert!(r.keyed, "its own key answered");
    assert!(r.took > Duration::ZERO, "a handshake takes some time: {r:?}");
    // The provider saw a visitor that left without authenticating: no session was made.
    assert_ne!(s.results.recv().await, Some("session"));
    // Another key (a cover site's, to a client without a session): reachable, not keyed.
    let other = wirepact_tunnel::handshake_time(s.addr, SNI, B256::repeat_byte(9), Duration::from_secs(5))
        .await
        .expect("another certificate is an answer");
    assert!(!other.keyed, "{other:?}");
    // A session's dial does not accept it: it is not this provider.
    let auth = auth(&PrivateKeySigner::random(), B256::repeat_byte(9), 0);
    let wrong = wirepact_tunnel::connect(s.addr, SNI, B256::repeat_byte(9), &auth, Duration::from_secs(5)).await;
    assert!(matches!(wrong, Err(TransportError::OtherCertificate)), "{wrong:?}");
    // Nobody listening: an error, not a hang.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
    let gone = wirepact_tunnel::handshake_time(closed, SNI, s.tunnel_key, Duration::from_secs(5)).await;
    assert!(gone.is_err());
}

/// After the session auth the client carries on with its own TLS 1.3 record layer: a plain
/// rustls server on the other end (which never switches) reads its records, answers through
/// rustls, and sees its close_notify as a clean end. So the records on the wire are TLS's
/// own, byte for byte, in both directions.
#[tokio::test]
async fn the_clients_own_records_are_tls_13_records_rustls_reads_and_writes() {
    let id = TunnelIdentity::generate(SNI).expect("identity");
    let tunnel_key = id.tunnel_key();
    let acceptor = tokio_rustls::TlsAcceptor::from(id.server_config().expect("config"));
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (mut tcp, _) = l.accept().await.expect("accept");
        // The client's hello comes dressed as Chrome's: rustls gets the one the client's
        // rustls built (both hash it), as the provider hands it over.
        let mut flight = Vec::new();
        let got = wirepact_tunnel::transport::read_client_hello(&mut tcp, &mut flight).await.expect("read the hello");
        assert_eq!(got, wirepact_tunnel::hello::Flight::Hello, "the hello ended early");
        let (mut hello, used) = wirepact_tunnel::chrome::undress(&flight, tunnel_key).expect("dressed for this key");
        hello.extend_from_slice(&flight[used..]);
        let mut tls = acceptor.accept(wirepact_tunnel::mux::Prefixed::new(hello, tcp)).await.expect("handshake");
        // The auth frame, then AuthOk, all through rustls.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let used = loop {
            let n = tls.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed before the auth");
            buf.extend_from_slice(&chunk[..n]);
            if let Ok((Frame::SessionAuth { .. }, used)) = Frame::decode(&buf) {
                break used;
            }
        };
        assert_eq!(used, buf.len(), "nothing but the auth before AuthOk");
        tls.write_all(&Frame::AuthOk { credit_until: 1 << 20 }.to_bytes()).await.expect("auth ok");
        tls.flush().await.expect("flush");
        // Everything the client's record layer sends, read by rustls until close_notify.
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await.expect("rustls reads the client's records to a clean end");
        // And an answer through rustls for the client's record layer to read.
        let answer: Vec<u8> = got.iter().rev().copied().collect();
        tls.write_all(&answer).await.expect("answer");
        tls.shutdown().await.expect("close_notify");
        got
    });
    let key = PrivateKeySigner::random();
    let mut t =
        connect(addr, SNI, tunnel_key, &auth(&key, tunnel_key, 9), Duration::from_secs(5)).await.expect("connect");
    let data: Vec<u8> = (0..200_000u32).map(|i| i.to_le_bytes()[0].wrapping_mul(7) ^ i.to_le_bytes()[1]).collect();
    for chunk in data.chunks(33_333) {
        t.stream.write_all(chunk).await.expect("write");
    }
    t.stream.shutdown().await.expect("shutdown");
    let mut back = Vec::new();
    t.stream.read_to_end(&mut back).await.expect("the client reads rustls' records to a clean end");
    let got = server.await.expect("server");
    assert!(got == data, "rustls read {} bytes, not what the client sent", got.len());
    let want: Vec<u8> = data.iter().rev().copied().collect();
    assert!(back == want, "the client read {} bytes, not rustls' answer", back.len());
}
