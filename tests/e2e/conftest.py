"""End-to-end tests: a LabCluster (local control plane, namespace lab, controller, a speaker per node).

Every test here is marked `integration` and `netns` (tests/conftest.py skips those without root and the
clients): it needs the Kubernetes binaries (`make k8s` builds and
caches them; pytest only looks for them) and root. Without them the tests skip with the reason;
METALLB_PY_REQUIRE_K8S=1 / METALLB_PY_REQUIRE_NETNS=1 (as in CI) make that a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from metallb_py.testing import ControlPlaneUnavailableError, ensure_kubernetes_binaries

HERE = Path(__file__).parent


def pytest_itemcollected(item: pytest.Item) -> None:
    if HERE in item.path.parents:
        item.add_marker(pytest.mark.integration)
        item.add_marker(pytest.mark.netns)


@pytest.fixture(scope="session")
def kubernetes_binaries() -> None:
    try:
        ensure_kubernetes_binaries()  # looks in the cache only: never builds
    except ControlPlaneUnavailableError as exc:
        if os.environ.get("METALLB_PY_REQUIRE_K8S") == "1":
            pytest.fail(f"no local Kubernetes control plane (METALLB_PY_REQUIRE_K8S=1): {exc}", pytrace=False)
        pytest.skip(f"no local Kubernetes control plane: {exc}")
