//! Fast takeover: heartbeats between speakers, and the standby that announces the moment its owner goes
//! silent. No I/O; time is passed in.
//!
//! SWIM finds a dead member in a few hundred milliseconds because it probes one member per interval and
//! asks others before it suspects anyone. A layer 2 address cannot wait that long, so beside it every speaker
//! sends a small authenticated heartbeat every `interval` to the peers its speaker names ([`Watch::set_plan`]:
//! every peer in a small cluster) and keeps, per peer, when it last beat and what it said. The speaker also
//! names, per owner, what this node announces if that owner goes silent: the addresses it stands by for (it
//! is next in their election order). When an owner has not beaten for `timeout`, the watch fires: the caller
//! announces those addresses at once (gratuitous ARP, unsolicited NA) without waiting for the election, and
//! the owner is *held down* in this node's view until it beats again, so the next election agrees.
//!
//! Safety before speed:
//! - **Confirmed by a witness.** It fires only when another peer, heard within the last `timeout / 2`, says in
//!   its own heartbeat that it misses the owner too (each heartbeat lists the peers the sender has not heard
//!   for `timeout / 2`). A node whose own cable is cut hears no witness and never fires; nor does a node
//!   that alone lost its path to a live owner. Without a third speaker that beats (two nodes, or peers that
//!   do not send heartbeats) there is no fast takeover and SWIM decides, as before.
//! - **Armed by a heartbeat.** An owner is watched only once a heartbeat of it arrived after it was named as
//!   one: a peer that never beats (an older version, watching turned off) is left to SWIM, and an owner
//!   named late is not judged on an old silence (it may have been out of this node's heartbeat subset).
//! - **Readiness.** Each heartbeat says whether its sender is *ready*: settled and announcing what it wins. A
//!   speaker counts a peer that says it is not ready (a restarted node still settling) out of its elections,
//!   so an address moves back to a returning node only once that node announces it (make before break). A
//!   restart (a new life of a peer whose previous life beat) that SWIM reports before its first heartbeat
//!   counts as not ready for up to [`READY_GRACE`], so the race between the two does not open a gap either;
//!   after the grace it counts as ready, as SWIM says. A peer never heard beating (a first start, an older
//!   version) counts as ready: holding it out on a guess would make two nodes announce.
//! - **Not after its own stall.** A tick that comes two intervals or more after the previous one means this
//!   thread was descheduled (a loaded node, a paused VM): every peer looks silent for that long. It decides
//!   nothing for the next two intervals, so that heartbeats sent meanwhile arrive first.
//! - **Muted when it hears nobody.** When every peer it heartbeats has beaten and all have been silent for
//!   `timeout` (its own cable cut: the others are taking its addresses over; a peer that does not beat, an
//!   older version, leaves the decision to SWIM), the watch says so at once ([`Watch::take_mute`]) and the
//!   runtime mutes the responder, long before SWIM's isolation makes the speaker withdraw; the first
//!   heartbeat heard again unmutes it. So across a cut the two sides do not both answer for longer than
//!   the takeover takes.
//! - **Parting words.** When a change of plan drops a peer from this node's heartbeats, the peer gets a
//!   last heartbeat (twice, a tick apart) that says so. It stops judging this node on its silence: not as an
//!   owner to take over, not as a suspect it reports as a witness, not as a peer it hears nothing from. Two
//!   nodes whose views differ for a moment (one of them holds a third down, or counts it not ready) plan
//!   different heartbeats; without this, the one that stands by for an owner that no longer heartbeats it
//!   took it over as soon as a witness in the same position confirmed, and two nodes announced until their
//!   views met again. The next ordinary heartbeat arms the watch again.
//! - **Released by a heartbeat.** A held-down owner is released by its next heartbeat, whichever life it
//!   comes from (a paused node that resumes, or a restart), or by SWIM seeing a newer life of it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};

use super::codec::{get_id, get_slice, get_u8, put_id, CodecError};
use super::error::MembershipError;
use super::identity::{MemberId, MAX_NAME_LEN};

/// Shortest heartbeat interval accepted: below this timer jitter dominates and the traffic is a flood.
pub const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(2);
/// Peers a heartbeat lists as missed at most (the datagram stays well below the MTU).
pub const MAX_SUSPECTS: usize = 16;
/// A peer neither heartbeated nor held down is forgotten after this long unheard (the map stays as large as
/// the cluster).
pub const FORGET_AFTER: Duration = Duration::from_secs(60);
const FLAG_READY: u8 = 1;
const FLAG_PARTING: u8 = 2;
/// Parting heartbeats sent to a peer dropped from the plan (a tick apart: one may be lost).
pub const PARTING_BEATS: u8 = 2;

/// How long a new life seen in SWIM counts as not ready before its first heartbeat (a speaker settles for up
/// to 3 s after it starts, then runs its first round).
pub const READY_GRACE: Duration = Duration::from_secs(10);
/// The least time between two re-announcements of this node's addresses after peers stopped suspecting it
/// (see [`Watch::take_reclaim`]); about one gratuitous burst's interval. It doubles while they keep coming,
/// up to [`RECLAIM_SPACING_MAX`], and starts over once that long passed without one.
pub const RECLAIM_SPACING: Duration = Duration::from_secs(1);
pub const RECLAIM_SPACING_MAX: Duration = Duration::from_secs(30);
/// Reclaims in a row said [`RECLAIM_SPACING`] apart before the spacing starts doubling (a speaker's start and
/// a real takeover or two are not a flapping view).
pub const RECLAIM_STREAK_FREE: u32 = 3;

/// How fast the watch decides. The defaults are what a loaded node runs: 10 ms heartbeats and 30 ms of
/// silence, confirmed by a witness that missed the owner for 15 ms (VRRP with 10 ms adverts waits 36 ms, on
/// one node's word; the witness is what keeps a late heartbeat of a loaded node from moving an address).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct WatchTiming {
    pub interval: Duration,
    /// Silence after which an owner is taken over (when a witness confirms).
    pub timeout: Duration,
}

impl Default for WatchTiming {
    fn default() -> Self {
        WatchTiming { interval: Duration::from_millis(10), timeout: Duration::from_millis(30) }
    }
}

