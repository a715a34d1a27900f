//! `wirepact oracle`: registers and stakes, follows epochs, probes the audited providers at a
//! random moment of each epoch through a normal paid session, signs and publishes what it saw,
//! agrees with the other oracles on the epoch's one aggregate (the leader proposes the
//! observation set, everyone recomputes and signs the same digest), and (as the leader, or as
//! anyone once the leader is late) submits it.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::primitives::{Address, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use wirepact_chain::bindings::{provider_status, WirepactMarket};
use wirepact_chain::{AlloyMarket, ChainError, Market, ReportSubmission, SendPolicy};
use wirepact_proto::verdicts::{aggregate, base_of, first_creditable, Aggregate, Row, Sla, Tolerances, VerdictTree};
use wirepact_proto::{
    decode_observations, domain, encode_observations, parse_tokens, price_ceiling, sign_observations, sign_report,
    Kbps, Millis, Observation, Observations, ParseTokenError, ProviderId,
};

use crate::exchange::{
    fetch, fetch_report, fetch_verdicts, router, verify, verify_proposal, verify_report_signature, Collected,
    ProposalRejected, Published, Reports, SignedObservations, SignedReport,
};
use crate::monitor::{Monitor, ProbeResult, ProbeRow};
use crate::probe::{probe_through_tunnel, Measurement, ProbeError, ProbePlan, ProbeTarget, Sink};
use crate::secrets::{fetch_secret, SecretDesk, Secrets};
use crate::settle::ProbeSessions;
use alloy::primitives::B256;
use wirepact_proto::audit::{audit_bps_at, audit_seed, is_audited, seed_commit};
use wirepact_proto::observations::MAX_LATENCY_MS;

/// The oracle's configuration (`oracle.toml`; see `examples/oracle.toml`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OracleConfig {
    pub rpc_url: String,
    pub market: Address,
    /// Observations this oracle signed are appended to `observations.jsonl` here.
    pub data_dir: PathBuf,
    /// HTTP address peers fetch observations from.
    pub listen: SocketAddr,
    /// What peers dial, as registered on chain (default: `listen`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The probe sink (echo and paced source); providers must be able to reach it.
    pub sink_listen: SocketAddr,
    /// Stake locked at registration, in tokens (default: the market's minimum).
    #[serde(default)]
    pub stake: Option<String>,
    /// Tokens deposited into each probe session (raised to the market's minimum deposit for
    /// the provider when that is higher). Each deposit comes back, less what the probe used,
    /// once the market's claim grace after the probe has passed.
    #[serde(default = "default_probe_deposit")]
    pub probe_deposit: String,
    /// How far above the provider's price at full utilisation (its base price times the
    /// market's congestion factor, read just before the probe) the oracle still opens the probe
    /// session, in percent; a provider raising its base price in front of the probe makes the
    /// open fail (the probe is then "not measured") instead of taking the whole deposit.
    #[serde(default = "default_price_tolerance_pct")]
    pub price_tolerance_pct: u32,
    /// Probes start at a random moment within this share of the epoch (0-100).
    #[serde(default = "default_probe_window_pct")]
    pub probe_window_pct: u64,
    /// A non-leader submits if the epoch is still unreported this far into the next one (0-100).
    #[serde(default = "default_fallback_pct")]
    pub fallback_pct: u64,
    /// Probe a provider a second time when the first probe looks like a violation (unreachable,
    /// or under the SLA rate) and report the better reading, so that one bad moment on this
    /// oracle's own path never becomes a violation. The simulator shows why it matters
    /// (`scenarios/liars.toml`): with f colluding oracles in a report, one honest oracle's bad
    /// reading would otherwise decide the median. Costs one more probe per suspect provider.
    #[serde(default = "default_true")]
    pub confirm_suspects: bool,
    /// Test knob: report the opposite of what was measured (0 for a provider that delivered,
    /// full speed for one that did not). For tests and the devnet only.
    #[serde(default)]
    pub lie: bool,
    /// The operator's page (`/`), status (`/api/status`) and Prometheus metrics (`/metrics`),
    /// read-only. Keep it on loopback (no authentication); off when not set.
    #[serde(default)]
    pub admin_listen: Option<SocketAddr>,
}

fn default_true() -> bool {
    true
}
fn default_probe_deposit() -> String {
    "1".into()
}
fn default_price_tolerance_pct() -> u32 {
    5
}
fn default_probe_window_pct() -> u64 {
    40
}
fn default_fallback_pct() -> u64 {
    30
}

