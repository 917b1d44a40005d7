//! Entering a named network namespace on the calling thread, with the errors a caller can act on.

use metallb_sys::NetnsError;

use crate::BgpError;

/// Moves the calling thread (only it) into `/var/run/netns/NAME`, as `ip netns exec` would.
pub(crate) fn enter(name: &str) -> Result<(), BgpError> {
    metallb_sys::netns::enter(name).map_err(|err| match err {
        NetnsError::PermissionDenied => BgpError::PermissionDenied {
            what: format!("entering network namespace {name:?}"),
            capability: metallb_sys::netns::CAPABILITY,
        },
        _ => BgpError::Netns { name: name.to_string(), reason: err.to_string() },
    })
}
