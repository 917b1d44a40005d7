"""BGP mode against a real FRR router: figures recorded and printed, never asserted, except zero session flaps
(correctness). Each timing has a floor measured in the same session against the same router.

- load (library level): SERVICES /32s (default 10,000) from 3 nodes into FRR's RIB. A BgpLab, iBGP, FRR in
  the router namespace; node1-3 each run a BgpSpeaker in a child process of its own (sessions in the node's
  namespace), bird1-3 each run BIRD 2 with the same sessions: the floor, the same prefixes from a routing
  daemon (BIRD: one `configure` loads them all, ~10 ms of CPU for 10,000 static routes). Every originator
  holds a marker prefix beforehand, so sessions and exports are up. A round arms one kind (our children
  build the routes; BIRD's configuration file is written), starts the three at one instant (set_routes;
  `configure` on BIRD's control socket) and ends when FRR has accepted every prefix from every node (pfxRcd,
  polled every 2 ms on bgpd's vty socket); the prefixes are then withdrawn. Rounds alternate ours and floor.
- no flaps: a LabCluster (API server, controller, a speaker per node, FRR; iBGP so a localPref reaches the
  router) serving one Service on node1-3 through ECMP. EDIT_CYCLES times 8 edits (community added and
  removed, localPref set and unset, a second Service created and deleted, a new pool with its advertisement
  and a Service, removed again), each awaited in FRR's table. Resets are counted by FRR (connections dropped
  or established, a session seen down or its uptime going down) and by the speakers (opens sent): 0 asserted.
- convergence: in the same cluster, the client requests the VIP every PROBE_INTERVAL on a new connection
  (NetnsLab sets fib_multipath_hash_policy=1 in the router namespace: ECMP hashes on ports, requests spread
  over the nodes). KILLS times a speaker is SIGKILLed; from the kill: when the router's kernel FIB stops
  listing the node as a next hop of the VIP (`ip monitor route`, stamped by `ip` as the kernel's message
  arrives), and when the client's traffic stops reaching it (the send time of the last request the node
  answered: its echo server still runs; with 3 legs this is early by about 2 probe intervals on average);
  and, to split the time, when the session's FIN or RST reached the router (tcpdump there, if installed).
  Then the floor on the same node and session: BIRD announcing the same /32, SIGKILLed. Then the speaker is
  restarted and the next round waits for 3 next hops. Rounds rotate over node1-3.
- full stack: a LabCluster of its own (FRR; node1-3 and the excluded control-plane node), the issue's "time
  from configuration". FULL_STACK Services with EndpointSlices are created first, CREATE_THREADS API calls at
  a time, with the pool present but no BGPPeer or BGPAdvertisement (nothing to advertise), and the speakers
  stopped meanwhile: each Service's events cost every speaker a round (5 ms of CPU at the start, 18 ms by
  the 2,000th), so with four speakers on two cores creating 2,000 took 95 s instead of 21 s. Once the
  controller has assigned every address (a watch), the speakers start again with every Service in place,
  and when they have joined and are quiet (under 5% of a core over a second), t0 is one `kubectl apply` of
  the BGPPeer and the BGPAdvertisement, and the figure ends when FRR's pfxRcd shows every prefix from every
  worker (bgpd's vty, every 2 ms). Per speaker: UPDATEs (FRR's count and metallb_bgp_updates_total), its
  CPU time and RSS from /proc, and its log's milestones (configuration loaded, peer configured, routes set,
  session established) after t0. Floor in the same lab: the peer and advertisement deleted, BIRD in each
  worker's namespace on the same session, the same prefixes loaded by one `configure` (as in load).

Needs root, FRR and BIRD 2, and for the cluster the cached Kubernetes binaries (`make k8s`). Knobs, CI
defaults in brackets (`make bench-bgp` runs the long ones): METALLB_PY_BENCH_BGP_KILLS [10],
METALLB_PY_BENCH_BGP_SERVICES [10000], METALLB_PY_BENCH_BGP_ROUNDS [5 of each kind],
METALLB_PY_BENCH_BGP_EDIT_CYCLES [2], METALLB_PY_BENCH_BGP_PROBE_INTERVAL [0.005 s],
METALLB_PY_BENCH_BGP_FULL_STACK [2000; 0 leaves it out], METALLB_PY_BENCH_BGP_LOGS [a temporary directory].
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from _bgp_support import (
    BENCH_NETWORK,
    MARKER,
    AssignedWatch,
    FibEvent,
    FibWatch,
    FrrVty,
    Session,
    SpeakerChild,
    TcpEndWatch,
    bench_prefixes,
    cpu_seconds,
    proc_memory,
    speaker_children,
)
from _failover_support import LogTail, Progress, Summary, log_time, table
from metallb_py.k8s.resources import ENDPOINT_SLICES, SERVICES
from metallb_py.testing import (
    BgpLab,
    BirdRouter,
    ControlPlaneUnavailableError,
    FrrRouter,
    LabCluster,
    NetnsLab,
    Prober,
    RouterDaemon,
    missing_binaries,
)
from metallb_py.testing.bgplab import DEFAULT_ROUTER_ASN, Peering, node_config
from metallb_py.testing.controlplane import DEFAULT_KUBERNETES_VERSION, KubernetesBinaries, default_cache_dir
from metallb_py.testing.labcluster import endpoint_ports, endpoint_slice_manifest
from metallb_py.testing.routers import RouterKind, bird_config, make_router

REQUIRE_NETNS = os.environ.get("METALLB_PY_REQUIRE_NETNS") == "1"
REQUIRE_K8S = os.environ.get("METALLB_PY_REQUIRE_K8S") == "1"

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(
        os.geteuid() != 0 and not REQUIRE_NETNS, reason="needs root for network namespaces and routers"
    ),
]

KILLS = int(os.environ.get("METALLB_PY_BENCH_BGP_KILLS", "10"))
SERVICE_COUNT = int(os.environ.get("METALLB_PY_BENCH_BGP_SERVICES", "10000"))
LOAD_ROUNDS = int(os.environ.get("METALLB_PY_BENCH_BGP_ROUNDS", "5"))
EDIT_CYCLES = int(os.environ.get("METALLB_PY_BENCH_BGP_EDIT_CYCLES", "2"))
PROBE_INTERVAL = float(os.environ.get("METALLB_PY_BENCH_BGP_PROBE_INTERVAL", "0.005"))
FULL_STACK = int(os.environ.get("METALLB_PY_BENCH_BGP_FULL_STACK", "2000"))
LOG_DIR = os.environ.get("METALLB_PY_BENCH_BGP_LOGS") or None

ASN = DEFAULT_ROUTER_ASN  # iBGP: the router's AS on both sides
PEERING = Peering(node_asn=ASN)
WORKERS = ("node1", "node2", "node3")
FLOOR_NODES = ("bird1", "bird2", "bird3")
CONTROL_PLANE = "control-plane"
NS = "metallb-system"
SVC_NS = "default"
VIP = "192.168.1.11"
VIP_PREFIX = f"{VIP}/32"
SECOND_VIP = "192.168.1.12"
EXTRA_POOL = "bench-extra"
EXTRA_ADDRESSES = "192.168.1.20-192.168.1.29"
LOAD_POOL = "bench-load"
WAIT = 60.0  # seconds for any one step to show; each normally takes well under one
START_AHEAD = 0.5  # seconds between arming a load round and its start
RIB_POLL = 0.002
CREATE_THREADS = 8  # parallel API calls creating the full stack's Services
QUIET_WINDOW, QUIET_CPU = 1.0, 0.05  # speakers quiet: under 5% of a core over a second
FULL_STACK_FLOOR_ROUNDS = 3
FULL_STACK_SERVICE_RANGE = "10.96.0.0/16"  # a ClusterIP for each of up to 65,534 Services
REPORT_SERVICES = 1000  # a progress line every so many Services created
REPORT_EVERY = 10.0  # seconds between progress lines of a long wait
NAN = float("nan")

CONFIG = f"""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: nginx-ip-range, namespace: {NS}}}
spec: {{addresses: [192.168.1.11-192.168.1.13]}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: tor, namespace: {NS}}}
spec:
  myASN: {ASN}
  peerASN: {ASN}
  peerAddress: 198.51.100.254
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bench, namespace: {NS}}}
spec:
  ipAddressPools: [nginx-ip-range]
