//! Measuring providers' handshakes: the figure that ranks them must be the path's cost, not a
//! scheduling hiccup; a provider that does not answer is skipped, one that answers with another
//! certificate (its cover site) is not.

use std::net::SocketAddr;
use std::time::Duration;

use alloy::primitives::{B256, U256};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use wirepact_client::measure_handshakes;
use wirepact_client::select::{Candidate, Requirements};
use wirepact_tunnel::TunnelIdentity;

const SNI: &str = "cdn.example.com";

/// How the test provider treats its n-th connection (0-based).
#[derive(Clone, Copy)]
enum Nth {
    /// Holds the TLS handshake back this long.
    Stall(Duration),
    /// Never answers the handshake.
    Hang,
    /// Answers at once.
    Answer,
}

/// A TLS listener with a fresh tunnel identity; connection n is treated as `plan(n)`.
async fn provider(plan: fn(usize) -> Nth) -> (SocketAddr, B256) {
    let id = TunnelIdentity::generate(SNI).expect("identity");
    let key = id.tunnel_key();
    let acceptor = TlsAcceptor::from(id.server_config().expect("config"));
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        for n in 0..16 {
            let Ok((tcp, _)) = l.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                match plan(n) {
                    Nth::Stall(d) => tokio::time::sleep(d).await,
                    Nth::Hang => {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        return;
                    }
                    Nth::Answer => {}
                }
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    (addr, key)
}

fn candidate(id: u32, addr: SocketAddr, key: B256) -> Candidate {
    Candidate {
        id,
        endpoint: addr.to_string(),
        region: "eu".into(),
        active: true,
        session_mbps: 10,
        max_latency_ms: 80,
        headroom_mbps: 100,
        quote: U256::from(1u64),
        violations: 0,
        tunnel_key: key,
        handshake_us: None,
        unreachable: false,
        veil: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stalled_handshake_does_not_make_a_near_provider_look_far() {
    // The first handshake is held back 1 s (a hiccup); the next answers at once, well inside
    // the 3 s left of the deadline.
    let (addr, key) = provider(|n| if n == 0 { Nth::Stall(Duration::from_secs(1)) } else { Nth::Answer }).await;
    let mut c = [candidate(1, addr, key)];
    measure_handshakes(&mut c, &Requirements::default(), SNI, Duration::from_secs(4), 16).await;
    assert!(!c[0].unreachable);
    let us = c[0].handshake_us.expect("measured");
    assert!(us < 1_000_000, "the hiccup counted: {us} us");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_answered_once_is_measured_even_if_a_later_try_hangs() {
    let (addr, key) = provider(|n| if n == 0 { Nth::Answer } else { Nth::Hang }).await;
    let mut c = [candidate(1, addr, key)];
    measure_handshakes(&mut c, &Requirements::default(), SNI, Duration::from_millis(500), 16).await;
    assert!(!c[0].unreachable, "it did answer with its key");
    assert!(c[0].handshake_us.is_some(), "the first answer's time is kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_and_closed_providers_are_unreachable() {
    let (hung, hung_key) = provider(|_| Nth::Hang).await;
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    };
    let mut c = [candidate(1, hung, hung_key), candidate(3, closed, B256::repeat_byte(9))];
    measure_handshakes(&mut c, &Requirements::default(), SNI, Duration::from_millis(500), 16).await;
    for x in &c {
        assert!(x.unreachable, "provider {} counted as reachable", x.id);
        assert_eq!(x.handshake_us, None);
    }
}

/// A provider with a cover site shows a client without a session the cover's certificate, so
/// another key answering is not "unreachable": it is ranked by its round trips, and the
/// session's signed dial decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_answering_with_another_certificate_is_ranked_as_covered() {
    let (covered, _) = provider(|_| Nth::Answer).await;
    let mut c = [candidate(2, covered, B256::repeat_byte(9))];
    measure_handshakes(&mut c, &Requirements::default(), SNI, Duration::from_secs(2), 16).await;
    assert!(!c[0].unreachable, "a cover's certificate counted as unreachable");
    assert!(c[0].handshake_us.is_some(), "measured by its round trips");
}

/// A provider whose TLS port does not answer (blocked on this network, say) but which serves
/// veil: unreachable for a TLS-only client, reachable for one with `transport = "auto"` (timed
/// on its veil port), and for `veil` clients only its veil port counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_ranks_a_provider_by_its_veil_port_when_tls_does_not_answer() {
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
    let veil_l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let veil_port = veil_l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..16 {
            let Ok((s, _)) = veil_l.accept().await else { return };
            held.push(s);
        }
    });
    let advert = wirepact_tunnel::veil::VeilAddr { port: veil_port, public: [5; 32] };
    let c = Candidate { veil: Some(advert), ..candidate(1, closed, B256::repeat_byte(9)) };
    let mut tls_only = [c.clone()];
    measure_handshakes(&mut tls_only, &Requirements::default(), SNI, Duration::from_secs(2), 16).await;
    assert!(tls_only[0].unreachable, "a TLS-only client cannot use it");
    for req in [
        Requirements { veil_fallback: true, ..Requirements::default() },
        Requirements { veil: true, ..Requirements::default() },
    ] {
        let mut x = [c.clone()];
        measure_handshakes(&mut x, &req, SNI, Duration::from_secs(2), 16).await;
        assert!(!x[0].unreachable, "reachable over veil ({req:?})");
        assert!(x[0].handshake_us.is_some());
    }
}
