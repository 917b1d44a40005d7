//! One BFD session (RFC 5880 section 6) as a pure function of received packets and time.
//!
//! The runtime around it (a UDP socket and a thread, or a test) hands [`Session::on_packet`] every decoded
//! packet it matched to the session (by Your Discriminator, or by source address when that is 0), calls
//! [`Session::on_timer`] once `now` reaches [`Session::next_deadline`] (which any call may move), and carries
//! out the returned [`Output`]s in order: `Send` a packet to the peer, report a `StateChanged`. Nothing here
//! reads a clock or does I/O.
//!
//! Asynchronous mode only. We never set the D bit, but honour a peer that does (no periodic packets while it
//! is in Demand mode, RFC 5880 6.8.7). No authentication is configured, so a packet with the A bit set is
//! discarded ([`Discard::Authenticated`]) as RFC 5880 6.8.6 requires. No Echo function: Required Min Echo RX
//! Interval is sent as 0.
//!
//! Timers (RFC 5880 6.8.2-6.8.4, 6.8.7):
//! - Our Desired Min TX is at least 1 s while the session is not Up ([`SLOW_TX`]), the configured value once it
//!   is. Every change of what we advertise (Desired Min TX, Required Min RX) starts a Poll Sequence: the P bit
//!   on our periodic packets until a packet with F arrives. While Up and polling, the change the peer may not
//!   have seen yet is held back: the transmit interval uses the smaller of the old and new Desired Min TX (an
//!   increase waits for F, a decrease is safe at once) and the detection time the larger of the old and new
//!   Required Min RX (a decrease waits for F). A change wanted while an Up session polls waits for that poll's
//!   F and then polls again, so that an F always answers the values it acknowledges. Outside Up a change
//!   applies at once (and is still polled).
//! - Transmit interval: the larger of our Desired Min TX and the peer's Required Min RX, each gap shortened by
//!   a random 0-25 % (10-25 % with a detect multiplier of 1) from a PRNG seeded with `jitter_seed`. A shorter
//!   interval applies at once (the next packet is moved earlier).
//! - Detection time: the peer's Detect Mult times the larger of our Required Min RX and the peer's Desired
//!   Min TX, counted from the last packet accepted. When it passes, an Init or Up session goes Down (diag 1);
//!   in any state the peer's discriminator is forgotten, and a passive session falls silent again.
//! - A packet with P is answered with F at once, outside the periodic schedule.

use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::packet::{self, ControlPacket, DecodeError, Diag, State};

/// The least Desired Min TX while the session is not Up (RFC 5880 6.8.3).
pub const SLOW_TX: Duration = Duration::from_secs(1);
/// The longest interval a packet can carry: 2^32 - 1 microseconds.
pub const MAX_INTERVAL: Duration = Duration::from_micros(u32::MAX as u64);

/// A session's intervals (MetalLB's `transmitInterval`, `receiveInterval`, `detectMultiplier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// How often we would like to send (bfd.DesiredMinTxInterval once Up).
    pub desired_min_tx: Duration,
    /// How often we can take packets from the peer (bfd.RequiredMinRxInterval).
    pub required_min_rx: Duration,
    /// How many of the peer's intervals may pass without a packet before the session goes down, as the peer
    /// counts them for our packets (bfd.DetectMult).
    pub detect_mult: u8,
}

impl Default for Timers {
    /// MetalLB's `BFDProfile` defaults: 300 ms, 300 ms, 3.
    fn default() -> Timers {
        Timers {
            desired_min_tx: Duration::from_millis(300),
            required_min_rx: Duration::from_millis(300),
            detect_mult: 3,
        }
    }
}

/// One session's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    pub timers: Timers,
    /// Send nothing until the peer has sent a packet (RFC 5880 6.1 passive role).
    pub passive: bool,
    /// Seeds the transmit jitter (read by [`Session::new`] only). Mix in something that differs between the
    /// sessions of a node (the peer address, the discriminator) so that they do not send in lockstep.
    pub jitter_seed: u64,
}

impl SessionConfig {
    /// Refuses what a packet cannot carry. [`Session::new`] and [`Session::reconfigure`] take an invalid
    /// configuration too, with each value moved to the nearest one allowed, so call this first to report it.
    pub fn validate(&self) -> Result<(), SessionConfigError> {
        let t = &self.timers;
        if t.detect_mult == 0 {
            return Err(SessionConfigError::ZeroDetectMult);
        }
        for (field, value) in [("transmit interval", t.desired_min_tx), ("receive interval", t.required_min_rx)] {
            if value < Duration::from_micros(1) || value > MAX_INTERVAL {
                return Err(SessionConfigError::Interval { field, value });
            }
        }
        Ok(())
    }

