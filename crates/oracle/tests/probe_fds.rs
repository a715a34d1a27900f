//! Every oracle probe used to leave its tunnel open at both ends until the provider shut down:
//! over 33 minutes an honest node went from 201 to 842 open files and each oracle from 107 to
//! 240, and a provider at the usual 1,024-file limit would run out in ~45 minutes and then be
//! slashed. Here the oracle's real probe path (`probe_through_tunnel`) probes an in-process
//! provider several times; afterwards this process (both ends, the sink and the origin side)
//! holds exactly the files it held before.
#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use tokio::net::TcpListener;
use wirepact_oracle::{probe_through_tunnel, ProbePlan, ProbeTarget, Sink};
use wirepact_proto::domain;
use wirepact_tunnel::egress::EgressPolicy;
use wirepact_tunnel::lane::ProviderLanes;
use wirepact_tunnel::mux::Prefixed;
use wirepact_tunnel::provider::{serve_connection, ProviderSession, ReceiptStore};
use wirepact_tunnel::{AcceptContext, Accepted, Acceptor, AuthChecker, TlsServer, TunnelIdentity, DEFAULT_WINDOW};

struct Null;
impl ReceiptStore for Null {
    fn store(&self, _: B256, _: u64, _: u64, _: [u8; 65]) -> Result<(), wirepact_tunnel::error::StoreError> {
        Ok(())
    }
}

fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").map(Iterator::count).unwrap_or(0)
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

const PROBES: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_leaves_no_connection_open_at_either_end() {
    let dom = domain(31337, Address::repeat_byte(4));
    let identity = TunnelIdentity::generate("www.example.com").expect("identity");
    let tunnel_key = identity.tunnel_key();
    let acceptor = Arc::new(TlsServer::new(&identity).expect("tls"));
    let keys: Vec<(B256, PrivateKeySigner)> = (0..PROBES)
        .map(|i| (B256::repeat_byte(0x40 + u8::try_from(i).expect("small")), PrivateKeySigner::random()))
        .collect();
    let sessions: Arc<HashMap<B256, Address>> = Arc::new(keys.iter().map(|(id, k)| (*id, k.address())).collect());
    let checker = Arc::new(Mutex::new(AuthChecker::new(dom.clone(), tunnel_key, 600, 64)));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let lanes = ProviderLanes::default();
    let served = {
        let dom = dom.clone();
        let sessions = sessions.clone();
        tokio::spawn(async move {
            // The provider, as the node serves it: one task per connection, bounded.
            for _ in 0..PROBES * 4 {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, checker, sessions, dom, lanes) =
                    (acceptor.clone(), checker.clone(), sessions.clone(), dom.clone(), lanes.clone());
                tokio::spawn(async move {
                    let acc = acceptor
                        .accept(
                            tcp,
                            AcceptContext {
                                checker: &checker,
                                lookup: &*sessions,
                                now: now(),
                                deadline: Duration::from_secs(5),
                                credit_until: DEFAULT_WINDOW,
                            },
                            Box::new(|| {}),
                        )
                        .await;
                    let Ok(Accepted::Session { stream, session_id, pending }) = acc else { return };
                    let cfg = ProviderSession {
                        domain: dom,
                        session_id,
                        session_key: sessions[&session_id],
                        window: DEFAULT_WINDOW,
                        max_bytes: u64::MAX,
                        egress: EgressPolicy::new(vec!["127.0.0.0/8".parse().expect("cidr")]),
                        impair: Default::default(),
                        dial_timeout: Duration::from_secs(5),
                        lanes: Some(lanes),
                        opened_at: 0,
                        clock_offset_secs: 0,
                    };
                    let _ = serve_connection(Prefixed::new(pending, stream), cfg, Arc::new(Null)).await;
                });
            }
        })
    };
    let sink = Sink::spawn(TcpListener::bind("127.0.0.1:0").await.expect("bind")).expect("sink");
    let plan = ProbePlan {
        pings: 3,
        streams: 2,
        ramp: Duration::from_millis(50),
        window: Duration::from_millis(300),
        cap_pct: 110,
    };
    let before = open_files();
    for (sid, key) in &keys {
        let t = ProbeTarget {
            addr,
            endpoint: addr.to_string(),
            tunnel_key,
            session_id: *sid,
            opened_at: now(),
            sla_kbps: 20_000,
        };
        let m = probe_through_tunnel(&t, key, &dom, sink, &plan).await.expect("probe");
        assert!(m.reachable && m.throughput_kbps > 0, "{m:?}");
    }
    // Closing takes a moment (the control stream's end reaches the provider, then the
    // connection closes, then the origin side): wait, bounded, for the count to come back.
    let mut after = open_files();
    for _ in 0..100 {
        if after <= before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = open_files();
    }
    assert!(after <= before, "{PROBES} probes left {} files open ({before} before, {after} after)", after - before);
    served.abort();
}
