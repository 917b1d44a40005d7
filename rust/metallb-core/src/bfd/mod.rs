//! BFD, Bidirectional Forwarding Detection (RFC 5880), as pure code: the control packet and its wire codec
//! (`packet`) and one session's state machine and timers as a function of packets and time (`session`).
//!
//! Asynchronous mode only: we never ask the peer for Demand mode, send no Echo packets (Required Min Echo RX
//! Interval 0) and configure no authentication (a packet with the A bit set decodes, and the session discards
//! it). The I/O crate (`metallb-bgp`'s BFD thread) puts UDP sockets (RFC 5881 single hop, RFC 5883 multihop),
//! the demultiplexing by discriminator and a clock around them.

pub mod packet;
pub mod session;

pub use packet::{decode, encode, ControlPacket, DecodeError, Diag, State, PACKET_LEN};
pub use session::{Discard, Output, Session, SessionConfig, SessionConfigError, Timers};
