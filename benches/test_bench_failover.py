"""Layer 2 failover of the whole speaker, end to end in a LabCluster: recorded, printed, never asserted.

One LabCluster for the module (a real kube-apiserver on 127.0.0.1, node1-3 and an excluded control-plane
node as network namespaces, our controller and a speaker per node). The seed's pool serves three Services,
hname-11..13 on 192.168.1.11-13, with endpoints on node1-3 whose echo servers answer with their node's name,
so every answer says which node took it. Measured:

- failover: a client in the lab requests a VIP every 10 ms; KILLS times the node answering it dies and the
  time from the death to the first answer from another node is recorded, with the requests lost meanwhile
  and, from the speakers' logs, when the first survivor took it over or declared it down and when the new
  node started announcing. Two kinds of death, KILLS of each: its cable cut and then its speaker SIGKILLed
  (no farewell gets out), and its speaker SIGKILLed alone (the node's kernel still answers for a cached
  MAC). The dead node then comes back (cable, new speaker), may win its address back, and the next round
  waits until one node answers steadily; the requests lost meanwhile are the hand-back's. Rounds rotate over
  the three VIPs so that different nodes die. Idle, then with every core loaded by busy loops.
- keepalived, side by side (benches/_keepalived.py): VRRPv3 with 10 ms adverts on three nodes of a lab like
  this one, the same client and prober, the same two kinds of death, KILLS of each.
- the floor, side by side: a plain NetnsLab with two bare Responders, where the bench itself announces the
  VIP on the other node the moment it cuts the first one's cable (no detection, no election, no API): what
  the network and the client cost. The ratio to it is what the speaker adds.
- spurious failovers: SOAK_SECONDS (default 120; `make soak-l2`: 300) with every core loaded, the prober
  running and nobody dying: changes of the answering node, of the Services' ServiceL2Status, nodeAssigned
  Events, and the speakers' "member down" and "member held" log lines (each is spurious).
- idle footprint: each speaker's resident memory and CPU over IDLE_SECONDS of nothing happening, with the
  three seed Services and again with SERVICES (default 100) more announced.

Needs root (skipped otherwise, unless METALLB_PY_REQUIRE_NETNS=1) and the cached Kubernetes binaries (`make
k8s`). Knobs: METALLB_PY_FAILOVER_KILLS (20), METALLB_PY_FAILOVER_LOADED_KILLS (as many; 0 skips the loaded
rounds), METALLB_PY_FAILOVER_SOAK (120 s; `make soak-l2`: 300 s), METALLB_PY_FAILOVER_IDLE (30 s),
METALLB_PY_FAILOVER_SERVICES (100), METALLB_PY_FAILOVER_HOGS (one per CPU), METALLB_PY_FAILOVER_LOGS (a
directory to keep the logs in), METALLB_PY_FAILOVER_KEEPALIVED (1; 0 leaves keepalived out).
"""

from __future__ import annotations

import itertools
import math
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from _failover_support import (
    LogTail,
    ProcSample,
    Progress,
    Summary,
    cpu_percent,
    log_time,
    sample_process,
    table,
)
from _keepalived import KeepalivedRun, measure_keepalived
from _measure import cpu_load
from _results import record_failover
from metallb_py import Responder
from metallb_py.k8s.resources import (
    EVENTS,
    IP_ADDRESS_POOLS,
    L2_ADVERTISEMENTS,
    SERVICE_L2_STATUSES,
    SERVICES,
)
from metallb_py.testing import ControlPlaneUnavailableError, LabCluster, NetnsLab, Probe, Prober
from metallb_py.testing.controlplane import (
    DEFAULT_KUBERNETES_VERSION,
    KubernetesBinaries,
    default_cache_dir,
)

REQUIRE_NETNS = os.environ.get("METALLB_PY_REQUIRE_NETNS") == "1"
REQUIRE_K8S = os.environ.get("METALLB_PY_REQUIRE_K8S") == "1"

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(
        os.geteuid() != 0 and not REQUIRE_NETNS, reason="needs root for network namespaces and raw sockets"
    ),
]

