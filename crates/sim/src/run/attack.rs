//! The attackers: each sends real transactions to the market's bytecode, as a rational
//! attacker would, and keeps the books of what it spent and what it got.
//!
//! - the seed grinder picks the block its `beginEpoch` lands in;
//! - the capacity griefer fills honest providers with sessions that never carry a byte;
//! - late sybil providers claim a bonus they never earned;
//! - the leaver closes its sessions and leaves as soon as a probe comes while it already has
//!   all but one of the violations a slash needs.
//!
//! The sybil oracle coalition (with its censoring submitter) is the simulator's lying oracles
//! (`oracles.liars`), and the adaptive cheater a provider behaviour; their books are kept here
//! too.

use alloy::primitives::{keccak256, Address, B256, U256};
use alloy::sol_types::{SolCall, SolEvent};
use wirepact_chain::bindings::IWirepactMarket::{self, SessionTerms};
use wirepact_chain::WirepactMarket as M;
use wirepact_proto::audit;

use super::{OracleKind, Sim, Status};
use crate::report::AttackOutcome;
use crate::scenario::Behaviour;
use crate::SimError;

/// What the attackers did, as the run goes.
#[derive(Debug, Default)]
pub(super) struct Books {
    pub grind: GrindBooks,
    pub grief: GriefBooks,
    pub sybils: SybilBooks,
    pub leave_gas: u64,
}

#[derive(Debug, Default)]
pub(super) struct GrindBooks {
    /// Audit slots (provider-epochs) of the friends and of everyone else, and audits drawn.
    pub friend_slots: u64,
    pub friend_audits: u64,
    pub other_slots: u64,
    pub other_audits: u64,
    pub gas: u64,
}

#[derive(Debug, Default)]
pub(super) struct GriefBooks {
    pub addr: Address,
    pub targets: Vec<usize>,
    pub sessions: Vec<(SessionTerms, usize, u64)>,
    pub opened: u64,
    pub gas: u64,
    pub locked: U256,
    pub max_locked: U256,
    /// Gas the honest targets spent closing its idle sessions.
    pub honest_close_gas: u64,
    /// No-show fees it paid its targets.
    pub fees: U256,
}

#[derive(Debug, Default)]
pub(super) struct SybilBooks {
    pub ids: Vec<(u32, Address)>,
    pub gas: u64,
    pub stake: U256,
    pub attempts: u64,
    pub refused: u64,
    pub gained: U256,
}

