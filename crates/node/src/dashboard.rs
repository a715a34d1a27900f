//! What the operator sees: the node's status (`/api/status`), its Prometheus metrics and its
//! dashboard page, served on `admin_listen` (loopback by default) by `wirepact-admin`.
//!
//! [`Board`] is filled by the standing loop (the provider's record on chain, and the market's
//! events for it) and by the receipt store (bytes as they are receipted); [`Board::status`]
//! turns it into JSON with every amount as an exact decimal token string.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use alloy::primitives::{B256, U256};
use serde::Serialize;
use wirepact_admin::prometheus_client::metrics::counter::Counter;
use wirepact_admin::prometheus_client::metrics::family::Family;
use wirepact_admin::prometheus_client::metrics::gauge::Gauge;
use wirepact_admin::prometheus_client::registry::Registry;
use wirepact_chain::bindings::{provider_status, IWirepactMarket};
use wirepact_proto::format_tokens;
use wirepact_tunnel::provider::ReceiptStore;

use crate::db::ReceiptDb;
use crate::NodeReport;

/// The dashboard page (plain HTML and JS, no external resources).
pub const PAGE: &str = include_str!("dashboard.html");

/// Throughput samples kept (one per standing pass: ~2 s apart, so about 16 minutes).
const SAMPLES: usize = 480;

/// A violation the oracles recorded, with what they measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ViolationRow {
    pub epoch: u64,
    pub reachable: bool,
    pub measured_mbps: f64,
    pub measured_latency_ms: u32,
}

/// A slash of this provider.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SlashRow {
    pub epoch: u64,
    pub amount: String,
    pub jailed_until_epoch: u32,
}

#[derive(Debug, Default)]
struct Data {
    provider: Option<IWirepactMarket::ProviderView>,
    params: Option<IWirepactMarket::Params>,
    epoch: u64,
    minimum_stake: U256,
    recent: (usize, u64),
    collected: U256,
    bonus: U256,
    violations: Vec<ViolationRow>,
    slashes: Vec<SlashRow>,
    /// Reported epochs that audited this provider: judged available / not.
    audits_passed: u64,
    audits_failed: u64,
    /// (unix seconds, bytes receipted so far).
    series: VecDeque<(u64, u64)>,
}

/// The node's live figures, shared by its loops and its admin endpoint.
#[derive(Debug)]
pub struct Board {
    id: u32,
    data: Mutex<Data>,
    receipted: AtomicU64,
    receipts: Counter,
    metrics: Metrics,
}

#[derive(Debug, Default, Clone)]
struct Metrics {
    bytes: Counter,
    sessions_live: Gauge,
    sessions_served: Gauge,
    claims: Gauge,
    tokens: Family<Vec<(String, String)>, Gauge<f64, AtomicU64>>,
    violations_recent: Gauge,
    violations_to_slash: Gauge,
    jailed: Gauge,
    slashes: Gauge,
    audits: Family<Vec<(String, String)>, Gauge>,
}

impl Board {
    /// A board for provider `id`, and the registry of its metrics.
    #[must_use]
    pub fn new(id: u32) -> (Arc<Self>, Registry) {
        let metrics = Metrics::default();
        let receipts = Counter::default();
        let mut r = Registry::with_prefix("wirepact_node");
        r.register(
            "bytes_receipted",
            "Bytes clients signed receipts for (what the node is paid for)",
            metrics.bytes.clone(),
        );
        r.register("receipts", "Receipts stored", receipts.clone());
        r.register("sessions_live", "Sessions whose tunnel is up", metrics.sessions_live.clone());
        r.register("sessions_served", "Session tunnels ended since the node started", metrics.sessions_served.clone());
        r.register("claims", "Sessions claimed on chain since the node started", metrics.claims.clone());
        r.register(
            "tokens",
            "Money in tokens: kind=pending_claims (receipted, not claimed), uncollected (claimed, gross of the fee), collected (since start, net), bonus (since start), stake, unbonding, minimum_stake",
            metrics.tokens.clone(),
        );
        r.register("violations_recent", "Violations in the market's slash window", metrics.violations_recent.clone());
        r.register("violations_to_slash", "Violations in the window that slash", metrics.violations_to_slash.clone());
        r.register("jailed", "1 while the provider is jailed", metrics.jailed.clone());
        r.register("slashes", "Slashes seen since the node started", metrics.slashes.clone());
        r.register(
            "audits",
            "Audited epochs seen since the node started, by verdict (passed, failed)",
            metrics.audits.clone(),
        );
        (Arc::new(Self { id, data: Mutex::new(Data::default()), receipted: AtomicU64::new(0), receipts, metrics }), r)
    }

    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The provider's record as last read (with the epoch, the market's minimum stake for it,
    /// and its violations in the slash window); adds a throughput sample at `now`.
    pub fn chain_state(
        &self,
        p: IWirepactMarket::ProviderView,
        params: IWirepactMarket::Params,
        epoch: u64,
        minimum_stake: U256,
        now: u64,
    ) {
        let recent = wirepact_chain::violations_in_window(&p, &params, epoch);
        let mut d = self.data();
        d.provider = Some(p);
        d.params = Some(params);
        d.epoch = epoch;
        d.minimum_stake = minimum_stake;
        d.recent = recent;
        let bytes = self.receipted.load(Ordering::Relaxed);
        d.series.push_back((now, bytes));
        while d.series.len() > SAMPLES {
            d.series.pop_front();
        }
    }

