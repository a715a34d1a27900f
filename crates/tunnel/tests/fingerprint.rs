//! What a censor's JA4 rule sees of the first flight: our client's ClientHello and a real
//! browser's (Debian's Chromium), captured on loopback and fingerprinted with
//! `wirepact_tunnel::hello`. The browser's hello checks the fingerprinting against the
//! published value of Chrome's cipher list (`8daaf6152771`); ours must be the browser's: the
//! same JA4, GREASE where Chrome puts it, the order drawn per connection, the same contents
//! and the same record sizes. (Before issue 21 ours was rustls' `t13d0310h2_55b375c5d22e_…`.)

use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use tokio::net::TcpListener;
use wirepact_proto::domain;
use wirepact_tunnel::hello::{is_grease, ClientHello, Flight};
use wirepact_tunnel::{session_auth_frame, TlsTransport, Transport};

/// Accepts one connection on `l` and reads its first flight (at most 10 s).
/// (The hello, the bytes of its records.)
async fn first_flight(l: &TcpListener) -> (ClientHello, usize) {
    let (mut s, _) =
        tokio::time::timeout(Duration::from_secs(30), l.accept()).await.expect("a connection").expect("accept");
    let mut buf = Vec::new();
    let read = wirepact_tunnel::transport::read_client_hello(&mut s, &mut buf);
    let got = tokio::time::timeout(Duration::from_secs(10), read).await.expect("a whole ClientHello in time");
    assert_eq!(got.expect("read"), Flight::Hello, "not a whole ClientHello ({} bytes)", buf.len());
    ClientHello::parse(&buf).expect("a hello")
}

/// Debian's Chromium 156, captured on loopback when the dressing was written (and by
/// `a_browsers_hello_is_chromes_and_ours_is_the_same` on every run).
const CHROMIUM_JA4: &str = "t13d1516h2_8daaf6152771_d8a2da3f94cd";

/// Our client's ClientHello as `wirepact connect` and the oracles send it (`signed`: with a
/// customer's proof), to `server_name`.
async fn our_hello(server_name: &str, signed: bool) -> (ClientHello, usize) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let key = PrivateKeySigner::random();
    let auth = session_auth_frame(
        &key,
        &domain(1, Address::repeat_byte(1)),
        B256::repeat_byte(1),
        B256::repeat_byte(2),
        1_800_000_000,
        [0; 16],
    )
    .expect("auth");
    let name = server_name.to_owned();
    let dial = tokio::spawn(async move {
        let mut t = TlsTransport::new(&name, B256::repeat_byte(2));
        if signed {
            t = t.with_hello_key(key);
        }
        let _ = t.dial(addr, &auth, Duration::from_secs(5)).await;
    });
    let got = first_flight(&l).await;
    dial.abort();
    got
}

/// Ours is Chrome's: its JA4, GREASE first and last and in the lists, X25519MLKEM768 the
/// first real share (post-quantum stays on), an extension order drawn per connection, and
/// the SNI rule as before. Signed (a customer's) and unsigned (a ranking dial) alike.
#[tokio::test]
async fn our_client_hello_is_chromes() {
    let (a, _) = our_hello("www.example.com", true).await;
    let (b, _) = our_hello("www.example.com", false).await;
    eprintln!("wirepact client JA4: {} / {}", a.ja4(), b.ja4());
    assert_eq!(a.ja4(), CHROMIUM_JA4);
    assert_eq!(b.ja4(), CHROMIUM_JA4);
    assert_ne!(a.extension_order(), b.extension_order(), "the order is drawn per connection");
    assert!(a.has_grease() && b.has_grease());
    let real: Vec<u16> = a.key_share_groups().into_iter().filter(|g| !is_grease(*g)).collect();
    assert_eq!(real, [0x11ec, 0x001d], "X25519MLKEM768 first");
    assert_eq!(a.server_name().as_deref(), Some("www.example.com"));
}

