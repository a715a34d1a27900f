//! What the oracle's operator sees on `admin_listen`: its status (`/api/status`), Prometheus
//! metrics (`/metrics`) and a read-only page — probes and their results, reports submitted or
//! refused, epochs missed, and the stake at risk.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use alloy::primitives::U256;
use serde::Serialize;
use wirepact_admin::prometheus_client::metrics::counter::Counter;
use wirepact_admin::prometheus_client::metrics::family::Family;
use wirepact_admin::prometheus_client::metrics::gauge::Gauge;
use wirepact_admin::prometheus_client::registry::Registry;
use wirepact_proto::format_tokens;

/// The oracle's page (plain HTML and JS, no external resources).
pub const PAGE: &str = include_str!("monitor.html");

/// Probes kept for the page.
const RECENT: usize = 100;

/// What a probe found, as the page and the metrics name it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProbeResult {
    /// Reachable and at or over the promised rate.
    Available,
    /// Reachable, under the promised rate.
    BelowSla,
    Unreachable,
    /// Not the provider's fault (it was full, or this oracle's funds, RPC or sink failed).
    NotMeasured,
}

impl ProbeResult {
    fn label(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::BelowSla => "below_sla",
            Self::Unreachable => "unreachable",
            Self::NotMeasured => "not_measured",
        }
    }
}

/// One probe, for the page.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProbeRow {
    pub epoch: u64,
    pub provider: u32,
    pub result: ProbeResult,
    pub measured_mbps: f64,
    pub promised_mbps: f64,
    pub latency_ms: u64,
    /// Why it was not measured, if it was not.
    pub reason: Option<String>,
}

#[derive(Debug, Default)]
struct Data {
    recent: VecDeque<ProbeRow>,
    stake: U256,
    status: String,
    last_epoch: u64,
    submitted: u64,
    refused: u64,
    missed: u64,
}

/// Shared by the oracle's loops and its admin endpoint.
#[derive(Debug, Clone)]
pub struct Monitor {
    data: Arc<Mutex<Data>>,
    probes: Family<Vec<(String, String)>, Counter>,
    reports: Family<Vec<(String, String)>, Counter>,
    missed: Counter,
    stake: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Monitor {
    /// A monitor and the registry of its metrics.
    #[must_use]
    pub fn new() -> (Self, Registry) {
        let m = Self {
            data: Arc::default(),
            probes: Family::default(),
            reports: Family::default(),
            missed: Counter::default(),
            stake: Gauge::default(),
        };
        let mut r = Registry::with_prefix("wirepact_oracle");
        r.register(
            "probes",
            "Probes by result: available, below_sla, unreachable, not_measured (not the provider's fault)",
            m.probes.clone(),
        );
        r.register(
            "reports",
            "Reports this oracle submitted: outcome=accepted, or refused (usually another oracle's landed first)",
            m.reports.clone(),
        );
        r.register("epochs_missed", "Epochs this oracle could not audit (chain unreadable)", m.missed.clone());
        r.register("stake_tokens", "This oracle's stake, in tokens", m.stake.clone());
        (m, r)
    }

    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn probed(&self, row: ProbeRow) {
        self.probes.get_or_create(&vec![("result".into(), row.result.label().into())]).inc();
        let mut d = self.data();
        d.last_epoch = d.last_epoch.max(row.epoch);
        d.recent.push_back(row);
        while d.recent.len() > RECENT {
            d.recent.pop_front();
        }
    }

    /// A report this oracle sent: `accepted` if the market took it.
    pub fn reported(&self, accepted: bool) {
        let outcome = if accepted { "accepted" } else { "refused" };
        self.reports.get_or_create(&vec![("outcome".into(), outcome.into())]).inc();
        let mut d = self.data();
        if accepted {
            d.submitted += 1;
        } else {
            d.refused += 1;
        }
    }

    pub fn missed(&self) {
        self.missed.inc();
        self.data().missed += 1;
    }

    /// The oracle's stake and standing as last read from the chain.
    pub fn standing(&self, stake: U256, status: &str) {
        #[allow(clippy::cast_precision_loss)] // a metric; the JSON is exact
        self.stake.set(stake.saturating_to::<u128>() as f64 / 1e18);
        let mut d = self.data();
        d.stake = stake;
        d.status = status.to_owned();
    }

    /// The status as JSON.
    #[must_use]
    pub fn status(&self, oracle: alloy::primitives::Address) -> serde_json::Value {
        let d = self.data();
        let count = |r: ProbeResult| d.recent.iter().filter(|p| p.result == r).count();
        serde_json::json!({
            "oracle": oracle,
            "status": d.status,
            "stake": format_tokens(d.stake),
            "last_epoch": d.last_epoch,
            "reports": { "accepted": d.submitted, "refused": d.refused },
            "epochs_missed": d.missed,
            "recent_probes": {
                "available": count(ProbeResult::Available),
                "below_sla": count(ProbeResult::BelowSla),
                "unreachable": count(ProbeResult::Unreachable),
                "not_measured": count(ProbeResult::NotMeasured),
                "rows": d.recent.iter().rev().collect::<Vec<_>>(),
            },
        })
    }
}
