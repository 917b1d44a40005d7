//! The Linux system calls shared by the protocol threads, each behind a safe function.
//!
//! This is the only module of the crate with `unsafe` code. Every block calls one libc function with pointers
//! to live, correctly sized values owned by the caller's stack frame or by `self`, and says so in its `SAFETY`
//! comment. Nothing here decides anything: sockets, socket options, bind/connect, TCP MD5 keys, eventfd, poll,
//! interface addresses, CPU affinity, scheduler time slice, setns.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::ptr;
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

/// What to wait for on one descriptor of a [`Poller`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interest {
    pub read: bool,
    pub write: bool,
}

impl Interest {
    pub const READ: Interest = Interest { read: true, write: false };
    pub const WRITE: Interest = Interest { read: false, write: true };
    pub const BOTH: Interest = Interest { read: true, write: true };

    fn events(self) -> libc::c_short {
        (if self.read { libc::POLLIN } else { 0 }) | (if self.write { libc::POLLOUT } else { 0 })
    }
}

/// What the last wait found on one descriptor. Errors and hang-ups are reported whatever was asked for
/// (poll() always does): a reader learns of them from read(), a connecting socket from its SO_ERROR.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readiness {
    pub readable: bool,
    pub writable: bool,
    pub error: bool,
    pub hangup: bool,
}

impl Readiness {
    pub fn any(self) -> bool {
        self.readable || self.writable || self.error || self.hangup
    }
}

impl Poller {
    pub fn new(fds: &[BorrowedFd<'_>]) -> Self {
        let mut poller = Poller { pollfds: Vec::with_capacity(fds.len()) };
        for fd in fds {
            poller.add(*fd, Interest::READ);
        }
        poller
    }

    /// Forgets every descriptor (a thread whose set of sockets changes rebuilds it before each wait).
    pub fn clear(&mut self) {
        self.pollfds.clear();
    }

    /// Adds a descriptor; returns its index for [`Poller::is_ready`] and [`Poller::readiness`].
    pub fn add(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> usize {
        self.pollfds.push(libc::pollfd { fd: fd.as_raw_fd(), events: interest.events(), revents: 0 });
        self.pollfds.len() - 1
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

    /// What descriptor `i` is ready for after the last wait (nothing for an index it does not have).
    pub fn readiness(&self, i: usize) -> Readiness {
        let Some(p) = self.pollfds.get(i) else { return Readiness::default() };
        Readiness {
            readable: p.revents & libc::POLLIN != 0,
            writable: p.revents & libc::POLLOUT != 0,
            error: p.revents & (libc::POLLERR | libc::POLLNVAL) != 0,
            hangup: p.revents & libc::POLLHUP != 0,
        }
    }
}

/// A socket address in the C layout the kernel reads.
enum RawAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl RawAddr {
    fn new(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(a) => RawAddr::V4(libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
                sin_zero: [0; 8],
            }),
            SocketAddr::V6(a) => RawAddr::V6(libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: a.scope_id(),
            }),
        }
    }

    fn as_ptr(&self) -> *const libc::sockaddr {
        match self {
            RawAddr::V4(a) => (a as *const libc::sockaddr_in).cast(),
            RawAddr::V6(a) => (a as *const libc::sockaddr_in6).cast(),
        }
    }

    fn len(&self) -> libc::socklen_t {
        match self {
            RawAddr::V4(_) => mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            RawAddr::V6(_) => mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
        }
    }
}