"""

EXTRA_CONFIG = f"""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: {EXTRA_POOL}, namespace: {NS}}}
spec: {{addresses: [{EXTRA_ADDRESSES}], autoAssign: false}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: {EXTRA_POOL}, namespace: {NS}}}
spec:
  ipAddressPools: [{EXTRA_POOL}]
  communities: ["64512:20"]
"""


@pytest.fixture(scope="module")
def log_dir(bench_logs: Callable[[str | None, str], AbstractContextManager[Path]]) -> Iterator[Path]:
    with bench_logs(LOG_DIR, "metallb-py-bench-bgp-") as path:
        yield path


def need_routers(*kinds: RouterKind) -> None:
    for kind in kinds:
        if missing := missing_binaries(kind):
            pytest.skip(f"{kind} is not installed (missing {', '.join(missing)})")


def ms(seconds: float) -> float:
    return 1000 * seconds


def ratio(ours: float, floor: float) -> str:
    return f"{ours / floor:.2f}x" if floor > 0 and not math.isnan(ours) else "-"


# -- load: SERVICE_COUNT prefixes from three nodes -----------------------------------------------------------


@dataclass(frozen=True)
class LoadRound:
    """One kind's round: seconds from the common start until FRR had every prefix of each node (and of all
    of them), UPDATEs FRR received from each node, CPU seconds each originator process used."""

    kind: str
    per_node: dict[str, float]
    updates: dict[str, int]
    cpu: dict[str, float]
    own_updates: dict[str, int] | None = None  # what our speakers counted sent (None for the floor)

    @property
    def all_nodes(self) -> float:
        return max(self.per_node.values())


def wait_received(
    vty: FrrVty,
    addresses: dict[str, str],
    count: int,
    start: float,
    timeout: float,
    *,
    report: Callable[[dict[str, int]], None] | None = None,
) -> dict[str, float]:
    """Polls FRR's pfxRcd until each address has sent `count` prefixes; {node: seconds from `start` to the
    end of the first poll that showed it}. `report` is given the counts every REPORT_EVERY seconds."""
    done: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    report_at = time.monotonic() + REPORT_EVERY
    last: dict[str, int] = {}
    while len(done) < len(addresses):
        last = vty.received()
        now = time.monotonic()
        for node, address in addresses.items():
            if node not in done and last.get(address, 0) == count:
                done[node] = now - start
        if now > deadline:
            raise TimeoutError(f"FRR's pfxRcd did not reach {count} for every node in {timeout:g} s: {last}")
        if report is not None and now > report_at:
            report_at += REPORT_EVERY
            report({node: last.get(address, 0) for node, address in addresses.items()})
        time.sleep(RIB_POLL)
    return done


def load_round_ours(
    children: dict[str, SpeakerChild], vty: FrrVty, addresses: dict[str, str], prefixes: list[str]
) -> LoadRound:
    wanted = [MARKER, *prefixes]
    before = vty.sessions()
    sent_before = {node: updates_sent(c) for node, c in children.items()}
    start = time.monotonic() + START_AHEAD
    for child in children.values():
        child.send("set_routes", peer="router", prefixes=wanted, at=start)
    for child in children.values():
        child.receive(30)  # armed: the routes are built
    cpu0 = {node: cpu_seconds(c.pid) for node, c in children.items()}
    if time.monotonic() > start:
        raise RuntimeError(f"arming took longer than {START_AHEAD} s: raise START_AHEAD")
    per_node = wait_received(vty, addresses, len(wanted), start, 120)
    calls = {node: c.receive(30) for node, c in children.items()}
    cpu1 = {node: cpu_seconds(c.pid) for node, c in children.items()}
    after = vty.sessions()
    late = max(float(c["late"]) for c in calls.values())
    if late > 0:
        raise RuntimeError(f"a child started {late:.3f} s late: raise START_AHEAD")
    return LoadRound(
        "ours",
        per_node,
        {n: after[a].updates_received - before[a].updates_received for n, a in addresses.items()},
        {n: cpu1[n] - cpu0[n] for n in children},
        {node: updates_sent(c) - sent_before[node] for node, c in children.items()},
    )


def updates_sent(child: SpeakerChild) -> int:
    return int(child.request("status")["peers"][0]["counters"]["updates_sent"])


def reset_ours(children: dict[str, SpeakerChild], vty: FrrVty, addresses: dict[str, str]) -> None:
    for child in children.values():
        child.send("set_routes", peer="router", prefixes=[MARKER], at=time.monotonic())
    for child in children.values():
        child.receive(30)
        child.receive(30)
    wait_received(vty, addresses, 1, time.monotonic(), 120)


def load_round_floor(
    birds: dict[str, BirdRouter],
    lab: NetnsLab,
    vty: FrrVty,
    addresses: dict[str, str],
    prefixes: list[str],
) -> LoadRound:
    wanted = [MARKER, *prefixes]
    configs = {node: node_config(lab, node, PEERING, wanted) for node in birds}
    # Armed: the configuration files written (BirdRouter keeps its configuration in state_dir/bird.conf); at
    # the start, only the `configure` command goes to each BIRD, which reads and applies it.
    for node, daemon in birds.items():
        (daemon.state_dir / "bird.conf").write_text(bird_config(configs[node], daemon.state_dir / "bird.log"))
    before = vty.sessions()
    pids = {node: daemon.pids[0] for node, daemon in birds.items()}
    start = time.monotonic() + START_AHEAD
    errors: list[BaseException] = []

    def configure(daemon: BirdRouter) -> None:
        time.sleep(max(0.0, start - time.monotonic()))
        try:
            daemon.query("configure")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=configure, args=(d,)) for d in birds.values()]
    for thread in threads:
        thread.start()
    cpu0 = {node: cpu_seconds(pid) for node, pid in pids.items()}
    try:
        per_node = wait_received(vty, addresses, len(wanted), start, 120)
    finally:
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    for node, daemon in birds.items():
        daemon.config = configs[node]
    cpu1 = {node: cpu_seconds(pid) for node, pid in pids.items()}
    after = vty.sessions()
    return LoadRound(
        "floor",
        per_node,
        {n: after[a].updates_received - before[a].updates_received for n, a in addresses.items()},
        {n: cpu1[n] - cpu0[n] for n in birds},
    )


def reset_floor(birds: dict[str, BirdRouter], lab: NetnsLab, vty: FrrVty, addresses: dict[str, str]) -> None:
    for node, daemon in birds.items():
        daemon.configure(node_config(lab, node, PEERING, [MARKER]))
    wait_received(vty, addresses, 1, time.monotonic(), 120)


@contextlib.contextmanager
def load_lab(
    log_dir: Path, progress: Progress
) -> Iterator[tuple[BgpLab, dict[str, SpeakerChild], dict[str, BirdRouter]]]:
    with BgpLab(WORKERS, FLOOR_NODES, router="frr", peering=PEERING, prefix="mlbbgpload") as bgp:
        birds: dict[str, BirdRouter] = {}
        for node in FLOOR_NODES:
            daemon = bgp.originator(node, [MARKER])
            assert isinstance(daemon, BirdRouter)
            birds[node] = daemon
        with speaker_children({n: bgp.lab.node_ns(n) for n in WORKERS}, log_dir) as children:
            for node, child in children.items():
                child.request(
                    "add_peer",
                    name="router",
                    address=bgp.lab.router_address(4),
                    options={
                        "my_asn": ASN,
                        "peer_asn": ASN,
                        "router_id": bgp.lab.node_address(node),
                        "connect_time": 2.0,
                    },
                )
            for child in children.values():
                child.request("wait_established", timeout=WAIT + 5, within=WAIT)
                child.send("set_routes", peer="router", prefixes=[MARKER], at=time.monotonic())
                child.receive(30)
                child.receive(30)
            progress(
                f"load: FRR in {bgp.lab.router_ns}, our speakers on {', '.join(WORKERS)} (children "
                f"{', '.join(str(c.pid) for c in children.values())}), BIRD on {', '.join(FLOOR_NODES)}"
            )
            yield bgp, children, birds


@pytest.mark.timeout(600 + 60 * LOAD_ROUNDS)
def test_prefixes_from_three_nodes_into_the_router_rib(
    log_dir: Path, figures: dict[str, float], progress: Progress
) -> None:
    need_routers("frr", "bird")
    prefixes = bench_prefixes(SERVICE_COUNT)
    with load_lab(log_dir, progress) as (bgp, children, birds):
        assert isinstance(bgp.router, FrrRouter)
        vty = FrrVty(bgp.router)
        try:
            ours_at = {n: bgp.lab.node_address(n) for n in WORKERS}
            floor_at = {n: bgp.lab.node_address(n) for n in FLOOR_NODES}
            wait_received(vty, {**ours_at, **floor_at}, 1, time.monotonic(), WAIT)
            idle_ours = {n: proc_memory(c.pid) for n, c in children.items()}
            idle_floor = {n: proc_memory(d.pids[0]) for n, d in birds.items()}
            rounds: list[LoadRound] = []
            for r in range(LOAD_ROUNDS):
                for kind in ("ours", "floor"):
                    if kind == "ours":
                        done = load_round_ours(children, vty, ours_at, prefixes)
                        loaded = {n: proc_memory(c.pid) for n, c in children.items()}
                        reset_ours(children, vty, ours_at)
                    else:
                        done = load_round_floor(birds, bgp.lab, vty, floor_at, prefixes)
                        loaded = {n: proc_memory(d.pids[0]) for n, d in birds.items()}
                        reset_floor(birds, bgp.lab, vty, floor_at)
                    rounds.append(done)
                    progress(
                        f"load round {r + 1}/{LOAD_ROUNDS} {kind}: {SERVICE_COUNT:,} prefixes from every "
                        f"node in {ms(done.all_nodes):.0f} ms (per node "
                        f"{', '.join(f'{ms(t):.0f}' for t in done.per_node.values())} ms; UPDATEs "
                        f"{', '.join(str(u) for u in done.updates.values())}; CPU "
                        f"{', '.join(f'{ms(c):.0f}' for c in done.cpu.values())} ms; RSS "
                        f"{', '.join(f'{m[0] / 1024:.1f}' for m in loaded.values())} MiB)"
                    )
            status = {n: c.request("status")["peers"][0] for n, c in children.items()}
            peak_ours = {n: proc_memory(c.pid) for n, c in children.items()}
            peak_floor = {n: proc_memory(d.pids[0]) for n, d in birds.items()}
        finally:
            vty.close()
    report_load(
        rounds,
        idle_ours=idle_ours,
        idle_floor=idle_floor,
        peak_ours=peak_ours,
        peak_floor=peak_floor,
        status=status,
        figures=figures,
        progress=progress,
    )


def report_load(
    rounds: list[LoadRound],
    *,
    idle_ours: dict[str, tuple[int, int]],
    idle_floor: dict[str, tuple[int, int]],
    peak_ours: dict[str, tuple[int, int]],
    peak_floor: dict[str, tuple[int, int]],
    status: dict[str, dict[str, Any]],
    figures: dict[str, float],
    progress: Progress,
) -> None:
    ours = [r for r in rounds if r.kind == "ours"]
    floor = [r for r in rounds if r.kind == "floor"]

    def stats(runs: list[LoadRound], value: Callable[[LoadRound], list[float]]) -> Summary:
        return Summary.of([v for r in runs for v in value(r)])

    rows: list[list[object]] = []

    def row(name: str, value: Callable[[LoadRound], list[float]], scale: float = 1.0) -> tuple[float, float]:
        a, b = stats(ours, value), stats(floor, value)
        rows.append([name, a.p50 * scale, a.p99 * scale, b.p50 * scale, b.p99 * scale, ratio(a.p50, b.p50)])
        return a.p50 * scale, b.p50 * scale

    every = row("time to the RIB, every node (ms)", lambda r: [r.all_nodes], 1000)
    row("time to the RIB, per node (ms)", lambda r: list(r.per_node.values()), 1000)
    row("UPDATEs per node", lambda r: [float(u) for u in r.updates.values()])
    rate = row("UPDATEs/s per node", lambda r: [r.updates[n] / r.per_node[n] for n in r.per_node])
    row("prefixes/s per node", lambda r: [(SERVICE_COUNT + 1) / t for t in r.per_node.values()])
    cpu = row("CPU per node (ms, user + system)", lambda r: list(r.cpu.values()), 1000)

    def mib(values: dict[str, tuple[int, int]], index: int) -> float:
        return statistics.median(v[index] for v in values.values()) / 1024

    rss = [mib(peak_ours, 0), mib(peak_floor, 0)]
    hwm = [mib(peak_ours, 1), mib(peak_floor, 1)]
    idle = [mib(idle_ours, 0), mib(idle_floor, 0)]
    added = [rss[0] - idle[0], rss[1] - idle[1]]
    rows.append(["RSS before the first round (MiB)", idle[0], "", idle[1], "", ratio(*idle)])
    rows.append(["RSS after the last round (MiB)", rss[0], "", rss[1], "", ratio(*rss)])
    rows.append(["RSS the rounds added (MiB)", added[0], "", added[1], "", ratio(*added)])
    rows.append(["peak RSS, VmHWM (MiB)", hwm[0], "", hwm[1], "", ratio(*hwm)])
    own = statistics.median(float(u) for r in ours for u in (r.own_updates or {}).values())
    sent = statistics.median(float(s["counters"]["updates_sent"]) for s in status.values())
    text = "\n".join(
        [
            f"{SERVICE_COUNT:,} prefixes from 3 nodes into FRR's RIB (iBGP), {len(ours)} rounds each, "
            "from a common start (set_routes / BIRD `configure`) to pfxRcd on bgpd's vty (every 2 ms)",
            table(["", "ours p50", "ours p99", "floor p50", "floor p99", "ours/floor"], rows),
            "ours: BgpSpeaker, one child process per node; floor: BIRD 2 per node, the same prefixes "
            f"(goal: time to the RIB within 1.5x of the floor: {ratio(every[0], every[1])})",
            f"our speakers' own count: {own:.0f} UPDATEs sent per node and round (median), {sent:.0f} in "
            "all (rounds, withdrawals, marker); RSS: medians over the nodes (ours includes the Python "
            "interpreter)",
        ]
    )
    progress(text)
    print("\n" + text)
    figures.update(
        {
            f"bgp load {SERVICE_COUNT} prefixes to RIB ms p50 (ours)": every[0],
            f"bgp load {SERVICE_COUNT} prefixes to RIB ms p50 (floor BIRD)": every[1],
            "bgp load UPDATEs/s per node p50 (ours)": rate[0],
            "bgp load UPDATEs/s per node p50 (floor BIRD)": rate[1],
            "bgp load CPU ms per node p50 (ours)": cpu[0],
            "bgp load CPU ms per node p50 (floor BIRD)": cpu[1],
            "bgp load peak RSS MiB per node (ours)": hwm[0],
            "bgp load peak RSS MiB per node (floor BIRD)": hwm[1],
        }
    )


# -- full stack: FULL_STACK Services in place, then BGP configured, until FRR's RIB holds them all ---------


def full_stack_pool(count: int) -> str:
    """The pool alone: Services get their addresses, and no speaker has a peer or an advertisement yet."""
    return f"""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: {LOAD_POOL}, namespace: {NS}}}
