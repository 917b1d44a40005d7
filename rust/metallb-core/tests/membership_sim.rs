//! The membership engine on a simulated network with a simulated clock: members die, stall, get cut off and
//! leave; datagrams are lost, delayed and replayed. Every run is seeded, so a failure replays exactly.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use metallb_core::membership::{
    Engine, EventKind, MemberState, MembershipConfig, Quorum, Takeover, Timing, WatchTiming,
};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const SECRET: &[u8] = b"a shared secret of enough bytes";

fn addr(i: usize) -> SocketAddr {
    format!("192.0.2.{}:7946", i + 1).parse().unwrap()
}

fn name(i: usize) -> String {
    format!("node-{i}")
}

/// How the simulated network treats datagrams.
#[derive(Clone, Copy)]
struct Network {
    loss: f64,
    delay: Duration,
    jitter: Duration,
}

impl Default for Network {
    fn default() -> Self {
        Network { loss: 0.0, delay: Duration::from_micros(200), jitter: Duration::from_micros(300) }
    }
}

struct Node {
    engine: Engine,
    dead: bool,
    /// Processing nothing (a descheduled process) until then; its datagrams wait in the socket buffer.
    stalled_until: Option<Instant>,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    seq: u64,
    to: usize,
    bytes: Vec<u8>,
}

/// Events as (simulated time since start, kind, observer, subject).
type Log = Vec<(Duration, EventKind, usize, String)>;

struct Sim {
    start: Instant,
    now: Instant,
    nodes: Vec<Node>,
    net: Network,
    rng: SmallRng,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    /// Directed links that drop everything (a cut cable is both directions).
    cut: BTreeSet<(usize, usize)>,
    /// Every datagram delivered, kept when `record` is on (for replay tests).
    recorded: Vec<(usize, Vec<u8>)>,
    record: bool,
    log: Log,
}

impl Sim {
    fn new(n: usize, timing: Timing, net: Network, seed: u64) -> Self {
        Sim::with(n, net, seed, |_, config| config.timing = timing)
    }

    fn with(n: usize, net: Network, seed: u64, tune: impl Fn(usize, &mut MembershipConfig)) -> Self {
        let start = Instant::now();
        let nodes = (0..n)
            .map(|i| {
                let mut config = MembershipConfig::new(&name(i), addr(i), SECRET);
                config.generation = 1_000 + i as u64;
                config.boot = seed.wrapping_mul(1000).wrapping_add(i as u64 + 1);
                config.rng_seed = seed ^ (i as u64) << 32;
                tune(i, &mut config);
                Node { engine: Engine::new(config, start).unwrap(), dead: false, stalled_until: None }
            })
            .collect();
        let mut sim = Sim {
            start,
            now: start,
            nodes,
            net,
            rng: SmallRng::seed_from_u64(seed),
            queue: BinaryHeap::new(),
            seq: 0,
            cut: BTreeSet::new(),
            recorded: Vec::new(),
            record: false,
            log: Vec::new(),
        };
        // Like the speaker: every member is handed the full list of gossip addresses, itself included.
        let all: Vec<SocketAddr> = (0..n).map(addr).collect();
        for i in 0..n {
            sim.nodes[i].engine.set_peers(start, &all).unwrap();
            sim.flush(i);
        }
        sim
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn index_of(&self, to: SocketAddr) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| addr(i) == to)
    }

    /// Puts what node `i` wants to send on the wire and logs its events.
    fn flush(&mut self, i: usize) {
        for datagram in self.nodes[i].engine.take_outgoing() {
            let Some(to) = self.index_of(datagram.to) else { continue };
            if self.cut.contains(&(i, to)) || self.rng.random_bool(self.net.loss) {
                continue;
            }
            let jitter = self.net.jitter.mul_f64(self.rng.random::<f64>());
            self.seq += 1;
            self.queue.push(Reverse(InFlight {
                at: self.now + self.net.delay + jitter,
                seq: self.seq,
                to,
                bytes: datagram.bytes,
            }));
        }
        let elapsed = self.elapsed();
        for event in self.nodes[i].engine.take_events() {
            self.log.push((elapsed, event.kind, i, event.name));
        }
    }

    fn available(&self, i: usize) -> bool {
        let node = &self.nodes[i];
        !node.dead && node.stalled_until.is_none_or(|until| self.now >= until)
    }

    /// Runs the simulation until `until` (time since start).
    fn run_until(&mut self, until: Duration) {
        let end = self.start + until;
        loop {
            let mut next = end;
            if let Some(Reverse(first)) = self.queue.peek() {
                next = next.min(first.at);
            }
            for (i, node) in self.nodes.iter().enumerate() {
                if node.dead {
                    continue;
                }
                let ready =
                    node.stalled_until.map_or(node.engine.next_deadline(), |u| u.max(node.engine.next_deadline()));
                let _ = i;
                next = next.min(ready);
            }
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            // Deliver everything due to nodes that are running; a stalled node's datagrams wait for it.
            let mut waiting = Vec::new();
            while let Some(Reverse(first)) = self.queue.peek() {
                if first.at > self.now {
                    break;
                }
                let Reverse(datagram) = self.queue.pop().unwrap();
                if self.nodes[datagram.to].dead {
                    continue;
                }
                if !self.available(datagram.to) {
                    waiting.push(datagram);
                    continue;
                }
                if self.record {
                    self.recorded.push((datagram.to, datagram.bytes.clone()));
                }
                let now = self.now;
                let _ = self.nodes[datagram.to].engine.receive(now, &datagram.bytes);
                self.flush(datagram.to);
            }
            for mut datagram in waiting {
                datagram.at = self.nodes[datagram.to].stalled_until.unwrap_or(self.now);
                self.queue.push(Reverse(datagram));
            }
            for i in 0..self.nodes.len() {
                if self.available(i) && self.nodes[i].engine.next_deadline() <= self.now {
                    let now = self.now;
                    self.nodes[i].engine.tick(now);
                    self.flush(i);
                }
            }
            if self.now >= end {
                break;
            }
        }
        self.now = end;
    }

    fn kill(&mut self, i: usize) {
        self.nodes[i].dead = true;
    }

    /// Starts a new process for node `i` at its address (a new boot), configured by `tune`, handed the full
    /// peer list as the speaker does.
    fn restart(&mut self, i: usize, tune: impl Fn(&mut MembershipConfig)) {
        let mut config = MembershipConfig::new(&name(i), addr(i), SECRET);
        config.boot = self.rng.random();
        config.rng_seed = self.rng.random();
        tune(&mut config);
        let now = self.now;
        let mut engine = Engine::new(config, now).unwrap();
        let all: Vec<SocketAddr> = (0..self.nodes.len()).map(addr).collect();
        engine.set_peers(now, &all).unwrap();
        self.nodes[i] = Node { engine, dead: false, stalled_until: None };
        self.flush(i);
    }

    fn stall(&mut self, i: usize, duration: Duration) {
        self.nodes[i].stalled_until = Some(self.now + duration);
    }

    fn cut_off(&mut self, i: usize, on: bool) {
        for j in 0..self.nodes.len() {
            if j != i {
                for link in [(i, j), (j, i)] {
                    if on {
                        self.cut.insert(link);
                    } else {
                        self.cut.remove(&link);
                    }
                }
            }
        }
    }

    fn alive_seen_by(&self, i: usize) -> Vec<String> {
        self.nodes[i].engine.alive()
    }

    fn everyone_alive(&self) -> Vec<String> {
        (0..self.nodes.len()).map(name).collect()
    }

    /// When each observer in `observers` first logged `kind` about `subject` after `since`.
    fn first(&self, kind: EventKind, subject: &str, observers: &[usize], since: Duration) -> Vec<Option<Duration>> {
        observers
            .iter()
            .map(|&o| {
                self.log
                    .iter()
                    .find(|(t, k, by, about)| *t >= since && *k == kind && *by == o && about == subject)
                    .map(|e| e.0)
            })
            .collect()
    }

    fn count(&self, kind: EventKind, since: Duration) -> usize {
        self.log.iter().filter(|(t, k, _, _)| *t >= since && *k == kind).count()
    }
}

