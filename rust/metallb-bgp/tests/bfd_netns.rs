//! Two BFD threads talking over real links: each test builds network namespaces joined by veth pairs (a
//! router namespace in between for multihop), starts a `Bfd` in two of them, and watches the sessions from
//! both ends: their snapshots and the changes their callbacks report. Needs root (namespaces, links).
//!
//! Every namespace is named `mlbbfd-<test>-<pid>-<node>` and deleted when the test ends, failed or not.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use metallb_bgp::{Bfd, BfdChange, BfdPeer, BfdSettings, BfdStatus, BgpError};
use metallb_core::bfd::packet::{encode, ControlPacket, Diag, State, SINGLE_HOP_PORT};

/// Long enough for any wait on a loaded machine; only stops a hang.
const PATIENCE: Duration = Duration::from_secs(30);

const A4: &str = "198.51.100.1";
const B4: &str = "198.51.100.2";
const A6: &str = "2001:db8:100::1";
const B6: &str = "2001:db8:100::2";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Network namespaces that exist for one test; dropping it deletes them (and their links).
struct Lab {
    namespaces: Vec<String>,
}

impl Lab {
    fn new(test: &str, nodes: &[&str]) -> Lab {
        let mut lab = Lab { namespaces: Vec::new() };
        for node in nodes {
            let name = format!("mlbbfd-{test}-{}-{node}", std::process::id());
            let _ = Command::new("ip").args(["netns", "del", &name]).output(); // left over from a killed run
            run(&["ip", "netns", "add", &name]);
            lab.namespaces.push(name.clone());
            run(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        }
        lab
    }

    fn ns(&self, node: usize) -> &str {
        &self.namespaces[node]
    }

    /// A veth pair `link` between two nodes, up, with an address (prefix length included) on each end.
    fn link(&self, link: &str, (a, a_addrs): (usize, &[&str]), (b, b_addrs): (usize, &[&str])) {
        run(&[
            "ip",
            "link",
            "add",
            link,
            "netns",
            self.ns(a),
            "type",
            "veth",
            "peer",
            "name",
            link,
            "netns",
            self.ns(b),
        ]);
        for (node, addrs) in [(a, a_addrs), (b, b_addrs)] {
            for addr in addrs {
                let mut args = vec!["ip", "-n", self.ns(node), "address", "add", addr, "dev", link];
                if addr.contains(':') {
                    args.push("nodad");
                }
                run(&args);
            }
            run(&["ip", "-n", self.ns(node), "link", "set", link, "up"]);
        }
    }

    /// Two nodes on one link: 198.51.100.1-2/24 and 2001:db8:100::1-2/64.
    fn direct(test: &str) -> Lab {
        let lab = Lab::new(test, &["a", "b"]);
        lab.link(
            "bfd0",
            (0, &["198.51.100.1/24", "2001:db8:100::1/64"]),
            (1, &["198.51.100.2/24", "2001:db8:100::2/64"]),
        );
        lab
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// A `Bfd` in one namespace, with every change its callback reported and when.
struct Node {
    bfd: Bfd,
    changes: Receiver<(Instant, BfdChange)>,
}

impl Node {
    fn start(ns: &str) -> Node {
        let (tx, changes) = mpsc::channel();
        let bfd = Bfd::start(
            Some(ns),
            Box::new(move |change| {
                let _ = tx.send((Instant::now(), change));
            }),
        )
        .unwrap();
        Node { bfd, changes }
    }

    /// Waits until the session's status satisfies `done`; returns it.
    fn wait(&self, name: &str, what: &str, done: impl Fn(&BfdStatus) -> bool) -> BfdStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.bfd.session(name).filter(|s| done(s)) {
                return status;
            }
            assert!(Instant::now() < deadline, "session {name:?} never became {what}: {:?}", self.bfd.session(name));
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn wait_up(&self, name: &str) -> BfdStatus {
        self.wait(name, "Up", |s| s.state == State::Up)
    }

    /// The next reported change of session `name`, and when it happened.
    fn next_change(&self, name: &str) -> (Instant, BfdChange) {
        loop {
            let (at, change) = self.changes.recv_timeout(PATIENCE).expect("a state change");
            if change.name == name {
                return (at, change);
            }
        }
    }

    /// Every change reported so far.
    fn changes_so_far(&self) -> Vec<BfdChange> {
        self.changes.try_iter().map(|(_, c)| c).collect()
    }
}

fn single_hop(peer: &str, settings: BfdSettings) -> BfdPeer {
    BfdPeer { peer: ip(peer), local: None, multihop: false, settings }
}

fn fast() -> BfdSettings {
    BfdSettings {
        receive_interval: Duration::from_millis(50),
        transmit_interval: Duration::from_millis(50),
        ..BfdSettings::default()
    }
}

/// The transitions of a session that came up: Down to Init or Up, then Up (or straight Down to Up).
fn assert_came_up(changes: &[BfdChange], name: &str) {
    let states: Vec<State> = changes.iter().filter(|c| c.name == name).map(|c| c.to).collect();
    assert!(
        states == [State::Init, State::Up] || states == [State::Up],
        "session {name:?} went through {states:?}, never down again"
    );
}

#[test]
fn ipv4_and_ipv6_single_hop_sessions_come_up_on_both_sides() {
    let lab = Lab::direct("up");
    let (a, b) = (Node::start(lab.ns(0)), Node::start(lab.ns(1)));
    a.bfd.set_session("v4", single_hop(B4, BfdSettings::default())).unwrap();
    a.bfd.set_session("v6", single_hop(B6, BfdSettings::default())).unwrap();
    b.bfd.set_session("v4", single_hop(A4, BfdSettings::default())).unwrap();
    b.bfd.set_session("v6", single_hop(A6, BfdSettings::default())).unwrap();
    for name in ["v4", "v6"] {
        let (sa, sb) = (a.wait(name, "Up on both ends", |s| s.remote_state == State::Up), b.wait_up(name));
        assert_eq!(sa.remote_discriminator, sb.local_discriminator, "{name}");
        assert_eq!(sb.remote_discriminator, sa.local_discriminator, "{name}");
        assert!(sa.local_discriminator != 0 && sb.local_discriminator != 0);
        for s in [&sa, &sb] {
            assert_eq!((s.local_diag, s.remote_diag), (Diag::None, Diag::None), "{s:?}");
            assert!(s.control_sent > 0 && s.control_received > 0, "{s:?}");
            assert_eq!((s.up_events, s.down_events, s.dropped), (1, 0, 0), "{s:?}");
            assert_eq!((s.echo_sent, s.echo_received), (0, 0));
            assert_eq!(s.transmit_interval, Duration::from_millis(300), "both ends ask for 300 ms: {s:?}");
            assert_eq!(s.detection_time, Some(Duration::from_millis(900)), "3 x 300 ms: {s:?}");
        }
    }
    assert_eq!(a.bfd.sessions().iter().map(|s| s.peer).collect::<Vec<_>>(), [ip(B4), ip(B6)]);
    let (ca, cb) = (a.changes_so_far(), b.changes_so_far());
    for name in ["v4", "v6"] {
        assert_came_up(&ca, name);
        assert_came_up(&cb, name);
    }
}

#[test]
fn a_multihop_session_through_a_router_comes_up_and_a_single_hop_one_cannot() {
    // a (198.51.100.1) -- r -- b (203.0.113.2): b's packets reach a with TTL 254.
    let lab = Lab::new("mhop", &["a", "r", "b"]);
    lab.link("bfd0", (0, &["198.51.100.1/24"]), (1, &["198.51.100.254/24"]));
    lab.link("bfd1", (1, &["203.0.113.254/24"]), (2, &["203.0.113.2/24"]));
    run(&["ip", "netns", "exec", lab.ns(1), "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    run(&["ip", "-n", lab.ns(0), "route", "add", "203.0.113.0/24", "via", "198.51.100.254"]);
    run(&["ip", "-n", lab.ns(2), "route", "add", "198.51.100.0/24", "via", "203.0.113.254"]);
    let (a, b) = (Node::start(lab.ns(0)), Node::start(lab.ns(2)));
    let multihop = |peer: &str, local: &str| BfdPeer {
        peer: ip(peer),
        local: Some(ip(local)),
        multihop: true,
        settings: BfdSettings::default(),
    };
    a.bfd.set_session("mhop", multihop("203.0.113.2", "198.51.100.1")).unwrap();
    b.bfd.set_session("mhop", multihop("198.51.100.1", "203.0.113.2")).unwrap();
    // The same pair as single-hop: every packet arrives with TTL 254, so it is dropped and never comes up.
    a.bfd.set_session("shop", single_hop("203.0.113.2", BfdSettings::default())).unwrap();
    b.bfd.set_session("shop", single_hop("198.51.100.1", BfdSettings::default())).unwrap();
    a.wait("mhop", "Up on both ends", |s| s.state == State::Up && s.remote_state == State::Up);
    b.wait("mhop", "Up on both ends", |s| s.state == State::Up && s.remote_state == State::Up);
    for node in [&a, &b] {
        let shop = node.wait("shop", "dropping TTL 254", |s| s.dropped >= 2);
        assert_eq!((shop.state, shop.control_received, shop.remote_discriminator), (State::Down, 0, 0), "{shop:?}");
        assert_eq!(node.bfd.session("mhop").unwrap().dropped, 0);
    }
}

#[test]
fn a_cut_link_is_detected_by_the_other_side() {
    let lab = Lab::direct("cut");
    let (a, b) = (Node::start(lab.ns(0)), Node::start(lab.ns(1)));
    a.bfd.set_session("v4", single_hop(B4, fast())).unwrap();
    b.bfd.set_session("v4", single_hop(A4, fast())).unwrap();
    a.wait("v4", "Up on both ends", |s| s.state == State::Up && s.remote_state == State::Up);
    let before =
        b.wait("v4", "Up at 50 ms", |s| s.state == State::Up && s.transmit_interval == Duration::from_millis(50));
    let detection = before.detection_time.unwrap();
    assert_came_up(&b.changes_so_far(), "v4");

    let cut = Instant::now();
    run(&["ip", "-n", lab.ns(0), "link", "set", "bfd0", "down"]);
    let (at, change) = b.next_change("v4");
    let after = b.bfd.session("v4").unwrap();
    assert_eq!(
        change,
        BfdChange { name: "v4".into(), from: State::Up, to: State::Down, diag: Diag::ControlDetectionTimeExpired }
    );
    assert_eq!(change.diag.to_string(), "control detection time expired");
    assert_eq!(
        (after.local_diag, after.down_events, after.remote_discriminator),
        (Diag::ControlDetectionTimeExpired, 1, 0)
    );
    println!("link cut -> Down on the other side: {:?} (detection time {detection:?})", at - cut);
}

#[test]
fn new_timers_on_an_up_session_take_effect_without_a_flap() {
    let lab = Lab::direct("poll");
    let (a, b) = (Node::start(lab.ns(0)), Node::start(lab.ns(1)));
    // b can receive every 50 ms, so what a sends at is a's own choice.
    let b_settings = BfdSettings { receive_interval: Duration::from_millis(50), ..BfdSettings::default() };
    a.bfd.set_session("v6", single_hop(B6, BfdSettings::default())).unwrap();
    b.bfd.set_session("v6", single_hop(A6, b_settings)).unwrap();
    a.wait("v6", "Up on both ends", |s| s.state == State::Up && s.remote_state == State::Up);
    let up = b.wait_up("v6");
    assert_eq!(a.bfd.session("v6").unwrap().transmit_interval, Duration::from_millis(300));

    let faster = BfdSettings {
        transmit_interval: Duration::from_millis(100),
        receive_interval: Duration::from_millis(100),
        ..BfdSettings::default()
    };
    a.bfd.set_session("v6", single_hop(B6, faster)).unwrap();
    let sa = a.wait("v6", "sending every 100 ms", |s| s.transmit_interval == Duration::from_millis(100));
    // b learns a's new receive interval from the poll sequence too: 3 x max(b's 50 ms, a's 100 ms).
    let sb = b.wait("v6", "detecting in 3 x 100 ms", |s| s.detection_time == Some(Duration::from_millis(300)));
    for s in [&sa, &sb] {
        assert_eq!((s.state, s.up_events, s.down_events), (State::Up, 1, 0), "{s:?}");
    }
    assert_eq!(sb.local_discriminator, up.local_discriminator, "the same session, not a new one");
    let (ca, cb) = (a.changes_so_far(), b.changes_so_far());
    assert_came_up(&ca, "v6");
    assert_came_up(&cb, "v6");
}

#[test]
fn a_passive_end_comes_up_when_the_other_starts() {
    let lab = Lab::direct("passive");
    let (a, b) = (Node::start(lab.ns(0)), Node::start(lab.ns(1)));
    b.bfd.set_session("v4", single_hop(A4, BfdSettings { passive: true, ..BfdSettings::default() })).unwrap();
    a.bfd.set_session("v4", single_hop(B4, BfdSettings::default())).unwrap();
    a.wait("v4", "Up on both ends", |s| s.state == State::Up && s.remote_state == State::Up);
    let sb = b.wait_up("v4");
    assert!(sb.control_sent > 0, "the passive end answers once it heard from the peer: {sb:?}");
}

#[test]
fn a_removed_session_tells_the_peer_admin_down() {
    let lab = Lab::direct("remove");
    let (a, b) = (Node::start(lab.ns(0)), Node::start(lab.ns(1)));
    a.bfd.set_session("v4", single_hop(B4, BfdSettings::default())).unwrap();
    b.bfd.set_session("v4", single_hop(A4, BfdSettings::default())).unwrap();
    a.wait("v4", "Up on both ends", |s| s.state == State::Up && s.remote_state == State::Up);
    b.wait_up("v4");
    let _ = (a.changes_so_far(), b.changes_so_far());

    assert!(a.bfd.remove_session("v4").unwrap());
    assert_eq!(a.bfd.session("v4"), None);
    assert!(!a.bfd.remove_session("v4").unwrap(), "already gone");
    let down = BfdChange { name: "v4".into(), from: State::Up, to: State::AdminDown, diag: Diag::AdministrativelyDown };
    assert_eq!(a.next_change("v4").1, down, "reported before remove_session returned");
    let (_, change) = b.next_change("v4");
    let want =
        BfdChange { name: "v4".into(), from: State::Up, to: State::Down, diag: Diag::NeighborSignaledSessionDown };
    assert_eq!(change, want);
    let sb = b.bfd.session("v4").unwrap();
    assert_eq!((sb.remote_state, sb.remote_diag), (State::AdminDown, Diag::AdministrativelyDown), "{sb:?}");

    // The receive port stays open while the removed session says goodbye (a session added again at once
    // reuses it), and is closed once it is done (3 packets, or 5 s at most).
    let port: SocketAddr = "0.0.0.0:3784".parse().unwrap();
    let held = bind_in(lab.ns(0), port).expect_err("held while AdminDown is still being sent");
    assert_eq!(held.kind(), std::io::ErrorKind::AddrInUse, "{held}");
    let deadline = Instant::now() + PATIENCE;
    while let Err(err) = bind_in(lab.ns(0), port) {
        assert!(Instant::now() < deadline, "port 3784 never freed: {err}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_session_removed_and_added_again_comes_up_once() {
    let lab = Lab::direct("readd");
    let (a, b) = (Node::start(lab.ns(0)), Node::start(lab.ns(1)));
    a.bfd.set_session("v4", single_hop(B4, BfdSettings::default())).unwrap();
    b.bfd.set_session("v4", single_hop(A4, BfdSettings::default())).unwrap();
    a.wait("v4", "Up on both ends", |s| s.state == State::Up && s.remote_state == State::Up);
    b.wait_up("v4");
    let _ = b.changes_so_far();

    a.bfd.remove_session("v4").unwrap();
    a.bfd.set_session("v4", single_hop(B4, BfdSettings::default())).unwrap();
    let up = b.wait("v4", "Up again", |s| s.up_events == 2);
    // The removed session's AdminDown packets (one a second) would take b down again: wait out three of
    // them, counted in a's packets (300 ms apart once Up).
    b.wait("v4", "hearing from a for 3 s", |s| s.control_received >= up.control_received + 10);
    let states: Vec<(State, Diag)> = b.changes_so_far().iter().map(|c| (c.to, c.diag)).collect();
    let down = (State::Down, Diag::NeighborSignaledSessionDown);
    assert!(
        states == [down, (State::Init, Diag::NeighborSignaledSessionDown), (State::Up, Diag::None)]
            || states == [down, (State::Up, Diag::None)],
        "one AdminDown, then up for good: {states:?}"
    );
}

#[test]
fn stop_tells_every_peer_admin_down() {
    let lab = Lab::direct("stop");
    let (a, b) = (Node::start(lab.ns(0)), Node::start(lab.ns(1)));
    for (name, peer_of_a, peer_of_b) in [("v4", B4, A4), ("v6", B6, A6)] {
        a.bfd.set_session(name, single_hop(peer_of_a, BfdSettings::default())).unwrap();
        b.bfd.set_session(name, single_hop(peer_of_b, BfdSettings::default())).unwrap();
    }
    for name in ["v4", "v6"] {
        a.wait(name, "Up on both ends", |s| s.state == State::Up && s.remote_state == State::Up);
        b.wait_up(name);
    }
    let _ = b.changes_so_far();
    a.bfd.stop();
    assert!(!a.bfd.is_running());
    assert_eq!(a.bfd.sessions(), []);
    assert!(matches!(a.bfd.set_session("v4", single_hop(B4, BfdSettings::default())), Err(BgpError::NotRunning)));
    a.bfd.stop(); // idempotent
    for name in ["v4", "v6"] {
        let want =
            BfdChange { name: name.into(), from: State::Up, to: State::Down, diag: Diag::NeighborSignaledSessionDown };
        assert_eq!(b.next_change(name).1, want);
    }
}

/// A UDP socket created in namespace `ns` (a socket stays in the namespace it was made in).
fn socket_in(ns: &str, local: SocketAddr) -> UdpSocket {
    bind_in(ns, local).unwrap()
}

fn bind_in(ns: &str, local: SocketAddr) -> std::io::Result<UdpSocket> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        metallb_sys::netns::enter(&ns).unwrap();
        UdpSocket::bind(local)
    })
    .join()
    .unwrap()
}

#[test]
fn a_single_hop_packet_with_ttl_254_is_dropped_and_counted() {
    let lab = Lab::direct("ttl");
    let b = Node::start(lab.ns(1));
    b.bfd.set_session("v4", single_hop(A4, BfdSettings::default())).unwrap();
    let discriminator = b.bfd.session("v4").unwrap().local_discriminator;
    // What a's BFD would send, from a's address to b's single-hop port.
    let packet = encode(&ControlPacket {
        // Slow, so that b does not declare it gone (3 x 10 s) before the test has looked.
        desired_min_tx: 10_000_000,
        required_min_rx: 300_000,
        ..ControlPacket::new(State::Down, 0x1234_5678, discriminator)
    });
    let socket = socket_in(lab.ns(0), SocketAddr::new(ip(A4), 0));
    let to = SocketAddr::new(ip(B4), SINGLE_HOP_PORT);

    socket.set_ttl(254).unwrap();
    socket.send_to(&packet, to).unwrap();
    let s = b.wait("v4", "counting a dropped packet", |s| s.dropped == 1);
    assert_eq!((s.control_received, s.remote_discriminator, s.state), (0, 0, State::Down), "{s:?}");

    // The same packet with TTL 255 counts: the drop was the TTL's doing.
    socket.set_ttl(255).unwrap();
    socket.send_to(&packet, to).unwrap();
    let s = b.wait("v4", "taking the packet", |s| s.control_received == 1);
    assert_eq!((s.dropped, s.remote_discriminator, s.state), (1, 0x1234_5678, State::Init), "{s:?}");
}

#[test]
fn errors_name_the_session_and_what_to_do() {
    let lab = Lab::direct("errors");
    let b = Node::start(lab.ns(1));
    let local = BfdPeer { local: Some(ip("198.51.100.99")), ..single_hop(A4, BfdSettings::default()) };
    let err = b.bfd.set_session("r1", local).unwrap_err().to_string();
    assert!(
        err.starts_with("BFD session \"r1\" with 198.51.100.1: cannot send from 198.51.100.99: it is not an address"),
        "{err}"
    );
    assert_eq!(b.bfd.sessions(), [], "nothing was added");

    // Another BFD daemon holds the single-hop IPv4 port in b's namespace.
    let _bfdd = socket_in(lab.ns(1), "0.0.0.0:3784".parse().unwrap());
    let err = b.bfd.set_session("r4", single_hop(A4, BfdSettings::default())).unwrap_err().to_string();
    assert!(err.contains("cannot receive on the single-hop IPv4 BFD port 3784; another BFD daemon"), "{err}");
    b.bfd.set_session("r6", single_hop(A6, BfdSettings::default())).unwrap();
    assert_eq!(b.bfd.sessions().len(), 1, "IPv6 is not affected");

    let before = b.bfd.session("r6").unwrap();
    let bad = BfdSettings { detect_multiplier: 1, ..BfdSettings::default() };
    let err = b.bfd.set_session("r6", single_hop(A6, bad)).unwrap_err();
    assert!(matches!(err, BgpError::InvalidPeer { .. }), "{err:?}");
    let after = b.bfd.session("r6").unwrap();
    assert_eq!(after.local_discriminator, before.local_discriminator, "the session is as it was");

    let missing = Bfd::start(Some("mlbbfd-no-such-namespace"), Box::new(|_| {})).err().expect("no namespace");
    assert!(matches!(missing, BgpError::Netns { .. }), "{missing}");
}
