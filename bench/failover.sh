#!/usr/bin/env bash
# make bench-failover: kill -9 the provider under a client with a steady request load; report
# the gap until requests succeed again (median of RUNS). Real processes: anvil, four
# `wirepact node`, one `wirepact connect` with its warm standby.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-10}
cargo build --release --locked -q -p wirepact-cli --bin wirepact --example bench_failover
target/release/examples/bench_failover --wirepact target/release/wirepact --runs "$RUNS"