KILLS = int(os.environ.get("METALLB_PY_FAILOVER_KILLS", "20"))
LOADED_KILLS = int(os.environ.get("METALLB_PY_FAILOVER_LOADED_KILLS", str(KILLS)))
# CI's soak; `make soak-l2` runs the five minutes.
SOAK_SECONDS = float(os.environ.get("METALLB_PY_FAILOVER_SOAK", "120"))
KEEPALIVED = os.environ.get("METALLB_PY_FAILOVER_KEEPALIVED", "1") != "0"
# How a node dies: its cable cut and then its speaker SIGKILLed, or its speaker SIGKILLed alone.
DEATHS = {"cut": "cable cut, then SIGKILL", "kill": "SIGKILL alone"}
IDLE_SECONDS = float(os.environ.get("METALLB_PY_FAILOVER_IDLE", "30"))
SERVICES_FOR_FOOTPRINT = int(os.environ.get("METALLB_PY_FAILOVER_SERVICES", "100"))
LOG_DIR = os.environ.get("METALLB_PY_FAILOVER_LOGS") or None

ROOT = Path(__file__).resolve().parent.parent
SEED_CONFIG = ROOT / "examples" / "seed" / "metallb-l2config.yaml"
NAMESPACE = "default"
VIPS = ("192.168.1.11", "192.168.1.12", "192.168.1.13")  # the seed's pool, all of it
FOOTPRINT_POOL = "footprint"
FOOTPRINT_ADDRESSES = "192.0.2.1-192.0.2.254"  # documentation range; no traffic is sent to it
PROBE_INTERVAL = 0.01
STEADY_PROBES = 50  # one node answered the last 0.5 s of requests
WAIT = 30.0  # seconds for any one step; each normally takes well under one
FLOOR_REJOIN = 1.5  # seconds between restoring a cut cable and the next round of the floor
ROUND_BUDGET = 40.0  # pytest timeout per kill round, far above the few seconds one takes

NAN = float("nan")


def service_name(vip: str) -> str:
    return f"hname-{vip.rsplit('.', 1)[1]}"


def service_manifest(name: str, annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE, "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}],
        },
    }


# -- the cluster ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(progress: Progress) -> Iterator[LabCluster]:
    cached = KubernetesBinaries.in_dir(default_cache_dir() / "k8s" / DEFAULT_KUBERNETES_VERSION / "bin")
    if cached.missing() and not REQUIRE_K8S:
        # A first build takes 15 minutes or more, far beyond a test's timeout.
        pytest.skip("no cached Kubernetes binaries: run `make k8s` once")
    lab_cluster = LabCluster(
        prefix="mlbfail", log_dir=LOG_DIR, progress=lambda line: progress(f"lab: {line}")
    )
    try:
        lab_cluster.start()
    except ControlPlaneUnavailableError as exc:
        if REQUIRE_K8S:
            raise
        pytest.skip(f"no local Kubernetes control plane: {exc}")
    try:
        progress(f"lab: speaker logs in {lab_cluster.log_dir}")
        seed(lab_cluster, progress)
        yield lab_cluster
    finally:
        lab_cluster.close()


def seed(cluster: LabCluster, progress: Progress) -> None:
    """The seed's ConfigMap, and one hname Service per address of its pool, ready on node1-3."""
    cluster.kubectl("apply", "-f", str(SEED_CONFIG))
    for vip in VIPS:
        name = service_name(vip)
        cluster.client.create(
            SERVICES, service_manifest(name, {"metallb.io/loadBalancerIPs": vip}), NAMESPACE
        )
        cluster.publish_endpoints(NAMESPACE, name)
        cluster.lab.serve(vip, "hname")
    owners = []
    for vip in VIPS:
        name = service_name(vip)
        cluster.wait_for(partial(has_ip, cluster, name, vip), WAIT, f"{vip} for {name}")
        owner = cluster.wait_for(partial(cluster.announcer, NAMESPACE, name), WAIT, f"an announcer of {name}")
        owners.append(f"{vip} by {owner}")
    progress(f"lab: seed Services announced: {', '.join(owners)}")


