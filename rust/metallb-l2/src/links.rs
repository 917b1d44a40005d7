//! Link notifications: the kernel's RTMGRP_LINK messages (a link added, changed, deleted), read from a
//! NETLINK_ROUTE socket opened in the responder's network namespace.
//!
//! A speaker waits on a [`LinkWatch`] and rescans its interfaces when one arrives, so an interface created
//! after the start (a VLAN) is served as soon as it is up, and one deleted is dropped at once, with no polling
//! period in between. Decoding ([`parse_link_messages`]) is pure and table-tested; the socket is opened with
//! metallb-sys's safe helpers, without `unsafe` here.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::thread;
use std::time::Duration;

use metallb_sys::syscall::{setsockopt, socket};
use metallb_sys::Poller;

use crate::{iface, L2Error};

const NETLINK_ROUTE: libc::c_int = 0;
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_ADD_MEMBERSHIP: libc::c_int = 1;
const RTNLGRP_LINK: libc::c_int = 1;
const NLMSG_NOOP: u16 = 1;
const NLMSG_HEADER: usize = 16;
const IFINFOMSG: usize = 16;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const IFLA_IFNAME: u16 = 3;
const IFF_UP: u32 = 1;
/// Room for a burst of notifications (each is about 1.5 KiB with every attribute the kernel adds).
const RECEIVE_BUFFER: usize = 64 << 10;

/// One link notification.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum LinkEvent {
    /// RTM_NEWLINK: a link was created or changed (up or down, address, master, ...).
    Changed { index: i32, name: String, up: bool },
    /// RTM_DELLINK: a link was deleted.
    Removed { index: i32, name: String },
    /// The kernel dropped notifications (the socket's buffer overflowed): anything may have changed.
    Overflow,
}

/// A NETLINK_ROUTE socket subscribed to link notifications, in one network namespace.
#[derive(Debug)]
pub struct LinkWatch {
    socket: File,
    poller: Poller,
    netns: Option<String>,
    buf: Vec<u8>,
}

impl LinkWatch {
    /// Subscribes to the link notifications of `netns` (a namespace under /var/run/netns; `None`: the
    /// caller's). The socket is opened on a short-lived thread that enters the namespace (a socket belongs to
    /// the namespace it was created in), so the calling thread stays where it is.
    pub fn open(netns: Option<&str>) -> Result<Self, L2Error> {
        let owned = match netns {
            None => subscribe(),
            Some(name) => {
                let name = name.to_string();
                thread::Builder::new()
                    .name("metallb-links".into())
                    .spawn(move || {
                        iface::enter_netns(&name)?;
                        subscribe()
                    })
                    .map_err(|e| L2Error::io("starting a thread to enter the namespace", "CAP_SYS_ADMIN", e))?
                    .join()
                    .map_err(|_| L2Error::Stopped("the thread opening the link watch panicked".into()))?
            }
        }?;
        let poller = Poller::new(&[owned.as_fd()]);
        Ok(LinkWatch {
            socket: File::from(owned),
            poller,
            netns: netns.map(str::to_string),
            buf: vec![0; RECEIVE_BUFFER],
        })
    }

    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// Waits until notifications arrive or `timeout` passes (`None`: no limit) and returns every one queued
    /// (none after a timeout).
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Vec<LinkEvent>, L2Error> {
        self.poller.wait(timeout).map_err(|e| L2Error::io("waiting for link notifications", "CAP_NET_ADMIN", e))?;
        self.drain()
    }

    /// The notifications queued now, without waiting.
    pub fn drain(&mut self) -> Result<Vec<LinkEvent>, L2Error> {
        let mut events = Vec::new();
        loop {
            match self.socket.read(&mut self.buf) {
                Ok(0) => return Ok(events),
                Ok(n) => events.extend(parse_link_messages(&self.buf[..n])),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(events),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                // The kernel could not queue a notification: say so once, and keep reading what is queued.
                Err(err) if err.raw_os_error() == Some(libc::ENOBUFS) => {
                    if events.last() != Some(&LinkEvent::Overflow) {
                        events.push(LinkEvent::Overflow);
                    }
                }
                Err(err) => return Err(L2Error::io("reading link notifications", "CAP_NET_ADMIN", err)),
            }
        }
    }
}

impl AsFd for LinkWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// A non-blocking NETLINK_ROUTE socket in the calling thread's namespace, subscribed to RTNLGRP_LINK.
fn subscribe() -> Result<OwnedFd, L2Error> {
    let context = "opening a netlink socket for link notifications";
    let fd = socket(libc::AF_NETLINK, libc::SOCK_RAW, NETLINK_ROUTE)
        .map_err(|e| L2Error::io(context, "CAP_NET_ADMIN", e))?;
    setsockopt(fd.as_fd(), SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &RTNLGRP_LINK)
        .map_err(|e| L2Error::io("subscribing to link notifications", "CAP_NET_ADMIN", e))?;
    let mut socket = File::from(fd);
    // The kernel skips a socket without a port id when it broadcasts: sending anything binds one (autobind).
    // A NOOP message without the ACK flag asks the kernel for nothing, so nothing comes back.
    socket.write_all(&noop_message()).map_err(|e| L2Error::io("binding the netlink socket", "CAP_NET_ADMIN", e))?;
    Ok(OwnedFd::from(socket))
}

