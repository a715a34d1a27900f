//! Cost of metering per forwarded chunk (the tunnel calls `take` for every buffer it forwards).

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
                    let grant = p.on_receipt(due.cumulative, due.timestamp).expect("receipt");
                    cl.on_grant(grant).expect("grant");
                    now += 1;
                }
            }
            black_box(p.receipted())
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