def has_ip(cluster: LabCluster, service: str, vip: str) -> bool:
    return vip in cluster.external_ips(NAMESPACE, service)


def steady_answer(cluster: LabCluster, prober: Prober, service: str) -> str | None:
    """The node that answered the last STEADY_PROBES requests, all of them, if its ServiceL2Status agrees."""
    probes = prober.results()[-STEADY_PROBES:]
    if len(probes) < STEADY_PROBES or time.monotonic() - probes[-1].received > 0.2:
        return None
    answers = {p.answer for p in probes}
    if len(answers) != 1:
        return None
    (answer,) = answers
    if answer is None or cluster.announcer(NAMESPACE, service) != answer:
        return None
    return answer


def wait_steady(cluster: LabCluster, prober: Prober, service: str, node: str | None = None) -> str:
    """The node that answers `service` steadily (`node`, when given: the one expected to win it)."""

    def steady() -> str | None:
        answer = steady_answer(cluster, prober, service)
        return answer if node is None or answer == node else None

    return cluster.wait_for(
        steady, WAIT, f"{node or 'one node'} to answer {service} steadily, as its ServiceL2Status says"
    )


# -- failover ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    """One death of an announcer. Times are seconds from the kill; NaN when the logs did not show it."""

    vip: str
    death: str  # a key of DEATHS
    killed: str
    taker: str
    answered: float  # the first answer from another node
    detected: float  # the first survivor logs `member held` (fast takeover) or `member down` (gossip)
    announced: float  # the taker logs `announcing` the VIP
    recorded: float  # the ServiceL2Status names the taker
    lost: int  # requests sent from the kill until the first answer, unanswered
    back_to: str  # who answers once the dead node has rejoined
    back_lost: int  # requests lost from the restart until one node answers steadily again
    rejoin: float  # seconds from the restart until then
    spurious_downs: int  # `member down` about any other node, from the kill to the end of the round


def first_time(records: list[dict[str, Any]], since: float) -> float:
    times = [log_time(r) - since for r in records]
    return min(times, default=NAN)


def kill_round(cluster: LabCluster, prober: Prober, vip: str, rng: random.Random, death: str) -> Kill:
    service = service_name(vip)
    old = wait_steady(cluster, prober, service)
    time.sleep(rng.uniform(0.3, 0.8))  # a random phase of the gossip's probe cycle
    tails = {node: LogTail(cluster.speaker_log(node)) for node in cluster.nodes}
    killed, killed_wall = time.monotonic(), time.time()
    if death == "cut":
        cluster.lab.kill_link(old)
    cluster.kill_speaker(old)
    first = cluster.wait_for(
        partial(prober.first_answer, killed, other_than=old),
        WAIT,
        f"an answer at {vip} from a node but {old}",
    )
    taker = str(first.answer)
    cluster.wait_for(
        lambda: cluster.announcer(NAMESPACE, service) == taker, WAIT, f"the ServiceL2Status to name {taker}"
    )
    recorded = time.monotonic() - killed

    # The node comes back: its cable, then a new speaker, which may win its addresses back.
    if death == "cut":
        cluster.lab.restore_link(old)
    restarted = time.monotonic()
    cluster.start_speaker(old)
    own = tails[old]
    cluster.wait_for(lambda: own.find("joined the speakers"), WAIT, f"the new speaker of {old} to join")
    # No wait for the peers' `member up`: a restart quicker than the gossip's detection (the fast takeover
    # answers in tens of milliseconds) replaces the old life without one. The election order did not change:
    # the node that answered before its death wins its address back, once it is ready.
    back_to = wait_steady(cluster, prober, service, old)
    steady = time.monotonic()
    time.sleep(prober.timeout + 0.2)  # requests still in flight finish before the prober is stopped
    probes = prober.results()

    survivors = [node for node in cluster.nodes if node != old]
    downs = [
        r
        for node in survivors
        for msg in ("member held", "member down")
        for r in tails[node].find(msg, member=old)
    ]
    others = [
        r
        for node in survivors
        for msg in ("member held", "member down")
        for r in tails[node].find(msg)
        if r.get("member") != old and log_time(r) >= killed_wall
    ]
    return Kill(
        vip=vip,
        death=death,
        killed=old,
        taker=taker,
        answered=first.received - killed,
        detected=first_time(downs, killed_wall),
        announced=first_time(tails[taker].find("announcing", ip=vip), killed_wall),
        recorded=recorded,
        lost=lost_between(probes, killed, first.sent),
        back_to=back_to,
        back_lost=lost_between(probes, restarted, steady),
        rejoin=steady - restarted,
        spurious_downs=len(others),
    )


