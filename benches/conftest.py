"""Collects the figures of a benchmark session and prints them, with ratios, at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

FIGURES: dict[str, float] = {}


@pytest.fixture(scope="session")
def figures() -> Iterator[dict[str, float]]:
    yield FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("metallb-py figures (medians from this session)")
    for name, value in FIGURES.items():
        terminalreporter.write_line(f"{name:<60} {value:>16,.3f}")
