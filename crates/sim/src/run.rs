//! The simulation loop: a market of simulated parties over the real bytecode.
//!
//! Each epoch: an oracle begins it (the seed comes from the EVM), jailed providers whose jail
//! is over unjail, sessions that end are claimed and closed, new sessions open along the demand
//! curve (clients take the cheapest quote of a few), every oracle reads the audited providers
//! (from their true state), a quorum's signed rows go into one `submitReport`, and the market's
//! verdicts and slashes (decoded from its events) update what the simulator knows. When a
//! reward period ends, providers claim their bonus (dry run first, as a careful operator would).

use std::collections::BTreeMap;
use std::time::Instant;

use alloy::primitives::{keccak256, Address, Bytes, Log, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolEvent};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use wirepact_chain::bindings::IWirepactMarket::{self, SessionTerms};
use wirepact_chain::{TestToken, WirepactMarket as M};
use wirepact_proto::verdicts::{self, Row, Sla, Tolerances, Verdict, VerdictTree};
use wirepact_proto::{
    audit, domain, parse_tokens, sign_receipt, sign_report, Kbps, Millis, Observation, ProviderId, Receipt,
};

use crate::evm::{Chain, Executed, CHAIN_ID};
use crate::model::{self, Reading, Traits, TrueState};
use crate::report::{self, GasTally, GroupStats, Money, Report, VerdictSample};
use crate::scenario::{Behaviour, Scenario};
use crate::SimError;

mod attack;

/// 2026-01-01T00:00:00Z: the simulated day starts at midnight.
const START: u64 = 1_767_225_600;
const GIB: u128 = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Active,
    Jailed {
        until: u64,
    },
    /// Left the market in this epoch (the reports up to it still judge it).
    Left {
        epoch: u64,
    },
}

#[derive(Debug)]
struct Prov {
    id: u32,
    owner: Address,
    group: usize,
    behaviour: Behaviour,
    traits: Traits,
    sla_kbps: f64,
    capacity_mbps: u32,
    session_mbps: u32,
    max_latency_ms: u32,
    status: Status,
    committed_mbps: u32,
    /// Reported audits while active, violations among them, the audit of the first slash.
    audits: u32,
    violations: u32,
    slashes: u32,
    first_slash_audit: Option<u32>,
    /// The epoch whose report first slashed it.
    first_slash_epoch: Option<u64>,
    /// Audited, reported epochs of the current reward period (the bonus claim's proof).
    period_epochs: Vec<u64>,
    period: u64,
    /// The same for the period before `period` (claimed once its last report window closed).
    last_period_epochs: Vec<u64>,
    last_period: Option<u64>,
    base_price: u128,
    /// Claimed earnings not yet collected (collected at a period's end once they reach the
    /// node's default `collect_threshold`).
    uncollected: U256,
    /// Everything claimed, bonus paid, stake slashed (for the attack report).
    claimed: U256,
    bonus: U256,
    slashed_amount: U256,
    /// Stake when it left, and what was slashed after it left.
    left_with: Option<U256>,
    slashed_after_leaving: U256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OracleKind {
    Honest,
    Liar,
    Offline,
}

#[derive(Debug)]
struct Orc {
    key: PrivateKeySigner,
    kind: OracleKind,
    path_ms: f64,
}

#[derive(Debug)]
struct Client {
    addr: Address,
    key: PrivateKeySigner,
}

#[derive(Debug)]
struct Open {
    terms: SessionTerms,
    prov: usize,
    client: usize,
    ends: u64,
    demand_kbps: f64,
    bytes: u64,
    /// The client's tunnel never came up (the provider was unreachable before a byte).
    failed: bool,
}

/// Runs `scenario` to the end and returns its report.
pub fn run(scenario: &Scenario) -> Result<Report, SimError> {
    let started = Instant::now();
    let mut sim = Sim::new(scenario)?;
    for e in 0..scenario.sim.epochs {
        sim.epoch(e)?;
    }
    sim.finish(started)
}

struct Sim<'a> {
    sc: &'a Scenario,
    params: IWirepactMarket::Params,
    chain: Chain,
    dom: Eip712Domain,
    rng: StdRng,
    provs: Vec<Prov>,
    oracles: Vec<Orc>,
    clients: Vec<Client>,
    open: Vec<Open>,
    gas: BTreeMap<&'static str, GasTally>,
    money: Money,
    block: u64,
    reported_epochs: u64,
    unreported_epochs: u64,
    refused_price: u64,
    refused_full: u64,
    price_samples: Vec<(f64, f64)>,
    epoch_series: Vec<report::EpochPoint>,
    honest_samples: Vec<VerdictSample>,
    /// The verdict trees of the reported epochs still claimable (the providers judged
    /// available), to build bonus proofs from.
    trees: BTreeMap<u64, VerdictTree>,
    /// The oracles' audit secrets the market holds a commitment to, by epoch.
    secrets: BTreeMap<u64, B256>,
    minted: U256,
    max_price: U256,
    truth: Vec<TrueState>,
    signers_liars_max: u32,
    att: attack::Books,
    /// Sessions their client closed, waiting for the claim grace: terms, settleable at.
    closing: Vec<(SessionTerms, u64)>,
}

