#![doc = include_str!("../README.md")]

pub mod meter;

pub use meter::{ClientMeter, MeterError, ProviderMeter, ReceiptDue, DEFAULT_WINDOW};
