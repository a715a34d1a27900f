//! The `wirepact` binary as users run it: shipped example configs, config errors, and the
//! whole devnet (anvil, three providers, a client under load) with its summary checked to the wei.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use wirepact_client::ClientConfig;
use wirepact_node::NodeConfig;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn keys(text: &str) -> BTreeSet<String> {
    text.parse::<toml::Table>().expect("toml").keys().cloned().collect()
}

#[test]
fn shipped_example_configs_parse_and_list_every_key() {
    let text = std::fs::read_to_string(repo().join("examples/node.toml")).expect("examples/node.toml");
    let node: NodeConfig = toml::from_str(&text).expect("node.toml parses");
    let all = keys(&toml::to_string(&node).expect("serialize"));
    assert_eq!(keys(&text), all, "examples/node.toml must list every node setting");

    let text = std::fs::read_to_string(repo().join("examples/client.toml")).expect("examples/client.toml");
    let mut client: ClientConfig = toml::from_str(&text).expect("client.toml parses");
    assert_eq!(client.provider, None, "the example leaves the provider to the ranking");
    client.provider = Some(1);
    let all = keys(&toml::to_string(&client).expect("serialize"));
    let mut listed = keys(&text);
    listed.insert("provider".into()); // documented, commented out
    assert_eq!(listed, all, "examples/client.toml must list every client setting");
}

fn wirepact(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wirepact"))
        .args(args)
        .env_remove("WIREPACT_PRIVATE_KEY")
        .output()
        .expect("run wirepact")
}

#[test]
fn config_mistakes_are_named_and_exit_non_zero() {
    let dir = std::env::temp_dir().join(format!("wirepact-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let text = std::fs::read_to_string(repo().join("examples/node.toml")).expect("example");
    let typo = dir.join("typo.toml");
    std::fs::write(&typo, text.replace("capacity_mbps", "capacity_mbit")).expect("write");
    let out = wirepact(&["node", "--config", &typo.to_string_lossy()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("capacity_mbit"), "the unknown key is named: {err}");

    let out = wirepact(&["node", "--config", &repo().join("examples/node.toml").to_string_lossy()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--keystore"), "a missing key says how to give one: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn wei(v: &serde_json::Value) -> U256 {
    v.as_str().expect("amount string").parse().expect("amount")
}

/// The devnet end to end: providers register, the client picks the cheapest, fetches through
/// it, the provider claims exactly bytes x price, the client gets the rest back, no token is
/// created or lost, and every child process is gone afterwards.
#[test]
fn devnet_pays_the_provider_exactly_what_the_client_receipted() {
    let dir = std::env::temp_dir().join(format!("wirepact-devnet-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let summary = dir.join("summary.json");
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_wirepact"))
        .args(["devnet", "--headless", "--epochs", "2", "--epoch-seconds", "4", "--fetch-bytes", "262144"])
        .arg("--dir")
        .arg(&dir)
        .arg("--summary")
        .arg(&summary)
        .current_dir(repo())
        .output()
        .expect("run devnet");
    assert!(start.elapsed() < Duration::from_secs(300));
    assert!(
        out.status.success(),
        "devnet failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).expect("summary")).expect("json");

    assert_eq!(s["token_conserved"], true, "tokens: {} vs {}", s["token_total_supply"], s["token_accounted"]);
    assert_eq!(s["client_fetch_errors"], 0);
    let fetched = s["client_bytes_fetched"].as_u64().expect("fetched");
    assert!(fetched >= 1 << 20, "the client fetched {fetched} bytes");

    let sessions = s["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 1);
    let x = &sessions[0];
    assert_eq!(x["provider"], 1, "the cheapest provider is chosen");
    assert_eq!(x["settled"], true);
    let bytes = x["bytes_claimed"].as_u64().expect("bytes");
    // The receipted bytes cover every body byte fetched plus requests and headers.
    assert!(bytes >= fetched && bytes < fetched + fetched / 10, "claimed {bytes} for {fetched} fetched");
    let price = wei(&x["price_per_gib"]);
    let (paid, fee, refund, deposit) =
        (wei(&x["paid_to_provider"]), wei(&x["fee"]), wei(&x["refund"]), wei(&x["deposit"]));
    assert_eq!(paid + fee, (U256::from(bytes) * price) >> 30, "payout is bytes x price per GiB, to the wei");
    assert_eq!(refund, deposit - paid - fee, "the client gets back everything not paid");
    // 2% protocol fee, rounded down on each claim: at most one wei under per claim.
    let claims = U256::from(s["gas"]["claim"]["count"].as_u64().expect("claims"));
    let whole = (paid + fee) * U256::from(200) / U256::from(10_000);
    assert!(fee <= whole && whole - fee < claims, "fee {fee} for {whole} over {claims} claims");

    let providers = s["providers"].as_array().expect("providers");
    assert_eq!(providers.len(), 3);
    assert_eq!(wei(&providers[0]["earned"]), paid);
    for p in providers {
        assert_eq!(p["stake_start"], p["stake_end"], "no provider slashed without oracles");
    }
    for kind in ["openSession", "claim", "close", "settle", "registerProvider"] {
        assert!(s["gas"][kind]["total"].as_u64().unwrap_or(0) > 0, "gas of {kind} reported");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