impl<'a> Sim<'a> {
    fn new(sc: &'a Scenario) -> Result<Self, SimError> {
        let params = crate::market_params(sc);
        let mut chain = Chain::deploy(params.clone(), START)?;
        let dom = domain(CHAIN_ID, chain.market);
        let mut rng = StdRng::seed_from_u64(sc.sim.seed);
        let max_price =
            parse_tokens(&sc.demand.max_price).map_err(|e| SimError::Scenario(format!("demand.max_price: {e}")))?;
        let mut sim = Self {
            sc,
            params,
            dom,
            provs: Vec::new(),
            oracles: Vec::new(),
            clients: Vec::new(),
            open: Vec::new(),
            gas: BTreeMap::new(),
            money: Money::default(),
            block: 1,
            reported_epochs: 0,
            unreported_epochs: 0,
            refused_price: 0,
            refused_full: 0,
            price_samples: Vec::new(),
            epoch_series: Vec::new(),
            honest_samples: Vec::new(),
            trees: BTreeMap::new(),
            secrets: BTreeMap::new(),
            minted: U256::ZERO,
            max_price,
            truth: Vec::new(),
            signers_liars_max: 0,
            att: attack::Books::default(),
            closing: Vec::new(),
            rng: StdRng::seed_from_u64(0),
            chain: {
                chain.set_block(2, START + 1, B256::repeat_byte(2));
                chain
            },
        };
        sim.rng = StdRng::seed_from_u64(rng.random());
        sim.setup()?;
        sim.setup_attackers()?;
        Ok(sim)
    }

    fn tally(&mut self, kind: &'static str, e: &Executed) {
        let t = self.gas.entry(kind).or_default();
        t.count += 1;
        t.total += e.gas;
    }

    fn next_block(&mut self, timestamp: u64) {
        self.block += 1;
        let randao = keccak256([self.sc.sim.seed.to_be_bytes(), self.block.to_be_bytes()].concat());
        self.chain.set_block(self.block, timestamp, randao);
    }

    fn mint(&mut self, to: Address, amount: U256, approve: bool) -> Result<(), SimError> {
        let e = self.chain.token_send(to, &TestToken::mintCall { to, amount })?;
        self.tally("setup: mint (test token)", &e);
        self.minted += amount;
        if approve {
            let e = self.chain.token_send(to, &TestToken::approveCall { spender: self.chain.market, value: amount })?;
            self.tally("setup: approve", &e);
        }
        Ok(())
    }

    fn setup(&mut self) -> Result<(), SimError> {
        let sc = self.sc;
        // Providers, group by group.
        for (gi, g) in sc.providers.iter().enumerate() {
            let price = parse_tokens(&g.base_price)
                .map_err(|e| SimError::Scenario(format!("group {}: base_price: {e}", g.name)))?;
            let price96 = wirepact_chain::to_u96(price)
                .ok_or_else(|| SimError::Scenario(format!("group {}: base_price too large", g.name)))?;
            for _ in 0..sc.scaled(g.count) {
                let n =
                    u32::try_from(self.provs.len() + 1).map_err(|_| SimError::Scenario("too many providers".into()))?;
                let owner = Address::from_word(keccak256([b"provider".as_slice(), &n.to_be_bytes()].concat()));
                let min: U256 = self.chain.market_view(&M::minProviderStakeCall { capacityMbps: g.capacity_mbps })?;
                let stake = min * U256::from(2);
                self.mint(owner, stake, true)?;
                let terms = IWirepactMarket::ProviderTerms {
                    capacityMbps: g.capacity_mbps,
                    sessionMbps: g.session_mbps,
                    maxLatencyMs: g.max_latency_ms,
                    basePricePerGiB: price96,
                };
                let (id, e) = self.chain.market_send(
                    owner,
                    &M::registerProviderCall {
                        terms,
                        tunnelKey: keccak256(owner),
                        endpoint: format!("sim-{n}.example:443"),
                        region: String::new(),
                        stake,
                    },
                )?;
                self.tally("setup: registerProvider", &e);
                let traits = Traits::draw(&mut self.rng);
                self.provs.push(Prov {
                    id,
                    owner,
                    group: gi,
                    behaviour: g.behaviour,
                    traits,
                    sla_kbps: f64::from(g.session_mbps) * 1000.0,
                    capacity_mbps: g.capacity_mbps,
                    session_mbps: g.session_mbps,
                    max_latency_ms: g.max_latency_ms,
                    status: Status::Active,
                    committed_mbps: 0,
                    audits: 0,
                    violations: 0,
                    slashes: 0,
                    first_slash_audit: None,
                    first_slash_epoch: None,
                    period_epochs: Vec::new(),
                    period: 0,
                    last_period_epochs: Vec::new(),
                    last_period: None,
                    base_price: price.to::<u128>(),
                    uncollected: U256::ZERO,
                    claimed: U256::ZERO,
                    bonus: U256::ZERO,
                    slashed_amount: U256::ZERO,
                    left_with: None,
                    slashed_after_leaving: U256::ZERO,
                });
            }
        }
        // Oracles: the first `liars` lie, the next `offline` never sign.
        let o = &sc.oracles;
        let stake = U256::from(self.params.minOracleStake);
        for i in 0..o.count {
            let key = PrivateKeySigner::from_bytes(&keccak256(
                [b"oracle".as_slice(), &i.to_be_bytes(), &sc.sim.seed.to_be_bytes()].concat(),
            ))?;
            let kind = if i < o.liars {
                OracleKind::Liar
            } else if i < o.liars + o.offline {
                OracleKind::Offline
            } else {
                OracleKind::Honest
            };
            self.mint(key.address(), stake, true)?;
            let (_, e) = self.chain.market_send(
                key.address(),
                &M::registerOracleCall { endpoint: format!("https://oracle-{i}.example"), stake },
            )?;
            self.tally("setup: registerOracle", &e);
            let path_ms = self.rng.random_range(2.0..15.0);
            self.oracles.push(Orc { key, kind, path_ms });
        }
        // Clients: one deposit each, big enough for the whole run.
        let budget = U256::from(10u128.pow(24));
        for i in 0..sc.demand.clients {
            let key = PrivateKeySigner::from_bytes(&keccak256(
                [b"client".as_slice(), &i.to_be_bytes(), &sc.sim.seed.to_be_bytes()].concat(),
            ))?;
            let addr = Address::from_word(keccak256([b"client-wallet".as_slice(), &i.to_be_bytes()].concat()));
            self.mint(addr, budget, true)?;
            let e = self.chain.send(
                addr,
                self.chain.market,
                alloy::sol_types::SolCall::abi_encode(&M::depositCall { amount: budget }),
            )?;
            self.tally("setup: deposit", &e);
            self.clients.push(Client { addr, key });
        }
        Ok(())
    }

