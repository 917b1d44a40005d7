"""Our BgpSpeaker's BFD and graceful restart against real routing daemons (issue 10, item 3, speaker level).

The speaker (metallb_py.BgpSpeaker) runs in a node namespace of a `NetnsLab(router=True)`; FRR (bgpd + bfdd)
or BIRD 2 runs in the router namespace, waiting for the speaker to connect. Each test reads both views: our
BgpPeerStatus (its `bfd`, `held_by_bfd`, counters) and events, and the daemon's own (`show bfd peers`,
`show bgp neighbors`, its kernel FIB). Covered: BFD beside IPv4 and IPv6 sessions with FRR and BIRD;
a cut cable (the switch port down, or blocked so both ends keep their carrier) with BFD 50 ms x 3 under a
90 s hold time, and the link back; multihop beside eBGP multihop; new intervals on an Up session (poll
sequence, no flap); a passive end either side; the AdminDown of stop() and remove_peer(), and that the
Cease reaches the router before it (on the wire, tests/netns/_bfd_lab.py); graceful restart:
ten speaker restarts with BFD while a client keeps requesting a VIP through the router, and the negative
control without it.

The VIP is in 192.0.2.0/24 (a documentation range the client routes via the router).
Times are printed (`pytest -s`), never asserted: deadlines in waits only stop a hang. A time is when a read
first showed the change; a daemon's view takes a `vtysh`/`birdc` call (tens of milliseconds) to read.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from metallb_py import BfdSettings, BfdStatus, BgpPeerStatus, BgpRoute, BgpSpeaker
from metallb_py.testing import NetnsLab, Prober
from metallb_py.testing.routers import (
    BfdConfig,
    BfdPeerView,
    FrrRouter,
    Peer,
    RouterConfig,
    RouterDaemon,
    RouterKind,
    make_router,
)

from ._bfd_lab import Wire
from .test_router_bfd import blocked, carrier
from .test_routers import legs, need

pytestmark = pytest.mark.netns

ROUTER_ASN, NODE_ASN = 64512, 64513
NODE = "node1"
VIP4 = "192.0.2.10"
HOST4 = f"{VIP4}/32"
VIP_ROUTES = ("192.0.2.0/24",)
HOLD_TIME = 90  # both ends: only BFD can end a session within the tests' time
PATIENCE = 30.0
# Detection in 150 ms: a cut shows at once, and a botched poll sequence would flap visibly.
FAST = BfdConfig(receive_interval_ms=50, transmit_interval_ms=50, detect_multiplier=3)
OURS_FAST = BfdSettings(receive_interval=0.05, transmit_interval=0.05, detect_multiplier=3)
# What FRR says when BFD ended its BGP session (its NOTIFICATION Cease/10).
FRR_BFD_DOWN = "Cease/BFD Down"
T = TypeVar("T")


@dataclass
class Bench:
    """A lab with one node and a router; the daemons and speakers a test started, stopped at its end."""

    lab: NetnsLab
    daemons: list[RouterDaemon] = field(default_factory=list)
    speakers: list[BgpSpeaker] = field(default_factory=list)

    def node_address(self, family: int = 4) -> str:
        return self.lab.node_address(NODE, family)

    def router(self, kind: RouterKind, *peers: Peer, graceful_restart: bool = False) -> RouterDaemon:
        """A daemon of `kind` in the router namespace with these neighbors (the node's addresses), started."""
        need(kind)
        config = RouterConfig(
            ROUTER_ASN, self.lab.router_address(4), peers, graceful_restart=graceful_restart
        )
        daemon = make_router(kind, self.lab.router_ns, config, name="router")
        self.daemons.append(daemon)
        daemon.start()
        return daemon

    def speaker(self) -> BgpSpeaker:
        speaker = BgpSpeaker(netns=self.lab.node_ns(NODE))
        self.speakers.append(speaker)
        return speaker


@pytest.fixture
def bench() -> Iterator[Bench]:
    lab = NetnsLab(nodes=(NODE,), router=True, prefix="mlbspbfd", vip_routes=VIP_ROUTES)
    lab.start()
    the_bench = Bench(lab)
    try:
        yield the_bench
    finally:
        for speaker in the_bench.speakers:
            speaker.stop()
        for daemon in the_bench.daemons:
            daemon.stop()
        lab.close()


def neighbor(bench: Bench, family: int = 4, bfd: BfdConfig | None = FAST, **options: Any) -> Peer:
    """The router's neighbor for the node's address of `family`: eBGP, passive (our speaker connects)."""
    return Peer(bench.node_address(family), NODE_ASN, passive=True, hold_time=HOLD_TIME, bfd=bfd, **options)


def add_peer(speaker: BgpSpeaker, name: str, address: str, **options: Any) -> bool:
    args: dict[str, Any] = {
        "my_asn": NODE_ASN,
        "peer_asn": ROUTER_ASN,
        "router_id": "198.51.100.1",  # node1's address
        "connect_time": 1.0,
        "hold_time": float(HOLD_TIME),
        "bfd": OURS_FAST,
        **options,
    }
    return speaker.add_peer(name, address, **args)


def wait_status(
    speaker: BgpSpeaker, peer: str, done: Callable[[BgpPeerStatus], bool], what: str
) -> BgpPeerStatus:
    """The peer's status once `done` holds for it."""
    deadline = time.monotonic() + PATIENCE
    while True:
        status = speaker.peer(peer)
        assert status is not None, f"no peer {peer}"
        if done(status):
            return status
        assert time.monotonic() < deadline, f"{what}: timed out; last status {status} {status.bfd}"
        time.sleep(0.01)


def until(read: Callable[[], T], done: Callable[[T], bool], what: str) -> T:
    """The first value of `read()` for which `done` holds (polled every 10 ms)."""
    deadline = time.monotonic() + PATIENCE
    while not done(value := read()):
        assert time.monotonic() < deadline, f"{what}: timed out; last {value}"
        time.sleep(0.01)
    return value


def timeline(conditions: dict[str, Callable[[], bool]]) -> dict[str, float]:
    """Seconds from now until each condition first held, earliest first. Each is polled in a thread of its
    own, so a slow view (a vtysh call takes tens of milliseconds) never delays reading another."""
    start = time.monotonic()
    seen: dict[str, float] = {}
    errors: list[BaseException] = []

    def watch(name: str, condition: Callable[[], bool]) -> None:
        try:
            while time.monotonic() - start < PATIENCE:
                if condition():
                    seen[name] = time.monotonic() - start
                    return
                time.sleep(0.005)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=watch, args=item, daemon=True) for item in conditions.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    missing = sorted(set(conditions) - set(seen))
    assert not missing, f"not within {PATIENCE} s: {missing} (seen: {seen})"
    return dict(sorted(seen.items(), key=lambda item: item[1]))


