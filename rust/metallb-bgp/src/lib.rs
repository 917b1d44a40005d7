//! The BGP sessions of a metallb-py speaker: [`metallb_core::bgp`]'s state machine, codec and Adj-RIB-Out on
//! TCP sockets, every session of the node on one thread.
//!
//! [`Speaker::start`] spawns the thread, which enters the named network namespace if asked (so one machine
//! can host a lab of nodes). Peers are added with their session parameters ([`PeerConfig`]: ASNs, router
//! ID, timers, source address, TCP MD5 password, eBGP multihop, families); each session connects actively to
//! the peer's port, and once established receives the peer's routes as UPDATEs built from the prefixes set
//! for it ([`Route`]: local preference, communities, large communities). Callers read every session's state
//! and counters from a snapshot ([`PeerStatus`]) and wait for [`Event`]s, without ever blocking the thread;
//! the thread never calls back into the caller. The system calls that need `unsafe` (sockets, TCP MD5,
//! setns, eventfd, poll, getifaddrs) are the audited wrappers of metallb-sys; this crate has none of its own.
#![forbid(unsafe_code)]

mod bfd;
mod config;
mod error;
mod netns;
mod nexthop;
mod peer;
mod route;
mod speaker;
mod status;
mod thread;

pub use bfd::{Bfd, BfdChange, BfdPeer, BfdSettings, BfdStatus};
pub use config::{family_name, Families, PeerAsn, PeerConfig, GRACEFUL_RESTART_TIME};
pub use error::BgpError;
pub use metallb_core::bgp::describe_notification;
pub use metallb_core::bgp::fsm::{Negotiated, State};
pub use metallb_core::bgp::{Afi, Prefix};
pub use nexthop::NextHops;
pub use route::{community_texts, parse_prefix, parse_route, Community, Route};
pub use speaker::{AddOutcome, Speaker, SpeakerConfig};
pub use status::{Counters, Event, EventKind, PeerStatus};
