//! What a provider lets its clients reach. By default nothing on the provider's own side:
//! loopback, private, link-local, CGNAT, multicast and unspecified ranges are refused, so a
//! client cannot use the tunnel to reach the provider's LAN or its metadata service. An
//! explicit allow-list opens specific networks (the devnet's loopback origin).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a network: {0:?} (expected e.g. 127.0.0.0/8 or ::1/128)")]
pub struct CidrError(pub String);

impl std::str::FromStr for Cidr {
    type Err = CidrError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, p) = s.split_once('/').ok_or_else(|| CidrError(s.to_owned()))?;
        let addr: IpAddr = a.parse().map_err(|_| CidrError(s.to_owned()))?;
        let prefix: u8 = p.parse().map_err(|_| CidrError(s.to_owned()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(CidrError(s.to_owned()));
        }
        Ok(Self { addr, prefix })
    }
}

impl Cidr {
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u32::MAX << (32 - u32::from(self.prefix)) };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

fn v4_is_internal(a: Ipv4Addr) -> bool {
    let o = a.octets();
    a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_unspecified()
        || a.is_broadcast()
        || a.is_multicast()
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10 carrier-grade NAT
        || o[0] == 0
}

/// The IPv4 address in the last 32 bits of `s`.
fn low_v4(s: [u16; 8]) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]))
}

fn v6_is_internal(a: Ipv6Addr) -> bool {
    let s = a.segments();
    if let Some(v4) = a.to_ipv4_mapped() {
        return v4_is_internal(v4);
    }
    // IPv4-compatible ::a.b.c.d (deprecated; a stack may still carry it to the IPv4 address).
    if s[..6].iter().all(|&x| x == 0) {
        return true;
    }
    // NAT64: the well-known prefix 64:ff9b::/96 reaches its embedded IPv4 address, so it is
    // judged by that; the local-use prefix 64:ff9b:1::/48 can map to anything: refused.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return v4_is_internal(low_v4(s));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        return true;
    }
    // 6to4 (2002::/16) carries an IPv4 address in bits 16..48.
    if s[0] == 0x2002 {
        return v4_is_internal(Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2])));
    }
    a.is_loopback()
        || a.is_unspecified()
        || a.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10 (deprecated)
}

/// The provider's egress rule.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    allow: Vec<Cidr>,
}

impl EgressPolicy {
    /// Internal ranges refused, except those in `allow`.
    #[must_use]
    pub fn new(allow: Vec<Cidr>) -> Self {
        Self { allow }
    }

    /// Whether a connection to `ip` may be made.
    #[must_use]
    pub fn permits(&self, ip: IpAddr) -> bool {
        let internal = match ip {
            IpAddr::V4(a) => v4_is_internal(a),
            IpAddr::V6(a) => v6_is_internal(a),
        };
        !internal || self.allow.iter().any(|c| c.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_internal_ranges_by_default() {
        let p = EgressPolicy::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            // Reported: IPv4-compatible and NAT64 forms of internal addresses reached a dial.
            "::127.0.0.1",
            "::10.0.0.1",
            "::169.254.169.254",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::808:808",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
            "fec0::1",
        ] {
            assert!(!p.permits(ip.parse().expect("ip")), "{ip} should be refused");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700::1111", "64:ff9b::1.1.1.1", "2002:101:101::1"] {
            assert!(p.permits(ip.parse().expect("ip")), "{ip} should be allowed");
        }
    }

    #[test]
    fn allow_list_opens_only_what_it_names() {
        let p = EgressPolicy::new(vec!["127.0.0.0/8".parse().expect("cidr")]);
        assert!(p.permits("127.0.0.1".parse().expect("ip")));
        assert!(!p.permits("10.0.0.1".parse().expect("ip")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }
}
