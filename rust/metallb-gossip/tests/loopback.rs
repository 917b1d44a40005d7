//! Real sockets on loopback, no privileges: members find each other, detect a stopped one, hand over on leave,
//! refuse another secret, and stop quickly. Namespaces are covered by the Python netns tests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

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
    assert_eq!((stats.bad_tag, stats.replayed, dropped), (0, 0, 0));
}

#[test]
fn another_secret_is_refused_and_counted() {
    let a = member("a", &[]);
    let mut config = GossipConfig::new("intruder", "127.0.0.1:0".parse().unwrap(), b"some other secret, 32 bytes long");
    config.seeds = vec![a.address()];
    let intruder = Gossip::start(config).unwrap();
    wait_until("a refused datagram", Duration::from_secs(3), || a.stats().0.bad_tag > 0);
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

/// Two hours back: what a restarted speaker reads when its node's clock stepped back before it started.
fn two_hours_ago() -> SystemTime {
    SystemTime::now() - Duration::from_secs(2 * 3600)
}

/// Regression: the generation came from the wall clock alone, so a member restarted after its clock stepped
/// back was older than its previous life, which the cluster still held; it was refused and never counted alive.
#[test]
fn a_restart_with_the_clock_stepped_back_supersedes_the_previous_life() {
    let a = member("a", &[]);
    let b = member("b", &[a.address()]);
    wait_until("b alive at a", Duration::from_secs(3), || a.alive() == names(&["a", "b"]));
    let (address, before) = (b.address(), b.generation());
    b.stop();
    let mut config = GossipConfig::new("b", address, SECRET);
    config.seeds = vec![a.address()];
    config.wall_clock = two_hours_ago;
    let b = Gossip::start(config).unwrap();
    let seen_at_a = || a.members().into_iter().find(|m| m.name == "b").map(|m| (m.state, m.generation));
    // Each side publishes its view after sending: wait until both agree.
    wait_until("the new life alive at a, and a at b", Duration::from_secs(10), || {
        b.generation() > before
            && seen_at_a() == Some((MemberState::Alive, b.generation()))
            && b.alive() == names(&["a", "b"])
    });
    assert!(b.stats().0.generations_raised >= 1, "it started older, as its clock said, and took a newer one");
    assert!(a.stats().0.stale_life >= 1, "a answered the older life");
}

static STEP_BACK: AtomicBool = AtomicBool::new(false);

fn steppable() -> SystemTime {
    let now = SystemTime::now();
    if STEP_BACK.load(Ordering::SeqCst) {
        now - Duration::from_secs(2 * 3600)
    } else {
        now
    }
}

/// The wall clock is read once, at start: a step while running changes no generation and no view.
#[test]
fn a_clock_step_while_running_changes_nothing() {
    let a = member("a", &[]);
    let mut config = GossipConfig::new("c", "127.0.0.1:0".parse().unwrap(), SECRET);
    config.seeds = vec![a.address()];
    config.wall_clock = steppable;
    let c = Gossip::start(config).unwrap();
    wait_until("c alive at a", Duration::from_secs(3), || a.alive() == names(&["a", "c"]));
    let before = (c.generation(), a.members());
    STEP_BACK.store(true, Ordering::SeqCst);
    let received = c.stats().0.datagrams_received;
    wait_until("more gossip", Duration::from_secs(10), || c.stats().0.datagrams_received > received + 50);
    assert_eq!((c.generation(), a.members()), before);
    assert_eq!((c.stats().0.rejoins, c.stats().0.generations_raised), (0, 0));
    STEP_BACK.store(false, Ordering::SeqCst);
}
