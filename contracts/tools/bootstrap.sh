#!/usr/bin/env bash
# Installs the pinned Solidity toolchain from the npm registry (nothing else is downloaded):
# forge/anvil/cast + solc-js + OpenZeppelin via `npm ci`, and forge-std unpacked from the
# @chainlink/contracts registry tarball (only its vendored forge-std/src, git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
FORGE_STD_PKG="@chainlink/contracts@1.4.0"
if [ ! -x node_modules/@foundry-rs/forge-linux-amd64/bin/forge ] || [ ! -d node_modules/solc ] \
   || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "bootstrap: npm ci (forge, anvil, cast, solc-js, OpenZeppelin)"
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ ! -f lib/forge-std/src/Test.sol ]; then
  echo "bootstrap: forge-std from $FORGE_STD_PKG (npm registry)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack "$FORGE_STD_PKG" --silent >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/src/v0.8/vendor/forge-std/src
  rm -rf lib/forge-std
  mkdir -p lib/forge-std
  mv "$tmp/package/src/v0.8/vendor/forge-std/src" lib/forge-std/src
fi