fn others(n: usize, but: usize) -> Vec<usize> {
    (0..n).filter(|&i| i != but).collect()
}

#[test]
fn members_find_each_other_and_agree() {
    let mut sim = Sim::new(5, Timing::default(), Network::default(), 1);
    sim.run_until(Duration::from_millis(300));
    for i in 0..5 {
        assert_eq!(sim.alive_seen_by(i), sim.everyone_alive(), "view of node-{i}");
        assert!(!sim.nodes[i].engine.isolated());
        let members = sim.nodes[i].engine.members();
        assert_eq!(members.len(), 5);
        assert!(members
            .iter()
            .all(|m| m.state == MemberState::Alive && m.address == addr(m.name[5..].parse().unwrap())));
    }
    // Each member learnt every other once: n * (n - 1) "up" events, nothing else.
    assert_eq!(sim.count(EventKind::Up, Duration::ZERO), 20);
    assert_eq!(sim.log.len(), 20, "{:?}", sim.log);
}

/// Detection time of a killed member, over many seeds: every survivor declares it down, well under a second.
#[test]
fn a_killed_member_is_declared_down_by_every_survivor_within_a_second() {
    let mut worst = Duration::ZERO;
    let mut all = Vec::new();
    for seed in 0..40 {
        let n = 4;
        let mut sim = Sim::new(n, Timing::default(), Network::default(), seed);
        // Kill at a random phase of the probe cycle.
        sim.run_until(Duration::from_millis(2000 + seed * 37));
        let killed_at = sim.elapsed();
        let victim = (seed as usize) % n;
        sim.kill(victim);
        sim.run_until(killed_at + Duration::from_secs(3));
        let survivors = others(n, victim);
        let detected = sim.first(EventKind::Down, &name(victim), &survivors, killed_at);
        assert!(detected.iter().all(Option::is_some), "seed {seed}: not every survivor saw the death: {:?}", sim.log);
        let last = detected.iter().flatten().max().unwrap().saturating_sub(killed_at);
        worst = worst.max(last);
        all.push(last);
        for &s in &survivors {
            assert_eq!(sim.alive_seen_by(s).len(), n - 1);
            assert!(!sim.nodes[s].engine.isolated(), "seed {seed}: a survivor thinks it is isolated");
        }
        assert_eq!(sim.count(EventKind::Down, Duration::ZERO), n - 1, "seed {seed}: only the victim goes down");
    }
    all.sort();
    eprintln!("simulated detection (last survivor): p50 {:?} max {:?}", all[all.len() / 2], worst);
    // Probe wait + probe interval + suspect timeout, plus gossip: comfortably under a second.
    assert!(worst < Duration::from_millis(800), "worst {worst:?}, all {all:?}");
}

