//! Scenario files: who is in the market, how they behave, what the clients want.
//!
//! A scenario is TOML; every field has a default, so a file states only what it is about.
//! Market parameters start from [`wirepact_chain::default_params`] (the deploy defaults) and
//! `[market]` overrides single fields.

use serde::Deserialize;

use crate::SimError;

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the scenario shows (printed in the report).
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub sim: SimSection,
    #[serde(default)]
    pub market: MarketOverrides,
    /// Provider groups, in registration order.
    #[serde(rename = "providers")]
    pub providers: Vec<ProviderGroup>,
    #[serde(default)]
    pub oracles: OracleSection,
    #[serde(default)]
    pub demand: DemandSection,
    /// Attackers beside the market (see `[attacks]`); the sybil oracle coalition is
    /// `oracles.liars`, the leaver and the adaptive cheater are provider behaviours.
    #[serde(default)]
    pub attacks: AttackSection,
}

/// Attack strategies that are not a provider's behaviour or an oracle's lie.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttackSection {
    pub griefer: Option<Griefer>,
    pub bonus_sybils: Option<BonusSybils>,
    pub grinder: Option<Grinder>,
}

/// A capacity griefer: one client account that keeps `targets` honest providers full with
/// sessions at the minimum deposit that never carry a byte, so real clients are turned away.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Griefer {
    /// How many honest providers it fills (the first ones of the first honest group).
    pub targets: u32,
}

/// Late sybil bonus claimants: `count` providers registered in the last epoch of the first
/// reward period, never serving, that claim that period's bonus with whatever leaves they can
/// find (none of their own, or another provider's).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BonusSybils {
    pub count: u32,
}

/// A seed grinder: whoever begins each epoch chooses among `blocks` consecutive blocks the one
/// whose audit draw audits the fewest providers of the group `friends` (the worst case: it
/// always wins the `beginEpoch` race and controls which block it lands in). With
/// `knows_secret` it is an oracle that holds the epoch's committed secret (every oracle does,
/// to probe); without, it can only grind the chain's seed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grinder {
    pub friends: String,
    pub blocks: u32,
    #[serde(default)]
    pub knows_secret: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimSection {
    /// Seed of every random draw: the same file and seed give the same run.
    pub seed: u64,
    /// Simulated epochs (a day of 10-minute epochs is 144).
    pub epochs: u64,
    /// Scales every provider group's `count` (e.g. the same mix at 1k/10k/100k providers).
    pub provider_scale: f64,
}

impl Default for SimSection {
    fn default() -> Self {
        Self { seed: 1, epochs: 144, provider_scale: 1.0 }
    }
}

/// Single-field overrides of the deploy defaults (`None` keeps the default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketOverrides {
    pub epoch_seconds: Option<u64>,
    pub audit_probability_bps: Option<u16>,
    pub throughput_tolerance_bps: Option<u16>,
    pub latency_tolerance_ms: Option<u32>,
    pub violations_to_slash: Option<u8>,
    pub violation_window: Option<u8>,
    pub slash_bps: Option<u16>,
    pub jail_epochs: Option<u32>,
    pub alpha_bps: Option<u32>,
    pub reward_period_epochs: Option<u32>,
    pub bonus_min_audits: Option<u16>,
    pub session_penalty_bps: Option<u16>,
    /// Audits that follow demand: 24 weights (UTC hours 0-23, each 1-255); an epoch starting
    /// in hour h audits with `audit_probability_bps * w_h * 24 / sum(w)`.
    pub audit_hour_weights: Option<Vec<u8>>,
}