impl WatchTiming {
    pub fn validate(&self) -> Result<(), MembershipError> {
        if self.interval < MIN_HEARTBEAT_INTERVAL {
            return Err(MembershipError::InvalidConfig(format!(
                "heartbeat interval {:?} is shorter than the minimum {MIN_HEARTBEAT_INTERVAL:?}",
                self.interval
            )));
        }
        if self.timeout < self.interval.saturating_mul(3) {
            return Err(MembershipError::InvalidConfig(format!(
                "heartbeat timeout {:?} must be at least three heartbeat intervals ({:?}): one late heartbeat \
                 must not move an address",
                self.timeout,
                self.interval.saturating_mul(3)
            )));
        }
        Ok(())
    }

    /// A peer not heard for this long is listed as missed in this member's heartbeats; a witness must have
    /// been heard within it.
    pub fn suspect_after(&self) -> Duration {
        self.timeout / 2
    }
}

/// An address this node announces if its owner goes silent, and where.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Takeover {
    pub address: IpAddr,
    pub interfaces: Vec<String>,
}

/// What a heartbeat says besides who sent it.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Heartbeat {
    pub ready: bool,
    /// Peers the sender has not heard for `timeout / 2`.
    pub suspects: Vec<String>,
    /// The sender's last heartbeat to this receiver: its plan no longer names it.
    pub parting: bool,
}

/// `identity flags:u8 count:u8 (name_len:u8 name)*`.
pub fn encode_heartbeat(from: &MemberId, beat: &Heartbeat) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(64);
    put_id(&mut out, from)?;
    out.put_u8(if beat.ready { FLAG_READY } else { 0 } | if beat.parting { FLAG_PARTING } else { 0 });
    let suspects = &beat.suspects[..beat.suspects.len().min(MAX_SUSPECTS)];
    out.put_u8(u8::try_from(suspects.len()).expect("at most MAX_SUSPECTS"));
    for name in suspects {
        let bytes = name.as_bytes();
        if bytes.len() > MAX_NAME_LEN {
            return Err(CodecError::NameTooLong);
        }
        out.put_u8(u8::try_from(bytes.len()).expect("at most MAX_NAME_LEN"));
        out.put_slice(bytes);
    }
    Ok(out)
}

pub fn decode_heartbeat(mut buf: &[u8]) -> Result<(MemberId, Heartbeat), CodecError> {
    let from = get_id(&mut buf)?;
    let flags = get_u8(&mut buf, "heartbeat flags")?;
    let count = usize::from(get_u8(&mut buf, "suspect count")?).min(MAX_SUSPECTS);
    let mut suspects = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::from(get_u8(&mut buf, "suspect name length")?);
        if len > MAX_NAME_LEN {
            return Err(CodecError::NameTooLong);
        }
        let mut name = vec![0u8; len];
        get_slice(&mut buf, &mut name, "suspect name")?;
        suspects.push(String::from_utf8(name).map_err(|_| CodecError::NameNotUtf8)?);
    }
    if buf.has_remaining() {
        return Err(CodecError::Truncated("heartbeat (trailing bytes)"));
    }
    Ok((from, Heartbeat { ready: flags & FLAG_READY != 0, suspects, parting: flags & FLAG_PARTING != 0 }))
}

/// A change the caller acts on.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum WatchEvent {
    /// The owner went silent and a witness confirmed: its addresses here were taken over.
    Held(String),
    /// A held-down owner beats again (or SWIM saw a newer life of it).
    Released(String),
    /// A peer's heartbeat says it became ready, or not ready.
    Ready(String),
    Unready(String),
    /// No peer that beat has been heard for `timeout`: this node is cut off (mute it).
    Unheard,
    /// A heartbeat is heard again after that (unmute it).
    Heard,
}

#[derive(Clone, Debug)]
struct Peer {
    generation: u64,
    /// The last heartbeat, and the last authentic datagram of any kind.
    beat: Option<Instant>,
    heard: Instant,
    ready: bool,
    suspects: Vec<String>,
    /// A new life seen in SWIM, not heard beating yet: not ready until then (or its first heartbeat).
    pending_until: Option<Instant>,
    /// Its last heartbeat was a parting one: its silence says nothing until it beats again.
    parted: bool,
}

impl Peer {
    fn new(generation: u64, now: Instant) -> Self {
        Peer {
            generation,
            beat: None,
            heard: now,
            ready: true,
            suspects: Vec::new(),
            pending_until: None,
            parted: false,
        }
    }

    /// The last heartbeat, unless it was a parting one.
    fn beating(&self) -> Option<Instant> {
        self.beat.filter(|_| !self.parted)
    }

    fn unready(&self, now: Instant) -> bool {
        (self.beat.is_some() && !self.ready) || self.pending_until.is_some_and(|until| now < until)
    }
}

/// Counters since start.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct WatchStats {
    pub heartbeats_sent: u64,
    pub heartbeats_received: u64,
    pub takeovers: u64,
    pub releases: u64,
    /// Owners silent for `timeout` that were not taken over (yet) because no witness confirmed.
    pub unconfirmed: u64,
    /// Ticks that came two intervals or more late: this thread was descheduled, and decided nothing for a
    /// while after.
    pub stalls: u64,
    /// Times this node heard no peer for `timeout` (and was muted).
    pub unheard: u64,
    /// Times this node announced its addresses again because a peer stopped suspecting it (at most one per
    /// [`RECLAIM_SPACING`]).
    pub reclaims: u64,
}