#[derive(Debug, thiserror::Error)]
pub enum OracleError {
    #[error("config: {0}")]
    Config(String),
    #[error(transparent)]
    Token(#[from] ParseTokenError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

/// What a started oracle reports.
#[derive(Debug, Clone, Serialize)]
pub struct OracleInfo {
    pub oracle: Address,
    pub listen: SocketAddr,
    pub sink: SocketAddr,
    /// Where the operator's page and metrics are served, if they are.
    pub admin: Option<SocketAddr>,
}

/// `IWirepactMarket.OracleStatus.Active` (the ABI carries the enum as a `uint8`).
const ORACLE_ACTIVE: u8 = 1;

pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// An audited provider as the oracle probes it.
#[derive(Debug, Clone)]
struct Target {
    id: u32,
    endpoint: String,
    tunnel_key: alloy::primitives::B256,
    sla_kbps: u64,
}

/// Tries to seed an epoch before giving it up, and the pause between tries.
const SEED_ATTEMPTS: u32 = 8;
const SEED_RETRY: Duration = Duration::from_millis(500);

struct Ctx {
    cfg: OracleConfig,
    market: AlloyMarket,
    signer: PrivateKeySigner,
    sink: Sink,
    published: Published,
    http: reqwest::Client,
    plan: ProbePlan,
    epoch_len: u64,
    genesis: u64,
    /// Held from the balance check to the session's opening: the probes of two epochs may
    /// overlap, and both must not count the same deposited tokens.
    funding: tokio::sync::Mutex<()>,
    /// Probe sessions to settle once their claim grace is over.
    unsettled: ProbeSessions,
    /// The market's congestion factor (price at full utilisation = base * (1 + alpha)).
    alpha_bps: u32,
    /// The reports this oracle signed, and the verdict lists it serves.
    reports: Reports,
    tolerances: Tolerances,
    /// Epochs per reward period (a leaf's base counts within one).
    period_epochs: u64,
    /// Final verdict trees already fetched and checked, by epoch.
    final_tree_cache: tokio::sync::Mutex<std::collections::BTreeMap<u64, VerdictTree>>,
    /// The audit secrets this oracle drew or received, and the route that hands them to peers.
    secrets: Secrets,
    desk: SecretDesk,
    audit_bps: u16,
    /// The market's `auditHourWeights` (0: every hour alike).
    audit_hour_weights: alloy::primitives::U256,
    /// What the operator's page and metrics show.
    monitor: Monitor,
}

/// What one probe of one provider came to.
#[derive(Debug, Clone)]
enum Probed {
    /// The probe ran (or the provider's endpoint or tunnel failed: then unreachable).
    Measured(Measurement),
    /// The probe could not run for a reason that is not the provider's fault: it was full, or
    /// this oracle's funds, RPC or sink failed. Signed as "not measured", never a violation.
    NotMeasured(String),
}

fn mbps(kbps: u64) -> f64 {
    #[allow(clippy::cast_precision_loss)] // display
    let v = kbps as f64 / 1000.0;
    v
}

impl Ctx {
    /// Reads this oracle's stake and standing for the operator's page.
    async fn read_standing(&self) {
        if let Ok(o) = self.view().oracle(self.signer.address()).call().await {
            let status = match o.status {
                1 => "active".to_string(),
                2 => format!("leaving (signs until epoch {}; stake unbonds)", o.untilEpoch),
                3 => "SLASHED for equivocation".to_string(),
                _ => "not registered".to_string(),
            };
            self.monitor.standing(U256::from(o.stake), &status);
        }
    }

    /// The epoch at unix time `now`, as the contract computes it from a block at that time.
    /// (Read from the clock, not a view call: a devnet mines only on transactions.)
    fn epoch_at(&self, now: u64) -> u64 {
        now.saturating_sub(self.genesis) / self.epoch_len.max(1)
    }

    fn view(&self) -> WirepactMarket::WirepactMarketInstance<&alloy::providers::DynProvider> {
        WirepactMarket::new(self.market.address(), self.market.rpc())
    }

    /// The oracles that sign for `epoch` (joined before it, not gone by then, staked), by
    /// address, with endpoint and stake: the set the market counts stake over for that epoch.
    async fn oracles(&self, epoch: u64) -> Result<Vec<(Address, String, u128)>, ChainError> {
        let v = self.view();
        let n = v.oracleCount().call().await.map_err(|e| ChainError::from_contract("reading oracles", e))?;
        let mut out = Vec::new();
        for i in 0..n.to::<u64>() {
            let a =
                v.oracleAt(U256::from(i)).call().await.map_err(|e| ChainError::from_contract("reading oracles", e))?;
            let o = v.oracle(a).call().await.map_err(|e| ChainError::from_contract("reading an oracle", e))?;
            let until = u64::from(o.untilEpoch);
            if o.stake != 0 && u64::from(o.fromEpoch) <= epoch && (until == 0 || epoch < until) {
                out.push((a, o.endpoint, o.stake));
            }
        }
        out.sort_by_key(|(a, _, _)| *a);
        Ok(out)
    }

    /// The audit secret of `epoch`: `None` if none was committed (the chain seed alone draws),
    /// else the secret that opens the market's commitment, from this oracle's store, from the
    /// chain once revealed, or from a peer (sealed to this oracle, checked, kept).
    async fn secret_for(&self, epoch: u64) -> Result<Option<B256>, String> {
        let c =
            self.view().seedCommitment(epoch).call().await.map_err(|e| {
                format!("reading the seed commitment: {}", ChainError::from_contract("seedCommitment", e))
            })?;
        if c.commit.is_zero() {
            return Ok(None);
        }
        if !c.reveal.is_zero() {
            return Ok(Some(c.reveal));
        }
        if let Some(s) = self.secrets.matching(epoch, c.commit) {
            return Ok(Some(s));
        }
        let mut last = String::from("no peer to ask");
        let me = self.signer.address();
        // The signers of the commitment (epoch - 2) hold it; so do the oracles of the epoch.
        for from in [epoch.saturating_sub(2), epoch] {
            for (a, endpoint, _) in self.oracles(from).await.map_err(|e| e.to_string())? {
                if a == me {
                    continue;
                }
                match self.fetch_and_keep(&endpoint, epoch, c.commit).await {
                    Ok(s) => return Ok(Some(s)),
                    Err(e) => last = e,
                }
            }
        }
        Err(format!("no oracle handed out the audit secret of epoch {epoch} (last: {last})"))
    }

    /// The providers `epoch` audits, drawn from the chain seed and the oracles' secret.
    async fn audited(&self, epoch: u64) -> Result<Vec<Target>, String> {
        let chain_seed = self
            .view()
            .epochSeed(epoch)
            .call()
            .await
            .map_err(|e| format!("reading the epoch seed: {}", ChainError::from_contract("epochSeed", e)))?;
        let seed = audit_seed(chain_seed, self.secret_for(epoch).await?);
        let mut out = Vec::new();
        for id in 1..=self.market.provider_count().await.map_err(|e| e.to_string())? {
            let bps = audit_bps_at(self.audit_bps, self.audit_hour_weights, self.genesis, self.epoch_len, epoch);
            if !is_audited(seed, id, bps) {
                continue;
            }
            let p = self.market.provider(ProviderId(id)).await.map_err(|e| e.to_string())?;
            if p.status != provider_status::ACTIVE {
                continue;
            }
            out.push(Target {
                id,
                // Probes go the way most customers do: TLS to "host:port" (a veil advert after
                // it is not dialled by probes).
                endpoint: wirepact_tunnel::veil::split_endpoint(&p.endpoint).0.to_owned(),
                tunnel_key: p.tunnelKey,
                sla_kbps: u64::from(p.sessionMbps) * 1000,
            });
        }
        Ok(out)
    }

    /// Opens a paid session with `t`, probes it, closes the session (settled later).
    async fn probe_one(&self, t: &Target) -> Probed {
        match self.try_probe(t).await {
            Ok(m) => Probed::Measured(m),
            Err(reason) => {
                tracing::warn!(provider = t.id, %reason, "provider not measured (not its fault); signed as such");
                Probed::NotMeasured(reason)
            }
        }
    }

    /// `Err` only for what is not the provider's fault; a provider whose endpoint or tunnel
    /// fails is `Ok(unreachable)`.
    async fn try_probe(&self, t: &Target) -> Result<Measurement, String> {
        // Our own sink first: if it does not answer, no probe can measure anything.
        match tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(self.sink.addr)).await {
            Ok(Ok(_)) => {}
            _ => return Err(format!("this oracle's probe sink {} does not answer", self.sink.addr)),
        }
        let configured = parse_tokens(&self.cfg.probe_deposit).map_err(|e| e.to_string())?;
        let quote = self.market.quote(ProviderId(t.id)).await.map_err(|e| format!("reading the quote: {e}"))?;
        if quote.is_zero() {
            return Err("the provider is full (or not open): no capacity for a probe session".into());
        }
        let floor = self
            .view()
            .minDeposit(t.id)
            .call()
            .await
            .map_err(|e| format!("reading the minimum deposit: {}", ChainError::from_contract("minDeposit", e)))?;
        let deposit = configured.max(floor);
        // The ceiling is the provider's price at full utilisation (other oracles' probes and
        // clients may fill it in the meantime: congestion is not front-running), plus the
        // tolerance: only a raise of the base price in front of the probe is refused.
        let base = self
            .market
            .provider(ProviderId(t.id))
            .await
            .map_err(|e| format!("reading the provider: {e}"))?
            .basePricePerGiB;
        let full = U256::from(base) * U256::from(10_000u64 + u64::from(self.alpha_bps)) / U256::from(10_000u64);
        let max_price = price_ceiling(full.max(quote), self.cfg.price_tolerance_pct.saturating_mul(100));
        let key = PrivateKeySigner::random();
        let opened = {
            let _funding = self.funding.lock().await;
            let have = self
                .market
                .balance_of(self.market.account())
                .await
                .map_err(|e| format!("reading this oracle's market balance: {e}"))?;
            if have < deposit {
                self.market
                    .deposit(deposit - have)
                    .await
                    .map_err(|e| format!("funding the probe from this oracle's wallet: {e}"))?;
            }
            self.market
                .open_session(ProviderId(t.id), deposit, max_price, key.address())
                .await
                .map_err(|e| format!("opening a probe session: {e}"))?
        };
        let result = async {
            let Some(addr) = tokio::net::lookup_host(&t.endpoint).await.ok().and_then(|mut a| a.next()) else {
                tracing::info!(provider = t.id, endpoint = %t.endpoint, "provider unreachable: its endpoint does not resolve");
                return Ok(Measurement::unreachable());
            };
            let dom = domain(self.market.chain_id(), self.market.address());
            let target = ProbeTarget {
                addr,
                endpoint: t.endpoint.clone(),
                tunnel_key: t.tunnel_key,
                session_id: opened.id.0,
                opened_at: opened.terms.openedAt.to::<u64>(),
                sla_kbps: t.sla_kbps,
            };
            match probe_through_tunnel(&target, &key, &dom, self.sink, &self.plan).await {
                Ok(m) => Ok(m),
                Err(ProbeError::Sign(e)) => Err(format!("this oracle cannot sign: {e}")),
                Err(e) => {
                    tracing::info!(provider = t.id, error = %e, "provider unreachable");
                    Ok(Measurement::unreachable())
                }
            }
        }
        .await;
        let closed = match self.market.close(&opened.terms).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "closing the probe session failed; will retry");
                false
            }
        };
        self.unsettled.add(&opened.terms, closed, unix_now());
        result
    }

    fn persist(&self, o: &SignedObservations, measured: &[(u32, Measurement)], unmeasured: &[(u32, String)]) {
        let line = observation_line(o, measured, unmeasured);
        append_line(&self.cfg.data_dir.join("observations.jsonl"), &line, "observations");
    }

    async fn is_seeded(&self, epoch: u64) -> bool {
        self.view().epochSeed(epoch).call().await.is_ok_and(|s| s != alloy::primitives::B256::ZERO)
    }

    /// One epoch: settle due probe sessions, probe, sign, publish; then lead or stand by.
    async fn run_epoch(self: Arc<Self>, epoch: u64) {
        let pass = self.unsettled.pass(&self.market, unix_now()).await;
        if pass.settled > 0 || pass.waiting > 0 {
            tracing::info!(epoch, settled = pass.settled, waiting = pass.waiting, "probe sessions settled");
        }
        // Signing a second, different observation for an epoch is equivocation, and the market
        // slashes the whole stake for it: after a restart, what was signed is reused.
        if let Some(mine) = self.published.get(epoch) {
            tracing::info!(epoch, "this epoch's observations were signed before a restart; not probing again");
            let providers = mine.providers.to_vec();
            return self.agree_and_submit(epoch, &providers, mine).await;
        }
        // Seed the audit draw unless another oracle already has (first call wins on chain).
        // `beginEpoch` seeds the epoch of the block's timestamp: right at the boundary the
        // chain's clock may still be in the previous epoch, which leaves this one unseeded and
        // unaudited. So check, and try again for a few seconds.
        let mut seeded = self.is_seeded(epoch).await;
        for attempt in 0..SEED_ATTEMPTS {
            if seeded {
                break;
            }
            if let Err(e) = self.market.begin_epoch().await {
                tracing::warn!(epoch, error = %e, "could not seed the epoch (another oracle may have)");
            }
            seeded = self.is_seeded(epoch).await;
            if !seeded && attempt + 1 < SEED_ATTEMPTS {
                tokio::time::sleep(SEED_RETRY).await;
            }
        }
        if !seeded {
            tracing::warn!(epoch, "the epoch is not seeded on chain (is the chain's clock far from ours?)");
        }
        let targets = match self.audited(epoch).await {
            Ok(t) => t,
            Err(e) => {
                self.monitor.missed();
                return tracing::warn!(epoch, error = %e, "cannot read the audit set; epoch missed");
            }
        };
        self.read_standing().await;
        if targets.is_empty() {
            // Still agree on a report: it carries the commitment to the secret of epoch + 2.
            tracing::info!(epoch, seeded, "nothing audited this epoch");
        } else {
            // A random moment within the probe window.
            let window_ms = self.epoch_len * 1000 * self.cfg.probe_window_pct.min(100) / 100;
            let delay = rand::random_range(0..window_ms.max(1));
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }

        let mut measured = Vec::new();
        let mut unmeasured = Vec::new();
        let mut obs = Vec::new();
        for t in &targets {
            let mut m = match self.probe_one(t).await {
                Probed::Measured(m) => m,
                Probed::NotMeasured(reason) => {
                    self.monitor.probed(ProbeRow {
                        epoch,
                        provider: t.id,
                        result: ProbeResult::NotMeasured,
                        measured_mbps: 0.0,
                        promised_mbps: mbps(t.sla_kbps),
                        latency_ms: 0,
                        reason: Some(reason.clone()),
                    });
                    obs.push(Observation::not_measured(ProviderId(t.id)));
                    unmeasured.push((t.id, reason));
                    continue;
                }
            };
            if self.cfg.confirm_suspects && m.looks_like_violation(t.sla_kbps) {
                tracing::info!(
                    epoch,
                    provider = t.id,
                    "the probe looks like a violation; confirming with a second one"
                );
                if let Probed::Measured(again) = self.probe_one(t).await {
                    m = m.better(again);
                }
            }
            let (mut thr, lat) = (m.throughput_kbps, m.latency_us.div_ceil(1000));
            self.monitor.probed(ProbeRow {
                epoch,
                provider: t.id,
                result: match (m.reachable, m.looks_like_violation(t.sla_kbps)) {
                    (false, _) => ProbeResult::Unreachable,
                    (true, true) => ProbeResult::BelowSla,
                    (true, false) => ProbeResult::Available,
                },
                measured_mbps: mbps(m.throughput_kbps),
                promised_mbps: mbps(t.sla_kbps),
                latency_ms: lat,
                reason: None,
            });
            if self.cfg.lie {
                thr = if thr >= t.sla_kbps * 9 / 10 { 0 } else { t.sla_kbps * 2 };
            }
            tracing::info!(
                epoch,
                provider = t.id,
                reachable = m.reachable,
                kbps = m.throughput_kbps,
                latency_us = m.latency_us,
                "probed"
            );
            obs.push(Observation {
                provider: ProviderId(t.id),
                throughput: Kbps(u32::try_from(thr).unwrap_or(u32::MAX)),
                latency: Millis(u32::try_from(lat).unwrap_or(MAX_LATENCY_MS).min(MAX_LATENCY_MS)),
                reachable: m.reachable,
                measured: true,
            });
            measured.push((t.id, m));
        }
        let Ok((providers, row)) = encode_observations(&obs) else {
            return tracing::error!(epoch, "observations do not encode");
        };
        let dom = domain(self.market.chain_id(), self.market.address());
        let msg = Observations { epoch, providers: providers.clone().into(), measurements: row.clone().into() };
        let Ok(signature) = sign_observations(&self.signer, &dom, &msg) else {
            return tracing::error!(epoch, "cannot sign observations");
        };
        let mine = SignedObservations {
            oracle: self.signer.address(),
            epoch,
            providers: providers.clone().into(),
            row: row.into(),
            signature,
        };
        self.persist(&mine, &measured, &unmeasured);
        self.published.put(mine.clone());
        self.agree_and_submit(epoch, &providers, mine).await;
    }

    /// The epoch's oracle set with stakes, and its eligible total.
    async fn epoch_view(&self, epoch: u64) -> Result<EpochView, ChainError> {
        let set = self.oracles(epoch).await?;
        self.desk.set_oracles(set.iter().map(|(a, _, _)| *a));
        let stakes = set.iter().map(|(a, _, stake)| (*a, *stake)).collect();
        let oracles = set.into_iter().map(|(a, endpoint, _)| (a, endpoint)).collect();
        let eligible = self
            .view()
            .oracleStakeAt(epoch)
            .call()
            .await
            .map_err(|e| ChainError::from_contract("reading the epoch's oracle stake", e))?;
        Ok(EpochView { oracles, stakes, eligible: u128::try_from(eligible).unwrap_or(u128::MAX) })
    }

    /// The aggregate of a proposal (rows weighted by `weights`), as every oracle computes it.
    async fn aggregate(
        &self,
        epoch: u64,
        providers: &[u8],
        proposal: &[SignedObservations],
        weights: &[u128],
        eligible: u128,
    ) -> Result<Aggregate, String> {
        let mut rows = Vec::with_capacity(proposal.len());
        for o in proposal {
            rows.push(decode_observations(providers, &o.row).map_err(|e| format!("row of {}: {e}", o.oracle))?);
        }
        let ids: Vec<u32> = providers.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
        let first = epoch / self.period_epochs * self.period_epochs;
        let mut slas = HashMap::new();
        let mut creditable = HashMap::new();
        for &id in &ids {
            let p = self.market.provider(ProviderId(id)).await.map_err(|e| format!("reading provider {id}: {e}"))?;
            if p.status != provider_status::NONE {
                slas.insert(id, Sla { session_mbps: p.sessionMbps, max_latency_ms: p.maxLatencyMs });
                let from = first_creditable(first, u64::from(p.registeredEpoch), u64::from(p.jailedUntilEpoch));
                creditable.insert(id, from);
            }
        }
        let trees = self.final_trees(first, epoch).await?;
        let weighted: Vec<Row<'_>> =
            rows.iter().zip(weights).map(|(r, &stake)| Row { stake, observations: r }).collect();
        aggregate(
            epoch,
            &ids,
            &weighted,
            eligible,
            |id| slas.get(&id).copied(),
            |id| creditable.get(&id).map_or(0, |&from| base_of(&trees, id, from, epoch)),
            self.tolerances,
        )
        .map_err(|e| e.to_string())
    }

    /// The verdict trees of the reported epochs `first..=epoch - 2` (final: their report
    /// windows have closed), from what this oracle signed or from a peer, each checked against
    /// the market's root. Without all of them this oracle cannot count the leaves' bases.
    async fn final_trees(&self, first: u64, epoch: u64) -> Result<Vec<VerdictTree>, String> {
        let mut out = Vec::new();
        for e in first..epoch.saturating_sub(1) {
            if let Some(t) = self.final_tree_cache.lock().await.get(&e) {
                out.push(t.clone());
                continue;
            }
            let root =
                self.market.verdict_root(e).await.map_err(|err| format!("reading the root of epoch {e}: {err}"))?;
            if root.is_zero() {
                continue;
            }
            let mut tree = self.reports.verdicts(e).map(|v| VerdictTree::new(e, v.leaves)).filter(|t| t.root() == root);
            if tree.is_none() {
                for (_, endpoint, _) in self.oracles(e).await.map_err(|err| err.to_string())? {
                    if let Some(v) = fetch_verdicts(&self.http, &endpoint, e).await {
                        let t = VerdictTree::new(e, v.leaves.clone());
                        if t.root() == root {
                            self.reports.put_verdicts(v);
                            tree = Some(t);
                            break;
                        }
                    }
                }
            }
            let tree =
                tree.ok_or_else(|| format!("no oracle serves the verdicts of epoch {e} matching the market's root"))?;
            let mut cache = self.final_tree_cache.lock().await;
            cache.insert(e, tree.clone());
            // Only the current and the previous period are ever needed.
            let keep = first.saturating_sub(self.period_epochs);
            *cache = cache.split_off(&keep);
            out.push(tree);
        }
        Ok(out)
    }

    /// Signs `agg` (computed from `proposal`, proposed by `proposer`, committing `seed_commit`),
    /// keeps and publishes it. Never twice for one epoch: a second, different report is
    /// equivocation.
    fn sign_report(
        &self,
        agg: &Aggregate,
        proposer: Address,
        proposal: Vec<SignedObservations>,
        seed_commit: B256,
    ) -> Option<SignedReport> {
        if let Some(already) = self.reports.get(agg.epoch) {
            return Some(already);
        }
        let dom = domain(self.market.chain_id(), self.market.address());
        let report = agg.report(seed_commit);
        let signature = match sign_report(&self.signer, &dom, &report) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(epoch = agg.epoch, error = %e, "cannot sign the report");
                return None;
            }
        };
        let signed = SignedReport {
            oracle: self.signer.address(),
            epoch: agg.epoch,
            proposer,
            proposal,
            root: report.root,
            available: report.available,
            violations: report.violations,
            seed_commit,
            signature,
        };
        // On disk before it is served: after a crash the same report is reloaded, never re-signed.
        self.persist_report(&signed, &agg.tree.leaves());
        self.reports.put(signed.clone(), agg.tree.leaves());
        tracing::info!(
            epoch = agg.epoch,
            %proposer,
            available = report.available,
            violators = ?agg.violators(),
            "signed the epoch's report"
        );
        Some(signed)
    }

    fn persist_report(&self, r: &SignedReport, leaves: &[(u32, u32)]) {
        let line = serde_json::json!({ "signed": r, "leaves": leaves });
        append_line(&self.cfg.data_dir.join("reports.jsonl"), &line, "the signed report");
    }

    /// Fetches (from the proposer at `endpoint`) and keeps the audit secret a proposal commits
    /// to for epoch + 2: this oracle signs only a commitment it can open, so the quorum that
    /// signs holds the secret it will need to probe that epoch.
    async fn receive_secret(&self, r: &SignedReport, endpoint: &str) -> Result<(), String> {
        let target = r.epoch + 2;
        if self.secrets.matching(target, r.seed_commit).is_some() {
            return Ok(());
        }
        self.fetch_and_keep(endpoint, target, r.seed_commit)
            .await
            .map(|_| ())
            .map_err(|e| format!("the proposer's audit secret for epoch {target}: {e}"))
    }

    /// Fetches the secret of `epoch` behind `commit` from the oracle at `endpoint` (sealed to
    /// this oracle, checked against the commitment) and keeps it on disk: a secret that could
    /// not be kept is not used, as a restart would lose it.
    async fn fetch_and_keep(&self, endpoint: &str, epoch: u64, commit: B256) -> Result<B256, String> {
        let (chain, market) = (self.market.chain_id(), self.market.address());
        let secret = fetch_secret(&self.http, endpoint, &self.signer, chain, market, epoch, commit).await?;
        if !self.secrets.put(epoch, secret) {
            return Err(format!("cannot keep the audit secret of epoch {epoch} on disk"));
        }
        Ok(secret)
    }

    /// Checks a peer's proposal and, if its report is the aggregate of its rows, returns that
    /// aggregate.
    /// `Err((reason, wrong))`: `wrong` if the proposal itself is at fault (checking it again
    /// cannot help), not if this oracle could not read what it needs (the chain, a peer).
    async fn check_proposal(
        &self,
        r: &SignedReport,
        providers: &[u8],
        view: &EpochView,
    ) -> Result<Aggregate, (String, bool)> {
        let dom = domain(self.market.chain_id(), self.market.address());
        verify_report_signature(r, &dom).map_err(|e| (e.to_string(), true))?;
        let weights = verify_proposal(&r.proposal, &dom, r.epoch, providers, &view.stakes, view.eligible)
            .map_err(|e| (e.to_string(), true))?;
        let agg =
            self.aggregate(r.epoch, providers, &r.proposal, &weights, view.eligible).await.map_err(|e| (e, false))?;
        if !r.matches(&agg) {
            return Err((ProposalRejected::WrongAggregate.to_string(), true));
        }
        Ok(agg)
    }

    /// Agrees on the epoch's report and submits it. The leader (by epoch, over the epoch's
    /// oracles) proposes the observation set once a quorum's rows are in (all of them, or
    /// whoever answered by the epoch's end); every oracle recomputes the aggregate from it and
    /// signs the one digest; the leader submits once signers hold more than two thirds of the
    /// stake. If the epoch is still unreported `fallback_pct` into the next one, any oracle
    /// may propose (if nobody did) and submit.
    async fn agree_and_submit(&self, epoch: u64, providers: &[u8], mine: SignedObservations) {
        let view = match self.epoch_view(epoch).await {
            Ok(v) if !v.oracles.is_empty() => v,
            Ok(_) => return tracing::warn!(epoch, "no oracle signs for this epoch; epoch missed"),
            Err(e) => return tracing::warn!(epoch, error = %e, "cannot read the oracle set; epoch missed"),
        };
        let start = self.genesis + epoch * self.epoch_len;
        let deadline = start + 2 * self.epoch_len; // the contract accepts epoch e during e and e+1
        let fallback_at = start + self.epoch_len + self.epoch_len * self.cfg.fallback_pct.min(100) / 100;
        let mut round = Round::new(self, epoch, providers, view, mine);
        while unix_now() + 1 < deadline {
            match self.view().isReported(epoch).call().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::debug!(epoch, error = %e, "cannot read report state"),
            }
            let fallback = unix_now() >= fallback_at;
            if round.signed.is_none() {
                round.follow(fallback).await;
            }
            if round.signed.is_none() && (round.me == round.leader || fallback) && round.propose().await == Step::Done {
                return;
            }
            if round.signed.is_some() && round.gather_and_submit(fallback).await == Step::Done {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tracing::warn!(
            epoch,
            rows = round.rows.by_oracle.len(),
            signatures = round.sigs.len(),
            "no quorum before the report window closed; epoch missed"
        );
    }
}