def bfd_state(speaker: BgpSpeaker, peer: str) -> str | None:
    status = speaker.peer(peer)
    return status.bfd.state if status is not None and status.bfd is not None else None


def wait_bfd_up(speaker: BgpSpeaker, peer: str) -> BfdStatus:
    """Our session Up and the router's too: we turn Up on the router's Init, so the router's packet that says
    Up comes one interval later (asserting on the remote state at our Up raced it)."""
    status = wait_status(
        speaker,
        peer,
        lambda s: s.bfd is not None and (s.bfd.state, s.bfd.remote_state) == ("Up", "Up"),
        "our BFD Up, and the router's",
    )
    assert status.bfd is not None
    return status.bfd


def remote_settings(view: BfdPeerView) -> tuple[int | None, int | None, int | None]:
    """What the other end's packets announce, as FRR shows it: rx and tx intervals (ms), multiplier."""
    return (view.remote_receive_interval_ms, view.remote_transmit_interval_ms, view.remote_detect_multiplier)


def frr_sees(router: FrrRouter, peer: str, settings: tuple[int, int, int]) -> BfdPeerView:
    """FRR's view of the BFD session with `peer` once our packets announce these settings."""
    return until(
        lambda: router.bfd_peers()[peer],
        lambda view: remote_settings(view) == settings,
        f"FRR sees {settings[0]}/{settings[1]} ms x {settings[2]}",
    )


def answered(prober: Prober, since: float) -> None:
    """Waits until a request the prober sent after `since` (time.monotonic()) was answered."""
    probes = prober.wait_until(lambda done: any(p.ok and p.sent > since for p in done), PATIENCE)
    assert any(p.ok and p.sent > since for p in probes), (
        f"no answer to a request since {since}: {probes[-5:]}"
    )


