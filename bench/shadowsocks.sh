# Sourced by the benchmarks that compare with shadowsocks-rust 1.25 (2022-blake3-aes-256-gcm):
# installs it once from crates.io into bench/.cache, starts ssserver and sslocal on free
# loopback ports (extra flags, e.g. -U for UDP, go to both) and sets SS_LOCAL to sslocal's
# SOCKS5 address; both are stopped when the calling script exits.
CACHE=bench/.cache
SS_ROOT=$CACHE/shadowsocks
mkdir -p "$CACHE"

if [ ! -x "$SS_ROOT/bin/ssserver" ]; then
  echo "bench: installing shadowsocks-rust 1.25.0 from crates.io into $SS_ROOT (about 9 minutes, once)"
  cargo install shadowsocks-rust --locked --version 1.25.0 --root "$SS_ROOT" >"$CACHE/ss-install.log" 2>&1 \
    || { echo "bench: shadowsocks install failed, see $CACHE/ss-install.log"; exit 1; }
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_shadowsocks() {
  local ss_port local_port key
  ss_port=$(free_port); local_port=$(free_port)
  key=$("$SS_ROOT/bin/ssservice" genkey -m 2022-blake3-aes-256-gcm)
  "$SS_ROOT/bin/ssserver" "$@" -s "127.0.0.1:$ss_port" -m 2022-blake3-aes-256-gcm -k "$key" >"$CACHE/ssserver.log" 2>&1 &
  SS_PID=$!
  "$SS_ROOT/bin/sslocal" "$@" -b "127.0.0.1:$local_port" -s "127.0.0.1:$ss_port" -m 2022-blake3-aes-256-gcm -k "$key" >"$CACHE/sslocal.log" 2>&1 &
  LOCAL_PID=$!
  trap 'kill $SS_PID $LOCAL_PID 2>/dev/null || true' EXIT
  for _ in $(seq 1 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$local_port) 2>/dev/null && break
    sleep 0.1
  done
  SS_LOCAL="127.0.0.1:$local_port"
}
