//! Replays the fuzz seeds and every past fuzz crasher through the fuzz targets' own checks, on every
//! `cargo test` and without libFuzzer.
//!
//! A crasher found by `scripts/fuzz.sh` is kept as `rust/metallb-core/fuzz/regressions/<target>/<name>.bin`,
//! the name saying what was wrong (e.g. `ndp_option_length_zero_loops.bin`); it fails here until the bug is
//! fixed and guards against its return after.

#[path = "../fuzz/invariants.rs"]
mod invariants;

use std::fs;
use std::path::Path;

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 3] = [
    ("arp_roundtrip", invariants::arp_roundtrip),
    ("ndp_roundtrip", invariants::ndp_roundtrip),
    ("ethernet_parse", invariants::ethernet_parse),
];

fn replay(dir: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(dir);
    let mut count = 0;
    for (target, check) in TARGETS {
        let Ok(entries) = fs::read_dir(root.join(target)) else { continue };
        let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let data = fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{target} fails on {}", path.display());
            count += 1;
        }
    }
    count
}

#[test]
fn seeds_and_past_crashers_pass_the_fuzz_checks() {
    let seeds = replay("seeds");
    assert!(seeds >= 20, "the seed corpus is missing: {seeds} files");
    replay("regressions");
}
