//! The layer 2 system calls: AF_PACKET sockets with their BPF filter, multicast memberships, a receive ring
//! (or batched receive without one) and batched send, and the AF_INET6 socket that joins solicited-node groups.
//!
//! This is the only module of the crate with `unsafe` code. Every block calls one libc function with pointers
//! to live, correctly sized values owned by the caller's stack frame or by `self`, and says so in its `SAFETY`
//! comment. What other protocol threads need too (sockets, socket options, eventfd, poll, setns) is in
//! metallb-sys. Nothing here decides anything.

use std::cell::Cell;
use std::io;
use std::mem;
use std::net::Ipv6Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use metallb_sys::syscall::{check, setsockopt, socket};

use crate::filter::Instruction;

/// `ETH_P_ALL`: every protocol. The BPF filter narrows it to ARP requests and neighbor solicitations.
pub const ETH_P_ALL: u16 = 0x0003;
/// `sll_pkttype` of a frame this host sends, seen again by a packet tap.
pub const PACKET_OUTGOING: u8 = 4;
/// Frames a batch receives or sends with one system call.
pub const BATCH: usize = 64;
/// Receive buffer per frame: a full standard Ethernet frame. Longer frames are reported as truncated.
pub const FRAME_CAP: usize = 1536;

const SOL_PACKET: libc::c_int = 263;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_DROP_MEMBERSHIP: libc::c_int = 2;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_MR_MULTICAST: libc::c_ushort = 0;
const SO_ATTACH_FILTER: libc::c_int = 26;
const SO_RCVBUFFORCE: libc::c_int = 33;
const SO_SNDBUFFORCE: libc::c_int = 32;
const SO_TIMESTAMPNS: libc::c_int = 35;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const TPACKET_V2: libc::c_int = 1;
/// Bytes of one receive ring slot: the slot header, the link-layer address, then the frame (at most
/// `RING_FRAME - 66` bytes of it, 446: ARP and neighbor discovery frames are under 100; a longer frame is
/// cut and dropped as truncated). Eight slots per page.
pub const RING_FRAME: usize = 512;
/// `TPACKET_ALIGN(sizeof(struct tpacket2_hdr))`: where the `sockaddr_ll` of a ring slot starts.
const RING_ADDR_OFFSET: usize = 32;

#[repr(C)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const SockFilter,
}

#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: libc::c_ushort,
    mr_alen: libc::c_ushort,
    mr_address: [u8; 8],
}

#[repr(C)]
#[derive(Default)]
struct TpacketStats {
    tp_packets: libc::c_uint,
    tp_drops: libc::c_uint,
}

/// A raw AF_PACKET socket bound to one interface.
///
/// Created with protocol 0 so it receives nothing until bound; the filter is attached before the bind, so no
/// frame the filter would refuse is ever queued on it.
///
/// Frames are read either from a receive ring shared with the kernel ([`PacketSocket::map_receive_ring`]: no
/// system call per batch) or, without one, with recvmmsg(); [`PacketSocket::recv_batch`] does either.
#[derive(Debug)]
pub struct PacketSocket {
    // Declared before `fd`: the ring is unmapped before the socket closes.
    ring: Option<RxRing>,
    fd: OwnedFd,
    ifindex: i32,
}

/// What `SIOCGIFHWADDR` reports: the ARPHRD_* hardware type and the first six address bytes.
#[derive(Clone, Copy, Debug)]
pub struct HardwareAddress {
    pub hw_type: u16,
    pub mac: [u8; 6],
}

/// `ARPHRD_ETHER`: Ethernet and everything that looks like it (veth, bridges, bonds, VLANs, macvlan).
pub const ARPHRD_ETHER: u16 = 1;

impl PacketSocket {
    /// An unbound packet socket (receives nothing yet). Fails with `EPERM` without CAP_NET_RAW.
    pub fn unbound() -> io::Result<Self> {
        Ok(PacketSocket { ring: None, fd: socket(libc::AF_PACKET, libc::SOCK_RAW, 0)?, ifindex: 0 })
    }

