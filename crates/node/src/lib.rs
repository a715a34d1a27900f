#![doc = include_str!("../README.md")]

pub mod bonus;
pub mod claimer;
pub mod daemon;
pub mod dashboard;
pub mod db;
pub mod idle;
pub mod sessions;
pub mod standing;

pub use claimer::{ClaimOutcome, Claimer};
pub use daemon::{run_node, NodeConfig, NodeError, NodeInfo, NodeReport, TestKnobs};
pub use db::{DbError, ReceiptDb, StoredReceipt};
pub use idle::IdleCloser;
pub use sessions::ChainSessions;
