//! `wirepact node`: the provider daemon. Registers (or updates) the provider on chain, serves
//! tunnels on one listener (sessions, and the decoy site to everyone else), persists receipts
//! before acknowledging them, and claims earnings when they pass a threshold, when a session's
//! tunnel ends and at shutdown.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use wirepact_chain::bindings::{provider_status, IWirepactMarket};
use wirepact_chain::{AlloyMarket, ChainError, Market, SendPolicy};
use wirepact_proto::repeats::Say;
use wirepact_proto::{domain, parse_tokens, ParseTokenError, ProviderId};
use wirepact_tunnel::admission::{Admission, Limits};
use wirepact_tunnel::egress::{Cidr, EgressPolicy};
use wirepact_tunnel::impair::Impairment;
use wirepact_tunnel::lane::{read_opening, Opening, ProviderLanes, LANE_IDLE};
use wirepact_tunnel::mux::Prefixed;
use wirepact_tunnel::provider::{serve_provider, ProviderSession, ReceiptStore};
use wirepact_tunnel::{
    veil::{VeilKey, VeilServer},
    AcceptContext, Accepted, Acceptor, AuthChecker, TlsServer, TransportError, TunnelIdentity, DEFAULT_WINDOW,
};

use crate::claimer::{ClaimError, Claimer};
use crate::dashboard::{pending_claims, Board, CountingStore};
use crate::db::{DbError, ReceiptDb};
use crate::idle::IdleCloser;
use crate::sessions::ChainSessions;

/// The provider's configuration (`node.toml`); every field is documented in
/// `examples/node.toml`. Unknown keys are an error, not silently ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// JSON-RPC endpoint of the chain.
    pub rpc_url: String,
    /// Address of the market contract.
    pub market: Address,
    /// Where the tunnel identity (`tunnel.crt`, `tunnel.key`) and receipts (`receipts.redb`) live.
    pub data_dir: PathBuf,
    /// Address the tunnel listens on.
    pub listen: SocketAddr,
    /// What clients dial, as registered on chain (default: `listen`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// TLS server name (certificate and expected SNI): make it look like a web site.
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// A real HTTPS site (`host:443`) that every connection other than a customer's is relayed
    /// to, byte for byte: plain HTTP, scanners, silence, and every TLS ClientHello that does
    /// not carry an open session's signature for this provider (a prober completes a genuine
    /// handshake with the cover, its certificate and pages). Unset: TLS with the tunnel's own
    /// certificate for everyone, and the built-in decoy page for what is not a session.
    #[serde(default)]
    pub cover: Option<String>,
    /// Also serve veil, the random-looking transport, on this address (for clients on networks
    /// that throttle TLS to unknown hosts). Its port and public key (`veil.key` in `data_dir`)
    /// are added to the registered endpoint; clients with `transport = "veil"` use it.
    #[serde(default)]
    pub veil_listen: Option<SocketAddr>,
    /// Free-form region tag clients can filter on.
    #[serde(default)]
    pub region: String,
    /// Total capacity sold, Mbit/s.
    pub capacity_mbps: u32,
    /// Rate each session is promised, Mbit/s.
    pub session_mbps: u32,
    /// Latency promised, ms.
    pub max_latency_ms: u32,
    /// Base price per GiB, in tokens ("0.1").
    pub price_per_gib: String,
    /// Stake bonded at registration, in tokens (default: the market's minimum for `capacity_mbps`).
    #[serde(default)]
    pub stake: Option<String>,
    /// Credit window: bytes forwarded beyond the last receipt.
    #[serde(default = "default_window")]
    pub window_bytes: u64,
    /// Claim a session once its unclaimed earnings reach this many tokens.
    #[serde(default = "default_claim_threshold")]
    pub claim_threshold: String,
    /// How often to look for claimable earnings, seconds.
    #[serde(default = "default_claim_interval")]
    pub claim_interval_secs: u64,
    /// Claims add to the provider's earnings on chain; collect them into the owner's market
    /// balance (the protocol fee is taken then) once they reach this many tokens, and all of
    /// them at shutdown.
    #[serde(default = "default_collect_threshold")]
    pub collect_threshold: String,
    /// Private ranges clients may reach anyway (e.g. "127.0.0.0/8" on a devnet). Public
    /// addresses are always allowed; loopback, private and link-local ones only if listed.
    #[serde(default)]
    pub egress_allow: Vec<String>,
    /// Clock difference accepted in a session's auth, seconds.
    #[serde(default = "default_skew")]
    pub auth_max_skew_secs: u64,
    /// A session that never carried a byte is closed this long after it opened, while the
    /// provider is at least three quarters committed (the client gets its whole deposit back):
    /// capacity held by unused sessions is freed. 0 turns it off.
    #[serde(default = "default_idle_close")]
    pub idle_close_secs: u64,
    /// End a finished jail by itself when the stake covers the minimum (else say what stake
    /// is missing). Off: `wirepact provider unjail` by hand.
    #[serde(default)]
    pub auto_unjail: bool,
    /// The operator's dashboard (`/`), status (`/api/status`) and Prometheus metrics
    /// (`/metrics`), read-only. Keep it on loopback (no authentication); off when not set.
    #[serde(default)]
    pub admin_listen: Option<SocketAddr>,
    /// Misbehaviour on purpose, for tests, benchmarks and the devnet only.
    #[serde(default)]
    pub test_knobs: TestKnobs,
}

