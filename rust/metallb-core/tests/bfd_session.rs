//! BFD sessions (RFC 5880 section 6) driven by a simulated clock: two sessions wired back to back through the
//! codec (every packet is encoded and decoded on the way), with a fixed latency per direction and packets
//! lost on demand. Plus single sessions fed hand-made packets, and a property: a pair with random timers that
//! loses fewer consecutive packets than the detect multiplier never goes down.

use std::time::{Duration, Instant};

use metallb_core::bfd::packet::{decode, encode, ControlPacket, DecodeError, Diag, State};
use metallb_core::bfd::session::{
    Discard, Output, Session, SessionConfig, SessionConfigError, Timers, MAX_INTERVAL, SLOW_TX,
};
use proptest::prelude::*;

const MS: Duration = Duration::from_millis(1);

fn config(tx_ms: u64, rx_ms: u64, detect_mult: u8, passive: bool, jitter_seed: u64) -> SessionConfig {
    SessionConfig {
        timers: Timers {
            desired_min_tx: Duration::from_millis(tx_ms),
            required_min_rx: Duration::from_millis(rx_ms),
            detect_mult,
        },
        passive,
        jitter_seed,
    }
}

/// One output of one session, at a time since the simulation started.
#[derive(Debug, Clone)]
struct Logged {
    at: Duration,
    from: usize,
    output: Output,
    delivered: bool,
}

/// Two sessions (0 and 1, discriminators 100 and 200) joined by a link.
struct Sim {
    start: Instant,
    now: Instant,
    sessions: [Session; 2],
    /// A session not started yet neither runs timers nor listens.
    started: [bool; 2],
    /// From session i to the other.
    latency: [Duration; 2],
    /// While false every packet is lost.
    link_up: bool,
    /// Decides per packet (sender, packet) whether the link loses it.
    lose: LossFn,
    in_flight: Vec<(Instant, usize, ControlPacket)>,
    log: Vec<Logged>,
}

const DISCRIMINATORS: [u32; 2] = [100, 200];

type LossFn = Box<dyn FnMut(usize, &ControlPacket) -> bool>;

