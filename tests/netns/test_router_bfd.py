"""BFD and graceful restart between the real routing daemons, without our speaker: FRR (bfdd) and BIRD peer
with each other across the lab's switch, so each is known to be a working other end before our speaker
meets it. The router namespace runs one daemon, a node namespace the other (`NetnsLab(router=True)`).

A cut link here blocks the node's switch port (bridge port state `disabled`): frames stop both ways while
both ends keep their carrier, so only BFD (or the hold timer) can tell. Detection times are printed
(`pytest -s`), never asserted.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest

from metallb_py.testing import NetnsLab, Peering
from metallb_py.testing.bgplab import node_config, router_config
from metallb_py.testing.routers import (
    BfdConfig,
    BirdRouter,
    FrrRouter,
    RouterConfig,
    RouterDaemon,
    RouterKind,
    make_router,
)

from .test_routers import HOST4, HOST6, VIP4, VIP6, legs, need

pytestmark = pytest.mark.netns

# Fast enough that a cut shows within a second, slow enough for two loaded cores.
FAST = BfdConfig(receive_interval_ms=100, transmit_interval_ms=100, detect_multiplier=3)
# What each daemon writes when BFD ended the session (FRR's NOTIFICATION Cease/10, BIRD's own error).
BFD_REASON = {"frr": "Cease/BFD Down", "bird": "Error: BFD session down"}


@dataclass
class Pair:
    """A router daemon and a node daemon peering over the switch; `*_end` is each one's session address."""

    lab: NetnsLab
    router: RouterDaemon
    node: RouterDaemon
    router_end: str
    node_end: str


def with_bfd(config: RouterConfig, bfd: BfdConfig | None) -> RouterConfig:
    return replace(config, peers=tuple(replace(p, bfd=bfd) for p in config.peers))


@pytest.fixture
def make_pair() -> Iterator[Callable[..., Pair]]:
    """Builds a lab with one node and starts a daemon on each side; all stopped and removed at the end."""
    labs: list[NetnsLab] = []
    daemons: list[RouterDaemon] = []

    def make(
        router: RouterKind,
        node: RouterKind,
        *,
        router_bfd: BfdConfig | None = FAST,
        node_bfd: BfdConfig | None = FAST,
        peering: Peering | None = None,
    ) -> Pair:
        need(router, node)
        peering = peering or Peering()
        lab = NetnsLab(nodes=("node1",), router=True, prefix="mlbbfd")
        labs.append(lab)
        lab.start()
        router_side = with_bfd(router_config(lab, peering), router_bfd)
        node_side = with_bfd(node_config(lab, "node1", peering, [VIP4, VIP6]), node_bfd)
        pair = Pair(
            lab=lab,
            router=make_router(router, lab.router_ns, router_side, name="router"),
            node=make_router(node, lab.node_ns("node1"), node_side, name="node1"),
            router_end=peering.router_end(lab, 4),
            node_end=lab.node_address("node1", 4),
        )
        for daemon in (pair.router, pair.node):
            daemons.append(daemon)
            daemon.start()
        return pair

    yield make
    for daemon in reversed(daemons):
        daemon.stop()
    for lab in labs:
        lab.close()


def switch_port(lab: NetnsLab, node: str) -> str:
    """The switch's port for `node`: the bridge namespace's end of the node's veth."""
    (link,) = json.loads(lab.exec(lab.node_ns(node), "ip", "-j", "link", "show", "dev", "eth0"))
    for port in json.loads(lab.exec(lab.bridge_ns, "ip", "-j", "link", "show")):
        if port["ifindex"] == link["link_index"]:
            return str(port["ifname"])
    raise AssertionError(f"no switch port for {node}")


@contextlib.contextmanager
def blocked(lab: NetnsLab, node: str) -> Iterator[None]:
    """The node's switch port stops forwarding (STP state disabled) while both links stay up."""
    port = switch_port(lab, node)
    lab.exec(lab.bridge_ns, "bridge", "link", "set", "dev", port, "state", "0")
    try:
        yield
    finally:
        lab.exec(lab.bridge_ns, "bridge", "link", "set", "dev", port, "state", "3")


def carrier(lab: NetnsLab, netns: str) -> bool:
    (link,) = json.loads(lab.exec(netns, "ip", "-j", "link", "show", "dev", "eth0"))
    return "LOWER_UP" in link["flags"]


