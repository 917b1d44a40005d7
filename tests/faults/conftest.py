"""The fault suite: programs under network faults (Toxiproxy), pauses, restarts and clock steps, judged by
independent observers (metallb_py.testing.faults, testing.l2watch).

Every test here is marked `integration`. The Kubernetes binaries (`make k8s`) and Toxiproxy
(tools/toxiproxy/build.sh) are looked for in the cache, never built: without them the tests skip saying how
to build them, or fail under METALLB_PY_REQUIRE_K8S=1 (CI).

FAULT_RUNS=N repeats every fault N times (default 1, the short form). The figures of every suite go to the
`fault_report` fixture: a table at the end of the session, and JSON at $FAULTS_REPORT when set.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

from metallb_py.testing import (
    ControlPlaneUnavailableError,
    ToxiproxyNotBuiltError,
    ensure_kubernetes_binaries,
    ensure_toxiproxy_binary,
)

HERE = Path(__file__).parent
# The controller's subprocess helpers (ControllerProcess) live with the integration tests that use them too.
sys.path.insert(0, str(HERE.parent / "integration"))

FAULT_RUNS = int(os.environ.get("FAULT_RUNS", "1"))


def pytest_itemcollected(item: pytest.Item) -> None:
    if HERE in item.path.parents:
        item.add_marker(pytest.mark.integration)


def give_up(what: str, exc: Exception) -> NoReturn:
    if os.environ.get("METALLB_PY_REQUIRE_K8S") == "1":
        pytest.fail(f"{what} (METALLB_PY_REQUIRE_K8S=1): {exc}", pytrace=False)
    pytest.skip(f"{what}: {exc}")


@pytest.fixture(scope="session")
def fault_binaries() -> None:
    """Skips (or fails, see the module docstring) unless the control plane and Toxiproxy are built."""
    try:
        ensure_kubernetes_binaries()
    except ControlPlaneUnavailableError as exc:
        give_up("no local Kubernetes control plane", exc)
    try:
        ensure_toxiproxy_binary()
    except ToxiproxyNotBuiltError as exc:
        give_up("no Toxiproxy", exc)


@dataclass
class FaultRow:
    """One fault's figures over its runs."""

    suite: str
    fault: str
    runs: int = 0
    duplicates: int = 0
    moves: int = 0
    stuck: int = 0
    converge_s: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        times = sorted(self.converge_s)
        median = times[len(times) // 2] if times else float("nan")
        worst = times[-1] if times else float("nan")
        return (
            f"{self.suite:<10} {self.fault:<34} {self.runs:>4} {self.duplicates:>10} {self.moves:>6} "
            f"{self.stuck:>6} {median:>10.2f} {worst:>8.2f}"
        )


class FaultReport:
    """Rows by (suite, fault), printed at the end of the session and written to $FAULTS_REPORT."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], FaultRow] = {}

    def row(self, suite: str, fault: str) -> FaultRow:
        return self.rows.setdefault((suite, fault), FaultRow(suite, fault))

    def lines(self) -> list[str]:
        head = (
            f"{'suite':<10} {'fault':<34} {'runs':>4} {'duplicates':>10} {'moves':>6} {'stuck':>6} "
            f"{'converge s':>10} {'max s':>8}"
        )
        return [head, *(row.line() for row in self.rows.values())]


REPORT = FaultReport()


@pytest.fixture(scope="session")
def fault_report() -> FaultReport:
    return REPORT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not REPORT.rows:
        return
    terminalreporter.section(
        "fault suite: per fault, runs, duplicates, unasked moves, stuck, time to converge once it stopped"
    )
    for line in REPORT.lines():
        terminalreporter.write_line(line)
    path = os.environ.get("FAULTS_REPORT")
    if path:
        rows = [asdict(row) for row in REPORT.rows.values()]
        Path(path).write_text(json.dumps({"fault_runs": FAULT_RUNS, "rows": rows}, indent=2) + "\n")
        terminalreporter.write_line(f"written to {path}")


@pytest.fixture(scope="session")
def fault_runs() -> Iterator[int]:
    yield FAULT_RUNS
