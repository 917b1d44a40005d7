//! Authenticated datagrams: every gossip datagram carries an HMAC-SHA256 tag over a secret all speakers
//! share, and a per-sender sequence number that refuses replays.
//!
//! Layout: `"MG" kind:u8 boot:u64 seq:u64 payload tag[16]`, where `kind` says what the payload is ([`Kind`]:
//! SWIM's messages, or a watch heartbeat; both kinds share one sequence space per sender). The tag (HMAC-SHA256 truncated to 128 bits,
//! compared in constant time) covers everything before it. `boot` is a random number the sender picks when it
//! starts and `seq` counts its datagrams from 1. [`Authenticator::open`] checks the tag; the replay check
//! ([`ReplayGuard`]) needs the sender's identity, which is inside the payload, so the engine runs it once the
//! protocol header is decoded. Only datagrams with a valid tag reach it, so a forger cannot fill its state.
//!
//! The guard keeps, per sender (its node name and gossip address), the newest life it heard: the identity
//! generation, the boot, the highest sequence number and a 64-wide window below it (as IPsec does). A datagram
//! is refused as a replay when its number was already accepted or is 64 or more behind the highest, and as a
//! stale life when it comes from an older generation of the sender, or from another boot at the same
//! generation. A restart always supersedes its previous life with a newer generation (the cluster tells a
//! restarted member the generation it holds for it, see the engine), so a sender's lives are ordered and one
//! entry per sender is all the state there is. Entries are never swept by age: a datagram recorded from any
//! life of a sender is refused however long the run. Memory is bounded by the number of senders, at most 4096;
//! beyond that the least recently heard is forgotten (a cluster has one sender per node).
//!
//! What is not covered, by decision: a receiver that restarts starts empty, so until it hears a sender's
//! current life, a datagram recorded from an older life of that sender is accepted once; the first datagram
//! of the current life makes the older life stale again, and its updates carry older incarnations and
//! generations, which lose against what the cluster says now. A datagram redirected to another member is
//! refused by the protocol layer, since every message names its destination identity inside the tagged
//! bytes. No wall clock is involved, so clock skew or steps between nodes never drop gossip.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::identity::MemberId;

const MAGIC: [u8; 2] = *b"MG";

/// What an authenticated datagram carries (the byte after the magic; a kind this code does not know is
/// refused as not gossip, so a newer peer's additions are counted, not misread).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Kind {
    /// A foca header and its updates (see [`super::codec`]).
    Swim = 1,
    /// A watch heartbeat (see [`super::watch`]).
    Heartbeat = 2,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            1 => Some(Kind::Swim),
            2 => Some(Kind::Heartbeat),
            _ => None,
        }
    }
}
/// Bytes before the payload: magic, version, boot, sequence number.
pub const HEADER_LEN: usize = 2 + 1 + 8 + 8;
/// Bytes of the truncated HMAC-SHA256 tag after the payload.
pub const TAG_LEN: usize = 16;
/// Bytes a datagram carries besides its payload.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// How far behind the highest sequence number a datagram may arrive (reordering) and still be accepted once.
pub const REPLAY_WINDOW: u64 = 64;
/// Senders whose replay state is kept at most; the least recently heard is forgotten first.
pub const MAX_SENDERS: usize = 4096;

/// Why a datagram was refused before reaching the protocol.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Rejected {
    /// Shorter than a header and a tag.
    TooShort,
    /// Not our magic, or a version this code does not speak.
    NotGossip,
    /// The tag does not match: another secret, corruption or forgery.
    BadTag,
    /// Already accepted, or too far behind the sender's newest datagram.
    Replayed,
    /// From an older life of its sender than the newest one heard (an older generation, or another boot at
    /// the same generation): a recording, or a restarted member that does not know yet that it must take a
    /// newer generation.
    StaleLife,
    /// Sent by this member itself (its own boot number).
    FromSelf,
}

/// What the tag covers, once it verified.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Opened<'a> {
    pub kind: Kind,
    pub boot: u64,
    pub seq: u64,
    pub payload: &'a [u8],
}

#[derive(Clone, Copy, Debug)]
struct Window {
    highest: u64,
    /// Bit `i` set: sequence number `highest - i` was accepted.
    seen: u64,
}