    /// The index of interface `name` in this socket's network namespace (`ENODEV` if there is none).
    pub fn interface_index(&self, name: &str) -> io::Result<i32> {
        let mut req = ifreq(name)?;
        // SAFETY: `req` is a valid `ifreq` with a NUL-terminated name; SIOCGIFINDEX writes `ifru_ifindex` in it.
        check(unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFINDEX as _, &mut req) })?;
        // SAFETY: the kernel filled the `ifru_ifindex` member of the union for this request.
        Ok(unsafe { req.ifr_ifru.ifru_ifindex })
    }

    /// The hardware type and address of interface `name`.
    pub fn hardware_address(&self, name: &str) -> io::Result<HardwareAddress> {
        let mut req = ifreq(name)?;
        // SAFETY: as above; SIOCGIFHWADDR writes a `sockaddr` into `ifru_hwaddr`.
        check(unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFHWADDR as _, &mut req) })?;
        // SAFETY: the kernel filled the `ifru_hwaddr` member of the union for this request.
        let addr = unsafe { req.ifr_ifru.ifru_hwaddr };
        let mut mac = [0u8; 6];
        for (out, byte) in mac.iter_mut().zip(addr.sa_data.iter()) {
            *out = *byte as u8;
        }
        Ok(HardwareAddress { hw_type: addr.sa_family, mac })
    }

    /// Attaches a classic BPF program; frames it returns 0 for are never queued on the socket.
    pub fn attach_filter(&self, program: &[Instruction]) -> io::Result<()> {
        let code: Vec<SockFilter> =
            program.iter().map(|i| SockFilter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect();
        let len = libc::c_ushort::try_from(code.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long"))?;
        // The kernel copies the program during setsockopt, so `code` only has to outlive the call.
        setsockopt(self.fd.as_fd(), libc::SOL_SOCKET, SO_ATTACH_FILTER, &SockFprog { len, filter: code.as_ptr() })
    }

    /// Binds to interface `ifindex` for `protocol` (host order, e.g. [`ETH_P_ALL`]); frames start arriving.
    pub fn bind(&mut self, ifindex: i32, protocol: u16) -> io::Result<()> {
        let addr = sockaddr_ll(ifindex, protocol, None);
        // SAFETY: `addr` is a valid `sockaddr_ll` and the length passed is its size.
        let ret = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        check(ret)?;
        self.ifindex = ifindex;
        Ok(())
    }

    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// Sets the receive buffer; beyond `net.core.rmem_max` this needs CAP_NET_ADMIN (SO_RCVBUFFORCE), and
    /// without it the buffer is capped at that limit.
    pub fn set_receive_buffer(&self, bytes: usize) -> io::Result<()> {
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        setsockopt(self.fd.as_fd(), libc::SOL_SOCKET, SO_RCVBUFFORCE, &value)
            .or_else(|_| setsockopt(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, &value))
    }

    /// Same as [`set_receive_buffer`](Self::set_receive_buffer) for the send buffer.
    pub fn set_send_buffer(&self, bytes: usize) -> io::Result<()> {
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        setsockopt(self.fd.as_fd(), libc::SOL_SOCKET, SO_SNDBUFFORCE, &value)
            .or_else(|_| setsockopt(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF, &value))
    }

    /// Asks for a kernel receive timestamp (nanoseconds, CLOCK_REALTIME) with every frame.
    pub fn enable_timestamps(&self) -> io::Result<()> {
        setsockopt(self.fd.as_fd(), libc::SOL_SOCKET, SO_TIMESTAMPNS, &1 as &libc::c_int)
    }

    /// Leaves out the frames this host sends (its own replies and the kernel's), which a packet socket bound to
    /// every protocol otherwise receives too, each one a wake-up for nothing. Linux 4.20 and later.
    pub fn ignore_outgoing(&self) -> io::Result<()> {
        setsockopt(self.fd.as_fd(), SOL_PACKET, PACKET_IGNORE_OUTGOING, &1 as &libc::c_int)
    }

    /// Makes the kernel write received frames into a ring of `frames` slots of [`RING_FRAME`] bytes mapped
    /// into this process (TPACKET_V2: poll() wakes on every frame), so [`recv_batch`](Self::recv_batch)
    /// reads them without a system call. Call before [`bind`](Self::bind); on error the socket is unchanged
    /// and receives with recvmmsg(). The ring is locked kernel memory: `frames * RING_FRAME` bytes.
    pub fn map_receive_ring(&mut self, frames: usize) -> io::Result<()> {
        // SAFETY: sysconf takes no pointers.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(RING_FRAME);
        let per_block = page / RING_FRAME;
        let blocks = frames.div_ceil(per_block).max(1);
        let frames = blocks * per_block;
        let as_uint = |n: usize| {
            libc::c_uint::try_from(n).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ring too large"))
        };
        let request = libc::tpacket_req {
            tp_block_size: as_uint(page)?,
            tp_block_nr: as_uint(blocks)?,
            tp_frame_size: as_uint(RING_FRAME)?,
            tp_frame_nr: as_uint(frames)?,
        };
        setsockopt(self.fd.as_fd(), SOL_PACKET, PACKET_VERSION, &TPACKET_V2)?;
        setsockopt(self.fd.as_fd(), SOL_PACKET, PACKET_RX_RING, &request)?;
        let len = blocks * page;
        // SAFETY: maps the ring the kernel just allocated for this socket (offset 0, its exact size); the
        // mapping is owned by the returned `RxRing`, which unmaps it once.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            let err = io::Error::last_os_error();
            // Without the mapping the ring is of no use: release it so recvmmsg() works again.
            let none = libc::tpacket_req { tp_block_size: 0, tp_block_nr: 0, tp_frame_size: 0, tp_frame_nr: 0 };
            let _ = setsockopt(self.fd.as_fd(), SOL_PACKET, PACKET_RX_RING, &none);
            return Err(err);
        }
        self.ring = Some(RxRing { map: map.cast(), len, frames, head: Cell::new(0) });
        Ok(())
    }

    /// Whether frames are read from a receive ring.
    pub fn has_receive_ring(&self) -> bool {
        self.ring.is_some()
    }

    /// Makes the interface accept frames for the Ethernet multicast address `mac` (without IPv6 on it).
    pub fn add_multicast(&self, mac: [u8; 6]) -> io::Result<()> {
        setsockopt(self.fd.as_fd(), SOL_PACKET, PACKET_ADD_MEMBERSHIP, &packet_mreq(self.ifindex, mac))
    }

    pub fn drop_multicast(&self, mac: [u8; 6]) -> io::Result<()> {
        setsockopt(self.fd.as_fd(), SOL_PACKET, PACKET_DROP_MEMBERSHIP, &packet_mreq(self.ifindex, mac))
    }

    /// Frames the kernel dropped because the receive buffer was full, since the previous call (the kernel
    /// resets the count on every read).
    pub fn take_drops(&self) -> io::Result<u64> {
        let mut stats = TpacketStats::default();
        let mut len = mem::size_of::<TpacketStats>() as libc::socklen_t;
        // SAFETY: `stats` and `len` are live and `len` holds the size of `stats`; the kernel writes at most
        // that many bytes and updates `len`.
        let ret = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                SOL_PACKET,
                PACKET_STATISTICS,
                (&mut stats as *mut TpacketStats).cast(),
                &mut len,
            )
        };
        check(ret)?;
        Ok(u64::from(stats.tp_drops))
    }

    /// Receives up to [`BATCH`] frames without blocking; returns how many (0 when none is queued). An error
    /// the socket holds (ENETDOWN when the link goes down) is returned once, when nothing is queued.
    pub fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.count = 0;
        if let Some(ring) = &self.ring {
            while batch.count < BATCH {
                let i = batch.count;
                let Some(meta) = ring.take(&mut batch.bufs[i], batch.timestamps) else { break };
                batch.meta[i] = meta;
                batch.count += 1;
            }
            if batch.count == 0 {
                // Frames go to the ring, but errors still come the socket's way: poll() reports them until
                // they are read, and nothing else reads them here.
                let mut err: libc::c_int = 0;
                let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
                // SAFETY: `err` and `len` are live, `len` holds the size of `err`.
                let ret = unsafe {
                    libc::getsockopt(
                        self.fd.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_ERROR,
                        (&mut err as *mut libc::c_int).cast(),
                        &mut len,
                    )
                };
                check(ret)?;
                if err != 0 {
                    return Err(io::Error::from_raw_os_error(err));
                }
            }
            return Ok(batch.count);
        }
        // SAFETY: all-zero bytes are a valid value for these plain C structs (integers and null pointers).
        let mut addrs: [libc::sockaddr_ll; BATCH] = unsafe { mem::zeroed() };
        // SAFETY: as above.
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        let mut control = [[0u64; 8]; BATCH];
        let mut iovs: [libc::iovec; BATCH] =
            std::array::from_fn(|_| libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 });
        for (i, buf) in batch.bufs.iter_mut().enumerate() {
            iovs[i] = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: FRAME_CAP };
            let hdr = &mut hdrs[i].msg_hdr;
            hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_ll).cast();
            hdr.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            hdr.msg_iov = &mut iovs[i];
            hdr.msg_iovlen = 1;
            if batch.timestamps {
                hdr.msg_control = control[i].as_mut_ptr().cast();
                hdr.msg_controllen = mem::size_of_val(&control[i]) as _;
            }
        }
        // SAFETY: every header points at its own live address, iovec (into `batch.bufs`, FRAME_CAP bytes each)
        // and control buffer, all of which outlive the call; the count passed is the array length.
        let ret = unsafe {
            libc::recvmmsg(self.fd.as_raw_fd(), hdrs.as_mut_ptr(), BATCH as _, libc::MSG_DONTWAIT, std::ptr::null_mut())
        };
        if ret < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(err),
            };
        }
        let count = ret as usize;
        for i in 0..count {
            let hdr = &hdrs[i].msg_hdr;
            batch.meta[i] = RecvMeta {
                len: (hdrs[i].msg_len as usize).min(FRAME_CAP),
                truncated: hdr.msg_flags & libc::MSG_TRUNC != 0,
                pkttype: addrs[i].sll_pkttype,
                timestamp: if batch.timestamps { timestamp_of(hdr) } else { None },
            };
        }
        batch.count = count;
        Ok(count)
    }

    /// Sends frames from the start of `frames` to this socket's interface with one system call (at most
    /// [`BATCH`]); returns how many were sent. Fewer than asked means the next one failed: the caller decides
    /// whether to skip it.
    pub fn send_some<B: AsRef<[u8]>>(&self, frames: &[B]) -> io::Result<usize> {
        if let [frame] = frames {
            // One frame (an answer to one request, the usual case) goes with sendto(): no batch arrays to
            // fill on the way from a wake-up to the reply.
            return self.send_one(frame.as_ref()).map(|()| 1);
        }
        let n = frames.len().min(BATCH);
        let mut addrs = [sockaddr_ll(self.ifindex, 0, None); BATCH];
        // SAFETY: all-zero bytes are a valid value for this plain C struct (integers and null pointers).
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        let mut iovs: [libc::iovec; BATCH] =
            std::array::from_fn(|_| libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 });
        for (i, frame) in frames[..n].iter().enumerate() {
            let frame = frame.as_ref();
            addrs[i] = frame_address(self.ifindex, frame);
            // The kernel only reads from the buffer; iovec's field is `*mut` for both directions.
            iovs[i] = libc::iovec { iov_base: frame.as_ptr() as *mut libc::c_void, iov_len: frame.len() };
            let hdr = &mut hdrs[i].msg_hdr;
            hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_ll).cast();
            hdr.msg_namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            hdr.msg_iov = &mut iovs[i];
            hdr.msg_iovlen = 1;
        }
        if n == 0 {
            return Ok(0);
        }
        // SAFETY: the first `n` headers point at live addresses and iovecs over the caller's frames, which
        // outlive the call; the kernel reads them and writes only `msg_len`.
        let ret = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), hdrs.as_mut_ptr(), n as _, libc::MSG_DONTWAIT) };
        check(ret).map(|n| n as usize)
    }

    /// Sends one frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.send_one(frame)
    }

    fn send_one(&self, frame: &[u8]) -> io::Result<()> {
        let addr = frame_address(self.ifindex, frame);
        // SAFETY: `frame` and `addr` are live for the call and the lengths passed are theirs; the kernel only
        // reads them.
        let ret = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
                (&addr as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Where a frame goes: its interface, and the EtherType and destination MAC read off the frame.
fn frame_address(ifindex: i32, frame: &[u8]) -> libc::sockaddr_ll {
    let ethertype = if frame.len() >= 14 { u16::from_be_bytes([frame[12], frame[13]]) } else { 0 };
    let dst: [u8; 6] = frame.get(..6).and_then(|d| d.try_into().ok()).unwrap_or([0; 6]);
    sockaddr_ll(ifindex, ethertype, Some(dst))
}

fn sockaddr_ll(ifindex: i32, protocol: u16, dst: Option<[u8; 6]>) -> libc::sockaddr_ll {
    let mut addr = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol.to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    if let Some(mac) = dst {
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&mac);
    }
    addr
}

fn packet_mreq(ifindex: i32, mac: [u8; 6]) -> PacketMreq {
    let mut mr_address = [0u8; 8];
    mr_address[..6].copy_from_slice(&mac);
    PacketMreq { mr_ifindex: ifindex, mr_type: PACKET_MR_MULTICAST, mr_alen: 6, mr_address }
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains(['\0', '/']) {
        return Err(io::Error::from_raw_os_error(libc::ENODEV));
    }
    // SAFETY: all-zero bytes are a valid `ifreq` (a name of NULs and a union of integers).
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (out, byte) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *out = byte as libc::c_char;
    }
    Ok(req)
}

