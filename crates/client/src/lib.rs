#![doc = include_str!("../README.md")]

pub mod budget;
pub mod control;
pub mod failover;
#[cfg(target_os = "linux")]
pub mod fulldevice;
pub mod proxy;
pub mod select;
pub mod sla;
pub mod state;
pub mod udp_proxy;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use wirepact_chain::bindings::{provider_status, session_status};
use wirepact_chain::{AlloyMarket, ChainError, Market, SendPolicy};
use wirepact_proto::repeats::{Repeats, Say};
use wirepact_proto::ErrorKind;
use wirepact_proto::{domain, format_tokens, parse_tokens, ParseTokenError, ProviderId};
use wirepact_tunnel::lane::LaneDialer;
use wirepact_tunnel::mux::Prefixed;
use wirepact_tunnel::session::{ClientSession, SessionError};

use crate::proxy::serve_proxy;
use wirepact_tunnel::clock::chain_clock;
use wirepact_tunnel::{session_auth_frame, TlsTransport, Transport, TransportError, DEFAULT_WINDOW};

pub use budget::{Budget, Capped, Caps};
pub use control::ClientMetrics;
pub use failover::{Failover, Link};
pub use select::{cost, rank, Candidate, Excluded, Requirements};
pub use sla::{Breach, SlaWatch};
pub use state::{SavedSession, SessionStore, StateError};

/// How full-device mode (`tun`) answers DNS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunDns {
    /// Placeholder addresses answered inside; names resolved by the provider (no DNS packet
    /// leaves at all).
    #[default]
    Virtual,
    /// Queries travel as UDP through the tunnel to the resolver they were sent to.
    Tunnel,
}

impl std::str::FromStr for TunDns {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "virtual" => Ok(Self::Virtual),
            "tunnel" => Ok(Self::Tunnel),
            other => Err(format!("DNS mode {other:?}: use \"virtual\" or \"tunnel\"")),
        }
    }
}

/// The resolver queries to a private address go to in [`TunDns::Tunnel`] mode, unless set.
pub const DEFAULT_DNS_SERVER: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(1, 1, 1, 1));

/// The client's configuration (`client.toml`); see `examples/client.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// JSON-RPC endpoint of the chain.
    pub rpc_url: String,
    /// Address of the market contract.
    pub market: Address,
    /// Where open sessions are remembered until settled.
    pub data_dir: PathBuf,
    /// Local proxy address (SOCKS5 and HTTP CONNECT on the same port).
    #[serde(default = "default_proxy")]
    pub listen: SocketAddr,
    /// Use this provider instead of choosing one.
    #[serde(default)]
    pub provider: Option<u32>,
    /// Tokens put into the session (its spending cap; the rest comes back at close).
    pub deposit: String,
    /// When a session has used this share of what its deposit pays for, the next one is
    /// opened and takes new connections; the old one carries its open ones until they end.
    #[serde(default = "default_renew_at_percent")]
    pub renew_at_percent: u8,
    /// Refuse providers quoting more than this per GiB, in tokens.
    #[serde(default)]
    pub max_price_per_gib: Option<String>,
    /// Open a session only at up to this much (percent) above the quote seen when choosing the
    /// provider: a provider that raises its price in front of the open makes it fail (and the
    /// client moves on) instead of taking the deposit at any price.
    #[serde(default = "default_price_tolerance_pct")]
    pub price_tolerance_pct: u32,
    /// Only providers promising at least this rate per session, Mbit/s.
    #[serde(default)]
    pub min_mbps: u32,
    /// Only providers promising at most this latency, ms.
    #[serde(default)]
    pub max_latency_ms: Option<u32>,
    /// Only providers with this region tag.
    #[serde(default)]
    pub region: Option<String>,
    /// Largest credit window to run with; the provider's own (its first credit line) is used
    /// if smaller. Receipts are signed every half window.
    #[serde(default = "default_window")]
    pub window_bytes: u64,
    /// TLS server name (SNI) sent to a provider whose endpoint is an IP address; one
    /// registered by host name gets that name, as a browser would send it (the oracles'
    /// probes follow the same rule).
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// How to reach providers: `tls` (HTTPS-shaped, post-quantum; the default), `veil` (every
    /// byte random-looking, for networks that throttle TLS to unknown hosts; only providers
    /// that serve it are considered) or `auto` (TLS, then veil where TLS does not get through
    /// and the provider serves it).
    #[serde(default)]
    pub transport: TransportKind,
    /// Keep a second session open with the next-ranked provider, so new streams move there
    /// at once if the active provider dies. Costs a second deposit locked (returned at close)
    /// and reserves SLA capacity at that provider while unused.
    #[serde(default = "default_standby")]
    pub standby: bool,
    /// Leave a provider whose round trips (pinged every second) stay above its promised
    /// latency (or the measured handshake, if longer) plus the market's tolerance for this
    /// long, seconds.
    #[serde(default = "default_sla_window")]
    pub sla_window_secs: u64,
    /// Leave a provider that has not answered a ping for this long, seconds.
    #[serde(default = "default_stall")]
    pub stall_secs: u64,
    /// Full-device mode: route the whole machine (or `tun_netns`) through the proxy with a
    /// TUN device (Linux, root). See `fulldevice`.
    #[serde(default)]
    pub tun: bool,
    /// With `tun`: route only this network namespace (`ip netns add NAME`), not the machine.
    #[serde(default)]
    pub tun_netns: Option<String>,
    /// With `tun`: the device's name.
    #[serde(default = "default_tun_name")]
    pub tun_name: String,
    /// With `tun`: "virtual" (names answered inside, resolved by the provider) or "tunnel"
    /// (queries go as UDP through the tunnel to the resolver they were sent to).
    #[serde(default)]
    pub tun_dns: TunDns,
    /// With `tun_dns = "tunnel"`: where queries addressed to a private resolver (the LAN's
    /// router, which the provider cannot reach) go instead. Default 1.1.1.1.
    #[serde(default)]
    pub tun_dns_server: Option<std::net::IpAddr>,
    /// Spend at most this many tokens on sessions opened on one UTC day. A session's whole
    /// deposit counts until it settles, then what it paid.
    #[serde(default)]
    pub max_spend_per_day: Option<String>,
    /// Spend at most this many tokens in all (kept in `data_dir/budget.json` across runs).
    #[serde(default)]
    pub max_spend_total: Option<String>,
    /// Local control endpoint (`wirepact client status|stop`, and Prometheus `/metrics`): keep it
    /// on loopback. Off when not set.
    #[serde(default)]
    pub control_listen: Option<SocketAddr>,
}

