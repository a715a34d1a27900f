//! What the oracle's anvil tests share: token amounts, a fast send policy, a market, a
//! provider's and an oracle's config.

use std::time::Duration;

use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use wirepact_chain::bindings::IWirepactMarket;
use wirepact_chain::{devnet_params, AlloyMarket, Devnet, Market, SendPolicy};
use wirepact_node::{NodeConfig, TestKnobs};
use wirepact_oracle::OracleConfig;

pub fn tokens(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

pub fn policy() -> SendPolicy {
    SendPolicy { poll_interval: Duration::from_millis(20), ..SendPolicy::default() }
}

/// A provider selling 20 Mbit/s sessions out of `capacity_mbps`, on loopback.
pub fn node_cfg(rpc: &str, m: &AlloyMarket, dir: &std::path::Path, capacity_mbps: u32, knobs: TestKnobs) -> NodeConfig {
    NodeConfig {
        rpc_url: rpc.into(),
        market: m.address(),
        data_dir: dir.into(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        endpoint: None,
        server_name: "cdn.example.org".into(),
        cover: None,
        veil_listen: None,
        region: String::new(),
        capacity_mbps,
        session_mbps: 20,
        max_latency_ms: 80,
        price_per_gib: "0.1".into(),
        stake: None,
        window_bytes: 1 << 20,
        claim_threshold: "1".into(),
        claim_interval_secs: 60,
        collect_threshold: "10".into(),
        egress_allow: vec!["127.0.0.0/8".into()],
        auth_max_skew_secs: 120,
        idle_close_secs: 600,
        auto_unjail: false,
        admin_listen: None,
        test_knobs: knobs,
    }
}

/// Runs a provider with `cfg` in the background; returns once it accepts tunnels.
pub async fn start_node(cfg: NodeConfig, key: PrivateKeySigner) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        if let Err(e) = wirepact_node::run_node(cfg, key, policy(), std::future::pending(), Some(tx)).await {
            panic!("node failed: {e}");
        }
    });
    tokio::time::timeout(Duration::from_secs(30), rx).await.expect("node ready in time").expect("node ready");
}

/// An oracle on loopback probing early in each epoch, without second probes (seconds-long
/// epochs leave no room for them), lying if `lie`.
pub fn oracle_cfg(rpc: &str, m: &AlloyMarket, dir: &std::path::Path, lie: bool) -> OracleConfig {
    OracleConfig {
        rpc_url: rpc.into(),
        market: m.address(),
        data_dir: dir.into(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        endpoint: None,
        sink_listen: "127.0.0.1:0".parse().expect("addr"),
        stake: None,
        probe_deposit: "1".into(),
        price_tolerance_pct: 5,
        probe_window_pct: 20,
        fallback_pct: 30,
        confirm_suspects: false,
        lie,
        admin_listen: Some("127.0.0.1:0".parse().expect("addr")),
    }
}

/// Runs an oracle with `cfg` in the background; returns once it is registered and serving.
pub async fn start_oracle(cfg: OracleConfig, key: PrivateKeySigner) -> wirepact_oracle::OracleInfo {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        if let Err(e) = wirepact_oracle::run_oracle(cfg, key, policy(), std::future::pending(), Some(tx)).await {
            panic!("oracle failed: {e}");
        }
    });
    tokio::time::timeout(Duration::from_secs(30), rx).await.expect("oracle ready in time").expect("oracle ready")
}

/// A market on `devnet` with `epoch`-second epochs (and `adjust` applied to the devnet
/// parameters), deployed by signer 0, and signers `1..=funded` holding 1,000 tokens each.
pub async fn market_on(
    devnet: &Devnet,
    epoch: u64,
    funded: usize,
    adjust: impl FnOnce(&mut IWirepactMarket::Params),
) -> (AlloyMarket, IWirepactMarket::Params) {
    let mut params = devnet_params();
    params.epochLength = epoch;
    adjust(&mut params);
    let m = AlloyMarket::deploy(&devnet.endpoint(), devnet.signer(0).expect("key"), None, params.clone(), policy())
        .await
        .expect("deploy");
    for i in 1..=funded {
        m.mint_test_tokens(devnet.signer(i).expect("key").address(), tokens(1_000)).await.expect("mint");
    }
    (m, params)
}