    fn epoch_len(&self) -> u64 {
        self.params.epochLength
    }

    fn epoch(&mut self, e: u64) -> Result<(), SimError> {
        let len = self.epoch_len();
        let t0 = START + 1 + e * len;
        let hour = ((e * len) % 86_400) as f64 / 3600.0;
        let d = &self.sc.demand;
        let activity = model::activity(hour, d.peak_hour, d.trough);

        // The oracles' aggregator begins the epoch (a seed grinder picks the block).
        let online: Vec<usize> =
            (0..self.oracles.len()).filter(|&i| self.oracles[i].kind != OracleKind::Offline).collect();
        let aggregator = *online.choose(&mut self.rng).ok_or_else(|| SimError::Scenario("no oracle online".into()))?;
        let agg_addr = self.oracles[aggregator].key.address();
        let seed = if self.sc.attacks.grinder.is_some() {
            self.grind_begin(e, t0 + 1, agg_addr)?
        } else {
            self.next_block(t0 + 1);
            let (seed, ex) = self.chain.market_send(agg_addr, &M::beginEpochCall {})?;
            self.tally("beginEpoch", &ex);
            seed
        };

        // Every provider's real state this epoch.
        self.truth = self
            .provs
            .iter()
            .map(|p| {
                let cap = f64::from(p.capacity_mbps) * 1000.0;
                model::true_state(p.behaviour, p.sla_kbps, cap, p.traits, activity, &mut self.rng)
            })
            .collect();

        // Jail over: unjail (an offline provider never comes back; one whose stake was slashed
        // under the minimum stays out, as the market refuses it).
        self.next_block(t0 + 2);
        for i in 0..self.provs.len() {
            if let Status::Jailed { until } = self.provs[i].status {
                if e >= until && self.provs[i].behaviour != Behaviour::Offline {
                    let (id, owner) = (self.provs[i].id, self.provs[i].owner);
                    let data = alloy::sol_types::SolCall::abi_encode(&M::unjailCall { providerId: id });
                    if self.chain.dry_run(owner, self.chain.market, data.clone()).is_err() {
                        self.provs[i].status = Status::Jailed { until: u64::MAX };
                        continue;
                    }
                    let ex = self.chain.send(owner, self.chain.market, data)?;
                    self.tally("unjail", &ex);
                    self.provs[i].status = Status::Active;
                }
            }
        }

        // Sessions: bytes of this epoch, then the ones that end are claimed and closed.
        for s in &mut self.open {
            let t = &self.truth[s.prov];
            if t.reachable {
                let kbps = s.demand_kbps.min(t.rate_kbps);
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let add = (kbps * 1000.0 / 8.0 * len as f64) as u64;
                s.bytes = s.bytes.saturating_add(add);
            } else if s.bytes == 0 {
                s.failed = true;
            }
        }
        self.next_block(t0 + 5);
        self.abandon_failed(t0 + 5)?;
        self.settle_ending(e, t0 + 5, false)?;

        // The griefer's sessions: honest nodes close the ones that never carried a byte (the
        // node's `idle_close_secs`), and the griefer fills its targets again.
        if self.sc.attacks.griefer.is_some() {
            self.next_block(t0 + 8);
            self.grief(e)?;
        }

        // New sessions along the demand curve.
        self.next_block(t0 + 10);
        self.open_sessions(e, activity)?;

        // Late sybil bonus claimants register in the last epoch of the first period.
        let r = u64::from(self.params.rewardPeriodEpochs);
        if e + 1 == r {
            if let Some(b) = self.sc.attacks.bonus_sybils.clone() {
                self.next_block(t0 + 15);
                self.register_sybils(b.count)?;
            }
        }

        // Bonus: at the second epoch of a period (the last report window of the one that ended
        // has closed), claims for the one that ended; sweep the one before.
        if e > r && e % r == 1 {
            self.next_block(t0 + 20);
            // Providers whose earnings passed the node's threshold collect them (the fees reach
            // the pool before the bonus pot is set).
            self.collect_earnings()?;
            self.claim_bonuses(e / r - 1)?;
            if e / r == 1 {
                self.sybils_claim(0)?;
            }
            if e / r >= 2 {
                let period = u32::try_from(e / r - 2).unwrap_or(u32::MAX);
                let (_, ex) = self.chain.market_send(agg_addr, &M::sweepBonusCall { period })?;
                self.tally("sweepBonus", &ex);
            }
        }

        // The probes (at a moment of the window), then a leaver that sees its slash coming
        // leaves before the report lands.
        // A provider with no room for one more session cannot be probed (the oracle's probe
        // opens a session like any client's): it goes unmeasured.
        let audited = self.audit_set(e, seed)?;
        let full: Vec<bool> = audited
            .iter()
            .map(|&pi| {
                let p = &self.provs[pi];
                p.committed_mbps + p.session_mbps > p.capacity_mbps
            })
            .collect();
        self.next_block(t0 + len / 3);
        self.leave_before_slash(e, t0 + len / 3, &audited)?;
        self.next_block(t0 + len / 2);
        self.report(e, aggregator, &audited, &full)?;

        // The epoch's point on the day's curves.
        let (mut cap, mut used) = (0u64, 0u64);
        for p in &self.provs {
            if p.status == Status::Active {
                cap += u64::from(p.capacity_mbps);
                used += u64::from(p.committed_mbps);
            }
        }
        let opened = self.open.len();
        self.epoch_series.push(report::EpochPoint {
            epoch: e,
            hour,
            demand: activity,
            utilisation: if cap == 0 { 0.0 } else { used as f64 / cap as f64 },
            open_sessions: opened as u64,
            jailed: self.provs.iter().filter(|p| p.status != Status::Active).count() as u64,
        });
        Ok(())
    }

