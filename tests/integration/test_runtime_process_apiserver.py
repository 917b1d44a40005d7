"""run_until_signalled against a real API server: the controller and the speaker each name themselves.

The API server records a write's user agent (up to its first "/") as the field manager of what it wrote,
so an object a component creates shows which program created it.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal

import pytest

from metallb_py.controller.main import USER_AGENT as CONTROLLER_USER_AGENT
from metallb_py.k8s import KubeClient, connect
from metallb_py.k8s.errors import ApiUnavailableError, ForbiddenError
from metallb_py.k8s.resources import CONFIGMAPS, NAMESPACES
from metallb_py.runtime import Component, run_until_signalled
from metallb_py.speaker.main import USER_AGENT as SPEAKER_USER_AGENT
from metallb_py.testing import LocalControlPlane

_names = itertools.count()


class Writer:
    """Creates one ConfigMap when started, then stops the process as a kubelet would."""

    def __init__(self, namespace: str, name: str) -> None:
        self.namespace, self.name = namespace, name
        self.client: KubeClient | None = None

    def make(self, client: KubeClient) -> Component:
        self.client = client
        return self

    def start(self) -> None:
        assert self.client is not None
        # With data: a write that sets no field leaves no field manager behind.
        self.client.create(CONFIGMAPS, {"metadata": {"name": self.name}, "data": {"k": "v"}}, self.namespace)
        os.kill(os.getpid(), signal.SIGTERM)

    def stop(self) -> None:
        pass

    def healthy(self) -> str | None:
        return None


def test_the_programs_have_different_names() -> None:
    assert CONTROLLER_USER_AGENT != SPEAKER_USER_AGENT


@pytest.mark.parametrize("user_agent", [CONTROLLER_USER_AGENT, SPEAKER_USER_AGENT])
def test_requests_carry_the_programs_user_agent(control_plane: LocalControlPlane, user_agent: str) -> None:
    admin = connect(control_plane.kubeconfig, user_agent="metallb-py-tests")
    namespace = f"runtime-{next(_names)}"
    admin.create(NAMESPACES, {"metadata": {"name": namespace}})
    try:
        writer = Writer(namespace, "written")
        status = run_until_signalled(
            writer.make,
            logging.getLogger("metallb_py.tests.runtime"),
            kubeconfig=control_plane.kubeconfig,
            user_agent=user_agent,
        )
        assert status == 0
        written = admin.get(CONFIGMAPS, "written", namespace)
        assert [entry["manager"] for entry in written["metadata"]["managedFields"]] == [user_agent]
    finally:
        admin.delete(NAMESPACES, namespace)
        admin.close()


class SlowStart(Writer):
    """Its first starts fail as a start does when the API server does not answer in time."""

    def __init__(self, namespace: str, name: str, failures: int) -> None:
        super().__init__(namespace, name)
        self.failures, self.built, self.stopped = failures, 0, 0

    def make(self, client: KubeClient) -> Component:
        self.built += 1
        return super().make(client)

    def start(self) -> None:
        if self.built <= self.failures:
            raise ApiUnavailableError(0, "", "GET /api/v1/services: timed out after 30 s")
        super().start()

    def stop(self) -> None:
        self.stopped += 1


def test_a_start_that_times_out_is_retried_with_a_fresh_component(
    control_plane: LocalControlPlane, caplog: pytest.LogCaptureFixture
) -> None:
    admin = connect(control_plane.kubeconfig, user_agent="metallb-py-tests")
    namespace = f"runtime-{next(_names)}"
    admin.create(NAMESPACES, {"metadata": {"name": namespace}})
    try:
        slow = SlowStart(namespace, "written", failures=2)
        with caplog.at_level(logging.WARNING, "metallb_py.tests.runtime"):
            status = run_until_signalled(
                slow.make,
                logging.getLogger("metallb_py.tests.runtime"),
                kubeconfig=control_plane.kubeconfig,
                user_agent=SPEAKER_USER_AGENT,
            )
        assert status == 0
        assert slow.built == 3, "a fresh component for each try"
        assert slow.stopped == 3, "each failed try stopped, and the last one at the signal"
        assert admin.get(CONFIGMAPS, "written", namespace)["data"] == {"k": "v"}
        retries = [r for r in caplog.records if r.getMessage().startswith("cannot start yet")]
        assert [r.__dict__["attempt"] for r in retries] == [1, 2]
    finally:
        admin.delete(NAMESPACES, namespace)
        admin.close()


class Refused(Writer):
    def start(self) -> None:
        raise ForbiddenError(403, "Forbidden", "services is forbidden")


def test_a_start_refused_for_good_is_not_retried(control_plane: LocalControlPlane) -> None:
    refused = Refused("default", "never")
    status = run_until_signalled(
        refused.make,
        logging.getLogger("metallb_py.tests.runtime"),
        kubeconfig=control_plane.kubeconfig,
        user_agent=SPEAKER_USER_AGENT,
    )
    assert status == 1
