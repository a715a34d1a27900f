//! `wirepact wallet`: the keys a user, provider or oracle signs with, as keystore v3 files
//! (the format `cast wallet` and geth read), without another tool.

use std::path::{Path, PathBuf};

use alloy::primitives::{utils::format_ether, Address, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use wirepact_chain::{load_keystore, Market, PasswordSource};
use wirepact_proto::format_tokens;

#[derive(Subcommand, Debug, Clone)]
pub enum WalletCmd {
    /// Create a new key and write it as an encrypted keystore v3 file.
    New {
        /// The file to write (refused if it exists).
        path: PathBuf,
        /// File whose first line is the new password (else $WIREPACT_PASSWORD, else asked twice).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Write an existing private key as an encrypted keystore v3 file. The key is read from
    /// $WIREPACT_PRIVATE_KEY or standard input, never from the command line (shell history).
    Import {
        path: PathBuf,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Print a keystore's address.
    Address {
        keystore: PathBuf,
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Gas money, tokens in the wallet and in the market for an address.
    Balance {
        account: Address,
        #[arg(long, env = "WIREPACT_RPC_URL", default_value = "http://127.0.0.1:8545")]
        rpc_url: String,
        /// With the market: its token and the market balance too.
        #[arg(long, env = "WIREPACT_MARKET")]
        market: Option<Address>,
    },
    /// Devnets only: mint the market's test token to ACCOUNT (the token `wirepact deploy`
    /// makes without --token; a real token refuses). Sent from $WIREPACT_PRIVATE_KEY.
    Faucet {
        account: Address,
        /// Tokens to mint.
        #[arg(default_value = "100")]
        amount: String,
        #[arg(long, env = "WIREPACT_RPC_URL", default_value = "http://127.0.0.1:8545")]
        rpc_url: String,
        #[arg(long, env = "WIREPACT_MARKET")]
        market: Address,
    },
}

fn source(password_file: Option<&PathBuf>) -> PasswordSource {
    match password_file {
        Some(f) => PasswordSource::File(f.clone()),
        None if std::env::var_os("WIREPACT_PASSWORD").is_some() => PasswordSource::Env("WIREPACT_PASSWORD".into()),
        None => PasswordSource::Prompt,
    }
}

/// A new password: from the file or env, else typed twice.
fn new_password(password_file: Option<&PathBuf>) -> Result<String> {
    let src = source(password_file);
    let pw = src.read()?;
    if matches!(src, PasswordSource::Prompt) && PasswordSource::Prompt.read()? != pw {
        bail!("the two passwords differ; nothing was written");
    }
    if pw.is_empty() {
        bail!("an empty password would leave the key readable by anyone who gets the file");
    }
    Ok(pw)
}

fn write(path: &Path, key: &PrivateKeySigner, password: &str) -> Result<()> {
    if path.exists() {
        bail!("{} exists; choose another name (nothing was overwritten)", path.display());
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).context("the keystore path needs a file name")?;
    let written = wirepact_chain::wallet::write_keystore(dir, name, key, password)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&written, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {} to its owner", written.display()))?;
    }
    println!("address {}", key.address());
    println!(
        "keystore {} (keep a copy and the password: neither can be recovered; the address needs a little of the chain's coin for gas)",
        written.display()
    );
    Ok(())
}

pub async fn run(cmd: WalletCmd) -> Result<()> {
    match cmd {
        WalletCmd::New { path, password_file } => {
            let pw = new_password(password_file.as_ref())?;
            write(&path, &PrivateKeySigner::random(), &pw)
        }
        WalletCmd::Import { path, password_file } => {
            let text = match std::env::var("WIREPACT_PRIVATE_KEY") {
                Ok(k) => k,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).context("reading the private key from standard input")?;
                    line
                }
            };
            let key: PrivateKeySigner =
                text.trim().parse().context("that is not a hex private key (64 hex digits, 0x optional)")?;
            let pw = new_password(password_file.as_ref())?;
            write(&path, &key, &pw)
        }
        WalletCmd::Address { keystore, password_file } => {
            let key = load_keystore(&keystore, &source(password_file.as_ref()))?;
            println!("{}", key.address());
            Ok(())
        }
        WalletCmd::Balance { account, rpc_url, market } => {
            let rpc = wirepact_chain::market::connect(&rpc_url).with_context(|| format!("connecting to {rpc_url}"))?;
            let coin = rpc
                .get_balance(account)
                .await
                .with_context(|| format!("reading the balance of {account} at {rpc_url}"))?;
            println!("gas money    {} (the chain's coin)", format_ether(coin));
            if let Some(m) = market {
                let view = crate::read_only(&rpc_url, m).await?;
                let wallet = view.token_balance(account).await?;
                let inside = view.balance_of(account).await?;
                println!("wallet       {}", wirepact_proto::token_text(wallet));
                println!("market       {} tokens (`wirepact withdraw` moves it to the wallet)", format_tokens(inside));
            }
            if coin == U256::ZERO {
                println!("no gas money: every transaction needs some; send a little of the chain's coin to {account}");
            }
            Ok(())
        }
        WalletCmd::Faucet { account, amount, rpc_url, market } => {
            let key: PrivateKeySigner = std::env::var("WIREPACT_PRIVATE_KEY")
                .context("the faucet sends from $WIREPACT_PRIVATE_KEY (on a devnet, any of its dev keys)")?
                .trim()
                .parse()
                .context("WIREPACT_PRIVATE_KEY is not a hex private key")?;
            let amount = wirepact_proto::parse_tokens(&amount)?;
            let m = wirepact_chain::AlloyMarket::connect(&rpc_url, market, key, wirepact_chain::SendPolicy::default())
                .await
                .with_context(|| format!("no market at {market} on {rpc_url}"))?;
            m.mint_test_tokens(account, amount).await.with_context(|| {
                "the market's token did not mint: only the test token of a devnet deployment (`wirepact deploy` without --token) has a faucet"
            })?;
            println!("minted {} tokens to {account}", format_tokens(amount));
            Ok(())
        }
    }
}
