//! The small scenario on the real bytecode: what `make test` asserts about the simulator.

use alloy::primitives::{keccak256, Address, B256};
use wirepact_chain::WirepactMarket as M;
use wirepact_sim::evm::Chain;
use wirepact_sim::{run, Scenario};

fn small() -> Scenario {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/small.toml");
    Scenario::load(&path).expect("scenarios/small.toml loads")
}

#[test]
fn the_small_market_slashes_cheaters_spares_the_honest_and_conserves_tokens() {
    let r = run(&small()).expect("the small scenario runs");
    let group = |name: &str| r.detection.iter().find(|d| d.group == name).expect(name);

    // Cheaters: 70% of the SLA and offline ones are slashed by their third audit.
    assert!((group("under70").slashed_within_three_audits_share - 1.0).abs() < 1e-12, "{:?}", group("under70"));
    assert!((group("offline").slashed_within_three_audits_share - 1.0).abs() < 1e-12);
    // Oversold ones are caught at the evening peak.
    assert!(group("oversold").slashed_share > 0.0, "{:?}", group("oversold"));
    assert_eq!(r.detection_rate_80pct, Some(1.0));
    // Honest ones are never slashed.
    assert_eq!(group("honest").slashed_share, 0.0);
    assert_eq!(r.false_slash.honest_slashed, 0);
    assert!(r.false_slash.honest_audits >= 8 * 40, "{}", r.false_slash.honest_audits);

    // Gas figures are there and positive for every kind the market's day is made of.
    for kind in ["beginEpoch", "submitReport", "openSession", "claim", "close", "claimBonus"] {
        let g = r.gas.iter().find(|g| g.kind == kind).unwrap_or_else(|| panic!("no gas for {kind}"));
        assert!(g.count > 0 && g.mean > 21_000, "{g:?}");
        assert!(g.per_day > 0);
    }
    assert!(r.gas_per_day_total > 0);

    // Money: the market owes exactly what it holds, nothing minted went missing.
    let c = &r.conservation;
    assert!(c.balanced, "{c:?}");
    assert_eq!(c.market_holds, c.market_owes);
    assert_eq!(c.minted, c.supply);
    assert_ne!(r.money.claimed_by_providers, "0", "providers earned from their sessions");
    assert_ne!(r.money.refunds, "0");
    assert_ne!(r.money.slashed, "0");
    assert!(r.money.bonus_claims > 0, "{:?}", r.money);

    // Prices rise with utilisation.
    let p = &r.price_vs_utilisation;
    assert!(p.windows(2).all(|w| w[0].mean_price_over_base <= w[1].mean_price_over_base), "{p:?}");
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let mut s = small();
    s.sim.epochs = 12;
    let a = serde_json::to_value(run(&s).expect("simulator")).expect("simulator");
    let b = serde_json::to_value(run(&s).expect("simulator")).expect("simulator");
    assert_eq!(a["money"], b["money"]);
    assert_eq!(a["detection"], b["detection"]);
    assert_eq!(a["gas"], b["gas"]);
}

#[test]
fn the_off_chain_audit_set_is_the_contracts() {
    let mut params = wirepact_chain::default_params();
    params.auditProbabilityBps = 3_000;
    let mut chain = Chain::deploy(params, 1_767_225_600).expect("simulator");
    for epoch in 0..5u64 {
        chain.set_block(10 + epoch, 1_767_225_600 + 10 + epoch * 600, keccak256(epoch.to_be_bytes()));
        let (seed, _) = chain.market_send(Address::repeat_byte(9), &M::beginEpochCall {}).expect("simulator");
        assert_ne!(seed, B256::ZERO);
        for id in 1..=200u32 {
            let on_chain = chain.market_view(&M::isAuditedCall { epoch, providerId: id }).expect("simulator");
            assert_eq!(on_chain, wirepact_proto::audit::is_audited(seed, id, 3_000), "epoch {epoch} provider {id}");
        }
    }
}

#[test]
fn a_refused_transaction_names_the_contracts_reason() {
    let mut chain = Chain::deploy(wirepact_chain::default_params(), 1_767_225_600).expect("simulator");
    let err =
        chain.market_send(Address::repeat_byte(1), &M::unjailCall { providerId: 42 }).expect_err("refused").to_string();
    assert!(err.contains("Market_UnknownProvider"), "{err}");
}

/// Every scenario shipped in `scenarios/` parses and passes the checks the simulator makes
/// before it runs (a broken one would fail only when someone runs `make sim*`).
#[test]
fn every_shipped_scenario_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("scenarios/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            wirepact_sim::Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            n += 1;
        }
    }
    assert!(n >= 4, "{n} scenarios found in {}", dir.display());
}
