//! `make bench-failover`: how long new requests fail when the provider under a client dies.
//!
//! anvil, the market, four honest providers (`wirepact node`) and a client (`wirepact connect`
//! with its warm standby) run as real processes; this program sends a steady stream of small
//! requests through the client's SOCKS port to a local origin. Each run kill -9s the provider
//! the client is using, measures the gap from the kill until a request succeeds again, restarts
//! that provider and waits for the client to have a standby again. Prints the median.
//!
//! cargo run --release -p wirepact-cli --example bench_failover -- --wirepact target/release/wirepact [--runs N]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wirepact_chain::{devnet_params, AlloyMarket, Devnet, Market, SendPolicy};

mod support;

fn tokens(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

async fn origin() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut b = [0u8; 1];
                if s.read_exact(&mut b).await.is_ok() {
                    let _ = s.write_all(&[7u8; 4096]).await;
                }
            });
        }
    });
    a
}

async fn request(proxy: SocketAddr, origin: SocketAddr) -> bool {
    let work = async {
        let mut s = support::socks_connect(proxy, origin).await?;
        s.write_all(&[1]).await.ok()?;
        let mut body = [0u8; 4096];
        s.read_exact(&mut body).await.ok()?;
        Some(())
    };
    matches!(tokio::time::timeout(Duration::from_secs(2), work).await, Ok(Some(())))
}

fn node_toml(rpc: &str, market: &str, dir: &Path, price: &str) -> String {
    format!(
        "rpc_url = \"{rpc}\"\nmarket = \"{market}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\ncapacity_mbps = 100\n\
         session_mbps = 10\nmax_latency_ms = 80\nprice_per_gib = \"{price}\"\negress_allow = [\"127.0.0.0/8\"]\n",
        dir.display()
    )
}

