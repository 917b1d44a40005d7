"""The keepalived baseline of the failover bench (benches/_keepalived.py) runs: real keepalived, VRRPv3 with
10 ms adverts, on a NetnsLab's three nodes, its master killed with and without its cable cut.

No figure is asserted (benches/test_bench_failover.py prints them): each round must end with another node
answering the VIP, and with the dead node, back with the highest priority, answering it again. Without
keepalived these tests are skipped with the reason; with METALLB_PY_REQUIRE_NETNS=1 (CI) they fail.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.netns

BENCH = Path(__file__).resolve().parents[2] / "benches" / "_keepalived.py"
ROUNDS = 2


def load_bench() -> ModuleType:
    """benches/ is not a package: the module is loaded from its file."""
    if shutil.which("keepalived") is None:
        message = "keepalived is not installed (apt-get install keepalived)"
        if os.environ.get("METALLB_PY_REQUIRE_NETNS") == "1":
            pytest.fail(f"METALLB_PY_REQUIRE_NETNS=1 but {message}")
        pytest.skip(message)
    spec = importlib.util.spec_from_file_location("_keepalived", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("cut", [True, False], ids=["cable-cut-then-sigkill", "sigkill-alone"])
def test_keepalived_master_death_moves_the_vip_and_back(cut: bool) -> None:
    bench = load_bench()
    lines: list[str] = []
    run = bench.measure_keepalived(ROUNDS, lines.append, "test", cut=cut)

    assert run.cut is cut
    assert len(run.failovers) == len(run.answered) == len(run.lost) == len(run.back_lost) == ROUNDS
    for failover, answered in zip(run.failovers, run.answered, strict=True):
        assert failover.taker != failover.killed
        assert failover.back_to == failover.killed  # the highest priority preempts once back
        assert math.isfinite(answered) and answered > 0
    assert lines, "no progress line was shown"