def lost_between(probes: list[Probe], start: float, end: float) -> int:
    """Requests sent in [start, end) that got no answer."""
    return sum(1 for p in probes if start <= p.sent < end and not p.ok)


def measure_kills(cluster: LabCluster, rounds: int, progress: Progress, label: str, death: str) -> list[Kill]:
    rng = random.Random(11)
    kills: list[Kill] = []
    for r in range(rounds):
        vip = VIPS[r % len(VIPS)]
        prober = cluster.lab.prober(vip, interval=PROBE_INTERVAL)
        try:
            k = kill_round(cluster, prober, vip, rng, death)
        finally:
            prober.stop()
        kills.append(k)
        progress(
            f"{label} {death} {r + 1}/{rounds} ({vip}): {k.killed} -> {k.taker} in {k.answered:.3f} s "
            f"(taken over {k.detected:.3f} s, announcing {k.announced:.3f} s, ServiceL2Status "
            f"{k.recorded:.3f} s; {k.lost} requests lost); rejoined in {k.rejoin:.1f} s, answered by "
            f"{k.back_to} ({k.back_lost} lost)"
        )
    return kills


def measure_floor(rounds: int, progress: Progress, label: str) -> list[float]:
    """Seconds from cutting the answering node's cable to the first answer from the other node, when the
    other node's responder announces the VIP at once (and sends its gratuitous ARP)."""
    vip = VIPS[0]
    rng = random.Random(11)
    times: list[float] = []
    with NetnsLab(nodes=["node1", "node2"], prefix="mlbfloor") as lab:
        lab.serve(vip, "hname")
        responders = {n: Responder([lab.node_interface(n)], netns=lab.node_ns(n)) for n in lab.nodes}
        for responder in responders.values():
            responder.start()
        try:
            owner, other = lab.nodes
            responders[owner].announce(vip)
            with lab.prober(vip, interval=PROBE_INTERVAL) as prober:
                for r in range(rounds):
                    if prober.wait_for_answer(owner, timeout=WAIT) is None:
                        raise TimeoutError(f"floor: {owner} never answered {vip}")
                    time.sleep(rng.uniform(0.3, 0.8))  # the same phases as the speakers' rounds
                    killed = time.monotonic()
                    lab.kill_link(owner)
                    responders[other].announce(vip)
                    if prober.wait_for_answer(other, timeout=WAIT, after=killed) is None:
                        raise TimeoutError(f"floor: {other} never answered {vip}")
                    first = prober.first_answer(killed, other_than=owner)
                    assert first is not None
                    times.append(first.received - killed)
                    lab.restore_link(owner)
                    responders[owner].withdraw(vip)
                    # The cut node's kernel still retries, once a second, to resolve the client for the
                    # answers it could not send: the next round's new owner (this node) would sit on its
                    # first answers until the next try, up to a second. A speaker's rejoin takes longer.
                    time.sleep(FLOOR_REJOIN)
                    owner, other = other, owner
                    if (r + 1) % 5 == 0 or r + 1 == rounds:
                        recent = ", ".join(f"{1000 * t:.0f}" for t in times[-5:])
                        progress(f"{label} floor {r + 1}/{rounds}: {recent} ms")
        finally:
            for responder in responders.values():
                responder.stop()
    return times


