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

/// Audits that follow the hour: the off-chain probability of each epoch is the market's.
#[test]
fn the_off_chain_hourly_audit_probability_is_the_contracts() {
    let mut params = wirepact_chain::default_params();
    params.epochLength = 1_800;
    let mut weights = alloy::primitives::U256::ZERO;
    for h in 0..24usize {
        weights |= alloy::primitives::U256::from(1 + (h * 7) % 11) << (8 * h);
    }
    params.auditHourWeights = weights;
    let chain_start = 1_767_225_600 + 1_234;
    let mut chain = Chain::deploy(params.clone(), chain_start).expect("simulator");
    let genesis: alloy::primitives::U256 = chain.market_view(&M::genesisCall {}).expect("simulator");
    let genesis = genesis.to::<u64>();
    let mut seen = std::collections::BTreeSet::new();
    for epoch in 0..96u64 {
        let on_chain = chain.market_view(&M::auditProbabilityAtCall { epoch }).expect("simulator");
        let off = wirepact_proto::audit::audit_bps_at(params.auditProbabilityBps, weights, genesis, 1_800, epoch);
        assert_eq!(on_chain, off, "epoch {epoch}");
        seen.insert(on_chain);
    }
    assert!(seen.len() >= 8, "the hour changes the probability: {seen:?}");
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

fn scenario(name: &str) -> Scenario {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios").join(name);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every attack strategy at once (`scenarios/attacks-small.toml`, issue 18). On the first
/// market the leavers escaped their slash by leaving first, and a bonus claim needed no
/// verdict; on v2 no honest party loses a wei and every attacker's books say so.
#[test]
fn under_every_attack_at_once_no_honest_party_loses_and_no_attacker_gains() {
    let r = run(&scenario("attacks-small.toml")).expect("the attack scenario runs");
    let attack = |prefix: &str| {
        r.attacks
            .iter()
            .find(|a| a.strategy.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in {:?}", r.attacks))
    };
    assert_eq!(r.honest_slashed_under_attack, Some(0), "{:?}", r.attacks);
    assert_eq!(r.honest_wei_lost_under_attack.as_deref(), Some("0"));
    assert!(r.conservation.balanced, "{:?}", r.conservation);

    // The coalition (10 of 31, under a third) slashes no honest provider, and the cheaters are
    // slashed all the same.
    let group = |name: &str| r.detection.iter().find(|d| d.group == name).expect(name);
    assert_eq!(group("honest").slashed_share, 0.0);
    assert!((group("leaver").slashed_share - 1.0).abs() < 1e-12, "{:?}", group("leaver"));

    // Every leaver left before its slash and was slashed anyway.
    let leaver = attack("leaver");
    assert_eq!(leaver.attackers, 6);
    assert!(leaver.finding.starts_with("6 left before their slash; 6 of them slashed anyway"), "{}", leaver.finding);
    assert!(leaver.finding.ends_with("escaped a due slash: 0 wei"), "{}", leaver.finding);
    assert_ne!(leaver.tokens_lost, "0");

    // The sybils' bonus claims are all refused.
    let sybils = attack("late sybil");
    assert_eq!(sybils.tokens_gained, "0");
    assert_eq!(sybils.finding, "10 of 10 claims refused");

    // The griefer gains nothing and slashes nobody; its targets are never judged while full.
    let griefer = attack("capacity griefer");
    assert_eq!(griefer.tokens_gained, "0");
    assert_eq!(griefer.honest_slashed, 0);
    assert!(griefer.gas_spent > 0);
    // It pays its victims a no-show fee for every session they closed after an epoch.
    assert_ne!(griefer.tokens_lost, "0", "{}", griefer.finding);
}

/// The coalition's size where honest providers start to be slashed: just over a third of the
/// stake (11 of 31), never under it (`sybil_stake_to_slash_honest_pct`).
#[test]
fn a_sybil_coalition_slashes_honest_providers_only_above_a_third_of_the_stake() {
    let mut s = scenario("sybil.toml");
    s.sim.epochs = 48;
    s.providers[0].count = 60;
    s.providers[1].count = 6;
    s.demand.sessions_per_epoch_peak = 10;
    s.oracles.liars = 10;
    let under = run(&s).expect("simulator");
    assert_eq!(under.honest_slashed_under_attack, Some(0));
    s.oracles.liars = 11;
    let over = run(&s).expect("simulator");
    assert!(over.honest_slashed_under_attack.is_some_and(|n| n > 0), "{:?}", over.attacks);
}
