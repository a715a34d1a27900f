//! `wirepact devnet`: anvil, the market, providers and a client as real child processes of
//! this binary (the same code paths as `wirepact node` / `wirepact connect`), a local origin
//! and a steady fetch load through the client's SOCKS port, a live view per epoch, and a
//! summary (payments, refunds, gas per transaction kind, token conservation) at the end.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::sol_types::SolCall;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use wirepact_chain::bindings::{session_status, TestToken, WirepactMarket};
use wirepact_chain::{devnet_params, AlloyMarket, Devnet, Market, SendPolicy};
use wirepact_proto::{format_tokens, ProviderId};

#[derive(Args, Debug)]
pub struct DevnetArgs {
    /// Epochs to run before the summary.
    #[arg(long, default_value_t = 6)]
    epochs: u64,
    /// Epoch length, seconds (at least 8: each oracle probes every provider once per epoch).
    #[arg(long, default_value_t = 12)]
    epoch_seconds: u64,
    /// Write the summary as JSON here.
    #[arg(long)]
    summary: Option<PathBuf>,
    /// Keep the market running after the epochs (Ctrl-C then stops it and prints the summary).
    #[arg(long)]
    keep: bool,
    /// Plain line output instead of the live view (the default without a terminal).
    #[arg(long)]
    headless: bool,
    /// Working directory for configs, data and logs (default: a fresh temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Bytes per request of the client's fetch load.
    #[arg(long, default_value_t = 1 << 20)]
    fetch_bytes: u64,
}

/// Anvil dev accounts: 0 deploys, 1..=3 provide, 4 uses, 5..=8 audit.
/// Providers: (name, base price, test-knob flags). All sell 20 Mbit/s per session.
const PROVIDERS: [(&str, &str, &[&str]); 3] = [
    ("honest", "0.10", &[]),
    ("oversold", "0.12", &["--shape-mbps", "8"]),
    ("flaky", "0.15", &["--fail-probability", "0.3"]),
];
const CLIENT_ACCOUNT: usize = 4;
/// Oracles: (name, lies).
const ORACLES: [(&str, bool); 4] = [("oracle-1", false), ("oracle-2", false), ("oracle-3", false), ("liar", true)];
const FIRST_ORACLE_ACCOUNT: usize = 5;
const CLIENT_DEPOSIT: &str = "5";

fn tokens(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Closes its stdin (it shuts down cleanly) and waits up to `t`; kills it after that.
    async fn stop(mut self, t: Duration) -> Result<String> {
        drop(self.child.stdin.take());
        let mut out = String::new();
        let mut stdout = self.child.stdout.take();
        let read = async {
            if let Some(s) = stdout.as_mut() {
                let _ = s.read_to_string(&mut out).await;
            }
            self.child.wait().await
        };
        match tokio::time::timeout(t, read).await {
            Ok(Ok(st)) if st.success() => Ok(out),
            Ok(Ok(st)) => bail!("{} exited with {st}; see {}", self.name, self.log.display()),
            Ok(Err(e)) => bail!("{}: {e}", self.name),
            Err(_) => {
                let _ = self.child.kill().await;
                bail!("{} did not stop within {t:?}; killed (see {})", self.name, self.log.display())
            }
        }
    }
}

fn spawn(exe: &Path, name: &str, args: &[&str], key: B256, dir: &Path) -> Result<Proc> {
    let log = dir.join(format!("{name}.log"));
    let logf = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let child = Command::new(exe)
        .args(args)
        .arg("--exit-with-stdin")
        .env("WIREPACT_PRIVATE_KEY", key.to_string())
        .env("WIREPACT_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(logf)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok(Proc { name: name.into(), child, log })
}

/// Waits for a child's ready file; fails early if the child dies.
async fn wait_ready(p: &mut Proc, file: &Path, t: Duration) -> Result<serde_json::Value> {
    let start = Instant::now();
    while start.elapsed() < t {
        if let Ok(b) = std::fs::read(file) {
            return Ok(serde_json::from_slice(&b)?);
        }
        if let Some(st) = p.child.try_wait()? {
            let tail = std::fs::read_to_string(&p.log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            bail!(
                "{} exited ({st}) before it was ready:\n{}",
                p.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{} not ready after {t:?}; see {}", p.name, p.log.display())
}

/// Byte `i` of every origin body: `i mod 251` (a prime, so shifted or dropped bytes show).
fn pattern(i: usize) -> u8 {
    u8::try_from(i % 251).unwrap_or(0)
}

/// Origin: `GET /N` answers N bytes of [`pattern`].
async fn origin() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let a = l.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut b = [0u8; 512];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                    match s.read(&mut b).await {
                        Ok(n) if n > 0 => head.extend_from_slice(&b[..n]),
                        _ => return,
                    }
                }
                let line = String::from_utf8_lossy(&head);
                let n: u64 =
                    line.split_whitespace().nth(1).and_then(|p| p.trim_start_matches('/').parse().ok()).unwrap_or(0);
                let _ = s.write_all(format!("HTTP/1.0 200 OK\r\nContent-Length: {n}\r\n\r\n").as_bytes()).await;
                let block: Vec<u8> = (0..251 * 256).map(pattern).collect();
                let mut left = n;
                while left > 0 {
                    let k = usize::try_from(left.min(block.len() as u64)).unwrap_or(block.len());
                    if s.write_all(&block[..k]).await.is_err() {
                        return;
                    }
                    left -= k as u64;
                }
                let _ = s.shutdown().await;
            });
        }
    });
    Ok(a)
}