/// Whether an epoch's agreement goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Continue,
    Done,
}

/// One epoch's agreement as this oracle goes through it: follow a proposal, or propose, then
/// gather the signatures and submit.
struct Round<'a> {
    ctx: &'a Ctx,
    epoch: u64,
    providers: &'a [u8],
    view: EpochView,
    me: Address,
    leader: Address,
    dom: alloy::sol_types::Eip712Domain,
    /// Rows collected to propose (this oracle's own first).
    rows: Collected,
    /// The report this oracle signed for the epoch, if any.
    signed: Option<SignedReport>,
    sigs: HashMap<Address, Bytes>,
    /// Peers whose refusal was logged (once each).
    refused: std::collections::HashSet<Address>,
    /// Proposals already found wrong, by proposer (their signature): not checked again.
    wrong: HashMap<Address, Bytes>,
}

impl<'a> Round<'a> {
    fn new(ctx: &'a Ctx, epoch: u64, providers: &'a [u8], view: EpochView, mine: SignedObservations) -> Self {
        let n = view.oracles.len() as u64;
        let leader = view.oracles[usize::try_from(epoch % n.max(1)).unwrap_or(0)].0;
        let mut rows = Collected::default();
        rows.by_oracle.insert(mine.oracle, mine);
        Round {
            ctx,
            epoch,
            providers,
            me: ctx.signer.address(),
            leader,
            dom: domain(ctx.market.chain_id(), ctx.market.address()),
            rows,
            signed: ctx.reports.get(epoch),
            sigs: HashMap::new(),
            refused: std::collections::HashSet::new(),
            wrong: HashMap::new(),
            view,
        }
    }

