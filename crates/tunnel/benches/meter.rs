//! Cost of metering per forwarded chunk (the tunnel calls `take` for every buffer it forwards),
//! and of the receipts themselves: the client signs one per half window, the provider recovers
//! its signer — with the default 8 MiB window that is one of each per 4 MiB forwarded.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use wirepact_tunnel::{ClientMeter, ProviderMeter, DEFAULT_WINDOW};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("meter");
    const CHUNK: u64 = 16 * 1024;
    const CHUNKS: u64 = 4096; // 64 MiB per iteration
    g.throughput(Throughput::Bytes(CHUNK * CHUNKS));
    g.bench_function("forward_and_receipt_64MiB_in_16KiB_chunks", |b| {
        b.iter(|| {
            let mut p = ProviderMeter::new(DEFAULT_WINDOW).expect("window");
            let mut cl = ClientMeter::new(DEFAULT_WINDOW).expect("window");
            let mut now = 1u64;
            for _ in 0..CHUNKS {
                let k = p.take(black_box(CHUNK));
                cl.on_requested(k);
                if let Some(due) = cl.receipt_due(now, false) {
                    cl.on_signed(due).expect("signed");
                    let grant = p.on_receipt(due.cumulative, due.timestamp, due.timestamp).expect("receipt");
                    cl.on_grant(grant).expect("grant");
                    now += 1;
                }
            }
            black_box(p.receipted())
        });
    });
    g.finish();

    let mut g = c.benchmark_group("receipt");
    let key = alloy::signers::local::PrivateKeySigner::random();
    let dom = wirepact_proto::domain(1, alloy::primitives::Address::repeat_byte(1));
    let r = wirepact_proto::Receipt {
        sessionId: alloy::primitives::B256::repeat_byte(7),
        cumulativeBytes: 4 << 20,
        timestamp: 1_800_000_000,
    };
    g.bench_function("client_signs", |b| b.iter(|| wirepact_proto::sign_receipt(&key, &dom, black_box(&r))));
    let sig = wirepact_proto::sign_receipt(&key, &dom, &r).expect("sign");
    g.bench_function("provider_recovers", |b| {
        b.iter(|| wirepact_proto::recover_receipt(&dom, black_box(&r), &sig, key.address()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
