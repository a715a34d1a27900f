#!/usr/bin/env node
// Writes the ABI and creation bytecode of the contracts the Rust side binds to, from forge's
// artifacts, into crates/chain/abi/. Deterministic: the build embeds no metadata hash
// (bytecode_hash = "none", cbor_metadata = false), and keys are written in a fixed order.
//
// The market's ABI is the full `IWirepactMarket` API: the functions the entry point defines
// plus those it runs in `AuditModule` through its fallback (they are declared in the
// interface), and the entry point's constructor.
'use strict';
const fs = require('fs');
const path = require('path');
const root = path.join(__dirname, '..');
const outDir = path.join(root, '..', 'crates', 'chain', 'abi');
fs.mkdirSync(outDir, { recursive: true });
const load = (file, name) => JSON.parse(fs.readFileSync(path.join(root, 'out', file, name + '.json'), 'utf8'));
const key = (e) => e.type + ':' + (e.name || '') + '(' + (e.inputs || []).map((i) => i.type).join(',') + ')';

function merged(primary, extra) {
  const seen = new Set(primary.map(key));
  const out = primary.slice();
  for (const e of extra) {
    if (e.type === 'constructor' || seen.has(key(e))) continue;
    seen.add(key(e));
    out.push(e);
  }
  return out;
}

for (const [file, name] of [['WirepactMarket.sol', 'WirepactMarket'], ['AuditModule.sol', 'AuditModule'], ['TestToken.sol', 'TestToken']]) {
  const art = load(file, name);
  let abi = art.abi;
  if (name === 'WirepactMarket') {
    abi = merged(abi, load('IWirepactMarket.sol', 'IWirepactMarket').abi);
  }
  const slim = {
    abi,
    bytecode: { object: art.bytecode.object },
    deployedBytecode: { object: art.deployedBytecode.object },
  };
  fs.writeFileSync(path.join(outDir, name + '.json'), JSON.stringify(slim, null, 1) + '\n');
  console.log('wrote crates/chain/abi/' + name + '.json');
}