    /// Follows a proposal (the leader's, or anyone's once the leader is late): checks it,
    /// fetches the audit secret it commits to, and signs it.
    async fn follow(&mut self, fallback: bool) {
        let ctx = self.ctx;
        for (a, endpoint) in &self.view.oracles {
            if *a == self.me || !(*a == self.leader || fallback) {
                continue;
            }
            let Some(r) = fetch_report(&ctx.http, endpoint, self.epoch).await else { continue };
            if r.oracle != *a || r.proposer != *a || self.wrong.get(a) == Some(&r.signature) {
                continue;
            }
            let checked = match ctx.check_proposal(&r, self.providers, &self.view).await {
                Ok(_) if r.seed_commit.is_zero() => {
                    Err(("the proposal commits no audit secret for epoch + 2".to_string(), true))
                }
                Ok(agg) => ctx.receive_secret(&r, endpoint).await.map(|()| agg).map_err(|e| (e, false)),
                Err(e) => Err(e),
            };
            match checked {
                Ok(agg) => {
                    self.signed = ctx.sign_report(&agg, r.proposer, r.proposal.clone(), r.seed_commit);
                    return;
                }
                Err((reason, is_wrong)) => {
                    if self.refused.insert(*a) {
                        tracing::warn!(epoch = self.epoch, proposer = %a, %reason, "proposal refused");
                    }
                    if is_wrong {
                        self.wrong.insert(*a, r.signature.clone());
                    }
                }
            }
        }
    }