impl Sim {
    fn new(configs: [SessionConfig; 2]) -> Sim {
        let start = Instant::now();
        Sim {
            start,
            now: start,
            sessions: [
                Session::new(configs[0], DISCRIMINATORS[0], start),
                Session::new(configs[1], DISCRIMINATORS[1], start),
            ],
            started: [true, true],
            latency: [MS, MS],
            link_up: true,
            lose: Box::new(|_, _| false),
            in_flight: Vec::new(),
            log: Vec::new(),
        }
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Starts session `i` now (it was created at the start but kept still).
    fn start(&mut self, i: usize) {
        let config = *self.sessions[i].config();
        self.sessions[i] = Session::new(config, DISCRIMINATORS[i], self.now);
        self.started[i] = true;
    }

    fn next_event(&self) -> Option<Instant> {
        let timers = (0..2).filter(|&i| self.started[i]).filter_map(|i| self.sessions[i].next_deadline());
        timers.chain(self.in_flight.iter().map(|(at, ..)| *at)).min()
    }

    /// Runs every event up to and including `end`, then sets the clock to `end`.
    fn run_until(&mut self, end: Duration) {
        let end = self.start + end;
        while let Some(at) = self.next_event().filter(|&at| at <= end) {
            self.now = self.now.max(at);
            self.step();
        }
        self.now = end;
    }

    fn run_for(&mut self, span: Duration) {
        self.run_until(self.elapsed() + span);
    }

    /// Runs until `done` holds (checked after each event), at most `limit` more; whether it came to hold.
    fn run_until_that(&mut self, limit: Duration, done: impl Fn(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        while !done(self) {
            match self.next_event().filter(|&at| at <= end) {
                Some(at) => {
                    self.now = self.now.max(at);
                    self.step();
                }
                None => return false,
            }
        }
        true
    }

    /// Delivers the packets due now, then runs the timers due now.
    fn step(&mut self) {
        while let Some(k) = self.in_flight.iter().position(|(at, ..)| *at <= self.now) {
            let (_, to, packet) = self.in_flight.remove(k);
            let mut out = Vec::new();
            self.sessions[to].on_packet(&packet, self.now, &mut out);
            self.handle(to, out);
        }
        for i in 0..2 {
            if self.started[i] && self.sessions[i].next_deadline().is_some_and(|d| d <= self.now) {
                let mut out = Vec::new();
                self.sessions[i].on_timer(self.now, &mut out);
                self.handle(i, out);
            }
        }
    }

    fn handle(&mut self, from: usize, out: Vec<Output>) {
        for output in out {
            let mut delivered = false;
            if let Output::Send(packet) = &output {
                let wire = decode(&encode(packet)).expect("a session sent a packet that does not decode");
                assert_eq!(&wire, packet);
                let to = 1 - from;
                if self.link_up && self.started[to] && !(self.lose)(from, packet) {
                    self.in_flight.push((self.now + self.latency[from], to, wire));
                    delivered = true;
                }
            }
            self.log.push(Logged { at: self.elapsed(), from, output, delivered });
        }
    }

    fn transitions(&self, who: usize) -> Vec<(State, State, Diag)> {
        self.log
            .iter()
            .filter(|l| l.from == who)
            .filter_map(|l| match l.output {
                Output::StateChanged { from, to, diag } => Some((from, to, diag)),
                Output::Send(_) => None,
            })
            .collect()
    }

    /// Every packet `who` sent, with when, from time `since` on.
    fn sent(&self, who: usize, since: Duration) -> Vec<(Duration, ControlPacket)> {
        self.log
            .iter()
            .filter(|l| l.from == who && l.at >= since)
            .filter_map(|l| match &l.output {
                Output::Send(p) => Some((l.at, p.clone())),
                Output::StateChanged { .. } => None,
            })
            .collect()
    }

    /// When the last packet from `who` that the other side received was sent.
    fn last_delivered(&self, who: usize) -> Option<Duration> {
        self.log.iter().filter(|l| l.from == who && l.delivered).map(|l| l.at).next_back()
    }

    fn both_up(&self) -> bool {
        self.sessions.iter().all(|s| s.state() == State::Up && !s.polling())
    }
}

fn gaps(sent: &[(Duration, ControlPacket)]) -> Vec<Duration> {
    sent.windows(2).map(|w| w[1].0 - w[0].0).collect()
}

/// Both at 50 ms x 3, up and done polling.
fn up_pair() -> Sim {
    let mut sim = Sim::new([config(50, 50, 3, false, 1), config(50, 50, 3, false, 2)]);
    assert!(sim.run_until_that(Duration::from_secs(5), Sim::both_up));
    sim
}

#[test]
fn two_sessions_come_up_through_down_init_up() {
    let mut sim = Sim::new([config(50, 50, 3, false, 1), config(50, 50, 3, false, 2)]);
    sim.run_until(Duration::from_secs(5));
    for (who, session) in sim.sessions.iter().enumerate() {
        assert_eq!(
            sim.transitions(who),
            [(State::Down, State::Init, Diag::None), (State::Init, State::Up, Diag::None)],
            "session {who}"
        );
        assert_eq!(session.state(), State::Up);
        assert_eq!(session.remote_state(), State::Up);
        assert_eq!(session.remote_discriminator(), DISCRIMINATORS[1 - who]);
        assert!(!session.polling(), "the poll for the configured rate is over");
        assert_eq!(session.tx_interval(), 50 * MS);
        assert_eq!(session.detection_time(), Some(150 * MS));
    }
    // Both sent their first packet at once, Down with no Your Discriminator and the slow rate.
    for (who, discriminator) in DISCRIMINATORS.into_iter().enumerate() {
        let (at, first) = &sim.sent(who, Duration::ZERO)[0];
        assert_eq!(*at, Duration::ZERO);
        assert_eq!((first.state, first.your_discriminator, first.desired_min_tx), (State::Down, 0, 1_000_000));
        assert_eq!((first.required_min_rx, first.detect_mult, first.required_min_echo_rx), (50_000, 3, 0));
        assert_eq!(first.my_discriminator, discriminator);
    }
}

#[test]
fn one_side_late_comes_up_from_down_straight_to_up() {
    let mut sim = Sim::new([config(50, 50, 3, false, 1), config(50, 50, 3, false, 2)]);
    sim.started[1] = false;
    sim.run_until(300 * MS);
    sim.start(1);
    assert!(sim.run_until_that(Duration::from_secs(5), Sim::both_up));
    assert_eq!(sim.transitions(0), [(State::Down, State::Init, Diag::None), (State::Init, State::Up, Diag::None)]);
    assert_eq!(sim.transitions(1), [(State::Down, State::Up, Diag::None)]);
}

#[test]
fn the_slow_rate_of_at_least_one_second_while_not_up() {
    let mut sim = Sim::new([config(50, 50, 3, false, 1), config(50, 50, 3, false, 2)]);
    sim.started[1] = false;
    sim.run_until(Duration::from_secs(30));
    assert_eq!(sim.sessions[0].tx_interval(), SLOW_TX);
    let sent = sim.sent(0, Duration::ZERO);
    assert!(sent.len() >= 30, "{} packets in 30 s", sent.len());
    for gap in gaps(&sent) {
        assert!(gap >= 750 * MS && gap <= SLOW_TX, "gap {gap:?} outside 75-100 % of 1 s");
    }
    for (_, p) in &sent {
        assert_eq!((p.state, p.desired_min_tx, p.required_min_rx), (State::Down, 1_000_000, 50_000));
    }
    // A configured rate slower than 1 s is kept as it is.
    let mut slow = Sim::new([config(2000, 50, 3, false, 1), config(50, 50, 3, false, 2)]);
    slow.started[1] = false;
    slow.run_until(Duration::from_secs(30));
    assert_eq!(slow.sessions[0].tx_interval(), 2000 * MS);
    assert!(slow.sent(0, Duration::ZERO).iter().all(|(_, p)| p.desired_min_tx == 2_000_000));
}

#[test]
fn jitter_shortens_each_gap_by_up_to_a_quarter() {
    let mut sim = up_pair();
    let since = sim.elapsed();
    sim.run_for(Duration::from_secs(60));
    let sent = sim.sent(0, since);
    assert!(sent.iter().all(|(_, p)| !p.poll && !p.final_ && p.state == State::Up));
    let gaps = gaps(&sent);
    assert!(gaps.len() > 1000, "{} gaps", gaps.len());
    assert!(gaps.iter().all(|g| *g >= 37_500 * Duration::from_micros(1) && *g <= 50 * MS), "{gaps:?}");
    // Random, not a fixed shortening: both ends of the range are reached.
    assert!(gaps.iter().any(|g| *g < 39 * MS) && gaps.iter().any(|g| *g > 49 * MS));
}

#[test]
fn with_detect_multiplier_1_each_gap_is_75_to_90_percent() {
    let mut sim = Sim::new([config(50, 50, 1, false, 1), config(50, 50, 1, false, 2)]);
    assert!(sim.run_until_that(Duration::from_secs(5), Sim::both_up));
    let since = sim.elapsed();
    sim.run_for(Duration::from_secs(60));
    let gaps = gaps(&sim.sent(1, since));
    assert!(gaps.len() > 1000);
    assert!(gaps.iter().all(|g| *g >= 37_500 * Duration::from_micros(1) && *g <= 45 * MS), "{gaps:?}");
    assert!(gaps.iter().any(|g| *g < 39 * MS) && gaps.iter().any(|g| *g > 44 * MS));
    assert!(sim.both_up());
}

#[test]
fn the_same_seed_jitters_the_same_way() {
    let run = |seed| {
        let mut sim = Sim::new([config(50, 50, 3, false, seed), config(50, 50, 3, false, 9)]);
        sim.run_until(Duration::from_secs(10));
        gaps(&sim.sent(0, Duration::ZERO))
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn detection_time_expiry_goes_down_with_diag_1_and_forgets_the_peer() {
    let mut sim = up_pair();
    sim.link_up = false;
    let cut = sim.elapsed();
    assert!(sim.run_until_that(Duration::from_secs(1), |s| s.sessions[0].state() == State::Down));
    let last = sim.last_delivered(1).unwrap();
    // 3 x 50 ms after the last packet from 1 left it, plus the 1 ms it took to arrive.
    assert_eq!(sim.elapsed(), last + 150 * MS + MS);
    assert!(sim.elapsed() > cut);
    let a = &sim.sessions[0];
    assert_eq!(sim.transitions(0).last(), Some(&(State::Up, State::Down, Diag::ControlDetectionTimeExpired)));
    assert_eq!(a.local_diag(), Diag::ControlDetectionTimeExpired);
    assert_eq!(a.remote_discriminator(), 0);
    assert_eq!(a.remote_state(), State::Down);
    assert_eq!(a.detection_time(), None);
    // An active session keeps sending, now Down at the slow rate, without Your Discriminator, saying why.
    let down_at = sim.elapsed();
    sim.run_for(Duration::from_secs(5));
    let after = sim.sent(0, down_at);
    assert!(after.len() >= 4);
    for (_, p) in &after {
        assert_eq!((p.state, p.diag, p.your_discriminator), (State::Down, Diag::ControlDetectionTimeExpired, 0));
        assert_eq!(p.desired_min_tx, 1_000_000);
    }
    // The link back: both come up again and the diagnostic is cleared.
    sim.link_up = true;
    assert!(sim.run_until_that(Duration::from_secs(10), Sim::both_up));
    assert_eq!(sim.sessions[0].local_diag(), Diag::None);
}

#[test]
fn a_remote_admin_down_takes_the_session_down_with_diag_3() {
    let mut sim = up_pair();
    let mut out = Vec::new();
    let now = sim.now;
    sim.sessions[1].admin_down(now, &mut out);
    assert_eq!(sim.sessions[1].state(), State::AdminDown);
    assert_eq!(sim.sessions[1].local_diag(), Diag::AdministrativelyDown);
    // The AdminDown packet goes out at once.
    assert!(
        matches!(out.last(), Some(Output::Send(p)) if p.state == State::AdminDown && p.diag == Diag::AdministrativelyDown)
    );
    sim.handle(1, out);
    sim.run_for(10 * MS);
    assert_eq!(sim.transitions(0).last(), Some(&(State::Up, State::Down, Diag::NeighborSignaledSessionDown)));
    assert_eq!(sim.transitions(1).last(), Some(&(State::Up, State::AdminDown, Diag::AdministrativelyDown)));
    // It stays so: AdminDown keeps 0 Down, and 1 ignores what 0 sends.
    sim.run_for(Duration::from_secs(10));
    assert_eq!((sim.sessions[0].state(), sim.sessions[1].state()), (State::Down, State::AdminDown));
    assert_eq!(sim.sessions[0].remote_state(), State::AdminDown);
    assert!(sim.sent(1, Duration::from_secs(1)).iter().all(|(_, p)| p.state == State::AdminDown));
    // Admin up: Down, then up again.
    let mut out = Vec::new();
    let now = sim.now;
    sim.sessions[1].admin_up(now, &mut out);
    assert_eq!(
        out,
        [Output::StateChanged { from: State::AdminDown, to: State::Down, diag: Diag::AdministrativelyDown }]
    );
    assert!(sim.run_until_that(Duration::from_secs(10), Sim::both_up));
}

#[test]
fn a_poll_sequence_changes_the_timers_without_leaving_up() {
    // Session 1 sends fast (10 ms) so that 0's detection time shows 0's own receive interval.
    let mut sim = Sim::new([config(50, 50, 3, false, 1), config(10, 50, 3, false, 2)]);
    assert!(sim.run_until_that(Duration::from_secs(5), Sim::both_up));
    assert_eq!(sim.sessions[0].tx_interval(), 50 * MS);
    assert_eq!(sim.sessions[0].detection_time(), Some(150 * MS));
    assert_eq!(sim.sessions[1].detection_time(), Some(150 * MS));
    let before = sim.log.len();

    // Slower transmit (50 -> 200 ms), faster receive (50 -> 20 ms).
    let mut out = Vec::new();
    let now = sim.now;
    sim.sessions[0].reconfigure(config(200, 20, 3, false, 1), now, &mut out);
    assert!(out.is_empty(), "the poll rides on the periodic packets: {out:?}");
    let a = &sim.sessions[0];
    assert!(a.polling());
    // Until F: the old, shorter transmit interval and the old, longer detection time.
    assert_eq!(a.tx_interval(), 50 * MS);
    assert_eq!(a.detection_time(), Some(150 * MS));
    let polled_at = sim.elapsed();

    // The next periodic packet carries P and the new values; 1 answers with F at once and takes them.
    assert!(sim.run_until_that(Duration::from_secs(1), |s| !s.sessions[0].polling()));
    let polls = sim.sent(0, polled_at);
    let (p_at, p) = polls.iter().find(|(_, p)| p.poll).unwrap();
    assert_eq!((p.desired_min_tx, p.required_min_rx, p.final_), (200_000, 20_000, false));
    assert!(*p_at - polled_at <= 50 * MS, "the poll waited for the next periodic packet only");
    let answers: Vec<_> = sim.sent(1, *p_at).into_iter().filter(|(_, p)| p.final_).collect();
    assert_eq!(answers[0].0, *p_at + MS, "F the moment P arrived");
    assert!(!answers[0].1.poll);

    // After F: the new values.
    assert_eq!(sim.sessions[0].tx_interval(), 200 * MS);
    assert_eq!(sim.sessions[0].detection_time(), Some(60 * MS));
    assert_eq!(sim.sessions[1].detection_time(), Some(600 * MS));
    sim.run_for(Duration::from_secs(10));
    let steady = gaps(&sim.sent(0, sim.elapsed() - Duration::from_secs(5)));
    assert!(steady.iter().all(|g| *g >= 150 * MS && *g <= 200 * MS), "{steady:?}");
    assert!(sim.sent(0, polled_at + Duration::from_secs(1)).iter().all(|(_, p)| !p.poll));

    // Never left Up on either side.
    assert!(sim.log[before..].iter().all(|l| !matches!(l.output, Output::StateChanged { .. })));
    assert!(sim.both_up());
}

#[test]
fn a_faster_transmit_interval_applies_before_the_poll_ends() {
    let mut sim = up_pair();
    let mut out = Vec::new();
    let now = sim.now;
    sim.sessions[0].reconfigure(config(20, 50, 3, false, 1), now, &mut out);
    assert!(sim.sessions[0].polling());
    assert_eq!(sim.sessions[0].tx_interval(), 50 * MS, "1 still asks for no more than one packet per 50 ms");
    let now = sim.now;
    sim.sessions[1].reconfigure(config(50, 20, 3, false, 2), now, &mut out);
    // 1's receive interval shrinks: its detection time waits for F, 0 may send faster once it hears of it.
    assert_eq!(sim.sessions[1].detection_time(), Some(150 * MS));
    assert!(sim.run_until_that(Duration::from_secs(1), Sim::both_up));
    assert_eq!(sim.sessions[0].tx_interval(), 20 * MS);
    assert_eq!(sim.sessions[1].detection_time(), Some(60 * MS));
}

#[test]
fn a_change_while_polling_waits_for_the_first_poll_to_end() {
    let mut sim = up_pair();
    let (mut out, now) = (Vec::new(), sim.now);
    sim.sessions[0].reconfigure(config(100, 50, 3, false, 1), now, &mut out);
    sim.sessions[0].reconfigure(config(300, 50, 3, false, 1), now, &mut out);
    assert!(sim.run_until_that(Duration::from_secs(2), |s| !s.sessions[0].polling()));
    let advertised: Vec<u32> = sim.sent(0, Duration::ZERO).iter().map(|(_, p)| p.desired_min_tx).collect();
    assert!(advertised.contains(&100_000), "the first change was polled on its own");
    assert_eq!(sim.sessions[0].tx_interval(), 300 * MS);
    assert_eq!(sim.sessions[1].detection_time(), Some(900 * MS));
    assert!(sim.both_up());
}

#[test]
fn passive_sends_nothing_until_a_packet_arrives() {
    let mut sim = Sim::new([config(50, 50, 3, true, 1), config(50, 50, 3, false, 2)]);
    sim.started[1] = false;
    sim.run_until(Duration::from_secs(10));
    assert!(sim.sent(0, Duration::ZERO).is_empty());
    assert_eq!(sim.sessions[0].next_deadline(), None);
    sim.start(1);
    assert!(sim.run_until_that(Duration::from_secs(5), Sim::both_up));
    let first = sim.sent(0, Duration::ZERO)[0].0;
    assert_eq!(first, Duration::from_secs(10) + MS, "answers the moment the first packet arrived");

    // The peer goes away: Down at the detection time, and silent again since the peer is forgotten.
    sim.link_up = false;
    assert!(sim.run_until_that(Duration::from_secs(1), |s| s.sessions[0].state() == State::Down));
    let down_at = sim.elapsed();
    sim.run_for(Duration::from_secs(10));
    assert!(sim.sent(0, down_at).is_empty(), "{:?}", sim.sent(0, down_at));
    assert_eq!(sim.sessions[0].next_deadline(), None);
}

#[test]
fn passive_admin_down_with_no_peer_stays_silent() {
    let now = Instant::now();
    let mut session = Session::new(config(50, 50, 3, true, 1), 7, now);
    let mut out = Vec::new();
    session.admin_down(now, &mut out);
    assert_eq!(
        out,
        [Output::StateChanged { from: State::Down, to: State::AdminDown, diag: Diag::AdministrativelyDown }]
    );
    assert_eq!(session.next_deadline(), None);
}

/// A packet from the peer (discriminator 9) to session 7.
fn from_peer(state: State) -> ControlPacket {
    let your_discriminator = if state == State::Down { 0 } else { 7 };
    ControlPacket {
        desired_min_tx: 50_000,
        required_min_rx: 50_000,
        ..ControlPacket::new(state, 9, your_discriminator)
    }
}

/// Session 7 at 50 ms x 3, brought Up by hand.
fn up_session(now: Instant) -> Session {
    let mut session = Session::new(config(50, 50, 3, false, 1), 7, now);
    let mut out = Vec::new();
    session.on_packet(&from_peer(State::Init), now, &mut out);
    assert_eq!(session.state(), State::Up);
    session
}

#[test]
fn a_poll_is_answered_with_final_at_once_in_any_state() {
    let now = Instant::now();
    for (mut session, expected) in [
        (up_session(now), State::Up),
        (Session::new(config(50, 50, 3, false, 1), 7, now), State::Init),
        (Session::new(config(50, 50, 3, true, 1), 7, now), State::Init),
    ] {
        let state = if expected == State::Up { State::Up } else { State::Down };
        let mut out = Vec::new();
        session.on_packet(&ControlPacket { poll: true, ..from_peer(state) }, now, &mut out);
        let answers: Vec<_> = out.iter().filter_map(|o| if let Output::Send(p) = o { Some(p) } else { None }).collect();
        assert_eq!(answers.len(), 1, "{out:?}");
        assert!(answers[0].final_ && !answers[0].poll, "F without P even while polling: {:?}", answers[0]);
        assert_eq!((answers[0].state, answers[0].your_discriminator), (expected, 9));
    }
}

#[test]
fn a_peer_that_asks_for_no_packets_gets_none_but_the_final() {
    let now = Instant::now();
    let mut session = up_session(now);
    let mut out = Vec::new();
    // Required Min RX 0: no periodic packets (RFC 5880 6.8.7); a poll is still answered.
    session.on_packet(&ControlPacket { required_min_rx: 0, ..from_peer(State::Up) }, now, &mut out);
    let deadline = session.next_deadline().unwrap();
    assert_eq!(deadline, now + 150 * MS, "only the detection time is left");
    session.on_packet(&ControlPacket { required_min_rx: 0, poll: true, ..from_peer(State::Up) }, now, &mut out);
    assert!(out.iter().any(|o| matches!(o, Output::Send(p) if p.final_)));
}

#[test]
fn a_peer_in_demand_mode_stops_our_periodic_packets() {
    let now = Instant::now();
    let mut session = up_session(now);
    let mut out = Vec::new();
    session.on_packet(&ControlPacket { final_: true, ..from_peer(State::Up) }, now, &mut out);
    assert!(!session.polling());
    session.on_packet(&ControlPacket { demand: true, ..from_peer(State::Up) }, now, &mut out);
    assert_eq!(session.next_deadline(), Some(now + 150 * MS));
    session.on_packet(&from_peer(State::Up), now, &mut out);
    assert!(session.next_deadline().unwrap() < now + 150 * MS);
}

#[test]
fn packets_the_session_must_discard_change_nothing() {
    let now = Instant::now();
    let mut session = Session::new(config(50, 50, 3, false, 1), 7, now);
    let cases = [
        (ControlPacket { authenticated: true, ..from_peer(State::Down) }, Discard::Authenticated),
        (
            ControlPacket { your_discriminator: 8, ..from_peer(State::Init) },
            Discard::NotOurs { your_discriminator: 8, local_discriminator: 7 },
        ),
        (ControlPacket { detect_mult: 0, ..from_peer(State::Down) }, Discard::Invalid(DecodeError::ZeroDetectMult)),
        (
            ControlPacket { your_discriminator: 0, ..from_peer(State::Up) },
            Discard::Invalid(DecodeError::ZeroYourDiscriminator { state: State::Up }),
        ),
    ];
    for (packet, discard) in cases {
        assert_eq!(session.check(&packet), Err(discard.clone()));
        assert!(!discard.to_string().is_empty());
        let mut out = Vec::new();
        session.on_packet(&ControlPacket { poll: true, ..packet }, now, &mut out);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!((session.state(), session.remote_discriminator(), session.detection_time()), (State::Down, 0, None));
    }
    assert_eq!(session.check(&from_peer(State::Down)), Ok(()));
}

#[test]
fn a_restarted_peer_takes_an_up_session_down_with_diag_3() {
    let now = Instant::now();
    let mut session = up_session(now);
    let mut out = Vec::new();
    session.on_packet(&ControlPacket { my_discriminator: 10, ..from_peer(State::Down) }, now + MS, &mut out);
    assert_eq!(
        out[0],
        Output::StateChanged { from: State::Up, to: State::Down, diag: Diag::NeighborSignaledSessionDown }
    );
    assert_eq!(session.remote_discriminator(), 10);
}

#[test]
fn config_validation_names_the_bad_value() {
    assert_eq!(config(50, 50, 3, false, 0).validate(), Ok(()));
    assert_eq!(config(50, 50, 0, false, 0).validate(), Err(SessionConfigError::ZeroDetectMult));
    let zero = config(0, 50, 3, false, 0).validate().unwrap_err();
    assert_eq!(zero, SessionConfigError::Interval { field: "transmit interval", value: Duration::ZERO });
    assert!(zero.to_string().contains("transmit interval"), "{zero}");
    let long = SessionConfig {
        timers: Timers { required_min_rx: MAX_INTERVAL + MS, ..Timers::default() },
        ..config(1, 1, 1, false, 0)
    };
    assert!(matches!(long.validate(), Err(SessionConfigError::Interval { field: "receive interval", .. })));
    // A session given it anyway runs with the nearest values allowed.
    let session = Session::new(config(0, 50, 0, false, 0), 1, Instant::now());
    assert_eq!(
        (session.config().timers.desired_min_tx, session.config().timers.detect_mult),
        (Duration::from_micros(1), 1)
    );
}

/// A tiny xorshift for the loss pattern, so that a proptest case replays exactly.
struct Loss {
    state: u64,
    percent: u64,
    /// Per direction: consecutive losses so far, and the most allowed.
    run: [u8; 2],
    max_run: [u8; 2],
}

impl Loss {
    fn lose(&mut self, from: usize) -> bool {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        if self.run[from] < self.max_run[from] && self.state % 100 < self.percent {
            self.run[from] += 1;
            true
        } else {
            self.run[from] = 0;
            false
        }
    }
}

/// Milliseconds: often the fast timers BFD is for, sometimes slow ones.
fn interval() -> impl Strategy<Value = u64> {
    prop_oneof![10u64..=60, 10u64..=500]
}

fn timers() -> impl Strategy<Value = (u64, u64, u8)> {
    (interval(), interval(), 1u8..=5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The receiver's detection time is the sender's detect multiplier times the sender's interval, and the
    /// sender's gaps are at most one interval: losing fewer packets in a row than the multiplier never lets the
    /// detection time pass, through bring-up, the polls to the configured rates, the steady state, and a poll
    /// sequence to new intervals on each side.
    #[test]
    fn losses_below_the_detect_multiplier_never_take_a_pair_down(
        a in timers(),
        b in timers(),
        new_intervals in any::<[(u16, u16); 2]>(),
        passive in 0usize..3,
        seeds in any::<(u64, u64, u64)>(),
        percent in 0u64..60,
        latency in (0u64..5_000, 0u64..5_000),
    ) {
        let mut sim = Sim::new([
            config(a.0, a.1, a.2, passive == 0, seeds.0),
            config(b.0, b.1, b.2, passive == 1, seeds.1),
        ]);
        sim.latency = [Duration::from_micros(latency.0), Duration::from_micros(latency.1)];
        let mut loss = Loss { state: seeds.2 | 1, percent, run: [0, 0], max_run: [a.2 - 1, b.2 - 1] };
        sim.lose = Box::new(move |from, _| loss.lose(from));
        sim.run_until(Duration::from_secs(15));
        for (who, (tx, rx)) in new_intervals.into_iter().enumerate() {
            let mut config = *sim.sessions[who].config();
            config.timers.desired_min_tx = Duration::from_millis(10 + u64::from(tx) % 491);
            config.timers.required_min_rx = Duration::from_millis(10 + u64::from(rx) % 491);
            let (mut out, now) = (Vec::new(), sim.now);
            sim.sessions[who].reconfigure(config, now, &mut out);
            sim.handle(who, out);
            sim.run_for(Duration::from_secs(10));
        }
        sim.run_for(Duration::from_secs(10));
        for who in 0..2 {
            prop_assert_eq!(sim.sessions[who].tx_interval(), sim.sessions[who].config().timers.desired_min_tx.max(
                sim.sessions[1 - who].config().timers.required_min_rx));
        }
        for who in 0..2 {
            let downs: Vec<_> = sim.transitions(who).into_iter().filter(|t| t.1 == State::Down).collect();
            prop_assert!(downs.is_empty(), "session {} went down: {:?}", who, downs);
            prop_assert_eq!(sim.sessions[who].state(), State::Up);
        }
    }
}
