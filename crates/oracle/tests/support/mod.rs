//! What the oracle's anvil tests share: token amounts, a fast send policy, a provider's config.

use std::time::Duration;

use alloy::primitives::U256;
use wirepact_chain::{AlloyMarket, Market, SendPolicy};
use wirepact_node::{NodeConfig, TestKnobs};

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
        region: String::new(),
        capacity_mbps,
        session_mbps: 20,
        max_latency_ms: 80,
        price_per_gib: "0.1".into(),
        stake: None,
        window_bytes: 1 << 20,
        claim_threshold: "1".into(),
        claim_interval_secs: 60,
        egress_allow: vec!["127.0.0.0/8".into()],
        auth_max_skew_secs: 120,
        idle_close_secs: 600,
        test_knobs: knobs,
    }
}