fn default_price_tolerance_pct() -> u32 {
    5
}

fn default_tun_name() -> String {
    "wirepact0".into()
}

fn default_sla_window() -> u64 {
    10
}
fn default_stall() -> u64 {
    3
}

fn default_renew_at_percent() -> u8 {
    80
}

fn default_standby() -> bool {
    true
}

fn default_proxy() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1080))
}
fn default_window() -> u64 {
    DEFAULT_WINDOW
}
/// The transport a client uses to reach its providers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// TLS 1.3 with a post-quantum key exchange, to the provider's registered endpoint.
    #[default]
    Tls,
    /// The random-looking transport, to the port and key the provider advertises.
    Veil,
    /// TLS first; veil when TLS does not get through and the provider serves veil.
    Auto,
}

impl std::str::FromStr for TransportKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tls" => Ok(Self::Tls),
            "veil" => Ok(Self::Veil),
            "auto" => Ok(Self::Auto),
            other => Err(format!("transport {other:?}: use \"tls\", \"veil\" or \"auto\"")),
        }
    }
}

fn default_server_name() -> String {
    wirepact_tunnel::transport::DEFAULT_SERVER_NAME.into()
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Token(#[from] ParseTokenError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("no provider matches (checked {checked}): {reasons}; relax --min-mbps/--max-price/--region or try later")]
    NoProvider { checked: usize, reasons: String },
    #[error("provider {0} does not exist or is not active")]
    ProviderUnavailable(u32),
    #[error("the market holds {have} of your tokens and the wallet {wallet}; the deposit needs {need} — get tokens, or lower `deposit`")]
    InsufficientFunds { need: String, have: String, wallet: String },
    #[error("provider endpoint {0:?} does not resolve")]
    BadEndpoint(String),
    #[error("cannot reach provider {id} at {endpoint}: {source}")]
    Tunnel { id: u32, endpoint: String, source: TransportError },
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("cannot sign with the session key: {0}")]
    Sign(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("full-device mode: {0}")]
    Tun(String),
    #[error("the client cannot keep its session files ({0}); fix `data_dir` (nothing was sent to the chain)")]
    DataDir(StateError),
    #[error(transparent)]
    Capped(#[from] budget::Capped),
    #[error("cannot serve the control endpoint on {addr}: {source}; change `control_listen`")]
    Control { addr: SocketAddr, source: std::io::Error },
}

impl ClientError {
    /// What to do next (see [`ErrorKind`]).
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Token(_) | ClientError::Listen { .. } | ClientError::Tun(_) | ClientError::Control { .. } => {
                ErrorKind::FixConfig
            }
            ClientError::Chain(e) => e.kind(),
            ClientError::State(_) | ClientError::DataDir(_) => ErrorKind::Storage,
            // Nothing matches now: the market may change; try again later.
            ClientError::NoProvider { .. } => ErrorKind::Retry,
            ClientError::ProviderUnavailable(_) | ClientError::BadEndpoint(_) => ErrorKind::Failover,
            ClientError::InsufficientFunds { .. } | ClientError::Capped(_) => ErrorKind::NeedFunds,
            ClientError::Tunnel { source, .. } => source.kind(),
            ClientError::Session(e) => e.kind(),
            ClientError::Sign(_) => ErrorKind::Bug,
        }
    }
}

/// What a connected client reports once its proxy listens.
#[derive(Debug, Clone, Serialize)]
pub struct Connected {
    pub provider_id: u32,
    pub session_id: alloy::primitives::B256,
    pub proxy: SocketAddr,
    /// Tokens per GiB, as an exact decimal string.
    pub price_per_gib: String,
}

/// What the session came to.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectReport {
    pub provider_id: u32,
    pub session_id: alloy::primitives::B256,
    pub bytes_counted: u64,
    pub bytes_acknowledged: u64,
    pub closed: bool,
    /// Times the active provider died and the standby took over.
    pub failovers: u64,
    /// Providers left because the client's own pings broke their SLA, and why.
    pub breaches: Vec<(u32, Breach)>,
    /// Sessions replaced because their deposit was nearly spent.
    pub renewals: u64,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Every provider of the market as a [`Candidate`].
///
/// # Errors
/// RPC failures.
pub async fn candidates(market: &impl Market) -> Result<Vec<Candidate>, ChainError> {
    let n = market.provider_count().await?;
    let mut out = Vec::with_capacity(n as usize);
    for id in 1..=n {
        let p = market.provider(ProviderId(id)).await?;
        let quote = market.quote(ProviderId(id)).await.unwrap_or(U256::MAX);
        // "host:port", then the adverts of other transports it serves.
        let (tls, veil) = wirepact_tunnel::veil::split_endpoint(&p.endpoint);
        out.push(Candidate {
            id,
            endpoint: tls.to_owned(),
            veil,
            region: p.region.clone(),
            // a paused provider takes no new client sessions
            active: p.status == provider_status::ACTIVE && !p.paused,
            session_mbps: p.sessionMbps,
            max_latency_ms: p.maxLatencyMs,
            headroom_mbps: p.capacityMbps.saturating_sub(p.committedMbps),
            quote,
            violations: p.violationCount,
            tunnel_key: p.tunnelKey,
            handshake_us: None,
            unreachable: false,
        });
    }
    Ok(out)
}