def frr(daemon: RouterDaemon) -> FrrRouter:
    assert isinstance(daemon, FrrRouter)
    return daemon


@pytest.mark.parametrize("kind", ["frr", "bird"])
def test_bfd_comes_up_beside_an_ipv4_and_an_ipv6_session(bench: Bench, kind: RouterKind) -> None:
    v4, v6 = bench.node_address(4), bench.node_address(6)
    router = bench.router(kind, neighbor(bench, 4), neighbor(bench, 6))
    speaker = bench.speaker()
    add_peer(speaker, "v4", bench.lab.router_address(4))
    add_peer(speaker, "v6", bench.lab.router_address(6))

    for name, family in (("v4", 4), ("v6", 6)):
        ours = wait_bfd_up(speaker, name)
        assert ours.peer == bench.lab.router_address(family)
        assert (ours.multihop, ours.remote_state, ours.local_diag) == (False, "Up", "no diagnostic")
        assert (ours.up_events, ours.down_events, ours.dropped) == (1, 0, 0)
        assert ours.control_received > 0 and ours.control_sent > 0
        assert (ours.echo_sent, ours.echo_received) == (0, 0)
        # Both ends asked for 50 ms x 3: the detection time in use is theirs, not the 1 s of bring-up.
        assert (ours.transmit_interval, ours.detection_time) == (0.05, 0.15)
        status = speaker.peer(name)
        assert status is not None and status.state == "established" and not status.held_by_bfd
        assert status.counters["established"] == 1
    at_router = {address: router.wait_bfd(address) for address in (v4, v6)}
    for address, view in at_router.items():
        assert (view.multihop, view.interface) == (False, "eth0")
        if kind == "frr":
            assert (view.local_diagnostic, view.remote_diagnostic) == ("ok", "ok")
            # FRR shows what our packets announce: our settings as given.
            assert remote_settings(view) == (50, 50, 3)
            counters = frr(router).bfd_counters()[address]
            assert (counters.up_events, counters.down_events) == (1, 0)
        else:
            assert (view.interval_ms, view.detection_time_ms) == (50.0, 150.0)
    kinds = [(e.peer, e.kind) for e in speaker.events()]
    assert kinds.count(("v4", "bfd_up")) == 1 and kinds.count(("v6", "bfd_up")) == 1
    assert not [k for k in kinds if k[1] in ("bfd_down", "down")], kinds


@contextlib.contextmanager
def cut_cable(lab: NetnsLab, how: str) -> Iterator[None]:
    """The node's cable cut while the body runs: its switch port down (the node loses carrier), or blocked
    (STP state disabled: no frame passes, both ends keep their carrier)."""
    if how == "port-blocked":
        with blocked(lab, NODE):
            # Nothing but BFD (or the 90 s hold timer) can tell.
            assert carrier(lab, lab.node_ns(NODE)) and carrier(lab, lab.router_ns)
            yield
        return
    lab.kill_link(NODE)
    try:
        yield
    finally:
        lab.restore_link(NODE)


def shown(times: dict[str, float]) -> dict[str, str]:
    return {what: f"{seconds:.3f} s" for what, seconds in times.items()}


