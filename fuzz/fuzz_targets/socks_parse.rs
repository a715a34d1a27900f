#![no_main]
//! What an app sends the local proxy: SOCKS5 greetings/requests and HTTP CONNECT heads never
//! panic the parsers, and a parsed target re-encodes to a header that parses to itself.

use libfuzzer_sys::fuzz_target;
use wirepact_tunnel::socks::{parse_address, parse_greeting, parse_http_connect, parse_request};

fuzz_target!(|data: &[u8]| {
    let _ = parse_greeting(data);
    for parsed in [parse_request(data), parse_address(data), parse_http_connect(data)] {
        if let Ok((target, used)) = parsed {
            assert!(used <= data.len());
            let enc = target.encode();
            assert_eq!(parse_address(&enc), Ok((target, enc.len())));
        }
    }
});