fn timestamp_of(hdr: &libc::msghdr) -> Option<Duration> {
    // SAFETY: `hdr` was filled by recvmmsg, so its control pointer and length describe a valid control buffer;
    // CMSG_FIRSTHDR/CMSG_NXTHDR stay inside it and return null at its end.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == SO_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                return Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32));
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
}

/// A TPACKET_V2 receive ring mapped from the kernel: `frames` slots of [`RING_FRAME`] bytes, each owned by the
/// kernel until it sets TP_STATUS_USER in the slot's status word, then by us until we set it back to
/// TP_STATUS_KERNEL. `head` is the next slot the kernel fills (it fills them in order).
#[derive(Debug)]
struct RxRing {
    map: *mut u8,
    len: usize,
    frames: usize,
    head: Cell<usize>,
}

// SAFETY: the mapping belongs to this value alone (nothing else holds its address), so it may move to another
// thread with its owner; `Cell` keeps it from being shared between threads.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Copies the frame in the head slot into `out` and hands the slot back to the kernel; `None` while the
    /// kernel still owns it (nothing received).
    fn take(&self, out: &mut [u8; FRAME_CAP], timestamps: bool) -> Option<RecvMeta> {
        let head = self.head.get();
        // SAFETY: `head < frames`, so the slot lies inside the mapping; slots are RING_FRAME-aligned, so the
        // status word at its start is an aligned u32, which the kernel also updates atomically.
        let slot = unsafe { self.map.add(head * RING_FRAME) };
        // SAFETY: as above; AtomicU32 has the layout of the kernel's __u32 status word.
        let status = unsafe { &*slot.cast::<AtomicU32>() };
        // Acquire: the frame bytes the kernel wrote before setting the status are visible after this load.
        if status.load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
            return None;
        }
        // SAFETY: the slot is ours until the release below; its header and address are inside the slot
        // (RING_ADDR_OFFSET + sizeof(sockaddr_ll) < RING_FRAME) and read by value, unaligned-safe.
        let (hdr, addr) = unsafe {
            (
                std::ptr::read_unaligned(slot.cast::<libc::tpacket2_hdr>()),
                std::ptr::read_unaligned(slot.add(RING_ADDR_OFFSET).cast::<libc::sockaddr_ll>()),
            )
        };
        let mac = usize::from(hdr.tp_mac).min(RING_FRAME);
        let len = (hdr.tp_snaplen as usize).min(RING_FRAME - mac).min(FRAME_CAP);
        // SAFETY: `mac + len <= RING_FRAME`: the bytes read are inside our slot; `out` holds FRAME_CAP >= len.
        unsafe { std::ptr::copy_nonoverlapping(slot.add(mac), out.as_mut_ptr(), len) };
        // Release: our reads of the slot are done before the kernel may write it again.
        status.store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.head.set((head + 1) % self.frames);
        Some(RecvMeta {
            len,
            truncated: (hdr.tp_len as usize) > len,
            pkttype: addr.sll_pkttype,
            timestamp: timestamps.then(|| Duration::new(u64::from(hdr.tp_sec), hdr.tp_nsec)),
        })
    }
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `map_receive_ring`, once; no reference into it remains.
        unsafe { libc::munmap(self.map.cast(), self.len) };
    }
}