@pytest.mark.parametrize("how", ["port-down", "port-blocked"])
def test_a_cut_cable_ends_the_session_at_once_and_the_link_back_restores_it(bench: Bench, how: str) -> None:
    node = bench.node_address(4)
    router = frr(bench.router("frr", neighbor(bench, 4)))
    speaker = bench.speaker()
    add_peer(speaker, "rtr", bench.lab.router_address(4))
    speaker.set_routes("rtr", {HOST4: BgpRoute()})
    wait_bfd_up(speaker, "rtr")
    router.wait_bfd(node)
    assert legs(router.wait_fib(lambda fib: HOST4 in fib), HOST4) == {node}
    speaker.events()  # the bring-up's

    with cut_cable(bench.lab, how):
        times = timeline(
            {
                "FRR BFD down": lambda: router.bfd_peers()[node].state == "down",
                "FRR session down": lambda: not router.neighbors()[node].established,
                "FIB without the node": lambda: HOST4 not in router.fib(4),
                "our BFD down": lambda: bfd_state(speaker, "rtr") == "Down",
                "our session held": lambda: bool((s := speaker.peer("rtr")) and s.held_by_bfd),
            }
        )
        print(f"\n{how}, BFD 50 ms x 3, hold time {HOLD_TIME} s, cut at 0:", shown(times))
        # Ended by BFD, not by the hold timer: FRR names BFD, and so do we.
        assert router.neighbors()[node].last_error == FRR_BFD_DOWN
        assert router.bfd_peers()[node].local_diagnostic == "control detection time expired"
        held = speaker.peer("rtr")
        assert held is not None and held.held_by_bfd and held.state != "established"
        assert held.bfd is not None and held.bfd.local_diag == "control detection time expired"
        assert (held.bfd.up_events, held.bfd.down_events) == (1, 1)
        events = speaker.events()
        [bfd_down] = [e for e in events if e.kind == "bfd_down"]
        assert "control detection time expired" in bfd_down.reason, bfd_down  # the diagnostic
        [down] = [e for e in events if e.kind == "down"]
        assert (down.code, down.subcode) == (6, 10), down

    back = timeline(
        {
            "our BFD up": lambda: bfd_state(speaker, "rtr") == "Up",
            "FRR BFD up": lambda: router.bfd_peers()[node].state == "up",
            "our session established": lambda: bool((s := speaker.peer("rtr")) and s.state == "established"),
            "FIB with the node": lambda: HOST4 in router.fib(4),
        }
    )
    print(f"{how}: link back at 0:", shown(back))
    status = speaker.peer("rtr")
    assert status is not None and not status.held_by_bfd and status.counters["established"] == 2
    assert legs(router.fib(4), HOST4) == {node}
    assert router.wait_established(node).established
    kinds = [e.kind for e in speaker.events()]
    assert "bfd_up" in kinds and "up" in kinds, kinds
    assert kinds.index("bfd_up") < kinds.index("up"), f"held until BFD was up: {kinds}"


def test_multihop_bfd_beside_an_ebgp_multihop_session(bench: Bench) -> None:
    # The router's far address (its client link, one hop past the LAN): eBGP multihop on both ends, so both
    # run multihop BFD (RFC 5883, UDP 4784). FRR sends with TTL 255 and accepts 254 and up; so do we.
    node, far = bench.node_address(4), bench.lab.router_client_side_address(4)
    router = frr(bench.router("frr", neighbor(bench, 4, multihop_ttl=2, source_address=far)))
    speaker = bench.speaker()
    add_peer(speaker, "far", far, ebgp_multihop=True)
    ours = wait_bfd_up(speaker, "far")
    at_router = router.wait_bfd(node)
    assert (ours.multihop, at_router.multihop) == (True, True)
    assert ours.peer == far and ours.dropped == 0
    assert (at_router.local_address, at_router.interface, at_router.minimum_ttl) == (far, None, 254)
    assert remote_settings(at_router) == (50, 50, 3)
    status = speaker.peer("far")
    assert status is not None and status.state == "established" and status.local_address == node


def test_new_intervals_on_an_up_session_change_without_a_flap(bench: Bench) -> None:
    node = bench.node_address(4)
    router = frr(bench.router("frr", neighbor(bench, 4)))
    speaker = bench.speaker()
    add_peer(speaker, "rtr", bench.lab.router_address(4))
    wait_bfd_up(speaker, "rtr")
    router.wait_bfd(node)
    speaker.events()

    # Slower, then back to 50 ms x 3: each change is a poll sequence on the Up session (RFC 5880 6.8.3),
    # which FRR sees as the new values in our packets while the session stays Up; a session restarted
    # instead would go Down (and take BGP with it) on both ends.
    for rx_ms, tx_ms, multiplier in ((200, 100, 5), (50, 50, 3)):
        settings = BfdSettings(
            receive_interval=rx_ms / 1000, transmit_interval=tx_ms / 1000, detect_multiplier=multiplier
        )
        assert add_peer(speaker, "rtr", bench.lab.router_address(4), bfd=settings) is False
        view = frr_sees(router, node, (rx_ms, tx_ms, multiplier))
        assert view.state == "up"
        counters = router.bfd_counters()[node]
        assert (counters.up_events, counters.down_events) == (1, 0)
        status = speaker.peer("rtr")
        assert status is not None and status.bfd is not None
        assert (status.bfd.state, status.bfd.up_events, status.bfd.down_events) == ("Up", 1, 0)
        assert status.state == "established" and status.counters["established"] == 1
        assert router.neighbors()[node].established
    assert [e.kind for e in speaker.events()] == [], "no BFD or BGP event: nothing went down"


