//! What a censor's JA4 rule sees of the first flight: our client's ClientHello and a real
//! browser's (Debian's Chromium), captured on loopback and fingerprinted with
//! `wirepact_tunnel::hello`. The browser's hello checks the fingerprinting against the
//! published value of Chrome's cipher list (`8daaf6152771`); ours checks it against the
//! value measured independently when issue 21 was filed (`t13d0310h2_55b375c5d22e`). The gap
//! between the two is what issue 21's browser-shaped ClientHello must close.

use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use wirepact_proto::domain;
use wirepact_tunnel::hello::ClientHello;
use wirepact_tunnel::{session_auth_frame, TlsTransport, Transport};

/// Accepts one connection on `l` and reads its first flight (at most 10 s, 64 KiB).
async fn first_flight(l: &TcpListener) -> ClientHello {
    let (mut s, _) =
        tokio::time::timeout(Duration::from_secs(30), l.accept()).await.expect("a connection").expect("accept");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            match ClientHello::parse(&buf) {
                Ok((h, _)) => return h,
                Err(wirepact_tunnel::hello::HelloError::Incomplete(_)) => {}
                Err(e) => panic!("not a ClientHello: {e} ({} bytes)", buf.len()),
            }
            let n = s.read(&mut chunk).await.expect("read");
            assert!(n > 0 && buf.len() < 65_536, "the flight ended before a whole ClientHello");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("a whole ClientHello in time")
}

/// Our client's ClientHello, as `wirepact connect` and the oracles send it.
#[tokio::test]
async fn our_client_hello_is_fingerprinted_as_measured_when_issue_21_was_filed() {
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
    let dial = tokio::spawn(async move {
        let t = TlsTransport::new("www.example.com", B256::repeat_byte(2));
        let _ = t.dial(addr, &auth, Duration::from_secs(5)).await;
    });
    let h = first_flight(&l).await;
    dial.abort();
    let ja4 = h.ja4();
    eprintln!("wirepact client JA4: {ja4}");
    assert!(ja4.starts_with("t13d0310h2_55b375c5d22e_"), "{ja4}");
    assert!(!h.has_grease(), "rustls sends no GREASE: one of the tells issue 21 removes");
    assert_eq!(h.key_share_groups().first(), Some(&0x11ec), "X25519MLKEM768 first");
    assert_eq!(h.server_name().as_deref(), Some("www.example.com"));
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

/// A real browser's hello, twice: Chrome's JA4 (15 suites with GREASE left out, TLS 1.3, SNI,
/// h2) whose cipher part is the published `8daaf6152771`; GREASE present; X25519MLKEM768 the
/// first real key share; the extension order permuted between connections while the JA4
/// (which sorts) stays the same. And ours is not it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browsers_hello_is_chromes_and_ours_is_not_yet() {
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
    let (a, b) = (&hellos[0], &hellos[1]);
    eprintln!("chromium JA4: {} / {}", a.ja4(), b.ja4());
    assert!(a.ja4().starts_with("t13d15"), "{}", a.ja4());
    assert_eq!(a.ja4().split('_').nth(1), Some("8daaf6152771"), "Chrome's published cipher hash");
    assert_eq!(a.ja4(), b.ja4(), "JA4 sorts, so a permuted order fingerprints the same");
    assert_ne!(a.extension_order(), b.extension_order(), "Chrome permutes its extensions per connection");
    assert!(a.has_grease());
    let groups: Vec<u16> =
        a.key_share_groups().into_iter().filter(|g| !wirepact_tunnel::hello::is_grease(*g)).collect();
    assert_eq!(groups.first(), Some(&0x11ec), "X25519MLKEM768 first: {groups:x?}");
    assert_eq!(a.server_name().as_deref(), Some("cover.test"));
}
