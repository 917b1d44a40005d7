//! `l2-bench`: the client side of the layer 2 benchmarks, run inside the client namespace.
//!
//! `latency`: sends one ARP request at a time, alternating between target addresses (one answered by the
//! responder, one by the kernel), and measures request-to-reply time on the client's interface from kernel
//! timestamps (SO_TIMESTAMPNS) of the outgoing request and the incoming reply, both seen by one capture socket.
//! `flood`: sends ARP requests for one target at a fixed rate and counts the replies. Each prints one JSON
//! object per target on stdout. benches/l2_bench.py builds the namespaces and runs both.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use metallb_core::packet::{ArpOp, ArpPacket, EtherType, EthernetFrame, FrameBuf, MacAddr};
use metallb_l2::filter::Instruction;
use metallb_l2::sys::{PacketSocket, RecvBatch, ETH_P_ALL, PACKET_OUTGOING};
use metallb_sys::Poller;

/// ARP frames only (both directions): `ldh [12]; jeq #0x806, accept, drop`.
const ARP_ONLY: [Instruction; 4] = [
    Instruction { code: 0x28, jt: 0, jf: 0, k: 12 },
    Instruction { code: 0x15, jt: 0, jf: 1, k: 0x0806 },
    Instruction { code: 0x06, jt: 0, jf: 0, k: 0xffff },
    Instruction { code: 0x06, jt: 0, jf: 0, k: 0 },
];

struct Args(HashMap<String, String>);

impl Args {
    fn parse(rest: &[String]) -> Result<Self, String> {
        let mut map = HashMap::new();
        let mut it = rest.iter();
        while let Some(key) = it.next() {
            let key = key.strip_prefix("--").ok_or_else(|| format!("unexpected argument {key:?}"))?;
            let value = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            map.insert(key.to_string(), value.clone());
        }
        Ok(Args(map))
    }

    fn get<T: std::str::FromStr>(&self, key: &str, default: Option<T>) -> Result<T, String> {
        match self.0.get(key) {
            Some(v) => v.parse().map_err(|_| format!("--{key}: cannot parse {v:?}")),
            None => default.ok_or_else(|| format!("--{key} is required")),
        }
    }
}

struct Client {
    tx: PacketSocket,
    mac: MacAddr,
    source: Ipv4Addr,
}

fn open_client(iface: &str, source: Ipv4Addr) -> Result<Client, String> {
    let mut tx = PacketSocket::unbound().map_err(|e| format!("packet socket: {e}"))?;
    let index = tx.interface_index(iface).map_err(|e| format!("{iface}: {e}"))?;
    let mac = MacAddr(tx.hardware_address(iface).map_err(|e| format!("{iface}: {e}"))?.mac);
    // Protocol 0: this socket only sends.
    tx.bind(index, 0).map_err(|e| format!("bind: {e}"))?;
    let _ = tx.set_send_buffer(8 << 20);
    Ok(Client { tx, mac, source })
}

fn capture(iface: &str, timestamps: bool) -> Result<PacketSocket, String> {
    let mut socket = PacketSocket::unbound().map_err(|e| format!("packet socket: {e}"))?;
    let index = socket.interface_index(iface).map_err(|e| format!("{iface}: {e}"))?;
    socket.attach_filter(&ARP_ONLY).map_err(|e| format!("filter: {e}"))?;
    if timestamps {
        socket.enable_timestamps().map_err(|e| format!("SO_TIMESTAMPNS: {e}"))?;
    }
    let _ = socket.set_receive_buffer(32 << 20);
    socket.bind(index, ETH_P_ALL).map_err(|e| format!("bind: {e}"))?;
    Ok(socket)
}

fn request(client: &Client, target: Ipv4Addr) -> FrameBuf {
    ArpPacket::request(client.mac, client.source, target).expect("client MAC is unicast").to_frame(
        MacAddr::BROADCAST,
        client.mac,
        None,
    )
}

