//! `make soak` and `make bench-abuse`: the daemons as real processes on a devnet, under load
//! for a long time (soak) or under a connection flood (abuse).
//!
//! anvil, the market (12 s epochs, every provider audited every epoch), one honest provider
//! (`wirepact node`), three oracles (`wirepact oracle`) probing it every epoch, and a client
//! (`wirepact connect`) through which this program runs a mixed load: parallel streams that
//! upload and download at once, each byte counted at both ends.
//!
//! - `--soak MINUTES`: samples every daemon's open files and RSS every 5 s; after the run,
//!   prints the worst growth per hour (linear fit after a warm-up), the streams that stalled
//!   (no progress for 30 s while they wanted data), and the wei receipted but never paid once
//!   the client and the provider have stopped and claimed.
//! - `--abuse SECONDS`: the provider runs with a 1,024-file limit (`prlimit`), and while the
//!   load runs a flood holds 2,000 idle TCP connections and 2,000 half-finished TLS handshakes
//!   against its port, from 100 source addresses (127.0.0.2 to 127.0.0.101; the client and the
//!   oracles dial from 127.0.0.1). Prints the share of the load's requests that completed, the
//!   provider's peak RSS, and the epochs in which an oracle's probe of the provider failed.
//!
//! cargo run --release -p wirepact-cli --example bench_abuse -- --wirepact target/release/wirepact --soak 20

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::U256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket};
use wirepact_chain::{devnet_params, AlloyMarket, Devnet, Market, SendPolicy};
use wirepact_proto::ProviderId;

mod support;

const EPOCH: u64 = 12;
const SLA_MBPS: u64 = 20;
/// A stream that moves nothing for this long while it wants data is stalled.
const STALL: Duration = Duration::from_secs(30);
const WORKERS: usize = 6;

fn tokens(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18))
}

fn byte(i: u64) -> u8 {
    u8::try_from(i % 251).unwrap_or(0)
}

/// Reads `u64 up, u64 down`, answers `down` bytes while reading `up` bytes, then 8 bytes: the
/// number of upload bytes it received.
async fn origin() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let mut hdr = [0u8; 16];
                if r.read_exact(&mut hdr).await.is_err() {
                    return;
                }
                let up = u64::from_be_bytes(hdr[..8].try_into().unwrap_or_default());
                let down = u64::from_be_bytes(hdr[8..].try_into().unwrap_or_default());
                let send = async move {
                    let chunk: Vec<u8> = (0..64 * 1024).map(byte).collect();
                    let mut left = down;
                    while left > 0 {
                        let n = left.min(chunk.len() as u64);
                        if w.write_all(&chunk[..usize::try_from(n).unwrap_or(0)]).await.is_err() {
                            return None;
                        }
                        left -= n;
                    }
                    Some(w)
                };
                let recv = async move {
                    let mut got = 0u64;
                    let mut buf = vec![0u8; 64 * 1024];
                    while got < up {
                        match r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => got += n as u64,
                        }
                    }
                    got
                };
                let (w, got) = tokio::join!(send, recv);
                if let Some(mut w) = w {
                    let _ = w.write_all(&got.to_be_bytes()).await;
                    let _ = w.shutdown().await;
                }
            });
        }
    });
    a
}

#[derive(Default)]
struct Load {
    ok: AtomicU64,
    failed: AtomicU64,
    stalled: AtomicU64,
    bytes: AtomicU64,
}

