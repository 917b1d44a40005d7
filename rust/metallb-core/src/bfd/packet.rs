//! The BFD control packet (RFC 5880 section 4.1) and its wire codec.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! ```
//!
//! [`decode`] applies the reception checks of RFC 5880 section 6.8.6 that concern the packet alone (version,
//! length, detect multiplier, multipoint bit, discriminators); the ones that need the session (which session,
//! authentication) are [`Session::check`](super::session::Session::check)'s. A packet with the A bit set is
//! decoded (`authenticated: true`, the length must leave room for the authentication section, whose contents
//! are not read) so that the session can discard it: we configure no authentication, and RFC 5880 6.8.6
//! discards an authenticated packet on a session without it. [`encode`] writes the 24-octet mandatory section
//! and never an authentication section.

use std::fmt;
use std::ops::RangeInclusive;

/// UDP destination port of single-hop control packets (RFC 5881 section 4).
pub const SINGLE_HOP_PORT: u16 = 3784;
/// UDP destination port of multihop control packets (RFC 5883 section 5).
pub const MULTIHOP_PORT: u16 = 4784;
/// UDP destination port of Echo packets (RFC 5881 section 4); we send none.
pub const ECHO_PORT: u16 = 3785;
/// The source ports a session must send from (RFC 5881 section 4).
pub const SOURCE_PORTS: RangeInclusive<u16> = 49152..=65535;
/// Length of a control packet without an authentication section.
pub const PACKET_LEN: usize = 24;
/// The protocol version this codec speaks (RFC 5880).
pub const VERSION: u8 = 1;
/// The shortest Length of a packet with the A bit set: the mandatory section plus Auth Type and Auth Len.
pub const MIN_AUTHENTICATED_LEN: usize = PACKET_LEN + 2;

/// A session state as carried in the Sta field (RFC 5880 section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    AdminDown,
    Down,
    Init,
    Up,
}

impl State {
    /// The 2-bit wire value (0 AdminDown, 1 Down, 2 Init, 3 Up).
    pub fn code(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// The state of a wire value; only its low two bits are read, so every value names a state.
    pub fn from_code(code: u8) -> State {
        match code & 0b11 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        })
    }
}

/// Why a system last changed its session state: the Diag field (RFC 5880 section 4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diag {
    None,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    /// A value RFC 5880 does not assign (9 to 31). [`Diag::from_code`] only makes these; one holding a value
    /// from 0 to 8 encodes as that value and decodes as its named variant.
    Unknown(u8),
}

impl Diag {
    /// The 5-bit wire value.
    pub fn code(self) -> u8 {
        match self {
            Diag::None => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Unknown(code) => code & 0b1_1111,
        }
    }

    /// The diagnostic of a wire value; only its low five bits are read.
    pub fn from_code(code: u8) -> Diag {
        match code & 0b1_1111 {
            0 => Diag::None,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            other => Diag::Unknown(other),
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Diag::None => f.write_str("no diagnostic"),
            Diag::ControlDetectionTimeExpired => f.write_str("control detection time expired"),
            Diag::EchoFunctionFailed => f.write_str("echo function failed"),
            Diag::NeighborSignaledSessionDown => f.write_str("neighbor signaled session down"),
            Diag::ForwardingPlaneReset => f.write_str("forwarding plane reset"),
            Diag::PathDown => f.write_str("path down"),
            Diag::ConcatenatedPathDown => f.write_str("concatenated path down"),
            Diag::AdministrativelyDown => f.write_str("administratively down"),
            Diag::ReverseConcatenatedPathDown => f.write_str("reverse concatenated path down"),
            Diag::Unknown(code) => write!(f, "unknown diagnostic {code}"),
        }
    }
}

/// A BFD control packet's mandatory section. Intervals are in microseconds, as on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPacket {
    pub diag: Diag,
    pub state: State,
    /// P: the sender asks for a packet with F set (a Poll Sequence, RFC 5880 section 6.5).
    pub poll: bool,
    /// F: the answer to a packet with P set.
    pub final_: bool,
    /// C: the sender's BFD does not share fate with its control plane.
    pub control_plane_independent: bool,
    /// A: an authentication section follows (never written by [`encode`]).
    pub authenticated: bool,
    /// D: the sender wishes to use Demand mode.
    pub demand: bool,
    /// M: reserved for multipoint; [`decode`] refuses a packet with it set.
    pub multipoint: bool,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    pub desired_min_tx: u32,
    pub required_min_rx: u32,
    pub required_min_echo_rx: u32,
}

impl ControlPacket {
    /// A packet without flags or diagnostic: Detect Mult 3, both intervals 1 s, no echo. Fields to change
    /// go in front of `..ControlPacket::new(...)`.
    pub fn new(state: State, my_discriminator: u32, your_discriminator: u32) -> ControlPacket {
        ControlPacket {
            diag: Diag::None,
            state,
            poll: false,
            final_: false,
            control_plane_independent: false,
            authenticated: false,
            demand: false,
            multipoint: false,
            detect_mult: 3,
            my_discriminator,
            your_discriminator,
            desired_min_tx: 1_000_000,
            required_min_rx: 1_000_000,
            required_min_echo_rx: 0,
        }
    }
}

