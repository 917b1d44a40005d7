//! Failure detection among speakers: SWIM membership over authenticated datagrams, without I/O.
//!
//! A speaker must learn within a fraction of a second that another speaker died, so that the addresses it
//! announced move, and must not move them because a speaker was slow. [`Engine`] is one member: it drives
//! foca (a sans-IO SWIM implementation: probes, indirect probes, suspicion, piggybacked dissemination) with
//! time passed in, seals and opens every datagram with an HMAC over a shared secret ([`auth`]), keeps a view of
//! the members by node name and reports changes as [`Event`]s, and decides whether this member is cut off
//! from the cluster ([`Engine::isolated`], [`Quorum`]). The socket and thread around it live in the
//! metallb-gossip crate; the simulated network of the tests drives it the same way.

pub mod auth;
pub mod codec;
mod config;
mod engine;
mod error;
mod identity;
mod view;
pub mod watch;

pub use auth::{Authenticator, Kind, Opened, Rejected, ReplayGuard};
pub use config::{
    validate_name, validate_peer_address, MembershipConfig, Quorum, Timing, MAX_DATAGRAM, MIN_SECRET_LEN,
};
pub use engine::{Datagram, Dropped, Engine, Stats};
pub use error::MembershipError;
pub use identity::{MemberId, MAX_NAME_LEN};
pub use view::{transition, Event, EventKind, MemberState, MemberView};
pub use watch::{Heartbeat, Takeover, Watch, WatchEvent, WatchStats, WatchTiming};
