#!/usr/bin/env bash
# make bench-tunnel: bulk transfer through direct loopback, shadowsocks-rust 1.25
# (2022-blake3-aes-256-gcm, sslocal -> ssserver) and the wirepact tunnel, in one run, with the
# same origin and discarding sink (bench_tunnel example). Ends with the four ratio lines.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=bench/.cache
SS_ROOT=$CACHE/shadowsocks
BYTES=${BENCH_BYTES:-536870912}
ROUNDS=${BENCH_ROUNDS:-5}
mkdir -p "$CACHE"

if [ ! -x "$SS_ROOT/bin/ssserver" ]; then
  echo "bench: installing shadowsocks-rust 1.25.0 from crates.io into $SS_ROOT (about 9 minutes, once)"
  cargo install shadowsocks-rust --locked --version 1.25.0 --root "$SS_ROOT" >"$CACHE/ss-install.log" 2>&1 \
    || { echo "bench: shadowsocks install failed, see $CACHE/ss-install.log"; exit 1; }
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SS_PORT=$(free_port); LOCAL_PORT=$(free_port)
KEY=$("$SS_ROOT/bin/ssservice" genkey -m 2022-blake3-aes-256-gcm)
"$SS_ROOT/bin/ssserver" -s "127.0.0.1:$SS_PORT" -m 2022-blake3-aes-256-gcm -k "$KEY" >"$CACHE/ssserver.log" 2>&1 &
SS_PID=$!
"$SS_ROOT/bin/sslocal" -b "127.0.0.1:$LOCAL_PORT" -s "127.0.0.1:$SS_PORT" -m 2022-blake3-aes-256-gcm -k "$KEY" >"$CACHE/sslocal.log" 2>&1 &
LOCAL_PID=$!
trap 'kill $SS_PID $LOCAL_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  (exec 3<>/dev/tcp/127.0.0.1/$LOCAL_PORT) 2>/dev/null && break
  sleep 0.1
done

cargo run --release -q -p wirepact-tunnel --example bench_tunnel -- \
  --bytes "$BYTES" --rounds "$ROUNDS" --socks "127.0.0.1:$LOCAL_PORT"
