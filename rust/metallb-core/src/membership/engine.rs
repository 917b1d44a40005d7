//! One member's failure detector, without I/O: datagrams and time in, datagrams, events and a view out.
//!
//! The runtime around it (a socket and a thread, or a simulated network in tests) calls [`Engine::receive`]
//! for every datagram, [`Engine::tick`] when [`Engine::next_deadline`] passes, and sends what
//! [`Engine::take_outgoing`] returns. Inside, foca runs SWIM: each probe interval a member pings one other
//! member; without an answer within the probe timeout it asks `indirect_probes` others to ping it; without
//! any answer by the end of the interval it marks it suspect and gossips that; a suspect that does not
//! refute (by raising its incarnation) within the suspect timeout is declared down. Around foca the engine:
//! authenticates every datagram ([`Authenticator`]) and refuses replays ([`ReplayGuard`]); drops what it
//! sent itself, or what a member of its own name sent, so that it never counts itself as a peer heard; keeps
//! a restart ahead of its previous life (below); spreads every change of its view at once instead of waiting
//! for the next probe; announces itself to the peers the caller listed that are not members yet (how a
//! partition heals); tells the whole cluster when it leaves; and decides whether it is isolated.
//!
//! A restart must supersede the previous life of the member, whatever the wall clock said when each started
//! (the runtime starts the generation at the wall clock, which can step back). So generations are corrected
//! by the cluster: a member that receives a datagram from an older life of a sender (an older generation, or
//! another boot at the newest one) refuses it and answers with the newest generation it holds for that
//! sender; a member that learns (from that answer, or from any header or update) that the cluster holds its
//! own name and address at a newer generation than its own takes the next one and announces itself again.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use foca::{Codec, Foca, Header, Identity, Member, Message, NoCustomBroadcast, Notification, Runtime, State, Timer};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::auth::{Authenticator, Kind, Rejected, ReplayGuard};
use super::codec::WireCodec;
use super::config::{validate_peer_address, MembershipConfig, Quorum, Timing};
use super::error::MembershipError;
use super::identity::MemberId;
use super::view::{transition, Event, EventKind, MemberState, MemberView};
use super::watch::{decode_heartbeat, encode_heartbeat, Heartbeat, Takeover, Watch, WatchEvent};

/// A datagram to send.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Datagram {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

/// Why a received datagram was dropped. Every drop is counted in [`Stats`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dropped {
    /// Refused before reaching the protocol: bad tag, replay, older life of its sender, not ours, or sent by
    /// this member itself.
    Auth(Rejected),
    /// Authentic but not decodable: a peer running an incompatible version.
    Malformed,
    /// Sent by a member with this member's own name or address (its configuration copied to another node, or
    /// an address local to every node): never a peer heard.
    FromSelf,
    /// Decoded, but the protocol refused it (e.g. a message for an identity this member no longer has).
    Protocol,
}

/// Counters since start.
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
pub struct Stats {
    pub datagrams_sent: u64,
    pub datagrams_received: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Datagrams whose tag did not verify (another secret, corruption, forgery).
    pub bad_tag: u64,
    /// Datagrams already accepted, or too far behind their sender's newest.
    pub replayed: u64,
    /// Datagrams from an older life of their sender (each answered with the newest generation held for it).
    pub stale_life: u64,
    /// Too short, not gossip, or authentic but undecodable.
    pub malformed: u64,
    /// Datagrams this member sent itself, or sent by a member with its own name or address.
    pub from_self: u64,
    /// Times this member learnt that the cluster held its name at a newer generation (a previous life with
    /// a later wall clock) and took a newer one.
    pub generations_raised: u64,
    /// Authentic and decoded, but refused by the protocol.
    pub protocol_errors: u64,
    /// Datagrams the runtime failed to send (reported with [`Engine::count_send_error`]).
    pub send_errors: u64,
    /// Direct probes (pings) sent.
    pub probes_sent: u64,
    /// Requests to other members to probe for us.
    pub indirect_probes_sent: u64,
    /// Members this member saw become suspect, and declared down.
    pub suspicions: u64,
    pub members_down: u64,
    /// Times this member was suspected and refuted it. Non-zero under load means it came close to a false
    /// failover.
    pub refutations: u64,
    /// Times the cluster declared this member down while it ran, and it rejoined with a new generation.
    pub rejoins: u64,
    /// Times this member became isolated.
    pub isolations: u64,
    /// "You are down" notices foca wanted to send to members that refuted their suspicion in time; dropped.
    pub stale_down_notices: u64,
    /// The watch's heartbeats (see [`super::watch`]), its takeovers, and owners found silent that no witness
    /// confirmed (not taken over).
    pub heartbeats_sent: u64,
    pub heartbeats_received: u64,
    pub takeovers: u64,
    pub takeovers_unconfirmed: u64,
    pub releases: u64,
    /// Watch ticks that came late (this thread descheduled): no takeover is decided for a moment after.
    pub watch_stalls: u64,
    /// Times this member heard no peer's heartbeat for the timeout (its responder was muted).
    pub unheard: u64,
    /// Times a peer stopped suspecting this member (its addresses were announced again).
    pub reclaims: u64,
}

