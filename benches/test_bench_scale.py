"""A hundred speakers and a thousand Services in one lab, recorded and printed, never asserted (issue 14).

One LabCluster for the module: the real kube-apiserver on 127.0.0.1, our controller, and one speaker process
per node, each with its responder and gossip in a network namespace of its own (`--netns`), every node and
the client on one bridge. The speakers start METALLB_PY_SCALE_BATCH at a time. Measured:

- announce, a cold start: the Services exist and have their addresses (the controller alone), then every
  speaker starts; from the first speaker launched to every gossip Lease, to a ServiceL2Status for every
  Service, to (a sample of METALLB_PY_SCALE_SAMPLE addresses, asked for by their Services) the client's first
  HTTP answer through ARP, and to every speaker counting every other alive. Then a tenth more Services
  arrive while the speakers run: the time until they are announced too.
- steady state: API requests per second per speaker over METALLB_PY_SCALE_WINDOW seconds once everything is
  announced and settled, by verb, writes apart (the goal: at most one write per 10 s per speaker), counted by
  each speaker (metallb_py_k8s_client_requests) and by the API server (apiserver_request_total, every
  client); gossip bytes per second per node (the speakers' gossip counters, heartbeats included) beside
  everything the node's link carried (its switch port's counters); speakers' CPU and memory.
- failover: METALLB_PY_SCALE_KILLS times, a sampled address's announcer has its cable cut and its speaker
  SIGKILLed; the time to the client's first answer from another node (a request every 10 ms). The node comes
  back before the next round.

The nodes' and the client's addresses are permanent entries of each other's neighbour tables
(`pin_neighbours`): a hundred namespaces' dynamic entries overflow the kernel's one ARP table. The run reports
the kernel's overflows (0 expected) and the members the speakers declared down at steady state.

Needs root (skipped otherwise, unless METALLB_PY_REQUIRE_NETNS=1) and the cached Kubernetes binaries. Knobs
(see _scale_support.Knobs): METALLB_PY_SCALE_NODES (20; the full run 100), METALLB_PY_SCALE_SERVICES (10 per
node), METALLB_PY_SCALE_BATCH (10), METALLB_PY_SCALE_PACED (1: each batch once every speaker started so
far counts the others alive; 0, the default: once the batch serves its metrics and Leases),
METALLB_PY_SCALE_SAMPLE (8), METALLB_PY_SCALE_KILLS (3),
METALLB_PY_SCALE_SETTLE (30 s), METALLB_PY_SCALE_WINDOW (60 s), METALLB_PY_SCALE_EXTRA (a tenth more Services
created once the speakers run), METALLB_PY_SCALE_SPEAKER_ARGS (extra speaker flags, shell-quoted),
METALLB_PY_SCALE_LOGS (keep the logs there), METALLB_PY_SCALE_COMMIT (the commit, run from a copy).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from _failover_support import ProcSample, Progress, Summary, cpu_percent, sample_process, table
from _scale_support import (
    SERVICE_NAMESPACE,
    WRITE_VERBS_CLIENT,
    WRITE_VERBS_SERVER,
    Knobs,
    client_requests,
    counter_value,
    endpoint_nodes,
    pool_objects,
    sample_addresses,
    server_requests,
    service_manifest,
    service_name,
    writes,
)
from metallb_py.ipam.fields import ingress_ips
from metallb_py.k8s.client import JSON
from metallb_py.k8s.errors import ApiUnavailableError, ConflictError
from metallb_py.k8s.resources import (
    ENDPOINT_SLICES,
    IP_ADDRESS_POOLS,
    L2_ADVERTISEMENTS,
    LEASES,
    SERVICE_L2_STATUSES,
    SERVICES,
    Resource,
)
from metallb_py.speaker import GOSSIP_LABEL
from metallb_py.speaker.status import status_node, status_service
from metallb_py.testing import (
    ControlPlaneUnavailableError,
    LabCluster,
    Probe,
    Prober,
    neighbour_table_fulls,
)
from metallb_py.testing.controlplane import DEFAULT_KUBERNETES_VERSION, KubernetesBinaries, default_cache_dir
from metallb_py.testing.labcluster import Scrape, endpoint_slice_manifest
from metallb_py.testing.netlab import LinkCounters

REQUIRE_NETNS = os.environ.get("METALLB_PY_REQUIRE_NETNS") == "1"
REQUIRE_K8S = os.environ.get("METALLB_PY_REQUIRE_K8S") == "1"
KNOBS = Knobs.from_env()
REPO = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(
        os.geteuid() != 0 and not REQUIRE_NETNS, reason="needs root for network namespaces and raw sockets"
    ),
]


@dataclass
class Run:
    """What the module's steps learned, for the later ones."""

    cluster: LabCluster
    table_fulls: int = 0  # the kernel's neighbour table overflows before the lab (neighbour_table_fulls)
    samples: dict[str, str] = field(default_factory=dict)  # Service name -> the address it asked for
    announced_at: float = 0.0


