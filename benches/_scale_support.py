"""The pure parts of benches/test_bench_scale.py: its knobs, the objects it creates, and the arithmetic on
scrapes (what a counter grew by between two scrapes, per second, by verb), so the bench file holds only the
lab's steps.

Counters come from two real sources, side by side: the API server's apiserver_request_total (what it served,
every client together) and each program's metallb_py_k8s_client_requests (what it sent, by verb and
resource). Their difference is the API server's own traffic and the bench's few reads.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metallb_py.testing.labcluster import Scrape

# A /22 of private space, inside the lab's namespaces only: the IPv4 documentation ranges together hold
# fewer than the 1,000 addresses of the full run, and one of them is the nodes' network.
POOL_NAME = "scale"
POOL_RANGE = "192.168.4.0/22"
SERVICE_NAMESPACE = "default"
ENDPOINTS_PER_SERVICE = 3
WRITE_VERBS_CLIENT = frozenset({"create", "update", "patch", "delete"})
WRITE_VERBS_SERVER = frozenset({"POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION"})


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"${name}={raw!r}: expected a whole number") from None
    if value < 0:
        raise ValueError(f"${name}={raw!r}: expected 0 or more")
    return value


@dataclass(frozen=True)
class Knobs:
    """What the run does, from the environment (METALLB_PY_SCALE_*); the defaults fit about five minutes
    of CI here, `make bench-scale`'s 100 speakers and 1,000 Services about twenty."""

    nodes: int  # speakers, the excluded control-plane node's included
    services: int
    extra: int  # Services created once every speaker runs
    batch: int  # speakers started at a time
    paced: bool  # each batch once every speaker started so far counts the others alive
    sample: int  # addresses a client fetches from while they come up (and the failovers' Services)
    kills: int
    settle: float  # seconds between every address announced and the steady-state window
    window: float  # seconds of steady state counted
    logs: str | None
    speaker_args: tuple[str, ...]  # extra speaker flags, e.g. slower heartbeats

    @classmethod
    def from_env(cls) -> Knobs:
        nodes = _int_env("METALLB_PY_SCALE_NODES", 20)
        if not 2 <= nodes <= 199:
            raise ValueError(f"$METALLB_PY_SCALE_NODES={nodes}: 2 to 199 (the lab's address plan)")
        services = _int_env("METALLB_PY_SCALE_SERVICES", 10 * nodes)
        capacity = ipaddress.ip_network(POOL_RANGE).num_addresses
        if not 1 <= services <= capacity:
            raise ValueError(f"$METALLB_PY_SCALE_SERVICES={services}: 1 to {capacity} (pool {POOL_RANGE})")
        extra = _int_env("METALLB_PY_SCALE_EXTRA", min(max(1, services // 10), capacity - services))
        if services + extra > capacity:
            raise ValueError(f"$METALLB_PY_SCALE_EXTRA={extra}: at most {capacity - services} more Services")
        return cls(
            nodes=nodes,
            services=services,
            extra=extra,
            batch=max(1, _int_env("METALLB_PY_SCALE_BATCH", 10)),
            paced=_int_env("METALLB_PY_SCALE_PACED", 0) != 0,
            sample=max(1, min(services, _int_env("METALLB_PY_SCALE_SAMPLE", 8))),
            kills=_int_env("METALLB_PY_SCALE_KILLS", 3),
            settle=float(_int_env("METALLB_PY_SCALE_SETTLE", 30)),
            window=float(max(10, _int_env("METALLB_PY_SCALE_WINDOW", 60))),
            logs=os.environ.get("METALLB_PY_SCALE_LOGS") or None,
            speaker_args=tuple(shlex.split(os.environ.get("METALLB_PY_SCALE_SPEAKER_ARGS", ""))),
        )

    @property
    def workers(self) -> tuple[str, ...]:
        return tuple(f"node{i}" for i in range(1, self.nodes))


# -- objects -------------------------------------------------------------------------------------------------


def pool_objects(namespace: str) -> list[dict[str, Any]]:
    """The IPAddressPool of the run and its L2Advertisement."""
    return [
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": POOL_NAME, "namespace": namespace},
            "spec": {"addresses": [POOL_RANGE]},
        },
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": POOL_NAME, "namespace": namespace},
            "spec": {"ipAddressPools": [POOL_NAME]},
        },
    ]


def service_name(index: int) -> str:
    return f"scale-{index:04d}"


def sample_addresses(count: int) -> list[str]:
    """The addresses the sampled Services ask for (from the pool's end, away from the automatic ones)."""
    hosts = list(ipaddress.ip_network(POOL_RANGE).hosts())
    return [str(ip) for ip in hosts[-count:]]


def service_manifest(name: str, address: str | None = None) -> dict[str, Any]:
    """A LoadBalancer Service on port 80; `address`: the one it asks for (MetalLB's annotation)."""
    annotations = {"metallb.io/loadBalancerIPs": address} if address else {}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": SERVICE_NAMESPACE, "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}],
        },
    }


def endpoint_nodes(index: int, workers: Sequence[str]) -> list[str]:
    """The workers a Service's pods run on: ENDPOINTS_PER_SERVICE consecutive ones, round robin."""
    count = min(ENDPOINTS_PER_SERVICE, len(workers))
    return [workers[(index + k) % len(workers)] for k in range(count)]


# -- counters ------------------------------------------------------------------------------------------------


def grown(
    before: Scrape | None, after: Scrape | None, name: str, keys: Sequence[str]
) -> dict[tuple[str, ...], float]:
    """How much each series of the counter `name` grew between two scrapes, summed by the labels `keys`
    (a series absent before counts from 0; a missing scrape counts nothing)."""
    if after is None:
        return {}

    def totals(scrape: Scrape | None) -> dict[tuple[str, ...], float]:
        out: defaultdict[tuple[str, ...], float] = defaultdict(float)
        for labels, value in scrape.series(name) if scrape is not None else ():
            out[tuple(labels.get(k, "") for k in keys)] += value
        return out

    first, last = totals(before), totals(after)
    return {key: last[key] - first.get(key, 0.0) for key in last}


def client_requests(before: Scrape | None, after: Scrape | None) -> dict[tuple[str, str], float]:
    """Requests a program sent between two scrapes of its /metrics, by (verb, resource)."""
    counts = grown(before, after, "metallb_py_k8s_client_requests_total", ("verb", "resource"))
    return {(key[0], key[1]): n for key, n in counts.items()}


def server_requests(before: Scrape, after: Scrape) -> dict[tuple[str, str], float]:
    """Requests the API server served between two scrapes, by (verb, resource[/subresource])."""
    counts = grown(before, after, "apiserver_request_total", ("verb", "resource", "subresource"))
    out: defaultdict[tuple[str, str], float] = defaultdict(float)
    for (verb, resource, subresource), n in counts.items():
        out[verb, f"{resource}/{subresource}" if subresource else resource] += n
    return dict(out)


def writes(counts: Mapping[tuple[str, str], float], verbs: Iterable[str]) -> float:
    wanted = set(verbs)
    return sum(n for (verb, _), n in counts.items() if verb in wanted)


def counter_value(scrape: Scrape | None, name: str) -> float:
    """A counter's value in a scrape (0 when absent: the family exports only what exists)."""
    if scrape is None:
        return 0.0
    return sum(value for _, value in scrape.series(name))