/// What a provider does with its promise.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Behaviour {
    /// Delivers its SLA with a realistic headroom and noise.
    Honest,
    /// Delivers `fraction` of its SLA rate all the time.
    Underdeliver { fraction: f64 },
    /// Sells its pipe elsewhere too: at the daily peak it has only `peak_free` of its declared
    /// capacity left (it degrades with the demand curve).
    Oversold { peak_free: f64 },
    /// Honest, but in a `probability` share of epochs throttles to `fraction` of the SLA.
    Throttling { probability: f64, fraction: f64 },
    /// Reachable in an `availability` share of epochs.
    Flaky { availability: f64 },
    /// Never answers.
    Offline,
    /// An adaptive cheater: delivers `fraction` of its SLA rate to clients, and its full SLA
    /// to the sessions it can tell are probes. The signal: an oracle opens its probe session
    /// from its registered address, which the provider sees in `SessionOpened` (the audit
    /// draw itself stays secret until the epoch's report).
    ProbeAware { fraction: f64 },
    /// Delivers `fraction` of its SLA rate and front-runs its own slash: when a probe comes
    /// while it already has `violations_to_slash - 1` violations in the window, it closes its
    /// sessions and leaves the market as soon as the probe is done, before the report lands.
    Leaver { fraction: f64 },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderGroup {
    pub name: String,
    pub count: u32,
    pub behaviour: Behaviour,
    #[serde(default = "d_capacity")]
    pub capacity_mbps: u32,
    #[serde(default = "d_session")]
    pub session_mbps: u32,
    #[serde(default = "d_latency")]
    pub max_latency_ms: u32,
    /// Base price per GiB in whole tokens (decimal string, 18 decimals).
    #[serde(default = "d_price")]
    pub base_price: String,
}

fn d_capacity() -> u32 {
    500
}
fn d_session() -> u32 {
    50
}
fn d_latency() -> u32 {
    80
}
fn d_price() -> String {
    "0.01".into()
}

/// How liars lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LieStrategy {
    /// Report every honest provider dead and every cheater perfect (the worst for both).
    Collude,
    /// Report everyone dead.
    Slander,
    /// Report everyone perfect.
    Shill,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OracleSection {
    pub count: u32,
    pub liars: u32,
    pub offline: u32,
    pub lie: LieStrategy,
    /// Standard deviation of an honest probe's relative throughput error (bench-probe measured
    /// 0.66-0.87 % against shaped links).
    pub throughput_error: f64,
    /// Share of probes hit by trouble on the oracle's own path (a deep, random under-reading).
    pub path_trouble: f64,
    /// Share of probes of a reachable provider that fail on the oracle's side.
    pub probe_failure: f64,
    /// Honest oracles probe a provider again when the first probe looks like a violation and
    /// report the better of the two, as the oracle daemon does (`confirm_suspects`);
    /// `scenarios/liars.toml` shows why (without it, colluding liars plus one honest oracle's
    /// bad reading make the median).
    pub confirm_suspects: bool,
}

impl Default for OracleSection {
    fn default() -> Self {
        Self {
            count: 31,
            liars: 0,
            offline: 0,
            lie: LieStrategy::Collude,
            throughput_error: 0.008,
            path_trouble: 0.002,
            probe_failure: 0.000_5,
            confirm_suspects: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemandSection {
    /// Client accounts (each deposits once and reuses one session key).
    pub clients: u32,
    /// New sessions per epoch at the daily peak (scaled by `sim.provider_scale`).
    pub sessions_per_epoch_peak: u32,
    /// Demand at the daily trough as a share of the peak.
    pub trough: f64,
    /// Hour of the day (0-24) of the peak; the simulated day starts at midnight.
    pub peak_hour: f64,
    /// Session length in epochs, drawn uniformly from this range (inclusive).
    pub session_epochs: (u64, u64),
    /// A client compares this many random providers and takes the cheapest quote.
    pub choices: u32,
    /// A client's maximum price per GiB (whole tokens).
    pub max_price: String,
    /// Share of the SLA rate a client actually uses, drawn uniformly from this range.
    pub usage: (f64, f64),
}

impl Default for DemandSection {
    fn default() -> Self {
        Self {
            clients: 1000,
            sessions_per_epoch_peak: 400,
            trough: 0.3,
            peak_hour: 20.0,
            session_epochs: (1, 12),
            choices: 4,
            max_price: "0.05".into(),
            usage: (0.05, 0.6),
        }
    }
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &std::path::Path) -> Result<Self, SimError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SimError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text).map_err(|e| match e {
            SimError::Scenario(m) => SimError::Scenario(format!("{}: {m}", path.display())),
            other => other,
        })
    }

