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
use wirepact_proto::{format_tokens, parse_tokens, ProviderId};

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

/// Who is who on the devnet: providers by id, and the client and oracles by address.
struct Names {
    accounts: BTreeMap<Address, String>,
}

impl Names {
    fn provider(id: u32) -> &'static str {
        PROVIDERS.get((id as usize).wrapping_sub(1)).map_or("?", |p| p.0)
    }

    fn account(&self, a: Address) -> String {
        self.accounts.get(&a).cloned().unwrap_or_else(|| format!("{:.10}", a.to_string()))
    }

    fn is_oracle(&self, a: Address) -> bool {
        self.accounts.get(&a).is_some_and(|n| n != "client")
    }
}

/// A line of the story: `highlight` for slashes and bonuses (they must not scroll away).
struct Line {
    text: String,
    highlight: bool,
}

/// The events worth a line. Probe sessions (opened by oracles) are not: they are counted into
/// `probes` (by oracle) and told as one line per epoch.
fn describe(
    e: &WirepactMarket::WirepactMarketEvents,
    names: &Names,
    probes: &mut BTreeMap<String, u32>,
) -> Option<Line> {
    use WirepactMarket::WirepactMarketEvents as E;
    let name = Names::provider;
    let plain = |text: String| Some(Line { text, highlight: false });
    match e {
        E::SessionOpened(o) if names.is_oracle(o.client) => {
            *probes.entry(names.account(o.client)).or_default() += 1;
            None
        }
        E::SessionOpened(o) => plain(format!(
            "{} opened a session with {} ({} tokens at {} per GiB)",
            names.account(o.client),
            name(o.providerId),
            format_tokens(U256::from(o.terms.deposit)),
            format_tokens(U256::from(o.terms.pricePerGiB))
        )),
        E::ReportAccepted(r) => plain(format!(
            "epoch {} reported by {}: {} provider(s) judged available, {} violator(s)",
            r.epoch,
            names.account(r.submitter),
            r.available,
            r.violators
        )),
        E::ProviderViolated(v) => plain(format!(
            "epoch {}: {} violated its SLA{}",
            v.epoch,
            name(v.providerId),
            if v.reachable {
                format!(
                    " (the oracles measured {:.1} Mbit/s, {} ms)",
                    f64::from(v.throughputKbps) / 1000.0,
                    v.latencyMs
                )
            } else {
                " (unreachable)".to_string()
            }
        )),
        E::ProviderSlashed(s) => Some(Line {
            text: format!(
                "{} SLASHED: {} tokens of its stake ({} tokens to the reporting oracles), jailed until epoch {}",
                name(s.providerId),
                format_tokens(s.amount),
                format_tokens(s.toOracles),
                s.jailedUntilEpoch
            ),
            highlight: true,
        }),
        E::BonusClaimed(b) => Some(Line {
            text: format!(
                "{} earned the reliability BONUS for period {}: {} tokens",
                name(b.providerId),
                b.period,
                format_tokens(b.amount)
            ),
            highlight: true,
        }),
        E::OracleSlashed(o) => Some(Line {
            text: format!(
                "{} SLASHED for equivocation: {}",
                names.account(o.oracle),
                wirepact_proto::token_text(o.amount)
            ),
            highlight: true,
        }),
        _ => None,
    }
}

/// The probe sessions counted since the last call, as one line (None if there were none).
fn probe_line(epoch: u64, probes: &mut BTreeMap<String, u32>) -> Option<String> {
    if probes.is_empty() {
        return None;
    }
    let total: u32 = probes.values().sum();
    let by: Vec<String> = probes.iter().map(|(k, v)| format!("{k} {v}")).collect();
    probes.clear();
    Some(format!("epoch {epoch}: the oracles opened {total} probe sessions ({})", by.join(", ")))
}

/// Each provider's figures at the start of an epoch (for the report's plots).
#[derive(Debug, Clone, Serialize)]
struct EpochSample {
    epoch: u64,
    /// By provider, in `PROVIDERS` order.
    stake: Vec<String>,
    /// Earned so far (collected into the market balance, plus claimed and not collected).
    earned: Vec<String>,
    violations: Vec<u32>,
}

