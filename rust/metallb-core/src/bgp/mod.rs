//! BGP-4 (RFC 4271) as pure code: the messages (`message`), their wire codec (`codec`), the session state
//! machine as a function of events and time (`fsm`), and what to send a peer so that it holds the routes we
//! want it to hold (`rib`). The I/O crate `metallb-bgp` puts sockets and a thread around them.

pub mod codec;
pub mod error;
pub mod fsm;
pub mod message;
pub mod rib;

pub use codec::{decode, encode, encode_to_vec, encoded_len, frame_len, CodecOptions, HEADER_LEN, MAX_MESSAGE_LEN};
pub use error::{code, describe_notification, DecodeError, DecodeErrorKind, EncodeError, ErrorAction, PrefixError};
pub use message::{
    Afi, AsSegment, Capability, GracefulRestart, Message, MpReach, MpUnreach, Notification, Open, Origin,
    PathAttributes, Prefix, RouteRefresh, Safi, Update,
};
