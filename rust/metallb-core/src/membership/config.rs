//! What a member is and how fast it decides: identity, secret and timings, validated once.

use std::net::{IpAddr, SocketAddr};
use std::num::{NonZeroU8, NonZeroUsize};
use std::time::Duration;

use super::auth::OVERHEAD;
use super::error::MembershipError;
use super::identity::MAX_NAME_LEN;
use super::watch::WatchTiming;

/// Shortest secret accepted: HMAC-SHA256 with fewer than 128 bits of key would be the weak link.
pub const MIN_SECRET_LEN: usize = 16;
/// Largest datagram sent or accepted, tag included: below any Ethernet MTU, so never fragmented.
pub const MAX_DATAGRAM: usize = 1400;
/// Shortest probe interval accepted: below this the gossip would be a flood and timer jitter dominates.
pub const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(10);

/// How a member decides whether it is cut off from the cluster (see [`super::Engine::isolated`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Quorum {
    /// Isolated when it hears from none of its peers: a lone survivor of a mass failure also stops, until the
    /// caller removes the dead from its peers.
    #[default]
    AnyPeer,
    /// Isolated also when fewer than a majority of the members it knows of (itself included) are alive in its
    /// view: the minority side of a partition stops, and so does a survivor of a failure of half the cluster.
    Majority,
}

/// The timings of failure detection. The defaults target a dead member declared down by everyone well under
/// a second on a LAN, while tolerating a member that is descheduled for a few hundred milliseconds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Timing {
    /// Every member probes one other member (round robin, shuffled) this often.
    pub probe_interval: Duration,
    /// Without a direct answer after this long, `indirect_probes` other members are asked to probe. A probe
    /// that got no answer, direct or indirect, by the end of the interval makes the member suspect.
    pub probe_timeout: Duration,
    pub indirect_probes: NonZeroUsize,
    /// A suspect that does not refute the suspicion within this long is declared down, in a cluster of up to
    /// ten members; in a larger one this long times log10(members) (see [`Timing::suspect_timeout_for`]).
    pub suspect_timeout: Duration,
    /// Heard from no peer for this long (see [`Quorum`]): isolated.
    pub isolation_timeout: Duration,
    /// Peers given by the caller that are not members yet (not started, or cut off and declared down) are sent
    /// an announce this often, which is also how a healed partition merges again.
    pub announce_interval: Duration,
    /// How many messages each membership update rides on.
    pub retransmits: NonZeroU8,
    /// How long a member declared down is remembered. (Replay state is kept for the whole run, whatever this
    /// says: see [`super::ReplayGuard`].)
    pub forget_down_after: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            probe_interval: Duration::from_millis(100),
            probe_timeout: Duration::from_millis(40),
            indirect_probes: NonZeroUsize::new(3).expect("non-zero"),
            suspect_timeout: Duration::from_millis(250),
            isolation_timeout: Duration::from_millis(400),
            announce_interval: Duration::from_millis(1000),
            retransmits: NonZeroU8::new(6).expect("non-zero"),
            forget_down_after: Duration::from_secs(3600),
        }
    }
}

impl Timing {
    pub fn validate(&self) -> Result<(), MembershipError> {
        let bad = |message: String| Err(MembershipError::InvalidConfig(message));
        if self.probe_interval < MIN_PROBE_INTERVAL {
            return bad(format!(
                "probe_interval {:?} is shorter than the minimum {MIN_PROBE_INTERVAL:?}",
                self.probe_interval
            ));
        }
        if self.probe_timeout.is_zero() || self.probe_timeout >= self.probe_interval {
            return bad(format!(
                "probe_timeout {:?} must be above zero and below probe_interval {:?} (the indirect probes need \
                 the rest of the interval)",
                self.probe_timeout, self.probe_interval
            ));
        }
        if self.suspect_timeout.is_zero() {
            return bad("suspect_timeout must be above zero".into());
        }
        if self.isolation_timeout.is_zero() {
            return bad("isolation_timeout must be above zero".into());
        }
        if self.announce_interval < MIN_PROBE_INTERVAL {
            return bad(format!(
                "announce_interval {:?} is shorter than the minimum {MIN_PROBE_INTERVAL:?}",
                self.announce_interval
            ));
        }
        if self.forget_down_after < Duration::from_secs(1) {
            return bad("forget_down_after must be at least a second".into());
        }
        Ok(())
    }

    /// How long a suspect has to refute in a cluster of `members` (this one included): `suspect_timeout` up
    /// to ten members, then times log10(members), as memberlist (Lifeguard) scales its suspicion. A
    /// suspicion reaches every member in about log(members) gossip rounds, and so does the refutation; in a
    /// large cluster more members are starved for CPU at any moment, and each false "down" costs every
    /// member an election round. Fast failover does not wait for it: the watch's heartbeats take over.
    pub fn suspect_timeout_for(&self, members: usize) -> Duration {
        let scale = (members.max(1) as f64).log10().max(1.0);
        self.suspect_timeout.mul_f64(scale)
    }