    /// Collects rows until a quorum's are in (everyone's, or by the epoch's end), then
    /// aggregates them and signs the report with a commitment to a fresh secret for epoch + 2.
    async fn propose(&mut self) -> Step {
        let (ctx, epoch) = (self.ctx, self.epoch);
        let addrs: Vec<Address> = self.view.oracles.iter().map(|(a, _)| *a).collect();
        for (a, endpoint) in &self.view.oracles {
            if self.rows.by_oracle.contains_key(a) {
                continue;
            }
            if let Some(o) = fetch(&ctx.http, endpoint, epoch).await {
                match verify(&o, &self.dom, epoch, self.providers, &addrs) {
                    Ok(()) if o.oracle == *a => {
                        self.rows.by_oracle.insert(*a, o);
                    }
                    Ok(()) => {}
                    Err(e) => {
                        if self.refused.insert(*a) {
                            tracing::warn!(epoch, peer = %a, reason = %e, "observations refused");
                        }
                    }
                }
            }
        }
        let proposal = self.rows.ordered();
        let epoch_over = ctx.epoch_at(unix_now()) > epoch;
        let Ok(weights) =
            verify_proposal(&proposal, &self.dom, epoch, self.providers, &self.view.stakes, self.view.eligible)
        else {
            return Step::Continue;
        };
        if self.rows.by_oracle.len() < self.view.oracles.len() && !epoch_over {
            return Step::Continue;
        }
        match ctx.aggregate(epoch, self.providers, &proposal, &weights, self.view.eligible).await {
            Ok(agg) => {
                let Some(secret) = ctx.secrets.draw(epoch + 2) else {
                    tracing::error!(epoch, "cannot keep the audit secret of epoch + 2 on disk; not proposing");
                    return Step::Done;
                };
                if agg.is_empty() {
                    tracing::info!(epoch, "no provider judged; the report carries the commitment only");
                }
                self.signed = ctx.sign_report(&agg, self.me, proposal, seed_commit(secret));
            }
            Err(e) => tracing::warn!(epoch, error = %e, "cannot aggregate the observations"),
        }
        Step::Continue
    }

