//! What the protocol threads of metallb-py share below their protocol: the layer 2 responder (metallb-l2), the
//! gossip member (metallb-gossip), and the BGP sessions (metallb-bgp).
//!
//! [`syscall`] holds every `unsafe` block of the crate, each a single libc call behind a safe function:
//! sockets and socket options, the eventfd that wakes a thread, poll, CPU pinning, the scheduler time slice, setns. [`netns`] enters a
//! named network namespace with errors a caller can act on, [`tcp`] opens the outgoing TCP connection of a
//! routing protocol (source address, TTL, MD5 key), [`udp`] the datagram sockets of BFD (fixed TTL out, each
//! datagram's TTL and destination in), and [`worker`] holds the helpers of a thread that
//! reports ready before it serves. Protocol-specific system calls (AF_PACKET sockets and their filters) stay in
//! their crate.
#![deny(unsafe_code)]

pub mod netns;
#[allow(unsafe_code)]
pub mod syscall;
pub mod tcp;
pub mod udp;
pub mod worker;

pub use netns::NetnsError;
pub use syscall::{pin_current_thread, set_current_thread_slice, Epoll, EventFd, Interest, Poller, Readiness};