    /// foca's configuration for these timings in a cluster of `members` (this one included).
    pub(crate) fn foca(&self, members: usize) -> foca::Config {
        let mut config = foca::Config::simple();
        config.probe_period = self.probe_interval;
        config.probe_rtt = self.probe_timeout;
        config.num_indirect_probes = self.indirect_probes;
        config.max_transmissions = self.retransmits;
        config.suspect_to_down_after = self.suspect_timeout_for(members);
        config.remove_down_after = self.forget_down_after;
        config.max_packet_size = NonZeroUsize::new(MAX_DATAGRAM - OVERHEAD).expect("non-zero");
        // A member that talks to us while we hold it down is told so, and rejoins with a new generation.
        config.notify_down_members = true;
        // Learn members nobody told us about, and reach members held down after a partition heals.
        config.periodic_announce =
            Some(foca::PeriodicParams { frequency: Duration::from_secs(10), num_members: NonZeroUsize::MIN });
        config.periodic_announce_to_down_members = Some(foca::PeriodicParams {
            frequency: self.announce_interval.saturating_mul(2),
            num_members: NonZeroUsize::new(2).expect("non-zero"),
        });
        // Updates go out every probe interval on their own, not only riding on probes.
        config.periodic_gossip =
            Some(foca::PeriodicParams { frequency: self.probe_interval, num_members: self.indirect_probes });
        config
    }
}

/// Everything a member needs to start.
#[derive(Clone, PartialEq, Eq)]
pub struct MembershipConfig {
    /// The node name: what the speaker elects by.
    pub name: String,
    /// The address peers send to (the speaker publishes it through the API).
    pub advertise: SocketAddr,
    pub secret: Vec<u8>,
    pub timing: Timing,
    pub quorum: Quorum,
    /// Identity generation at start; the runtime uses the wall clock in milliseconds. A hint only: a member
    /// that learns the cluster holds its name and address at a newer generation takes the next one.
    pub generation: u64,
    /// Random per run: names this run's datagrams for replay protection.
    pub boot: u64,
    /// Seeds the probe order (tests pass a fixed one to replay a run exactly).
    pub rng_seed: u64,
    /// The heartbeats of fast takeover (see [`super::watch`]). They go out only to the peers the caller
    /// names with [`super::Engine::set_watch`], so an engine nobody plans for sends none.
    pub watch: WatchTiming,
}

impl std::fmt::Debug for MembershipConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MembershipConfig")
            .field("name", &self.name)
            .field("advertise", &self.advertise)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("timing", &self.timing)
            .field("quorum", &self.quorum)
            .field("watch", &self.watch)
            .finish_non_exhaustive()
    }
}

impl MembershipConfig {
    pub fn new(name: &str, advertise: SocketAddr, secret: &[u8]) -> Self {
        MembershipConfig {
            name: name.to_string(),
            advertise,
            secret: secret.to_vec(),
            timing: Timing::default(),
            quorum: Quorum::default(),
            generation: 0,
            boot: 0,
            rng_seed: 0,
            watch: WatchTiming::default(),
        }
    }

    pub fn validate(&self) -> Result<(), MembershipError> {
        validate_name(&self.name)?;
        validate_peer_address(self.advertise)
            .map_err(|reason| MembershipError::InvalidAddress { addr: self.advertise.to_string(), reason })?;
        if self.secret.len() < MIN_SECRET_LEN {
            return Err(MembershipError::InvalidConfig(format!(
                "the gossip secret has {} bytes; use at least {MIN_SECRET_LEN} random bytes",
                self.secret.len()
            )));
        }
        self.timing.validate()?;
        self.watch.validate()
    }
}

pub fn validate_name(name: &str) -> Result<(), MembershipError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(MembershipError::InvalidName(name.to_string()));
    }
    Ok(())
}

/// Why `addr` cannot be a member's address, if it cannot: peers must be able to send to it.
pub fn validate_peer_address(addr: SocketAddr) -> Result<(), &'static str> {
    let ip = addr.ip();
    if addr.port() == 0 {
        return Err("port 0 is not an address peers can send to");
    }
    if ip.is_unspecified() {
        return Err("the unspecified address is not one peers can send to; give the node's address");
    }
    if ip.is_multicast() {
        return Err("a multicast address cannot be a member's address");
    }
    if let IpAddr::V4(v4) = ip {
        if v4.is_broadcast() {
            return Err("the broadcast address cannot be a member's address");
        }
    }
    if let IpAddr::V6(v6) = ip {
        if v6.segments()[0] & 0xffc0 == 0xfe80 {
            return Err("IPv6 link-local addresses need a scope; use a global or unique local address");
        }
    }
    Ok(())
}