    /// Claims (with a receipt for the delivered bytes) and closes every session ending at `e`
    /// (all of them if `all`), the provider closing so it settles at once.
    fn settle_ending(&mut self, e: u64, now: u64, all: bool) -> Result<(), SimError> {
        let mut i = 0;
        while i < self.open.len() {
            if !all && self.open[i].ends > e {
                i += 1;
                continue;
            }
            let s = self.open.swap_remove(i);
            self.settle_one(s, now)?;
        }
        Ok(())
    }

    /// A client whose tunnel never came up closes its session (as the wirepact client does
    /// before it fails over); the refund follows the claim grace, settled by anyone.
    fn abandon_failed(&mut self, now: u64) -> Result<(), SimError> {
        let mut i = 0;
        while i < self.open.len() {
            if !self.open[i].failed {
                i += 1;
                continue;
            }
            let s = self.open.swap_remove(i);
            let client = self.clients[s.client].addr;
            let (_, ex) = self.chain.market_send(client, &M::closeCall { t: s.terms.clone() })?;
            self.tally("close (by the client: the tunnel failed)", &ex);
            let p = &mut self.provs[s.prov];
            p.committed_mbps -= p.session_mbps;
            self.closing.push((s.terms, now + self.params.claimGrace));
        }
        // Closed sessions past their grace are settled (the client's next start does it).
        let due: Vec<SessionTerms> = self.closing.iter().filter(|(_, at)| *at <= now).map(|(t, _)| t.clone()).collect();
        self.closing.retain(|(_, at)| *at > now);
        for t in due {
            let client = t.client;
            let (_, ex) = self.chain.market_send(client, &M::settleCall { t })?;
            self.tally("settle", &ex);
            for log in &ex.logs {
                if let Ok(c) = M::SessionSettled::decode_log_data(&log.data) {
                    self.money.refunds += c.refund;
                }
            }
        }
        Ok(())
    }

    /// Claims a session's delivered bytes (with the client's receipt) and closes it as the
    /// provider, which settles it at once.
    fn settle_one(&mut self, s: Open, now: u64) -> Result<(), SimError> {
        let owner = self.provs[s.prov].owner;
        if s.bytes > 0 {
            let sid = keccak256(alloy::sol_types::SolValue::abi_encode(&s.terms));
            let receipt = Receipt { sessionId: sid, cumulativeBytes: s.bytes, timestamp: now };
            let sig = sign_receipt(&self.clients[s.client].key, &self.dom, &receipt)
                .map_err(|source| SimError::Sign { what: "a receipt", source })?;
            let (_, ex) = self.chain.market_send(
                owner,
                &M::claimCall {
                    t: s.terms.clone(),
                    cumulativeBytes: s.bytes,
                    timestamp: now,
                    signature: Bytes::from(sig.to_vec()),
                },
            )?;
            self.tally("claim", &ex);
            for log in &ex.logs {
                if let Ok(c) = M::SessionClaimed::decode_log_data(&log.data) {
                    self.money.provider_claimed += c.amount;
                    self.provs[s.prov].uncollected += c.amount;
                    self.provs[s.prov].claimed += c.amount;
                }
            }
        }
        let (_, ex) = self.chain.market_send(owner, &M::closeCall { t: s.terms.clone() })?;
        self.tally("close", &ex);
        for log in &ex.logs {
            if let Ok(c) = M::SessionSettled::decode_log_data(&log.data) {
                self.money.refunds += c.refund;
            }
        }
        let p = &mut self.provs[s.prov];
        p.committed_mbps -= p.session_mbps;
        Ok(())
    }