impl Sim<'_> {
    /// The griefer's account: funded once with enough to lock every target's capacity.
    pub(super) fn setup_attackers(&mut self) -> Result<(), SimError> {
        if let Some(g) = self.sc.attacks.griefer.clone() {
            let addr = Address::from_word(keccak256(b"griefer"));
            let targets: Vec<usize> = (0..self.provs.len())
                .filter(|&i| self.provs[i].behaviour == Behaviour::Honest)
                .take(g.targets as usize)
                .collect();
            let fund = U256::from(10u128.pow(24));
            self.mint(addr, fund, true)?;
            let e = self.chain.market_send(addr, &M::depositCall { amount: fund })?.1;
            self.tally("setup: deposit", &e);
            self.att.grief = GriefBooks { addr, targets, ..GriefBooks::default() };
        }
        Ok(())
    }

    /// Begins epoch `e` in whichever of the grinder's candidate blocks draws the fewest of its
    /// friends, and books the friends' audits against everyone else's.
    pub(super) fn grind_begin(&mut self, e: u64, timestamp: u64, caller: Address) -> Result<B256, SimError> {
        let Some(g) = self.sc.attacks.grinder.clone() else {
            return Err(SimError::Scenario("no grinder".into()));
        };
        let friend: Vec<bool> = self.provs.iter().map(|p| self.sc.providers[p.group].name == g.friends).collect();
        let count = u32::try_from(self.provs.len()).unwrap_or(u32::MAX);
        let bps = self.chain.market_view(&M::auditProbabilityAtCall { epoch: e })?;
        // What the grinder can compute: the chain seed, mixed with the secret if it holds it.
        let known = if g.knows_secret { self.secrets.get(&e).copied() } else { None };
        let friends_in = |seed: B256| -> usize {
            audit::audited_ids(seed, count, bps).into_iter().filter(|&id| friend[id as usize - 1]).count()
        };
        let data = M::beginEpochCall {}.abi_encode();
        let mut best: Option<(usize, u64, B256)> = None;
        for k in 0..u64::from(g.blocks) {
            let number = self.block + 1 + k;
            let randao = keccak256([self.sc.sim.seed.to_be_bytes(), number.to_be_bytes()].concat());
            self.chain.set_block(number, timestamp, randao);
            let out = self.chain.dry_run(caller, self.chain.market, data.clone())?;
            let seed = M::beginEpochCall::abi_decode_returns(&out.output)
                .map_err(|source| SimError::Decode { what: "beginEpoch", source })?;
            let n = friends_in(audit::audit_seed(seed, known));
            if best.is_none_or(|(b, _, _)| n < b) {
                best = Some((n, number, randao));
            }
        }
        let (_, number, randao) = best.ok_or_else(|| SimError::Scenario("grinder.blocks is 0".into()))?;
        self.block = number;
        self.chain.set_block(number, timestamp, randao);
        let (seed, ex) = self.chain.market_send(caller, &M::beginEpochCall {})?;
        self.tally("beginEpoch", &ex);
        self.att.grind.gas += ex.gas;
        // The draw the market will hold the report to (with the real secret, if committed).
        let drawn = audit::audited_ids(audit::audit_seed(seed, self.secrets.get(&e).copied()), count, bps);
        let active: Vec<bool> = self.provs.iter().map(|p| p.status == Status::Active).collect();
        let b = &mut self.att.grind;
        for (i, &f) in friend.iter().enumerate() {
            if !active[i] {
                continue;
            }
            if f {
                b.friend_slots += 1;
            } else {
                b.other_slots += 1;
            }
        }
        for id in drawn {
            let i = id as usize - 1;
            if !active[i] {
                continue;
            }
            if friend[i] {
                b.friend_audits += 1;
            } else {
                b.other_audits += 1;
            }
        }
        Ok(seed)
    }

    /// The griefer's turn: honest targets close its sessions that never carried a byte (the
    /// node's idle closer: `idle_close_secs`, one epoch by default), then it fills every
    /// target's free capacity again at the minimum deposit.
    pub(super) fn grief(&mut self, e: u64) -> Result<(), SimError> {
        let sessions = std::mem::take(&mut self.att.grief.sessions);
        let mut keep = Vec::new();
        for (terms, pi, opened) in sessions {
            if opened >= e {
                keep.push((terms, pi, opened));
                continue;
            }
            let owner = self.provs[pi].owner;
            let (_, ex) = self.chain.market_send(owner, &M::closeCall { t: terms.clone() })?;
            self.tally("close (an idle session, by the provider)", &ex);
            self.att.grief.honest_close_gas += ex.gas;
            self.att.grief.locked -= U256::from(terms.deposit);
            self.book_no_show(pi, &ex.logs);
            let p = &mut self.provs[pi];
            p.committed_mbps -= p.session_mbps;
        }
        self.att.grief.sessions = keep;
        let addr = self.att.grief.addr;
        for ti in 0..self.att.grief.targets.len() {
            let pi = self.att.grief.targets[ti];
            if self.provs[pi].status != Status::Active {
                continue;
            }
            while self.provs[pi].committed_mbps + self.provs[pi].session_mbps <= self.provs[pi].capacity_mbps {
                let id = self.provs[pi].id;
                let deposit: U256 = self.chain.market_view(&M::minDepositCall { providerId: id })?;
                let (_, ex) = self.chain.market_send(
                    addr,
                    &M::openSessionCall {
                        providerId: id,
                        depositAmount: deposit,
                        maxPricePerGiB: U256::from(u128::from(u64::MAX)),
                        sessionKey: addr,
                    },
                )?;
                self.tally("griefer: openSession", &ex);
                let terms = super::opened_terms(&ex)?;
                let b = &mut self.att.grief;
                b.gas += ex.gas;
                b.opened += 1;
                b.locked += deposit;
                b.max_locked = b.max_locked.max(b.locked);
                b.sessions.push((terms, pi, e));
                let p = &mut self.provs[pi];
                p.committed_mbps += p.session_mbps;
            }
        }
        Ok(())
    }

    /// A no-show fee the market paid a target out of the griefer's deposit.
    fn book_no_show(&mut self, pi: usize, logs: &[alloy::primitives::Log]) {
        for log in logs {
            if let Ok(n) = M::SessionNoShow::decode_log_data(&log.data) {
                self.att.grief.fees += n.amount;
                self.money.provider_claimed += n.amount;
                let p = &mut self.provs[pi];
                p.uncollected += n.amount;
                p.claimed += n.amount;
            }
        }
    }

    /// At the end of the run the targets close what the griefer still holds.
    pub(super) fn grief_wind_down(&mut self) -> Result<(), SimError> {
        for (terms, pi, _) in std::mem::take(&mut self.att.grief.sessions) {
            let owner = self.provs[pi].owner;
            let (_, ex) = self.chain.market_send(owner, &M::closeCall { t: terms.clone() })?;
            self.att.grief.honest_close_gas += ex.gas;
            self.att.grief.locked -= U256::from(terms.deposit);
            self.book_no_show(pi, &ex.logs);
            let p = &mut self.provs[pi];
            p.committed_mbps -= p.session_mbps;
        }
        Ok(())
    }

    /// `count` sybil providers register at the minimum stake (they never serve; the simulated
    /// oracles never draw them, the most favourable case for the attacker).
    pub(super) fn register_sybils(&mut self, count: u32) -> Result<(), SimError> {
        let capacity = 50;
        let min: U256 = self.chain.market_view(&M::minProviderStakeCall { capacityMbps: capacity })?;
        for n in 0..count {
            let owner = Address::from_word(keccak256([b"sybil".as_slice(), &n.to_be_bytes()].concat()));
            self.mint(owner, min, true)?;
            let terms = IWirepactMarket::ProviderTerms {
                capacityMbps: capacity,
                sessionMbps: capacity,
                maxLatencyMs: 80,
                basePricePerGiB: wirepact_chain::to_u96(U256::from(10u128.pow(16))).unwrap_or_default(),
            };
            let (id, ex) = self.chain.market_send(
                owner,
                &M::registerProviderCall {
                    terms,
                    tunnelKey: keccak256(owner),
                    endpoint: format!("sybil-{n}.example:443"),
                    region: String::new(),
                    stake: min,
                },
            )?;
            self.tally("sybil: registerProvider", &ex);
            let b = &mut self.att.sybils;
            b.gas += ex.gas;
            b.stake += min;
            b.ids.push((id, owner));
        }
        Ok(())
    }

    /// Each sybil claims `period`'s bonus twice: with no leaf, and with an honest provider's
    /// leaf (the only verdicts it can find). Both are sent; the market must refuse them.
    pub(super) fn sybils_claim(&mut self, period: u64) -> Result<(), SimError> {
        let period32 = u32::try_from(period).unwrap_or(u32::MAX);
        // Someone else's leaf: the first honest provider judged available in the period.
        let stolen = self.provs.iter().find_map(|p| {
            let epochs = if p.period == period { &p.period_epochs } else { &p.last_period_epochs };
            let &e = epochs.last()?;
            let (base, proof) = self.trees.get(&e)?.proof(p.id)?;
            Some(IWirepactMarket::BonusLeaf { epoch: e, base, proof })
        });
        for (id, owner) in self.att.sybils.ids.clone() {
            let mut tries = vec![Vec::new()];
            if let Some(l) = &stolen {
                tries.push(vec![l.clone()]);
            }
            for leaves in tries {
                let data = M::claimBonusCall { providerId: id, period: period32, leaves }.abi_encode();
                self.att.sybils.attempts += 1;
                match self.chain.send(owner, self.chain.market, data) {
                    Ok(ex) => {
                        self.att.sybils.gas += ex.gas;
                        for log in &ex.logs {
                            if let Ok(b) = M::BonusClaimed::decode_log_data(&log.data) {
                                self.att.sybils.gained += b.amount;
                                self.money.bonus += b.amount;
                            }
                        }
                    }
                    Err(SimError::Reverted(_) | SimError::Evm { .. }) => self.att.sybils.refused += 1,
                    Err(other) => return Err(other),
                }
            }
        }
        Ok(())
    }

    /// A leaver in this epoch's audit set (it sees the probe session) that already has all
    /// but one of the violations a slash needs closes its sessions and leaves once the probe
    /// is over, before the report lands.
    pub(super) fn leave_before_slash(&mut self, e: u64, now: u64, audited: &[usize]) -> Result<(), SimError> {
        let k = u32::from(self.params.violationsToSlash);
        for &pi in audited {
            let p = &self.provs[pi];
            if !matches!(p.behaviour, Behaviour::Leaver { .. }) || p.status != Status::Active {
                continue;
            }
            // What it can read of itself on chain: the violations in the market's window.
            let v = self.chain.market_view(&M::providerCall { providerId: p.id })?;
            let (recent, _) = wirepact_chain::violations_in_window(&v, &self.params, e);
            if u32::try_from(recent).unwrap_or(u32::MAX) + 1 < k {
                continue;
            }
            let mut i = 0;
            while i < self.open.len() {
                if self.open[i].prov == pi {
                    let s = self.open.swap_remove(i);
                    self.settle_one(s, now)?;
                } else {
                    i += 1;
                }
            }
            let (id, owner) = (self.provs[pi].id, self.provs[pi].owner);
            let (_, ex) = self.chain.market_send(owner, &M::leaveCall { providerId: id })?;
            self.tally("leave", &ex);
            self.att.leave_gas += ex.gas;
            let p = &mut self.provs[pi];
            p.left_with = Some(U256::from(v.stake) + U256::from(v.unbonding));
            p.status = Status::Left { epoch: e };
        }
        Ok(())
    }

    /// Honest parties' tokens taken over the run: stake slashed from honest providers and
    /// bonus paid to sybils that never earned it (out of the pot of those who did).
    pub(super) fn honest_wei_lost(&self) -> U256 {
        self.provs
            .iter()
            .filter(|p| p.behaviour == Behaviour::Honest)
            .fold(self.att.sybils.gained, |a, p| a + p.slashed_amount)
    }

    /// Whether anyone in the run plays an attacker.
    pub(super) fn has_attackers(&self) -> bool {
        let a = &self.sc.attacks;
        self.sc.oracles.liars > 0
            || a.griefer.is_some()
            || a.bonus_sybils.is_some()
            || a.grinder.is_some()
            || self.provs.iter().any(|p| matches!(p.behaviour, Behaviour::Leaver { .. } | Behaviour::ProbeAware { .. }))
    }

    /// Every account the attackers hold tokens or stake in (for the conservation check).
    pub(super) fn attacker_accounts(&self) -> (Vec<Address>, Vec<u32>) {
        let mut accounts = Vec::new();
        if self.sc.attacks.griefer.is_some() {
            accounts.push(self.att.grief.addr);
        }
        accounts.extend(self.att.sybils.ids.iter().map(|&(_, a)| a));
        (accounts, self.att.sybils.ids.iter().map(|&(id, _)| id).collect())
    }

    /// The books of every strategy present in the run.
    pub(super) fn outcomes(&mut self) -> Result<Vec<AttackOutcome>, SimError> {
        let mut out = Vec::new();
        let honest_slashed =
            |s: &Self| s.provs.iter().filter(|p| p.behaviour == Behaviour::Honest && p.slashes > 0).count() as u64;
        let honest_lost = |s: &Self| {
            s.provs.iter().filter(|p| p.behaviour == Behaviour::Honest).fold(U256::ZERO, |a, p| a + p.slashed_amount)
        };
        let sum = |it: &mut dyn Iterator<Item = U256>| it.fold(U256::ZERO, |a, b| a + b);

        // The sybil oracle coalition and its censoring submitter.
        let liars: Vec<Address> =
            self.oracles.iter().filter(|o| o.kind == OracleKind::Liar).map(|o| o.key.address()).collect();
        if !liars.is_empty() {
            let mut gained = U256::ZERO;
            for a in &liars {
                gained += self.chain.market_view(&M::balanceOfCall { account: *a })?;
            }
            let stake = U256::from(self.params.minOracleStake) * U256::from(liars.len());
            let share = liars.len() as f64 / self.oracles.len() as f64 * 100.0;
            let cheaters_slashed =
                self.provs.iter().filter(|p| p.behaviour != Behaviour::Honest && p.slashes > 0).count();
            let hs = honest_slashed(self);
            out.push(AttackOutcome {
                strategy: format!(
                    "sybil oracle coalition: {} of {} oracles ({share:.1}% of the stake), lying {:?}; as submitter it picks every member and the fewest honest signers",
                    liars.len(),
                    self.oracles.len(),
                    self.sc.oracles.lie
                ),
                attackers: liars.len() as u64,
                gas_spent: 0,
                tokens_locked: stake.to_string(),
                tokens_lost: "0".into(),
                tokens_gained: gained.to_string(),
                destroyed: honest_lost(self).to_string(),
                honest_slashed: hs,
                honest_wei_lost: honest_lost(self).to_string(),
                finding: if hs == 0 {
                    format!(
                        "no honest provider slashed; {cheaters_slashed} cheaters slashed all the same: its members never hold half of a quorum's stake below a third of all stake, so every median is an honest reading; it earns only the report rewards it would earn honestly"
                    )
                } else {
                    format!("{hs} honest providers slashed: at {share:.1}% of the stake its members are half of a quorum it picks")
                },
            });
        }

        // The adaptive cheater.
        let adaptive: Vec<usize> = (0..self.provs.len())
            .filter(|&i| matches!(self.provs[i].behaviour, Behaviour::ProbeAware { .. }))
            .collect();
        if !adaptive.is_empty() {
            let caught = adaptive.iter().filter(|&&i| self.provs[i].slashes > 0).count();
            let gained = sum(&mut adaptive.iter().map(|&i| self.provs[i].claimed + self.provs[i].bonus));
            let lost = sum(&mut adaptive.iter().map(|&i| self.provs[i].slashed_amount));
            out.push(AttackOutcome {
                strategy: "adaptive cheater: half its SLA rate to clients, the full rate to sessions opened by a registered oracle (the signal: SessionOpened's client)".into(),
                attackers: adaptive.len() as u64,
                gas_spent: 0,
                tokens_locked: "0".into(),
                tokens_lost: lost.to_string(),
                tokens_gained: gained.to_string(),
                destroyed: "0".into(),
                honest_slashed: 0,
                honest_wei_lost: "0".into(),
                finding: format!("{caught} of {} caught", adaptive.len()),
            });
        }

        // The leaver.
        let leavers: Vec<usize> =
            (0..self.provs.len()).filter(|&i| matches!(self.provs[i].behaviour, Behaviour::Leaver { .. })).collect();
        if !leavers.is_empty() {
            let left: Vec<usize> = leavers.iter().copied().filter(|&i| self.provs[i].left_with.is_some()).collect();
            let slashed_after = left.iter().filter(|&&i| !self.provs[i].slashed_after_leaving.is_zero()).count();
            let lost = sum(&mut leavers.iter().map(|&i| self.provs[i].slashed_amount));
            let gained = sum(&mut leavers.iter().map(|&i| self.provs[i].claimed + self.provs[i].bonus));
            let mut escaped = U256::ZERO;
            for &i in &left {
                if self.provs[i].slashed_after_leaving.is_zero() {
                    escaped += self.provs[i].left_with.unwrap_or_default();
                }
            }
            out.push(AttackOutcome {
                strategy: "leaver: delivers part of its SLA and, when a probe comes with its slash one violation away, closes its sessions and leaves before the report".into(),
                attackers: leavers.len() as u64,
                gas_spent: self.att.leave_gas,
                tokens_locked: sum(&mut left.iter().map(|&i| self.provs[i].left_with.unwrap_or_default())).to_string(),
                tokens_lost: lost.to_string(),
                tokens_gained: gained.to_string(),
                destroyed: "0".into(),
                honest_slashed: 0,
                honest_wei_lost: "0".into(),
                finding: format!(
                    "{} left before their slash; {slashed_after} of them slashed anyway out of their unbonding stake (the report judges the epoch it left in); stake that escaped a due slash: {escaped} wei",
                    left.len()
                ),
            });
        }

        // The capacity griefer.
        if self.sc.attacks.griefer.is_some() {
            let g = &self.att.grief;
            let targets = g.targets.clone();
            // The control group: as many honest providers that were not targets.
            let control: Vec<usize> = (0..self.provs.len())
                .filter(|&i| self.provs[i].behaviour == Behaviour::Honest && !targets.contains(&i))
                .take(targets.len())
                .collect();
            let earn = |s: &Self, v: &[usize]| sum(&mut v.iter().map(|&i| s.provs[i].claimed + s.provs[i].bonus));
            let (t, c) = (earn(self, &targets), earn(self, &control));
            let destroyed = c.saturating_sub(t);
            let hs = targets.iter().filter(|&&i| self.provs[i].slashes > 0).count() as u64;
            let lost = sum(&mut targets.iter().map(|&i| self.provs[i].slashed_amount));
            out.push(AttackOutcome {
                strategy: format!(
                    "capacity griefer: keeps {} honest providers full with sessions at the minimum deposit that never carry a byte",
                    targets.len()
                ),
                attackers: 1,
                gas_spent: g.gas,
                tokens_locked: g.max_locked.to_string(),
                tokens_lost: g.fees.to_string(),
                tokens_gained: "0".into(),
                destroyed: destroyed.to_string(),
                honest_slashed: hs,
                honest_wei_lost: lost.to_string(),
                finding: format!(
                    "{} sessions opened ({} gas); every target closed them after an epoch ({} gas of their own) and kept the deposit floor as a no-show fee ({} wei in all); the targets earned {t} wei (sales, no-show fees and bonus) against {c} for as many untouched honest providers; a full provider cannot be probed, so it is never judged (not slashed, no bonus)",
                    g.opened, g.gas, g.honest_close_gas, g.fees
                ),
            });
        }

        // Late sybil bonus claimants.
        if self.sc.attacks.bonus_sybils.is_some() {
            let b = &self.att.sybils;
            out.push(AttackOutcome {
                strategy: format!(
                    "late sybil bonus claimants: {} providers registered in the last epoch of a period, claiming its bonus with no leaf or another provider's",
                    b.ids.len()
                ),
                attackers: b.ids.len() as u64,
                gas_spent: b.gas,
                tokens_locked: b.stake.to_string(),
                tokens_lost: "0".into(),
                tokens_gained: b.gained.to_string(),
                destroyed: b.gained.to_string(),
                honest_slashed: 0,
                honest_wei_lost: b.gained.to_string(),
                finding: format!("{} of {} claims refused", b.refused, b.attempts),
            });
        }

        // The seed grinder.
        if let Some(gr) = self.sc.attacks.grinder.clone() {
            let b = &self.att.grind;
            let rate = |a: u64, n: u64| if n == 0 { 0.0 } else { a as f64 / n as f64 };
            let (f, o) = (rate(b.friend_audits, b.friend_slots), rate(b.other_audits, b.other_slots));
            out.push(AttackOutcome {
                strategy: format!(
                    "seed grinder: always begins the epoch and picks among {} blocks the draw with the fewest of group {}; {}",
                    gr.blocks,
                    gr.friends,
                    if gr.knows_secret { "an oracle, so it knows the committed secret" } else { "not an oracle: it sees the chain's seed only" }
                ),
                attackers: 1,
                gas_spent: b.gas,
                tokens_locked: "0".into(),
                tokens_lost: "0".into(),
                tokens_gained: "0".into(),
                destroyed: "0".into(),
                honest_slashed: 0,
                honest_wei_lost: "0".into(),
                finding: format!(
                    "its friends were audited in {:.4} of their epochs against {:.4} for everyone else (nominal {:.4})",
                    f,
                    o,
                    f64::from(self.params.auditProbabilityBps) / 10_000.0
                ),
            });
        }
        Ok(out)
    }
}