    fn clamped(mut self) -> SessionConfig {
        let t = &mut self.timers;
        t.detect_mult = t.detect_mult.max(1);
        t.desired_min_tx = whole_micros(t.desired_min_tx);
        t.required_min_rx = whole_micros(t.required_min_rx);
        self
    }
}

/// Why a [`SessionConfig`] is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionConfigError {
    #[error("BFD detect multiplier 0 would declare the session down without missing a packet: use 1 to 255")]
    ZeroDetectMult,
    #[error("BFD {field} {value:?} is out of range: use 1 µs up to 4294.967295 s (32-bit microseconds)")]
    Interval { field: &'static str, value: Duration },
}

/// Why a session discards a packet the runtime matched to it (RFC 5880 6.8.6).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Discard {
    #[error(transparent)]
    Invalid(#[from] DecodeError),
    #[error("BFD packet carries authentication (A bit) but the session uses none: configure the peer without it")]
    Authenticated,
    #[error("BFD packet is for discriminator {your_discriminator}, this session is {local_discriminator}")]
    NotOurs { your_discriminator: u32, local_discriminator: u32 },
}

/// What the runtime must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send this packet to the peer.
    Send(ControlPacket),
    /// The session changed state; `diag` is our diagnostic after the change (why we went down).
    StateChanged { from: State, to: State, diag: Diag },
}

/// The two intervals we advertise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Advertised {
    desired_min_tx: Duration,
    required_min_rx: Duration,
}

/// What the last packet from the peer said (bfd.Remote*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Remote {
    discriminator: u32,
    state: State,
    diag: Diag,
    demand: bool,
    min_rx: Duration,
    desired_min_tx: Duration,
    detect_mult: u8,
}

impl Remote {
    /// RFC 5880 6.8.1: no discriminator, Down, Required Min RX 1 µs.
    fn unknown(diag: Diag) -> Remote {
        Remote {
            discriminator: 0,
            state: State::Down,
            diag,
            demand: false,
            min_rx: Duration::from_micros(1),
            desired_min_tx: Duration::ZERO,
            detect_mult: 0,
        }
    }
}

/// One BFD session. Time is always passed in; nothing here reads a clock.
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    local_discriminator: u32,
    state: State,
    local_diag: Diag,
    remote: Remote,
    /// When the last packet counting for detection arrived; None once the peer is forgotten.
    last_rx: Option<Instant>,
    /// What our packets carry.
    advertised: Advertised,
    /// What they carried before the current Poll Sequence (equal to `advertised` when not polling).
    previous: Advertised,
    polling: bool,
    /// The wanted intervals changed while an Up session was polling: poll again once F arrives.
    poll_queued: bool,
    /// When the next periodic packet is due (if periodic transmission is allowed then).
    next_tx: Instant,
    last_tx: Option<Instant>,
    /// The transmit interval `next_tx` was computed with.
    scheduled_interval: Duration,
    rng: SmallRng,
}

impl Session {
    /// A session in Down. An active one sends its first packet at `now`.
    ///
    /// # Panics
    /// If `local_discriminator` is 0, which RFC 5880 reserves: the runtime allocates nonzero, unique ones.
    pub fn new(config: SessionConfig, local_discriminator: u32, now: Instant) -> Session {
        assert_ne!(local_discriminator, 0, "a BFD session needs a nonzero local discriminator");
        let config = config.clamped();
        let advertised = wanted(&config.timers, State::Down);
        let remote = Remote::unknown(Diag::None);
        Session {
            config,
            local_discriminator,
            state: State::Down,
            local_diag: Diag::None,
            remote,
            last_rx: None,
            advertised,
            previous: advertised,
            polling: false,
            poll_queued: false,
            next_tx: now,
            last_tx: None,
            scheduled_interval: advertised.desired_min_tx.max(remote.min_rx),
            rng: SmallRng::seed_from_u64(config.jitter_seed),
        }
    }

    /// Whether this session takes `packet` (RFC 5880 6.8.6): the packet-level checks of
    /// [`packet::validate`], no authentication, and Your Discriminator ours or 0. [`Session::on_packet`] ignores
    /// a packet refused here; the runtime may call it first to count the refusal.
    pub fn check(&self, packet: &ControlPacket) -> Result<(), Discard> {
        packet::validate(packet)?;
        if packet.authenticated {
            return Err(Discard::Authenticated);
        }
        if packet.your_discriminator != 0 && packet.your_discriminator != self.local_discriminator {
            return Err(Discard::NotOurs {
                your_discriminator: packet.your_discriminator,
                local_discriminator: self.local_discriminator,
            });
        }
        Ok(())
    }

