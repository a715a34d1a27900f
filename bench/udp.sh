#!/usr/bin/env bash
# make bench-udp: UDP through the wirepact tunnel (SOCKS5 UDP ASSOCIATE -> PQ TLS session ->
# provider) against shadowsocks-rust 1.25 in UDP mode (sslocal -> ssserver,
# 2022-blake3-aes-256-gcm) and straight to the origin, in one run (bench_udp example). Ends with
# udp_vs_shadowsocks, udp_loss_pct_100mbps and udp_rtt_overhead_ms.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/shadowsocks.sh
# -U: TCP and UDP (the SOCKS5 UDP ASSOCIATE needs the TCP side too).
start_shadowsocks -U

cargo run --release -q -p wirepact-client --example bench_udp -- \
  --socks "$SS_LOCAL" --seconds "${BENCH_SECONDS:-2}"
