"""A real gossip member that hears only itself must not let its speaker announce (issue 12).

The report's speakers each published the Service address (bound on every node's lo) as their gossip address,
so every peer's Lease named this member's own address. The member drops its own datagrams, so it counts only
itself alive; whether it has called itself isolated yet depends on its isolation timeout. The rounds must not
wait for that: none of the speakers whose Leases are renewed is heard, so they withdraw. Runs in a network
namespace of its own (root); no API server: the rounds read a fixed view.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from metallb_py._core import Membership
from metallb_py.config import Config
from metallb_py.speaker.gate import Step
from metallb_py.speaker.metrics import SpeakerMetrics
from metallb_py.speaker.ports import ClusterView
from metallb_py.speaker.rounds import Rounds

VIP = "192.0.2.11"
ADDRESS = f"{VIP}:7946"
CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"namespace": "metallb-system", "name": "config"},
    "data": {"config": "address-pools:\n- name: web\n  protocol: layer2\n  addresses: [192.0.2.11/32]\n"},
}


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"mlbself{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", f"{VIP}/32", "dev", "lo"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


class View:
    def synced(self) -> bool:
        return True

    def service_objects(self) -> list[dict[str, Any]]:
        return []

    def endpoint_slices(self) -> list[dict[str, Any]]:
        return []

    def nodes(self) -> Mapping[str, dict[str, Any]]:
        return {n: {"metadata": {"name": n}} for n in ("node1", "node2", "node3")}

    def config_objects(self) -> list[dict[str, Any]]:
        return [CONFIGMAP]


class Recorder:
    def __init__(self) -> None:
        self.steps: list[str] = []

    def elect_and_apply(self, config: Config, view: ClusterView, live: set[str] | None) -> None:
        self.steps.append("elect")

    def withdraw_all(self) -> None:
        self.steps.append("withdraw")


def test_a_member_whose_peers_are_itself_announces_nothing(netns: str) -> None:
    now = [100.0]
    protocol = Recorder()
    with Membership("node1", ADDRESS, b"k" * 32, netns=netns) as member:
        # node2's and node3's Leases are renewed, and name this member's own address.
        rounds = Rounds(
            "node1",
            View(),
            protocol,
            member,
            expected=lambda _now: {"node2": ADDRESS, "node3": ADDRESS},
            metrics=SpeakerMetrics(),
            settle_timeout=3.0,
            clock=lambda: now[0],
        )
        assert rounds.run_round() is Step.WAIT
        assert member.alive() == ["node1"]
        now[0] += 3.0
        assert rounds.run_round() is Step.WITHDRAW
    assert protocol.steps == ["withdraw"]
