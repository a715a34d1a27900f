# wirepact — one entry point for humans and CI.
SHELL := /bin/bash
CONTRACTS := contracts
FORGE := $(CURDIR)/$(CONTRACTS)/node_modules/@foundry-rs/forge-linux-amd64/bin/forge
ANVIL := $(CURDIR)/$(CONTRACTS)/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
export PATH := $(CURDIR)/$(CONTRACTS)/node_modules/@foundry-rs/forge-linux-amd64/bin:$(CURDIR)/$(CONTRACTS)/node_modules/@foundry-rs/anvil-linux-amd64/bin:$(CURDIR)/$(CONTRACTS)/node_modules/@foundry-rs/cast-linux-amd64/bin:$(PATH)

.PHONY: help tools contracts test test-contracts test-deep gas gas-check abi abi-check

help:
	@echo "make test       forge tests (CI seed), then Rust tests, clippy, fmt"
	@echo "make test-deep  forge tests with >= 10,000 fuzz runs and deeper invariants"
	@echo "make gas        gas snapshot of the market; ends with the two headline figures"
	@echo "make abi        regenerate the committed ABIs/bytecode the Rust side binds to"

tools: $(CONTRACTS)/lib/forge-std/src/Test.sol $(FORGE)

$(FORGE) $(CONTRACTS)/lib/forge-std/src/Test.sol: $(CONTRACTS)/package-lock.json
	$(CONTRACTS)/tools/bootstrap.sh

contracts: tools
	cd $(CONTRACTS) && $(FORGE) build

test-contracts: tools
	cd $(CONTRACTS) && FOUNDRY_PROFILE=default $(FORGE) test

test: test-contracts

test-deep: tools
	cd $(CONTRACTS) && FOUNDRY_PROFILE=deep $(FORGE) test

gas: tools
	cd $(CONTRACTS) && $(FORGE) snapshot --match-contract GasTest --snap .gas-snapshot
	@cd $(CONTRACTS) && $(FORGE) test --match-contract GasTest -vv | grep -E '^  (session_lifecycle_gas|report_gas_per_provider):' | sed 's/^  //'

gas-check: tools
	cd $(CONTRACTS) && $(FORGE) snapshot --match-contract GasTest --snap .gas-snapshot --check
