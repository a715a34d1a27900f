//! The promise end to end on anvil: four oracles (one lying) audit three providers with the same
//! SLA — honest, shaped to 40% of its SLA rate, flaky — through their real tunnels, exchange
//! signed observations over HTTP and report by quorum. The shaped provider is slashed by exactly
//! the configured fraction and jailed; the honest one never records a violation, whatever the
//! liar says.

use std::time::{Duration, Instant};

use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use wirepact_chain::bindings::{provider_status, IWirepactMarket, WirepactMarket};
use wirepact_chain::{Devnet, Market};
use wirepact_node::TestKnobs;
use wirepact_proto::ProviderId;

mod support;
use support::{market_on, node_cfg, oracle_cfg, policy, start_node, start_oracle, tokens};

const EPOCH: u64 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shaped_provider_is_slashed_and_the_honest_one_never_is_despite_a_liar() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("wirepact_oracle=info,wirepact_node=warn")
        .with_test_writer()
        .try_init();
    let dir = std::env::temp_dir().join(format!("wirepact-oracle-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let devnet = Devnet::start().expect("anvil (make tools)");
    let rpc = devnet.endpoint();
    let (m, params) = market_on(&devnet, EPOCH, 7, |p| p.rewardPeriodEpochs = 3).await;

    // Providers 1 honest, 2 shaped to 40% of its 20 Mbit/s, 3 flaky.
    let knobs = [
        TestKnobs::default(),
        TestKnobs { shape_mbps: Some(8), ..TestKnobs::default() },
        TestKnobs { fail_probability: 0.5, ..TestKnobs::default() },
    ];
    for (i, k) in knobs.into_iter().enumerate() {
        let cfg = node_cfg(&rpc, &m, &dir.join(format!("node{i}")), 100, k);
        start_node(cfg, devnet.signer(i + 1).expect("key")).await;
    }
    let stake_before = U256::from(m.provider(ProviderId(2)).await.expect("p2").stake);

    // A client opens a session with the shaped provider before anyone has audited it.
    let client = m.with_signer(devnet.signer(8).expect("key"), policy());
    m.mint_test_tokens(client.account(), tokens(10)).await.expect("mint");
    client.deposit(tokens(10)).await.expect("deposit");
    let session_key = PrivateKeySigner::random();
    let opened = client.open_session(ProviderId(2), tokens(10), U256::MAX, session_key.address()).await.expect("open");
    assert_eq!(opened.terms.violationsAtOpen, 0);

    // Oracles 4..=7; the last one lies.
    let mut pages = Vec::new();
    for i in 4..=7usize {
        let cfg = oracle_cfg(&rpc, &m, &dir.join(format!("oracle{i}")), i == 7);
        pages.push(start_oracle(cfg, devnet.signer(i).expect("key")).await.admin.expect("admin endpoint"));
    }

    // Within w = 4 audited epochs (plus the report lag) the shaped provider must be slashed.
    let view = WirepactMarket::new(m.address(), m.rpc());
    let deadline = Instant::now() + Duration::from_secs(EPOCH * 8);
    let mut slashed = None;
    while Instant::now() < deadline {
        let evs = m
            .events(0, alloy::providers::Provider::get_block_number(m.rpc()).await.expect("block"))
            .await
            .expect("events");
        slashed = evs.iter().find_map(|e| match e {
            WirepactMarket::WirepactMarketEvents::ProviderSlashed(s) if s.providerId == 2 => Some(s.clone()),
            _ => None,
        });
        if slashed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let s = slashed.expect("the shaped provider was not slashed in time");
    let expect = stake_before * U256::from(params.slashBps) / U256::from(10_000);
    assert_eq!(s.amount, expect, "slashed by exactly slashBps of its stake");
    let p2 = m.provider(ProviderId(2)).await.expect("p2");
    assert_eq!(U256::from(p2.stake), stake_before - expect, "stake reduced to the wei");
    assert_eq!(p2.status, provider_status::JAILED);

    // The client's payout to the shaped provider is cut per violation recorded while the
    // session was open: gross * (1 - violations * sessionPenaltyBps), to the wei.
    let violations = u64::from(p2.violationCount);
    assert!(violations >= 2);
    let bytes: u64 = 3 << 30;
    let ts = alloy::providers::Provider::get_block_by_number(m.rpc(), alloy::eips::BlockNumberOrTag::Latest)
        .await
        .expect("block")
        .expect("latest")
        .header
        .timestamp;
    let dom = wirepact_proto::domain(m.chain_id(), m.address());
    let receipt = wirepact_proto::Receipt { sessionId: opened.id.0, cumulativeBytes: bytes, timestamp: ts };
    let sig = wirepact_proto::sign_receipt(&session_key, &dom, &receipt).expect("sign");
    let shaped_owner = m.with_signer(devnet.signer(2).expect("key"), policy());
    let r = shaped_owner.claim(&opened.terms, bytes, ts, sig).await.expect("claim");
    let claimed = r.decoded_log::<WirepactMarket::SessionClaimed>().expect("SessionClaimed").data.clone();
    let gross = (U256::from(bytes) * U256::from(opened.terms.pricePerGiB)) >> 30;
    let kept = U256::from(10_000 - violations * u64::from(params.sessionPenaltyBps));
    assert_eq!(claimed.amount, gross * kept / U256::from(10_000), "payout cut per violation");

    let honest = m.provider(ProviderId(1)).await.expect("p1");
    assert_eq!(honest.violationCount, 0, "the liar's zeros never became a verdict against the honest provider");
    assert_eq!(honest.status, provider_status::ACTIVE);
    let reports = m
        .events(0, alloy::providers::Provider::get_block_number(m.rpc()).await.expect("block"))
        .await
        .expect("events")
        .iter()
        .filter(|e| matches!(e, WirepactMarket::WirepactMarketEvents::ReportAccepted(_)))
        .count();
    assert!(reports >= 2, "{reports} reports");
    // The oracles' metrics (issue 22), scraped and parsed: what they probed and reported. An
    // oracle counts its report once it holds the receipt, which may be a poll after the chain
    // shows the event: scrape again until the counts catch up, at most 40 times.
    #[allow(clippy::cast_precision_loss)]
    let seen = reports as f64;
    let http = reqwest::Client::new();
    let mut accepted = 0.0;
    for _ in 0..40 {
        accepted = 0.0;
        for (i, addr) in pages.iter().enumerate() {
            let text =
                http.get(format!("http://{addr}/metrics")).send().await.expect("scrape").text().await.expect("text");
            let value = |name: &str| -> f64 {
                text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
            };
            assert!(
                value("wirepact_oracle_probes_total{result=\"below_sla\"} ") >= 1.0,
                "oracle {i} saw the shaped provider:\n{text}"
            );
            assert!(
                value("wirepact_oracle_probes_total{result=\"available\"} ") >= 1.0,
                "oracle {i} saw the honest one:\n{text}"
            );
            assert!(value("wirepact_oracle_stake_tokens ") > 0.0, "{text}");
            accepted += value("wirepact_oracle_reports_total{outcome=\"accepted\"} ");
            let status: serde_json::Value =
                http.get(format!("http://{addr}/api/status")).send().await.expect("status").json().await.expect("json");
            assert_eq!(status["status"], "active", "{status}");
        }
        if accepted >= seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Read after the chain's count: later reports may have landed in between.
    assert!(accepted >= seen, "the oracles count {accepted} accepted reports, the chain {reports} before");
    // The honest provider claims the reliability bonus of the first reward period (3 epochs),
    // one epoch into the next; the slashed one gets none.
    let deadline = Instant::now() + Duration::from_secs(EPOCH * 7);
    let mut bonus = None;
    while Instant::now() < deadline && bonus.is_none() {
        let evs = m
            .events(0, alloy::providers::Provider::get_block_number(m.rpc()).await.expect("block"))
            .await
            .expect("events");
        for e in &evs {
            if let WirepactMarket::WirepactMarketEvents::BonusClaimed(b) = e {
                assert_ne!(b.providerId, 2, "a slashed provider earns no bonus");
                if b.providerId == 1 {
                    bonus = Some(b.amount);
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let bonus = bonus.expect("the honest provider claimed its bonus");
    assert!(bonus > U256::ZERO, "a non-empty bonus");
    // After the first two epochs every report revealed the secret its predecessor-but-one
    // committed: the oracles drew it, handed it to each other sealed, probed by it, and the
    // market checked it against the commitment. The first such report is for epoch 3, which
    // may still be on its way: wait for it, at most six more epochs.
    let deadline = Instant::now() + Duration::from_secs(EPOCH * 6);
    let mut revealed = 0;
    let mut reported: Vec<u64> = Vec::new();
    for _ in 0..(EPOCH * 6) {
        reported = m
            .events(0, alloy::providers::Provider::get_block_number(m.rpc()).await.expect("block"))
            .await
            .expect("events")
            .iter()
            .filter_map(|e| match e {
                WirepactMarket::WirepactMarketEvents::ReportAccepted(r) => Some(r.epoch),
                _ => None,
            })
            .collect();
        revealed = 0;
        for &e in &reported {
            let c = view.seedCommitment(e).call().await.expect("commitment");
            if !c.reveal.is_zero() {
                assert_eq!(c.commit, wirepact_proto::audit::seed_commit(c.reveal), "epoch {e}'s reveal");
                revealed += 1;
            }
        }
        if revealed >= 1 || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(revealed >= 1, "no report revealed an audit secret (reported epochs {reported:?})");
    for i in 4..=7 {
        let kept = std::fs::read_to_string(dir.join(format!("oracle{i}/audit_secrets.jsonl"))).unwrap_or_default();
        assert!(kept.lines().count() >= 1, "oracle {i} holds no audit secret");
    }

    // Every oracle persisted what it signed.
    for i in 4..=7 {
        let log = std::fs::read_to_string(dir.join(format!("oracle{i}/observations.jsonl"))).expect("observations");
        assert!(log.lines().count() >= 2, "oracle {i} kept its observations");
    }
    let _: IWirepactMarket::Params = view.params().call().await.expect("params");
    let _ = std::fs::remove_dir_all(&dir);
}
