//! `bgp-codec-bench`: UPDATEs encoded and decoded per second by metallb-core's BGP codec, for the UPDATEs a
//! MetalLB speaker sends (one service IP with its communities, IPv4 and IPv6) and for full 4 KB UPDATEs of /32s.
//!
//! The floor beside each figure is a copy of the same wire bytes into a reused buffer (`extend_from_slice`): the
//! least any codec must do to read or write them. `decode / copy` says how many copies' worth of time a decode
//! costs. Each figure is the median of `--rounds` timed rounds of about `--seconds` each; rounds of the three
//! operations are interleaved so that drift in the machine's load hits them alike. Prints one JSON object per
//! workload on stdout; benches/test_bench_bgp_codec.py runs it.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use metallb_core::bgp::{
    decode, encode, encoded_len, Afi, AsSegment, CodecOptions, Message, MpReach, PathAttributes, Prefix, Safi, Update,
};

const OPTS: CodecOptions = CodecOptions { four_octet_as: true };
/// Messages per batch: enough distinct UPDATEs that the branch predictor cannot learn one.
const BATCH: usize = 256;

struct Workload {
    name: &'static str,
    messages: Vec<Message>,
}

fn host_v4(i: u32) -> Prefix {
    Prefix::host(IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i))) // 198.51.100.0 + i
}

fn attributes(i: u32) -> PathAttributes {
    PathAttributes {
        as_path: vec![AsSegment::Sequence(vec![64512])],
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1 + (i % 3) as u8)),
        local_pref: Some(100),
        communities: vec![0xfc00_0001, 0xfc00_0000 | (i & 0xffff)],
        large_communities: vec![(64512, 1, i)],
        ..PathAttributes::default()
    }
}

fn workloads() -> Vec<Workload> {
    let single_v4 = (0..BATCH as u32)
        .map(|i| Message::Update(Update { withdrawn: vec![], attributes: attributes(i), nlri: vec![host_v4(i)] }))
        .collect();
    let single_v6 = (0..BATCH as u32)
        .map(|i| {
            let mut attributes = attributes(i);
            attributes.next_hop = None;
            attributes.mp_reach = Some(MpReach {
                afi: Afi::Ipv6,
                safi: Safi::Unicast,
                next_hops: vec![
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1 + (i % 3) as u16)),
                    IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)),
                ],
                nlri: vec![Prefix::host(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i as u16)))],
            });
            Message::Update(Update { withdrawn: vec![], attributes, nlri: vec![] })
        })
        .collect();
    let withdraw_v4 = (0..BATCH as u32)
        .map(|i| Message::Update(Update { withdrawn: vec![host_v4(i)], ..Update::default() }))
        .collect();
    // As many /32s as fit in 4096 octets with these attributes.
    let full_v4 = (0..16u32)
        .map(|i| {
            let mut update = Update { withdrawn: vec![], attributes: attributes(i), nlri: vec![] };
            let mut n = 0;
            while encoded_len(&Message::Update(update.clone()), &OPTS) + 5 <= 4096 {
                update.nlri.push(host_v4(i * 1000 + n));
                n += 1;
            }
            Message::Update(update)
        })
        .collect();
    vec![
        Workload { name: "one IPv4 /32 with communities", messages: single_v4 },
        Workload { name: "one IPv6 /128, MP_REACH, 2 next hops", messages: single_v6 },
        Workload { name: "IPv4 withdrawal of one /32", messages: withdraw_v4 },
        Workload { name: "full 4 KB UPDATE of IPv4 /32s", messages: full_v4 },
    ]
}

/// Runs `op` over the batch repeatedly for about `seconds` and returns messages per second.
fn rate(seconds: f64, batch_len: usize, mut op: impl FnMut()) -> f64 {
    let budget = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut batches = 0u64;
    while start.elapsed() < budget {
        for _ in 0..8 {
            op();
        }
        batches += 8;
    }
    (batches as f64 * batch_len as f64) / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn measure(w: &Workload, seconds: f64, rounds: usize) -> String {
    // The wire bytes of each message, and a check that the codec measured is the codec that works.
    let wires: Vec<Vec<u8>> = w
        .messages
        .iter()
        .map(|m| {
            let mut out = Vec::new();
            encode(m, &OPTS, &mut out).expect("benchmark messages encode");
            assert_eq!(decode(&out, &OPTS).unwrap(), Some((m.clone(), out.len())), "{}", w.name);
            out
        })
        .collect();
    let stream: Vec<u8> = wires.concat();
    let n = w.messages.len();
    let bytes = stream.len() / n;
    let prefixes = w.messages.iter().map(prefix_count).sum::<usize>() / n;

    let mut buf = Vec::with_capacity(stream.len());
    let (mut enc, mut dec, mut copy) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        enc.push(rate(seconds, n, || {
            buf.clear();
            for m in &w.messages {
                encode(black_box(m), &OPTS, &mut buf).unwrap();
            }
            black_box(&buf);
        }));
        dec.push(rate(seconds, n, || {
            // As a session reads: message after message from one stream buffer.
            let mut rest = black_box(&stream[..]);
            while let Ok(Some((msg, used))) = decode(rest, &OPTS) {
                black_box(msg);
                rest = &rest[used..];
            }
        }));
        copy.push(rate(seconds, n, || {
            buf.clear();
            for wire in &wires {
                buf.extend_from_slice(black_box(wire));
            }
            black_box(&buf);
        }));
    }
    let (enc, dec, copy) = (median(enc), median(dec), median(copy));
    format!(
        concat!(
            "{{\"workload\": \"{}\", \"bytes_per_update\": {}, \"prefixes_per_update\": {}, ",
            "\"encode_per_s\": {:.0}, \"decode_per_s\": {:.0}, \"copy_per_s\": {:.0}, ",
            "\"decode_prefixes_per_s\": {:.0}, \"decode_mb_per_s\": {:.1}, ",
            "\"encode_over_copy_time\": {:.2}, \"decode_over_copy_time\": {:.2}}}"
        ),
        w.name,
        bytes,
        prefixes,
        enc,
        dec,
        copy,
        dec * prefixes as f64,
        dec * bytes as f64 / 1e6,
        copy / enc,
        copy / dec,
    )
}

fn prefix_count(m: &Message) -> usize {
    match m {
        Message::Update(u) => {
            u.nlri.len() + u.withdrawn.len() + u.attributes.mp_reach.as_ref().map_or(0, |mp| mp.nlri.len())
        }
        _ => 0,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut seconds = 0.3;
    let mut rounds = 5;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse::<f64>().ok());
        match (flag.as_str(), value) {
            ("--seconds", Some(v)) if v > 0.0 => seconds = v,
            ("--rounds", Some(v)) if v >= 1.0 => rounds = v as usize,
            _ => {
                eprintln!("usage: bgp-codec-bench [--seconds S per round and operation] [--rounds N]");
                return ExitCode::from(2);
            }
        }
    }
    for w in workloads() {
        println!("{}", measure(&w, seconds, rounds));
    }
    ExitCode::SUCCESS
}