/// One member's heartbeats and standby duties. See the module documentation.
#[derive(Debug)]
pub struct Watch {
    timing: WatchTiming,
    targets: BTreeMap<String, SocketAddr>,
    takeovers: BTreeMap<String, Vec<Takeover>>,
    ready: bool,
    peers: HashMap<String, Peer>,
    /// Held-down owners, with the newest generation heard of each when it was held.
    held: BTreeMap<String, u64>,
    /// Owners found silent and waiting for a witness (counted once per silence).
    waiting: BTreeSet<String>,
    /// When each owner of `takeovers` was first named: only a heartbeat after that arms it.
    named: BTreeMap<String, Instant>,
    /// Peers dropped from `targets`, and how many parting heartbeats each still gets.
    parting: BTreeMap<String, (SocketAddr, u8)>,
    parting_due: Vec<SocketAddr>,
    next_send: Instant,
    /// The previous tick, and until when no takeover is decided after this thread's own stall.
    last_tick: Instant,
    quiet_until: Option<Instant>,
    /// Hearing no peer (see [`Watch::take_mute`]), and the change not taken yet.
    unheard: bool,
    mute: Option<bool>,
    /// This node's name (as peers list it among their suspects); whether a peer stopped suspecting it and that
    /// is not taken yet (see [`Watch::take_reclaim`]), and when one was last taken.
    me: String,
    reclaim: bool,
    last_reclaim: Option<Instant>,
    reclaim_streak: u32,
    fired: Vec<(String, Vec<Takeover>)>,
    events: Vec<WatchEvent>,
    stats: WatchStats,
}

impl Watch {
    pub fn new(timing: WatchTiming, now: Instant) -> Self {
        Watch {
            timing,
            targets: BTreeMap::new(),
            takeovers: BTreeMap::new(),
            ready: false,
            peers: HashMap::new(),
            held: BTreeMap::new(),
            waiting: BTreeSet::new(),
            named: BTreeMap::new(),
            parting: BTreeMap::new(),
            parting_due: Vec::new(),
            next_send: now,
            last_tick: now,
            quiet_until: None,
            unheard: false,
            mute: None,
            me: String::new(),
            reclaim: false,
            last_reclaim: None,
            reclaim_streak: 0,
            fired: Vec::new(),
            events: Vec::new(),
            stats: WatchStats::default(),
        }
    }

    /// This node's name, as its peers' heartbeats list it among their suspects.
    pub fn set_me(&mut self, me: &str) {
        self.me = me.to_string();
    }

    /// Replaces who gets heartbeats (name -> gossip address), what this node takes over from whom, and
    /// whether it is ready. A change of readiness goes out at once.
    pub fn set_plan(
        &mut self,
        now: Instant,
        targets: BTreeMap<String, SocketAddr>,
        takeovers: BTreeMap<String, Vec<Takeover>>,
        ready: bool,
    ) {
        if ready != self.ready || targets.keys().any(|name| !self.targets.contains_key(name)) {
            self.next_send = now;
        }
        if self.targets.is_empty() {
            self.last_tick = now; // no heartbeats were due: the gap since the last tick is not a stall
        }
        for (name, addr) in &self.targets {
            if !targets.contains_key(name) {
                self.parting.insert(name.clone(), (*addr, PARTING_BEATS));
                self.next_send = now;
            }
        }
        self.parting.retain(|name, _| !targets.contains_key(name));
        self.named.retain(|owner, _| takeovers.contains_key(owner));
        for owner in takeovers.keys() {
            self.named.entry(owner.clone()).or_insert(now);
        }
        self.targets = targets;
        self.takeovers = takeovers;
        self.ready = ready;
        self.waiting.retain(|name| self.takeovers.contains_key(name));
        // The silent peers are no longer expected (their Leases went stale: they died, this node did not):
        // answer again.
        self.unmute_unless_cut(now);
    }

    fn unmute_unless_cut(&mut self, now: Instant) {
        if self.unheard && !self.hears_nobody(now) {
            self.unheard = false;
            self.mute = Some(false);
            self.events.push(WatchEvent::Heard);
        }
    }

    /// When `owner` last beat, if that arms it: after it was named an owner.
    fn armed_beat(&self, owner: &str) -> Option<Instant> {
        let beat = self.peers.get(owner)?.beating()?;
        (beat >= *self.named.get(owner)?).then_some(beat)
    }

    /// A heartbeat arrived (authentic, not a replay, not from this member).
    pub fn beat(&mut self, now: Instant, from: &MemberId, beat: Heartbeat) {
        self.stats.heartbeats_received += 1;
        let name = from.name().to_string();
        let peer = self.peers.entry(name.clone()).or_insert_with(|| Peer::new(from.generation(), now));
        if from.generation() < peer.generation {
            return; // an older life of the peer, late: says nothing about the current one
        }
        let was_ready = !peer.unready(now);
        peer.pending_until = None;
        peer.generation = from.generation();
        peer.beat = Some(now);
        peer.heard = now;
        peer.ready = beat.ready;
        peer.parted = beat.parting;
        let suspected = |suspects: &[String]| !self.me.is_empty() && suspects.contains(&self.me);
        if suspected(&peer.suspects) && !suspected(&beat.suspects) {
            // The peer missed this node and hears it again: if it took this node's addresses over meanwhile,
            // it has just given them back, and the neighbours its announcement moved still send to it.
            self.reclaim = true;
        }
        peer.suspects = beat.suspects;
        if was_ready != beat.ready {
            self.events.push(if beat.ready {
                WatchEvent::Ready(name.clone())
            } else {
                WatchEvent::Unready(name.clone())
            });
        }
        self.waiting.remove(&name);
        if self.unheard {
            self.unheard = false;
            self.mute = Some(false);
            self.events.push(WatchEvent::Heard);
        }
        if self.held.remove(&name).is_some() {
            self.stats.releases += 1;
            self.events.push(WatchEvent::Released(name));
        }
    }

    /// Any other authentic datagram from `name` (SWIM's): proof of life for the witness rule, not a
    /// heartbeat.
    pub fn heard(&mut self, now: Instant, name: &str, generation: u64) {
        match self.peers.get_mut(name) {
            Some(peer) if generation >= peer.generation => peer.heard = now,
            Some(_) => {}
            None => {
                self.peers.insert(name.to_string(), Peer::new(generation, now));
            }
        }
    }

    /// SWIM counts `name` alive at `generation`. A held-down owner restarted as a newer life is released; a
    /// newer life of a peer heard beating counts as not ready until it beats (or `READY_GRACE`).
    pub fn alive_in_swim(&mut self, now: Instant, name: &str, generation: u64) {
        if self.held.get(name).is_some_and(|held| generation > *held) {
            self.held.remove(name);
            self.stats.releases += 1;
            self.events.push(WatchEvent::Released(name.to_string()));
        }
        let Some(peer) = self.peers.get_mut(name) else { return };
        if generation > peer.generation && peer.beat.is_some() {
            // No event: SWIM's own "up" already tells the caller to look again.
            *peer = Peer { pending_until: Some(now + READY_GRACE), ..Peer::new(generation, now) };
        }
    }

