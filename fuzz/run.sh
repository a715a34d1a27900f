#!/usr/bin/env bash
# Runs every fuzz target for $1 seconds with cargo-fuzz on the installed nightly toolchain
# (installing cargo-fuzz 0.13.2 from crates.io if missing). Without a nightly it says so and
# exits 0: fuzzing needs nightly's sanitizer support; the proptests still cover the parsers.
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${1:-10}
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: no nightly toolchain here; skipped"
  exit 0
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
for t in frame_decode socks_parse hello_undress; do
  log=$(mktemp)
  if ! cargo +nightly fuzz run "$t" -- -max_total_time="$SECONDS_EACH" >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $t found a failure (input saved under fuzz/artifacts/$t)"
    exit 1
  fi
  echo "fuzz: $t $(grep -E '^Done [0-9]+ runs' "$log" | tail -1)"
  rm -f "$log"
done