def report_failover(
    label: str,
    kills: dict[str, list[Kill]],
    floor: list[float],
    *,
    keepalived: dict[str, KeepalivedRun],
    figures: dict[str, float],
    progress: Progress,
) -> None:
    def row(what: str, seconds: list[float]) -> list[object]:
        s = Summary.of([t for t in seconds if not math.isnan(t)])
        return [what, s.n, 1000 * s.mean, 1000 * s.p50, 1000 * s.p99, 1000 * s.max]

    base = Summary.of(floor)
    rows: list[list[object]] = []
    lines: list[str] = []
    prefix = f"failover {label}"
    for death, rounds in kills.items():
        how = DEATHS[death]
        answered = Summary.of([k.answered for k in rounds])
        lost = [k.lost for k in rounds]
        back_lost = [k.back_lost for k in rounds]
        rows += [
            row(f"speaker, {how}: death -> first answer from the new node", [k.answered for k in rounds]),
            row("  death -> first survivor takes it over (member held / down)", [k.detected for k in rounds]),
            row("  death -> new node logs announcing", [k.announced for k in rounds]),
            row("  death -> ServiceL2Status names the new node", [k.recorded for k in rounds]),
        ]
        line = (
            f"{how}: speaker p50 {1000 * answered.p50:.0f} ms, p99 {1000 * answered.p99:.0f} ms "
            f"(goal: p99 under 100 ms); speaker p50 / floor p50 {answered.p50 / base.p50:.1f}x"
        )
        figures.update(
            {
                f"{prefix} {death} kills": float(answered.n),
                f"{prefix} {death} death->answer p50 ms": 1000 * answered.p50,
                f"{prefix} {death} death->answer p99 ms": 1000 * answered.p99,
                f"{prefix} {death} death->answer max ms": 1000 * answered.max,
                f"{prefix} {death} requests lost per failover (mean)": statistics.fmean(lost),
                f"{prefix} {death} requests lost per hand-back (max)": float(max(back_lost)),
            }
        )
        run = keepalived.get(death)
        if run is not None:
            vrrp = Summary.of(run.answered)
            rows.append(row(f"keepalived VRRPv3 10 ms, {how}: death -> answer", run.answered))
            line += (
                f"; keepalived p50 {1000 * vrrp.p50:.0f} ms, p99 {1000 * vrrp.p99:.0f} ms; "
                f"speaker / keepalived at p50 {answered.p50 / vrrp.p50:.2f}x, "
                f"at p99 {answered.p99 / vrrp.p99:.2f}x"
            )
            figures.update(
                {
                    f"{prefix} {death} keepalived death->answer p50 ms": 1000 * vrrp.p50,
                    f"{prefix} {death} keepalived death->answer p99 ms": 1000 * vrrp.p99,
                    f"{prefix} {death} speaker p50 / keepalived p50": answered.p50 / vrrp.p50,
                }
            )
        lines.append(line)
        loss = (
            f"{how}: requests lost per failover mean {statistics.fmean(lost):.1f}, max {max(lost)}; "
            f"per hand-back mean {statistics.fmean(back_lost):.1f}, max {max(back_lost)} (goal: at most 1)"
        )
        if run is not None:
            loss += (
                f"; keepalived per failover mean {statistics.fmean(run.lost):.1f}, per hand-back max "
                f"{max(run.back_lost)}"
            )
        lines.append(loss)
    rows.append(row("floor: cable cut + immediate announce -> answer", floor))
    every = [k for rounds in kills.values() for k in rounds]
    pairs = Counter(f"{k.killed}->{k.taker}" for k in every)
    text = "\n".join(
        [
            f"failover, {label} (a request every {1000 * PROBE_INTERVAL:.0f} ms; ms)",
            table(["", "n", "mean", "p50", "p99", "max"], rows),
            *lines,
            f"spurious member downs during the rounds: {sum(k.spurious_downs for k in every)}; "
            f"failovers: {', '.join(f'{p} x{n}' for p, n in sorted(pairs.items()))}",
        ]
    )
    progress(text)
    print("\n" + text)
    record_failover(label, kills, floor, keepalived=keepalived, deaths=DEATHS, probe_interval=PROBE_INTERVAL)
    figures.update(
        {
            f"{prefix} floor p50 ms": 1000 * base.p50,
            f"{prefix} spurious member downs": float(sum(k.spurious_downs for k in every)),
        }
    )


