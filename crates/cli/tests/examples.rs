//! The examples and service units as an operator uses them (issue 22: the oracle example
//! staked 10 where the default market needs 1,000). Each daemon starts from its example on a
//! market deployed with the default parameters (only addresses, ports and directories are
//! changed); the systemd units pass `systemd-analyze verify` and name only real flags.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alloy::primitives::U256;
use wirepact_chain::{AlloyMarket, Devnet, Market, SendPolicy};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `examples/NAME.toml` with `set` applied (keys at the top level).
fn example_with(name: &str, set: &[(&str, toml::Value)]) -> String {
    let text = std::fs::read_to_string(repo().join(format!("examples/{name}.toml"))).expect("example");
    let mut t: toml::Table = toml::from_str(&text).expect("the example is valid TOML");
    for (k, v) in set {
        assert!(t.contains_key(*k), "examples/{name}.toml has no `{k}` to change");
        t.insert((*k).to_owned(), v.clone());
    }
    toml::to_string(&t).expect("toml")
}

struct Daemon {
    child: Child,
    ready: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, name: &str, args: &[&str], config: &str, key: &str) -> Self {
        std::fs::create_dir_all(dir).expect("dir");
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, config).expect("config");
        let (ready, log) = (dir.join(format!("{name}.ready.json")), dir.join(format!("{name}.log")));
        let child = Command::new(env!("CARGO_BIN_EXE_wirepact"))
            .args(args)
            .args(["--exit-with-stdin", "--config"])
            .arg(&cfg)
            .arg("--ready-file")
            .arg(&ready)
            .env("WIREPACT_PRIVATE_KEY", key)
            .env_remove("WIREPACT_RPC_URL")
            .env_remove("WIREPACT_MARKET")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn");
        Self { child, ready, log }
    }

    /// Waits (up to 600 polls 100 ms apart, by count) for the ready file; its JSON.
    async fn ready(&mut self, what: &str) -> serde_json::Value {
        for _ in 0..600 {
            if let Ok(bytes) = std::fs::read(&self.ready) {
                return serde_json::from_slice(&bytes).expect("ready json");
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{what} exited ({status}): {}", std::fs::read_to_string(&self.log).unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what} never got ready: {}", std::fs::read_to_string(&self.log).unwrap_or_default());
    }

    fn stop(mut self, what: &str) {
        drop(self.child.stdin.take());
        let status = self.child.wait().expect("wait");
        assert!(
            status.success(),
            "{what} did not stop cleanly: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_daemon_starts_from_its_example_on_a_default_market() {
    let dir = std::env::temp_dir().join(format!("wirepact-examples-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let devnet = Devnet::start().expect("anvil (make tools)");
    let rpc = devnet.endpoint();
    let policy = SendPolicy { poll_interval: Duration::from_millis(20), ..SendPolicy::default() };
    let m = AlloyMarket::deploy(&rpc, devnet.signer(0).expect("key"), None, wirepact_chain::default_params(), policy)
        .await
        .expect("deploy with the defaults");
    let ether = U256::from(10u64).pow(U256::from(18));
    for i in 1..=3 {
        m.mint_test_tokens(devnet.signer(i).expect("key").address(), U256::from(5_000u64) * ether).await.expect("mint");
    }
    let key = |i: usize| alloy::hex::encode_prefixed(devnet.signer(i).expect("key").to_bytes());
    let common = |sub: &str| {
        vec![
            ("rpc_url", toml::Value::String(rpc.clone())),
            ("market", toml::Value::String(m.address().to_string())),
            ("data_dir", toml::Value::String(dir.join(sub).display().to_string())),
        ]
    };
    let loopback = || toml::Value::String("127.0.0.1:0".into());

    let mut set = common("node");
    set.extend([("listen", loopback()), ("admin_listen", loopback())]);
    set.retain(|(k, _)| *k != "endpoint");
    let mut node_cfg = example_with("node", &set);
    // The example's `endpoint` is a documentation address: clients dial what the node listens on.
    node_cfg = node_cfg.lines().filter(|l| !l.starts_with("endpoint")).collect::<Vec<_>>().join("\n");
    let mut node = Daemon::start(&dir.join("node"), "node", &["node"], &node_cfg, &key(1));
    let n = node.ready("the node from examples/node.toml").await;
    assert_eq!(n["provider_id"], 1);

    let mut set = common("oracle");
    set.extend([("listen", loopback()), ("sink_listen", loopback()), ("admin_listen", loopback())]);
    let oracle_cfg = example_with("oracle", &set);
    let oracle_cfg = oracle_cfg.lines().filter(|l| !l.starts_with("endpoint")).collect::<Vec<_>>().join("\n");
    let mut oracle = Daemon::start(&dir.join("oracle"), "oracle", &["oracle"], &oracle_cfg, &key(2));
    let o = oracle.ready("the oracle from examples/oracle.toml").await;
    assert!(o["admin"].is_string(), "{o}");

    let mut set = common("client");
    set.extend([("listen", loopback()), ("control_listen", loopback())]);
    let client_cfg = example_with("client", &set);
    let mut client = Daemon::start(&dir.join("client"), "client", &["connect"], &client_cfg, &key(3));
    let c = client.ready("the client from examples/client.toml").await;
    assert_eq!(c["provider_id"], 1, "the client picks the example node: {c}");

    client.stop("the client");
    oracle.stop("the oracle");
    node.stop("the node");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The systemd units: `systemd-analyze verify` accepts them (with the binary where they
/// expect it), and every flag their `ExecStart` passes is one the command has.
#[test]
fn the_systemd_units_verify_and_pass_only_real_flags() {
    let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| panic!("needs systemd-analyze (Debian's systemd package; make test installs it)"));
    let dir = std::env::temp_dir().join(format!("wirepact-units-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let bin = env!("CARGO_BIN_EXE_wirepact");
    for unit in ["wirepact-node.service", "wirepact-oracle.service", "wirepact-client.service"] {
        let text = std::fs::read_to_string(repo().join("contrib/systemd").join(unit)).expect("unit");
        let exec = text.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart");
        let words: Vec<&str> = exec.split_whitespace().collect();
        assert_eq!(words[0], "/usr/local/bin/wirepact", "{unit}");
        let help = Command::new(bin).args([words[1], "--help"]).output().expect("help");
        let help = String::from_utf8_lossy(&help.stdout);
        for flag in words.iter().filter(|w| w.starts_with("--")) {
            assert!(help.contains(flag), "{unit}: `wirepact {}` has no {flag}", words[1]);
        }
        // Verified as installed, with the binary it names in place.
        let local = dir.join(unit);
        std::fs::write(&local, text.replace("/usr/local/bin/wirepact", bin)).expect("write");
        let out = Command::new(analyze).args(["verify", "--man=no"]).arg(&local).output().expect("verify");
        let said = String::from_utf8_lossy(&out.stderr);
        let problems: Vec<&str> = said
            .lines()
            .filter(|l| l.contains(unit))
            // The service user is created at install time, not on the test machine.
            .filter(|l| !l.contains("User") && !l.contains("Group"))
            .collect();
        assert!(out.status.success() && problems.is_empty(), "{unit}:\n{said}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