impl Window {
    const EMPTY: Window = Window { highest: 0, seen: 0 };

    fn accept(&mut self, seq: u64) -> bool {
        if seq == 0 {
            return false;
        }
        if seq > self.highest {
            let shift = seq - self.highest;
            self.seen = if shift >= REPLAY_WINDOW { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = seq;
            return true;
        }
        let behind = self.highest - seq;
        if behind >= REPLAY_WINDOW || self.seen & (1 << behind) != 0 {
            return false;
        }
        self.seen |= 1 << behind;
        true
    }
}

/// Seals outgoing datagrams and verifies the tag of incoming ones for one member.
#[derive(Clone)]
pub struct Authenticator {
    key: Hmac<Sha256>,
    boot: u64,
    next_seq: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Authenticator").field("boot", &self.boot).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// `boot` must differ between runs (the runtime draws it at random).
    pub fn new(secret: &[u8], boot: u64) -> Self {
        let key = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
        Authenticator { key, boot, next_seq: 1 }
    }

    pub fn boot(&self) -> u64 {
        self.boot
    }

    /// The datagram carrying SWIM's `payload`, with the next sequence number and its tag.
    pub fn seal(&mut self, payload: &[u8]) -> Vec<u8> {
        self.seal_kind(Kind::Swim, payload)
    }

    /// The datagram carrying `payload` of `kind`, with the next sequence number and its tag.
    pub fn seal_kind(&mut self, kind: Kind, payload: &[u8]) -> Vec<u8> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut datagram = Vec::with_capacity(OVERHEAD + payload.len());
        datagram.extend_from_slice(&MAGIC);
        datagram.push(kind as u8);
        datagram.extend_from_slice(&self.boot.to_be_bytes());
        datagram.extend_from_slice(&seq.to_be_bytes());
        datagram.extend_from_slice(payload);
        let tag = self.tag(&datagram);
        datagram.extend_from_slice(&tag);
        datagram
    }

    /// The boot, sequence number and payload of `datagram` if its tag is valid and another member sent it.
    /// Changes nothing: the replay check is the [`ReplayGuard`]'s.
    pub fn open<'a>(&self, datagram: &'a [u8]) -> Result<Opened<'a>, Rejected> {
        if datagram.len() < OVERHEAD {
            return Err(Rejected::TooShort);
        }
        let kind = match Kind::from_byte(datagram[2]) {
            Some(kind) if datagram[..2] == MAGIC => kind,
            _ => return Err(Rejected::NotGossip),
        };
        let (signed, tag) = datagram.split_at(datagram.len() - TAG_LEN);
        let mut mac = self.key.clone();
        mac.update(signed);
        mac.verify_truncated_left(tag).map_err(|_| Rejected::BadTag)?;
        let boot = u64::from_be_bytes(signed[3..11].try_into().expect("8 bytes"));
        let seq = u64::from_be_bytes(signed[11..19].try_into().expect("8 bytes"));
        if boot == self.boot {
            return Err(Rejected::FromSelf);
        }
        Ok(Opened { kind, boot, seq, payload: &signed[HEADER_LEN..] })
    }

    fn tag(&self, signed: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.key.clone();
        mac.update(signed);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }
}

/// The newest life heard from one sender.
#[derive(Clone, Copy, Debug)]
struct Life {
    generation: u64,
    boot: u64,
    window: Window,
    heard: Instant,
}

/// Replay state per sender, by node name and gossip address (see the module documentation).
#[derive(Clone, Debug, Default)]
pub struct ReplayGuard {
    lives: HashMap<(Arc<str>, SocketAddr), Life>,
}

impl ReplayGuard {
    pub fn new() -> Self {
        ReplayGuard::default()
    }

