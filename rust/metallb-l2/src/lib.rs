//! The layer 2 data plane of metallb-py: answers ARP and NDP for announced addresses from a Rust thread.
//!
//! [`Responder::start`] opens one AF_PACKET socket per interface (optionally inside a named network
//! namespace), with a classic BPF filter ([`filter`]) that lets only ARP and neighbor solicitations and
//! advertisements through. Its thread hands each frame to the pure [`metallb_core::l2::examine`], sends the reply
//! it builds and keeps the claims other hosts make on announced addresses ([`conflicts`]);
//! [`Responder::announce`] and [`Responder::withdraw`] swap the announce set ([`table`]) atomically and the
//! gratuitous [`schedule`] announces takeovers. [`Responder::set_interfaces`] changes the served interfaces
//! while it runs, and a [`LinkWatch`] ([`links`]) says when the links of its namespace change. Decisions are
//! pure and take time as an argument; the only `unsafe` code is the packet-socket system calls in [`sys`] (the
//! eventfd, poll, setns and socket helpers it shares with the other protocol threads are in metallb-sys).
#![deny(unsafe_code)]

pub mod conflicts;
mod error;
pub mod filter;
mod iface;
pub mod links;
mod responder;
pub mod schedule;
pub mod stats;
#[allow(unsafe_code)]
pub mod sys;
pub mod table;

pub use conflicts::Conflict;
pub use error::L2Error;
pub use iface::InterfaceInfo;
pub use links::{LinkEvent, LinkWatch};
pub use responder::{InterfaceChange, Responder, ResponderConfig};
pub use schedule::GratuitousPolicy;
pub use stats::{IpCounters, Stats, DROP_LABELS};
