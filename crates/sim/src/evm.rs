//! The market's committed bytecode running in an in-process EVM (revm), with the simulator
//! as the only user: it sets the clock, sends calls from any address and reads views.
//!
//! Gas figures are what a chain would charge (the Cancun rules the contracts are compiled for,
//! intrinsic 21k and calldata included); fees are zero so no account needs ether.

use alloy::primitives::{Address, Bytes, Log, TxKind, B256, U256};
use alloy::sol_types::{SolCall, SolConstructor, SolInterface};
use revm::context::result::{ExecutionResult, Output};
use revm::context::{BlockEnv, CfgEnv, Context, Journal, TxEnv};
use revm::database::{CacheDB, EmptyDB};
use revm::primitives::hardfork::SpecId;
use revm::{ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainnetEvm};
use wirepact_chain::{TestToken, WirepactMarket};

use crate::SimError;

type Ctx = Context<BlockEnv, TxEnv, CfgEnv, CacheDB<EmptyDB>, Journal<CacheDB<EmptyDB>>, ()>;

/// The chain id the simulated market's EIP-712 domain is bound to.
pub const CHAIN_ID: u64 = 31_337;
/// Far above any real block: at 100k providers one report needs ~1e9 gas (see the README).
const GAS_LIMIT: u64 = 30_000_000_000;

/// A transaction's effect.
#[derive(Debug)]
pub struct Executed {
    pub gas: u64,
    pub output: Bytes,
    pub logs: Vec<Log>,
}

/// The in-process chain: a token, the market, a clock.
pub struct Chain {
    evm: MainnetEvm<Ctx>,
    pub market: Address,
    pub token: Address,
    deployer: Address,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("market", &self.market).field("token", &self.token).finish_non_exhaustive()
    }
}

impl Chain {
    /// Deploys the test token and the market (with `params`, the token filled in) at `start`.
    pub fn deploy(mut params: wirepact_chain::bindings::IWirepactMarket::Params, start: u64) -> Result<Self, SimError> {
        let ctx: Ctx = Context::new(CacheDB::new(EmptyDB::default()), SpecId::CANCUN).modify_cfg_chained(|c| {
            c.chain_id = CHAIN_ID;
            c.disable_nonce_check = true;
            c.disable_block_gas_limit = true;
            c.disable_base_fee = true;
            c.disable_balance_check = true;
        });
        let evm = ctx.build_mainnet();
        let deployer = Address::repeat_byte(0xde);
        let mut chain = Self { evm, market: Address::ZERO, token: Address::ZERO, deployer };
        chain.set_block(1, start, B256::repeat_byte(1));
        chain.token = chain.create(TestToken::BYTECODE.to_vec(), "deploying the test token")?;
        params.token = chain.token;
        let module = chain.create(
            wirepact_chain::bindings::audit_module_deploy_code(&params).to_vec(),
            "deploying the market's audit module",
        )?;
        let mut code = WirepactMarket::BYTECODE.to_vec();
        code.extend_from_slice(&WirepactMarket::constructorCall { p: params, module }.abi_encode());
        chain.market = chain.create(code, "deploying the market")?;
        Ok(chain)
    }

    /// Moves the chain to block `number` at `timestamp` with `prevrandao` as its randomness.
    pub fn set_block(&mut self, number: u64, timestamp: u64, prevrandao: B256) {
        let b = &mut self.evm.ctx.block;
        b.number = U256::from(number);
        b.timestamp = U256::from(timestamp);
        b.prevrandao = Some(prevrandao);
        b.gas_limit = GAS_LIMIT;
        b.basefee = 0;
    }

    #[must_use]
    pub fn timestamp(&self) -> u64 {
        u64::try_from(self.evm.ctx.block.timestamp).unwrap_or(u64::MAX)
    }

