"""Speaker faults, as a client on the segment sees them: no two nodes answer ARP for one address beyond the
split-brain bound, and one node answers again once the fault stops.

One LabCluster (node1-3 and an excluded control-plane node, every speaker under libfaketime so its wall
clock can be stepped) serves the module, with one LoadBalancer Service whose VIP every worker serves over
HTTP. For each fault an ArpWatcher (testing.l2watch) probes the VIP from the client every 20 ms for the whole
run and the checker judges what it recorded:

- clock steps on the owner's running speaker: 2 h forward, back, 2 h back, forward again;
- the owner's speaker killed and restarted with its clock 2 h behind (gossip generations taken from the wall
  clock would make its new incarnation look older than its last one);
- SIGSTOP of the owner's speaker for longer than the gossip takes to declare it down, then SIGCONT: a new
  owner takes over, and the resumed one must stop answering within the bound;
- the owner's speaker's API connection through Toxiproxy: latency, a black hole longer than the gossip
  Leases last, connection resets.

Asserted per run: no double answer beyond the bound, only workers answer, and after the fault a single owner
that the ServiceL2Status names and that HTTP requests through the VIP reach. Recorded per fault in the
suite's table (conftest.FaultReport; figures, not asserted): runs, double answers of any length (goal 0),
unwanted moves (the answering node changed although no speaker was down), time to converge once the fault
stopped, and the longest double answer, ARP silence and HTTP outage. FAULT_RUNS=N repeats every fault N
times (default 1: the short form for CI).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from metallb_py import Responder
from metallb_py.k8s.resources import SERVICES
from metallb_py.testing import LabCluster, Toxic, Toxiproxy
from metallb_py.testing.l2watch import AddressReport, ArpWatcher, HttpReport, check_http

if TYPE_CHECKING:
    from conftest import FaultReport, FaultRow

pytestmark = [pytest.mark.integration, pytest.mark.netns]

REPO = Path(__file__).resolve().parents[2]
SEED_CONFIG = REPO / "examples" / "seed" / "metallb-l2config.yaml"
WORKERS = ("node1", "node2", "node3")
CONTROL_PLANE = "control-plane"
NAMESPACE, SERVICE = "default", "web"
FAULT_RUNS = int(os.environ.get("FAULT_RUNS", "1"))
SUITE = "speaker"
INTERVAL = 0.02
# The split-brain bound: how long two nodes may both answer for one address. The gossip declares a silent
# member down within about half a second (probe every 0.1 s, suspicion 0.25 s, isolation 0.4 s: the
# Membership defaults); a deposed owner that learns it lost must fall silent within that again.
SPLIT_BRAIN_BOUND = 1.0
# How long one node must answer alone before the address counts as settled.
SETTLED = 1.0
# Longer than the gossip takes to declare a silent member down (see SPLIT_BRAIN_BOUND).
PAUSE = 3.0
# Each clock step holds this long: several gossip rounds and a Lease renewal (every few seconds) under it.
STEP_HOLD = 3.0
TWO_HOURS = 7200.0
# Longer than a speaker's gossip Lease lasts (6 s): the others stop expecting the black-holed speaker.
BLACK_HOLE = 8.0
WAIT = 60.0
# HTTP requests through the VIP alongside the ARP probes (each on a new connection).
HTTP_INTERVAL = 0.05
HTTP_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def cluster(fault_binaries: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    logs = tmp_path_factory.mktemp("speaker-fault-logs")
    with LabCluster(
        WORKERS, CONTROL_PLANE, prefix="mlbflt", log_dir=logs, speaker_faketime=True
    ) as the_cluster:
        the_cluster.kubectl("apply", "-f", str(SEED_CONFIG))
        yield the_cluster


@pytest.fixture(scope="module")
def vip(cluster: LabCluster) -> str:
    cluster.client.create(
        SERVICES,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE},
            "spec": {"type": "LoadBalancer", "selector": {"app": SERVICE}, "ports": [{"port": 80}]},
        },
        NAMESPACE,
    )
    cluster.publish_endpoints(NAMESPACE, SERVICE)
    address = cluster.wait_for(lambda: cluster.external_ips(NAMESPACE, SERVICE), WAIT, "an address")[0]
    cluster.lab.serve(address, "hname")
    cluster.wait_for(lambda: cluster.announcer(NAMESPACE, SERVICE), WAIT, "an announcer")
    return address


# -- figures -------------------------------------------------------------------------------------------------


def record(row: FaultRow, report: AddressReport, http: HttpReport, *, cleared: float, moved: int) -> None:
    """One run's figures in the suite's table (conftest.FaultReport): double answers of any length count
    as duplicates, moves beyond what the fault explains as moves; the longest double answer, ARP silence
    and HTTP outage as a note."""
    assert report.settled_at is not None
    row.runs += 1
    row.duplicates += len(report.double_answers)
    row.moves += moved
    row.converge_s.append(max(0.0, report.settled_at - cleared))

    def longest(spans: Iterable[float]) -> str:
        return f"{max(spans, default=0.0) * 1000:.0f} ms"

    row.notes.append(
        f"longest double answer {longest(i.duration for i in report.double_answers)}, "
        f"ARP silence {longest(i.duration for i in report.silences)}, "
        f"HTTP outage {longest(end - start for start, end in http.outages)}"
    )


# -- one run of a fault --------------------------------------------------------------------------------------


def macs_of(cluster: LabCluster) -> dict[str, str]:
    return {cluster.lab.node_mac(node): node for node in cluster.nodes}


def settled(report: AddressReport, since: float) -> bool:
    """One MAC has answered alone for the last SETTLED seconds after `since`."""
    return report.settled_at is not None and time.monotonic() - max(report.settled_at, since) >= SETTLED


def hold(cluster: LabCluster, seconds: float, what: str) -> None:
    """Keeps a fault on for `seconds`; a process of the cluster that dies meanwhile fails the run at once."""
    deadline = time.monotonic() + seconds
    cluster.wait_for(lambda: time.monotonic() >= deadline, seconds + WAIT, what)


def owner_by_arp(watcher: ArpWatcher, vip: str, since: float, what: str) -> str:
    """Waits until one MAC has answered alone for SETTLED seconds after `since`; returns it."""
    if not watcher.wait_until(lambda reports: settled(reports[vip], since), WAIT):
        pytest.fail(f"{what}: no single owner settled in {WAIT:.0f} s: {watcher.report()[vip].summary()}")
    owner = watcher.report()[vip].owner
    assert owner is not None
    return owner


def takeover(watcher: ArpWatcher, vip: str, old_mac: str, since: float) -> str:
    """Waits until another MAC than `old_mac` answers alone; returns it."""

    def moved(reports: Mapping[str, AddressReport]) -> bool:
        return any(m.new != old_mac and m.at >= since for m in reports[vip].moves)

    if not watcher.wait_until(moved, WAIT):
        pytest.fail(f"nobody took {vip} over from {old_mac}: {watcher.report(since)[vip].summary()}")
    return next(m.new for m in watcher.report()[vip].moves if m.new != old_mac and m.at >= since)


def run_fault(
    cluster: LabCluster,
    vip: str,
    row: FaultRow,
    fault: Callable[[ArpWatcher, str], None],
    *,
    expected_moves: int,
) -> None:
    """One run: the watcher starts, the address settles on its owner, `fault(watcher, owner node)` runs
    and returns once the fault has stopped, then the address must settle on one node that the cluster agrees
    on, with no double answer beyond the bound over the whole run."""
    nodes_by_mac = macs_of(cluster)
    log = cluster.log_dir / f"l2watch-{time.monotonic():.0f}.log"
    with (
        ArpWatcher.on_client(cluster.lab, [vip], interval=INTERVAL, log=log) as watcher,
        cluster.lab.prober(vip, interval=HTTP_INTERVAL, timeout=HTTP_TIMEOUT) as prober,
    ):
        began = time.monotonic()
        owner_mac = owner_by_arp(watcher, vip, began, "before the fault")
        fault_began = time.monotonic()
        fault(watcher, nodes_by_mac[owner_mac])
        cleared = time.monotonic()
        cluster.wait_for_speakers(timeout=WAIT)
        joined = time.monotonic()
        final_mac = owner_by_arp(watcher, vip, joined, "after the fault")
        report = watcher.report(since=began)[vip]
        final = nodes_by_mac[final_mac]
        cluster.wait_for(
            lambda: cluster.announcer(NAMESPACE, SERVICE) == final,
            WAIT,
            f"the ServiceL2Status to name {final}, which answers ARP",
        )
        # Service restored for the client too: its requests reach the node that answers ARP.
        assert prober.wait_for_answer(final, WAIT) is not None, check_http(prober.results())
        http = check_http(prober.stop())
    strangers = {nodes_by_mac.get(mac, mac) for mac in report.macs} - set(WORKERS)
    assert not strangers, f"answered by what may not announce: {strangers}; {report.summary()}"
    assert not report.double_answers_beyond(SPLIT_BRAIN_BOUND), report.summary()
    moved = max(0, len(report.moves_between(fault_began)) - expected_moves)
    record(row, report, http, cleared=cleared, moved=moved)


def kubeconfig_without_tls_verification(cluster: LabCluster) -> Path:
    """The cluster's kubeconfig, without verifying the API server's certificate: the lab's certificates were
    issued when it started, so a clock 2 h behind finds them not yet valid, which a real cluster's older
    certificates would not be. The fault under test is the gossip's and the responder's, not TLS's."""
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    for entry in config["clusters"]:
        entry["cluster"].pop("certificate-authority-data", None)
        entry["cluster"]["insecure-skip-tls-verify"] = True
    out = cluster.log_dir / "no-tls-verification.kubeconfig"
    out.write_text(yaml.safe_dump(config))
    out.chmod(0o600)
    return out