def _commit() -> str:
    """The commit measured, and whether the speaker's files differ from it (others edit them meanwhile)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "python/metallb_py/speaker", "rust"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        # A copy of a commit (git archive) run outside the checkout says which one.
        return os.environ.get("METALLB_PY_SCALE_COMMIT", "unknown (no git)")
    changed = [line[3:] for line in dirty if line.strip()]
    return head + (f" + uncommitted {', '.join(changed)}" if changed else "")


@pytest.fixture(scope="module")
def run(progress: Progress) -> Iterator[Run]:
    cached = KubernetesBinaries.in_dir(default_cache_dir() / "k8s" / DEFAULT_KUBERNETES_VERSION / "bin")
    if cached.missing() and not REQUIRE_K8S:
        pytest.skip("no cached Kubernetes binaries: run `make k8s` once")
    progress(
        f"scale: {KNOBS.nodes} speakers, {KNOBS.services} Services (+{KNOBS.extra} later), commit "
        f"{_commit()}; speakers started {KNOBS.batch} at a time"
        f"{', each batch once all had joined' if KNOBS.paced else ''}, "
        f"speaker flags {list(KNOBS.speaker_args) or 'default'}"
    )
    cluster = LabCluster(
        KNOBS.workers,
        prefix="mlbscale",
        log_dir=KNOBS.logs,
        progress=lambda line: progress(f"lab: {line}"),
        speaker_batch=KNOBS.batch,
        speaker_batch_joined=KNOBS.paced,
        speaker_args=KNOBS.speaker_args,
        vip_routes=["192.168.0.0/16"],
        # A hundred nodes' tables overflow the kernel's one ARP table (1,024 entries by default) and drop
        # gossip; real nodes each have their own.
        pin_neighbours=True,
        speakers=False,
    )
    table_fulls = neighbour_table_fulls()
    try:
        cluster.start(timeout=120)
    except ControlPlaneUnavailableError as exc:
        if REQUIRE_K8S:
            raise
        pytest.skip(f"no local Kubernetes control plane: {exc}")
    try:
        for obj in pool_objects(cluster.namespace):
            resource = IP_ADDRESS_POOLS if obj["kind"] == "IPAddressPool" else L2_ADVERTISEMENTS
            cluster.client.create(resource, obj, cluster.namespace)
        yield Run(cluster, table_fulls)
    finally:
        progress(f"the kernel's neighbour tables overflowed {neighbour_table_fulls() - table_fulls} times")
        cluster.close()


# -- announce ------------------------------------------------------------------------------------------------


def _create_service(cluster: LabCluster, index: int, address: str | None) -> None:
    name = service_name(index)
    svc = _create(cluster, SERVICES, service_manifest(name, address))
    nodes = endpoint_nodes(index, cluster.workers)
    endpoints = [(node, cluster.lab.node_address(node)) for node in nodes]
    owner = str(svc["metadata"]["uid"])
    _create(
        cluster, ENDPOINT_SLICES, endpoint_slice_manifest(SERVICE_NAMESPACE, name, endpoints, owner_uid=owner)
    )


def _create(cluster: LabCluster, resource: Resource, manifest: dict[str, Any], attempts: int = 5) -> JSON:
    """Creates an object, trying again while a loaded API server does not answer (a create that timed out
    may have happened: then the object is read)."""
    name = str(manifest["metadata"]["name"])
    for attempt in range(attempts):
        try:
            return cluster.client.create(resource, manifest, SERVICE_NAMESPACE)
        except ConflictError:
            return cluster.client.get(resource, name, SERVICE_NAMESPACE)
        except ApiUnavailableError:
            if attempt == attempts - 1:
                raise
            time.sleep(2.0)
    raise AssertionError("unreachable")


def _create_services(cluster: LabCluster, indices: Sequence[int], addresses: Mapping[int, str]) -> None:
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: _create_service(cluster, i, addresses.get(i)), indices))


def _assigned(cluster: LabCluster) -> int:
    return sum(1 for s in cluster.client.list(SERVICES, SERVICE_NAMESPACE).items if ingress_ips(s))


def _announcers(cluster: LabCluster) -> dict[str, str]:
    """The node announcing each Service that exactly one ServiceL2Status names."""
    nodes: dict[str, set[str]] = {}
    for status in cluster.client.list(SERVICE_L2_STATUSES, cluster.namespace).items:
        node = status_node(status)
        if node:
            nodes.setdefault(status_service(status), set()).add(node)
    return {key.partition("/")[2]: next(iter(n)) for key, n in nodes.items() if len(n) == 1}


def _gossip_leases(cluster: LabCluster) -> int:
    return len(cluster.client.list(LEASES, cluster.namespace, label_selector=GOSSIP_LABEL).items)


@pytest.mark.timeout(7200)
def test_time_to_announce(run: Run, figures: dict[str, float], progress: Progress) -> None:
    """Cold start: the Services exist (the controller assigned them), then every speaker starts; then
    KNOBS.extra more Services arrive while the speakers run."""
    cluster = run.cluster
    addresses = sample_addresses(KNOBS.sample)
    # Sampled Services sit evenly among the others and ask for their addresses, so the client's servers and
    # probers are ready before the clock starts.
    step = max(1, KNOBS.services // KNOBS.sample)
    sampled = {i * step: address for i, address in enumerate(addresses)}
    run.samples = {service_name(i): address for i, address in sampled.items()}
    began = time.monotonic()
    _create_services(cluster, [*sampled, *(i for i in range(KNOBS.services) if i not in sampled)], sampled)
    created = time.monotonic() - began
    cluster.wait_for(
        lambda: _assigned(cluster) >= KNOBS.services, 600, f"{KNOBS.services} external IPs", interval=1.0
    )
    assigned = time.monotonic() - began
    progress(
        f"announce: {KNOBS.services} Services and EndpointSlices created in {created:.1f} s, every external "
        f"IP assigned after {assigned:.1f} s (the controller alone)"
    )
    began = time.monotonic()
    cluster.lab.serve(addresses, "hname")
    progress(
        f"announce: echo servers for {len(addresses)} sampled addresses ({time.monotonic() - began:.1f} s)"
    )
    probers = {address: cluster.lab.prober(address, interval=0.1, timeout=1.0) for address in addresses}
    try:
        t0 = time.monotonic()
        cluster.start_speakers(timeout=600)
        launched = time.monotonic() - t0
        progress(f"announce: {KNOBS.nodes} speakers launched in {launched:.1f} s")
        joined_at = statuses_at = None
        announcers: dict[str, str] = {}
        deadline = t0 + 900 + 2.0 * KNOBS.services
        while statuses_at is None or joined_at is None:
            cluster.check_processes()
            leases = _gossip_leases(cluster)
            announcers = _announcers(cluster)
            now = time.monotonic() - t0
            answered = sum(1 for p in probers.values() if p.first_answer(t0) is not None)
            progress(
                f"announce: {now:6.1f} s: {leases}/{KNOBS.nodes} gossip Leases, {len(announcers)}/"
                f"{KNOBS.services} announced (one ServiceL2Status each), {answered}/{len(probers)} sampled "
                "answered"
            )
            if joined_at is None and leases >= KNOBS.nodes:
                joined_at = now
            if statuses_at is None and len(announcers) >= KNOBS.services:
                statuses_at = now
            if statuses_at is not None and joined_at is not None:
                break
            if time.monotonic() > deadline:
                pytest.fail(
                    f"after {now:.0f} s only {len(announcers)} of {KNOBS.services} Services announced"
                )
            time.sleep(2.0)
        answers: list[float] = []
        mismatched = 0
        for name, address in run.samples.items():
            prober = probers[address]
            prober.wait_until(lambda results: any(p.ok and p.sent >= t0 for p in results), 60)
            first = prober.first_answer(t0)
            if first is None:
                pytest.fail(f"{address} ({name}): no answer from the client 60 s after it was announced")
            answers.append(first.received - t0)
            last = prober.results()[-1]
            mismatched += last.answer != announcers.get(name)
    finally:
        for prober in probers.values():
            prober.stop()
    cluster.wait_for_speakers(timeout=600)
    members_at = time.monotonic() - t0
    summary = Summary.of(answers)

    # Then more Services, while every speaker runs: each speaker sees each of them arrive.
    extra_s = float("nan")
    if KNOBS.extra:
        began = time.monotonic()
        extra = range(KNOBS.services, KNOBS.services + KNOBS.extra)
        _create_services(cluster, extra, {})
        wanted = KNOBS.services + KNOBS.extra
        cluster.wait_for(
            lambda: len(_announcers(cluster)) >= wanted, 900, f"{wanted} Services announced", interval=2.0
        )
        extra_s = time.monotonic() - began
    run.announced_at = time.monotonic()
    progress(
        f"announce at {KNOBS.nodes} speakers, {KNOBS.services} Services, seconds from the first speaker "
        "launched:\n"
        + table(
            ["", "s"],
            [
                [f"{KNOBS.nodes} speakers launched ({KNOBS.batch} at a time)", launched],
                ["every gossip Lease published", joined_at],
                ["every Service's ServiceL2Status written", statuses_at],
                [f"sampled address first answered (HTTP via ARP), p50 of {len(answers)}", summary.p50],
                ["sampled address first answered, max", summary.max],
                ["every speaker counts every other alive (gossip converged)", members_at],
                [f"then {KNOBS.extra} more Services created and announced", extra_s],
            ],
        )
        + f"\n{mismatched} of {len(answers)} sampled addresses answered by another node than their status "
        "names"
    )
    label = f"scale {KNOBS.nodes}/{KNOBS.services}"
    figures[f"{label}: cold start, all ServiceL2Status (s)"] = statuses_at
    figures[f"{label}: cold start, sampled first answer max (s)"] = summary.max
    figures[f"{label}: cold start, gossip converged (s)"] = members_at
    figures[f"{label}: {KNOBS.extra} more Services announced (s)"] = extra_s


# -- steady state --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    at: float
    apiserver: Scrape
    controller: Scrape | None
    speakers: dict[str, Scrape | None]
    links: dict[str, LinkCounters]
    procs: dict[str, ProcSample]


def _snapshot(cluster: LabCluster) -> Snapshot:
    procs = {}
    for node in cluster.nodes:
        pid = cluster.speaker_pid(node)
        if pid is not None:
            with contextlib.suppress(OSError):
                procs[node] = sample_process(pid)
    return Snapshot(
        at=time.monotonic(),
        apiserver=cluster.apiserver_metrics(),
        controller=cluster.controller_metrics(),
        speakers={node: cluster.speaker_metrics(node) for node in cluster.nodes},
        links=cluster.lab.link_counters(),
        procs=procs,
    )


def _rate(per_second: float) -> str:
    return f"{per_second:.3f}"


@pytest.mark.timeout(3600)
def test_steady_state(run: Run, figures: dict[str, float], progress: Progress) -> None:
    cluster = run.cluster
    if not run.announced_at:
        pytest.skip("the announce step did not finish")
    wait = KNOBS.settle - (time.monotonic() - run.announced_at)
    if wait > 0:
        progress(f"steady state: settling for {wait:.0f} s")
        time.sleep(wait)
    progress(f"steady state: counting for {KNOBS.window:.0f} s (nothing else talks to the API meanwhile)")
    first = _snapshot(cluster)
    time.sleep(KNOBS.window)
    last = _snapshot(cluster)
    cluster.check_processes()
    seconds = last.at - first.at
    nodes = cluster.nodes
    n = len(nodes)

    per_speaker = {node: client_requests(first.speakers[node], last.speakers[node]) for node in nodes}
    total_rate = [sum(c.values()) / seconds for c in per_speaker.values()]
    write_rate = [writes(c, WRITE_VERBS_CLIENT) / seconds for c in per_speaker.values()]
    verbs: defaultdict[tuple[str, str], float] = defaultdict(float)
    for counts in per_speaker.values():
        for key, count in counts.items():
            verbs[key] += count
    controller = client_requests(first.controller, last.controller)
    server = server_requests(first.apiserver, last.apiserver)
    rows = [
        [f"{verb} {resource}", _rate(count / seconds / n), _rate(count / seconds)]
        for (verb, resource), count in sorted(verbs.items())
        if count
    ]
    writes_all, everything = writes(verbs, WRITE_VERBS_CLIENT), sum(verbs.values())
    rows.append(["writes, every speaker", _rate(writes_all / seconds / n), _rate(writes_all / seconds)])
    rows.append(["everything, every speaker", _rate(everything / seconds / n), _rate(everything / seconds)])
    rows.append(["controller, everything", "", _rate(sum(controller.values()) / seconds)])
    server_rows = [
        [f"{verb} {resource}", _rate(count / seconds)]
        for (verb, resource), count in sorted(server.items())
        if count
    ]
    server_writes = writes(server, WRITE_VERBS_SERVER)
    server_rows.append(["writes, every client", _rate(server_writes / seconds)])
    server_rows.append(["everything, every client", _rate(sum(server.values()) / seconds)])
    ws, ts = Summary.of(write_rate), Summary.of(total_rate)

    gossip = {
        node: counter_value(last.speakers[node], "metallb_py_speaker_gossip_bytes_sent_total")
        - counter_value(first.speakers[node], "metallb_py_speaker_gossip_bytes_sent_total")
        for node in nodes
    }
    heartbeats = {
        node: counter_value(last.speakers[node], "metallb_py_speaker_gossip_heartbeats_sent_total")
        - counter_value(first.speakers[node], "metallb_py_speaker_gossip_heartbeats_sent_total")
        for node in nodes
    }
    downs = sum(
        counter_value(last.speakers[node], "metallb_py_speaker_gossip_members_down_total")
        - counter_value(first.speakers[node], "metallb_py_speaker_gossip_members_down_total")
        for node in nodes
    )
    link_sent = {node: last.links[node].sent_bytes - first.links[node].sent_bytes for node in nodes}
    link_received = {
        node: last.links[node].received_bytes - first.links[node].received_bytes for node in nodes
    }
    link_packets = {node: last.links[node].sent_packets - first.links[node].sent_packets for node in nodes}
    cpu = [cpu_percent(first.procs[node], last.procs[node]) for node in nodes if node in first.procs]
    rss = [last.procs[node].rss_kib / 1024 for node in nodes if node in last.procs]

    def per_node(values: Mapping[str, float], scale: float = 1.0) -> list[object]:
        s = Summary.of([v / seconds / scale for v in values.values()])
        return [s.mean, s.p50, s.max]

    progress(
        f"steady state over {seconds:.0f} s, {n} speakers, {KNOBS.services} Services (commit {_commit()})\n"
        "requests each speaker sent (metallb_py_k8s_client_requests), per second:\n"
        + table(["verb resource", "per speaker", "all speakers"], rows)
        + f"\nper speaker: writes/s p50 {ws.p50:.3f} max {ws.max:.3f} (goal <= 0.1); "
        f"all requests/s p50 {ts.p50:.3f} max {ts.max:.3f}\n"
        "requests the API server served (apiserver_request_total, every client and its own), per second:\n"
        + table(["verb resource", "per second"], server_rows)
        + "\nper node, per second (mean, p50, max):\n"
        + table(
            ["", "mean", "p50", "max"],
            [
                ["gossip KiB sent (heartbeats included)", *per_node(gossip, 1024)],
                ["heartbeats sent", *per_node(heartbeats)],
                ["link KiB sent (switch port)", *per_node(link_sent, 1024)],
                ["link KiB received (switch port)", *per_node(link_received, 1024)],
                ["link packets sent", *per_node(link_packets)],
            ],
        )
        + f"\nspeakers: CPU p50 {statistics.median(cpu):.1f} % max {max(cpu):.1f} % of a core "
        f"(sum {sum(cpu):.0f} %), RSS p50 {statistics.median(rss):.1f} MiB max {max(rss):.1f} MiB\n"
        f"members declared down (every speaker's count, nobody died): {downs:.0f}; the kernel's neighbour "
        f"tables overflowed {neighbour_table_fulls() - run.table_fulls} times since the lab started"
    )
    label = f"scale {KNOBS.nodes}/{KNOBS.services}"
    figures[f"{label}: speaker writes/s p50"] = ws.p50
    figures[f"{label}: speaker writes/s max"] = ws.max
    figures[f"{label}: speaker requests/s p50"] = ts.p50
    figures[f"{label}: API server requests/s, all clients"] = sum(server.values()) / seconds
    figures[f"{label}: gossip bytes/s per node p50"] = statistics.median(gossip.values()) / seconds
    figures[f"{label}: speaker RSS MiB p50"] = statistics.median(rss)
    figures[f"{label}: members declared down per minute, all speakers"] = downs / seconds * 60


# -- failover ------------------------------------------------------------------------------------------------


def _answered_by_other(node: str, since: float, results: list[Probe]) -> bool:
    return any(p.ok and p.answer != node and p.received >= since for p in results)


@pytest.mark.timeout(3600)
def test_failover(run: Run, figures: dict[str, float], progress: Progress) -> None:
    cluster = run.cluster
    if not run.samples:
        pytest.skip("the announce step did not run")
    if KNOBS.kills == 0:
        pytest.skip("METALLB_PY_SCALE_KILLS=0")
    names = sorted(run.samples)
    times: list[float] = []
    rows: list[list[object]] = []
    for round_ in range(KNOBS.kills):
        name = names[round_ % len(names)]
        address = run.samples[name]
        node = cluster.wait_for(
            partial(cluster.announcer, SERVICE_NAMESPACE, name),
            120,
            f"one announcer of {name}",
            interval=0.5,
        )
        prober: Prober = cluster.lab.prober(address, interval=0.01, timeout=1.0)
        try:
            if prober.wait_for_answer(node, 30) is None:
                seen = Counter(p.answer or p.error for p in prober.results())
                now = cluster.announcers(SERVICE_NAMESPACE, name)
                pytest.fail(
                    f"{address}: the client got no answer from {node}, which its status named; "
                    f"answers {dict(seen)}; statuses now name {now}"
                )
            killed = time.monotonic()
            cluster.lab.kill_link(node)
            cluster.kill_speaker(node)
            prober.wait_until(partial(_answered_by_other, node, killed), 60)
            first = prober.first_answer(killed, other_than=node)
        finally:
            results = prober.stop()
        if first is None:
            pytest.fail(f"{address}: no other node answered within 60 s of {node}'s death")
        # Requests sent between the death and the first answer that got none (they end after it: timeouts).
        lost = sum(1 for p in results if killed <= p.sent < first.sent and not p.ok)
        took = 1000 * (first.received - killed)
        times.append(took)
        rows.append([f"{round_ + 1}: {name} {address}", f"{node} -> {first.answer}", took, lost])
        progress(
            f"failover {round_ + 1}/{KNOBS.kills}: {node} -> {first.answer} in {took:.0f} ms, {lost} lost"
        )
        cluster.lab.restore_link(node)
        cluster.start_speaker(node)
        cluster.wait_for_speakers([node], timeout=180)
    summary = Summary.of(times)
    progress(
        f"failover at {KNOBS.nodes} speakers (cable cut, then SIGKILL; a request every 10 ms):\n"
        + table(["round", "from -> to", "ms", "lost"], rows)
        + f"\np50 {summary.p50:.0f} ms, max {summary.max:.0f} ms"
    )
    figures[f"scale {KNOBS.nodes}/{KNOBS.services}: failover p50 (ms)"] = summary.p50
    figures[f"scale {KNOBS.nodes}/{KNOBS.services}: failover max (ms)"] = summary.max
