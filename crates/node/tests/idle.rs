//! Capacity held by sessions nobody uses is freed: on anvil, a provider whose capacity two
//! sessions fill closes the one that never carried a byte once it is due, keeps the one that
//! did, closes nothing while it has room, and the client of the closed one gets its whole
//! deposit back, to the wei.

use std::collections::HashSet;

use alloy::primitives::{B256, U256};
use alloy::signers::local::PrivateKeySigner;
use wirepact_chain::bindings::session_status;
use wirepact_chain::Market;
use wirepact_node::{IdleCloser, ReceiptDb, StoredReceipt};

mod support;
use support::{wei, world, World};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_session_is_closed_when_its_capacity_is_needed_and_refunded_in_full() {
    let World { devnet: _devnet, prov, client, pid, .. } = world(40, 20, B256::repeat_byte(7), "127.0.0.1:1").await;
    client.deposit(wei(20)).await.expect("deposit");

    let dir = std::env::temp_dir().join(format!("wirepact-node-idle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let db = ReceiptDb::open(&dir.join("receipts.redb")).expect("db");
    let mut closer = IdleCloser::new(&prov, pid, &db, 60);
    let live = HashSet::new();

    // One unused session: half the capacity is free, nothing is closed however old it is.
    let unused =
        client.open_session(pid, wei(10), U256::MAX, PrivateKeySigner::random().address()).await.expect("open");
    let opened_at = unused.terms.openedAt.to::<u64>();
    assert_eq!(closer.pass(&live, opened_at + 10_000).await.expect("pass"), 0);

    // A second session fills the provider; it carries bytes (a receipt is stored).
    let used = client.open_session(pid, wei(10), U256::MAX, PrivateKeySigner::random().address()).await.expect("open");
    db.add_session(&used.terms).expect("terms");
    db.store(used.id.0, StoredReceipt { cumulative_bytes: 1 << 20, timestamp: opened_at + 1, signature: [1; 65] })
        .expect("receipt");
    assert_eq!(prov.provider(pid).await.expect("p").committedMbps, 40);

    // Not due yet (opened 30 s ago, closed after 60 s).
    assert_eq!(closer.pass(&live, opened_at + 30).await.expect("pass"), 0);
    let before = client.balance_of(client.account()).await.expect("balance");

    // Due: the unused one is closed, the used one stays.
    assert_eq!(closer.pass(&live, opened_at + 61).await.expect("pass"), 1);
    assert_eq!(client.session(unused.id).await.expect("s").status, session_status::NONE);
    assert_eq!(client.session(used.id).await.expect("s").status, session_status::OPEN);
    assert_eq!(prov.provider(pid).await.expect("p").committedMbps, 20);
    let after = client.balance_of(client.account()).await.expect("balance");
    assert_eq!(after - before, wei(10), "the whole deposit of the unused session came back");

    // And a session with a tunnel up is never closed, even with nothing receipted yet.
    let held = client.open_session(pid, wei(10) / U256::from(2), U256::MAX, PrivateKeySigner::random().address());
    let held = held.await.expect("open");
    let live: HashSet<B256> = [held.id.0].into();
    assert_eq!(closer.pass(&live, opened_at + 10_000).await.expect("pass"), 0);
    assert_eq!(client.session(held.id).await.expect("s").status, session_status::OPEN);
    let _ = std::fs::remove_dir_all(&dir);
}
