"""metallb_py.speaker.leases: the gossip Lease builders and whom a speaker expects."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from metallb_py.k8s.watch import Change
from metallb_py.speaker.leases import (
    GOSSIP_ASK_ANNOTATION,
    LeaseKeeper,
    PeerLeases,
    gossip_address,
    gossip_lease,
    lease_ask,
    peer_from_lease,
)


def test_gossip_lease_round_trip() -> None:
    lease = gossip_lease(
        "node1", "metallb-system", gossip_address("2001:db8::1"), dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    )
    assert lease["metadata"]["name"] == "metallb-py-speaker-node1"
    assert lease["spec"]["renewTime"] == "2026-01-02T00:00:00.000000Z"
    assert peer_from_lease(lease) == ("node1", "[2001:db8::1]:7946")
    assert gossip_address("198.51.100.1", 1) == "198.51.100.1:1"


@pytest.mark.parametrize("address", ["", "198.51.100.1", "198.51.100.1:0", "198.51.100.1:x", "host:7946"])
def test_malformed_leases_are_skipped(address: str) -> None:
    lease = gossip_lease("n", "ns", "198.51.100.1:7946", dt.datetime.now(dt.UTC))
    lease["metadata"]["annotations"]["metallb-py.io/gossip-address"] = address
    assert peer_from_lease(lease) is None


def lease(node: str, renewed: str, address: str = "198.51.100.9:7946") -> dict[str, Any]:
    obj = gossip_lease(node, "ns", address, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    obj["spec"]["renewTime"] = renewed
    return obj


def test_peer_leases_expire_on_this_clock_only_while_the_api_answers() -> None:
    peers = PeerLeases(duration=6.0)
    assert peers.observe(lease("a", "t1", "198.51.100.1:7946"), now=100.0), "a new peer is news"
    assert peers.observe(lease("b", "t1", "198.51.100.2:7946"), now=100.0)
    assert not peers.observe(lease("b", "t1", "198.51.100.2:7946"), now=104.0)  # unchanged: not a renewal
    assert not peers.observe(lease("a", "t2", "198.51.100.1:7946"), now=104.0), "a renewal is not news"
    assert peers.expected(105.0, api_healthy=True) == {"a": "198.51.100.1:7946", "b": "198.51.100.2:7946"}
    # b stopped renewing 6 s ago (by this clock, whatever its timestamps say): no longer expected.
    assert peers.expected(106.0, api_healthy=True) == {"a": "198.51.100.1:7946"}
    # Cut off from the API too, every Lease looks stale: keep expecting everyone (stay isolated).
    assert set(peers.expected(1000.0, api_healthy=False)) == {"a", "b"}
    # A new address is a change too; a deleted Lease is forgotten.
    assert peers.observe(lease("b", "t1", "198.51.100.22:7946"), now=107.0)
    assert peers.expected(107.0, api_healthy=True)["b"] == "198.51.100.22:7946"
    peers.forget("b")
    peers.observe({"metadata": {"name": "not-a-speaker-lease"}}, now=107.0)
    assert set(peers.expected(107.0, api_healthy=True)) == {"a"}


def test_gossip_lease_carries_its_duration() -> None:
    obj = gossip_lease("n", "ns", "198.51.100.1:7946", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), 5.5)
    assert obj["spec"]["leaseDurationSeconds"] == 6


def test_a_peer_that_lets_an_ask_go_unanswered_is_no_longer_expected() -> None:
    """Leases go stale late (30 s): a speaker hearing nobody asks, and the peers that do not renew within
    answer_within are dropped at once; one that answers stays, and one that comes back is expected again."""
    peers = PeerLeases(duration=30.0, answer_within=3.0)
    peers.observe(lease("a", "t1", "198.51.100.1:7946"), now=100.0)
    peers.observe(lease("b", "t1", "198.51.100.2:7946"), now=100.0)
    peers.asked(105.0)
    assert peers.unanswered(200.0) == set(), "nobody is dropped before the ask's echo was seen"
    peers.echoed(105.0, lag=0.0)
    peers.observe(lease("a", "t2", "198.51.100.1:7946"), now=105.5)  # a answers
    assert set(peers.expected(107.9, api_healthy=True)) == {"a", "b"}, "b still has time to answer"
    assert peers.unanswered(108.0) == {"b"}
    assert set(peers.expected(108.0, api_healthy=True)) == {"a"}
    assert set(peers.expected(108.0, api_healthy=False)) == {"a", "b"}, "no answers count without the API"
    # A later ask that a does not answer drops it too; b renewing (a restart) brings it back.
    peers.asked(110.0)
    peers.echoed(110.0, lag=0.0)
    peers.observe(lease("b", "t2", "198.51.100.2:7946"), now=111.0)
    assert set(peers.expected(113.0, api_healthy=True)) == {"b"}


def test_a_slow_api_server_gives_peers_longer_to_answer() -> None:
    """The ask took 2 s to come back through the watch: each answer needs a PATCH and a watch event too, so
    peers get answer_within plus twice that lag, from the echo."""
    peers = PeerLeases(duration=30.0, answer_within=3.0)
    peers.observe(lease("a", "t1"), now=100.0)
    peers.asked(101.0)
    peers.echoed(103.0, lag=2.0)
    assert peers.unanswered(109.9) == set()
    assert peers.unanswered(110.0) == {"a"}


@pytest.mark.parametrize("echo_first", [False, True], ids=["answer-then-echo", "echo-then-answer"])
def test_the_keeper_starts_the_answer_time_at_its_own_asks_echo(echo_first: bool) -> None:
    clock = [100.0]
    own = lease("me", "t2", "198.51.100.1:7946")

    def echo() -> None:
        keeper.on_lease(Change("MODIFIED", f"ns/{keeper.name}", own))

    class Api:
        def patch(self, resource: object, name: str, body: dict[str, Any], namespace: str) -> dict[str, Any]:
            ask = body["metadata"]["annotations"][GOSSIP_ASK_ANNOTATION]
            own["metadata"]["annotations"][GOSSIP_ASK_ANNOTATION] = ask
            clock[0] = 102.0  # the watch shows the ask 1 s after it was sent
            if echo_first:
                echo()  # the watch was quicker than the PATCH's answer
            return {}

    keeper = LeaseKeeper(
        Api(),  # type: ignore[arg-type]
        "me",
        "ns",
        "198.51.100.1:7946",
        on_news=lambda: None,
        clock=lambda: clock[0],
    )
    keeper.on_lease(Change("ADDED", "ns/metallb-py-speaker-a", lease("a", "t1")))
    clock[0] = 101.0
    assert keeper.ask(clock[0])
    assert keeper.renew_now() and keeper.asks == 1
    if not echo_first:
        assert set(keeper.expected(116.0)) == {"a"}, "no echo yet: nobody is dropped"
        echo()
    # Echoed at 102, 1 s after it was sent: peers have until 102 + 3 + 2 * 1.
    assert set(keeper.expected(106.9)) == {"a"}
    assert keeper.expected(107.0) == {}


def test_without_an_ask_a_lease_counts_for_its_whole_duration() -> None:
    peers = PeerLeases(duration=30.0)
    peers.observe(lease("a", "t1"), now=0.0)
    assert set(peers.expected(29.9, api_healthy=True)) == {"a"}
    assert peers.expected(30.0, api_healthy=True) == {}
    assert lease_ask(lease("a", "t1")) is None
    asked = lease("a", "t1")
    asked["metadata"]["annotations"][GOSSIP_ASK_ANNOTATION] = "2026-01-01T00:00:00.000000Z"
    assert lease_ask(asked) == "2026-01-01T00:00:00.000000Z"