    /// Runs what is due: the addresses to send a heartbeat to now (see [`Watch::heartbeat`]), and the
    /// takeovers that fire (read them with [`Watch::take_fired`]).
    pub fn tick(&mut self, now: Instant) -> Vec<SocketAddr> {
        let stall = self.timing.interval.saturating_mul(2);
        if self.quiet_until.is_some_and(|until| now >= until) {
            self.quiet_until = None;
        }
        if now.saturating_duration_since(self.last_tick) >= stall && !self.targets.is_empty() {
            self.quiet_until = Some(now + stall);
            self.stats.stalls += 1;
        }
        self.last_tick = now;
        let (targets, held) = (&self.targets, &self.held);
        self.peers.retain(|name, p| {
            targets.contains_key(name)
                || held.contains_key(name)
                || now.saturating_duration_since(p.heard) < FORGET_AFTER
        });
        self.evaluate(now);
        for (name, peer) in &mut self.peers {
            if peer.pending_until.is_some_and(|until| now >= until) {
                peer.pending_until = None;
                self.events.push(WatchEvent::Ready(name.clone()));
            }
        }
        if now < self.next_send {
            return Vec::new();
        }
        // A late tick (the thread was descheduled) sends once, then keeps the interval from now.
        self.next_send = now + self.timing.interval;
        self.parting_due = self.parting.values().map(|(addr, _)| *addr).collect();
        self.parting.retain(|_, (_, left)| {
            *left -= 1;
            *left > 0
        });
        self.stats.heartbeats_sent += (self.targets.len() + self.parting_due.len()) as u64;
        self.targets.values().copied().collect()
    }

    /// The peers that get a parting heartbeat now, from the last [`tick`](Watch::tick) that sent (see the
    /// module documentation): each peer dropped from the plan gets [`PARTING_BEATS`], one per interval.
    pub fn take_parting(&mut self) -> Vec<SocketAddr> {
        std::mem::take(&mut self.parting_due)
    }

    /// Fires the takeovers that are due at `now` (from [`tick`](Watch::tick), which the runtime runs once
    /// the datagrams queued so far are read: the witness's heartbeat may be what completes the rule).
    pub fn evaluate(&mut self, now: Instant) {
        if self.quiet_until.is_some_and(|until| now < until) {
            return;
        }
        if !self.unheard && self.hears_nobody(now) {
            self.unheard = true;
            self.mute = Some(true);
            self.stats.unheard += 1;
            self.events.push(WatchEvent::Unheard);
        }
        self.unmute_unless_cut(now);
        let owners: Vec<String> = self.takeovers.keys().filter(|o| !self.held.contains_key(*o)).cloned().collect();
        for owner in owners {
            let Some(silent_since) = self.armed_beat(&owner) else { continue };
            if now.saturating_duration_since(silent_since) < self.timing.timeout {
                continue;
            }
            if !self.confirmed(now, &owner) {
                if self.waiting.insert(owner.clone()) {
                    self.stats.unconfirmed += 1;
                }
                continue;
            }
            self.waiting.remove(&owner);
            let generation = self.peers.get(&owner).map_or(0, |p| p.generation);
            self.held.insert(owner.clone(), generation);
            self.stats.takeovers += 1;
            let items = self.takeovers.get(&owner).cloned().unwrap_or_default();
            self.fired.push((owner.clone(), items));
            self.events.push(WatchEvent::Held(owner));
        }
    }

    /// Whether there are targets, every one of them beats (in its current life), and all have been silent
    /// for `timeout`.
    fn hears_nobody(&self, now: Instant) -> bool {
        !self.targets.is_empty()
            && self.targets.keys().all(|name| {
                self.peers
                    .get(name)
                    .and_then(Peer::beating)
                    .is_some_and(|at| now.saturating_duration_since(at) >= self.timing.timeout)
            })
    }

    /// Whether to mute the responder (`Some(true)`), unmute it (`Some(false)`), or leave it, since the last
    /// call.
    pub fn take_mute(&mut self) -> Option<bool> {
        self.mute.take()
    }

    /// Whether to announce this node's addresses again now (gratuitous frames), to win back the neighbours a
    /// takeover during a silence moved: a peer stopped suspecting this node, and the last time this said yes
    /// is at least the current spacing ago (one that comes sooner waits for that, then is said once). The
    /// spacing is [`RECLAIM_SPACING`] for the first [`RECLAIM_STREAK_FREE`] in a row (each said less than
    /// [`RECLAIM_SPACING_MAX`] after the spacing allowed it), then doubles with each up to that, and starts
    /// over after a longer quiet spell. Peers that keep suspecting and
    /// clearing this node (a starved machine) would otherwise have it announce everything again at each
    /// change, and every node's announcements feed the others' load.
    pub fn take_reclaim(&mut self, now: Instant) -> bool {
        let since = self.last_reclaim.map(|at| now.saturating_duration_since(at));
        let spacing = self.reclaim_spacing();
        if !self.reclaim || since.is_some_and(|since| since < spacing) {
            return false;
        }
        self.reclaim_streak = match since {
            // Said about as soon as allowed: they keep coming.
            Some(since) if since < spacing + RECLAIM_SPACING_MAX => self.reclaim_streak + 1,
            _ => 0,
        };
        self.reclaim = false;
        self.last_reclaim = Some(now);
        self.stats.reclaims += 1;
        true
    }

    /// The least time until the next reclaim: [`RECLAIM_SPACING`] for the first [`RECLAIM_STREAK_FREE`] in a
    /// row, then doubling with each, up to [`RECLAIM_SPACING_MAX`].
    fn reclaim_spacing(&self) -> Duration {
        let doublings = self.reclaim_streak.saturating_sub(RECLAIM_STREAK_FREE).min(8);
        (RECLAIM_SPACING * 2u32.pow(doublings)).min(RECLAIM_SPACING_MAX)
    }

