//! The lifecycle commands on a devnet (issue 22): a provider slashed into jail is told when it
//! may unjail and how much stake it lacks, stakes it, unjails; it unstakes (refused under the
//! minimum, with the most it may), withdraws what unbonded once the delay is over, pauses,
//! resumes, leaves; an oracle leaves and withdraws; every balance is checked to the wei and a
//! refused command changes nothing.

use std::process::{Command, Output};
use std::time::Duration;

use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use wirepact_chain::bindings::{oracle_status, provider_status, IWirepactMarket};
use wirepact_chain::{AlloyMarket, Devnet, Market, ReportSubmission, SendPolicy};
use wirepact_proto::verdicts::{self, Row, Sla, Tolerances};
use wirepact_proto::{domain, sign_report, Kbps, Millis, Observation, ProviderId};

const ONE: u128 = 1_000_000_000_000_000_000;

fn tokens_milli(milli: u128) -> U256 {
    U256::from(milli) * U256::from(ONE / 1000)
}

fn policy() -> SendPolicy {
    SendPolicy {
        confirm_timeout: Duration::from_secs(30),
        poll_interval: Duration::from_millis(20),
        ..SendPolicy::default()
    }
}

struct Cli {
    rpc: String,
    market: Address,
}

impl Cli {
    fn run(&self, key: &PrivateKeySigner, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_wirepact"))
            .args(args)
            .args(["--rpc-url", &self.rpc, "--market", &self.market.to_string()])
            .env("WIREPACT_PRIVATE_KEY", alloy::hex::encode_prefixed(key.to_bytes()))
            .env_remove("WIREPACT_KEYSTORE")
            .output()
            .expect("run wirepact")
    }

    /// Runs a command that must succeed; returns what it printed.
    fn ok(&self, key: &PrivateKeySigner, args: &[&str]) -> String {
        let out = self.run(key, args);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "wirepact {args:?} failed:\n{text}");
        text
    }

    /// Runs a command the market would refuse: it must exit non-zero and say `why`.
    fn refused(&self, key: &PrivateKeySigner, args: &[&str], why: &str) {
        let out = self.run(key, args);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "wirepact {args:?} should be refused:\n{text}");
        assert!(text.contains(why), "wirepact {args:?} should say {why:?}:\n{text}");
    }
}

async fn warp(rpc: &str, seconds: u64) {
    let p = wirepact_chain::market::connect(rpc).expect("rpc");
    let _: serde_json::Value = p.raw_request("evm_increaseTime".into(), (seconds,)).await.expect("evm_increaseTime");
    let _: serde_json::Value = p.raw_request("evm_mine".into(), ()).await.expect("evm_mine");
}

/// Three of the four oracles sign a report of `epoch` that finds `pid` at 1 Mbit/s.
async fn report_violation(deployer: &AlloyMarket, oracles: &[PrivateKeySigner], epoch: u64, pid: ProviderId) {
    deployer.begin_epoch().await.expect("beginEpoch");
    let obs: Vec<Observation> = vec![Observation {
        provider: pid,
        throughput: Kbps(1_000),
        latency: Millis(40),
        reachable: true,
        measured: true,
    }];
    let rows: Vec<Row<'_>> = oracles.iter().map(|_| Row { stake: 10 * ONE, observations: &obs }).collect();
    let agg = verdicts::aggregate(
        epoch,
        &[pid.0],
        &rows,
        40 * ONE,
        |_| Some(Sla { session_mbps: 20, max_latency_ms: 80 }),
        |_| 0,
        Tolerances { throughput_bps: 1_000, latency_ms: 20 },
    )
    .expect("aggregate");
    let report = agg.report(B256::ZERO);
    let dom = domain(deployer.chain_id(), deployer.address());
    let mut signers: Vec<&PrivateKeySigner> = oracles.iter().take(3).collect();
    signers.sort_by_key(|k| k.address());
    let signatures: Vec<Bytes> =
        signers.iter().map(|k| Bytes::from(sign_report(k, &dom, &report).expect("sign").to_vec())).collect();
    deployer
        .submit_report(&ReportSubmission { report, seed_reveal: B256::ZERO, signatures })
        .await
        .expect("the report is accepted");
}

