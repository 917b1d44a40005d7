//! Authenticated datagrams: every gossip datagram carries an HMAC-SHA256 tag over a secret all speakers
//! share, and a per-sender sequence number that limits replays.
//!
//! Layout: `"MG" version:u8 boot:u64 seq:u64 payload tag[16]`. The tag (HMAC-SHA256 truncated to 128 bits,
//! compared in constant time) covers everything before it. `boot` is a random number the sender picks when it
//! starts and `seq` counts its datagrams from 1. A receiver keeps, per boot, the highest sequence number seen
//! and a 64-wide window below it (as IPsec does): a datagram whose number was already accepted, or is 64 or
//! more behind the highest, is refused as a replay. Only datagrams with a valid tag touch that state, so a
//! forger cannot fill it.
//!
//! What is not covered, by decision: a receiver that restarts forgets the windows, so an attacker who recorded
//! traffic can replay it once to that receiver. SWIM itself makes such a replay stale: the updates in it carry
//! older incarnations and identity generations, which lose against what the cluster says now. A datagram
//! redirected to another member is refused by the protocol layer, since every message names its destination
//! identity inside the tagged bytes. No wall clock is involved, so clock skew between nodes never drops gossip.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const MAGIC: [u8; 2] = *b"MG";
const VERSION: u8 = 1;
/// Bytes before the payload: magic, version, boot, sequence number.
pub const HEADER_LEN: usize = 2 + 1 + 8 + 8;
/// Bytes of the truncated HMAC-SHA256 tag after the payload.
pub const TAG_LEN: usize = 16;
/// Bytes a datagram carries besides its payload.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// How far behind the highest sequence number a datagram may arrive (reordering) and still be accepted once.
pub const REPLAY_WINDOW: u64 = 64;
/// Senders whose replay state is kept at most; the least recently heard is forgotten first.
const MAX_SENDERS: usize = 4096;
/// How often forgotten senders are swept out.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

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
    /// Sent by this member itself (its own boot number).
    FromSelf,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    highest: u64,
    /// Bit `i` set: sequence number `highest - i` was accepted.
    seen: u64,
    heard: Instant,
}

impl Window {
    fn accept(&mut self, seq: u64) -> bool {
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

/// Seals outgoing datagrams and opens incoming ones for one member.
#[derive(Clone)]
pub struct Authenticator {
    key: Hmac<Sha256>,
    boot: u64,
    next_seq: u64,
    windows: HashMap<u64, Window>,
    retention: Duration,
    last_prune: Option<Instant>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Authenticator").field("boot", &self.boot).field("senders", &self.windows.len()).finish()
    }
}

impl Authenticator {
    /// `boot` must differ between runs (the runtime draws it at random); `retention` is how long a silent
    /// sender's replay state is kept.
    pub fn new(secret: &[u8], boot: u64, retention: Duration) -> Self {
        let key = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes keys of any length");
        Authenticator { key, boot, next_seq: 1, windows: HashMap::new(), retention, last_prune: None }
    }

    pub fn boot(&self) -> u64 {
        self.boot
    }

    /// The datagram carrying `payload`, with the next sequence number and its tag.
    pub fn seal(&mut self, payload: &[u8]) -> Vec<u8> {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut datagram = Vec::with_capacity(OVERHEAD + payload.len());
        datagram.extend_from_slice(&MAGIC);
        datagram.push(VERSION);
        datagram.extend_from_slice(&self.boot.to_be_bytes());
        datagram.extend_from_slice(&seq.to_be_bytes());
        datagram.extend_from_slice(payload);
        let tag = self.tag(&datagram);
        datagram.extend_from_slice(&tag);
        datagram
    }

