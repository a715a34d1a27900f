//! What a run found: detection and false slashes, capacity inflation, money, gas, prices.
//!
//! Everything here is read off the EVM's events and views; the false-slash estimate is the one
//! place that extrapolates, and it says how (see [`FalseSlash`]).

use std::collections::BTreeMap;

use alloy::primitives::U256;
use serde::Serialize;
use wirepact_chain::bindings::IWirepactMarket;

use crate::scenario::{Behaviour, Scenario};

/// Gas of one kind of transaction.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct GasTally {
    pub count: u64,
    pub total: u64,
}

/// Token flows, in base units (summed from the market's events).
#[derive(Debug, Clone, Default)]
pub struct Money {
    pub deposits: U256,
    /// Claimed into providers' earnings (gross of the fee).
    pub provider_claimed: U256,
    /// Collected by providers (net of the fee).
    pub provider_paid: U256,
    pub fees: U256,
    pub refunds: U256,
    pub slashed: U256,
    pub slashed_to_oracles: U256,
    pub oracle_rewards: U256,
    pub bonus: U256,
    pub bonus_claims: u64,
    pub bonus_refused: u64,
}

/// One audit verdict of an honest provider, as the market recorded it.
#[derive(Debug, Clone, Copy)]
pub struct VerdictSample {
    /// Median throughput over the SLA rate.
    pub throughput_ratio: f64,
    /// `maxLatency + tolerance - median latency`, ms (negative is a violation).
    pub latency_margin_ms: f64,
    pub reachable: bool,
    pub violation: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct EpochPoint {
    pub epoch: u64,
    pub hour: f64,
    pub demand: f64,
    pub utilisation: f64,
    pub open_sessions: u64,
    pub jailed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupStats {
    pub name: String,
    #[serde(serialize_with = "behaviour_name")]
    pub behaviour: Behaviour,
    pub providers: u64,
    pub audits: u64,
    pub violations: u64,
    /// Providers slashed at least once, and slashes in all.
    pub slashed: u64,
    pub slashes: u64,
    /// Providers audited at least three times (or slashed before), and those slashed by
    /// their third audit.
    pub with_three_audits: u64,
    pub slashed_within_three_audits: u64,
    #[serde(skip)]
    pub audits_to_slash: Vec<u32>,
    /// The epochs of the reports that first slashed them.
    #[serde(skip)]
    pub epochs_to_slash: Vec<u64>,
    pub declared_mbps: f64,
    pub true_mbps: f64,
    pub declared_mbps_active_at_end: f64,
    pub true_mbps_active_at_end: f64,
}

fn behaviour_name<S: serde::Serializer>(b: &Behaviour, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&match b {
        Behaviour::Honest => "honest".to_string(),
        Behaviour::Underdeliver { fraction } => format!("underdeliver {:.0}%", fraction * 100.0),
        Behaviour::Oversold { peak_free } => format!("oversold ({:.0}% free at peak)", peak_free * 100.0),
        Behaviour::Throttling { probability, fraction } => {
            format!("throttling to {:.0}% in {:.0}% of epochs", fraction * 100.0, probability * 100.0)
        }
        Behaviour::Flaky { availability } => format!("flaky ({:.1}% available)", availability * 100.0),
        Behaviour::Offline => "offline".to_string(),
        Behaviour::ProbeAware { fraction } => {
            format!("probe-aware ({:.0}% to clients, full to probes)", fraction * 100.0)
        }
        Behaviour::Leaver { fraction } => format!("leaver ({:.0}%, leaves before its slash)", fraction * 100.0),
    })
}

/// One attack strategy's books (token amounts in base units, as decimal strings).
#[derive(Debug, Clone, Serialize)]
pub struct AttackOutcome {
    pub strategy: String,
    /// Accounts (oracles, providers, clients) playing it.
    pub attackers: u64,
    /// Gas of the attacker's own transactions.
    pub gas_spent: u64,
    /// Tokens it had to lock (stake, deposits) at the most.
    pub tokens_locked: String,
    /// Tokens it lost (slashed).
    pub tokens_lost: String,
    /// Tokens it took in (earnings, bonus, oracle rewards).
    pub tokens_gained: String,
    /// Tokens honest parties did not get because of it (sales turned away, bonus not earned,
    /// stake slashed), against an untouched control group where one exists.
    pub destroyed: String,
    pub honest_slashed: u64,
    /// Honest parties' tokens taken: honest stake slashed, bonus paid to whoever never earned
    /// it (taken from the pot of those who did).
    pub honest_wei_lost: String,
    pub finding: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Conservation {
    pub market_holds: String,
    pub market_owes: String,
    pub minted: String,
    pub supply: String,
    pub wallets_plus_market: String,
    pub reward_pool: String,
    /// Market balance == what it owes, supply == minted == wallets + market, no session left.
    pub balanced: bool,
}

/// Per group, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    pub group: String,
    pub behaviour: String,
    pub providers: u64,
    pub slashed_share: f64,
    pub slashed_within_three_audits_share: f64,
    pub median_audits_to_slash: Option<u32>,
    pub max_audits_to_slash: Option<u32>,
    /// Median time from the start of the run to a provider's first slash, hours.
    pub median_hours_to_slash: Option<f64>,
    pub violations_per_audit: f64,
}

/// The honest providers' false-slash rate, seen and extrapolated.
///
/// Seen: honest providers slashed / honest provider-months simulated. Too rare to see at the
/// target, so also estimated: `p`, the chance one audit of an honest provider is a violation,
/// is the sum of three tails of the market's own recorded verdicts: median throughput under
/// `1 - tolerance` of the SLA, median latency over `max + tolerance`, and unreachable. Each
/// tail is fitted as an exponential beyond the sample's 1% quantile (peaks over threshold) or,
/// when the sample has violations of that kind, counted; an unreachable verdict never seen in
/// `n` audits counts as `3/n` (the 95% rule of three). A slash needs `k` violations among the
/// last `w` audits, so one audit completes a slash with probability at most
/// `C(w-1, k-1) p^k`; times the audits a provider gets in 30 days.
#[derive(Debug, Clone, Serialize)]
pub struct FalseSlash {
    pub honest_providers: u64,
    pub honest_audits: u64,
    pub honest_violations: u64,
    pub honest_slashed: u64,
    pub observed_per_provider_month: f64,
    pub p_violation_throughput: f64,
    pub p_violation_latency: f64,
    pub p_violation_unreachable: f64,
    pub p_violation_per_audit: f64,
    pub audits_per_provider_month: f64,
    pub estimated_per_provider_month: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GasKind {
    pub kind: String,
    pub count: u64,
    pub total: u64,
    pub mean: u64,
    /// Total scaled to one simulated day (0 for one-off setup transactions).
    pub per_day: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct MoneyReport {
    pub deposits: String,
    /// Claimed into providers' earnings (gross of the fee).
    pub claimed_by_providers: String,
    /// Collected from earnings into providers' balances (net of the fee).
    pub paid_to_providers: String,
    pub protocol_fees: String,
    pub refunds: String,
    pub slashed: String,
    pub slashed_to_oracles: String,
    pub oracle_rewards: String,
    pub bonus_paid: String,
    pub bonus_claims: u64,
    pub bonus_claims_refused: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PricePoint {
    pub utilisation_from: f64,
    pub utilisation_to: f64,
    pub sessions: u64,
    pub mean_price_over_base: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub providers: u32,
    pub oracles: u32,
    pub epochs: u64,
    pub epoch_seconds: u64,
    pub simulated_days: f64,
    pub wall_seconds: f64,
    pub params: ParamsReport,
    pub reported_epochs: u64,
    pub unreported_epochs: u64,
    pub max_liars_in_a_report: u32,
    pub detection: Vec<Detection>,
    /// Share of providers delivering <= 80% of their SLA rate (underdeliver groups) slashed
    /// by their third audit (`None` without such providers).
    pub detection_rate_80pct: Option<f64>,
    /// Share of the adaptive (probe-aware) cheaters slashed during the run (`None` without
    /// them). The signal they use: who opened the session.
    pub cheater_caught_rate_adaptive: Option<f64>,
    pub false_slash: FalseSlash,
    /// Declared over true capacity of the active providers, at the start and at the end.
    pub capacity_inflation_start: f64,
    pub capacity_inflation_end: f64,
    pub money: MoneyReport,
    pub sessions_refused_price: u64,
    pub sessions_refused_full: u64,
    pub gas: Vec<GasKind>,
    pub gas_per_day_total: u64,
    pub price_vs_utilisation: Vec<PricePoint>,
    pub series: Vec<EpochPoint>,
    pub conservation: Conservation,
    /// The attack strategies in the run, each with its books.
    pub attacks: Vec<AttackOutcome>,
    /// Honest providers slashed, and honest parties' wei lost, over the whole run (present
    /// when the run has an attacker).
    pub honest_slashed_under_attack: Option<u64>,
    pub honest_wei_lost_under_attack: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParamsReport {
    pub epoch_seconds: u64,
    pub audit_probability_bps: u16,
    pub throughput_tolerance_bps: u16,
    pub latency_tolerance_ms: u32,
    pub violations_to_slash: u8,
    pub violation_window: u8,
    pub slash_bps: u16,
    pub jail_epochs: u32,
    pub alpha_bps: u32,
    pub reward_period_epochs: u32,
}

pub(crate) struct Inputs<'a> {
    pub scenario: &'a Scenario,
    pub params: &'a IWirepactMarket::Params,
    pub wall_seconds: f64,
    pub providers: u32,
    pub oracles: u32,
    pub groups: Vec<GroupStats>,
    pub gas: BTreeMap<&'static str, GasTally>,
    pub money: Money,
    pub reported_epochs: u64,
    pub unreported_epochs: u64,
    pub sessions_refused_price: u64,
    pub sessions_refused_full: u64,
    pub price_samples: Vec<(f64, f64)>,
    pub epoch_series: Vec<EpochPoint>,
    pub honest_samples: Vec<VerdictSample>,
    pub conservation: Conservation,
    pub max_liars_in_a_report: u32,
    pub attacks: Vec<AttackOutcome>,
    /// `Some` when the run has an attacker.
    pub honest_wei_lost: Option<U256>,
}

fn median(v: &mut [u32]) -> Option<u32> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[(v.len() - 1) / 2])
}

/// `P(x < 0)` for the sample `xs` of margins (negative = violation): counted when the sample
/// has violations, else an exponential tail fitted beyond the 1% quantile.
#[must_use]
pub fn lower_tail_below_zero(xs: &[f64]) -> f64 {
    let n = xs.len();
    if n == 0 {
        return 0.0;
    }
    let below = xs.iter().filter(|&&x| x < 0.0).count();
    if below > 0 {
        return below as f64 / n as f64;
    }
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    let k = (n / 100).max(10).min(n);
    let u = s[k - 1];
    let excess: Vec<f64> = s[..k].iter().map(|&x| u - x).collect();
    let beta = excess.iter().sum::<f64>() / excess.len() as f64;
    if beta <= 0.0 || u <= 0.0 {
        return k as f64 / n as f64;
    }
    (k as f64 / n as f64) * (-u / beta).exp()
}

fn binomial(n: u64, k: u64) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

pub(crate) fn build(inp: Inputs<'_>) -> Report {
    let p = inp.params;
    let epochs = inp.scenario.sim.epochs;
    let days = (epochs * p.epochLength) as f64 / 86_400.0;
    let detection: Vec<Detection> = inp
        .groups
        .iter()
        .map(|g| {
            let mut a = g.audits_to_slash.clone();
            Detection {
                group: g.name.clone(),
                behaviour: serde_json::to_value(g)
                    .ok()
                    .and_then(|v| v.get("behaviour").and_then(|b| b.as_str().map(String::from)))
                    .unwrap_or_default(),
                providers: g.providers,
                slashed_share: ratio(g.slashed, g.providers),
                slashed_within_three_audits_share: ratio(g.slashed_within_three_audits, g.with_three_audits),
                median_audits_to_slash: median(&mut a),
                max_audits_to_slash: a.iter().max().copied(),
                median_hours_to_slash: {
                    let mut h = g.epochs_to_slash.clone();
                    h.sort_unstable();
                    #[allow(clippy::cast_precision_loss)]
                    h.get(h.len().saturating_sub(1) / 2)
                        .filter(|_| !h.is_empty())
                        .map(|&e| ((e + 1) * p.epochLength) as f64 / 3600.0)
                },
                violations_per_audit: ratio(g.violations, g.audits),
            }
        })
        .collect();

    let (mut caught, mut eligible) = (0u64, 0u64);
    for g in &inp.groups {
        if matches!(g.behaviour, Behaviour::Underdeliver { fraction } if fraction <= 0.8) {
            caught += g.slashed_within_three_audits;
            eligible += g.with_three_audits;
        }
    }
    let detection_rate_80pct = (eligible > 0).then(|| ratio(caught, eligible));
    let adaptive: Vec<&GroupStats> =
        inp.groups.iter().filter(|g| matches!(g.behaviour, Behaviour::ProbeAware { .. })).collect();
    let adaptive_n: u64 = adaptive.iter().map(|g| g.providers).sum();
    let cheater_caught_rate_adaptive =
        (adaptive_n > 0).then(|| ratio(adaptive.iter().map(|g| g.slashed).sum(), adaptive_n));

    // False slashes of honest providers.
    let honest: Vec<&GroupStats> = inp.groups.iter().filter(|g| g.behaviour == Behaviour::Honest).collect();
    let honest_providers: u64 = honest.iter().map(|g| g.providers).sum();
    let honest_slashed: u64 = honest.iter().map(|g| g.slashed).sum();
    let tol = f64::from(p.throughputToleranceBps) / 10_000.0;
    let thr: Vec<f64> =
        inp.honest_samples.iter().filter(|s| s.reachable).map(|s| s.throughput_ratio - (1.0 - tol)).collect();
    let lat: Vec<f64> = inp.honest_samples.iter().filter(|s| s.reachable).map(|s| s.latency_margin_ms).collect();
    let n = inp.honest_samples.len();
    let unreachable = inp.honest_samples.iter().filter(|s| !s.reachable).count();
    let p_unr = if n == 0 {
        0.0
    } else if unreachable == 0 {
        3.0 / n as f64
    } else {
        unreachable as f64 / n as f64
    };
    let p_thr = lower_tail_below_zero(&thr);
    let p_lat = lower_tail_below_zero(&lat);
    let p_v = (p_thr + p_lat + p_unr).min(1.0);
    let k = u64::from(p.violationsToSlash);
    let w = u64::from(p.violationWindow);
    let audits_month = 30.0 * 86_400.0 / p.epochLength as f64 * f64::from(p.auditProbabilityBps) / 10_000.0;
    let per_audit = (binomial(w - 1, k - 1) * p_v.powi(i32::try_from(k).unwrap_or(i32::MAX))).min(1.0);
    let months = days / 30.0;
    let false_slash = FalseSlash {
        honest_providers,
        honest_audits: honest.iter().map(|g| g.audits).sum(),
        honest_violations: honest.iter().map(|g| g.violations).sum(),
        honest_slashed,
        observed_per_provider_month: if honest_providers == 0 {
            0.0
        } else {
            honest_slashed as f64 / (honest_providers as f64 * months)
        },
        p_violation_throughput: p_thr,
        p_violation_latency: p_lat,
        p_violation_unreachable: p_unr,
        p_violation_per_audit: p_v,
        audits_per_provider_month: audits_month,
        estimated_per_provider_month: (per_audit * audits_month).min(1.0),
    };

    let inflation = |declared: f64, truth: f64| if truth > 0.0 { declared / truth } else { f64::INFINITY };
    let capacity_inflation_start =
        inflation(inp.groups.iter().map(|g| g.declared_mbps).sum(), inp.groups.iter().map(|g| g.true_mbps).sum());
    let capacity_inflation_end = inflation(
        inp.groups.iter().map(|g| g.declared_mbps_active_at_end).sum(),
        inp.groups.iter().map(|g| g.true_mbps_active_at_end).sum(),
    );

    let gas: Vec<GasKind> = inp
        .gas
        .iter()
        .map(|(kind, t)| GasKind {
            kind: (*kind).to_string(),
            count: t.count,
            total: t.total,
            mean: t.total.checked_div(t.count).unwrap_or(0),
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            per_day: if kind.starts_with("setup") || days <= 0.0 { 0 } else { (t.total as f64 / days) as u64 },
        })
        .collect();
    let gas_per_day_total = gas.iter().map(|g| g.per_day).sum();

    let mut buckets = [(0u64, 0.0f64); 10];
    for &(u, r) in &inp.price_samples {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let b = ((u * 10.0).ceil() as usize).clamp(1, 10) - 1;
        buckets[b].0 += 1;
        buckets[b].1 += r;
    }
    let price_vs_utilisation = buckets
        .iter()
        .enumerate()
        .filter(|(_, (c, _))| *c > 0)
        .map(|(i, (c, s))| PricePoint {
            utilisation_from: i as f64 / 10.0,
            utilisation_to: (i + 1) as f64 / 10.0,
            sessions: *c,
            mean_price_over_base: s / *c as f64,
        })
        .collect();

    let m = &inp.money;
    Report {
        scenario: inp.scenario.description.trim().to_string(),
        providers: inp.providers,
        oracles: inp.oracles,
        epochs,
        epoch_seconds: p.epochLength,
        simulated_days: days,
        wall_seconds: inp.wall_seconds,
        params: ParamsReport {
            epoch_seconds: p.epochLength,
            audit_probability_bps: p.auditProbabilityBps,
            throughput_tolerance_bps: p.throughputToleranceBps,
            latency_tolerance_ms: p.latencyToleranceMs,
            violations_to_slash: p.violationsToSlash,
            violation_window: p.violationWindow,
            slash_bps: p.slashBps,
            jail_epochs: p.jailEpochs,
            alpha_bps: p.alphaBps,
            reward_period_epochs: p.rewardPeriodEpochs,
        },
        reported_epochs: inp.reported_epochs,
        unreported_epochs: inp.unreported_epochs,
        max_liars_in_a_report: inp.max_liars_in_a_report,
        detection,
        detection_rate_80pct,
        cheater_caught_rate_adaptive,
        false_slash,
        capacity_inflation_start,
        capacity_inflation_end,
        money: MoneyReport {
            deposits: m.deposits.to_string(),
            claimed_by_providers: m.provider_claimed.to_string(),
            paid_to_providers: m.provider_paid.to_string(),
            protocol_fees: m.fees.to_string(),
            refunds: m.refunds.to_string(),
            slashed: m.slashed.to_string(),
            slashed_to_oracles: m.slashed_to_oracles.to_string(),
            oracle_rewards: m.oracle_rewards.to_string(),
            bonus_paid: m.bonus.to_string(),
            bonus_claims: m.bonus_claims,
            bonus_claims_refused: m.bonus_refused,
        },
        sessions_refused_price: inp.sessions_refused_price,
        sessions_refused_full: inp.sessions_refused_full,
        gas,
        gas_per_day_total,
        price_vs_utilisation,
        series: inp.epoch_series,
        conservation: inp.conservation,
        honest_slashed_under_attack: inp.honest_wei_lost.map(|_| honest_slashed),
        honest_wei_lost_under_attack: inp.honest_wei_lost.map(|w| w.to_string()),
        attacks: inp.attacks,
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl Report {
    /// The headline lines `make sim` ends with.
    #[must_use]
    pub fn summary_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(d) = self.detection_rate_80pct {
            out.push(format!("detection_rate_80pct: {d:.4}"));
        }
        if let Some(c) = self.cheater_caught_rate_adaptive {
            out.push(format!("cheater_caught_rate_adaptive: {c:.4}"));
        }
        out.push(format!("false_slash_per_provider_month: {:.3e}", self.false_slash.estimated_per_provider_month));
        if let Some(n) = self.honest_slashed_under_attack {
            out.push(format!("honest_slashed_under_attack: {n}"));
        }
        if let Some(w) = &self.honest_wei_lost_under_attack {
            out.push(format!("honest_wei_lost_under_attack: {w}"));
        }
        out.push(format!("gas_per_day: {}", self.gas_per_day_total));
        out
    }

    /// A human summary (printed after a run).
    #[must_use]
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = std::fmt::Write::write_fmt(
            &mut s,
            format_args!(
                "{} providers, {} oracles, {} epochs of {} s ({:.2} days) in {:.1} s; {} epochs reported, {} not\n",
                self.providers,
                self.oracles,
                self.epochs,
                self.epoch_seconds,
                self.simulated_days,
                self.wall_seconds,
                self.reported_epochs,
                self.unreported_epochs
            ),
        );
        s.push_str("group                      providers  slashed  by 3rd audit  median audits  violations/audit\n");
        for d in &self.detection {
            let _ = std::fmt::Write::write_fmt(
                &mut s,
                format_args!(
                    "{:<26} {:>9} {:>7.1}% {:>12.1}% {:>14} {:>17.4}\n",
                    format!("{} ({})", d.group, d.behaviour).chars().take(26).collect::<String>(),
                    d.providers,
                    d.slashed_share * 100.0,
                    d.slashed_within_three_audits_share * 100.0,
                    d.median_audits_to_slash.map_or("-".into(), |a| a.to_string()),
                    d.violations_per_audit
                ),
            );
        }
        let f = &self.false_slash;
        let _ = std::fmt::Write::write_fmt(
            &mut s,
            format_args!(
                "honest: {} providers, {} audits, {} violations, {} slashed; p(violation/audit) ~ {:.2e}; false slashes ~ {:.2e} per provider-month\n\
                 capacity inflation (declared/true, active providers): {:.3} at start, {:.3} at end\n\
                 gas per day: {} (reports, sessions, bonus; setup excluded)\n\
                 tokens conserved: {}\n",
                f.honest_providers,
                f.honest_audits,
                f.honest_violations,
                f.honest_slashed,
                f.p_violation_per_audit,
                f.estimated_per_provider_month,
                self.capacity_inflation_start,
                self.capacity_inflation_end,
                self.gas_per_day_total,
                self.conservation.balanced
            ),
        );
        let tokens = |w: &str| w.parse::<U256>().map_or_else(|_| w.to_string(), wirepact_proto::token_text);
        for a in &self.attacks {
            let _ = std::fmt::Write::write_fmt(
                &mut s,
                format_args!(
                    "attack: {}\n  {} attacker account(s); spent {} gas, locked {}, lost {}, gained {}; destroyed {}; honest slashed {}, honest lost {}\n  {}\n",
                    a.strategy,
                    a.attackers,
                    a.gas_spent,
                    tokens(&a.tokens_locked),
                    tokens(&a.tokens_lost),
                    tokens(&a.tokens_gained),
                    tokens(&a.destroyed),
                    a.honest_slashed,
                    tokens(&a.honest_wei_lost),
                    a.finding
                ),
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counted_tail_is_the_share_and_a_fitted_one_is_small_but_positive() {
        let mut xs: Vec<f64> = (0..1000).map(|i| 0.1 + f64::from(i) / 1000.0).collect();
        let fitted = lower_tail_below_zero(&xs);
        assert!(fitted > 0.0 && fitted < 1e-3, "{fitted}");
        xs[0] = -0.5;
        xs[1] = -0.1;
        assert!((lower_tail_below_zero(&xs) - 0.002).abs() < 1e-12);
    }

    #[test]
    fn binomial_coefficients() {
        assert!((binomial(5, 2) - 10.0).abs() < 1e-12);
        assert!((binomial(3, 1) - 3.0).abs() < 1e-12);
        assert!((binomial(4, 0) - 1.0).abs() < 1e-12);
    }
}
