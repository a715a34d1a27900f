# wirepact — one entry point for humans and CI.
SHELL := /bin/bash
CONTRACTS := contracts
FORGE := $(CURDIR)/$(CONTRACTS)/node_modules/@foundry-rs/forge-linux-amd64/bin/forge
ANVIL := $(CURDIR)/$(CONTRACTS)/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
export PATH := $(CURDIR)/$(CONTRACTS)/node_modules/@foundry-rs/forge-linux-amd64/bin:$(CURDIR)/$(CONTRACTS)/node_modules/@foundry-rs/anvil-linux-amd64/bin:$(CURDIR)/$(CONTRACTS)/node_modules/@foundry-rs/cast-linux-amd64/bin:$(PATH)

.PHONY: test-tools bench-udp soak bench-abuse bench-mux sim sim-scale sim-attacks bench-failover bench-probe help demo tools contracts test test-contracts test-rust test-deep gas gas-check abi abi-check bench-meter bench-tunnel fuzz fuzz-smoke

help:
	@echo "make demo       the whole market on a local devnet (anvil, providers, a client under load)"
	@echo "make test       forge tests (CI seed), then Rust tests, clippy, fmt"
	@echo "make test-deep  forge tests with >= 10,000 fuzz runs and deeper invariants"
	@echo "make gas        gas snapshot of the market; ends with the headline figures (issue 17)"
	@echo "make abi        regenerate the committed ABIs/bytecode the Rust side binds to"
	@echo "make bench-meter criterion benchmark of the tunnel's meter"
	@echo "make bench-tunnel tunnel vs direct loopback vs shadowsocks-rust (installs it once)"
	@echo "make bench-mux  yamux vs HTTP/2 (h2) as the tunnel's multiplexer, on the tunnel's TLS"
	@echo "make bench-udp  UDP through the tunnel vs shadowsocks-rust in UDP mode vs direct: loss, goodput, echo RTT"
	@echo "make bench-failover gap until requests flow again after kill -9 of the provider (median)"
	@echo "make soak       devnet daemons under mixed load for SOAK_MINUTES (20): file/RSS growth, stalls, unpaid wei"
	@echo "make bench-abuse a connection flood against a provider at a 1,024-file limit, beside a paying client"
	@echo "make bench-probe oracle probe accuracy (shaped 10/50/200 Mbit/s, +40 ms) and cost"
	@echo "make sim        the simulator's reference market (10k providers, 31 oracles, a day); report in target/sim"
	@echo "make sim-scale  the same at 1k / 10k / 100k providers (run time growth)"
	@echo "make sim-attacks  the simulator as the attacker: every strategy beside 10k honest providers for a week, the sybil sweep, 100k providers a day (SIM_100K=0 skips it)"
	@echo "make fuzz       fuzz the frame decoder and the proxy parsers (FUZZ_SECONDS each)"

TOOLS_STAMP := $(CONTRACTS)/node_modules/.wirepact-tools

tools: $(TOOLS_STAMP)

# npm ci (forge, anvil, cast, solc-js, OpenZeppelin) + forge-std, again whenever the lock file changes.
$(TOOLS_STAMP): $(CONTRACTS)/package-lock.json $(CONTRACTS)/tools/bootstrap.sh
	$(CONTRACTS)/tools/bootstrap.sh
	touch $@

# The devnet: installs the tools, builds release, runs `wirepact devnet` (DEMO_ARGS to change it,
# e.g. DEMO_ARGS="--epochs 10 --keep").
DEMO_ARGS ?= --epochs 6 --epoch-seconds 12 --summary target/devnet-summary.json

demo: tools
	cargo build --release --locked -p wirepact-cli
	target/release/wirepact devnet $(DEMO_ARGS)

contracts: tools
	cd $(CONTRACTS) && $(FORGE) build

test-contracts: tools
	cd $(CONTRACTS) && FOUNDRY_PROFILE=default $(FORGE) test --no-match-contract GasTest

# Regenerate the committed ABIs/bytecode (crates/chain/abi) from a clean build.
abi: tools
	cd $(CONTRACTS) && $(FORGE) build --force
	node $(CONTRACTS)/tools/export-abi.js

# CI: the committed ABIs/bytecode must be exactly what the sources compile to.
abi-check: abi
	@git diff --exit-code -- crates/chain/abi || { echo "crates/chain/abi is stale: run 'make abi' and commit"; exit 1; }

test: test-contracts abi-check test-rust fuzz-smoke

# What the tests drive, from apt when missing: a headless browser (the dashboard), curl (the
# proxies, the cover site), openssl (s_client against the cover site), iperf3 (UDP through
# --tun in the full-device test).
test-tools:
	@missing=""; for t in chromium curl iperf3 openssl; do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then echo "installing from apt:$$missing (the tests drive them)"; \
	  export DEBIAN_FRONTEND=noninteractive; SUDO=$$(command -v sudo || true); \
	  $$SUDO apt-get install -y -q $$missing >/dev/null || { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q $$missing >/dev/null; }; fi

