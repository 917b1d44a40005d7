"""Gossip between network namespaces over real UDP: discovery, a crash, a leave, a cut cable, IPv6, a restart
with the wall clock stepped back, hostile datagrams, and members that all took one local address.

Each node is a namespace on one bridge (see _gossip_lab.py); the members run in this process, each on its
own Rust thread inside its node's namespace, except where a member must be killed and restarted with another
wall clock: that one is a child process. Nothing here bounds how long anything takes (behaviour, not speed;
deadlines in waits only stop a hang); the figures are printed by benches/test_bench_gossip.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from metallb_py import errors
from metallb_py._core import Membership, MembershipEvent

from ._gossip_lab import GOSSIP_PORT, SECRET, Agent, GossipLab, gossip_lab
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
        assert stats["bad_tag"] == stats["replayed"] == stats["stale_life"] == stats["self"] == 0
        assert stats["send_errors"] == stats["generations_raised"] == 0
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


def started(stack: ExitStack, nodes: GossipLab, i: int, peers: list[str]) -> Membership:
    member = Membership(NAMES[i], nodes.address(i), SECRET, netns=nodes.nodes[i])
    member.start()
    stack.callback(member.stop)
    member.set_peers(peers)
    return member


def test_a_restart_with_the_clock_stepped_back_supersedes_its_previous_life(nodes: GossipLab) -> None:
    """Regression: the generation came from the wall clock alone, so node-3 restarted two hours back in time
    was older than its previous life, which the others still held; they refused it and it never came back."""
    with ExitStack() as stack:
        members = [started(stack, nodes, i, nodes.addresses()) for i in range(3)]
        first = Agent(NAMES[3], nodes.nodes[3], nodes.address(3), nodes.addresses())
        stack.callback(first.kill)
        for member in members:
            wait_for(lambda m=member: m.alive() == NAMES)  # type: ignore[misc]
        before = members[0].members()["node-3"]["generation"]
        assert before == first.generation

        first.kill()
        restarted = Agent(NAMES[3], nodes.nodes[3], nodes.address(3), nodes.addresses(), clock_offset="-2h")
        stack.callback(restarted.kill)
        assert restarted.generation < before - 3_600_000, "its wall clock is really two hours back"

        def superseded(member: Membership) -> bool:
            seen = member.members()["node-3"]
            return seen["state"] == "alive" and seen["generation"] > before and member.alive() == NAMES

        for member in members:
            wait_for(lambda m=member: superseded(m))  # type: ignore[misc]
            assert not member.isolated()
        assert sum(m.stats()["stale_life"] for m in members) >= 1, "the older life was answered"


# Runs inside a namespace the test made, with a plain UDP socket: waits for one authentic datagram (a member
# is told to announce itself there), then sends the target datagrams sealed with another key, truncated or
# foreign ones, and the authentic one three times. Prints what it sent, by the counter each should raise.
HOSTILE = r"""
import hashlib, hmac, json, os, socket, sys
target, listen, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((listen, port))
print("bound", flush=True)
sock.settimeout(30)
authentic, _ = sock.recvfrom(2048)
signed = authentic[:-16]
other_key = b"not the cluster's secret, 32 b!"
wrong_key = [signed + hmac.new(other_key, signed, hashlib.sha256).digest()[:16]]
wrong_key += [b"MG\x01" + os.urandom(16) + os.urandom(40) + os.urandom(16) for _ in range(4)]
malformed = [authentic[:20], b"MG\x01", b"GET / HTTP/1.0\r\n\r\n" + b"x" * 40]
for datagram in wrong_key + malformed + [authentic] * 3:
    sock.sendto(datagram, (target, port))
