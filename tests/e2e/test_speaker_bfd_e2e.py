"""BFD and graceful restart end to end: the speakers' BGP sessions to a real FRR router run BFD (bfdd on the
router's end, metallb-py's BFD thread on ours) as a BFDProfile referenced by the BGPPeer says, and offer
graceful restart (enableGracefulRestart), all configured through the Kubernetes API in MetalLB's syntax.

One cluster (control plane, node1-3 and an excluded control-plane node, controller, four speakers, FRR in
the router namespace with BFD 50 ms x 3 and graceful restart on every neighbor) serves the module; each test
leaves every speaker and link as it found them. The BGPPeer's holdTime is 90 s: a cut cable that the router
notices within a second was noticed by BFD. What the network sees is read from FRR (its BFD peers and
counters, neighbors, graceful restart view) and from the router namespace's kernel FIB; what the cluster
says, from the speakers' metrics and Events. Deadlines in waits only stop a hang: the figures are printed
(run with -s), and benches/ holds the measurements.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from metallb_py.k8s.resources import EVENTS
from metallb_py.testing import LabCluster
from metallb_py.testing.bgplab import DEFAULT_NODE_ASN, DEFAULT_ROUTER_ASN, Peering
from metallb_py.testing.routers import BfdConfig, FrrRouter, GracefulRestartView

from .conftest import CONTROL_PLANE, WORKERS, create_web_service

NS = "metallb-system"
WAIT = 60.0
ROUTER = "198.51.100.254"
PEER = "tor"
PROFILE = "fast"
BFD_LABELS = {"peer": ROUTER, "vrf": "default"}
HOLD_TIME = 90.0  # the BGPPeer's holdTime: what would end a session without BFD
RESTARTS = 10
PROBE_INTERVAL = 0.02
PROBE_TIMEOUT = 1.0
STOPPED = "stopped"  # a prober request still in flight when the prober stopped (netlab's helper)
# FRR's lastNotificationReason for a session it ended because BFD went down (Cease, subcode 10).
FRR_BFD_DOWN = "Cease/BFD Down"

CONFIG = f"""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: web, namespace: {NS}}}
spec: {{addresses: [192.168.1.11-192.168.1.13]}}
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {{name: {PROFILE}, namespace: {NS}}}
spec:
  receiveInterval: 50
  transmitInterval: 50
  detectMultiplier: 3
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: {PEER}, namespace: {NS}}}
spec:
  myASN: {DEFAULT_NODE_ASN}
  peerASN: {DEFAULT_ROUTER_ASN}
  peerAddress: {ROUTER}
  holdTime: 90s
  bfdProfile: {PROFILE}
  enableGracefulRestart: true
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: web, namespace: {NS}}}
spec:
  ipAddressPools: [web]
"""


@pytest.fixture(scope="module")
def cluster(kubernetes_binaries: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    logs = tmp_path_factory.mktemp("e2e-bfd-logs")
    peering = Peering(bfd=BfdConfig(50, 50, 3), graceful_restart=True)
    with LabCluster(
        WORKERS, CONTROL_PLANE, prefix="mlbbfde", log_dir=logs, router="frr", peering=peering
    ) as the_cluster:
        the_cluster.kubectl("apply", "-f", "-", stdin=CONFIG)
        yield the_cluster


@pytest.fixture(scope="module")
def vip(cluster: LabCluster) -> str:
    """A LoadBalancer Service with a ready endpoint on every worker; its address, served by each worker."""
    address = create_web_service(cluster, WAIT)
    cluster.lab.serve(address, "hname")
    wait_next_hops(cluster, address, WORKERS)
    return address


@pytest.fixture
def router(cluster: LabCluster) -> FrrRouter:
    frr = cluster.router
    assert isinstance(frr, FrrRouter)
    return frr


# -- reading the cluster and the router ----------------------------------------------------------------------


def next_hops(cluster: LabCluster, vip: str) -> set[str]:
    """The gateways of the VIP's host route in the router's kernel FIB (ECMP: one per advertising node)."""
    return {h.gateway for h in cluster.router.fib(4).get(f"{vip}/32", []) if h.gateway}


def wait_next_hops(cluster: LabCluster, vip: str, nodes: tuple[str, ...]) -> None:
    wanted = {cluster.lab.node_address(n) for n in nodes}
    try:
        cluster.wait_for(lambda: next_hops(cluster, vip) == wanted, WAIT, f"{vip}/32 via {sorted(nodes)}")
    except Exception as exc:
        router = cluster.router
        raise AssertionError(
            f"{exc}\nrouter BGP paths: {router.routes(4).get(f'{vip}/32')}\n"
            f"router FIB: {router.fib(4).get(f'{vip}/32')}\nneighbors: {router.neighbors()}\n"
            f"BFD: {router.bfd_peers()}\nrouter log:\n{router.logs(60)}"
        ) from exc


def bfd_metric(cluster: LabCluster, node: str, name: str) -> float | None:
    """One of the node's speaker's BFD metrics for the session with the router; None without a scrape."""
    scrape = cluster.speaker_metrics(node)
    return scrape.value(name, BFD_LABELS) if scrape is not None else None


def bfd_up(cluster: LabCluster, node: str) -> bool:
    return bfd_metric(cluster, node, "metallb_bfd_session_up") == 1


def grew(cluster: LabCluster, node: str, counter: str, since: float) -> bool:
    return (bfd_metric(cluster, node, counter) or 0) > since


def events(cluster: LabCluster, node: str, reason: str) -> int:
    """How many times `node`'s speaker recorded `reason` on the BGPPeer (Events repeat as counts)."""
    return sum(
        int(e.get("count") or 1)
        for e in cluster.client.list(EVENTS, NS).items
        if e["involvedObject"].get("kind") == "BGPPeer"
        and e["involvedObject"].get("name") == PEER
        and e.get("reportingInstance") == node
        and e.get("reason") == reason
    )


