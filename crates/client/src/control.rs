//! What the running client shows on its control endpoint (`control_listen`): its status for
//! `wirepact client status`, and its Prometheus metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::json;
use wirepact_admin::prometheus_client;
use wirepact_proto::format_tokens;

use crate::budget::{Budget, Caps};
use crate::failover::Failover;

/// Counters the client's loops add to.
#[derive(Debug, Default, Clone)]
pub struct ClientMetrics {
    /// Sessions opened (each is one on-chain deposit).
    pub sessions_opened: Counter,
    /// Bytes carried by sessions that have ended (the live ones are added at each scrape).
    pub bytes_done: Arc<AtomicU64>,
    bytes: Counter,
    bytes_seen: Arc<AtomicU64>,
    failovers: Gauge,
    renewals: Gauge,
    spend: Family<Vec<(String, String)>, Gauge<f64, std::sync::atomic::AtomicU64>>,
    capped: Gauge,
}

impl ClientMetrics {
    /// The metrics, registered in a new registry.
    #[must_use]
    pub fn registered() -> (Self, Registry) {
        let m = Self::default();
        let mut r = Registry::with_prefix("wirepact_client");
        r.register("sessions_opened", "Sessions opened (each one an on-chain deposit)", m.sessions_opened.clone());
        r.register("bytes", "Bytes carried through sessions, both ways", m.bytes.clone());
        r.register("failovers", "Times the active provider died and the standby took over", m.failovers.clone());
        r.register("renewals", "Sessions replaced because their deposit was nearly spent", m.renewals.clone());
        r.register(
            "spend_tokens",
            "Spending in tokens: kind=paid (settled sessions, in total), locked (deposits of unsettled sessions), today (paid or locked by sessions opened today, UTC), cap_per_day, cap_total",
            m.spend.clone(),
        );
        r.register("capped", "1 while a spending cap refuses new connections", m.capped.clone());
        (m, r)
    }
}

/// Builds the status (`capped_now`: why new connections are refused, if they are) (and brings the metrics up to date): the live sessions, spending against
/// the caps, and whether new connections are taken.
pub fn status(
    route: Option<&Failover>,
    budget: &Mutex<Budget>,
    capped_now: Option<String>,
    metrics: &ClientMetrics,
    proxy: std::net::SocketAddr,
    now: u64,
) -> serde_json::Value {
    let (spending, caps): (_, Caps) = {
        let b = budget.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (b.summary(now), b.caps())
    };
    let link = |l: &crate::failover::Link| {
        json!({
            "provider": l.provider_id,
            "session": l.terms.session_id().0,
            "price_per_gib": format_tokens(l.terms.pricePerGiB.to()),
            "deposit": format_tokens(l.terms.deposit.to()),
            "bytes": l.session.counted(),
            "bytes_paid_for": l.max_bytes,
            "alive": l.session.is_alive(),
        })
    };
    let active = route.and_then(Failover::active);
    let standby = route.and_then(Failover::standby);
    let live_bytes: u64 = active.iter().chain(standby.iter()).map(|l| l.session.counted()).sum();
    // Counters only go up: add what the live sessions carried since the last scrape.
    let total = metrics.bytes_done.load(Ordering::Relaxed).saturating_add(live_bytes);
    let before = metrics.bytes_seen.fetch_max(total, Ordering::Relaxed);
    if total > before {
        metrics.bytes.inc_by(total - before);
    }
    let failovers = route.map_or(0, Failover::failovers);
    let renewals = route.map_or(0, Failover::renewals);
    metrics.failovers.set(i64::try_from(failovers).unwrap_or(i64::MAX));
    metrics.renewals.set(i64::try_from(renewals).unwrap_or(i64::MAX));
    metrics.capped.set(i64::from(capped_now.is_some()));
    #[allow(clippy::cast_precision_loss)] // metrics are approximate; the JSON is exact
    let as_f64 = |wei: u128| wei as f64 / 1e18;
    let set = |kind: &str, v: Option<u128>| {
        if let Some(v) = v {
            metrics.spend.get_or_create(&vec![("kind".to_owned(), kind.to_owned())]).set(as_f64(v));
        }
    };
    set("paid", Some(spending.paid_total));
    set("locked", Some(spending.locked));
    set("today", Some(spending.today));
    set("cap_per_day", caps.per_day);
    set("cap_total", caps.total);
    let tokens = |v: u128| format_tokens(alloy::primitives::U256::from(v));
    json!({
        "proxy": proxy,
        "accepting": capped_now.is_none() && active.is_some(),
        "capped": capped_now,
        "active": active.as_deref().map(link),
        "standby": standby.as_deref().map(link),
        "failovers": failovers,
        "renewals": renewals,
        "spend": {
            "paid": tokens(spending.paid_total),
            "locked": tokens(spending.locked),
            "today": tokens(spending.today),
            "cap_per_day": caps.per_day.map(tokens),
            "cap_total": caps.total.map(tokens),
        },
    })
}
