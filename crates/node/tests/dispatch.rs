//! The real node's connection dispatch (`run_node`, as `wirepact node` runs it): a session is
//! served over one tunnel only. Its meters start at zero, so a second tunnel for the same
//! session would bill from zero again; the node refuses it and keeps serving the first.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::U256;
use alloy::signers::local::PrivateKeySigner;
use tokio::net::TcpListener;
use wirepact_chain::Market;
use wirepact_client::proxy::serve_proxy;
use wirepact_proto::{domain, ProviderId};
use wirepact_tunnel::mux::Prefixed;
use wirepact_tunnel::session::ClientSession;
use wirepact_tunnel::{connect, session_auth_frame};

mod support;
use support::wei;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_node_refuses_a_session_already_served_on_another_tunnel() {
    let (devnet, deployer, client) = support::market().await;
    let (node, dir) = support::start_node(&devnet, deployer.address(), "dispatch", "").await;

    let session_key = PrivateKeySigner::random();
    client.deposit(wei(10)).await.expect("deposit");
    let opened = client
        .open_session(ProviderId(node.provider_id), wei(10), U256::MAX, session_key.address())
        .await
        .expect("open");
    let dom = domain(devnet.chain_id(), deployer.address());
    let now = opened.terms.openedAt.to::<u64>();
    let tunnel = |nonce: u8| {
        let (dom, session_key) = (dom.clone(), session_key.clone());
        async move {
            let auth =
                session_auth_frame(&session_key, &dom, opened.id.0, node.tunnel_key, now, [nonce; 16]).expect("auth");
            let t = connect(node.listen, "cdn.example.org", node.tunnel_key, &auth, Duration::from_secs(5))
                .await
                .expect("the tunnel authenticates");
            let clock = Arc::new(std::sync::atomic::AtomicU64::new(now));
            let tick = Arc::new(move || clock.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
            ClientSession::start(Prefixed::new(t.pending, t.stream), session_key, dom, opened.id.0, 1 << 20, tick).await
        }
    };
    let first = tunnel(1).await.expect("the first tunnel is served");
    let socks = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let proxy = socks.local_addr().expect("addr");
    tokio::spawn(serve_proxy(socks, first.clone()));
    let o = support::origin().await;
    assert_eq!(support::fetch(proxy, o).await, 65_536);

    // The same session again, over a second tunnel (a fresh nonce: the auth itself is valid).
    let refused = match tunnel(2).await {
        Err(_) => true,
        Ok(second) => {
            let mut dead = false;
            for _ in 0..100 {
                if !second.is_alive() {
                    dead = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            dead
        }
    };
    assert!(refused, "a second tunnel for a session already served must not be served");
    // The first goes on, and its meter never restarted.
    assert!(first.is_alive());
    assert_eq!(support::fetch(proxy, o).await, 65_536);
    let acked = first.finish(Duration::from_secs(10)).await.expect("final receipt");
    assert_eq!(acked, first.counted());
    let _ = std::fs::remove_dir_all(&dir);
}
