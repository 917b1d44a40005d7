"""Wire-level figures of the layer 2 responder, side by side with the Linux kernel, in network namespaces.

Run as root:  .venv/bin/python benches/l2_bench.py [--samples N] [--rate N] [--seconds S]

One veth pair joins a responder namespace (r0) and a client namespace (c0). On r0 the kernel owns
198.51.100.20 (configured) and the responder announces 198.51.100.10 (not configured), so both answer on the
same interface in the same run. The Rust client `l2-bench` (benches/l2) then measures, from the client:
(1) request-to-reply latency from kernel timestamps of the outgoing request and the incoming reply,
alternating the two targets; (2) replies to a fixed-rate flood of ARP requests, one target after the other.
Prints p50/p99, answered/s and loss for both and the ratios; targets: p50 within 2x of the kernel's, and
>= 100k requests/s answered with < 0.1% loss. Also the CPU time of the responder thread (idle, during the
latency run, during the flood) and what waking a sleeping thread costs on this machine (`l2-bench wake`: on
the waker's CPU, and on another, idle one): the kernel answers ARP inside the softirq that received the
request, the sleeping responder pays a wake-up on every request, which is what its latency is made of.
Each run's latency figures (and every sample, when the client prints them) go to l2.json in the results
directory (benches/_results.py), from which benches/_plots.py draws the latency distributions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "netns"))

from _lab import CLIENT_V4, lab, make_pair  # type: ignore[import-not-found]  # noqa: E402

from _results import record  # noqa: E402
from metallb_py._core import Responder  # noqa: E402

OURS = "198.51.100.10"
KERNEL = "198.51.100.20"
BENCH = ROOT / "target" / "release" / "l2-bench"


def build_client() -> None:
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "-p", "metallb-l2-bench"],
        cwd=ROOT,
        check=True,
        timeout=600,
    )


def client(ns: str, *args: str, timeout: float, cpus: set[int] | None = None) -> list[dict[str, Any]]:
    pin = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []
    out = subprocess.run(
        [*pin, "ip", "netns", "exec", ns, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def responder_threads() -> set[int]:
    """Thread ids of the responder threads running in this process (the binding starts them here)."""
    tids = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            if (task / "comm").read_text().strip() == "metallb-l2":
                tids.add(int(task.name))
        except OSError:  # the thread ended while we looked
            continue
    return tids


def cpu_seconds(tid: int) -> float:
    """CPU time a thread of this process has run, from the scheduler's own count (nanoseconds, not ticks)."""
    return int(Path(f"/proc/{os.getpid()}/task/{tid}/schedstat").read_text().split()[0]) / 1e9


class CpuMeter:
    """The share of one CPU a thread used between `start` and `stop`, in percent."""

    def __init__(self, tid: int) -> None:
        self.tid = tid
        self.cpu = cpu_seconds(tid)
        self.wall = time.monotonic()

    def percent(self) -> float:
        return 100 * (cpu_seconds(self.tid) - self.cpu) / (time.monotonic() - self.wall)


