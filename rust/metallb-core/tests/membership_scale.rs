//! How the membership engine's cost grows with the cluster: n engines exchanging datagrams in memory on a
//! simulated clock (no sockets, no loss), for each n in `METALLB_SIM_SIZES` (default 10,100). Prints a
//! table; asserts only that the cluster converges and that every member learns of a death. Each member's
//! every datagram costs O(n) in the engine (its view is rebuilt), so the whole cluster costs O(n²) per
//! period: 1,000 is out of reach in minutes; `one_members_cost_by_view_size` measures one member with a
//! view of up to 5,000 instead.
//!
//! Run it with `cargo test --release -p metallb-core --test membership_scale -- --ignored --nocapture`.
//!
//! Each size: members join through three seeds (as memberlist's join does: a cold start where every member
//! announces itself to every other costs n² announces, each handled in O(n)); the run goes on until every
//! member holds every other alive; then a steady window (`periods` probe intervals) is measured: CPU time of
//! this process per member per probe interval (the whole simulation runs on this thread, so the harness's
//! queue is in it too, a small part), datagrams and bytes sent per member per second, from the engines'
//! counters; then one member is killed and the time until every other member holds it down is measured
//! (simulated time). Memory: the resident set grown from before the engines existed to after convergence,
//! per engine and per (engine, member it knows) pair.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use metallb_core::membership::{Engine, EventKind, MembershipConfig, Timing};

const SECRET: &[u8] = b"a shared secret of enough bytes";
const SEEDS: usize = 3;
/// One-way delay of every datagram (a LAN).
const DELAY: Duration = Duration::from_micros(300);

/// 198.18.0.0/15 is reserved for benchmarks (RFC 2544); nothing is sent anywhere.
fn addr(i: usize) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 18, (i / 250) as u8, (i % 250 + 1) as u8)), 7946)
}

fn index(to: SocketAddr) -> Option<usize> {
    match to.ip() {
        IpAddr::V4(v4) => {
            let [_, _, hi, lo] = v4.octets();
            Some(usize::from(hi) * 250 + usize::from(lo).checked_sub(1)?)
        }
        IpAddr::V6(_) => None,
    }
}

fn name(i: usize) -> String {
    format!("node-{i:04}")
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    seq: u64,
    to: usize,
    bytes: Vec<u8>,
}

struct Cluster {
    start: Instant,
    now: Instant,
    engines: Vec<Engine>,
    dead: Vec<bool>,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    /// (deadline, member) pushed after every call into an engine; stale entries (the member's deadline moved)
    /// are skipped when popped, so a step costs O(log n) here rather than a scan of every engine.
    deadlines: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Observers that logged the watched subject down, and when (simulated time since start).
    watched: Option<String>,
    down_seen: Vec<Option<Duration>>,
}

