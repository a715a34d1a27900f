//! SOCKS5 (RFC 1928) CONNECT and UDP ASSOCIATE with no authentication, sans-IO: parse what
//! the app sent, say what to answer. Domain names are passed through unresolved so DNS happens at the
//! provider (no DNS leak from the client's machine).

use std::net::{Ipv4Addr, Ipv6Addr};

/// Where an app wants to go.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Ip(std::net::IpAddr, u16),
    Domain(String, u16),
}

impl Target {
    #[must_use]
    pub fn port(&self) -> u16 {
        match self {
            Target::Ip(_, p) | Target::Domain(_, p) => *p,
        }
    }

    /// Encodes for the tunnel's stream header: `kind u8 | addr | port u16 BE`
    /// (kind 1 = IPv4, 3 = domain with a length byte, 4 = IPv6, as in SOCKS5).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(24);
        match self {
            Target::Ip(std::net::IpAddr::V4(a), _) => {
                v.push(1);
                v.extend_from_slice(&a.octets());
            }
            Target::Ip(std::net::IpAddr::V6(a), _) => {
                v.push(4);
                v.extend_from_slice(&a.octets());
            }
            Target::Domain(d, _) => {
                v.push(3);
                // Domains are at most 255 bytes by construction (parse_address refuses longer).
                v.push(u8::try_from(d.len()).unwrap_or(u8::MAX));
                v.extend_from_slice(&d.as_bytes()[..d.len().min(255)]);
            }
        }
        v.extend_from_slice(&self.port().to_be_bytes());
        v
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SocksError {
    #[error("need more bytes")]
    Incomplete,
    #[error("not SOCKS version 5 (got {0})")]
    Version(u8),
    #[error("the client offers no 'no authentication' method")]
    NoAcceptableMethod,
    #[error("command {0} is not supported (only CONNECT)")]
    Command(u8),
    #[error("address type {0} is not supported")]
    AddressType(u8),
    #[error("domain name is empty or not valid UTF-8")]
    BadDomain,
    #[error("fragmented UDP datagrams (fragment {0}) are not supported")]
    Fragment(u8),
}

/// The method-selection message: returns its length if it offers "no auth" (0x00).
pub fn parse_greeting(buf: &[u8]) -> Result<usize, SocksError> {
    let (&ver, rest) = buf.split_first().ok_or(SocksError::Incomplete)?;
    if ver != 5 {
        return Err(SocksError::Version(ver));
    }
    let (&n, methods) = rest.split_first().ok_or(SocksError::Incomplete)?;
    let n = usize::from(n);
    if methods.len() < n {
        return Err(SocksError::Incomplete);
    }
    if !methods[..n].contains(&0) {
        return Err(SocksError::NoAcceptableMethod);
    }
    Ok(2 + n)
}

/// Parses `kind | addr | port` (as in a SOCKS5 request after the 3-byte prefix, and the tunnel
/// stream header); returns the target and the bytes used.
pub fn parse_address(buf: &[u8]) -> Result<(Target, usize), SocksError> {
    let (&kind, rest) = buf.split_first().ok_or(SocksError::Incomplete)?;
    let (addr_len, skip) = match kind {
        1 => (4, 0),
        4 => (16, 0),
        3 => (usize::from(*rest.first().ok_or(SocksError::Incomplete)?), 1),
        other => return Err(SocksError::AddressType(other)),
    };
    let need = 1 + skip + addr_len + 2;
    if buf.len() < need {
        return Err(SocksError::Incomplete);
    }
    let a = &buf[1 + skip..1 + skip + addr_len];
    let port = u16::from_be_bytes([buf[need - 2], buf[need - 1]]);
    let target = match kind {
        1 => Target::Ip(Ipv4Addr::new(a[0], a[1], a[2], a[3]).into(), port),
        4 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(a);
            Target::Ip(Ipv6Addr::from(o).into(), port)
        }
        _ => {
            let d = std::str::from_utf8(a).map_err(|_| SocksError::BadDomain)?;
            if d.is_empty() {
                return Err(SocksError::BadDomain);
            }
            Target::Domain(d.to_owned(), port)
        }
    };
    Ok((target, need))
}

