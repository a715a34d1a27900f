#!/usr/bin/env bash
# make bench-udp: UDP through the wirepact tunnel (SOCKS5 UDP ASSOCIATE -> PQ TLS session ->
# provider) against shadowsocks-rust 1.25 in UDP mode (sslocal -> ssserver,
# 2022-blake3-aes-256-gcm) and straight to the origin, in one run (bench_udp example). Ends with
# udp_vs_shadowsocks, udp_loss_pct_100mbps and udp_rtt_overhead_ms.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=bench/.cache
SS_ROOT=$CACHE/shadowsocks
mkdir -p "$CACHE"

if [ ! -x "$SS_ROOT/bin/ssserver" ]; then
  echo "bench: installing shadowsocks-rust 1.25.0 from crates.io into $SS_ROOT (about 9 minutes, once)"
  cargo install shadowsocks-rust --locked --version 1.25.0 --root "$SS_ROOT" >"$CACHE/ss-install.log" 2>&1 \
    || { echo "bench: shadowsocks install failed, see $CACHE/ss-install.log"; exit 1; }
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SS_PORT=$(free_port); LOCAL_PORT=$(free_port)
KEY=$("$SS_ROOT/bin/ssservice" genkey -m 2022-blake3-aes-256-gcm)
# -U: TCP and UDP (the SOCKS5 UDP ASSOCIATE needs the TCP side too).
"$SS_ROOT/bin/ssserver" -U -s "127.0.0.1:$SS_PORT" -m 2022-blake3-aes-256-gcm -k "$KEY" >"$CACHE/ssserver-udp.log" 2>&1 &
SS_PID=$!
"$SS_ROOT/bin/sslocal" -U -b "127.0.0.1:$LOCAL_PORT" -s "127.0.0.1:$SS_PORT" -m 2022-blake3-aes-256-gcm -k "$KEY" >"$CACHE/sslocal-udp.log" 2>&1 &
LOCAL_PID=$!
trap 'kill $SS_PID $LOCAL_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  (exec 3<>/dev/tcp/127.0.0.1/$LOCAL_PORT) 2>/dev/null && break
  sleep 0.1
done

cargo run --release -q -p wirepact-tunnel --example bench_udp -- \
  --socks "127.0.0.1:$LOCAL_PORT" --seconds "${BENCH_SECONDS:-2}"
