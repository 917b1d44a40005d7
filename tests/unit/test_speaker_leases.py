"""metallb_py.speaker.leases: the gossip Lease builders and whom a speaker expects."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from metallb_py.speaker.leases import PeerLeases, gossip_address, gossip_lease, peer_from_lease


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
