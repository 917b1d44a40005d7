//! What a peer is: the session parameters (what the OPEN and the TCP connection carry) and the next hops its
//! routes are sent with, checked before anything reaches the thread.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

pub use metallb_core::bgp::fsm::PeerAsn;
use metallb_core::bgp::fsm::{SessionConfig, MAX_CONNECT_RETRY};
use metallb_core::bgp::message::{AS_TRANS, BGP_PORT};
use metallb_core::bgp::{Afi, GracefulRestart, Safi};
use metallb_sys::syscall::TCP_MD5_MAX_KEY_LEN;

use crate::{BfdSettings, BgpError};

/// The restart time we advertise with graceful restart (RFC 4724): how long a peer keeps our routes after
/// the session went down without a NOTIFICATION. FRR's default, which MetalLB's FRR mode uses.
pub const GRACEFUL_RESTART_TIME: u16 = 120;

/// The address families a session carries (multiprotocol capabilities in the OPEN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Families {
    pub ipv4: bool,
    pub ipv6: bool,
}

impl Families {
    pub const BOTH: Families = Families { ipv4: true, ipv6: true };

    pub fn has(&self, afi: Afi) -> bool {
        match afi {
            Afi::Ipv4 => self.ipv4,
            Afi::Ipv6 => self.ipv6,
        }
    }

    pub fn afis(&self) -> Vec<Afi> {
        [(self.ipv4, Afi::Ipv4), (self.ipv6, Afi::Ipv6)].into_iter().filter(|(on, _)| *on).map(|(_, a)| a).collect()
    }
}

/// The name of a family as users write it.
pub fn family_name(afi: Afi) -> &'static str {
    match afi {
        Afi::Ipv4 => "ipv4",
        Afi::Ipv6 => "ipv6",
    }
}

/// One BGP peer of the speaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The speaker's handle for the peer (MetalLB's BGPPeer name).
    pub name: String,
    pub address: IpAddr,
    pub port: u16,
    pub my_asn: u32,
    pub peer_asn: PeerAsn,
    pub router_id: Ipv4Addr,
    /// The local address to connect from; `None` lets routing choose.
    pub source_address: Option<IpAddr>,
    /// Proposed in the OPEN: 0 (no keepalives, no hold timer) or 3 s to 65535 s, whole seconds.
    pub hold_time: Duration,
    /// `None`: a third of the negotiated hold time.
    pub keepalive_time: Option<Duration>,
    /// How long a TCP connection attempt may take, and the wait between attempts.
    pub connect_time: Duration,
    /// The RFC 2385 TCP MD5 key.
    pub password: Option<String>,
    /// eBGP to a peer that is not on a shared link: TTL 255 instead of 1.
    pub ebgp_multihop: bool,
    pub families: Families,
    /// Next hops for the routes, instead of the session's local address (and its interface's address of the
    /// other family). Changing them re-sends the routes; it does not reset the session.
    pub next_hop_v4: Option<Ipv4Addr>,
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Graceful restart (RFC 4724, MetalLB's `enableGracefulRestart`): the capability with restart time
    /// [`GRACEFUL_RESTART_TIME`] and the forwarding-state bit for every family (the node keeps forwarding
    /// while the speaker restarts), End-of-RIB after the initial table, and a speaker stop that closes the
    /// session without a NOTIFICATION, so that the peer keeps our routes until we are back.
    pub graceful_restart: bool,
    /// BFD to the peer (MetalLB's `bfdProfile`): single-hop, or multihop with `ebgp_multihop`. BFD going
    /// down ends the session at once and holds it until BFD is up again. Changing it never resets the BGP
    /// session (the BFD session changes its timers with a poll sequence).
    pub bfd: Option<BfdSettings>,
}

impl PeerConfig {
    /// A peer with MetalLB's defaults: port 179, hold time 90 s, connect time 10 s, both families.
    pub fn new(name: &str, address: IpAddr, my_asn: u32, peer_asn: PeerAsn, router_id: Ipv4Addr) -> Self {
        PeerConfig {
            name: name.to_string(),
            address,
            port: BGP_PORT,
            my_asn,
            peer_asn,
            router_id,
            source_address: None,
            hold_time: Duration::from_secs(90),
            keepalive_time: None,
            connect_time: Duration::from_secs(10),
            password: None,
            ebgp_multihop: false,
            families: Families::BOTH,
            next_hop_v4: None,
            next_hop_v6: None,
            graceful_restart: false,
            bfd: None,
        }
    }

