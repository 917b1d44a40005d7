use std::io;
use std::net::IpAddr;

use thiserror::Error;

/// Why the responder cannot start or do what was asked. One variant per thing a caller handles differently;
/// the Python bindings map each to its own exception class.
#[derive(Debug, Error)]
pub enum L2Error {
    #[error("no network interface named {name:?} {}", in_netns(netns))]
    InterfaceNotFound { name: String, netns: Option<String> },
    /// Raw sockets need CAP_NET_RAW; entering a network namespace needs CAP_SYS_ADMIN.
    #[error("{what}: permission denied; the layer 2 responder needs {capability} (run as root or grant it)")]
    PermissionDenied { what: String, capability: &'static str },
    /// ARP and NDP answers carry the interface's MAC: loopback, tun and other non-Ethernet links have none.
    #[error(
        "interface {name:?} has no Ethernet MAC address (hardware type {hw_type}), so it cannot answer ARP or NDP"
    )]
    NoMacAddress { name: String, hw_type: u16 },
    #[error("network namespace {name:?}: {reason}")]
    Netns { name: String, reason: String },
    /// An `announce(..., interfaces=...)` names an interface the responder was not started on.
    #[error("interface {name:?} is not one of this responder's interfaces {known:?}")]
    UnknownInterface { name: String, known: Vec<String> },
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{ip} cannot be announced: {reason}")]
    InvalidAddress { ip: IpAddr, reason: &'static str },
    #[error("the responder is not running; call start() first")]
    NotRunning,
    #[error("the responder is already running")]
    AlreadyRunning,
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    /// The responder thread ended on its own (a fatal socket error or a panic); the message says why.
    #[error("the responder thread has stopped: {0}")]
    Stopped(String),
}

fn in_netns(netns: &Option<String>) -> String {
    match netns {
        Some(name) => format!("in network namespace {name:?}"),
        None => "in this network namespace".to_string(),
    }
}

impl L2Error {
    /// An I/O error, with EPERM / EACCES turned into [`L2Error::PermissionDenied`].
    pub(crate) fn io(context: impl Into<String>, capability: &'static str, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => L2Error::PermissionDenied { what: context.into(), capability },
            _ => L2Error::Io { context: context.into(), source },
        }
    }
}