/// The IP address in a C socket address, if it is an IPv4 or IPv6 one.
///
/// # Safety
/// `sa` is null or points to a socket address whose length fits its `sa_family` (as getifaddrs() returns).
unsafe fn ip_of(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a valid socket address; `sa_family` is its first field in every layout,
    // and the family says which layout the rest has. read_unaligned: nothing promises its alignment.
    unsafe {
        match libc::c_int::from((*sa).sa_family) {
            libc::AF_INET => {
                let a = ptr::read_unaligned(sa.cast::<libc::sockaddr_in>());
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))))
            }
            libc::AF_INET6 => {
                let a = ptr::read_unaligned(sa.cast::<libc::sockaddr_in6>());
                Some(IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

/// Binds a socket to a local address (port 0: any free port).
pub fn bind(fd: BorrowedFd<'_>, addr: SocketAddr) -> io::Result<()> {
    let raw = RawAddr::new(addr);
    // SAFETY: `raw` is a live socket address of the length passed; the kernel only reads it.
    check(unsafe { libc::bind(fd.as_raw_fd(), raw.as_ptr(), raw.len()) }).map(drop)
}

/// Starts connecting a non-blocking socket: `Ok(true)` when connected at once, `Ok(false)` while in progress
/// (wait for the socket to become writable, then read SO_ERROR: `TcpStream::take_error`).
pub fn connect(fd: BorrowedFd<'_>, addr: SocketAddr) -> io::Result<bool> {
    let raw = RawAddr::new(addr);
    // SAFETY: `raw` is a live socket address of the length passed; the kernel only reads it.
    match check(unsafe { libc::connect(fd.as_raw_fd(), raw.as_ptr(), raw.len()) }) {
        Ok(_) => Ok(true),
        Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => Ok(false),
        Err(err) => Err(err),
    }
}

/// The longest TCP MD5 key Linux takes (TCP_MD5SIG_MAXKEYLEN).
pub const TCP_MD5_MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` of <linux/tcp.h> (libc does not declare it).
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefix_len: u8,
    key_len: u16,
    ifindex: libc::c_int,
    key: [u8; TCP_MD5_MAX_KEY_LEN],
}

// The kernel's layout: 128 bytes of address, 8 of flags, lengths and index, 80 of key.
const _: () = assert!(mem::size_of::<TcpMd5Sig>() == 216);

/// Signs every segment exchanged with `peer` on this TCP socket with `key` (RFC 2385, TCP_MD5SIG). Set before
/// connect(): the SYN is signed too. An empty key removes the peer's key. Longer than
/// [`TCP_MD5_MAX_KEY_LEN`] is refused (InvalidInput).
pub fn set_tcp_md5_key(fd: BorrowedFd<'_>, peer: IpAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > TCP_MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("a TCP MD5 key is at most {TCP_MD5_MAX_KEY_LEN} bytes, this one has {}", key.len()),
        ));
    }
    // SAFETY: all-zero bytes are a valid `TcpMd5Sig` (integers and byte arrays only).
    let mut sig: TcpMd5Sig = unsafe { mem::zeroed() };
    let raw = RawAddr::new(SocketAddr::new(peer, 0));
    // SAFETY: copies `raw.len()` bytes (at most 28) from the live socket address into the 128-byte storage
    // field of `sig`; the regions are distinct.
    unsafe {
        ptr::copy_nonoverlapping(
            raw.as_ptr().cast::<u8>(),
            ptr::addr_of_mut!(sig.addr).cast::<u8>(),
            raw.len() as usize,
        )
    };
    sig.key_len = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &sig)
}

/// One address of one interface, as `ip address` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub interface: String,
    pub addr: IpAddr,
}

/// Every IPv4 and IPv6 address of every interface of the calling thread's network namespace, in the
/// kernel's order (per interface, the order the addresses were added).
pub fn interface_addresses() -> io::Result<Vec<InterfaceAddress>> {
    let mut list: *mut libc::ifaddrs = ptr::null_mut();
    // SAFETY: getifaddrs() writes a pointer to a list it allocated into `list`, a live local.
    check(unsafe { libc::getifaddrs(&mut list) })?;
    let mut out = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs() returned, freed only below, after the walk.
        let node = unsafe { &*entry };
        // SAFETY: `ifa_addr` is null or a socket address of the length its family implies.
        if let Some(addr) = unsafe { ip_of(node.ifa_addr) } {
            if !node.ifa_name.is_null() {
                // SAFETY: `ifa_name` is a NUL-terminated string owned by the list.
                let name = unsafe { CStr::from_ptr(node.ifa_name) };
                out.push(InterfaceAddress { interface: name.to_string_lossy().into_owned(), addr });
            }
        }
        entry = node.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs() and is freed once; no reference into it outlives this call.
    unsafe { libc::freeifaddrs(list) };
    Ok(out)
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

/// An epoll set: like [`Poller`], but the kernel keeps the registrations between waits, so a wake-up costs one
/// readiness check of the descriptor that woke it instead of registering, checking and unregistering every
/// descriptor on each wait. For the thread that answers on packet sockets, where every request is a wake-up. A
/// descriptor closed while in the set leaves it by itself; to change the set, build a new one.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
    /// Readiness of each added descriptor after the last wait, by the index [`Epoll::add`] returned.
    ready: Vec<Readiness>,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new() -> io::Result<Self> {
        Ok(Epoll { fd: epoll_create()?, ready: Vec::new(), events: Vec::new() })
    }

    /// Adds a descriptor (level-triggered); returns its index for [`Epoll::is_ready`] and [`Epoll::readiness`].
    /// The caller keeps it open while it is in the set (closing it removes it).
    pub fn add(&mut self, fd: BorrowedFd<'_>, interest: Interest) -> io::Result<usize> {
        let index = self.ready.len();
        let events =
            (if interest.read { libc::EPOLLIN } else { 0 }) | (if interest.write { libc::EPOLLOUT } else { 0 });
        let mut event = libc::epoll_event { events: events as u32, u64: index as u64 };
        // SAFETY: both descriptors are live; `event` is a live epoll_event the kernel only reads.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut event) })?;
        self.ready.push(Readiness::default());
        self.events.push(libc::epoll_event { events: 0, u64: 0 });
        Ok(index)
    }

    /// Waits until a descriptor is ready or `timeout` passes (`None`: no limit); an interrupted wait returns
    /// with nothing ready.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.ready.iter_mut().for_each(|r| *r = Readiness::default());
        let timeout_ms = match timeout {
            None => -1,
            Some(t) => libc::c_int::try_from(t.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX),
        };
        let capacity = libc::c_int::try_from(self.events.len().max(1)).unwrap_or(libc::c_int::MAX);
        if self.events.is_empty() {
            self.events.push(libc::epoll_event { events: 0, u64: 0 });
        }
        // SAFETY: `events` is a live array of at least `capacity` entries; the kernel writes at most that many.
        let ret = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), self.events.as_mut_ptr(), capacity, timeout_ms) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted { Ok(()) } else { Err(err) };
        }
        for event in &self.events[..ret as usize] {
            let (bits, index) = (event.events as libc::c_int, event.u64 as usize);
            if let Some(ready) = self.ready.get_mut(index) {
                *ready = Readiness {
                    readable: bits & libc::EPOLLIN != 0,
                    writable: bits & libc::EPOLLOUT != 0,
                    error: bits & libc::EPOLLERR != 0,
                    hangup: bits & libc::EPOLLHUP != 0,
                };
            }
        }
        Ok(())
    }

    /// Whether descriptor `i` needs attention after the last wait.
    pub fn is_ready(&self, i: usize) -> bool {
        self.ready.get(i).is_some_and(|r| r.any())
    }

    /// What descriptor `i` is ready for after the last wait (nothing for an index it does not have).
    pub fn readiness(&self, i: usize) -> Readiness {
        self.ready.get(i).copied().unwrap_or_default()
    }
}

fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: epoll_create1() takes no pointers and returns a new descriptor on success.
    let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
    // SAFETY: `fd` was just returned by epoll_create1() and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `struct sched_attr` of sched_setattr(2), up to `sched_period` (SCHED_ATTR_SIZE_VER0, 48 bytes).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
}

/// `SCHED_FLAG_KEEP_POLICY`: change the parameters, not the policy.
const SCHED_FLAG_KEEP_POLICY: u64 = 0x08;

/// Asks for time slices of `slice` for the calling thread (only it), keeping its policy and nice level. Under
/// the EEVDF scheduler (Linux 6.12 and later; it clamps the slice to 0.1-100 ms) a shorter slice is an earlier
/// deadline, so a thread that sleeps most of the time and runs for microseconds when woken runs at once on the
/// CPU that woke it instead of after the current task's slice. Needs no privilege; older kernels ignore it,
/// and a real-time thread is left as it is.
pub fn set_current_thread_slice(slice: Duration) -> io::Result<()> {
    // SAFETY: getpriority() takes no pointers; for PRIO_PROCESS and 0 Linux reports the calling thread.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    let attr = SchedAttr {
        size: mem::size_of::<SchedAttr>() as u32,
        sched_flags: SCHED_FLAG_KEEP_POLICY,
        sched_nice: nice,
        sched_runtime: u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX),
        ..SchedAttr::default()
    };
    // SAFETY: passes a live, fully initialised `SchedAttr` whose `size` field holds its size; pid 0 is the
    // calling thread; the kernel only reads it.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    check(ret as libc::c_int).map(drop)
}

/// Moves the calling thread (only it) into the network namespace at `path` (e.g. /var/run/netns/NAME).
/// Needs CAP_SYS_ADMIN. [`crate::netns::enter`] is the checked way in by name.
pub(crate) fn enter_netns(path: &Path) -> io::Result<()> {
    let file = File::open(path)?;
    // SAFETY: setns() takes a descriptor that `file` keeps open for the duration of the call.
    check(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }).map(drop)
}

// ---- BFD (metallb-sys/src/udp.rs): a datagram with its TTL or hop limit and its destination address ----
// Added for the BFD thread of metallb-bgp: RFC 5881/5883 accept a packet only with a given TTL (GTSM), which
// only recvmsg() with a control message tells. The socket options that ask for it are plain setsockopt().

/// One datagram [`recv_datagram`] read, besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramInfo {
    /// Bytes copied into the buffer.
    pub len: usize,
    /// The datagram was longer than the buffer (the rest is lost).
    pub truncated: bool,
    pub source: SocketAddr,
    /// The address it was sent to, with IP_PKTINFO / IPV6_RECVPKTINFO set on the socket.
    pub destination: Option<IpAddr>,
    /// Its TTL (IPv4) or hop limit (IPv6) on arrival, with IP_RECVTTL / IPV6_RECVHOPLIMIT set on the socket.
    pub ttl: Option<u8>,
    /// When the kernel received it (the wall clock), with SO_TIMESTAMPNS set on the socket.
    pub received: Option<std::time::SystemTime>,
}

/// The address and port in a C socket address of `len` bytes, if it is a complete IPv4 or IPv6 one.
fn socket_addr_of(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    let len = len as usize;
    let sa = (storage as *const libc::sockaddr_storage).cast::<libc::sockaddr>();
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: `storage` is a live sockaddr_storage (large and aligned enough for any address) whose
            // family says it holds a sockaddr_in, and the kernel wrote at least that many bytes.
            let a = unsafe { ptr::read(sa.cast::<libc::sockaddr_in>()) };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for a sockaddr_in6.
            let a = unsafe { ptr::read(sa.cast::<libc::sockaddr_in6>()) };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Reads one datagram without blocking (WouldBlock when none is queued), with what the control messages
/// say about it. A datagram from a source that is not IPv4 or IPv6 is refused (InvalidData) after it was read.
pub fn recv_datagram(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<DatagramInfo> {
    // SAFETY: all-zero bytes are a valid sockaddr_storage (integers only).
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // Room for a TTL, a packet-info message of either family and a timestamp; u64 elements align it as
    // cmsghdr needs.
    let mut control = [0u64; 24];
    // SAFETY: all-zero bytes are a valid msghdr (null pointers and zero lengths), filled in below.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = (&mut storage as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` points to a live local of the length given with it (`buf` through
    // `iov`); the kernel writes at most those lengths and updates the lengths in `msg`.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let source = socket_addr_of(&storage, msg.msg_namelen).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "a datagram from an address that is not IPv4 or IPv6")
    })?;
    let mut info = DatagramInfo {
        len: n as usize,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        source,
        destination: None,
        ttl: None,
        received: None,
    };
    // SAFETY: `msg` is the header recvmsg() filled in; its control pointer and (updated) length describe
    // the live `control` array, so CMSG_FIRSTHDR/CMSG_NXTHDR return headers inside it or null.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` is a non-null header inside `control` (see above).
        let header = unsafe { ptr::read_unaligned(cmsg) };
        // SAFETY: the data of a header inside `control` starts inside it as well.
        let data = unsafe { libc::CMSG_DATA(cmsg) };
        let data_len = (header.cmsg_len as usize).saturating_sub(data as usize - cmsg as usize);
        match (header.cmsg_level, header.cmsg_type) {
            (libc::IPPROTO_IP, libc::IP_TTL) | (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT)
                if data_len >= mem::size_of::<libc::c_int>() =>
            {
                // SAFETY: the kernel wrote an int here (the message's length says it fits).
                let ttl = unsafe { ptr::read_unaligned(data.cast::<libc::c_int>()) };
                info.ttl = u8::try_from(ttl).ok();
            }
            (libc::IPPROTO_IP, libc::IP_PKTINFO) if data_len >= mem::size_of::<libc::in_pktinfo>() => {
                // SAFETY: the kernel wrote an in_pktinfo here (the message's length says it fits).
                let pktinfo = unsafe { ptr::read_unaligned(data.cast::<libc::in_pktinfo>()) };
                info.destination = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(pktinfo.ipi_addr.s_addr))));
            }
            (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) if data_len >= mem::size_of::<libc::timespec>() => {
                // SAFETY: the kernel wrote a timespec here (the message's length says it fits).
                let ts = unsafe { ptr::read_unaligned(data.cast::<libc::timespec>()) };
                if let (Ok(secs), Ok(nanos)) = (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
                    let since = std::time::Duration::new(secs, nanos.min(999_999_999));
                    info.received = std::time::UNIX_EPOCH.checked_add(since);
                }
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) if data_len >= mem::size_of::<libc::in6_pktinfo>() => {
                // SAFETY: the kernel wrote an in6_pktinfo here (the message's length says it fits).
                let pktinfo = unsafe { ptr::read_unaligned(data.cast::<libc::in6_pktinfo>()) };
                info.destination = Some(IpAddr::V6(Ipv6Addr::from(pktinfo.ipi6_addr.s6_addr)));
            }
            _ => {}
        }
        // SAFETY: `msg` and `cmsg` are as above; CMSG_NXTHDR returns null past the last header.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Ok(info)
}