fn spawn_node(exe: &Path, dir: &Path, key: &str, log: &Path) -> Child {
    let ready = dir.join("ready.json");
    let _ = std::fs::remove_file(&ready);
    let child = Command::new(exe)
        .args(["node", "--exit-with-stdin", "--config"])
        .arg(dir.join("node.toml"))
        .arg("--ready-file")
        .arg(&ready)
        .env("WIREPACT_PRIVATE_KEY", key)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("spawn node");
    let t = Instant::now();
    while !ready.exists() {
        assert!(t.elapsed() < Duration::from_secs(60), "node not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |n: &str| args.iter().position(|a| a == n).and_then(|i| args.get(i + 1)).cloned();
    let exe = PathBuf::from(arg("--wirepact").unwrap_or_else(|| "target/release/wirepact".into()));
    let runs: usize = arg("--runs").map_or(10, |v| v.parse().expect("--runs N"));
    let dir = std::env::temp_dir().join(format!("wirepact-bench-failover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");

    let devnet = Devnet::start().expect("anvil (make tools)");
    let rpc = devnet.endpoint();
    let policy = SendPolicy { poll_interval: Duration::from_millis(20), ..SendPolicy::default() };
    let m =
        AlloyMarket::deploy(&rpc, devnet.signer(0).expect("key"), None, devnet_params(), policy).await.expect("deploy");
    for i in 1..=5 {
        m.mint_test_tokens(devnet.signer(i).expect("key").address(), tokens(1000)).await.expect("mint");
    }
    let market = m.address().to_string();
    let mut nodes: Vec<(Child, PathBuf, String)> = Vec::new();
    for i in 1..=4usize {
        let d = dir.join(format!("node{i}"));
        std::fs::create_dir_all(&d).expect("dir");
        std::fs::write(d.join("node.toml"), node_toml(&rpc, &market, &d, &format!("0.1{i}"))).expect("cfg");
        let key = devnet.signer(i).expect("key").to_bytes().to_string();
        let c = spawn_node(&exe, &d, &key, &dir.join(format!("node{i}.log")));
        nodes.push((c, d, key));
    }
    let cdir = dir.join("client");
    std::fs::create_dir_all(&cdir).expect("dir");
    std::fs::write(
        cdir.join("client.toml"),
        format!(
            "rpc_url = \"{rpc}\"\nmarket = \"{market}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\ndeposit = \"5\"\n",
            cdir.display()
        ),
    )
    .expect("cfg");
    let ready = cdir.join("ready.json");
    let mut client = Command::new(&exe)
        .args(["connect", "--exit-with-stdin", "--config"])
        .arg(cdir.join("client.toml"))
        .arg("--ready-file")
        .arg(&ready)
        .env("WIREPACT_PRIVATE_KEY", devnet.signer(5).expect("key").to_bytes().to_string())
        .env("WIREPACT_LOG", "wirepact_client=info")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    // Follow the client's log: which provider is active, and how many standbys it has set up.
    let active = Arc::new(AtomicU32::new(0));
    let standbys = Arc::new(AtomicU32::new(0));
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let (active, standbys, log) = (active.clone(), standbys.clone(), log.clone());
        let err = client.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let plain: String = line.chars().filter(|c| !c.is_control()).collect();
                if plain.contains("failing over") {
                    if let Some(id) = plain
                        .split("to=")
                        .nth(1)
                        .and_then(|v| v.split_whitespace().next())
                        .and_then(|v| v.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok())
                    {
                        active.store(id, Ordering::SeqCst);
                    }
                }
                if plain.contains("warm standby ready") {
                    standbys.fetch_add(1, Ordering::SeqCst);
                }
                if let Ok(mut l) = log.lock() {
                    l.push(plain);
                }
            }
        });
    }
    let t = Instant::now();
    while !ready.exists() {
        assert!(t.elapsed() < Duration::from_secs(60), "client not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&ready).expect("ready")).expect("json");
    active.store(u32::try_from(c["provider_id"].as_u64().expect("id")).expect("id"), Ordering::SeqCst);
    let proxy: SocketAddr = c["proxy"].as_str().expect("proxy").parse().expect("addr");
    let o = origin().await;

    let mut gaps = Vec::new();
    for run in 0..runs {
        // Wait for a standby (one more than before this run) and a working path.
        let want = u32::try_from(run + 1).unwrap_or(u32::MAX);
        let t = Instant::now();
        while standbys.load(Ordering::SeqCst) < want || !request(proxy, o).await {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "no standby after run {run}: {:?}",
                log.lock().map(|l| l.iter().rev().take(8).cloned().collect::<Vec<_>>())
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let victim = active.load(Ordering::SeqCst) as usize;
        let (child, d, key) = &mut nodes[victim - 1];
        let killed = Instant::now();
        child.kill().expect("kill -9");
        let _ = child.wait();
        // Steady load: a request every 10 ms until one succeeds.
        loop {
            if request(proxy, o).await {
                break;
            }
            assert!(killed.elapsed() < Duration::from_secs(30), "no recovery");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let gap = killed.elapsed().as_secs_f64() * 1000.0;
        println!(
            "run {}: killed provider {victim}, requests flowing again after {gap:.0} ms (now via {})",
            run + 1,
            active.load(Ordering::SeqCst)
        );
        gaps.push(gap);
        *child = spawn_node(&exe, d, key, &dir.join(format!("node{victim}-{run}.log")));
    }
    gaps.sort_by(f64::total_cmp);
    let median = gaps[gaps.len() / 2];
    // Stop everything (stdin closed = clean shutdown), bounded; kill what lingers.
    let mut all: Vec<&mut Child> = vec![&mut client];
    all.extend(nodes.iter_mut().map(|(c, _, _)| c));
    for c in &mut all {
        drop(c.stdin.take());
    }
    let t = Instant::now();
    for c in all {
        while c.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
    println!("failover_ms_median: {median:.0}");
    let _ = std::fs::remove_dir_all(&dir);
}