def measure_all(
    cluster: LabCluster, rounds: int, progress: Progress, label: str
) -> tuple[dict[str, list[Kill]], list[float], dict[str, KeepalivedRun]]:
    """The floor, then both kinds of death of our speakers, then keepalived's, in one session."""
    floor = measure_floor(rounds, progress, label)
    kills = {death: measure_kills(cluster, rounds, progress, label, death) for death in DEATHS}
    keepalived: dict[str, KeepalivedRun] = {}
    if KEEPALIVED:
        for death in DEATHS:
            keepalived[death] = measure_keepalived(
                rounds, progress, f"{label} keepalived", cut=death == "cut"
            )
    return kills, floor, keepalived


@pytest.mark.timeout(300 + 4 * KILLS * ROUND_BUDGET)
def test_failover_time_idle(cluster: LabCluster, figures: dict[str, float], progress: Progress) -> None:
    kills, floor, keepalived = measure_all(cluster, KILLS, progress, "idle")
    report_failover("idle", kills, floor, keepalived=keepalived, figures=figures, progress=progress)
    assert all(len(rounds) == KILLS for rounds in kills.values())


@pytest.mark.timeout(300 + 4 * LOADED_KILLS * ROUND_BUDGET)
def test_failover_time_loaded(cluster: LabCluster, figures: dict[str, float], progress: Progress) -> None:
    if LOADED_KILLS <= 0:
        pytest.skip("METALLB_PY_FAILOVER_LOADED_KILLS=0")
    with cpu_load("METALLB_PY_FAILOVER_HOGS") as hogs:
        kills, floor, keepalived = measure_all(cluster, LOADED_KILLS, progress, f"loaded ({hogs} busy loops)")
    report_failover("loaded", kills, floor, keepalived=keepalived, figures=figures, progress=progress)
    assert all(len(rounds) == LOADED_KILLS for rounds in kills.values())


# -- spurious failovers --------------------------------------------------------------------------------------


def node_assigned_events(cluster: LabCluster) -> int:
    """nodeAssigned Events in the Services' namespace, each counted as often as it happened."""
    events = cluster.client.list(EVENTS, NAMESPACE).items
    return sum(int(e.get("count") or 1) for e in events if e.get("reason") == "nodeAssigned")


def answer_changes(probes: list[Probe]) -> int:
    answers = [p.answer for p in sorted(probes, key=lambda p: p.sent) if p.ok]
    return sum(1 for a, b in itertools.pairwise(answers) if a != b)