def first_times(conditions: dict[str, Callable[[], bool]], timeout: float) -> dict[str, float]:
    """Polls every condition until each has held once; returns the seconds to the first time each held."""
    start = time.monotonic()
    seen: dict[str, float] = {}
    while len(seen) < len(conditions):
        for name, condition in conditions.items():
            if name not in seen and condition():
                seen[name] = time.monotonic() - start
        if time.monotonic() - start > timeout:
            missing = sorted(set(conditions) - set(seen))
            raise AssertionError(f"not within {timeout} s: {missing} (seen: {seen})")
        time.sleep(0.01)
    return seen


@pytest.mark.parametrize(("router", "node"), [("frr", "bird"), ("bird", "frr")])
def test_bfd_comes_up_on_both_ends_with_each_sides_settings(
    router: RouterKind, node: RouterKind, make_pair: Callable[..., Pair]
) -> None:
    # Different settings on each side: each end's view shows the other's.
    bird = BfdConfig(receive_interval_ms=200, transmit_interval_ms=150, detect_multiplier=4)
    frr = BfdConfig(receive_interval_ms=250, transmit_interval_ms=120, detect_multiplier=5)
    pair = make_pair(
        router, node, router_bfd=bird if router == "bird" else frr, node_bfd=bird if node == "bird" else frr
    )
    pair.router.wait_established(pair.node_end)
    at_router = pair.router.wait_bfd(pair.node_end)
    at_node = pair.node.wait_bfd(pair.router_end)
    frr_view = at_router if router == "frr" else at_node
    bird_view = at_node if router == "frr" else at_router
    assert (frr_view.multihop, bird_view.multihop) == (False, False)
    assert frr_view.interface == bird_view.interface == "eth0"
    # FRR shows what BIRD's packets announce: BIRD was configured as asked.
    assert (
        frr_view.remote_receive_interval_ms,
        frr_view.remote_transmit_interval_ms,
        frr_view.remote_detect_multiplier,
    ) == (200, 150, 4)
    assert (frr_view.receive_interval_ms, frr_view.transmit_interval_ms, frr_view.detect_multiplier) == (
        250,
        120,
        5,
    )
    assert (frr_view.local_diagnostic, frr_view.remote_diagnostic) == ("ok", "ok")
    assert bird_view.uptime_s is not None and bird_view.downtime_s is None
    frr_daemon = pair.router if router == "frr" else pair.node
    assert isinstance(frr_daemon, FrrRouter)
    counters = frr_daemon.bfd_counters()[frr_view.address]
    assert (counters.up_events, counters.down_events) == (1, 0)
    assert counters.control_received > 0 and counters.control_sent > 0


@pytest.mark.parametrize(("router", "node"), [("frr", "bird"), ("bird", "frr")])
def test_a_cut_link_takes_bfd_down_on_both_ends_and_the_session_with_it(
    router: RouterKind, node: RouterKind, make_pair: Callable[..., Pair]
) -> None:
    pair = make_pair(router, node)
    pair.router.wait_established(pair.node_end)
    pair.router.wait_bfd(pair.node_end)
    pair.node.wait_bfd(pair.router_end)
    assert legs(pair.router.wait_fib(lambda fib: HOST4 in fib), HOST4) == {pair.node_end}

    with blocked(pair.lab, "node1"):
        # Neither end lost its carrier: nothing but BFD (or the hold timer, minutes away) can tell.
        assert carrier(pair.lab, pair.lab.node_ns("node1")) and carrier(pair.lab, pair.lab.router_ns)
        times = first_times(
            {
                "router BFD down": lambda: pair.router.bfd_peers()[pair.node_end].state == "down",
                "node BFD down": lambda: pair.node.bfd_peers()[pair.router_end].state == "down",
                "router session down": lambda: not pair.router.neighbors()[pair.node_end].established,
                "node session down": lambda: not pair.node.neighbors()[pair.router_end].established,
                "route out of the router's FIB": lambda: HOST4 not in pair.router.fib(4),
            },
            timeout=30,
        )
        print(
            f"\n{router} router, {node} node, BFD 100 ms x 3, cut at 0:",
            {k: f"{v:.3f} s" for k, v in times.items()},
        )
        at_router = pair.router.neighbors()[pair.node_end]
        at_node = pair.node.neighbors()[pair.router_end]
        # Ended by BFD, not by the hold timer: each daemon names BFD as the reason.
        assert at_router.last_error == BFD_REASON[router]
        assert at_node.last_error == BFD_REASON[node]
        frr_view = (pair.router if router == "frr" else pair.node).bfd_peers()
        (view,) = frr_view.values()
        assert view.local_diagnostic == "control detection time expired"
        assert HOST6 not in pair.router.fib(6)

    # The link back: BFD, the session and the route return.
    pair.router.wait_bfd(pair.node_end, timeout=20)
    pair.router.wait_established(pair.node_end, timeout=20)
    assert legs(pair.router.wait_fib(lambda fib: HOST4 in fib), HOST4) == {pair.node_end}


