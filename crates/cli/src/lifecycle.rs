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
    wirepact_proto::token_text(v)
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

/// `wirepact status`: an account's money (wallet, market balance, what its sessions lock and
/// what comes back), and its provider's and oracle's standing, in tokens.
pub async fn status(rpc_url: &str, market: Address, account: Address, json: bool, from_block: u64) -> Result<()> {
    use wirepact_chain::bindings::session_status;
    let m = crate::read_only(rpc_url, market).await?;
    let params = m.params().await?;
    let epoch = m.current_epoch().await?;
    let head = m.block_timestamp().await?;
    let wallet = m.token_balance(account).await?;
    let balance = m.balance_of(account).await?;

    // Sessions this account opened as a client: locked while open, refundable while closing.
    let last = m.block_number().await?;
    let mut locked = U256::ZERO;
    let mut open = 0u32;
    let mut refundable = U256::ZERO;
    let mut closing = 0u32;
    let mut refundable_at = 0u64;
    for t in m.sessions_opened_by(account, from_block, last).await? {
        let s = m.session(t.session_id()).await?;
        let left = U256::from(t.deposit).saturating_sub(U256::from(s.paid));
        if s.status == session_status::OPEN {
            locked += left;
            open += 1;
        } else if s.status == session_status::CLOSING {
            refundable += left;
            closing += 1;
            refundable_at = refundable_at.max(u64::from(s.closedAt) + params.claimGrace);
        }
    }

    let mut v = serde_json::json!({
        "account": account,
        "epoch": epoch,
        "wallet": format_tokens(wallet),
        "market_balance": format_tokens(balance),
        "sessions": {
            "open": open,
            "locked": format_tokens(locked),
            "closing": closing,
            "refundable": format_tokens(refundable),
            "refundable_at": (closing > 0).then_some(refundable_at),
        },
    });
    let mut text = vec![
        format!("account {account} (epoch {epoch})"),
        format!("wallet          {}", tokens(wallet)),
        format!("market balance  {} (`wirepact withdraw` sends it to the wallet)", tokens(balance)),
    ];
    if open > 0 || closing > 0 {
        let mut line = format!("in sessions     {} locked in {open} open session(s)", tokens(locked));
        if closing > 0 {
            line.push_str(&format!(
                "; {} coming back from {closing} closed one(s), {} (the client's next start settles them)",
                tokens(refundable),
                if refundable_at <= head { "now".to_string() } else { in_how_long(refundable_at, head) }
            ));
        }
        text.push(line);
    }

    if let Some(id) = m.provider_id_of(account).await? {
        let p = m.provider(id).await?;
        let minimum = m.min_provider_stake(p.capacityMbps).await?;
        let genesis = m.genesis().await?;
        let (recent, window) = wirepact_chain::violations_in_window(&p, &params, epoch);
        let standing = match p.status {
            provider_status::JAILED if epoch < u64::from(p.jailedUntilEpoch) => format!(
                "jailed until epoch {} ({}; then `wirepact provider unjail`)",
                p.jailedUntilEpoch,
                in_how_long(genesis + u64::from(p.jailedUntilEpoch) * params.epochLength, head)
            ),
            provider_status::JAILED => "jailed; the jail is over: `wirepact provider unjail`".to_string(),
            s => status_name(s).to_string(),
        };
        text.push(format!("provider {}      {standing}{}", id.0, if p.paused { ", paused" } else { "" }));
        let mut stake_line = format!("  stake {} (minimum {})", tokens(U256::from(p.stake)), tokens(minimum));
        if p.unbonding > 0 {
            stake_line.push_str(&format!(
                ", {} unbonding ({})",
                tokens(U256::from(p.unbonding)),
                if head >= p.unbondingReadyAt {
                    "withdrawable now: `wirepact provider withdraw-unbonded`".to_string()
                } else {
                    format!("withdrawable {}", in_how_long(p.unbondingReadyAt, head))
                }
            ));
        }
        text.push(stake_line);
        text.push(format!(
            "  sold {} of {} Mbit/s; violations: {recent} in the last {window} epochs ({} slash)",
            p.committedMbps, p.capacityMbps, params.violationsToSlash
        ));
        text.push(format!(
            "  earned, not yet collected: {} (the node collects it; the protocol fee is taken then)",
            tokens(p.earned)
        ));
        v["provider"] = serde_json::json!({
            "id": id.0,
            "status": status_name(p.status),
            "jailed_until_epoch": (p.status == provider_status::JAILED).then_some(p.jailedUntilEpoch),
            "paused": p.paused,
            "stake": format_tokens(U256::from(p.stake)),
            "minimum_stake": format_tokens(minimum),
            "unbonding": format_tokens(U256::from(p.unbonding)),
            "unbonding_ready_at": (p.unbonding > 0).then_some(p.unbondingReadyAt),
            "committed_mbps": p.committedMbps,
            "capacity_mbps": p.capacityMbps,
            "violations_in_window": recent,
            "window_epochs": window,
            "violations_to_slash": params.violationsToSlash,
            "earned": format_tokens(p.earned),
        });
    }
    let o = m.oracle(account).await?;
    if o.status != oracle_status::NONE {
        let what = match o.status {
            oracle_status::ACTIVE => "active".to_string(),
            oracle_status::LEAVING if head >= o.unbondingReadyAt => {
                "leaving; the stake is withdrawable now: `wirepact oracle withdraw`".to_string()
            }
            oracle_status::LEAVING => {
                format!("leaving; the stake is withdrawable {}", in_how_long(o.unbondingReadyAt, head))
            }
            _ => "slashed for equivocation".to_string(),
        };
        text.push(format!("oracle          {what}, stake {}", tokens(U256::from(o.stake))));
        v["oracle"] = serde_json::json!({
            "status": match o.status { oracle_status::ACTIVE => "active", oracle_status::LEAVING => "leaving", _ => "slashed" },
            "stake": format_tokens(U256::from(o.stake)),
            "unbonding_ready_at": (o.status == oracle_status::LEAVING).then_some(o.unbondingReadyAt),
        });
    }
    if json {
        println!("{v}");
    } else {
        for l in text {
            println!("{l}");
        }
    }
    Ok(())
}