# Rust: tests (the chain tests start anvil from the npm package), clippy, formatting.
test-rust: tools test-tools
	cargo test --workspace --locked
	@# The full-device test (ignored by default: it needs root and network namespaces).
	@if [ "$$(id -u)" = 0 ]; then cargo test --locked -p wirepact-cli --test cli -- --ignored full_device; \
	else echo "NOT RUN (needs root): full_device::curl_in_a_namespace_without_proxy_settings_goes_through_the_provider"; fi
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo fmt --all --check

test-deep: tools
	cd $(CONTRACTS) && FOUNDRY_PROFILE=deep $(FORGE) test

# Tunnel throughput vs direct loopback and shadowsocks-rust; connect overhead (bench/tunnel.sh).
bench-tunnel:
	bench/tunnel.sh

# UDP (SOCKS5 UDP ASSOCIATE) through the tunnel vs shadowsocks-rust's UDP relay vs direct (bench/udp.sh).
bench-udp:
	bench/udp.sh

# yamux vs HTTP/2 on the tunnel's TLS (the multiplexer choice).
bench-mux:
	cargo run --release --locked -q -p wirepact-client --example bench_mux

# Failover gap after kill -9 of the client's provider under load, median of 10 runs.
bench-failover: tools
	bench/failover.sh

# Long run of the real daemons (node, client, three oracles) under mixed parallel load: open
# files and RSS of each, stalled streams, receipted-but-unpaid wei (bench/abuse example).
SOAK_MINUTES ?= 20
soak: tools
	cargo build --release --locked -q -p wirepact-cli --bin wirepact --example bench_abuse
	target/release/examples/bench_abuse --wirepact target/release/wirepact --soak $(SOAK_MINUTES)

# 2,000 idle TCP + 2,000 half TLS handshakes from 100 addresses against a provider limited to
# 1,024 files, while a client downloads and uploads through it and oracles probe it.
ABUSE_SECONDS ?= 180
bench-abuse: tools
	cargo build --release --locked -q -p wirepact-cli --bin wirepact --example bench_abuse
	target/release/examples/bench_abuse --wirepact target/release/wirepact --abuse $(ABUSE_SECONDS)

# Accuracy and cost of the oracle's probe against shaped providers (no chain needed).
bench-probe:
	cargo run --release --locked -q -p wirepact-oracle --example bench_probe

# The market simulator on the committed bytecode (bench/sim.sh; no chain or tools needed).
sim:
	bench/sim.sh

sim-scale:
	SIM_SCALE=1 bench/sim.sh

sim-attacks:
	bench/sim-attacks.sh

# Fuzzing (cargo-fuzz on the installed nightly): the control-frame decoder and the local proxy's
# SOCKS5/HTTP CONNECT parsers. `make test` runs each for FUZZ_SMOKE_SECONDS; `make fuzz` longer.
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_SECONDS ?= 300

fuzz-smoke:
	fuzz/run.sh $(FUZZ_SMOKE_SECONDS)

fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

# Criterion benchmark of the sans-IO meter (cost per forwarded chunk).
bench-meter:
	cargo bench -p wirepact-tunnel --bench meter

# Each market call in GasTest is its own transaction (--isolate): cold storage, base and calldata
# included. Writes contracts/snapshots/GasTest.json; prints the breakdown, then the headline lines
# and the deployed contracts' sizes (each must keep >= 20 % headroom under 24,576 B).
gas: tools
	@cd $(CONTRACTS) && $(FORGE) test --isolate --match-contract GasTest -vv | tee /tmp/wirepact-gas.log | grep -E '^ +[a-z]' | grep -vE '^ +(session_lifecycle_gas|report_gas_10k_healthy|report_gas_per_violator|bonus_claim_gas):' | sed -E 's/^ +//'
	@grep -E '^ +(report_gas_10k_healthy|report_gas_per_violator|bonus_claim_gas|session_lifecycle_gas):' /tmp/wirepact-gas.log | sed -E 's/^ +//; s/: +/: /'
	@cd $(CONTRACTS) && $(FORGE) build --sizes --json 2>/dev/null | node -e 'const s=JSON.parse(require("fs").readFileSync(0,"utf8")); const l=24576; let min=100; for (const n of ["WirepactMarket","AuditModule"]) { const pct=100*(l-s[n].runtime_size)/l; console.log("size_" + n + ": " + s[n].runtime_size + " B (" + pct.toFixed(1) + " % headroom)"); min=Math.min(min,pct); } console.log("min_size_headroom_pct: " + min.toFixed(1));'

# Fails when the committed gas snapshot differs from a fresh run.
gas-check: gas
	git diff --exit-code -- $(CONTRACTS)/snapshots