    fn open_sessions(&mut self, e: u64, activity: f64) -> Result<(), SimError> {
        let d = &self.sc.demand;
        let want = f64::from(d.sessions_per_epoch_peak) * self.sc.sim.provider_scale * activity;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let mut n = want.floor() as u64;
        if self.rng.random_bool(want.fract()) {
            n += 1;
        }
        let len = self.epoch_len();
        for _ in 0..n {
            // The client compares a few providers with room and takes the cheapest quote.
            let mut best: Option<(U256, usize)> = None;
            for _ in 0..d.choices {
                let i = self.rng.random_range(0..self.provs.len());
                let p = &self.provs[i];
                if p.status != Status::Active || p.committed_mbps + p.session_mbps > p.capacity_mbps {
                    continue;
                }
                let q: U256 = self.chain.market_view(&M::quoteCall { providerId: p.id })?;
                if best.is_none_or(|(bq, _)| q < bq) {
                    best = Some((q, i));
                }
            }
            let Some((quote, pi)) = best else {
                self.refused_full += 1;
                continue;
            };
            if quote > self.max_price {
                self.refused_price += 1;
                continue;
            }
            let ci = self.rng.random_range(0..self.clients.len());
            let epochs = self.rng.random_range(d.session_epochs.0..=d.session_epochs.1);
            let usage = self.rng.random_range(d.usage.0..=d.usage.1);
            let demand_kbps = self.provs[pi].sla_kbps * usage;
            // Deposit: the session's expected bytes at the quote, plus a fifth.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let bytes = (demand_kbps * 1000.0 / 8.0 * (epochs * len) as f64 * 1.2) as u128;
            let deposit = (U256::from(bytes) * quote / U256::from(GIB)).max(U256::from(1));
            let (client, key) = (self.clients[ci].addr, self.clients[ci].key.address());
            let p = &self.provs[pi];
            let (id, sla, cap, committed) = (p.id, p.session_mbps, p.capacity_mbps, p.committed_mbps);
            let (_, ex) = self.chain.market_send(
                client,
                &M::openSessionCall {
                    providerId: id,
                    depositAmount: deposit,
                    maxPricePerGiB: self.max_price,
                    sessionKey: key,
                },
            )?;
            self.tally("openSession", &ex);
            let terms = opened_terms(&ex)?;
            let base = self.provs[pi].base_price_ratio(&terms);
            self.price_samples.push((f64::from(committed + sla) / f64::from(cap), base));
            self.money.deposits += U256::from(terms.deposit);
            self.provs[pi].committed_mbps += sla;
            self.open.push(Open {
                terms,
                prov: pi,
                client: ci,
                ends: e + epochs,
                demand_kbps,
                bytes: 0,
                failed: false,
            });
        }
        Ok(())
    }

    /// The providers the epoch audits: the draw from the chain seed mixed with the secret
    /// committed for it (if any), among those the market still judges (active, or left in
    /// this very epoch).
    fn audit_set(&mut self, e: u64, seed: B256) -> Result<Vec<usize>, SimError> {
        let draw = audit::audit_seed(seed, self.secrets.get(&e).copied());
        let count = u32::try_from(self.provs.len()).unwrap_or(u32::MAX);
        let bps = self.chain.market_view(&M::auditProbabilityAtCall { epoch: e })?;
        Ok(audit::audited_ids(draw, count, bps)
            .into_iter()
            .map(|id| id as usize - 1)
            .filter(|&i| match self.provs[i].status {
                Status::Active => true,
                Status::Left { epoch } => epoch == e,
                Status::Jailed { .. } => false,
            })
            .collect())
    }