/// Test knobs: make this provider under-deliver so the oracles have something to catch.
/// Leave them off on a real node: they cost you stake.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestKnobs {
    /// All sessions together get at most this rate downstream (an oversold pipe), Mbit/s.
    #[serde(default)]
    pub shape_mbps: Option<u32>,
    /// Added to every chunk on its way to the client, ms.
    #[serde(default)]
    pub extra_latency_ms: u64,
    /// Share of connections dropped before the handshake (0.0 to 1.0): a flaky node.
    #[serde(default)]
    pub fail_probability: f64,
}

fn default_server_name() -> String {
    "www.example.com".into()
}
fn default_window() -> u64 {
    DEFAULT_WINDOW
}
fn default_claim_threshold() -> String {
    "1".into()
}
fn default_collect_threshold() -> String {
    "10".into()
}
fn default_claim_interval() -> u64 {
    60
}
fn default_skew() -> u64 {
    120
}

fn default_idle_close() -> u64 {
    600
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("config: {0}")]
    Config(String),
    #[error(transparent)]
    Token(#[from] ParseTokenError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Claim(#[from] ClaimError),
    #[error("tunnel identity: {0}")]
    Identity(#[from] TransportError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("provider {0} has left the market; register with another account")]
    Left(u32),
    #[error("cannot serve the dashboard on {addr}: {source}; change `admin_listen`")]
    Admin { addr: SocketAddr, source: std::io::Error },
}

/// What a started node reports (to the CLI, the devnet, tests).
#[derive(Debug, Clone, Serialize)]
pub struct NodeInfo {
    pub provider_id: u32,
    pub owner: Address,
    pub listen: SocketAddr,
    pub tunnel_key: B256,
    /// Where veil is served, if it is.
    pub veil: Option<SocketAddr>,
}

/// What the node did by the time it stopped.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NodeReport {
    pub sessions_served: u64,
    pub bytes_forwarded: u64,
    pub bytes_receipted: u64,
    pub claims: u64,
}

