#!/usr/bin/env bash
# The simulator as the attacker (issue 18). Runs, on the committed bytecode:
#  1. scenarios/attacks.toml: every strategy beside 10k honest providers for a week;
#  2. scenarios/grinder.toml: the seed grinder as an oracle (the residual of the commit-reveal);
#  3. scenarios/time-of-day.toml with and without audits weighted to the evening peak;
#  4. scenarios/sybil.toml with 8..16 of 31 oracles colluding: the smallest coalition that
#     slashes an honest provider;
#  5. unless SIM_100K=0, scenarios/reference.toml at 100k providers for a day (run time).
# Ends with probe_sessions_per_customer_session (why a probe stands out even from an unknown
# account), honest_slashed_under_attack, honest_wei_lost_under_attack,
# cheater_caught_rate_adaptive, sybil_stake_to_slash_honest_pct, gas_per_day_10k and
# sim_seconds_100k_day. Reports are in target/sim/.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q -p wirepact-cli
bin=target/release/wirepact
mkdir -p target/sim

echo "== every strategy beside 10k honest providers, a week (scenarios/attacks.toml) =="
"$bin" sim scenarios/attacks.toml --out target/sim/attacks.json | tee target/sim/attacks.txt
echo "== the seed grinder as an oracle (scenarios/grinder.toml) =="
"$bin" sim scenarios/grinder.toml --out target/sim/grinder.json | grep -E '^(attack|  )' | tee target/sim/grinder.txt

echo "== audits that follow demand against every hour alike (scenarios/time-of-day.toml) =="
"$bin" sim scenarios/time-of-day.toml --out target/sim/time-of-day.json >/dev/null 2>&1
"$bin" sim scenarios/time-of-day.toml --flat-audits --out target/sim/time-of-day-flat.json >/dev/null 2>&1
python3 - <<'PY'
import json
for name, path in (("every hour alike", "target/sim/time-of-day-flat.json"), ("weighted to the evening", "target/sim/time-of-day.json")):
    d = next(d for d in json.load(open(path))["detection"] if d["group"] == "oversold")
    print(f"  oversold, {name:<24}: {d['slashed_share']:.3f} slashed in two days, median {d['median_audits_to_slash']} audits "
          f"and {d['median_hours_to_slash']:.1f} h to the slash, {d['violations_per_audit']:.3f} violations per audit")
PY

echo "== the sybil coalition's size (scenarios/sybil.toml) =="
for n in 8 9 10 11 12 13 14 15 16; do
  "$bin" sim scenarios/sybil.toml --liars "$n" --out "target/sim/sybil-$n.json" >/dev/null 2>&1
  python3 - "$n" "target/sim/sybil-$n.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
print(f"  {sys.argv[1]:>2} of {r['oracles']} oracles: honest slashed {r['honest_slashed_under_attack']}, "
      f"cheaters slashed {sum(d['providers'] * d['slashed_share'] for d in r['detection'] if d['group'] != 'honest'):.0f}")
PY
done | tee target/sim/sybil.txt

if [[ "${SIM_100K:-1}" != "0" ]]; then
  echo "== 100k providers, a day (scenarios/reference.toml --scale 10) =="
  "$bin" sim scenarios/reference.toml --scale 10 --out target/sim/scale-10.json >/dev/null 2>&1
fi

python3 - <<'PY'
import json, os, re
r = json.load(open("target/sim/attacks.json"))
kinds = {g["kind"]: g for g in r["gas"] if g["per_day"] > 0}
sessions = ("openSession", "claim", "close", "collectEarnings")
print("gas per day by kind (attacks.toml, 10k honest + 400 cheaters):")
for k, g in sorted(kinds.items(), key=lambda kv: -kv[1]["per_day"]):
    print(f"  {k:<44} {g['per_day']:>15,}  ({g['count']:,} txs, {g['mean']:,} each)")
attack = sum(g["per_day"] for k, g in kinds.items() if k.startswith(("griefer", "sybil", "close (an idle")))
protocol = sum(g["per_day"] for k, g in kinds.items() if k in ("beginEpoch", "submitReport", "submitReport (commitment only)", "claimBonus", "sweepBonus", "unjail", "leave"))
users = sum(g["per_day"] for k, g in kinds.items() if k in sessions)
print(f"  users' sessions {users:,}; oracles and bonus {protocol:,}; the attackers' and what they cost honest nodes {attack:,}")
# Not simulated: every online oracle opens, closes and settles a probe session with every
# audited provider, and the provider claims its bytes. An estimate from the measured means.
audits_per_day = sum(d["providers"] for d in r["detection"]) * r["params"]["audit_probability_bps"] / 10_000 * 86_400 / r["epoch_seconds"]
per_probe = sum(kinds[k]["mean"] for k in ("openSession", "claim", "close") if k in kinds) + kinds.get("settle", {"mean": 30_000})["mean"]
online = r["oracles"]
print(f"  not simulated, estimated: probe sessions {audits_per_day * online * per_probe:,.0f} "
      f"({audits_per_day:,.0f} audits a day x {online} oracles x {per_probe:,} gas each)")
# Why a provider can tell a probe without reading who opened it: the probes' share of the
# sessions it sees. Every online oracle probes every audited provider, so an audited provider
# gets a burst of `online` sessions in one epoch, against the customers' trickle.
customer_per_day = kinds["openSession"]["count"] * 86_400 / (r["epochs"] * r["epoch_seconds"]) if "openSession" in kinds else 0
if customer_per_day:
    per_audited = customer_per_day / (sum(d["providers"] for d in r["detection"]) * 86_400 / r["epoch_seconds"])
    print(f"probe_sessions_per_customer_session: {audits_per_day * online / customer_per_day:.1f} "
          f"(an audited provider gets {online} probe sessions in its epoch; it gets {per_audited:.3f} customer sessions in an average epoch)")
sybil = []
for n in range(8, 17):
    s = json.load(open(f"target/sim/sybil-{n}.json"))
    if s["honest_slashed_under_attack"] > 0:
        sybil.append(100.0 * n / s["oracles"])
print(f"honest_slashed_under_attack: {r['honest_slashed_under_attack']}")
print(f"honest_wei_lost_under_attack: {r['honest_wei_lost_under_attack']}")
print(f"cheater_caught_rate_adaptive: {r['cheater_caught_rate_adaptive']:.4f}")
print(f"sybil_stake_to_slash_honest_pct: {min(sybil):.1f}" if sybil else "sybil_stake_to_slash_honest_pct: >51.6")
print(f"gas_per_day_10k: {r['gas_per_day_total'] - attack}")
if os.path.exists("target/sim/scale-10.json") and os.environ.get("SIM_100K", "1") != "0":
    print(f"sim_seconds_100k_day: {json.load(open('target/sim/scale-10.json'))['wall_seconds']:.1f}")
PY
