//! The provider's earnings: traffic through the tunnel is receipted into redb and claimed on a
//! real anvil chain exactly (to the wei); receipts survive kill -9 of the process writing them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wirepact_chain::{AlloyMarket, Devnet, Market};
use wirepact_node::{Claimer, ReceiptDb, StoredReceipt};
use wirepact_proto::{domain, ProviderId};

mod support;
use support::{policy, wei, world, World};
use wirepact_client::proxy::serve_proxy;
use wirepact_tunnel::egress::EgressPolicy;
use wirepact_tunnel::mux::Prefixed;
use wirepact_tunnel::provider::{serve_connection, ProviderSession, ReceiptStore};
use wirepact_tunnel::session::ClientSession;
use wirepact_tunnel::{
    connect, session_auth_frame, AcceptContext, Accepted, Acceptor, AuthChecker, TlsServer, TunnelIdentity,
};

const BYTES: usize = 3 << 20;

async fn origin() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((mut s, _)) = l.accept().await else { return };
        let mut req = [0u8; 4];
        if s.read_exact(&mut req).await.is_ok() {
            let _ = s.write_all(&vec![0xab; BYTES]).await;
        }
        let _ = s.shutdown().await;
    });
    a
}

/// A deployed market with a registered provider (tunnel key `tunnel_key`) and a session a
/// client opened with `session_key`.
struct Chain {
    devnet: Devnet,
    deployer: AlloyMarket,
    prov: AlloyMarket,
    opened: wirepact_chain::OpenedSession,
}