/// Why bytes are not a BFD control packet we may accept (RFC 5880 section 6.8.6: each of these is discarded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("BFD control packet of {len} octets is shorter than the {PACKET_LEN}-octet mandatory section")]
    Truncated { len: usize },
    #[error("BFD version {version} is not supported: only version 1 (RFC 5880)")]
    Version { version: u8 },
    #[error("BFD Length field {length} is below the minimum of {minimum} octets (26 when the A bit is set)")]
    LengthTooShort { length: u8, minimum: u8 },
    #[error("BFD Length field {length} is more than the {received} octets received")]
    LengthExceedsPayload { length: u8, received: usize },
    #[error("BFD Detect Mult is 0: a sender must ask for at least one missed packet before going down")]
    ZeroDetectMult,
    #[error("BFD Multipoint (M) bit is set: reserved, a point-to-point session must send 0")]
    Multipoint,
    #[error("BFD My Discriminator is 0: a sender must identify its session with a nonzero discriminator")]
    ZeroMyDiscriminator,
    #[error("BFD Your Discriminator is 0 in state {state}: only Down and AdminDown packets may omit it")]
    ZeroYourDiscriminator { state: State },
}

const FLAG_POLL: u8 = 0x20;
const FLAG_FINAL: u8 = 0x10;
const FLAG_CONTROL_PLANE_INDEPENDENT: u8 = 0x08;
const FLAG_AUTHENTICATED: u8 = 0x04;
const FLAG_DEMAND: u8 = 0x02;
const FLAG_MULTIPOINT: u8 = 0x01;

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_be_bytes([bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3]])
}

/// Reads a control packet from a UDP payload. Octets after the packet's Length (UDP padding) are ignored, as is
/// the content of an authentication section.
pub fn decode(bytes: &[u8]) -> Result<ControlPacket, DecodeError> {
    if bytes.len() < PACKET_LEN {
        return Err(DecodeError::Truncated { len: bytes.len() });
    }
    let version = bytes[0] >> 5;
    if version != VERSION {
        return Err(DecodeError::Version { version });
    }
    let flags = bytes[1];
    let authenticated = flags & FLAG_AUTHENTICATED != 0;
    let length = bytes[3];
    let minimum = if authenticated { MIN_AUTHENTICATED_LEN } else { PACKET_LEN };
    if usize::from(length) < minimum {
        return Err(DecodeError::LengthTooShort { length, minimum: minimum as u8 });
    }
    if usize::from(length) > bytes.len() {
        return Err(DecodeError::LengthExceedsPayload { length, received: bytes.len() });
    }
    let packet = ControlPacket {
        diag: Diag::from_code(bytes[0]),
        state: State::from_code(flags >> 6),
        poll: flags & FLAG_POLL != 0,
        final_: flags & FLAG_FINAL != 0,
        control_plane_independent: flags & FLAG_CONTROL_PLANE_INDEPENDENT != 0,
        authenticated,
        demand: flags & FLAG_DEMAND != 0,
        multipoint: flags & FLAG_MULTIPOINT != 0,
        detect_mult: bytes[2],
        my_discriminator: u32_at(bytes, 4),
        your_discriminator: u32_at(bytes, 8),
        desired_min_tx: u32_at(bytes, 12),
        required_min_rx: u32_at(bytes, 16),
        required_min_echo_rx: u32_at(bytes, 20),
    };
    validate(&packet)?;
    Ok(packet)
}

/// The reception checks of RFC 5880 section 6.8.6 on the fields of a packet: [`decode`] applies them, and so does
/// the session to a packet built by other means.
pub fn validate(packet: &ControlPacket) -> Result<(), DecodeError> {
    if packet.detect_mult == 0 {
        return Err(DecodeError::ZeroDetectMult);
    }
    if packet.multipoint {
        return Err(DecodeError::Multipoint);
    }
    if packet.my_discriminator == 0 {
        return Err(DecodeError::ZeroMyDiscriminator);
    }
    if packet.your_discriminator == 0 && matches!(packet.state, State::Init | State::Up) {
        return Err(DecodeError::ZeroYourDiscriminator { state: packet.state });
    }
    Ok(())
}

/// Writes the packet's mandatory section with Length 24. The A bit is written as given, so a packet with
/// `authenticated: true` encodes to bytes [`decode`] refuses (Length 24 leaves no room for the section): we
/// never send one.
pub fn encode(packet: &ControlPacket) -> [u8; PACKET_LEN] {
    let flag = |set: bool, bit: u8| if set { bit } else { 0 };
    let mut out = [0u8; PACKET_LEN];
    out[0] = (VERSION << 5) | packet.diag.code();
    out[1] = (packet.state.code() << 6)
        | flag(packet.poll, FLAG_POLL)
        | flag(packet.final_, FLAG_FINAL)
        | flag(packet.control_plane_independent, FLAG_CONTROL_PLANE_INDEPENDENT)
        | flag(packet.authenticated, FLAG_AUTHENTICATED)
        | flag(packet.demand, FLAG_DEMAND)
        | flag(packet.multipoint, FLAG_MULTIPOINT);
    out[2] = packet.detect_mult;
    out[3] = PACKET_LEN as u8;
    out[4..8].copy_from_slice(&packet.my_discriminator.to_be_bytes());
    out[8..12].copy_from_slice(&packet.your_discriminator.to_be_bytes());
    out[12..16].copy_from_slice(&packet.desired_min_tx.to_be_bytes());
    out[16..20].copy_from_slice(&packet.required_min_rx.to_be_bytes());
    out[20..24].copy_from_slice(&packet.required_min_echo_rx.to_be_bytes());
    out
}
