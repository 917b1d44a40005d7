use std::io;
use std::net::SocketAddr;

use metallb_core::membership::MembershipError;
use thiserror::Error;

/// Why the gossip member cannot start or do what was asked. One variant per thing a caller handles
/// differently; the Python bindings map each to its own exception class.
#[derive(Debug, Error)]
pub enum GossipError {
    /// A name, address, secret or timing that cannot work.
    #[error(transparent)]
    Config(#[from] MembershipError),
    /// The gossip address cannot be bound: in use, or not an address of the namespace.
    #[error("cannot bind the gossip socket to {addr} {}: {source}", in_netns(netns))]
    Bind { addr: SocketAddr, netns: Option<String>, source: io::Error },
    #[error("{what}: permission denied; {capability} is needed (run as root or grant it)")]
    PermissionDenied { what: String, capability: &'static str },
    #[error("network namespace {name:?}: {reason}")]
    Netns { name: String, reason: String },
    #[error("the gossip member is not running; call start() first")]
    NotRunning,
    #[error("the gossip member is already running")]
    AlreadyRunning,
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    /// The gossip thread ended on its own (a fatal socket error or a panic); the message says why.
    #[error("the gossip thread has stopped: {0}")]
    Stopped(String),
}

fn in_netns(netns: &Option<String>) -> String {
    match netns {
        Some(name) => format!("in network namespace {name:?}"),
        None => "in this network namespace".to_string(),
    }
}
