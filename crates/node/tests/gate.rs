//! The real node with a cover site (`cover = "host:port"`, as `wirepact node` runs it): the
//! ClientHello gate is on, fed by the chain. A stranger's TLS hello — a prober's, or a client
//! without a session here — is relayed to the cover; a customer whose session was opened a
//! moment ago gets its tunnel on its first dial (the node learns the session key from the
//! chain's `SessionOpened` event, the client redials while it catches up). With `veil_listen`,
//! the same node serves the random-looking transport on a second port, advertised on chain.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use wirepact_chain::Market;
use wirepact_client::proxy::serve_proxy;
use wirepact_proto::{domain, ProviderId};
use wirepact_tunnel::mux::Prefixed;
use wirepact_tunnel::session::ClientSession;
use wirepact_tunnel::transport::{Transport, TransportError};
use wirepact_tunnel::{session_auth_frame, TlsTransport, TunnelIdentity};

mod support;
use support::wei;

const SNI: &str = "cdn.example.org";

/// A stand-in for the cover site (bounded: 32 visitors): a TLS server with a certificate of
/// its own, as a real HTTPS site has. It reports the first bytes of each visitor that sent any.
async fn cover_site() -> (std::net::SocketAddr, tokio::sync::mpsc::Receiver<Vec<u8>>) {
    let site = TunnelIdentity::generate("www.cover.example").expect("identity");
    let acceptor = tokio_rustls::TlsAcceptor::from(site.server_config().expect("config"));
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::channel(32);
    tokio::spawn(async move {
        for _ in 0..32 {
            let Ok((s, _)) = l.accept().await else { return };
            let (tx, acceptor) = (tx.clone(), acceptor.clone());
            tokio::spawn(async move {
                let mut b = vec![0u8; 4096];
                let n =
                    tokio::time::timeout(Duration::from_secs(5), s.peek(&mut b)).await.map_or(0, |r| r.unwrap_or(0));
                b.truncate(n);
                // A customer's connection makes the provider open one to the cover that it
                // then drops unused: only visitors that sent something are reported.
                if !b.is_empty() {
                    let _ = tx.try_send(b);
                }
                if let Ok(Ok(mut tls)) = tokio::time::timeout(Duration::from_secs(5), acceptor.accept(s)).await {
                    let _ = tls.write_all(b"COVER\n").await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    (a, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_cover_the_node_lets_only_customers_in_and_strangers_meet_the_cover() {
    let (devnet, deployer, client) = support::market().await;
    let (cover, mut cover_saw) = cover_site().await;
    let (node, dir) = support::start_node(&devnet, deployer.address(), "gate", &format!("cover = \"{cover}\"\n")).await;

    // A prober: a TLS client with the provider's registered key pinned but no session. Its
    // hello goes to the cover, whose answer is not the provider's TLS.
    let prober = TlsTransport::new(SNI, node.tunnel_key);
    let dom = domain(devnet.chain_id(), deployer.address());
    let stranger_key = PrivateKeySigner::random();
    let auth = session_auth_frame(&stranger_key, &dom, [7u8; 32].into(), node.tunnel_key, 0, [1; 16]).expect("auth");
    let probed = prober.dial(node.listen, &auth, Duration::from_secs(5)).await;
    assert!(matches!(probed, Err(TransportError::OtherCertificate)), "a stranger met no cover: {probed:?}");
    let seen = tokio::time::timeout(Duration::from_secs(5), cover_saw.recv()).await.expect("in time").expect("seen");
    assert_eq!(seen.first(), Some(&0x16), "the cover got the prober's ClientHello itself: {seen:02x?}");

    // A client without a session here signs its hello with a key the chain never saw: the
    // cover too (its dial gives up when its catch-up time runs out).
    let signed_stranger = TlsTransport::new(SNI, node.tunnel_key).with_hello_key(stranger_key.clone());
    let r = signed_stranger.dial(node.listen, &auth, Duration::from_secs(3)).await;
    assert!(
        matches!(r, Err(TransportError::OtherCertificate | TransportError::Timeout(_))),
        "a hello signed by an unknown key got past the cover: {r:?}"
    );
    let seen = tokio::time::timeout(Duration::from_secs(5), cover_saw.recv()).await.expect("in time").expect("seen");
    assert_eq!(seen.first(), Some(&0x16));

    // A customer: the session is opened and dialled at once.
    let session_key = PrivateKeySigner::random();
    client.deposit(wei(10)).await.expect("deposit");
    let opened = client
        .open_session(ProviderId(node.provider_id), wei(10), U256::MAX, session_key.address())
        .await
        .expect("open");
    let now = opened.terms.openedAt.to::<u64>();
    let auth = session_auth_frame(&session_key, &dom, opened.id.0, node.tunnel_key, now, [2; 16]).expect("auth");
    let customer = TlsTransport::new(SNI, node.tunnel_key).with_hello_key(session_key.clone());
    let t = match customer.dial(node.listen, &auth, Duration::from_secs(15)).await {
        Ok(t) => t,
        Err(e @ TransportError::OtherCertificate) => panic!("the node never learned the session: {e}"),
        Err(e) => panic!("the customer's tunnel: {e}"),
    };
    fetch_over(t, session_key, dom, opened.id.0, now, "through the gated node").await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_fetches_through_the_nodes_veil_port_advertised_on_chain() {
    let (devnet, deployer, client) = support::market().await;
    let (node, dir) = support::start_node(&devnet, deployer.address(), "veil", "veil_listen = \"127.0.0.1:0\"\n").await;
    let veil_at = node.veil.expect("veil served");

    // What a client reads on chain: the TLS endpoint, then the veil advert with this port.
    let registered = client.provider(ProviderId(node.provider_id)).await.expect("provider").endpoint;
    let (tls, advert) = wirepact_tunnel::veil::split_endpoint(&registered);
    assert_eq!(tls, node.listen.to_string());
    let advert = advert.expect("the endpoint advertises veil");
    assert_eq!(advert.port, veil_at.port());

    // A stranger on the veil port: never a byte back.
    let mut s = tokio::net::TcpStream::connect(veil_at).await.expect("connect");
    s.write_all(&[0x42; 1500]).await.expect("write");
    drop(s);

    let session_key = PrivateKeySigner::random();
    client.deposit(wei(10)).await.expect("deposit");
    let opened = client
        .open_session(ProviderId(node.provider_id), wei(10), U256::MAX, session_key.address())
        .await
        .expect("open");
    let now = opened.terms.openedAt.to::<u64>();
    let dom = domain(devnet.chain_id(), deployer.address());
    let auth = session_auth_frame(&session_key, &dom, opened.id.0, node.tunnel_key, now, [3; 16]).expect("auth");
    let veil = wirepact_tunnel::veil::VeilTransport { server: advert, session_key: session_key.clone() };
    // Dialled at once: the node learns the session from the chain within a second, and holds a
    // signed first flight that long before it would leave it unanswered.
    let t = veil.dial(veil_at, &auth, Duration::from_secs(15)).await;
    let t = t.expect("the customer's veil tunnel on its first dial");
    fetch_over(t, session_key, dom, opened.id.0, now, "over veil").await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A session over the tunnel `t`: 64 KiB fetched through its SOCKS5 port (`how` it got there,
/// for the message), the last receipt acknowledged for every byte counted.
async fn fetch_over(
    t: wirepact_tunnel::ClientTunnel,
    session_key: PrivateKeySigner,
    dom: alloy::sol_types::Eip712Domain,
    sid: alloy::primitives::B256,
    now: u64,
    how: &str,
) {
    let clock = Arc::new(std::sync::atomic::AtomicU64::new(now));
    let tick = Arc::new(move || clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    let session = ClientSession::start(Prefixed::new(t.pending, t.stream), session_key, dom, sid, 1 << 20, tick)
        .await
        .expect("session");
    let socks = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let proxy = socks.local_addr().expect("addr");
    tokio::spawn(serve_proxy(socks, session.clone()));
    let o = support::origin().await;
    assert_eq!(support::fetch(proxy, o).await, 65_536, "the customer's fetch {how}");
    let acked = session.finish(Duration::from_secs(10)).await.expect("final receipt");
    assert_eq!(acked, session.counted());
}