spec: {{addresses: [{BENCH_NETWORK[0]}-{BENCH_NETWORK[count - 1]}], autoAssign: false}}
"""


FULL_STACK_BGP = f"""
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: tor, namespace: {NS}}}
spec:
  myASN: {ASN}
  peerASN: {ASN}
  peerAddress: 198.51.100.254
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: {LOAD_POOL}, namespace: {NS}}}
spec: {{ipAddressPools: [{LOAD_POOL}]}}
"""

# Where a speaker's time went after t0, from its log: the first configuration it loaded (kubectl creates the
# peer and the advertisement one after the other, so a speaker may load the peer alone first), the session,
# and the configuration whose round set every route, then the routes set.
FIRST_CONFIG = "configuration loaded (first)"
PEER_CONFIGURED = "BGP peer configured"
SESSION_UP = "BGP session established"
ROUTES_CONFIG = "configuration loaded (the routes' round)"
ROUTES_SET = "BGP routes set"
MILESTONES = (FIRST_CONFIG, PEER_CONFIGURED, SESSION_UP, ROUTES_CONFIG, ROUTES_SET)


@dataclass(frozen=True)
class FullStackRun:
    """Our speakers from t0, the `kubectl apply` of the BGPPeer and BGPAdvertisement (seconds after t0): when
    kubectl returned; per worker, when FRR had every prefix from it, each milestone of its speaker's log
    (NaN when absent), the UPDATEs FRR received from it and the UPDATEs it counted sent, its CPU seconds from
    t0 to the RIB, its RSS at t0 and at the RIB and its peak (KiB)."""

    applied: float
    to_rib: dict[str, float]
    milestones: dict[str, dict[str, float]]
    updates: dict[str, int]
    updates_sent: dict[str, float]
    cpu: dict[str, float]
    rss_t0: dict[str, int]
    rss_rib: dict[str, int]
    hwm: dict[str, int]

    def sending(self, node: str) -> float:
        """Seconds its UPDATEs had to reach the RIB: from when the session was up and the routes set (the
        later of the two) to the RIB."""
        mark = self.milestones[node]
        return self.to_rib[node] - max(mark[SESSION_UP], mark[ROUTES_SET])

    def rounds(self, node: str) -> float:
        """Seconds its speaker spent in rounds from a configuration loaded to its outcome: the round of the
        routes (configuration loaded to routes set), and before it, when the peer came alone, the peer's
        (first configuration loaded to peer configured)."""
        mark = self.milestones[node]
        spent = mark[ROUTES_SET] - mark[ROUTES_CONFIG]
        if mark[ROUTES_CONFIG] > mark[FIRST_CONFIG]:
            spent += mark[PEER_CONFIGURED] - mark[FIRST_CONFIG]
        return spent


@contextlib.contextmanager
def running_cluster(
    prefix: str, log_dir: Path, progress: Progress, *, service_range: str | None = None
) -> Iterator[LabCluster]:
    """A LabCluster with FRR (workers node1-3 and the excluded control-plane node), or a skip when this
    machine cannot run one; `service_range`: the API server's ClusterIP range, if not its default."""
    need_routers("frr", "bird")
    cached = KubernetesBinaries.in_dir(default_cache_dir() / "k8s" / DEFAULT_KUBERNETES_VERSION / "bin")
    if cached.missing() and not REQUIRE_K8S:
        pytest.skip("no cached Kubernetes binaries: run `make k8s` once")
    lab_cluster = LabCluster(
        WORKERS,
        CONTROL_PLANE,
        prefix=prefix,
        log_dir=log_dir,
        router="frr",
        peering=PEERING,
        progress=lambda line: progress(f"lab: {line}"),
        service_cluster_ip_range=service_range,
    )
    try:
        lab_cluster.start()
    except ControlPlaneUnavailableError as exc:
        if REQUIRE_K8S:
            raise
        pytest.skip(f"no local Kubernetes control plane: {exc}")
    try:
        yield lab_cluster
    finally:
        lab_cluster.close()


