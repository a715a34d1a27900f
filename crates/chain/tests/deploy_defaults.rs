//! One set of deploy defaults: `contracts/script/Deploy.s.sol` (the forge deploy path) and
//! `wirepact_chain::default_params()` (`wirepact deploy`, the simulator) must agree value for
//! value. They used to differ (2-of-4, 25 % audits and 30-day periods against 3-of-6, 10 %
//! and one day), so a market deployed with forge was not the market the simulator tuned.

use alloy::primitives::U256;
use alloy::sol_types::SolValue;

/// `name: value` pairs of the script's `defaults()`, values as plain integers with optional
/// `_` separators and an `eN` exponent.
fn script_defaults() -> Vec<(String, U256)> {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../contracts/script/Deploy.s.sol"))
        .expect("read Deploy.s.sol");
    let start = src.find("function defaults(").expect("defaults()");
    let body = &src[start..src[start..].find("\n    }").map_or(src.len(), |e| start + e)];
    let mut out = Vec::new();
    for line in body.lines() {
        let line = line.split("//").next().unwrap_or("").trim().trim_end_matches(',');
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim(), value.trim().replace('_', ""));
        if name == "token" || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        let (mantissa, exp) = value.split_once('e').unwrap_or((&value, "0"));
        let v = U256::from_str_radix(mantissa, 10).unwrap_or_else(|e| panic!("{name}: {value}: {e}"))
            * U256::from(10u64).pow(U256::from(exp.parse::<u64>().unwrap_or_else(|e| panic!("{name}: {e}"))));
        out.push((name.to_string(), v));
    }
    out
}

#[test]
fn deploy_script_defaults_match_default_params() {
    let script = script_defaults();
    let rust = wirepact_chain::default_params();
    // The Params struct ABI-encodes to one 32-byte word per field, in declaration order; the
    // script lists the fields in the same order (the compiler enforces it).
    let words: Vec<U256> = rust.abi_encode().chunks(32).map(U256::from_be_slice).collect();
    assert_eq!(script.len() + 1, words.len(), "every field but the token: {script:?}");
    for ((name, v), w) in script.iter().zip(&words[1..]) {
        assert_eq!(v, w, "{name}: Deploy.s.sol says {v}, default_params() says {w}");
    }
}
