//! `make bench-probe`: how exactly the oracle's probe measures what a provider delivers.
//!
//! A provider (the real session code, with the `--shape-mbps` / `--extra-latency-ms` test
//! knobs) and the oracle's probe run over loopback in this process: no chain is needed to
//! measure the measurement. For shaped rates of 10, 50 and 200 Mbit/s (SLA = shaped rate, so the
//! probe's cap of 110% sits above it) and an under-delivering case (SLA 50, shaped to 20), it
//! reports measured/actual; then the latency a probe sees with 40 ms of extra latency against
//! the baseline; then the traffic and time a probe of a 50 Mbit/s SLA costs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use tokio::net::TcpListener;
use wirepact_oracle::{probe, ProbePlan, Sink};
use wirepact_proto::domain;
use wirepact_tunnel::egress::EgressPolicy;
use wirepact_tunnel::impair::Impairment;
use wirepact_tunnel::mux::Prefixed;
use wirepact_tunnel::provider::{serve_connection, ProviderSession, ReceiptStore};
use wirepact_tunnel::session::ClientSession;
use wirepact_tunnel::{
    connect, session_auth_frame, AcceptContext, Accepted, Acceptor, AuthChecker, TlsServer, TunnelIdentity,
    DEFAULT_WINDOW,
};

struct Null;
impl ReceiptStore for Null {
    fn store(&self, _: B256, _: u64, _: u64, _: [u8; 65]) -> Result<(), wirepact_tunnel::error::StoreError> {
        Ok(())
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A provider with the given knobs and a client session to it.
async fn session(shape_mbps: Option<u32>, extra_latency: Duration) -> Arc<ClientSession> {
    let key = PrivateKeySigner::random();
    let dom = domain(1, Address::repeat_byte(1));
    let sid = B256::from(rand::random::<[u8; 32]>());
    let id = TunnelIdentity::generate("bench.example").expect("identity");
    let tunnel_key = id.tunnel_key();
    let acceptor = TlsServer::new(&id).expect("tls");
    let checker = Mutex::new(AuthChecker::new(dom.clone(), tunnel_key, 600, 64));
    let sessions: HashMap<B256, Address> = [(sid, key.address())].into();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cfg = ProviderSession {
        domain: dom.clone(),
        session_id: sid,
        session_key: key.address(),
        window: DEFAULT_WINDOW,
        max_bytes: u64::MAX,
        egress: EgressPolicy::new(vec!["127.0.0.0/8".parse().expect("cidr")]),
        impair: Impairment::new(shape_mbps, extra_latency),
        dial_timeout: Duration::from_secs(5),
        lanes: None,
        opened_at: 0,
        clock_offset_secs: 0,
    };
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let _ = tcp.set_nodelay(true);
        if let Ok(Accepted::Session { stream, pending, .. }) = acceptor
            .accept(
                tcp,
                AcceptContext {
                    checker: &checker,
                    lookup: &sessions,
                    now: now(),
                    deadline: Duration::from_secs(2),
                    credit_until: DEFAULT_WINDOW,
                },
                Box::new(|| {}),
            )
            .await
        {
            let _ = serve_connection(Prefixed::new(pending, stream), cfg, Arc::new(Null)).await;
        }
    });
    let auth = session_auth_frame(&key, &dom, sid, tunnel_key, now(), rand::random()).expect("auth");
    let t = connect(addr, "bench.example", tunnel_key, &auth, Duration::from_secs(5)).await.expect("connect");
    ClientSession::start(Prefixed::new(t.pending, t.stream), key, dom, sid, t.credit_until, Arc::new(now))
        .await
        .expect("session")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sink = Sink::spawn(TcpListener::bind("127.0.0.1:0").await.expect("bind")).expect("sink");
    let plan = ProbePlan::default();
    let mut worst: f64 = 0.0;
    // (SLA, shaped rate actually delivered)
    for (sla, shaped) in [(10u32, 10u32), (50, 50), (200, 200), (50, 20)] {
        let cs = session(Some(shaped), Duration::ZERO).await;
        let m = probe(&cs, sink, u64::from(sla) * 1000, &plan).await.expect("probe");
        #[allow(clippy::cast_precision_loss)]
        let ratio = m.throughput_kbps as f64 / (f64::from(shaped) * 1000.0);
        worst = worst.max((ratio - 1.0).abs() * 100.0);
        println!(
            "sla {sla:>3} Mbit/s, delivering {shaped:>3}: measured {:>7.2} Mbit/s, measured/actual {ratio:.4}",
            m.throughput_kbps as f64 / 1000.0
        );
    }

    let base = probe(&session(None, Duration::ZERO).await, sink, 50_000, &plan).await.expect("probe");
    let slow = probe(&session(None, Duration::from_millis(40)).await, sink, 50_000, &plan).await.expect("probe");
    #[allow(clippy::cast_precision_loss)]
    let lat_err = ((slow.latency_us as f64 - base.latency_us as f64) / 1000.0 - 40.0).abs();
    println!(
        "latency: baseline {:.3} ms, with --extra-latency-ms 40: {:.3} ms (error {lat_err:.3} ms)",
        base.latency_us as f64 / 1000.0,
        slow.latency_us as f64 / 1000.0
    );

    let p50 = probe(&session(None, Duration::ZERO).await, sink, 50_000, &plan).await.expect("probe");
    println!("probe_error_pct_max: {worst:.2}");
    println!("probe_latency_error_ms: {lat_err:.3}");
    println!("probe_megabytes_50mbps: {:.2}", p50.bytes as f64 / 1e6);
    println!("probe_seconds_50mbps: {:.2}", p50.seconds);
}
