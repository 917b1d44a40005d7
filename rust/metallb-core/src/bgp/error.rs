//! Why bytes are not a BGP message, as the NOTIFICATION that says so.
//!
//! `DecodeError` says what is wrong (its `Display` names the field), which NOTIFICATION a strict speaker
//! sends for it (RFC 4271 section 6) and what RFC 7606 says to do about it (`ErrorAction`): most malformed
//! path attributes only make the UPDATE count as a withdrawal, they need not end the session.
//! `EncodeError` says why a `Message` value cannot be written, before any byte reaches a peer.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use super::message::{Afi, Notification, Prefix};

/// NOTIFICATION error codes and subcodes (RFC 4271 4.5 and 6, RFC 4486, RFC 6608, RFC 7313, RFC 9234): the
/// one set the codec, the state machine and the I/O crate use. Subcodes are named after their code.
pub mod code {
    pub const MESSAGE_HEADER_ERROR: u8 = 1;
    pub const OPEN_MESSAGE_ERROR: u8 = 2;
    pub const UPDATE_MESSAGE_ERROR: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM_ERROR: u8 = 5;
    pub const CEASE: u8 = 6;
    /// RFC 7313.
    pub const ROUTE_REFRESH_MESSAGE_ERROR: u8 = 7;

    /// The subcode of a NOTIFICATION that has no more specific one (every code).
    pub const UNSPECIFIC: u8 = 0;

    /// Subcodes of MESSAGE_HEADER_ERROR.
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;

    /// Subcodes of OPEN_MESSAGE_ERROR.
    pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// RFC 5492.
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    /// RFC 9234.
    pub const ROLE_MISMATCH: u8 = 11;

    /// Subcodes of UPDATE_MESSAGE_ERROR.
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;

    /// Subcodes of FSM_ERROR (RFC 6608): an unexpected message in the named state.
    pub const FSM_UNEXPECTED_IN_OPENSENT: u8 = 1;
    pub const FSM_UNEXPECTED_IN_OPENCONFIRM: u8 = 2;
    pub const FSM_UNEXPECTED_IN_ESTABLISHED: u8 = 3;

    /// Subcodes of CEASE (RFC 4486, RFC 8538, RFC 9384).
    pub const CEASE_MAX_PREFIXES: u8 = 1;
    pub const CEASE_ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const CEASE_PEER_DECONFIGURED: u8 = 3;
    pub const CEASE_ADMINISTRATIVE_RESET: u8 = 4;
    pub const CEASE_CONNECTION_REJECTED: u8 = 5;
    pub const CEASE_OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CEASE_CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const CEASE_OUT_OF_RESOURCES: u8 = 8;
    pub const CEASE_HARD_RESET: u8 = 9;
    pub const CEASE_BFD_DOWN: u8 = 10;

