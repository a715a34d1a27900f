#!/usr/bin/env node
// Writes the ABI and creation bytecode of the contracts the Rust side binds to, from forge's
// artifacts, into crates/chain/abi/. Deterministic: the build embeds no metadata hash
// (bytecode_hash = "none", cbor_metadata = false), and keys are written in a fixed order.
'use strict';
const fs = require('fs');
const path = require('path');
const root = path.join(__dirname, '..');
const outDir = path.join(root, '..', 'crates', 'chain', 'abi');
fs.mkdirSync(outDir, { recursive: true });
for (const [file, name] of [['WirepactMarket.sol', 'WirepactMarket'], ['AuditModule.sol', 'AuditModule'], ['TestToken.sol', 'TestToken']]) {
  const art = JSON.parse(fs.readFileSync(path.join(root, 'out', file, name + '.json'), 'utf8'));
  const slim = {
    abi: art.abi,
    bytecode: { object: art.bytecode.object },
    deployedBytecode: { object: art.deployedBytecode.object },
  };
  fs.writeFileSync(path.join(outDir, name + '.json'), JSON.stringify(slim, null, 1) + '\n');
  console.log('wrote crates/chain/abi/' + name + '.json');
}
