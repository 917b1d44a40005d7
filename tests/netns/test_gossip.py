"""Gossip between network namespaces over real UDP: discovery, a crash, a leave, a cut cable, IPv6.

Each node is a namespace on one bridge (see _gossip_lab.py); the members run in this process, each on its
own Rust thread inside its node's namespace. Nothing here bounds how long anything takes (behaviour, not
speed; deadlines in waits only stop a hang); the figures are printed by benches/test_bench_gossip.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from metallb_py import errors
from metallb_py._core import Membership, MembershipEvent

from ._gossip_lab import SECRET, GossipLab, gossip_lab
from ._lab import Lab

pytestmark = pytest.mark.netns

NAMES = ["node-0", "node-1", "node-2", "node-3"]


def wait_for(done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def events_until(member: Membership, kind: str, name: str, timeout: float = 30.0) -> list[MembershipEvent]:
    """The events `member` saw up to the first `kind` event for `name`, that one last."""
    seen: list[MembershipEvent] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        event = member.next_event(timeout=left)
        if event is not None:
            seen.append(event)
            if event.kind == kind and event.name == name:
                return seen
    raise AssertionError(f"no {kind} event for {name} at {member.name}: {seen}")


def first_event(member: Membership, kind: str, name: str) -> MembershipEvent:
    return events_until(member, kind, name)[-1]


@pytest.fixture
def nodes(netlab: Lab) -> GossipLab:
    return gossip_lab(netlab, 4)


@pytest.fixture
def cluster(nodes: GossipLab) -> Iterator[list[Membership]]:
    """Four members, one per namespace, each handed the full peer list (as the speaker does)."""
    with ExitStack() as stack:
        members = []
        for i, ns in enumerate(nodes.nodes):
            member = Membership(NAMES[i], nodes.address(i), SECRET, netns=ns)
            member.start()
            stack.callback(member.stop)
            member.set_peers(nodes.addresses())
            members.append(member)
        for member in members:
            wait_for(lambda m=member: m.alive() == NAMES)  # type: ignore[misc]
        for member in members:
            member.events()
        yield members


def test_members_in_namespaces_find_each_other(nodes: GossipLab, cluster: list[Membership]) -> None:
    view = cluster[0].members()
    assert {name: info["address"] for name, info in view.items()} == dict(
        zip(NAMES, nodes.addresses(), strict=True)
    )
    assert not any(m.isolated() for m in cluster)
    for member in cluster:
        stats = member.stats()
        assert stats["auth_failures"] == stats["replays"] == stats["send_errors"] == 0
    # The socket is inside the node's namespace: the gossip port is bound there, not here.
    listening = nodes.lab.sh(nodes.nodes[0], "ss", "-Hnul", f"sport = :{7946}").stdout
    assert nodes.v4(0) in listening


def test_a_crashed_member_is_declared_down_by_every_survivor(cluster: list[Membership]) -> None:
    victim = cluster[3]
    killed_at = time.monotonic()
    victim.stop()
    suspected = False
    for survivor in cluster[:3]:
        seen = events_until(survivor, "down", "node-3")
        suspected |= "suspect" in [e.kind for e in seen if e.name == "node-3"]
        # Detected, never announced: no survivor can declare it down before the suspect timeout (0.25 s).
        assert seen[-1].at - killed_at >= 0.25
        assert survivor.alive() == NAMES[:3]
        assert not survivor.isolated()
    assert suspected, "a crash goes through suspicion"


def test_a_leaving_member_hands_over_at_once(cluster: list[Membership]) -> None:
    left_at = time.monotonic()
    cluster[2].leave()
    for survivor in (cluster[0], cluster[1], cluster[3]):
        seen = events_until(survivor, "down", "node-2")
        # Straight to down, no suspicion; the figure (well under the 0.25 s suspect timeout) is in the bench.
        assert [e.kind for e in seen if e.name == "node-2"] == ["down"], seen
        assert seen[-1].at >= left_at


def test_a_cut_cable_isolates_the_node_and_the_cluster_merges_after(
    nodes: GossipLab, cluster: list[Membership]
) -> None:
    cut_at = time.monotonic()
    nodes.cut(1)
    isolated = first_event(cluster[1], "isolated", "node-1")
    # Not before the isolation timeout (0.4 s) after the last datagram heard (at most a probe interval
    # before the cut).
    assert isolated.at - cut_at >= 0.4 - 0.1
    for survivor in (cluster[0], cluster[2], cluster[3]):
        first_event(survivor, "down", "node-1")
        assert not survivor.isolated()
    assert cluster[1].isolated()

    healed_at = time.monotonic()
    nodes.heal(1)
    assert first_event(cluster[1], "reconnected", "node-1").at >= healed_at
    for member in cluster:
        wait_for(lambda m=member: m.alive() == NAMES)  # type: ignore[misc]
    assert not cluster[1].isolated()
    assert cluster[1].stats()["rejoins"] >= 1, "it was declared down, so it came back with a new generation"


def test_gossip_over_ipv6(nodes: GossipLab) -> None:
    with ExitStack() as stack:
        members = []
        for i in range(2):
            member = Membership(NAMES[i], nodes.address(i, family=6), SECRET, netns=nodes.nodes[i])
            member.start()
            stack.callback(member.stop)
            member.set_peers(nodes.addresses(family=6)[:2])
            members.append(member)
        wait_for(lambda: members[0].alive() == NAMES[:2] and members[1].alive() == NAMES[:2])
        assert members[0].members()["node-1"]["address"] == f"[{nodes.v6(1)}]:7946"


def test_namespace_errors(nodes: GossipLab) -> None:
    # The address exists in node 0's namespace only.
    with pytest.raises(
        errors.GossipBindError,
        match=r"cannot bind the gossip socket to 192\.0\.2\.10:7946 in network namespace",
    ):
        Membership("x", nodes.address(0), SECRET, netns=nodes.nodes[1]).start()
    with pytest.raises(errors.GossipNetnsError, match="does not exist"):
        Membership("x", nodes.address(0), SECRET, netns="mlb-no-such-namespace").start()
    # The same address and port in two namespaces are two sockets.
    a = Membership("a", "127.0.0.1:7946", SECRET, netns=nodes.nodes[0])
    b = Membership("b", "127.0.0.1:7946", SECRET, netns=nodes.nodes[1])
    with a, b:
        assert a.running and b.running
