//! Contract bindings generated from the committed forge artifacts (ABI + bytecode).
#![allow(missing_docs, missing_debug_implementations, clippy::too_many_arguments)]

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    WirepactMarket,
    "abi/WirepactMarket.json"
);

/// The market's audit module (oracles, reports, bonus), deployed before the market. Its ABI
/// repeats the market's types, so it lives in its own namespace; deploy it with
/// [`audit_module_deploy_code`].
pub mod audit_module {
    #![allow(missing_docs, missing_debug_implementations, clippy::too_many_arguments)]
    alloy::sol!(
        #[sol(rpc)]
        #[derive(Debug, PartialEq, Eq)]
        AuditModule,
        "abi/AuditModule.json"
    );
}

/// The module's creation code with its constructor argument (the market's parameters).
#[must_use]
pub fn audit_module_deploy_code(params: &IWirepactMarket::Params) -> alloy::primitives::Bytes {
    use alloy::sol_types::SolValue;
    let mut code = audit_module::AuditModule::BYTECODE.to_vec();
    code.extend_from_slice(&(params.clone(),).abi_encode_params());
    code.into()
}

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

/// `IWirepactMarket.OracleStatus` values (the ABI carries the enum as a `uint8`).
pub mod oracle_status {
    pub const NONE: u8 = 0;
    pub const ACTIVE: u8 = 1;
    pub const LEAVING: u8 = 2;
    pub const SLASHED: u8 = 3;
}

/// `IWirepactMarket.SessionStatus` values (the ABI carries the enum as a `uint8`).
pub mod session_status {
    pub const NONE: u8 = 0;
    pub const OPEN: u8 = 1;
    pub const CLOSING: u8 = 2;
}
