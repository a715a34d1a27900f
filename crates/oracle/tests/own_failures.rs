//! What is not the provider's fault never counts against it, on anvil with real tunnels:
//! - a provider that is simply full (one client session holds all its capacity) is "not
//!   measured", never unreachable: before, two reports slashed and jailed it;
//! - an oracle whose wallet is empty signs "not measured" for the providers it could not
//!   fund a probe for, instead of "unreachable";
//! - the oracles settle their probe sessions after the claim grace, so probe deposits come
//!   back instead of draining the wallet.

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use wirepact_chain::bindings::{provider_status, WirepactMarket};
use wirepact_chain::{Devnet, Market};
use wirepact_node::TestKnobs;
use wirepact_proto::ProviderId;

mod support;
use support::{market_on, node_cfg, oracle_cfg, policy, start_node, start_oracle, tokens};

const EPOCH: u64 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_provider_and_a_broke_oracle_are_not_measured_and_probe_deposits_come_back() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("wirepact_oracle=info,wirepact_node=warn")
        .with_test_writer()
        .try_init();
    let dir = std::env::temp_dir().join(format!("wirepact-oracle-own-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let devnet = Devnet::start().expect("anvil (make tools)");
    let rpc = devnet.endpoint();
    let (m, params) = market_on(&devnet, EPOCH, 6, |p| p.claimGrace = EPOCH).await;
    // Oracle 7 has its stake and nothing else: it cannot fund a single probe.
    let broke = devnet.signer(7).expect("key");
    m.mint_test_tokens(broke.address(), U256::from(params.minOracleStake)).await.expect("mint");

    // Provider 1 has room; provider 2 sells one 20 Mbit/s session and a client holds it.
    for (i, capacity) in [(1usize, 100u32), (2, 20)] {
        let cfg = node_cfg(&rpc, &m, &dir.join(format!("node{i}")), capacity, TestKnobs::default());
        start_node(cfg, devnet.signer(i).expect("key")).await;
    }
    let client = m.with_signer(devnet.signer(8).expect("key"), policy());
    m.mint_test_tokens(client.account(), tokens(10)).await.expect("mint");
    client.deposit(tokens(10)).await.expect("deposit");
    client
        .open_session(ProviderId(2), tokens(10), U256::MAX, PrivateKeySigner::random().address())
        .await
        .expect("open");
    assert_eq!(m.quote(ProviderId(2)).await.expect("quote"), U256::ZERO, "provider 2 is full");

    for i in 4..=7usize {
        let cfg = oracle_cfg(&rpc, &m, &dir.join(format!("oracle{i}")), false);
        start_oracle(cfg, devnet.signer(i).expect("key")).await;
    }

    // Run until 4 epochs are reported and some probe session was settled (bounded).
    let deadline = Instant::now() + Duration::from_secs(EPOCH * 9);
    let (mut reports, mut settled_refund) = (0usize, U256::ZERO);
    while Instant::now() < deadline && (reports < 4 || settled_refund.is_zero()) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let evs = m
            .events(0, alloy::providers::Provider::get_block_number(m.rpc()).await.expect("block"))
            .await
            .expect("events");
        let oracle_sessions: Vec<_> = evs
            .iter()
            .filter_map(|e| match e {
                WirepactMarket::WirepactMarketEvents::SessionOpened(o) if o.client != client.account() => {
                    Some(o.sessionId)
                }
                _ => None,
            })
            .collect();
        reports = evs.iter().filter(|e| matches!(e, WirepactMarket::WirepactMarketEvents::ReportAccepted(_))).count();
        settled_refund = evs
            .iter()
            .filter_map(|e| match e {
                WirepactMarket::WirepactMarketEvents::SessionSettled(s) if oracle_sessions.contains(&s.sessionId) => {
                    Some(s.refund)
                }
                _ => None,
            })
            .fold(U256::ZERO, |a, b| a + b);
    }
    assert!(reports >= 4, "{reports} reports");
    assert!(settled_refund > U256::ZERO, "the oracles settled probe sessions and got deposits back");

    for id in [1, 2] {
        let p = m.provider(ProviderId(id)).await.expect("provider");
        assert_eq!(p.violationCount, 0, "provider {id}: nothing that was not its fault counted");
        assert_eq!(p.status, provider_status::ACTIVE, "provider {id}");
    }

    // The broke oracle signed "not measured" (flag bit 1) for what it could not fund, and
    // said why; it never signed "unreachable".
    let log = std::fs::read_to_string(dir.join("oracle7/observations.jsonl")).expect("observations");
    let mut unmeasured = 0;
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        let row = v["signed"]["row"].as_str().expect("row");
        let row = alloy::hex::decode(row).expect("hex");
        for flags in row.chunks_exact(8).map(|r| r[7]) {
            assert_ne!(flags, 0, "the broke oracle signed 'unreachable'");
        }
        for n in v["not_measured"].as_array().expect("not_measured") {
            let why = n["why"].as_str().expect("why");
            match n["provider"].as_u64() {
                Some(1) => assert!(why.contains("wallet"), "{n}"),
                Some(2) => assert!(why.contains("full"), "{n}"),
                _ => panic!("{n}"),
            }
            unmeasured += 1;
        }
    }
    assert!(unmeasured >= 2, "{unmeasured} not-measured observations");
    let _ = std::fs::remove_dir_all(&dir);
}