def create_services(cluster: LabCluster, names: list[str], report: Callable[[int], None]) -> None:
    """Each Service and its EndpointSlice (ready on node1-3), CREATE_THREADS at a time on cluster.client."""
    endpoints = [(node, cluster.lab.node_address(node)) for node in WORKERS]

    def create(name: str) -> None:
        manifest = service_manifest(name, {"metallb.io/address-pool": LOAD_POOL})
        # Node ports are not used here, and the API server has 2,768 of them.
        manifest["spec"]["allocateLoadBalancerNodePorts"] = False
        svc = cluster.client.create(SERVICES, manifest, SVC_NS)
        slice_ = endpoint_slice_manifest(
            SVC_NS, name, endpoints, ports=endpoint_ports(svc), owner_uid=str(svc["metadata"]["uid"])
        )
        cluster.client.create(ENDPOINT_SLICES, slice_, SVC_NS)

    with ThreadPoolExecutor(max_workers=CREATE_THREADS) as pool:
        for created, _ in enumerate(pool.map(create, names), 1):
            if created % REPORT_SERVICES == 0:
                report(created)


def wait_quiet(pids: dict[str, int], timeout: float) -> float:
    """Waits until every process used less than QUIET_CPU of a core over one QUIET_WINDOW (the speakers done
    with the Services' events); returns the seconds waited."""
    began = time.monotonic()
    while True:
        before = {node: cpu_seconds(pid) for node, pid in pids.items()}
        time.sleep(QUIET_WINDOW)
        used = {node: cpu_seconds(pid) - before[node] for node, pid in pids.items()}
        if all(u < QUIET_CPU * QUIET_WINDOW for u in used.values()):
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(
                f"the speakers stayed busy for {timeout:g} s (CPU seconds over the last second: {used})"
            )


