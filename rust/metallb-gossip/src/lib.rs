//! Failure detection among metallb-py speakers: the membership engine of
//! [`metallb_core::membership`] on a UDP socket, driven by its own thread.
//!
//! [`Gossip::start`] spawns the thread, which enters the named network namespace if asked (so one machine can
//! host a lab of nodes), binds the socket and announces itself to the seeds. From then on the thread runs the
//! engine: probes, suspicion, dissemination, authentication of every datagram. Callers read the view and the
//! isolation state from a snapshot and wait for events, without ever blocking the thread; the thread never
//! calls back into the caller. The system calls that need `unsafe` (setns, eventfd, poll) are the audited
//! wrappers of metallb-sys; this crate has none of its own.
#![forbid(unsafe_code)]

mod error;
mod gossip;
mod netns;

pub use error::GossipError;
pub use gossip::{Gossip, GossipConfig, TakeoverSink, WallClock, WatchPlan, WatchSink};
pub use metallb_core::membership::{
    Event, EventKind, MemberState, MemberView, Quorum, Stats, Takeover, Timing, WatchTiming,
};