/// Loss and delay never make a live member go down: 5 % loss and up to 20 ms of jitter for ten minutes.
#[test]
fn no_false_positive_under_loss_and_delay() {
    let net = Network { loss: 0.05, delay: Duration::from_millis(1), jitter: Duration::from_millis(20) };
    let mut sim = Sim::new(5, Timing::default(), net, 7);
    sim.run_until(Duration::from_secs(600));
    assert_eq!(
        sim.count(EventKind::Down, Duration::ZERO),
        0,
        "{:?}",
        sim.log.iter().filter(|e| e.1 == EventKind::Down).collect::<Vec<_>>()
    );
    assert_eq!(sim.count(EventKind::Isolated, Duration::ZERO), 0);
    for node in &sim.nodes {
        assert_eq!(node.engine.stats().rejoins, 0);
        assert_eq!(node.engine.alive().len(), 5);
    }
    // The suspicion mechanism is what absorbs the loss: members were suspected and refuted.
    let refutations: u64 = sim.nodes.iter().map(|n| n.engine.stats().refutations).sum();
    let suspicions: u64 = sim.nodes.iter().map(|n| n.engine.stats().suspicions).sum();
    assert!(suspicions > 0 && refutations > 0, "suspicions {suspicions}, refutations {refutations}");
}

/// A member descheduled for less than probe interval + suspect timeout is suspected at most, never down.
/// Regression: foca 1.0 told such a member "you are down" when its suspicion timer fired after the refutation,
/// and the member rejoined (a false failover); the engine now drops that notice.
#[test]
fn a_short_stall_is_not_a_failure() {
    let mut dropped_notices = 0;
    for seed in 0..20 {
        let mut sim = Sim::new(4, Timing::default(), Network::default(), seed);
        sim.run_until(Duration::from_millis(1000 + seed * 13));
        sim.stall(1, Duration::from_millis(200));
        sim.run_until(Duration::from_secs(5));
        assert_eq!(sim.count(EventKind::Down, Duration::ZERO), 0, "seed {seed}: {:?}", sim.log);
        assert_eq!(sim.nodes[1].engine.stats().rejoins, 0);
        dropped_notices += sim.nodes.iter().map(|n| n.engine.stats().stale_down_notices).sum::<u64>();
    }
    assert!(dropped_notices > 0, "the stall should provoke at least one stale notice over 20 seeds");
}

/// A long stall is a failure; when the member runs again it learns it was declared down and rejoins.
#[test]
fn a_long_stall_is_a_failure_and_the_member_rejoins() {
    let mut sim = Sim::new(4, Timing::default(), Network::default(), 3);
    sim.run_until(Duration::from_secs(1));
    let generation = sim.nodes[2].engine.generation();
    sim.stall(2, Duration::from_secs(2));
    sim.run_until(Duration::from_secs(6));
    let down = sim.first(EventKind::Down, "node-2", &[0, 1, 3], Duration::from_secs(1));
    assert!(down.iter().all(|t| t.is_some_and(|t| t < Duration::from_secs(2))), "{down:?}");
    let up = sim.first(EventKind::Up, "node-2", &[0, 1, 3], Duration::from_secs(3));
    assert!(up.iter().all(|t| t.is_some_and(|t| t < Duration::from_millis(3500))), "{up:?} {:?}", sim.log);
    assert!(sim.nodes[2].engine.generation() > generation);
    assert_eq!(sim.nodes[2].engine.stats().rejoins, 1);
    for i in 0..4 {
        assert_eq!(sim.alive_seen_by(i), sim.everyone_alive(), "view of node-{i}");
    }
}

/// A member whose link is cut declares itself isolated within the isolation timeout (while its peers
/// declare it down); when the link comes back, the cluster merges again.
#[test]
fn a_cut_off_member_isolates_itself_and_merges_back() {
    let timing = Timing::default();
    for seed in 0..20 {
        let mut sim = Sim::new(4, timing, Network::default(), seed);
        sim.run_until(Duration::from_millis(1500 + seed * 17));
        let cut_at = sim.elapsed();
        sim.cut_off(3, true);
        sim.run_until(cut_at + Duration::from_secs(3));
        let isolated_at = sim.first(EventKind::Isolated, "node-3", &[3], cut_at)[0].expect("isolated");
        let window = isolated_at - cut_at;
        assert!(window >= timing.isolation_timeout.saturating_sub(timing.probe_interval), "seed {seed}: {window:?}");
        assert!(window <= timing.isolation_timeout + timing.probe_interval, "seed {seed}: {window:?}");
        let down = sim.first(EventKind::Down, "node-3", &[0, 1, 2], cut_at);
        assert!(down.iter().all(Option::is_some), "seed {seed}");
        for i in 0..3 {
            assert!(!sim.nodes[i].engine.isolated(), "seed {seed}: node-{i} is on the majority side");
        }
        assert!(sim.nodes[3].engine.isolated());

        let healed_at = sim.elapsed();
        sim.cut_off(3, false);
        sim.run_until(healed_at + Duration::from_secs(3));
        let back = sim.first(EventKind::Reconnected, "node-3", &[3], healed_at)[0].expect("reconnected");
        assert!(back - healed_at <= timing.announce_interval * 3, "seed {seed}: {:?}", back - healed_at);
        for i in 0..4 {
            assert_eq!(sim.alive_seen_by(i), sim.everyone_alive(), "seed {seed}: view of node-{i}: {:?}", sim.log);
            assert!(!sim.nodes[i].engine.isolated());
        }
    }
}