@pytest.mark.parametrize("passive", ["ours", "frr"])
def test_a_passive_end_answers_an_active_one(bench: Bench, passive: str) -> None:
    node = bench.node_address(4)
    frr_bfd = BfdConfig(50, 50, 3, passive=passive == "frr")
    router = frr(bench.router("frr", neighbor(bench, 4, bfd=frr_bfd)))
    speaker = bench.speaker()
    ours = BfdSettings(
        receive_interval=0.05, transmit_interval=0.05, detect_multiplier=3, passive=passive == "ours"
    )
    add_peer(speaker, "rtr", bench.lab.router_address(4), bfd=ours)
    view = router.wait_bfd(node)
    assert view.passive is (passive == "frr")
    wait_bfd_up(speaker, "rtr")


def test_stop_and_remove_peer_signal_admin_down(bench: Bench) -> None:
    node = bench.node_address(4)
    router = frr(bench.router("frr", neighbor(bench, 4)))
    speaker = bench.speaker()
    for ending in ("remove_peer", "stop"):
        add_peer(speaker, "rtr", bench.lab.router_address(4))
        wait_bfd_up(speaker, "rtr")
        router.wait_bfd(node)
        if ending == "remove_peer":
            assert speaker.remove_peer("rtr") is True
        else:
            speaker.stop()
        view = router.wait_bfd(node, "down")
        # Our AdminDown (diag 7) takes FRR's end Down with "neighbor signaled session down" (RFC 5880 6.8.6).
        assert (view.local_diagnostic, view.remote_diagnostic) == (
            "neighbor signaled session down",
            "administratively down",
        ), f"{ending}: {view}"
        assert not router.neighbors()[node].established
    counters = router.bfd_counters()[node]
    assert (counters.up_events, counters.down_events) == (2, 2)


@pytest.mark.parametrize("ending", ["remove_peer", "stop"])
def test_the_cease_reaches_the_router_before_the_bfd_admin_down(bench: Bench, ending: str) -> None:
    # FRR takes a neighbor's AdminDown as a path failure (see test_router_bfd): a session still open when it
    # arrives is ended by FRR with Cease/10 ("BFD Down") instead of by our Cease. So the Cease goes first.
    node = bench.node_address(4)
    router = frr(bench.router("frr", neighbor(bench, 4)))
    speaker = bench.speaker()
    add_peer(speaker, "rtr", bench.lab.router_address(4))
    wait_bfd_up(speaker, "rtr")
    router.wait_bfd(node)
    wire = Wire(bench.lab.router_ns, bench.lab.router_interface)
    try:
        if ending == "remove_peer":
            speaker.remove_peer("rtr")
        else:
            speaker.stop()
        records = wire.wait(
            lambda seen: (
                any(r["kind"] == "notification" for r in seen)
                and any(r.get("state") == "AdminDown" for r in seen)
            ),
            PATIENCE,
        )
    finally:
        wire.stop()
    ours = [r for r in records if r["source"] == node]
    order = [
        "cease" if r["kind"] == "notification" else "admin down"
        for r in ours
        if r["kind"] == "notification" or r["state"] == "AdminDown"
    ]
    [cease] = [r for r in ours if r["kind"] == "notification"]
    assert (cease["code"], cease["subcode"]) == (6, 3 if ending == "remove_peer" else 2)
    assert {r["diag"] for r in ours if r.get("state") == "AdminDown"} == {7}  # administratively down
    assert order[0] == "cease", f"{ending}: {order}"


@dataclass
class Served:
    """A VIP served by the node and announced by our speaker to the router, the client requesting it."""

    bench: Bench
    router: RouterDaemon
    graceful_restart: bool
    bfd: BfdSettings | None
    speaker: BgpSpeaker | None = None

    def start_speaker(self) -> None:
        """A speaker starting as a restarted one does: a new one in the namespace, its peer and routes."""
        self.speaker = self.bench.speaker()
        add_peer(
            self.speaker,
            "rtr",
            self.bench.lab.router_address(4),
            graceful_restart=self.graceful_restart,
            bfd=self.bfd,
        )
        self.speaker.set_routes("rtr", {HOST4: BgpRoute()})

    def wait_up(self) -> None:
        """The route in the router's FIB, the session established with BFD (if any) Up on both ends."""
        node = self.bench.node_address(4)
        assert self.speaker is not None
        self.router.wait_fib(lambda fib: HOST4 in fib, timeout=PATIENCE)
        self.router.wait_established(node, timeout=PATIENCE)
        if self.bfd is not None:
            wait_bfd_up(self.speaker, "rtr")
            self.router.wait_bfd(node, timeout=PATIENCE)


