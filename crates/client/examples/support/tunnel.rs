//! The tunnel the benchmarks measure: a provider serving one session on loopback (egress to
//! 127.0.0.0/8) and a client with its local SOCKS5 port, in this process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use tokio::net::TcpListener;
use wirepact_client::proxy::serve_proxy;
use wirepact_proto::domain;
use wirepact_tunnel::clock::unix_now_with;
use wirepact_tunnel::egress::EgressPolicy;
use wirepact_tunnel::lane::{LaneDialer, ProviderLanes};
use wirepact_tunnel::mux::Prefixed;
use wirepact_tunnel::provider::{serve_connection, ProviderSession, ReceiptStore};
use wirepact_tunnel::session::ClientSession;
use wirepact_tunnel::transport::Transport;
use wirepact_tunnel::veil::{VeilKey, VeilServer, VeilTransport};
use wirepact_tunnel::{session_auth_frame, AcceptContext, Accepted, Acceptor, AuthChecker, TlsServer, TunnelIdentity};

struct Null;
impl ReceiptStore for Null {
    fn store(&self, _: B256, _: u64, _: u64, _: [u8; 65]) -> Result<(), wirepact_tunnel::error::StoreError> {
        Ok(())
    }
}

pub struct Tunnel {
    pub proxy: SocketAddr,
    pub provider: SocketAddr,
    pub tunnel_key: B256,
    pub client: Arc<ClientSession>,
    /// How the client dials (for timing more connections of the same session).
    #[allow(dead_code)]
    pub transport: Arc<dyn Transport>,
    #[allow(dead_code)]
    pub key: PrivateKeySigner,
    #[allow(dead_code)]
    pub domain: alloy::sol_types::Eip712Domain,
}

/// How the benchmark's client reaches its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)]
pub enum Over {
    /// TLS, no cover site.
    Tls,
    /// TLS, the provider with a cover site at this address and the ClientHello gate on; the
    /// client signs its hellos.
    Covered(SocketAddr),
    /// Veil, the random-looking transport.
    Veil,
}

/// A session with a credit window of `window` bytes (lanes for bulk streams with `lanes`).
#[allow(dead_code)]
pub async fn tunnel(window: u64, lanes: bool) -> Tunnel {
    tunnel_over(window, lanes, Over::Tls).await
}

/// [`tunnel`] over the transport `over`.
pub async fn tunnel_over(window: u64, lanes: bool, over: Over) -> Tunnel {
    let key = PrivateKeySigner::random();
    let dom = domain(1, Address::repeat_byte(1));
    let id = TunnelIdentity::generate("bench.example").expect("identity");
    let tunnel_key = id.tunnel_key();
    let veil_server = Arc::new(VeilServer::new(VeilKey::generate()));
    let acceptor: Arc<dyn Acceptor> = match over {
        Over::Veil => veil_server.clone(),
        Over::Tls => Arc::new(TlsServer::new(&id).expect("tls")),
        Over::Covered(cover) => {
            Arc::new(TlsServer::new(&id).expect("tls").with_cover(Some(cover.to_string())).with_hello_gate(true))
        }
    };
    let checker = Arc::new(Mutex::new(AuthChecker::new(dom.clone(), tunnel_key, 600, 4096)));
    let mut sessions = HashMap::new();
    sessions.insert(B256::repeat_byte(1), key.address());
    let sessions = Arc::new(sessions);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let provider = listener.local_addr().expect("addr");
    let cfg = ProviderSession {
        domain: dom.clone(),
        session_id: B256::repeat_byte(1),
        session_key: key.address(),
        window,
        max_bytes: u64::MAX,
        egress: EgressPolicy::new(vec!["127.0.0.0/8".parse().expect("cidr")]),
        impair: Default::default(),
        dial_timeout: Duration::from_secs(5),
        lanes: Some(ProviderLanes::default()),
        opened_at: 0,
        // The client's test clock starts at 1_800_000_000 and ticks a second per receipt:
        // the provider's clock is put a day past that start, so it never looks ahead.
        clock_offset_secs: wirepact_tunnel::clock::offset_to(1_800_000_000 + 86_400),
    };
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let (acceptor, checker, sessions, cfg) = (acceptor.clone(), checker.clone(), sessions.clone(), cfg.clone());
            tokio::spawn(async move {
                if let Ok(Accepted::Session { stream, pending, .. }) = acceptor
                    .accept(
                        tcp,
                        AcceptContext {
                            checker: &checker,
                            lookup: &*sessions,
                            now: unix_now_with(0),
                            deadline: Duration::from_secs(2),
                            credit_until: window,
                        },
                        Box::new(|| {}),
                    )
                    .await
                {
                    let _ = serve_connection(Prefixed::new(pending, stream), cfg, Arc::new(Null)).await;
                }
            });
        }
    });
    let auth =
        session_auth_frame(&key, &dom, B256::repeat_byte(1), tunnel_key, unix_now_with(0), rand_nonce()).expect("auth");
    let transport: Arc<dyn Transport> = match over {
        Over::Veil => Arc::new(VeilTransport { server: veil_server.addr(provider.port()), session_key: key.clone() }),
        Over::Tls => Arc::new(wirepact_tunnel::transport::TlsTransport::new("bench.example", tunnel_key)),
        Over::Covered(_) => Arc::new(
            wirepact_tunnel::transport::TlsTransport::new("bench.example", tunnel_key).with_hello_key(key.clone()),
        ),
    };
    let t = transport.dial(provider, &auth, Duration::from_secs(5)).await.expect("connect");
    let clock = Arc::new(std::sync::atomic::AtomicU64::new(1_800_000_000));
    let now = Arc::new(move || clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    let dialer = lanes.then(|| LaneDialer {
        addr: provider,
        transport: transport.clone(),
        tunnel_key,
        session_key: key.clone(),
        domain: dom.clone(),
        session_id: B256::repeat_byte(1),
        now: Arc::new(|| unix_now_with(0)),
        deadline: Duration::from_secs(5),
    });
    let cs = ClientSession::start_with_lanes(
        Prefixed::new(t.pending, t.stream),
        key.clone(),
        dom.clone(),
        B256::repeat_byte(1),
        window,
        now,
        dialer,
    )
    .await
    .expect("client");
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let proxy = l.local_addr().expect("addr");
    tokio::spawn(serve_proxy(l, cs.clone()));
    Tunnel { proxy, provider, tunnel_key, client: cs, transport, key, domain: dom }
}

pub fn rand_nonce() -> [u8; 16] {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let mut n = [0u8; 16];
    n[..8].copy_from_slice(&NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst).to_be_bytes());
    n
}
