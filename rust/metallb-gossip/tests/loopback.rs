//! Real sockets on loopback, no privileges: members find each other, detect a stopped one, hand over on leave,
//! refuse another secret, and stop quickly. Namespaces are covered by the Python netns tests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use metallb_gossip::{EventKind, Gossip, GossipConfig, GossipError, MemberState};

const SECRET: &[u8] = b"loopback test secret, 32 bytes!!";

fn member(name: &str, seeds: &[SocketAddr]) -> Gossip {
    let mut config = GossipConfig::new(name, "127.0.0.1:0".parse().unwrap(), SECRET);
    config.seeds = seeds.to_vec();
    Gossip::start(config).unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn three_members_detect_a_stopped_one_and_a_leaving_one() {
    let a = member("a", &[]);
    let b = member("b", &[a.address()]);
    let c = member("c", &[a.address()]);
    for m in [&a, &b, &c] {
        wait_until("everyone alive", Duration::from_secs(3), || m.alive() == names(&["a", "b", "c"]));
    }
    assert!(!a.isolated());
    let members = a.members();
    assert_eq!(members.iter().find(|m| m.name == "b").unwrap().address, b.address());

    let stopped_at = Instant::now();
    c.stop();
    assert!(stopped_at.elapsed() < Duration::from_millis(100), "stop took {:?}", stopped_at.elapsed());
    wait_until("c down at a", Duration::from_secs(3), || a.alive() == names(&["a", "b"]));
    wait_until("c down at b", Duration::from_secs(3), || b.alive() == names(&["a", "b"]));
    let down = std::iter::from_fn(|| a.next_event(Some(Duration::ZERO)))
        .find(|e| e.kind == EventKind::Down && e.name == "c")
        .expect("a down event for c");
    assert!(down.at >= stopped_at);
    assert_eq!(a.members().iter().find(|m| m.name == "c").unwrap().state, MemberState::Down);

    let left_at = Instant::now();
    b.leave().unwrap();
    wait_until("b gone at a", Duration::from_secs(1), || a.alive() == names(&["a"]));
    assert!(left_at.elapsed() < Duration::from_millis(100), "a leave is not detection: {:?}", left_at.elapsed());
    assert!(b.alive().is_empty() || !b.alive().contains(&"b".to_string()));

    let (stats, dropped) = a.stats();
    assert!(stats.datagrams_received > 0 && stats.datagrams_sent > 0);
    assert_eq!((stats.auth_failures, stats.replays, dropped), (0, 0, 0));
}

#[test]
fn another_secret_is_refused_and_counted() {
    let a = member("a", &[]);
    let mut config = GossipConfig::new("intruder", "127.0.0.1:0".parse().unwrap(), b"some other secret, 32 bytes long");
    config.seeds = vec![a.address()];
    let intruder = Gossip::start(config).unwrap();
    wait_until("a refused datagram", Duration::from_secs(3), || a.stats().0.auth_failures > 0);
    assert_eq!(a.alive(), names(&["a"]));
    assert_eq!(intruder.alive(), names(&["intruder"]));
}

#[test]
fn start_reports_bad_configurations() {
    let taken = member("a", &[]);
    let err = Gossip::start(GossipConfig::new("b", taken.local_addr(), SECRET)).err().expect("address in use");
    assert!(matches!(err, GossipError::Bind { .. }), "{err}");

    let err = Gossip::start(GossipConfig::new("b", "0.0.0.0:0".parse().unwrap(), SECRET)).err().unwrap();
    assert!(matches!(err, GossipError::Config(_)), "unspecified bind without advertise: {err}");

    let err = Gossip::start(GossipConfig::new("b", "127.0.0.1:0".parse().unwrap(), b"short")).err().unwrap();
    assert!(err.to_string().contains("at least 16"), "{err}");

    let mut config = GossipConfig::new("b", "127.0.0.1:0".parse().unwrap(), SECRET);
    config.netns = Some("../etc".into());
    let err = Gossip::start(config).err().unwrap();
    assert!(matches!(err, GossipError::Netns { .. }), "{err}");
}

#[test]
fn waiting_for_an_event_ends_when_stopped() {
    let a = std::sync::Arc::new(member("a", &[]));
    let waiter = {
        let a = std::sync::Arc::clone(&a);
        std::thread::spawn(move || a.next_event(None))
    };
    std::thread::sleep(Duration::from_millis(50));
    a.stop();
    assert!(waiter.join().unwrap().is_none());
    assert!(!a.is_running());
    assert!(matches!(a.join(vec![]), Err(GossipError::NotRunning)));
}
