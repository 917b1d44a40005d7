use thiserror::Error;

/// Why a member cannot be configured as asked. Datagrams that fail authentication or decoding are not errors
/// but counted drops ([`super::Dropped`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MembershipError {
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0:?} is not a member name: give the node name (1 to 253 bytes, no control characters)")]
    InvalidName(String),
    #[error("{addr} cannot be a gossip address: {reason}")]
    InvalidAddress { addr: String, reason: &'static str },
}