type Swim = Foca<MemberId, WireCodec, SmallRng, NoCustomBroadcast>;

/// What foca asked for during one call.
#[derive(Default)]
struct Outbox {
    sends: Vec<(MemberId, Vec<u8>)>,
    timers: Vec<(Duration, Timer<MemberId>)>,
    rejoins: u64,
}

impl Runtime<MemberId> for Outbox {
    fn notify(&mut self, notification: Notification<'_, MemberId>) {
        if let Notification::Rejoin(_) = notification {
            self.rejoins += 1;
        }
    }

    fn send_to(&mut self, to: MemberId, data: &[u8]) {
        self.sends.push((to, data.to_vec()));
    }

    fn submit_after(&mut self, event: Timer<MemberId>, after: Duration) {
        self.timers.push((after, event));
    }
}

/// The view of one other member, by name.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Seen {
    address: SocketAddr,
    state: MemberState,
    incarnation: u16,
    generation: u64,
}

/// One member's failure detector. Time is always passed in; nothing here reads a clock.
pub struct Engine {
    swim: Swim,
    name: String,
    advertise: SocketAddr,
    timing: Timing,
    /// The suspicion timeout foca runs with: `timing`'s, scaled to the cluster's size (see `resize`).
    suspect_timeout: Duration,
    quorum: Quorum,
    auth: Authenticator,
    replay: ReplayGuard,
    outbox: Outbox,
    timers: BTreeMap<(Instant, u64), Timer<MemberId>>,
    timer_seq: u64,
    outgoing: Vec<Datagram>,
    events: Vec<Event>,
    view: BTreeMap<String, Seen>,
    /// Peers the caller expects to hear from (seeds, join, set_peers), without this member's own address.
    peers: BTreeSet<SocketAddr>,
    /// Other members the caller listed at this member's own address (see `set_peers`): expected, and never
    /// heard, since what is sent to that address lands here.
    unreachable: usize,
    /// Last authentic datagram from each sender address.
    heard: HashMap<SocketAddr, Instant>,
    /// When the caller's peer list last went from empty to not empty (or the start): the isolation rule
    /// counts from here until someone is heard.
    counting_since: Instant,
    /// Since when this member's view has held too few active members for its quorum.
    short_since: Option<Instant>,
    isolated: bool,
    /// When the isolation rule would next flip to isolated if nothing is heard (kept by `update_isolation`).
    isolation_deadline: Option<Instant>,
    next_announce: Instant,
    left: bool,
    incarnation: u16,
    stats: Stats,
    watch: Watch,
    /// Raised whenever what [`members`](Engine::members), [`alive`](Engine::alive), [`isolated`](Engine::isolated),
    /// [`held`](Engine::held) or [`unready`](Engine::unready) say may have changed.
    epoch: u64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("identity", self.swim.identity()).field("members", &self.view.len()).finish()
    }
}

