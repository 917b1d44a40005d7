"""Where benches leave their raw samples: one JSON file per part in the results directory, which
benches/_plots.py turns into PNG plots and REPORT.md.

The directory is $METALLB_PY_BENCH_OUT, else `bench-results/` at the repository root. A file is written
whole (to a temporary name, then renamed), so a bench that dies mid-write leaves the last good one. Each file
says when and from which commit it was written, because a later session running only some benches leaves the
other parts from earlier runs in place and the report shows their age.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "OUT_ENV",
    "FailoverKill",
    "KeepalivedSeries",
    "record",
    "record_failover",
    "recorded_this_session",
    "results_dir",
]

OUT_ENV = "METALLB_PY_BENCH_OUT"
ROOT = Path(__file__).resolve().parent.parent
# Tells this process's files from earlier sessions' ones, for `merge`.
SESSION = f"{os.getpid()}-{time.time_ns()}"
_written: list[Path] = []


def results_dir() -> Path:
    chosen = os.environ.get(OUT_ENV)
    return Path(chosen) if chosen else ROOT / "bench-results"


def recorded_this_session() -> list[Path]:
    """The files `record` wrote in this process, in order (one entry per file)."""
    return list(dict.fromkeys(_written))


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            check=False,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _plain(value: Any) -> Any:
    """JSON without NaN or infinities (standard JSON has neither): they become null, 'not seen'."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _merge_into(into: dict[str, Any], new: dict[str, Any]) -> None:
    """Nested mappings merge key by key; anything else replaces."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge_into(into[key], value)
        else:
            into[key] = value


def record(name: str, data: Mapping[str, Any], *, merge: bool = False, out: Path | None = None) -> Path:
    """Writes `data` as `<out>/<name>.json` (out: `results_dir()`). With `merge`, `data` is merged, mapping by
    mapping, into what this same process wrote there before (several tests filling one part); a file from an
    earlier session is replaced, never mixed in."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"result name {name!r} must be a plain file stem such as 'allocator'")
    folder = out or results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    body: dict[str, Any] = {}
    if merge and path.exists():
        try:
            previous = json.loads(path.read_text())
        except (OSError, ValueError):
            previous = None
        if isinstance(previous, dict) and previous.get("session") == SESSION:
            body = previous.get("data", {})
    _merge_into(body, _plain(data))
    document = {
        "name": name,
        "session": SESSION,
        "written_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "commit": _commit(),
        "data": body,
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
    tmp.replace(path)
    _written.append(path)
    return path


class FailoverKill(Protocol):
    """What `record_failover` reads of one death (benches/test_bench_failover.py's `Kill`)."""

    @property
    def vip(self) -> str: ...
    @property
    def killed(self) -> str: ...
    @property
    def taker(self) -> str: ...
    @property
    def answered(self) -> float: ...
    @property
    def detected(self) -> float: ...
    @property
    def announced(self) -> float: ...
    @property
    def recorded(self) -> float: ...
    @property
    def lost(self) -> int: ...
    @property
    def back_lost(self) -> int: ...
    @property
    def rejoin(self) -> float: ...
    @property
    def spurious_downs(self) -> int: ...


class KeepalivedSeries(Protocol):
    """What `record_failover` reads of a keepalived series (benches/_keepalived.py's `KeepalivedRun`)."""

    @property
    def interval(self) -> float: ...
    @property
    def answered(self) -> list[float]: ...
    @property
    def lost(self) -> list[int]: ...
    @property
    def back_lost(self) -> list[int]: ...


KILL_FIELDS = (
    "vip",
    "killed",
    "taker",
    "detected",
    "announced",
    "answered",
    "recorded",
    "lost",
    "back_lost",
    "rejoin",
    "spurious_downs",
)


def record_failover(
    label: str,
    kills: Mapping[str, Sequence[FailoverKill]],
    floor: Sequence[float],
    *,
    keepalived: Mapping[str, KeepalivedSeries],
    deaths: Mapping[str, str],
    probe_interval: float,
    out: Path | None = None,
) -> Path:
    """One failover series ('idle', 'loaded') as `failover-<label>.json`: every kill's times (seconds from
    the death; null where the logs did not show it), the floor, and keepalived's series per kind of death
    (`deaths`: kind -> how it is described)."""
    series = {
        "label": label,
        "probe_interval": probe_interval,
        "deaths": dict(deaths),
        "kills": {
            death: [{field: getattr(kill, field) for field in KILL_FIELDS} for kill in rounds]
            for death, rounds in kills.items()
        },
        "floor": list(floor),
        "keepalived": {
            death: {
                "interval": run.interval,
                "answered": list(run.answered),
                "lost": list(run.lost),
                "back_lost": list(run.back_lost),
            }
            for death, run in keepalived.items()
        },
    }
    return record(f"failover-{label}", series, out=out)