    fn tx(from: Address, kind: TxKind, data: Vec<u8>) -> Result<TxEnv, SimError> {
        TxEnv::builder()
            .caller(from)
            .kind(kind)
            .data(Bytes::from(data))
            .gas_limit(GAS_LIMIT)
            .gas_price(0)
            .chain_id(Some(CHAIN_ID))
            .build()
            .map_err(|e| SimError::Evm { what: "building a transaction", source: format!("{e:?}").into() })
    }

    fn create(&mut self, code: Vec<u8>, what: &str) -> Result<Address, SimError> {
        let tx = Self::tx(self.deployer, TxKind::Create, code)?;
        let r =
            self.evm.transact_commit(tx).map_err(|e| SimError::Evm { what: "a deployment", source: Box::new(e) })?;
        match r {
            ExecutionResult::Success { output: Output::Create(_, Some(addr)), .. } => Ok(addr),
            other => Err(SimError::Reverted(format!("deploying {what}: {}", describe(&other)))),
        }
    }

    /// Sends `data` to `to` from `from` and commits it; a revert is an error naming the
    /// contract's reason (nothing is committed then).
    pub fn send(&mut self, from: Address, to: Address, data: Vec<u8>) -> Result<Executed, SimError> {
        let tx = Self::tx(from, TxKind::Call(to), data)?;
        let r =
            self.evm.transact_commit(tx).map_err(|e| SimError::Evm { what: "a transaction", source: Box::new(e) })?;
        executed(r)
    }

    /// Runs `data` against `to` without committing anything (a view, or a dry run).
    pub fn dry_run(&mut self, from: Address, to: Address, data: Vec<u8>) -> Result<Executed, SimError> {
        let tx = Self::tx(from, TxKind::Call(to), data)?;
        let r = self.evm.transact(tx).map_err(|e| SimError::Evm { what: "a call", source: Box::new(e) })?;
        executed(r.result)
    }

    /// A market call sent from `from`, its decoded return value and gas.
    pub fn market_send<C: SolCall>(&mut self, from: Address, call: &C) -> Result<(C::Return, Executed), SimError> {
        let e = self.send(from, self.market, call.abi_encode())?;
        let ret = C::abi_decode_returns(&e.output).map_err(|source| SimError::Decode { what: "a return", source })?;
        Ok((ret, e))
    }

    /// A market view.
    pub fn market_view<C: SolCall>(&mut self, call: &C) -> Result<C::Return, SimError> {
        let e = self.dry_run(Address::ZERO, self.market, call.abi_encode())?;
        C::abi_decode_returns(&e.output).map_err(|source| SimError::Decode { what: "a view", source })
    }

    /// A token call sent from `from`.
    pub fn token_send<C: SolCall>(&mut self, from: Address, call: &C) -> Result<Executed, SimError> {
        self.send(from, self.token, call.abi_encode())
    }

    /// A token view.
    pub fn token_view<C: SolCall>(&mut self, call: &C) -> Result<C::Return, SimError> {
        let e = self.dry_run(Address::ZERO, self.token, call.abi_encode())?;
        C::abi_decode_returns(&e.output).map_err(|source| SimError::Decode { what: "a view", source })
    }
}

fn executed(r: ExecutionResult) -> Result<Executed, SimError> {
    match r {
        ExecutionResult::Success { gas_used, output, logs, .. } => {
            Ok(Executed { gas: gas_used, output: output.into_data(), logs })
        }
        other => Err(SimError::Reverted(describe(&other))),
    }
}

fn describe(r: &ExecutionResult) -> String {
    match r {
        ExecutionResult::Revert { output, .. } => match WirepactMarket::WirepactMarketErrors::abi_decode(output) {
            Ok(e) => format!("{e:?}"),
            Err(_) => format!("reverted with 0x{}", alloy::primitives::hex::encode(output)),
        },
        ExecutionResult::Halt { reason, .. } => format!("halted: {reason:?}"),
        ExecutionResult::Success { .. } => "succeeded without the expected output".into(),
    }
}