    /// Whether the session is internal (same AS), as far as the configuration says.
    pub fn is_ibgp(&self) -> bool {
        match self.peer_asn {
            PeerAsn::Fixed(asn) => asn == self.my_asn,
            PeerAsn::Internal => true,
            PeerAsn::External => false,
        }
    }

    /// The TTL of the session's packets, as FRR sets it: 255 for iBGP and multihop eBGP, 1 for eBGP on a link.
    pub fn ttl(&self) -> u8 {
        if self.is_ibgp() || self.ebgp_multihop {
            255
        } else {
            1
        }
    }

    /// The state machine's configuration (validated first).
    pub fn session_config(&self) -> SessionConfig {
        let mut session = SessionConfig::new(self.my_asn, self.peer_asn, self.router_id);
        // validate() bounds both to whole seconds within u16.
        session.hold_time = u16::try_from(self.hold_time.as_secs()).unwrap_or(u16::MAX);
        session.keepalive_time = self.keepalive_time.map(|k| u16::try_from(k.as_secs()).unwrap_or(u16::MAX));
        session.connect_retry = self.connect_time;
        session.families = self.families.afis().into_iter().map(|afi| (afi, Safi::Unicast)).collect();
        // Sessions of one node to different peers must not retry in lockstep.
        let mut seed = u64::from(u32::from(self.router_id)) << 32;
        for (i, byte) in self.address.to_string().bytes().chain(self.name.bytes()).enumerate() {
            seed ^= u64::from(byte).rotate_left((i % 8) as u32 * 8);
        }
        session.jitter_seed = seed ^ u64::from(self.port);
        if self.graceful_restart {
            session.graceful_restart = Some(GracefulRestart {
                restarting: false,
                restart_time: GRACEFUL_RESTART_TIME,
                families: session.families.iter().map(|&(afi, safi)| (afi, safi, true)).collect(),
            });
        }
        session
    }

    /// Whether `other` describes the same session, so that the running one can stay up: everything but the
    /// next hops (a route matter) and BFD (its own session beside this one; timers change in flight by a
    /// poll sequence) must match.
    pub fn same_session(&self, other: &PeerConfig) -> bool {
        let routes_only = |c: &PeerConfig| PeerConfig { next_hop_v4: None, next_hop_v6: None, bfd: None, ..c.clone() };
        routes_only(self) == routes_only(other)
    }

    /// Everything that can be checked before a socket exists.
    pub fn validate(&self) -> Result<(), BgpError> {
        self.check().map_err(|reason| BgpError::InvalidPeer { peer: self.name.clone(), reason })
    }

    fn check(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("the peer name is empty".into());
        }
        check_unicast("address", self.address)?;
        if self.port == 0 {
            return Err("port 0 is not a port a peer listens on".into());
        }
        check_asn("my_asn", self.my_asn)?;
        if let PeerAsn::Fixed(asn) = self.peer_asn {
            check_asn("peer_asn", asn)?;
        }
        if self.router_id.is_unspecified() {
            return Err("router_id 0.0.0.0 is not a router ID; use an IPv4 address of the node".into());
        }
        if let Some(source) = self.source_address {
            check_unicast("source_address", source)?;
            if source.is_ipv4() != self.address.is_ipv4() {
                return Err(format!(
                    "source_address {source} and the peer address {} are of different families",
                    self.address
                ));
            }
        }
        let hold = self.hold_time;
        if hold.subsec_nanos() != 0 || hold.as_secs() > u64::from(u16::MAX) {
            return Err(format!("hold_time {hold:?} must be whole seconds, at most 65535 (the OPEN carries seconds)"));
        }
        if hold.as_secs() == 1 || hold.as_secs() == 2 {
            return Err(format!("hold_time {}s: must be 0 (no hold timer) or at least 3 s (RFC 4271)", hold.as_secs()));
        }
        if let Some(keepalive) = self.keepalive_time {
            if keepalive.subsec_nanos() != 0 || keepalive.is_zero() {
                return Err(format!("keepalive_time {keepalive:?} must be a whole number of seconds, at least 1"));
            }
            if hold.is_zero() {
                return Err("keepalive_time needs a hold time: with hold_time 0 no keepalives are sent".into());
            }
            if keepalive > hold {
                return Err(format!(
                    "keepalive_time {}s is longer than hold_time {}s",
                    keepalive.as_secs(),
                    hold.as_secs()
                ));
            }
        }
        if self.connect_time.is_zero() || self.connect_time > MAX_CONNECT_RETRY {
            return Err(format!("connect_time {:?} must be more than 0 s and at most 65535 s", self.connect_time));
        }
        if let Some(password) = &self.password {
            if password.is_empty() {
                return Err("password is empty; leave it out for no TCP MD5 signature".into());
            }
            if password.len() > TCP_MD5_MAX_KEY_LEN {
                return Err(format!(
                    "password has {} bytes; a TCP MD5 key is at most {TCP_MD5_MAX_KEY_LEN}",
                    password.len()
                ));
            }
        }
        if !self.families.ipv4 && !self.families.ipv6 {
            return Err("families is empty; give \"ipv4\", \"ipv6\" or both".into());
        }
        if let Some(hop) = self.next_hop_v4 {
            check_unicast("next_hop_v4", IpAddr::V4(hop))?;
        }
        if let Some(hop) = self.next_hop_v6 {
            check_unicast("next_hop_v6", IpAddr::V6(hop))?;
        }
        if let Some(bfd) = &self.bfd {
            check_bfd(bfd)?;
        }
        // The state machine's own checks, in case it knows more.
        self.session_config().validate().map_err(|err| err.to_string())
    }
}