@pytest.mark.timeout(SOAK_SECONDS + 300)
def test_spurious_failovers_under_load(
    cluster: LabCluster, figures: dict[str, float], progress: Progress
) -> None:
    vip = VIPS[0]
    services = [service_name(v) for v in VIPS]
    prober = cluster.lab.prober(vip, interval=PROBE_INTERVAL)
    try:
        wait_steady(cluster, prober, service_name(vip))
        tails = {node: LogTail(cluster.speaker_log(node)) for node in cluster.nodes}
        events_before = node_assigned_events(cluster)
        owners = {s: cluster.announcer(NAMESPACE, s) for s in services}
        status_changes = 0
        with cpu_load("METALLB_PY_FAILOVER_HOGS") as hogs:
            progress(f"soak: {SOAK_SECONDS:.0f} s, {hogs} busy loops, requests to {vip}, owners {owners}")
            started = time.monotonic()
            report_at = started + 30
            while (now := time.monotonic()) < started + SOAK_SECONDS:
                time.sleep(min(1.0, started + SOAK_SECONDS - now))
                for s in services:
                    current = cluster.announcer(NAMESPACE, s)
                    if current != owners[s]:
                        status_changes += 1
                        progress(f"soak: {s} moved from {owners[s]} to {current} at {now - started:.1f} s")
                        owners[s] = current
                if now >= report_at:
                    done = [p for p in prober.results() if p.sent >= started]
                    failed = sum(1 for p in done if not p.ok)
                    progress(
                        f"soak {now - started:.0f}/{SOAK_SECONDS:.0f} s: {len(done)} requests, {failed} "
                        f"failed, {answer_changes(done)} changes of the answering node"
                    )
                    report_at += 30
            ended = time.monotonic()
        time.sleep(prober.timeout + 0.2)  # the last requests finish
    finally:
        probes = prober.stop()
    events = node_assigned_events(cluster) - events_before
    during = [p for p in probes if started <= p.sent < ended]
    changes = answer_changes(during)
    records = [r for tail in tails.values() for r in tail.records()]
    downs = sum(1 for r in records if r.get("msg") == "member down")
    held = sum(1 for r in records if r.get("msg") == "member held")
    isolations = sum(1 for r in records if str(r.get("msg", "")).startswith("cut off from every peer"))
    moves = sum(1 for r in records if r.get("msg") in ("announcing", "withdrawn"))
    complaints = Counter(str(r.get("msg")) for r in records if r.get("level") in ("warning", "error"))
    failed = sum(1 for p in during if not p.ok)
    spurious = max(changes, status_changes, events, held)
    rows: list[list[object]] = [
        ["requests", len(during)],
        ["requests failed", failed],
        ["changes of the answering node", changes],
        ["ServiceL2Status changes (3 Services, polled every second)", status_changes],
        ["nodeAssigned Events", events],
        ["member down lines (speaker logs)", downs],
        ["member held lines: fast takeovers (speaker logs)", held],
        ["isolations (speaker logs)", isolations],
        ["announcing/withdrawn lines (speaker logs)", moves],
        ["spurious failovers (the largest of the views above)", spurious],
    ]
    text = "\n".join(
        [
            f"spurious failovers: {ended - started:.0f} s, {hogs} busy loops, nobody dies (target: 0)",
            table(["", "count"], rows),
            f"warnings and errors in the speaker logs: {dict(complaints) or 'none'}",
        ]
    )
    progress(text)
    print("\n" + text)
    figures.update(
        {
            "soak seconds": ended - started,
            "soak requests": float(len(during)),
            "soak requests failed": float(failed),
            "soak spurious failovers": float(spurious),
            "soak member downs": float(downs),
            "soak fast takeovers": float(held),
        }
    )
    assert during, "the prober sent nothing"


# -- idle footprint ------------------------------------------------------------------------------------------


def idle_window(cluster: LabCluster, seconds: float) -> dict[str, tuple[ProcSample, ProcSample]]:
    pids = {node: cluster.speaker_pid(node) for node in cluster.nodes}
    missing = [node for node, pid in pids.items() if pid is None]
    if missing:
        raise AssertionError(f"speakers not running: {missing}")
    first = {node: sample_process(pid) for node, pid in pids.items() if pid is not None}
    time.sleep(seconds)
    cluster.check_processes()
    return {node: (first[node], sample_process(pid)) for node, pid in pids.items() if pid is not None}


def announced_per_node(cluster: LabCluster) -> Counter[str]:
    statuses = cluster.client.list(SERVICE_L2_STATUSES, cluster.namespace).items
    return Counter(str((s.get("status") or {}).get("node")) for s in statuses)