def updates_sent_metric(cluster: LabCluster, node: str) -> float:
    """metallb_bgp_updates_total of the node's speaker for the router (0 before the peer exists)."""
    scrape = cluster.speaker_metrics(node)
    if scrape is None:
        raise AssertionError(f"the speaker of {node} serves no metrics")
    value = scrape.value("metallb_bgp_updates_total", {"peer": f"{cluster.lab.router_address(4)}:179"})
    return value or 0.0


def milestones(tail: LogTail, t0_wall: float, count: int) -> dict[str, float]:
    """Seconds after t0 of each of MILESTONES in a speaker's log since t0 (see there; the routes set are the
    first record with all `count` prefixes); NaN for one not logged."""
    found = dict.fromkeys(MILESTONES, NAN)
    loaded = NAN
    for record in tail.records():
        msg, at = record.get("msg"), log_time(record) - t0_wall
        if msg == "configuration loaded":
            loaded = at
            if math.isnan(found[FIRST_CONFIG]):
                found[FIRST_CONFIG] = at
        elif msg in (PEER_CONFIGURED, SESSION_UP) and math.isnan(found[msg]):
            found[msg] = at
        elif msg == ROUTES_SET and record.get("prefixes") == count:
            found[ROUTES_CONFIG], found[ROUTES_SET] = loaded, at
            break
    return found


def configure_bgp(
    cluster: LabCluster, vty: FrrVty, addresses: dict[str, str], pids: dict[str, int], progress: Progress
) -> FullStackRun:
    """At t0, the BGPPeer and BGPAdvertisement in one `kubectl apply`; until FRR has every prefix."""
    tails = {node: LogTail(cluster.speaker_log(node)) for node in WORKERS}
    before = vty.sessions()
    sent0 = {node: updates_sent_metric(cluster, node) for node in WORKERS}
    rss_t0 = {node: proc_memory(pid)[0] for node, pid in pids.items()}
    cpu0 = {node: cpu_seconds(pid) for node, pid in pids.items()}
    t0_wall, t0 = time.time(), time.monotonic()
    cluster.kubectl("apply", "-f", "-", stdin=FULL_STACK_BGP)
    applied = time.monotonic() - t0

    def report(counts: dict[str, int]) -> None:
        progress(
            f"full stack: {time.monotonic() - t0:.0f} s after t0, in FRR's RIB from "
            + ", ".join(f"{node} {n:,}" for node, n in counts.items())
        )

    to_rib = wait_received(vty, addresses, FULL_STACK, t0, 600 + FULL_STACK / 10, report=report)
    cpu1 = {node: cpu_seconds(pid) for node, pid in pids.items()}
    memory = {node: proc_memory(pid) for node, pid in pids.items()}
    after = vty.sessions()
    sent1 = {node: updates_sent_metric(cluster, node) for node in WORKERS}
    return FullStackRun(
        applied=applied,
        to_rib=to_rib,
        milestones={node: milestones(tails[node], t0_wall, FULL_STACK) for node in WORKERS},
        updates={
            node: after[a].updates_received - (before[a].updates_received if a in before else 0)
            for node, a in addresses.items()
        },
        updates_sent={node: sent1[node] - sent0[node] for node in WORKERS},
        cpu={node: cpu1[node] - cpu0[node] for node in pids},
        rss_t0=rss_t0,
        rss_rib={node: m[0] for node, m in memory.items()},
        hwm={node: m[1] for node, m in memory.items()},
    )


def unconfigure_bgp(cluster: LabCluster, vty: FrrVty, addresses: dict[str, str]) -> None:
    """Deletes the BGPPeer and BGPAdvertisement; returns when FRR has no session with a worker left."""
    cluster.kubectl("delete", "-f", "-", stdin=FULL_STACK_BGP)

    def down() -> bool:
        sessions = vty.sessions()
        return not any(s.established for a, s in sessions.items() if a in addresses.values())

    cluster.wait_for(down, WAIT, "FRR's sessions with the workers to close", interval=0.2)


@contextlib.contextmanager
def floor_birds(lab: NetnsLab, vty: FrrVty, addresses: dict[str, str]) -> Iterator[dict[str, BirdRouter]]:
    """BIRD in each worker's namespace on the worker's session, holding the marker, stopped on exit."""
    birds: dict[str, BirdRouter] = {}
    try:
        for node in WORKERS:
            daemon = make_router(
                "bird", lab.node_ns(node), node_config(lab, node, PEERING, [MARKER]), name=f"floor-{node}"
            )
            assert isinstance(daemon, BirdRouter)
            birds[node] = daemon
            daemon.start()
        wait_received(vty, addresses, 1, time.monotonic(), WAIT)
        yield birds
    finally:
        for daemon in birds.values():
            daemon.stop()