/// Bytes the session's deposit pays for at its price: `deposit * 2^30 / price`, rounded down.
fn paid_bytes(t: &wirepact_proto::SessionTerms) -> u64 {
    let price = U256::from(t.pricePerGiB);
    if price.is_zero() {
        return u64::MAX;
    }
    let bytes = (U256::from(t.deposit) << 30) / price;
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// How often the connection budget's evictions and refusals are logged (when there were any).
const BUDGET_LOG_EVERY: Duration = Duration::from_secs(30);
/// How often the provider's standing (violations, slash, jail) is read from the chain.
const STANDING_EVERY: Duration = Duration::from_secs(2);

/// How soon a bonus claim that could not reach the chain is tried again.
const BONUS_RETRY: Duration = Duration::from_secs(5);

/// How long a connection has for its TLS handshake, and then for its first message: about
/// what a web server gives a visitor, and short enough that idle sockets do not pile up.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// Receipts are refused when dated more than a minute past this machine's clock: a clock
/// running behind the chain's would refuse honest clients. The latest block can only be older
/// than now, so a block dated ahead of this clock means this clock is behind.
async fn warn_if_clock_behind(market: &AlloyMarket) {
    use alloy::providers::Provider;
    let Ok(Some(block)) = market.rpc().get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await else {
        return;
    };
    let ahead = block.header.timestamp.saturating_sub(unix_now());
    if ahead > 30 {
        tracing::warn!(
            seconds = ahead,
            "this machine's clock is behind the chain's; clients' receipts may be refused as future-dated: fix the clock (NTP)"
        );
    }
}

/// Raises the soft open-file limit to the hard one (a provider's sockets are its capacity)
/// and returns the limit in force.
fn raise_file_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!(soft, hard, error = %e, "cannot raise the open-file limit");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit; assuming 1024");
            1024
        }
    }
}

