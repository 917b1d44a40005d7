//! BFD (RFC 5880) beside the BGP sessions: [`metallb_core::bfd`]'s session state machine on UDP sockets,
//! every session of the node on one thread ("metallb-bfd").
//!
//! Single-hop sessions (RFC 5881) send to UDP port 3784 and multihop ones (RFC 5883) to 4784, from a source
//! port of their own (random in 49152-65535) with TTL (hop limit) 255. Packets are received on one socket per
//! family and port, bound to the wildcard address and opened when the first session needs it; a single-hop
//! packet counts only with TTL 255, a multihop one with at least the session's `minimum_ttl`. The thread waits
//! in poll() until the earliest session timer, so a 50 ms interval is kept to the millisecond. State changes
//! go to the `on_change` callback, called on the BFD thread; callers read every session's state and counters
//! from a snapshot ([`BfdStatus`]) and never wait on the thread except to change a session.

mod demux;
mod worker;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metallb_core::bfd::packet::{Diag, State};
use metallb_sys::worker::lock;

use crate::thread::{self, Handle, Reply};
use crate::BgpError;

/// How one BGP peer's BFD session runs: MetalLB's BFDProfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdSettings {
    /// The shortest interval between received control packets this end can handle (Required Min RX).
    pub receive_interval: Duration,
    /// The interval at which this end wants to send (Desired Min TX); the peer's receive interval can make
    /// it longer.
    pub transmit_interval: Duration,
    /// Packets missed in a row before the session is declared down.
    pub detect_multiplier: u8,
    /// Send nothing until the peer has sent a packet.
    pub passive: bool,
    /// Multihop only: packets arriving with a lower TTL (hop limit) are dropped.
    pub minimum_ttl: u8,
}

impl Default for BfdSettings {
    /// MetalLB's defaults: 300 ms both ways, multiplier 3, active, minimum TTL 254.
    fn default() -> Self {
        BfdSettings {
            receive_interval: Duration::from_millis(300),
            transmit_interval: Duration::from_millis(300),
            detect_multiplier: 3,
            passive: false,
            minimum_ttl: 254,
        }
    }
}

/// The bounds MetalLB's BFDProfile puts on the intervals.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
const MAX_INTERVAL: Duration = Duration::from_secs(60);

impl BfdSettings {
    fn check(&self) -> Result<(), String> {
        for (what, interval) in
            [("receive_interval", self.receive_interval), ("transmit_interval", self.transmit_interval)]
        {
            if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
                return Err(format!("{what} {interval:?} must be between 10 ms and 60 s"));
            }
        }
        if self.detect_multiplier < 2 {
            return Err(format!(
                "detect_multiplier {} must be between 2 and 255 (1 declares the session down on the first lost packet)",
                self.detect_multiplier
            ));
        }
        if self.minimum_ttl == 0 || self.minimum_ttl == 255 {
            return Err(format!(
                "minimum_ttl {} must be between 1 and 254 (255 would refuse every packet that crossed a router)",
                self.minimum_ttl
            ));
        }
        Ok(())
    }
}

/// One BFD session: with whom, from where, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdPeer {
    pub peer: IpAddr,
    /// The address to send from (and the only one a session accepts packets to); `None` lets routing choose.
    pub local: Option<IpAddr>,
    /// RFC 5883 (port 4784, `minimum_ttl`) rather than RFC 5881 (port 3784, TTL 255): for eBGP multihop and
    /// iBGP peers that are not on a shared link.
    pub multihop: bool,
    pub settings: BfdSettings,
}