    /// Whether a datagram with a valid tag, sent by `sender` (the identity in its header) with `boot` and
    /// `seq`, is new; records it if so.
    pub fn admit(&mut self, sender: &MemberId, boot: u64, seq: u64, now: Instant) -> Result<(), Rejected> {
        let key = (sender.shared_name(), sender.addr());
        let generation = sender.generation();
        match self.lives.get_mut(&key) {
            Some(life) if generation < life.generation || (generation == life.generation && boot != life.boot) => {
                Err(Rejected::StaleLife)
            }
            Some(life) => {
                // A newer generation of the same boot is a rejoin of the same process: its numbers go on.
                let mut window = if boot == life.boot { life.window } else { Window::EMPTY };
                if !window.accept(seq) {
                    return Err(Rejected::Replayed);
                }
                *life = Life { generation, boot, window, heard: now };
                Ok(())
            }
            None => {
                let mut window = Window::EMPTY;
                if !window.accept(seq) {
                    return Err(Rejected::Replayed);
                }
                if self.lives.len() >= MAX_SENDERS {
                    self.forget_oldest();
                }
                self.lives.insert(key, Life { generation, boot, window, heard: now });
                Ok(())
            }
        }
    }

    /// The newest generation heard from the sender of `sender`'s name and address, and whether `boot` is that
    /// life's boot.
    pub fn newest(&self, sender: &MemberId, boot: u64) -> Option<(u64, bool)> {
        self.lives.get(&(sender.shared_name(), sender.addr())).map(|life| (life.generation, life.boot == boot))
    }

    /// Senders whose replay state is held.
    pub fn senders(&self) -> usize {
        self.lives.len()
    }