async fn sample(m: &AlloyMarket, epoch: u64) -> Result<EpochSample> {
    let mut s = EpochSample { epoch, stake: Vec::new(), earned: Vec::new(), violations: Vec::new() };
    for i in 1..=PROVIDERS.len() {
        let p = m.provider(ProviderId(u32::try_from(i)?)).await?;
        s.stake.push(format_tokens(U256::from(p.stake)));
        s.earned.push(format_tokens(m.balance_of(p.owner).await? + p.earned));
        s.violations.push(p.violationCount);
    }
    Ok(s)
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
    /// Paid by sessions (gross of the protocol fee).
    earned: String,
    /// The reliability bonus.
    bonus: String,
    /// `earned` + `bonus`.
    earned_total: String,
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
    stake_start: String,
    stake: String,
    /// What it was paid for signing accepted reports (`OracleRewarded`; shares of slashes not
    /// included).
    report_rewards: String,
    /// Accepted reports it submitted.
    reports_submitted: u64,
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
    /// The slashes and bonuses, as the live view told them.
    story: Vec<String>,
    /// Each provider's stake, earnings and violations at the start of every epoch.
    timeline: Vec<EpochSample>,
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
    // The story starts after the deployment: registrations, the client's sessions, reports.
    let story_from = deployer.rpc().get_block_number().await? + 1;
    eprintln!("devnet: anvil at {rpc}, market {market}, token {}, work dir {}", deployer.token(), dir.display());
    for i in 1..=PROVIDERS.len() {
        deployer.mint_test_tokens(key(i)?.address(), tokens(1_000)).await?;
    }
    let client_addr = key(CLIENT_ACCOUNT)?.address();
    deployer.mint_test_tokens(client_addr, tokens(100)).await?;
    let mut names = Names { accounts: BTreeMap::from([(client_addr, "client".to_string())]) };
    for (i, (name, _)) in ORACLES.iter().enumerate() {
        names.accounts.insert(key(FIRST_ORACLE_ACCOUNT + i)?.address(), (*name).to_string());
    }
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
        eprintln!(
            "devnet: provider {name} (#{}) serves tunnels on {}",
            info["provider_id"],
            info["listen"].as_str().unwrap_or("?")
        );
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
    eprintln!(
        "devnet: client connected to {} at {} tokens per GiB; proxy {proxy}",
        c["provider_id"].as_u64().and_then(|i| u32::try_from(i).ok()).map_or("?", Names::provider),
        c["price_per_gib"].as_str().unwrap_or("?")
    );

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
        eprintln!(
            "devnet: {name} audits from {}{}",
            info["oracle"].as_str().unwrap_or("?"),
            if *lie { " (lies on purpose: reports the opposite of what it measures)" } else { "" }
        );
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
    let mut story: Vec<String> = Vec::new();
    let mut probes: BTreeMap<String, u32> = BTreeMap::new();
    let mut timeline: Vec<EpochSample> = Vec::new();
    let color = !headless;
    let mut client_log_pos = 0usize;
    let mut next_block = story_from;
    loop {
        let epoch = epoch_now();
        let head = deployer.rpc().get_block_number().await?;
        if head >= next_block {
            for e in deployer.events(next_block, head).await? {
                if let Some(line) = describe(&e, &names, &mut probes) {
                    if line.highlight {
                        story.push(line.text.clone());
                    }
                    let text = match (line.highlight, color) {
                        (true, true) => format!("\x1b[1;33m*** {}\x1b[0m", line.text),
                        (true, false) => format!("*** {}", line.text),
                        (false, _) => line.text,
                    };
                    if headless {
                        eprintln!("  {text}");
                    }
                    feed.push(text);
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
        if epoch != shown {
            // Probe noise folded into one line for the epoch that just ended.
            if let Some(l) = probe_line(epoch.saturating_sub(genesis + 1), &mut probes) {
                if headless {
                    eprintln!("  {l}");
                }
                feed.push(l);
            }
            timeline.push(sample(&deployer, epoch - genesis).await?);
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
                "\nclient: fetched {} MiB through {proxy}, errors {}\n",
                fetched.load(Ordering::Relaxed) >> 20,
                errors.load(Ordering::Relaxed)
            ));
            if !story.is_empty() {
                view.push_str("\nwhat happened:\n");
                for l in &story {
                    view.push_str(&format!("  \x1b[1;33m{l}\x1b[0m\n"));
                }
            }
            view.push_str("\nevents:\n");
            for l in &feed {
                view.push_str(&format!("  {l}\n"));
            }
            eprint!("{view}");
            shown = epoch;
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
        // A funded account for the person trying it (anvil's well-known dev key: devnets only).
        let spare = key(9)?;
        deployer.mint_test_tokens(spare.address(), tokens(1_000)).await?;
        eprintln!(
            "\ndevnet: a funded account for you (anvil's public dev key 9, 10,000 ETH and 1,000 tokens; never use it on a real chain):\n  \
             export WIREPACT_PRIVATE_KEY={} WIREPACT_RPC_URL={rpc} WIREPACT_MARKET={market}\n  \
             wirepact status --account {}\n  \
             more test tokens: wirepact wallet faucet {} 500",
            alloy::hex::encode_prefixed(spare.to_bytes()),
            spare.address(),
            spare.address()
        );
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

    let mut summary = summarize(
        &deployer,
        &args,
        &stakes_start,
        fetched.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        client_addr,
    )
    .await?;
    summary.story = story;
    summary.timeline = timeline;
    print_summary(&summary);
    if let Some(p) = &args.summary {
        std::fs::write(p, serde_json::to_vec_pretty(&summary)?).with_context(|| format!("writing {}", p.display()))?;
        let html = p.with_extension("html");
        std::fs::write(&html, crate::report::html(&serde_json::to_value(&summary)?))
            .with_context(|| format!("writing {}", html.display()))?;
        eprintln!("devnet: summary written to {} and {}", p.display(), html.display());
    }
    drop(devnet);
    // A temp dir of our own goes once everything is settled (with --dir, it stays).
    if args.dir.is_none() && !args.keep {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => eprintln!("devnet: removed the work dir {} (pass --dir to keep configs and logs)", dir.display()),
            Err(e) => eprintln!("devnet: could not remove {}: {e}", dir.display()),
        }
    }
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
    let mut bonus_of: BTreeMap<u32, U256> = BTreeMap::new();
    let mut oracle_start: BTreeMap<Address, U256> = BTreeMap::new();
    let mut rewards: BTreeMap<Address, U256> = BTreeMap::new();
    let mut submitted: BTreeMap<Address, u64> = BTreeMap::new();
    let tok = |v: U256| format_tokens(v);
    for e in &events {
        use WirepactMarket::WirepactMarketEvents as E;
        match e {
            E::ReportAccepted(r) => {
                reports += 1;
                *submitted.entry(r.submitter).or_default() += 1;
            }
            E::OracleRegistered(o) => {
                oracle_start.insert(o.oracle, o.stake);
            }
            E::OracleRewarded(o) => *rewards.entry(o.oracle).or_default() += o.amount,
            E::BonusClaimed(b) => {
                *bonus_of.entry(b.providerId).or_default() += b.amount;
                bonuses.push(BonusSummary {
                    provider: b.providerId,
                    name: PROVIDERS.get((b.providerId as usize).wrapping_sub(1)).map_or("?", |p| p.0).into(),
                    period: b.period,
                    amount: tok(b.amount),
                });
            }
            E::ProviderSlashed(x) => slashes.push(SlashSummary {
                provider: x.providerId,
                name: PROVIDERS.get((x.providerId as usize).wrapping_sub(1)).map_or("?", |p| p.0).into(),
                epoch: x.epoch,
                amount: tok(x.amount),
                to_oracles: tok(x.toOracles),
            }),
            E::SessionOpened(o) => {
                sessions.insert(
                    o.sessionId,
                    SessionSummary {
                        id: o.sessionId,
                        provider: o.providerId,
                        by_client: o.client == client,
                        price_per_gib: tok(U256::from(o.terms.pricePerGiB)),
                        deposit: tok(U256::from(o.terms.deposit)),
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
                    s.paid_to_provider = tok(parse_tokens(&s.paid_to_provider)? + c.amount);
                    let ent = earned.entry(s.provider).or_default();
                    ent.0 += c.amount;
                    ent.1 = ent.1.max(c.cumulativeBytes);
                }
            }
            E::EarningsCollected(c) => fees += c.fee,
            E::SessionSettled(s) => {
                if let Some(x) = sessions.get_mut(&s.sessionId) {
                    x.refund = tok(s.refund);
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
            stake_start: tok(stakes_start.get(i - 1).copied().unwrap_or_default()),
            stake_end: tok(U256::from(p.stake)),
            earned: tok(e),
            bonus: tok(bonus_of.get(&id).copied().unwrap_or_default()),
            earned_total: tok(e + bonus_of.get(&id).copied().unwrap_or_default()),
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
            stake_start: tok(oracle_start.get(&a).copied().unwrap_or_default()),
            stake: tok(U256::from(o.stake)),
            report_rewards: tok(rewards.get(&a).copied().unwrap_or_default()),
            reports_submitted: submitted.get(&a).copied().unwrap_or_default(),
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
        owes += parse_tokens(&o.stake)?;
    }
    for s in &sessions {
        let st = m.session(wirepact_proto::SessionId(*s.0)).await?;
        if st.status != wirepact_chain::bindings::session_status::NONE {
            owes += parse_tokens(&s.1.deposit)? - U256::from(st.paid);
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
        protocol_fees: tok(fees),
        gas: gas_by_kind(m).await?,
        token_total_supply: tok(supply),
        token_accounted: tok(accounted),
        token_conserved: supply == accounted,
        market_holds: tok(holds),
        market_owes: tok(owes),
        books_balanced: holds == owes,
        story: Vec::new(),
        timeline: Vec::new(),
    })
}

fn print_summary(s: &Summary) {
    let amount = |v: &str| parse_tokens(v).unwrap_or_default();
    println!("\n== summary ({} epochs of {} s) ==", s.epochs, s.epoch_seconds);
    if !s.story.is_empty() {
        println!("what happened:");
        for l in &s.story {
            println!("  {l}");
        }
        println!();
    }
    println!(
        "{:<10} {:>3} {:>10} {:>10} {:>16} {:>14} {:>12}",
        "provider", "id", "stake", "slashed", "earned (+bonus)", "bonus", "bytes"
    );
    for p in &s.providers {
        let slashed = amount(&p.stake_start).saturating_sub(amount(&p.stake_end));
        println!(
            "{:<10} {:>3} {:>10} {:>10} {:>16} {:>14} {:>12}",
            p.name,
            p.id,
            p.stake_end,
            format_tokens(slashed),
            p.earned_total,
            p.bonus,
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
            x.deposit,
            x.paid_to_provider,
            x.refund
        );
    }
    println!("(and {probes} oracle probe sessions; all in --summary)");
    println!("\n{} reports accepted", s.reports);
    for x in &s.slashes {
        println!(
            "slashed: {} (#{}) in epoch {}: {} tokens, {} tokens to the reporting oracles",
            x.name, x.provider, x.epoch, x.amount, x.to_oracles
        );
    }
    for b in &s.bonuses {
        println!("bonus: {} (#{}) for period {}: {} tokens", b.name, b.provider, b.period, b.amount);
    }
    println!("\n{:<10} {:>10} {:>10} {:>12} {:>8}", "oracle", "stake", "at start", "rewards", "reports");
    for o in &s.oracles {
        println!(
            "{:<10} {:>10} {:>10} {:>12} {:>8}{}",
            o.name,
            o.stake,
            o.stake_start,
            o.report_rewards,
            o.reports_submitted,
            if o.lies { "  (lied on every probe)" } else { "" }
        );
    }
    if let Some(liar) = s.oracles.iter().find(|o| o.lies) {
        let honest_clean = s.providers.first().is_some_and(|p| p.violations == 0);
        println!(
            "the liar's fate: its readings were outvoted by the median of the honest oracles{}; it kept its stake ({} tokens: lying about a measurement is not provable on chain, only signing twice is) and was paid {} tokens for signing reports",
            if honest_clean { " (the honest provider never recorded a violation)" } else { "" },
            liar.stake,
            liar.report_rewards
        );
    }
    println!(
        "\nclient fetched {} bytes ({} errors); protocol fees {} tokens",
        s.client_bytes_fetched, s.client_fetch_errors, s.protocol_fees
    );
    println!("\n{:<18} {:>6} {:>12} {:>10}", "gas", "txs", "total", "average");
    for (k, g) in &s.gas {
        println!("{k:<18} {:>6} {:>12} {:>10}", g.count, g.total, g.average);
    }
    println!(
        "\nmarket books: holds {} tokens = owes {} tokens: {}",
        s.market_holds,
        s.market_owes,
        if s.books_balanced { "exact, to the wei" } else { "MISMATCH" }
    );
    println!(
        "token conservation: supply {} tokens = wallets + market {} tokens: {}",
        s.token_total_supply,
        s.token_accounted,
        if s.token_conserved { "exact" } else { "MISMATCH" }
    );
}
