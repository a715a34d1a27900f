//! A stalled RPC endpoint (it accepts the connection and never answers) made every chain call
//! wait forever: with anvil stopped for 55 s the client's whole management loop froze. Every
//! request now has a deadline and fails as a retryable transport error.

use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use wirepact_chain::{AlloyMarket, SendPolicy, RPC_TIMEOUT};

#[tokio::test(start_paused = true)]
async fn a_stalled_rpc_endpoint_fails_the_call_at_the_deadline() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    // Reads requests and never answers; holds every connection.
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        for _ in 0..8 {
            let Ok((mut s, _)) = l.accept().await else { break };
            let mut b = [0u8; 1024];
            let _ = s.read(&mut b).await;
            conns.push(s);
        }
        conns
    });
    let start = tokio::time::Instant::now();
    let call =
        AlloyMarket::connect(&url, alloy::primitives::Address::ZERO, PrivateKeySigner::random(), SendPolicy::default());
    let r = tokio::time::timeout(Duration::from_secs(3600), call).await.expect("the call returns, not hangs");
    let err = r.expect_err("nothing answered");
    assert!(err.is_retryable(), "a stall is a transport error, worth retrying: {err}");
    assert!(start.elapsed() >= RPC_TIMEOUT, "not before the deadline");
    held.abort();
}