@pytest.mark.parametrize(("router", "node"), [("frr", "bird"), ("bird", "frr")])
def test_ibgp_neighbors_on_the_link_run_single_hop_bfd(
    router: RouterKind, node: RouterKind, make_pair: Callable[..., Pair]
) -> None:
    # FRR picks single hop for an iBGP neighbor on a connected network; BIRD's iBGP is multihop unless told
    # `direct`, and a single-hop end never hears a multihop one.
    pair = make_pair(router, node, peering=Peering(router_asn=64512, node_asn=64512))
    pair.router.wait_established(pair.node_end)
    assert pair.router.wait_bfd(pair.node_end).multihop is False
    assert pair.node.wait_bfd(pair.router_end).multihop is False


@pytest.mark.parametrize("node", ["bird", "frr"])
def test_multihop_bfd_beside_an_ebgp_multihop_session(
    node: RouterKind, make_pair: Callable[..., Pair]
) -> None:
    # The node peers with the router's far address (one hop past the LAN): both ends ask for multihop BFD
    # (UDP 4784). BIRD sends multihop packets with the kernel's default TTL (64), below FRR's default
    # minimum TTL (254, for senders that use 255 as FRR does): FRR must accept less from BIRD.
    router_bfd = replace(FAST, minimum_ttl=64) if node == "bird" else FAST
    pair = make_pair("frr", node, router_bfd=router_bfd, peering=Peering(multihop_ttl=2))
    assert pair.router_end == pair.lab.router_client_side_address(4)
    pair.node.wait_established(pair.router_end)
    at_router = pair.router.wait_bfd(pair.node_end)
    at_node = pair.node.wait_bfd(pair.router_end)
    assert (at_router.multihop, at_node.multihop) == (True, True)
    assert at_router.local_address == pair.router_end and at_router.interface is None
    assert at_router.minimum_ttl == (64 if node == "bird" else 254)

    with blocked(pair.lab, "node1"):
        times = first_times(
            {
                "router BFD down": lambda: pair.router.bfd_peers()[pair.node_end].state == "down",
                "router session down": lambda: not pair.router.neighbors()[pair.node_end].established,
            },
            timeout=30,
        )
        print(f"\nmultihop, frr router, {node} node, cut at 0:", {k: f"{v:.3f} s" for k, v in times.items()})
        assert pair.router.neighbors()[pair.node_end].last_error == BFD_REASON["frr"]
    pair.router.wait_bfd(pair.node_end, timeout=20)


@pytest.mark.parametrize(
    ("router", "node", "passive"),
    [("frr", "bird", "router"), ("frr", "bird", "node"), ("bird", "frr", "router")],
)
def test_a_passive_end_answers_an_active_one(
    router: RouterKind, node: RouterKind, passive: str, make_pair: Callable[..., Pair]
) -> None:
    quiet = replace(FAST, passive=True)
    pair = make_pair(
        router,
        node,
        router_bfd=quiet if passive == "router" else FAST,
        node_bfd=quiet if passive == "node" else FAST,
    )
    pair.router.wait_established(pair.node_end)
    at_router = pair.router.wait_bfd(pair.node_end)
    at_node = pair.node.wait_bfd(pair.router_end)
    frr_view = at_router if router == "frr" else at_node
    assert frr_view.passive == ((passive == "router") == (router == "frr"))


def test_frr_resets_the_session_when_the_neighbor_signals_bfd_admin_down(
    make_pair: Callable[..., Pair],
) -> None:
    # RFC 5882 asks a client not to take a neighbor's AdminDown as a path failure; FRR 8.4's bgpd does: it
    # sends NOTIFICATION Cease/10 (BFD Down) and drops the neighbor's routes. A speaker stopping gracefully
    # must therefore close its BGP sessions before it sends AdminDown (see the graceful restart test).
    pair = make_pair("frr", "frr")
    pair.router.wait_established(pair.node_end)
    pair.router.wait_bfd(pair.node_end)
    assert isinstance(pair.node, FrrRouter)
    # bfdd's own configuration for the session bgpd made (same peer, local address and interface).
    pair.node.configure(
        "bfd", f"peer {pair.router_end} local-address {pair.node_end} interface eth0", "shutdown"
    )
    pair.node.wait_bfd(pair.router_end, "admin-down")
    at_router = pair.router.wait_bfd(pair.node_end, "down")
    assert at_router.local_diagnostic == "neighbor signaled session down"
    # The NOTIFICATION reached the node (its bgpd knows nothing of the AdminDown its bfdd sent).
    seen = pair.node.wait_neighbors(lambda n: n[pair.router_end].last_error == BFD_REASON["frr"])
    assert seen[pair.router_end].last_error == "Cease/BFD Down"