def log_records(path: Path, since: int = 0) -> list[dict[str, Any]]:
    """The JSON log records of a speaker's log from byte offset `since` (other lines are skipped)."""
    with path.open("rb") as log:
        log.seek(since)
        lines = log.read().decode(errors="replace").splitlines()
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


@dataclass(frozen=True)
class Restart:
    """One graceful restart of a node's speaker, times from the SIGTERM (time.monotonic() differences)."""

    node: str
    exited: float  # the speaker exited
    restarting: float  # the router saw the session go and kept the node's routes as stale
    stale_routes: int  # how many it kept
    back: float  # the session was up again and no route of the node was stale any more


# -- the tests -----------------------------------------------------------------------------------------------


def test_bfd_runs_beside_every_session_with_the_profile_s_timers(
    cluster: LabCluster, router: FrrRouter, vip: str
) -> None:
    for (
        node
    ) in cluster.nodes:  # the control-plane node peers too (no nodeSelectors), it just advertises nothing
        address = cluster.lab.node_address(node)
        view = router.wait_bfd(address, "up", timeout=WAIT)
        # What our end announces in its packets: the profile's 50 ms x 3, single hop (the peer is on the LAN).
        assert view.multihop is False, view
        assert (
            view.remote_receive_interval_ms,
            view.remote_transmit_interval_ms,
            view.remote_detect_multiplier,
        ) == (50, 50, 3), view
        neighbor = router.wait_established(address, timeout=WAIT)
        assert neighbor.graceful_restart is True, neighbor  # enableGracefulRestart: negotiated with FRR
        # Our end's view, in MetalLB's metric names: up, and the control packets flowing both ways.
        cluster.wait_for(
            partial(bfd_up, cluster, node),
            WAIT,
            f"metallb_bfd_session_up 1 on {node}",
        )
        for counter in ("metallb_bfd_control_packet_output", "metallb_bfd_control_packet_input"):
            first = bfd_metric(cluster, node, counter) or 0
            assert first > 0, (node, counter)
            cluster.wait_for(
                partial(grew, cluster, node, counter, first),
                WAIT,
                f"{counter} of {node} to grow past {first:g}",
            )
        assert bfd_metric(cluster, node, "metallb_bfd_echo_packet_output") == 0
        assert (bfd_metric(cluster, node, "metallb_bfd_session_up_events") or 0) >= 1
        # And what the cluster says: an Event on the BGPPeer.
        cluster.wait_for(
            partial(events, cluster, node, "BFDSessionUp"),
            WAIT,
            f"a BFDSessionUp Event on BGPPeer {PEER} from {node}",
        )
    counters = router.bfd_counters()
    for node in cluster.nodes:
        seen = counters[cluster.lab.node_address(node)]
        assert seen.control_received > 0 and seen.echo_received == 0, seen


