//! An app's own TLS inside the tunnel (nested TLS): what a censor on the wire sees of it. A tap
//! between client and provider reads the outer TLS record headers while an inner rustls client
//! and server complete a handshake and an exchange through the session's stream. The first
//! records after the session auth carry the inner handshake; their sizes must be 512-byte
//! buckets (`record::shaped_len`), never the inner messages' own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wirepact_proto::domain;
use wirepact_tunnel::record::{SHAPED_RECORDS, SHAPE_BUCKET};
use wirepact_tunnel::{
    connect, session_auth_frame, AcceptContext, Accepted, Acceptor, AuthChecker, TlsServer, TunnelIdentity,
    DEFAULT_WINDOW,
};

const SNI: &str = "cdn.example.com";
const NOW: u64 = 1_800_000_000;
const SESSION: B256 = B256::repeat_byte(0x4e);

/// Outer records seen by the tap: (client to provider?, sealed length).
type Seen = Arc<Mutex<Vec<(bool, usize)>>>;

/// Copies `from` to `to`, noting each TLS record's length as its header passes.
async fn tap(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin, up: bool, seen: Seen) {
    let mut buf = vec![0u8; 65_536];
    let mut header = Vec::with_capacity(5);
    let mut skip = 0usize;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(n) if n > 0 => n,
            _ => break,
        };
        let mut i = 0;
        while i < n {
            if skip > 0 {
                let k = skip.min(n - i);
                skip -= k;
                i += k;
                continue;
            }
            header.push(buf[i]);
            i += 1;
            if header.len() == 5 {
                let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
                seen.lock().expect("seen").push((up, len));
                skip = len;
                header.clear();
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_own_tls_handshake_leaves_only_bucketed_record_sizes() {
    let key = PrivateKeySigner::random();
    let id = TunnelIdentity::generate(SNI).expect("identity");
    let tunnel_key = id.tunnel_key();
    let acceptor = TlsServer::new(&id).expect("config");
    let checker = Mutex::new(AuthChecker::new(domain(31337, Address::repeat_byte(1)), tunnel_key, 60, 64));
    let sessions: HashMap<B256, Address> = [(SESSION, key.address())].into_iter().collect();
    let provider = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let paddr = provider.local_addr().expect("addr");
    // The inner site: its own TLS server (another identity), answering 3,000 bytes.
    let inner_id = TunnelIdentity::generate("inner.example").expect("inner identity");
    let inner_acceptor = tokio_rustls::TlsAcceptor::from(inner_id.server_config().expect("config"));
    let provider_side = tokio::spawn(async move {
        let (tcp, _) = provider.accept().await.expect("accept");
        let ctx = AcceptContext {
            checker: &checker,
            lookup: &sessions,
            now: NOW,
            deadline: Duration::from_secs(2),
            credit_until: DEFAULT_WINDOW,
        };
        let Ok(Accepted::Session { stream, .. }) = acceptor.accept(tcp, ctx, Box::new(|| {})).await else {
            panic!("a session")
        };
        let mut inner = inner_acceptor.accept(stream).await.expect("the inner handshake, provider side");
        let mut req = [0u8; 64];
        let n = inner.read(&mut req).await.expect("inner request");
        assert!(req[..n].starts_with(b"GET / "));
        inner.write_all(&[0x61; 3_000]).await.expect("inner answer");
        inner.shutdown().await.expect("inner close");
    });

    // The tap between the client and the provider.
    let seen: Seen = Arc::default();
    let tap_l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let tap_addr = tap_l.local_addr().expect("addr");
    let s2 = seen.clone();
    tokio::spawn(async move {
        let (c, _) = tap_l.accept().await.expect("accept");
        let p = TcpStream::connect(paddr).await.expect("provider");
        let (cr, cw) = c.into_split();
        let (pr, pw) = p.into_split();
        tokio::join!(tap(cr, pw, true, s2.clone()), tap(pr, cw, false, s2));
    });

    let auth = session_auth_frame(&key, &domain(31337, Address::repeat_byte(1)), SESSION, tunnel_key, NOW, [3; 16])
        .expect("auth");
    let t = connect(tap_addr, SNI, tunnel_key, &auth, Duration::from_secs(5)).await.expect("the tunnel");
    // Everything the tap saw so far was the outer handshake and the session auth.
    let before = seen.lock().expect("seen").len();
    // The inner client pins the inner site's key (any TLS client would do).
    let cfg = wirepact_tunnel::client_config(inner_id.tunnel_key()).expect("config");
    let name = rustls::pki_types::ServerName::try_from("inner.example").expect("name");
    let mut inner = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, t.stream)
        .await
        .expect("the inner handshake through the tunnel");
    inner.write_all(b"GET / HTTP/1.1\r\nHost: inner.example\r\n\r\n").await.expect("inner request");
    let mut body = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), inner.read_to_end(&mut body))
        .await
        .expect("in time")
        .expect("inner answer");
    assert_eq!(body.len(), 3_000);
    provider_side.await.expect("provider");

    let after: Vec<(bool, usize)> = seen.lock().expect("seen")[before..].to_vec();
    let shown = |up: bool| -> Vec<usize> { after.iter().filter(|r| r.0 == up).map(|r| r.1).collect() };
    let (up, down) = (shown(true), shown(false));
    eprintln!("outer records after the auth, client to provider: {up:?}");
    eprintln!("outer records after the auth, provider to client: {down:?}");
    assert!(!up.is_empty() && !down.is_empty(), "the tap saw the inner exchange");
    for (dir, lens) in [("up", &up), ("down", &down)] {
        // close_notify (2 bytes sealed: 19) ends every TLS connection and is left as it is.
        for (i, len) in lens.iter().take(SHAPED_RECORDS as usize).filter(|l| **l != 19).enumerate() {
            // Sealed length = payload + padding + content type (1) + tag (16).
            let payload = len - 17;
            assert_eq!(payload % SHAPE_BUCKET, 0, "{dir} record {i}: {len} shows a size that is not a bucket");
        }
    }
}
