//! What happens to this node's provider on chain, said in its log: each violation the oracles
//! record (with their median figures against the promise, and how close a slash is), a
//! slash, the jail and its end. With `auto_unjail` the node ends a finished jail itself when
//! the stake allows, and says once what stake is missing when it does not.

use std::sync::Arc;

use alloy::primitives::U256;
use wirepact_chain::bindings::{provider_status, WirepactMarket::WirepactMarketEvents as E};
use wirepact_chain::{AlloyMarket, ChainError, Market};
use wirepact_proto::{format_tokens, ProviderId};

use crate::dashboard::{Board, SlashRow, ViolationRow};

/// Follows the market's events for one provider.
#[derive(Debug)]
pub struct Standing<'a> {
    market: &'a AlloyMarket,
    id: ProviderId,
    auto_unjail: bool,
    next_block: Option<u64>,
    /// The jail's end epoch for which the missing stake was already reported.
    told_stake_for: Option<u32>,
    board: Option<Arc<Board>>,
}

impl<'a> Standing<'a> {
    #[must_use]
    pub fn new(market: &'a AlloyMarket, id: ProviderId, auto_unjail: bool) -> Self {
        Self { market, id, auto_unjail, next_block: None, told_stake_for: None, board: None }
    }

    /// Also keeps `board` (the dashboard's figures) up to date.
    #[must_use]
    pub fn with_board(mut self, board: Arc<Board>) -> Self {
        self.board = Some(board);
        self
    }

    /// Reads the events since the last pass (the first pass starts at the chain's head) and
    /// logs this provider's; then unjails if asked to and allowed.
    ///
    /// # Errors
    /// RPC failures (the next pass retries the same blocks).
    pub async fn pass(&mut self) -> Result<(), ChainError> {
        let head = self.market.block_number().await?;
        let from = *self.next_block.get_or_insert(head);
        if from <= head {
            let events = self.market.events(from, head).await?;
            for ev in &events {
                self.say(ev).await?;
            }
            if let Some(b) = &self.board {
                self.record(b, &events).await?;
            }
            self.next_block = Some(head + 1);
        }
        if let Some(b) = &self.board {
            let p = self.market.provider(self.id).await?;
            let params = self.market.params().await?;
            let epoch = self.market.current_epoch().await?;
            let minimum = self.market.min_provider_stake(p.capacityMbps).await?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            b.chain_state(p, params, epoch, minimum, now);
        }
        if self.auto_unjail {
            self.unjail_when_allowed().await?;
        }
        Ok(())
    }

    /// The dashboard's share of a batch of events: violations, slashes, audits (a reported
    /// epoch that audited this provider passed unless the batch has its violation), earnings.
    async fn record(&self, b: &Board, events: &[E]) -> Result<(), ChainError> {
        let mine = self.id.0;
        let mut violated = std::collections::HashSet::new();
        for ev in events {
            match ev {
                E::ProviderViolated(v) if v.providerId == mine => {
                    violated.insert(v.epoch);
                    b.violated(ViolationRow {
                        epoch: v.epoch,
                        reachable: v.reachable,
                        measured_mbps: f64::from(v.throughputKbps) / 1000.0,
                        measured_latency_ms: v.latencyMs,
                    });
                }
                E::ProviderSlashed(s) if s.providerId == mine => b.slashed(SlashRow {
                    epoch: s.epoch,
                    amount: format_tokens(s.amount),
                    jailed_until_epoch: s.jailedUntilEpoch,
                }),
                E::EarningsCollected(c) if c.providerId == mine => b.collected(c.amount),
                E::BonusClaimed(c) if c.providerId == mine => b.bonus(c.amount),
                _ => {}
            }
        }
        for ev in events {
            if let E::ReportAccepted(r) = ev {
                if self.market.is_audited(r.epoch, self.id).await? {
                    b.audited(!violated.contains(&r.epoch));
                }
            }
        }
        Ok(())
    }

    async fn say(&self, ev: &E) -> Result<(), ChainError> {
        match ev {
            E::ProviderViolated(v) if v.providerId == self.id.0 => {
                let p = self.market.provider(self.id).await?;
                let params = self.market.params().await?;
                let epoch = self.market.current_epoch().await?;
                let (recent, window) = wirepact_chain::violations_in_window(&p, &params, epoch);
                if v.reachable {
                    tracing::warn!(
                        epoch = v.epoch,
                        measured_mbps = f64::from(v.throughputKbps) / 1000.0,
                        measured_latency_ms = v.latencyMs,
                        promised_mbps = p.sessionMbps,
                        promised_latency_ms = p.maxLatencyMs,
                        "the oracles recorded a violation of this provider's SLA: {recent} in the last {window} epochs, a slash at {}",
                        params.violationsToSlash
                    );
                } else {
                    tracing::warn!(
                        epoch = v.epoch,
                        "the oracles recorded a violation: this provider was unreachable; {recent} in the last {window} epochs, a slash at {}",
                        params.violationsToSlash
                    );
                }
            }
            E::ProviderSlashed(s) if s.providerId == self.id.0 => {
                let p = self.market.provider(self.id).await?;
                tracing::error!(
                    epoch = s.epoch,
                    slashed = %wirepact_proto::token_text(s.amount),
                    stake_left = %wirepact_proto::token_text(U256::from(p.stake)),
                    jailed_until_epoch = s.jailedUntilEpoch,
                    "this provider was SLASHED for violating its SLA and is jailed: no new sessions until that epoch, then `wirepact provider unjail` (or `auto_unjail = true`)"
                );
            }
            E::ProviderUnjailed(u) if u.providerId == self.id.0 => {
                tracing::info!("this provider is out of jail and takes sessions again");
            }
            _ => {}
        }
        Ok(())
    }

    async fn unjail_when_allowed(&mut self) -> Result<(), ChainError> {
        let p = self.market.provider(self.id).await?;
        if p.status != provider_status::JAILED || self.market.current_epoch().await? < u64::from(p.jailedUntilEpoch) {
            return Ok(());
        }
        let minimum = self.market.min_provider_stake(p.capacityMbps).await?;
        let stake = U256::from(p.stake);
        if stake < minimum {
            if self.told_stake_for != Some(p.jailedUntilEpoch) {
                self.told_stake_for = Some(p.jailedUntilEpoch);
                tracing::warn!(
                    "the jail is over but the stake ({} tokens) is under the minimum ({} tokens): `wirepact provider stake {}`, then the node unjails",
                    format_tokens(stake),
                    format_tokens(minimum),
                    format_tokens(minimum - stake)
                );
            }
            return Ok(());
        }
        self.market.unjail(self.id).await?;
        tracing::info!("the jail is over: unjailed (auto_unjail)");
        Ok(())
    }
}