/// Polls `found` every 100 ms, at most `tries` times.
async fn poll<T>(tries: u32, mut found: impl FnMut() -> Option<T>) -> Option<T> {
    for _ in 0..tries {
        if let Some(v) = found() {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// A fresh devnet market, deployed by dev key 0 with the devnet parameters.
async fn devnet_market() -> (Devnet, AlloyMarket) {
    let devnet = Devnet::start().expect("anvil (run `make tools` first)");
    let deployer = AlloyMarket::deploy(
        &devnet.endpoint(),
        devnet.signer(0).expect("key"),
        None,
        wirepact_chain::devnet_params(),
        policy(),
    )
    .await
    .expect("deploy");
    (devnet, deployer)
}

/// A devnet market (deployed by dev key 0), the provider's key (dev key 1, 1,000 tokens in its
/// wallet) and four registered oracles (dev keys 3-6, 10 tokens staked each).
struct Setup {
    devnet: Devnet,
    deployer: AlloyMarket,
    cli: Cli,
    key: PrivateKeySigner,
    prov: AlloyMarket,
    oracles: Vec<PrivateKeySigner>,
}

async fn setup() -> Setup {
    let (devnet, deployer) = devnet_market().await;
    let cli = Cli { rpc: devnet.endpoint(), market: deployer.address() };
    let key = devnet.signer(1).expect("key");
    let prov = deployer.with_signer(key.clone(), policy());
    deployer.mint_test_tokens(prov.account(), tokens_milli(1_000_000)).await.expect("mint");
    let oracles: Vec<PrivateKeySigner> = (3..7).map(|i| devnet.signer(i).expect("key")).collect();
    for k in &oracles {
        let o = deployer.with_signer(k.clone(), policy());
        deployer.mint_test_tokens(o.account(), tokens_milli(10_000)).await.expect("mint");
        o.register_oracle("https://o.example", tokens_milli(10_000)).await.expect("oracle");
    }
    Setup { devnet, deployer, cli, key, prov, oracles }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_and_an_oracle_live_through_jail_unstake_leave_and_withdraw_to_the_wei() {
    let Setup { devnet, deployer, cli, key, prov, oracles } = setup().await;
    // 40 Mbit/s: the minimum stake is 40 tokens; it stakes 42.
    let terms = IWirepactMarket::ProviderTerms {
        capacityMbps: 40,
        sessionMbps: 20,
        maxLatencyMs: 80,
        basePricePerGiB: alloy::primitives::Uint::from(ONE / 10),
    };
    let pid = prov
        .register_provider(terms, B256::repeat_byte(1), "127.0.0.1:1", "lo", tokens_milli(42_000))
        .await
        .expect("register");

    // Two violating epochs (2 of 4 slash on the devnet): slashed 10 % (4.2 of 42), jailed.
    // `wirepact status` says how close the slash is, then that it is jailed, in words.
    let who = prov.account().to_string();
    let status = |json: bool| {
        let mut a = vec!["status", "--account", who.as_str()];
        if json {
            a.push("--json");
        }
        cli.ok(&key, &a)
    };
    let e0 = deployer.current_epoch().await.expect("epoch");
    for e in [e0 + 1, e0 + 2] {
        warp(&cli.rpc, 3_600).await;
        assert_eq!(deployer.current_epoch().await.expect("epoch"), e);
        report_violation(&deployer, &oracles, e, pid).await;
        if e == e0 + 1 {
            let s = status(false);
            assert!(s.contains("provider 1      active"), "{s}");
            assert!(s.contains("violations: 1 in the last 8 epochs (2 slash)"), "{s}");
            assert!(s.contains("stake 42 tokens (minimum 40 tokens)"), "{s}");
        }
    }
    let p = prov.provider(pid).await.expect("provider");
    assert_eq!(p.status, provider_status::JAILED);
    assert_eq!(U256::from(p.stake), tokens_milli(37_800));
    let until = u64::from(p.jailedUntilEpoch);
    let s = status(false);
    assert!(s.contains(&format!("jailed until epoch {until} (in ")), "{s}");
    let j: serde_json::Value = serde_json::from_str(status(true).trim()).expect("json");
    assert_eq!(j["provider"]["status"], "jailed");
    assert_eq!(j["provider"]["stake"], "37.8");
    assert_eq!(j["provider"]["jailed_until_epoch"], until);

    // Unjail: refused while jailed, then for the missing stake, which the message names.
    cli.refused(&key, &["provider", "unjail"], &format!("jailed until epoch {until} (now {})", e0 + 2));
    warp(&cli.rpc, 3_600 * (until - (e0 + 2))).await;
    cli.refused(
        &key,
        &["provider", "unjail"],
        "unjail needs a stake of at least 40 tokens (you have 37.8 tokens): `wirepact provider stake 2.2` first",
    );
    assert_eq!(prov.provider(pid).await.expect("p").status, provider_status::JAILED, "nothing changed");
    let wallet = prov.token_balance(prov.account()).await.expect("wallet");
    cli.ok(&key, &["provider", "stake", "2.2"]);
    assert_eq!(U256::from(prov.provider(pid).await.expect("p").stake), tokens_milli(40_000));
    assert_eq!(prov.token_balance(prov.account()).await.expect("wallet"), wallet - tokens_milli(2_200));
    cli.ok(&key, &["provider", "unjail"]);
    assert_eq!(prov.provider(pid).await.expect("p").status, provider_status::ACTIVE);
    cli.refused(&key, &["provider", "unjail"], "is not jailed (it is active)");

    // Unstake: under the minimum is refused with the most it may unstake.
    cli.ok(&key, &["provider", "stake", "25"]);
    cli.refused(&key, &["provider", "unstake", "30"], "unstake at most 25 tokens");
    let out = cli.ok(&key, &["provider", "unstake", "25"]);
    assert!(out.contains("withdrawable in 2 h 00 min"), "{out}");
    let p = prov.provider(pid).await.expect("p");
    assert_eq!((U256::from(p.stake), U256::from(p.unbonding)), (tokens_milli(40_000), tokens_milli(25_000)));
    cli.refused(&key, &["provider", "withdraw-unbonded"], "25 tokens are still unbonding: withdrawable in");
    warp(&cli.rpc, 7_200).await;
    cli.ok(&key, &["provider", "withdraw-unbonded"]);
    assert_eq!(prov.balance_of(prov.account()).await.expect("balance"), tokens_milli(25_000));
    cli.refused(&key, &["provider", "withdraw-unbonded"], "has nothing unbonding");

    // Pause and resume.
    cli.ok(&key, &["provider", "pause"]);
    assert!(prov.provider(pid).await.expect("p").paused);
    cli.ok(&key, &["provider", "resume"]);
    assert!(!prov.provider(pid).await.expect("p").paused);

    // Leave with a session open is refused; closed, it leaves and its stake unbonds.
    let client = deployer.with_signer(devnet.signer(2).expect("key"), policy());
    deployer.mint_test_tokens(client.account(), tokens_milli(10_000)).await.expect("mint");
    client.deposit(tokens_milli(10_000)).await.expect("deposit");
    let opened = client
        .open_session(pid, tokens_milli(1_000), U256::MAX, PrivateKeySigner::random().address())
        .await
        .expect("open");
    // The client's status shows the deposit locked in the open session.
    let ckey = devnet.signer(2).expect("key");
    let caccount = client.account().to_string();
    let s = cli.ok(&ckey, &["status", "--account", &caccount]);
    assert!(s.contains("in sessions     1 tokens locked in 1 open session(s)"), "{s}");
    assert!(s.contains("market balance  9 tokens"), "{s}");
    cli.refused(&key, &["provider", "leave"], "still has 20 Mbit/s of sessions open");
    prov.close(&opened.terms).await.expect("close");
    cli.ok(&key, &["provider", "leave"]);
    let p = prov.provider(pid).await.expect("p");
    assert_eq!(p.status, provider_status::LEFT);
    assert_eq!((U256::from(p.stake), U256::from(p.unbonding)), (U256::ZERO, tokens_milli(40_000)));

    // Withdraw: part, the rest, then nothing is left.
    let wallet = prov.token_balance(prov.account()).await.expect("wallet");
    cli.ok(&key, &["withdraw", "5"]);
    cli.refused(&key, &["withdraw", "21"], "is 20 tokens; it cannot withdraw 21 tokens");
    cli.ok(&key, &["withdraw"]);
    assert_eq!(prov.token_balance(prov.account()).await.expect("wallet"), wallet + tokens_milli(25_000));
    assert_eq!(prov.balance_of(prov.account()).await.expect("balance"), U256::ZERO);
    cli.refused(&key, &["withdraw"], "is empty");

    // An oracle leaves and withdraws its stake once it has unbonded.
    let okey = &oracles[3];
    let o = deployer.with_signer(okey.clone(), policy());
    let before = o.token_balance(o.account()).await.expect("wallet");
    let rewards = o.balance_of(o.account()).await.expect("balance");
    cli.refused(okey, &["oracle", "withdraw"], "has no oracle stake unbonding");
    cli.ok(okey, &["oracle", "leave"]);
    assert_eq!(o.oracle(o.account()).await.expect("oracle").status, oracle_status::LEAVING);
    cli.refused(okey, &["oracle", "withdraw"], "is still unbonding");
    warp(&cli.rpc, 7_200 + 3 * 3_600).await;
    cli.ok(okey, &["oracle", "withdraw"]);
    cli.ok(okey, &["withdraw"]);
    assert_eq!(o.token_balance(o.account()).await.expect("wallet"), before + rewards + tokens_milli(10_000));
}

fn cast() -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../contracts/node_modules/@foundry-rs/cast-linux-amd64/bin/cast");
    assert!(p.is_file(), "cast is not installed at {} (run `make tools`)", p.display());
    p
}

fn wirepact(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wirepact"));
    c.args(args).env_remove("WIREPACT_PRIVATE_KEY").env_remove("WIREPACT_PASSWORD");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run wirepact")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `wirepact wallet new` writes a keystore only its password opens, readable by its owner
/// alone, that `cast` reads to the same address; it never overwrites a file; `import` keeps a
/// key's address.
#[test]
fn a_new_keystore_opens_with_its_password_only_and_cast_reads_it() {
    let dir = std::env::temp_dir().join(format!("wirepact-wallet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let pw = dir.join("pw");
    std::fs::write(&pw, "correct horse battery\n").expect("pw");
    let ks = dir.join("me.json");
    let (ks_s, pw_s) = (ks.to_str().expect("path"), pw.to_str().expect("path"));
    let out = wirepact(&["wallet", "new", ks_s, "--password-file", pw_s], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let address = text(&out).lines().find_map(|l| l.strip_prefix("address ")).expect("an address line").to_owned();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&ks).expect("keystore").permissions().mode() & 0o777, 0o600);
    }
    let again = wirepact(&["wallet", "new", ks_s, "--password-file", pw_s], &[]);
    assert!(!again.status.success() && text(&again).contains("exists"), "{}", text(&again));

    let shown = wirepact(&["wallet", "address", ks_s, "--password-file", pw_s], &[]);
    assert_eq!(String::from_utf8_lossy(&shown.stdout).trim(), address);
    let bad = dir.join("bad");
    std::fs::write(&bad, "wrong\n").expect("pw");
    let refused = wirepact(&["wallet", "address", ks_s, "--password-file", bad.to_str().expect("path")], &[]);
    assert!(!refused.status.success() && text(&refused).contains("wrong password"), "{}", text(&refused));

    let by_cast = Command::new(cast())
        .args(["wallet", "address", "--keystore", ks_s, "--password-file", pw_s])
        .output()
        .expect("run cast");
    assert!(by_cast.status.success(), "{}", text(&by_cast));
    assert_eq!(String::from_utf8_lossy(&by_cast.stdout).trim().to_lowercase(), address.to_lowercase());

    // Import: the key from the environment, never the command line.
    let key = PrivateKeySigner::random();
    let imported = dir.join("imported.json");
    let hex = alloy::hex::encode_prefixed(key.to_bytes());
    let out = wirepact(
        &["wallet", "import", imported.to_str().expect("path"), "--password-file", pw_s],
        &[("WIREPACT_PRIVATE_KEY", &hex)],
    );
    assert!(out.status.success(), "{}", text(&out));
    let shown = wirepact(&["wallet", "address", imported.to_str().expect("path"), "--password-file", pw_s], &[]);
    assert_eq!(String::from_utf8_lossy(&shown.stdout).trim(), key.address().to_string());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `wirepact wallet balance` shows gas money and tokens, in tokens, and says when there is no
/// gas money.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wallet_balance_shows_gas_money_and_tokens() {
    let (devnet, deployer) = devnet_market().await;
    let who = PrivateKeySigner::random().address();
    deployer.mint_test_tokens(who, tokens_milli(12_500)).await.expect("mint");
    let market = deployer.address().to_string();
    let out =
        wirepact(&["wallet", "balance", &who.to_string(), "--rpc-url", &devnet.endpoint(), "--market", &market], &[]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("wallet       12.5 tokens"), "{t}");
    assert!(t.contains("market       0 tokens"), "{t}");
    assert!(t.contains("no gas money"), "{t}");
}

/// A `wirepact node` registering its provider with `key` on the setup's market (40 Mbit/s,
/// 20 per session, 42 tokens staked: the minimum is 40), with `extra` config lines; its log
/// goes to `node.log` in its directory.
struct Node {
    dir: std::path::PathBuf,
    ready: std::path::PathBuf,
    log: std::path::PathBuf,
    child: std::process::Child,
}

fn spawn_node(cli: &Cli, key: &PrivateKeySigner, name: &str, extra: &str) -> Node {
    let dir = std::env::temp_dir().join(format!("wirepact-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("node.toml"),
        format!(
            "rpc_url = \"{}\"\nmarket = \"{}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\ncapacity_mbps = 40\n\
             session_mbps = 20\nmax_latency_ms = 80\nprice_per_gib = \"0.1\"\nstake = \"42\"\n{extra}",
            cli.rpc,
            cli.market,
            dir.display()
        ),
    )
    .expect("cfg");
    let ready = dir.join("ready.json");
    let log = dir.join("node.log");
    let child = Command::new(env!("CARGO_BIN_EXE_wirepact"))
        .args(["node", "--exit-with-stdin", "--config"])
        .arg(dir.join("node.toml"))
        .arg("--ready-file")
        .arg(&ready)
        .env("WIREPACT_PRIVATE_KEY", alloy::hex::encode_prefixed(key.to_bytes()))
        .env("WIREPACT_LOG", "info")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("spawn node");
    Node { dir, ready, log, child }
}

/// The node says what happens to its provider (issue 22: operators were blind): each violation
/// with the oracles' figures and how close the slash is, the slash and the jail; with
/// `auto_unjail` it says what stake is missing when the jail is over, and unjails itself once
/// the stake is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_logs_violations_and_its_slash_and_unjails_itself_when_allowed() {
    let Setup { devnet: _devnet, deployer, cli, key, prov, oracles } = setup().await;
    // The node registers its provider (42 tokens staked, 40 the minimum).
    let Node { dir, ready, log, child: mut node } = spawn_node(&cli, &key, "standing", "auto_unjail = true\n");
    let read_log = || -> String {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.chars().filter(|c| !c.is_control() || *c == '\n').collect()
    };
    // Waits by count (up to 300 polls 100 ms apart), never by reading a clock.
    let wait_log = |what: &str| {
        let what = what.to_owned();
        async move {
            poll(300, || Some(read_log()).filter(|l| l.contains(&what)))
                .await
                .unwrap_or_else(|| panic!("the node never said {what:?}; its log:\n{}", read_log()))
        }
    };
    poll(600, || ready.exists().then_some(())).await.unwrap_or_else(|| panic!("node not ready: {}", read_log()));
    let pid = prov.provider_id_of(prov.account()).await.expect("id").expect("registered");

    let e0 = deployer.current_epoch().await.expect("epoch");
    warp(&cli.rpc, 3_600).await;
    report_violation(&deployer, &oracles, e0 + 1, pid).await;
    let said = wait_log("recorded a violation").await;
    assert!(said.contains("measured_mbps=1") && said.contains("promised_mbps=20"), "{said}");
    assert!(said.contains("1 in the last 8 epochs, a slash at 2"), "{said}");
    warp(&cli.rpc, 3_600).await;
    report_violation(&deployer, &oracles, e0 + 2, pid).await;
    let said = wait_log("SLASHED").await;
    assert!(said.contains("slashed=4.2 tokens") && said.contains("stake_left=37.8 tokens"), "{said}");

    // The jail ends; the stake is short: it says what to stake, and does not unjail.
    let until = u64::from(prov.provider(pid).await.expect("p").jailedUntilEpoch);
    warp(&cli.rpc, 3_600 * (until - (e0 + 2))).await;
    wait_log("`wirepact provider stake 2.2`, then the node unjails").await;
    assert_eq!(prov.provider(pid).await.expect("p").status, provider_status::JAILED);
    cli.ok(&key, &["provider", "stake", "2.2"]);
    wait_log("unjailed (auto_unjail)").await;
    assert_eq!(prov.provider(pid).await.expect("p").status, provider_status::ACTIVE);

    drop(node.stdin.take());
    assert!(node.wait().expect("wait").success(), "the node stops cleanly");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Headless Chromium, if this machine has it (`make test` installs Debian's package).
fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| std::path::Path::new(p).exists())
}

/// The operator's dashboard (issue 22: operators could not tell a slash was coming). A node
/// with `admin_listen` serves its status, its metrics and a page; after the oracles record a
/// violation, the page rendered in headless Chromium shows the chain's numbers: the stake, the
/// violation with what was measured against the promise, and the slash risk. The screenshot
/// is kept as `target/dashboard.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_chains_numbers_and_the_slash_coming() {
    let browser = chromium().unwrap_or_else(|| {
        panic!("this test renders the dashboard in Chromium: `apt-get install chromium` (make test does it)")
    });
    let Setup { devnet: _devnet, deployer, cli, key, prov, oracles } = setup().await;
    let admin = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let Node { dir, ready, log, child: mut node } =
        spawn_node(&cli, &key, "dashboard", &format!("admin_listen = \"{admin}\"\n"));
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    poll(600, || ready.exists().then_some(())).await.unwrap_or_else(|| panic!("node not ready: {}", read_log()));
    let pid = prov.provider_id_of(prov.account()).await.expect("id").expect("registered");
    let e0 = deployer.current_epoch().await.expect("epoch");
    warp(&cli.rpc, 3_600).await;
    report_violation(&deployer, &oracles, e0 + 1, pid).await;

    let http = reqwest::Client::new();
    let base = format!("http://{admin}");
    let mut status = serde_json::Value::Null;
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{base}/api/status")).send().await {
            status = r.json().await.expect("status json");
            if status["violations"]["seen"].as_array().is_some_and(|v| !v.is_empty()) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let p = prov.provider(pid).await.expect("provider");
    let stake = wirepact_proto::format_tokens(U256::from(p.stake));
    assert_eq!(stake, "42");
    assert_eq!(status["money"]["stake"], stake.as_str(), "{status}");
    assert_eq!(status["violations"]["seen"][0]["measured_mbps"], 1.0, "{status}");
    assert_eq!(status["violations"]["seen"][0]["epoch"], e0 + 1, "{status}");
    assert_eq!(status["slash_risk"], "1 violation in the last 8 epochs; 2 slash", "{status}");
    assert_eq!(status["audits"]["failed"], 1, "{status}");

    // The metrics, scraped and parsed.
    let text = http.get(format!("{base}/metrics")).send().await.expect("scrape").text().await.expect("text");
    let metric = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    assert!((metric("wirepact_node_violations_recent ") - 1.0).abs() < f64::EPSILON);
    assert!((metric("wirepact_node_violations_to_slash ") - 2.0).abs() < f64::EPSILON);
    assert!((metric("wirepact_node_tokens{kind=\"stake\"} ") - 42.0).abs() < 1e-9);
    assert!((metric("wirepact_node_jailed ") - 0.0).abs() < f64::EPSILON);

    // The page, rendered by a real browser: its script fetches the status and fills it in.
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard.png");
    let profile = dir.join("chromium-profile");
    let chrome = |extra: &[&str]| {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=4000",
                "--window-size=1100,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(format!("{base}/"))
            .output()
            .expect("run chromium")
    };
    let dom = String::from_utf8_lossy(&chrome(&["--dump-dom"]).stdout).into_owned();
    let cell = |id: &str| -> String {
        let start = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in:\n{dom}"));
        let open = dom[start..].find('>').expect(">") + start + 1;
        let close = dom[open..].find('<').expect("<") + open;
        dom[open..close].to_string()
    };
    assert_eq!(cell("stake"), format!("{stake} tokens"), "the page's stake is the chain's");
    assert_eq!(cell("provider"), format!("#{}", pid.0));
    assert_eq!(cell("risk"), "slash risk: 1 violation in the last 8 epochs; 2 slash");
    assert!(dom.contains("<td>1.00</td><td>20</td>"), "the violation row shows measured vs promised:\n{dom}");
    assert!(dom.contains("class=\"risk bad\""), "one violation from a 2-violation slash is shown as danger:\n{dom}");
    let out = chrome(&[&format!("--screenshot={}", shot.display())]);
    assert!(shot.exists(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));

    drop(node.stdin.take());
    assert!(node.wait().expect("wait").success(), "the node stops cleanly");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A newcomer on a devnet gets test tokens from the CLI (issue 22: `devnet --keep` named no
/// way to get them): exactly what was asked, to the wei.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devnet_faucet_mints_exactly_what_was_asked() {
    let Setup { devnet: _devnet, deployer, cli, key, .. } = setup().await;
    let who = PrivateKeySigner::random().address();
    let said = cli.ok(&key, &["wallet", "faucet", &who.to_string(), "12.5"]);
    assert!(said.contains("minted 12.5 tokens"), "{said}");
    assert_eq!(deployer.token_balance(who).await.expect("balance"), tokens_milli(12_500));
}
