//! The receive ring against the kernel, on the loopback interface of a namespace the test makes: frames come
//! out whole or marked as cut, the host's own outgoing copies are left out, and a link going down is reported
//! once (then nothing) rather than keeping poll() ready. Skipped (with a note) without root.

use std::process::Command;
use std::time::Duration;

use metallb_l2::sys::{PacketSocket, RecvBatch, ETH_P_ALL, PACKET_OUTGOING, RING_FRAME};
use metallb_sys::Poller;
use std::os::fd::AsFd;

/// A namespace under /var/run/netns, deleted on drop.
struct Netns(String);

impl Netns {
    fn create() -> Option<Netns> {
        let name = format!("mlb-ring-{}", std::process::id());
        let made = Command::new("ip").args(["netns", "add", &name]).status().is_ok_and(|s| s.success());
        if !made {
            eprintln!("skipped: cannot create a network namespace (needs root and iproute2)");
            return None;
        }
        let ns = Netns(name);
        ns.ip(&["link", "set", "lo", "up"]);
        Some(ns)
    }

    fn ip(&self, args: &[&str]) {
        let status = Command::new("ip").arg("-n").arg(&self.0).args(args).status().expect("running ip");
        assert!(status.success(), "ip -n {} {args:?} failed", self.0);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// A frame from 02:00:00:00:00:01 to itself with the local experimental EtherType, `len` bytes long.
fn frame(len: usize, fill: u8) -> Vec<u8> {
    let mut frame = vec![fill; len];
    frame[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    frame
}

/// Waits for the socket (up to 2 s) and receives what is there.
fn receive(socket: &PacketSocket, batch: &mut RecvBatch) -> std::io::Result<usize> {
    let mut poller = Poller::new(&[socket.as_fd()]);
    poller.wait(Some(Duration::from_secs(2)))?;
    socket.recv_batch(batch)
}

#[test]
fn ring_delivers_frames_marks_cut_ones_and_reports_a_downed_link_once() {
    let Some(ns) = Netns::create() else { return };
    let name = ns.0.clone();
    // The namespace is entered by a thread of its own, which ends with it.
    let outcome = std::thread::spawn(move || {
        metallb_sys::netns::enter(&name).expect("entering the test namespace");
        let mut rx = PacketSocket::unbound().expect("packet socket");
        let index = rx.interface_index("lo").expect("lo");
        rx.ignore_outgoing().expect("PACKET_IGNORE_OUTGOING");
        rx.map_receive_ring(64).expect("receive ring");
        assert!(rx.has_receive_ring());
        rx.bind(index, ETH_P_ALL).expect("bind");
        let mut tx = PacketSocket::unbound().expect("packet socket");
        tx.bind(index, 0).expect("bind");

        let short = frame(60, 0xab);
        let long = frame(RING_FRAME + 100, 0xcd);
        tx.send(&short).expect("send");
        tx.send(&long).expect("send");
        let mut batch = RecvBatch::new(true);
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let n = receive(&rx, &mut batch).expect("receive");
            assert!(n > 0, "the frames sent on lo did not arrive");
            seen.extend(batch.frames().map(|(bytes, meta)| (bytes.to_vec(), *meta)));
        }
        assert_eq!(seen.len(), 2, "each frame once: the outgoing copy on lo is left out");
        let (bytes, meta) = &seen[0];
        assert_eq!(bytes, &short);
        assert!(!meta.truncated && meta.pkttype != PACKET_OUTGOING && meta.timestamp.is_some());
        let (bytes, meta) = &seen[1];
        assert!(meta.truncated, "a frame longer than a ring slot is reported as cut");
        assert_eq!(bytes[..], long[..bytes.len()]);
        assert_eq!(rx.recv_batch(&mut batch).expect("receive"), 0, "nothing more is queued");
        rx
    })
    .join();
    let rx = outcome.expect("the ring checks failed");

    ns.ip(&["link", "set", "lo", "down"]);
    let mut batch = RecvBatch::new(false);
    let err = receive(&rx, &mut batch).expect_err("the downed link is reported");
    assert_eq!(err.raw_os_error(), Some(libc::ENETDOWN), "{err}");
    assert_eq!(rx.recv_batch(&mut batch).expect("the error is reported once"), 0);
}
