#!/usr/bin/env bash
# Runs each fuzz target of metallb-core (packets, BGP, BFD) for a short while (cargo-fuzz / libFuzzer), on stable.
#
#   scripts/fuzz.sh                       every target, 20 s each
#   scripts/fuzz.sh ndp_roundtrip         one target
#   FUZZ_SECONDS=300 scripts/fuzz.sh      longer runs
#   FUZZ_SANITIZER=address scripts/fuzz.sh  with ASan (the crate has no unsafe code, so the default is none)
#
# cargo-fuzz passes nightly-only flags (-Z ...) to rustc. RUSTC_BOOTSTRAP=1 makes a stable rustc accept them, so
# no nightly toolchain has to be downloaded. The corpus grows in rust/metallb-core/fuzz/corpus/<target>
# (git-ignored) and starts from the committed seeds in rust/metallb-core/fuzz/seeds/<target>. A crash fails the
# script and leaves the input in rust/metallb-core/fuzz/artifacts/<target>/: add it as a named case to
# rust/metallb-core/tests/packet_fuzz_regressions.rs (bgp_decode: fuzz/regressions/bgp_decode/, replayed by
# tests/bgp_codec_fuzz_regressions.rs; bfd_decode: fuzz/regressions/bfd_decode/, replayed by
# tests/bfd_fuzz_regressions.rs) before fixing the bug.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fuzz_dir="$root/rust/metallb-core/fuzz"
seconds=${FUZZ_SECONDS:-20}
sanitizer=${FUZZ_SANITIZER:-none}
all_targets=(arp_roundtrip ndp_roundtrip ethernet_parse bgp_decode bfd_decode)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
cd "$fuzz_dir"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
summary=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target" "seeds/$target"
    echo "== $target: ${seconds}s, sanitizer $sanitizer"
    if ! cargo fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$logs/$target.log" 2>&1; then
        tail -n 60 "$logs/$target.log"
        echo "fuzz.sh: $target FAILED; the crashing input is under $fuzz_dir/artifacts/$target/" >&2
        exit 1
    fi
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$logs/$target.log" | tail -n 1)
    execs=$(grep -E '^stat::average_exec_per_sec' "$logs/$target.log" | awk '{print $2}')
    summary+=("$target: ${done_line} | ${execs} execs/s")
    echo "${summary[-1]}"
done
echo "== summary"
printf '%s\n' "${summary[@]}"