// ---- end of the BFD block ----

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
    fn an_epoll_set_reports_each_descriptor_by_its_index_until_drained() {
        let (first, second) = (EventFd::new().unwrap(), EventFd::new().unwrap());
        let mut set = Epoll::new().unwrap();
        let a = set.add(first.as_fd(), Interest::READ).unwrap();
        let b = set.add(second.as_fd(), Interest::READ).unwrap();
        set.wait(Some(Duration::ZERO)).unwrap();
        assert!(!set.is_ready(a) && !set.is_ready(b), "nothing was written yet");
        second.notify();
        set.wait(None).unwrap();
        assert!(!set.is_ready(a) && set.is_ready(b));
        assert!(set.readiness(b).readable && !set.readiness(b).error);
        set.wait(Some(Duration::ZERO)).unwrap();
        assert!(set.is_ready(b), "level-triggered: still ready until drained");
        second.drain();
        set.wait(Some(Duration::ZERO)).unwrap();
        assert!(!set.is_ready(b));
        assert_eq!(set.readiness(b + 1), Readiness::default());
    }

    #[test]
    fn a_slice_is_accepted_for_the_calling_thread() {
        // Linux 6.12 and later take it; older kernels ignore the field. Either way no error and no privilege.
        std::thread::spawn(|| set_current_thread_slice(Duration::from_micros(100)).unwrap()).join().unwrap();
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
    fn a_poller_reports_what_each_descriptor_is_ready_for() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        let at_once = connect(fd.as_fd(), listener.local_addr().unwrap()).unwrap();
        let mut poller = Poller::new(&[]);
        let i = poller.add(fd.as_fd(), Interest::BOTH);
        poller.wait(Some(Duration::from_secs(5))).unwrap();
        let ready = poller.readiness(i);
        assert!(at_once || ready.writable, "a connected socket is writable: {ready:?}");
        assert!(!ready.readable && !ready.error, "{ready:?}");
        assert_eq!(poller.readiness(i + 1), Readiness::default());
        poller.clear();
        poller.wait(Some(Duration::ZERO)).unwrap();
        assert!(!poller.readiness(i).any());
    }

    #[test]
    fn bind_then_connect_uses_the_bound_source() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        bind(fd.as_fd(), "127.0.0.2:0".parse().unwrap()).unwrap();
        connect(fd.as_fd(), listener.local_addr().unwrap()).unwrap();
        let (_accepted, from) = listener.accept().unwrap();
        assert_eq!(from.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_refused_connection_surfaces_in_so_error() {
        // A port nobody listens on: bind a listener, note its port, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let fd = socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
        match connect(fd.as_fd(), SocketAddr::from(([127, 0, 0, 1], port))) {
            Err(err) => assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED)),
            Ok(_) => {
                let mut poller = Poller::new(&[]);
                poller.add(fd.as_fd(), Interest::WRITE);
                poller.wait(Some(Duration::from_secs(5))).unwrap();
                let err = std::net::TcpStream::from(fd).take_error().unwrap().expect("an error");
                assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED));
            }
        }
    }

    #[test]
    fn tcp_md5_keys_are_accepted_for_both_families_and_bounded() {
        for (domain, peer) in [(libc::AF_INET, "192.0.2.1"), (libc::AF_INET6, "2001:db8::1")] {
            let fd = socket(domain, libc::SOCK_STREAM, 0).unwrap();
            set_tcp_md5_key(fd.as_fd(), peer.parse().unwrap(), b"secret").unwrap();
            set_tcp_md5_key(fd.as_fd(), peer.parse().unwrap(), &[b'k'; TCP_MD5_MAX_KEY_LEN]).unwrap();
            let err = set_tcp_md5_key(fd.as_fd(), peer.parse().unwrap(), &[b'k'; 81]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        }
    }

    #[test]
    fn interface_addresses_include_loopback() {
        let addrs = interface_addresses().unwrap();
        assert!(
            addrs.iter().any(|a| a.addr == IpAddr::V4(Ipv4Addr::LOCALHOST) && !a.interface.is_empty()),
            "{addrs:?}"
        );
    }

    #[test]
    fn pinning_to_a_cpu_beyond_the_set_is_refused() {
        let err = pin_current_thread(libc::CPU_SETSIZE as usize).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
}