/// SOCKS5 commands this proxy serves.
pub const CMD_CONNECT: u8 = 1;
pub const CMD_UDP_ASSOCIATE: u8 = 3;

/// A CONNECT request: `05 01 00 | address`; returns the target and the bytes used.
pub fn parse_request(buf: &[u8]) -> Result<(Target, usize), SocksError> {
    match parse_command(buf)? {
        (CMD_CONNECT, t, n) => Ok((t, n)),
        (c, _, _) => Err(SocksError::Command(c)),
    }
}

/// A CONNECT or UDP ASSOCIATE request: `05 CMD 00 | address`; returns the command, the address
/// (for UDP ASSOCIATE, where the app will send from, often all zeros) and the bytes used.
/// BIND (2) and unknown commands are [`SocksError::Command`].
pub fn parse_command(buf: &[u8]) -> Result<(u8, Target, usize), SocksError> {
    if buf.len() < 3 {
        return Err(SocksError::Incomplete);
    }
    if buf[0] != 5 {
        return Err(SocksError::Version(buf[0]));
    }
    let cmd = buf[1];
    if cmd != CMD_CONNECT && cmd != CMD_UDP_ASSOCIATE {
        return Err(SocksError::Command(cmd));
    }
    let (t, n) = parse_address(&buf[3..])?;
    Ok((cmd, t, 3 + n))
}

/// A datagram an app sent to the UDP relay: `RSV(2) | FRAG(1) | address | data`. Returns the
/// destination and where the data starts. Fragments (FRAG != 0) are refused: they are
/// optional in RFC 1928 and no common client sends them.
pub fn parse_udp_request(buf: &[u8]) -> Result<(Target, usize), SocksError> {
    if buf.len() < 4 {
        return Err(SocksError::Incomplete);
    }
    if buf[2] != 0 {
        return Err(SocksError::Fragment(buf[2]));
    }
    let (t, n) = parse_address(&buf[3..])?;
    Ok((t, 3 + n))
}

/// The header of a datagram relayed back to the app: `00 00 00 | address of its source`.
#[must_use]
pub fn udp_header(source: &Target) -> Vec<u8> {
    let mut v = vec![0, 0, 0];
    v.extend_from_slice(&source.encode());
    v
}

/// Parses an HTTP `CONNECT host:port HTTP/1.x` request head; returns the target and the
/// bytes used (through the blank line). IPv6 literals are bracketed (`[::1]:443`).
pub fn parse_http_connect(buf: &[u8]) -> Result<(Target, usize), SocksError> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").ok_or(SocksError::Incomplete)? + 4;
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| SocksError::BadDomain)?;
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    if parts.next() != Some("CONNECT") {
        return Err(SocksError::Command(0));
    }
    let authority = parts.next().ok_or(SocksError::BadDomain)?;
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(SocksError::Version(0));
    }
    let (host, port) = authority.rsplit_once(':').ok_or(SocksError::BadDomain)?;
    let port: u16 = port.parse().map_err(|_| SocksError::BadDomain)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.len() > 255 {
        return Err(SocksError::BadDomain);
    }
    let target = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => Target::Ip(ip, port),
        Err(_) => Target::Domain(host.to_owned(), port),
    };
    Ok((target, end))
}

/// Reply codes (RFC 1928 section 6).
pub const REP_SUCCEEDED: u8 = 0;
pub const REP_GENERAL_FAILURE: u8 = 1;
pub const REP_NOT_ALLOWED: u8 = 2;
pub const REP_HOST_UNREACHABLE: u8 = 4;
pub const REP_CONNECTION_REFUSED: u8 = 5;
pub const REP_COMMAND_NOT_SUPPORTED: u8 = 7;
pub const REP_ADDRESS_NOT_SUPPORTED: u8 = 8;

/// A reply with a zero bound address (the app learns nothing about the provider).
#[must_use]
pub fn reply(code: u8) -> [u8; 10] {
    [5, code, 0, 1, 0, 0, 0, 0, 0, 0]
}