def test_a_cut_cable_is_noticed_by_bfd_long_before_the_hold_time(
    cluster: LabCluster, router: FrrRouter, vip: str
) -> None:
    wait_next_hops(cluster, vip, WORKERS)
    address = cluster.lab.node_address("node2")
    router.wait_bfd(address, "up", timeout=WAIT)
    cluster.wait_for(partial(bfd_up, cluster, "node2"), WAIT, "node2's BFD up")
    router_downs = router.bfd_counters()[address].down_events
    node_downs = bfd_metric(cluster, "node2", "metallb_bfd_session_down_events") or 0
    down_events = events(cluster, "node2", "BFDSessionDown")
    cut = time.monotonic()
    cluster.lab.kill_link("node2")
    try:
        survivors = {cluster.lab.node_address(n) for n in ("node1", "node3")}
        cluster.wait_for(
            lambda: next_hops(cluster, vip) == survivors,
            WAIT,
            f"the router's FIB to drop node2 from {vip}/32",
            interval=0.002,
        )
        dropped = time.monotonic() - cut
        print(
            f"\ncut cable: the router's FIB dropped node2 {1000 * dropped:.0f} ms after the cut "
            f"(BFD 50 ms x 3; the hold time is {HOLD_TIME:.0f} s)"
        )
        # Ended by BFD, not by the hold timer: bfdd's detection time expired, and bgpd says why it closed.
        view = router.bfd_peers()[address]
        assert view.state == "down" and view.local_diagnostic == "control detection time expired", view
        assert router.bfd_counters()[address].down_events == router_downs + 1
        neighbor = router.neighbors()[address]
        assert not neighbor.established and neighbor.last_error == FRR_BFD_DOWN, neighbor
        # node2's speaker, cut off from the router, sees its own BFD session go down (its API traffic and
        # metrics are on the host, not behind the cut cable).
        cluster.wait_for(
            lambda: (
                bfd_metric(cluster, "node2", "metallb_bfd_session_up") == 0
                and (bfd_metric(cluster, "node2", "metallb_bfd_session_down_events") or 0) == node_downs + 1
            ),
            WAIT,
            "node2's speaker to count its BFD session down",
        )
        cluster.wait_for(
            lambda: events(cluster, "node2", "BFDSessionDown") > down_events,
            WAIT,
            f"a BFDSessionDown Event on BGPPeer {PEER} from node2",
        )
        # The other nodes' sessions never moved.
        for node in ("node1", "node3"):
            assert router.bfd_peers()[cluster.lab.node_address(node)].state == "up", node
    finally:
        cluster.lab.restore_link("node2")
    restored = time.monotonic()
    router.wait_bfd(address, "up", timeout=WAIT)
    bfd_back = time.monotonic() - restored
    router.wait_established(address, timeout=WAIT)
    wait_next_hops(cluster, vip, WORKERS)
    print(
        f"link restored: BFD up after {1000 * bfd_back:.0f} ms, node2 back in the FIB after "
        f"{1000 * (time.monotonic() - restored):.0f} ms"
    )
    cluster.wait_for(partial(bfd_up, cluster, "node2"), WAIT, "node2's BFD up again")
    assert router.bfd_counters()[address].down_events == router_downs + 1  # no flap on the way back


def test_an_echo_mode_profile_is_noted_and_bfd_keeps_running_without_echo(
    cluster: LabCluster, router: FrrRouter, vip: str
) -> None:
    for node in cluster.nodes:
        router.wait_bfd(cluster.lab.node_address(node), "up", timeout=WAIT)
    downs = {a: c.down_events for a, c in router.bfd_counters().items()}
    offsets = {n: cluster.speaker_log(n).stat().st_size for n in cluster.nodes}
    patch = '{"spec": {"echoMode": true}}'
    cluster.kubectl("patch", "bfdprofiles.metallb.io", PROFILE, "-n", NS, "--type=merge", "-p", patch)
    try:

        def noted(node: str) -> list[dict[str, Any]]:
            return [
                r
                for r in log_records(cluster.speaker_log(node), offsets[node])
                if r.get("msg") == "BGP peer used differently"
                and r.get("peer") == PEER
                and any("echoMode" in str(note) for note in r.get("notes") or ())
            ]

        for node in cluster.nodes:
            (record,) = cluster.wait_for(
                partial(noted, node),
                WAIT,
                f"{node}'s speaker to note that echo mode is not used",
            )
            assert record["level"] == "warning", record
        # The note changed nothing on the wire: every session still up, without a flap, without echo.
        counters = router.bfd_counters()
        for node in cluster.nodes:
            address = cluster.lab.node_address(node)
            assert router.bfd_peers()[address].state == "up", node
            assert counters[address].down_events == downs[address], node
            assert counters[address].echo_received == 0, node
            assert bfd_metric(cluster, node, "metallb_bfd_session_up") == 1, node
            assert bfd_metric(cluster, node, "metallb_bfd_echo_packet_output") == 0, node
        wait_next_hops(cluster, vip, WORKERS)
    finally:
        back = '{"spec": {"echoMode": false}}'
        cluster.kubectl("patch", "bfdprofiles.metallb.io", PROFILE, "-n", NS, "--type=merge", "-p", back)