    fn report(&mut self, e: u64, aggregator: usize, audited: &[usize], full: &[bool]) -> Result<(), SimError> {
        let o = &self.sc.oracles;
        // The oracles registered in epoch 0 sign from epoch 1 on (an epoch's set is fixed
        // when it starts).
        if e == 0 {
            self.unreported_epochs += 1;
            return Ok(());
        }
        // Quorum as the market computes it: more than two thirds of the stake, and every
        // oracle stakes the same, so the smallest m with 3m > 2n.
        let n = self.oracles.len();
        let quorum = (2 * n / 3 + 1).max(3);
        let honest: Vec<usize> = (0..n).filter(|&i| self.oracles[i].kind == OracleKind::Honest).collect();
        let liars: Vec<usize> = (0..n).filter(|&i| self.oracles[i].kind == OracleKind::Liar).collect();
        if honest.len() + liars.len() < quorum {
            self.unreported_epochs += 1;
            return Ok(());
        }
        // Who signs: a lying aggregator puts every liar in; an honest one takes a random quorum
        // of whoever answered (it cannot tell a liar).
        let mut signers: Vec<usize> = if self.oracles[aggregator].kind == OracleKind::Liar {
            let mut s = liars.clone();
            let mut h = honest.clone();
            h.shuffle(&mut self.rng);
            s.extend(h.into_iter().take(quorum.saturating_sub(liars.len())));
            s
        } else {
            let mut all: Vec<usize> = honest.iter().chain(liars.iter()).copied().collect();
            all.shuffle(&mut self.rng);
            all.truncate(quorum);
            all
        };
        signers.sort_by_key(|&i| self.oracles[i].key.address());
        let liar_count = signers.iter().filter(|&&i| self.oracles[i].kind == OracleKind::Liar).count();
        self.signers_liars_max = self.signers_liars_max.max(u32::try_from(liar_count).unwrap_or(u32::MAX));

        // The report reveals the secret committed two epochs ago (if any) and commits a
        // fresh one for e + 2.
        let seed_reveal = self.secrets.get(&e).copied();
        let next_secret = B256::from(self.rng.random::<[u8; 32]>());
        // Each signer's row; the aggregate every oracle computes from the leader's set; one
        // signature each over it.
        let mut rows: Vec<Vec<Observation>> = Vec::with_capacity(signers.len());
        for &si in &signers {
            let orc = &self.oracles[si];
            let mut obs = Vec::with_capacity(audited.len());
            for (k, &pi) in audited.iter().enumerate() {
                let p = &self.provs[pi];
                if full[k] && orc.kind != OracleKind::Liar {
                    obs.push(Observation {
                        provider: ProviderId(p.id),
                        throughput: Kbps(0),
                        latency: Millis(0),
                        reachable: false,
                        measured: false,
                    });
                    continue;
                }
                let r: Reading = match orc.kind {
                    OracleKind::Liar => model::lie(o.lie, p.behaviour != Behaviour::Honest, p.sla_kbps),
                    _ => model::honest_reading(
                        &model::as_probed(p.behaviour, &self.truth[pi], p.sla_kbps),
                        p.sla_kbps,
                        f64::from(p.max_latency_ms),
                        orc.path_ms,
                        o,
                        &mut self.rng,
                    ),
                };
                obs.push(Observation {
                    provider: ProviderId(p.id),
                    throughput: Kbps(r.throughput_kbps),
                    latency: Millis(r.latency_ms.min(wirepact_proto::observations::MAX_LATENCY_MS)),
                    reachable: r.reachable,
                    measured: true,
                });
            }
            rows.push(obs);
        }
        let ids: Vec<u32> = audited.iter().map(|&pi| self.provs[pi].id).collect();
        // Every oracle stakes the same: weight 1 each, the epoch's total is the oracle count.
        let weighted: Vec<Row<'_>> = rows.iter().map(|r| Row { stake: 1, observations: r }).collect();
        let tol = Tolerances {
            throughput_bps: self.params.throughputToleranceBps,
            latency_ms: self.params.latencyToleranceMs,
        };
        let provs = &self.provs;
        // A leaf's base: the provider's leaves in the period's final trees (the simulator
        // audits no jailed provider and everyone registered in epoch 0, so its leaves are
        // exactly the creditable epochs).
        let r = u64::from(self.params.rewardPeriodEpochs);
        let first = (e / r) * r;
        let trees = &self.trees;
        let agg = verdicts::aggregate(
            e,
            &ids,
            &weighted,
            n as u128,
            |id| {
                provs
                    .get(id as usize - 1)
                    .map(|p| Sla { session_mbps: p.session_mbps, max_latency_ms: p.max_latency_ms })
            },
            |id| verdicts::base_of(trees.range(first..).map(|(_, t)| t), id, first, e),
            tol,
        )
        .map_err(|err| SimError::Invariant(format!("aggregating epoch {e}: {err}")))?;
        let report = agg.report(audit::seed_commit(next_secret));
        let mut signatures = Vec::with_capacity(signers.len());
        for &si in &signers {
            let sig = sign_report(&self.oracles[si].key, &self.dom, &report)
                .map_err(|source| SimError::Sign { what: "the report", source })?;
            signatures.push(Bytes::from(sig.to_vec()));
        }
        let leader = self.oracles[aggregator].key.address();
        let (_, ex) = self.chain.market_send(
            leader,
            &M::submitReportCall {
                epoch: e,
                root: report.root,
                available: report.available,
                violations: report.violations.clone(),
                seedCommit: report.seedCommit,
                seedReveal: seed_reveal.unwrap_or(B256::ZERO),
                signatures,
            },
        )?;
        self.secrets.insert(e + 2, next_secret);
        self.secrets = self.secrets.split_off(&e.saturating_sub(2));
        if agg.is_empty() {
            // Judged nobody: it only carried the commitment (and paid no reward).
            self.tally("submitReport (commitment only)", &ex);
            self.unreported_epochs += 1;
            return Ok(());
        }
        self.tally("submitReport", &ex);
        self.reported_epochs += 1;
        self.absorb_report(e, audited, &agg, &ex.logs)
    }

