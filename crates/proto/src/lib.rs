#![doc = include_str!("../README.md")]

pub mod audit;
pub mod eip712;
pub mod frames;
pub mod kind;
pub mod observations;
pub mod repeats;
pub mod units;
pub mod verdicts;

pub use eip712::{
    domain, recover_observations, recover_receipt, recover_report, recover_session_auth, sign_observations,
    sign_receipt, sign_report, sign_session_auth, Observations, Receipt, Report, SessionAuth, SignatureError,
    SIGNING_DOMAIN_NAME, SIGNING_DOMAIN_VERSION,
};
pub use frames::{Frame, FrameError, MAX_FRAME_LEN, PROTOCOL_VERSION};
pub use kind::ErrorKind;
pub use observations::{decode_observations, encode_observations, Observation, ObservationError};
pub use units::price_ceiling;
pub use units::{
    format_tokens, parse_tokens, token_text, ByteCount, Kbps, Mbps, Millis, ParseTokenError, ProviderId, SessionId,
    SessionTerms, SlaTerms, TokenAmount, TOKEN_DECIMALS,
};