def restart_true(cluster: LabCluster, node: str) -> None:
    """Back to a plain speaker on `node` (true clock, direct API connection) for the next test."""
    if cluster.speaker_running(node):
        cluster.stop_speaker(node)
    cluster.start_speaker(node, clock_offset=0.0)
    cluster.wait_for_speakers(timeout=WAIT)


# -- the faults ----------------------------------------------------------------------------------------------


def test_the_watcher_fails_a_second_node_answering(cluster: LabCluster, vip: str) -> None:
    """The check can fail: a responder beside the speakers (in the control-plane node's namespace, which no
    speaker announces from) answers for the VIP for twice the bound, and the watcher reports that as a
    double answer beyond the bound, the owner's MAC and the intruder's; the owner alone answers after."""
    intruder = cluster.lab.node_mac(CONTROL_PLANE)
    with ArpWatcher.on_client(cluster.lab, [vip], interval=INTERVAL) as watcher:
        owner = owner_by_arp(watcher, vip, time.monotonic(), "before the intruder")
        with Responder(
            [cluster.lab.node_interface(CONTROL_PLANE)], netns=cluster.lab.node_ns(CONTROL_PLANE)
        ) as r:
            r.announce(vip)
            hold(cluster, 2 * SPLIT_BRAIN_BOUND, "the intruder's answers")
        after = time.monotonic()
        assert owner_by_arp(watcher, vip, after, "after the intruder") == owner
        report = watcher.report()[vip]
    beyond = report.double_answers_beyond(SPLIT_BRAIN_BOUND)
    assert [i.macs for i in beyond] == [{owner, intruder}], report.summary()


