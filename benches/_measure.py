"""What several benches share: a CPU load that runs beside a measurement, and the percentile they report."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence

__all__ = ["cpu_load", "percentile"]


@contextlib.contextmanager
def cpu_load(env_var: str) -> Iterator[int]:
    """One busy-looping process per CPU (or as many as $`env_var` says) at normal priority, like
    `stress --cpu N`; yields how many."""
    count = int(os.environ.get(env_var, "0")) or os.cpu_count() or 1
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield count
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: with 20 values p99 is the largest, as it should be with so few."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]