impl Cluster {
    fn new(n: usize) -> Self {
        let start = Instant::now();
        let engines = (0..n)
            .map(|i| {
                let mut config = MembershipConfig::new(&name(i), addr(i), SECRET);
                config.generation = 1_000 + i as u64;
                config.boot = i as u64 + 1;
                config.rng_seed = 7 ^ (i as u64) << 32;
                Engine::new(config, start).unwrap()
            })
            .collect();
        let mut cluster = Cluster {
            start,
            now: start,
            engines,
            dead: vec![false; n],
            queue: BinaryHeap::new(),
            seq: 0,
            deadlines: BinaryHeap::new(),
            watched: None,
            down_seen: vec![None; n],
        };
        let seeds: Vec<SocketAddr> = (0..SEEDS.min(n)).map(addr).collect();
        for i in 0..n {
            cluster.engines[i].join(start, &seeds).unwrap();
            cluster.flush(i);
        }
        cluster
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn flush(&mut self, i: usize) {
        self.deadlines.push(Reverse((self.engines[i].next_deadline(), i)));
        for datagram in self.engines[i].take_outgoing() {
            let Some(to) = index(datagram.to).filter(|&to| to < self.engines.len()) else { continue };
            self.seq += 1;
            self.queue.push(Reverse(InFlight { at: self.now + DELAY, seq: self.seq, to, bytes: datagram.bytes }));
        }
        let events = self.engines[i].take_events();
        if let Some(subject) = &self.watched {
            for event in events {
                if event.kind == EventKind::Down && &event.name == subject && self.down_seen[i].is_none() {
                    self.down_seen[i] = Some(self.now - self.start);
                }
            }
        }
    }

    fn run_until(&mut self, until: Duration) {
        let end = self.start + until;
        loop {
            // Drop the deadlines that moved or belong to the dead.
            while let Some(Reverse((at, i))) = self.deadlines.peek().copied() {
                if self.dead[i] || self.engines[i].next_deadline() != at {
                    self.deadlines.pop();
                } else {
                    break;
                }
            }
            let mut next = end;
            if let Some(Reverse(first)) = self.queue.peek() {
                next = next.min(first.at);
            }
            if let Some(Reverse((at, _))) = self.deadlines.peek() {
                next = next.min(*at);
            }
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            while let Some(Reverse(first)) = self.queue.peek() {
                if first.at > self.now {
                    break;
                }
                let Reverse(datagram) = self.queue.pop().unwrap();
                if self.dead[datagram.to] {
                    continue;
                }
                let now = self.now;
                let _ = self.engines[datagram.to].receive(now, &datagram.bytes);
                self.flush(datagram.to);
            }
            while let Some(Reverse((at, i))) = self.deadlines.peek().copied() {
                if at > self.now {
                    break;
                }
                self.deadlines.pop();
                if !self.dead[i] && self.engines[i].next_deadline() == at {
                    let now = self.now;
                    self.engines[i].tick(now);
                    self.flush(i);
                }
            }
            if self.now >= end {
                break;
            }
        }
        self.now = end;
    }

    /// Whether every live member holds every other live member alive.
    fn converged(&self) -> bool {
        let live = self.dead.iter().filter(|d| !**d).count();
        self.engines.iter().zip(&self.dead).all(|(engine, dead)| *dead || engine.alive().len() == live)
    }

    fn totals(&self) -> (u64, u64) {
        self.engines.iter().map(Engine::stats).fold((0, 0), |(d, b), s| (d + s.datagrams_sent, b + s.bytes_sent))
    }
}

/// CPU time of this thread (user + system), from /proc: the simulation is single-threaded.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc/thread-self/stat");
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<u64> = after.split_whitespace().skip(11).take(2).map(|f| f.parse().unwrap()).collect();
    // USER_HZ is 100 on Linux for every architecture this runs on.
    Duration::from_millis((fields[0] + fields[1]) * 10)
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

struct Row {
    n: usize,
    converge: Duration,
    setup_cpu: Duration,
    periods: u32,
    cpu_per_period_us: f64,
    datagrams_per_s: f64,
    bytes_per_s: f64,
    detect_first: Duration,
    detect_all: Duration,
    bytes_per_engine: f64,
}

fn measure(n: usize) -> Row {
    let timing = Timing::default();
    let period = timing.probe_interval;
    let rss_before = rss_bytes();
    let cpu_before = cpu();
    let mut cluster = Cluster::new(n);
    // Converge: checked every half second of simulated time.
    let mut t = Duration::ZERO;
    loop {
        t += Duration::from_millis(500);
        cluster.run_until(t);
        if cluster.converged() {
            break;
        }
        assert!(t < Duration::from_secs(600), "{n} members did not converge in 600 s of simulated time");
    }
    let converge = cluster.elapsed();
    // Let the join's gossip settle before measuring the steady state.
    cluster.run_until(converge + Duration::from_secs(2));
    assert!(cluster.converged());
    let setup_cpu = cpu() - cpu_before;
    let bytes_per_engine = rss_bytes().saturating_sub(rss_before) as f64 / n as f64;

    let periods = (20_000 / n).clamp(30, 2_000) as u32;
    let window = period * periods;
    let (d0, b0) = cluster.totals();
    let cpu0 = cpu();
    let from = cluster.elapsed();
    cluster.run_until(from + window);
    let spent = cpu() - cpu0;
    let (d1, b1) = cluster.totals();
    let member_seconds = n as f64 * window.as_secs_f64();

    let victim = n - 1;
    cluster.watched = Some(name(victim));
    let killed = cluster.elapsed();
    cluster.dead[victim] = true;
    let mut t = killed;
    while cluster.down_seen.iter().enumerate().any(|(i, seen)| i != victim && seen.is_none()) {
        t += Duration::from_millis(100);
        cluster.run_until(t);
        assert!(t - killed < Duration::from_secs(60), "the death of {} was not known by all in 60 s", name(victim));
    }
    let seen: Vec<Duration> = cluster.down_seen.iter().flatten().map(|at| *at - killed).collect();
    Row {
        n,
        converge,
        setup_cpu,
        periods,
        cpu_per_period_us: spent.as_secs_f64() * 1e6 / (f64::from(periods) * n as f64),
        datagrams_per_s: (d1 - d0) as f64 / member_seconds,
        bytes_per_s: (b1 - b0) as f64 / member_seconds,
        detect_first: seen.iter().copied().min().unwrap(),
        detect_all: seen.iter().copied().max().unwrap(),
        bytes_per_engine,
    }
}

#[test]
#[ignore = "a scale measurement of minutes: run with --release --ignored --nocapture"]
fn membership_cost_by_cluster_size() {
    let sizes: Vec<usize> = std::env::var("METALLB_SIM_SIZES")
        .unwrap_or_else(|_| "10,100".into())
        .split(',')
        .map(|s| s.trim().parse().expect("METALLB_SIM_SIZES: comma-separated member counts, e.g. 10,100,1000"))
        .collect();
    assert!(sizes.iter().all(|&n| (2..=60_000).contains(&n)), "sizes from 2 to 60000 members");
    let mut rows = Vec::new();
    for &n in &sizes {
        let row = measure(n);
        eprintln!(
            "n={n}: converged after {:.1} s simulated ({:.1} s CPU), {} periods measured",
            row.converge.as_secs_f64(),
            row.setup_cpu.as_secs_f64(),
            row.periods
        );
        rows.push(row);
    }
    let reference = rows.iter().find(|r| r.n == 100).map(|r| (r.cpu_per_period_us, r.bytes_per_s, r.bytes_per_engine));
    println!();
    println!(
        "{:>6} {:>10} {:>14} {:>10} {:>12} {:>11} {:>11} {:>12} {:>12} {:>10}",
        "n",
        "join s",
        "CPU us/period",
        "dgram/s",
        "bytes/s",
        "down first",
        "down all",
        "KiB/engine",
        "B/member",
        "CPU x100"
    );
    for r in &rows {
        let ratio = reference.map_or(f64::NAN, |(cpu, _, _)| r.cpu_per_period_us / cpu);
        println!(
            "{:>6} {:>10.1} {:>14.1} {:>10.1} {:>12.0} {:>9.0}ms {:>9.0}ms {:>12.1} {:>12.0} {:>10.2}",
            r.n,
            r.converge.as_secs_f64(),
            r.cpu_per_period_us,
            r.datagrams_per_s,
            r.bytes_per_s,
            r.detect_first.as_secs_f64() * 1e3,
            r.detect_all.as_secs_f64() * 1e3,
            r.bytes_per_engine / 1024.0,
            r.bytes_per_engine / r.n as f64,
            ratio
        );
    }
    println!("(per member; CPU x100 is CPU per member per period against n=100; times simulated, CPU real)");
}

/// The cost of one member's calls when its view holds n members, for sizes too large to simulate whole:
/// member 0 learns n-1 others from their announces, then runs `periods` probe intervals alone (only it ticks;
/// the others answer what it sends, and only datagrams to or from member 0 are delivered). Returns (median µs per `receive`, median µs per `tick`, ticks and
/// datagrams received per period, members it holds alive, CPU µs per period). Per call: the median of wall
/// times (a loaded machine inflates it: a call preempted counts whole); per period: CPU time of this thread
/// over the measured periods (/proc, 10 ms ticks), which includes the others' answers, each handled with a
/// view of one or two members.
fn one_member_among(n: usize, periods: u32) -> (f64, f64, f64, f64, usize, f64) {
    let start = Instant::now();
    let mut engines: Vec<Engine> = (0..n)
        .map(|i| {
            let mut config = MembershipConfig::new(&name(i), addr(i), SECRET);
            config.generation = 1_000 + i as u64;
            config.boot = i as u64 + 1;
            config.rng_seed = 11 ^ (i as u64) << 32;
            Engine::new(config, start).unwrap()
        })
        .collect();
    let mut wire: Vec<(usize, Vec<u8>)> = Vec::new();
    for engine in engines.iter_mut().skip(1) {
        engine.join(start, &[addr(0)]).unwrap();
        wire.extend(engine.take_outgoing().into_iter().map(|d| (0, d.bytes)));
    }
    let (mut receives, mut ticks) = (Vec::new(), Vec::new());
    let mut now = start;
    let end = start + Timing::default().probe_interval * periods;
    let mut measuring = false;
    let (mut received, mut ticked) = (0u64, 0u64);
    let mut cpu_from = None;
    loop {
        // Deliver everything on the wire; what member 0 receives is timed.
        while !wire.is_empty() {
            for (to, bytes) in std::mem::take(&mut wire) {
                if to == 0 {
                    let began = Instant::now();
                    let _ = engines[0].receive(now, &bytes);
                    if measuring {
                        receives.push(began.elapsed());
                        received += 1;
                    }
                } else {
                    let _ = engines[to].receive(now, &bytes);
                }
                for datagram in engines[to].take_outgoing() {
                    // Only member 0's traffic: the others' gossip among themselves would make this a whole
                    // cluster again (no probe fails without loss, so member 0 never needs them to relay).
                    if let Some(i) = index(datagram.to).filter(|&i| i < n && (i == 0 || to == 0)) {
                        wire.push((i, datagram.bytes));
                    }
                }
                engines[to].take_events();
            }
        }
        // Measure once member 0 holds everyone (its announce replies are settled).
        if !measuring && engines[0].alive().len() == n {
            measuring = true;
            cpu_from = Some(cpu());
        }
        now = engines[0].next_deadline().max(now);
        if now >= end {
            break;
        }
        let began = Instant::now();
        engines[0].tick(now);
        if measuring {
            ticks.push(began.elapsed());
            ticked += 1;
        }
        for datagram in engines[0].take_outgoing() {
            if let Some(i) = index(datagram.to).filter(|&i| i < n) {
                wire.push((i, datagram.bytes));
            }
        }
        engines[0].take_events();
    }
    assert!(measuring, "member 0 never held all {n} members alive");
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v.get(v.len() / 2).map_or(f64::NAN, |d| d.as_secs_f64() * 1e6)
    };
    let measured_periods = f64::from(periods) * (ticked as f64 / ticks.len().max(1) as f64);
    let spent = cpu_from.map_or(f64::NAN, |from| (cpu() - from).as_secs_f64() * 1e6 / measured_periods);
    let alive = engines[0].alive().len();
    let per_period = |count: u64| count as f64 / measured_periods;
    (median(receives), median(ticks), per_period(ticked), per_period(received), alive, spent)
}

