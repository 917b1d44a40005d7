"""Fixtures for the responder tests: each test gets its own namespaces, removed even when it fails.

Tests marked `netns` need root (namespaces, raw sockets) and iproute2, iputils-arping and ndisc6; without them
they are skipped with the reason (or, with METALLB_PY_REQUIRE_NETNS=1 as in CI, the run stops with it).
`pytest -m "not netns"` deselects them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from ._lab import Lab, Pair, lab, make_pair

MISSING = [tool for tool in ("ip", "arping", "ndisc6") if shutil.which(tool) is None]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = None
    if os.geteuid() != 0:
        reason = "needs root for network namespaces and raw sockets"
    elif MISSING:
        reason = f"needs {', '.join(MISSING)} (apt-get install iproute2 iputils-arping ndisc6)"
    if reason is None:
        return
    wanted = [item for item in items if item.get_closest_marker("netns") is not None]
    if wanted and os.environ.get("METALLB_PY_REQUIRE_NETNS") == "1":
        # CI sets this: a green run that skipped the packet tests would prove nothing.
        raise pytest.UsageError(f"METALLB_PY_REQUIRE_NETNS=1 but the netns tests cannot run: {reason}")
    for item in wanted:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def netlab() -> Iterator[Lab]:
    with lab() as the_lab:
        yield the_lab


@pytest.fixture
def pair(netlab: Lab) -> Pair:
    return make_pair(netlab)
