//! The chain client against a real anvil node: receipts, EIP-712 parity, quorum, transport failures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider as _;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolStruct;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wirepact_chain::bindings::IWirepactMarket;
use wirepact_chain::bindings::WirepactMarket::WirepactMarketErrors as E;
use wirepact_chain::{AlloyMarket, ChainError, Devnet, Market, ReportSubmission, SendPolicy};
use wirepact_proto::verdicts::{aggregate, verify, Row, Sla, Tolerances, VerdictTree};
use wirepact_proto::{domain, sign_receipt, sign_report, Kbps, Millis, Observation, Receipt, Report};

const ONE: u128 = 1_000_000_000_000_000_000;

fn params() -> IWirepactMarket::Params {
    wirepact_chain::devnet_params()
}

fn policy() -> SendPolicy {
    SendPolicy {
        confirm_timeout: Duration::from_secs(30),
        poll_interval: Duration::from_millis(20),
        ..SendPolicy::default()
    }
}

fn wei(tokens: u128) -> U256 {
    U256::from(tokens) * U256::from(ONE)
}

struct World {
    devnet: Devnet,
    deployer: AlloyMarket,
}

async fn world() -> World {
    let devnet = Devnet::start().expect("anvil (run `make tools` first)");
    let deployer = AlloyMarket::deploy(&devnet.endpoint(), devnet.signer(0).expect("key"), None, params(), policy())
        .await
        .expect("deploy");
    World { devnet, deployer }
}

impl World {
    async fn funded(&self, i: usize, tokens: u128) -> AlloyMarket {
        let m = self.deployer.with_signer(self.devnet.signer(i).expect("key"), policy());
        self.deployer.mint_test_tokens(m.account(), wei(tokens)).await.expect("mint");
        m
    }
}

fn provider_terms() -> IWirepactMarket::ProviderTerms {
    IWirepactMarket::ProviderTerms {
        capacityMbps: 100,
        sessionMbps: 25,
        maxLatencyMs: 80,
        basePricePerGiB: alloy::primitives::Uint::from(ONE / 10),
    }
}

fn revert_of(e: &ChainError) -> &E {
    e.revert().unwrap_or_else(|| panic!("expected a typed market revert, got {e:?}"))
}

#[tokio::test]
async fn rust_signed_receipt_is_paid_and_bad_ones_are_refused_with_typed_errors() {
    let w = world().await;
    let prov = w.funded(1, 1_000).await;
    let client = w.funded(2, 1_000).await;
    let pid = prov
        .register_provider(provider_terms(), B256::repeat_byte(7), "127.0.0.1:4433", "lo", wei(100))
        .await
        .expect("register");
    client.deposit(wei(50)).await.expect("deposit");
    let session_key = PrivateKeySigner::random();
    let opened = client.open_session(pid, wei(10), U256::MAX, session_key.address()).await.expect("open");
    let d = domain(w.devnet.chain_id(), client.address());

    let now = opened.terms.openedAt.to::<u64>() + 1;
    let bytes = 3u64 << 30;
    let r = Receipt { sessionId: opened.id.0, cumulativeBytes: bytes, timestamp: now };
    let sig = sign_receipt(&session_key, &d, &r).expect("sign");
    prov.claim(&opened.terms, bytes, now, sig.clone()).await.expect("claim");
    let price = U256::from(opened.terms.pricePerGiB);
    let gross: U256 = (U256::from(bytes) * price) >> 30;
    let fee = gross * U256::from(200) / U256::from(10_000);
    assert_eq!(prov.provider(pid).await.expect("provider").earned, gross, "claimed into the earnings");
    // anyone may collect them: the owner gets them less the fee
    client.collect_earnings(pid).await.expect("collect");
    assert_eq!(prov.balance_of(prov.account()).await.expect("bal"), gross - fee);
    let e = client.collect_earnings(pid).await.expect_err("nothing left");
    assert!(matches!(revert_of(&e), E::Market_NothingToCollect(_)), "{e:?}");

    // replayed
    let e = prov.claim(&opened.terms, bytes, now, sig.clone()).await.expect_err("replay");
    assert!(matches!(revert_of(&e), E::Market_ReceiptNotNewer(_)), "{e:?}");
    assert!(!e.is_retryable());
    // tampered: the signature covers other bytes
    let e = prov.claim(&opened.terms, bytes + 1, now + 1, sig).await.expect_err("tampered");
    assert!(matches!(revert_of(&e), E::Market_BadReceiptSignature(_)), "{e:?}");
    // foreign chain and foreign market
    for dom in [domain(w.devnet.chain_id() + 1, client.address()), domain(w.devnet.chain_id(), Address::repeat_byte(9))]
    {
        let r = Receipt { sessionId: opened.id.0, cumulativeBytes: bytes * 2, timestamp: now + 1 };
        let sig = sign_receipt(&session_key, &dom, &r).expect("sign");
        let e = prov.claim(&opened.terms, bytes * 2, now + 1, sig).await.expect_err("foreign");
        assert!(matches!(revert_of(&e), E::Market_BadReceiptSignature(_)), "{e:?}");
    }
    // nothing moved after the refusals
    assert_eq!(prov.balance_of(prov.account()).await.expect("bal"), gross - fee);
}