    /// Subcodes of ROUTE_REFRESH_MESSAGE_ERROR (RFC 7313).
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// A NOTIFICATION's code and subcode in words, e.g. "OPEN message error / bad peer AS (2/2)".
pub fn describe_notification(error_code: u8, subcode: u8) -> String {
    use code::*;
    let name = match error_code {
        MESSAGE_HEADER_ERROR => "message header error",
        OPEN_MESSAGE_ERROR => "OPEN message error",
        UPDATE_MESSAGE_ERROR => "UPDATE message error",
        HOLD_TIMER_EXPIRED => "hold timer expired",
        FSM_ERROR => "finite state machine error",
        CEASE => "cease",
        ROUTE_REFRESH_MESSAGE_ERROR => "ROUTE-REFRESH message error",
        _ => "unknown error code",
    };
    let sub = match (error_code, subcode) {
        (_, UNSPECIFIC) => "unspecific",
        (MESSAGE_HEADER_ERROR, CONNECTION_NOT_SYNCHRONIZED) => "connection not synchronized",
        (MESSAGE_HEADER_ERROR, BAD_MESSAGE_LENGTH) => "bad message length",
        (MESSAGE_HEADER_ERROR, BAD_MESSAGE_TYPE) => "bad message type",
        (OPEN_MESSAGE_ERROR, UNSUPPORTED_VERSION_NUMBER) => "unsupported version number",
        (OPEN_MESSAGE_ERROR, BAD_PEER_AS) => "bad peer AS",
        (OPEN_MESSAGE_ERROR, BAD_BGP_IDENTIFIER) => "bad BGP identifier",
        (OPEN_MESSAGE_ERROR, UNSUPPORTED_OPTIONAL_PARAMETER) => "unsupported optional parameter",
        (OPEN_MESSAGE_ERROR, UNACCEPTABLE_HOLD_TIME) => "unacceptable hold time",
        (OPEN_MESSAGE_ERROR, UNSUPPORTED_CAPABILITY) => "unsupported capability",
        (OPEN_MESSAGE_ERROR, ROLE_MISMATCH) => "role mismatch",
        (UPDATE_MESSAGE_ERROR, MALFORMED_ATTRIBUTE_LIST) => "malformed attribute list",
        (UPDATE_MESSAGE_ERROR, UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE) => "unrecognized well-known attribute",
        (UPDATE_MESSAGE_ERROR, MISSING_WELL_KNOWN_ATTRIBUTE) => "missing well-known attribute",
        (UPDATE_MESSAGE_ERROR, ATTRIBUTE_FLAGS_ERROR) => "attribute flags error",
        (UPDATE_MESSAGE_ERROR, ATTRIBUTE_LENGTH_ERROR) => "attribute length error",
        (UPDATE_MESSAGE_ERROR, INVALID_ORIGIN_ATTRIBUTE) => "invalid ORIGIN attribute",
        (UPDATE_MESSAGE_ERROR, INVALID_NEXT_HOP_ATTRIBUTE) => "invalid NEXT_HOP attribute",
        (UPDATE_MESSAGE_ERROR, OPTIONAL_ATTRIBUTE_ERROR) => "optional attribute error",
        (UPDATE_MESSAGE_ERROR, INVALID_NETWORK_FIELD) => "invalid network field",
        (UPDATE_MESSAGE_ERROR, MALFORMED_AS_PATH) => "malformed AS_PATH",
        (FSM_ERROR, FSM_UNEXPECTED_IN_OPENSENT) => "unexpected message in OpenSent",
        (FSM_ERROR, FSM_UNEXPECTED_IN_OPENCONFIRM) => "unexpected message in OpenConfirm",
        (FSM_ERROR, FSM_UNEXPECTED_IN_ESTABLISHED) => "unexpected message in Established",
        (CEASE, CEASE_MAX_PREFIXES) => "maximum number of prefixes reached",
        (CEASE, CEASE_ADMINISTRATIVE_SHUTDOWN) => "administrative shutdown",
        (CEASE, CEASE_PEER_DECONFIGURED) => "peer de-configured",
        (CEASE, CEASE_ADMINISTRATIVE_RESET) => "administrative reset",
        (CEASE, CEASE_CONNECTION_REJECTED) => "connection rejected",
        (CEASE, CEASE_OTHER_CONFIGURATION_CHANGE) => "other configuration change",
        (CEASE, CEASE_CONNECTION_COLLISION_RESOLUTION) => "connection collision resolution",
        (CEASE, CEASE_OUT_OF_RESOURCES) => "out of resources",
        (CEASE, CEASE_HARD_RESET) => "hard reset",
        (CEASE, CEASE_BFD_DOWN) => "BFD down",
        (ROUTE_REFRESH_MESSAGE_ERROR, INVALID_MESSAGE_LENGTH) => "invalid message length",
        _ => "unknown subcode",
    };
    format!("{name} / {sub} ({error_code}/{subcode})")
}

/// What the receiver of a bad message should do (RFC 7606 section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorAction {
    /// Send `DecodeError::notification()` and close the session.
    ResetSession,
    /// The UPDATE is well framed but its attributes are not: treat every prefix it announces as withdrawn,
    /// skip `DecodeError::message_len` bytes and keep the session.
    TreatAsWithdraw,
    /// Nothing to do but skip `DecodeError::message_len` bytes (a ROUTE-REFRESH for a family never
    /// negotiated, RFC 2918 section 4).
    Ignore,
}