#[test]
#[ignore = "a scale measurement: run with --release --ignored --nocapture"]
fn one_members_cost_by_view_size() {
    let sizes: Vec<usize> = std::env::var("METALLB_SIM_VIEW_SIZES")
        .unwrap_or_else(|_| "10,100,1000,5000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("METALLB_SIM_VIEW_SIZES: comma-separated member counts"))
        .collect();
    assert!(sizes.iter().all(|&n| (2..=60_000).contains(&n)), "sizes from 2 to 60000 members");
    // Enough periods for the CPU clock (10 ms ticks) to resolve the small sizes.
    let rows: Vec<_> =
        sizes.iter().map(|&n| (n, one_member_among(n, (300_000 / n).clamp(300, 30_000) as u32))).collect();
    let reference = rows.iter().find(|(n, _)| *n == 100).map(|(_, r)| r.5);
    println!();
    println!(
        "{:>6} {:>13} {:>10} {:>13} {:>13} {:>15} {:>10}",
        "n", "us/receive", "us/tick", "ticks/period", "recv/period", "CPU us/period", "CPU x100"
    );
    for (n, (receive, tick, ticks, received, alive, spent)) in &rows {
        assert_eq!(*alive, *n);
        let ratio = reference.map_or(f64::NAN, |r| spent / r);
        println!("{n:>6} {receive:>13.1} {tick:>10.1} {ticks:>13.2} {received:>13.2} {spent:>15.1} {ratio:>10.2}");
    }
    println!("(one member whose view holds n members; per call: median wall time; CPU: per period, /proc)");
}
