use std::io;

use thiserror::Error;

/// Why the BGP speaker cannot start or do what was asked. One variant per thing a caller handles differently;
/// the Python bindings map each to its own exception class. Every error leaves the speaker as it was.
#[derive(Debug, Error)]
pub enum BgpError {
    /// A peer's session parameters cannot work (bad ASN, hold time, address, password...).
    #[error("peer {peer:?}: {reason}")]
    InvalidPeer { peer: String, reason: String },
    /// A prefix or route attribute that cannot be sent (bad prefix text, community, wrong family).
    #[error("{0}")]
    InvalidRoute(String),
    #[error("no peer named {0:?} (add it with add_peer first)")]
    UnknownPeer(String),
    #[error("{what}: permission denied; {capability} is needed (run as root or grant it)")]
    PermissionDenied { what: String, capability: &'static str },
    #[error("network namespace {name:?}: {reason}")]
    Netns { name: String, reason: String },
    /// The speaker (or its BFD thread) was stopped; start a new one.
    #[error("the BGP speaker (or its BFD thread) is not running: it was stopped")]
    NotRunning,
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    /// The speaker's (or the BFD) thread ended on its own (a fatal poll error or a panic); the message says
    /// which and why.
    #[error("the BGP speaker thread has stopped: {0}")]
    Stopped(String),
}