@pytest.mark.skipif(FULL_STACK <= 0, reason="METALLB_PY_BENCH_BGP_FULL_STACK=0 leaves the full stack out")
@pytest.mark.timeout(900 + FULL_STACK // 5)
def test_services_from_configuration_into_the_router_rib(
    log_dir: Path, figures: dict[str, float], progress: Progress
) -> None:
    prefixes = bench_prefixes(FULL_STACK)
    with running_cluster(
        "mlbbgpfull", log_dir / "full-stack", progress, service_range=FULL_STACK_SERVICE_RANGE
    ) as cluster:
        assert isinstance(cluster.router, FrrRouter)
        addresses = {node: cluster.lab.node_address(node) for node in WORKERS}
        cluster.kubectl("apply", "-f", "-", stdin=full_stack_pool(FULL_STACK))
        # Each Service's events cost every speaker a round, which made creating them several times slower
        # (see the module docstring); they have nothing to do until t0, and start again with all in place.
        for node in cluster.nodes:
            cluster.stop_speaker(node)
        names = [f"load-{i:05d}" for i in range(FULL_STACK)]
        with AssignedWatch(cluster.client, SVC_NS) as assigned:
            began = time.monotonic()
            create_services(
                cluster,
                names,
                lambda n: progress(
                    f"full stack: {n:,}/{FULL_STACK:,} Services created in {time.monotonic() - began:.1f} s, "
                    f"{assigned.count():,} assigned"
                ),
            )
            created = time.monotonic() - began
            if not assigned.wait(FULL_STACK, 300 + FULL_STACK / 10):
                raise AssertionError(f"the controller assigned {assigned.count()} of {FULL_STACK} addresses")
            assignment = time.monotonic() - began
        restarted = time.monotonic()
        for node in cluster.nodes:
            cluster.start_speaker(node)
        cluster.wait_for_speakers(timeout=WAIT)
        pids = {node: pid for node in WORKERS if (pid := cluster.speaker_pid(node)) is not None}
        assert len(pids) == len(WORKERS), f"speakers not running: {sorted(set(WORKERS) - set(pids))}"
        wait_quiet(pids, 300)
        progress(
            f"full stack: {FULL_STACK:,} Services created in {created:.1f} s, every address assigned after "
            f"{assignment:.1f} s; speakers started again, joined and quiet after "
            f"{time.monotonic() - restarted:.1f} s; t0: BGPPeer and BGPAdvertisement"
        )
        vty = FrrVty(cluster.router)
        try:
            ours = configure_bgp(cluster, vty, addresses, pids, progress)
            progress(
                f"full stack: every prefix in FRR's RIB from every node {max(ours.to_rib.values()):.3f} s "
                "after t0; the floor next (BIRD on the same sessions)"
            )
            unconfigure_bgp(cluster, vty, addresses)
            floor: list[LoadRound] = []
            floor_rss: list[dict[str, int]] = []
            with floor_birds(cluster.lab, vty, addresses) as birds:
                for r in range(FULL_STACK_FLOOR_ROUNDS):
                    floor.append(load_round_floor(birds, cluster.lab, vty, addresses, prefixes))
                    floor_rss.append({node: proc_memory(d.pids[0])[0] for node, d in birds.items()})
                    reset_floor(birds, cluster.lab, vty, addresses)
                    progress(
                        f"full stack floor round {r + 1}/{FULL_STACK_FLOOR_ROUNDS}: {FULL_STACK:,} prefixes "
                        f"from every node in {ms(floor[-1].all_nodes):.0f} ms"
                    )
        finally:
            vty.close()
    report_full_stack(
        ours, floor, floor_rss, created=created, assignment=assignment, figures=figures, progress=progress
    )


def report_full_stack(
    ours: FullStackRun,
    floor: list[LoadRound],
    floor_rss: list[dict[str, int]],
    *,
    created: float,
    assignment: float,
    figures: dict[str, float],
    progress: Progress,
) -> None:
    def s3(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.3f}"

    def mib(kib: float) -> str:
        return f"{kib / 1024:.1f}"

    rows: list[list[object]] = []
    for node in WORKERS:
        sending, mark = ours.sending(node), ours.milestones[node]
        rows.append(
            [
                f"ours: speaker {node}",
                s3(ours.to_rib[node]),
                s3(mark[SESSION_UP]),
                s3(mark[ROUTES_SET]),
                f"{ours.updates[node]} / {ours.updates_sent[node]:.0f}",
                f"{ours.updates[node] / sending:,.0f}" if sending > 0 else "-",
                s3(ours.cpu[node]),
                mib(ours.rss_t0[node]),
                mib(ours.rss_rib[node]),
                mib(ours.hwm[node]),
            ]
        )
    for node in WORKERS:
        to_rib = statistics.median(r.per_node[node] for r in floor)
        updates = statistics.median(r.updates[node] for r in floor)
        rows.append(
            [
                f"floor: BIRD {node} (p50 of {len(floor)})",
                s3(to_rib),
                "before",
                "0",
                f"{updates:.0f}",
                f"{updates / to_rib:,.0f}",
                s3(statistics.median(r.cpu[node] for r in floor)),
                "",
                mib(statistics.median(m[node] for m in floor_rss)),
                "",
            ]
        )
    every = max(ours.to_rib.values())
    every_floor = statistics.median(r.all_nodes for r in floor)

    def median(value: Callable[[str], float]) -> float:
        return statistics.median(value(node) for node in WORKERS)

    phases = [f"{m} {s3(statistics.median(ours.milestones[n][m] for n in WORKERS))}" for m in MILESTONES]
    rounds = median(ours.rounds)
    after_routes = median(lambda n: ours.to_rib[n] - ours.milestones[n][ROUTES_SET])
    text = "\n".join(
        [
            f"full stack: {FULL_STACK:,} Services (each with an EndpointSlice) created through the API "
            f"server, {CREATE_THREADS} at a time, in {created:.1f} s ({FULL_STACK / created:.0f}/s; not "
            f"part of the figure; speakers stopped meanwhile, then restarted and quiet before t0); every "
            f"address assigned after {assignment:.1f} s; no BGPPeer or BGPAdvertisement yet",
            f"t0: one `kubectl apply` of the BGPPeer and the BGPAdvertisement (returned after "
            f"{ours.applied:.3f} s); until FRR's RIB held all {FULL_STACK:,} prefixes from a node (pfxRcd on "
            "bgpd's vty, every 2 ms):",
            table(
                [
                    "",
                    "to RIB (s)",
                    "session up (s)",
                    "routes set (s)",
                    "UPDATEs FRR/sent",
                    "UPDATEs/s",
                    "CPU (s)",
                    "RSS t0 (MiB)",
                    "RSS at RIB (MiB)",
                    "VmHWM (MiB)",
                ],
                rows,
            ),
            f"every node: ours {every:.3f} s from t0, floor {every_floor:.3f} s (BIRD in the same node "
            f"namespaces, sessions up, the prefixes loaded by one `configure`): ours/floor "
            f"{ratio(every, every_floor)} (goal: within 1.5x)",
            "ours, s after t0, median over the workers (speaker logs): " + ", ".join(phases),
            f"of ours, the speakers' rounds (configuration loaded to peer configured / routes set): "
            f"{rounds:.3f} s; routes set to the RIB: {after_routes:.3f} s (the floor's whole: "
            f"{every_floor:.3f} s)",
            "UPDATEs/s: over the time the UPDATEs had (ours: from the later of session up and routes set, "
            "logged once set_routes returned; '-' when the RIB was complete by then; floor: from "
            "`configure`); CPU: t0 to the RIB, every thread; RSS: VmRSS at t0 and at the RIB, VmHWM the "
            "process's peak",
        ]
    )
    progress(text)
    print("\n" + text)
    n = f"{FULL_STACK}"
    figures.update(
        {
            f"bgp full stack {n} Services: config to RIB s (ours)": every,
            f"bgp full stack {n} Services: config to RIB s (floor BIRD)": every_floor,
            f"bgp full stack {n} Services: created s (not in the figure)": created,
            f"bgp full stack {n} Services: speaker rounds s p50 (ours)": rounds,
            f"bgp full stack {n} Services: routes set to RIB s p50 (ours)": after_routes,
            f"bgp full stack {n} Services: CPU s per speaker p50": statistics.median(ours.cpu.values()),
            f"bgp full stack {n} Services: RSS MiB per speaker at RIB p50": statistics.median(
                ours.rss_rib.values()
            )
            / 1024,
        }
    )


# -- the cluster: no flaps, then convergence -----------------------------------------------------------------


def service_manifest(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": SVC_NS, "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}],
        },
    }


def next_hops(cluster: LabCluster, prefix: str = VIP_PREFIX) -> set[str]:
    """The gateways of `prefix` in the router's kernel FIB (ECMP: one per advertising node)."""
    return {h.gateway for h in cluster.router.fib(4).get(prefix, []) if h.gateway}


def wait_next_hops(cluster: LabCluster, nodes: tuple[str, ...], prefix: str = VIP_PREFIX) -> None:
    wanted = {cluster.lab.node_address(n) for n in nodes}
    cluster.wait_for(lambda: next_hops(cluster, prefix) == wanted, WAIT, f"{prefix} via {sorted(nodes)}")


@pytest.fixture(scope="module")
def cluster(log_dir: Path, progress: Progress) -> Iterator[LabCluster]:
    with running_cluster("mlbbgpconv", log_dir / "cluster", progress) as lab_cluster:
        lab_cluster.kubectl("apply", "-f", "-", stdin=CONFIG)
        name = "hname-11"
        lab_cluster.client.create(
            SERVICES, service_manifest(name, {"metallb.io/loadBalancerIPs": VIP}), SVC_NS
        )
        lab_cluster.publish_endpoints(SVC_NS, name)
        lab_cluster.lab.serve(VIP, "hname")
        wait_next_hops(lab_cluster, WORKERS)
        progress(f"lab: {VIP} in the router's FIB via {', '.join(WORKERS)}; logs in {lab_cluster.log_dir}")
        yield lab_cluster