/// One stream through the SOCKS proxy: `up` bytes out and `down` in at once; both ends' counts
/// are checked. A stream that makes no progress for [`STALL`] while it wants data is stalled.
async fn stream(proxy: SocketAddr, origin: SocketAddr, up: u64, down: u64, load: &Load) {
    let last = Arc::new(AtomicU64::new(0));
    let born = Instant::now();
    let stamp = |l: &AtomicU64| l.store(u64::try_from(born.elapsed().as_millis()).unwrap_or(0), Ordering::Relaxed);
    let work = async {
        let s = support::socks_connect(proxy, origin).await?;
        let (mut rd, mut wr) = s.into_split();
        let l2 = last.clone();
        let writer = async move {
            let mut hdr = up.to_be_bytes().to_vec();
            hdr.extend_from_slice(&down.to_be_bytes());
            wr.write_all(&hdr).await.ok()?;
            let chunk = vec![0x33u8; 32 * 1024];
            let mut left = up;
            while left > 0 {
                let n = left.min(chunk.len() as u64);
                wr.write_all(&chunk[..usize::try_from(n).unwrap_or(0)]).await.ok()?;
                left -= n;
                l2.store(u64::try_from(born.elapsed().as_millis()).unwrap_or(0), Ordering::Relaxed);
            }
            Some(wr)
        };
        let l3 = last.clone();
        let reader = async move {
            let mut got = Vec::with_capacity(8);
            let mut n_down = 0u64;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        for &b in &buf[..n] {
                            if n_down < down {
                                if b != byte(n_down % (64 * 1024)) {
                                    return None;
                                }
                                n_down += 1;
                            } else {
                                got.push(b);
                            }
                        }
                        l3.store(u64::try_from(born.elapsed().as_millis()).unwrap_or(0), Ordering::Relaxed);
                    }
                }
            }
            (n_down == down && got.len() == 8).then(|| u64::from_be_bytes(got.try_into().unwrap_or_default()))
        };
        let (w, echoed) = tokio::join!(writer, reader);
        w?;
        (echoed? == up).then_some(())
    };
    stamp(&last);
    tokio::pin!(work);
    let done = loop {
        tokio::select! {
            r = &mut work => break Some(r),
            () = tokio::time::sleep(Duration::from_secs(1)) => {
                let idle = born.elapsed().saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                if idle >= STALL {
                    break None;
                }
            }
        }
    };
    match done {
        Some(Some(())) => {
            load.ok.fetch_add(1, Ordering::Relaxed);
            load.bytes.fetch_add(up + down, Ordering::Relaxed);
        }
        Some(None) => {
            load.failed.fetch_add(1, Ordering::Relaxed);
        }
        None => {
            load.stalled.fetch_add(1, Ordering::Relaxed);
            load.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A daemon's open files and resident memory (KiB), from /proc.
fn sample(pid: u32) -> Option<(u64, u64)> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some((fds, rss))
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Least-squares slope of `ys` over `xs` (per unit of x).
fn slope(pts: &[(f64, f64)]) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let n = pts.len() as f64;
    if pts.len() < 2 {
        return 0.0;
    }
    let (sx, sy) = pts.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = pts.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + (x - mx) * (y - my), b + (x - mx) * (x - mx)));
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

fn spawn(exe: &Path, args: &[String], key: &str, log: &Path, nofile: Option<u64>) -> Child {
    let mut cmd = match nofile {
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}")).arg("--").arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(args)
        .arg("--exit-with-stdin")
        .env("WIREPACT_PRIVATE_KEY", key)
        .env("WIREPACT_LOG", "info")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("spawn")
}

