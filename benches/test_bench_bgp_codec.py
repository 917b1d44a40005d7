"""BGP codec throughput in Rust (benches/bgp): UPDATEs encoded and decoded per second, recorded and printed,
never asserted.

Workloads: the UPDATE a speaker sends for one service IP (IPv4 /32 with communities; IPv6 /128 over MP_REACH
with global and link-local next hops), the withdrawal of one /32, and full 4 KB UPDATEs of /32s. The floor
beside each figure is a copy of the same wire bytes into a reused buffer, the least any codec must do to read
or write them; "decode/copy" is how many copies' worth of time one decode takes. Every workload's messages
are checked to decode back to themselves before they are timed.

Set METALLB_PY_BGP_CODEC_SECONDS (per round and operation, default 0.3) and METALLB_PY_BGP_CODEC_ROUNDS
(default 5) for a longer run; each figure is the median of the rounds.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "target" / "release" / "bgp-codec-bench"
SECONDS = os.environ.get("METALLB_PY_BGP_CODEC_SECONDS", "0.3")
ROUNDS = os.environ.get("METALLB_PY_BGP_CODEC_ROUNDS", "5")


def run() -> list[dict[str, Any]]:
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "-p", "metallb-bgp-codec-bench"],
        cwd=ROOT,
        check=True,
        timeout=900,
    )
    out = subprocess.run(
        [str(BENCH), "--seconds", SECONDS, "--rounds", ROUNDS],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def report(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'workload':40}{'octets':>8}{'encode/s':>14}{'decode/s':>14}{'copy/s':>14}"
        f"{'enc/copy':>10}{'dec/copy':>10}{'prefixes decoded/s':>20}"
    ]
    for r in rows:
        lines.append(
            f"{r['workload']:40}{r['bytes_per_update']:>8}{r['encode_per_s']:>14,.0f}{r['decode_per_s']:>14,.0f}"
            f"{r['copy_per_s']:>14,.0f}{r['encode_over_copy_time']:>10.1f}{r['decode_over_copy_time']:>10.1f}"
            f"{r['decode_prefixes_per_s']:>20,.0f}"
        )
    lines.append("floor: copying the same wire bytes (enc/copy, dec/copy: time relative to that copy)")
    return "\n".join(lines)


def test_bgp_codec_throughput(figures: dict[str, float]) -> None:
    rows = run()
    assert [r["workload"] for r in rows] == [
        "one IPv4 /32 with communities",
        "one IPv6 /128, MP_REACH, 2 next hops",
        "IPv4 withdrawal of one /32",
        "full 4 KB UPDATE of IPv4 /32s",
    ]
    print("\n" + report(rows))
    for r in rows:
        name = f"bgp codec, {r['workload']}"
        figures[f"{name}: UPDATEs encoded/s"] = r["encode_per_s"]
        figures[f"{name}: UPDATEs decoded/s"] = r["decode_per_s"]
        figures[f"{name}: copies of the bytes/s (floor)"] = r["copy_per_s"]
        figures[f"{name}: decode time / copy time"] = r["decode_over_copy_time"]