/// One request through the SOCKS5 proxy; returns the body length if it is intact.
async fn fetch_once(proxy: SocketAddr, origin: SocketAddr, n: u64) -> Result<u64> {
    let mut s = TcpStream::connect(proxy).await?;
    let std::net::IpAddr::V4(ip) = origin.ip() else { bail!("v4 origin") };
    s.write_all(&[5, 1, 0]).await?;
    let mut r = [0u8; 2];
    s.read_exact(&mut r).await?;
    let mut req = vec![5, 1, 0, 1];
    req.extend_from_slice(&ip.octets());
    req.extend_from_slice(&origin.port().to_be_bytes());
    s.write_all(&req).await?;
    let mut rep = [0u8; 10];
    s.read_exact(&mut rep).await?;
    if rep[1] != 0 {
        bail!("proxy refused the connection (code {})", rep[1]);
    }
    s.write_all(format!("GET /{n} HTTP/1.0\r\nHost: origin\r\n\r\n").as_bytes()).await?;
    let mut all = Vec::with_capacity(usize::try_from(n).unwrap_or(0) + 128);
    s.read_to_end(&mut all).await?;
    let body_at = all.windows(4).position(|w| w == b"\r\n\r\n").context("no HTTP header")? + 4;
    let body = &all[body_at..];
    if body.len() as u64 != n || body.iter().enumerate().any(|(i, b)| *b != pattern(i)) {
        bail!("body damaged or short ({} of {n} bytes)", body.len());
    }
    Ok(n)
}

/// One line for the events worth watching.
fn describe(e: &WirepactMarket::WirepactMarketEvents) -> Option<String> {
    use WirepactMarket::WirepactMarketEvents as E;
    let name = |id: u32| PROVIDERS.get((id as usize).wrapping_sub(1)).map_or("?", |p| p.0);
    Some(match e {
        E::SessionOpened(o) => format!("session opened with {} by {:.10}", name(o.providerId), o.client.to_string()),
        E::ReportAccepted(r) => {
            format!(
                "epoch {} reported ({} providers judged available, {} violators)",
                r.epoch, r.available, r.violators
            )
        }
        E::ProviderViolated(v) => format!(
            "epoch {}: {} violated its SLA{}",
            v.epoch,
            name(v.providerId),
            if v.reachable {
                format!(" (measured {:.1} Mbit/s, {} ms)", f64::from(v.throughputKbps) / 1000.0, v.latencyMs)
            } else {
                " (unreachable)".to_string()
            }
        ),
        E::ProviderSlashed(s) => format!(
            "{} SLASHED {} tokens, jailed until epoch {}",
            name(s.providerId),
            format_tokens(s.amount),
            s.jailedUntilEpoch
        ),
        E::BonusClaimed(b) => format!("{} claimed a bonus of {}", name(b.providerId), format_tokens(b.amount)),
        _ => return None,
    })
}

#[derive(Debug, Default, Serialize)]
struct GasKind {
    count: u64,
    total: u64,
    average: u64,
}

#[derive(Debug, Serialize)]
struct ProviderSummary {
    id: u32,
    name: String,
    owner: Address,
    price_per_gib: String,
    stake_start: String,
    stake_end: String,
    earned: String,
    bytes_claimed: u64,
    violations: u32,
}