    fn absorb_report(
        &mut self,
        e: u64,
        audited: &[usize],
        agg: &verdicts::Aggregate,
        logs: &[Log],
    ) -> Result<(), SimError> {
        let r = u64::from(self.params.rewardPeriodEpochs);
        if agg.verdicts.len() != audited.len() {
            return Err(SimError::Invariant("a report's verdicts do not match its providers".into()));
        }
        let mut accepted = false;
        for log in logs {
            if M::ReportAccepted::decode_log_data(&log.data).is_ok() {
                accepted = true;
            } else if let Ok(s) = M::ProviderSlashed::decode_log_data(&log.data) {
                let p = &mut self.provs[s.providerId as usize - 1];
                p.slashes += 1;
                if p.first_slash_audit.is_none() {
                    p.first_slash_audit = Some(p.audits + 1);
                }
                p.slashed_amount += s.amount;
                p.first_slash_epoch.get_or_insert(e);
                if matches!(p.status, Status::Left { .. }) {
                    // It stays out; the slash came out of its unbonding stake.
                    p.slashed_after_leaving += s.amount;
                } else {
                    p.status = Status::Jailed { until: u64::from(s.jailedUntilEpoch) };
                }
                p.period_epochs.clear();
                self.money.slashed += s.amount;
                self.money.slashed_to_oracles += s.toOracles;
            } else if let Ok(rw) = M::OracleRewarded::decode_log_data(&log.data) {
                self.money.oracle_rewards += rw.amount;
            }
        }
        if !accepted {
            return Err(SimError::Invariant(format!("the report of epoch {e} was not accepted")));
        }
        for (k, &pi) in audited.iter().enumerate() {
            let Verdict::Judged { throughput_kbps, latency_ms, reachable, violation } = agg.verdicts[k].1 else {
                continue;
            };
            let p = &mut self.provs[pi];
            p.audits += 1;
            if violation {
                p.violations += 1;
            }
            if p.period != e / r {
                p.last_period_epochs = std::mem::take(&mut p.period_epochs);
                p.last_period = Some(p.period);
                p.period = e / r;
            }
            // Every provider registered in epoch 0, which earns no bonus credit; a slash in
            // this report cleared the period's list already.
            if e > 0 && reachable && !matches!(p.status, Status::Jailed { .. }) {
                p.period_epochs.push(e);
            }
            if p.behaviour == Behaviour::Honest {
                self.honest_samples.push(VerdictSample {
                    throughput_ratio: f64::from(throughput_kbps) / p.sla_kbps,
                    latency_margin_ms: f64::from(p.max_latency_ms) + f64::from(self.params.latencyToleranceMs)
                        - f64::from(latency_ms),
                    reachable,
                    violation,
                });
            }
        }
        // A slash is logged while its report is judged: fix the audit index of first slashes
        // recorded in this report (the slashing audit is this one).
        for &pi in audited {
            let p = &mut self.provs[pi];
            if p.first_slash_audit == Some(p.audits + 1) && p.status != Status::Active {
                p.first_slash_audit = Some(p.audits);
            }
        }
        // Keep the trees of this period and the previous one (claims of p close with p + 1).
        self.trees.insert(e, agg.tree.clone());
        let keep_from = (e / r).saturating_sub(1) * r;
        self.trees = self.trees.split_off(&keep_from);
        Ok(())
    }

    fn collect_earnings(&mut self) -> Result<(), SimError> {
        // The node's default `collect_threshold`: 10 tokens.
        let at = U256::from(10u64) * U256::from(10u64).pow(U256::from(18u64));
        for i in 0..self.provs.len() {
            if self.provs[i].uncollected < at {
                continue;
            }
            self.provs[i].uncollected = U256::ZERO;
            let (id, owner) = (self.provs[i].id, self.provs[i].owner);
            let (_, ex) = self.chain.market_send(owner, &M::collectEarningsCall { providerId: id })?;
            self.tally("collectEarnings", &ex);
            for log in &ex.logs {
                if let Ok(c) = M::EarningsCollected::decode_log_data(&log.data) {
                    self.money.provider_paid += c.amount;
                    self.money.fees += c.fee;
                }
            }
        }
        Ok(())
    }

    fn claim_bonuses(&mut self, period: u64) -> Result<(), SimError> {
        let period32 = u32::try_from(period).unwrap_or(u32::MAX);
        for i in 0..self.provs.len() {
            let p = &self.provs[i];
            let epochs = if p.period == period {
                &p.period_epochs
            } else if p.last_period == Some(period) {
                &p.last_period_epochs
            } else {
                continue;
            };
            if p.status != Status::Active || epochs.is_empty() {
                continue;
            }
            // The last epoch it was judged available in, and the one before if it was too.
            let mut leaves = Vec::with_capacity(2);
            let last = epochs[epochs.len() - 1];
            for &e in epochs.iter().rev().take(2) {
                if e != last && e + 1 != last {
                    break;
                }
                let (base, proof) = self.trees.get(&e).and_then(|t| t.proof(p.id)).ok_or_else(|| {
                    SimError::Invariant(format!("no verdict leaf for provider {} in epoch {e}", p.id))
                })?;
                leaves.push(IWirepactMarket::BonusLeaf { epoch: e, base, proof });
            }
            let call = M::claimBonusCall { providerId: p.id, period: period32, leaves };
            let owner = p.owner;
            let data = alloy::sol_types::SolCall::abi_encode(&call);
            if self.chain.dry_run(owner, self.chain.market, data.clone()).is_err() {
                self.money.bonus_refused += 1;
                continue;
            }
            let ex = self.chain.send(owner, self.chain.market, data)?;
            self.tally("claimBonus", &ex);
            for log in &ex.logs {
                if let Ok(b) = M::BonusClaimed::decode_log_data(&log.data) {
                    self.money.bonus += b.amount;
                    self.money.bonus_claims += 1;
                    self.provs[i].bonus += b.amount;
                }
            }
        }
        Ok(())
    }

    fn finish(mut self, started: Instant) -> Result<Report, SimError> {
        let end = START + 1 + self.sc.sim.epochs * self.epoch_len();
        self.next_block(end);
        self.settle_ending(u64::MAX, end, true)?;
        self.grief_wind_down()?;
        let after_grace = end + self.params.claimGrace;
        self.next_block(after_grace);
        self.abandon_failed(after_grace)?;
        let conservation = self.conservation()?;
        let attacks = self.outcomes()?;
        let under_attack = self.has_attackers().then(|| self.honest_wei_lost());
        let seconds = started.elapsed().as_secs_f64();
        let groups = self.group_stats();
        Ok(report::build(report::Inputs {
            scenario: self.sc,
            params: &self.params,
            wall_seconds: seconds,
            providers: u32::try_from(self.provs.len()).unwrap_or(u32::MAX),
            oracles: u32::try_from(self.oracles.len()).unwrap_or(u32::MAX),
            groups,
            gas: self.gas,
            money: self.money,
            reported_epochs: self.reported_epochs,
            unreported_epochs: self.unreported_epochs,
            sessions_refused_price: self.refused_price,
            sessions_refused_full: self.refused_full,
            price_samples: self.price_samples,
            epoch_series: self.epoch_series,
            honest_samples: self.honest_samples,
            conservation,
            max_liars_in_a_report: self.signers_liars_max,
            attacks,
            honest_wei_lost: under_attack,
        }))
    }