    /// A packet the runtime matched to this session (by your_discriminator, or by address when that is 0).
    pub fn on_packet(&mut self, packet: &ControlPacket, now: Instant, out: &mut Vec<Output>) {
        if self.check(packet).is_err() {
            return;
        }
        self.remote = Remote {
            discriminator: packet.my_discriminator,
            state: packet.state,
            diag: packet.diag,
            demand: packet.demand,
            min_rx: micros(packet.required_min_rx),
            desired_min_tx: micros(packet.desired_min_tx),
            detect_mult: packet.detect_mult,
        };
        if self.polling && packet.final_ {
            self.end_poll();
        }
        if self.state == State::AdminDown {
            // Discarded after taking the peer's values, before the P check (the order of 6.8.6): no state
            // change, no F, and it does not count as received for the detection time.
            self.reschedule(now);
            return;
        }
        self.last_rx = Some(now);
        match (self.state, packet.state) {
            (State::Down, State::AdminDown) => {}
            (_, State::AdminDown) | (State::Up, State::Down) => {
                self.set_state(State::Down, Some(Diag::NeighborSignaledSessionDown), out)
            }
            (State::Down, State::Down) => self.set_state(State::Init, None, out),
            (State::Down, State::Init) | (State::Init, State::Init | State::Up) => self.set_state(State::Up, None, out),
            _ => {}
        }
        if packet.poll {
            out.push(Output::Send(self.packet(true)));
        }
        self.reschedule(now);
    }

    /// Periodic transmission when due, detection-time expiry. Call when now >= next_deadline().
    pub fn on_timer(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.detection_deadline().is_some_and(|deadline| now >= deadline) {
            self.last_rx = None;
            self.remote = Remote::unknown(self.remote.diag);
            if matches!(self.state, State::Init | State::Up) {
                self.set_state(State::Down, Some(Diag::ControlDetectionTimeExpired), out);
            }
            self.reschedule(now);
        }
        if self.periodic_allowed() && now >= self.next_tx {
            self.send_periodic(now, out);
        }
    }