/// A success reply naming a bound address (UDP ASSOCIATE: where the app sends its datagrams).
#[must_use]
pub fn reply_bound(addr: std::net::SocketAddr) -> Vec<u8> {
    let mut v = vec![5, REP_SUCCEEDED, 0];
    v.extend_from_slice(&Target::Ip(addr.ip(), addr.port()).encode());
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_udp_associate_is_told_where_to_send_and_datagram_headers_round_trip() {
        let (cmd, _, used) = parse_command(&[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]).expect("udp associate");
        assert_eq!((cmd, used), (CMD_UDP_ASSOCIATE, 10));
        assert_eq!(parse_request(&[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]), Err(SocksError::Command(3)), "not a CONNECT");
        assert_eq!(parse_command(&[5, 2, 0, 1, 0, 0, 0, 0, 0, 0]).map(|c| c.0), Err(SocksError::Command(2)), "BIND");
        let bound: std::net::SocketAddr = "127.0.0.1:5353".parse().expect("addr");
        assert_eq!(reply_bound(bound), vec![5, 0, 0, 1, 127, 0, 0, 1, 0x14, 0xe9]);
        let to = Target::Domain("dns.example".into(), 53);
        let mut dgram = udp_header(&to);
        let start = dgram.len();
        dgram.extend_from_slice(b"query");
        assert_eq!(parse_udp_request(&dgram), Ok((to, start)));
        dgram[2] = 1;
        assert_eq!(parse_udp_request(&dgram), Err(SocksError::Fragment(1)));
        assert_eq!(parse_udp_request(&[0, 0]), Err(SocksError::Incomplete));
    }

    #[test]
    fn parses_curl_style_requests() {
        assert_eq!(parse_greeting(&[5, 1, 0]), Ok(3));
        assert_eq!(parse_greeting(&[5, 2, 2, 1]), Err(SocksError::NoAcceptableMethod));
        assert_eq!(parse_greeting(&[4, 1, 0]), Err(SocksError::Version(4)));
        assert_eq!(parse_greeting(&[5, 2, 0]), Err(SocksError::Incomplete));
        let mut req = vec![5, 1, 0, 3, 11];
        req.extend_from_slice(b"example.com");
        req.extend_from_slice(&443u16.to_be_bytes());
        assert_eq!(parse_request(&req), Ok((Target::Domain("example.com".into(), 443), req.len())));
        assert_eq!(parse_request(&[5, 1, 0, 1, 127, 0, 0, 1, 0, 80]), Ok((Target::Ip([127, 0, 0, 1].into(), 80), 10)));
        assert_eq!(parse_request(&[5, 2, 0, 1, 127, 0, 0, 1, 0, 80]), Err(SocksError::Command(2)));
        assert_eq!(parse_request(&[5, 1, 0, 9]), Err(SocksError::AddressType(9)));
        assert_eq!(parse_request(&[5, 1, 0, 3, 0, 0, 80]), Err(SocksError::BadDomain));
    }

    #[test]
    fn parses_http_connect() {
        let r = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nrest";
        assert_eq!(parse_http_connect(r), Ok((Target::Domain("example.com".into(), 443), r.len() - 4)));
        assert_eq!(
            parse_http_connect(b"CONNECT [::1]:80 HTTP/1.1\r\n\r\n").map(|x| x.0),
            Ok(Target::Ip("::1".parse().expect("ip"), 80))
        );
        assert_eq!(parse_http_connect(b"CONNECT a:1 HTTP/1.1\r\n"), Err(SocksError::Incomplete));
        assert_eq!(parse_http_connect(b"GET / HTTP/1.1\r\n\r\n"), Err(SocksError::Command(0)));
        assert_eq!(parse_http_connect(b"CONNECT nohost HTTP/1.1\r\n\r\n"), Err(SocksError::BadDomain));
    }

    fn target() -> impl Strategy<Value = Target> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| Target::Ip(std::net::Ipv4Addr::from(a).into(), p)),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(a, p)| Target::Ip(std::net::Ipv6Addr::from(a).into(), p)),
            ("[a-z0-9.-]{1,60}", any::<u16>()).prop_map(|(d, p)| Target::Domain(d, p)),
        ]
    }

    proptest! {
        #[test]
        fn address_round_trips(t in target()) {
            let b = t.encode();
            prop_assert_eq!(parse_address(&b), Ok((t, b.len())));
        }

        #[test]
        fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_greeting(&b);
            let _ = parse_request(&b);
            let _ = parse_address(&b);
            let _ = parse_http_connect(&b);
        }
    }
}