#[tokio::test]
async fn eip712_hashes_match_the_contract_for_random_messages() {
    let w = world().await;
    let d = domain(w.devnet.chain_id(), w.deployer.address());
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x712);
    for _ in 0..100 {
        let r = Receipt {
            sessionId: B256::from(rng.random::<[u8; 32]>()),
            cumulativeBytes: rng.random(),
            timestamp: rng.random(),
        };
        let onchain = w.deployer.receipt_digest(r.sessionId, r.cumulativeBytes, r.timestamp).await.expect("digest");
        assert_eq!(r.eip712_signing_hash(&d), onchain);

        let n = rng.random_range(0..20usize);
        let ids: Vec<u32> = (0..n).map(|_| rng.random_range(1..100_000)).collect();
        let tree = VerdictTree::new(rng.random(), ids.into_iter().map(|id| (id, id % 5)).collect());
        let violations: Vec<u8> = (0..rng.random_range(0..5usize) * 12).map(|_| rng.random()).collect();
        let report = Report {
            epoch: tree.epoch,
            root: tree.root(),
            available: u32::try_from(tree.ids.len()).expect("small"),
            violations: violations.into(),
            seedCommit: B256::from(rng.random::<[u8; 32]>()),
        };
        let onchain = w.deployer.report_digest(&report).await.expect("digest");
        assert_eq!(report.eip712_signing_hash(&d), onchain);
    }
}

#[tokio::test]
async fn report_with_four_signatures_is_accepted_and_two_are_refused() {
    let w = world().await;
    let prov = w.funded(1, 1_000).await;
    let pid = prov
        .register_provider(provider_terms(), B256::repeat_byte(7), "127.0.0.1:4433", "", wei(100))
        .await
        .expect("register");
    let mut oracles: Vec<(PrivateKeySigner, AlloyMarket)> = Vec::new();
    for i in 3..7 {
        let m = w.funded(i, 100).await;
        m.register_oracle("http://127.0.0.1:9000", wei(10)).await.expect("register oracle");
        oracles.push((w.devnet.signer(i).expect("key"), m));
    }
    oracles.sort_by_key(|(k, _)| k.address());
    // Oracles sign from the epoch after they joined: move the chain one epoch on.
    let joined = w.deployer.current_epoch().await.expect("epoch");
    let len = w.deployer.params().await.expect("params").epochLength;
    let _: serde_json::Value = w.deployer.rpc().raw_request("evm_increaseTime".into(), (len,)).await.expect("warp");
    let _: serde_json::Value = w.deployer.rpc().raw_request("evm_mine".into(), ()).await.expect("mine");
    w.deployer.begin_epoch().await.expect("begin");
    let epoch = w.deployer.current_epoch().await.expect("epoch");
    assert_eq!(epoch, joined + 1);
    assert!(w.deployer.is_audited(epoch, pid).await.expect("audited"));
    let all: Vec<Address> = oracles.iter().map(|(k, _)| k.address()).collect();
    assert_eq!(w.deployer.signing_stake(joined, &all).await.expect("stake"), (U256::ZERO, U256::ZERO));
    assert_eq!(w.deployer.signing_stake(epoch, &all[..2]).await.expect("stake"), (wei(20), wei(40)));

    let d = domain(w.devnet.chain_id(), w.deployer.address());
    // every oracle saw the provider healthy: one leaf, no violator
    let row =
        [Observation { provider: pid, throughput: Kbps(30_000), latency: Millis(20), reachable: true, measured: true }];
    let rows: Vec<Row<'_>> = (0..4).map(|_| Row { stake: 10, observations: &row }).collect();
    let sla = Sla { session_mbps: provider_terms().sessionMbps, max_latency_ms: provider_terms().maxLatencyMs };
    let tol = Tolerances { throughput_bps: 1_000, latency_ms: 20 };
    let agg = aggregate(epoch, &[pid.0], &rows, 40, |_| Some(sla), |_| 0, tol).expect("aggregate");
    assert!(agg.violations.is_empty());
    let secret = B256::repeat_byte(0x5e);
    let report = agg.report(wirepact_proto::audit::seed_commit(secret));
    let build = |n: usize| ReportSubmission {
        report: report.clone(),
        seed_reveal: B256::ZERO,
        signatures: oracles.iter().take(n).map(|(k, _)| sign_report(k, &d, &report).expect("sign")).collect(),
    };
    let e = w.deployer.submit_report(&build(2)).await.expect_err("two signatures");
    assert!(matches!(revert_of(&e), E::Market_TooFewOracles(q) if q.signers == U256::from(2)), "{e:?}");
    let receipt = w.deployer.submit_report(&build(4)).await.expect("report");
    assert!(receipt.status());
    // the market keeps the root the Rust tree computed, and the Rust proof verifies against it
    let root = w.deployer.verdict_root(epoch).await.expect("root");
    assert_eq!(root, agg.tree.root());
    let (base, proof) = agg.tree.proof(pid.0).expect("leaf");
    assert!(verify(root, epoch, pid.0, base, &proof));
    // and holds the commitment to the secret of epoch + 2, hashed as the Rust side hashes it
    let view = wirepact_chain::WirepactMarket::new(w.deployer.address(), w.deployer.rpc());
    let c = view.seedCommitment(epoch + 2).call().await.expect("commitment");
    assert_eq!(c.commit, wirepact_proto::audit::seed_commit(secret));
    assert_eq!(c.reveal, B256::ZERO, "revealed only by the report of epoch + 2");
}