def served(bench: Bench, kind: RouterKind, *, graceful_restart: bool, bfd: bool) -> Served:
    router = bench.router(kind, neighbor(bench, 4, bfd=FAST if bfd else None), graceful_restart=True)
    bench.lab.serve(VIP4)
    serving = Served(bench, router, graceful_restart, OURS_FAST if bfd else None)
    serving.start_speaker()
    serving.wait_up()
    assert router.graceful_restart_state(bench.node_address(4)).negotiated is graceful_restart
    return serving


@pytest.mark.parametrize(
    ("kind", "bfd", "restarts"),
    [("frr", True, 10), ("bird", False, 3)],
    ids=["frr-with-bfd", "bird-without-bfd"],  # BIRD drops a restarting neighbor's routes on BFD down
)
def test_graceful_restarts_of_the_speaker_lose_no_request(
    bench: Bench, kind: RouterKind, bfd: bool, restarts: int
) -> None:
    node = bench.node_address(4)
    serving = served(bench, kind, graceful_restart=True, bfd=bfd)
    router = serving.router
    prober = bench.lab.prober(VIP4, interval=0.01)
    answered(prober, 0.0)
    times = []
    for _ in range(restarts):
        assert serving.speaker is not None
        stopped = time.monotonic()
        serving.speaker.stop()
        # We are gone: the router keeps our route, stale, and still forwards to us.
        during = until(
            lambda: router.graceful_restart_state(node),
            lambda view: view.neighbor_restarting,
            "the router helping us restart",
        )
        assert during.stale_routes == 1, during
        assert legs(router.fib(4), HOST4) == {node}
        # The client still gets answers (through the stale route) while no speaker runs.
        answered(prober, stopped)
        serving.start_speaker()
        restarted = time.monotonic() - stopped
        back = timeline(
            {
                "established": lambda: router.neighbors()[node].established,
                # The stale route replaced by the one we sent, or cleared by our End-of-RIB.
                "no stale route": lambda: (
                    not (view := router.graceful_restart_state(node)).neighbor_restarting
                    and view.stale_routes == 0
                ),
            }
        )
        times.append((restarted + back["established"], restarted + back["no stale route"]))
        serving.wait_up()
    answered(prober, time.monotonic())
    # Read before stopping: stop() cancels the requests in flight (they end with error 'stopped').
    probes = prober.results()
    prober.stop()
    failed = [p for p in probes if not p.ok]
    print(
        f"\n{kind} router, {restarts} graceful restarts ({'with' if bfd else 'without'} BFD): {len(probes)} "
        f"requests, {len(failed)} failed; BGP down per restart (stop -> established, -> no stale route):",
        [f"{up:.3f} s, {eor:.3f} s" for up, eor in times],
    )
    assert len({p.answer for p in probes if p.ok}) == 1
    assert failed == []


def test_without_graceful_restart_a_stop_withdraws_the_route_and_requests_fail(bench: Bench) -> None:
    # The negative control of the test above (it can fail): one restart with graceful restart off on our
    # side. Our Cease ends the session and FRR withdraws the route: the client's requests fail until the
    # restarted speaker announces it again.
    serving = served(bench, "frr", graceful_restart=False, bfd=True)
    prober = bench.lab.prober(VIP4, interval=0.01)
    answered(prober, 0.0)
    assert serving.speaker is not None
    serving.speaker.stop()
    serving.router.wait_fib(lambda fib: HOST4 not in fib, timeout=PATIENCE)
    probes = prober.wait_until(lambda done: any(not p.ok for p in done), PATIENCE)
    assert any(not p.ok for p in probes), "no request failed without the route"
    serving.start_speaker()
    serving.wait_up()
    answered(prober, time.monotonic())
    failed = [p for p in prober.results() if not p.ok]
    prober.stop()
    print(f"\nwithout graceful restart, one restart: {len(failed)} requests failed ({failed[0].error})")