#[derive(Debug, Serialize)]
struct SlashSummary {
    provider: u32,
    name: String,
    epoch: u64,
    amount: String,
    to_oracles: String,
}

#[derive(Debug, Serialize)]
struct BonusSummary {
    provider: u32,
    name: String,
    period: u32,
    amount: String,
}

#[derive(Debug, Serialize)]
struct OracleSummary {
    address: Address,
    name: String,
    lies: bool,
    stake: String,
}

#[derive(Debug, Serialize)]
struct SessionSummary {
    id: B256,
    provider: u32,
    /// The devnet's client (false: an oracle's probe session).
    by_client: bool,
    price_per_gib: String,
    deposit: String,
    bytes_claimed: u64,
    /// What the session paid into the provider's earnings (the protocol fee is taken when the
    /// provider collects them).
    paid_to_provider: String,
    refund: String,
    settled: bool,
}

#[derive(Debug, Serialize)]
struct Summary {
    chain_id: u64,
    market: Address,
    token: Address,
    epochs: u64,
    epoch_seconds: u64,
    providers: Vec<ProviderSummary>,
    sessions: Vec<SessionSummary>,
    client_bytes_fetched: u64,
    client_fetch_errors: u64,
    reports: u64,
    slashes: Vec<SlashSummary>,
    bonuses: Vec<BonusSummary>,
    oracles: Vec<OracleSummary>,
    protocol_fees: String,
    gas: BTreeMap<String, GasKind>,
    token_total_supply: String,
    token_accounted: String,
    token_conserved: bool,
    /// The market's own books: the tokens it holds and everything it owes (internal balances,
    /// provider stake and unbonding, oracle stake, open sessions' unpaid deposits, the reward
    /// pool, bonus pots left). Equal to the wei when nothing was lost or created.
    market_holds: String,
    market_owes: String,
    books_balanced: bool,
}

fn selector_name(input: &[u8]) -> &'static str {
    use WirepactMarket as W;
    let Some(sel) = input.get(..4) else { return "deploy" };
    let table: [([u8; 4], &str); 12] = [
        (W::registerProviderCall::SELECTOR, "registerProvider"),
        (W::updateProviderCall::SELECTOR, "updateProvider"),
        (W::depositCall::SELECTOR, "deposit"),
        (W::openSessionCall::SELECTOR, "openSession"),
        (W::claimCall::SELECTOR, "claim"),
        (W::closeCall::SELECTOR, "close"),
        (W::settleCall::SELECTOR, "settle"),
        (W::registerOracleCall::SELECTOR, "registerOracle"),
        (W::beginEpochCall::SELECTOR, "beginEpoch"),
        (W::submitReportCall::SELECTOR, "submitReport"),
        (W::claimBonusCall::SELECTOR, "claimBonus"),
        (TestToken::approveCall::SELECTOR, "token.approve"),
    ];
    table.iter().find(|(s, _)| s.as_slice() == sel).map_or("other", |(_, n)| n)
}

async fn gas_by_kind(m: &AlloyMarket) -> Result<BTreeMap<String, GasKind>> {
    let mut out: BTreeMap<String, GasKind> = BTreeMap::new();
    let latest = m.rpc().get_block_number().await?;
    for b in 1..=latest {
        let Some(block) = m.rpc().get_block_by_number(b.into()).full().await? else { continue };
        for tx in block.transactions.txns() {
            let hash = *tx.inner.tx_hash();
            let input = alloy::consensus::Transaction::input(tx.inner.inner()).clone();
            let Some(r) = m.rpc().get_transaction_receipt(hash).await? else { continue };
            let name = if r.contract_address.is_some() { "deploy" } else { selector_name(&input) };
            if name == "other" {
                continue; // test-token mints: devnet plumbing, not the market
            }
            let g = out.entry(name.to_owned()).or_default();
            g.count += 1;
            g.total += r.gas_used;
            g.average = g.total / g.count;
        }
    }
    Ok(out)
}

fn node_toml(rpc: &str, market: Address, dir: &Path, price: &str) -> String {
    format!(
        r#"rpc_url = "{rpc}"
market = "{market}"
data_dir = "{}"
listen = "127.0.0.1:0"
server_name = "cdn.example.org"
region = "devnet"
capacity_mbps = 200
session_mbps = 20
max_latency_ms = 80
price_per_gib = "{price}"
window_bytes = 1048576
claim_threshold = "0.0001"
claim_interval_secs = 5
egress_allow = ["127.0.0.0/8"]
"#,
        dir.display()
    )
}