impl BfdPeer {
    fn check(&self) -> Result<(), String> {
        let unicast = |what: &str, addr: IpAddr| {
            if addr.is_unspecified() || addr.is_multicast() || addr == IpAddr::from([255, 255, 255, 255]) {
                return Err(format!("{what} {addr} is not a unicast address"));
            }
            // A link-local destination needs an interface, which a session does not name.
            if matches!(addr, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80) {
                return Err(format!("{what} {addr} is an IPv6 link-local address; use a global or unique local one"));
            }
            Ok(())
        };
        unicast("peer", self.peer)?;
        if let Some(local) = self.local {
            unicast("local", local)?;
            if local.is_ipv4() != self.peer.is_ipv4() {
                return Err(format!("local {local} and peer {} are of different families", self.peer));
            }
        }
        self.settings.check()
    }

    /// Whether `other` is the same session with other settings (changed with a poll sequence, no flap).
    fn same_endpoints(&self, other: &BfdPeer) -> bool {
        (self.peer, self.local, self.multihop) == (other.peer, other.local, other.multihop)
    }
}

/// One session as the thread last saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct BfdStatus {
    pub name: String,
    pub peer: IpAddr,
    pub multihop: bool,
    pub state: State,
    pub remote_state: State,
    /// Why this end last left Up (or is AdminDown).
    pub local_diag: Diag,
    pub remote_diag: Diag,
    pub local_discriminator: u32,
    /// 0 until a packet from the peer arrived, and again once detection time expired.
    pub remote_discriminator: u32,
    /// The interval in use between our packets, before jitter.
    pub transmit_interval: Duration,
    /// `None` until a packet from the peer arrived.
    pub detection_time: Option<Duration>,
    pub control_sent: u64,
    pub control_received: u64,
    /// Always 0: echo mode is not implemented.
    pub echo_sent: u64,
    pub echo_received: u64,
    /// Times the session reached Up, and times it left Up.
    pub up_events: u64,
    pub down_events: u64,
    /// Packets for this session refused: TTL too low, malformed, from another address or port kind.
    pub dropped: u64,
}

/// One session changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdChange {
    pub name: String,
    pub from: State,
    pub to: State,
    pub diag: Diag,
}

enum Command {
    SetSession { name: String, peer: Box<BfdPeer>, reply: Reply<()> },
    RemoveSession { name: String, reply: Reply<bool> },
}

/// The BFD thread of a node. Dropping it stops the thread (AdminDown to every peer).
pub struct Bfd {
    handle: Handle<Command>,
    snapshot: Arc<Mutex<Vec<BfdStatus>>>,
}

impl Bfd {
    /// Starts the thread, which enters the namespace (`None`: the caller's); returns once it runs, or with
    /// the namespace's error. Sockets are opened by the sessions that need them.
    ///
    /// `on_change` is called on the BFD thread for every state change of every session (including the
    /// AdminDown of a removed or replaced session, and of every session at [`Bfd::stop`]), after the
    /// snapshot shows it. It must return quickly and must not call [`Bfd::set_session`],
    /// [`Bfd::remove_session`] or [`Bfd::stop`] (they wait for this thread); reading status is fine.
    pub fn start(netns: Option<&str>, on_change: Box<dyn Fn(BfdChange) + Send>) -> Result<Bfd, BgpError> {
        let snapshot = Arc::new(Mutex::new(Vec::new()));
        let published = Arc::clone(&snapshot);
        let handle = thread::start("metallb-bfd", "the BFD thread", netns, move |inbox| {
            Ok(worker::Worker::new(inbox, published, on_change))
        })?;
        Ok(Bfd { handle, snapshot })
    }

    /// Adds a session, or updates the one of that name: with the same peer, local address and kind only the
    /// settings change (an Up session runs a poll sequence and stays Up); otherwise the old session is
    /// removed (AdminDown) and a new one starts. Refused, with nothing changed, for settings that cannot
    /// work or sockets that cannot be opened (a port another BFD daemon holds, a local address this host
    /// does not have).
    pub fn set_session(&self, name: &str, peer: BfdPeer) -> Result<(), BgpError> {
        let invalid = |reason| BgpError::InvalidPeer { peer: name.to_string(), reason };
        if name.is_empty() {
            return Err(invalid("the BFD session name is empty".into()));
        }
        peer.check().map_err(|reason| invalid(format!("BFD: {reason}")))?;
        self.handle.call(|reply| Command::SetSession { name: name.to_string(), peer: Box::new(peer), reply })
    }

