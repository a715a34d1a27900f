#!/usr/bin/env bash
# make bench-tunnel: bulk transfer through direct loopback, shadowsocks-rust 1.25
# (2022-blake3-aes-256-gcm, sslocal -> ssserver) and the wirepact tunnel, in one run, with the
# same origin and discarding sink (bench_tunnel example), plus veil (the random-looking transport)
# and TLS behind a gated cover site. Ends with the ratio lines.
set -euo pipefail
cd "$(dirname "$0")/.."
BYTES=${BENCH_BYTES:-536870912}
ROUNDS=${BENCH_ROUNDS:-5}
source bench/shadowsocks.sh
start_shadowsocks

cargo run --release -q -p wirepact-client --example bench_tunnel -- \
  --bytes "$BYTES" --rounds "$ROUNDS" --socks "$SS_LOCAL"