/// How many eligible candidates (cheapest and cleanest first) get their handshake measured.
pub const MEASURE_AT_MOST: usize = 16;
/// How long a candidate has to complete its handshake.
pub const MEASURE_DEADLINE: Duration = Duration::from_secs(2);

/// Handshakes timed per candidate, one after the other; the fastest counts. One sample is at
/// the mercy of a scheduling hiccup on either side (tens of ms on a busy host, enough to swap
/// providers priced 20 % apart); the minimum of two is the path's cost far more often.
pub const HANDSHAKE_SAMPLES: usize = 2;

/// Measures the handshake (TCP + pinned TLS) to the eligible candidates, at most `at_most` of
/// them (the best by price and record), all at once, up to [`HANDSHAKE_SAMPLES`] times each in
/// turn within `deadline` in all; sets `handshake_us` to the fastest, or `unreachable` for those
/// whose first handshake does not complete within `deadline`. A provider with a cover site
/// answers a client without a session with the cover's certificate: that counts as reachable,
/// timed by its TCP round trip ([`wirepact_tunnel::Reach`]); an impostor at a registered
/// endpoint is then found at the session's dial, which fails over.
pub async fn measure_handshakes(
    cands: &mut [Candidate],
    req: &Requirements,
    server_name: &str,
    deadline: Duration,
    at_most: usize,
) {
    let mut todo = rank(cands, req);
    todo.truncate(at_most);
    let mut set = tokio::task::JoinSet::new();
    for c in todo {
        let name = wirepact_tunnel::transport::server_name_for(&c.endpoint, server_name);
        let (id, endpoint, key) = (c.id, c.endpoint.clone(), c.tunnel_key);
        // Timed the way the client will connect: TLS, veil, or TLS then veil.
        let veil = c.veil.filter(|_| req.veil || req.veil_fallback).map(|v| {
            (wirepact_tunnel::veil::VeilTransport { server: v, session_key: PrivateKeySigner::random() }, v.port)
        });
        let tls_first = !req.veil;
        set.spawn(async move {
            // One deadline for the lookup and every sample: more samples never make the
            // pick wait longer than one slow provider did before.
            let end = tokio::time::Instant::now() + deadline;
            let addr = tokio::time::timeout_at(end, tokio::net::lookup_host(endpoint))
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|mut a| a.next());
            let Some(a) = addr else { return (id, None) };
            let mut best: Option<Duration> = None;
            let tls = TlsTransport::new(&name, key);
            for _ in 0..HANDSHAKE_SAMPLES {
                let left = end.saturating_duration_since(tokio::time::Instant::now());
                let mut took =
                    if tls_first { tls.handshake_time(a, left).await } else { Err(TransportError::NotATunnel) };
                if took.is_err() {
                    if let Some((v, port)) = &veil {
                        let left = end.saturating_duration_since(tokio::time::Instant::now());
                        took = v.handshake_time(std::net::SocketAddr::new(a.ip(), *port), left).await;
                    }
                }
                match took {
                    // Another certificate is what a provider with a cover site shows a
                    // client without a session: reachable, ranked by its round trips.
                    Ok(r) => best = Some(best.map_or(r.took, |b| b.min(r.took))),
                    // Unreachable only if it never answered; a later miss keeps the first time.
                    Err(_) => break,
                }
            }
            (id, best)
        });
    }
    while let Some(r) = set.join_next().await {
        let Ok((id, took)) = r else { continue };
        if let Some(c) = cands.iter_mut().find(|c| c.id == id) {
            match took {
                Some(t) => c.handshake_us = Some(u64::try_from(t.as_micros()).unwrap_or(u64::MAX)),
                None => {
                    tracing::info!(provider = id, endpoint = %c.endpoint, "no handshake within {deadline:?}; skipped");
                    c.unreachable = true;
                }
            }
        }
    }
}

impl ClientConfig {
    /// The requirements this config states.
    ///
    /// # Errors
    /// A `max_price_per_gib` that is not a token amount.
    pub fn requirements(&self) -> Result<Requirements, ClientError> {
        Ok(Requirements {
            min_mbps: self.min_mbps,
            max_latency_ms: self.max_latency_ms,
            max_price: self.max_price_per_gib.as_deref().map(parse_tokens).transpose()?,
            region: self.region.clone(),
            veil: self.transport == TransportKind::Veil,
            veil_fallback: self.transport == TransportKind::Auto,
        })
    }

    /// The spending caps this config states.
    ///
    /// # Errors
    /// A cap that is not a token amount.
    pub fn caps(&self) -> Result<budget::Caps, ClientError> {
        let parse = |s: &Option<String>| -> Result<Option<u128>, ClientError> {
            s.as_deref().map(|t| Ok(parse_tokens(t)?.saturating_to::<u128>())).transpose()
        };
        Ok(budget::Caps { per_day: parse(&self.max_spend_per_day)?, total: parse(&self.max_spend_total)? })
    }
}

/// Closes or settles sessions a previous run left open; returns how many were finished.
///
/// # Errors
/// RPC or state-file failures (the files stay for the next try).
pub async fn tidy_leftovers(
    market: &AlloyMarket,
    store: &SessionStore,
    budget: &std::sync::Mutex<Budget>,
) -> Result<usize, ClientError> {
    tidy_sessions(market, store, budget, &[]).await
}