fn check_asn(what: &str, asn: u32) -> Result<(), String> {
    match asn {
        0 => Err(format!("{what} 0 is reserved (RFC 7607); use an ASN from 1 to 4294967294")),
        _ if asn == u32::from(AS_TRANS) => {
            Err(format!("{what} {asn} is AS_TRANS, reserved for 4-octet AS transition (RFC 6793)"))
        }
        u32::MAX => Err(format!("{what} {asn} is reserved (RFC 7300)")),
        _ => Ok(()),
    }
}

/// MetalLB's BFDProfile bounds: intervals 10 ms to 60 s, detect multiplier 2 to 255, minimum TTL 1 to 254.
fn check_bfd(bfd: &BfdSettings) -> Result<(), String> {
    for (what, interval) in [("receive_interval", bfd.receive_interval), ("transmit_interval", bfd.transmit_interval)] {
        if interval < Duration::from_millis(10) || interval > Duration::from_secs(60) {
            return Err(format!("bfd {what} {interval:?} is out of range: use 10 ms to 60 s"));
        }
    }
    if bfd.detect_multiplier < 2 {
        return Err(format!("bfd detect_multiplier {} is out of range: use 2 to 255", bfd.detect_multiplier));
    }
    if bfd.minimum_ttl == 0 || bfd.minimum_ttl == 255 {
        return Err(format!("bfd minimum_ttl {} is out of range: use 1 to 254", bfd.minimum_ttl));
    }
    Ok(())
}

