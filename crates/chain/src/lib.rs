#![doc = include_str!("../README.md")]

pub mod anvil;
pub mod bindings;
pub mod error;
pub mod market;
pub mod sender;
pub mod wallet;

pub use anvil::{find_anvil, Devnet};
pub use bindings::{TestToken, WirepactMarket};
pub use error::{ChainError, MarketRevert};
pub use market::{
    default_params, devnet_params, to_u96, violations_in_window, AlloyMarket, Market, OpenedSession, ProviderInfo,
    ReportSubmission, RPC_TIMEOUT,
};
pub use sender::{SendPolicy, TxSender};
pub use wallet::{load_keystore, PasswordSource, WalletError};
