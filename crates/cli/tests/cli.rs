//! The `wirepact` binary as users run it: shipped example configs, config errors, and the
//! whole devnet (anvil, three providers, a client under load) with its summary checked to the wei.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use wirepact_client::ClientConfig;
use wirepact_node::NodeConfig;

/// The benchmarks' SOCKS5 client (`socks_connect`), shared with these tests.
#[path = "../examples/support/mod.rs"]
mod support;

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

    let text = std::fs::read_to_string(repo().join("examples/oracle.toml")).expect("examples/oracle.toml");
    let oracle: wirepact_oracle::OracleConfig = toml::from_str(&text).expect("oracle.toml parses");
    assert_eq!(
        keys(&text),
        keys(&toml::to_string(&oracle).expect("serialize")),
        "examples/oracle.toml lists every key"
    );

    // The examples' stakes are enough for a market deployed with the defaults.
    let d = wirepact_chain::default_params();
    let node_stake =
        wirepact_proto::parse_tokens(node.stake.as_deref().expect("the example sets a stake")).expect("stake");
    assert!(
        node_stake >= U256::from(d.minStakePerMbps) * U256::from(node.capacity_mbps),
        "examples/node.toml stakes less than the default minimum for its capacity"
    );
    let oracle_stake =
        wirepact_proto::parse_tokens(oracle.stake.as_deref().expect("the example sets a stake")).expect("stake");
    assert!(oracle_stake >= U256::from(d.minOracleStake), "examples/oracle.toml stakes less than the default minimum");
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

/// An amount of the summary (an exact decimal token string) in wei.
fn wei(v: &serde_json::Value) -> U256 {
    wirepact_proto::parse_tokens(v.as_str().expect("amount string")).expect("amount")
}