# -- no flaps on configuration changes -----------------------------------------------------------------------


def opens_sent(cluster: LabCluster) -> dict[str, float]:
    """metallb_bgp_opens_sent of each speaker for the router peer."""
    label = {"peer": f"{cluster.lab.router_address(4)}:179"}
    out = {}
    for node in cluster.nodes:
        scrape = cluster.speaker_metrics(node)
        value = scrape.value("metallb_bgp_opens_sent", label) if scrape else None
        if value is None:
            raise AssertionError(f"no metallb_bgp_opens_sent from the speaker of {node}")
        out[node] = value
    return out


class SessionWatch:
    """Polls FRR's neighbors every 20 ms in a thread: counts any moment a session is not established or
    its uptime went down, and keeps the first and last view."""

    def __init__(self, vty: FrrVty, addresses: list[str]) -> None:
        self._vty = vty
        self._addresses = addresses
        self.first = vty.sessions()
        self.last = self.first
        self.down_seen: list[str] = []
        self.uptime_drops: list[str] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frr session watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            view = self._vty.sessions()
            self.polls += 1
            for address in self._addresses:
                now, before = view.get(address), self.last.get(address)
                if now is None or not now.established:
                    self.down_seen.append(address)
                elif before is not None and (now.uptime_ms or 0) < (before.uptime_ms or 0):
                    self.uptime_drops.append(address)
            self.last = view

    def stop(self) -> dict[str, Session]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.last


@dataclass(frozen=True)
class Edit:
    """One configuration change: what it is, how to make it, and when FRR's table shows it."""

    name: str
    apply: Callable[[LabCluster], object]
    shows: Callable[[dict[str, list[Any]]], bool]


def paths(routes: dict[str, list[Any]], prefix: str) -> list[Any]:
    return routes.get(prefix, [])


def on_every_node(routes: dict[str, list[Any]], prefix: str, check: Callable[[Any], bool]) -> bool:
    found = paths(routes, prefix)
    return len(found) == len(WORKERS) and all(check(p) for p in found)


def patch_advertisement(cluster: LabCluster, spec: str) -> None:
    cluster.kubectl("patch", "bgpadvertisements.metallb.io", "bench", "-n", NS, "--type=merge", "-p", spec)


def create_second_service(cluster: LabCluster) -> None:
    name = "hname-12"
    cluster.client.create(
        SERVICES, service_manifest(name, {"metallb.io/loadBalancerIPs": SECOND_VIP}), SVC_NS
    )
    cluster.publish_endpoints(SVC_NS, name)


def create_extra_pool(cluster: LabCluster) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=EXTRA_CONFIG)
    name = "extra-svc"
    cluster.client.create(SERVICES, service_manifest(name, {"metallb.io/address-pool": EXTRA_POOL}), SVC_NS)
    cluster.publish_endpoints(SVC_NS, name)


def delete_extra_pool(cluster: LabCluster) -> None:
    cluster.kubectl("delete", "service", "extra-svc", "-n", SVC_NS)
    cluster.kubectl("delete", "bgpadvertisements.metallb.io", EXTRA_POOL, "-n", NS)
    cluster.kubectl("delete", "ipaddresspools.metallb.io", EXTRA_POOL, "-n", NS)


def extra_prefixes(routes: dict[str, list[Any]]) -> list[str]:
    return [p for p in routes if p.startswith("192.168.1.2")]


EDITS = (
    Edit(
        "community 64512:100 added",
        lambda c: patch_advertisement(c, '{"spec": {"communities": ["64512:100"]}}'),
        lambda r: on_every_node(r, VIP_PREFIX, lambda p: "64512:100" in p.communities),
    ),
    Edit(
        "community removed",
        lambda c: patch_advertisement(c, '{"spec": {"communities": null}}'),
        lambda r: on_every_node(r, VIP_PREFIX, lambda p: not p.communities),
    ),
    Edit(
        "localPref 150",
        lambda c: patch_advertisement(c, '{"spec": {"localPref": 150}}'),
        lambda r: on_every_node(r, VIP_PREFIX, lambda p: p.local_pref == 150),
    ),
    Edit(
        "localPref unset",
        lambda c: patch_advertisement(c, '{"spec": {"localPref": null}}'),
        lambda r: on_every_node(r, VIP_PREFIX, lambda p: p.local_pref == 100),
    ),
    Edit(
        "a second Service",
        create_second_service,
        lambda r: on_every_node(r, f"{SECOND_VIP}/32", lambda p: True),
    ),
    Edit(
        "the second Service deleted",
        lambda c: c.kubectl("delete", "service", "hname-12", "-n", SVC_NS),
        lambda r: f"{SECOND_VIP}/32" not in r,
    ),
    Edit(
        "a new pool, its advertisement and a Service in it",
        create_extra_pool,
        lambda r: any(
            on_every_node(r, p, lambda path: "64512:20" in path.communities) for p in extra_prefixes(r)
        ),
    ),
    Edit("the new pool removed", delete_extra_pool, lambda r: not extra_prefixes(r)),
)


@pytest.mark.timeout(300 + 120 * EDIT_CYCLES)
def test_no_session_flaps_on_configuration_changes(
    cluster: LabCluster, figures: dict[str, float], progress: Progress
) -> None:
    assert isinstance(cluster.router, FrrRouter)
    addresses = [cluster.lab.node_address(n) for n in cluster.nodes]
    cluster.router.wait_neighbors(lambda v: all(v.get(a) and v[a].established for a in addresses), WAIT)
    vty = FrrVty(cluster.router)
    try:
        opens_before = opens_sent(cluster)
        watch = SessionWatch(vty, addresses)
        shown: list[float] = []
        try:
            for cycle in range(EDIT_CYCLES):
                for edit in EDITS:
                    began = time.monotonic()
                    edit.apply(cluster)
                    cluster.router.wait_routes(edit.shows, 4, WAIT)
                    shown.append(time.monotonic() - began)
                    progress(
                        f"edit {len(shown)}/{EDIT_CYCLES * len(EDITS)} (cycle {cycle + 1}): {edit.name}: in "
                        f"FRR's table after {ms(shown[-1]):.0f} ms; resets seen so far: "
                        f"{len(watch.down_seen) + len(watch.uptime_drops)}"
                    )
        finally:
            last = watch.stop()
        opens_after = opens_sent(cluster)
    finally:
        vty.close()
    first = watch.first
    dropped = sum(last[a].connections_dropped - first[a].connections_dropped for a in addresses)
    established = sum(last[a].connections_established - first[a].connections_established for a in addresses)
    opened = sum(opens_after[n] - opens_before[n] for n in cluster.nodes)
    flaps = int(max(dropped, established, opened, len(watch.down_seen), len(watch.uptime_drops)))
    changes = len(shown)
    latency = Summary.of(shown)
    rows: list[list[object]] = [
        ["sessions FRR dropped (connectionsDropped)", dropped],
        ["sessions FRR established (connectionsEstablished)", established],
        [f"polls with a session down ({watch.polls} polls, 20 ms apart)", len(watch.down_seen)],
        ["polls with a session's uptime lower than before", len(watch.uptime_drops)],
        ["OPENs our speakers sent (metallb_bgp_opens_sent)", int(opened)],
    ]
    text = "\n".join(
        [
            f"session flaps over {changes} configuration changes ({len(addresses)} sessions: 3 workers and "
            "the control-plane node)",
            table(["", "count"], rows),
            f"each change in FRR's table after: p50 {ms(latency.p50):.0f} ms, p99 {ms(latency.p99):.0f} ms "
            "(kubectl to the router, through the API server, controller and speakers)",
            f"{flaps} flaps over {changes} changes",
        ]
    )
    progress(text)
    print("\n" + text)
    figures.update(
        {
            "bgp config changes": float(changes),
            "bgp session flaps over the changes": float(flaps),
            "bgp config change to router ms p50": ms(latency.p50),
        }
    )
    assert flaps == 0, text