/// A graceful leave reaches every member within a network delay: no detection wait.
#[test]
fn a_member_that_leaves_is_down_everywhere_at_once() {
    let mut sim = Sim::new(5, Timing::default(), Network::default(), 11);
    sim.run_until(Duration::from_secs(1));
    let left_at = sim.elapsed();
    let now = sim.now;
    sim.nodes[4].engine.leave(now);
    sim.flush(4);
    sim.run_until(left_at + Duration::from_millis(5));
    let down = sim.first(EventKind::Down, "node-4", &[0, 1, 2, 3], left_at);
    assert!(down.iter().all(|t| t.is_some_and(|t| t - left_at < Duration::from_millis(2))), "{down:?}");
    assert!(!sim.nodes[4].engine.alive().contains(&name(4)));
    assert!(!sim.nodes[4].engine.isolated(), "a member that left is not isolated");
    // It keeps quiet afterwards, even when handed the peer list again, and nobody mistakes it for alive.
    let all: Vec<SocketAddr> = (0..5).map(addr).collect();
    let now = sim.now;
    sim.nodes[4].engine.set_peers(now, &all).unwrap();
    sim.flush(4);
    sim.run_until(left_at + Duration::from_secs(3));
    for i in 0..4 {
        assert_eq!(sim.alive_seen_by(i), vec![name(0), name(1), name(2), name(3)]);
    }
    // Joining again comes back with a newer generation.
    let now = sim.now;
    sim.nodes[4].engine.join(now, &[addr(0)]).unwrap();
    sim.flush(4);
    sim.run_until(left_at + Duration::from_secs(4));
    for i in 0..5 {
        assert_eq!(sim.alive_seen_by(i), sim.everyone_alive());
    }
}

/// A member with another secret is never let in; all its datagrams are counted as authentication failures.
#[test]
fn a_member_with_another_secret_never_joins() {
    let net = Network::default();
    let mut sim = Sim::with(4, net, 5, |i, config| {
        if i == 3 {
            config.secret = b"not the cluster's secret at all".to_vec();
        }
    });
    sim.run_until(Duration::from_secs(3));
    for i in 0..3 {
        assert_eq!(sim.alive_seen_by(i), vec![name(0), name(1), name(2)]);
        assert!(sim.nodes[i].engine.stats().bad_tag > 0);
    }
    assert_eq!(sim.alive_seen_by(3), vec![name(3)]);
    assert!(sim.nodes[3].engine.isolated(), "it hears nothing it can authenticate");
}

/// Replaying every datagram of a run changes nothing: each is refused and counted.
#[test]
fn replayed_datagrams_are_refused() {
    let mut sim = Sim::new(3, Timing::default(), Network::default(), 9);
    sim.record = true;
    sim.run_until(Duration::from_secs(1));
    sim.record = false;
    sim.kill(2);
    sim.run_until(Duration::from_secs(3));
    let recorded = std::mem::take(&mut sim.recorded);
    let replays_before: u64 = sim.nodes[..2].iter().map(|n| n.engine.stats().replayed).sum();
    let now = sim.now;
    for (to, bytes) in recorded.iter().filter(|(to, _)| *to < 2) {
        assert!(sim.nodes[*to].engine.receive(now, bytes).is_err());
    }
    let replays_after: u64 = sim.nodes[..2].iter().map(|n| n.engine.stats().replayed).sum();
    assert_eq!(replays_after - replays_before, recorded.iter().filter(|(to, _)| *to < 2).count() as u64);
    for i in 0..2 {
        sim.flush(i);
        assert_eq!(sim.alive_seen_by(i), vec![name(0), name(1)], "the dead member stays down");
    }
}

/// With the majority rule, the minority side of a partition isolates itself and the majority carries on.
#[test]
fn majority_quorum_isolates_the_minority_side() {
    let mut sim = Sim::with(5, Network::default(), 13, |_, config| config.quorum = Quorum::Majority);
    sim.run_until(Duration::from_secs(1));
    let split_at = sim.elapsed();
    for a in [0, 1] {
        for b in [2, 3, 4] {
            sim.cut.insert((a, b));
            sim.cut.insert((b, a));
        }
    }
    sim.run_until(split_at + Duration::from_secs(3));
    assert!(sim.nodes[0].engine.isolated() && sim.nodes[1].engine.isolated());
    for i in 2..5 {
        assert!(!sim.nodes[i].engine.isolated());
        assert_eq!(sim.alive_seen_by(i), vec![name(2), name(3), name(4)]);
    }
}

/// With the default rule the same partition isolates nobody: each side still hears a peer. The rule only
/// stops a member that hears no one.
#[test]
fn any_peer_quorum_only_isolates_a_member_that_hears_no_one() {
    let mut sim = Sim::new(5, Timing::default(), Network::default(), 13);
    sim.run_until(Duration::from_secs(1));
    for a in [0, 1] {
        for b in [2, 3, 4] {
            sim.cut.insert((a, b));
            sim.cut.insert((b, a));
        }
    }
    sim.run_until(Duration::from_secs(4));
    assert!((0..5).all(|i| !sim.nodes[i].engine.isolated()));
    assert_eq!(sim.alive_seen_by(0), vec![name(0), name(1)]);
}