fn wait_ready(file: &Path, child: &mut Child, log: &Path) -> serde_json::Value {
    let t = Instant::now();
    loop {
        if let Ok(b) = std::fs::read(file) {
            if let Ok(v) = serde_json::from_slice(&b) {
                return v;
            }
        }
        assert!(child.try_wait().expect("wait").is_none(), "exited before ready; see {}", log.display());
        assert!(t.elapsed() < Duration::from_secs(90), "not ready; see {}", log.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops a daemon cleanly (stdin closed), bounded; kills it after that.
fn stop(mut c: Child, t: Duration) -> bool {
    drop(c.stdin.take());
    let start = Instant::now();
    while start.elapsed() < t {
        if let Ok(Some(st)) = c.try_wait() {
            return st.success();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = c.kill();
    let _ = c.wait();
    false
}

/// Holds `idle` TCP connections that never send a byte and `half` that send the start of a
/// TLS ClientHello and then nothing, against `target`, from 100 source addresses; reopens any
/// the provider closes. Counts how many connections it opened in all.
async fn flood(target: SocketAddr, idle: usize, half: usize, until: Instant, opened: Arc<AtomicU64>) {
    let hello_start = [0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];
    let mut tasks = Vec::new();
    for i in 0..idle + half {
        let opened = opened.clone();
        let src = Ipv4Addr::new(127, 0, 0, 2 + u8::try_from(i % 100).unwrap_or(0));
        let partial = i >= idle;
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let sock = TcpSocket::new_v4().ok();
                let Some(sock) = sock else { return };
                if sock.bind(SocketAddr::new(IpAddr::V4(src), 0)).is_err() {
                    return;
                }
                let Ok(Ok(mut s)) = tokio::time::timeout(Duration::from_secs(5), sock.connect(target)).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                opened.fetch_add(1, Ordering::Relaxed);
                if partial && s.write_all(&hello_start).await.is_err() {
                    continue;
                }
                // Hold it until the provider closes it or the flood ends.
                let mut b = [0u8; 256];
                let left = until.saturating_duration_since(Instant::now());
                while let Ok(Ok(n)) = tokio::time::timeout(left, s.read(&mut b)).await {
                    if n == 0 {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines, clippy::cast_precision_loss)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |n: &str| args.iter().position(|a| a == n).and_then(|i| args.get(i + 1)).cloned();
    let exe = PathBuf::from(arg("--wirepact").unwrap_or_else(|| "target/release/wirepact".into()));
    let soak_minutes: Option<u64> = arg("--soak").map(|v| v.parse().expect("--soak MINUTES"));
    let abuse_seconds: Option<u64> = arg("--abuse").map(|v| v.parse().expect("--abuse SECONDS"));
    let (run, abuse) = match (soak_minutes, abuse_seconds) {
        (Some(m), None) => (Duration::from_secs(m * 60), false),
        (None, Some(s)) => (Duration::from_secs(s), true),
        _ => panic!("say --soak MINUTES or --abuse SECONDS"),
    };
    let idle: usize = arg("--idle").map_or(2000, |v| v.parse().expect("--idle N"));
    let half: usize = arg("--half").map_or(2000, |v| v.parse().expect("--half N"));
    let dir = std::env::temp_dir().join(format!("wirepact-bench-abuse-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    eprintln!("work dir {}", dir.display());

    let devnet = Devnet::start().expect("anvil (make tools)");
    let rpc = devnet.endpoint();
    let policy = SendPolicy { poll_interval: Duration::from_millis(20), ..SendPolicy::default() };
    let mut params = devnet_params();
    params.epochLength = EPOCH;
    params.claimGrace = EPOCH;
    let m = AlloyMarket::deploy(&rpc, devnet.signer(0).expect("key"), None, params, policy).await.expect("deploy");
    for i in 1..=5 {
        m.mint_test_tokens(devnet.signer(i).expect("key").address(), tokens(10_000)).await.expect("mint");
    }
    let market = m.address().to_string();
    let key = |i: usize| devnet.signer(i).expect("key").to_bytes().to_string();

    let nd = dir.join("node");
    std::fs::create_dir_all(&nd).expect("dir");
    std::fs::write(
        nd.join("node.toml"),
        format!(
            "rpc_url = \"{rpc}\"\nmarket = \"{market}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\n\
             capacity_mbps = 200\nsession_mbps = {SLA_MBPS}\nmax_latency_ms = 80\nprice_per_gib = \"0.1\"\n\
             window_bytes = 1048576\nclaim_threshold = \"0.0001\"\nclaim_interval_secs = 5\n\
             egress_allow = [\"127.0.0.0/8\"]\n",
            nd.display()
        ),
    )
    .expect("cfg");
    let nready = nd.join("ready.json");
    let nargs: Vec<String> =
        ["node", "--config", &nd.join("node.toml").to_string_lossy(), "--ready-file", &nready.to_string_lossy()]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
    let nlog = dir.join("node.log");
    let mut node = spawn(&exe, &nargs, &key(1), &nlog, abuse.then_some(1024));
    let ninfo = wait_ready(&nready, &mut node, &nlog);
    let paddr: SocketAddr = ninfo["listen"].as_str().expect("listen").parse().expect("addr");
    let pid = ProviderId(u32::try_from(ninfo["provider_id"].as_u64().expect("id")).expect("id"));

    let cd = dir.join("client");
    std::fs::create_dir_all(&cd).expect("dir");
    std::fs::write(
        cd.join("client.toml"),
        format!(
            "rpc_url = \"{rpc}\"\nmarket = \"{market}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\n\
             deposit = \"500\"\nstandby = false\nwindow_bytes = 1048576\n",
            cd.display()
        ),
    )
    .expect("cfg");
    let cready = cd.join("ready.json");
    let cargs: Vec<String> =
        ["connect", "--config", &cd.join("client.toml").to_string_lossy(), "--ready-file", &cready.to_string_lossy()]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
    let clog = dir.join("client.log");
    let mut client = spawn(&exe, &cargs, &key(2), &clog, None);
    let cinfo = wait_ready(&cready, &mut client, &clog);
    let proxy: SocketAddr = cinfo["proxy"].as_str().expect("proxy").parse().expect("addr");

    let (mut oracles, mut odirs) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let od = dir.join(format!("oracle{i}"));
        std::fs::create_dir_all(&od).expect("dir");
        std::fs::write(
            od.join("oracle.toml"),
            format!(
                "rpc_url = \"{rpc}\"\nmarket = \"{market}\"\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:0\"\n\
                 sink_listen = \"127.0.0.1:0\"\nprobe_deposit = \"1\"\nprobe_window_pct = 20\nfallback_pct = 30\n\
                 confirm_suspects = false\n",
                od.display()
            ),
        )
        .expect("cfg");
        let oready = od.join("ready.json");
        let oargs: Vec<String> = [
            "oracle",
            "--config",
            &od.join("oracle.toml").to_string_lossy(),
            "--ready-file",
            &oready.to_string_lossy(),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let olog = dir.join(format!("oracle{i}.log"));
        let mut o = spawn(&exe, &oargs, &key(3 + i), &olog, None);
        wait_ready(&oready, &mut o, &olog);
        oracles.push(o);
        odirs.push(od);
    }
    let genesis = m.genesis().await.expect("genesis");
    let epoch_now = || {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        now.saturating_sub(genesis) / EPOCH
    };

    let o = origin().await;
    let load = Arc::new(Load::default());
    let start = Instant::now();
    let until = start + run;
    let first_epoch = epoch_now();
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let load = load.clone();
        workers.push(tokio::spawn(async move {
            let mut k = 0u64;
            while Instant::now() < until {
                // A mix: both ways, mostly up, mostly down; 256 KiB to 4 MiB.
                let size = (256 * 1024) << ((k + w as u64) % 5);
                let (up, down) = match (k + w as u64) % 3 {
                    0 => (size, size),
                    1 => (size, 4096),
                    _ => (4096, size),
                };
                stream(proxy, o, up, down, &load).await;
                k += 1;
            }
        }));
    }
    let flood_opened = Arc::new(AtomicU64::new(0));
    let flood_task = abuse.then(|| {
        // The load runs alone for two epochs first, then the flood joins it until the end.
        let opened = flood_opened.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2 * EPOCH).min(run / 4)).await;
            flood(paddr, idle, half, until, opened).await;
        })
    });

    // Sample every daemon every 5 s.
    let pids: Vec<(String, u32)> = std::iter::once(("node".to_owned(), node.id()))
        .chain(std::iter::once(("client".to_owned(), client.id())))
        .chain(oracles.iter().enumerate().map(|(i, c)| (format!("oracle{i}"), c.id())))
        .collect();
    let mut series: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); pids.len()];
    let mut node_peak = 0u64;
    while Instant::now() < until {
        let t = start.elapsed().as_secs_f64() / 3600.0;
        for (i, (_, p)) in pids.iter().enumerate() {
            if let Some((fds, rss)) = sample(*p) {
                series[i].push((t, fds as f64, rss as f64 / 1024.0));
            }
        }
        node_peak = node_peak.max(peak_rss_kib(pids[0].1));
        let s = load.ok.load(Ordering::Relaxed);
        eprintln!(
            "{:>5.0} s: streams ok {s}, failed {}, stalled {}, {} MiB; node files {} rss {:.0} MB; flood opened {}",
            start.elapsed().as_secs_f64(),
            load.failed.load(Ordering::Relaxed),
            load.stalled.load(Ordering::Relaxed),
            load.bytes.load(Ordering::Relaxed) >> 20,
            series[0].last().map_or(0.0, |x| x.1),
            series[0].last().map_or(0.0, |x| x.2),
            flood_opened.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    for w in workers {
        let _ = tokio::time::timeout(STALL + Duration::from_secs(10), w).await;
    }
    if let Some(f) = flood_task {
        let _ = f.await;
    }
    let last_epoch = epoch_now();
    node_peak = node_peak.max(peak_rss_kib(pids[0].1));

    // Stop: the client signs its final receipt and closes; then the provider claims it all.
    let clean_client = stop(client, Duration::from_secs(60));
    for c in oracles {
        stop(c, Duration::from_secs(30));
    }
    let clean_node = stop(node, Duration::from_secs(60));
    let db = wirepact_node::ReceiptDb::open(&nd.join("receipts.redb")).expect("receipts db");
    let mut unclaimed = U256::ZERO;
    for (id, rec, done) in db.unclaimed().expect("unclaimed") {
        let price = db.terms(id).expect("terms").map_or(U256::ZERO, |t| U256::from(t.pricePerGiB));
        let wei = (U256::from(rec.cumulative_bytes - done) * price) >> 30;
        println!("unclaimed: session {id}: receipted {} bytes, claimed {done}, {wei} wei", rec.cumulative_bytes);
        unclaimed += wei;
    }
    let p = m.provider(pid).await.expect("provider");

    // Oracles' verdicts on the provider during the run: any probe below the SLA or unreachable.
    let mut bad_epochs = BTreeSet::new();
    let mut judged = BTreeSet::new();
    for od in &odirs {
        let text = std::fs::read_to_string(od.join("observations.jsonl")).unwrap_or_default();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            let epoch = v["signed"]["epoch"].as_u64().unwrap_or(0);
            if epoch < first_epoch || epoch > last_epoch {
                continue;
            }
            for x in v["measured"].as_array().into_iter().flatten() {
                if x["provider"].as_u64() != Some(u64::from(pid.0)) {
                    continue;
                }
                judged.insert(epoch);
                let ok = x["m"]["reachable"].as_bool() == Some(true)
                    && x["m"]["throughput_kbps"].as_u64().unwrap_or(0) >= SLA_MBPS * 1000;
                if !ok {
                    bad_epochs.insert(epoch);
                    println!("probe below the SLA: epoch {epoch}, {}: {}", od.display(), x["m"]);
                }
            }
        }
    }

    let worst = |k: usize| -> (String, f64) {
        let mut worst = (String::new(), f64::MIN);
        for (i, s) in series.iter().enumerate() {
            // After a warm-up of a fifth of the run (pools, caches and lanes settle).
            let warm = s.first().map_or(0.0, |x| x.0) + run.as_secs_f64() / 3600.0 / 5.0;
            let pts: Vec<(f64, f64)> =
                s.iter().filter(|x| x.0 >= warm).map(|x| (x.0, if k == 0 { x.1 } else { x.2 })).collect();
            let g = slope(&pts);
            if g > worst.1 {
                worst = (pids[i].0.clone(), g);
            }
        }
        worst
    };
    let ok = load.ok.load(Ordering::Relaxed);
    let failed = load.failed.load(Ordering::Relaxed);
    println!(
        "load: {ok} streams ok, {failed} failed, {} MiB moved; clean stops: client {clean_client}, node {clean_node}",
        load.bytes.load(Ordering::Relaxed) >> 20
    );
    println!(
        "provider: violations {}, stake {}; epochs {}..={} judged by the oracles: {}",
        p.violationCount,
        wirepact_proto::format_tokens(U256::from(p.stake)),
        first_epoch,
        last_epoch,
        judged.len()
    );
    if abuse {
        println!("flood: {} connections opened against the provider", flood_opened.load(Ordering::Relaxed));
        println!("abuse_legit_success_pct: {:.1}", ok as f64 * 100.0 / (ok + failed).max(1) as f64);
        println!("abuse_provider_rss_mb: {:.1}", node_peak as f64 / 1024.0);
        println!("abuse_slashable_epochs: {}", bad_epochs.len());
    } else {
        let (fw, fd) = worst(0);
        let (rw, rd) = worst(1);
        println!("soak_fd_growth_per_hour: {fd:.1} ({fw})");
        println!("soak_rss_growth_mb_per_hour: {rd:.1} ({rw})");
        println!("soak_stalled_streams: {}", load.stalled.load(Ordering::Relaxed));
        println!("soak_unclaimed_receipted_wei: {unclaimed}");
        println!("soak_slashable_epochs: {}", bad_epochs.len());
    }
    drop(devnet);
    if std::env::var_os("KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
