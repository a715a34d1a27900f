//! Full-device mode (`wirepact connect --tun`): a TUN device whose packets tun2proxy (a
//! user-space TCP/IP stack, ipstack) turns into connections to the client's own SOCKS5 port,
//! so applications need no proxy settings. TCP goes as SOCKS CONNECT, UDP as SOCKS UDP
//! ASSOCIATE (one tunnel stream per destination). DNS (UDP 53) has two modes ([`TunDns`]):
//! `virtual` answers queries inside with placeholder addresses and sends the names to the
//! provider inside each SOCKS request (the provider resolves them); `tunnel` sends each query
//! as UDP through the tunnel to the resolver it was addressed to (a private resolver, such as
//! the LAN's router, which the provider cannot reach, is replaced by `tun_dns_server`).
//! Either way nothing leaks to the local network.
//!
//! Two targets:
//! - **a network namespace** (`tun_netns`): the device is created here, moved into the
//!   namespace and made its default route, so everything in the namespace goes through the
//!   provider while this process (its chain RPC and its tunnels) stays outside. No loops by
//!   construction; the namespace's own loopback is left as it is.
//! - **the whole device**: tun2proxy's own setup (routes through the device, a bypass for
//!   every provider endpoint and the RPC host, resolv.conf pointed at the virtual DNS),
//!   undone on a clean stop.
//!
//! Needs root (or CAP_NET_ADMIN) and `/dev/net/tun`; the namespace target also needs `ip`
//! (iproute2), which is also what makes named namespaces.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;

/// Where the device's traffic comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunTarget {
    /// Every connection of this machine, but those to `bypass`.
    Device { bypass: Vec<IpAddr> },
    /// Every connection made inside this named network namespace (`ip netns add NAME`).
    Netns(String),
}

pub use crate::{TunDns, DEFAULT_DNS_SERVER};

/// Address the device gets (inside the namespace, or here).
pub const TUN_ADDRESS: &str = "10.0.0.33/24";
const MTU: u16 = 1500;

#[derive(Debug, thiserror::Error)]
pub enum TunError {
    #[error("network namespace {0:?} does not exist: create it with `ip netns add {0}`")]
    NoNamespace(String),
    #[error("cannot create the TUN device {name:?}: {source} (full-device mode needs root or CAP_NET_ADMIN and /dev/net/tun)")]
    Device { name: String, source: std::io::Error },
    #[error("`{command}` failed: {message}")]
    Setup { command: String, message: String },
    #[error("the packet stack stopped: {0}")]
    Stack(String),
}

/// Runs `ip ARGS`; its stderr is the error.
fn ip(args: &[&str]) -> Result<(), TunError> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| TunError::Setup { command: command.clone(), message: format!("{e} (is iproute2 installed?)") })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(TunError::Setup { command, message: String::from_utf8_lossy(&out.stderr).trim().to_owned() })
    }
}

fn namespace_exists(name: &str) -> bool {
    !name.is_empty()
        && !name.contains('/')
        && ["/run/netns", "/var/run/netns"].iter().any(|d| Path::new(d).join(name).exists())
}

fn stack_args(proxy: SocketAddr, dns: TunDns, dns_server: IpAddr) -> Result<tun2proxy::Args, TunError> {
    let url = format!("socks5://{proxy}");
    let proxy =
        tun2proxy::ProxyParameters::try_from(url.as_str()).map_err(|e| TunError::Stack(format!("{url}: {e}")))?;
    let mut args = tun2proxy::Args::default();
    match dns {
        TunDns::Virtual => args.proxy(proxy).dns(tun2proxy::ArgDns::Virtual),
        TunDns::Tunnel => args.proxy(proxy).dns(tun2proxy::ArgDns::Direct).dns_addr(dns_server),
    };
    Ok(args)
}

/// A full-device route, set up and ready to run.
pub struct FullDevice {
    run: std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), TunError>> + Send>>,
    stop: tun2proxy::CancellationToken,
}

impl std::fmt::Debug for FullDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FullDevice").finish_non_exhaustive()
    }
}

impl FullDevice {
    /// Creates the device `name` and routes `target` through the SOCKS port `proxy`.
    /// Errors say what is missing; nothing is left configured after an error (the device
    /// disappears with its file descriptor).
    ///
    /// # Errors
    /// A missing namespace, no permission for TUN devices, a failing `ip` command.
    pub async fn setup(
        name: &str,
        target: TunTarget,
        proxy: SocketAddr,
        dns: TunDns,
        dns_server: IpAddr,
    ) -> Result<Self, TunError> {
        let stop = tun2proxy::CancellationToken::new();
        let args = stack_args(proxy, dns, dns_server)?;
        let run: std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), TunError>> + Send>> = match target {
            TunTarget::Netns(ns) => {
                if !namespace_exists(&ns) {
                    return Err(TunError::NoNamespace(ns));
                }
                let mut cfg = tun::Configuration::default();
                cfg.tun_name(name).mtu(MTU);
                let device = tun::create_as_async(&cfg)
                    .map_err(|e| TunError::Device { name: name.to_owned(), source: std::io::Error::other(e) })?;
                ip(&["link", "set", name, "netns", &ns])?;
                ip(&["-n", &ns, "addr", "add", TUN_ADDRESS, "dev", name])?;
                ip(&["-n", &ns, "link", "set", name, "up"])?;
                ip(&["-n", &ns, "route", "replace", "default", "dev", name])?;
                tracing::info!(device = name, namespace = %ns, "network namespace routed through the tunnel");
                let token = stop.clone();
                Box::pin(async move {
                    tun2proxy::run(device, MTU, args, token)
                        .await
                        .map(|_| ())
                        .map_err(|e| TunError::Stack(e.to_string()))
                })
            }
            TunTarget::Device { bypass } => {
                let mut args = args;
                args.tun(name.to_owned()).setup(true);
                for b in bypass {
                    let host = if b.is_ipv4() { format!("{b}/32") } else { format!("{b}/128") };
                    args.bypass(host.parse().map_err(|e| TunError::Stack(format!("bypass {b}: {e}")))?);
                }
                tracing::info!(device = name, "whole device routed through the tunnel (restored at a clean stop)");
                let token = stop.clone();
                Box::pin(async move {
                    tun2proxy::general_run_async(args, MTU, false, token)
                        .await
                        .map(|_| ())
                        .map_err(|e| TunError::Stack(e.to_string()))
                })
            }
        };
        Ok(Self { run, stop })
    }

    /// Runs until the stack fails (an error) or [`FullDevice::stopper`] is cancelled.
    ///
    /// # Errors
    /// The packet stack stopped on its own.
    pub async fn run(self) -> Result<(), TunError> {
        self.run.await
    }

    /// Cancelling this stops the stack (and undoes the whole-device setup).
    #[must_use]
    pub fn stopper(&self) -> tun2proxy::CancellationToken {
        self.stop.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_odd_namespace_name_is_refused_before_anything_is_created() {
        assert!(!namespace_exists(""));
        assert!(!namespace_exists("../etc"));
        assert!(!namespace_exists("wirepact-no-such-namespace"));
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("rt");
        let r = rt.block_on(FullDevice::setup(
            "wptest0",
            TunTarget::Netns("wirepact-no-such-namespace".into()),
            "127.0.0.1:1080".parse().expect("addr"),
            TunDns::Virtual,
            DEFAULT_DNS_SERVER,
        ));
        let e = r.expect_err("no such namespace");
        assert!(e.to_string().contains("ip netns add wirepact-no-such-namespace"), "{e}");
    }
}
