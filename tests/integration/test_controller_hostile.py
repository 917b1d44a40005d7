"""Hostile input through the real API server: a few thousand Hypothesis-made Services, one controller.

Hypothesis writes Services as a careless or hostile user could: MetalLB's annotations (current and
deprecated forms, both at once, empty) naming pools that exist or not, addresses in and out of the pools,
taken ones, garbage, huge and non-ASCII values; spec fields (type, ports with odd protocols and duplicates,
ipFamilies, ipFamilyPolicy, loadBalancerIP, loadBalancerClass, externalTrafficPolicy, selector). Each is
sent to the API server, and about one in four accepted is then changed by a hostile merge patch (MetalLB's
annotations replaced, a spec field or two, sometimes the type); what the API server refuses is counted,
not a failure. A controller runs in a thread from the start, so it works while they arrive. Once it has
handled every one (its copy holds every version we wrote, its queue is idle, and each of ours either shows
an address or has a Warning Event), the checks:

- the controller is healthy: its worker thread still runs (`healthy()` is None);
- no address is shown by two Services unless MetalLB's sharing rules allow it (the same non-empty sharing
  key, no port and protocol in common, the same selector under externalTrafficPolicy Local), read back
  from the API with a reading of the annotations of this test's own;
- each of ours left without an address has a Warning Event whose message names the field at fault (an
  annotation as written, or a spec or metadata path of that Service).

METALLB_HOSTILE_SERVICES sets the count (default 2,000, about a minute here); the make target runs more.
METALLB_HOSTILE_SEED replays a run. The control plane is the module's own, dual-stack, with room for the
ClusterIPs of every Service; LoadBalancer Services mostly take no node port (a few do, to keep that path).
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
from _controller_support import Cluster, lb_ips, running_controller, unique, wait_until
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from _hostile import ANNOTATION_PREFIXES, PREFIX_CHOICES, field_paths, may_share, mostly, one_in, terms
from metallb_py.ipam import ServiceError, service_request
from metallb_py.k8s import ApiError
from metallb_py.k8s.resources import SERVICES
from metallb_py.testing import ControlPlaneUnavailableError, LocalControlPlane, ensure_kubernetes_binaries

pytestmark = pytest.mark.integration

COUNT = int(os.environ.get("METALLB_HOSTILE_SERVICES", "2000"))
SEED = int(os.environ.get("METALLB_HOSTILE_SEED", str(time.time_ns() % 1_000_000)))
# The run's budget: the creates take about 20 ms each on two busy cores, the controller as long again.
TIMEOUT = max(300.0, COUNT * 0.12)

# Pools: plenty to allocate from automatically (both families), small ones to exhaust by name, one that
# serves only the second namespace.
POOLS = {
    "auto": ["10.200.0.0/16", "fd00:200::/112"],
    "manual": ["10.201.0.0/24"],
    "small": ["10.202.0.0/30"],
    "v6": ["fd00:203::/120"],
    "picky": ["10.204.0.0/24"],
}
REQUESTABLE = [
    "10.200.0.5",  # also the sixth automatic address: who comes first keeps it
    "10.201.0.1",
    "10.201.0.2",
    "10.202.0.1",
    "10.204.0.9",
    "fd00:200::5",
    "fd00:203::1",
    "FD00:203::0001",
    "192.0.2.1",  # in no pool
    "2001:db8::1",
]
GARBAGE = ["", " ", ",", "10.201.0.1,", "10.201.0.1/32", "fe80::1%eth0", "10.1.0.256", "None", "ü", "\u202e"]
TEXT = st.sampled_from(GARBAGE) | st.text(max_size=16)
HUGE = st.sampled_from(["x" * 5_000, "1" * 70_000, "y" * 300_000])  # the last is beyond the API's 256 KiB


IP_TEXT = mostly(
    st.sampled_from(REQUESTABLE)
    | st.lists(st.sampled_from(REQUESTABLE), min_size=2, max_size=3).map(",".join),
    TEXT | HUGE,
    4,
)
ANNOTATION_VALUES = {
    "loadBalancerIPs": IP_TEXT,
    "address-pool": mostly(st.sampled_from([*POOLS, "gold"]), TEXT | HUGE, 4),
    "allow-shared-ip": mostly(st.sampled_from(["k", "k", "j", ""]), TEXT, 4),
}


@st.composite
def annotation_maps(draw: st.DrawFn) -> dict[str, str]:
    out: dict[str, str] = {}
    for suffix in draw(st.lists(st.sampled_from(sorted(ANNOTATION_VALUES)), max_size=3, unique=True)):
        for prefix in draw(PREFIX_CHOICES):
            out[prefix + suffix] = draw(ANNOTATION_VALUES[suffix])
    if draw(one_in(10)):
        key = draw(
            st.sampled_from(["example.com/x", "metallb.io/ip-allocated-from-pool", "not a key!", "ü/x"])
        )
        out[key] = draw(TEXT)
    return out


@st.composite
def port_lists(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 3))
    numbers = draw(
        mostly(
            st.lists(st.sampled_from([80, 443, 53, 8080]), min_size=count, max_size=count, unique=True),
            st.lists(
                st.integers(-5, 70_000) | st.sampled_from([80, 80, "80"]), min_size=count, max_size=count
            ),
            10,
        )
    )
    ports = []
    for i, number in enumerate(numbers):
        port: dict[str, Any] = {"name": f"p{i}", "port": number}
        if draw(st.booleans()):
            protocols = st.sampled_from(["TCP", "UDP", "SCTP"])
            port["protocol"] = draw(mostly(protocols, st.sampled_from(["tcp", "ICMP"]), 20))
        if draw(one_in(20)):
            del port["name"]  # several ports without names: refused
        ports.append(port)
    return ports


SPEC_OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "ipFamilies": mostly(
        st.lists(st.sampled_from(["IPv4", "IPv6"]), min_size=1, max_size=2, unique=True),
        st.sampled_from([["IPv4", "IPv4"], ["ipv4"], ["IPv5"], []]),
        6,
    ),
    "ipFamilyPolicy": mostly(
        st.sampled_from(["SingleStack", "PreferDualStack", "RequireDualStack"]), st.just("Dual"), 6
    ),
    "loadBalancerIP": mostly(st.sampled_from(REQUESTABLE), TEXT, 4),
    "externalTrafficPolicy": mostly(st.sampled_from(["Cluster", "Local"]), st.just("local"), 6),
    "selector": st.dictionaries(
        st.sampled_from(["app", "tier"]), mostly(st.sampled_from(["a", "b"]), TEXT, 6), max_size=2
    ),
}
METALLB_ANNOTATIONS = [p + s for p in ANNOTATION_PREFIXES for s in sorted(ANNOTATION_VALUES)]


@st.composite
def hostile_services(draw: st.DrawFn, lb_class: str) -> dict[str, Any]:
    """A Service without metadata.name and namespace (the sender sets them)."""
    spec: dict[str, Any] = {
        "type": draw(
            mostly(st.just("LoadBalancer"), st.sampled_from(["ClusterIP", "NodePort", "loadbalancer"]), 12)
        ),
        "ports": draw(mostly(port_lists(), st.just([]), 30)),
        "loadBalancerClass": draw(mostly(st.just(lb_class), st.sampled_from(["example.com/other", ""]), 10)),
        "allocateLoadBalancerNodePorts": draw(mostly(st.just(False), st.just(True), 12)),
    }
    for name in draw(st.sets(st.sampled_from(sorted(SPEC_OPTIONAL)))):
        spec[name] = draw(SPEC_OPTIONAL[name])
    if spec["type"] != "LoadBalancer" and draw(st.booleans()):
        for name in ("loadBalancerClass", "allocateLoadBalancerNodePorts"):
            spec.pop(name)  # else refused outright: only LoadBalancers take them
    if spec.get("loadBalancerClass") == "":
        del spec["loadBalancerClass"]  # the API refuses an empty class; absent: MetalLB's, not ours
    metadata: dict[str, Any] = {}
    notes = draw(annotation_maps())
    if notes:
        metadata["annotations"] = notes
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


@st.composite
def hostile_updates(draw: st.DrawFn) -> dict[str, Any]:
    """A merge patch: MetalLB's annotations replaced (the others removed), and a spec field or two changed.
    A LoadBalancer made a ClusterIP Service drops the fields only LoadBalancers take, as a user would."""
    notes: dict[str, str | None] = dict.fromkeys(METALLB_ANNOTATIONS)
    notes.update(draw(annotation_maps()))
    spec: dict[str, Any] = {}
    optional = {**SPEC_OPTIONAL, "ports": port_lists(), "type": st.sampled_from(["ClusterIP", "NodePort"])}
    for name in draw(st.sets(st.sampled_from(sorted(optional)), max_size=2)):
        spec[name] = draw(optional[name])
    if "type" in spec:
        spec.update(loadBalancerClass=None, allocateLoadBalancerNodePorts=None, externalTrafficPolicy=None)
    return {"metadata": {"annotations": notes}, **({"spec": spec} if spec else {})}


# -- reading back, independently of the code under test ----------------------------------------------------


def unreadable(svc: dict[str, Any]) -> str | None:
    """Why the controller cannot read the Service (its reader's error), or None."""
    try:
        service_request(svc)
    except ServiceError as exc:
        return str(exc)
    return None


def paths_of(svc: dict[str, Any]) -> list[str]:
    """Every field path of the Service (annotation keys whole), plus the fields an allocation is decided by
    when absent; longest first, so the longest match wins."""
    paths = [f"metadata.annotations.{key}" for key in svc["metadata"].get("annotations") or {}]
    paths += field_paths(svc["spec"], "spec")
    paths += ["metadata.annotations", "metadata.labels", "metadata.namespace", "spec.ipFamilies"]
    return sorted(set(paths), key=len, reverse=True)


# What reconcile_service's Warning Events about a rejection start with, before the error's message.
REJECTION = re.compile(r"^(?:Cannot read the Service|Failed to allocate an IP): (?P<error>.*)$", re.DOTALL)


def names_its_field(message: str, svc: dict[str, Any]) -> bool:
    match = REJECTION.match(message)
    if match is None:
        return False
    prefix = f"Service {svc['metadata']['namespace']}/{svc['metadata']['name']}: "
    error = match.group("error")
    return error.startswith(prefix) and any(
        error.removeprefix(prefix).startswith(path + ": ") for path in paths_of(svc)
    )


def refusal_of(exc: ApiError) -> str:
    """The status and the first field the API server names ("422 spec.ports[0].name"), for the counts."""
    fields = re.findall(r"((?:spec|metadata)\.[\w.]+)", exc.message)
    where = re.sub(r"\[\d+\]", "[]", fields[0]) if fields else exc.reason
    return f"{exc.status} {where}"


# -- the run ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    name: str
    namespace: str
    obj: dict[str, Any] | None  # as the API server returned it; None: refused
    refusal: str | None = None


@dataclass
class Run:
    sent: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    updates: int = 0
    updates_refused: Counter[str] = field(default_factory=Counter)
    ours: list[str] = field(default_factory=list)  # names of ours, at the end
    final: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> as read back at the end
    warnings: dict[str, list[str]] = field(default_factory=dict)  # name -> Warning Event messages
    events: dict[str, list[str]] = field(default_factory=dict)  # name -> every Event, for failure messages
    patched: set[str] = field(default_factory=set)  # names an update was accepted for
    healthy: str | None = "not run"
    update_errors: float = 0.0
    seconds_to_create: float = 0.0
    seconds_to_converge: float = 0.0

    def assigned(self) -> list[str]:
        return [name for name in self.ours if lb_ips(self.final.get(name))]

    def rejected(self) -> list[str]:
        return [name for name in self.ours if not lb_ips(self.final.get(name))]


@pytest.fixture(scope="module")
def hostile_run() -> Iterator[Run]:
    try:
        ensure_kubernetes_binaries()
    except ControlPlaneUnavailableError as exc:
        if os.environ.get("METALLB_PY_REQUIRE_K8S") == "1":
            pytest.fail(f"no local Kubernetes control plane (METALLB_PY_REQUIRE_K8S=1): {exc}", pytrace=False)
        pytest.skip(f"no local Kubernetes control plane: {exc}")
    cp = LocalControlPlane(service_cluster_ip_range="10.96.0.0/16,fd00:10:96::/108")
    cp.start()
    cluster = Cluster(cp)
    try:
        yield send_and_converge(cluster)
    finally:
        cluster.client.close()  # the Services go with the control plane
        cp.stop()


def send_and_converge(cluster: Cluster) -> Run:
    run = Run()
    config_ns = cluster.namespace("mlb")
    namespaces = [cluster.namespace("svc"), cluster.namespace("blue")]
    lb_class = f"metallb-py.test/{unique('hostile')}"
    for name, addresses in POOLS.items():
        spec: dict[str, Any] = {"autoAssign": name in ("auto", "picky")}
        if name == "picky":
            spec["serviceAllocation"] = {"namespaces": [namespaces[1]], "priority": 1}
        cluster.apply_pool(config_ns, name, *addresses, **spec)

    steps: list[tuple[dict[str, Any], dict[str, Any] | None]] = []

    @seed(SEED)
    @settings(
        max_examples=COUNT,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(hostile_services(lb_class), mostly(st.none(), hostile_updates(), 3))
    def generate(body: dict[str, Any], update: dict[str, Any] | None) -> None:
        steps.append((body, update))

    generate()
    for i, (body, _) in enumerate(steps):
        body["metadata"]["name"] = f"h{i:05d}"
        body["metadata"]["namespace"] = namespaces[i % 2]

    def send(step: tuple[dict[str, Any], dict[str, Any] | None], *, update: bool) -> Sent:
        body, patch = step
        name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
        for _ in range(5):
            try:
                if update:
                    assert patch is not None
                    return Sent(name, namespace, cluster.client.patch(SERVICES, name, patch, namespace))
                return Sent(name, namespace, cluster.client.create(SERVICES, body, namespace))
            except ApiError as exc:
                if exc.temporary:
                    time.sleep(0.5)
                    continue
                return Sent(name, namespace, None, refusal_of(exc))
        return Sent(name, namespace, None, "no answer after 5 tries")

    written: dict[str, int] = {}  # key -> the resourceVersion our last accepted write returned

    def count(sent: Sent, refused: Counter[str]) -> None:
        if sent.obj is None:
            refused[sent.refusal or "?"] += 1
        else:
            written[f"{sent.namespace}/{sent.name}"] = int(sent.obj["metadata"]["resourceVersion"])

    with running_controller(cluster, config_ns, lb_class=lb_class) as controller:
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            for sent in pool.map(functools.partial(send, update=False), steps):
                run.sent += 1
                count(sent, run.refused)
            updates = [step for step in steps if step[1] is not None and written.get(key_of(step[0]))]
            for sent in pool.map(functools.partial(send, update=True), updates):
                run.updates += 1
                count(sent, run.updates_refused)
                if sent.obj is not None:
                    run.patched.add(sent.name)
        run.seconds_to_create = time.monotonic() - started

        def seen_by_controller() -> bool:
            for key, version in written.items():
                obj = controller.services.get(key)
                if obj is None or int(obj["metadata"]["resourceVersion"]) < version:
                    return False
            return True

        def converged() -> bool:
            if not controller.queue.idle() or not seen_by_controller():
                return False
            services = [s for ns in namespaces for s in cluster.services(ns)]
            run.final = {s["metadata"]["name"]: s for s in services}
            run.ours = [name for name, svc in run.final.items() if is_ours(svc, lb_class)]
            run.warnings, run.events = {}, {}
            for ns in namespaces:
                for event in cluster.events(ns):
                    name, message = event["involvedObject"]["name"], str(event.get("message", ""))
                    run.events.setdefault(name, []).append(
                        f"{event.get('type')} {event.get('reason')}: {message}"
                    )
                    if event.get("type") == "Warning":
                        run.warnings.setdefault(name, []).append(message)
            return all(lb_ips(run.final.get(name)) or name in run.warnings for name in run.ours)

        wait_until(
            converged,
            timeout=TIMEOUT,
            interval=1.0,
            what="every Service of ours to show an address or have a Warning Event",
        )
        run.seconds_to_converge = time.monotonic() - started
        run.healthy = controller.healthy()
        errors = controller.metrics.registry.get_sample_value("metallb_k8s_client_update_errors_total")
        run.update_errors = errors or 0.0
    return run


def key_of(body: dict[str, Any]) -> str:
    return f"{body['metadata']['namespace']}/{body['metadata']['name']}"


def is_ours(svc: dict[str, Any], lb_class: str) -> bool:
    spec = svc["spec"]
    return bool(spec.get("type") == "LoadBalancer" and spec.get("loadBalancerClass") == lb_class)


def summary(run: Run) -> str:
    refused = ", ".join(f"{n} x {why}" for why, n in run.refused.most_common())
    patches = f"{run.updates} updates sent, {sum(run.updates_refused.values())} refused"
    return (
        f"hostile Services (seed {SEED}): {run.sent} sent, {sum(run.refused.values())} refused by the API "
        f"server ({refused}); {patches}; at the end {len(run.ours)} ours: {len(run.assigned())} assigned, "
        f"{len(run.rejected())} "
        f"rejected with a Warning Event; created in {run.seconds_to_create:.1f} s, all handled "
        f"{run.seconds_to_converge:.1f} s after the first create; {run.update_errors:.0f} retried updates"
    )


@pytest.mark.timeout(TIMEOUT + 120)
def test_the_controller_survives_and_never_shows_an_address_twice(
    hostile_run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    run = hostile_run
    holders: dict[str, list[str]] = {}
    for name, svc in run.final.items():
        for ip in lb_ips(svc):
            holders.setdefault(ip, []).append(name)
    # An unreadable Service keeps what it had, as on any error; those sharing with it joined while it
    # allowed them (tests/property/test_service_hostile.py checks each join against the holders' objects).
    readable = {name for name in run.ours if unreadable(run.final[name]) is None}
    shared = {ip: names for ip, names in holders.items() if len(names) > 1}
    conflicts = {
        ip: names
        for ip, names in shared.items()
        if not may_share([terms(run.final[n]) for n in names if n in readable])
    }
    kept = [ip for ip, names in shared.items() if not may_share([terms(run.final[n]) for n in names])]
    with capsys.disabled():
        print(
            f"\n[measured] {summary(run)}; {len(shared)} addresses shared, "
            f"{len(kept) - len(conflicts)} of them with a holder whose object no longer reads (kept, as on "
            "any error)",
            flush=True,
        )
    assert run.healthy is None
    assert run.ours, "no Service of ours got through the API server: the generator is too hostile"
    assert run.assigned() and run.rejected(), "the run exercised only one side"
    for name, svc in run.final.items():
        if lb_ips(svc):
            assert name in run.ours, f"{name} is not ours but shows {lb_ips(svc)}"
    assert not conflicts, "\n".join(
        f"{ip}: {name} {terms(run.final[name])} patched={name in run.patched} "
        f"annotations={run.final[name]['metadata'].get('annotations')} events={run.events.get(name)}"
        for ip, names in conflicts.items()
        for name in names
    )


@pytest.mark.timeout(TIMEOUT + 120)
def test_every_service_left_without_an_address_has_an_event_naming_the_field(hostile_run: Run) -> None:
    run = hostile_run
    silent = {
        name: run.warnings.get(name, [])
        for name in run.rejected()
        if not any(names_its_field(m, run.final[name]) for m in run.warnings.get(name, []))
    }
    assert not silent, "\n".join(f"{name}: {messages}" for name, messages in list(silent.items())[:20])
