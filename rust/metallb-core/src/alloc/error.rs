use std::net::IpAddr;

use thiserror::Error;

use super::Family;

/// A pool definition or a set of pools is invalid. One variant on purpose: every configuration mistake is the
/// same kind of error for the user (fix the manifest), and `path` says where it is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Where the mistake is, e.g. `pool "blue": addresses[1]`.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}

/// Why an allocation or assignment was refused. The allocator's state is unchanged whenever one is returned.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AllocError {
    #[error("no available {family} address in pool {pool:?}")]
    PoolExhausted { pool: String, family: Family },
    #[error("{ip} is in use by {holder:?} and cannot be shared with {key:?}: {reason}")]
    IpInUse { ip: IpAddr, key: String, holder: String, reason: String },
    #[error("unknown pool {pool:?}")]
    UnknownPool { pool: String },
    #[error("{ip} is not allowed for {key:?}: {reason}")]
    IpNotAllowed { ip: IpAddr, key: String, reason: String },
    #[error("{0}")]
    Family(String),
    #[error("no pool may serve {key:?}: {reason}")]
    NoPool { key: String, reason: String },
}