    /// Whether another peer heard within `timeout / 2` misses `owner` too.
    fn confirmed(&self, now: Instant, owner: &str) -> bool {
        let fresh = self.timing.suspect_after();
        self.peers.iter().any(|(name, peer)| {
            name != owner
                && peer.beat.is_some_and(|at| now.saturating_duration_since(at) <= fresh)
                && peer.suspects.iter().any(|s| s == owner)
        })
    }

    /// The heartbeat this member sends now.
    pub fn heartbeat(&self, now: Instant) -> Heartbeat {
        let after = self.timing.suspect_after();
        // Only the peers it heartbeats: a name out of that set may be stale here, and alive.
        let mut suspects: Vec<String> = self
            .targets
            .keys()
            .filter(|name| {
                self.peers
                    .get(*name)
                    .and_then(Peer::beating)
                    .is_some_and(|at| now.saturating_duration_since(at) >= after)
            })
            .cloned()
            .collect();
        suspects.sort();
        suspects.truncate(MAX_SUSPECTS);
        Heartbeat { ready: self.ready, suspects, parting: false }
    }

    /// When [`tick`](Watch::tick) should run next: the next heartbeat, or the moment an armed owner's
    /// silence reaches the timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut next = (!self.targets.is_empty() || !self.parting.is_empty()).then_some(self.next_send);
        for until in self.peers.values().filter_map(|p| p.pending_until).chain(self.quiet_until) {
            next = Some(next.map_or(until, |n| n.min(until)));
        }
        for owner in self.takeovers.keys().filter(|o| !self.held.contains_key(*o) && !self.waiting.contains(*o)) {
            if let Some(at) = self.armed_beat(owner) {
                // Nothing is decided before a quiet time after a stall ends: no deadline in it (a poll
                // without timeout, on the loaded node that stalled).
                let due = (at + self.timing.timeout).max(self.quiet_until.unwrap_or(at));
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        next
    }

    pub fn take_fired(&mut self) -> Vec<(String, Vec<Takeover>)> {
        std::mem::take(&mut self.fired)
    }

    pub fn take_events(&mut self) -> Vec<WatchEvent> {
        std::mem::take(&mut self.events)
    }

    /// Owners held down, sorted.
    pub fn held(&self) -> Vec<String> {
        self.held.keys().cloned().collect()
    }

    /// Peers whose last heartbeat said they are not ready, or new lives not heard beating yet, sorted.
    pub fn unready(&self, now: Instant) -> Vec<String> {
        let mut names: Vec<String> =
            self.peers.iter().filter(|(_, p)| p.unready(now)).map(|(n, _)| n.clone()).collect();
        names.sort();
        names
    }

    pub fn targets(&self) -> &BTreeMap<String, SocketAddr> {
        &self.targets
    }

    pub fn stats(&self) -> WatchStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str, generation: u64) -> MemberId {
        let port = 7000 + u16::from(name.as_bytes()[name.len() - 1]);
        MemberId::new(name, SocketAddr::from(([192, 0, 2, 1], port)), generation)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn takeover(ip: &str) -> Takeover {
        Takeover { address: ip.parse().unwrap(), interfaces: vec!["eth0".into()] }
    }

    /// node2's watch, standing by for node1's 192.0.2.10, with node3 as the witness; 10 ms heartbeats, 50 ms
    /// timeout (a witness must miss the owner for 25 ms).
    fn standby(t0: Instant) -> Watch {
        let mut w = Watch::new(WatchTiming { interval: ms(10), timeout: ms(50) }, t0);
        let targets = ["node1", "node3"].iter().map(|n| (n.to_string(), id(n, 1).addr())).collect();
        let takeovers = BTreeMap::from([("node1".to_string(), vec![takeover("192.0.2.10")])]);
        w.set_plan(t0, targets, takeovers, true);
        w
    }

    /// Ticks every 10 ms from `from` (exclusive) to `to` (exclusive), as the runtime does.
    fn tick_through(w: &mut Watch, from: Instant, to: Instant) {
        let mut at = from + ms(10);
        while at < to {
            w.tick(at);
            at += ms(10);
        }
    }

    #[test]
    fn hearing_no_peer_mutes_and_the_first_heartbeat_unmutes() {
        let t0 = Instant::now();
        let mut w = standby(t0);
        w.beat(t0, &id("node1", 1), beat(true, &[]));
        w.beat(t0, &id("node3", 1), beat(true, &[]));
        tick_through(&mut w, t0, t0 + ms(50));
        assert_eq!(w.take_mute(), None, "silent for less than the timeout");
        w.tick(t0 + ms(50));
        assert_eq!(w.take_mute(), Some(true));
        assert!(w.take_events().contains(&WatchEvent::Unheard));
        assert!(w.take_fired().is_empty(), "no witness: nothing taken over");
        w.tick(t0 + ms(60));
        assert_eq!(w.take_mute(), None, "said once");
        w.beat(t0 + ms(65), &id("node3", 1), beat(true, &["node1"]));
        assert_eq!(w.take_mute(), Some(false));
        assert_eq!(w.stats().unheard, 1);
        // One silent peer among others heard is not a cut.
        let mut at = t0 + ms(70);
        while at < t0 + ms(200) {
            w.beat(at, &id("node3", 1), beat(true, &["node1"]));
            w.tick(at);
            at += ms(10);
        }
        assert_eq!(w.take_mute(), None);
        // Every peer died: muted; once the speaker no longer expects them (their Leases went stale), it
        // answers again.
        tick_through(&mut w, t0 + ms(190), t0 + ms(300));
        assert_eq!(w.take_mute(), Some(true));
        w.set_plan(t0 + ms(300), BTreeMap::new(), BTreeMap::new(), true);
        assert_eq!(w.take_mute(), Some(false));
        assert!(w.take_events().contains(&WatchEvent::Heard));
    }

    #[test]
    fn an_owner_named_late_is_not_judged_on_an_old_silence() {
        let t0 = Instant::now();
        let mut w = Watch::new(WatchTiming { interval: ms(10), timeout: ms(50) }, t0);
        let targets: BTreeMap<String, SocketAddr> =
            ["node1", "node3"].iter().map(|n| (n.to_string(), id(n, 1).addr())).collect();
        w.set_plan(t0, targets.clone(), BTreeMap::new(), true);
        w.beat(t0, &id("node1", 1), beat(true, &[]));
        // node1 leaves this node's heartbeat set for a while (a larger cluster's subset); its entry goes stale.
        let later = t0 + ms(500);
        let takeovers = BTreeMap::from([("node1".to_string(), vec![takeover("192.0.2.10")])]);
        w.set_plan(later, targets, takeovers, true);
        let mut at = later;
        while at < later + ms(100) {
            w.beat(at, &id("node3", 1), beat(true, &["node1"]));
            w.tick(at);
            at += ms(10);
        }
        assert!(w.take_fired().is_empty() && w.held().is_empty(), "taken over on a silence from before");
        // Once it beats after being named, a real death is taken over.
        w.beat(at, &id("node1", 1), beat(true, &[]));
        let dead = at;
        while at < dead + ms(100) {
            w.beat(at, &id("node3", 1), beat(true, &["node1"]));
            w.tick(at);
            at += ms(10);
        }
        assert_eq!(w.held(), vec!["node1".to_string()]);
    }

    #[test]
    fn a_peer_that_never_beats_keeps_this_node_from_muting_itself() {
        let t0 = Instant::now();
        let mut w = standby(t0);
        w.beat(t0, &id("node1", 1), beat(true, &[]));
        w.heard(t0, "node3", 1); // an older version: SWIM only
        tick_through(&mut w, t0, t0 + ms(200));
        assert_eq!(w.take_mute(), None);
    }

    #[test]
    fn no_deadline_falls_inside_the_quiet_time_after_a_stall() {
        let t0 = Instant::now();
        let mut w = standby(t0);
        w.beat(t0, &id("node1", 1), beat(true, &[]));
        w.tick(t0);
        let woke = t0 + ms(100); // stalled: node1's deadline (t0 + 50 ms) is past, the quiet time ahead
        w.tick(woke);
        let next = w.next_deadline().unwrap();
        assert!(next > woke, "a deadline in the past makes the thread poll without a timeout until it ends");
    }

    #[test]
    fn nothing_is_decided_right_after_this_thread_stalled() {
        let t0 = Instant::now();
        let mut w = standby(t0);
        w.beat(t0, &id("node1", 1), beat(true, &[]));
        w.tick(t0);
        // This thread sleeps 100 ms; when it runs again, a witness's word is already queued.
        let woke = t0 + ms(100);
        w.beat(woke, &id("node3", 1), beat(true, &["node1"]));
        w.tick(woke);
        assert!(w.take_fired().is_empty(), "decided on silence it could not have heard");
        assert_eq!(w.stats().stalls, 1);
        // The owner's own heartbeat, sent meanwhile, arrives within the quiet time: nothing moves.
        w.beat(woke + ms(3), &id("node1", 1), beat(true, &[]));
        tick_through(&mut w, woke, woke + ms(60));
        assert!(w.take_fired().is_empty() && w.held().is_empty());
        // A real death after that is still taken over.
        let mut at = woke + ms(60);
        while at < woke + ms(200) {
            w.beat(at, &id("node3", 1), beat(true, &["node1"]));
            w.tick(at);
            at += ms(10);
        }
        assert_eq!(w.held(), vec!["node1".to_string()]);
    }

    fn beat(ready: bool, suspects: &[&str]) -> Heartbeat {
        Heartbeat { ready, suspects: suspects.iter().map(|s| s.to_string()).collect(), parting: false }
    }

    fn parting(suspects: &[&str]) -> Heartbeat {
        Heartbeat { parting: true, ..beat(true, suspects) }
    }

    #[test]
    fn a_peer_dropped_from_the_plan_gets_two_parting_heartbeats_an_interval_apart() {
        let t0 = Instant::now();
        let mut w = standby(t0);
        assert_eq!(w.tick(t0).len(), 2);
        assert!(w.take_parting().is_empty());
        let node3 = id("node3", 1).addr();
        let only_node1 = BTreeMap::from([("node1".to_string(), id("node1", 1).addr())]);
        w.set_plan(t0 + ms(3), only_node1.clone(), BTreeMap::new(), true);
        // At once, not at the next interval; then once more at the next one; then never.
        assert_eq!(w.next_deadline(), Some(t0 + ms(3)));
        assert_eq!(w.tick(t0 + ms(3)), vec![id("node1", 1).addr()]);
        assert_eq!(w.take_parting(), vec![node3]);
        w.tick(t0 + ms(8));
        assert!(w.take_parting().is_empty(), "before the interval");
        w.tick(t0 + ms(13));
        assert_eq!(w.take_parting(), vec![node3]);
        for step in 2..10 {
            w.tick(t0 + ms(3 + 10 * step));
            assert!(w.take_parting().is_empty());
        }
        // A peer named again before its parting beats went out gets none.
        let mut w = standby(t0);
        w.tick(t0);
        w.set_plan(t0 + ms(1), only_node1, BTreeMap::new(), true);
        let both = ["node1", "node3"].iter().map(|n| (n.to_string(), id(n, 1).addr())).collect();
        w.set_plan(t0 + ms(2), both, BTreeMap::new(), true);
        w.tick(t0 + ms(2));
        assert!(w.take_parting().is_empty());
    }

    #[test]
    fn heartbeats_say_parting_on_the_wire() {
        let from = id("node1", 7);
        let bytes = encode_heartbeat(&from, &parting(&["node3"])).unwrap();
        assert_eq!(decode_heartbeat(&bytes).unwrap(), (from, parting(&["node3"])));
    }

    #[test]
    fn an_owner_that_parted_is_not_taken_over_nor_reported_until_it_beats_again() {
        // node2 stands by for node1 and node3 reports node1 missed; node1's plan dropped node2 (the two
        // views differ for a moment) and said so.
        let t0 = Instant::now();
        let mut w = standby(t0);
        w.beat(t0, &id("node1", 1), beat(true, &[]));
        w.beat(t0 + ms(5), &id("node1", 1), parting(&[]));
        for step in 1..=20 {
            let now = t0 + ms(10 * step);
            w.beat(now, &id("node3", 1), beat(true, &["node1"]));
            w.tick(now);
            // Nor does node2 report node1 as a suspect: it no longer expects node1's heartbeats.
            assert!(w.heartbeat(now).suspects.is_empty(), "at {step}0 ms");
        }
        assert!(w.take_fired().is_empty());
        assert!(w.held().is_empty());
        // Nor is a parted peer one that this node hears nothing from (it would mute itself).
        let mut lone = Watch::new(WatchTiming { interval: ms(10), timeout: ms(50) }, t0);
        lone.set_plan(t0, BTreeMap::from([("node1".to_string(), id("node1", 1).addr())]), BTreeMap::new(), true);
        lone.beat(t0, &id("node1", 1), parting(&[]));
        tick_through(&mut lone, t0, t0 + ms(200));
        assert_eq!(lone.take_mute(), None);
        // An ordinary heartbeat arms it again: silent for the timeout, confirmed, it is taken over.
        let again = t0 + ms(210);
        w.beat(again, &id("node1", 1), beat(true, &[]));
        w.tick(again);
        let late = again + ms(60);
        tick_through(&mut w, again, late);
        w.beat(late, &id("node3", 1), beat(true, &["node1"]));
        w.tick(late);
        assert_eq!(w.held(), vec!["node1".to_string()]);
    }

    #[test]
    fn heartbeats_round_trip_and_every_prefix_is_refused() {
        let from = id("node1", 42);
        let hb = beat(true, &["node2", "node3"]);
        let bytes = encode_heartbeat(&from, &hb).unwrap();
        assert_eq!(decode_heartbeat(&bytes).unwrap(), (from, hb));
        for cut in 0..bytes.len() {
            assert!(decode_heartbeat(&bytes[..cut]).is_err(), "prefix of {cut} bytes decoded");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_heartbeat(&longer).is_err());
    }

    #[test]
    fn a_peer_that_stops_suspecting_this_node_makes_it_announce_again() {
        let t0 = Instant::now();
        let mut w = standby(t0);
        w.set_me("node2");
        w.beat(t0, &id("node3", 1), beat(true, &[]));
        w.beat(t0 + ms(10), &id("node3", 1), beat(true, &["node1"]));
        assert!(!w.take_reclaim(t0 + ms(10)), "another node suspected: nothing of this node's to win back");
        w.beat(t0 + ms(20), &id("node3", 1), beat(true, &["node2"]));
        w.beat(t0 + ms(30), &id("node3", 1), beat(true, &["node2"]));
        assert!(!w.take_reclaim(t0 + ms(30)), "still suspected: the peer may be announcing this node's addresses");
        w.beat(t0 + ms(40), &id("node3", 1), beat(true, &[]));
        assert!(w.take_reclaim(t0 + ms(40)), "heard again: whatever the peer took over, it has given back");
        assert!(!w.take_reclaim(t0 + ms(41)), "said once");
        w.beat(t0 + ms(50), &id("node3", 1), beat(true, &[]));
        assert!(!w.take_reclaim(t0 + ms(50)));
        assert_eq!(w.stats().reclaims, 1);
    }

    #[test]
    fn reclaims_back_off_while_they_keep_coming_and_start_over_after_a_quiet_spell() {
        let t0 = Instant::now();
        let mut w = standby(t0);
        w.set_me("node2");
        let mut said = Vec::new();
        // A flapping peer: suspects this node and clears it every 20 ms for 40 s.
        for i in 0..2000u64 {
            let at = t0 + ms(20 * i);
            let suspects: &[&str] = if i % 2 == 0 { &["node2"] } else { &[] };
            w.beat(at, &id("node3", 1), beat(true, suspects));
            if w.take_reclaim(at) {
                said.push(at.duration_since(t0).as_millis());
            }
        }
        // At once, then 1 s apart four more times, then after 2, 4, 8, 16 s.
        assert_eq!(said, vec![20, 1020, 2020, 3020, 4020, 6020, 10020, 18020, 34020]);
        // Held back: said once its spacing passed, and only once.
        w.beat(t0 + ms(40_000), &id("node3", 1), beat(true, &["node2"]));
        w.beat(t0 + ms(40_010), &id("node3", 1), beat(true, &[]));
        assert!(!w.take_reclaim(t0 + ms(40_010)), "the spacing is 30 s now");
        assert!(!w.take_reclaim(t0 + ms(34_020) + RECLAIM_SPACING_MAX - ms(1)), "then every 30 s at most");
        let held = t0 + ms(34_020) + RECLAIM_SPACING_MAX;
        assert!(w.take_reclaim(held));
        assert!(!w.take_reclaim(held + ms(10)));
        // Still flapping: the spacing stays at the cap.
        w.beat(held + ms(20), &id("node3", 1), beat(true, &["node2"]));
        w.beat(held + ms(30), &id("node3", 1), beat(true, &[]));
        assert!(!w.take_reclaim(held + ms(30) + RECLAIM_SPACING));
        // After a quiet spell, the next one is said at once and the spacing is 1 s again.
        let later = held + RECLAIM_SPACING_MAX * 3;
        w.beat(later, &id("node3", 1), beat(true, &["node2"]));
        w.beat(later + ms(10), &id("node3", 1), beat(true, &[]));
        assert!(w.take_reclaim(later + ms(10)));
        w.beat(later + ms(20), &id("node3", 1), beat(true, &["node2"]));
        w.beat(later + ms(30), &id("node3", 1), beat(true, &[]));
        assert!(!w.take_reclaim(later + ms(30)));
        assert!(w.take_reclaim(later + ms(10) + RECLAIM_SPACING));
        assert_eq!(w.stats().reclaims, 12);
    }

    #[test]
    fn a_silent_owner_is_taken_over_once_a_witness_misses_it_too() {
        let t0 = Instant::now();
        let mut w = standby(t0);
        w.beat(t0, &id("node1", 1), beat(true, &[]));
        w.beat(t0, &id("node3", 1), beat(true, &[]));
        // node1 stops; node3 keeps beating and, after 25 ms, lists node1.
        for step in 1..=4 {
            let now = t0 + ms(10 * step);
            let suspects: &[&str] = if step >= 3 { &["node1"] } else { &[] };
            w.beat(now, &id("node3", 1), beat(true, suspects));
            w.tick(now);
            assert!(w.take_fired().is_empty(), "fired at {step}0 ms, before the timeout");
        }
        let now = t0 + ms(50);
        w.beat(now, &id("node3", 1), beat(true, &["node1"]));
        w.tick(now);
        assert_eq!(w.take_fired(), vec![("node1".to_string(), vec![takeover("192.0.2.10")])]);
        assert_eq!(w.held(), vec!["node1".to_string()]);
        assert!(w.take_events().contains(&WatchEvent::Held("node1".into())));
        // Fires once.
        w.tick(now + ms(10));
        assert!(w.take_fired().is_empty());
    }

    #[test]
    fn a_node_that_hears_nobody_never_takes_over() {
        let t0 = Instant::now();
        let mut w = standby(t0);
        w.beat(t0, &id("node1", 1), beat(true, &[]));
        w.beat(t0, &id("node3", 1), beat(true, &["node1"])); // even a witness that suspected it earlier
        for step in 1..=100 {
            w.tick(t0 + ms(10 * step));
        }
        assert!(w.take_fired().is_empty());
        assert!(w.held().is_empty());
        assert_eq!(w.stats().unconfirmed, 1);
    }

    #[test]
    fn a_witness_that_still_hears_the_owner_blocks_the_takeover() {
        let t0 = Instant::now();
        let mut w = standby(t0);
        w.beat(t0, &id("node1", 1), beat(true, &[]));
        for step in 1..=20 {
            let now = t0 + ms(10 * step);
            w.beat(now, &id("node3", 1), beat(true, &[])); // only our path to node1 is broken
            w.tick(now);
        }
        assert!(w.take_fired().is_empty());
    }

    #[test]
    fn an_owner_that_never_beat_is_left_to_swim() {
        let t0 = Instant::now();
        let mut w = standby(t0);
        w.heard(t0, "node1", 1); // SWIM traffic only
        for step in 1..=20 {
            let now = t0 + ms(10 * step);
            w.beat(now, &id("node3", 1), beat(true, &["node1"]));
            w.tick(now);
        }
        assert!(w.take_fired().is_empty());
    }

    #[test]
    fn a_held_owner_is_released_by_its_next_heartbeat_or_a_newer_life() {
        let t0 = Instant::now();
        let mut w = standby(t0);
        w.beat(t0, &id("node1", 1), beat(true, &[]));
        let now = t0 + ms(60);
        tick_through(&mut w, t0, now);
        w.beat(now, &id("node3", 1), beat(true, &["node1"]));
        w.tick(now);
        assert_eq!(w.held(), vec!["node1".to_string()]);
        w.alive_in_swim(now, "node1", 1); // the same life in SWIM: not proof
        assert_eq!(w.held(), vec!["node1".to_string()]);
        w.beat(now + ms(5), &id("node1", 1), beat(true, &[])); // a paused node resumes
        assert!(w.held().is_empty());
        assert!(w.take_events().contains(&WatchEvent::Released("node1".into())));

        let later = now + ms(200);
        tick_through(&mut w, now, later);
        w.beat(later, &id("node3", 1), beat(true, &["node1"]));
        w.tick(later);
        assert_eq!(w.held(), vec!["node1".to_string()]);
        w.alive_in_swim(later, "node1", 2);
        assert!(w.held().is_empty());
    }

    #[test]
    fn a_new_life_is_not_ready_until_it_beats_or_the_grace_ends() {
        let t0 = Instant::now();
        let mut w = standby(t0);
        w.beat(t0, &id("node1", 1), beat(true, &[]));
        w.alive_in_swim(t0, "node1", 2); // restarted: SWIM saw it before its first heartbeat
        assert_eq!(w.unready(t0), vec!["node1".to_string()]);
        w.beat(t0 + ms(5), &id("node1", 2), beat(true, &[]));
        assert!(w.unready(t0 + ms(5)).is_empty());
        // One that does not beat (an older version) counts as ready after the grace, and says so.
        w.alive_in_swim(t0, "node1", 3);
        assert_eq!(w.unready(t0), vec!["node1".to_string()]);
        w.take_events();
        w.tick(t0 + READY_GRACE);
        assert!(w.unready(t0 + READY_GRACE).is_empty());
        assert!(w.take_events().contains(&WatchEvent::Ready("node1".into())));
        // A peer never heard beating is not held out on a guess.
        w.heard(t0, "node9", 1);
        w.alive_in_swim(t0, "node9", 1);
        assert!(w.unready(t0).is_empty());
    }

    #[test]
    fn readiness_is_reported_on_change_and_listed() {
        let t0 = Instant::now();
        let mut w = standby(t0);
        w.beat(t0, &id("node1", 7), beat(false, &[]));
        assert_eq!(w.unready(t0), vec!["node1".to_string()]);
        assert_eq!(w.take_events(), vec![WatchEvent::Unready("node1".into())]);
        w.beat(t0 + ms(10), &id("node1", 7), beat(false, &[]));
        assert!(w.take_events().is_empty());
        w.beat(t0 + ms(20), &id("node1", 7), beat(true, &[]));
        assert_eq!(w.take_events(), vec![WatchEvent::Ready("node1".into())]);
        assert!(w.unready(t0).is_empty());
        // A late heartbeat of an older life changes nothing.
        w.beat(t0 + ms(30), &id("node1", 6), beat(false, &[]));
        assert!(w.unready(t0).is_empty());
    }

    #[test]
    fn heartbeats_go_to_every_target_each_interval_and_list_the_missed() {
        let t0 = Instant::now();
        let mut w = standby(t0);
        assert_eq!(w.tick(t0).len(), 2);
        assert!(w.tick(t0 + ms(5)).is_empty());
        w.beat(t0, &id("node1", 1), beat(true, &[]));
        assert_eq!(w.tick(t0 + ms(10)).len(), 2);
        assert!(w.heartbeat(t0 + ms(10)).suspects.is_empty());
        assert_eq!(w.heartbeat(t0 + ms(25)).suspects, vec!["node1".to_string()]);
        assert_eq!(w.next_deadline(), Some(t0 + ms(20)));
    }

    #[test]
    fn timings_are_checked() {
        assert!(WatchTiming::default().validate().is_ok());
        assert!(WatchTiming { interval: ms(1), timeout: ms(50) }.validate().is_err());
        assert!(WatchTiming { interval: ms(10), timeout: ms(20) }.validate().is_err());
    }
}
