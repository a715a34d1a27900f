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
