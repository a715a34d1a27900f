#![no_main]
//! A provider's first look at a stranger's bytes: parsing a ClientHello and undressing a
//! Chrome-shaped one never panic, and whatever undresses is a hello that parses and re-encodes
//! to itself.

use libfuzzer_sys::fuzz_target;
use alloy_primitives::B256;
use wirepact_tunnel::hello::ClientHello;

fuzz_target!(|data: &[u8]| {
    if let Ok((h, _)) = ClientHello::parse(data) {
        let _ = h.ja4();
        let _ = h.to_record();
    }
    if let Some((hello, used)) = wirepact_tunnel::chrome::undress(data, B256::repeat_byte(7)) {
        assert!(used <= data.len());
        let (h, n) = ClientHello::parse(&hello).expect("an undressed hello parses");
        assert_eq!(n, hello.len());
        assert_eq!(h.to_record().expect("record"), hello);
    }
});