/// Metadata of one received frame.
#[derive(Clone, Copy, Default, Debug)]
pub struct RecvMeta {
    pub len: usize,
    /// The frame was longer than what was kept of it ([`FRAME_CAP`], or a ring slot's room) and was cut.
    pub truncated: bool,
    /// `sll_pkttype`: host, broadcast, multicast, other host or outgoing.
    pub pkttype: u8,
    /// Kernel receive time (CLOCK_REALTIME), when timestamps are enabled.
    pub timestamp: Option<Duration>,
}

/// Buffers for [`PacketSocket::recv_batch`], allocated once and reused.
pub struct RecvBatch {
    bufs: Box<[[u8; FRAME_CAP]; BATCH]>,
    meta: [RecvMeta; BATCH],
    count: usize,
    timestamps: bool,
}

impl RecvBatch {
    pub fn new(timestamps: bool) -> Self {
        RecvBatch { bufs: Box::new([[0; FRAME_CAP]; BATCH]), meta: [RecvMeta::default(); BATCH], count: 0, timestamps }
    }

    /// The frames of the last receive, with their metadata.
    pub fn frames(&self) -> impl Iterator<Item = (&[u8], &RecvMeta)> {
        self.bufs[..self.count].iter().zip(&self.meta[..self.count]).map(|(buf, meta)| (&buf[..meta.len], meta))
    }
}

/// An AF_INET6 datagram socket used only to join solicited-node groups: an IPv6-level join makes the kernel
/// send MLD reports (so snooping switches forward the group to us) and program the NIC's multicast filter.
#[derive(Debug)]
pub struct GroupSocket {
    fd: OwnedFd,
}

impl GroupSocket {
    pub fn new() -> io::Result<Self> {
        Ok(GroupSocket { fd: socket(libc::AF_INET6, libc::SOCK_DGRAM, 0)? })
    }

    pub fn join(&self, group: Ipv6Addr, ifindex: i32) -> io::Result<()> {
        setsockopt(self.fd.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP, &ipv6_mreq(group, ifindex))
    }

    pub fn leave(&self, group: Ipv6Addr, ifindex: i32) -> io::Result<()> {
        setsockopt(self.fd.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_DROP_MEMBERSHIP, &ipv6_mreq(group, ifindex))
    }
}

fn ipv6_mreq(group: Ipv6Addr, ifindex: i32) -> libc::ipv6_mreq {
    libc::ipv6_mreq {
        ipv6mr_multiaddr: libc::in6_addr { s6_addr: group.octets() },
        ipv6mr_interface: ifindex as libc::c_uint,
    }
}
