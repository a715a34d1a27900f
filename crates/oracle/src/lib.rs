#![doc = include_str!("../README.md")]

pub mod daemon;
pub mod exchange;
pub mod monitor;
pub mod probe;
pub mod secrets;
pub mod settle;

pub use daemon::{run_oracle, OracleConfig, OracleError, OracleInfo};
pub use exchange::{verify, Published, Rejected, SignedObservations};
pub use probe::{probe, probe_through_tunnel, Measurement, ProbePlan, ProbeTarget, Sink};
