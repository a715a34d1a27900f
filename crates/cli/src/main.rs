//! `wirepact`: one binary for providers (`node`), users (`connect`), oracles (`oracle`),
//! operators (`deploy`, `providers`, `status`) and newcomers (`devnet`).

mod control;
mod devnet;
mod lifecycle;
mod report;
mod wallet;

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::de::DeserializeOwned;
use wirepact_chain::{devnet_params, load_keystore, AlloyMarket, Market, PasswordSource, SendPolicy};
use wirepact_client::{candidates, rank, ClientConfig};
use wirepact_node::NodeConfig;
use wirepact_proto::format_tokens;

#[derive(Parser, Debug)]
#[command(
    name = "wirepact",
    version,
    about = "Bandwidth with a contract: a VPN market whose SLAs are enforced on chain"
)]
struct Cli {
    /// Log filter (RUST_LOG syntax), e.g. "info" or "wirepact_node=debug".
    #[arg(long, global = true, env = "WIREPACT_LOG", default_value = "info")]
    log: String,
    /// Log lines as text, or as one JSON object per line (for log collectors).
    #[arg(long, global = true, env = "WIREPACT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

/// The chain and market of a daemon, over its config file's (`--rpc-url`, `--market`, or
/// $WIREPACT_RPC_URL, $WIREPACT_MARKET).
#[derive(Args, Debug, Clone)]
struct ChainOverride {
    /// JSON-RPC endpoint of the chain (overrides the config's `rpc_url`).
    #[arg(long, env = "WIREPACT_RPC_URL")]
    rpc_url: Option<String>,
    /// Address of the market contract (overrides the config's `market`).
    #[arg(long, env = "WIREPACT_MARKET")]
    market: Option<Address>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a provider: register on chain, serve tunnels, claim earnings.
    ///
    /// The test knobs make it under-deliver on purpose (tests, benchmarks, the devnet).
    Node {
        /// TOML config (see examples/node.toml).
        #[arg(long, short)]
        config: PathBuf,
        /// Test knob: all sessions together get at most this rate downstream (Mbit/s).
        #[arg(long)]
        shape_mbps: Option<u32>,
        /// Test knob: extra latency on every chunk to the client (ms).
        #[arg(long)]
        extra_latency_ms: Option<u64>,
        /// Test knob: drop this share of connections before the handshake (0.0-1.0).
        #[arg(long)]
        fail_probability: Option<f64>,
        #[command(flatten)]
        chain: ChainOverride,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Open a paid session and serve a local SOCKS5/HTTP CONNECT proxy through it.
    Connect {
        /// TOML config (see examples/client.toml).
        #[arg(long, short)]
        config: PathBuf,
        /// Use this provider (overrides the config and the ranking).
        #[arg(long)]
        provider: Option<u32>,
        /// Local proxy address (overrides the config).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Only providers promising at least this rate per session, Mbit/s (overrides the config).
        #[arg(long)]
        min_mbps: Option<u32>,
        /// Only providers promising at most this latency, ms (overrides the config).
        #[arg(long)]
        max_latency_ms: Option<u32>,
        /// Refuse providers quoting more than this per GiB, in tokens (overrides the config).
        #[arg(long)]
        max_price: Option<String>,
        /// Only providers with this region tag (overrides the config).
        #[arg(long)]
        region: Option<String>,
        /// Tokens put into each session (overrides the config).
        #[arg(long)]
        deposit: Option<String>,
        /// Full-device mode: route every connection of this machine through the tunnel with a
        /// TUN device (Linux, root; restored at a clean stop). With --tun-netns, only that
        /// network namespace.
        #[arg(long)]
        tun: bool,
        /// With --tun: route only this network namespace (`ip netns add NAME`); this process,
        /// its chain RPC and its tunnels stay outside it.
        #[arg(long, requires = "tun")]
        tun_netns: Option<String>,
        /// With --tun: the TUN device's name.
        #[arg(long, requires = "tun")]
        tun_name: Option<String>,
        /// With --tun: how DNS is answered. "virtual": inside, with placeholder addresses, the
        /// names resolved by the provider; "tunnel": queries go as UDP through the tunnel to
        /// the resolver they were sent to.
        #[arg(long, requires = "tun", value_name = "virtual|tunnel")]
        tun_dns: Option<wirepact_client::TunDns>,
        /// With --tun-dns tunnel: the resolver that queries to a private address (the LAN's
        /// router) go to instead [default: 1.1.1.1].
        #[arg(long, requires = "tun")]
        tun_dns_server: Option<std::net::IpAddr>,
        /// How to reach providers: "tls" (HTTPS-shaped, the default), "veil" (random-looking,
        /// for networks that throttle TLS to unknown hosts; only providers serving it) or
        /// "auto" (TLS, then veil where TLS does not get through).
        #[arg(long, value_name = "tls|veil|auto")]
        transport: Option<wirepact_client::TransportKind>,
        #[command(flatten)]
        chain: ChainOverride,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Run an oracle: stake, audit providers through their tunnels, report by quorum; or, with
    /// a subcommand, leave the oracle set and withdraw its stake.
    Oracle {
        /// TOML config (see examples/oracle.toml); needed to run the oracle.
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        action: Option<OracleCmd>,
        /// Test knob: report the opposite of what was measured.
        #[arg(long)]
        lie: bool,
        #[command(flatten)]
        chain: ChainOverride,
        #[command(flatten)]
        key: KeyArgs,
        #[command(flatten)]
        run: RunArgs,
    },
    /// A provider's stake and standing: stake, unstake, withdraw-unbonded, unjail, pause,
    /// resume, leave.
    Provider {
        #[command(subcommand)]
        action: lifecycle::ProviderAction,
        /// The provider (default: the one the key owns).
        #[arg(long, global = true)]
        provider: Option<u32>,
        #[command(flatten)]
        chain: lifecycle::ChainArgs,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Ask a running client (`wirepact connect` with `control_listen`) how it does, or stop it.
    Client {
        #[command(subcommand)]
        cmd: control::ClientCmd,
        /// The client's control endpoint (its `control_listen`).
        #[arg(long, global = true, env = "WIREPACT_CONTROL", default_value = "127.0.0.1:7980")]
        control: std::net::SocketAddr,
    },
    /// Keys: create or import a keystore v3 file, show its address, see balances.
    Wallet {
        #[command(subcommand)]
        cmd: wallet::WalletCmd,
    },
    /// Send tokens from the market balance (refunds, collected earnings, unbonded stake) to the
    /// wallet: AMOUNT tokens, or all of it.
    Withdraw {
        amount: Option<String>,
        #[command(flatten)]
        chain: lifecycle::ChainArgs,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Deploy the market to any EVM chain (without --token, with a mintable test token: devnets
    /// only).
    Deploy {
        #[arg(long, env = "WIREPACT_RPC_URL", default_value = "http://127.0.0.1:8545")]
        rpc_url: String,
        /// Settlement token (an ERC-20). Without it a test token is deployed (devnets only).
        #[arg(long)]
        token: Option<Address>,
        /// Epoch length in seconds (default: 600, or 3600 with --devnet-params).
        #[arg(long)]
        epoch_seconds: Option<u64>,
        /// Deploy with the devnet parameters (every provider audited every epoch, 2-of-4
        /// violations slash, small stakes) instead of the defaults tuned with `wirepact sim`.
        #[arg(long)]
        devnet_params: bool,
        /// Write the deployment (chain id, market, token) as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// List the market's providers, best first for the given requirements.
    Providers {
        #[arg(long, env = "WIREPACT_RPC_URL", default_value = "http://127.0.0.1:8545")]
        rpc_url: String,
        #[arg(long, env = "WIREPACT_MARKET")]
        market: Address,
        #[arg(long, default_value_t = 0)]
        min_mbps: u32,
        /// Highest acceptable price per GiB, in tokens.
        #[arg(long)]
        max_price: Option<String>,
        #[arg(long)]
        region: Option<String>,
        /// Do not measure the handshake to each candidate (rank by price and record only).
        #[arg(long)]
        no_measure: bool,
        /// TLS server name (SNI) for the measuring handshakes.
        #[arg(long, default_value = "www.example.com")]
        server_name: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Balances and the market's state for an account.
    Status {
        #[arg(long, env = "WIREPACT_RPC_URL", default_value = "http://127.0.0.1:8545")]
        rpc_url: String,
        #[arg(long, env = "WIREPACT_MARKET")]
        market: Address,
        /// The account to show.
        #[arg(long)]
        account: Address,
        /// Machine-readable output (amounts as exact decimal token strings).
        #[arg(long)]
        json: bool,
        /// Look for the account's sessions from this block on (public RPC endpoints may limit
        /// how far back logs are searched).
        #[arg(long, default_value_t = 0)]
        from_block: u64,
    },
    /// The whole market on this machine: anvil, the contracts, providers and a client, live.
    Devnet(devnet::DevnetArgs),
    /// Simulate a market of thousands of providers and oracles on the contract's bytecode.
    ///
    /// Runs SCENARIO (see scenarios/) in an in-process EVM, prints a summary and the headline
    /// lines, and writes the report as JSON and an SVG plot.
    Sim {
        /// Scenario file (TOML).
        scenario: PathBuf,
        /// Where to write the report (JSON) and the plot (the same name with .svg).
        #[arg(long, default_value = "target/sim/report.json")]
        out: PathBuf,
        /// Multiplies every provider group's count (and the demand) in the scenario.
        #[arg(long)]
        scale: Option<f64>,
        /// Overrides the scenario's number of epochs.
        #[arg(long)]
        epochs: Option<u64>,
        /// Overrides how many of the scenario's oracles lie (`oracles.liars`): the sybil
        /// coalition's size, for a sweep.
        #[arg(long)]
        liars: Option<u32>,
        /// Audits every hour of the day alike (drops the scenario's `audit_hour_weights`), to
        /// compare with audits that follow demand.
        #[arg(long)]
        flat_audits: bool,
    },
}

/// Which key signs transactions.
#[derive(Args, Debug, Clone)]
struct KeyArgs {
    /// Keystore v3 file (as `wirepact wallet new` or `cast wallet new` writes).
    #[arg(long, env = "WIREPACT_KEYSTORE", global = true)]
    keystore: Option<PathBuf>,
    /// File whose first line is the keystore password (else $WIREPACT_PASSWORD, else a prompt).
    #[arg(long, global = true)]
    password_file: Option<PathBuf>,
}

/// What an oracle operator does besides running the oracle.
#[derive(Subcommand, Debug, Clone)]
enum OracleCmd {
    /// Leave the oracle set: the stake unbonds (it still signs until its last epoch).
    Leave {
        #[command(flatten)]
        chain: lifecycle::ChainArgs,
    },
    /// Move the stake that finished unbonding to the market balance (then `wirepact withdraw`).
    Withdraw {
        #[command(flatten)]
        chain: lifecycle::ChainArgs,
    },
}

/// How a daemon runs.
#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// Write a JSON line describing the running daemon here once it is ready.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// Stop when standard input closes (how `wirepact devnet` keeps no orphans).
    #[arg(long, hide = true)]
    exit_with_stdin: bool,
    /// Blocks to wait on top of inclusion before a transaction counts.
    #[arg(long, default_value_t = 1)]
    confirmations: u64,
}

impl KeyArgs {
    /// The signer: a keystore, or a raw key in $WIREPACT_PRIVATE_KEY (devnets and tests only).
    fn signer(&self) -> Result<PrivateKeySigner> {
        if let Some(path) = &self.keystore {
            let pw = match &self.password_file {
                Some(f) => PasswordSource::File(f.clone()),
                None if std::env::var_os("WIREPACT_PASSWORD").is_some() => {
                    PasswordSource::Env("WIREPACT_PASSWORD".into())
                }
                None => PasswordSource::Prompt,
            };
            return Ok(load_keystore(path, &pw)?);
        }
        match std::env::var("WIREPACT_PRIVATE_KEY") {
            Ok(k) => k.trim().parse().context("WIREPACT_PRIVATE_KEY is not a hex private key"),
            Err(_) => bail!(
                "no key: pass --keystore FILE (create one with `wirepact wallet new me.json`), or set WIREPACT_PRIVATE_KEY on a devnet"
            ),
        }
    }
}

fn policy(confirmations: u64) -> SendPolicy {
    SendPolicy { confirmations, ..SendPolicy::default() }
}

fn read_config<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a valid config", path.display()))
}

/// What to do next about a failed command, when its error says so.
fn error_kind(e: &anyhow::Error) -> Option<wirepact_proto::ErrorKind> {
    e.chain().find_map(|c| {
        c.downcast_ref::<wirepact_client::ClientError>()
            .map(wirepact_client::ClientError::kind)
            .or_else(|| c.downcast_ref::<wirepact_chain::ChainError>().map(wirepact_chain::ChainError::kind))
    })
}

/// Resolves on Ctrl-C, SIGTERM, or (with `exit_with_stdin`) when stdin closes.
async fn shutdown_signal(exit_with_stdin: bool) {
    let stdin_closed = async {
        if exit_with_stdin {
            let mut buf = [0u8; 64];
            let mut stdin = tokio::io::stdin();
            loop {
                match tokio::io::AsyncReadExt::read(&mut stdin, &mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        } else {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
        () = stdin_closed => {}
    }
}

/// A one-line spinner with elapsed seconds on a terminal (silent otherwise) while `work` runs.
async fn with_spinner<T>(msg: &str, work: impl std::future::Future<Output = T>) -> T {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return work.await;
    }
    let start = std::time::Instant::now();
    let spin = async {
        let frames = ['|', '/', '-', '\\'];
        for i in 0usize.. {
            eprint!("\r{} {msg} ({}s)", frames[i % 4], start.elapsed().as_secs());
            tokio::time::sleep(Duration::from_millis(120)).await;
        }
    };
    let out = tokio::select! {
        out = work => out,
        () = spin => unreachable!("the spinner never ends"),
    };
    eprint!("\r\x1b[2K");
    out
}

/// A sender for the daemon's "ready" value: `announce` sees it, then it is written to `path`.
fn ready_writer<T: serde::Serialize + Send + 'static>(
    path: Option<PathBuf>,
    announce: impl FnOnce(&T) + Send + 'static,
) -> tokio::sync::oneshot::Sender<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        if let Ok(v) = rx.await {
            announce(&v);
            if let Err(e) = write_ready(path.as_ref(), &v) {
                tracing::error!(error = %e, "cannot write the ready file");
            }
        }
    });
    tx
}

fn write_ready(path: Option<&PathBuf>, value: &impl serde::Serialize) -> Result<()> {
    if let Some(p) = path {
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(value)?).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, p).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(ansi).init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(cli.cmd));
    // A daemon stopped another way (its control endpoint, a signal) may still be reading an
    // open stdin (`--exit-with-stdin`): that read must not keep the process alive.
    rt.shutdown_timeout(Duration::from_millis(500));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(k) = error_kind(&e) {
                eprintln!("({k})");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Node { config, shape_mbps, extra_latency_ms, fail_probability, chain, key, run } => {
            let mut cfg: NodeConfig = read_config(&config)?;
            cfg.rpc_url = chain.rpc_url.unwrap_or(cfg.rpc_url);
            cfg.market = chain.market.unwrap_or(cfg.market);
            cfg.test_knobs.shape_mbps = shape_mbps.or(cfg.test_knobs.shape_mbps);
            cfg.test_knobs.extra_latency_ms = extra_latency_ms.unwrap_or(cfg.test_knobs.extra_latency_ms);
            cfg.test_knobs.fail_probability = fail_probability.unwrap_or(cfg.test_knobs.fail_probability);
            let signer = key.signer()?;
            let tx = ready_writer(run.ready_file.clone(), |_| {});
            let report = wirepact_node::run_node(
                cfg,
                signer,
                policy(run.confirmations),
                shutdown_signal(run.exit_with_stdin),
                Some(tx),
            )
            .await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Cmd::Oracle { action: Some(action), key, .. } => {
            let (chain, what) = match &action {
                OracleCmd::Leave { chain } => (chain, lifecycle::OracleAction::Leave),
                OracleCmd::Withdraw { chain } => (chain, lifecycle::OracleAction::Withdraw),
            };
            lifecycle::oracle(chain, key.signer()?, &what).await
        }
        Cmd::Provider { action, provider, chain, key } => {
            lifecycle::provider(&chain, key.signer()?, provider, &action).await
        }
        Cmd::Wallet { cmd } => wallet::run(cmd).await,
        Cmd::Client { cmd, control } => control::run(cmd, control).await,
        Cmd::Withdraw { amount, chain, key } => lifecycle::withdraw(&chain, key.signer()?, amount.as_deref()).await,
        Cmd::Oracle { config, lie, chain, key, run, action: None } => {
            let Some(config) = config else {
                bail!("wirepact oracle needs --config FILE to run (see examples/oracle.toml), or a subcommand: leave, withdraw");
            };
            let mut cfg: wirepact_oracle::OracleConfig = read_config(&config)?;
            cfg.rpc_url = chain.rpc_url.unwrap_or(cfg.rpc_url);
            cfg.market = chain.market.unwrap_or(cfg.market);
            cfg.lie |= lie;
            let signer = key.signer()?;
            let tx = ready_writer(run.ready_file.clone(), |_| {});
            wirepact_oracle::run_oracle(
                cfg,
                signer,
                policy(run.confirmations),
                shutdown_signal(run.exit_with_stdin),
                Some(tx),
            )
            .await?;
            Ok(())
        }
        Cmd::Connect {
            config,
            provider,
            listen,
            min_mbps,
            max_latency_ms,
            max_price,
            region,
            deposit,
            tun,
            tun_netns,
            tun_name,
            tun_dns,
            tun_dns_server,
            transport,
            chain,
            key,
            run,
        } => {
            let mut cfg: ClientConfig = read_config(&config)?;
            cfg.rpc_url = chain.rpc_url.unwrap_or(cfg.rpc_url);
            cfg.market = chain.market.unwrap_or(cfg.market);
            cfg.provider = provider.or(cfg.provider);
            cfg.listen = listen.unwrap_or(cfg.listen);
            cfg.min_mbps = min_mbps.unwrap_or(cfg.min_mbps);
            cfg.max_latency_ms = max_latency_ms.or(cfg.max_latency_ms);
            cfg.max_price_per_gib = max_price.or(cfg.max_price_per_gib);
            cfg.region = region.or(cfg.region);
            cfg.deposit = deposit.unwrap_or(cfg.deposit);
            cfg.tun |= tun;
            cfg.tun_netns = tun_netns.or(cfg.tun_netns);
            cfg.tun_name = tun_name.unwrap_or(cfg.tun_name);
            cfg.tun_dns = tun_dns.unwrap_or(cfg.tun_dns);
            cfg.tun_dns_server = tun_dns_server.or(cfg.tun_dns_server);
            cfg.transport = transport.unwrap_or(cfg.transport);
            let signer = key.signer()?;
            let tx = ready_writer(run.ready_file.clone(), |c: &wirepact_client::Connected| {
                eprintln!(
                    "connected to provider {} at {} tokens per GiB; use e.g. curl --socks5-hostname {} https://example.org/",
                    c.provider_id,
                    c.price_per_gib,
                    c.proxy
                );
            });
            let report = wirepact_client::run_connect(
                cfg,
                signer,
                policy(run.confirmations),
                shutdown_signal(run.exit_with_stdin),
                Some(tx),
            )
            .await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Cmd::Deploy { rpc_url, token, epoch_seconds, devnet_params: devnet, out, key } => {
            let signer = key.signer()?;
            let mut params = if devnet { devnet_params() } else { wirepact_chain::default_params() };
            if let Some(secs) = epoch_seconds {
                if secs == 0 {
                    bail!("--epoch-seconds must be at least 1");
                }
                params.epochLength = secs;
            }
            eprintln!("deploying from {} to {rpc_url} ...", signer.address());
            let m = with_spinner(
                "deploying (waiting for confirmations)",
                AlloyMarket::deploy(&rpc_url, signer, token, params, SendPolicy::default()),
            )
            .await?;
            let dep = serde_json::json!({ "chain_id": m.chain_id(), "market": m.address(), "token": m.token(), "rpc_url": rpc_url });
            if let Some(p) = out {
                std::fs::write(&p, serde_json::to_vec_pretty(&dep)?)
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            println!("{dep}");
            Ok(())
        }
        Cmd::Providers { rpc_url, market, min_mbps, max_price, region, no_measure, server_name, json } => {
            let m = read_only(&rpc_url, market).await?;
            let mut all = candidates(&m).await?;
            let req = wirepact_client::Requirements {
                min_mbps,
                max_latency_ms: None,
                max_price: max_price.as_deref().map(wirepact_proto::parse_tokens).transpose()?,
                region,
                veil: false,
                veil_fallback: false,
            };
            if !no_measure {
                wirepact_client::measure_handshakes(
                    &mut all,
                    &req,
                    &server_name,
                    wirepact_client::MEASURE_DEADLINE,
                    wirepact_client::MEASURE_AT_MOST,
                )
                .await;
            }
            let ranked = rank(&all, &req);
            if json {
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "ranked": ranked, "all": all }))?);
                return Ok(());
            }
            let cheapest = ranked.iter().map(|c| c.quote).min().unwrap_or_default();
            println!(
                "{:>4}  {:<22} {:>6} {:>9} {:>8} {:>10} {:>5} {:>9} {:>7}  {:<8}  region",
                "id", "endpoint", "Mbit/s", "headroom", "SLA ms", "price/GiB", "viol", "hshake ms", "cost", "serves"
            );
            for c in &ranked {
                #[allow(clippy::cast_precision_loss)] // display only
                let (hs, cost) = (
                    c.handshake_us.map_or_else(|| "-".to_owned(), |us| format!("{:.2}", us as f64 / 1000.0)),
                    wirepact_client::cost(c, cheapest) as f64 / 1e6,
                );
                println!(
                    "{:>4}  {:<22} {:>6} {:>9} {:>8} {:>10} {:>5} {:>9} {:>7.3}  {:<8}  {}",
                    c.id,
                    c.endpoint,
                    c.session_mbps,
                    c.headroom_mbps,
                    c.max_latency_ms,
                    format_tokens(c.quote),
                    c.violations,
                    hs,
                    cost,
                    if c.veil.is_some() { "tls+veil" } else { "tls" },
                    c.region
                );
            }
            println!("cost = price/cheapest x (1 + violations) x (1 + handshake/100 ms); lowest first");
            let excluded = all.len() - ranked.len();
            if excluded > 0 {
                println!("({excluded} provider(s) do not meet the requirements; --json shows all)");
            }
            Ok(())
        }
        Cmd::Status { rpc_url, market, account, json, from_block } => {
            lifecycle::status(&rpc_url, market, account, json, from_block).await
        }
        Cmd::Devnet(args) => devnet::run(args).await,
        Cmd::Sim { scenario, out, scale, epochs, liars, flat_audits } => {
            run_sim(&scenario, &out, scale, epochs, liars, flat_audits)
        }
    }
}

fn run_sim(
    path: &std::path::Path,
    out: &std::path::Path,
    scale: Option<f64>,
    epochs: Option<u64>,
    liars: Option<u32>,
    flat_audits: bool,
) -> Result<()> {
    let mut sc = wirepact_sim::Scenario::load(path)?;
    if flat_audits {
        sc.market.audit_hour_weights = None;
    }
    if let Some(n) = liars {
        if n + sc.oracles.offline > sc.oracles.count {
            bail!("--liars {n}: the scenario has {} oracles ({} offline)", sc.oracles.count, sc.oracles.offline);
        }
        sc.oracles.liars = n;
    }
    if let Some(s) = scale {
        if s.is_nan() || s <= 0.0 {
            bail!("--scale must be positive");
        }
        sc.sim.provider_scale *= s;
    }
    if let Some(e) = epochs {
        if e == 0 {
            bail!("--epochs must be at least 1");
        }
        sc.sim.epochs = e;
    }
    let providers: u32 = sc.providers.iter().map(|g| sc.scaled(g.count)).sum();
    eprintln!(
        "simulating {providers} providers and {} oracles for {} epochs ({}) ...",
        sc.oracles.count,
        sc.sim.epochs,
        path.display()
    );
    let report = wirepact_sim::run(&sc)?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(out, serde_json::to_vec_pretty(&report)?).with_context(|| format!("writing {}", out.display()))?;
    let svg = out.with_extension("svg");
    wirepact_sim::plot::write_svg(&report, &svg)?;
    print!("{}", report.text());
    println!("report: {}  plot: {}", out.display(), svg.display());
    for line in report.summary_lines() {
        println!("{line}");
    }
    Ok(())
}

/// A market handle for reading (the signer is a throwaway key; nothing is sent).
async fn read_only(rpc_url: &str, market: Address) -> Result<AlloyMarket> {
    let policy = SendPolicy { confirm_timeout: Duration::from_secs(30), ..SendPolicy::default() };
    match AlloyMarket::connect(rpc_url, market, PrivateKeySigner::random(), policy).await {
        Ok(m) => Ok(m),
        Err(e @ wirepact_chain::ChainError::Transport { .. }) => Err(anyhow::Error::new(e).context(rpc_url.to_owned())),
        Err(e) => Err(anyhow::Error::new(e).context(format!("no market at {market} on {rpc_url}"))),
    }
}