async fn chain_with_session(tunnel_key: B256, session_key: &PrivateKeySigner) -> Chain {
    let World { devnet, deployer, prov, client, pid } = world(100, 25, tunnel_key, "127.0.0.1:0").await;
    client.deposit(wei(10)).await.expect("deposit");
    let opened = client.open_session(pid, wei(10), U256::MAX, session_key.address()).await.expect("open");
    Chain { devnet, deployer, prov, opened }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_traffic_is_claimed_on_chain_to_the_wei() {
    let identity = TunnelIdentity::generate("cdn.example.org").expect("identity");
    let session_key = PrivateKeySigner::random();
    let Chain { devnet, deployer, prov, opened } = chain_with_session(identity.tunnel_key(), &session_key).await;

    let dir = std::env::temp_dir().join(format!("wirepact-node-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = Arc::new(ReceiptDb::open(&dir.join("receipts.redb")).expect("db"));
    db.add_session(&opened.terms).expect("terms");

    // Provider side of the tunnel.
    let dom = domain(devnet.chain_id(), deployer.address());
    let tunnel_key = identity.tunnel_key();
    let acceptor = TlsServer::new(&identity).expect("tls");
    let checker = Mutex::new(AuthChecker::new(dom.clone(), tunnel_key, 60, 64));
    let mut sessions = HashMap::new();
    sessions.insert(opened.id.0, session_key.address());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let paddr = listener.local_addr().expect("addr");
    let store: Arc<dyn ReceiptStore> = db.clone();
    let cfg = ProviderSession {
        domain: dom.clone(),
        session_id: opened.id.0,
        session_key: session_key.address(),
        window: 1 << 20,
        max_bytes: u64::MAX,
        egress: EgressPolicy::new(vec!["127.0.0.0/8".parse().expect("cidr")]),
        impair: Default::default(),
        dial_timeout: Duration::from_secs(5),
        lanes: None,
        opened_at: 0,
        clock_offset_secs: 0,
    };
    let now = opened.terms.openedAt.to::<u64>();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let acc = acceptor
            .accept(
                tcp,
                AcceptContext {
                    checker: &checker,
                    lookup: &sessions,
                    now,
                    deadline: Duration::from_secs(2),
                    credit_until: 1 << 20,
                },
                Box::new(|| {}),
            )
            .await
            .expect("accept");
        let Accepted::Session { stream, pending, .. } = acc else { panic!("expected a session") };
        let _ = serve_connection(Prefixed::new(pending, stream), cfg, store).await;
    });

    // Client side: tunnel, SOCKS proxy, one fetch.
    let auth = session_auth_frame(&session_key, &dom, opened.id.0, tunnel_key, now, [1; 16]).expect("auth");
    let t = connect(paddr, "cdn.example.org", tunnel_key, &auth, Duration::from_secs(5)).await.expect("connect");
    let clock = Arc::new(std::sync::atomic::AtomicU64::new(now));
    let tick = Arc::new(move || clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    let cs = ClientSession::start(Prefixed::new(t.pending, t.stream), session_key, dom, opened.id.0, 1 << 20, tick)
        .await
        .expect("client");
    let socks = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let proxy = socks.local_addr().expect("addr");
    tokio::spawn(serve_proxy(socks, cs.clone()));
    let o = origin().await;
    let mut app = support::socks_connect(proxy, o).await;
    app.write_all(b"GET\n").await.expect("request");
    let mut got = Vec::new();
    app.read_to_end(&mut got).await.expect("body");
    assert_eq!(got.len(), BYTES);
    let total = cs.finish(Duration::from_secs(10)).await.expect("final receipt");
    assert_eq!(total, BYTES as u64 + 4);

    // Claim what redb holds: exactly bytes x price (minus the protocol fee), to the wei.
    let claimer = Claimer { db: &db, market: &prov, threshold: U256::ZERO, live: Default::default() };
    let outcome = claimer.run(true).await.expect("claim");
    assert_eq!(outcome.claimed, vec![(opened.id.0, total)]);
    let gross = (U256::from(total) * U256::from(opened.terms.pricePerGiB)) >> 30;
    let fee = gross * U256::from(200) / U256::from(10_000);
    let pid = ProviderId(opened.terms.providerId);
    assert_eq!(prov.provider(pid).await.expect("provider").earned, gross, "claimed into the earnings");
    assert_eq!(U256::from(prov.session(opened.id).await.expect("session").paid), gross);
    // Collected once they reach the threshold (or all of them, at shutdown), less the fee.
    assert_eq!(claimer.collect(pid, gross + U256::from(1), false).await, None, "below the threshold");
    assert_eq!(prov.balance_of(prov.account()).await.expect("balance"), U256::ZERO);
    assert_eq!(claimer.collect(pid, gross, false).await, Some(gross));
    assert_eq!(prov.balance_of(prov.account()).await.expect("balance"), gross - fee);
    assert_eq!(claimer.collect(pid, U256::ZERO, true).await, None, "nothing left");
    // A second pass finds nothing new.
    assert!(claimer.run(true).await.expect("claim").claimed.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Run as a child process: stores receipts 1..=n into the db named by the env, printing each
/// after it is durable, then waits to be killed.
#[test]
#[ignore = "helper for the kill -9 test; runs as a child process"]
fn child_writes_receipts() {
    let Ok(path) = std::env::var("WIREPACT_CHILD_DB") else { return };
    let db = ReceiptDb::open(std::path::Path::new(&path)).expect("db");
    for i in 1..=1_000_000u64 {
        db.store(B256::repeat_byte(9), StoredReceipt { cumulative_bytes: i * 1000, timestamp: i, signature: [1; 65] })
            .expect("store");
        println!("stored {}", i * 1000);
    }
}

#[test]
fn receipts_acknowledged_before_kill_9_survive() {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("wirepact-kill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("receipts.redb");
    let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--ignored", "--exact", "child_writes_receipts", "--nocapture", "--test-threads=1"])
        .env("WIREPACT_CHILD_DB", &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child");
    let out = child.stdout.take().expect("stdout");
    let mut last_acked = 0u64;
    for line in std::io::BufReader::new(out).lines().take(200) {
        let line = line.expect("line");
        if let Some(n) = line.strip_prefix("stored ") {
            last_acked = n.trim().parse().expect("number");
        }
    }
    // SIGKILL: no destructors, no flush.
    child.kill().expect("kill -9");
    let _ = child.wait();
    assert!(last_acked > 0, "the child stored receipts");
    let db = ReceiptDb::open(&path).expect("reopen after kill");
    let r = db.receipt(B256::repeat_byte(9)).expect("read").expect("a receipt");
    assert!(r.cumulative_bytes >= last_acked, "acknowledged {last_acked}, found {}", r.cumulative_bytes);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Run as a child process: a provider serving one session with receipts in redb, printing
/// `listening <port> <tunnel key>`; it serves until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper for the provider kill -9 test; runs as a child process"]
async fn child_provider() {
    let Ok(db_path) = std::env::var("WIREPACT_CHILD_DB") else { return };
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k}"));
    let session: B256 = var("WIREPACT_SESSION").parse().expect("session id");
    let session_key: alloy::primitives::Address = var("WIREPACT_SESSION_KEY").parse().expect("key");
    let chain_id: u64 = var("WIREPACT_CHAIN").parse().expect("chain");
    let market: alloy::primitives::Address = var("WIREPACT_MARKET").parse().expect("market");
    let now: u64 = var("WIREPACT_NOW").parse().expect("now");
    let db = Arc::new(ReceiptDb::open(std::path::Path::new(&db_path)).expect("db"));
    let identity = TunnelIdentity::generate("cdn.example.org").expect("identity");
    let dom = domain(chain_id, market);
    let acceptor = TlsServer::new(&identity).expect("tls");
    let checker = Mutex::new(AuthChecker::new(dom.clone(), identity.tunnel_key(), 60, 64));
    let mut sessions = HashMap::new();
    sessions.insert(session, session_key);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    println!("listening {} {}", listener.local_addr().expect("addr").port(), identity.tunnel_key());
    let (tcp, _) = listener.accept().await.expect("accept");
    let acc = acceptor
        .accept(
            tcp,
            AcceptContext {
                checker: &checker,
                lookup: &sessions,
                now,
                deadline: Duration::from_secs(5),
                credit_until: 1 << 20,
            },
            Box::new(|| {}),
        )
        .await
        .expect("accept");
    let Accepted::Session { stream, pending, .. } = acc else { panic!("expected a session") };
    let cfg = ProviderSession {
        domain: dom,
        session_id: session,
        session_key,
        window: 1 << 20,
        max_bytes: u64::MAX,
        egress: EgressPolicy::new(vec!["127.0.0.0/8".parse().expect("cidr")]),
        impair: Default::default(),
        dial_timeout: Duration::from_secs(5),
        lanes: None,
        opened_at: 0,
        clock_offset_secs: 0,
    };
    let store: Arc<dyn ReceiptStore> = db;
    let _ = serve_connection(Prefixed::new(pending, stream), cfg, store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_killed_mid_transfer_claims_every_acknowledged_byte_after_restart() {
    use tokio::io::AsyncBufReadExt;
    let session_key = PrivateKeySigner::random();
    // The child makes its own TLS identity; the chain does not check the registered key here.
    let Chain { devnet, deployer, prov, opened } = chain_with_session(B256::repeat_byte(1), &session_key).await;
    let now = opened.terms.openedAt.to::<u64>();

    let dir = std::env::temp_dir().join(format!("wirepact-pkill-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db_path = dir.join("receipts.redb");
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--ignored", "--exact", "child_provider", "--nocapture", "--test-threads=1"])
        .env("WIREPACT_CHILD_DB", &db_path)
        .env("WIREPACT_SESSION", opened.id.0.to_string())
        .env("WIREPACT_SESSION_KEY", session_key.address().to_string())
        .env("WIREPACT_CHAIN", devnet.chain_id().to_string())
        .env("WIREPACT_MARKET", deployer.address().to_string())
        .env("WIREPACT_NOW", now.to_string())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn provider");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (port, tunnel_key) = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("child started")
            .expect("line")
            .expect("eof");
        // libtest prints "test child_provider ... " on the same line.
        if let Some(rest) = line.split_once("listening ").map(|(_, r)| r) {
            let (p, k) = rest.split_once(' ').expect("port and key");
            break (p.parse::<u16>().expect("port"), k.parse::<B256>().expect("key"));
        }
    };

    // An origin that streams forever, slowly enough to be cut mid-transfer.
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let o = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((mut s, _)) = l.accept().await else { return };
        let block = vec![0x42u8; 64 * 1024];
        for _ in 0..100_000 {
            if s.write_all(&block).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });

    let dom = domain(devnet.chain_id(), deployer.address());
    let auth = session_auth_frame(&session_key, &dom, opened.id.0, tunnel_key, now, [2; 16]).expect("auth");
    let t =
        connect(SocketAddr::from(([127, 0, 0, 1], port)), "cdn.example.org", tunnel_key, &auth, Duration::from_secs(5))
            .await
            .expect("connect");
    let clock = Arc::new(std::sync::atomic::AtomicU64::new(now));
    let tick = Arc::new(move || clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    let cs = ClientSession::start(Prefixed::new(t.pending, t.stream), session_key, dom, opened.id.0, 1 << 20, tick)
        .await
        .expect("client");
    let mut stream = cs.open(&wirepact_tunnel::socks::Target::Ip(o.ip(), o.port())).await.expect("stream");
    let mut buf = vec![0u8; 64 * 1024];
    // Read until the provider has acknowledged at least 3 MiB, then kill it (SIGKILL).
    for _ in 0..100_000 {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("data flows")
            .expect("read");
        cs.count(n as u64);
        if cs.acknowledged() >= 3 << 20 {
            break;
        }
    }
    child.start_kill().expect("kill -9");
    let _ = child.wait().await;
    let acked = cs.acknowledged();
    assert!(acked >= 3 << 20, "acknowledged {acked}");

    // "Restart": reopen the provider's database and claim.
    let db = ReceiptDb::open(&db_path).expect("reopen after kill -9");
    db.add_session(&opened.terms).expect("terms");
    let stored = db.receipt(opened.id.0).expect("read").expect("receipt survived").cumulative_bytes;
    assert!(stored >= acked, "acknowledged {acked} but only {stored} survived");
    let claimer = Claimer { db: &db, market: &prov, threshold: U256::ZERO, live: Default::default() };
    let outcome = claimer.run(true).await.expect("claim");
    assert_eq!(outcome.claimed, vec![(opened.id.0, stored)]);
    let gross = (U256::from(stored) * U256::from(opened.terms.pricePerGiB)) >> 30;
    let fee = gross * U256::from(200) / U256::from(10_000);
    assert_eq!(claimer.collect(ProviderId(opened.terms.providerId), U256::ZERO, true).await, Some(gross));
    assert_eq!(prov.balance_of(prov.account()).await.expect("balance"), gross - fee);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A receipt for `bytes` of `session`, signed by its session key and stored as the tunnel would.
fn store_signed(
    db: &ReceiptDb,
    dom: &alloy::sol_types::Eip712Domain,
    key: &PrivateKeySigner,
    opened: &wirepact_chain::OpenedSession,
    bytes: u64,
) {
    store_signed_at(db, dom, key, opened, bytes, 1);
}

/// As [`store_signed`], dated `after` seconds after the session opened.
fn store_signed_at(
    db: &ReceiptDb,
    dom: &alloy::sol_types::Eip712Domain,
    key: &PrivateKeySigner,
    opened: &wirepact_chain::OpenedSession,
    bytes: u64,
    after: u64,
) {
    let ts = opened.terms.openedAt.to::<u64>() + after;
    let r = wirepact_proto::Receipt { sessionId: opened.id.0, cumulativeBytes: bytes, timestamp: ts };
    let sig = wirepact_proto::sign_receipt(key, dom, &r).expect("sign");
    let mut signature = [0u8; 65];
    signature.copy_from_slice(&sig);
    db.add_session(&opened.terms).expect("terms");
    db.store(opened.id.0, StoredReceipt { cumulative_bytes: bytes, timestamp: ts, signature }).expect("store");
}

/// The finding: a session settled before the provider claimed it (a client restart settles
/// its leftovers; a provider down past the claim grace) made `Market_UnknownSession` stop the
/// whole pass, so every later session went unclaimed and the node exited 1. Each claim now
/// stands alone: the gone one is recorded as lost (with its value) and never retried, the
/// others are paid to the wei.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claimer_pays_the_sessions_after_one_that_is_gone() {
    let gone_key = PrivateKeySigner::random();
    let Chain { devnet, deployer, prov, opened: gone } = chain_with_session(B256::repeat_byte(5), &gone_key).await;
    let client = deployer.with_signer(devnet.signer(2).expect("key"), policy());
    client.deposit(wei(20)).await.expect("deposit");
    let keys = [PrivateKeySigner::random(), PrivateKeySigner::random()];
    let mut live = Vec::new();
    for k in &keys {
        live.push(
            client
                .open_session(wirepact_proto::ProviderId(gone.terms.providerId), wei(10), U256::MAX, k.address())
                .await
                .expect("open"),
        );
    }
    let dir = std::env::temp_dir().join(format!("wirepact-claim-gone-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let db = ReceiptDb::open(&dir.join("receipts.redb")).expect("db");
    let dom = domain(devnet.chain_id(), deployer.address());
    let mib = 1u64 << 20;
    store_signed(&db, &dom, &gone_key, &gone, 300 * mib);
    for (k, o) in keys.iter().zip(&live) {
        store_signed(&db, &dom, k, o, 100 * mib);
    }

    // The client closes the first session and settles it once the claim grace is over.
    client.close(&gone.terms).await.expect("close");
    let grace = wirepact_chain::devnet_params().claimGrace;
    let _: serde_json::Value = deployer.rpc().raw_request("evm_increaseTime".into(), (grace + 1,)).await.expect("warp");
    let _: serde_json::Value = deployer.rpc().raw_request("evm_mine".into(), ()).await.expect("mine");
    client.settle(&gone.terms).await.expect("settle");

    let claimer = Claimer { db: &db, market: &prov, threshold: U256::ZERO, live: Default::default() };
    let out = claimer.run(true).await.expect("one gone session does not fail the pass");
    let mut claimed = out.claimed.clone();
    claimed.sort();
    let mut want: Vec<(B256, u64)> = live.iter().map(|o| (o.id.0, 100 * mib)).collect();
    want.sort();
    assert_eq!(claimed, want, "both live sessions are paid");
    let price = U256::from(gone.terms.pricePerGiB);
    assert_eq!(out.lost, vec![(gone.id.0, 300 * mib, (U256::from(300 * mib) * price) >> 30)]);
    // Each session pays at the price it was opened with (congestion moved it); collected, the
    // fee is taken once from the total.
    let mut gross = U256::ZERO;
    for o in &live {
        gross += (U256::from(100 * mib) * U256::from(o.terms.pricePerGiB)) >> 30;
    }
    assert_eq!(claimer.collect(ProviderId(gone.terms.providerId), U256::ZERO, true).await, Some(gross));
    let fee = gross * U256::from(200) / U256::from(10_000);
    assert_eq!(prov.balance_of(prov.account()).await.expect("balance"), gross - fee);
    // The lost session is not tried again; nothing else is left.
    let again = claimer.run(true).await.expect("claim");
    assert!(again.claimed.is_empty() && again.lost.is_empty() && again.retry == 0, "{again:?}");
    assert_eq!(db.lost(gone.id.0).expect("lost"), 300 * mib);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Found by `make bench-abuse`: a client signs many receipts within one second, and the market
/// pays a receipt only if it is dated after the last one claimed. Claiming a live session's
/// latest receipt mid-session left the receipts signed later in that same second unclaimable
/// for good (half a window of an oracle's probe session, unpaid). A live session is now claimed
/// up to its newest receipt of an earlier second; once it ends, up to its latest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_signed_in_the_second_of_a_claim_are_still_paid() {
    let key = PrivateKeySigner::random();
    let Chain { devnet, deployer, prov, opened } = chain_with_session(B256::repeat_byte(6), &key).await;
    let dir = std::env::temp_dir().join(format!("wirepact-claim-second-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let db = ReceiptDb::open(&dir.join("receipts.redb")).expect("db");
    let dom = domain(devnet.chain_id(), deployer.address());
    let mib = 1u64 << 20;
    let live: std::collections::HashSet<B256> = [opened.id.0].into();
    let claim = |live: std::collections::HashSet<B256>| {
        let db = &db;
        let prov = &prov;
        async move { Claimer { db, market: prov, threshold: U256::ZERO, live }.run(true).await.expect("claim") }
    };
    // Two receipts in second 1: nothing of second 1 is claimed while it may still grow.
    store_signed_at(&db, &dom, &key, &opened, mib, 1);
    store_signed_at(&db, &dom, &key, &opened, 2 * mib, 1);
    assert!(claim(live.clone()).await.claimed.is_empty());
    // Second 2 begins: second 1's newest receipt is claimed.
    store_signed_at(&db, &dom, &key, &opened, 3 * mib, 2);
    assert_eq!(claim(live.clone()).await.claimed, vec![(opened.id.0, 2 * mib)]);
    // More in second 2, then the tunnel ends: the latest is claimable and paid.
    store_signed_at(&db, &dom, &key, &opened, 4 * mib, 2);
    let end = claim(Default::default()).await;
    assert_eq!(end.claimed, vec![(opened.id.0, 4 * mib)], "{end:?}");
    let gross = (U256::from(4 * mib) * U256::from(opened.terms.pricePerGiB)) >> 30;
    assert_eq!(U256::from(prov.session(opened.id).await.expect("session").paid), gross, "every receipted byte paid");
    let _ = std::fs::remove_dir_all(&dir);
}