    fn forget_oldest(&mut self) {
        if let Some(oldest) = self.lives.iter().min_by_key(|(_, life)| life.heard).map(|(key, _)| key.clone()) {
            self.lives.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef-shared-secret";

    fn pair() -> (Authenticator, Authenticator) {
        (Authenticator::new(SECRET, 1), Authenticator::new(SECRET, 2))
    }

    fn sender(generation: u64) -> MemberId {
        MemberId::new("node-a", "192.0.2.1:7946".parse().unwrap(), generation)
    }

    /// Opens and admits, as the engine does.
    fn accept(
        b: &Authenticator,
        guard: &mut ReplayGuard,
        id: &MemberId,
        datagram: &[u8],
        now: Instant,
    ) -> Result<(), Rejected> {
        let opened = b.open(datagram)?;
        guard.admit(id, opened.boot, opened.seq, now)
    }

    #[test]
    fn a_sealed_datagram_opens_once() {
        let (mut a, b) = pair();
        let mut guard = ReplayGuard::new();
        let now = Instant::now();
        let datagram = a.seal(b"hello");
        assert_eq!(datagram.len(), OVERHEAD + 5);
        assert_eq!(b.open(&datagram).map(|o| o.payload), Ok(&b"hello"[..]));
        assert_eq!(accept(&b, &mut guard, &sender(1), &datagram, now), Ok(()));
        assert_eq!(accept(&b, &mut guard, &sender(1), &datagram, now), Err(Rejected::Replayed));
    }

    #[test]
    fn any_flipped_bit_is_refused() {
        let (mut a, b) = pair();
        let datagram = a.seal(b"payload");
        for byte in 3..datagram.len() {
            for bit in 0..8 {
                let mut bad = datagram.clone();
                bad[byte] ^= 1 << bit;
                assert_eq!(b.open(&bad), Err(Rejected::BadTag), "byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn another_secret_is_refused() {
        let mut a = Authenticator::new(b"another secret of sixteen bytes", 1);
        let (_, b) = pair();
        assert_eq!(b.open(&a.seal(b"x")), Err(Rejected::BadTag));
    }

    #[test]
    fn short_and_foreign_datagrams_are_named() {
        let (mut a, b) = pair();
        assert_eq!(b.open(&[0u8; OVERHEAD - 1]), Err(Rejected::TooShort));
        let mut other = a.seal(b"x");
        other[2] = 3; // a kind this code does not know
        assert_eq!(b.open(&other), Err(Rejected::NotGossip));
        let beat = a.seal_kind(Kind::Heartbeat, b"x");
        assert_eq!(b.open(&beat).map(|o| o.kind), Ok(Kind::Heartbeat));
        assert_eq!(a.open(&a.clone().seal(b"x")), Err(Rejected::FromSelf));
    }

    #[test]
    fn reordering_within_the_window_is_accepted_once() {
        let (mut a, b) = pair();
        let mut guard = ReplayGuard::new();
        let now = Instant::now();
        let id = sender(1);
        let sent: Vec<Vec<u8>> = (0..100).map(|_| a.seal(b"x")).collect();
        // Newest first, then the older ones still inside the window, then one too old.
        assert!(accept(&b, &mut guard, &id, &sent[99], now).is_ok());
        for datagram in &sent[36..99] {
            assert!(accept(&b, &mut guard, &id, datagram, now).is_ok());
        }
        for datagram in &sent[36..] {
            assert_eq!(accept(&b, &mut guard, &id, datagram, now), Err(Rejected::Replayed));
        }
        assert_eq!(accept(&b, &mut guard, &id, &sent[35], now), Err(Rejected::Replayed), "64 behind the newest");
    }

    /// Regression: a sender's window was swept after two hours of silence (twice `forget_down_after`), and a
    /// datagram recorded before was accepted once again.
    #[test]
    fn a_recorded_datagram_is_refused_after_any_silence_and_any_restart() {
        let (mut a, b) = pair();
        let mut guard = ReplayGuard::new();
        let start = Instant::now();
        let recorded = a.seal(b"x");
        assert!(accept(&b, &mut guard, &sender(5), &recorded, start).is_ok());
        let much_later = start + Duration::from_secs(30 * 24 * 3600);
        assert_eq!(accept(&b, &mut guard, &sender(5), &recorded, much_later), Err(Rejected::Replayed));
        // The sender restarts with a new boot and a newer generation; its old life is stale for good.
        let mut restarted = Authenticator::new(SECRET, 3);
        assert!(accept(&b, &mut guard, &sender(6), &restarted.seal(b"x"), much_later).is_ok());
        assert_eq!(accept(&b, &mut guard, &sender(5), &recorded, much_later), Err(Rejected::StaleLife));
        assert_eq!(guard.senders(), 1, "one entry per sender, whatever its restarts");
        assert_eq!(guard.newest(&sender(5), 3), Some((6, true)));
    }

    #[test]
    fn lives_are_ordered_by_generation_then_boot() {
        let (mut a, b) = pair();
        let mut guard = ReplayGuard::new();
        let now = Instant::now();
        assert!(accept(&b, &mut guard, &sender(5), &a.seal(b"x"), now).is_ok());
        // The same process after a rejoin: a newer generation, the same boot, its numbers go on.
        let next = a.seal(b"x");
        assert!(accept(&b, &mut guard, &sender(6), &next, now).is_ok());
        assert_eq!(accept(&b, &mut guard, &sender(6), &next, now), Err(Rejected::Replayed));
        // Another boot at the newest generation, or an older generation, is not the newest life.
        let mut other = Authenticator::new(SECRET, 9);
        assert_eq!(accept(&b, &mut guard, &sender(6), &other.seal(b"x"), now), Err(Rejected::StaleLife));
        assert_eq!(accept(&b, &mut guard, &sender(4), &other.seal(b"x"), now), Err(Rejected::StaleLife));
        assert_eq!(guard.newest(&sender(6), 9), Some((6, false)));
        // Another sender (another name, or another address) has its own entry.
        let elsewhere = MemberId::new("node-a", "192.0.2.2:7946".parse().unwrap(), 1);
        assert!(accept(&b, &mut guard, &elsewhere, &other.seal(b"x"), now).is_ok());
        assert_eq!(guard.senders(), 2);
    }

    #[test]
    fn memory_is_bounded_by_the_number_of_senders() {
        let (mut a, _) = pair();
        let mut guard = ReplayGuard::new();
        let start = Instant::now();
        for i in 0..MAX_SENDERS + 10 {
            let id = MemberId::new(&format!("node-{i}"), "192.0.2.1:7946".parse().unwrap(), 1);
            let now = start + Duration::from_millis(i as u64);
            assert!(guard.admit(&id, 7, i as u64 + 1, now).is_ok());
        }
        let _ = a.seal(b"x");
        assert_eq!(guard.senders(), MAX_SENDERS);
        let oldest = MemberId::new("node-0", "192.0.2.1:7946".parse().unwrap(), 1);
        assert!(guard.newest(&oldest, 7).is_none(), "the oldest went first");
    }
}
