"""Integration tests run against one real control plane per session (metallb_py.testing.LocalControlPlane).

Every test under tests/integration is marked `integration`. The binaries are built (first time: 15-30 minutes)
or found in the cache once, after collection and outside any test's timeout, with the build's progress shown
live. Where the control plane cannot exist here (no Go to build it), the tests skip with the reason; with
METALLB_PY_REQUIRE_K8S=1, as in CI, they fail instead.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from metallb_py.testing import (
    ControlPlaneError,
    ControlPlaneUnavailableError,
    LocalControlPlane,
    ensure_kubernetes_binaries,
)

HERE = Path(__file__).parent
REQUIRE_K8S = os.environ.get("METALLB_PY_REQUIRE_K8S") == "1"
# Why the control plane cannot run in this session, when it cannot: (unavailable here?, message).
_PROBLEM = pytest.StashKey[tuple[bool, str]]()


def pytest_itemcollected(item: pytest.Item) -> None:
    if HERE in item.path.parents:
        item.add_marker(pytest.mark.integration)


@pytest.hookimpl(trylast=True)  # after `-m`/`-k` deselection: no build when no integration test will run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(item.get_closest_marker("integration") for item in items):
        return
    capture = config.pluginmanager.getplugin("capturemanager")
    show_progress = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    with show_progress:
        try:
            ensure_kubernetes_binaries()
        except ControlPlaneUnavailableError as exc:
            config.stash[_PROBLEM] = (True, str(exc))
        except ControlPlaneError as exc:
            config.stash[_PROBLEM] = (False, str(exc))


def _give_up(unavailable: bool, message: str) -> None:
    if unavailable and not REQUIRE_K8S:
        pytest.skip(f"no local Kubernetes control plane: {message}")
    hint = " (METALLB_PY_REQUIRE_K8S=1 makes this a failure)" if unavailable else ""
    pytest.fail(f"no local Kubernetes control plane{hint}: {message}", pytrace=False)


def _check_available(config: pytest.Config) -> None:
    problem = config.stash.get(_PROBLEM, None)
    if problem is not None:
        _give_up(*problem)


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[LocalControlPlane]:
    """etcd + kube-apiserver on 127.0.0.1 with our CRDs, shared by the session; see LocalControlPlane."""
    _check_available(request.config)
    cp = LocalControlPlane()
    try:
        cp.start()
    except ControlPlaneUnavailableError as exc:
        _give_up(True, str(exc))
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def new_control_plane(request: pytest.FixtureRequest) -> Iterator[Callable[[], LocalControlPlane]]:
    """Makes control planes of the test's own (not started), for tests that stop or break one; any still
    running at the end of the test is stopped."""
    _check_available(request.config)
    made: list[LocalControlPlane] = []

    def make() -> LocalControlPlane:
        made.append(LocalControlPlane())
        return made[-1]

    try:
        yield make
    finally:
        for cp in made:
            cp.stop()
