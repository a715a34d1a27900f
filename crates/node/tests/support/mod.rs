//! What the node's anvil tests share: token amounts, a fast send policy, and a market with one
//! registered provider and a funded client.
// Each test binary uses a part of this.
#![allow(dead_code)]

use std::time::Duration;

use alloy::primitives::{B256, U256};
use wirepact_chain::bindings::IWirepactMarket;
use wirepact_chain::{AlloyMarket, Devnet, Market, SendPolicy};
use wirepact_proto::ProviderId;

pub const ONE: u128 = 1_000_000_000_000_000_000;

pub fn wei(t: u128) -> U256 {
    U256::from(t) * U256::from(ONE)
}

pub fn policy() -> SendPolicy {
    SendPolicy {
        confirm_timeout: Duration::from_secs(30),
        poll_interval: Duration::from_millis(20),
        ..SendPolicy::default()
    }
}

/// A devnet market (deployed by signer 0) with provider signer 1 registered (`capacity` and
/// `session` Mbit/s, 80 ms, 0.1 token/GiB, 100 tokens staked, tunnel key `tunnel_key` at
/// `endpoint`) and client signer 2 holding 1,000 tokens in its wallet.
pub struct World {
    pub devnet: Devnet,
    pub deployer: AlloyMarket,
    pub prov: AlloyMarket,
    pub client: AlloyMarket,
    pub pid: ProviderId,
}

/// A devnet market (deployed by signer 0 with the devnet parameters), signers 1 (the
/// provider's) and 2 (the client's) holding 1,000 tokens each; the client's handle.
pub async fn market() -> (Devnet, AlloyMarket, AlloyMarket) {
    let devnet = Devnet::start().expect("anvil (run `make tools` first)");
    let deployer = AlloyMarket::deploy(
        &devnet.endpoint(),
        devnet.signer(0).expect("key"),
        None,
        wirepact_chain::devnet_params(),
        policy(),
    )
    .await
    .expect("deploy");
    let client = deployer.with_signer(devnet.signer(2).expect("key"), policy());
    deployer.mint_test_tokens(devnet.signer(1).expect("key").address(), wei(1_000)).await.expect("mint");
    deployer.mint_test_tokens(client.account(), wei(1_000)).await.expect("mint");
    (devnet, deployer, client)
}

pub async fn world(capacity_mbps: u32, session_mbps: u32, tunnel_key: B256, endpoint: &str) -> World {
    let (devnet, deployer, client) = market().await;
    let prov = deployer.with_signer(devnet.signer(1).expect("key"), policy());
    let terms = IWirepactMarket::ProviderTerms {
        capacityMbps: capacity_mbps,
        sessionMbps: session_mbps,
        maxLatencyMs: 80,
        basePricePerGiB: alloy::primitives::Uint::from(ONE / 10),
    };
    let pid = prov.register_provider(terms, tunnel_key, endpoint, "lo", wei(100)).await.expect("register");
    World { devnet, deployer, prov, client, pid }
}

/// An app's connection through the SOCKS5 proxy at `proxy` to `origin` (IPv4), CONNECT
/// already answered with success.
pub async fn socks_connect(proxy: std::net::SocketAddr, origin: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut app = tokio::net::TcpStream::connect(proxy).await.expect("proxy");
    let std::net::IpAddr::V4(ip) = origin.ip() else { panic!("v4") };
    let mut req = vec![5, 1, 0, 5, 1, 0, 1];
    req.extend_from_slice(&ip.octets());
    req.extend_from_slice(&origin.port().to_be_bytes());
    app.write_all(&req).await.expect("socks");
    let mut rep = [0u8; 12];
    app.read_exact(&mut rep).await.expect("socks reply");
    assert_eq!(rep[3], 0, "SOCKS CONNECT succeeded");
    app
}

/// An origin answering 64 KiB of 0x42 to each connection after its first byte (bounded: 8).
pub async fn origin() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((mut s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut req = [0u8; 1];
                if s.read_exact(&mut req).await.is_ok() {
                    let _ = s.write_all(&[0x42; 65_536]).await;
                }
                let _ = s.shutdown().await;
            });
        }
    });
    a
}

/// 64 KiB from [`origin`] `o` through the SOCKS5 proxy at `proxy`: the bytes that arrived.
pub async fn fetch(proxy: std::net::SocketAddr, o: std::net::SocketAddr) -> usize {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut app = socks_connect(proxy, o).await;
    app.write_all(b"G").await.expect("request");
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), app.read_to_end(&mut got)).await.expect("in time").expect("body");
    got.len()
}

/// The real node (`run_node`, as `wirepact node` runs it) on `devnet`'s market at
/// `market`, provider signer 1, with the test settings and the `extra` TOML lines; its data
/// in a fresh `name` directory under the temp dir (returned, for removal).
pub async fn start_node(
    devnet: &Devnet,
    market: alloy::primitives::Address,
    name: &str,
    extra: &str,
) -> (wirepact_node::NodeInfo, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("wirepact-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg: wirepact_node::NodeConfig = toml::from_str(&format!(
        "rpc_url = \"{}\"\nmarket = \"{market}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\n\
         server_name = \"cdn.example.org\"\ncapacity_mbps = 100\nsession_mbps = 20\nmax_latency_ms = 80\n\
         price_per_gib = \"0.1\"\negress_allow = [\"127.0.0.0/8\"]\n{extra}",
        devnet.endpoint(),
        dir.display()
    ))
    .expect("config");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let key = devnet.signer(1).expect("key");
    tokio::spawn(async move {
        let _ = wirepact_node::run_node(cfg, key, policy(), std::future::pending(), Some(tx)).await;
    });
    let info = tokio::time::timeout(Duration::from_secs(60), rx).await.expect("node ready in time").expect("ready");
    (info, dir)
}
