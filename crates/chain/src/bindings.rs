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

/// `IWirepactMarket.ProviderStatus` values (the ABI carries the enum as a `uint8`).
pub mod provider_status {
    pub const NONE: u8 = 0;
    pub const ACTIVE: u8 = 1;
    pub const JAILED: u8 = 2;
    pub const LEFT: u8 = 3;
}

/// `IWirepactMarket.SessionStatus` values (the ABI carries the enum as a `uint8`).
pub mod session_status {
    pub const NONE: u8 = 0;
    pub const OPEN: u8 = 1;
    pub const CLOSING: u8 = 2;
}