impl Engine {
    pub fn new(config: MembershipConfig, now: Instant) -> Result<Self, MembershipError> {
        config.validate()?;
        let identity = MemberId::new(&config.name, config.advertise, config.generation);
        let swim = Foca::new(identity, config.timing.foca(1), SmallRng::seed_from_u64(config.rng_seed), WireCodec);
        let mut watch = Watch::new(config.watch, now);
        watch.set_me(&config.name);
        Ok(Engine {
            swim,
            name: config.name,
            advertise: config.advertise,
            timing: config.timing,
            suspect_timeout: config.timing.suspect_timeout_for(1),
            quorum: config.quorum,
            auth: Authenticator::new(&config.secret, config.boot),
            replay: ReplayGuard::new(),
            outbox: Outbox::default(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            outgoing: Vec::new(),
            events: Vec::new(),
            view: BTreeMap::new(),
            peers: BTreeSet::new(),
            unreachable: 0,
            heard: HashMap::new(),
            counting_since: now,
            short_since: Some(now),
            isolated: false,
            isolation_deadline: None,
            next_announce: now + config.timing.announce_interval,
            left: false,
            incarnation: 0,
            stats: Stats::default(),
            watch,
            epoch: 0,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn advertise(&self) -> SocketAddr {
        self.advertise
    }

    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// How long a suspect has to refute now: [`Timing::suspect_timeout_for`] the members in this view.
    pub fn suspect_timeout(&self) -> Duration {
        self.suspect_timeout
    }

    /// foca's configuration for the cluster as this member sees it now (active members and itself).
    fn swim_config(&self) -> foca::Config {
        self.timing.foca(self.swim.num_members() + 1)
    }

    /// Keeps foca's suspicion timeout in step with the cluster's size (a new suspicion uses the new one).
    fn resize(&mut self) {
        let config = self.swim_config();
        let wanted = config.suspect_to_down_after;
        if wanted != self.suspect_timeout && self.swim.set_config(config).is_ok() {
            self.suspect_timeout = wanted;
        }
    }

    /// This member's current identity generation (raised by each rejoin).
    pub fn generation(&self) -> u64 {
        self.swim.identity().generation()
    }

    /// Adds `addrs` to the expected peers and announces this member to each at once. After [`leave`], joins
    /// again with a new generation.
    ///
    /// [`leave`]: Engine::leave
    pub fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> Result<(), MembershipError> {
        let (addrs, _) = self.check_peers(addrs)?;
        self.rejoin_if_left();
        self.expect(now, self.peers.iter().copied().chain(addrs.iter().copied()).collect(), self.unreachable);
        for addr in addrs {
            self.announce(addr);
        }
        self.settle(now);
        Ok(())
    }

    /// Replaces the expected peers (the speaker hands the full list it reads from the API each time) and
    /// announces this member to the new ones that are not members yet. Members are not removed: liveness is
    /// gossip's call; the list only says whom to reach and, for the isolation rule, whom to expect. After
    /// [`leave`](Engine::leave) it only updates the list: a speaker that is shutting down and still relays
    /// the API's list must not come back.
    ///
    /// The list has one entry per member, this member's own included; this member's own address listed more
    /// than once means that other members have it too (an address local to every node, such as a Service
    /// address that kube-proxy binds everywhere). They count as expected peers that are never heard, since
    /// what is sent to that address lands here: such a member ends up isolated instead of alone and fine.
    pub fn set_peers(&mut self, now: Instant, addrs: &[SocketAddr]) -> Result<(), MembershipError> {
        let (addrs, own) = self.check_peers(addrs)?;
        let new: Vec<SocketAddr> = addrs.iter().copied().filter(|a| !self.peers.contains(a)).collect();
        self.expect(now, addrs.into_iter().collect(), own.saturating_sub(1));
        if !self.left {
            let active = self.active_addresses();
            for addr in new.into_iter().filter(|a| !active.contains(a)) {
                self.announce(addr);
            }
        }
        self.settle(now);
        Ok(())
    }

    pub fn peers(&self) -> Vec<SocketAddr> {
        self.peers.iter().copied().collect()
    }

    /// Handles one received datagram.
    pub fn receive(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Dropped> {
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += datagram.len() as u64;
        let heartbeat = datagram.get(2) == Some(&(Kind::Heartbeat as u8));
        let result = self.handle(now, datagram);
        if let Err(dropped) = result {
            match dropped {
                Dropped::Auth(Rejected::BadTag) => self.stats.bad_tag += 1,
                Dropped::Auth(Rejected::Replayed) => self.stats.replayed += 1,
                Dropped::Auth(Rejected::StaleLife) => self.stats.stale_life += 1,
                Dropped::Auth(Rejected::FromSelf) | Dropped::FromSelf => self.stats.from_self += 1,
                Dropped::Auth(Rejected::TooShort | Rejected::NotGossip) | Dropped::Malformed => {
                    self.stats.malformed += 1
                }
                Dropped::Protocol => self.stats.protocol_errors += 1,
            }
        }
        if heartbeat {
            // SWIM's state did not change: only the watch's and the isolation clock's may have.
            self.settle_watch(now);
        } else {
            self.settle(now);
        }
        result
    }

    fn handle(&mut self, now: Instant, datagram: &[u8]) -> Result<(), Dropped> {
        let opened = self.auth.open(datagram).map_err(Dropped::Auth)?;
        if opened.kind == Kind::Heartbeat {
            return self.handle_heartbeat(now, opened.boot, opened.seq, opened.payload);
        }
        let payload = opened.payload;
        let mut rest = payload;
        let header = WireCodec.decode_header(&mut rest).map_err(|_| Dropped::Malformed)?;
        if header.src.name() == self.name || header.src.addr() == self.advertise {
            return Err(Dropped::FromSelf);
        }
        if let Err(rejected) = self.replay.admit(&header.src, opened.boot, opened.seq, now) {
            if rejected == Rejected::StaleLife {
                if let Some((newest, same_boot)) = self.replay.newest(&header.src, opened.boot) {
                    // The newest life has this very generation but another boot: say that identity is down,
                    // which makes the receiver renew it.
                    let down = newest == header.src.generation() && !same_boot;
                    self.tell_newest_generation(&header.src, newest, if down { State::Down } else { State::Alive });
                }
            }
            return Err(Dropped::Auth(rejected));
        }
        // A sender this member never heard from directly, but that the view holds at a newer generation
        // (learnt through others): foca would refuse it and only say "you are down"; say which generation.
        if let Some(held) = self.held_generation(&header.src).filter(|g| *g > header.src.generation()) {
            self.tell_newest_generation(&header.src, held, State::Alive);
        }
        self.learn_own_generation(&header, rest);
        // Any new authentic datagram proves the path from its sender works, whatever the protocol makes of it.
        self.heard.insert(header.src.addr(), now);
        self.watch.heard(now, header.src.name(), header.src.generation());
        match self.swim.handle_data(payload, &mut self.outbox) {
            Ok(()) => Ok(()),
            Err(foca::Error::Decode(_) | foca::Error::MalformedPacket | foca::Error::DataTooBig) => {
                Err(Dropped::Malformed)
            }
            Err(_) => Err(Dropped::Protocol),
        }
    }

    /// A heartbeat: authenticated like any datagram, then handed to the watch. Takeovers are decided in
    /// [`tick`](Engine::tick), which the runtime runs once the datagrams queued so far are all read: a late
    /// heartbeat of the owner queued behind its witness's must count.
    fn handle_heartbeat(&mut self, now: Instant, boot: u64, seq: u64, payload: &[u8]) -> Result<(), Dropped> {
        let (from, beat) = decode_heartbeat(payload).map_err(|_| Dropped::Malformed)?;
        if from.name() == self.name || from.addr() == self.advertise {
            return Err(Dropped::FromSelf);
        }
        self.replay.admit(&from, boot, seq, now).map_err(Dropped::Auth)?;
        self.heard.insert(from.addr(), now);
        self.watch.beat(now, &from, beat);
        Ok(())
    }

    /// Replaces the watch's plan: who gets heartbeats (node name -> gossip address), what this node takes
    /// over from which owner if it goes silent, and whether this node is ready (see [`super::watch`]).
    pub fn set_watch(
        &mut self,
        now: Instant,
        targets: BTreeMap<String, SocketAddr>,
        takeovers: BTreeMap<String, Vec<Takeover>>,
        ready: bool,
    ) {
        let targets =
            targets.into_iter().filter(|(name, addr)| *name != self.name && *addr != self.advertise).collect();
        self.watch.set_plan(now, targets, takeovers, ready);
        self.watch_tick(now);
    }

    /// Whether to mute (`Some(true)`) or unmute the responder since the last call (see [`super::watch`]).
    pub fn take_mute(&mut self) -> Option<bool> {
        self.watch.take_mute()
    }

    /// Whether a peer stopped suspecting this node since the last call: the runtime announces this node's
    /// addresses again at once (see [`Watch::take_reclaim`](super::watch::Watch::take_reclaim)).
    pub fn take_reclaim(&mut self, now: Instant) -> bool {
        self.watch.take_reclaim(now)
    }

    /// Takeovers fired since the last call: (owner, what to announce). The runtime announces them at once.
    pub fn take_takeovers(&mut self) -> Vec<(String, Vec<Takeover>)> {
        self.watch.take_fired()
    }

    /// Whether this member sends heartbeats (its plan names targets): a runtime may then read its socket only
    /// at each tick, since the next one is at most a heartbeat interval away.
    pub fn watching(&self) -> bool {
        !self.watch.targets().is_empty() && !self.left
    }

    /// Owners this member's watch holds down (see [`super::watch`]), sorted.
    pub fn held(&self) -> Vec<String> {
        self.watch.held()
    }

    /// Peers whose heartbeat says they are not ready (or new lives not heard beating yet), sorted.
    pub fn unready(&self, now: Instant) -> Vec<String> {
        self.watch.unready(now)
    }

    /// Heartbeats due, sealed; takeovers due, fired.
    fn watch_tick(&mut self, now: Instant) {
        let to = self.watch.tick(now);
        let parting = self.watch.take_parting();
        // Most ticks send nothing (a datagram read, a takeover due): no heartbeat is built then.
        if !self.left && (!to.is_empty() || !parting.is_empty()) {
            let beat = self.watch.heartbeat(now);
            self.send_heartbeat(&beat, to);
            self.send_heartbeat(&Heartbeat { parting: true, ..beat }, parting);
        }
        self.absorb_watch(now);
    }

    fn send_heartbeat(&mut self, beat: &Heartbeat, to: Vec<SocketAddr>) {
        if to.is_empty() {
            return;
        }
        match encode_heartbeat(self.swim.identity(), beat) {
            Ok(payload) => {
                for addr in to {
                    let bytes = self.auth.seal_kind(Kind::Heartbeat, &payload);
                    self.stats.datagrams_sent += 1;
                    self.stats.bytes_sent += bytes.len() as u64;
                    self.outgoing.push(Datagram { to: addr, bytes });
                }
            }
            Err(_) => self.stats.protocol_errors += 1,
        }
    }

    /// See the field: a runtime that publishes the view copies it again only when this moved.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The watch's changes as events, named by address like the others.
    fn absorb_watch(&mut self, now: Instant) {
        let events = self.watch.take_events();
        if !events.is_empty() {
            self.epoch += 1;
        }
        for event in events {
            let (kind, name) = match event {
                WatchEvent::Held(name) => (EventKind::Held, name),
                WatchEvent::Released(name) => (EventKind::Released, name),
                WatchEvent::Ready(name) => (EventKind::Ready, name),
                WatchEvent::Unready(name) => (EventKind::Unready, name),
                WatchEvent::Unheard => (EventKind::Unheard, self.name.clone()),
                WatchEvent::Heard => (EventKind::Heard, self.name.clone()),
            };
            let address = self
                .watch
                .targets()
                .get(&name)
                .copied()
                .or_else(|| self.view.get(&name).map(|seen| seen.address))
                .unwrap_or(self.advertise);
            self.events.push(Event { kind, name, address, at: now });
        }
    }

    /// Runs what is due at `now`: foca's timers, announces to peers that are not members, the isolation rule.
    pub fn tick(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((at, _), timer) = entry.remove_entry();
            due.push((at, timer));
        }
        // Same order as foca's own: by time, then indirect probes before the next probe, and so on.
        due.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        let mut swim_work = !due.is_empty();
        for (_, timer) in due {
            if self.swim.handle_timer(timer, &mut self.outbox).is_err() {
                self.stats.protocol_errors += 1;
            }
            self.absorb(now);
        }
        if now >= self.next_announce {
            swim_work = true;
            self.next_announce = now + self.timing.announce_interval;
            if !self.left {
                let active = self.active_addresses();
                let absent: Vec<SocketAddr> = self.peers.iter().copied().filter(|a| !active.contains(a)).collect();
                for addr in absent {
                    self.announce(addr);
                }
            }
        }
        self.watch_tick(now);
        if swim_work {
            self.settle(now);
        } else {
            // A heartbeat tick (a hundred a second): SWIM's view did not change, so it is not rebuilt.
            self.settle_watch(now);
        }
    }

    /// When [`tick`](Engine::tick) should run next.
    pub fn next_deadline(&self) -> Instant {
        let mut next = self.next_announce;
        if let Some(((at, _), _)) = self.timers.first_key_value() {
            next = next.min(*at);
        }
        if let Some(at) = self.isolation_deadline {
            next = next.min(at);
        }
        if let Some(at) = self.watch.next_deadline() {
            next = next.min(at);
        }
        next
    }

    /// Leaves the cluster: the departure goes to every member at once (twice, against a lost datagram), so
    /// peers move this member's addresses without waiting for detection. Idempotent; [`join`](Engine::join)
    /// comes back with a new generation.
    pub fn leave(&mut self, now: Instant) {
        if self.left {
            return;
        }
        let mut config = self.swim_config();
        config.num_indirect_probes =
            std::num::NonZeroUsize::new(self.swim.num_members()).unwrap_or(config.num_indirect_probes);
        // Only the fan-out changes, which foca accepts at any time; the next line restores it.
        let widened = self.swim.set_config(config).is_ok();
        if self.swim.leave_cluster(&mut self.outbox).is_err() || self.swim.gossip(&mut self.outbox).is_err() {
            self.stats.protocol_errors += 1;
        }
        if widened {
            let _ = self.swim.set_config(self.swim_config());
        }
        // Gone: no heartbeats, no takeover, no mute (the caller plans again after a join).
        self.watch.set_plan(now, BTreeMap::new(), BTreeMap::new(), false);
        self.left = true;
        self.settle(now);
    }

    pub fn has_left(&self) -> bool {
        self.left
    }

    /// Datagrams to send, in order.
    pub fn take_outgoing(&mut self) -> Vec<Datagram> {
        std::mem::take(&mut self.outgoing)
    }

    /// Changes since the last call, in order.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Every member this member knows of, itself included, by name. Down members stay listed until
    /// forgotten (`forget_down_after`).
    pub fn members(&self) -> Vec<MemberView> {
        let mut members: Vec<MemberView> = self
            .view
            .iter()
            .map(|(name, seen)| MemberView {
                name: name.clone(),
                address: seen.address,
                state: seen.state,
                incarnation: seen.incarnation,
                generation: seen.generation,
            })
            .collect();
        let me = MemberView {
            name: self.name.clone(),
            address: self.advertise,
            state: if self.left { MemberState::Down } else { MemberState::Alive },
            incarnation: self.incarnation,
            generation: self.generation(),
        };
        let at = members.partition_point(|m| m.name < me.name);
        members.insert(at, me);
        members
    }

    /// Names of the members counted alive (alive or suspect), this member included unless it left; sorted.
    pub fn alive(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.view.iter().filter(|(_, seen)| seen.state.is_active()).map(|(name, _)| name.clone()).collect();
        if !self.left {
            let at = names.partition_point(|n| n.as_str() < self.name.as_str());
            names.insert(at, self.name.clone());
        }
        names
    }

    /// Whether this member is cut off from the cluster, as of the last call. The rule: it expects peers (the
    /// caller's list, members listed at its own address, or members it knows alive) and, for at least
    /// `isolation_timeout`, either it received no new authentic datagram from any of them (what it sent
    /// itself, or what a member of its own name or address sent, never counts), or its view held too few
    /// active members ([`Quorum::AnyPeer`]:
    /// none, which is the case once every peer failed its probes or the cluster declared this member down;
    /// [`Quorum::Majority`]: not more than half of the members it knows of, itself included). A member with
    /// no peers, or that left, is never isolated. A speaker that is isolated stops announcing: its peers
    /// declare it down within about the same time and take its addresses over, so the two sides do not
    /// answer for the same address for longer than the difference.
    pub fn isolated(&self) -> bool {
        self.isolated
    }

    /// When this member last received an authentic datagram from `addr`.
    pub fn last_heard(&self, addr: SocketAddr) -> Option<Instant> {
        self.heard.get(&addr).copied()
    }

    pub fn stats(&self) -> Stats {
        let watch = self.watch.stats();
        Stats {
            heartbeats_sent: watch.heartbeats_sent,
            heartbeats_received: watch.heartbeats_received,
            takeovers: watch.takeovers,
            takeovers_unconfirmed: watch.unconfirmed,
            releases: watch.releases,
            watch_stalls: watch.stalls,
            unheard: watch.unheard,
            reclaims: watch.reclaims,
            ..self.stats
        }
    }

    /// The runtime reports each datagram it could not send.
    pub fn count_send_error(&mut self) {
        self.stats.send_errors += 1;
    }

    /// The distinct peers in `addrs` other than this member, and how many times this member's own address
    /// is listed.
    fn check_peers(&self, addrs: &[SocketAddr]) -> Result<(Vec<SocketAddr>, usize), MembershipError> {
        let mut peers = Vec::with_capacity(addrs.len());
        let mut own = 0;
        for &addr in addrs {
            validate_peer_address(addr)
                .map_err(|reason| MembershipError::InvalidAddress { addr: addr.to_string(), reason })?;
            // The speaker hands the full list, this member included.
            if addr == self.advertise {
                own += 1;
            } else if !peers.contains(&addr) {
                peers.push(addr);
            }
        }
        Ok((peers, own))
    }

    fn expect(&mut self, now: Instant, peers: BTreeSet<SocketAddr>, unreachable: usize) {
        let expected_none = self.peers.is_empty() && self.unreachable == 0;
        if expected_none && (!peers.is_empty() || unreachable > 0) {
            // Both clocks of the isolation rule start now: the peers get `isolation_timeout` to answer.
            self.counting_since = now;
            self.short_since = None;
        }
        self.peers = peers;
        self.unreachable = unreachable;
    }

    /// The newest generation the view holds for `sender`'s name and address, if any.
    fn held_generation(&self, sender: &MemberId) -> Option<u64> {
        self.swim
            .iter_membership_state()
            .map(|m| m.id())
            .filter(|id| id.addr() == sender.addr() && id.name() == sender.name())
            .map(MemberId::generation)
            .max()
    }

    /// Answers a datagram from an older life of `stale` with the newest generation held for that sender (as
    /// an update in `state`), so that a member restarted with a lower generation (its wall clock stepped
    /// back) takes a newer one.
    fn tell_newest_generation(&mut self, stale: &MemberId, newest: u64, state: State) {
        if self.left {
            return;
        }
        let header = Header {
            src: self.swim.identity().clone(),
            src_incarnation: self.incarnation,
            dst: stale.clone(),
            message: Message::Gossip,
        };
        let update = Member::new(MemberId::new(stale.name(), stale.addr(), newest), 0, state);
        let mut payload = Vec::new();
        let encoded = WireCodec.encode_header(&header, &mut payload).and_then(|()| {
            payload.put_u16(1);
            WireCodec.encode_member(&update, &mut payload)
        });
        if encoded.is_err() {
            self.stats.protocol_errors += 1;
            return;
        }
        let bytes = self.auth.seal(&payload);
        self.stats.datagrams_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        self.outgoing.push(Datagram { to: stale.addr(), bytes });
    }

    /// Takes a generation above any the cluster holds for this member's own name and address, as named in the
    /// header (a probe for a previous life) or the updates of an admitted datagram.
    fn learn_own_generation(&mut self, header: &Header<MemberId>, mut updates: &[u8]) {
        let own = self.generation();
        let mut newest = None;
        let mut consider = |id: &MemberId| {
            if id.name() == self.name && id.addr() == self.advertise && id.generation() > own {
                newest = newest.max(Some(id.generation()));
            }
        };
        consider(&header.dst);
        if header.message != Message::Broadcast && updates.remaining() >= 2 {
            for _ in 0..updates.get_u16() {
                match WireCodec.decode_member(&mut updates) {
                    Ok(member) => consider(member.id()),
                    // foca refuses the datagram and counts it.
                    Err(_) => break,
                }
            }
        }
        let Some(generation) = newest.and_then(|g| g.checked_add(1)) else { return };
        if self.left {
            return;
        }
        let renewed = MemberId::new(&self.name, self.advertise, generation);
        if self.swim.change_identity(renewed, &mut self.outbox).is_err() {
            self.stats.protocol_errors += 1;
            return;
        }
        self.stats.generations_raised += 1;
        for addr in self.peers.clone() {
            self.announce(addr);
        }
    }

    fn rejoin_if_left(&mut self) {
        if !self.left {
            return;
        }
        self.left = false;
        if let Some(renewed) = self.swim.identity().renew() {
            if self.swim.change_identity(renewed, &mut self.outbox).is_err() {
                self.stats.protocol_errors += 1;
            }
        }
    }

    fn announce(&mut self, addr: SocketAddr) {
        if self.swim.announce(MemberId::placeholder(addr), &mut self.outbox).is_err() {
            self.stats.protocol_errors += 1;
        }
    }

    /// Takes what foca asked for: timers into the queue, messages sealed into datagrams.
    fn absorb(&mut self, now: Instant) {
        for (after, timer) in self.outbox.timers.drain(..) {
            self.timer_seq += 1;
            self.timers.insert((now + after, self.timer_seq), timer);
        }
        self.stats.rejoins += std::mem::take(&mut self.outbox.rejoins);
        let sends = std::mem::take(&mut self.outbox.sends);
        for (to, payload) in sends {
            if let Ok(header) = WireCodec.decode_header(&payload[..]) {
                if header.message == Message::TurnUndead && self.holds_active(&to) {
                    // foca (1.0 and 2.0 alike) also sends "you are down" when the suspect-to-down timer of
                    // a member that refuted in time fires: it does not check that the member went down. That
                    // would make a live member rejoin: a false failover. The notice is only true for an
                    // identity this member holds down (or has replaced), so it is dropped otherwise.
                    self.stats.stale_down_notices += 1;
                    continue;
                }
                match header.message {
                    Message::Ping(_) => self.stats.probes_sent += 1,
                    Message::PingReq { .. } => self.stats.indirect_probes_sent += 1,
                    _ => {}
                }
                // foca raises its incarnation only to refute a suspicion of itself; a rejoin resets it.
                if header.src_incarnation > self.incarnation {
                    self.stats.refutations += u64::from(header.src_incarnation - self.incarnation);
                }
                self.incarnation = header.src_incarnation;
            }
            let bytes = self.auth.seal(&payload);
            self.stats.datagrams_sent += 1;
            self.stats.bytes_sent += bytes.len() as u64;
            self.outgoing.push(Datagram { to: to.addr(), bytes });
        }
    }

    /// After every input: absorb foca's output, turn view changes into events (and spread them at once),
    /// re-evaluate isolation.
    fn settle(&mut self, now: Instant) {
        self.epoch += 1;
        self.absorb(now);
        if self.refresh_view(now) && !self.left {
            self.resize();
            // Gossip now rather than on the next probe: a suspect learns sooner that it must refute, and the
            // members that will take over a dead member's addresses learn sooner that it is down.
            if self.swim.gossip(&mut self.outbox).is_err() {
                self.stats.protocol_errors += 1;
            }
            self.absorb(now);
        }
        self.absorb_watch(now);
        self.update_isolation(now);
    }

    /// After an input that touched only the watch: its events, and the isolation clock.
    fn settle_watch(&mut self, now: Instant) {
        self.absorb_watch(now);
        self.update_isolation(now);
    }

    /// Rebuilds the by-name view from foca's; returns whether any member changed state.
    fn refresh_view(&mut self, now: Instant) -> bool {
        let mut view: BTreeMap<String, Seen> = BTreeMap::new();
        for member in self.swim.iter_membership_state() {
            let id = member.id();
            // A previous identity of this member at another address is not another member.
            if id.name().is_empty() || id.name() == self.name {
                continue;
            }
            let seen = Seen {
                address: id.addr(),
                state: member.state().into(),
                incarnation: member.incarnation(),
                generation: id.generation(),
            };
            // A node that came back at a new address has two identities: the active, newest one speaks for it.
            let better =
                |old: &Seen| (seen.state.is_active(), seen.generation) > (old.state.is_active(), old.generation);
            match view.get(id.name()) {
                Some(old) if !better(old) => {}
                _ => {
                    view.insert(id.name().to_string(), seen);
                }
            }
        }
        let mut changed = false;
        let names: BTreeSet<String> = self.view.keys().chain(view.keys()).cloned().collect();
        for name in names {
            let before = self.view.get(&name);
            let after = view.get(&name);
            if before.map(|s| s.state) != after.map(|s| s.state) {
                changed = true;
            }
            let Some(kind) = transition(before.map(|s| s.state), after.map(|s| s.state)) else { continue };
            match kind {
                EventKind::Suspect => self.stats.suspicions += 1,
                EventKind::Down => self.stats.members_down += 1,
                _ => {}
            }
            let address = after.or(before).map(|s| s.address).expect("one side is present");
            if kind == EventKind::Up {
                if let Some(seen) = after {
                    self.watch.alive_in_swim(now, &name, seen.generation);
                }
            }
            self.events.push(Event { kind, name, address, at: now });
        }
        self.view = view;
        changed
    }

    /// Whether this member's view holds exactly `id` (not another generation at its address) as active.
    fn holds_active(&self, id: &MemberId) -> bool {
        self.swim.iter_membership_state().any(|m| m.id() == id && MemberState::from(m.state()).is_active())
    }

    fn active_addresses(&self) -> BTreeSet<SocketAddr> {
        self.swim.iter_members().map(|m| m.id().addr()).filter(|a| *a != self.advertise).collect()
    }

    fn update_isolation(&mut self, now: Instant) {
        let active = self.active_addresses();
        let short = match self.quorum {
            Quorum::AnyPeer => active.is_empty(),
            Quorum::Majority => 2 * (1 + active.len()) <= 1 + self.peers.union(&active).count() + self.unreachable,
        };
        match (short, self.short_since) {
            (true, None) => self.short_since = Some(now),
            (false, Some(_)) => self.short_since = None,
            _ => {}
        }
        let expects_peers = !self.left && (!self.peers.is_empty() || !active.is_empty() || self.unreachable > 0);
        let timeout = self.timing.isolation_timeout;
        // The "heard from nobody" clock: the last authentic datagram from an expected peer or a member, or when
        // the peers were given.
        let heard = self
            .peers
            .iter()
            .chain(active.iter())
            .filter_map(|addr| self.heard.get(addr))
            .copied()
            .fold(self.counting_since, Instant::max);
        let mut deadline = heard + timeout;
        if let Some(since) = self.short_since {
            deadline = deadline.min(since + timeout);
        }
        let isolated = expects_peers && now >= deadline;
        self.isolation_deadline = (expects_peers && !isolated).then_some(deadline);
        if isolated != self.isolated {
            self.isolated = isolated;
            self.epoch += 1;
            let kind = if isolated {
                self.stats.isolations += 1;
                EventKind::Isolated
            } else {
                EventKind::Reconnected
            };
            self.events.push(Event { kind, name: self.name.clone(), address: self.advertise, at: now });
        }
    }
}