    /// Parses and checks scenario text.
    pub fn parse(text: &str) -> Result<Self, SimError> {
        let s: Scenario = toml::from_str(text)?;
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<(), SimError> {
        let bad = |m: String| Err(SimError::Scenario(m));
        if self.providers.is_empty() {
            return bad("no [[providers]] group".into());
        }
        if self.sim.epochs == 0 {
            return bad("sim.epochs must be at least 1".into());
        }
        if self.sim.provider_scale.is_nan() || self.sim.provider_scale <= 0.0 {
            return bad("sim.provider_scale must be positive".into());
        }
        for g in &self.providers {
            if g.session_mbps == 0 || g.session_mbps > g.capacity_mbps {
                return bad(format!("group {}: session_mbps must be in 1..=capacity_mbps", g.name));
            }
            let frac_ok = |x: f64| (0.0..=1.0).contains(&x);
            let ok = match g.behaviour {
                Behaviour::Underdeliver { fraction }
                | Behaviour::ProbeAware { fraction }
                | Behaviour::Leaver { fraction } => frac_ok(fraction),
                Behaviour::Oversold { peak_free } => frac_ok(peak_free),
                Behaviour::Throttling { probability, fraction } => frac_ok(probability) && frac_ok(fraction),
                Behaviour::Flaky { availability } => frac_ok(availability),
                Behaviour::Honest | Behaviour::Offline => true,
            };
            if !ok {
                return bad(format!("group {}: behaviour shares must be within 0..=1", g.name));
            }
        }
        let o = &self.oracles;
        if o.count < 4 {
            return bad("the market needs at least 4 oracles".into());
        }
        if o.liars + o.offline > o.count {
            return bad("oracles.liars + oracles.offline exceed oracles.count".into());
        }
        if let Some(w) = &self.market.audit_hour_weights {
            if w.len() != 24 || w.contains(&0) {
                return bad("market.audit_hour_weights: 24 weights (UTC hours 0-23), each 1-255".into());
            }
        }
        if let Some(g) = &self.attacks.grinder {
            if g.blocks == 0 || g.blocks > 64 {
                return bad("attacks.grinder.blocks must be in 1..=64".into());
            }
            if !self.providers.iter().any(|p| p.name == g.friends) {
                return bad(format!("attacks.grinder.friends: no provider group named {}", g.friends));
            }
        }
        if let Some(g) = &self.attacks.griefer {
            let honest: u32 = self.providers.iter().filter(|p| p.behaviour == Behaviour::Honest).map(|p| p.count).sum();
            if g.targets == 0 || g.targets > honest {
                return bad(format!("attacks.griefer.targets must be in 1..={honest} (the honest providers)"));
            }
        }
        let d = &self.demand;
        if d.clients == 0 || d.choices == 0 || d.session_epochs.0 == 0 || d.session_epochs.0 > d.session_epochs.1 {
            return bad("demand: clients and choices must be positive, session_epochs a range of >= 1".into());
        }
        let usage_ok = d.usage.0 > 0.0 && d.usage.0 <= d.usage.1 && d.usage.1 <= 1.0;
        if !((0.0..=1.0).contains(&d.trough) && usage_ok) {
            return bad("demand: trough within 0..=1, usage a range within (0, 1]".into());
        }
        Ok(())
    }

    /// Provider count of a group after `sim.provider_scale` (at least one).
    #[must_use]
    pub fn scaled(&self, count: u32) -> u32 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = (f64::from(count) * self.sim.provider_scale).round() as u32;
        n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_file_gets_the_defaults() {
        let s = Scenario::parse("[[providers]]\nname = \"h\"\ncount = 3\nbehaviour = { kind = \"honest\" }\n")
            .expect("parses");
        assert_eq!(s.sim.epochs, 144);
        assert_eq!(s.oracles.count, 31);
        assert_eq!(s.providers[0].session_mbps, 50);
    }

    #[test]
    fn mistakes_are_named() {
        let e = Scenario::parse("[[providers]]\nname = \"h\"\ncount = 3\nbehaviour = { kind = \"honset\" }\n")
            .expect_err("refused")
            .to_string();
        assert!(e.contains("honset"), "{e}");
        let e = Scenario::parse(
            "[oracles]\ncount = 3\n[[providers]]\nname = \"h\"\ncount = 3\nbehaviour = { kind = \"honest\" }\n",
        )
        .expect_err("refused")
        .to_string();
        assert!(e.contains("at least 4 oracles"), "{e}");
        let e = Scenario::parse(
            "[[providers]]\nname = \"u\"\ncount = 3\nbehaviour = { kind = \"underdeliver\", fraction = 1.5 }\n",
        )
        .expect_err("refused")
        .to_string();
        assert!(e.contains("group u"), "{e}");
    }
}
