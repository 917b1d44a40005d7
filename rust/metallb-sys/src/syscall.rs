//! The Linux system calls shared by the protocol threads, each behind a safe function.
//!
//! This is the only module of the crate with `unsafe` code. Every block calls one libc function with pointers
//! to live, correctly sized values owned by the caller's stack frame or by `self`, and says so in its `SAFETY`
//! comment. Nothing here decides anything: sockets, socket options, eventfd, poll, CPU affinity, setns.

use std::fs::File;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

/// A libc return value as a result: negative means failure, with the reason in `errno`.
pub fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Sets socket option `name` at `level` to `value`, which must be the plain C value the option expects (the
/// kernel reads `size_of::<T>()` bytes of it and never writes).
pub fn setsockopt<T>(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live reference to a `T`, and the length passed is exactly `size_of::<T>()`; the
    // kernel only reads that many bytes during the call.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    check(ret).map(drop)
}

/// A new non-blocking, close-on-exec socket.
pub fn socket(domain: libc::c_int, kind: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket() takes no pointers; on success it returns a new descriptor that nothing else owns.
    let fd = check(unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, protocol) })?;
    // SAFETY: `fd` was just returned by socket() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An eventfd: another thread writes to it to wake a worker thread out of poll().
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd() takes no pointers and returns a new descriptor on success.
        let fd = check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: `fd` was just returned by eventfd() and is owned by nobody else.
        Ok(EventFd { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    pub fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of a live u64. A full counter (EAGAIN) already means "wake up".
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    pub fn drain(&self) {
        let mut value: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; EAGAIN (nothing pending) is fine.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A fixed set of descriptors to wait on. Holds raw descriptor numbers: the caller keeps the descriptors open
/// for as long as it uses the poller (the worker thread that polls owns them all).
#[derive(Debug)]
pub struct Poller {
    pollfds: Vec<libc::pollfd>,
}

impl Poller {
    pub fn new(fds: &[BorrowedFd<'_>]) -> Self {
        Poller {
            pollfds: fds
                .iter()
                .map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 })
                .collect(),
        }
    }

    /// Waits until a descriptor is readable or in error, or `timeout` passes (`None`: no limit). An
    /// interrupted wait returns with nothing ready.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        for p in &mut self.pollfds {
            p.revents = 0;
        }
        // Round up, so a deadline 0.3 ms away does not become a busy loop of zero-timeout polls.
        let timeout_ms = match timeout {
            None => -1,
            Some(t) => libc::c_int::try_from(t.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX),
        };
        // SAFETY: `pollfds` is a live array and its exact length is passed; the kernel writes only `revents`.
        let ret = unsafe { libc::poll(self.pollfds.as_mut_ptr(), self.pollfds.len() as libc::nfds_t, timeout_ms) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        Ok(())
    }

    /// Whether descriptor `i` (in the order given to [`Poller::new`]) needs attention after the last wait.
    pub fn is_ready(&self, i: usize) -> bool {
        self.pollfds.get(i).is_some_and(|p| p.revents != 0)
    }
}

/// Pins the calling thread (only it) to CPU `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: all-zero bytes are an empty `cpu_set_t` (a plain bit array).
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    // SAFETY: `cpu` < CPU_SETSIZE, so the bit CPU_SET writes is inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: passes a live `cpu_set_t` and its exact size; pid 0 is the calling thread.
    check(unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) }).map(drop)
}

/// Moves the calling thread (only it) into the network namespace at `path` (e.g. /var/run/netns/NAME).
/// Needs CAP_SYS_ADMIN. [`crate::netns::enter`] is the checked way in by name.
pub(crate) fn enter_netns(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    // SAFETY: setns() takes a descriptor that `file` keeps open for the duration of the call.
    check(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notified_eventfd_wakes_the_poller_until_drained() {
        let wake = EventFd::new().unwrap();
        let mut poller = Poller::new(&[wake.as_fd()]);
        poller.wait(Some(Duration::ZERO)).unwrap();
        assert!(!poller.is_ready(0), "nothing was written yet");
        wake.notify();
        wake.notify();
        poller.wait(None).unwrap();
        assert!(poller.is_ready(0));
        wake.drain();
        poller.wait(Some(Duration::ZERO)).unwrap();
        assert!(!poller.is_ready(0), "one drain takes every pending notification");
    }

    #[test]
    fn a_poller_reports_nothing_for_a_descriptor_it_does_not_have() {
        let wake = EventFd::new().unwrap();
        wake.notify();
        let mut poller = Poller::new(&[wake.as_fd()]);
        poller.wait(None).unwrap();
        assert!(poller.is_ready(0));
        assert!(!poller.is_ready(1));
    }

    #[test]
    fn socket_options_reach_the_kernel() {
        let fd = socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
        let size: libc::c_int = 64 * 1024;
        setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, &size).unwrap();
        let err = setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, &0u8).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "a value shorter than an int is refused: {err}");
    }

    #[test]
    fn sockets_are_non_blocking() {
        let fd = socket(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
        let err = std::net::UdpSocket::from(fd).recv(&mut [0; 1]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn pinning_to_a_cpu_beyond_the_set_is_refused() {
        let err = pin_current_thread(libc::CPU_SETSIZE as usize).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
}