/// The devnet end to end: providers register (honest, oversold, flaky), four oracles (one
/// lying) audit them, the client picks the cheapest and fetches through it. The oversold
/// provider is slashed by exactly the configured fraction, the honest one never records a
/// violation whatever the liar says, the provider is paid exactly bytes x price, the client
/// gets the rest back, and no token is created or lost.
#[test]
fn devnet_slashes_the_oversold_pays_the_honest_exactly_and_conserves_tokens() {
    let dir = std::env::temp_dir().join(format!("wirepact-devnet-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let summary = dir.join("summary.json");
    let out = Command::new(env!("CARGO_BIN_EXE_wirepact"))
        .args(["devnet", "--headless", "--epochs", "4", "--epoch-seconds", "12", "--fetch-bytes", "262144"])
        .arg("--dir")
        .arg(&dir)
        .arg("--summary")
        .arg(&summary)
        .current_dir(repo())
        .output()
        .expect("run devnet");
    assert!(
        out.status.success(),
        "devnet failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&summary).expect("summary")).expect("json");

    assert_eq!(s["token_conserved"], true, "tokens: {} vs {}", s["token_total_supply"], s["token_accounted"]);
    assert_eq!(s["books_balanced"], true, "the market holds {} and owes {}", s["market_holds"], s["market_owes"]);
    assert_eq!(s["market_holds"], s["market_owes"]);
    assert_eq!(s["client_fetch_errors"], 0);
    let fetched = s["client_bytes_fetched"].as_u64().expect("fetched");
    assert!(fetched >= 1 << 20, "the client fetched {fetched} bytes");

    let sessions: Vec<&serde_json::Value> =
        s["sessions"].as_array().expect("sessions").iter().filter(|x| x["by_client"] == true).collect();
    // The active session with the cheapest provider, and the warm standby with the next one.
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let x = sessions.iter().find(|x| x["provider"] == 1).expect("the cheapest provider is chosen");
    let standby = sessions.iter().find(|x| x["provider"] != 1).expect("a warm standby");
    assert_eq!(standby["settled"], true);
    assert_eq!(standby["refund"], standby["deposit"], "an unused standby costs nothing");
    assert_eq!(x["settled"], true);
    let bytes = x["bytes_claimed"].as_u64().expect("bytes");
    // The receipted bytes cover every body byte fetched plus requests and headers.
    assert!(bytes >= fetched && bytes < fetched + fetched / 10, "claimed {bytes} for {fetched} fetched");
    let price = wei(&x["price_per_gib"]);
    let (paid, refund, deposit) = (wei(&x["paid_to_provider"]), wei(&x["refund"]), wei(&x["deposit"]));
    assert_eq!(
        paid,
        (U256::from(bytes) * price) >> 30,
        "payout is bytes x price per GiB, to the wei; session {x}, providers {}",
        s["providers"]
    );
    assert_eq!(refund, deposit - paid, "the client gets back everything not paid");

    let providers = s["providers"].as_array().expect("providers");
    assert_eq!(providers[0]["name"], "honest");
    assert_eq!(providers[0]["stake_start"], providers[0]["stake_end"], "the honest provider is never slashed");
    assert_eq!(providers[0]["violations"], 0, "the liar's zeros never became a verdict");
    assert!(wei(&providers[0]["earned"]) >= paid, "the honest provider earned the client's payment");
    let slashes = s["slashes"].as_array().expect("slashes");
    let oversold: Vec<_> = slashes.iter().filter(|x| x["name"] == "oversold").collect();
    assert_eq!(oversold.len(), 1, "the oversold provider is slashed once (then jailed): {slashes:?}");
    let before = wei(&providers[1]["stake_start"]);
    assert_eq!(wei(&oversold[0]["amount"]), before / U256::from(10), "slashed by exactly 10% (slashBps 1000)");
    assert_eq!(wei(&providers[1]["stake_end"]), before - before / U256::from(10));
    assert!(s["reports"].as_u64().unwrap_or(0) >= 2);
    for kind in ["openSession", "claim", "close", "settle", "registerProvider", "submitReport", "registerOracle"] {
        assert!(s["gas"][kind]["total"].as_u64().unwrap_or(0) > 0, "gas of {kind} reported");
    }

    // The story (issue 22: the slashes scrolled away under unlabelled probe sessions): the
    // slash is told, probe sessions are folded into a line per epoch with the oracles named,
    // the liar's fate is shown, and the same summary is an HTML report with its plots.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("*** oversold SLASHED"), "{err}");
    assert!(err.contains("the oracles opened") && err.contains("oracle-1 "), "{err}");
    assert!(!err.contains("opened a session with honest (1 tokens"), "a probe session told alone:\n{err}");
    assert!(err.contains("client opened a session with honest"), "{err}");
    let story = s["story"].as_array().expect("story");
    assert!(story.iter().any(|l| l.as_str().is_some_and(|l| l.starts_with("oversold SLASHED"))), "{story:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("the liar's fate: its readings were outvoted"), "{stdout}");
    for p in providers {
        assert_eq!(wei(&p["earned_total"]), wei(&p["earned"]) + wei(&p["bonus"]), "earned includes the bonus: {p}");
    }
    let timeline = s["timeline"].as_array().expect("timeline");
    assert!(timeline.len() >= 4, "a sample per epoch: {timeline:?}");
    let html = std::fs::read_to_string(summary.with_extension("html")).expect("the HTML report beside the JSON");
    assert_eq!(html.matches("<svg").count(), 3, "earnings, stake and violations plotted");
    assert!(html.contains("oversold SLASHED"));
    let _ = std::fs::remove_dir_all(&dir);
}

mod restart {
    use std::process::{Child, Stdio};

    use alloy::primitives::B256;
    use wirepact_chain::bindings::session_status;
    use wirepact_chain::Market;
    use wirepact_proto::SessionId;

    use super::*;

    fn spawn(args: &[&str], key: B256, log: &Path) -> Child {
        Command::new(env!("CARGO_BIN_EXE_wirepact"))
            .args(args)
            .arg("--exit-with-stdin")
            .env("WIREPACT_PRIVATE_KEY", key.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log"))
            .spawn()
            .expect("spawn wirepact")
    }

    /// [`spawn`] for other modules.
    pub(super) fn spawn_with_key(args: &[&str], key: alloy::primitives::B256, log: &Path) -> Child {
        spawn(args, key, log)
    }

    /// [`wait_file`] for other modules.
    pub(super) fn wait_ready(path: &Path, child: &mut Child) -> serde_json::Value {
        wait_file(path, child)
    }

    /// A fresh `wirepact-NAME-PID` dir and a devnet market with the provider (signer 1, 1,000
    /// tokens) and the user (signer 2, 10 tokens) funded.
    pub(super) async fn funded(name: &str) -> (PathBuf, wirepact_chain::Devnet, wirepact_chain::AlloyMarket) {
        let dir = std::env::temp_dir().join(format!("wirepact-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let (devnet, m) = super::sla_watch::devnet_market().await;
        let ten = U256::from(10u64).pow(U256::from(19));
        let (prov, user) = (devnet.signer(1).expect("key"), devnet.signer(2).expect("key"));
        m.mint_test_tokens(prov.address(), ten * U256::from(100)).await.expect("mint");
        m.mint_test_tokens(user.address(), ten).await.expect("mint");
        (dir, devnet, m)
    }

    /// The shipped `examples/node.toml` on this devnet, on loopback (dashboard on a free port),
    /// data under `dir/node`, egress to loopback allowed.
    pub(super) fn node_toml(rpc: &str, m: &wirepact_chain::AlloyMarket, dir: &Path) -> String {
        std::fs::read_to_string(repo().join("examples/node.toml"))
            .expect("example")
            .replace("http://127.0.0.1:8545", rpc)
            .replace("0x0000000000000000000000000000000000000000", &m.address().to_string())
            .replace("/var/lib/wirepact", &dir.join("node").to_string_lossy())
            .replace("0.0.0.0:443", "127.0.0.1:0")
            .replace("admin_listen = \"127.0.0.1:9180\"", "admin_listen = \"127.0.0.1:0\"")
            .replace("egress_allow = []", "egress_allow = [\"127.0.0.0/8\"]")
    }

    /// The shipped `examples/client.toml` on this devnet: proxy and control endpoint on free
    /// ports (tests run side by side), data under `dir/client`, 1-token deposits.
    pub(super) fn client_toml(rpc: &str, m: &wirepact_chain::AlloyMarket, dir: &Path) -> String {
        let cfg = std::fs::read_to_string(repo().join("examples/client.toml"))
            .expect("example")
            .replace("http://127.0.0.1:8545", rpc)
            .replace("0x0000000000000000000000000000000000000000", &m.address().to_string())
            .replace(
                "data_dir = \"wirepact-client\"",
                &format!("data_dir = {:?}", dir.join("client").to_string_lossy()),
            )
            .replace("127.0.0.1:1080", "127.0.0.1:0")
            .replace("127.0.0.1:7980", "127.0.0.1:0")
            .replace("deposit = \"5\"", "deposit = \"1\"");
        assert!(!cfg.contains(":7980"), "the example's control port moved: update this helper");
        cfg
    }

    fn wait_file(path: &Path, child: &mut Child) -> serde_json::Value {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok(b) = std::fs::read(path) {
                return serde_json::from_slice(&b).expect("ready json");
            }
            assert!(child.try_wait().expect("wait").is_none(), "child exited before {}", path.display());
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} never appeared", path.display());
    }

    fn session_id(v: &serde_json::Value) -> SessionId {
        SessionId(v["session_id"].as_str().expect("session_id").parse().expect("b256"))
    }

    /// kill -9 of a connected client leaves an open session and its file; the next start
    /// closes it before opening a new one, and a clean stop closes the new one: nothing leaks.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_killed_client_closes_its_leftover_session_on_the_next_start() {
        let (dir, devnet, m) = funded("restart").await;
        let rpc = devnet.endpoint();
        let (prov, user) = (devnet.signer(1).expect("key"), devnet.signer(2).expect("key"));

        let node_cfg = super::restart::node_toml(&rpc, &m, &dir).replace("endpoint = \"203.0.113.7:443\"\n", "");
        std::fs::write(dir.join("node.toml"), node_cfg).expect("write");
        let node_ready = dir.join("node.json");
        let node_args = [
            "node",
            "--config",
            &dir.join("node.toml").to_string_lossy(),
            "--ready-file",
            &node_ready.to_string_lossy(),
        ]
        .map(String::from);
        let mut node =
            spawn(&node_args.iter().map(String::as_str).collect::<Vec<_>>(), prov.to_bytes(), &dir.join("node.log"));
        wait_file(&node_ready, &mut node);

        let client_cfg = super::restart::client_toml(&rpc, &m, &dir);
        std::fs::write(dir.join("client.toml"), client_cfg).expect("write");
        let connect = |ready: &Path, log: &str| {
            let args = [
                "connect",
                "--config",
                &dir.join("client.toml").to_string_lossy(),
                "--ready-file",
                &ready.to_string_lossy(),
            ]
            .map(String::from);
            spawn(&args.iter().map(String::as_str).collect::<Vec<_>>(), user.to_bytes(), &dir.join(log))
        };

        let first_ready = dir.join("c1.json");
        let mut first = connect(&first_ready, "c1.log");
        let s1 = session_id(&wait_file(&first_ready, &mut first));
        first.kill().expect("kill -9");
        let _ = first.wait();
        assert_eq!(m.session(s1).await.expect("session").status, session_status::OPEN);
        let files = std::fs::read_dir(dir.join("client/sessions")).expect("session files").count();
        assert_eq!(files, 1, "the killed client's session is on disk");

        let second_ready = dir.join("c2.json");
        let mut second = connect(&second_ready, "c2.log");
        let s2 = session_id(&wait_file(&second_ready, &mut second));
        assert_ne!(s1, s2);
        assert_eq!(m.session(s1).await.expect("session").status, session_status::CLOSING, "leftover closed");

        drop(second.stdin.take()); // clean stop
        let st = second.wait().expect("wait");
        assert!(st.success(), "clean stop exits 0");
        assert_eq!(m.session(s2).await.expect("session").status, session_status::CLOSING, "closed at stop");
        // All providers over the user's price: one clear message, non-zero exit, nothing opened.
        let out = Command::new(env!("CARGO_BIN_EXE_wirepact"))
            .args(["connect", "--config", &dir.join("client.toml").to_string_lossy(), "--max-price", "0.000001"])
            .env("WIREPACT_PRIVATE_KEY", user.to_bytes().to_string())
            .stdin(Stdio::null())
            .output()
            .expect("run connect");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no provider matches") && err.contains("TooExpensive"), "{err}");

        drop(node.stdin.take());
        assert!(node.wait().expect("wait").success(), "node stops cleanly");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `wirepact connect --transport auto` where a provider's TLS port does not answer (blocked on
/// this network, say) but it serves veil: the client ranks it by its veil port, its TLS dial
/// fails, and the session goes over veil — an app's fetch arrives whole.
mod transport_auto {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn auto_connects_over_veil_when_the_tls_port_does_not_answer() {
        let (dir, devnet, m) = super::restart::funded("auto").await;
        let rpc = devnet.endpoint();
        let (prov, user) = (devnet.signer(1).expect("key"), devnet.signer(2).expect("key"));
        // A port nobody listens on: what clients are told is the TLS endpoint.
        let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
        let node_cfg = super::restart::node_toml(&rpc, &m, &dir)
            .replace("endpoint = \"203.0.113.7:443\"", &format!("endpoint = \"{closed}\""))
            .replace("# veil_listen = \"0.0.0.0:8443\"", "veil_listen = \"127.0.0.1:0\"");
        assert!(node_cfg.contains("veil_listen = \"127.0.0.1:0\""), "the example names veil_listen");
        std::fs::write(dir.join("node.toml"), node_cfg).expect("write");
        let node_ready = dir.join("node.json");
        let node_args = [
            "node",
            "--config",
            &dir.join("node.toml").to_string_lossy(),
            "--ready-file",
            &node_ready.to_string_lossy(),
        ]
        .map(String::from);
        let mut node = super::restart::spawn_with_key(
            &node_args.iter().map(String::as_str).collect::<Vec<_>>(),
            prov.to_bytes(),
            &dir.join("node.log"),
        );
        super::restart::wait_ready(&node_ready, &mut node);

        let client_cfg = super::restart::client_toml(&rpc, &m, &dir);
        std::fs::write(dir.join("client.toml"), client_cfg).expect("write");
        let ready = dir.join("client.json");
        let args = [
            "connect",
            "--config",
            &dir.join("client.toml").to_string_lossy(),
            "--transport",
            "auto",
            "--ready-file",
            &ready.to_string_lossy(),
        ]
        .map(String::from);
        let mut client = super::restart::spawn_with_key(
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
            user.to_bytes(),
            &dir.join("client.log"),
        );
        let up = super::restart::wait_ready(&ready, &mut client);
        let proxy: std::net::SocketAddr = up["proxy"].as_str().expect("proxy").parse().expect("addr");

        let origin = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let o = origin.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((mut s, _)) = origin.accept().await {
                let mut req = [0u8; 1];
                if s.read_exact(&mut req).await.is_ok() {
                    let _ = s.write_all(&[0x42; 100_000]).await;
                }
                let _ = s.shutdown().await;
            }
        });
        let mut app = super::support::socks_connect(proxy, o).await.expect("SOCKS CONNECT through the client");
        app.write_all(b"G").await.expect("request");
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), app.read_to_end(&mut got)).await.expect("in time").expect("body");
        assert_eq!(got.len(), 100_000, "the fetch over veil arrived whole");
        let log = std::fs::read_to_string(dir.join("client.log")).unwrap_or_default();
        assert!(log.contains("could not connect this way"), "TLS was tried first: {log}");

        drop(client.stdin.take());
        assert!(client.wait().expect("wait").success(), "the client stops cleanly");
        drop(node.stdin.take());
        let _ = node.wait();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The client's own SLA watch: a provider whose round trips stay over its promise is left for
/// the standby, and so is one that stops answering (SIGSTOP: the connection stays up, nothing
/// resets it). Both sessions are closed on chain; new connections flow through the third.
mod sla_watch {
    use super::support::socks_connect;
    use std::io::{BufRead, BufReader};
    use std::net::SocketAddr;
    use std::process::{Child, Stdio};
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use wirepact_chain::bindings::session_status;
    use wirepact_chain::{devnet_params, AlloyMarket, Devnet, Market, SendPolicy};
    use wirepact_proto::SessionId;

    use super::*;

    fn tokens(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64).pow(U256::from(18))
    }

    async fn origin() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let a = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut b = [0u8; 1];
                    if s.read_exact(&mut b).await.is_ok() {
                        if b[0] == b'M' {
                            // Exactly 1 MiB, then the end of the stream.
                            let _ = s.write_all(&vec![0x5au8; 1 << 20]).await;
                            let _ = s.shutdown().await;
                        } else if b[0] == b'B' {
                            // Bulk: stream until the client goes away (bounded at 2 GiB).
                            let chunk = vec![0x5au8; 64 * 1024];
                            for _ in 0..32 * 1024 {
                                if s.write_all(&chunk).await.is_err() {
                                    return;
                                }
                            }
                        } else {
                            let _ = s.write_all(b"served").await;
                        }
                    }
                });
            }
        });
        a
    }

    /// One SOCKS5 request through the client to `origin`; true if the origin answered.
    async fn request(proxy: SocketAddr, origin: SocketAddr) -> bool {
        let work = async {
            let mut s = socks_connect(proxy, origin).await?;
            s.write_all(&[1]).await.ok()?;
            let mut body = [0u8; 6];
            s.read_exact(&mut body).await.ok()?;
            (&body == b"served").then_some(())
        };
        matches!(tokio::time::timeout(Duration::from_secs(2), work).await, Ok(Some(())))
    }

    /// Downloads through the proxy from the origin's bulk mode for `secs`; returns the bytes.
    async fn bulk(proxy: SocketAddr, origin: SocketAddr, secs: u64) -> u64 {
        let mut s = socks_connect(proxy, origin).await.expect("through the proxy");
        s.write_all(b"B").await.expect("bulk");
        let mut got = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        let end = tokio::time::Instant::now() + Duration::from_secs(secs);
        while let Ok(Ok(n)) = tokio::time::timeout_at(end, s.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            got += n as u64;
        }
        got
    }

    /// A `wirepact node` with `dir/node.toml`, its log in `dir/node.log`; returns once it is ready.
    pub(super) fn spawn_node(dir: &Path, key: &str, extra: &[&str]) -> Child {
        let ready = dir.join("ready.json");
        let mut child = Command::new(env!("CARGO_BIN_EXE_wirepact"))
            .args(["node", "--exit-with-stdin", "--config"])
            .arg(dir.join("node.toml"))
            .arg("--ready-file")
            .arg(&ready)
            .args(extra)
            .env("WIREPACT_PRIVATE_KEY", key)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("node.log")).expect("log"))
            .spawn()
            .expect("spawn node");
        let t = Instant::now();
        while !ready.exists() {
            assert!(child.try_wait().expect("wait").is_none(), "node exited: see {}", dir.display());
            assert!(t.elapsed() < Duration::from_secs(60), "node not ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    /// Waits (bounded) for `cond`, failing with the client's last log lines.
    async fn wait_for(what: &str, log: &Mutex<Vec<String>>, mut cond: impl FnMut() -> bool) {
        let t = Instant::now();
        while !cond() {
            assert!(
                t.elapsed() < Duration::from_secs(40),
                "{what} did not happen; client log: {:?}",
                log.lock().map(|l| l.iter().rev().take(10).cloned().collect::<Vec<_>>())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_and_then_a_hung_provider_are_left_for_the_next() {
        let dir = std::env::temp_dir().join(format!("wirepact-sla-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        // Provider 1 is the cheapest but holds every answer back 300 ms (promise: 80 ms + 20).
        // Prices 0.1, 0.2, 0.3: the ranking weighs each 100 ms of measured handshake as one more
        // price, so providers priced 10 % apart could swap places on a few ms of handshake
        // jitter on a loaded machine (CI saw 3 picked before 1); 2x and 3x apart they cannot.
        let Three { devnet, market: m, nodes } =
            three_providers(&dir, |i| if i == 1 { &["--extra-latency-ms", "300"] } else { &[] }).await;
        let key = devnet.signer(4).expect("key").to_bytes().to_string();
        let (mut client, log, ready) = spawn_client(&dir, &devnet.endpoint(), &m, &key);
        let standbys =
            || log.lock().map(|l| l.iter().filter(|x| x.contains("warm standby ready")).count()).unwrap_or(0);
        wait_for("the client's ready file", &log, || ready.exists()).await;
        let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&ready).expect("ready")).expect("json");
        assert_eq!(c["provider_id"], 1, "the cheapest provider comes first (its handshake is not slowed)");
        let first = SessionId(c["session_id"].as_str().expect("id").parse().expect("b256"));
        let proxy: SocketAddr = c["proxy"].as_str().expect("proxy").parse().expect("addr");
        let o = origin().await;

        // Over 3 s its round trips stay at ~300 ms: the client leaves it and closes its session.
        let t = Instant::now();
        loop {
            let st = m.session(first).await.expect("session").status;
            if st == session_status::CLOSING {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(40), "the slow provider's session was not closed: {log:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(request(proxy, o).await, "new connections flow through the standby (provider 2)");
        // A new standby (provider 3) is set up; then provider 2 hangs.
        wait_for("a second standby", &log, || standbys() >= 2).await;
        let pid2 = nodes[1].id().to_string();
        assert!(Command::new("kill").args(["-STOP", &pid2]).status().expect("kill").success());
        let hung_at = Instant::now();
        wait_for("leaving the hung provider", &log, || {
            log.lock().is_ok_and(|l| l.iter().any(|x| x.contains("failing over") && x.contains("to=3")))
        })
        .await;
        let left_after = hung_at.elapsed();
        // A figure, not an assertion (wall-clock bounds flake on a loaded machine): how soon a
        // stall is judged is `sla.rs`' unit tests with time passed in; here the breach below
        // must be the stall.
        eprintln!("left the hung provider {left_after:?} after SIGSTOP");
        assert!(request(proxy, o).await, "new connections flow through provider 3");
        assert!(Command::new("kill").args(["-CONT", &pid2]).status().expect("kill").success());
        // A healthy provider kept busy by the client's own download for longer than the window
        // (its pongs queue behind the data) is not left.
        let moved = bulk(proxy, o, 5).await;
        assert!(moved > 8 << 20, "the download moved {moved} bytes");
        assert!(request(proxy, o).await, "still on provider 3 after the download");

        drop(client.stdin.take()); // clean stop
        let mut out = String::new();
        std::io::Read::read_to_string(&mut client.stdout.take().expect("stdout"), &mut out).expect("report");
        assert!(client.wait().expect("wait").success(), "clean stop exits 0");
        let report: serde_json::Value = serde_json::from_str(out.trim()).expect("report json");
        assert_eq!(report["provider_id"], 3, "{report}");
        assert_eq!(report["failovers"], 2, "{report}");
        let breaches = report["breaches"].as_array().expect("breaches");
        assert_eq!(breaches.len(), 2, "{report}");
        assert_eq!(breaches[0][0], 1);
        assert!(breaches[0][1]["Latency"]["median_ms"].as_u64().expect("median") >= 300, "{report}");
        assert_eq!(breaches[0][1]["Latency"]["limit_ms"], 100, "promise 80 ms + tolerance 20 ms");
        assert_eq!(breaches[1][0], 2);
        assert!(breaches[1][1]["Stalled"]["for_ms"].as_u64().expect("stall") >= 2000, "{report}");
        assert!(report["closed"].as_bool().expect("closed"), "every session closed: {report}");

        for mut n in nodes {
            drop(n.stdin.take());
            assert!(n.wait().expect("wait").success(), "node stops cleanly");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    /// Fetches the origin's 1 MiB through the proxy; the bytes received (bounded at 20 s).
    async fn fetch_mib(proxy: SocketAddr, origin: SocketAddr) -> Result<usize, String> {
        let work = async {
            let mut s = socks_connect(proxy, origin).await.ok_or("the proxy did not connect")?;
            s.write_all(b"M").await.map_err(|e| e.to_string())?;
            let mut body = Vec::with_capacity(1 << 20);
            s.read_to_end(&mut body).await.map_err(|e| e.to_string())?;
            if body.iter().any(|&b| b != 0x5a) {
                return Err("corrupted".into());
            }
            Ok(body.len())
        };
        tokio::time::timeout(Duration::from_secs(20), work).await.map_err(|_| "timed out".to_string())?
    }

    /// A devnet with one provider (dev key 1) selling 1 Mbit/s sessions at 1 token per GiB (so
    /// small deposits pay for a few MiB) and dev key 4 funded as its client.
    struct Dear {
        dir: PathBuf,
        devnet: Devnet,
        m: AlloyMarket,
        rpc: String,
        node: Child,
    }

    async fn dear_provider(name: &str) -> Dear {
        let dir = std::env::temp_dir().join(format!("wirepact-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let (devnet, m) = super::sla_watch::devnet_market().await;
        let rpc = devnet.endpoint();
        for i in [1, 4] {
            m.mint_test_tokens(devnet.signer(i).expect("key").address(), tokens(1000)).await.expect("mint");
        }
        let d = dir.join("node1");
        write_node_config(&d, &rpc, &m, "capacity_mbps = 10\nsession_mbps = 1\nprice_per_gib = \"1\"\n");
        let node = spawn_node(&d, &devnet.signer(1).expect("key").to_bytes().to_string(), &[]);
        Dear { dir, devnet, m, rpc, node }
    }

    /// Issue 22's hang: a small deposit ran out mid-download and later downloads hung until
    /// curl gave up. Now the client opens the next session before the deposit runs out (here at
    /// half of it) and moves new connections there: 40 MiB fetched in 1 MiB requests on
    /// deposits that pay for ~21 MB each all arrive intact, over several sessions, each closed
    /// on chain at the end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_deposit_is_renewed_and_downloads_never_hang() {
        let Dear { dir, devnet, m, rpc, mut node } = dear_provider("renew").await;
        let key = devnet.signer(4).expect("key").to_bytes().to_string();
        let (mut client, log, ready) =
            spawn_client_with(&dir, &rpc, &m, &key, "deposit = \"0.02\"\nstandby = false\nrenew_at_percent = 50\n");
        wait_for("the client's ready file", &log, || ready.exists()).await;
        let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&ready).expect("ready")).expect("json");
        let proxy: SocketAddr = c["proxy"].as_str().expect("proxy").parse().expect("addr");
        let o = origin().await;
        for i in 0..40 {
            match fetch_mib(proxy, o).await {
                Ok(n) => assert_eq!(n, 1 << 20, "download {i} got {n} bytes"),
                Err(e) => panic!(
                    "download {i} failed: {e}; client log: {:?}",
                    log.lock().map(|l| l.iter().rev().take(12).cloned().collect::<Vec<_>>())
                ),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }

        drop(client.stdin.take()); // clean stop
        let mut out = String::new();
        std::io::Read::read_to_string(&mut client.stdout.take().expect("stdout"), &mut out).expect("report");
        assert!(client.wait().expect("wait").success(), "clean stop exits 0");
        let report: serde_json::Value = serde_json::from_str(out.trim()).expect("report json");
        assert!(report["renewals"].as_u64().expect("renewals") >= 2, "{report}");
        assert_eq!(report["failovers"], 0, "renewing is not failing over: {report}");
        assert!(report["closed"].as_bool().expect("closed"), "every session closed: {report}");
        // Every session the client opened was closed on chain.
        let opened = m
            .sessions_opened_with(wirepact_proto::ProviderId(1), 0, m.block_number().await.expect("block"))
            .await
            .expect("sessions");
        assert!(opened.len() >= 3, "{} sessions", opened.len());
        for t in &opened {
            let st = m.session(t.session_id()).await.expect("session").status;
            assert_ne!(st, session_status::OPEN, "session {} left open", t.session_id().0);
        }
        drop(node.stdin.take());
        assert!(node.wait().expect("wait").success(), "node stops cleanly");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Issue 22: a user's daily spending cap holds to the wei. Sessions are renewed while the
    /// cap leaves room (the last deposit cut to what is left); then the proxy refuses new
    /// connections at once (no hang), the control endpoint says why, and `wirepact client stop`
    /// closes every session.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_spending_cap_is_never_passed_and_then_connections_are_refused_not_hung() {
        let Dear { dir, devnet, m, rpc, mut node } = dear_provider("cap").await;
        let control = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        let key = devnet.signer(4).expect("key").to_bytes().to_string();
        let (mut client, log, ready) = spawn_client_with(
            &dir,
            &rpc,
            &m,
            &key,
            &format!(
                "deposit = \"0.02\"\nstandby = false\nrenew_at_percent = 50\nmax_spend_per_day = \"0.05\"\ncontrol_listen = \"{control}\"\n"
            ),
        );
        wait_for("the client's ready file", &log, || ready.exists()).await;
        let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&ready).expect("ready")).expect("json");
        let proxy: SocketAddr = c["proxy"].as_str().expect("proxy").parse().expect("addr");
        let o = origin().await;
        // 0.05 tokens at 1 token/GiB pay for ~51 MiB at most; a renewed session carries only its
        // open streams after renewing, and the rest of its deposit counts until it settles.
        let mut done = 0;
        for _ in 0..80 {
            match tokio::time::timeout(Duration::from_secs(30), fetch_mib(proxy, o)).await {
                Ok(Ok(n)) if n == 1 << 20 => done += 1,
                Ok(_) => break,
                Err(_) => panic!("a download hung at the cap after {done} MiB"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!((20..=52).contains(&done), "{done} MiB before the cap; 0.05 tokens pay for ~51 at most");

        let cli = |args: &[&str]| {
            let out = Command::new(env!("CARGO_BIN_EXE_wirepact"))
                .args(args)
                .args(["--control", &control.to_string()])
                .output()
                .expect("run wirepact client");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let mut status = serde_json::Value::Null;
        for _ in 0..100 {
            status = serde_json::from_str(&cli(&["client", "status", "--json"])).expect("status json");
            if status["accepting"] == false {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status["accepting"], false, "{status}");
        assert!(status["capped"].as_str().expect("why").contains("spending cap reached"), "{status}");
        assert_eq!(status["spend"]["cap_per_day"], "0.05", "{status}");
        assert_eq!(status["spend"]["today"], "0.05", "deposits count until they settle: {status}");
        // Refused at once, not accepted and left hanging.
        let refused = tokio::net::TcpStream::connect(proxy).await;
        assert!(refused.is_err(), "the proxy still accepts connections while capped");
        let text = cli(&["client", "status"]);
        assert!(text.contains("REFUSING new connections") && text.contains("max_spend_per_day"), "{text}");
        let metrics = reqwest_text(&format!("http://{control}/metrics")).await;
        assert!(metrics.contains("wirepact_client_capped 1"), "{metrics}");
        assert!(metrics.contains("wirepact_client_sessions_opened_total 3"), "{metrics}");

        assert!(cli(&["client", "stop"]).contains("stopping"));
        let mut out = String::new();
        std::io::Read::read_to_string(&mut client.stdout.take().expect("stdout"), &mut out).expect("report");
        assert!(client.wait().expect("wait").success(), "a stop on the control endpoint exits 0");
        let report: serde_json::Value = serde_json::from_str(out.trim()).expect("report json");
        assert!(report["closed"].as_bool().expect("closed"), "{report}");
        // Three sessions, 0.02 + 0.02 + the 0.01 left: the cap to the wei, and all closed.
        let opened = m
            .sessions_opened_with(wirepact_proto::ProviderId(1), 0, m.block_number().await.expect("block"))
            .await
            .expect("sessions");
        let deposits: Vec<U256> = opened.iter().map(|t| U256::from(t.deposit)).collect();
        assert_eq!(
            deposits,
            vec![tokens(2) / U256::from(100), tokens(2) / U256::from(100), tokens(1) / U256::from(100)]
        );
        for t in &opened {
            let st = m.session(t.session_id()).await.expect("session");
            assert_ne!(st.status, session_status::OPEN, "session {} left open", t.session_id().0);
            assert!(U256::from(st.paid) <= U256::from(t.deposit));
        }
        drop(node.stdin.take());
        assert!(node.wait().expect("wait").success(), "node stops cleanly");
        let _ = std::fs::remove_dir_all(&dir);
    }

    async fn reqwest_text(url: &str) -> String {
        let mut s = TcpStream::connect(url.trim_start_matches("http://").split('/').next().expect("host"))
            .await
            .expect("connect");
        let path = format!("/{}", url.trim_start_matches("http://").split_once('/').map_or("", |(_, p)| p));
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes()).await.expect("write");
        let mut out = String::new();
        s.read_to_string(&mut out).await.expect("read");
        out
    }

    /// Issue 22: a client that could not write its `data_dir` deposited and opened a session
    /// first, then failed, keeping no file that would ever settle it. Now it checks first:
    /// it refuses to start, says so, and nothing reaches the chain.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_cannot_keep_its_files_sends_nothing_to_the_chain() {
        let dir = std::env::temp_dir().join(format!("wirepact-datadir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let Three { devnet, market: m, nodes } = three_providers(&dir, |_| &[]).await;
        let client = devnet.signer(4).expect("key");
        let (wallet, inside) = (
            m.token_balance(client.address()).await.expect("wallet"),
            m.balance_of(client.address()).await.expect("balance"),
        );
        // `data_dir` under a regular file: no directory can be made there, root or not.
        let blocker = dir.join("not-a-dir");
        std::fs::write(&blocker, "x").expect("file");
        let cfg = dir.join("client.toml");
        std::fs::write(
            &cfg,
            format!(
                "rpc_url = \"{}\"\nmarket = \"{}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\ndeposit = \"5\"\n",
                devnet.endpoint(),
                m.address(),
                blocker.join("client").display()
            ),
        )
        .expect("cfg");
        let out = Command::new(env!("CARGO_BIN_EXE_wirepact"))
            .args(["connect", "--config"])
            .arg(&cfg)
            .env("WIREPACT_PRIVATE_KEY", client.to_bytes().to_string())
            .output()
            .expect("run connect");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(text.contains("fix `data_dir` (nothing was sent to the chain)"), "{text}");
        assert_eq!(m.token_balance(client.address()).await.expect("wallet"), wallet);
        assert_eq!(m.balance_of(client.address()).await.expect("balance"), inside);
        let last = m.block_number().await.expect("block");
        assert!(m.sessions_opened_by(client.address(), 0, last).await.expect("sessions").is_empty());
        for mut n in nodes {
            drop(n.stdin.take());
            assert!(n.wait().expect("wait").success(), "node stops cleanly");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Three providers on a fresh market (prices 0.1, 0.2, 0.3; `extra(i)` adds node flags),
    /// and a funded client account (dev key 4).
    struct Three {
        devnet: Devnet,
        market: AlloyMarket,
        nodes: Vec<Child>,
    }

    async fn three_providers(dir: &Path, extra: impl Fn(usize) -> &'static [&'static str]) -> Three {
        let (devnet, m) = super::sla_watch::devnet_market().await;
        let rpc = devnet.endpoint();
        for i in 1..=4 {
            m.mint_test_tokens(devnet.signer(i).expect("key").address(), tokens(1000)).await.expect("mint");
        }
        let mut nodes = Vec::new();
        for i in 1..=3usize {
            let d = dir.join(format!("node{i}"));
            write_node_config(
                &d,
                &rpc,
                &m,
                &format!("capacity_mbps = 100\nsession_mbps = 10\nprice_per_gib = \"0.{i}\"\n"),
            );
            nodes.push(spawn_node(&d, &devnet.signer(i).expect("key").to_bytes().to_string(), extra(i)));
        }
        Three { devnet, market: m, nodes }
    }

    /// A fresh devnet market, deployed by dev key 0 with the devnet parameters.
    pub(super) async fn devnet_market() -> (Devnet, AlloyMarket) {
        let devnet = Devnet::start().expect("anvil (make tools)");
        let policy = SendPolicy { poll_interval: Duration::from_millis(20), ..SendPolicy::default() };
        let m = AlloyMarket::deploy(&devnet.endpoint(), devnet.signer(0).expect("key"), None, devnet_params(), policy)
            .await
            .expect("deploy");
        (devnet, m)
    }

    /// Writes `dir/node.toml`: a provider on `market` selling `terms` (capacity, session rate,
    /// price), promising 80 ms, its egress allowed to loopback.
    fn write_node_config(dir: &Path, rpc: &str, market: &AlloyMarket, terms: &str) {
        std::fs::create_dir_all(dir).expect("dir");
        std::fs::write(
            dir.join("node.toml"),
            format!(
                "rpc_url = \"{rpc}\"\nmarket = \"{}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\n\
                 max_latency_ms = 80\negress_allow = [\"127.0.0.0/8\"]\n{terms}",
                market.address(),
                dir.display()
            ),
        )
        .expect("cfg");
    }

    /// `wirepact connect` (dev key 4) against `rpc`, leaving providers after a 3 s SLA window
    /// or a 2 s stall; returns it, its log lines as they come, and its ready file.
    fn spawn_client(
        dir: &Path,
        rpc: &str,
        market: &AlloyMarket,
        key: &str,
    ) -> (Child, Arc<Mutex<Vec<String>>>, PathBuf) {
        spawn_client_with(dir, rpc, market, key, "deposit = \"5\"\n")
    }

    /// [`spawn_client`] with `extra` config lines (which must set `deposit`).
    fn spawn_client_with(
        dir: &Path,
        rpc: &str,
        market: &AlloyMarket,
        key: &str,
        extra: &str,
    ) -> (Child, Arc<Mutex<Vec<String>>>, PathBuf) {
        let cdir = dir.join("client");
        std::fs::create_dir_all(&cdir).expect("dir");
        std::fs::write(
            cdir.join("client.toml"),
            format!(
                "rpc_url = \"{rpc}\"\nmarket = \"{}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\n\
                 sla_window_secs = 3\nstall_secs = 2\n{extra}",
                market.address(),
                cdir.display()
            ),
        )
        .expect("cfg");
        let ready = cdir.join("ready.json");
        let mut client = Command::new(env!("CARGO_BIN_EXE_wirepact"))
            .args(["connect", "--exit-with-stdin", "--config"])
            .arg(cdir.join("client.toml"))
            .arg("--ready-file")
            .arg(&ready)
            .env("WIREPACT_PRIVATE_KEY", key)
            .env("WIREPACT_LOG", "wirepact_client=info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn client");
        let log = Arc::new(Mutex::new(Vec::<String>::new()));
        {
            let (log, err) = (log.clone(), client.stderr.take().expect("stderr"));
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    let plain: String = line.chars().filter(|c| !c.is_control()).collect();
                    if let Ok(mut l) = log.lock() {
                        l.push(plain);
                    }
                }
            });
        }
        (client, log, ready)
    }

    /// A TCP forwarder to `upstream` that can be paused: while paused nothing it holds moves
    /// (a stalled RPC endpoint, as anvil stopped for a minute looked to the client).
    async fn pausable_forwarder(upstream: SocketAddr) -> (SocketAddr, tokio::sync::watch::Sender<bool>) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let a = l.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((down, _)) = l.accept().await {
                let Ok(up) = TcpStream::connect(upstream).await else { continue };
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                for (mut r, mut w) in [
                    (
                        Box::new(dr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                        Box::new(uw) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                    ),
                    (Box::new(ur), Box::new(dw)),
                ] {
                    let mut paused = rx.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match r.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if paused.wait_for(|p| !*p).await.is_err() || w.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        (a, tx)
    }

    /// The finding: with the RPC endpoint stalled, the client's management loop sat in a chain
    /// call (closing the provider it had just left) and stopped watching: the standby, the SLA
    /// watch and the logs froze for the whole stall. Now chain work has its own loop and every
    /// RPC request a deadline: during the stall a second hung provider is still left, and once
    /// the endpoint answers again a new session opens and requests flow.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_watch_keeps_working_while_the_rpc_endpoint_stalls() {
        let dir = std::env::temp_dir().join(format!("wirepact-rpc-stall-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let Three { devnet, market: m, nodes } = three_providers(&dir, |_| &[]).await;
        // The client reaches the chain only through the forwarder.
        let anvil = SocketAddr::from(([127, 0, 0, 1], devnet.port()));
        let (fwd, pause) = pausable_forwarder(anvil).await;
        let key = devnet.signer(4).expect("key").to_bytes().to_string();
        let (mut client, log, ready) = spawn_client(&dir, &format!("http://{fwd}"), &m, &key);
        let seen = |needle: &'static str, also: &'static str| {
            let log = log.clone();
            move || log.lock().is_ok_and(|l| l.iter().any(|x| x.contains(needle) && x.contains(also)))
        };
        wait_for("the client's ready file", &log, || ready.exists()).await;
        let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&ready).expect("ready")).expect("json");
        assert_eq!(c["provider_id"], 1);
        let proxy: SocketAddr = c["proxy"].as_str().expect("proxy").parse().expect("addr");
        let o = origin().await;
        wait_for("a warm standby", &log, seen("warm standby ready", "provider=2")).await;

        // The RPC endpoint stalls; provider 1 hangs: the client moves to provider 2 and starts
        // closing provider 1's session on chain, which cannot complete.
        pause.send(true).expect("pause");
        let pids: Vec<String> = nodes.iter().map(|n| n.id().to_string()).collect();
        assert!(Command::new("kill").args(["-STOP", &pids[0]]).status().expect("kill").success());
        wait_for("failing over to provider 2", &log, seen("failing over", "to=2")).await;
        assert!(request(proxy, o).await, "new connections flow through provider 2 during the stall");
        // Still stalled: provider 2 hangs too. The watch must still see it.
        assert!(Command::new("kill").args(["-STOP", &pids[1]]).status().expect("kill").success());
        wait_for("leaving the second hung provider during the stall", &log, seen("leaving the provider", "provider=2"))
            .await;
        // Closing provider 1's session waits on the stalled endpoint until the RPC deadline; the
        // watch saw provider 2 before that (a loop shared with chain work saw it only after).
        {
            let l = log.lock().expect("log");
            let left = l.iter().position(|x| x.contains("leaving the provider") && x.contains("provider=2"));
            let close_gave_up = l.iter().position(|x| x.contains("closing failed"));
            assert!(
                close_gave_up.is_none_or(|c| left.is_some_and(|l| l < c)),
                "provider 2 was judged only after the chain call gave up: {l:?}"
            );
        }

        // The endpoint answers again: a new session opens and requests flow.
        pause.send(false).expect("resume");
        for p in &pids[..2] {
            assert!(Command::new("kill").args(["-CONT", p]).status().expect("kill").success());
        }
        // Any provider will do (1 and 2 answer again, and may be out of their avoid window).
        wait_for("a new session after the stall", &log, seen("new session ready", "provider=")).await;
        let t = Instant::now();
        while !request(proxy, o).await {
            assert!(t.elapsed() < Duration::from_secs(20), "no request went through after the stall");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        drop(client.stdin.take());
        assert!(client.wait().expect("wait").success(), "clean stop exits 0");
        for mut n in nodes {
            drop(n.stdin.take());
            let _ = n.wait();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `wirepact connect --tun --tun-netns NS`: a plain curl inside a network namespace made by
/// the test, with no proxy settings, reaches an origin that only the provider can reach.
mod full_device {
    use std::net::SocketAddr;
    use std::process::Stdio;
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use wirepact_chain::Market;

    use super::*;

    const BODY: usize = 3 << 20;

    fn byte(i: usize) -> u8 {
        u8::try_from((i * 31 + i / 4093) % 251).unwrap_or(0)
    }

    /// This machine's first global IPv4 address: the namespace's packets come back with the
    /// origin's address as source, and a loopback source is refused on any other interface,
    /// so the origin cannot be on 127.0.0.1. Traffic to it still never leaves the machine.
    fn host_address() -> Option<std::net::IpAddr> {
        let out = Command::new("ip").args(["-4", "-o", "addr", "show", "scope", "global"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .and_then(|cidr| cidr.split('/').next())
            .and_then(|ip| ip.parse().ok())
    }

    /// A minimal HTTP origin on `ip`: any request gets BODY patterned bytes.
    async fn origin(ip: std::net::IpAddr) -> SocketAddr {
        let l = TcpListener::bind((ip, 0)).await.expect("bind");
        let a = l.local_addr().expect("addr");
        let body: Arc<Vec<u8>> = Arc::new((0..BODY).map(byte).collect());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut b = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
                        match s.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&b[..n]),
                        }
                    }
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\nConnection: close\r\n\r\n");
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(&body).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        a
    }

    /// Why this machine cannot run the test, if it cannot.
    fn unsupported() -> Option<String> {
        if !Path::new("/dev/net/tun").exists() {
            return Some("/dev/net/tun is missing".into());
        }
        for tool in ["ip", "curl", "python3", "iperf3"] {
            if Command::new(tool).arg("-V").output().is_err() && Command::new(tool).arg("--version").output().is_err() {
                return Some(format!("`{tool}` is not installed"));
            }
        }
        let probe = format!("wpprobe{}", std::process::id() % 100_000);
        let ok = Command::new("ip").args(["netns", "add", &probe]).status().is_ok_and(|s| s.success());
        if !ok {
            return Some("cannot create network namespaces (not root?)".into());
        }
        let _ = Command::new("ip").args(["netns", "del", &probe]).status();
        None
    }

    /// Deletes the namespace (and its resolv.conf) however the test ends.
    struct Netns(String);
    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
            let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(&self.0));
        }
    }

    /// A DNS server for one name on `ip:53`: an A query for `name` gets `answer`, any other
    /// query an empty NOERROR. Returns how many queries for `name` it answered.
    async fn dns_server(
        ip: std::net::IpAddr,
        name: &'static str,
        answer: std::net::Ipv4Addr,
    ) -> Arc<std::sync::atomic::AtomicU64> {
        let sock = tokio::net::UdpSocket::bind((ip, 53)).await.expect("bind the test's DNS server on port 53");
        let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = answered.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            for _ in 0..200 {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else { return };
                let q = &buf[..n];
                if n < 17 {
                    continue;
                }
                // The question: labels from byte 12, then type and class.
                let (mut at, mut labels) = (12, Vec::new());
                while at < n && q[at] != 0 {
                    let len = usize::from(q[at]);
                    labels.push(String::from_utf8_lossy(q.get(at + 1..at + 1 + len).unwrap_or_default()).to_string());
                    at += 1 + len;
                }
                let end = at + 5; // the zero label, type, class
                if end > n {
                    continue;
                }
                let qtype = u16::from_be_bytes([q[at + 1], q[at + 2]]);
                let hit = labels.join(".").eq_ignore_ascii_case(name) && qtype == 1;
                let mut r = Vec::with_capacity(64);
                r.extend_from_slice(&q[..2]); // id
                r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, u8::from(hit), 0, 0, 0, 0]);
                r.extend_from_slice(&q[12..end]);
                if hit {
                    r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                    r.extend_from_slice(&answer.octets());
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                let _ = sock.send_to(&r, from).await;
            }
        });
        answered
    }

    fn curl_in(ns: &str, url: &str) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", ns, "curl", "-sS", "--max-time", "20", "-o", "-", url])
            .output()
            .expect("ip netns exec curl")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs root, `ip netns`, /dev/net/tun and a global IPv4 address: `make test` runs it with --ignored as root"]
    async fn curl_in_a_namespace_without_proxy_settings_goes_through_the_provider() {
        if let Some(why) = unsupported() {
            panic!("cannot run the full-device test here: {why}");
        }
        let pid = std::process::id() % 100_000;
        let ns = Netns(format!("wptun{pid}"));
        assert!(Command::new("ip").args(["netns", "add", &ns.0]).status().expect("ip").success());
        let dir = std::env::temp_dir().join(format!("wirepact-tun-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let Some(host) = host_address() else {
            panic!("cannot run the full-device test here: this machine has no global IPv4 address for the origin");
        };
        let o = origin(host).await;
        let url = format!("http://{o}/file");
        // Without the tunnel the namespace has no route anywhere: the origin is out of reach.
        let before = curl_in(&ns.0, &url);
        assert!(!before.status.success(), "the namespace reached the origin by itself");

        let (devnet, m) = super::sla_watch::devnet_market().await;
        let rpc = devnet.endpoint();
        let ten = U256::from(10u64).pow(U256::from(19));
        m.mint_test_tokens(devnet.signer(1).expect("key").address(), ten * U256::from(100)).await.expect("mint");
        m.mint_test_tokens(devnet.signer(2).expect("key").address(), ten).await.expect("mint");
        let market = m.address().to_string();
        let nd = dir.join("node");
        std::fs::create_dir_all(&nd).expect("dir");
        std::fs::write(
            nd.join("node.toml"),
            format!(
                "rpc_url = \"{rpc}\"\nmarket = \"{market}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\n\
                 capacity_mbps = 100\nsession_mbps = 10\nmax_latency_ms = 80\nprice_per_gib = \"0.1\"\n\
                 egress_allow = [\"{host}/32\"]\n",
                nd.display()
            ),
        )
        .expect("cfg");
        let mut node = super::sla_watch::spawn_node(&nd, &devnet.signer(1).expect("key").to_bytes().to_string(), &[]);
        let cdir = dir.join("client");
        std::fs::create_dir_all(&cdir).expect("dir");
        std::fs::write(
            cdir.join("client.toml"),
            format!(
                "rpc_url = \"{rpc}\"\nmarket = \"{market}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\n\
                 deposit = \"5\"\nstandby = false\n",
                cdir.display()
            ),
        )
        .expect("cfg");
        let client_key = devnet.signer(2).expect("key").to_bytes().to_string();
        // A client routing the namespace through its tunnel, ready; `extra` adds flags.
        let start_client = |extra: &[&str], log: &str| {
            let ready = cdir.join(format!("{log}.ready.json"));
            let mut client = Command::new(env!("CARGO_BIN_EXE_wirepact"))
                .args(["connect", "--exit-with-stdin", "--tun", "--tun-netns", &ns.0, "--tun-name"])
                .arg(format!("wpt{pid}"))
                .args(extra)
                .arg("--config")
                .arg(cdir.join("client.toml"))
                .arg("--ready-file")
                .arg(&ready)
                .env("WIREPACT_PRIVATE_KEY", &client_key)
                .env("WIREPACT_LOG", std::env::var("TUN_TEST_LOG").unwrap_or_else(|_| "info".into()))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(std::fs::File::create(dir.join(log)).expect("log"))
                .spawn()
                .expect("spawn client");
            // Bounded by count: at most 1,200 looks, 50 ms apart.
            for looked in 0.. {
                if ready.exists() {
                    break;
                }
                let log = std::fs::read_to_string(dir.join(log)).unwrap_or_default();
                assert!(client.try_wait().expect("wait").is_none(), "client exited: {log}");
                assert!(looked < 1_200, "client not ready after 1,200 looks: {log}");
                std::thread::sleep(Duration::from_millis(50));
            }
            client
        };
        let mut client = tokio::task::block_in_place(|| start_client(&[], "client.log"));

        let got = tokio::task::spawn_blocking({
            let (ns, url) = (ns.0.clone(), url.clone());
            move || curl_in(&ns, &url)
        })
        .await
        .expect("curl");
        let log = std::fs::read_to_string(dir.join("client.log")).unwrap_or_default();
        assert!(
            got.status.success(),
            "curl in the namespace: {} / client log: {log}",
            String::from_utf8_lossy(&got.stderr)
        );
        assert_eq!(got.stdout.len(), BODY, "whole body");
        assert!(got.stdout.iter().enumerate().all(|(i, b)| *b == byte(i)), "body intact");
        // Names are answered inside (placeholders from 198.18.0.0/15), not by a resolver outside.
        let dns = Command::new("ip")
            .args(["netns", "exec", &ns.0, "getent", "hosts", "example.org"])
            .output()
            .expect("getent");
        let answer = String::from_utf8_lossy(&dns.stdout).to_string();
        assert!(answer.starts_with("198.18.") || answer.starts_with("198.19."), "virtual DNS answer: {answer:?}");

        // UDP too (issue 20): a datagram from the namespace reaches a UDP echo on the host
        // through the device, the client's UDP ASSOCIATE and the provider, and comes back.
        let echo = tokio::net::UdpSocket::bind((host, 0)).await.expect("udp echo");
        let echo_addr = echo.local_addr().expect("addr");
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            for _ in 0..20 {
                let Ok((n, from)) = echo.recv_from(&mut buf).await else { return };
                let _ = echo.send_to(&buf[..n], from).await;
            }
        });
        let probe = "import socket, sys\n\
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
            s.settimeout(5)\n\
            for _ in range(3):\n\
            \x20   s.sendto(b'wirepact-udp', (sys.argv[1], int(sys.argv[2])))\n\
            \x20   try:\n\
            \x20       print(s.recvfrom(2048)[0].decode()); break\n\
            \x20   except socket.timeout:\n\
            \x20       pass\n";
        let udp = tokio::task::spawn_blocking({
            let ns = ns.0.clone();
            let (ip, port) = (echo_addr.ip().to_string(), echo_addr.port().to_string());
            move || {
                Command::new("ip")
                    .args(["netns", "exec", &ns, "python3", "-c", probe, &ip, &port])
                    .output()
                    .expect("python3 in the namespace")
            }
        })
        .await
        .expect("udp probe");
        assert_eq!(
            String::from_utf8_lossy(&udp.stdout).trim(),
            "wirepact-udp",
            "the datagram's echo through the tunnel: {}",
            String::from_utf8_lossy(&udp.stderr)
        );

        drop(client.stdin.take()); // clean stop
        let mut out = String::new();
        std::io::Read::read_to_string(&mut client.stdout.take().expect("stdout"), &mut out).expect("report");
        assert!(client.wait().expect("wait").success(), "clean stop exits 0");
        let report: serde_json::Value = serde_json::from_str(out.trim()).expect("report json");
        let counted = report["bytes_counted"].as_u64().expect("counted");
        assert!(counted >= BODY as u64, "the provider carried (and the client paid for) the body: {report}");
        assert_eq!(report["bytes_acknowledged"], report["bytes_counted"], "{report}");
        // The device went away with the client.
        let links = Command::new("ip").args(["-n", &ns.0, "link"]).output().expect("ip link");
        assert!(!String::from_utf8_lossy(&links.stdout).contains(&format!("wpt{pid}")), "device removed");

        // DNS over UDP through the tunnel (`--tun-dns tunnel`): the namespace's resolver is a
        // real address, its queries travel as datagrams to it through the provider, and curl
        // fetches the origin by name. Then iperf3 runs a UDP test through the tunnel.
        let name = "origin.wirepact.test";
        let std::net::IpAddr::V4(host4) = host else { panic!("an IPv4 host address") };
        let answered = dns_server(host, name, host4).await;
        let etc = Path::new("/etc/netns").join(&ns.0);
        std::fs::create_dir_all(&etc).expect("/etc/netns");
        std::fs::write(etc.join("resolv.conf"), format!("nameserver {host}\noptions timeout:3 attempts:3\n"))
            .expect("resolv.conf");
        let host_s = host.to_string();
        let mut client = tokio::task::block_in_place(|| {
            start_client(&["--tun-dns", "tunnel", "--tun-dns-server", &host_s], "client-dns.log")
        });
        let by_name = format!("http://{name}:{}/file", o.port());
        let got = tokio::task::spawn_blocking({
            let ns = ns.0.clone();
            move || curl_in(&ns, &by_name)
        })
        .await
        .expect("curl");
        let log = std::fs::read_to_string(dir.join("client-dns.log")).unwrap_or_default();
        assert!(got.status.success(), "curl by name: {} / client log: {log}", String::from_utf8_lossy(&got.stderr));
        assert_eq!(got.stdout.len(), BODY, "whole body fetched by name");
        assert!(answered.load(std::sync::atomic::Ordering::SeqCst) >= 1, "the resolver answered through the tunnel");

        let iperf_port = {
            let l = std::net::TcpListener::bind((host, 0)).expect("port");
            l.local_addr().expect("addr").port().to_string()
        };
        let mut server = Command::new("iperf3")
            .args(["-s", "-1", "-B", &host_s, "-p", &iperf_port])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf3 server");
        std::thread::sleep(Duration::from_millis(300));
        let run = tokio::task::spawn_blocking({
            let (ns, host_s, port) = (ns.0.clone(), host_s.clone(), iperf_port.clone());
            move || {
                Command::new("ip")
                    .args(["netns", "exec", &ns, "timeout", "60", "iperf3", "-u", "-c", &host_s, "-p", &port])
                    .args(["-b", "20M", "-t", "2", "--json"])
                    .output()
                    .expect("iperf3 in the namespace")
            }
        })
        .await
        .expect("iperf3");
        let _ = server.kill();
        let _ = server.wait();
        let out: serde_json::Value = serde_json::from_slice(&run.stdout)
            .unwrap_or_else(|e| panic!("iperf3 json ({e}): {}", String::from_utf8_lossy(&run.stdout)));
        assert!(run.status.success(), "iperf3 -u through the tunnel: {out}");
        let sum = &out["end"]["sum"];
        let packets = sum["packets"].as_u64().expect("packets");
        let lost = sum["lost_packets"].as_u64().expect("lost");
        eprintln!("iperf3 -u 20 Mbit/s 2 s through --tun: {packets} datagrams, {lost} lost ({}%)", sum["lost_percent"]);
        assert!(packets > 1000, "iperf3 sent its datagrams: {sum}");
        assert!(lost < packets, "datagrams reached the iperf3 server through the tunnel: {sum}");
        drop(client.stdin.take());
        assert!(client.wait().expect("wait").success(), "clean stop exits 0");

        drop(node.stdin.take());
        assert!(node.wait().expect("wait").success(), "node stops cleanly");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
