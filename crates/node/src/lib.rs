#![doc = include_str!("../README.md")]

pub mod claimer;
pub mod db;

pub use claimer::{ClaimOutcome, Claimer};
pub use db::{DbError, ReceiptDb, StoredReceipt};
