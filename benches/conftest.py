"""Collects the figures of a benchmark session and prints them, with ratios, at the end; renders the plots and
REPORT.md from the raw samples the benches recorded (benches/_results.py, benches/_plots.py); the fixtures
every lab bench shares (`progress`, `bench_logs`)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

import _results
from _failover_support import Progress

FIGURES: dict[str, float] = {}
# What the session's end rendered, or why it could not: printed in the terminal summary.
PLOTS: list[str] = []


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


def pytest_sessionfinish(session: pytest.Session) -> None:
    """When a bench recorded samples, redraws every plot in the results directory (the other parts from
    their last runs). matplotlib is imported only then: a session without results does not pay for it."""
    if not _results.recorded_this_session():
        return
    folder = _results.results_dir()
    try:
        from _plots import render  # noqa: PLC0415

        rendered = render(folder)
    except Exception as err:  # the figures measured are still printed; the session fails all the same
        PLOTS.append(f"plots not rendered ({type(err).__name__}: {err}); redo: python benches/plot_report.py")
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    PLOTS.append(f"{rendered.report} with {len(rendered.images)} plots")
    PLOTS.extend(f"left out: {reason}" for reason in rendered.skipped)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if PLOTS:
        terminalreporter.section("metallb-py plots")
        for line in PLOTS:
            terminalreporter.write_line(line)
    if not FIGURES:
        return
    terminalreporter.section("metallb-py figures (medians from this session)")
    for name, value in FIGURES.items():
        terminalreporter.write_line(f"{name:<60} {value:>16,.3f}")