@pytest.mark.parametrize("bfd", [False, True], ids=["without-bfd", "with-bfd"])
def test_frr_keeps_a_gracefully_restarting_birds_routes(bfd: bool, make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(
        "frr",
        "bird",
        router_bfd=FAST if bfd else None,
        node_bfd=FAST if bfd else None,
        peering=Peering(graceful_restart=True),
    )
    router, node = pair.router, pair.node
    assert isinstance(node, BirdRouter)
    assert router.wait_established(pair.node_end).graceful_restart is True
    assert node.neighbors()[pair.router_end].graceful_restart is True
    router.wait_routes(lambda rib: HOST4 in rib)
    router.wait_routes(lambda rib: HOST6 in rib, family=6)
    before = router.graceful_restart_state(pair.node_end)
    assert (before.negotiated, before.neighbor_restarting, before.stale_routes) == (True, False, 0)
    assert before.neighbor_restart_time_s == 120  # BIRD's default restart time, from its capability

    # BIRD closes its sessions without a NOTIFICATION and exits (with BFD: its BFD session goes silent
    # after the TCP session closed, and FRR's BFD goes down while the neighbor is already restarting).
    node.graceful_stop()
    times = first_times(
        {
            "restarting": lambda: router.graceful_restart_state(pair.node_end).neighbor_restarting,
            **({"BFD down": lambda: router.bfd_peers()[pair.node_end].state == "down"} if bfd else {}),
        },
        timeout=15,
    )
    during = router.graceful_restart_state(pair.node_end)
    assert during.stale_routes == 2  # the IPv4 and the IPv6 prefix
    assert all(p.stale for p in router.routes(4)[HOST4]) and all(p.stale for p in router.routes(6)[HOST6])
    assert legs(router.fib(4), HOST4) == {pair.node_end}  # still forwarding to the node

    node.start()
    back = first_times(
        {
            "established": lambda: router.neighbors()[pair.node_end].established,
            "no stale route": lambda: router.graceful_restart_state(pair.node_end).stale_routes == 0,
        },
        timeout=30,
    )
    print(f"\ngraceful restart ({'with' if bfd else 'without'} BFD):", times, back)
    assert not router.routes(4)[HOST4][0].stale
    assert legs(router.fib(4), HOST4) == {pair.node_end}


def test_bird_drops_a_restarting_neighbors_routes_when_bfd_goes_down(make_pair: Callable[..., Pair]) -> None:
    # Unlike FRR, BIRD 2.0 (`bfd on`) ends the graceful restart of a neighbor whose BFD session goes down
    # after its TCP session closed: the stale routes go with it. Slow BFD leaves time to see the restart.
    slow = BfdConfig(receive_interval_ms=1000, transmit_interval_ms=1000, detect_multiplier=3)
    pair = make_pair("bird", "bird", router_bfd=slow, node_bfd=slow, peering=Peering(graceful_restart=True))
    router, node = pair.router, pair.node
    assert isinstance(node, BirdRouter)
    router.wait_established(pair.node_end)
    router.wait_bfd(pair.node_end)
    router.wait_fib(lambda fib: HOST4 in fib)
    node.graceful_stop()
    times = first_times(
        {
            "restarting, routes stale": lambda: (
                router.graceful_restart_state(pair.node_end).stale_routes == 2
            ),
            "BFD down": lambda: router.bfd_peers()[pair.node_end].state == "down",
            "routes flushed": lambda: HOST4 not in router.fib(4),
        },
        timeout=15,
    )
    print("\nBIRD router, BIRD node restarting gracefully with BFD 1 s x 3:", times)
    assert times["restarting, routes stale"] < times["routes flushed"]
    after = router.graceful_restart_state(pair.node_end)
    assert (after.neighbor_restarting, after.stale_routes) == (False, 0)
    assert router.neighbors()[pair.node_end].last_error == BFD_REASON["bird"]