    /// Gathers the peers' signatures of the report this oracle signed and, once they hold more
    /// than two thirds of the stake, submits it (as its proposer, or anyone in fallback) with
    /// the epoch's revealed secret.
    async fn gather_and_submit(&mut self, fallback: bool) -> Step {
        let (ctx, epoch) = (self.ctx, self.epoch);
        let Some(mine) = self.signed.clone() else { return Step::Continue };
        self.sigs.insert(self.me, mine.signature.clone());
        for (a, endpoint) in &self.view.oracles {
            if self.sigs.contains_key(a) {
                continue;
            }
            if let Some(r) = fetch_report(&ctx.http, endpoint, epoch).await {
                if r.oracle == *a && r.report() == mine.report() && verify_report_signature(&r, &self.dom).is_ok() {
                    self.sigs.insert(*a, r.signature);
                }
            }
        }
        let signing: u128 = self.sigs.keys().map(|a| self.view.stakes.get(a).copied().unwrap_or(0)).sum();
        let quorum = self.sigs.len() >= 3 && signing * 3 > self.view.eligible * 2;
        if !quorum || !(mine.proposer == self.me || fallback) {
            return Step::Continue;
        }
        let seed_reveal = match ctx.secret_for(epoch).await {
            Ok(s) => s.unwrap_or(B256::ZERO),
            Err(e) => {
                tracing::warn!(epoch, error = %e, "cannot reveal the epoch's audit secret yet");
                return Step::Continue;
            }
        };
        let mut ordered: Vec<(&Address, &Bytes)> = self.sigs.iter().collect();
        ordered.sort_by_key(|(a, _)| **a);
        let submission = ReportSubmission {
            report: mine.report(),
            seed_reveal,
            signatures: ordered.into_iter().map(|(_, s)| s.clone()).collect(),
        };
        match ctx.market.submit_report(&submission).await {
            Ok(_) => {
                ctx.monitor.reported(true);
                tracing::info!(epoch, signers = self.sigs.len(), "report submitted");
            }
            Err(e) => {
                ctx.monitor.reported(false);
                tracing::warn!(epoch, error = %e, "report not accepted (another oracle may have submitted)");
            }
        }
        Step::Done
    }
}

