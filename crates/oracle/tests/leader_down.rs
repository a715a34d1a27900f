//! The epoch's leader proposes the report; when it is down, the others still report the
//! epoch: once it is `fallback_pct` into the next one, any oracle proposes, the rest check and
//! sign the same aggregate, and it is submitted. On anvil with a real provider: four oracles
//! registered, one of them never running (3 of 4 equal stakes are more than two thirds).

use std::time::{Duration, Instant};

use alloy::primitives::Address;
use wirepact_chain::{Devnet, Market};
use wirepact_node::TestKnobs;

mod support;
use support::{market_on, node_cfg, oracle_cfg, policy, start_node, start_oracle};

const EPOCH: u64 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epoch_whose_leader_is_down_is_still_reported() {
    let _ = tracing_subscriber::fmt().with_env_filter("wirepact_oracle=info").with_test_writer().try_init();
    let dir = std::env::temp_dir().join(format!("wirepact-oracle-leader-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let devnet = Devnet::start().expect("anvil (make tools)");
    let rpc = devnet.endpoint();
    let (m, params) = market_on(&devnet, EPOCH, 7, |p| p.claimGrace = EPOCH).await;
    start_node(node_cfg(&rpc, &m, &dir.join("node"), 100, TestKnobs::default()), devnet.signer(1).expect("key")).await;

    // Oracle 7 registers (so it leads every fourth epoch) and then never runs.
    let dead = m.with_signer(devnet.signer(7).expect("key"), policy());
    dead.register_oracle("127.0.0.1:9", alloy::primitives::U256::from(params.minOracleStake)).await.expect("register");
    for i in 4..=6usize {
        start_oracle(oracle_cfg(&rpc, &m, &dir.join(format!("oracle{i}")), false), devnet.signer(i).expect("key"))
            .await;
    }
    let mut set: Vec<Address> = (4..=7usize).map(|i| devnet.signer(i).expect("key").address()).collect();
    set.sort();
    let dead_addr = dead.account();

    // Bounded: until an epoch led by the dead oracle and one led by a live one are reported.
    let deadline = Instant::now() + Duration::from_secs(EPOCH * 12);
    let (mut led_by_dead, mut led_by_live) = (None, None);
    while Instant::now() < deadline && (led_by_dead.is_none() || led_by_live.is_none()) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = m.current_epoch().await.expect("epoch");
        for e in 1..=now {
            if !m.is_reported(e).await.expect("reported") {
                continue;
            }
            let leader = set[usize::try_from(e % 4).expect("small")];
            if leader == dead_addr {
                led_by_dead.get_or_insert(e);
            } else {
                led_by_live.get_or_insert(e);
            }
        }
    }
    let e = led_by_dead.expect("an epoch whose leader never ran was reported by the others");
    assert!(led_by_live.is_some(), "epochs with a live leader are reported too");
    // The report the fallback submitted is an aggregate the market accepted: it has a root.
    assert!(!m.verdict_root(e).await.expect("root").is_zero(), "the provider was judged available in epoch {e}");
    let _ = std::fs::remove_dir_all(&dir);
}