/// A member with nobody to expect is never isolated; one told about peers that never answer is.
#[test]
fn isolation_needs_expected_peers() {
    let start = Instant::now();
    let mut alone = Engine::new(MembershipConfig::new("solo", addr(0), SECRET), start).unwrap();
    alone.tick(start + Duration::from_secs(10));
    assert!(!alone.isolated());
    assert_eq!(alone.alive(), vec!["solo".to_string()]);
    alone.set_peers(start + Duration::from_secs(10), &[addr(1)]).unwrap();
    assert!(!alone.isolated(), "the peers get the isolation timeout to answer");
    assert_eq!(alone.take_outgoing().len(), 1, "one announce to the new peer");
    let deadline = alone.next_deadline();
    assert!(deadline <= start + Duration::from_secs(10) + Timing::default().isolation_timeout);
    alone.tick(start + Duration::from_secs(11));
    assert!(alone.isolated());
    let kinds: Vec<EventKind> = alone.take_events().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::Isolated]);
    alone.set_peers(start + Duration::from_secs(11), &[]).unwrap();
    alone.tick(start + Duration::from_secs(12));
    assert!(!alone.isolated(), "with the dead removed from the peers, a lone survivor carries on");
}

#[test]
fn bad_peers_and_configs_are_refused() {
    let start = Instant::now();
    let mut engine = Engine::new(MembershipConfig::new("a", addr(0), SECRET), start).unwrap();
    for bad in ["0.0.0.0:7946", "192.0.2.1:0", "224.0.0.1:7946", "[fe80::1]:7946"] {
        assert!(engine.set_peers(start, &[bad.parse().unwrap()]).is_err(), "{bad}");
    }
    assert!(Engine::new(MembershipConfig::new("a", addr(0), b"short"), start).is_err());
    assert!(Engine::new(MembershipConfig::new("", addr(0), SECRET), start).is_err());
    let mut config = MembershipConfig::new("a", addr(0), SECRET);
    config.timing.probe_timeout = config.timing.probe_interval;
    assert!(Engine::new(config, start).is_err());
}

/// Wall-clock milliseconds of a generation, as the runtime starts one; two hours are 7 200 000 of them.
const WALL_MS: u64 = 1_764_900_000_000;
const TWO_HOURS_MS: u64 = 7_200_000;

/// A speaker restarted after its wall clock stepped back two hours starts at a lower generation than its
/// previous life. It must still supersede it, whether the cluster still holds the previous life alive (a quick
/// restart) or already declared it down. Regression: peers kept the older, higher generation, refused the new
/// process ("you are down", renew by one, refused again) and it was never counted alive.
#[test]
fn a_member_restarted_with_its_clock_stepped_back_supersedes_its_previous_life() {
    for (seed, downtime) in [(21, Duration::from_millis(20)), (22, Duration::from_secs(2))] {
        let mut sim = Sim::with(4, Network::default(), seed, |i, config| config.generation = WALL_MS + i as u64);
        sim.run_until(Duration::from_secs(1));
        let before = sim.nodes[3].engine.generation();
        sim.kill(3);
        sim.run_until(Duration::from_secs(1) + downtime);
        let restarted_at = sim.elapsed();
        sim.restart(3, |config| config.generation = before - TWO_HOURS_MS);
        sim.run_until(restarted_at + Duration::from_secs(5));
        let generation = sim.nodes[3].engine.generation();
        assert!(generation > before, "seed {seed}: the new life took {generation}, its previous life had {before}");
        for i in 0..4 {
            assert_eq!(sim.alive_seen_by(i), sim.everyone_alive(), "seed {seed}: view of node-{i}: {:?}", sim.log);
            assert!(!sim.nodes[i].engine.isolated(), "seed {seed}: node-{i}");
            let seen = sim.nodes[i].engine.members().into_iter().find(|m| m.name == "node-3").unwrap();
            assert_eq!((seen.state, seen.generation), (MemberState::Alive, generation), "seed {seed}: at node-{i}");
        }
        assert!(sim.nodes[3].engine.stats().generations_raised >= 1, "seed {seed}");
    }
}

/// Time only ever comes in as an `Instant`: a member's generation and view do not depend on the wall clock,
/// so stepping it while the cluster runs cannot change anything. What can differ between runs is the
/// generation a process starts with; any start value works (the previous test), so does the same one twice.
#[test]
fn a_restart_at_the_same_generation_rejoins() {
    let mut sim = Sim::with(3, Network::default(), 23, |i, config| config.generation = WALL_MS + i as u64);
    sim.run_until(Duration::from_secs(1));
    let before = sim.nodes[2].engine.generation();
    sim.kill(2);
    sim.run_until(Duration::from_secs(3));
    sim.restart(2, |config| config.generation = before);
    sim.run_until(Duration::from_secs(8));
    assert!(sim.nodes[2].engine.generation() > before);
    for i in 0..3 {
        assert_eq!(sim.alive_seen_by(i), sim.everyone_alive(), "view of node-{i}: {:?}", sim.log);
    }
}

