//! An outgoing TCP connection as a routing protocol opens it: non-blocking, optionally from a chosen source
//! address, with a fixed TTL (hop limit), an RFC 2385 MD5 key and no Nagle delay. Safe code over [`syscall`].
//!
//! [`syscall`]: crate::syscall

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsFd;

use crate::syscall::{self, setsockopt};

/// How to open the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpConnect {
    pub peer: SocketAddr,
    /// The local address to connect from (port chosen by the kernel); `None` lets routing choose.
    pub source: Option<IpAddr>,
    /// The TTL (IPv4) or hop limit (IPv6) of every segment; `None` keeps the system default.
    pub ttl: Option<u8>,
    /// The RFC 2385 key shared with the peer; `None` sends unsigned segments.
    pub md5_key: Option<Vec<u8>>,
}

/// Which step of opening the connection failed, with the system's reason.
#[derive(Debug)]
pub struct ConnectError {
    pub step: ConnectStep,
    pub source: io::Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectStep {
    Socket,
    Bind(IpAddr),
    Ttl(u8),
    Md5,
    NoDelay,
    Connect,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            ConnectStep::Socket => write!(f, "cannot create a TCP socket: {}", self.source),
            ConnectStep::Bind(addr) => {
                write!(f, "cannot bind the source address {addr}: {} (is it an address of this host?)", self.source)
            }
            ConnectStep::Ttl(ttl) => write!(f, "cannot set the TTL to {ttl}: {}", self.source),
            ConnectStep::Md5 => write!(f, "cannot set the TCP MD5 key: {}", self.source),
            ConnectStep::NoDelay => write!(f, "cannot set TCP_NODELAY: {}", self.source),
            ConnectStep::Connect => write!(f, "{}", self.source),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A connection being opened: wait until the socket is writable (or in error), then call [`Connecting::finish`].
#[derive(Debug)]
pub struct Connecting {
    stream: TcpStream,
    done: bool,
}

impl Connecting {
    /// The socket, to wait on.
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Whether connect() completed at once (loopback does), so there is nothing to wait for.
    pub fn is_connected(&self) -> bool {
        self.done
    }

    /// The open connection, or why it could not be opened (refused, unreachable, timed out by the kernel).
    /// Only meaningful once the socket is writable or in error.
    pub fn finish(self) -> io::Result<TcpStream> {
        if let Some(err) = self.stream.take_error()? {
            return Err(err);
        }
        // Writable without an error can still mean "not connected" after a reset raced the wake-up.
        self.stream.peer_addr()?;
        Ok(self.stream)
    }
}

/// Opens a non-blocking socket with the options of `spec` and starts connecting it.
pub fn connect(spec: &TcpConnect) -> Result<Connecting, ConnectError> {
    let fail = |step| move |source| ConnectError { step, source };
    let domain = if spec.peer.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    let fd = syscall::socket(domain, libc::SOCK_STREAM, 0).map_err(fail(ConnectStep::Socket))?;
    if let Some(source) = spec.source {
        syscall::bind(fd.as_fd(), SocketAddr::new(source, 0)).map_err(fail(ConnectStep::Bind(source)))?;
    }
    if let Some(ttl) = spec.ttl {
        let value = libc::c_int::from(ttl);
        let (level, name) = match spec.peer {
            SocketAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_TTL),
            SocketAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS),
        };
        setsockopt(fd.as_fd(), level, name, &value).map_err(fail(ConnectStep::Ttl(ttl)))?;
    }
    if let Some(key) = &spec.md5_key {
        syscall::set_tcp_md5_key(fd.as_fd(), spec.peer.ip(), key).map_err(fail(ConnectStep::Md5))?;
    }
    let one: libc::c_int = 1;
    setsockopt(fd.as_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, &one).map_err(fail(ConnectStep::NoDelay))?;
    let done = syscall::connect(fd.as_fd(), spec.peer).map_err(fail(ConnectStep::Connect))?;
    Ok(Connecting { stream: TcpStream::from(fd), done })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Duration;

    use super::*;
    use crate::{Interest, Poller};

    fn wait_writable(connecting: &Connecting) {
        let mut poller = Poller::new(&[]);
        poller.add(connecting.stream().as_fd(), Interest::WRITE);
        poller.wait(Some(Duration::from_secs(5))).unwrap();
    }

    #[test]
    fn connects_with_every_option_and_carries_bytes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let spec = TcpConnect {
            peer: listener.local_addr().unwrap(),
            source: Some("127.0.0.3".parse().unwrap()),
            ttl: Some(1),
            md5_key: None,
        };
        let connecting = connect(&spec).unwrap();
        wait_writable(&connecting);
        let mut stream = connecting.finish().unwrap();
        assert!(stream.nodelay().unwrap());
        assert_eq!(stream.ttl().unwrap(), 1);
        assert_eq!(stream.local_addr().unwrap().ip(), "127.0.0.3".parse::<IpAddr>().unwrap());
        let (mut accepted, _) = listener.accept().unwrap();
        stream.write_all(b"open").unwrap();
        let mut buf = [0; 4];
        accepted.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"open");
    }

    #[test]
    fn ipv6_takes_a_hop_limit() {
        let Ok(listener) = TcpListener::bind("[::1]:0") else { return }; // no IPv6 on this host
        let spec = TcpConnect { peer: listener.local_addr().unwrap(), source: None, ttl: Some(255), md5_key: None };
        let connecting = connect(&spec).unwrap();
        wait_writable(&connecting);
        connecting.finish().unwrap();
    }

    #[test]
    fn a_source_address_that_is_not_local_names_the_step() {
        let spec = TcpConnect {
            peer: "127.0.0.1:179".parse().unwrap(),
            source: Some("192.0.2.77".parse().unwrap()),
            ttl: None,
            md5_key: None,
        };
        let err = connect(&spec).unwrap_err();
        assert_eq!(err.step, ConnectStep::Bind("192.0.2.77".parse().unwrap()));
        assert!(err.to_string().starts_with("cannot bind the source address 192.0.2.77: "), "{err}");
    }

    #[test]
    fn the_same_md5_key_on_both_ends_connects() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        syscall::set_tcp_md5_key(listener.as_fd(), "127.0.0.1".parse().unwrap(), b"secret").unwrap();
        let spec = TcpConnect {
            peer: listener.local_addr().unwrap(),
            source: None,
            ttl: None,
            md5_key: Some(b"secret".to_vec()),
        };
        let connecting = connect(&spec).unwrap();
        wait_writable(&connecting);
        connecting.finish().unwrap();
        listener.accept().unwrap();
    }

    #[test]
    fn a_signed_syn_to_an_unsigned_listener_never_connects() {
        // The listener has no key, so its kernel drops the signed SYN: the connection stays in progress.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let spec = TcpConnect {
            peer: listener.local_addr().unwrap(),
            source: None,
            ttl: None,
            md5_key: Some(b"secret".to_vec()),
        };
        let connecting = connect(&spec).unwrap();
        let mut poller = Poller::new(&[]);
        poller.add(connecting.stream().as_fd(), Interest::WRITE);
        poller.wait(Some(Duration::from_millis(300))).unwrap();
        assert!(!poller.readiness(0).any(), "the handshake cannot complete");
        listener.set_nonblocking(true).unwrap();
        assert_eq!(listener.accept().unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }
}