print(json.dumps({"bad_tag": len(wrong_key), "malformed": len(malformed), "replayed": 3}), flush=True)
"""


def test_hostile_datagrams_are_dropped_and_counted(nodes: GossipLab) -> None:
    with ExitStack() as stack:
        peers = nodes.addresses()[:3]
        members = [started(stack, nodes, i, peers) for i in range(3)]
        for member in members:
            wait_for(lambda m=member: m.alive() == NAMES[:3])  # type: ignore[misc]
        target = members[0]
        target.events()
        generations = {name: info["generation"] for name, info in target.members().items()}
        before = target.stats()

        sender_args = [nodes.v4(0), nodes.v4(3), str(GOSSIP_PORT)]
        hostile = stack.enter_context(
            subprocess.Popen(
                ["ip", "netns", "exec", nodes.nodes[3], sys.executable, "-c", HOSTILE, *sender_args],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
        stack.callback(hostile.kill)  # Runs first: a hung sender is killed before its pipe is closed.
        assert hostile.stdout is not None
        assert hostile.stdout.readline().strip() == "bound"
        # node-1 announces itself to the hostile namespace: that is the authentic datagram it records.
        members[1].join([nodes.address(3)])
        sent = json.loads(hostile.stdout.readline())
        assert hostile.wait() == 0

        def grew(key: str) -> int:
            return target.stats()[key] - before[key]

        wait_for(lambda: grew("bad_tag") >= sent["bad_tag"] and grew("malformed") >= sent["malformed"])
        wait_for(lambda: grew("replayed") >= sent["replayed"] - 1)
        assert (grew("bad_tag"), grew("malformed")) == (sent["bad_tag"], sent["malformed"])
        # The first copy may still be new to the target (node-1 sent it elsewhere); the next two are replays.
        assert sent["replayed"] - 1 <= grew("replayed") <= sent["replayed"]
        assert grew("self") == grew("stale_life") == 0

        for member in members:
            assert member.alive() == NAMES[:3]
            assert not member.isolated()
        assert {name: info["generation"] for name, info in target.members().items()} == generations
        kinds = {(e.kind, e.name) for e in target.events()}
        assert not {k for k in kinds if k[0] in ("up", "down")}, kinds


def test_members_that_all_took_one_local_address_are_isolated(nodes: GossipLab) -> None:
    """The reported split brain: a Service address bound on every node (as kube-proxy in IPVS mode binds it
    on kube-ipvs0) taken as every speaker's gossip address. What each sends to it lands on itself, so each
    must see that it hears none of the peers the cluster lists, and stop (isolated), not carry on alone."""
    shared = f"203.0.113.1:{GOSSIP_PORT}"
    with ExitStack() as stack:
        members = []
        for i in range(3):
            nodes.lab.address(nodes.nodes[i], "lo", "203.0.113.1/32")
            member = Membership(NAMES[i], shared, SECRET, netns=nodes.nodes[i])
            member.start()
            stack.callback(member.stop)
            member.set_peers([shared] * 3)
            members.append(member)
        for member in members:
            wait_for(member.isolated)
            assert member.alive() == [member.name]
            assert list(member.members()) == [member.name]
            assert "isolated" in [e.kind for e in member.events()]


def test_datagrams_from_itself_or_its_own_name_are_dropped_and_counted(nodes: GossipLab) -> None:
    """node-0's configuration copied to a second node (same name, another address), and an address local to
    node 0 listed as a peer (what node 0 sends there comes back to its own socket): neither is a peer heard.
    Both are dropped and counted as "self", and each node-0, hearing nobody else, is isolated."""
    local = f"203.0.113.1:{GOSSIP_PORT}"
    nodes.lab.address(nodes.nodes[0], "lo", "203.0.113.1/32")
    with ExitStack() as stack:
        first = Membership(
            NAMES[0], f"0.0.0.0:{GOSSIP_PORT}", SECRET, advertise=nodes.address(0), netns=nodes.nodes[0]
        )
        copy = Membership(NAMES[0], nodes.address(1), SECRET, netns=nodes.nodes[1])
        for member in (first, copy):
            member.start()
            stack.callback(member.stop)
        first.set_peers([nodes.address(0), nodes.address(1), local])
        copy.set_peers([nodes.address(0), nodes.address(1)])
        for member in (first, copy):
            wait_for(lambda m=member: m.isolated() and m.stats()["self"] > 0)  # type: ignore[misc]
            assert member.alive() == [NAMES[0]]
            assert list(member.members()) == [NAMES[0]]
            assert member.stats()["malformed"] == 0