fn arp_of(frame: &[u8]) -> Option<(MacAddr, ArpPacket)> {
    let eth = EthernetFrame::parse(frame).ok()?;
    if eth.header.ethertype != EtherType::ARP {
        return None;
    }
    Some((eth.header.dst, ArpPacket::parse(eth.payload).ok()?))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn latency(args: &Args) -> Result<(), String> {
    let iface: String = args.get("iface", None)?;
    let source: Ipv4Addr = args.get("source", None)?;
    let targets: Vec<Ipv4Addr> = args
        .get::<String>("targets", None)?
        .split(',')
        .map(|t| t.parse().map_err(|_| format!("bad target {t:?}")))
        .collect::<Result<_, _>>()?;
    let samples: usize = args.get("samples", Some(2000))?;
    let gap = Duration::from_micros(args.get("gap-us", Some(500))?);
    let warmup: usize = args.get("warmup", Some(50))?;
    let client = open_client(&iface, source)?;
    let cap = capture(&iface, true)?;
    let mut poller = Poller::new(&[cap.as_fd()]);
    let mut batch = RecvBatch::new(true);
    let mut results: Vec<Vec<u64>> = vec![Vec::with_capacity(samples); targets.len()];
    let mut lost = vec![0usize; targets.len()];
    for round in 0..(samples + warmup) {
        for (i, &target) in targets.iter().enumerate() {
            // Anything left from a lost round would be mistaken for this one.
            while cap.recv_batch(&mut batch).map_err(|e| e.to_string())? > 0 {}
            client.tx.send(&request(&client, target)).map_err(|e| format!("send: {e}"))?;
            let deadline = Instant::now() + Duration::from_millis(100);
            let (mut sent_at, mut answered_at) = (None, None);
            while answered_at.is_none() && Instant::now() < deadline {
                poller.wait(Some(deadline.saturating_duration_since(Instant::now()))).map_err(|e| e.to_string())?;
                cap.recv_batch(&mut batch).map_err(|e| e.to_string())?;
                for (frame, meta) in batch.frames() {
                    let Some((dst, arp)) = arp_of(frame) else { continue };
                    if meta.pkttype == PACKET_OUTGOING && arp.op == ArpOp::Request && arp.target_ip == target {
                        sent_at = meta.timestamp;
                    } else if arp.op == ArpOp::Reply && arp.sender_ip == target && dst == client.mac {
                        answered_at = meta.timestamp;
                    }
                }
            }
            if round >= warmup {
                match (sent_at, answered_at) {
                    (Some(s), Some(a)) if a >= s => results[i].push((a - s).as_nanos() as u64),
                    _ => lost[i] += 1,
                }
            }
            thread::sleep(gap);
        }
    }
    for (i, target) in targets.iter().enumerate() {
        let mut sorted = results[i].clone();
        sorted.sort_unstable();
        let mean = if sorted.is_empty() { 0 } else { sorted.iter().sum::<u64>() / sorted.len() as u64 };
        // Every sample, for the latency plot's distribution (benches/_plots.py).
        let list = sorted.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        println!(
            "{{\"mode\":\"latency\",\"target\":\"{target}\",\"samples\":{},\"lost\":{},\"p50_ns\":{},\"p90_ns\":{},\
             \"p99_ns\":{},\"mean_ns\":{mean},\"samples_ns\":[{list}]}}",
            sorted.len(),
            lost[i],
            percentile(&sorted, 50.0),
            percentile(&sorted, 90.0),
            percentile(&sorted, 99.0),
        );
    }
    Ok(())
}

fn flood(args: &Args) -> Result<(), String> {
    let iface: String = args.get("iface", None)?;
    let source: Ipv4Addr = args.get("source", None)?;
    let target: Ipv4Addr = args.get("target", None)?;
    let rate: u64 = args.get("rate", Some(100_000))?;
    let seconds: f64 = args.get("seconds", Some(5.0))?;
    let client = open_client(&iface, source)?;
    let cap = capture(&iface, false)?;
    let answered = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let counter = {
        let (answered, done, mac) = (Arc::clone(&answered), Arc::clone(&done), client.mac);
        thread::spawn(move || {
            let mut poller = Poller::new(&[cap.as_fd()]);
            let mut batch = RecvBatch::new(false);
            while !done.load(Ordering::Relaxed) {
                let _ = poller.wait(Some(Duration::from_millis(10)));
                while let Ok(n) = cap.recv_batch(&mut batch) {
                    if n == 0 {
                        break;
                    }
                    let hits = batch
                        .frames()
                        .filter_map(|(frame, _)| arp_of(frame))
                        .filter(|(dst, arp)| arp.op == ArpOp::Reply && arp.sender_ip == target && *dst == mac)
                        .count();
                    answered.fetch_add(hits as u64, Ordering::Relaxed);
                }
            }
            cap.take_drops().unwrap_or(0)
        })
    };
    let frame = request(&client, target);
    let frames = [frame; 64];
    let total = (rate as f64 * seconds) as u64;
    let started = Instant::now();
    let (mut sent, mut send_failures) = (0u64, 0u64);
    // Pace in 1 ms slices: by each slice's end, `rate * elapsed` requests have gone out.
    while sent < total {
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while sent < due {
            let n = ((due - sent) as usize).min(frames.len());
            match client.tx.send_some(&frames[..n]) {
                Ok(k) if k > 0 => sent += k as u64,
                _ => {
                    send_failures += 1;
                    thread::yield_now();
                }
            }
        }
        let next = started + Duration::from_secs_f64((sent + 1) as f64 / rate as f64);
        let now = Instant::now();
        if next > now {
            thread::sleep((next - now).min(Duration::from_millis(1)));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    let capture_drops = counter.join().map_err(|_| "counter thread panicked".to_string())?;
    let answered = answered.load(Ordering::Relaxed);
    let loss = if sent == 0 { 0.0 } else { 1.0 - answered as f64 / sent as f64 };
    println!(
        "{{\"mode\":\"flood\",\"target\":\"{target}\",\"sent\":{sent},\"answered\":{answered},\"loss\":{loss:.6},\
         \"seconds\":{elapsed:.3},\"sent_per_s\":{:.0},\"answered_per_s\":{:.0},\"send_retries\":{send_failures},\
         \"capture_drops\":{capture_drops}}}",
        sent as f64 / elapsed,
        answered as f64 / elapsed,
    );
    Ok(())
}

/// `wake`: what waking a thread that sleeps in poll() costs on this machine, with nothing else in the way. A
/// waker thread writes an eventfd every `gap-us` and a sleeper thread blocked in poll() on it notes when it runs
/// again; one run with both on one CPU (the sleeper runs once the waker sleeps, no inter-processor interrupt)
/// and one with each on its own CPU (the sleeper's CPU is idle: an interrupt wakes it, and in a virtual machine
/// the hypervisor has to run the halted vCPU again). The responder's sleeping mode pays this on every request
/// that finds it asleep; the kernel answers ARP in the receiving CPU's softirq and never pays it.
fn wake(args: &Args) -> Result<(), String> {
    let samples: usize = args.get("samples", Some(2000))?;
    let gap = Duration::from_micros(args.get("gap-us", Some(500))?);
    let cpus: Vec<usize> = (0..cpu_count()).collect();
    let mut pairs = vec![("same_cpu", cpus[0], cpus[0])];
    if cpus.len() > 1 {
        pairs.push(("other_cpu", cpus[0], cpus[1]));
    }
    for (name, waker_cpu, sleeper_cpu) in pairs {
        let mut sorted = wake_once(samples, gap, waker_cpu, sleeper_cpu)?;
        sorted.sort_unstable();
        println!(
            "{{\"mode\":\"wake\",\"placement\":\"{name}\",\"samples\":{},\"p50_ns\":{},\"p90_ns\":{},\"p99_ns\":{}}}",
            sorted.len(),
            percentile(&sorted, 50.0),
            percentile(&sorted, 90.0),
            percentile(&sorted, 99.0),
        );
    }
    Ok(())
}

fn cpu_count() -> usize {
    thread::available_parallelism().map_or(1, usize::from)
}

fn wake_once(samples: usize, gap: Duration, waker_cpu: usize, sleeper_cpu: usize) -> Result<Vec<u64>, String> {
    let event = Arc::new(metallb_sys::EventFd::new().map_err(|e| format!("eventfd: {e}"))?);
    let base = Instant::now();
    let woken = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sleeper = {
        let (event, woken, done) = (Arc::clone(&event), Arc::clone(&woken), Arc::clone(&done));
        thread::spawn(move || {
            let _ = metallb_sys::pin_current_thread(sleeper_cpu);
            let mut poller = Poller::new(&[event.as_fd()]);
            while !done.load(Ordering::SeqCst) {
                let _ = poller.wait(Some(Duration::from_millis(100)));
                let at = base.elapsed().as_nanos() as u64;
                if poller.is_ready(0) {
                    event.drain();
                    woken.store(at, Ordering::SeqCst);
                }
            }
        })
    };
    metallb_sys::pin_current_thread(waker_cpu).map_err(|e| format!("pinning to CPU {waker_cpu}: {e}"))?;
    let mut out = Vec::with_capacity(samples);
    for round in 0..samples + 50 {
        thread::sleep(gap);
        woken.store(0, Ordering::SeqCst);
        let sent = base.elapsed().as_nanos() as u64;
        event.notify();
        // Sleep rather than spin until the sleeper ran: a spinning waker would keep its CPU from idling.
        let mut woke = 0;
        for _ in 0..1000 {
            woke = woken.load(Ordering::SeqCst);
            if woke != 0 {
                break;
            }
            thread::sleep(Duration::from_micros(50));
        }
        if round >= 50 && woke > sent {
            out.push(woke - sent);
        }
    }
    done.store(true, Ordering::SeqCst);
    event.notify();
    sleeper.join().map_err(|_| "sleeper thread panicked".to_string())?;
    Ok(out)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let result = match argv.get(1).map(String::as_str) {
        Some("latency") => Args::parse(&argv[2..]).and_then(|a| latency(&a)),
        Some("flood") => Args::parse(&argv[2..]).and_then(|a| flood(&a)),
        Some("wake") => Args::parse(&argv[2..]).and_then(|a| wake(&a)),
        _ => Err("usage: l2-bench latency|flood --iface IF --source IP (--targets A,B | --target A --rate N)".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("l2-bench: {err}");
            ExitCode::FAILURE
        }
    }
}
