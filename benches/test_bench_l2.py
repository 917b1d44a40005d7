"""The layer 2 wire figures (benches/l2_bench.py) as part of `make bench`: recorded, printed, never asserted.

Needs root (network namespaces, raw sockets); skipped otherwise. For the full table run the script itself.
The latency figures and samples go to the results directory for the plots (benches/_plots.py).
"""

from __future__ import annotations

import os

import pytest

import l2_bench  # benches/ is on sys.path for its own tests

# Knobs for a short run; `make bench` and CI use the defaults.
SAMPLES = int(os.environ.get("METALLB_PY_BENCH_L2_SAMPLES", "1000"))
FLOOD_SECONDS = float(os.environ.get("METALLB_PY_BENCH_L2_FLOOD_SECONDS", "3"))

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces and raw sockets"),
]


def test_l2_wire_figures(figures: dict[str, float]) -> None:
    """The default (sleeping) mode, with the responder thread's CPU idle and under load."""
    measured = l2_bench.measure(samples=SAMPLES, rate=100_000, seconds=FLOOD_SECONDS)
    l2_bench.record_run("sleeping", "sleeping in epoll between frames (the default), not pinned", measured)
    print("\n" + l2_bench.report(measured.figures, 100_000))
    figures.update({f"l2 {name}": value for name, value in measured.figures.items()})


def test_l2_wake_cost(figures: dict[str, float]) -> None:
    """What the sleeping mode pays per request on this machine: waking a thread, on the waker's CPU and on
    another, idle one (the kernel's own ARP answer pays neither)."""
    measured = l2_bench.wake_cost(samples=SAMPLES)
    l2_bench.record_wake(measured)
    print("\n" + ", ".join(f"{name} {value:.1f}" for name, value in measured.items()))
    figures.update({f"l2 {name}": value for name, value in measured.items()})


def test_l2_wire_figures_busy_poll(figures: dict[str, float]) -> None:
    """The low-latency mode: the responder keeps polling for 5 ms after a frame, on a CPU of its own."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("the busy-poll mode needs a CPU for the responder and one for the client")
    measured = l2_bench.measure(
        samples=SAMPLES, rate=100_000, seconds=FLOOD_SECONDS, busy_poll=0.005, cpu=cpus[-1]
    )
    l2_bench.record_run("busy-poll", f"busy-polling 5 ms after a frame, pinned to CPU {cpus[-1]}", measured)
    print("\n" + l2_bench.report(measured.figures, 100_000))
    figures.update({f"l2 busy-poll {name}": value for name, value in measured.figures.items()})
