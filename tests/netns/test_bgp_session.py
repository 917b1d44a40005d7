"""BgpSpeaker against real routing daemons (FRR, GoBGP, BIRD 2) in network namespaces.

The speaker's thread runs in a node namespace, the router (metallb_py.testing.routers) in its own; the tests
read the router's own view (`vtysh ... json`, `gobgp -j`, `birdc`) and its kernel FIB. Covered: an iBGP
session carrying a /32 and a /128 (MP-BGP) with communities and local preference, withdrawal, an attribute
change without a session reset, ROUTE-REFRESH; eBGP; the source address; an IPv6 session carrying IPv4 routes
(next hop from the same interface); TCP MD5 matching and mismatching; a wrong ASN both ways; eBGP multihop
(TTL 1 versus 255); the Cease of remove_peer and stop.

Nothing here bounds how long anything takes: deadlines in waits only stop a hang.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from metallb_py._core import BgpEvent, BgpPeerStatus, BgpRoute, BgpSpeaker
from metallb_py.testing.routers import (
    ROUTER_KINDS,
    BgpPath,
    FrrRouter,
    Peer,
    RouterConfig,
    RouterDaemon,
    RouterKind,
    make_router,
    missing_binaries,
)

from ._lab import Lab

pytestmark = pytest.mark.netns

ASN = 64512
OTHER_ASN = 64513
NODE_V4, NODE_V6 = "192.0.2.1", "2001:db8::1"
ROUTER_V4, ROUTER_V6 = "192.0.2.254", "2001:db8::fe"
VIP_V4, VIP_V6 = "198.51.100.10/32", "2001:db8:1::10/128"
ROUTE = BgpRoute(local_pref=250, communities=["65000:100"], large_communities=["large:65000:1:2"])
PATIENCE = 30.0


@dataclass
class Link:
    """A node namespace (the speaker's) and a router namespace on one veth pair, both families."""

    lab: Lab
    node: str
    router: str


@pytest.fixture
def link(netlab: Lab) -> Link:
    node, router = netlab.namespace("node"), netlab.namespace("rtr")
    netlab.veth(node, "n0", router, "r0")
    netlab.address(node, "n0", f"{NODE_V4}/24")
    netlab.address(node, "n0", f"{NODE_V6}/64")
    netlab.address(router, "r0", f"{ROUTER_V4}/24")
    netlab.address(router, "r0", f"{ROUTER_V6}/64")
    return Link(netlab, node, router)


@pytest.fixture
def speaker(link: Link) -> Iterator[BgpSpeaker]:
    with BgpSpeaker(netns=link.node) as the_speaker:
        yield the_speaker


def installed(kind: RouterKind) -> None:
    if missing := missing_binaries(kind):
        pytest.skip(f"{kind} is not installed ({', '.join(missing)})")


def started(link: Link, kind: RouterKind, peer: Peer, asn: int = ASN) -> RouterDaemon:
    """A router of `kind` in the router namespace, waiting for the speaker to connect (passive)."""
    installed(kind)
    router = make_router(kind, link.router, RouterConfig(asn, ROUTER_V4, [peer]))
    router.start()
    return router


@pytest.fixture
def routers() -> Iterator[list[RouterDaemon]]:
    """Routers started by a test, stopped after it however it ends."""
    running: list[RouterDaemon] = []
    yield running
    for router in running:
        router.stop()


def add_peer(speaker: BgpSpeaker, address: str = ROUTER_V4, **options: Any) -> bool:
    args: dict[str, Any] = {
        "my_asn": ASN,
        "peer_asn": ASN,
        "router_id": NODE_V4,
        "connect_time": 2.0,
        **options,
    }
    return speaker.add_peer("rtr", address, **args)


def next_event(speaker: BgpSpeaker, kind: str) -> BgpEvent:
    """The first event of `kind` for the router peer; every other event on the way is skipped."""
    seen = []
    while (event := speaker.next_event(timeout=PATIENCE)) is not None:
        if event.peer == "rtr" and event.kind == kind:
            return event
        seen.append(event)
    raise AssertionError(f"no {kind} event; saw {seen}")


def wait_status(speaker: BgpSpeaker, done: Callable[[BgpPeerStatus], bool]) -> BgpPeerStatus:
    """The router peer's status once `done` holds for it."""
    deadline = time.monotonic() + PATIENCE
    while True:
        status = speaker.peer("rtr")
        assert status is not None
        if done(status):
            return status
        assert time.monotonic() < deadline, f"timed out; last status {status} {status.counters}"
        time.sleep(0.01)


def only_path(routes: dict[str, list[BgpPath]], prefix: str) -> BgpPath:
    [path] = routes[prefix]
    return path


def frr_neighbor(router: RouterDaemon, address: str = NODE_V4) -> dict[str, Any]:
    assert isinstance(router, FrrRouter)
    data: dict[str, Any] = json.loads(router.vtysh(f"show bgp neighbors {address} json"))[address]
    return data


@pytest.mark.parametrize("kind", ROUTER_KINDS)
def test_ibgp_carries_host_routes_of_both_families_with_attributes(
    link: Link, speaker: BgpSpeaker, routers: list[RouterDaemon], kind: RouterKind
) -> None:
    routers.append(router := started(link, kind, Peer(NODE_V4, ASN, passive=True)))
    assert add_peer(speaker) is True
    speaker.set_routes("rtr", {VIP_V4: ROUTE, VIP_V6: ROUTE})
    up = next_event(speaker, "up")
    assert "AS 64512" in up.reason

    v4 = router.wait_routes(lambda rib: VIP_V4 in rib, 4, PATIENCE)
    v6 = router.wait_routes(lambda rib: VIP_V6 in rib, 6, PATIENCE)
    for path, next_hop in ((only_path(v4, VIP_V4), NODE_V4), (only_path(v6, VIP_V6), NODE_V6)):
        # The IPv6 next hop is the node's global address on the session's interface (an IPv4 session).
        assert path.next_hop == next_hop
        assert path.local_pref == 250
        assert path.communities == ("65000:100",)
        assert path.large_communities == ("large:65000:1:2",)
        assert path.as_path == ()

    status = speaker.peer("rtr")
    assert status is not None
    assert (status.state, status.ibgp, status.peer_asn) == ("established", True, ASN)
    assert status.families == ["ipv4", "ipv6"]
    assert (status.local_address, status.next_hop_v4, status.next_hop_v6) == (NODE_V4, NODE_V4, NODE_V6)
    assert status.uptime is not None and status.last_error is None and status.unsendable is None
    assert (status.prefixes_configured, status.prefixes_advertised, status.prefixes_pending) == (2, 2, 0)
    assert status.counters["prefixes_announced"] == 2 and status.counters["established"] == 1
    if kind == "frr":  # GoBGP never installs routes; the lab's BIRD leaves iBGP next hops unresolved
        fib = router.wait_fib(lambda f: VIP_V4 in f, 4, PATIENCE)
        assert [(hop.gateway, hop.dev) for hop in fib[VIP_V4]] == [(NODE_V4, "r0")]

    assert speaker.withdraw("rtr", VIP_V4) is True
    router.wait_routes(lambda rib: VIP_V4 not in rib, 4, PATIENCE)
    assert VIP_V6 in router.routes(6), "the other family is untouched"

    # A changed attribute is a new UPDATE, never a session reset.
    speaker.advertise("rtr", VIP_V4, communities=["65000:200"])
    v4 = router.wait_routes(lambda rib: VIP_V4 in rib, 4, PATIENCE)
    assert only_path(v4, VIP_V4).communities == ("65000:200",)
    assert only_path(v4, VIP_V4).local_pref == 100, "iBGP without a local preference: the default"
    status = speaker.peer("rtr")
    assert status is not None
    assert status.counters["established"] == 1 and status.counters["prefixes_withdrawn"] == 1
    assert speaker.events() == [], "no session went down"


def test_ebgp_carries_our_as_path_and_no_local_preference(
    link: Link, speaker: BgpSpeaker, routers: list[RouterDaemon]
) -> None:
    routers.append(router := started(link, "gobgp", Peer(NODE_V4, ASN, passive=True), asn=OTHER_ASN))
    add_peer(speaker, peer_asn=OTHER_ASN)
    speaker.set_routes("rtr", {VIP_V4: ROUTE})
    path = only_path(router.wait_routes(lambda rib: VIP_V4 in rib, 4, PATIENCE), VIP_V4)
    assert path.as_path == (ASN,)
    assert path.communities == ("65000:100",)
    status = speaker.peer("rtr")
    assert status is not None and status.ibgp is False and status.peer_asn == OTHER_ASN


def test_source_address_is_the_local_end_and_the_next_hop(
    link: Link, speaker: BgpSpeaker, routers: list[RouterDaemon]
) -> None:
    link.lab.address(link.node, "n0", "192.0.2.2/24")
    routers.append(router := started(link, "frr", Peer("192.0.2.2", ASN, passive=True)))
    add_peer(speaker, source_address="192.0.2.2")
    speaker.set_routes("rtr", {VIP_V4: BgpRoute()})
    path = only_path(router.wait_routes(lambda rib: VIP_V4 in rib, 4, PATIENCE), VIP_V4)
    assert path.next_hop == "192.0.2.2" and path.peer == "192.0.2.2"
    status = speaker.peer("rtr")
    assert status is not None and status.local_address == "192.0.2.2"


def test_an_ipv6_session_sends_ipv4_routes_with_the_interfaces_ipv4_next_hop(
    link: Link, speaker: BgpSpeaker, routers: list[RouterDaemon]
) -> None:
    routers.append(router := started(link, "frr", Peer(NODE_V6, ASN, passive=True)))
    add_peer(speaker, ROUTER_V6)
    speaker.set_routes("rtr", {VIP_V4: BgpRoute(), VIP_V6: BgpRoute()})
    v4 = only_path(router.wait_routes(lambda rib: VIP_V4 in rib, 4, PATIENCE), VIP_V4)
    v6 = only_path(router.wait_routes(lambda rib: VIP_V6 in rib, 6, PATIENCE), VIP_V6)
    assert (v4.next_hop, v6.next_hop) == (NODE_V4, NODE_V6)
    status = speaker.peer("rtr")
    assert status is not None and (status.local_address, status.next_hop_v4) == (NODE_V6, NODE_V4)


def test_a_family_without_a_next_hop_waits_and_says_why_until_the_interface_has_one(
    link: Link, speaker: BgpSpeaker, routers: list[RouterDaemon]
) -> None:
    link.lab.sh(link.node, "ip", "address", "del", f"{NODE_V6}/64", "dev", "n0")
    routers.append(router := started(link, "frr", Peer(NODE_V4, ASN, passive=True)))
    add_peer(speaker)
    next_event(speaker, "up")
    speaker.set_routes("rtr", {VIP_V4: BgpRoute(), VIP_V6: BgpRoute()})
    router.wait_routes(lambda rib: VIP_V4 in rib, 4, PATIENCE)
    status = wait_status(speaker, lambda s: s.prefixes_advertised == 1)
    assert status.next_hop_v6 is None and status.prefixes_pending == 1
    assert status.unsendable is not None
    assert status.unsendable.startswith(f"1 prefix cannot be sent: {VIP_V6}: no IPv6 next hop"), (
        status.unsendable
    )

    link.lab.address(link.node, "n0", f"{NODE_V6}/64")
    speaker.set_routes("rtr", {VIP_V4: BgpRoute(), VIP_V6: BgpRoute()})
    path = only_path(router.wait_routes(lambda rib: VIP_V6 in rib, 6, PATIENCE), VIP_V6)
    assert path.next_hop == NODE_V6
    status = wait_status(speaker, lambda s: s.prefixes_pending == 0)
    assert status.unsendable is None and status.counters["established"] == 1


def test_route_refresh_from_frr_sends_the_routes_again(
    link: Link, speaker: BgpSpeaker, routers: list[RouterDaemon]
) -> None:
    routers.append(router := started(link, "frr", Peer(NODE_V4, ASN, passive=True)))
    add_peer(speaker)
    speaker.set_routes("rtr", {VIP_V4: ROUTE})
    router.wait_routes(lambda rib: VIP_V4 in rib, 4, PATIENCE)
    before = speaker.peer("rtr")
    assert before is not None
    assert isinstance(router, FrrRouter)
    router.vtysh(f"clear bgp ipv4 unicast {NODE_V4} soft in")
    status = wait_status(
        speaker, lambda s: s.counters["route_refresh_received"] >= 1 and s.prefixes_pending == 0
    )
    assert status.counters["prefixes_announced"] == before.counters["prefixes_announced"] + 1
    assert status.counters["established"] == 1
    router.wait_routes(lambda rib: VIP_V4 in rib, 4, PATIENCE)


@pytest.mark.parametrize("ours", ["s3cret-key", None], ids=["wrong-password", "no-password"])
def test_md5_mismatch_gives_no_session_and_says_why(
    link: Link, speaker: BgpSpeaker, routers: list[RouterDaemon], ours: str | None
) -> None:
    routers.append(router := started(link, "frr", Peer(NODE_V4, ASN, passive=True, password="right-key")))
    add_peer(speaker, password=ours, connect_time=1.0)
    failed = next_event(speaker, "connect_failed")
    assert "no connection within 1 s" in failed.reason
    if ours is not None:
        assert "TCP MD5" in failed.reason, failed.reason
    status = speaker.peer("rtr")
    assert status is not None
    # TCP itself never came up: not a single OPEN went out.
    assert status.counters["opens_sent"] == 0 and status.counters["connect_failures"] >= 1
    assert status.state != "established" and status.last_error == failed.reason
    assert not router.neighbors()[NODE_V4].established

    # The right password: the same peer comes up (a session parameter change restarts it).
    assert add_peer(speaker, password="right-key", connect_time=1.0) is True
    router.wait_established(NODE_V4, PATIENCE)
    next_event(speaker, "up")


def test_a_router_that_expects_another_asn_refuses_us_with_bad_peer_as(
    link: Link, speaker: BgpSpeaker, routers: list[RouterDaemon]
) -> None:
    # The router thinks we are AS 64599: it answers our OPEN with NOTIFICATION 2/2.
    routers.append(started(link, "frr", Peer(NODE_V4, 64599, passive=True), asn=OTHER_ASN))
    add_peer(speaker, peer_asn=OTHER_ASN)
    refused = next_event(speaker, "notification_received")
    assert (refused.code, refused.subcode) == (2, 2)
    assert refused.reason == "notification received: OPEN message error / bad peer AS (2/2)"
    down = next_event(speaker, "down")
    assert (down.code, down.subcode) == (2, 2)
    status = speaker.peer("rtr")
    assert status is not None
    assert status.counters["notifications_received"] >= 1 and status.counters["established"] == 0
    assert status.last_error is not None and "bad peer AS" in status.last_error


def test_we_refuse_a_router_of_another_asn_with_bad_peer_as(
    link: Link, speaker: BgpSpeaker, routers: list[RouterDaemon]
) -> None:
    routers.append(started(link, "frr", Peer(NODE_V4, ASN, passive=True), asn=OTHER_ASN))
    add_peer(speaker, peer_asn=64599)
    sent = next_event(speaker, "notification_sent")
    assert (sent.code, sent.subcode) == (2, 2)
    down = next_event(speaker, "down")
    assert f"peer AS {OTHER_ASN}, expected 64599" in down.reason
    status = speaker.peer("rtr")
    assert status is not None and status.counters["notifications_sent"] >= 1
    assert status.counters["opens_received"] >= 1 and status.counters["established"] == 0
    # (FRR counts nothing on the configured neighbor for a connection refused before its OPEN was taken.)


def test_ebgp_multihop_sets_ttl_255_and_without_it_ttl_1_dies_on_the_way(
    netlab: Lab, routers: list[RouterDaemon]
) -> None:
    installed("frr")
    # node (192.0.2.1) -- mid (forwards) -- router (198.51.100.1): the router is two hops away.
    node, mid, far = netlab.namespace("node"), netlab.namespace("mid"), netlab.namespace("far")
    netlab.veth(node, "n0", mid, "m0")
    netlab.veth(mid, "m1", far, "f0")
    netlab.address(node, "n0", f"{NODE_V4}/24")
    netlab.address(mid, "m0", f"{ROUTER_V4}/24")
    netlab.address(mid, "m1", "198.51.100.254/24")
    netlab.address(far, "f0", "198.51.100.1/24")
    netlab.sysctl(mid, "net.ipv4.ip_forward", "1")
    netlab.sh(node, "ip", "route", "add", "198.51.100.0/24", "via", ROUTER_V4)
    netlab.sh(far, "ip", "route", "add", "192.0.2.0/24", "via", "198.51.100.254")
    config = RouterConfig(OTHER_ASN, "198.51.100.1", [Peer(NODE_V4, ASN, passive=True, multihop_ttl=255)])
    routers.append(router := make_router("frr", far, config))
    router.start()

    with BgpSpeaker(netns=node) as speaker:
        add_peer(speaker, "198.51.100.1", peer_asn=OTHER_ASN, connect_time=1.0)
        # TTL 1: the SYN expires at `mid`; TCP never comes up.
        next_event(speaker, "connect_failed")
        status = speaker.peer("rtr")
        assert status is not None and status.counters["opens_sent"] == 0

        assert add_peer(speaker, "198.51.100.1", peer_asn=OTHER_ASN, connect_time=1.0, ebgp_multihop=True)
        next_event(speaker, "up")
        speaker.set_routes("rtr", {VIP_V4: BgpRoute()})
        path = only_path(router.wait_routes(lambda rib: VIP_V4 in rib, 4, PATIENCE), VIP_V4)
        assert path.next_hop == NODE_V4 and path.as_path == (ASN,)


def test_remove_peer_and_stop_send_their_cease(
    link: Link, speaker: BgpSpeaker, routers: list[RouterDaemon]
) -> None:
    routers.append(router := started(link, "frr", Peer(NODE_V4, ASN, passive=True)))
    add_peer(speaker)
    speaker.set_routes("rtr", {VIP_V4: BgpRoute()})
    router.wait_routes(lambda rib: VIP_V4 in rib, 4, PATIENCE)

    assert speaker.remove_peer("rtr") is True
    router.wait_neighbors(lambda n: frr_neighbor(router).get("lastErrorCodeSubcode") == "0603", PATIENCE)
    assert frr_neighbor(router)["lastNotificationReason"] == "Cease/Peer De-configured"
    router.wait_routes(lambda rib: VIP_V4 not in rib, 4, PATIENCE)

    add_peer(speaker)
    router.wait_established(NODE_V4, PATIENCE)
    speaker.stop()
    router.wait_neighbors(lambda n: frr_neighbor(router).get("lastErrorCodeSubcode") == "0602", PATIENCE)
    assert not router.neighbors()[NODE_V4].established