fn oracle_toml(rpc: &str, market: Address, dir: &Path) -> String {
    format!(
        r#"rpc_url = "{rpc}"
market = "{market}"
data_dir = "{}"
listen = "127.0.0.1:0"
sink_listen = "127.0.0.1:0"
probe_deposit = "1"
probe_window_pct = 20
fallback_pct = 30
# Devnet epochs are seconds long: no second probe of a suspect provider.
confirm_suspects = false
"#,
        dir.display()
    )
}

fn client_toml(rpc: &str, market: Address, dir: &Path) -> String {
    format!(
        r#"rpc_url = "{rpc}"
market = "{market}"
data_dir = "{}"
listen = "127.0.0.1:0"
deposit = "{CLIENT_DEPOSIT}"
max_price_per_gib = "1"
window_bytes = 1048576
server_name = "cdn.example.org"
"#,
        dir.display()
    )
}

pub async fn run(args: DevnetArgs) -> Result<()> {
    if args.epochs == 0 || args.epoch_seconds < 8 {
        bail!("--epochs must be at least 1 and --epoch-seconds at least 8 (oracles probe every provider each epoch)");
    }
    let headless = args.headless || !std::io::stderr().is_terminal();
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("wirepact-devnet-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let exe = std::env::current_exe().context("locating this binary")?;
    let devnet = Devnet::start().context("starting anvil (install it with `make tools`)")?;
    let rpc = devnet.endpoint();
    let policy = SendPolicy { poll_interval: Duration::from_millis(50), ..SendPolicy::default() };
    let key = |i: usize| devnet.signer(i).context("anvil dev account");
    let mut params = devnet_params();
    params.epochLength = args.epoch_seconds;
    params.claimGrace = args.epoch_seconds;
    // Short reward periods so a demo of a few epochs shows the reliability bonus being paid.
    params.rewardPeriodEpochs = 3;
    let deployer = AlloyMarket::deploy(&rpc, key(0)?, None, params, policy.clone()).await.context("deploying")?;
    let market = deployer.address();
    eprintln!("devnet: anvil at {rpc}, market {market}, token {}, work dir {}", deployer.token(), dir.display());
    for i in 1..=PROVIDERS.len() {
        deployer.mint_test_tokens(key(i)?.address(), tokens(1_000)).await?;
    }
    let client_addr = key(CLIENT_ACCOUNT)?.address();
    deployer.mint_test_tokens(client_addr, tokens(100)).await?;
    for i in 0..ORACLES.len() {
        deployer.mint_test_tokens(key(FIRST_ORACLE_ACCOUNT + i)?.address(), tokens(100)).await?;
    }

    // Providers.
    let mut nodes = Vec::new();
    for (i, (name, price, knobs)) in PROVIDERS.iter().enumerate() {
        let d = dir.join(name);
        std::fs::create_dir_all(&d)?;
        let cfg = d.join("node.toml");
        std::fs::write(&cfg, node_toml(&rpc, market, &d, price))?;
        let ready = d.join("ready.json");
        let _ = std::fs::remove_file(&ready);
        let (cfg_s, ready_s) = (cfg.to_string_lossy().into_owned(), ready.to_string_lossy().into_owned());
        let mut argv = vec!["node", "--config", &cfg_s, "--ready-file", &ready_s];
        argv.extend_from_slice(knobs);
        let mut p = spawn(&exe, name, &argv, key(i + 1)?.to_bytes(), &dir)?;
        let info = wait_ready(&mut p, &ready, Duration::from_secs(60)).await?;
        eprintln!("devnet: provider {name} ready: {info}");
        nodes.push((name.to_string(), price.to_string(), p));
    }
    let stakes_start: Vec<U256> = {
        let mut v = Vec::new();
        for i in 1..=PROVIDERS.len() {
            v.push(U256::from(deployer.provider(ProviderId(u32::try_from(i)?)).await?.stake));
        }
        v
    };

    // Client, before the oracles: their probe sessions raise the providers' congestion
    // prices for a while, and the demo's first pick should see the posted prices.
    let cd = dir.join("client");
    std::fs::create_dir_all(&cd)?;
    let ccfg = cd.join("client.toml");
    std::fs::write(&ccfg, client_toml(&rpc, market, &cd))?;
    let cready = cd.join("ready.json");
    let _ = std::fs::remove_file(&cready);
    let mut client = spawn(
        &exe,
        "client",
        &["connect", "--config", &ccfg.to_string_lossy(), "--ready-file", &cready.to_string_lossy()],
        key(CLIENT_ACCOUNT)?.to_bytes(),
        &dir,
    )?;
    let c = wait_ready(&mut client, &cready, Duration::from_secs(60)).await?;
    let proxy: SocketAddr = c["proxy"].as_str().context("client ready file without proxy")?.parse()?;
    eprintln!("devnet: client connected: {c}");

    // Oracles.
    let mut oracles = Vec::new();
    for (i, (name, lie)) in ORACLES.iter().enumerate() {
        let d = dir.join(name);
        std::fs::create_dir_all(&d)?;
        let cfg = d.join("oracle.toml");
        std::fs::write(&cfg, oracle_toml(&rpc, market, &d))?;
        let ready = d.join("ready.json");
        let _ = std::fs::remove_file(&ready);
        let (cfg_s, ready_s) = (cfg.to_string_lossy().into_owned(), ready.to_string_lossy().into_owned());
        let mut argv = vec!["oracle", "--config", &cfg_s, "--ready-file", &ready_s];
        if *lie {
            argv.push("--lie");
        }
        let mut p = spawn(&exe, name, &argv, key(FIRST_ORACLE_ACCOUNT + i)?.to_bytes(), &dir)?;
        let info = wait_ready(&mut p, &ready, Duration::from_secs(60)).await?;
        eprintln!("devnet: {name} ready{}: {info}", if *lie { " (lies on purpose)" } else { "" });
        oracles.push(p);
    }

    // Load.
    let o = origin().await?;
    let fetched = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let load = {
        let (fetched, errors, n) = (fetched.clone(), errors.clone(), args.fetch_bytes);
        tokio::spawn(async move {
            loop {
                match tokio::time::timeout(Duration::from_secs(20), fetch_once(proxy, o, n)).await {
                    Ok(Ok(k)) => {
                        fetched.fetch_add(k, Ordering::Relaxed);
                    }
                    Ok(Err(e)) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(error = %e, "fetch failed");
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // Live view: one refresh per second (headless: a line per epoch and per notable event).
    let genesis_time = WirepactMarket::new(market, deployer.rpc()).genesis().call().await?.to::<u64>();
    let epoch_now = || {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        now.saturating_sub(genesis_time) / args.epoch_seconds
    };
    let genesis = epoch_now();
    let last = genesis + args.epochs;
    let mut shown = u64::MAX;
    let mut feed: Vec<String> = Vec::new();
    let mut client_log_pos = 0usize;
    let mut next_block = deployer.rpc().get_block_number().await? + 1;
    loop {
        let epoch = epoch_now();
        let head = deployer.rpc().get_block_number().await?;
        if head >= next_block {
            for e in deployer.events(next_block, head).await? {
                if let Some(line) = describe(&e) {
                    if headless {
                        eprintln!("  {line}");
                    }
                    feed.push(line);
                }
            }
            next_block = head + 1;
            let keep = feed.len().saturating_sub(10);
            feed.drain(..keep);
        }
        // The client's own events (failovers, providers left for a broken SLA) come from its log.
        if let Ok(text) = std::fs::read_to_string(&client.log) {
            for line in text.get(client_log_pos..).unwrap_or("").lines() {
                if line.contains("failing over")
                    || line.contains("provider lost")
                    || line.contains("leaving the provider")
                {
                    let what = line.split("failover: ").nth(1).unwrap_or(line).trim().to_owned();
                    let l = format!("client: {what}");
                    if headless {
                        eprintln!("  {l}");
                    }
                    feed.push(l);
                }
            }
            client_log_pos = text.len();
        }
        if headless {
            if epoch != shown {
                shown = epoch;
                eprintln!(
                    "epoch {}/{}: fetched {} MiB, errors {}",
                    epoch - genesis,
                    args.epochs,
                    fetched.load(Ordering::Relaxed) >> 20,
                    errors.load(Ordering::Relaxed)
                );
            }
        } else {
            let done = usize::try_from(epoch - genesis).unwrap_or(0);
            let total = usize::try_from(args.epochs).unwrap_or(1).max(1);
            let filled = (done * 30 / total).min(30);
            let bar = format!("{}{}", "#".repeat(filled), ".".repeat(30 - filled));
            let mut view =
                format!("\x1b[2J\x1b[Hwirepact devnet  [{bar}] epoch {}/{}\n\n", epoch - genesis, args.epochs);
            view.push_str(&format!(
                "{:<9} {:>2} {:>7} {:>8} {:>9} {:>11} {:>4} {:>14}\n",
                "provider", "id", "status", "stake", "committed", "quote/GiB", "viol", "earned"
            ));
            for i in 1..=PROVIDERS.len() {
                let id = ProviderId(u32::try_from(i)?);
                let p = deployer.provider(id).await?;
                let q = deployer.quote(id).await.unwrap_or_default();
                let earned = deployer.balance_of(p.owner).await? + p.earned;
                let status = match p.status {
                    wirepact_chain::bindings::provider_status::ACTIVE => "active",
                    wirepact_chain::bindings::provider_status::JAILED => "JAILED",
                    _ => "gone",
                };
                view.push_str(&format!(
                    "{:<9} {:>2} {:>7} {:>8} {:>4}/{:<4} {:>11} {:>4} {:>14}\n",
                    PROVIDERS[i - 1].0,
                    i,
                    status,
                    format_tokens(U256::from(p.stake)),
                    p.committedMbps,
                    p.capacityMbps,
                    format_tokens(q),
                    p.violationCount,
                    format_tokens(earned)
                ));
            }
            view.push_str(&format!(
                "\nclient: fetched {} MiB through {proxy}, errors {}\n\nevents:\n",
                fetched.load(Ordering::Relaxed) >> 20,
                errors.load(Ordering::Relaxed)
            ));
            for l in &feed {
                view.push_str(&format!("  {l}\n"));
            }
            eprint!("{view}");
        }
        if epoch >= last {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tokio::signal::ctrl_c() => {
                eprintln!("devnet: interrupted; shutting down");
                break;
            }
        }
    }
    load.abort();
    if args.keep {
        eprintln!(
            "\ndevnet: the market keeps running (--keep).\n  \
             proxy (SOCKS5 and HTTP CONNECT): {proxy}\n  \
             try:    curl --socks5-hostname {proxy} http://{o}/1048576 -o /dev/null\n  \
             chain:  {rpc}  market {market}\n  \
             list:   wirepact providers --rpc-url {rpc} --market {market}\n  \
             logs:   {}\n\
             Ctrl-C stops everything, settles the sessions and prints the summary.",
            dir.display()
        );
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("devnet: stopping");
    }

    // Client first: final receipt and close; then providers claim at shutdown.
    let creport = client.stop(Duration::from_secs(60)).await?;
    eprintln!("devnet: client stopped: {}", creport.trim());
    for p in oracles {
        p.stop(Duration::from_secs(30)).await?;
    }
    for (_, _, p) in nodes {
        let r = p.stop(Duration::from_secs(60)).await?;
        eprintln!("devnet: provider stopped: {}", r.trim());
    }

    // Settle every closing session once the grace is over (anyone may).
    let events = deployer.events(0, deployer.rpc().get_block_number().await?).await?;
    let opened: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            WirepactMarket::WirepactMarketEvents::SessionOpened(o) => Some(o.terms.clone()),
            _ => None,
        })
        .collect();
    for t in &opened {
        let terms = <wirepact_proto::SessionTerms as alloy::sol_types::SolValue>::abi_decode(
            &alloy::sol_types::SolValue::abi_encode(t),
        )?;
        let st = deployer.session(terms.session_id()).await?;
        if st.status != session_status::CLOSING {
            continue;
        }
        let ready_at = u64::from(st.closedAt) + args.epoch_seconds;
        loop {
            let now = deployer
                .rpc()
                .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
                .await?
                .map_or(0, |b| b.header.timestamp);
            if now > ready_at {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            // anvil mines on transactions only: nudge the clock forward with an empty block.
            let _: serde_json::Value = deployer.rpc().raw_request("evm_mine".into(), ()).await?;
        }
        deployer.settle(&terms).await.context("settling a session")?;
    }

    let summary = summarize(
        &deployer,
        &args,
        &stakes_start,
        fetched.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        client_addr,
    )
    .await?;
    print_summary(&summary);
    if let Some(p) = &args.summary {
        std::fs::write(p, serde_json::to_vec_pretty(&summary)?).with_context(|| format!("writing {}", p.display()))?;
        eprintln!("devnet: summary written to {}", p.display());
    }
    drop(devnet);
    Ok(())
}

async fn summarize(
    m: &AlloyMarket,
    args: &DevnetArgs,
    stakes_start: &[U256],
    fetched: u64,
    errors: u64,
    client: Address,
) -> Result<Summary> {
    let latest = m.rpc().get_block_number().await?;
    let events = m.events(0, latest).await?;
    let mut sessions: BTreeMap<B256, SessionSummary> = BTreeMap::new();
    let mut fees = U256::ZERO;
    let mut earned: BTreeMap<u32, (U256, u64)> = BTreeMap::new();
    let (mut reports, mut slashes, mut bonuses) = (0u64, Vec::new(), Vec::new());
    for e in &events {
        use WirepactMarket::WirepactMarketEvents as E;
        match e {
            E::ReportAccepted(_) => reports += 1,
            E::BonusClaimed(b) => bonuses.push(BonusSummary {
                provider: b.providerId,
                name: PROVIDERS.get((b.providerId as usize).wrapping_sub(1)).map_or("?", |p| p.0).into(),
                period: b.period,
                amount: b.amount.to_string(),
            }),
            E::ProviderSlashed(x) => slashes.push(SlashSummary {
                provider: x.providerId,
                name: PROVIDERS.get((x.providerId as usize).wrapping_sub(1)).map_or("?", |p| p.0).into(),
                epoch: x.epoch,
                amount: x.amount.to_string(),
                to_oracles: x.toOracles.to_string(),
            }),
            E::SessionOpened(o) => {
                sessions.insert(
                    o.sessionId,
                    SessionSummary {
                        id: o.sessionId,
                        provider: o.providerId,
                        by_client: o.client == client,
                        price_per_gib: U256::from(o.terms.pricePerGiB).to_string(),
                        deposit: U256::from(o.terms.deposit).to_string(),
                        bytes_claimed: 0,
                        paid_to_provider: "0".into(),
                        refund: "0".into(),
                        settled: false,
                    },
                );
            }
            E::SessionClaimed(c) => {
                if let Some(s) = sessions.get_mut(&c.sessionId) {
                    s.bytes_claimed = c.cumulativeBytes;
                    s.paid_to_provider = (s.paid_to_provider.parse::<U256>()? + c.amount).to_string();
                    let ent = earned.entry(s.provider).or_default();
                    ent.0 += c.amount;
                    ent.1 = ent.1.max(c.cumulativeBytes);
                }
            }
            E::EarningsCollected(c) => fees += c.fee,
            E::SessionSettled(s) => {
                if let Some(x) = sessions.get_mut(&s.sessionId) {
                    x.refund = s.refund.to_string();
                    x.settled = true;
                }
            }
            _ => {}
        }
    }
    let mut providers = Vec::new();
    let mut accounts = vec![m.account(), client, m.address()];
    for i in 1..=PROVIDERS.len() {
        let id = u32::try_from(i)?;
        let p = m.provider(ProviderId(id)).await?;
        accounts.push(p.owner);
        let (e, b) = earned.get(&id).copied().unwrap_or_default();
        providers.push(ProviderSummary {
            id,
            name: PROVIDERS[i - 1].0.into(),
            owner: p.owner,
            price_per_gib: PROVIDERS[i - 1].1.into(),
            stake_start: stakes_start.get(i - 1).copied().unwrap_or_default().to_string(),
            stake_end: U256::from(p.stake).to_string(),
            earned: e.to_string(),
            bytes_claimed: b,
            violations: p.violationCount,
        });
    }
    let view = WirepactMarket::new(m.address(), m.rpc());
    let mut oracles = Vec::new();
    for (i, (name, lies)) in ORACLES.iter().enumerate() {
        let Ok(a) = view.oracleAt(U256::from(i)).call().await else { break };
        let o = view.oracle(a).call().await?;
        accounts.push(a);
        oracles.push(OracleSummary {
            address: a,
            name: (*name).into(),
            lies: *lies,
            stake: U256::from(o.stake).to_string(),
        });
    }
    // The market's books: what it holds against everything it owes, to the wei.
    let token = TestToken::new(m.token(), m.rpc());
    let holds = token.balanceOf(m.address()).call().await?;
    let mut owes = view.rewardPool().call().await?;
    for a in &accounts {
        if *a != m.address() {
            owes += m.balance_of(*a).await?;
        }
    }
    for p in 1..=PROVIDERS.len() {
        let v = m.provider(ProviderId(u32::try_from(p)?)).await?;
        owes += U256::from(v.stake) + U256::from(v.unbonding) + v.earned;
    }
    for o in &oracles {
        owes += o.stake.parse::<U256>()?;
    }
    for s in &sessions {
        let st = m.session(wirepact_proto::SessionId(*s.0)).await?;
        if st.status != wirepact_chain::bindings::session_status::NONE {
            owes += s.1.deposit.parse::<U256>()? - U256::from(st.paid);
        }
    }
    let params = m.params().await?;
    let periods = m.current_epoch().await? / u64::from(params.rewardPeriodEpochs.max(1)) + 1;
    for period in 0..periods {
        owes += U256::from(view.bonusPot(u32::try_from(period)?).call().await?.remaining);
    }
    // Every token is in someone's wallet or held by the market: nothing minted or burned on the way.
    let supply = token.totalSupply().call().await?;
    let mut accounted = U256::ZERO;
    for a in &accounts {
        accounted += token.balanceOf(*a).call().await?;
    }
    Ok(Summary {
        chain_id: m.chain_id(),
        market: m.address(),
        token: m.token(),
        epochs: args.epochs,
        epoch_seconds: args.epoch_seconds,
        providers,
        sessions: sessions.into_values().collect(),
        client_bytes_fetched: fetched,
        client_fetch_errors: errors,
        reports,
        slashes,
        bonuses,
        oracles,
        protocol_fees: fees.to_string(),
        gas: gas_by_kind(m).await?,
        token_total_supply: supply.to_string(),
        token_accounted: accounted.to_string(),
        token_conserved: supply == accounted,
        market_holds: holds.to_string(),
        market_owes: owes.to_string(),
        books_balanced: holds == owes,
    })
}

fn print_summary(s: &Summary) {
    let t = |v: &str| v.parse::<U256>().map(format_tokens).unwrap_or_else(|_| v.to_owned());
    println!("\n== summary ({} epochs of {} s) ==", s.epochs, s.epoch_seconds);
    println!("{:<10} {:>3} {:>10} {:>10} {:>14} {:>12}", "provider", "id", "stake", "slashed", "earned", "bytes");
    for p in &s.providers {
        let slashed =
            p.stake_start.parse::<U256>().unwrap_or_default().saturating_sub(p.stake_end.parse().unwrap_or_default());
        println!(
            "{:<10} {:>3} {:>10} {:>10} {:>14} {:>12}",
            p.name,
            p.id,
            t(&p.stake_end),
            format_tokens(slashed),
            t(&p.earned),
            p.bytes_claimed
        );
    }
    println!("\n{:<12} {:>3} {:>8} {:>14} {:>10}", "session", "via", "deposit", "paid", "refund");
    let probes = s.sessions.iter().filter(|x| !x.by_client).count();
    for x in s.sessions.iter().filter(|x| x.by_client) {
        println!(
            "{:<12} {:>3} {:>8} {:>14} {:>10}",
            format!("{:.10}", x.id.to_string()),
            x.provider,
            t(&x.deposit),
            t(&x.paid_to_provider),
            t(&x.refund)
        );
    }
    println!("(and {probes} oracle probe sessions; all in --summary)");
    println!("\n{} reports accepted", s.reports);
    for x in &s.slashes {
        println!(
            "slashed: {} (#{}) in epoch {}: {} tokens, {} to the reporting oracles",
            x.name,
            x.provider,
            x.epoch,
            t(&x.amount),
            t(&x.to_oracles)
        );
    }
    for b in &s.bonuses {
        println!("bonus: {} (#{}) for period {}: {} tokens", b.name, b.provider, b.period, t(&b.amount));
    }
    println!(
        "\nclient fetched {} bytes ({} errors); protocol fees {}",
        s.client_bytes_fetched,
        s.client_fetch_errors,
        t(&s.protocol_fees)
    );
    println!("\n{:<18} {:>6} {:>12} {:>10}", "gas", "txs", "total", "average");
    for (k, g) in &s.gas {
        println!("{k:<18} {:>6} {:>12} {:>10}", g.count, g.total, g.average);
    }
    println!(
        "\nmarket books: holds {} = owes {}: {}",
        t(&s.market_holds),
        t(&s.market_owes),
        if s.books_balanced { "exact, to the wei" } else { "MISMATCH" }
    );
    println!(
        "token conservation: supply {} = wallets + market {}: {}",
        t(&s.token_total_supply),
        t(&s.token_accounted),
        if s.token_conserved { "exact" } else { "MISMATCH" }
    );
}