fn check_unicast(what: &str, addr: IpAddr) -> Result<(), String> {
    if addr.is_unspecified() || addr.is_multicast() || addr == IpAddr::V4(Ipv4Addr::BROADCAST) {
        return Err(format!("{what} {addr} is not a unicast address"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> PeerConfig {
        PeerConfig::new(
            "router",
            "192.0.2.1".parse().unwrap(),
            64512,
            PeerAsn::Fixed(64513),
            "192.0.2.2".parse().unwrap(),
        )
    }

    fn reason(config: PeerConfig) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_are_valid_and_ebgp_on_a_link() {
        let config = peer();
        config.validate().unwrap();
        assert!(!config.is_ibgp());
        assert_eq!(config.ttl(), 1);
        assert_eq!(PeerConfig { ebgp_multihop: true, ..peer() }.ttl(), 255);
        assert_eq!(PeerConfig { peer_asn: PeerAsn::Fixed(64512), ..peer() }.ttl(), 255, "iBGP, as FRR");
        assert_eq!(PeerConfig { peer_asn: PeerAsn::Internal, ..peer() }.ttl(), 255);
        assert_eq!(PeerConfig { peer_asn: PeerAsn::External, ..peer() }.ttl(), 1);
    }

    #[test]
    fn bad_parameters_name_the_peer_and_the_field() {
        let cases: Vec<(PeerConfig, &str)> = vec![
            (PeerConfig { name: String::new(), ..peer() }, "name is empty"),
            (PeerConfig { address: "0.0.0.0".parse().unwrap(), ..peer() }, "address 0.0.0.0 is not a unicast"),
            (PeerConfig { address: "ff02::1".parse().unwrap(), ..peer() }, "not a unicast"),
            (PeerConfig { port: 0, ..peer() }, "port 0"),
            (PeerConfig { my_asn: 0, ..peer() }, "my_asn 0 is reserved"),
            (PeerConfig { peer_asn: PeerAsn::Fixed(23456), ..peer() }, "peer_asn 23456 is AS_TRANS"),
            (PeerConfig { router_id: Ipv4Addr::UNSPECIFIED, ..peer() }, "router_id 0.0.0.0"),
            (PeerConfig { source_address: Some("2001:db8::1".parse().unwrap()), ..peer() }, "different families"),
            (PeerConfig { hold_time: Duration::from_secs(2), ..peer() }, "at least 3 s"),
            (PeerConfig { hold_time: Duration::from_millis(3500), ..peer() }, "whole seconds"),
            (PeerConfig { hold_time: Duration::from_secs(70000), ..peer() }, "at most 65535"),
            (PeerConfig { keepalive_time: Some(Duration::from_secs(91)), ..peer() }, "longer than hold_time"),
            (PeerConfig { keepalive_time: Some(Duration::ZERO), ..peer() }, "at least 1"),
            (
                PeerConfig { hold_time: Duration::ZERO, keepalive_time: Some(Duration::from_secs(1)), ..peer() },
                "needs a hold time",
            ),
            (PeerConfig { connect_time: Duration::ZERO, ..peer() }, "connect_time"),
            (PeerConfig { password: Some(String::new()), ..peer() }, "password is empty"),
            (PeerConfig { password: Some("k".repeat(81)), ..peer() }, "at most 80"),
            (PeerConfig { families: Families { ipv4: false, ipv6: false }, ..peer() }, "families is empty"),
            (PeerConfig { next_hop_v6: Some(Ipv6Addr::UNSPECIFIED), ..peer() }, "next_hop_v6 :: is not"),
            (
                PeerConfig {
                    bfd: Some(BfdSettings { receive_interval: Duration::from_millis(5), ..BfdSettings::default() }),
                    ..peer()
                },
                "bfd receive_interval 5ms is out of range",
            ),
            (
                PeerConfig { bfd: Some(BfdSettings { detect_multiplier: 1, ..BfdSettings::default() }), ..peer() },
                "detect_multiplier 1",
            ),
            (
                PeerConfig { bfd: Some(BfdSettings { minimum_ttl: 255, ..BfdSettings::default() }), ..peer() },
                "minimum_ttl 255",
            ),
        ];
        for (config, fragment) in cases {
            let text = reason(config);
            assert!(text.starts_with("peer \"router\": ") || text.starts_with("peer \"\": "), "{text}");
            assert!(text.contains(fragment), "{text:?} lacks {fragment:?}");
        }
        PeerConfig { hold_time: Duration::ZERO, ..peer() }.validate().unwrap();
        PeerConfig { hold_time: Duration::from_secs(3), ..peer() }.validate().unwrap();
    }

    #[test]
    fn next_hops_are_not_session_parameters() {
        let a = peer();
        let b = PeerConfig { next_hop_v4: Some("192.0.2.9".parse().unwrap()), ..peer() };
        assert!(a.same_session(&b));
        assert!(!a.same_session(&PeerConfig { password: Some("x".into()), ..peer() }));
        assert!(!a.same_session(&PeerConfig { families: Families { ipv4: true, ipv6: false }, ..peer() }));
        // BFD (timers, on or off) leaves the BGP session alone; graceful restart is a new session.
        let fast = BfdSettings { receive_interval: Duration::from_millis(50), ..BfdSettings::default() };
        let with_bfd = PeerConfig { bfd: Some(BfdSettings::default()), ..peer() };
        assert!(with_bfd.same_session(&PeerConfig { bfd: Some(fast), ..peer() }));
        assert!(a.same_session(&with_bfd));
        assert!(!a.same_session(&PeerConfig { graceful_restart: true, ..peer() }));
    }

    #[test]
    fn graceful_restart_offers_restart_time_and_forwarding_state_for_each_family() {
        let config = PeerConfig { graceful_restart: true, families: Families { ipv4: true, ipv6: false }, ..peer() };
        let gr = config.session_config().graceful_restart.unwrap();
        assert_eq!(
            gr,
            GracefulRestart { restarting: false, restart_time: 120, families: vec![(Afi::Ipv4, Safi::Unicast, true)] }
        );
        assert_eq!(peer().session_config().graceful_restart, None);
    }
}
