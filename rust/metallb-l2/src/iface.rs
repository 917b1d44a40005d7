//! Opening the responder's interfaces: index, MAC and a filtered, bound packet socket; entering a namespace.

use std::io;

use metallb_core::l2::Interface;
use metallb_core::packet::MacAddr;
use metallb_sys::NetnsError;

use crate::filter::RESPONDER_FILTER;
use crate::sys::{PacketSocket, ARPHRD_ETHER, ETH_P_ALL};
use crate::L2Error;

/// What a caller learns about an interface the responder serves.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct InterfaceInfo {
    pub name: String,
    pub index: i32,
    pub mac: MacAddr,
}

/// One served interface: its socket and what [`metallb_core::l2::decide`] needs to know about it.
#[derive(Debug)]
pub(crate) struct OpenInterface {
    pub info: InterfaceInfo,
    pub socket: PacketSocket,
    pub core: Interface,
}

/// Opens `name` in the calling thread's network namespace. `netns` only names it in errors.
pub(crate) fn open(name: &str, netns: Option<&str>, receive_buffer: usize) -> Result<OpenInterface, L2Error> {
    let mut socket = PacketSocket::unbound()
        .map_err(|e| L2Error::io(format!("opening a packet socket for {name:?}"), "CAP_NET_RAW", e))?;
    let not_found = || L2Error::InterfaceNotFound { name: name.to_string(), netns: netns.map(str::to_string) };
    let index = match socket.interface_index(name) {
        Ok(index) => index,
        Err(err) if err.raw_os_error() == Some(libc::ENODEV) => return Err(not_found()),
        Err(err) => return Err(L2Error::io(format!("looking up interface {name:?}"), "CAP_NET_RAW", err)),
    };
    let hw = socket
        .hardware_address(name)
        .map_err(|e| L2Error::io(format!("reading the MAC address of {name:?}"), "CAP_NET_RAW", e))?;
    let mac = MacAddr(hw.mac);
    if hw.hw_type != ARPHRD_ETHER || !mac.is_unicast() {
        return Err(L2Error::NoMacAddress { name: name.to_string(), hw_type: hw.hw_type });
    }
    let context = |what: &str| format!("{what} on {name:?}");
    socket
        .attach_filter(&RESPONDER_FILTER)
        .map_err(|e| L2Error::io(context("attaching the BPF filter"), "CAP_NET_RAW", e))?;
    // A small buffer is the first thing to overflow under a burst of requests; a bigger one is best effort.
    let _ = socket.set_receive_buffer(receive_buffer);
    let _ = socket.set_send_buffer(receive_buffer);
    // Best effort, both: without them the socket works as before (our own replies come back and are counted
    // as outgoing drops; frames are read with recvmmsg).
    let _ = socket.ignore_outgoing();
    let _ = socket.map_receive_ring(ring_frames(receive_buffer));
    socket.bind(index, ETH_P_ALL).map_err(|e| L2Error::io(context("binding the packet socket"), "CAP_NET_RAW", e))?;
    // Neighbor advertisements come from the target address itself, as Linux sends them for its own
    // addresses: the VIP is on no interface, and some clients (ndisc6) ignore an answer for a global target
    // that comes from a link-local source.
    let core = Interface { mac, link_local: None };
    Ok(OpenInterface { info: InterfaceInfo { name: name.to_string(), index, mac }, socket, core })
}

/// Slots of the receive ring for a socket buffer of `bytes`: an eighth of it in slots, at least 64 and at most
/// 8192 (4 MiB of locked memory per interface). The default 4 MiB buffer gives 1024 slots (512 KiB, resident
/// for as long as the interface is served: a quarter of the speaker's 2 MiB per interface before issue 14):
/// 10 ms of a 100k/s flood while the thread is descheduled, and a burst of a thousand requests at once.
fn ring_frames(bytes: usize) -> usize {
    (bytes / 8 / crate::sys::RING_FRAME).clamp(64, 8192)
}

/// Whether an error from a receive means the interface went down (it comes back by itself when it is up).
pub(crate) fn is_link_down(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENETDOWN | libc::ENXIO | libc::ENODEV))
}

/// Whether the link `interface` was opened on is still there: same name, same index, same MAC. A link
/// deleted and created again under its name (a VLAN re-created) has another index: its old socket never
/// receives again, so it must be opened anew.
pub(crate) fn still_same(interface: &OpenInterface) -> bool {
    let name = &interface.info.name;
    let index = interface.socket.interface_index(name);
    let mac = interface.socket.hardware_address(name).map(|hw| MacAddr(hw.mac));
    matches!((index, mac), (Ok(index), Ok(mac)) if index == interface.info.index && mac == interface.info.mac)
}

/// Whether an error says the link is gone (a deleted link took its group memberships with it).
pub(crate) fn is_gone(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENODEV | libc::ENXIO | libc::EADDRNOTAVAIL))
}

/// Enters `/var/run/netns/NAME` (the calling thread only).
pub(crate) fn enter_netns(name: &str) -> Result<(), L2Error> {
    metallb_sys::netns::enter(name).map_err(|err| match err {
        NetnsError::PermissionDenied => L2Error::PermissionDenied {
            what: format!("entering network namespace {name:?}"),
            capability: metallb_sys::netns::CAPABILITY,
        },
        _ => L2Error::Netns { name: name.to_string(), reason: err.to_string() },
    })
}