    /// Sends AdminDown to the peer (a few packets, at the session's interval), then forgets the session and
    /// closes its receive port if no other session uses it. False if there is none of that name.
    pub fn remove_session(&self, name: &str) -> Result<bool, BgpError> {
        self.handle.call(|reply| Command::RemoveSession { name: name.to_string(), reply })
    }

    /// Every session, by name.
    pub fn sessions(&self) -> Vec<BfdStatus> {
        lock(&self.snapshot).clone()
    }

    pub fn session(&self, name: &str) -> Option<BfdStatus> {
        lock(&self.snapshot).iter().find(|s| s.name == name).cloned()
    }

    /// Whether the thread runs (false once stopped, or if it ended on its own).
    pub fn is_running(&self) -> bool {
        self.handle.is_running()
    }

    /// Sends AdminDown to every peer (one packet each, at once), closes the sockets and ends the thread.
    /// Idempotent.
    pub fn stop(&self) {
        self.handle.stop();
    }
}

impl Drop for Bfd {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> BfdPeer {
        BfdPeer {
            peer: "198.51.100.2".parse().unwrap(),
            local: None,
            multihop: false,
            settings: BfdSettings::default(),
        }
    }

    #[test]
    fn defaults_are_metallbs_and_valid() {
        let settings = BfdSettings::default();
        assert_eq!(settings.receive_interval, Duration::from_millis(300));
        assert_eq!(settings.transmit_interval, Duration::from_millis(300));
        assert_eq!((settings.detect_multiplier, settings.passive, settings.minimum_ttl), (3, false, 254));
        assert_eq!(peer().check(), Ok(()));
    }

    #[test]
    fn settings_that_cannot_work_are_named() {
        type Change = fn(&mut BfdPeer);
        let cases: [(Change, &str); 9] = [
            (|p| p.settings.receive_interval = Duration::from_millis(9), "receive_interval 9ms must be between"),
            (|p| p.settings.transmit_interval = Duration::from_secs(61), "transmit_interval 61s must be between"),
            (|p| p.settings.detect_multiplier = 1, "detect_multiplier 1 must be between 2 and 255"),
            (|p| p.settings.minimum_ttl = 0, "minimum_ttl 0 must be between 1 and 254"),
            (|p| p.settings.minimum_ttl = 255, "minimum_ttl 255 must be between 1 and 254"),
            (|p| p.peer = "0.0.0.0".parse().unwrap(), "peer 0.0.0.0 is not a unicast address"),
            (|p| p.peer = "ff02::5".parse().unwrap(), "peer ff02::5 is not a unicast address"),
            (|p| p.peer = "fe80::1".parse().unwrap(), "peer fe80::1 is an IPv6 link-local address"),
            (
                |p| p.local = Some("2001:db8::1".parse().unwrap()),
                "local 2001:db8::1 and peer 198.51.100.2 are of different",
            ),
        ];
        for (change, want) in cases {
            let mut p = peer();
            change(&mut p);
            let err = p.check().unwrap_err();
            assert!(err.starts_with(want), "{err:?} should start with {want:?}");
        }
    }

    #[test]
    fn only_peer_local_and_kind_make_a_different_session() {
        let mut other = peer();
        other.settings.transmit_interval = Duration::from_millis(50);
        other.settings.passive = true;
        assert!(peer().same_endpoints(&other));
        for change in [
            |p: &mut BfdPeer| p.multihop = true,
            |p: &mut BfdPeer| p.local = Some("198.51.100.1".parse().unwrap()),
            |p: &mut BfdPeer| p.peer = "198.51.100.3".parse().unwrap(),
        ] {
            let mut other = peer();
            change(&mut other);
            assert!(!peer().same_endpoints(&other), "{other:?}");
        }
    }
}