fn noop_message() -> [u8; NLMSG_HEADER] {
    let mut header = [0u8; NLMSG_HEADER];
    header[..4].copy_from_slice(&(NLMSG_HEADER as u32).to_ne_bytes());
    header[4..6].copy_from_slice(&NLMSG_NOOP.to_ne_bytes());
    header
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    buf.get(at..at + 2).map(|b| u16::from_ne_bytes([b[0], b[1]]))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    buf.get(at..at + 4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The link events in one datagram of netlink messages (host byte order). Other message types are skipped;
/// a truncated message ends the datagram.
pub fn parse_link_messages(buf: &[u8]) -> Vec<LinkEvent> {
    let mut events = Vec::new();
    let mut at = 0;
    while let (Some(len), Some(kind)) = (u32_at(buf, at), u16_at(buf, at + 4)) {
        let len = len as usize;
        let Some(message) = buf.get(at..at + len).filter(|_| len >= NLMSG_HEADER) else { break };
        if let Some(event) = link_event(kind, &message[NLMSG_HEADER..]) {
            events.push(event);
        }
        at += align4(len);
    }
    events
}

/// An RTM_NEWLINK or RTM_DELLINK body: an ifinfomsg, then attributes (the name is IFLA_IFNAME).
fn link_event(kind: u16, body: &[u8]) -> Option<LinkEvent> {
    if kind != RTM_NEWLINK && kind != RTM_DELLINK {
        return None;
    }
    let index = u32_at(body, 4)? as i32;
    let flags = u32_at(body, 8)?;
    let mut name = String::new();
    let mut at = IFINFOMSG;
    while let (Some(len), Some(attr)) = (u16_at(body, at), u16_at(body, at + 2)) {
        let len = usize::from(len);
        let Some(value) = body.get(at + 4..at + len).filter(|_| len >= 4) else { break };
        if attr & 0x3fff == IFLA_IFNAME {
            let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
            name = String::from_utf8_lossy(&value[..end]).into_owned();
            break;
        }
        at += align4(len);
    }
    Some(match kind {
        RTM_NEWLINK => LinkEvent::Changed { index, name, up: flags & IFF_UP != 0 },
        _ => LinkEvent::Removed { index, name },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A netlink message of `kind` about link `index` named `name` with `flags`, and one attribute before
    /// the name (as the kernel sends: IFLA_IFNAME is not first).
    fn message(kind: u16, index: i32, name: &str, flags: u32) -> Vec<u8> {
        let mut body = vec![0u8; IFINFOMSG];
        body[4..8].copy_from_slice(&index.to_ne_bytes());
        body[8..12].copy_from_slice(&flags.to_ne_bytes());
        // IFLA_MTU (4), 4 bytes.
        body.extend_from_slice(&8u16.to_ne_bytes());
        body.extend_from_slice(&4u16.to_ne_bytes());
        body.extend_from_slice(&1500u32.to_ne_bytes());
        let value = [name.as_bytes(), &[0]].concat();
        body.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        body.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
        body.extend_from_slice(&value);
        body.resize(align4(body.len()), 0);
        let mut out = Vec::new();
        out.extend_from_slice(&((NLMSG_HEADER + body.len()) as u32).to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&[0; 10]);
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn new_and_deleted_links_in_one_datagram() {
        let datagram = [
            message(RTM_NEWLINK, 7, "eth0.100", IFF_UP | 0x1000),
            message(RTM_DELLINK, 5, "veth1", 0),
            message(RTM_NEWLINK, 8, "eth1", 0),
        ]
        .concat();
        assert_eq!(
            parse_link_messages(&datagram),
            vec![
                LinkEvent::Changed { index: 7, name: "eth0.100".into(), up: true },
                LinkEvent::Removed { index: 5, name: "veth1".into() },
                LinkEvent::Changed { index: 8, name: "eth1".into(), up: false },
            ]
        );
    }

    #[test]
    fn other_messages_are_skipped_and_truncation_ends_the_datagram() {
        let mut noop = noop_message().to_vec();
        noop.extend(message(RTM_DELLINK, 3, "x", 0));
        assert_eq!(parse_link_messages(&noop), vec![LinkEvent::Removed { index: 3, name: "x".into() }]);
        let whole = message(RTM_NEWLINK, 2, "eth0", IFF_UP);
        for cut in 0..whole.len() {
            assert_eq!(parse_link_messages(&whole[..cut]), vec![], "cut at {cut}");
        }
        // A length below the header's own would loop forever if it were trusted.
        let mut bad = whole.clone();
        bad[..4].copy_from_slice(&3u32.to_ne_bytes());
        assert_eq!(parse_link_messages(&bad), vec![]);
    }

    #[test]
    fn a_link_without_a_name_attribute_still_counts() {
        let mut body = vec![0u8; IFINFOMSG];
        body[4..8].copy_from_slice(&9i32.to_ne_bytes());
        let mut out = ((NLMSG_HEADER + body.len()) as u32).to_ne_bytes().to_vec();
        out.extend_from_slice(&RTM_DELLINK.to_ne_bytes());
        out.extend_from_slice(&[0; 10]);
        out.extend_from_slice(&body);
        assert_eq!(parse_link_messages(&out), vec![LinkEvent::Removed { index: 9, name: String::new() }]);
    }
}
