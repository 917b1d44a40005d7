"""What benches/test_bench_failover.py reads and prints: speaker log records, process footprints, CPU load,
live progress lines and summaries. Nothing here starts a cluster or asserts a figure.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from _measure import percentile

Record = dict[str, Any]


class Progress:
    """Prints one line at once, past pytest's output capture: a bench of several minutes says what it does
    while it does it (with `-s` or without)."""

    def __init__(self, config: pytest.Config) -> None:
        self._capture = config.pluginmanager.getplugin("capturemanager")
        self._first = True

    def __call__(self, line: str) -> None:
        shown = self._capture.global_and_fixture_disabled() if self._capture else contextlib.nullcontext()
        with shown:
            # The first line would otherwise continue pytest's "benches/test_...py " line.
            print(("\n" if self._first else "") + line, flush=True)
        self._first = False


# -- speaker logs --------------------------------------------------------------------------------------------


def log_time(record: Record) -> float:
    """A JSON log record's `ts` (UTC, milliseconds) as a time.time() value."""
    stamp = str(record.get("ts", "")).rstrip("Z")
    try:
        return _dt.datetime.fromisoformat(stamp).replace(tzinfo=_dt.UTC).timestamp()
    except ValueError:
        return float("nan")


class LogTail:
    """The JSON records appended to a log file since a mark: restarts append to the same file, and a bench
    round reads only its own part. Lines that are not JSON (a traceback's) are skipped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = self._size()

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def records(self) -> list[Record]:
        """Every complete record since the mark (the mark stays where it is)."""
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        records: list[Record] = []
        for line in data.split(b"\n")[:-1]:  # the last piece is empty or a line still being written
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
        return records

    def find(self, msg: str, **fields: str) -> list[Record]:
        """Records since the mark with this `msg` and these fields."""
        return [
            r for r in self.records() if r.get("msg") == msg and all(r.get(k) == v for k, v in fields.items())
        ]


# -- processes -----------------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcSample:
    """One look at a process: when (time.monotonic()), its resident memory, CPU time so far (every thread,
    user and system) and thread count."""

    at: float
    rss_kib: int
    cpu_seconds: float
    threads: int


def sample_process(pid: int) -> ProcSample:
    at = time.monotonic()
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name (which may hold spaces), from field 3 (state): utime is 14, stime 15.
    after = stat[stat.rindex(")") + 2 :].split()
    return ProcSample(
        at=at,
        rss_kib=int(fields["VmRSS"].split()[0]),
        cpu_seconds=(int(after[11]) + int(after[12])) / _TICK,
        threads=int(fields["Threads"].strip()),
    )


def cpu_percent(first: ProcSample, last: ProcSample) -> float:
    """CPU used between two samples, in percent of one core."""
    return 100 * (last.cpu_seconds - first.cpu_seconds) / max(last.at - first.at, 1e-9)


# -- summaries -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            nan = float("nan")
            return cls(0, nan, nan, nan, nan)
        return cls(
            len(values),
            statistics.fmean(values),
            statistics.median(values),
            percentile(values, 99),
            max(values),
        )


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Aligned columns: the first left-aligned, numbers right-aligned (floats with one decimal)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:.1f}"  # NaN: nothing measured
        return str(value)

    cells = [[cell(v) for v in row] for row in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        first, *rest = row
        parts = [first.ljust(widths[0]), *(v.rjust(w) for v, w in zip(rest, widths[1:], strict=True))]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