@pytest.mark.timeout(120 + 40 * FAULT_RUNS)
def test_clock_steps_on_the_owner_move_nothing(
    cluster: LabCluster, vip: str, fault_report: FaultReport
) -> None:
    def steps(_watcher: ArpWatcher, owner: str) -> None:
        try:
            for offset in (TWO_HOURS, 0.0, -TWO_HOURS, 0.0):
                cluster.set_speaker_clock(owner, offset)
                hold(cluster, STEP_HOLD, f"the clock step to {offset:+.0f} s")
        finally:
            cluster.set_speaker_clock(owner, 0.0)

    for _ in range(FAULT_RUNS):
        run_fault(cluster, vip, fault_report.row(SUITE, "clock steps +-2 h"), steps, expected_moves=0)


@pytest.mark.timeout(120 + 40 * FAULT_RUNS)
def test_a_speaker_restarted_two_hours_behind_rejoins_without_a_split_brain(
    cluster: LabCluster, vip: str, fault_report: FaultReport
) -> None:
    restarted: list[str] = []

    def crash_and_restart_behind(watcher: ArpWatcher, owner: str) -> None:
        old_mac = cluster.lab.node_mac(owner)
        restarted.append(owner)
        killed = time.monotonic()
        cluster.kill_speaker(owner)
        takeover(watcher, vip, old_mac, killed)
        cluster.start_speaker(
            owner, clock_offset=-TWO_HOURS, kubeconfig=kubeconfig_without_tls_verification(cluster)
        )

    try:
        for _ in range(FAULT_RUNS):
            run_fault(
                cluster,
                vip,
                fault_report.row(SUITE, "restart 2 h behind"),
                crash_and_restart_behind,
                expected_moves=2,  # away from the crashed owner, and back when it returns (MetalLB's order)
            )
    finally:
        for node in set(restarted):
            restart_true(cluster, node)