/// A datagram recorded from a member is refused however long after it comes back: after its sender died
/// and was forgotten, after the replay state of the old code expired (twice the time down members are
/// remembered), and after the sender restarted. Regression: the replay window of a sender silent for that
/// long was swept, and the recorded datagram brought a long-dead member back as alive.
#[test]
fn a_recorded_datagram_is_refused_however_long_the_run() {
    let mut timing = Timing { forget_down_after: Duration::from_secs(5), ..Timing::default() };
    timing.announce_interval = Duration::from_secs(1);
    let mut sim = Sim::with(3, Network::default(), 31, |_, config| config.timing = timing);
    sim.record = true;
    sim.run_until(Duration::from_secs(1));
    sim.record = false;
    let recorded: Vec<Vec<u8>> =
        std::mem::take(&mut sim.recorded).into_iter().filter(|(to, _)| *to == 0).map(|(_, b)| b).collect();
    assert!(!recorded.is_empty());
    sim.kill(2);
    // Long past forgetting node-2 (5 s) and past the old sweep of silent senders (twice that, swept each minute).
    sim.run_until(Duration::from_secs(200));
    assert_eq!(sim.alive_seen_by(0), vec![name(0), name(1)]);
    assert!(sim.nodes[0].engine.members().iter().all(|m| m.name != name(2)), "node-2 is forgotten");
    let replays_before = sim.nodes[0].engine.stats().replayed + sim.nodes[0].engine.stats().stale_life;
    let now = sim.now;
    for bytes in &recorded {
        assert!(sim.nodes[0].engine.receive(now, bytes).is_err(), "a recorded datagram was accepted");
    }
    let stats = sim.nodes[0].engine.stats();
    assert_eq!(stats.replayed + stats.stale_life - replays_before, recorded.len() as u64);
    sim.flush(0);
    sim.run_until(Duration::from_secs(205));
    assert_eq!(sim.alive_seen_by(0), vec![name(0), name(1)], "{:?}", sim.log);
    assert_eq!(sim.count(EventKind::Up, Duration::from_secs(2)), 0, "a ghost came back: {:?}", sim.log);
}

/// The split brain of a Service address bound on every node's `lo` (kube-proxy IPVS): every speaker took it as
/// its gossip address, so the peer list the API gives is that address three times, and whatever a member sends
/// to it lands on itself. A member must not count itself as a peer it heard: it expects two peers it can never
/// hear, so it is isolated (and stops announcing) instead of believing it is alone and fine.
#[test]
fn members_sharing_one_address_are_isolated_not_alone() {
    let start = Instant::now();
    let shared = addr(9);
    let timing = Timing::default();
    let mut engine = Engine::new(MembershipConfig::new("node-0", shared, SECRET), start).unwrap();
    engine.set_peers(start, &[shared, shared, shared]).unwrap();
    // What it sends goes to itself (the address is local everywhere).
    let mut now = start;
    while now < start + Duration::from_secs(3) {
        for datagram in engine.take_outgoing() {
            if datagram.to == shared {
                let _ = engine.receive(now, &datagram.bytes);
            }
        }
        now = engine.next_deadline().min(now + Duration::from_millis(50));
        engine.tick(now);
    }
    assert!(engine.isolated(), "nobody else was ever heard");
    assert_eq!(engine.alive(), vec![name(0)]);
    assert_eq!(engine.stats().isolations, 1);
    assert!(start + timing.isolation_timeout <= now);
}

/// A datagram a member sent itself (its own address is local, so what it sends there comes back), and one
/// from a member with its own name at another address (its configuration copied to another node), are not a
/// peer heard: both are dropped and counted, and a member that hears nothing else is isolated.
#[test]
fn datagrams_from_itself_or_its_own_name_are_not_a_peer_heard() {
    let start = Instant::now();
    let engine = |at: usize, boot: u64| {
        let mut config = MembershipConfig::new(&name(0), addr(at), SECRET);
        config.boot = boot;
        let mut engine = Engine::new(config, start).unwrap();
        engine.set_peers(start, &[addr(0), addr(1)]).unwrap();
        engine
    };
    let (mut me, mut twin) = (engine(0, 1), engine(1, 2));
    let mut now = start;
    while now < start + Duration::from_secs(3) {
        for datagram in me.take_outgoing() {
            let _ = me.receive(now, &datagram.bytes);
            if datagram.to == addr(1) {
                let _ = twin.receive(now, &datagram.bytes);
            }
        }
        for datagram in twin.take_outgoing() {
            if datagram.to == addr(0) {
                let _ = me.receive(now, &datagram.bytes);
            }
        }
        now = me.next_deadline().min(twin.next_deadline()).min(now + Duration::from_millis(50));
        me.tick(now);
        twin.tick(now);
    }
    for engine in [&me, &twin] {
        assert!(engine.isolated(), "{engine:?} heard only itself");
        assert_eq!(engine.alive(), vec![name(0)]);
        assert_eq!(engine.members().len(), 1, "{:?}", engine.members());
        assert!(engine.stats().from_self > 0);
        assert_eq!(engine.stats().malformed, 0, "a datagram from itself is counted as such, not as malformed");
    }
}

/// The only member a restarted one can reach may never have heard its previous life directly (it knew it
/// through others, here through indirect probes only), so it has no replay state to answer from: what it
/// holds in its view (the identity it probes, or the generation it answers with) is enough.
#[test]
fn a_member_that_knew_the_previous_life_only_through_others_corrects_it_too() {
    let mut sim = Sim::with(3, Network::default(), 41, |i, config| config.generation = WALL_MS + i as u64);
    let link = |a: usize, b: usize| [(a, b), (b, a)];
    sim.cut.extend(link(1, 2));
    // The announces of the start went out before the cut: only those to node-0 arrive.
    sim.queue.retain(|Reverse(datagram)| datagram.to == 0);
    sim.run_until(Duration::from_secs(2));
    assert_eq!(sim.alive_seen_by(1), sim.everyone_alive(), "node-1 knows node-2 through node-0");
    assert_eq!(sim.nodes[1].engine.last_heard(addr(2)), None, "and never heard it directly");
    let before = sim.nodes[2].engine.generation();
    sim.kill(2);
    for l in link(1, 2) {
        sim.cut.remove(&l);
    }
    sim.cut.extend(link(0, 2));
    sim.restart(2, |config| config.generation = before - TWO_HOURS_MS);
    sim.run_until(Duration::from_secs(5));
    let generation = sim.nodes[2].engine.generation();
    assert!(generation > before, "the new life took {generation}, its previous life had {before}");
    let seen = sim.nodes[1].engine.members().into_iter().find(|m| m.name == name(2)).unwrap();
    assert_eq!((seen.state, seen.generation), (MemberState::Alive, generation), "{:?}", sim.log);
    sim.cut.clear();
    sim.run_until(Duration::from_secs(10));
    for i in 0..3 {
        assert_eq!(sim.alive_seen_by(i), sim.everyone_alive(), "view of node-{i}: {:?}", sim.log);
    }
}