    /// The payload of `datagram` if its tag is valid and it is not a replay; records it as seen.
    pub fn open<'a>(&mut self, datagram: &'a [u8], now: Instant) -> Result<&'a [u8], Rejected> {
        if datagram.len() < OVERHEAD {
            return Err(Rejected::TooShort);
        }
        if datagram[..2] != MAGIC || datagram[2] != VERSION {
            return Err(Rejected::NotGossip);
        }
        let (signed, tag) = datagram.split_at(datagram.len() - TAG_LEN);
        let mut mac = self.key.clone();
        mac.update(signed);
        mac.verify_truncated_left(tag).map_err(|_| Rejected::BadTag)?;
        let boot = u64::from_be_bytes(signed[3..11].try_into().expect("8 bytes"));
        let seq = u64::from_be_bytes(signed[11..19].try_into().expect("8 bytes"));
        if boot == self.boot {
            return Err(Rejected::FromSelf);
        }
        self.prune(now);
        let window = self.windows.entry(boot).or_insert(Window { highest: 0, seen: 0, heard: now });
        if seq == 0 || !window.accept(seq) {
            return Err(Rejected::Replayed);
        }
        window.heard = now;
        if self.windows.len() > MAX_SENDERS {
            self.forget_oldest();
        }
        Ok(&signed[HEADER_LEN..])
    }

    /// Senders whose replay state is held.
    pub fn senders(&self) -> usize {
        self.windows.len()
    }

    fn tag(&self, signed: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.key.clone();
        mac.update(signed);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    fn prune(&mut self, now: Instant) {
        if self.last_prune.is_some_and(|last| now.saturating_duration_since(last) < PRUNE_EVERY) {
            return;
        }
        self.last_prune = Some(now);
        let retention = self.retention;
        self.windows.retain(|_, w| now.saturating_duration_since(w.heard) < retention);
    }

    fn forget_oldest(&mut self) {
        if let Some(oldest) = self.windows.iter().min_by_key(|(_, w)| w.heard).map(|(boot, _)| *boot) {
            self.windows.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef-shared-secret";

    fn pair() -> (Authenticator, Authenticator) {
        let hour = Duration::from_secs(3600);
        (Authenticator::new(SECRET, 1, hour), Authenticator::new(SECRET, 2, hour))
    }

    #[test]
    fn a_sealed_datagram_opens_once() {
        let (mut a, mut b) = pair();
        let now = Instant::now();
        let datagram = a.seal(b"hello");
        assert_eq!(datagram.len(), OVERHEAD + 5);
        assert_eq!(b.open(&datagram, now), Ok(&b"hello"[..]));
        assert_eq!(b.open(&datagram, now), Err(Rejected::Replayed));
    }

    #[test]
    fn any_flipped_bit_is_refused() {
        let (mut a, mut b) = pair();
        let datagram = a.seal(b"payload");
        for byte in 3..datagram.len() {
            for bit in 0..8 {
                let mut bad = datagram.clone();
                bad[byte] ^= 1 << bit;
                assert_eq!(b.open(&bad, Instant::now()), Err(Rejected::BadTag), "byte {byte} bit {bit}");
            }
        }
        assert_eq!(b.senders(), 0, "refused datagrams leave no state");
    }

    #[test]
    fn another_secret_is_refused() {
        let mut a = Authenticator::new(b"another secret of sixteen bytes", 1, Duration::from_secs(60));
        let (_, mut b) = pair();
        assert_eq!(b.open(&a.seal(b"x"), Instant::now()), Err(Rejected::BadTag));
    }

    #[test]
    fn short_and_foreign_datagrams_are_named() {
        let (mut a, mut b) = pair();
        let now = Instant::now();
        assert_eq!(b.open(&[0u8; OVERHEAD - 1], now), Err(Rejected::TooShort));
        let mut other = a.seal(b"x");
        other[2] = 2;
        assert_eq!(b.open(&other, now), Err(Rejected::NotGossip));
        assert_eq!(a.open(&a.clone().seal(b"x"), now), Err(Rejected::FromSelf));
    }

    #[test]
    fn reordering_within_the_window_is_accepted_once() {
        let (mut a, mut b) = pair();
        let now = Instant::now();
        let sent: Vec<Vec<u8>> = (0..100).map(|_| a.seal(b"x")).collect();
        // Newest first, then the older ones still inside the window, then one too old.
        assert!(b.open(&sent[99], now).is_ok());
        for datagram in &sent[36..99] {
            assert!(b.open(datagram, now).is_ok());
        }
        for datagram in &sent[36..] {
            assert_eq!(b.open(datagram, now), Err(Rejected::Replayed));
        }
        assert_eq!(b.open(&sent[35], now), Err(Rejected::Replayed), "64 behind the newest");
    }

    #[test]
    fn a_restarted_sender_gets_a_fresh_window_and_old_state_expires() {
        let (mut a, mut b) = pair();
        let start = Instant::now();
        assert!(b.open(&a.seal(b"x"), start).is_ok());
        let mut restarted = Authenticator::new(SECRET, 3, Duration::from_secs(3600));
        assert!(b.open(&restarted.seal(b"x"), start).is_ok());
        assert_eq!(b.senders(), 2);
        let later = start + Duration::from_secs(7200);
        assert!(b.open(&restarted.seal(b"x"), later).is_ok());
        assert_eq!(b.senders(), 1, "the silent sender's state is swept after the retention");
    }
}
