//! The one place where core errors become Python exceptions. The classes live in `metallb_py.errors`.

use metallb_bgp::BgpError;
use metallb_core::alloc::{AllocError, ConfigError};
use metallb_gossip::GossipError;
use metallb_l2::L2Error;
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;

mod py {
    pyo3::import_exception!(metallb_py.errors, ConfigError);
    pyo3::import_exception!(metallb_py.errors, PoolExhaustedError);
    pyo3::import_exception!(metallb_py.errors, IPInUseError);
    pyo3::import_exception!(metallb_py.errors, UnknownPoolError);
    pyo3::import_exception!(metallb_py.errors, IPNotAllowedError);
    pyo3::import_exception!(metallb_py.errors, FamilyError);
    pyo3::import_exception!(metallb_py.errors, NoPoolError);
    pyo3::import_exception!(metallb_py.errors, ResponderError);
    pyo3::import_exception!(metallb_py.errors, InterfaceNotFoundError);
    pyo3::import_exception!(metallb_py.errors, PermissionDeniedError);
    pyo3::import_exception!(metallb_py.errors, NoMacAddressError);
    pyo3::import_exception!(metallb_py.errors, NetnsError);
    pyo3::import_exception!(metallb_py.errors, GossipError);
    pyo3::import_exception!(metallb_py.errors, GossipBindError);
    pyo3::import_exception!(metallb_py.errors, GossipNetnsError);
    pyo3::import_exception!(metallb_py.errors, GossipPermissionError);
    pyo3::import_exception!(metallb_py.errors, BgpError);
    pyo3::import_exception!(metallb_py.errors, BgpNetnsError);
    pyo3::import_exception!(metallb_py.errors, BgpPermissionError);
}

/// A `ConfigError` carrying `.path` (where) and `.reason` (what) besides its message.
pub fn config_error(py: Python<'_>, err: ConfigError) -> PyErr {
    let exc = py::ConfigError::new_err(err.to_string());
    let value = exc.value(py);
    // Setting attributes on a fresh exception instance cannot fail short of memory exhaustion.
    let _ = value.setattr("path", err.path);
    let _ = value.setattr("reason", err.message);
    exc
}

pub fn alloc_error(err: AllocError) -> PyErr {
    let message = err.to_string();
    match err {
        AllocError::PoolExhausted { .. } => py::PoolExhaustedError::new_err(message),
        AllocError::IpInUse { .. } => py::IPInUseError::new_err(message),
        AllocError::UnknownPool { .. } => py::UnknownPoolError::new_err(message),
        AllocError::IpNotAllowed { .. } => py::IPNotAllowedError::new_err(message),
        AllocError::Family(_) => py::FamilyError::new_err(message),
        AllocError::NoPool { .. } => py::NoPoolError::new_err(message),
    }
}

/// Layer 2 responder errors: one class per thing a caller handles differently; bad arguments are ValueError.
pub fn l2_error(err: L2Error) -> PyErr {
    let message = err.to_string();
    match err {
        L2Error::InterfaceNotFound { .. } | L2Error::UnknownInterface { .. } => {
            py::InterfaceNotFoundError::new_err(message)
        }
        L2Error::PermissionDenied { .. } => py::PermissionDeniedError::new_err(message),
        L2Error::NoMacAddress { .. } => py::NoMacAddressError::new_err(message),
        L2Error::Netns { .. } => py::NetnsError::new_err(message),
        L2Error::InvalidConfig(_) | L2Error::InvalidAddress { .. } => PyValueError::new_err(message),
        L2Error::NotRunning | L2Error::AlreadyRunning | L2Error::Io { .. } | L2Error::Stopped(_) => {
            py::ResponderError::new_err(message)
        }
    }
}

/// Gossip (membership) errors: configuration mistakes are ValueError, the rest one class per thing a caller
/// handles differently.
pub fn gossip_error(err: GossipError) -> PyErr {
    let message = err.to_string();
    match err {
        GossipError::Config(_) => PyValueError::new_err(message),
        GossipError::Bind { .. } => py::GossipBindError::new_err(message),
        GossipError::Netns { .. } => py::GossipNetnsError::new_err(message),
        GossipError::PermissionDenied { .. } => py::GossipPermissionError::new_err(message),
        GossipError::NotRunning | GossipError::AlreadyRunning | GossipError::Io { .. } | GossipError::Stopped(_) => {
            py::GossipError::new_err(message)
        }
    }
}

/// BGP speaker errors: bad peer parameters and routes are ValueError, an unknown peer KeyError; the rest are
/// metallb_py.errors' BGP classes (BgpError is a RuntimeError, BgpNetnsError an OSError).
pub fn bgp_error(err: BgpError) -> PyErr {
    let message = err.to_string();
    match err {
        BgpError::InvalidPeer { .. } | BgpError::InvalidRoute(_) => PyValueError::new_err(message),
        BgpError::UnknownPeer(_) => PyKeyError::new_err(message),
        BgpError::PermissionDenied { .. } => py::BgpPermissionError::new_err(message),
        BgpError::Netns { .. } => py::BgpNetnsError::new_err(message),
        BgpError::NotRunning | BgpError::Io { .. } | BgpError::Stopped(_) => py::BgpError::new_err(message),
    }
}
