//! Contract bindings generated from the committed forge artifacts (ABI + bytecode).
#![allow(missing_docs, missing_debug_implementations, clippy::too_many_arguments)]

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    WirepactMarket,
    "abi/WirepactMarket.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    TestToken,
    "abi/TestToken.json"
);