    pub fn violated(&self, row: ViolationRow) {
        self.data().violations.push(row);
    }

    pub fn slashed(&self, row: SlashRow) {
        self.data().slashes.push(row);
    }

    /// A reported epoch audited this provider: `passed` if it was judged available.
    pub fn audited(&self, passed: bool) {
        let mut d = self.data();
        if passed {
            d.audits_passed += 1;
        } else {
            d.audits_failed += 1;
        }
    }

    /// Earnings collected into the owner's balance (net of the protocol fee).
    pub fn collected(&self, net: U256) {
        self.data().collected += net;
    }

    pub fn bonus(&self, amount: U256) {
        self.data().bonus += amount;
    }

    /// The status as JSON (and the metrics brought up to date). `pending_claims`: receipted and
    /// not yet claimed, in wei.
    pub fn status(&self, report: &NodeReport, live: usize, pending_claims: U256) -> serde_json::Value {
        let d = self.data();
        let tok = |v: U256| format_tokens(v);
        #[allow(clippy::cast_precision_loss)] // metrics are approximate; the JSON is exact
        let f = |v: U256| v.saturating_to::<u128>() as f64 / 1e18;
        let set = |kind: &str, v: U256| {
            self.metrics.tokens.get_or_create(&vec![("kind".to_owned(), kind.to_owned())]).set(f(v));
        };
        let total = self.receipted.load(Ordering::Relaxed);
        let counted = self.metrics.bytes.get();
        if total > counted {
            self.metrics.bytes.inc_by(total - counted);
        }
        let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.metrics.sessions_live.set(g(live as u64));
        self.metrics.sessions_served.set(g(report.sessions_served));
        self.metrics.claims.set(g(report.claims));
        self.metrics.slashes.set(g(d.slashes.len() as u64));
        self.metrics.audits.get_or_create(&vec![("verdict".into(), "passed".into())]).set(g(d.audits_passed));
        self.metrics.audits.get_or_create(&vec![("verdict".into(), "failed".into())]).set(g(d.audits_failed));
        set("pending_claims", pending_claims);
        set("collected", d.collected);
        set("bonus", d.bonus);
        // Throughput over time: Mbit/s between consecutive samples.
        let throughput: Vec<(u64, f64)> = d
            .series
            .iter()
            .zip(d.series.iter().skip(1))
            .filter(|(a, b)| b.0 > a.0)
            .map(|(a, b)| {
                #[allow(clippy::cast_precision_loss)] // a plot
                let mbps = (b.1.saturating_sub(a.1)) as f64 * 8.0 / 1e6 / (b.0 - a.0) as f64;
                (b.0, mbps)
            })
            .collect();
        let (Some(p), Some(params)) = (&d.provider, &d.params) else {
            return serde_json::json!({ "provider": self.id, "ready": false });
        };
        let (recent, window) = d.recent;
        let jailed = p.status == provider_status::JAILED;
        set("uncollected", p.earned);
        set("stake", U256::from(p.stake));
        set("unbonding", U256::from(p.unbonding));
        set("minimum_stake", d.minimum_stake);
        self.metrics.violations_recent.set(g(recent as u64));
        self.metrics.violations_to_slash.set(i64::from(params.violationsToSlash));
        self.metrics.jailed.set(i64::from(jailed));
        let status = match p.status {
            provider_status::ACTIVE if p.paused => "active, paused (no new client sessions)".to_string(),
            provider_status::ACTIVE => "active".to_string(),
            provider_status::JAILED if d.epoch < u64::from(p.jailedUntilEpoch) => {
                format!("jailed until epoch {}", p.jailedUntilEpoch)
            }
            provider_status::JAILED => "jailed; the jail is over: `wirepact provider unjail`".to_string(),
            provider_status::LEFT => "left the market".to_string(),
            _ => "unknown".to_string(),
        };
        let judged = d.audits_passed + d.audits_failed;
        serde_json::json!({
            "provider": self.id,
            "ready": true,
            "epoch": d.epoch,
            "status": status,
            "jailed": jailed,
            "jailed_until_epoch": p.jailedUntilEpoch,
            "terms": {
                "capacity_mbps": p.capacityMbps,
                "committed_mbps": p.committedMbps,
                "session_mbps": p.sessionMbps,
                "max_latency_ms": p.maxLatencyMs,
                "base_price_per_gib": tok(U256::from(p.basePricePerGiB)),
            },
            "money": {
                "pending_claims": tok(pending_claims),
                "uncollected": tok(p.earned),
                "collected": tok(d.collected),
                "bonus": tok(d.bonus),
                "earned": tok(pending_claims + p.earned + d.collected + d.bonus),
                "stake": tok(U256::from(p.stake)),
                "minimum_stake": tok(d.minimum_stake),
                "unbonding": tok(U256::from(p.unbonding)),
                "unbonding_ready_at": p.unbondingReadyAt,
            },
            "violations": {
                "recent": recent,
                "window_epochs": window,
                "to_slash": params.violationsToSlash,
                "total": p.violationCount,
                "seen": d.violations,
            },
            "slash_risk": format!(
                "{recent} violation{} in the last {window} epochs; {} slash",
                if recent == 1 { "" } else { "s" },
                params.violationsToSlash
            ),
            "slashes": d.slashes,
            "audits": { "passed": d.audits_passed, "failed": d.audits_failed },
            "bonus_eligibility": format!(
                "{} of {judged} audited epochs judged available since the node started; the bonus needs at least {} judged, {} % available, and no slash in the period",
                d.audits_passed,
                params.bonusMinAudits,
                f64::from(params.bonusAvailabilityBps) / 100.0
            ),
            "sessions": {
                "live": live,
                "served": report.sessions_served,
                "claims": report.claims,
                "bytes_receipted": total,
            },
            "throughput_mbps": throughput,
        })
    }
}

