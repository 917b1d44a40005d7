//! UDP sockets of a protocol that checks the TTL of what it receives (the Generalized TTL Security Mechanism,
//! RFC 5082, as BFD uses it): a fixed TTL (hop limit) on what the socket sends, and each received datagram
//! with its TTL and destination address. Non-blocking, IPv6 sockets IPv6-only. Safe code over [`syscall`].
//!
//! [`syscall`]: crate::syscall

use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;

use crate::syscall::{self, setsockopt};

pub use crate::syscall::DatagramInfo;

/// How to open the socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpOpen {
    /// The address and port to bind (port 0: any free port; the unspecified address: every local address).
    pub local: SocketAddr,
    /// The TTL (IPv4) or hop limit (IPv6) of every datagram sent; `None` keeps the system default.
    pub ttl: Option<u8>,
    /// Report each received datagram's TTL (hop limit) and destination address ([`recv`]).
    pub receive_info: bool,
}

/// Which step of opening the socket failed, with the system's reason.
#[derive(Debug)]
pub struct OpenError {
    pub step: OpenStep,
    pub source: io::Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenStep {
    Socket,
    V6Only,
    Ttl(u8),
    ReceiveTtl,
    ReceiveDestination,
    Bind(SocketAddr),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            OpenStep::Socket => write!(f, "cannot create a UDP socket: {}", self.source),
            OpenStep::V6Only => write!(f, "cannot make the UDP socket IPv6-only: {}", self.source),
            OpenStep::Ttl(ttl) => write!(f, "cannot set the TTL to {ttl}: {}", self.source),
            OpenStep::ReceiveTtl => write!(f, "cannot ask for the TTL of received datagrams: {}", self.source),
            OpenStep::ReceiveDestination => {
                write!(f, "cannot ask for the destination address of received datagrams: {}", self.source)
            }
            OpenStep::Bind(addr) => write!(f, "cannot bind {addr}: {}", self.source),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Opens a non-blocking UDP socket with the options of `spec`, bound to `spec.local`.
pub fn open(spec: &UdpOpen) -> Result<UdpSocket, OpenError> {
    let fail = |step| move |source| OpenError { step, source };
    let v4 = spec.local.is_ipv4();
    let fd = syscall::socket(if v4 { libc::AF_INET } else { libc::AF_INET6 }, libc::SOCK_DGRAM, 0)
        .map_err(fail(OpenStep::Socket))?;
    let one: libc::c_int = 1;
    if !v4 {
        // A wildcard IPv6 socket would otherwise take the IPv4 port too.
        setsockopt(fd.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &one).map_err(fail(OpenStep::V6Only))?;
    }
    if let Some(ttl) = spec.ttl {
        let value = libc::c_int::from(ttl);
        let (level, name) =
            if v4 { (libc::IPPROTO_IP, libc::IP_TTL) } else { (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS) };
        setsockopt(fd.as_fd(), level, name, &value).map_err(fail(OpenStep::Ttl(ttl)))?;
    }
    if spec.receive_info {
        let (level, ttl, destination) = if v4 {
            (libc::IPPROTO_IP, libc::IP_RECVTTL, libc::IP_PKTINFO)
        } else {
            (libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, libc::IPV6_RECVPKTINFO)
        };
        setsockopt(fd.as_fd(), level, ttl, &one).map_err(fail(OpenStep::ReceiveTtl))?;
        setsockopt(fd.as_fd(), level, destination, &one).map_err(fail(OpenStep::ReceiveDestination))?;
    }
    syscall::bind(fd.as_fd(), spec.local).map_err(fail(OpenStep::Bind(spec.local)))?;
    Ok(UdpSocket::from(fd))
}

/// Makes the kernel stamp each datagram with when it arrived ([`DatagramInfo::received`]): a thread that
/// reads its socket only now and then still knows when each datagram came.
pub fn receive_timestamps(socket: &UdpSocket) -> io::Result<()> {
    setsockopt(socket.as_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &(1 as libc::c_int))
}

/// The next queued datagram, copied into `buf`, with its source (and, for a socket opened with
/// `receive_info`, its TTL and destination); `None` when nothing is queued.
pub fn recv(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<Option<DatagramInfo>> {
    match syscall::recv_datagram(socket.as_fd(), buf) {
        Ok(info) => Ok(Some(info)),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;

    fn receiver(ip: IpAddr) -> UdpSocket {
        open(&UdpOpen { local: SocketAddr::new(ip, 0), ttl: None, receive_info: true }).unwrap()
    }

    fn sender(ip: IpAddr, ttl: u8) -> UdpSocket {
        open(&UdpOpen { local: SocketAddr::new(ip, 0), ttl: Some(ttl), receive_info: false }).unwrap()
    }

    /// The next datagram, waiting for it (loopback delivers at once, but asynchronously to a test).
    fn next(socket: &UdpSocket, buf: &mut [u8]) -> DatagramInfo {
        let mut poller = crate::Poller::new(&[socket.as_fd()]);
        poller.wait(Some(std::time::Duration::from_secs(5))).unwrap();
        recv(socket, buf).unwrap().expect("a datagram")
    }

    #[test]
    fn a_datagram_carries_when_it_arrived_when_asked() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (rx, tx) = (receiver(lo), sender(lo, 7));
        receive_timestamps(&rx).unwrap();
        // The kernel turns receive stamping on asynchronously (a deferred static key): until then a datagram
        // is stamped when it is read. Each try reads its datagram 20 ms after it was queued; one must say when
        // it came.
        let mut buf = [0; 64];
        let mut tries = Vec::new();
        for _ in 0..20 {
            let before = std::time::SystemTime::now();
            tx.send_to(b"beat", rx.local_addr().unwrap()).unwrap();
            let mut poller = crate::Poller::new(&[rx.as_fd()]);
            poller.wait(Some(std::time::Duration::from_secs(5))).unwrap();
            let queued = std::time::SystemTime::now(); // it arrived before it could be read
            std::thread::sleep(std::time::Duration::from_millis(20));
            let info = recv(&rx, &mut buf).unwrap().expect("a datagram");
            assert_eq!(info.ttl, Some(7));
            let received = info.received.expect("a timestamp");
            assert!(before <= received, "{before:?} <= {received:?}");
            if received <= queued {
                return;
            }
            tries.push((queued, received));
        }
        panic!("every datagram was stamped when read, not when it came: {tries:?}");
    }

    #[test]
    fn a_datagram_arrives_with_its_source_destination_and_ttl() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (rx, tx) = (receiver(lo), sender(lo, 7));
        tx.send_to(b"bfd", rx.local_addr().unwrap()).unwrap();
        let mut buf = [0; 64];
        let info = next(&rx, &mut buf);
        let want = DatagramInfo {
            len: 3,
            truncated: false,
            source: tx.local_addr().unwrap(),
            destination: Some(lo),
            ttl: Some(7),
            received: None,
        };
        assert_eq!(info, want);
        assert_eq!(&buf[..3], b"bfd");
        assert_eq!(recv(&rx, &mut buf).unwrap(), None, "nothing else is queued");
    }

    #[test]
    fn ipv6_reports_the_hop_limit() {
        let lo = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let Ok(rx) = open(&UdpOpen { local: SocketAddr::new(lo, 0), ttl: None, receive_info: true }) else {
            return; // no IPv6 on this host
        };
        let tx = sender(lo, 255);
        tx.send_to(b"bfd6", rx.local_addr().unwrap()).unwrap();
        let info = next(&rx, &mut [0; 64]);
        assert_eq!(
            (info.len, info.source, info.destination, info.ttl),
            (4, tx.local_addr().unwrap(), Some(lo), Some(255))
        );
    }

    #[test]
    fn a_datagram_longer_than_the_buffer_is_flagged() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (rx, tx) = (receiver(lo), sender(lo, 64));
        tx.send_to(&[1; 100], rx.local_addr().unwrap()).unwrap();
        let info = next(&rx, &mut [0; 24]);
        assert!(info.truncated && info.len == 24, "{info:?}");
    }

    #[test]
    fn without_receive_info_neither_ttl_nor_destination_is_reported() {
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (rx, tx) = (sender(lo, 1), sender(lo, 9));
        tx.send_to(b"x", rx.local_addr().unwrap()).unwrap();
        let info = next(&rx, &mut [0; 8]);
        assert_eq!((info.ttl, info.destination), (None, None));
    }

    #[test]
    fn an_ipv6_wildcard_socket_leaves_the_ipv4_port_free() {
        let Ok(v6) = open(&UdpOpen { local: "[::]:0".parse().unwrap(), ttl: None, receive_info: true }) else {
            return; // no IPv6 on this host
        };
        let port = v6.local_addr().unwrap().port();
        open(&UdpOpen { local: SocketAddr::from(([0, 0, 0, 0], port)), ttl: None, receive_info: true }).unwrap();
    }

    #[test]
    fn a_port_in_use_names_the_bind_step() {
        let first = receiver(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let taken = first.local_addr().unwrap();
        let err = open(&UdpOpen { local: taken, ttl: Some(255), receive_info: false }).unwrap_err();
        assert_eq!(err.step, OpenStep::Bind(taken));
        assert_eq!(err.source.raw_os_error(), Some(libc::EADDRINUSE));
        assert!(err.to_string().starts_with(&format!("cannot bind {taken}: ")), "{err}");
    }
}
