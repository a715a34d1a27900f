//! `wirepact client status|stop`: talks to a running client's control endpoint.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum ClientCmd {
    /// What the running client is doing: sessions, bytes, spending against its caps.
    Status {
        /// Machine-readable output (amounts as exact decimal token strings).
        #[arg(long)]
        json: bool,
    },
    /// Stop the running client cleanly: final receipts, sessions closed on chain.
    Stop,
}

pub async fn run(cmd: ClientCmd, control: SocketAddr) -> Result<()> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let unreachable = || {
        format!("no client answers on {control}: is `wirepact connect` running with `control_listen = \"{control}\"` in its config (or pass --control)?")
    };
    match cmd {
        ClientCmd::Status { json } => {
            let v: serde_json::Value = http
                .get(format!("http://{control}/api/status"))
                .send()
                .await
                .with_context(unreachable)?
                .error_for_status()?
                .json()
                .await
                .context("the control endpoint's answer is not a client status")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", render(&v));
            }
            Ok(())
        }
        ClientCmd::Stop => {
            let r = http.post(format!("http://{control}/stop")).send().await.with_context(unreachable)?;
            if !r.status().is_success() {
                bail!("the client refused to stop: {}", r.text().await.unwrap_or_default());
            }
            println!("stopping: the client signs its final receipts and closes its sessions");
            Ok(())
        }
    }
}

/// The status as a person reads it.
fn render(v: &serde_json::Value) -> String {
    let s = |k: &serde_json::Value| k.as_str().map_or_else(|| k.to_string(), ToOwned::to_owned);
    let mut out = String::new();
    let accepting = v["accepting"].as_bool().unwrap_or(false);
    out.push_str(&format!(
        "proxy {} — {}\n",
        s(&v["proxy"]),
        if accepting { "accepting connections".to_string() } else { "REFUSING new connections".to_string() }
    ));
    if let Some(why) = v["capped"].as_str() {
        out.push_str(&format!("  {why}\n"));
    }
    for (name, l) in [("active ", &v["active"]), ("standby", &v["standby"])] {
        if l.is_null() {
            continue;
        }
        let (bytes, cap) = (l["bytes"].as_u64().unwrap_or(0), l["bytes_paid_for"].as_u64().unwrap_or(0));
        #[allow(clippy::cast_precision_loss)] // display only
        let pct = if cap == 0 || cap == u64::MAX { 0.0 } else { bytes as f64 * 100.0 / cap as f64 };
        out.push_str(&format!(
            "{name} provider {} at {} tokens/GiB: {} of the deposit's {} ({pct:.0} %), deposit {} tokens\n",
            l["provider"],
            s(&l["price_per_gib"]),
            human_bytes(bytes),
            human_bytes(cap),
            s(&l["deposit"]),
        ));
    }
    let sp = &v["spend"];
    let cap = |k: &str| sp[k].as_str().map_or_else(|| "no cap".to_string(), |c| format!("cap {c} tokens"));
    out.push_str(&format!(
        "spend   today {} tokens ({}), paid in all {} tokens ({}), locked in sessions {} tokens\n",
        s(&sp["today"]),
        cap("cap_per_day"),
        s(&sp["paid"]),
        cap("cap_total"),
        s(&sp["locked"]),
    ));
    out.push_str(&format!("failovers {}, renewals {}\n", v["failovers"], v["renewals"]));
    out
}

fn human_bytes(b: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // display only
    let f = b as f64;
    match b {
        u64::MAX => "unlimited".into(),
        0..1_048_576 => format!("{:.1} KiB", f / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", f / 1_048_576.0),
        _ => format!("{:.2} GiB", f / 1_073_741_824.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_client_says_why_it_refuses_and_what_it_spent() {
        let v = serde_json::json!({
            "proxy": "127.0.0.1:1080", "accepting": false, "capped": "spending cap reached: ...",
            "active": null, "standby": null, "failovers": 0, "renewals": 3,
            "spend": { "paid": "1.5", "locked": "0.5", "today": "2", "cap_per_day": "2", "cap_total": null },
        });
        let text = render(&v);
        assert!(text.contains("REFUSING new connections"), "{text}");
        assert!(text.contains("spending cap reached"), "{text}");
        assert!(
            text.contains(
                "today 2 tokens (cap 2 tokens), paid in all 1.5 tokens (no cap), locked in sessions 0.5 tokens"
            ),
            "{text}"
        );
    }
}
