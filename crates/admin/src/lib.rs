//! A daemon's local HTTP face, the same for the node, the oracle and the client:
//!
//! - `GET /api/status`: what the daemon knows now, as JSON (amounts as exact decimal token
//!   strings);
//! - `GET /metrics`: Prometheus metrics (OpenMetrics text), refreshed at each scrape;
//! - `GET /`: the daemon's dashboard page, if it has one (read-only; it reads `/api/status`);
//! - `POST /stop`: asks the daemon to stop cleanly, if it allows it (the client does).
//!
//! Bind it to loopback: it has no authentication, and the status names the operator's money.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub use prometheus_client;

type StatusFn = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

/// What the endpoint serves.
pub struct Admin {
    status: StatusFn,
    registry: Mutex<Registry>,
    page: Option<&'static str>,
    stop: Option<Arc<Notify>>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").field("page", &self.page.is_some()).field("stop", &self.stop.is_some()).finish()
    }
}

impl Admin {
    /// An endpoint whose `/api/status` is `status()` (called at each request, and before each
    /// scrape: it is where metrics that mirror state are brought up to date) and whose metrics
    /// are `registry`'s.
    #[must_use]
    pub fn new(registry: Registry, status: impl Fn() -> serde_json::Value + Send + Sync + 'static) -> Self {
        Self { status: Box::new(status), registry: Mutex::new(registry), page: None, stop: None }
    }

    /// Serves `html` at `/`.
    #[must_use]
    pub fn with_page(mut self, html: &'static str) -> Self {
        self.page = Some(html);
        self
    }

    /// Accepts `POST /stop`, which notifies `stop`.
    #[must_use]
    pub fn with_stop(mut self, stop: Arc<Notify>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// The metrics in the OpenMetrics text format.
    #[must_use]
    pub fn metrics_text(&self) -> String {
        let _ = (self.status)();
        let mut out = String::new();
        let reg = self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &reg) {
            tracing::warn!(error = %e, "cannot encode the metrics");
        }
        out
    }
}

/// Binds `addr`, warning if it is not loopback (the endpoint has no authentication).
///
/// # Errors
/// The address is taken or not allowed.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the admin endpoint is not on loopback: anyone who reaches it sees this daemon's status");
    }
    TcpListener::bind(addr).await
}

/// Serves `admin` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>) {
    let router = Router::new()
        .route("/", get(page))
        .route("/api/status", get(status))
        .route("/metrics", get(metrics))
        .route("/stop", post(stop))
        .with_state(admin);
    if let Err(e) = axum::serve(listener, router).await {
        tracing::warn!(error = %e, "the admin endpoint stopped");
    }
}

async fn page(State(a): State<Arc<Admin>>) -> Response {
    match a.page {
        Some(html) => Html(html).into_response(),
        None => (StatusCode::NOT_FOUND, "no dashboard here: see /api/status and /metrics\n").into_response(),
    }
}

async fn status(State(a): State<Arc<Admin>>) -> Json<serde_json::Value> {
    Json((a.status)())
}

async fn metrics(State(a): State<Arc<Admin>>) -> Response {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], a.metrics_text())
        .into_response()
}

async fn stop(State(a): State<Arc<Admin>>) -> Response {
    match &a.stop {
        Some(n) => {
            n.notify_one();
            (StatusCode::ACCEPTED, "stopping\n").into_response()
        }
        None => (StatusCode::METHOD_NOT_ALLOWED, "this daemon is stopped by its service manager\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[tokio::test]
    async fn status_metrics_and_stop_answer_over_http() {
        let mut reg = Registry::default();
        let served: Counter = Counter::default();
        reg.register("wirepact_test_served", "requests answered", served.clone());
        let seen = served.clone();
        let stop = Arc::new(Notify::new());
        let admin = Arc::new(
            Admin::new(reg, move || {
                seen.inc();
                serde_json::json!({ "earned": "1.5" })
            })
            .with_stop(stop.clone()),
        );
        let l = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind");
        let base = format!("http://{}", l.local_addr().expect("addr"));
        tokio::spawn(serve(l, admin));
        let http = reqwest::Client::new();
        let v: serde_json::Value =
            http.get(format!("{base}/api/status")).send().await.expect("get").json().await.expect("json");
        assert_eq!(v["earned"], "1.5");
        let text = http.get(format!("{base}/metrics")).send().await.expect("get").text().await.expect("text");
        // The status ran once for /api/status and once to refresh before the scrape.
        assert!(text.contains("wirepact_test_served_total 2"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
        let no_page = http.get(format!("{base}/")).send().await.expect("get");
        assert_eq!(no_page.status(), 404);
        let stopped = stop.notified();
        let r = http.post(format!("{base}/stop")).send().await.expect("post");
        assert_eq!(r.status(), 202);
        stopped.await;
    }
}