/// An epoch's oracles (ascending, with endpoints), their stakes and the eligible total.
struct EpochView {
    oracles: Vec<(Address, String)>,
    stakes: HashMap<Address, u128>,
    eligible: u128,
}

/// Appends `line` to the JSON-lines file at `path` and syncs it; a failure is logged (naming
/// `what`), never fatal.
fn append_line(path: &std::path::Path, line: &serde_json::Value, what: &str) {
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        writeln!(f, "{line}")?;
        f.sync_data()
    };
    if let Err(e) = write() {
        tracing::error!(path = %path.display(), error = %e, "cannot persist {what}");
    }
}

/// One line of `observations.jsonl`: what was signed, and what was (and was not) measured.
fn observation_line(
    o: &SignedObservations,
    measured: &[(u32, Measurement)],
    unmeasured: &[(u32, String)],
) -> serde_json::Value {
    serde_json::json!({
        "signed": o,
        "measured": measured.iter().map(|(id, m)| serde_json::json!({"provider": id, "m": m})).collect::<Vec<_>>(),
        "not_measured": unmeasured.iter().map(|(id, why)| serde_json::json!({"provider": id, "why": why})).collect::<Vec<_>>(),
    })
}

/// Loads the observations this oracle signed (the last line per epoch) into `published`;
/// returns how many epochs it found. Unreadable lines are skipped.
fn reload_signed(path: &std::path::Path, published: &Published, me: Address) -> usize {
    let Ok(text) = std::fs::read_to_string(path) else { return 0 };
    let mut n = 0;
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let Ok(o) = serde_json::from_value::<SignedObservations>(v["signed"].clone()) else { continue };
        if o.oracle == me {
            published.put(o);
            n += 1;
        }
    }
    n
}

/// Loads the reports this oracle signed (with the providers each judged available) into
/// `reports`; returns how many. Unreadable lines are skipped.
fn reload_reports(path: &std::path::Path, reports: &Reports, me: Address) -> usize {
    let Ok(text) = std::fs::read_to_string(path) else { return 0 };
    let mut n = 0;
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let Ok(r) = serde_json::from_value::<SignedReport>(v["signed"].clone()) else { continue };
        let Ok(leaves) = serde_json::from_value::<Vec<(u32, u32)>>(v["leaves"].clone()) else { continue };
        if r.oracle == me {
            reports.put(r, leaves);
            n += 1;
        }
    }
    n
}

