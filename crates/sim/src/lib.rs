//! wirepact's market simulator: thousands of providers and oracles over the market's
//! committed bytecode in an in-process EVM (revm).
//!
//! The contract's rules are never re-implemented here: every session, claim, report, verdict,
//! slash and bonus is a transaction the real bytecode executes; the simulator only supplies
//! behaviour (what providers really deliver, what oracles read and sign, when clients come)
//! and reads back events and views. See `scenarios/` for scenario files and `make sim`.

pub mod evm;
pub mod model;
pub mod plot;
pub mod report;
pub mod run;
pub mod scenario;

pub use report::Report;
pub use run::run;
pub use scenario::Scenario;

use wirepact_chain::bindings::IWirepactMarket;

/// What can stop a simulation.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The scenario file says something the simulator cannot run (the message says what).
    #[error("scenario: {0}")]
    Scenario(String),
    #[error("reading {path}: {source}")]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("scenario file: {0}")]
    Toml(#[from] toml::de::Error),
    /// The EVM itself failed (not a revert): a bug in the simulator's setup.
    #[error("the EVM could not run {what}: {source}")]
    Evm { what: &'static str, source: Box<dyn std::error::Error + Send + Sync> },
    /// A return value did not decode as its ABI says: the bytecode and bindings disagree.
    #[error("decoding {what}: {source}")]
    Decode { what: &'static str, source: alloy::sol_types::Error },
    #[error("signing {what}: {source}")]
    Sign { what: &'static str, source: wirepact_proto::SignatureError },
    #[error("a derived key is not a valid secp256k1 key: {0}")]
    Key(#[from] alloy::signers::k256::ecdsa::Error),
    /// The market refused a transaction the simulator expected to pass (its decoded reason).
    #[error("the market refused a transaction the simulator expected to pass: {0}")]
    Reverted(String),
    /// The simulator's own model and the chain disagree (the message says where).
    #[error("the simulator and the chain disagree: {0}")]
    Invariant(String),
    #[error("writing the report: {0}")]
    Output(Box<dyn std::error::Error + Send + Sync>),
}

/// The market parameters a scenario runs with: the deploy defaults, with its overrides.
#[must_use]
pub fn market_params(sc: &Scenario) -> IWirepactMarket::Params {
    let mut p = wirepact_chain::default_params();
    let m = &sc.market;
    if let Some(v) = m.epoch_seconds {
        p.epochLength = v;
    }
    if let Some(v) = m.audit_probability_bps {
        p.auditProbabilityBps = v;
    }
    if let Some(v) = m.throughput_tolerance_bps {
        p.throughputToleranceBps = v;
    }
    if let Some(v) = m.latency_tolerance_ms {
        p.latencyToleranceMs = v;
    }
    if let Some(v) = m.violations_to_slash {
        p.violationsToSlash = v;
    }
    if let Some(v) = m.violation_window {
        p.violationWindow = v;
    }
    if let Some(v) = m.slash_bps {
        p.slashBps = v;
    }
    if let Some(v) = m.jail_epochs {
        p.jailEpochs = v;
    }
    if let Some(v) = m.alpha_bps {
        p.alphaBps = v;
    }
    if let Some(v) = m.reward_period_epochs {
        p.rewardPeriodEpochs = v;
    }
    if let Some(v) = m.bonus_min_audits {
        p.bonusMinAudits = v;
    }
    if let Some(v) = m.session_penalty_bps {
        p.sessionPenaltyBps = v;
    }
    if let Some(w) = &m.audit_hour_weights {
        p.auditHourWeights = w
            .iter()
            .enumerate()
            .fold(alloy::primitives::U256::ZERO, |acc, (h, &x)| acc | (alloy::primitives::U256::from(x) << (8 * h)));
    }
    p
}
