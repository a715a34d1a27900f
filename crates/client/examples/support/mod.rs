//! What the tunnel benchmarks share: the size-prefixed bulk protocol their origins answer and
//! their clients ask with, and turning a batch of timed stream tasks into a rate.

use std::time::Instant;

/// Not every benchmark builds a tunnel (bench_mux does not).
#[allow(dead_code)]
pub mod tunnel;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

/// Origin side of a stream: reads an 8-byte big-endian size, answers that many bytes (cycling
/// through `block`), closes.
pub async fn answer_size<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, block: &[u8]) {
    let mut n = [0u8; 8];
    if s.read_exact(&mut n).await.is_err() {
        return;
    }
    let mut left = u64::from_be_bytes(n);
    while left > 0 {
        let k = usize::try_from(left.min(block.len() as u64)).unwrap_or(block.len());
        if s.write_all(&block[..k]).await.is_err() {
            return;
        }
        left -= k as u64;
    }
    let _ = s.shutdown().await;
}

/// Client side: asks for `each` bytes and reads to the end of the stream; panics unless
/// exactly `each` arrived.
pub async fn ask_size<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, each: u64) {
    s.write_all(&each.to_be_bytes()).await.expect("ask");
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    loop {
        let n = s.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        got += n as u64;
    }
    assert_eq!(got, each, "short transfer");
}

/// Waits for every stream task and returns `bytes` per second since `start`.
pub async fn rate(start: Instant, tasks: Vec<JoinHandle<()>>, bytes: u64) -> f64 {
    for t in tasks {
        t.await.expect("stream task");
    }
    bytes as f64 / start.elapsed().as_secs_f64()
}