/// Runs the oracle until `shutdown`.
///
/// # Errors
/// Configuration, registration or listening failures; per-epoch failures are logged, not fatal.
pub async fn run_oracle(
    cfg: OracleConfig,
    signer: PrivateKeySigner,
    policy: SendPolicy,
    shutdown: impl std::future::Future<Output = ()>,
    ready: Option<tokio::sync::oneshot::Sender<OracleInfo>>,
) -> Result<(), OracleError> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| OracleError::Config(format!("cannot create data_dir {}: {e}", cfg.data_dir.display())))?;
    let market = AlloyMarket::connect(&cfg.rpc_url, cfg.market, signer.clone(), policy).await?;
    let http_l =
        TcpListener::bind(cfg.listen).await.map_err(|source| OracleError::Listen { addr: cfg.listen, source })?;
    let listen = http_l.local_addr().map_err(|source| OracleError::Listen { addr: cfg.listen, source })?;
    let sink_l = TcpListener::bind(cfg.sink_listen)
        .await
        .map_err(|source| OracleError::Listen { addr: cfg.sink_listen, source })?;
    let sink = Sink::spawn(sink_l).ok_or_else(|| OracleError::Config("sink address unavailable".into()))?;
    let endpoint = cfg.endpoint.clone().unwrap_or_else(|| listen.to_string());

    let view = WirepactMarket::new(market.address(), market.rpc());
    let me =
        view.oracle(signer.address()).call().await.map_err(|e| ChainError::from_contract("reading the oracle", e))?;
    if me.status != ORACLE_ACTIVE {
        let params = market.params().await?;
        let stake = match &cfg.stake {
            Some(s) => parse_tokens(s)?,
            None => U256::from(params.minOracleStake),
        };
        tracing::info!(%stake, endpoint, "registering the oracle");
        market.register_oracle(&endpoint, stake).await?;
    }
    let params = market.params().await?;
    let epoch_len = params.epochLength;
    let unsettled = ProbeSessions::load(&cfg.data_dir, params.claimGrace);
    let genesis = view.genesis().call().await.map_err(|e| ChainError::from_contract("reading genesis", e))?.to::<u64>();
    let published = Published::default();
    // What this oracle signed before a restart is served again and never signed anew (a second,
    // different signature for an epoch is equivocation, slashed on chain).
    let reloaded = reload_signed(&cfg.data_dir.join("observations.jsonl"), &published, signer.address());
    if reloaded > 0 {
        tracing::info!(epochs = reloaded, "observations signed before a restart reloaded");
    }
    let reports = Reports::default();
    let reloaded = reload_reports(&cfg.data_dir.join("reports.jsonl"), &reports, signer.address());
    if reloaded > 0 {
        tracing::info!(epochs = reloaded, "reports signed before a restart reloaded");
    }
    let secrets = Secrets::load(&cfg.data_dir);
    let desk = SecretDesk {
        secrets: secrets.clone(),
        chain_id: market.chain_id(),
        market: market.address(),
        oracles: Arc::default(),
    };
    let (monitor, registry) = Monitor::new();
    let mut admin_addr = None;
    if let Some(addr) = cfg.admin_listen {
        let l = wirepact_admin::bind(addr)
            .await
            .map_err(|e| OracleError::Config(format!("cannot serve the page on {addr}: {e}; change `admin_listen`")))?;
        let (m, me) = (monitor.clone(), signer.address());
        let admin = wirepact_admin::Admin::new(registry, move || m.status(me)).with_page(crate::monitor::PAGE);
        admin_addr = l.local_addr().ok();
        tracing::info!(addr = %admin_addr.unwrap_or(addr), "operator page ready (read-only; /metrics for Prometheus)");
        tokio::spawn(wirepact_admin::serve(l, Arc::new(admin)));
    }
    let router = router(&published, &reports, &desk);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(http_l, router).await {
            tracing::error!(error = %e, "observation endpoint stopped");
        }
    });
    let info = OracleInfo { oracle: signer.address(), listen, sink: sink.addr, admin: admin_addr };
    tracing::info!(oracle = %info.oracle, %listen, sink = %sink.addr, "oracle running");
    if let Some(r) = ready {
        let _ = r.send(info);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| OracleError::Config(format!("HTTP client: {e}")))?;
    let ctx = Arc::new(Ctx {
        cfg,
        market,
        signer,
        sink,
        published,
        reports,
        http,
        plan: ProbePlan::default(),
        epoch_len,
        genesis,
        funding: Default::default(),
        unsettled,
        alpha_bps: params.alphaBps,
        tolerances: Tolerances { throughput_bps: params.throughputToleranceBps, latency_ms: params.latencyToleranceMs },
        period_epochs: u64::from(params.rewardPeriodEpochs).max(1),
        final_tree_cache: Default::default(),
        secrets,
        desk,
        audit_bps: params.auditProbabilityBps,
        audit_hour_weights: params.auditHourWeights,
        monitor,
    });
    ctx.read_standing().await;

    let follow = async {
        let mut last: Option<u64> = None;
        loop {
            let e = ctx.epoch_at(unix_now());
            if last != Some(e) {
                last = Some(e);
                tokio::spawn(ctx.clone().run_epoch(e));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::select! {
        () = shutdown => {}
        () = follow => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(oracle: Address, epoch: u64, row: u8) -> SignedObservations {
        SignedObservations {
            oracle,
            epoch,
            providers: vec![0, 0, 0, 1].into(),
            row: vec![0, 0, 0, 1, 0, 0, 1, row].into(),
            signature: vec![7; 65].into(),
        }
    }

    /// A second, different signature for an epoch is equivocation (the whole stake is slashed):
    /// after a restart the oracle serves what it signed before instead of signing again.
    #[test]
    fn what_was_signed_before_a_restart_is_reloaded_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("wirepact-oracle-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("observations.jsonl");
        let (me, other) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let lines = [
            observation_line(&signed(me, 5, 1), &[(1, Measurement::unreachable())], &[]).to_string(),
            "{not json".to_string(),
            observation_line(&signed(other, 6, 1), &[], &[]).to_string(),
            observation_line(&signed(me, 7, 0), &[], &[(1, "the provider is full".into())]).to_string(),
        ];
        std::fs::write(&path, lines.join("\n")).expect("write");
        let published = Published::default();
        assert_eq!(reload_signed(&path, &published, me), 2);
        assert_eq!(published.get(5), Some(signed(me, 5, 1)));
        assert_eq!(published.get(7), Some(signed(me, 7, 0)));
        assert_eq!(published.get(6), None, "another oracle's line is not ours to serve");
        assert_eq!(reload_signed(&dir.join("missing.jsonl"), &Published::default(), me), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// After a restart the oracle must not sign a second, different report for an epoch: what it
    /// signed (and the verdict list it serves) is reloaded, and only its own.
    #[test]
    fn signed_reports_are_reloaded_after_a_restart() {
        let dir = std::env::temp_dir().join(format!("wirepact-oracle-reports-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("reports.jsonl");
        let (me, other) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let report = |oracle, epoch| SignedReport {
            oracle,
            epoch,
            proposer: other,
            proposal: vec![signed(other, epoch, 1)],
            root: alloy::primitives::B256::repeat_byte(3),
            available: 2,
            violations: Bytes::new(),
            seed_commit: alloy::primitives::B256::repeat_byte(4),
            signature: vec![7; 65].into(),
        };
        let lines = [
            serde_json::json!({"signed": report(me, 5), "leaves": [[1, 0], [4, 2]]}).to_string(),
            "{broken".to_string(),
            serde_json::json!({"signed": report(other, 6), "leaves": [[1, 0]]}).to_string(),
        ];
        std::fs::write(&path, lines.join("\n")).expect("write");
        let reports = Reports::default();
        assert_eq!(reload_reports(&path, &reports, me), 1);
        assert_eq!(reports.get(5), Some(report(me, 5)));
        assert_eq!(reports.verdicts(5).map(|v| v.leaves), Some(vec![(1, 0), (4, 2)]));
        assert_eq!(reports.get(6), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