#[tokio::test]
async fn closed_rpc_port_is_a_retryable_transport_error() {
    let w = world().await;
    // A port that was free a moment ago and now has nobody listening.
    let port = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr").port();
    let dead = format!("http://127.0.0.1:{port}");
    let fast = SendPolicy { send_attempts: 2, backoff: Duration::from_millis(10), ..policy() };
    let e = AlloyMarket::connect(&dead, w.deployer.address(), w.devnet.signer(1).expect("key"), fast)
        .await
        .expect_err("dead rpc");
    assert!(matches!(e, ChainError::Transport { .. }), "{e:?}");
    assert!(e.is_retryable());
    // One line that says what failed and what to do, the cause once.
    let msg = e.to_string();
    assert!(msg.contains("cannot reach the chain") && msg.contains("retry"), "{msg}");
    assert!(msg.to_lowercase().contains("refused"), "{msg}");
    assert!(std::error::Error::source(&e).is_none(), "the cause is not chained again: {msg}");
}

/// A proxy in front of anvil that swallows the answer to the first `eth_sendRawTransaction`
/// (after forwarding it): the transaction lands, the client sees a transport failure.
async fn flaky_proxy(upstream: u16, drops: usize) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let left = Arc::new(AtomicUsize::new(drops));
    let dropped = Arc::new(AtomicUsize::new(0));
    let dropped2 = dropped.clone();
    tokio::spawn(async move {
        for _ in 0..1000 {
            let Ok((mut client, _)) = listener.accept().await else { return };
            let left = left.clone();
            let dropped = dropped2.clone();
            tokio::spawn(async move {
                for _ in 0..1000 {
                    let Some(req) = read_http(&mut client).await else { return };
                    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)).await else { return };
                    if up.write_all(&req).await.is_err() {
                        return;
                    }
                    let Some(resp) = read_http(&mut up).await else { return };
                    let is_send = String::from_utf8_lossy(&req).contains("eth_sendRawTransaction");
                    if is_send && left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
                        dropped.fetch_add(1, Ordering::SeqCst);
                        return; // close without answering
                    }
                    if client.write_all(&resp).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, dropped)
}

/// Reads one HTTP/1.1 message with a Content-Length body (bounded to 1 MiB).
async fn read_http(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await.ok()?.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf);
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk)).await.ok()?.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[tokio::test]
async fn lost_answer_to_a_sent_transaction_is_retried_without_double_spend() {
    let w = world().await;
    let client = w.funded(2, 1_000).await;
    // Approve directly, then deposit through the flaky proxy.
    client.deposit(wei(1)).await.expect("first deposit approves");
    let (port, dropped) = flaky_proxy(w.devnet.port(), 1).await;
    let via_proxy = AlloyMarket::connect(
        &format!("http://127.0.0.1:{port}"),
        w.deployer.address(),
        w.devnet.signer(2).expect("key"),
        policy(),
    )
    .await
    .expect("connect via proxy");
    let before_wallet = client.token_balance(client.account()).await.expect("wallet");
    via_proxy.deposit(wei(5)).await.expect("deposit survives a lost answer");
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the proxy really dropped an answer");
    assert_eq!(client.balance_of(client.account()).await.expect("bal"), wei(6));
    assert_eq!(client.token_balance(client.account()).await.expect("wallet"), before_wallet - wei(5));
}