impl NodeConfig {
    fn egress(&self) -> Result<EgressPolicy, NodeError> {
        let allow = self
            .egress_allow
            .iter()
            .map(|c| c.parse::<Cidr>().map_err(|e| NodeError::Config(format!("egress_allow {c:?}: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EgressPolicy::new(allow))
    }

    fn validate(&self) -> Result<(), NodeError> {
        if self.session_mbps == 0 || self.session_mbps > self.capacity_mbps {
            return Err(NodeError::Config(format!(
                "session_mbps ({}) must be between 1 and capacity_mbps ({})",
                self.session_mbps, self.capacity_mbps
            )));
        }
        if self.window_bytes < 64 * 1024 {
            return Err(NodeError::Config("window_bytes must be at least 65536".into()));
        }
        if !(0.0..=1.0).contains(&self.test_knobs.fail_probability) {
            return Err(NodeError::Config("test_knobs.fail_probability must be between 0 and 1".into()));
        }
        if self.claim_interval_secs == 0 {
            return Err(NodeError::Config("claim_interval_secs must be at least 1".into()));
        }
        Ok(())
    }
}

/// Registers the provider if this account has none; otherwise brings price, tunnel key and
/// endpoint on chain in line with the config.
async fn ensure_registered(
    market: &AlloyMarket,
    cfg: &NodeConfig,
    tunnel_key: B256,
    endpoint: &str,
) -> Result<ProviderId, NodeError> {
    let price = parse_tokens(&cfg.price_per_gib)?;
    if let Some(id) = market.provider_id_of(market.account()).await? {
        let p = market.provider(id).await?;
        if p.status == provider_status::LEFT {
            return Err(NodeError::Left(id.0));
        }
        if p.tunnelKey != tunnel_key || p.endpoint != endpoint || U256::from(p.basePricePerGiB) != price {
            tracing::info!(provider = id.0, "updating price, tunnel key and endpoint on chain");
            market.update_provider(id, price, tunnel_key, endpoint).await?;
        }
        if p.status == provider_status::JAILED {
            tracing::warn!(
                provider = id.0,
                until = p.jailedUntilEpoch,
                "provider is jailed; run `wirepact provider unjail` once that epoch has begun (it says what stake is missing, if any)"
            );
        }
        return Ok(id);
    }
    let stake = match &cfg.stake {
        Some(s) => parse_tokens(s)?,
        None => market.min_provider_stake(cfg.capacity_mbps).await?,
    };
    let price96 =
        wirepact_chain::to_u96(price).ok_or_else(|| NodeError::Config("price_per_gib is too large".into()))?;
    let terms = IWirepactMarket::ProviderTerms {
        capacityMbps: cfg.capacity_mbps,
        sessionMbps: cfg.session_mbps,
        maxLatencyMs: cfg.max_latency_ms,
        basePricePerGiB: price96,
    };
    tracing::info!(stake = %stake, "registering the provider");
    Ok(market.register_provider(terms, tunnel_key, endpoint, &cfg.region, stake).await?)
}

/// Claims the reliability bonus of each finished reward period, once, one epoch into the next
/// period (when the last epoch's report window has closed; the market refuses earlier claims),
/// proving, for every audited epoch of the period after registration and any jail, that its
/// report judged the provider available (the leaves come from the oracles, checked against the
/// market's verdict root).
async fn bonus_loop(market: Arc<AlloyMarket>, id: ProviderId) {
    let (params, genesis) = match (market.params().await, market.genesis().await) {
        (Ok(p), Ok(g)) => (p, g),
        _ => return tracing::warn!("cannot read market parameters; bonus claims off"),
    };
    let (len, per) = (params.epochLength.max(1), u64::from(params.rewardPeriodEpochs.max(1)));
    let mut done: Option<u64> = None;
    loop {
        let since = unix_now().saturating_sub(genesis);
        let period = since / len / per;
        // One epoch into period p+1 (and a few seconds for the report to land), claim p.
        let into = since - period * per * len;
        if period >= 1 && into >= len + 3 && done != Some(period - 1) {
            let claim = period - 1;
            match claim_bonus_for(&market, id, claim, per).await {
                Ok(Some(n)) => tracing::info!(period = claim, available_epochs = n, "reliability bonus claimed"),
                Ok(None) => tracing::info!(period = claim, "no audited epoch to prove; no bonus"),
                // The chain could not be reached (an RPC stall): the claim stays open for the
                // whole of period p+1, so try again shortly rather than give the bonus up.
                Err(e) if e.is_retryable() => {
                    tracing::warn!(period = claim, error = %e, "bonus claim failed for now; retrying");
                    tokio::time::sleep(BONUS_RETRY).await;
                    continue;
                }
                Err(e) => tracing::info!(period = claim, error = %e, "no bonus for this period"),
            }
            done = Some(claim);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn claim_bonus_for(
    market: &AlloyMarket,
    id: ProviderId,
    period: u64,
    per: u64,
) -> Result<Option<usize>, ChainError> {
    let p = market.provider(id).await?;
    let oracles = crate::bonus::oracle_endpoints(market).await?;
    let http = crate::bonus::client();
    // The last epoch of the period whose report judged this provider available (its leaf
    // counts the earlier ones), and the epoch before it if that one did too.
    let creditable = |e: u64| e > u64::from(p.registeredEpoch) && e >= u64::from(p.jailedUntilEpoch);
    let mut leaves = Vec::new();
    for e in (period * per..(period + 1) * per).rev() {
        if !creditable(e) {
            continue;
        }
        // A reported epoch first: until its report reveals the oracles' secret, the market
        // will not say whom the epoch audited.
        let root = market.verdict_root(e).await?;
        if root.is_zero() || !market.is_audited(e, id).await? {
            continue;
        }
        if let Some(leaf) = crate::bonus::leaf_from_oracles(&http, &oracles, e, id.0, root).await {
            let last = leaf.epoch;
            leaves.push(leaf);
            if last > period * per && creditable(last - 1) {
                let before = market.verdict_root(last - 1).await?;
                if !before.is_zero() {
                    if let Some(l) = crate::bonus::leaf_from_oracles(&http, &oracles, last - 1, id.0, before).await {
                        leaves.push(l);
                    }
                }
            }
            break;
        }
        tracing::debug!(epoch = e, "not judged available in this epoch (or no oracle serves its verdicts)");
    }
    let Some(first) = leaves.first() else { return Ok(None) };
    let n = first.base as usize + leaves.len();
    market.claim_bonus(id, u32::try_from(period).unwrap_or(u32::MAX), leaves).await?;
    Ok(Some(n))
}

/// Runs the provider until `shutdown` resolves; `ready` learns the provider id and address
/// once it accepts tunnels.
pub async fn run_node(
    cfg: NodeConfig,
    signer: PrivateKeySigner,
    policy: SendPolicy,
    shutdown: impl Future<Output = ()>,
    ready: Option<tokio::sync::oneshot::Sender<NodeInfo>>,
) -> Result<NodeReport, NodeError> {
    cfg.validate()?;
    let egress = cfg.egress()?;
    let threshold = parse_tokens(&cfg.claim_threshold)?;
    let collect_at = parse_tokens(&cfg.collect_threshold)?;
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| NodeError::Config(format!("cannot create data_dir {}: {e}", cfg.data_dir.display())))?;
    let identity = TunnelIdentity::load_or_create(&cfg.data_dir, &cfg.server_name)?;
    let db = Arc::new(ReceiptDb::open(&cfg.data_dir.join("receipts.redb"))?);
    let market = Arc::new(AlloyMarket::connect(&cfg.rpc_url, cfg.market, signer, policy).await?);

    let nofile = raise_file_limit();
    let admission = Admission::new(Limits::for_file_limit(nofile));
    let limits = admission.limits();
    tracing::info!(
        open_files = nofile,
        pending = limits.pending,
        per_source = limits.per_source,
        established = limits.established,
        "connection budget"
    );
    let listener =
        TcpListener::bind(cfg.listen).await.map_err(|source| NodeError::Listen { addr: cfg.listen, source })?;
    let local = listener.local_addr().map_err(|source| NodeError::Listen { addr: cfg.listen, source })?;
    let mut endpoint = cfg.endpoint.clone().unwrap_or_else(|| local.to_string());
    let veil = match cfg.veil_listen {
        Some(addr) => {
            let l = TcpListener::bind(addr).await.map_err(|source| NodeError::Listen { addr, source })?;
            let at = l.local_addr().map_err(|source| NodeError::Listen { addr, source })?;
            let server = VeilServer::new(VeilKey::load_or_create(&cfg.data_dir)?);
            endpoint = format!("{endpoint} {}", server.addr(at.port()).advert());
            Some((l, at, Arc::new(server)))
        }
        None => None,
    };
    let admin_l = match cfg.admin_listen {
        Some(addr) => Some(wirepact_admin::bind(addr).await.map_err(|source| NodeError::Admin { addr, source })?),
        None => None,
    };
    let id = ensure_registered(&market, &cfg, identity.tunnel_key(), &endpoint).await?;
    warn_if_clock_behind(&market).await;
    let dom = domain(market.chain_id(), market.address());
    let sessions = Arc::new(ChainSessions::new(market.clone(), id, db.clone()));
    let checker =
        Arc::new(Mutex::new(AuthChecker::new(dom.clone(), identity.tunnel_key(), cfg.auth_max_skew_secs, 65_536)));
    // The transport's provider side: the node wires no TLS itself.
    // With a cover site, only ClientHellos signed by a session key of this provider get the
    // tunnel's TLS; the keys come from the chain's `SessionOpened` events, watched from here.
    let gated = cfg.cover.is_some();
    let acceptor: Arc<dyn Acceptor> =
        Arc::new(TlsServer::new(&identity)?.with_cover(cfg.cover.clone()).with_hello_gate(gated));
    // Veil answers only a first flight signed by a session key: the same watch feeds it.
    if gated || veil.is_some() {
        tokio::spawn(crate::sessions::watch_opened(market.clone(), id, sessions.clone()));
    }
    let info = NodeInfo {
        provider_id: id.0,
        owner: market.account(),
        listen: local,
        tunnel_key: identity.tunnel_key(),
        veil: veil.as_ref().map(|v| v.1),
    };
    tracing::info!(provider = id.0, listen = %local, endpoint, "serving tunnels");
    if let Some(r) = ready {
        let _ = r.send(info);
    }

    let report = Arc::new(Mutex::new(NodeReport::default()));
    let (board, registry) = Board::new(id.0);
    let receipts = Arc::new(CountingStore::new(db.clone(), board.clone()));
    let claim_now = Arc::new(Notify::new());
    // A session is served over one tunnel: counters start at zero, so a second connection
    // for the same session would bill from zero again. Clients open a new session instead.
    let used: Arc<Mutex<HashSet<B256>>> = Arc::new(Mutex::new(HashSet::new()));
    // Sessions whose tunnel is up now (the claimer leaves their latest second alone).
    let live: Arc<Mutex<HashSet<B256>>> = Arc::new(Mutex::new(HashSet::new()));
    if let Some(l) = admin_l {
        let (board, report, live, db) = (board.clone(), report.clone(), live.clone(), db.clone());
        let admin = wirepact_admin::Admin::new(registry, move || {
            let r = report.lock().map(|r| r.clone()).unwrap_or_default();
            let n = live.lock().map_or(0, |l| l.len());
            board.status(&r, n, pending_claims(&db))
        })
        .with_page(crate::dashboard::PAGE);
        tracing::info!(addr = %l.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()), "dashboard ready (read-only; /metrics for Prometheus)");
        tokio::spawn(wirepact_admin::serve(l, Arc::new(admin)));
    }
    let impair = Impairment::new(cfg.test_knobs.shape_mbps, Duration::from_millis(cfg.test_knobs.extra_latency_ms));
    let fail_probability = cfg.test_knobs.fail_probability;
    if !impair.is_off() || fail_probability > 0.0 {
        tracing::warn!(knobs = ?cfg.test_knobs, "test knobs are ON: this node under-delivers on purpose");
    }
    let serve = {
        let (report, claim_now, db) = (report.clone(), claim_now.clone(), db.clone());
        let receipts = receipts.clone();
        let window = cfg.window_bytes;
        let lanes = ProviderLanes::default();
        let admission = admission.clone();
        let live = live.clone();
        async move {
            let mut accept_errors = wirepact_proto::repeats::Repeats::default();
            let (veil_l, veil_acceptor) = match veil {
                Some((l, _, server)) => (Some(l), Some(server as Arc<dyn Acceptor>)),
                None => (None, None),
            };
            loop {
                // The TLS port and, if served, the veil port: one dispatch, its own acceptor each.
                let (accepted, acceptor) = tokio::select! {
                    r = listener.accept() => (r, acceptor.clone()),
                    r = accept_if(veil_l.as_ref()) => (r, veil_acceptor.clone().unwrap_or_else(|| acceptor.clone())),
                };
                let (tcp, peer) = match accepted {
                    Ok(c) => {
                        accept_errors.clear();
                        c
                    }
                    Err(e) => {
                        // Out of files under a flood, say: once, then with a count each minute.
                        match accept_errors.note(&e.to_string(), unix_now(), 60) {
                            Say::New => tracing::warn!(error = %e, "accept failed"),
                            Say::Again(n) => tracing::warn!(error = %e, repeats = n, "accept still failing"),
                            Say::Quiet => {}
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if fail_probability > 0.0 && rand::random::<f64>() < fail_probability {
                    tracing::debug!(%peer, "test knob: dropping this connection");
                    continue;
                }
                // Until it authenticates, a connection holds one of few pending slots, and is
                // closed when it is the oldest and room is needed (see `admission`).
                let Some(slot) = admission.admit(peer.ip(), std::time::Instant::now()) else {
                    // Its address opens connections faster than any client does: closed now.
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                // A client that vanishes silently is dropped in seconds, its receipts claimed.
                let _ = wirepact_tunnel::transport::detect_dead_peer(&tcp);
                let (checker, sessions, dom, egress, impair) =
                    (checker.clone(), sessions.clone(), dom.clone(), egress.clone(), impair.clone());
                let (report, claim_now, db, used) = (report.clone(), claim_now.clone(), db.clone(), used.clone());
                let (lanes, live, receipts) = (lanes.clone(), live.clone(), receipts.clone());
                tokio::spawn(async move {
                    let ctx = AcceptContext {
                        checker: &checker,
                        lookup: &*sessions,
                        now: unix_now(),
                        deadline: HANDSHAKE_DEADLINE,
                        credit_until: window,
                    };
                    let acc = acceptor.accept(tcp, ctx, Box::new(|| slot.handshaken()));
                    let acc = tokio::select! {
                        r = acc => r,
                        () = slot.evicted() => return tracing::debug!(%peer, "unauthenticated connection closed to make room"),
                    };
                    let (stream, session_id, pending) = match acc {
                        Ok(Accepted::Session { stream, session_id, pending }) => (stream, session_id, pending),
                        Ok(Accepted::Decoy) => return tracing::debug!(%peer, "served the decoy"),
                        Ok(Accepted::Cover) => return tracing::debug!(%peer, "relayed to the cover site"),
                        Err(e) => return tracing::debug!(%peer, error = %e, "handshake failed"),
                    };
                    let Some(_established) = slot.establish() else {
                        return tracing::warn!(%peer, session = %session_id, "connection budget full; an authenticated connection was refused");
                    };
                    let mut io = Prefixed::new(pending, stream);
                    match read_opening(&mut io, LANE_IDLE).await {
                        Ok(Opening::Session) => {}
                        // An extra data connection of a session whose control tunnel is live
                        // here: it shares that session's meter, so nothing is billed twice.
                        Ok(Opening::Lane) => {
                            if let Err(e) = lanes.serve(io, session_id).await {
                                tracing::debug!(session = %session_id, error = %e, "lane ended");
                            }
                            return;
                        }
                        Err(e) => return tracing::debug!(%peer, error = %e, "no connection kind"),
                    }
                    let fresh = used.lock().is_ok_and(|mut u| u.insert(session_id))
                        && db.receipt(session_id).is_ok_and(|r| r.is_none());
                    let Some(terms) = sessions.terms(&session_id).filter(|_| fresh) else {
                        tracing::warn!(session = %session_id, "session already served over another tunnel; refused");
                        return;
                    };
                    let store: Arc<dyn ReceiptStore> = receipts;
                    let cfg = ProviderSession {
                        domain: dom,
                        session_id,
                        session_key: terms.sessionKey,
                        window,
                        max_bytes: paid_bytes(&terms),
                        egress,
                        impair: impair.clone(),
                        dial_timeout: Duration::from_secs(10),
                        lanes: Some(lanes),
                        opened_at: terms.openedAt.to::<u64>(),
                        clock_offset_secs: 0,
                    };
                    if let Ok(mut l) = live.lock() {
                        l.insert(session_id);
                    }
                    let res = serve_provider(io, cfg, store).await;
                    if let Ok(mut l) = live.lock() {
                        l.remove(&session_id);
                    }
                    match res {
                        Ok(stats) => {
                            tracing::info!(session = %session_id, forwarded = stats.forwarded, receipted = stats.receipted, "session tunnel ended");
                            if let Ok(mut r) = report.lock() {
                                r.sessions_served += 1;
                                r.bytes_forwarded += stats.forwarded;
                                r.bytes_receipted += stats.receipted;
                            }
                        }
                        Err(e) => tracing::warn!(session = %session_id, error = %e, "session tunnel failed"),
                    }
                    claim_now.notify_one();
                });
            }
        }
    };

    let claims = {
        let (db, market, report, claim_now) = (db.clone(), market.clone(), report.clone(), claim_now.clone());
        let (live, receipts) = (live.clone(), receipts.clone());
        let every = Duration::from_secs(cfg.claim_interval_secs);
        async move {
            loop {
                let forced = tokio::select! {
                    () = tokio::time::sleep(every) => false,
                    () = claim_now.notified() => true,
                };
                let live = live.lock().map(|l| l.clone()).unwrap_or_default();
                receipts.retain(&live);
                let claimer = Claimer { db: &db, market: &*market, threshold, live };
                match claimer.run(forced).await {
                    Ok(out) => {
                        if let Ok(mut r) = report.lock() {
                            r.claims += out.claimed.len() as u64;
                        }
                        if !out.claimed.is_empty() {
                            claimer.collect(id, collect_at, false).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming failed; will retry"),
                }
            }
        }
    };

    let bonus = bonus_loop(market.clone(), id);
    // Violations, slashes and the jail, said in the log as they land (and the jail ended
    // when it may be, with `auto_unjail`).
    let standing = {
        let (market, auto, board) = (market.clone(), cfg.auto_unjail, board.clone());
        async move {
            let mut s = crate::standing::Standing::new(&market, id, auto).with_board(board);
            loop {
                if let Err(e) = s.pass().await {
                    tracing::debug!(error = %e, "reading the provider's standing failed; retrying");
                }
                tokio::time::sleep(STANDING_EVERY).await;
            }
        }
    };
    let idle = {
        let (db, market, live) = (db.clone(), market.clone(), live.clone());
        let idle_secs = cfg.idle_close_secs;
        async move {
            if idle_secs == 0 {
                return std::future::pending().await;
            }
            let mut closer = IdleCloser::new(&market, id, &db, idle_secs);
            let every = Duration::from_secs((idle_secs / 4).clamp(1, 60));
            loop {
                tokio::time::sleep(every).await;
                let live = live.lock().map(|l| l.clone()).unwrap_or_default();
                if let Err(e) = closer.pass(&live, unix_now()).await {
                    tracing::warn!(error = %e, "checking for unused sessions failed; will retry");
                }
            }
        }
    };
    // What the connection budget did, when it had to act: a flood shows here.
    let budget_log = async {
        let mut seen = (0, 0, 0);
        loop {
            tokio::time::sleep(BUDGET_LOG_EVERY).await;
            let st = admission.stats();
            if (st.evicted, st.refused, st.throttled) != seen {
                tracing::info!(
                    pending = st.pending,
                    established = st.established,
                    evicted = st.evicted - seen.0,
                    refused = st.refused - seen.1,
                    throttled = st.throttled - seen.2,
                    "connection budget: unauthenticated connections closed to make room (evicted), authenticated ones refused for lack of slots (refused), new ones from addresses opening too many too fast (throttled)"
                );
                seen = (st.evicted, st.refused, st.throttled);
            }
        }
    };

    tokio::select! {
        () = shutdown => {}
        () = serve => {}
        () = claims => {}
        () = bonus => {}
        () = idle => {}
        () = budget_log => {}
        () = standing => {}
    }
    tracing::info!("shutting down: claiming everything receipted");
    // Every tunnel ends with the node: no receipt can follow the latest now.
    let last = Claimer { db: &db, market: &*market, threshold, live: HashSet::new() };
    let out = last.run(true).await?;
    last.collect(id, collect_at, true).await;
    let mut r = report.lock().map(|r| r.clone()).unwrap_or_default();
    r.claims += out.claimed.len() as u64;
    Ok(r)
}

/// Accepts on `l`, or waits forever when there is none.
async fn accept_if(l: Option<&TcpListener>) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}