# -- convergence on a killed speaker -------------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: seconds from it until the router's FIB dropped the node, until the client's last request
    reached it (0 when none did after the kill) and until the router received the session's end; requests
    that failed meanwhile."""

    node: str
    fib: float
    traffic: float
    failed: int
    closed: float  # the router captured the session's FIN or RST (NaN without tcpdump)


def kill_and_measure(
    cluster: LabCluster,
    *,
    fib: FibWatch,
    ends: TcpEndWatch | None,
    prober: Prober,
    node: str,
    kill: Callable[[], None],
    rng: random.Random,
) -> Kill:
    wait_next_hops(cluster, WORKERS)
    time.sleep(rng.uniform(0.2, 0.5))  # a random phase of keepalives and the prober's cycle
    gateway = cluster.lab.node_address(node)
    wall, mono = time.time(), time.monotonic()
    kill()
    event: FibEvent | None = fib.first(
        VIP_PREFIX, lambda e: e.deleted or gateway not in e.gateways, after=wall, timeout=WAIT
    )
    if event is None:
        raise AssertionError(f"the router's FIB kept {gateway} for {VIP_PREFIX} for {WAIT:g} s")
    fib_s = event.at - wall
    end = ends.first(gateway, wall, timeout=5) if ends is not None else None
    # The requests sent up to a while after the FIB changed have finished (answered or timed out).
    settle = mono + fib_s + 0.2
    prober.wait_until(lambda ps: any(p.sent > settle for p in ps), WAIT)
    time.sleep(prober.timeout)
    probes = [p for p in prober.results() if mono <= p.sent <= settle]
    hits = [p.sent - mono for p in probes if p.answer == node]
    remaining = {cluster.lab.node_address(n) for n in WORKERS if n != node}
    if next_hops(cluster) != remaining:
        raise AssertionError(f"after the kill the FIB has {next_hops(cluster)}, not {remaining}")
    closed = end.at - wall if end is not None else NAN
    return Kill(node, fib_s, max(hits, default=0.0), sum(1 for p in probes if not p.ok), closed)


def floor_originator(cluster: LabCluster, node: str) -> RouterDaemon:
    """BIRD in `node`'s namespace announcing the VIP over the node's session, as the speaker did."""
    daemon = make_router(
        "bird",
        cluster.lab.node_ns(node),
        node_config(cluster.lab, node, cluster.peering, [VIP]),
        name=f"floor-{node}",
    )
    daemon.start()
    return daemon


@pytest.mark.timeout(300 + 60 * KILLS)
def test_convergence_when_a_speaker_is_killed(
    cluster: LabCluster, figures: dict[str, float], progress: Progress
) -> None:
    rng = random.Random(7)
    ours: list[Kill] = []
    floor: list[Kill] = []
    with contextlib.ExitStack() as stack:
        fib = stack.enter_context(FibWatch(cluster.lab.router_ns))
        ends = stack.enter_context(TcpEndWatch(cluster.lab.router_ns)) if shutil.which("tcpdump") else None
        prober = stack.enter_context(cluster.lab.prober(VIP, interval=PROBE_INTERVAL))
        for r in range(KILLS):
            node = WORKERS[r % len(WORKERS)]
            ours.append(
                kill_and_measure(
                    cluster,
                    fib=fib,
                    ends=ends,
                    prober=prober,
                    node=node,
                    kill=lambda n=node: cluster.kill_speaker(n),  # type: ignore[misc]
                    rng=rng,
                )
            )
            daemon = floor_originator(cluster, node)
            try:
                floor.append(
                    kill_and_measure(
                        cluster, fib=fib, ends=ends, prober=prober, node=node, kill=daemon.kill, rng=rng
                    )
                )
            finally:
                daemon.stop()  # already killed: removes what is left
            cluster.start_speaker(node)
            a, b = ours[-1], floor[-1]
            progress(
                f"kill {r + 1}/{KILLS} ({node}): FIN/RST {ms(a.closed):.1f} ms, FIB {ms(a.fib):.1f} ms, last "
                f"request to it {ms(a.traffic):.1f} ms, {a.failed} failed; floor (BIRD): FIN/RST "
                f"{ms(b.closed):.1f} ms, FIB {ms(b.fib):.1f} ms, last request {ms(b.traffic):.1f} ms, "
                f"{b.failed} failed"
            )
        wait_next_hops(cluster, WORKERS)
    rows: list[list[object]] = []
    result: dict[str, tuple[Summary, Summary]] = {}
    measures: tuple[tuple[str, Callable[[Kill], float]], ...] = (
        ("router receives the session's FIN/RST (ms)", lambda k: ms(k.closed)),
        ("router FIB drops the node (ms)", lambda k: ms(k.fib)),
        ("  of which the router's own work, FIN to FIB (ms)", lambda k: ms(k.fib - k.closed)),
        ("client's last request to the node, sent at (ms)", lambda k: ms(k.traffic)),
        ("requests failed per kill", lambda k: float(k.failed)),
    )
    for name, value in measures:
        mine, base = (
            Summary.of([v for k in kills if not math.isnan(v := value(k))]) for kills in (ours, floor)
        )
        result[name] = (mine, base)
        ratios = [ratio(mine.p50, base.p50), ratio(mine.p99, base.p99)]
        rows.append([name, mine.p50, mine.p99, mine.max, base.p50, base.p99, *ratios])
    text = "\n".join(
        [
            f"convergence on a SIGKILLed speaker: {KILLS} kills over {', '.join(WORKERS)} (ECMP over 3 "
            f"nodes, requests every {ms(PROBE_INTERVAL):.0f} ms on new connections, L4 hash)",
            table(["", "p50", "p99", "max", "floor p50", "floor p99", "p50 ratio", "p99 ratio"], rows),
            "FIB: stamps of `ip monitor route` in the router namespace; floor: BIRD 2 on the same node and "
            "session, SIGKILLed (goal: p99 under 100 ms)",
        ]
    )
    progress(text)
    print("\n" + text)
    fib_ours, fib_floor = result["router FIB drops the node (ms)"]
    traffic_ours, traffic_floor = result["client's last request to the node, sent at (ms)"]
    figures.update(
        {
            "bgp kill: FIB drops the node ms p50 (ours)": fib_ours.p50,
            "bgp kill: FIB drops the node ms p99 (ours)": fib_ours.p99,
            "bgp kill: FIB drops the node ms p50 (floor BIRD)": fib_floor.p50,
            "bgp kill: FIB drops the node ms p99 (floor BIRD)": fib_floor.p99,
            "bgp kill: last request to the node ms p50 (ours)": traffic_ours.p50,
            "bgp kill: last request to the node ms p50 (floor BIRD)": traffic_floor.p50,
        }
    )