/// Bytes that are not a valid BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    /// The whole message's length when its header was sound: how many bytes to skip when `action()` is not
    /// `ResetSession`. None when the header itself is bad (the stream cannot be resynchronized).
    pub message_len: Option<usize>,
}

/// What exactly is wrong; the comment on each variant is the NOTIFICATION it maps to (code/subcode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// 1/1: the 16-octet marker is not all ones.
    NotSynchronized,
    /// 1/2, data the length field: the length is outside 19..=4096, or wrong for the message type.
    BadMessageLength { length: u16, message_type: u8 },
    /// 1/3, data the type octet.
    BadMessageType { message_type: u8 },
    /// 2/1, data the version we speak (4, two octets).
    UnsupportedVersion { version: u8 },
    /// 2/3: BGP Identifier 0.0.0.0 (RFC 6286).
    BadBgpIdentifier { router_id: Ipv4Addr },
    /// 2/4: an optional parameter other than capabilities (type 2).
    UnsupportedOptionalParameter { param_type: u8 },
    /// 2/6: a hold time of 1 or 2 seconds.
    UnacceptableHoldTime { hold_time: u16 },
    /// 2/0: the optional parameters or a capability do not parse.
    MalformedOpen { field: &'static str, reason: &'static str },
    /// 3/1: the withdrawn routes or total path attribute length overrun the UPDATE. Resets the session.
    UpdateLengths { field: &'static str, length: u16, available: usize },
    /// 3/1: a path attribute's header or value overruns the path attributes (RFC 7606 section 4).
    AttributeOverrun { type_code: Option<u8>, remaining: usize },
    /// 3/1: MP_REACH_NLRI or MP_UNREACH_NLRI twice (RFC 7606 section 3 g).
    DuplicateMpAttribute { type_code: u8 },
    /// 3/2, data the attribute: a well-known (not optional) attribute type we do not know.
    UnrecognizedWellKnownAttribute { type_code: u8, attribute: Vec<u8> },
    /// 3/3, data the missing type code.
    MissingWellKnownAttribute { type_code: u8 },
    /// 3/4, data the attribute: optional/transitive flags that contradict the attribute's definition.
    AttributeFlags { type_code: u8, flags: u8, attribute: Vec<u8> },
    /// 3/5, data the attribute.
    AttributeLength { type_code: u8, length: u16, expected: &'static str, attribute: Vec<u8> },
    /// 3/6, data the attribute: ORIGIN other than 0, 1, 2.
    InvalidOrigin { value: u8, attribute: Vec<u8> },
    /// 3/9, data the attribute: an MP_REACH_NLRI / MP_UNREACH_NLRI that does not parse (RFC 4760 section 7).
    OptionalAttribute { type_code: u8, reason: &'static str, attribute: Vec<u8> },
    /// 3/10 in the UPDATE's own withdrawn routes or NLRI; 3/9 with the attribute as data inside
    /// MP_REACH_NLRI / MP_UNREACH_NLRI (`attribute` is then not empty).
    BadPrefix { field: &'static str, reason: PrefixError, attribute: Vec<u8> },
    /// 3/11: an AS_PATH segment that is empty, truncated or of a type we do not speak (confederations).
    MalformedAsPath { reason: &'static str, segment_type: u8 },
    /// A ROUTE-REFRESH for an AFI/SAFI other than IPv4/IPv6 unicast: ignored (RFC 2918 section 4).
    UnknownRouteRefreshFamily { afi: u16, safi: u8 },
}

/// Why one encoded prefix is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrefixError {
    /// The length octet exceeds the family's width (32 or 128).
    TooLong { len: u8, width: u8 },
    /// Fewer octets remain than the length octet needs.
    Truncated { len: u8, remaining: usize },
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind, message_len: Option<usize>) -> DecodeError {
        DecodeError { kind, message_len }
    }

    /// The NOTIFICATION a speaker sends for this error (RFC 4271 section 6, RFC 4760 section 7).
    pub fn notification(&self) -> Notification {
        use code::*;
        use DecodeErrorKind as K;
        let (code, subcode, data) = match &self.kind {
            K::NotSynchronized => (MESSAGE_HEADER_ERROR, CONNECTION_NOT_SYNCHRONIZED, Vec::new()),
            K::BadMessageLength { length, .. } => {
                (MESSAGE_HEADER_ERROR, BAD_MESSAGE_LENGTH, length.to_be_bytes().to_vec())
            }
            K::BadMessageType { message_type } => (MESSAGE_HEADER_ERROR, BAD_MESSAGE_TYPE, vec![*message_type]),
            K::UnsupportedVersion { .. } => (OPEN_MESSAGE_ERROR, UNSUPPORTED_VERSION_NUMBER, vec![0, 4]),
            K::BadBgpIdentifier { .. } => (OPEN_MESSAGE_ERROR, BAD_BGP_IDENTIFIER, Vec::new()),
            K::UnsupportedOptionalParameter { .. } => (OPEN_MESSAGE_ERROR, UNSUPPORTED_OPTIONAL_PARAMETER, Vec::new()),
            K::UnacceptableHoldTime { .. } => (OPEN_MESSAGE_ERROR, UNACCEPTABLE_HOLD_TIME, Vec::new()),
            K::MalformedOpen { .. } => (OPEN_MESSAGE_ERROR, UNSPECIFIC, Vec::new()),
            K::UpdateLengths { .. } | K::AttributeOverrun { .. } | K::DuplicateMpAttribute { .. } => {
                (UPDATE_MESSAGE_ERROR, MALFORMED_ATTRIBUTE_LIST, Vec::new())
            }
            K::UnrecognizedWellKnownAttribute { attribute, .. } => {
                (UPDATE_MESSAGE_ERROR, UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, attribute.clone())
            }
            K::MissingWellKnownAttribute { type_code } => {
                (UPDATE_MESSAGE_ERROR, MISSING_WELL_KNOWN_ATTRIBUTE, vec![*type_code])
            }
            K::AttributeFlags { attribute, .. } => (UPDATE_MESSAGE_ERROR, ATTRIBUTE_FLAGS_ERROR, attribute.clone()),
            K::AttributeLength { attribute, .. } => (UPDATE_MESSAGE_ERROR, ATTRIBUTE_LENGTH_ERROR, attribute.clone()),
            K::InvalidOrigin { attribute, .. } => (UPDATE_MESSAGE_ERROR, INVALID_ORIGIN_ATTRIBUTE, attribute.clone()),
            K::OptionalAttribute { attribute, .. } => {
                (UPDATE_MESSAGE_ERROR, OPTIONAL_ATTRIBUTE_ERROR, attribute.clone())
            }
            K::BadPrefix { attribute, .. } if !attribute.is_empty() => {
                (UPDATE_MESSAGE_ERROR, OPTIONAL_ATTRIBUTE_ERROR, attribute.clone())
            }
            K::BadPrefix { .. } => (UPDATE_MESSAGE_ERROR, INVALID_NETWORK_FIELD, Vec::new()),
            K::MalformedAsPath { .. } => (UPDATE_MESSAGE_ERROR, MALFORMED_AS_PATH, Vec::new()),
            // Never sent (the action is Ignore); this is what RFC 7313 would send for a bad ROUTE-REFRESH.
            K::UnknownRouteRefreshFamily { .. } => (ROUTE_REFRESH_MESSAGE_ERROR, UNSPECIFIC, Vec::new()),
        };
        Notification { code, subcode, data }
    }

    /// What to do about it (RFC 7606): reset the session, or drop this one message and carry on.
    pub fn action(&self) -> ErrorAction {
        use DecodeErrorKind as K;
        match &self.kind {
            K::AttributeOverrun { .. } | K::MissingWellKnownAttribute { .. } | K::MalformedAsPath { .. } => {
                ErrorAction::TreatAsWithdraw
            }
            // The NLRI inside a broken MP attribute cannot be trusted, so those end the session.
            K::AttributeFlags { type_code, .. } | K::AttributeLength { type_code, .. } if is_mp(*type_code) => {
                ErrorAction::ResetSession
            }
            K::AttributeFlags { .. } | K::AttributeLength { .. } | K::InvalidOrigin { .. } => {
                ErrorAction::TreatAsWithdraw
            }
            K::UnknownRouteRefreshFamily { .. } => ErrorAction::Ignore,
            _ => ErrorAction::ResetSession,
        }
    }
}

fn is_mp(type_code: u8) -> bool {
    type_code == 14 || type_code == 15
}

/// The RFC name of a path attribute type, for messages.
pub fn attribute_name(type_code: u8) -> &'static str {
    match type_code {
        1 => "ORIGIN",
        2 => "AS_PATH",
        3 => "NEXT_HOP",
        4 => "MULTI_EXIT_DISC",
        5 => "LOCAL_PREF",
        6 => "ATOMIC_AGGREGATE",
        7 => "AGGREGATOR",
        8 => "COMMUNITIES",
        14 => "MP_REACH_NLRI",
        15 => "MP_UNREACH_NLRI",
        17 => "AS4_PATH",
        18 => "AS4_AGGREGATOR",
        32 => "LARGE_COMMUNITIES",
        _ => "unknown attribute",
    }
}

fn message_name(message_type: u8) -> &'static str {
    match message_type {
        1 => "OPEN",
        2 => "UPDATE",
        3 => "NOTIFICATION",
        4 => "KEEPALIVE",
        5 => "ROUTE-REFRESH",
        _ => "message",
    }
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefixError::TooLong { len, width } => write!(f, "prefix length {len} exceeds the family's {width} bits"),
            PrefixError::Truncated { len, remaining } => {
                write!(f, "a /{len} prefix needs {} octets but {remaining} remain", len.div_ceil(8))
            }
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecodeErrorKind as K;
        match &self.kind {
            K::NotSynchronized => write!(f, "BGP header: the marker is not 16 octets of 0xff (stream out of sync)"),
            K::BadMessageLength { length, message_type } => {
                let allowed = match message_type {
                    1 => "29..=4096",
                    2 => "23..=4096",
                    3 => "21..=4096",
                    4 => "exactly 19",
                    5 => "exactly 23",
                    _ => "19..=4096",
                };
                write!(f, "BGP header: length {length} of a {} is outside {allowed}", message_name(*message_type))
            }
            K::BadMessageType { message_type } => {
                write!(f, "BGP header: message type {message_type} is not OPEN, UPDATE, NOTIFICATION, KEEPALIVE or ROUTE-REFRESH (1..=5)")
            }
            K::UnsupportedVersion { version } => write!(f, "OPEN version: {version}, only BGP-4 (4) is spoken"),
            K::BadBgpIdentifier { router_id } => write!(f, "OPEN BGP Identifier: {router_id} is not allowed"),
            K::UnsupportedOptionalParameter { param_type } => write!(
                f,
                "OPEN optional parameter type {param_type}: only capabilities (type 2) are supported"
            ),
            K::UnacceptableHoldTime { hold_time } => {
                write!(f, "OPEN hold time: {hold_time} s; it must be 0 or at least 3")
            }
            K::MalformedOpen { field, reason } => write!(f, "OPEN {field}: {reason}"),
            K::UpdateLengths { field, length, available } => {
                write!(f, "UPDATE {field}: {length} octets but only {available} remain in the message")
            }
            K::AttributeOverrun { type_code: Some(t), remaining } => write!(
                f,
                "UPDATE path attribute {} (type {t}): its length overruns the {remaining} octets left of the path attributes",
                attribute_name(*t)
            ),
            K::AttributeOverrun { type_code: None, remaining } => write!(
                f,
                "UPDATE path attributes: {remaining} trailing octets are too few for an attribute header"
            ),
            K::DuplicateMpAttribute { type_code } => {
                write!(f, "UPDATE path attribute {} appears more than once", attribute_name(*type_code))
            }
            K::UnrecognizedWellKnownAttribute { type_code, .. } => write!(
                f,
                "UPDATE path attribute type {type_code}: marked well-known (optional bit clear) but not one we know"
            ),
            K::MissingWellKnownAttribute { type_code } => write!(
                f,
                "UPDATE path attributes: {} (type {type_code}) is mandatory for the routes announced but missing",
                attribute_name(*type_code)
            ),
            K::AttributeFlags { type_code, flags, .. } => write!(
                f,
                "UPDATE path attribute {} (type {type_code}): flags {flags:#04x} contradict its optional/transitive definition",
                attribute_name(*type_code)
            ),
            K::AttributeLength { type_code, length, expected, .. } => write!(
                f,
                "UPDATE path attribute {} (type {type_code}): length {length}, expected {expected}",
                attribute_name(*type_code)
            ),
            K::InvalidOrigin { value, .. } => write!(f, "UPDATE path attribute ORIGIN: value {value} is not 0, 1 or 2"),
            K::OptionalAttribute { type_code, reason, .. } => {
                write!(f, "UPDATE path attribute {} (type {type_code}): {reason}", attribute_name(*type_code))
            }
            K::BadPrefix { field, reason, .. } => write!(f, "UPDATE {field}: {reason}"),
            K::MalformedAsPath { reason, segment_type } => {
                write!(f, "UPDATE path attribute AS_PATH: segment type {segment_type}: {reason}")
            }
            K::UnknownRouteRefreshFamily { afi, safi } => write!(
                f,
                "ROUTE-REFRESH for AFI {afi} SAFI {safi}: only IPv4/IPv6 unicast are spoken (ignored)"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A `Message` value that cannot be written as BGP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("the {message} would be {length} octets, over BGP's limit of 4096: split it (fewer prefixes or communities per UPDATE)")]
    TooLong { message: &'static str, length: usize },
    #[error("UPDATE {field}: {prefix} is not an {expected:?} prefix (IPv4 routes go in withdrawn/nlri, each MP attribute holds its own family)")]
    PrefixFamily { field: &'static str, prefix: Prefix, expected: Afi },
    #[error("MP_REACH_NLRI next hops {next_hops:?} do not fit {afi:?}: give one address of the family (IPv6: a global one, optionally followed by a link-local one)")]
    NextHops { afi: Afi, next_hops: Vec<IpAddr> },
    #[error("the UPDATE announces IPv4 NLRI without a NEXT_HOP: set attributes.next_hop")]
    MissingNextHop,
    #[error("AS_PATH has an empty segment: drop it")]
    EmptyAsSegment,
    #[error("AS_PATH has an AS_SET of {len} ASNs, over the 255 a segment holds")]
    AsSetTooLong { len: usize },
    #[error("OPEN asn {asn} disagrees with its 4-octet AS capability {four_octet_capability:?}: an ASN over 65535 needs Capability::FourOctetAs(asn), and that capability must carry asn itself")]
    OpenAsn { asn: u32, four_octet_capability: Option<u32> },
    #[error("OPEN capability {code}: its value is {length} octets, at most 255 fit")]
    CapabilityTooLong { code: u8, length: usize },
    #[error("OPEN capabilities take {length} octets, over the 255 of the optional parameters")]
    OptionalParametersTooLong { length: usize },
    #[error("graceful restart time {restart_time} s is over the 12-bit limit of 4095")]
    RestartTime { restart_time: u16 },
}