    fn group_stats(&self) -> Vec<GroupStats> {
        let sc = self.sc;
        sc.providers
            .iter()
            .enumerate()
            .map(|(gi, g)| {
                let ps: Vec<&Prov> = self.provs.iter().filter(|p| p.group == gi).collect();
                let cap = f64::from(g.capacity_mbps);
                let true_cap = match g.behaviour {
                    Behaviour::Honest | Behaviour::Throttling { .. } => cap,
                    Behaviour::Underdeliver { fraction }
                    | Behaviour::ProbeAware { fraction }
                    | Behaviour::Leaver { fraction } => cap * fraction,
                    Behaviour::Oversold { peak_free } => cap * peak_free,
                    Behaviour::Flaky { availability } => cap * availability,
                    Behaviour::Offline => 0.0,
                };
                GroupStats {
                    name: g.name.clone(),
                    behaviour: g.behaviour,
                    providers: ps.len() as u64,
                    audits: ps.iter().map(|p| u64::from(p.audits)).sum(),
                    violations: ps.iter().map(|p| u64::from(p.violations)).sum(),
                    slashed: ps.iter().filter(|p| p.slashes > 0).count() as u64,
                    slashes: ps.iter().map(|p| u64::from(p.slashes)).sum(),
                    with_three_audits: ps.iter().filter(|p| p.audits >= 3 || p.first_slash_audit.is_some()).count()
                        as u64,
                    slashed_within_three_audits: ps
                        .iter()
                        .filter(|p| p.first_slash_audit.is_some_and(|a| a <= 3))
                        .count() as u64,
                    audits_to_slash: ps.iter().filter_map(|p| p.first_slash_audit).collect(),
                    epochs_to_slash: ps.iter().filter_map(|p| p.first_slash_epoch).collect(),
                    declared_mbps: cap * ps.len() as f64,
                    true_mbps: true_cap * ps.len() as f64,
                    declared_mbps_active_at_end: cap * ps.iter().filter(|p| p.status == Status::Active).count() as f64,
                    true_mbps_active_at_end: true_cap * ps.iter().filter(|p| p.status == Status::Active).count() as f64,
                }
            })
            .collect()
    }

    /// The market's token balance against everything it owes, from its own views, and the
    /// test token's supply against every holder: both must match to the wei.
    fn conservation(&mut self) -> Result<report::Conservation, SimError> {
        let market = self.chain.market;
        let held: U256 = self.chain.token_view(&TestToken::balanceOfCall { account: market })?;
        let mut owed = U256::ZERO;
        let mut wallets = U256::ZERO;
        let mut accounts: Vec<Address> = self.provs.iter().map(|p| p.owner).collect();
        accounts.extend(self.oracles.iter().map(|o| o.key.address()));
        accounts.extend(self.clients.iter().map(|c| c.addr));
        let (attackers, sybil_ids) = self.attacker_accounts();
        accounts.extend(attackers);
        for &a in &accounts {
            owed += self.chain.market_view(&M::balanceOfCall { account: a })?;
            wallets += self.chain.token_view(&TestToken::balanceOfCall { account: a })?;
        }
        let ids: Vec<u32> = self.provs.iter().map(|p| p.id).chain(sybil_ids).collect();
        for id in ids {
            let v = self.chain.market_view(&M::providerCall { providerId: id })?;
            owed += U256::from(v.stake) + U256::from(v.unbonding) + v.earned;
        }
        for o in 0..self.oracles.len() {
            let v = self.chain.market_view(&M::oracleCall { account: self.oracles[o].key.address() })?;
            owed += U256::from(v.stake);
        }
        let pool: U256 = self.chain.market_view(&M::rewardPoolCall {})?;
        owed += pool;
        let periods = self.sc.sim.epochs / u64::from(self.params.rewardPeriodEpochs) + 1;
        for period in 0..periods {
            let pot = self.chain.market_view(&M::bonusPotCall { period: u32::try_from(period).unwrap_or(u32::MAX) })?;
            owed += U256::from(pot.remaining);
        }
        let supply: U256 = self.chain.token_view(&TestToken::totalSupplyCall {})?;
        Ok(report::Conservation {
            market_holds: held.to_string(),
            market_owes: owed.to_string(),
            minted: self.minted.to_string(),
            supply: supply.to_string(),
            wallets_plus_market: (wallets + held).to_string(),
            balanced: held == owed && supply == self.minted && wallets + held == supply && self.open.is_empty(),
            reward_pool: pool.to_string(),
        })
    }
}

/// The terms an `openSession` transaction opened (from its `SessionOpened`).
fn opened_terms(ex: &Executed) -> Result<SessionTerms, SimError> {
    ex.logs
        .iter()
        .find_map(|l| M::SessionOpened::decode_log_data(&l.data).ok())
        .map(|o| o.terms)
        .ok_or_else(|| SimError::Invariant("openSession without SessionOpened".into()))
}

impl Prov {
    /// A session's price over the provider's base price.
    fn base_price_ratio(&self, t: &SessionTerms) -> f64 {
        t.pricePerGiB.to::<u128>() as f64 / self.base_price as f64
    }
}
