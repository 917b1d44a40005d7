//! Entering a named network namespace on the calling thread, with the errors a caller can act on.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Where `ip netns add NAME` puts the namespace's handle.
pub const NETNS_DIR: &str = "/var/run/netns";
/// What entering a namespace needs; the callers name it in their permission errors.
pub const CAPABILITY: &str = "CAP_SYS_ADMIN";

/// Why a namespace cannot be entered. The display text is the reason alone: callers say which namespace.
#[derive(Debug, Error)]
pub enum NetnsError {
    #[error("not a namespace name (want what `ip netns list` shows)")]
    InvalidName,
    #[error("{} does not exist (see `ip netns list`)", .0.display())]
    NotFound(PathBuf),
    #[error("{} is not a network namespace", .0.display())]
    NotANamespace(PathBuf),
    /// Entering needs [`CAPABILITY`].
    #[error("permission denied")]
    PermissionDenied,
    #[error("{0}")]
    Io(io::Error),
}

/// Moves the calling thread (only it) into `/var/run/netns/NAME`, as `ip netns exec` would.
pub fn enter(name: &str) -> Result<(), NetnsError> {
    enter_path(path_of(name)?)
}

fn enter_path(path: PathBuf) -> Result<(), NetnsError> {
    crate::syscall::enter_netns(&path).map_err(|err| match err.raw_os_error() {
        Some(libc::ENOENT) => NetnsError::NotFound(path),
        Some(libc::EPERM | libc::EACCES) => NetnsError::PermissionDenied,
        Some(libc::EINVAL) => NetnsError::NotANamespace(path),
        _ => NetnsError::Io(err),
    })
}

/// The handle of namespace `name`; a name that is not one (empty, a path, `.` or `..`) is refused.
fn path_of(name: &str) -> Result<PathBuf, NetnsError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(NetnsError::InvalidName);
    }
    Ok(Path::new(NETNS_DIR).join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_paths_are_refused_before_any_system_call() {
        for name in ["", ".", "..", "a/b", "../x", "nul\0"] {
            assert!(matches!(enter(name), Err(NetnsError::InvalidName)), "{name:?}");
        }
    }

    #[test]
    fn a_missing_namespace_names_its_path() {
        let err = enter("metallb-sys-test-no-such-namespace").unwrap_err();
        assert!(matches!(err, NetnsError::NotFound(_)), "{err}");
        assert_eq!(
            err.to_string(),
            "/var/run/netns/metallb-sys-test-no-such-namespace does not exist (see `ip netns list`)"
        );
    }

    #[test]
    fn a_file_that_is_not_a_namespace_is_named_as_such() {
        let path = std::env::temp_dir().join(format!("metallb-sys-not-a-netns-{}", std::process::id()));
        std::fs::write(&path, b"").unwrap();
        // setns() checks the descriptor's type before the caller's capabilities, so this holds for any user.
        let err = enter_path(path.clone()).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(err, NetnsError::NotANamespace(ref p) if *p == path), "{err}");
    }
}
