//! Entering a named network namespace on the calling thread, with the errors a caller can act on.

use std::path::Path;

use crate::GossipError;

/// Moves the calling thread (only it) into `/var/run/netns/NAME`, as `ip netns exec` would.
pub(crate) fn enter(name: &str) -> Result<(), GossipError> {
    let bad = |reason: String| GossipError::Netns { name: name.to_string(), reason };
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(bad("not a namespace name (want what `ip netns list` shows)".into()));
    }
    let path = Path::new("/var/run/netns").join(name);
    metallb_l2::sys::enter_netns(&path).map_err(|err| match err.raw_os_error() {
        Some(libc::ENOENT) => bad(format!("{} does not exist (see `ip netns list`)", path.display())),
        Some(libc::EPERM | libc::EACCES) => GossipError::PermissionDenied {
            what: format!("entering network namespace {name:?}"),
            capability: "CAP_SYS_ADMIN",
        },
        Some(libc::EINVAL) => bad(format!("{} is not a network namespace", path.display())),
        _ => bad(err.to_string()),
    })
}