// -- the watch: fast takeover beside SWIM ----------------------------------------------------------------------

const VIP: &str = "192.0.2.100";

/// Every member beats to every other (a small cluster's plan); `standby` takes `VIP` over from `owner`.
fn plan_watch(sim: &mut Sim, owner: usize, standby: usize) {
    let n = sim.nodes.len();
    let now = sim.now;
    for i in 0..n {
        let targets = (0..n).filter(|&j| j != i).map(|j| (name(j), addr(j))).collect();
        let mut takeovers = BTreeMap::new();
        if i == standby {
            let item = Takeover { address: VIP.parse().unwrap(), interfaces: vec!["eth0".into()] };
            takeovers.insert(name(owner), vec![item]);
        }
        sim.nodes[i].engine.set_watch(now, targets, takeovers, true);
        sim.flush(i);
    }
}

fn watching(seed: u64, net: Network) -> Sim {
    watching_with(seed, net, WatchTiming::default())
}

fn watching_with(seed: u64, net: Network, watch: WatchTiming) -> Sim {
    let mut sim = Sim::with(3, net, seed, |_, config| config.watch = watch);
    plan_watch(&mut sim, 0, 1);
    sim.run_until(Duration::from_secs(1));
    sim
}

#[test]
fn a_dead_owner_is_taken_over_by_its_standby_long_before_swim_declares_it_down() {
    let WatchTiming { interval, timeout } = WatchTiming::default();
    for seed in 0..20 {
        let mut sim = watching(seed, Network::default());
        let killed = sim.elapsed() + Duration::from_millis(seed * 7 % 10);
        sim.run_until(killed);
        sim.kill(0);
        sim.run_until(killed + Duration::from_secs(2));
        let held = sim.first(EventKind::Held, &name(0), &[1], killed)[0].expect("node-1 took over") - killed;
        let down = sim.first(EventKind::Down, &name(0), &[1], killed)[0].expect("SWIM declared it down") - killed;
        // Simulated time: the timeout from the owner's last heartbeat (up to one interval before the kill), plus
        // up to one interval for the witness's word, plus the network's delays.
        let (earliest, latest) = (timeout - interval, timeout + interval + Duration::from_millis(2));
        assert!(held >= earliest && held <= latest, "seed {seed}: held after {held:?}");
        assert!(held < down, "seed {seed}: held {held:?}, SWIM down {down:?}");
        assert_eq!(sim.nodes[1].engine.held(), vec![name(0)]);
        // Only the standby takes over; the witness only confirms.
        assert_eq!(sim.first(EventKind::Held, &name(0), &[2], killed)[0], None);
    }
}

#[test]
fn a_standby_cut_off_from_everyone_never_takes_over() {
    for seed in 0..10 {
        let mut sim = watching(seed, Network::default());
        let cut = sim.elapsed();
        sim.cut_off(1, true);
        sim.run_until(cut + Duration::from_secs(3));
        assert_eq!(sim.first(EventKind::Held, &name(0), &[1], cut)[0], None, "seed {seed}");
        assert!(sim.nodes[1].engine.stats().takeovers_unconfirmed > 0);
        assert!(sim.nodes[1].engine.isolated(), "SWIM isolates it instead");
        // Long before that, it knew it heard nobody (its responder is muted while the others take over).
        let unheard = sim.first(EventKind::Unheard, &name(1), &[1], cut)[0].expect("unheard");
        let isolated = sim.first(EventKind::Isolated, &name(1), &[1], cut)[0].expect("isolated");
        assert!(unheard < isolated, "seed {seed}: unheard {unheard:?}, isolated {isolated:?}");
    }
}

#[test]
fn a_standby_that_alone_lost_its_path_to_the_owner_does_not_take_over() {
    let mut sim = watching(3, Network::default());
    let cut = sim.elapsed();
    sim.cut.insert((0, 1));
    sim.cut.insert((1, 0));
    sim.run_until(cut + Duration::from_secs(3));
    assert_eq!(sim.first(EventKind::Held, &name(0), &[1], cut)[0], None);
}

/// The defaults (30 ms, a witness missing the owner for 15 ms) ride out 1% loss and 5 ms of jitter; the
/// harsher network of the SWIM test (5% loss, 20 ms of jitter) needs a longer timeout, and gets one.
#[test]
fn no_takeover_under_loss_and_jitter() {
    let cases = [
        (Network { loss: 0.01, delay: Duration::from_millis(1), jitter: Duration::from_millis(5) }, None),
        (
            Network { loss: 0.05, delay: Duration::from_millis(1), jitter: Duration::from_millis(20) },
            Some(WatchTiming { interval: Duration::from_millis(10), timeout: Duration::from_millis(80) }),
        ),
    ];
    for (net, watch) in cases {
        let mut sim = watching_with(11, net, watch.unwrap_or_default());
        sim.run_until(Duration::from_secs(120));
        assert_eq!(sim.count(EventKind::Held, Duration::ZERO), 0, "{watch:?}: {:?}", sim.log);
        assert!(sim.nodes[1].engine.stats().heartbeats_received > 20_000);
    }
}