@pytest.mark.timeout(120 + 40 * FAULT_RUNS)
def test_a_paused_owner_is_replaced_and_falls_silent_when_resumed(
    cluster: LabCluster, vip: str, fault_report: FaultReport
) -> None:
    def pause(watcher: ArpWatcher, owner: str) -> None:
        old_mac = cluster.lab.node_mac(owner)
        paused = time.monotonic()
        cluster.pause_speaker(owner)
        try:
            takeover(watcher, vip, old_mac, paused)
            hold(cluster, paused + PAUSE - time.monotonic(), "the pause")
        finally:
            cluster.resume_speaker(owner)

    for _ in range(FAULT_RUNS):
        run_fault(
            cluster,
            vip,
            fault_report.row(SUITE, f"SIGSTOP {PAUSE:.0f} s, SIGCONT"),
            pause,
            expected_moves=2,  # to a live node, and back to the resumed one (MetalLB's order)
        )


# Each toxic holds for BLACK_HOLE seconds at most, and a run settles in a few more.
TOXICS: tuple[tuple[str, tuple[Toxic, ...], float], ...] = (
    ("API latency 500 ms", (Toxic.latency(500, 100), Toxic.latency(500, 100, stream="upstream")), 5.0),
    ("API black hole 8 s", (Toxic.timeout(0), Toxic.timeout(0, stream="upstream")), BLACK_HOLE),
    ("API connection resets", (Toxic.reset_peer(0),), 3.0),
)


@pytest.mark.timeout(120 + 3 * 40 * FAULT_RUNS)
def test_the_owners_api_connection_through_toxiproxy(
    cluster: LabCluster, vip: str, fault_report: FaultReport
) -> None:
    owner = cluster.announcer(NAMESPACE, SERVICE)
    assert owner is not None
    with Toxiproxy() as toxiproxy:
        kubeconfig = cluster.log_dir / f"{owner}-via-toxiproxy.kubeconfig"
        proxy = toxiproxy.proxy_api_server(cluster.control_plane, kubeconfig, name=f"apiserver-{owner}")
        # Outside the measured runs: the owner's speaker now reaches the API server through the proxy only.
        cluster.stop_speaker(owner)
        cluster.start_speaker(owner, kubeconfig=kubeconfig, clock_offset=0.0)
        cluster.wait_for_speakers(timeout=WAIT)
        try:
            for name, toxics, seconds in TOXICS:

                def apply(
                    _watcher: ArpWatcher,
                    _owner: str,
                    toxics: tuple[Toxic, ...] = toxics,
                    seconds: float = seconds,
                ) -> None:
                    with proxy.toxic(*toxics):
                        hold(cluster, seconds, "the toxics")

                for _ in range(FAULT_RUNS):
                    run_fault(cluster, vip, fault_report.row(SUITE, name), apply, expected_moves=0)
        finally:
            restart_true(cluster, owner)