def wake_cost(samples: int = 2000) -> dict[str, float]:
    """What waking a thread that sleeps in poll() costs here, on the waker's CPU and on another (idle) one."""
    build_client()
    out = subprocess.run(
        [str(BENCH), "wake", "--samples", str(samples)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures: dict[str, float] = {}
    for row in (json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")):
        figures[f"wake_{row['placement']}_p50_us"] = row["p50_ns"] / 1000
        figures[f"wake_{row['placement']}_p99_us"] = row["p99_ns"] / 1000
    return figures


@dataclass
class Measured:
    """A run's figures by name, and its latency samples in µs by side ("ours", "kernel"): empty when the
    client printed only percentiles."""

    figures: dict[str, float]
    samples_us: dict[str, list[float]] = field(default_factory=dict)


def record_run(key: str, label: str, measured: Measured) -> None:
    """The run as `runs.<key>` of l2.json, beside the other runs of this session."""
    run = {"label": label, "figures": measured.figures, "samples_us": measured.samples_us}
    record("l2", {"runs": {key: run}}, merge=True)


def record_wake(figures: dict[str, float]) -> None:
    record("l2", {"wake": figures}, merge=True)


def measure(
    samples: int = 2000,
    rate: int = 100_000,
    seconds: float = 5.0,
    busy_poll: float = 0.0,
    cpu: int | None = None,
) -> Measured:
    """Runs both measurements and returns the figures by name, with the latency samples. With `cpu`, the
    responder thread is pinned there and the client runs on the other CPUs."""
    cpus = set(os.sched_getaffinity(0)) - {cpu} if cpu is not None else None
    build_client()
    figures: dict[str, float] = {}
    samples_us: dict[str, list[float]] = {}
    with lab() as the_lab:
        pair = make_pair(the_lab)
        the_lab.address(pair.responder_ns, pair.responder_if, f"{KERNEL}/24")
        before = responder_threads()
        with Responder(
            [pair.responder_if], netns=pair.responder_ns, gratuitous_duration=0, busy_poll=busy_poll, cpu=cpu
        ) as responder:
            responder.announce(OURS)
            (tid,) = responder_threads() - before
            idle = CpuMeter(tid)
            time.sleep(2.0)
            figures["cpu_idle_pct"] = idle.percent()
            common = ["--iface", pair.client_if, "--source", CLIENT_V4]
            during = CpuMeter(tid)
            started = time.monotonic()
            lat = client(
                pair.client_ns,
                "latency",
                *common,
                "--targets",
                f"{OURS},{KERNEL}",
                "--samples",
                str(samples),
                timeout=600,
                cpus=cpus,
            )
            figures["cpu_latency_run_pct"] = during.percent()
            # One request at a time, both targets in turn (50 warm-up rounds each): what the thread sees.
            figures["latency_requests_per_s"] = 2 * (samples + 50) / (time.monotonic() - started)
            by_target = {row["target"]: row for row in lat}
            for who, ip in (("ours", OURS), ("kernel", KERNEL)):
                row = by_target[ip]
                figures[f"latency_{who}_p50_us"] = row["p50_ns"] / 1000
                figures[f"latency_{who}_p90_us"] = row["p90_ns"] / 1000
                figures[f"latency_{who}_p99_us"] = row["p99_ns"] / 1000
                figures[f"latency_{who}_mean_us"] = row["mean_ns"] / 1000
                figures[f"latency_{who}_lost"] = row["lost"]
                if "samples_ns" in row:
                    samples_us[who] = [ns / 1000 for ns in row["samples_ns"]]
            for who, ip in (("ours", OURS), ("kernel", KERNEL)):
                before_stats = responder.stats()
                during = CpuMeter(tid)
                (row,) = client(
                    pair.client_ns,
                    "flood",
                    *common,
                    "--target",
                    ip,
                    "--rate",
                    str(rate),
                    "--seconds",
                    str(seconds),
                    timeout=seconds + 60,
                    cpus=cpus,
                )
                after = responder.stats()
                figures[f"cpu_flood_{who}_pct"] = during.percent()
                figures[f"flood_{who}_sent_per_s"] = row["sent_per_s"]
                figures[f"flood_{who}_answered_per_s"] = row["answered_per_s"]
                figures[f"flood_{who}_loss_pct"] = row["loss"] * 100
                figures[f"flood_{who}_responder_kernel_drops"] = (
                    after["kernel_drops"] - before_stats["kernel_drops"]
                )
    figures["latency_p50_ratio_ours_over_kernel"] = (
        figures["latency_ours_p50_us"] / figures["latency_kernel_p50_us"]
    )
    figures["latency_p99_ratio_ours_over_kernel"] = (
        figures["latency_ours_p99_us"] / figures["latency_kernel_p99_us"]
    )
    figures["flood_answered_ratio_ours_over_kernel"] = (
        figures["flood_ours_answered_per_s"] / figures["flood_kernel_answered_per_s"]
    )
    return Measured(figures, samples_us)


def report(figures: dict[str, float], rate: int) -> str:
    f = figures

    def row(label: str, ours: str, kernel: str, ratio: str = "", fmt: str = ".1f") -> str:
        line = f"{label:28}{f[ours]:>14{fmt}}{f[kernel]:>14{fmt}}"
        return line + (f"{f[ratio]:>10.2f}" if ratio else "")

    latency_met = f["latency_p50_ratio_ours_over_kernel"] <= 2
    # The offered rate is what the generator achieved; answered/s can only match it.
    flood_met = f["flood_ours_sent_per_s"] >= 0.999 * 100_000 and f["flood_ours_loss_pct"] < 0.1
    return "\n".join(
        [
            f"{'':28}{'responder':>14}{'kernel':>14}{'ratio':>10}",
            row(
                "latency p50 (us)",
                "latency_ours_p50_us",
                "latency_kernel_p50_us",
                "latency_p50_ratio_ours_over_kernel",
            ),
            row(
                "latency p99 (us)",
                "latency_ours_p99_us",
                "latency_kernel_p99_us",
                "latency_p99_ratio_ours_over_kernel",
            ),
            row("latency samples lost", "latency_ours_lost", "latency_kernel_lost", fmt=".0f"),
            row(
                f"flood sent/s (asked {rate})", "flood_ours_sent_per_s", "flood_kernel_sent_per_s", fmt=".0f"
            ),
            row(
                "flood answered/s",
                "flood_ours_answered_per_s",
                "flood_kernel_answered_per_s",
                "flood_answered_ratio_ours_over_kernel",
                fmt=".0f",
            ),
            row("flood loss (%)", "flood_ours_loss_pct", "flood_kernel_loss_pct", fmt=".3f"),
            f"{'responder socket drops':28}{f['flood_ours_responder_kernel_drops']:>14.0f}",
            f"responder thread CPU (% of one): idle {f['cpu_idle_pct']:.2f}, latency run "
            f"({f['latency_requests_per_s']:.0f} requests/s) {f['cpu_latency_run_pct']:.1f}, "
            f"flood {f['cpu_flood_ours_pct']:.0f} (ours) / {f['cpu_flood_kernel_pct']:.0f} (kernel's target)",
            "",
            f"target p50 <= 2x kernel: {'met' if latency_met else 'NOT met'}; "
            f"100k/s answered with < 0.1% loss: {'met' if flood_met else 'NOT met'}",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=2000, help="latency samples per target")
    parser.add_argument("--rate", type=int, default=100_000, help="flood requests per second")
    parser.add_argument("--seconds", type=float, default=5.0, help="flood duration per target")
    parser.add_argument(
        "--busy-poll",
        type=float,
        default=0.005,
        help="busy_poll of the second run (pinned to the last CPU), seconds",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root: network namespaces and raw sockets", file=sys.stderr)
        return 2
    runs: dict[str, dict[str, float]] = {}
    mode = "default: the thread sleeps in epoll between frames, no pinning"
    print(f"== {mode} ==")
    measured = measure(args.samples, args.rate, args.seconds)
    record_run("sleeping", mode, measured)
    runs[mode] = measured.figures
    print(report(runs[mode], args.rate))
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        cpu = cpus[-1]
        mode = f"busy_poll={args.busy_poll}s, pinned to CPU {cpu} (keeps a core busy while requests come)"
        print(f"\n== {mode}, client on the others ==")
        measured = measure(args.samples, args.rate, args.seconds, args.busy_poll, cpu)
        record_run("busy-poll", f"busy_poll={args.busy_poll}s, pinned to CPU {cpu}", measured)
        runs[mode] = measured.figures
        print(report(runs[mode], args.rate))
    wake = wake_cost()
    record_wake(wake)
    print("\n== what a wake-up costs here (a thread asleep in poll(), woken through an eventfd) ==")
    print(
        f"on the waker's CPU: p50 {wake['wake_same_cpu_p50_us']:.1f} us, "
        f"p99 {wake['wake_same_cpu_p99_us']:.1f} us"
    )
    if "wake_other_cpu_p50_us" in wake:
        print(
            f"on another, idle CPU: p50 {wake['wake_other_cpu_p50_us']:.1f} us, "
            f"p99 {wake['wake_other_cpu_p99_us']:.1f} us"
        )
    best = min(runs, key=lambda m: runs[m]["latency_p50_ratio_ours_over_kernel"])
    print(f"\nbest p50 ratio: {runs[best]['latency_p50_ratio_ours_over_kernel']:.2f}x, {best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