/// As [`tidy_leftovers`], leaving the sessions in `live` (the ones serving now) alone: sessions
/// left after a failover are closed (if their close failed) and settled once their claim grace
/// is over, while the client runs, not at its next start. Every saved session is in the
/// spending book (whole deposit) until it settles; then what it paid is.
///
/// # Errors
/// RPC or state-file failures (the files stay for the next try).
pub async fn tidy_sessions(
    market: &AlloyMarket,
    store: &SessionStore,
    budget: &std::sync::Mutex<Budget>,
    live: &[alloy::primitives::B256],
) -> Result<usize, ClientError> {
    let grace = market.params().await?.claimGrace;
    let mut done = 0;
    for s in store.load_all()? {
        let id = s.terms.session_id();
        let deposit = s.terms.deposit.to::<u128>();
        book(budget).opened(id.0, deposit, s.terms.openedAt.to::<u64>())?;
        if live.contains(&id.0) {
            continue;
        }
        let st = market.session(id).await?;
        if st.status == session_status::OPEN {
            tracing::info!(session = %id.0, "closing a session left open by a previous run");
            market.close(&s.terms).await?;
        } else if st.status == session_status::CLOSING {
            if unix_now() >= u64::from(st.closedAt) + grace {
                let paid = st.paid.to::<u128>();
                market.settle(&s.terms).await?;
                book(budget).settled(&id.0, paid, unix_now())?;
                store.remove(&id.0)?;
                done += 1;
            }
        } else {
            // Settled by someone else (a provider's close settles at once): its event says
            // what it paid; without one, the whole deposit stays counted.
            let paid = market.settled_paid(id).await?.map_or(deposit, |p| p.saturating_to::<u128>());
            book(budget).settled(&id.0, paid, unix_now())?;
            store.remove(&id.0)?;
            done += 1;
        }
    }
    Ok(done)
}

/// The spending book (a panic elsewhere while it was held leaves it consistent: every change
/// is one map update, written to disk before the lock is released).
fn book(b: &std::sync::Mutex<Budget>) -> std::sync::MutexGuard<'_, Budget> {
    b.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What opening a link needs.
struct Opener<'a> {
    market: &'a AlloyMarket,
    store: &'a SessionStore,
    budget: &'a std::sync::Mutex<Budget>,
    metrics: &'a ClientMetrics,
    cfg: &'a ClientConfig,
    deposit: U256,
    max_price: U256,
    /// The market's latency tolerance, ms (for the SLA watch).
    latency_tolerance_ms: u32,
}