def footprint_services(cluster: LabCluster, count: int) -> list[str]:
    """`count` Services from a pool of their own (not auto-assigned, so the seed's Services never move),
    each with endpoints on node1-3."""
    ns = cluster.namespace
    pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": FOOTPRINT_POOL, "namespace": ns},
        "spec": {"addresses": [FOOTPRINT_ADDRESSES], "autoAssign": False},
    }
    advertisement = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": FOOTPRINT_POOL, "namespace": ns},
        "spec": {"ipAddressPools": [FOOTPRINT_POOL]},
    }
    cluster.client.create(IP_ADDRESS_POOLS, pool, ns)
    cluster.client.create(L2_ADVERTISEMENTS, advertisement, ns)
    names = [f"fp-{i:03d}" for i in range(count)]
    for name in names:
        cluster.client.create(
            SERVICES, service_manifest(name, {"metallb.io/address-pool": FOOTPRINT_POOL}), NAMESPACE
        )
        cluster.publish_endpoints(NAMESPACE, name)
    return names


@pytest.mark.timeout(2 * IDLE_SECONDS + 600)
def test_idle_footprint(cluster: LabCluster, figures: dict[str, float], progress: Progress) -> None:
    time.sleep(5)  # whatever ran before has settled
    seed_counts = announced_per_node(cluster)
    progress(f"footprint: {IDLE_SECONDS:.0f} s idle with the {len(VIPS)} seed Services")
    seed_window = idle_window(cluster, IDLE_SECONDS)

    began = time.monotonic()
    names = footprint_services(cluster, SERVICES_FOR_FOOTPRINT)
    wanted = len(VIPS) + len(names)

    def all_announced() -> int | None:
        total = sum(announced_per_node(cluster).values())
        return total if total >= wanted else None

    cluster.wait_for(all_announced, 120, f"{wanted} ServiceL2Status objects", interval=0.5)
    progress(
        f"footprint: {len(names)} more Services created and announced in {time.monotonic() - began:.1f} s; "
        f"{IDLE_SECONDS:.0f} s idle"
    )
    time.sleep(5)  # the reporters and event recorders have caught up
    counts = announced_per_node(cluster)
    window = idle_window(cluster, IDLE_SECONDS)

    def mib(sample: ProcSample) -> float:
        return sample.rss_kib / 1024

    rows: list[list[object]] = []
    for node in cluster.nodes:
        (a0, a1), (b0, b1) = seed_window[node], window[node]
        rows.append(
            [
                f"speaker {node}",
                f"{seed_counts[node]} / {counts[node]}",
                mib(a1),
                mib(b1),
                cpu_percent(a0, a1),
                cpu_percent(b0, b1),
                b1.threads,
            ]
        )
    rss_seed = statistics.median(mib(seed_window[n][1]) for n in cluster.nodes)
    rss_many = statistics.median(mib(window[n][1]) for n in cluster.nodes)
    cpu_seed = statistics.median(cpu_percent(*seed_window[n]) for n in cluster.nodes)
    cpu_many = statistics.median(cpu_percent(*window[n]) for n in cluster.nodes)
    rows.append(["median", "", rss_seed, rss_many, cpu_seed, cpu_many, ""])
    n = len(names) + len(VIPS)
    header = [
        "",
        "announces",
        f"RSS MiB ({len(VIPS)})",
        f"RSS MiB ({n})",
        f"CPU % ({len(VIPS)})",
        f"CPU % ({n})",
        "threads",
    ]
    text = "\n".join(
        [
            f"speaker idle footprint over {IDLE_SECONDS:.0f} s: {len(VIPS)} Services, then {n} "
            "(CPU in percent of one core, user + system, every thread)",
            table(header, rows),
            f"with {n} Services / with {len(VIPS)}: RSS {rss_many / rss_seed:.2f}x, "
            f"CPU {cpu_many / cpu_seed if cpu_seed else float('nan'):.2f}x",
        ]
    )
    progress(text)
    print("\n" + text)
    figures.update(
        {
            f"speaker idle RSS MiB median ({len(VIPS)} Services)": rss_seed,
            f"speaker idle RSS MiB median ({n} Services)": rss_many,
            f"speaker idle CPU % median ({len(VIPS)} Services)": cpu_seed,
            f"speaker idle CPU % median ({n} Services)": cpu_many,
        }
    )
    assert sum(counts.values()) >= wanted