    /// The earliest instant at which [`Session::on_timer`] has something to do, possibly already past (then
    /// call it at once); None when nothing will be (a passive session that has heard nothing, or whose peer
    /// is forgotten). Any call may move it.
    pub fn next_deadline(&self) -> Option<Instant> {
        let tx = self.periodic_allowed().then_some(self.next_tx);
        match (tx, self.detection_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// New timers/passive. Up: a poll sequence (P bit until F), no flap. Otherwise taken at once.
    /// `out` receives nothing today: the poll rides on the periodic packets (RFC 5880 6.5).
    pub fn reconfigure(&mut self, config: SessionConfig, now: Instant, out: &mut Vec<Output>) {
        let _ = out;
        self.config = config.clamped();
        self.refresh_advertised();
        self.reschedule(now);
    }

    /// Local AdminDown (diag AdministrativelyDown), sends a packet at once and keeps sending at the tx interval.
    /// A passive session that has not heard from its peer stays silent.
    pub fn admin_down(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.state == State::AdminDown {
            return;
        }
        self.set_state(State::AdminDown, Some(Diag::AdministrativelyDown), out);
        if !(self.config.passive && self.remote.discriminator == 0) {
            self.send_periodic(now, out);
        }
    }

    /// Leaves AdminDown for Down (the diagnostic stays AdministrativelyDown until the session is Up).
    pub fn admin_up(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.state == State::AdminDown {
            self.set_state(State::Down, None, out);
            self.reschedule(now);
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The state in the peer's last packet (Down before any, and after the detection time passed).
    pub fn remote_state(&self) -> State {
        self.remote.state
    }

    /// Why we last went down (None once Up).
    pub fn local_diag(&self) -> Diag {
        self.local_diag
    }

    /// The diagnostic in the peer's last packet.
    pub fn remote_diag(&self) -> Diag {
        self.remote.diag
    }

    pub fn local_discriminator(&self) -> u32 {
        self.local_discriminator
    }

    /// The peer's discriminator; 0 before its first packet and after the detection time passed.
    pub fn remote_discriminator(&self) -> u32 {
        self.remote.discriminator
    }

    /// The interval in use (before jitter): the larger of our Desired Min TX (held back while polling, see the
    /// module docs) and the peer's Required Min RX.
    pub fn tx_interval(&self) -> Duration {
        self.effective_desired_min_tx().max(self.remote.min_rx)
    }

    /// None until a packet from the remote (and again once the peer is forgotten).
    pub fn detection_time(&self) -> Option<Duration> {
        self.last_rx?;
        let interval = self.effective_required_min_rx().max(self.remote.desired_min_tx);
        Some(interval * u32::from(self.remote.detect_mult))
    }

    /// A Poll Sequence is in progress: our packets carry P until one with F arrives.
    pub fn polling(&self) -> bool {
        self.polling
    }

    /// The configuration in use (with out-of-range values moved into range, see [`SessionConfig::validate`]).
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    fn detection_deadline(&self) -> Option<Instant> {
        Some(self.last_rx? + self.detection_time()?)
    }

    /// Held back while an Up session polls: an increase only once the peer has seen it (6.8.3).
    fn effective_desired_min_tx(&self) -> Duration {
        if self.polling && self.state == State::Up {
            self.previous.desired_min_tx.min(self.advertised.desired_min_tx)
        } else {
            self.advertised.desired_min_tx
        }
    }

    /// Held back while an Up session polls: a decrease only once the peer has seen it (6.8.3).
    fn effective_required_min_rx(&self) -> Duration {
        if self.polling && self.state == State::Up {
            self.previous.required_min_rx.max(self.advertised.required_min_rx)
        } else {
            self.advertised.required_min_rx
        }
    }

    /// Starts a Poll Sequence when what we advertise must change (6.8.3), or queues it behind the current one.
    fn refresh_advertised(&mut self) {
        let wanted = wanted(&self.config.timers, self.state);
        if wanted == self.advertised {
            self.poll_queued = false;
        } else if self.state != State::Up {
            self.previous = wanted;
            self.advertised = wanted;
            self.polling = true;
            self.poll_queued = false;
        } else if self.polling {
            self.poll_queued = true;
        } else {
            self.previous = self.advertised;
            self.advertised = wanted;
            self.polling = true;
        }
    }

    fn end_poll(&mut self) {
        self.polling = false;
        self.previous = self.advertised;
        if self.poll_queued {
            self.poll_queued = false;
            self.refresh_advertised();
        }
    }

    fn set_state(&mut self, to: State, diag: Option<Diag>, out: &mut Vec<Output>) {
        let from = self.state;
        if let Some(diag) = diag {
            self.local_diag = diag;
        }
        if to == State::Up {
            self.local_diag = Diag::None;
        }
        self.state = to;
        out.push(Output::StateChanged { from, to, diag: self.local_diag });
        self.refresh_advertised();
    }

    /// 6.8.7: a passive session never speaks first, and no periodic packets when the peer asks for none
    /// (Required Min RX 0) or is in Demand mode (unless we poll).
    fn periodic_allowed(&self) -> bool {
        if self.config.passive && self.remote.discriminator == 0 {
            return false;
        }
        if self.remote.min_rx.is_zero() {
            return false;
        }
        let remote_demand = self.remote.demand && self.state == State::Up && self.remote.state == State::Up;
        !remote_demand || self.polling
    }

    fn send_periodic(&mut self, now: Instant, out: &mut Vec<Output>) {
        out.push(Output::Send(self.packet(false)));
        let interval = self.tx_interval();
        self.last_tx = Some(now);
        self.next_tx = now + self.jittered(interval);
        self.scheduled_interval = interval;
    }

    /// A shorter transmit interval applies at once (6.8.3): move the next packet earlier if it is due sooner.
    fn reschedule(&mut self, now: Instant) {
        let interval = self.tx_interval();
        if interval < self.scheduled_interval {
            let gap = self.jittered(interval);
            let due = self.last_tx.map_or(now, |last| (last + gap).max(now));
            self.next_tx = self.next_tx.min(due);
            self.scheduled_interval = interval;
        }
    }

    /// The interval shortened by a random 0-25 %, or 10-25 % with a detect multiplier of 1 (6.8.7).
    fn jittered(&mut self, interval: Duration) -> Duration {
        let nanos = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX / 4);
        let low = nanos / 4 * 3;
        let high = if self.config.timers.detect_mult == 1 { nanos / 10 * 9 } else { nanos };
        Duration::from_nanos(self.rng.random_range(low..=high.max(low)))
    }

    fn packet(&self, final_: bool) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll: self.polling && !final_,
            final_,
            control_plane_independent: false,
            authenticated: false,
            demand: false,
            multipoint: false,
            detect_mult: self.config.timers.detect_mult,
            my_discriminator: self.local_discriminator,
            your_discriminator: self.remote.discriminator,
            desired_min_tx: wire_micros(self.advertised.desired_min_tx),
            required_min_rx: wire_micros(self.advertised.required_min_rx),
            required_min_echo_rx: 0,
        }
    }
}

/// What a session in `state` advertises: Desired Min TX at least 1 s unless Up (6.8.3).
fn wanted(timers: &Timers, state: State) -> Advertised {
    let desired_min_tx = if state == State::Up { timers.desired_min_tx } else { timers.desired_min_tx.max(SLOW_TX) };
    Advertised { desired_min_tx, required_min_rx: timers.required_min_rx }
}

fn micros(value: u32) -> Duration {
    Duration::from_micros(u64::from(value))
}

/// Whole microseconds from 1 µs to [`MAX_INTERVAL`].
fn whole_micros(value: Duration) -> Duration {
    micros(wire_micros(value))
}

fn wire_micros(value: Duration) -> u32 {
    u32::try_from(value.as_micros()).unwrap_or(u32::MAX).max(1)
}
