"""metallb_py.runtime.process: the namespace default and the life of a component under
run_until_signalled (start, health, signals), with a kubeconfig that needs no API server to load.

That the client really names itself with `user_agent` is checked against an API server in
tests/integration/test_runtime_process_apiserver.py.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest

from metallb_py.errors import MetalLBError
from metallb_py.k8s.client import KubeClient
from metallb_py.runtime import Component, default_namespace, run_until_signalled

log = logging.getLogger("metallb_py.tests.runtime")


def test_default_namespace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("METALLB_NAMESPACE", raising=False)
    monkeypatch.setattr("metallb_py.runtime.process._POD_NAMESPACE_FILE", tmp_path / "absent")
    assert default_namespace() == "metallb-system"
    (tmp_path / "namespace").write_text("lb-pods\n")
    monkeypatch.setattr("metallb_py.runtime.process._POD_NAMESPACE_FILE", tmp_path / "namespace")
    assert default_namespace() == "lb-pods"
    monkeypatch.setenv("METALLB_NAMESPACE", "lb-system")
    assert default_namespace() == "lb-system"


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig for a server that is never contacted: connecting only loads it."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""
    )
    return path


class Part:
    """A component that records its life; `on_start` runs inside start()."""

    def __init__(self, on_start: Exception | None = None, broken: str | None = None) -> None:
        self.events: list[str] = []
        self.clients: list[KubeClient] = []
        self._on_start = on_start
        self._broken = broken

    def make(self, client: KubeClient) -> Component:
        self.clients.append(client)
        return self

    def start(self) -> None:
        self.events.append("start")
        if self._on_start is not None:
            raise self._on_start
        if self._broken is None:
            os.kill(os.getpid(), signal.SIGTERM)  # as a kubelet stopping the pod

    def stop(self) -> None:
        self.events.append("stop")

    def healthy(self) -> str | None:
        self.events.append("healthy?")
        return self._broken


def test_a_signal_stops_it_cleanly_and_the_previous_handlers_come_back(kubeconfig: Path) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    part = Part()
    assert run_until_signalled(part.make, log, kubeconfig=kubeconfig, user_agent="metallb-py-tests") == 0
    assert part.events == ["start", "stop"]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_a_component_that_breaks_stops_with_status_1(kubeconfig: Path) -> None:
    part = Part(broken="the responder died")
    code = run_until_signalled(
        part.make, log, kubeconfig=kubeconfig, user_agent="metallb-py-tests", health_period=0.01
    )
    assert code == 1
    assert part.events == ["start", "healthy?", "stop"]


def test_a_component_that_cannot_start_is_stopped_with_status_1(kubeconfig: Path) -> None:
    part = Part(on_start=MetalLBError("no such interface"))
    assert run_until_signalled(part.make, log, kubeconfig=kubeconfig, user_agent="metallb-py-tests") == 1
    assert part.events == ["start", "stop"]


def test_an_unusable_kubeconfig_builds_nothing(tmp_path: Path) -> None:
    part = Part()
    missing = tmp_path / "missing"
    assert run_until_signalled(part.make, log, kubeconfig=missing, user_agent="metallb-py-tests") == 1
    assert part.clients == [] and part.events == []