/// Starts headless Chromium at `https://cover.test:PORT/` (mapped to loopback).
fn chromium(port: u16, profile: &std::path::Path) -> std::process::Child {
    std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP cover.test 127.0.0.1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("https://cover.test:{port}/"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromium is installed (make test installs it from apt)")
}

/// What Chrome fills anew per connection, left out of a comparison: the server name (ours
/// goes to another host), the key shares, the GREASE encrypted-client-hello, GREASE values.
fn fixed_contents(h: &ClientHello) -> Vec<(u16, Vec<u8>)> {
    let mut v: Vec<(u16, Vec<u8>)> = h
        .extensions
        .iter()
        .filter(|(t, _)| !is_grease(*t) && ![0x0000, 0x0033, 0xfe0d].contains(t))
        .map(|(t, d)| {
            // The lists Chrome greases: the GREASE value zeroed.
            let d = if [0x000a, 0x002b].contains(t) {
                let mut d = d.clone();
                let skip = if *t == 0x002b { 1 } else { 2 };
                for i in (skip..d.len()).step_by(2) {
                    if d.get(i..i + 2).is_some_and(|c| is_grease(u16::from_be_bytes([c[0], c[1]]))) {
                        d[i] = 0;
                        d[i + 1] = 0;
                    }
                }
                d
            } else {
                d.clone()
            };
            (*t, d)
        })
        .collect();
    v.sort();
    v
}

/// A real browser's hello, twice: Chrome's JA4 (15 suites with GREASE left out, TLS 1.3, SNI,
/// h2) whose cipher part is the published `8daaf6152771`; GREASE present; X25519MLKEM768 the
/// first real key share; the extension order permuted between connections while the JA4
/// (which sorts) stays the same. And ours is the same: its JA4, its suites, every extension's
/// contents but those Chrome draws per connection, its key-share groups and share sizes, and
/// a record of a size the browser's takes for the same server name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browsers_hello_is_chromes_and_ours_is_the_same() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    let mut hellos = Vec::new();
    for i in 0..2 {
        let profile = std::env::temp_dir().join(format!("wirepact-chromium-{}-{i}", std::process::id()));
        let mut child = chromium(port, &profile);
        hellos.push(first_flight(&l).await);
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&profile);
    }
    let ((a, a_len), (b, _)) = (&hellos[0], &hellos[1]);
    eprintln!("chromium JA4: {} / {}", a.ja4(), b.ja4());
    assert!(a.ja4().starts_with("t13d15"), "{}", a.ja4());
    assert_eq!(a.ja4().split('_').nth(1), Some("8daaf6152771"), "Chrome's published cipher hash");
    assert_eq!(a.ja4(), b.ja4(), "JA4 sorts, so a permuted order fingerprints the same");
    assert_ne!(a.extension_order(), b.extension_order(), "Chrome permutes its extensions per connection");
    assert!(a.has_grease());
    let groups: Vec<u16> = a.key_share_groups().into_iter().filter(|g| !is_grease(*g)).collect();
    assert_eq!(groups.first(), Some(&0x11ec), "X25519MLKEM768 first: {groups:x?}");
    assert_eq!(a.server_name().as_deref(), Some("cover.test"));

    let (ours, ours_len) = our_hello("cover.test", true).await;
    assert_eq!(ours.ja4(), a.ja4(), "our JA4 is this browser's");
    assert_eq!(ours.cipher_suites[1..], a.cipher_suites[1..]);
    assert_eq!(fixed_contents(&ours), fixed_contents(a), "every extension Chrome does not draw anew");
    let sizes = |h: &ClientHello| h.key_shares().iter().map(|(g, s)| (is_grease(*g), s.len())).collect::<Vec<_>>();
    assert_eq!(sizes(&ours), sizes(a), "key shares: GREASE, X25519MLKEM768, X25519");
    assert_eq!(ours.session_id.len(), a.session_id.len());
    let ech = |h: &ClientHello| h.extension(0xfe0d).map_or(0, <[u8]>::len);
    // The record differs from the browser's only by the payload length each drew.
    let payloads = wirepact_tunnel::chrome::ECH_PAYLOAD_LENS;
    let browser_base = a_len - ech(a);
    assert!(payloads.iter().any(|p| browser_base + 42 + p == *a_len), "the browser draws from the same lengths");
    assert!(
        payloads.iter().any(|p| browser_base + 42 + p == ours_len),
        "our record ({ours_len} bytes) is one the browser sends ({browser_base} + 42 + one of {payloads:?})"
    );
}
