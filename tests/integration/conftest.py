"""Integration tests run against one real control plane per session (metallb_py.testing.LocalControlPlane).

Every test under tests/integration is marked `integration`. They run the Kubernetes binaries `make k8s` built
and cached; pytest only looks for them and never builds them (that takes 15-30 minutes). Without them the
tests skip, saying how to build them; with METALLB_PY_REQUIRE_K8S=1, as in CI, they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from _controller_support import Cluster

from metallb_py.testing import ControlPlaneUnavailableError, LocalControlPlane, ensure_kubernetes_binaries

HERE = Path(__file__).parent


def pytest_itemcollected(item: pytest.Item) -> None:
    if HERE in item.path.parents:
        item.add_marker(pytest.mark.integration)


def _give_up(exc: ControlPlaneUnavailableError) -> NoReturn:
    if os.environ.get("METALLB_PY_REQUIRE_K8S") == "1":
        pytest.fail(f"no local Kubernetes control plane (METALLB_PY_REQUIRE_K8S=1): {exc}", pytrace=False)
    pytest.skip(f"no local Kubernetes control plane: {exc}")


def _require_binaries() -> None:
    """Skips (or, under METALLB_PY_REQUIRE_K8S=1, fails) the test when `make k8s` has not been run."""
    try:
        ensure_kubernetes_binaries()  # looks in the cache only: never builds
    except ControlPlaneUnavailableError as exc:
        _give_up(exc)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[LocalControlPlane]:
    """etcd + kube-apiserver on 127.0.0.1 with our CRDs, shared by the session; see LocalControlPlane."""
    _require_binaries()
    cp = LocalControlPlane()
    try:
        cp.start()
    except ControlPlaneUnavailableError as exc:  # e.g. no openssl
        _give_up(exc)
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def new_control_plane() -> Iterator[Callable[[], LocalControlPlane]]:
    """Makes control planes of the test's own (not started), for tests that stop or break one; any still
    running at the end of the test is stopped."""
    _require_binaries()
    made: list[LocalControlPlane] = []

    def make() -> LocalControlPlane:
        made.append(LocalControlPlane())
        return made[-1]

    try:
        yield make
    finally:
        for cp in made:
            cp.stop()


@pytest.fixture
def cluster(control_plane: LocalControlPlane) -> Iterator[Cluster]:
    """The session's control plane as the controller tests use it; what the test made is deleted after."""
    c = Cluster(control_plane)
    yield c
    c.cleanup()