impl Opener<'_> {
    /// Why no session can be opened at all now, if the caps leave no room (checked before
    /// choosing a provider; the exact floor is the chosen provider's).
    fn capped(&self) -> Option<Capped> {
        book(self.budget).deposit_for(self.deposit.saturating_to(), 1, unix_now()).err()
    }

    /// Funds, opens, persists and connects a session with `choice`. A session whose tunnel
    /// cannot be set up is closed again at once.
    async fn open(&self, choice: &Candidate) -> Result<Link, ClientError> {
        let market = self.market;
        let addr = tokio::net::lookup_host(&choice.endpoint)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| ClientError::BadEndpoint(choice.endpoint.clone()))?;
        // The deposit, cut to what the spending caps leave (never below the provider's floor).
        let floor = market.min_deposit(ProviderId(choice.id)).await?;
        let deposit = U256::from(book(self.budget).deposit_for(
            self.deposit.saturating_to(),
            floor.saturating_to(),
            unix_now(),
        )?);
        let have = market.balance_of(market.account()).await?;
        if have < deposit {
            let wallet = market.token_balance(market.account()).await?;
            if wallet < deposit - have {
                return Err(ClientError::InsufficientFunds {
                    need: format_tokens(deposit),
                    have: format_tokens(have),
                    wallet: format_tokens(wallet),
                });
            }
            market.deposit(deposit - have).await?;
        }
        let session_key = PrivateKeySigner::random();
        let max_price = select::open_price_cap(self.max_price, choice.quote, self.cfg.price_tolerance_pct)
            .ok_or(ClientError::ProviderUnavailable(choice.id))?;
        let opened = market.open_session(ProviderId(choice.id), deposit, max_price, session_key.address()).await?;
        let saved = SavedSession { terms: opened.terms.clone(), session_key: session_key.clone() };
        let kept = self.store.save(&saved).and_then(|()| {
            book(self.budget).opened(opened.id.0, deposit.saturating_to(), opened.terms.openedAt.to::<u64>())
        });
        if let Err(e) = kept {
            // Without the file a crash would strand the deposit: close at once instead.
            tracing::error!(error = %e, "cannot persist the session; closing it");
            market.close(&opened.terms).await?;
            return Err(e.into());
        }
        let sid = opened.id.0;
        self.metrics.sessions_opened.inc();
        tracing::info!(provider = choice.id, session = %sid, price = %format_tokens(opened.terms.pricePerGiB.to()), "session opened");
        // Receipts and auths are dated on the chain's clock: the session's `openedAt` (the
        // block that just opened it) plus the time elapsed since. A machine whose clock is off
        // would otherwise sign receipts the chain refuses (or, a day ahead, none it accepts).
        let clock = chain_clock(opened.terms.openedAt.to::<u64>(), unix_now());
        let dom = domain(market.chain_id(), market.address());
        let connected = async {
            let tunnel_key = choice_key(market, choice.id).await?;
            // Every connection of the session (the control one and its lanes) goes through
            // one transport: TLS pinned to the provider's key, each ClientHello carrying the
            // session key's proof (a provider with a cover site lets only such hellos in), or
            // veil to the port and key the provider advertises. `auto` tries TLS, then veil.
            let tls: (std::sync::Arc<dyn Transport>, std::net::SocketAddr) = (
                std::sync::Arc::new(
                    TlsTransport::new(
                        &wirepact_tunnel::transport::server_name_for(&choice.endpoint, &self.cfg.server_name),
                        tunnel_key,
                    )
                    .with_hello_key(session_key.clone()),
                ),
                addr,
            );
            let veil = choice.veil.map(|v| -> (std::sync::Arc<dyn Transport>, std::net::SocketAddr) {
                (
                    std::sync::Arc::new(wirepact_tunnel::veil::VeilTransport {
                        server: v,
                        session_key: session_key.clone(),
                    }),
                    std::net::SocketAddr::new(addr.ip(), v.port),
                )
            });
            let tries: Vec<_> = match self.cfg.transport {
                TransportKind::Tls => vec![tls],
                TransportKind::Veil => {
                    vec![veil.ok_or_else(|| ClientError::BadEndpoint(format!("{} (no veil advert)", choice.endpoint)))?]
                }
                TransportKind::Auto => std::iter::once(tls).chain(veil).collect(),
            };
            let mut dialled = None;
            let mut last = None;
            for (transport, at) in tries {
                // A fresh auth per try: a try that reached the provider used its nonce.
                let auth = session_auth_frame(&session_key, &dom, sid, tunnel_key, clock(), rand_nonce())
                    .map_err(|e| ClientError::Sign(e.to_string()))?;
                match transport.dial(at, &auth, Duration::from_secs(10)).await {
                    Ok(t) => {
                        dialled = Some((transport, at, t));
                        break;
                    }
                    Err(e) => {
                        let way = if at == addr { "tls" } else { "veil" };
                        tracing::info!(provider = choice.id, transport = way, error = %e, "could not connect this way");
                        last = Some(e);
                    }
                }
            }
            let Some((transport, addr, t)) = dialled else {
                let source = last.unwrap_or(TransportError::NotATunnel);
                return Err(ClientError::Tunnel { id: choice.id, endpoint: choice.endpoint.clone(), source });
            };
            // Bulk streams ride extra connections of the same session (lanes), so one
            // download is not held to one TLS connection's pace; the meter stays shared.
            let lanes = LaneDialer {
                addr,
                transport,
                tunnel_key,
                session_key: session_key.clone(),
                domain: dom.clone(),
                session_id: sid,
                now: clock.clone(),
                deadline: Duration::from_secs(10),
            };
            let cs = ClientSession::start_with_lanes(
                Prefixed::new(t.pending, t.stream),
                session_key.clone(),
                dom.clone(),
                sid,
                // Receipts every half of the provider's window (its first credit line), or ours if smaller.
                t.credit_until.min(self.cfg.window_bytes).max(2),
                clock.clone(),
                Some(lanes),
            )
            .await?;
            Ok::<_, ClientError>(cs)
        };
        match connected.await {
            Ok(session) => {
                let watch = SlaWatch::for_terms(
                    choice.max_latency_ms,
                    self.latency_tolerance_ms,
                    choice.handshake_us.map(Duration::from_micros),
                    Duration::from_secs(self.cfg.sla_window_secs.max(1)),
                    Duration::from_secs(self.cfg.stall_secs.max(1)),
                );
                let max_bytes =
                    Link::bytes_paid_for(opened.terms.deposit.to::<u128>(), opened.terms.pricePerGiB.to::<u128>());
                let renew_at =
                    u64::try_from(u128::from(max_bytes) * u128::from(self.cfg.renew_at_percent.clamp(1, 100)) / 100)
                        .unwrap_or(u64::MAX);
                Ok(Link {
                    provider_id: choice.id,
                    terms: opened.terms,
                    session,
                    watch,
                    started: Instant::now(),
                    max_bytes,
                    renew_at,
                })
            }
            Err(e) => {
                tracing::warn!(error = %e, "tunnel failed; closing the session");
                if let Err(c) = market.close(&opened.terms).await {
                    tracing::warn!(error = %c, "close failed; the next start retries");
                }
                Err(e)
            }
        }
    }

    /// The best provider not in `avoid`.
    async fn pick(&self, req: &Requirements, avoid: &[u32]) -> Result<Candidate, ClientError> {
        let mut all = candidates(self.market).await?;
        if let Some(id) = self.cfg.provider {
            if !avoid.contains(&id) {
                let mut chosen =
                    all.into_iter().find(|c| c.id == id && c.active).ok_or(ClientError::ProviderUnavailable(id))?;
                // Measured only as the SLA watch's baseline: the user's choice stands.
                measure_handshakes(
                    std::slice::from_mut(&mut chosen),
                    &Requirements::default(),
                    &self.cfg.server_name,
                    MEASURE_DEADLINE,
                    1,
                )
                .await;
                chosen.unreachable = false;
                return Ok(chosen);
            }
        }
        let mut pool: Vec<Candidate> = all.iter().filter(|c| !avoid.contains(&c.id)).cloned().collect();
        measure_handshakes(&mut pool, req, &self.cfg.server_name, MEASURE_DEADLINE, MEASURE_AT_MOST).await;
        for c in &mut all {
            if let Some(m) = pool.iter().find(|p| p.id == c.id) {
                c.handshake_us = m.handshake_us;
                c.unreachable = m.unreachable;
            }
        }
        let ranked = rank(&all, req);
        ranked.into_iter().find(|c| !avoid.contains(&c.id)).ok_or_else(|| ClientError::NoProvider {
            checked: all.len(),
            reasons: all
                .iter()
                .map(|c| match select::eligible(c, req) {
                    Err(e) => format!("#{} {e:?}", c.id),
                    Ok(()) => format!("#{} in use or failed recently", c.id),
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// How long a final receipt's acknowledgement is waited for before closing anyway (the
/// provider then claims the last acknowledged receipt): at a clean stop, and for a provider
/// being left for a broken SLA (which may not answer at all).
const FINAL_RECEIPT_WAIT: Duration = Duration::from_secs(10);
const LEAVING_RECEIPT_WAIT: Duration = Duration::from_secs(2);
/// A missing standby is looked for again after this, doubling up to [`STANDBY_RETRY_MAX`].
const STANDBY_RETRY_MIN: Duration = Duration::from_secs(2);
const STANDBY_RETRY_MAX: Duration = Duration::from_secs(60);
/// How often sessions left behind (after a failover) are checked for settling.
const TIDY_EVERY: Duration = Duration::from_secs(30);

/// Signs a final receipt on a live link and closes its session on chain.
async fn close_link(
    market: &AlloyMarket,
    metrics: &ClientMetrics,
    link: &Link,
    final_receipt: Option<Duration>,
) -> bool {
    if let (Some(wait), true) = (final_receipt, link.session.is_alive()) {
        if let Err(e) = link.session.finish(wait).await {
            tracing::warn!(provider = link.provider_id, error = %e, "the provider did not acknowledge the final receipt");
        }
    }
    link.session.close();
    metrics.bytes_done.fetch_add(link.session.counted(), std::sync::atomic::Ordering::Relaxed);
    match market.close(&link.terms).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(provider = link.provider_id, error = %e, "closing failed; the next start retries");
            false
        }
    }
}

/// Opens a session with the best provider (and, with `standby`, a second one with the next),
/// serves the local proxy until `shutdown`, failing over when a provider dies, then signs the
/// final receipts and closes every session.
///
/// # Errors
/// Each failure says what to do; nothing is left open on chain without a session file.
pub async fn run_connect(
    cfg: ClientConfig,
    signer: PrivateKeySigner,
    policy: SendPolicy,
    shutdown: impl Future<Output = ()>,
    ready: Option<tokio::sync::oneshot::Sender<Connected>>,
) -> Result<ConnectReport, ClientError> {
    let deposit = parse_tokens(&cfg.deposit)?;
    let req = cfg.requirements()?;
    let market = AlloyMarket::connect(&cfg.rpc_url, cfg.market, signer, policy).await?;
    let store = SessionStore::new(&cfg.data_dir);
    store.check_writable().map_err(ClientError::DataDir)?;
    let budget = std::sync::Arc::new(std::sync::Mutex::new(
        Budget::load(&cfg.data_dir, cfg.caps()?).map_err(ClientError::DataDir)?,
    ));
    // Bound before anything goes on chain: a taken port costs no deposit.
    let control = match cfg.control_listen {
        Some(addr) => Some(wirepact_admin::bind(addr).await.map_err(|source| ClientError::Control { addr, source })?),
        None => None,
    };
    if let Err(e) = tidy_leftovers(&market, &store, &budget).await {
        tracing::warn!(error = %e, "could not finish sessions of a previous run; will retry next start");
    }
    let listener =
        TcpListener::bind(cfg.listen).await.map_err(|source| ClientError::Listen { addr: cfg.listen, source })?;
    let proxy = listener.local_addr().map_err(|source| ClientError::Listen { addr: cfg.listen, source })?;
    let latency_tolerance_ms = market.params().await?.latencyToleranceMs;
    let (metrics, registry) = ClientMetrics::registered();
    let opener = Opener {
        market: &market,
        store: &store,
        budget: &budget,
        metrics: &metrics,
        cfg: &cfg,
        deposit,
        max_price: req.max_price.unwrap_or(U256::MAX),
        latency_tolerance_ms,
    };

    if let Some(c) = opener.capped() {
        return Err(c.into());
    }
    let first = opener.pick(&req, &[]).await?;
    let link = opener.open(&first).await?;
    // Full-device mode is set up before anyone is told the client is ready.
    let device = if cfg.tun { Some(full_device(&cfg, &market, proxy).await) } else { None };
    let device = match device {
        Some(Ok(d)) => Some(d),
        Some(Err(e)) => {
            close_link(&market, &metrics, &link, Some(FINAL_RECEIPT_WAIT)).await;
            return Err(e);
        }
        None => None,
    };
    if let Some(r) = ready {
        let _ = r.send(Connected {
            provider_id: link.provider_id,
            session_id: link.terms.session_id().0,
            proxy,
            price_per_gib: format_tokens(U256::from(link.terms.pricePerGiB)),
        });
    }
    let route = Failover::new(link);
    tracing::info!(%proxy, "proxy ready (SOCKS5 and HTTP CONNECT)");
    // Why new connections are refused (a spending cap), while they are.
    let (capped_tx, capped_rx) = tokio::sync::watch::channel::<Option<String>>(None);
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    if let Some(l) = control {
        let (r, b, c, m) = (route.clone(), budget.clone(), capped_rx.clone(), metrics.clone());
        let admin = wirepact_admin::Admin::new(registry, move || {
            let capped = c.borrow().clone();
            control::status(Some(&r), &b, capped, &m, proxy, unix_now())
        })
        .with_stop(stop.clone());
        tracing::info!(addr = %l.local_addr().map_or_else(|_| "?".into(), |a| a.to_string()), "control endpoint ready (`wirepact client status`, /metrics)");
        tokio::spawn(wirepact_admin::serve(l, std::sync::Arc::new(admin)));
    }
    // The local proxy, closed while a spending cap leaves no session to carry new connections
    // (they are refused at once, not left hanging), and opened again when there is room.
    let proxy_loop = async {
        let mut listener = Some(listener);
        let mut bind_errors = Repeats::default();
        loop {
            let l = match listener.take() {
                Some(l) => l,
                None => match TcpListener::bind(proxy).await {
                    Ok(l) => l,
                    Err(e) => {
                        match bind_errors.note(&e.to_string(), unix_now(), 60) {
                            Say::New => tracing::warn!(%proxy, error = %e, "cannot listen again; retrying"),
                            Say::Again(n) => tracing::warn!(%proxy, error = %e, repeats = n, "still cannot listen"),
                            Say::Quiet => {}
                        }
                        tokio::time::sleep(STANDBY_RETRY_MIN).await;
                        continue;
                    }
                },
            };
            let mut gate = capped_rx.clone();
            tokio::select! {
                () = serve_proxy(l, route.clone()) => return,
                _ = gate.wait_for(Option::is_some) => {}
            }
            let _ = gate.wait_for(Option::is_none).await;
        }
    };
    let stop_device = device.as_ref().map(fulldevice_stopper);
    let mut device_failed = None;
    let device_run = async {
        match device {
            Some(d) => run_device(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(device_run);

    // Two loops in one task. `watch` judges the links every 100 ms and fails over at once; it
    // never waits on the chain. `chain` does all that waits on it (closing dead links, opening a standby
    // or a new active link, settling sessions left behind), so a stalled RPC endpoint delays
    // only that work, never the watch.
    let watch = async {
        loop {
            // The client's own measurements: a provider that stalls or stays over its
            // latency promise is left like a dead one (its session gets a final receipt).
            let now = Instant::now();
            for (link, active) in
                route.active().map(|l| (l, true)).into_iter().chain(route.standby().map(|l| (l, false)))
            {
                if !link.session.is_alive() {
                    continue;
                }
                let seen = link.session.latency();
                if let Some(breach) =
                    link.watch.judge(link.started, &seen.recent, seen.unanswered_since, seen.last_received, now)
                {
                    tracing::warn!(provider = link.provider_id, %breach, active, "leaving the provider: its SLA is broken as this client measures it");
                    route.breached(&link, breach);
                }
            }
            let _ = route.check();
            route.promote_standby();
            route.judge_spending();
            route.changed(Duration::from_millis(100)).await;
        }
    };
    let chain = async {
        let mut next_open = Instant::now();
        let mut standby_backoff = STANDBY_RETRY_MIN;
        let mut last_miss: Option<String> = None;
        let mut next_tidy = Instant::now() + TIDY_EVERY;
        let (mut renew_errors, mut open_errors) = (Repeats::default(), Repeats::default());
        loop {
            // The caps are checked before any provider is looked at: while they leave no room,
            // no session is opened (and, without an active one, no connection is taken).
            let cap = opener.capped();
            let refusing = cap.is_some() && route.active().is_none();
            let reason = refusing.then(|| cap.as_ref().map(ToString::to_string)).flatten();
            if *capped_tx.borrow() != reason {
                match &reason {
                    Some(why) => tracing::warn!("{why}"),
                    None if capped_tx.borrow().is_some() => {
                        tracing::info!("the spending caps leave room again; accepting connections");
                    }
                    None => {}
                }
                capped_tx.send_replace(reason);
            }
            for dead in route.take_dead() {
                close_link(&market, &metrics, &dead, Some(LEAVING_RECEIPT_WAIT)).await;
            }
            for spent in route.take_retired() {
                tracing::info!(
                    provider = spent.provider_id,
                    bytes = spent.session.counted(),
                    "closing a session whose deposit is spent"
                );
                close_link(&market, &metrics, &spent, Some(FINAL_RECEIPT_WAIT)).await;
            }
            if route.wants_renewal() && route.active().is_some() && cap.is_none() && Instant::now() >= next_open {
                match opener.pick(&req, &route.avoid_for_renewal()).await {
                    Ok(c) => match opener.open(&c).await {
                        Ok(l) => {
                            tracing::info!(provider = l.provider_id, "next session ready; new streams go to it");
                            route.renew_with(l);
                            renew_errors.clear();
                        }
                        Err(e) => {
                            if renew_errors.note(&e.to_string(), unix_now(), 60) != Say::Quiet {
                                tracing::warn!(error = %e, "could not open the next session; retrying");
                            }
                            next_open = Instant::now() + STANDBY_RETRY_MIN;
                        }
                    },
                    Err(e) => {
                        if renew_errors.note(&e.to_string(), unix_now(), 60) != Say::Quiet {
                            tracing::warn!(error = %e, "no provider for the next session; retrying");
                        }
                        next_open = Instant::now() + STANDBY_RETRY_MIN;
                    }
                }
            }
            let need_active = route.active().is_none();
            let need_standby = need_active || (cfg.standby && route.standby().is_none());
            if need_standby && cap.is_none() && Instant::now() >= next_open {
                let opened = match opener.pick(&req, &route.avoid()).await {
                    Ok(c) => opener.open(&c).await,
                    Err(e) => Err(e),
                };
                match opened {
                    Ok(l) => {
                        tracing::info!(
                            provider = l.provider_id,
                            "{}",
                            if need_active { "new session ready" } else { "warm standby ready" }
                        );
                        route.set_standby(l);
                        route.promote_standby();
                        open_errors.clear();
                        standby_backoff = STANDBY_RETRY_MIN;
                        last_miss = None;
                    }
                    Err(e) => {
                        // Said once at INFO (and again when the reason changes); repeats are DEBUG.
                        let why = e.to_string();
                        if need_active {
                            match open_errors.note(&why, unix_now(), 60) {
                                Say::New => tracing::warn!(error = %why, "no session could be opened; retrying"),
                                Say::Again(n) => {
                                    tracing::warn!(error = %why, repeats = n, "still no session could be opened; retrying");
                                }
                                Say::Quiet => tracing::debug!(error = %why, "still no session"),
                            }
                        } else if last_miss.as_deref() != Some(why.as_str()) {
                            tracing::info!(reason = %why, "no standby provider available; retrying with backoff");
                        } else {
                            tracing::debug!(reason = %why, "still no standby provider");
                        }
                        last_miss = Some(why);
                        standby_backoff = (standby_backoff * 2).min(STANDBY_RETRY_MAX);
                    }
                }
                // Without any link, try again soon; a missing standby backs off.
                next_open = Instant::now() + if route.active().is_none() { STANDBY_RETRY_MIN } else { standby_backoff };
            }
            if Instant::now() >= next_tidy {
                let live: Vec<_> =
                    route.active().into_iter().chain(route.standby()).map(|l| l.terms.session_id().0).collect();
                if let Err(e) = tidy_sessions(&market, &store, &budget, &live).await {
                    tracing::debug!(error = %e, "settling sessions left behind failed; retried later");
                }
                next_tidy = Instant::now() + TIDY_EVERY;
            }
            route.changed(Duration::from_millis(250)).await;
        }
    };
    let manage = async {
        tokio::join!(watch, chain);
    };
    tokio::select! {
        () = shutdown => {}
        () = stop.notified() => tracing::info!("stop asked on the control endpoint"),
        () = proxy_loop => {}
        () = manage => {}
        e = &mut device_run => {
            tracing::error!(error = %e, "the full-device route stopped; closing the sessions");
            device_failed = Some(e);
        }
    }
    if let Some(stop) = stop_device {
        stop();
        // Let the stack stop by itself, so the whole-machine setup is undone before we exit.
        if device_failed.is_none() {
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut device_run).await;
        }
    }
    let active = route.active();
    let mut closed = true;
    for l in route.active().into_iter().chain(route.standby()) {
        closed &= close_link(&market, &metrics, &l, Some(FINAL_RECEIPT_WAIT)).await;
    }
    for dead in route.take_dead() {
        closed &= close_link(&market, &metrics, &dead, Some(LEAVING_RECEIPT_WAIT)).await;
    }
    for spent in route.take_all_retiring() {
        closed &= close_link(&market, &metrics, &spent, Some(FINAL_RECEIPT_WAIT)).await;
    }
    if let Some(e) = device_failed {
        return Err(ClientError::Tun(e));
    }
    let (provider_id, session_id, counted, acked) = active.map_or((0, alloy::primitives::B256::ZERO, 0, 0), |l| {
        (l.provider_id, l.terms.session_id().0, l.session.counted(), l.session.acknowledged())
    });
    Ok(ConnectReport {
        provider_id,
        session_id,
        bytes_counted: counted,
        bytes_acknowledged: acked,
        closed,
        failovers: route.failovers(),
        breaches: route.breaches(),
        renewals: route.renewals(),
    })
}

#[cfg(target_os = "linux")]
type Device = fulldevice::FullDevice;
#[cfg(not(target_os = "linux"))]
type Device = std::convert::Infallible;

/// Sets up full-device mode for `cfg` in front of the proxy at `proxy`.
#[cfg(target_os = "linux")]
async fn full_device(cfg: &ClientConfig, market: &AlloyMarket, proxy: SocketAddr) -> Result<Device, ClientError> {
    use fulldevice::{FullDevice, TunTarget};
    let target = match &cfg.tun_netns {
        Some(ns) => TunTarget::Netns(ns.clone()),
        None => {
            // The tunnels and the chain must not be routed into the device itself.
            let mut hosts: Vec<String> = candidates(market).await?.into_iter().map(|c| c.endpoint).collect();
            if let Some(h) = cfg.rpc_url.split("://").nth(1).and_then(|r| r.split('/').next()) {
                hosts.push(if h.contains(':') { h.to_owned() } else { format!("{h}:443") });
            }
            let mut bypass = Vec::new();
            for h in hosts {
                if let Ok(addrs) = tokio::net::lookup_host(h.as_str()).await {
                    bypass.extend(addrs.map(|a| a.ip()).filter(|ip| !ip.is_loopback()));
                }
            }
            bypass.sort_unstable();
            bypass.dedup();
            TunTarget::Device { bypass }
        }
    };
    let dns_server = cfg.tun_dns_server.unwrap_or(DEFAULT_DNS_SERVER);
    FullDevice::setup(&cfg.tun_name, target, proxy, cfg.tun_dns, dns_server)
        .await
        .map_err(|e| ClientError::Tun(e.to_string()))
}

#[cfg(not(target_os = "linux"))]
async fn full_device(_: &ClientConfig, _: &AlloyMarket, _: SocketAddr) -> Result<Device, ClientError> {
    Err(ClientError::Tun("only on Linux for now".into()))
}

#[cfg(target_os = "linux")]
fn fulldevice_stopper(d: &Device) -> impl FnOnce() {
    let t = d.stopper();
    move || t.cancel()
}
#[cfg(not(target_os = "linux"))]
fn fulldevice_stopper(d: &Device) -> impl FnOnce() {
    match *d {}
}

/// Runs the device until it fails; returns why.
#[cfg(target_os = "linux")]
async fn run_device(d: Device) -> String {
    match d.run().await {
        Ok(()) => "the packet stack stopped".into(),
        Err(e) => e.to_string(),
    }
}
#[cfg(not(target_os = "linux"))]
async fn run_device(d: Device) -> String {
    match d {}
}

async fn choice_key(market: &AlloyMarket, id: u32) -> Result<alloy::primitives::B256, ClientError> {
    Ok(Market::provider(market, ProviderId(id)).await?.tunnelKey)
}

fn rand_nonce() -> [u8; 16] {
    rand::random()
}

#[cfg(test)]
mod kind_tests {
    use super::*;

    /// The client's errors say what to do: a provider whose endpoint is a decoy is left for
    /// another; a short balance or a reached cap needs money, not a retry; a data_dir that
    /// cannot be written is a storage problem.
    #[test]
    fn client_errors_say_what_to_do_next() {
        let tunnel = ClientError::Tunnel { id: 1, endpoint: "x:1".into(), source: TransportError::NotATunnel };
        assert_eq!(tunnel.kind(), ErrorKind::Failover);
        let funds = ClientError::InsufficientFunds { need: "5".into(), have: "1".into(), wallet: "0".into() };
        assert_eq!(funds.kind(), ErrorKind::NeedFunds);
        assert_eq!(ClientError::Capped(Capped::Total { spent: 1, cap: 1 }).kind(), ErrorKind::NeedFunds);
        let io = StateError::Io { path: "/x".into(), source: std::io::Error::other("disk full") };
        assert_eq!(ClientError::DataDir(io).kind(), ErrorKind::Storage);
        let rpc_down = ChainError::ConfirmationTimeout { hash: alloy::primitives::B256::ZERO, waited_secs: 60 };
        assert_eq!(ClientError::Chain(rpc_down).kind(), ErrorKind::Retry);
    }
}
