"""One rule for every test marked `netns` (tests/netns, and tests/e2e, which marks its own): it needs root
(namespaces, raw sockets) and iproute2, iputils-arping and ndisc6. Without them such tests are skipped with
the reason, or, with METALLB_PY_REQUIRE_NETNS=1 as in CI, the run stops with it. `pytest -m "not netns"`
deselects them.
"""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    wanted = [item for item in items if item.get_closest_marker("netns") is not None]
    if not wanted:
        return
    missing = [tool for tool in ("ip", "arping", "ndisc6") if shutil.which(tool) is None]
    reason = None
    if os.geteuid() != 0:
        reason = "needs root for network namespaces and raw sockets"
    elif missing:
        reason = f"needs {', '.join(missing)} (apt-get install iproute2 iputils-arping ndisc6)"
    if reason is None:
        return
    if os.environ.get("METALLB_PY_REQUIRE_NETNS") == "1":
        # CI sets this: a green run that skipped the packet tests would prove nothing.
        raise pytest.UsageError(f"METALLB_PY_REQUIRE_NETNS=1 but the netns tests cannot run: {reason}")
    for item in wanted:
        item.add_marker(pytest.mark.skip(reason=reason))
