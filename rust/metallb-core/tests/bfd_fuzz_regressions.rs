//! Replays the `bfd_decode` fuzz seeds and every past crasher through the fuzz target's own check, on every
//! `cargo test` and without libFuzzer.
//!
//! A crasher found by `scripts/fuzz.sh bfd_decode` is kept as
//! `rust/metallb-core/fuzz/regressions/bfd_decode/<what-went-wrong>.bin`; it fails here until the bug is fixed.

#[path = "../fuzz/fuzz_targets/bfd_invariants.rs"]
mod bfd_invariants;

use std::fs;
use std::path::Path;

fn replay(dir: &str) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(dir).join("bfd_decode");
    let Ok(entries) = fs::read_dir(&root) else { return 0 };
    let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    for path in &paths {
        let data = fs::read(path).unwrap();
        let outcome = std::panic::catch_unwind(|| bfd_invariants::bfd_decode(&data));
        assert!(outcome.is_ok(), "bfd_decode fails on {}", path.display());
    }
    paths.len()
}

#[test]
fn seeds_and_past_crashers_pass_the_bfd_fuzz_check() {
    let seeds = replay("seeds");
    assert!(seeds >= 12, "the bfd_decode seed corpus is missing: {seeds} files");
    replay("regressions");
}