/// Two views that differ for a moment: the owner's plan stops heartbeating the standby and the witness (say
/// it counts another node held down), theirs still expect it. Its parting heartbeats keep them from taking
/// a live owner over.
#[test]
fn an_owner_whose_plan_drops_its_standby_is_not_taken_over() {
    for seed in 0..10 {
        let mut sim = watching(seed, Network::default());
        let dropped = sim.elapsed();
        let now = sim.now;
        sim.nodes[0].engine.set_watch(now, BTreeMap::new(), BTreeMap::new(), true);
        sim.flush(0);
        sim.run_until(dropped + Duration::from_secs(2));
        assert_eq!(sim.first(EventKind::Held, &name(0), &[1], dropped)[0], None, "seed {seed}");
        assert_eq!(sim.count(EventKind::Down, dropped), 0, "seed {seed}: SWIM counts it alive");
        // Named again, it is watched again: killed, it is taken over.
        let targets = [1, 2].iter().map(|&j| (name(j), addr(j))).collect();
        let now = sim.now;
        sim.nodes[0].engine.set_watch(now, targets, BTreeMap::new(), true);
        sim.flush(0);
        sim.run_until(sim.elapsed() + Duration::from_millis(100));
        let killed = sim.elapsed();
        sim.kill(0);
        sim.run_until(killed + Duration::from_millis(500));
        assert!(sim.first(EventKind::Held, &name(0), &[1], killed)[0].is_some(), "seed {seed}");
    }
}

#[test]
fn a_stalled_owner_is_held_then_released_when_it_beats_again() {
    let mut sim = watching(5, Network::default());
    let stalled = sim.elapsed();
    sim.stall(0, Duration::from_millis(150));
    sim.run_until(stalled + Duration::from_secs(1));
    let held = sim.first(EventKind::Held, &name(0), &[1], stalled)[0].expect("held");
    let released = sim.first(EventKind::Released, &name(0), &[1], stalled)[0].expect("released");
    assert!(held < released && released >= stalled + Duration::from_millis(150));
    assert!(sim.nodes[1].engine.held().is_empty());
}

#[test]
fn a_settling_peer_is_unready_until_it_says_so() {
    let mut sim = watching(9, Network::default());
    let now = sim.now;
    let targets = [1, 2].iter().map(|&j| (name(j), addr(j))).collect();
    sim.nodes[0].engine.set_watch(now, targets, BTreeMap::new(), false);
    sim.flush(0);
    sim.run_until(sim.elapsed() + Duration::from_millis(30));
    assert_eq!(sim.nodes[1].engine.unready(sim.now), vec![name(0)]);
    assert!(sim.first(EventKind::Unready, &name(0), &[1, 2], Duration::ZERO).iter().all(Option::is_some));
}

/// The whole machine stalls (a paused VM, a loaded host): when the members run again every peer has been
/// silent for longer than the timeout, and the witness says so. The standby decides nothing until heartbeats
/// sent after the stall could have come, so the live owner keeps its address.
#[test]
fn a_stall_of_every_member_moves_nothing() {
    for seed in 0..10 {
        let mut sim = watching(seed, Network::default());
        let stalled = sim.elapsed();
        for i in 0..3 {
            sim.stall(i, Duration::from_millis(40 + seed * 20 + i as u64));
        }
        sim.run_until(stalled + Duration::from_secs(1));
        assert_eq!(sim.count(EventKind::Held, stalled), 0, "seed {seed}: {:?}", sim.log);
        assert!(sim.nodes[1].engine.stats().watch_stalls >= 1);
    }
}

/// The suspicion timeout grows with the cluster as memberlist's does (times log10 of the members past ten):
/// a stall that costs a member of a small cluster its membership is survived in a larger one, where more
/// members are starved at any moment and each false "down" costs every member an election round.
#[test]
fn a_larger_cluster_gives_a_stalled_member_longer_to_refute() {
    let timing = Timing::default();
    let stall = Duration::from_millis(STALL_MS);
    let (mut small_downs, mut large_downs) = (0, 0);
    for seed in 0..SEEDS {
        for (n, downs) in [(4, &mut small_downs), (40, &mut large_downs)] {
            let mut sim = Sim::new(n, timing, Network::default(), seed);
            sim.run_until(Duration::from_secs(2));
            let scaled = timing.suspect_timeout.mul_f64((n as f64).log10().max(1.0));
            for i in 0..n {
                assert_eq!(sim.nodes[i].engine.suspect_timeout(), scaled, "node-{i} of {n}");
            }
            let at = sim.elapsed();
            sim.stall(1, stall);
            sim.run_until(at + Duration::from_secs(5));
            *downs += usize::from(sim.count(EventKind::Down, at) > 0);
        }
    }
    assert_eq!(large_downs, 0, "a {STALL_MS} ms stall among 40 members must not be a failure");
    // Deterministic per seed; at 450 ms about nine small clusters in ten lose the member.
    assert!(small_downs * 2 > SEEDS as usize, "the same stall among 4 members is mostly one: {small_downs} of {SEEDS}");
}
const STALL_MS: u64 = 450;
const SEEDS: u64 = 6;