/// What the claims still to make are worth, in wei: each session's receipted bytes beyond its
/// last claim at its price.
#[must_use]
pub fn pending_claims(db: &ReceiptDb) -> U256 {
    let Ok(rows) = db.unclaimed() else { return U256::ZERO };
    rows.iter()
        .filter_map(|(id, r, claimed)| {
            let t = db.terms(*id).ok().flatten()?;
            let bytes = U256::from(r.cumulative_bytes.saturating_sub(*claimed));
            Some((bytes * U256::from(t.pricePerGiB)) >> 30)
        })
        .fold(U256::ZERO, |a, b| a + b)
}

/// The receipt store the tunnels write to: the database, counting receipted bytes for the
/// board as receipts land.
#[derive(Debug)]
pub struct CountingStore {
    pub db: Arc<ReceiptDb>,
    pub board: Arc<Board>,
    last: Mutex<std::collections::HashMap<B256, u64>>,
}

impl CountingStore {
    #[must_use]
    pub fn new(db: Arc<ReceiptDb>, board: Arc<Board>) -> Self {
        Self { db, board, last: Mutex::new(std::collections::HashMap::new()) }
    }

    /// Forgets sessions no longer live (their last count is in the database).
    pub fn retain(&self, live: &HashSet<B256>) {
        if let Ok(mut l) = self.last.lock() {
            l.retain(|k, _| live.contains(k));
        }
    }
}

impl ReceiptStore for CountingStore {
    fn store(
        &self,
        session: B256,
        cumulative: u64,
        timestamp: u64,
        signature: [u8; 65],
    ) -> Result<(), wirepact_tunnel::error::StoreError> {
        let before = match self.last.lock().ok().and_then(|l| l.get(&session).copied()) {
            Some(b) => b,
            None => self.db.receipt(session).ok().flatten().map_or(0, |r| r.cumulative_bytes),
        };
        ReceiptStore::store(&*self.db, session, cumulative, timestamp, signature)?;
        if cumulative > before {
            self.board.receipted.fetch_add(cumulative - before, Ordering::Relaxed);
            self.board.receipts.inc();
            if let Ok(mut l) = self.last.lock() {
                l.insert(session, cumulative);
            }
        }
        Ok(())
    }
}