def test_graceful_restarts_of_the_speakers_lose_no_request(
    cluster: LabCluster, router: FrrRouter, vip: str
) -> None:
    wait_next_hops(cluster, vip, WORKERS)
    for node in WORKERS:
        router.wait_bfd(cluster.lab.node_address(node), "up", timeout=WAIT)

    def gr(node: str) -> GracefulRestartView:
        return router.graceful_restart_state(cluster.lab.node_address(node))

    def helping(node: str) -> GracefulRestartView | None:
        view = gr(node)
        return view if view.neighbor_restarting and view.stale_routes > 0 else None

    def back(node: str) -> bool:
        address = cluster.lab.node_address(node)
        view = gr(node)
        established = router.neighbors()[address].established
        return (
            established
            and view.negotiated
            and not view.neighbor_restarting
            and view.stale_routes == 0
            and address in next_hops(cluster, vip)
        )

    assert all(gr(n).negotiated for n in WORKERS)
    restarts: list[Restart] = []
    prober = cluster.lab.prober(vip, interval=PROBE_INTERVAL, timeout=PROBE_TIMEOUT)
    try:
        started = time.monotonic()
        if not any(p.ok for p in prober.wait_until(lambda probes: any(p.ok for p in probes), WAIT)):
            raise AssertionError(f"the prober got no answer at {vip}")
        for round_ in range(RESTARTS):
            node = WORKERS[round_ % len(WORKERS)]
            address = cluster.lab.node_address(node)
            term = time.monotonic()
            assert cluster.stop_speaker(node) == 0  # SIGTERM, as a rolling update does
            exited = time.monotonic()
            # The router helps: the session is gone, the node's route is kept (stale) and still forwarded to.
            during = cluster.wait_for(
                partial(helping, node), WAIT, f"the router to keep {node}'s routes as stale"
            )
            restarting = time.monotonic()
            assert not router.neighbors()[address].established
            assert address in next_hops(cluster, vip), f"round {round_ + 1}: {node} left the FIB"
            cluster.start_speaker(node)
            cluster.wait_for(partial(back, node), WAIT, f"{node}'s routes fresh again")
            restarts.append(
                Restart(node, exited - term, restarting - term, during.stale_routes, time.monotonic() - term)
            )
        cluster.wait_for_speakers(WORKERS)
        for node in WORKERS:  # each new speaker's BFD session came up with the router again
            router.wait_bfd(cluster.lab.node_address(node), "up", timeout=WAIT)
        # Every request sent until now has its answer, or its timeout, a little after this.
        end = time.monotonic()
        prober.wait_until(lambda probes: any(p.sent >= end + PROBE_TIMEOUT for p in probes), WAIT)
    finally:
        probes = prober.stop()
    done = [p for p in probes if started <= p.sent < end and p.error != STOPPED]
    failed = [p for p in done if not p.ok]
    print(
        f"\n{RESTARTS} graceful restarts (SIGTERM, then a new speaker), a request every "
        f"{1000 * PROBE_INTERVAL:.0f} ms: {len(done)} requests sent, {len(failed)} failed"
    )
    for i, r in enumerate(restarts, 1):
        print(
            f"  {i:2d} {r.node}: exited {1000 * r.exited:.0f} ms after SIGTERM, router restarting at "
            f"{1000 * r.restarting:.0f} ms ({r.stale_routes} stale), fresh at {1000 * r.back:.0f} ms "
            f"(stale for {1000 * (r.back - r.restarting):.0f} ms)"
        )
    assert len(restarts) == RESTARTS
    assert done and not failed, failed[:10]
    # Each worker answered across the restarts (the router kept spreading requests over all three).
    assert {p.answer for p in done} == set(WORKERS)
