#!/usr/bin/env bash
# The simulator's reference run (scenarios/reference.toml: 10,000 providers, 31 oracles, one day
# of 10-minute epochs) and, with SIM_SCALE=1, the run time at 1k / 10k / 100k providers.
# Ends with sim_seconds_10k_day, detection_rate_80pct and false_slash_per_provider_month.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p wirepact-cli
bin=target/release/wirepact
mkdir -p target/sim
if [[ "${SIM_SCALE:-0}" == "1" ]]; then
  for s in 0.1 1 10; do
    "$bin" sim scenarios/reference.toml --scale "$s" --out "target/sim/scale-$s.json" >/dev/null
    python3 - "$s" "target/sim/scale-$s.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
print(f"scale {sys.argv[1]:>4}: {r['providers']:>6} providers, {r['epochs']} epochs: {r['wall_seconds']:.1f} s, "
      f"report gas {max(g['mean'] for g in r['gas'] if g['kind']=='submitReport'):,}")
PY
  done
fi
"$bin" sim scenarios/reference.toml --out target/sim/reference.json | tee target/sim/reference.txt
python3 - <<'PY'
import json
r = json.load(open("target/sim/reference.json"))
print(f"sim_seconds_10k_day: {r['wall_seconds']:.1f}")
PY
grep -E '^(detection_rate_80pct|false_slash_per_provider_month):' target/sim/reference.txt
