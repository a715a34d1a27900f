//! Lifecycle commands: what a provider or oracle operator does between runs of the daemon
//! (stake, unstake, withdraw what unbonded, unjail, pause, leave) and what anyone does with
//! the market balance (withdraw). Each checks on chain what the market would refuse first and
//! says in tokens what is missing and which command gets it.

use alloy::primitives::{Address, U256};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use wirepact_chain::bindings::{oracle_status, provider_status};
use wirepact_chain::{AlloyMarket, Market, SendPolicy};
use wirepact_proto::{format_tokens, parse_tokens, ProviderId};

/// Where the market is and which key signs.
#[derive(Args, Debug, Clone)]
pub struct ChainArgs {
    /// The chain's JSON-RPC endpoint.
    #[arg(long, env = "WIREPACT_RPC_URL", default_value = "http://127.0.0.1:8545", global = true)]
    pub rpc_url: String,
    /// The market contract's address.
    #[arg(long, env = "WIREPACT_MARKET", global = true)]
    pub market: Option<Address>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ProviderAction {
    /// Add AMOUNT tokens from the wallet to the provider's stake.
    Stake { amount: String },
    /// Start unbonding AMOUNT tokens of stake (what stays must cover the minimum).
    Unstake { amount: String },
    /// Move the stake that finished unbonding to the market balance (then `wirepact withdraw`).
    WithdrawUnbonded,
    /// End a jail that is over (the stake must cover the minimum again).
    Unjail,
    /// Stop taking new client sessions (open ones carry on; oracles still probe).
    Pause,
    /// Take new client sessions again.
    Resume,
    /// Leave the market: no session may be open; all stake starts unbonding.
    Leave,
}

#[derive(Debug, Clone, Copy)]
pub enum OracleAction {
    Leave,
    Withdraw,
}

fn tokens(v: U256) -> String {
    format!("{} tokens", format_tokens(v))
}

fn amount(text: &str) -> Result<U256> {
    let v = parse_tokens(text).with_context(|| format!("{text:?} is not an amount of tokens (like 12.5)"))?;
    if v.is_zero() {
        bail!("the amount must be more than 0");
    }
    Ok(v)
}

async fn connect(chain: &ChainArgs, signer: alloy::signers::local::PrivateKeySigner) -> Result<AlloyMarket> {
    let Some(market) = chain.market else {
        bail!("which market? pass --market ADDRESS (or set WIREPACT_MARKET)");
    };
    let policy = SendPolicy { confirm_timeout: std::time::Duration::from_secs(120), ..SendPolicy::default() };
    AlloyMarket::connect(&chain.rpc_url, market, signer, policy)
        .await
        .with_context(|| format!("connecting to the market {market} at {}", chain.rpc_url))
}

/// When a unix time comes, said as a person reads it: "in 1 h 05 min".
fn in_how_long(at: u64, now: u64) -> String {
    let s = at.saturating_sub(now);
    if s >= 3600 {
        format!("in {} h {:02} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("in {} min", s.div_ceil(60))
    } else {
        format!("in {s} s")
    }
}

pub async fn provider(
    chain: &ChainArgs,
    signer: alloy::signers::local::PrivateKeySigner,
    id: Option<u32>,
    action: &ProviderAction,
) -> Result<()> {
    let m = connect(chain, signer).await?;
    let id = match id {
        Some(id) => ProviderId(id),
        None => m
            .provider_id_of(m.account())
            .await?
            .with_context(|| format!("the key {} owns no provider here; pass --provider ID", m.account()))?,
    };
    let p = m.provider(id).await?;
    if p.owner != m.account() {
        bail!("provider {} is owned by {}, not by this key ({})", id.0, p.owner, m.account());
    }
    let minimum = m.min_provider_stake(p.capacityMbps).await?;
    let stake = U256::from(p.stake);
    let unbonding = U256::from(p.unbonding);
    match action {
        ProviderAction::Stake { amount: a } => {
            let a = amount(a)?;
            let wallet = m.token_balance(m.account()).await?;
            if wallet < a {
                bail!(
                    "the wallet {} holds {}; staking {} needs {} more",
                    m.account(),
                    tokens(wallet),
                    tokens(a),
                    tokens(a - wallet)
                );
            }
            m.add_stake(id, a).await?;
            println!(
                "provider {}: staked {} more, {} in all (the minimum is {})",
                id.0,
                tokens(a),
                tokens(stake + a),
                tokens(minimum)
            );
        }
        ProviderAction::Unstake { amount: a } => {
            let a = amount(a)?;
            if a > stake {
                bail!("provider {} has {} staked; it cannot unstake {}", id.0, tokens(stake), tokens(a));
            }
            if stake - a < minimum {
                bail!(
                    "unstaking {} would leave {} staked, under the minimum of {} for {} Mbit/s: unstake at most {} (or `wirepact provider leave`)",
                    tokens(a),
                    tokens(stake - a),
                    tokens(minimum),
                    p.capacityMbps,
                    tokens(stake - minimum)
                );
            }
            m.request_unstake(id, a).await?;
            let ready = m.provider(id).await?.unbondingReadyAt;
            let now = m.block_timestamp().await?;
            println!(
                "provider {}: {} unbonding ({} in all), withdrawable {} with `wirepact provider withdraw-unbonded`",
                id.0,
                tokens(a),
                tokens(unbonding + a),
                in_how_long(ready, now)
            );
        }
        ProviderAction::WithdrawUnbonded => {
            if unbonding.is_zero() {
                bail!(
                    "provider {} has nothing unbonding (start with `wirepact provider unstake AMOUNT` or `leave`)",
                    id.0
                );
            }
            let head = m.block_timestamp().await?;
            if head < p.unbondingReadyAt {
                bail!(
                    "{} are still unbonding: withdrawable {}",
                    tokens(unbonding),
                    in_how_long(p.unbondingReadyAt, head)
                );
            }
            m.withdraw_unbonded(id).await?;
            let balance = m.balance_of(m.account()).await?;
            println!("provider {}: {} moved to the market balance ({} there now; `wirepact withdraw` sends it to the wallet)", id.0, tokens(unbonding), tokens(balance));
        }
        ProviderAction::Unjail => {
            if p.status != provider_status::JAILED {
                bail!("provider {} is not jailed (it is {})", id.0, status_name(p.status));
            }
            let epoch = m.current_epoch().await?;
            if epoch < u64::from(p.jailedUntilEpoch) {
                let params = m.params().await?;
                let genesis = m.genesis().await?;
                let at = genesis + u64::from(p.jailedUntilEpoch) * params.epochLength;
                bail!(
                    "provider {} is jailed until epoch {} (now {}): unjail {}",
                    id.0,
                    p.jailedUntilEpoch,
                    epoch,
                    in_how_long(at, m.block_timestamp().await?)
                );
            }
            if stake < minimum {
                bail!(
                    "unjail needs a stake of at least {} (you have {}): `wirepact provider stake {}` first",
                    tokens(minimum),
                    tokens(stake),
                    format_tokens(minimum - stake)
                );
            }
            m.unjail(id).await?;
            println!("provider {}: unjailed; it takes sessions again", id.0);
        }
        ProviderAction::Pause | ProviderAction::Resume => {
            let pause = matches!(action, ProviderAction::Pause);
            if p.status == provider_status::LEFT {
                bail!("provider {} has left the market", id.0);
            }
            m.set_paused(id, pause).await?;
            if pause {
                println!(
                    "provider {}: paused; no new client sessions ({} Mbit/s still open carry on)",
                    id.0, p.committedMbps
                );
            } else {
                println!("provider {}: takes new client sessions again", id.0);
            }
        }
        ProviderAction::Leave => {
            if p.status == provider_status::LEFT {
                bail!("provider {} has already left", id.0);
            }
            if p.committedMbps != 0 {
                bail!(
                    "provider {} still has {} Mbit/s of sessions open: `wirepact provider pause`, wait for them to end (or close them from the node), then leave",
                    id.0,
                    p.committedMbps
                );
            }
            m.leave(id).await?;
            let ready = m.provider(id).await?.unbondingReadyAt;
            println!(
                "provider {}: left the market; {} unbonding, withdrawable {} with `wirepact provider withdraw-unbonded` (reports of its last epochs can still slash it until then)",
                id.0,
                tokens(stake + unbonding),
                in_how_long(ready, m.block_timestamp().await?)
            );
        }
    }
    Ok(())
}

fn status_name(s: u8) -> &'static str {
    match s {
        provider_status::ACTIVE => "active",
        provider_status::JAILED => "jailed",
        provider_status::LEFT => "gone (left the market)",
        _ => "not registered",
    }
}

pub async fn oracle(
    chain: &ChainArgs,
    signer: alloy::signers::local::PrivateKeySigner,
    action: &OracleAction,
) -> Result<()> {
    let m = connect(chain, signer).await?;
    let o = m.oracle(m.account()).await?;
    match action {
        OracleAction::Leave => {
            if o.status != oracle_status::ACTIVE {
                bail!("{} is not an active oracle", m.account());
            }
            m.request_oracle_leave().await?;
            let o = m.oracle(m.account()).await?;
            println!(
                "oracle {}: leaving; it signs through epoch {}, and its {} are withdrawable {} with `wirepact oracle withdraw`",
                m.account(),
                o.untilEpoch,
                tokens(U256::from(o.stake)),
                in_how_long(o.unbondingReadyAt, m.block_timestamp().await?)
            );
        }
        OracleAction::Withdraw => {
            if o.status != oracle_status::LEAVING {
                bail!("{} has no oracle stake unbonding (start with `wirepact oracle leave`)", m.account());
            }
            let head = m.block_timestamp().await?;
            if head < o.unbondingReadyAt {
                bail!(
                    "the oracle stake of {} is still unbonding: withdrawable {}",
                    tokens(U256::from(o.stake)),
                    in_how_long(o.unbondingReadyAt, head)
                );
            }
            m.withdraw_oracle_stake().await?;
            println!(
                "oracle {}: {} moved to the market balance (`wirepact withdraw` sends it to the wallet)",
                m.account(),
                tokens(U256::from(o.stake))
            );
        }
    }
    Ok(())
}

/// Sends AMOUNT (or the whole market balance) to the wallet.
pub async fn withdraw(
    chain: &ChainArgs,
    signer: alloy::signers::local::PrivateKeySigner,
    amount_text: Option<&str>,
) -> Result<()> {
    let m = connect(chain, signer).await?;
    let balance = m.balance_of(m.account()).await?;
    let a = match amount_text {
        Some(t) => amount(t)?,
        None => balance,
    };
    if balance.is_zero() {
        bail!("the market balance of {} is empty (stake that unbonded needs `wirepact provider withdraw-unbonded` or `wirepact oracle withdraw` first)", m.account());
    }
    if a > balance {
        bail!("the market balance of {} is {}; it cannot withdraw {}", m.account(), tokens(balance), tokens(a));
    }
    m.withdraw(a).await?;
    let wallet = m.token_balance(m.account()).await?;
    println!("withdrew {} to the wallet {} ({} there now)", tokens(a), m.account(), tokens(wallet));
    Ok(())
}
