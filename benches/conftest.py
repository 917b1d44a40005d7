"""Collects the figures of a benchmark session and prints them, with ratios, at the end; the fixtures every
lab bench shares (`progress`, `bench_logs`)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from _failover_support import Progress

FIGURES: dict[str, float] = {}


@pytest.fixture(scope="session")
def figures() -> Iterator[dict[str, float]]:
    yield FIGURES


@pytest.fixture(scope="module")
def progress(pytestconfig: pytest.Config) -> Progress:
    """Prints a line at once, past pytest's capture: a bench of minutes says what it does."""
    return Progress(pytestconfig)


@contextmanager
def _logs(chosen: str | None, prefix: str) -> Iterator[Path]:
    if chosen is not None:
        path = Path(chosen)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def bench_logs() -> Callable[[str | None, str], AbstractContextManager[Path]]:
    """`with bench_logs(chosen, prefix) as path`: the directory the user chose (made if missing), else a
    temporary one named with `prefix`, removed afterwards."""
    return _logs


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("metallb-py figures (medians from this session)")
    for name, value in FIGURES.items():
        terminalreporter.write_line(f"{name:<60} {value:>16,.3f}")
