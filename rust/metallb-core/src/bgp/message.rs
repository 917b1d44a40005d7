//! The BGP messages metallb-py sends and understands, as plain values (the wire format is `codec`'s job).
//!
//! ASNs are always 32-bit here: the codec writes AS_TRANS (23456) and AS4_PATH where a peer lacks the
//! 4-octet AS capability (RFC 6793), so nothing above it has to care.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// The AS number written in 2-octet fields for an ASN that does not fit (RFC 6793).
pub const AS_TRANS: u16 = 23456;
/// The port BGP listens on.
pub const BGP_PORT: u16 = 179;

/// Address family (IANA AFI).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Afi {
    Ipv4,
    Ipv6,
}

/// Subsequent address family (IANA SAFI). Only unicast is spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Safi {
    Unicast,
}

/// An IP prefix: `addr` has no bits set past `len` (constructors enforce it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// A prefix with the host bits of `addr` cleared; None when `len` exceeds the family's width.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        let width = Self::width_of(addr);
        if len > width {
            return None;
        }
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len)) };
                IpAddr::V6((u128::from(a) & mask).into())
            }
        };
        Some(Prefix { addr, len })
    }

    /// The host route for one address (/32 or /128).
    pub fn host(addr: IpAddr) -> Prefix {
        Prefix { addr, len: Self::width_of(addr) }
    }

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn len(&self) -> u8 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn afi(&self) -> Afi {
        match self.addr {
            IpAddr::V4(_) => Afi::Ipv4,
            IpAddr::V6(_) => Afi::Ipv6,
        }
    }

    fn width_of(addr: IpAddr) -> u8 {
        if addr.is_ipv4() {
            32
        } else {
            128
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// A capability advertised in OPEN (RFC 5492). Unknown ones are kept as bytes so they can be logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// RFC 4760 (code 1).
    Multiprotocol(Afi, Safi),
    /// RFC 2918 (code 2).
    RouteRefresh,
    /// RFC 4724 (code 64).
    GracefulRestart(GracefulRestart),
    /// RFC 6793 (code 65): the speaker's real ASN.
    FourOctetAs(u32),
    Unknown {
        code: u8,
        value: Vec<u8>,
    },
}

/// The graceful restart capability: restart flag, restart time (seconds, 12 bits) and, per family, whether
/// forwarding state was preserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestart {
    pub restarting: bool,
    pub restart_time: u16,
    pub families: Vec<(Afi, Safi, bool)>,
}

/// OPEN. `asn` is the real (32-bit) ASN; the 2-octet field carries AS_TRANS when it does not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub asn: u32,
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

/// ORIGIN (RFC 4271 5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Origin {
    #[default]
    Igp,
    Egp,
    Incomplete,
}

/// One AS_PATH segment, 32-bit ASNs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AsSegment {
    Sequence(Vec<u32>),
    Set(Vec<u32>),
}

/// The path attributes of an UPDATE. IPv4 routes use `next_hop` and the UPDATE's own NLRI fields; IPv6 ones
/// (and IPv4 ones over MP-BGP) use `mp_reach` / `mp_unreach` (RFC 4760). `local_pref` is for iBGP only.
/// Attributes we do not interpret are not kept: a route server speaker never forwards them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PathAttributes {
    pub origin: Origin,
    pub as_path: Vec<AsSegment>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    /// RFC 1997 communities, each `(asn << 16) | value`, in the order given.
    pub communities: Vec<u32>,
    /// RFC 8092 large communities `(global, local1, local2)`.
    pub large_communities: Vec<(u32, u32, u32)>,
    /// MP_REACH_NLRI: family, next hops (one global, or global and link-local for IPv6), prefixes.
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI: family and withdrawn prefixes.
    pub mp_unreach: Option<MpUnreach>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpReach {
    pub afi: Afi,
    pub safi: Safi,
    pub next_hops: Vec<IpAddr>,
    pub nlri: Vec<Prefix>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    pub afi: Afi,
    pub safi: Safi,
    pub withdrawn: Vec<Prefix>,
}

/// UPDATE. `withdrawn` and `nlri` are IPv4 prefixes in the classic fields. An UPDATE with nothing at all is
/// the IPv4 End-of-RIB marker (RFC 4724); one with only an empty MP_UNREACH is the marker for that family.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    pub withdrawn: Vec<Prefix>,
    pub attributes: PathAttributes,
    pub nlri: Vec<Prefix>,
}

impl Update {
    /// The End-of-RIB marker of `afi` (RFC 4724 section 2): the empty UPDATE for IPv4, an UPDATE with only an
    /// empty MP_UNREACH_NLRI for IPv6.
    pub fn end_of_rib(afi: Afi) -> Update {
        match afi {
            Afi::Ipv4 => Update::default(),
            Afi::Ipv6 => Update {
                attributes: PathAttributes {
                    mp_unreach: Some(MpUnreach { afi, safi: Safi::Unicast, withdrawn: Vec::new() }),
                    ..PathAttributes::default()
                },
                ..Update::default()
            },
        }
    }
}

/// NOTIFICATION (RFC 4271 4.5): error code, subcode and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

/// ROUTE-REFRESH (RFC 2918).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    pub afi: Afi,
    pub safi: Safi,
}

/// Any BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}
