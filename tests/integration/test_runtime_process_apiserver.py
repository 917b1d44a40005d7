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
